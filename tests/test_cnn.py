"""The CNN family: shapes, exact per-layer DREG terms, Lipschitz bound, config/CLI integration."""

import numpy as np
import pytest
import torch

import chainzrule as cz
from chainzrule.cnn import CNN, infer_image_shape
from chainzrule.config import TrainConfig
from chainzrule.conv import ConvHiddenLayer
from chainzrule.diagnostics import jacobian_norms, lipschitz_bound
from chainzrule.errors import ConfigError
from chainzrule.train.factory import build_model


@pytest.fixture(params=["relu", "chainzrule"])
def net(request):
    torch.manual_seed(0)
    return CNN((2, 8, 8), [3, 4], [5], 3, activation=request.param).double()


def test_shapes_and_input_forms(net):
    x = torch.randn(6, 2 * 8 * 8, dtype=torch.float64)
    logits, jsq = net(x, return_jacobian=True)
    assert logits.shape == (6, 3) and jsq.shape == (6, 3)  # 2 conv + 1 dense layer
    torch.testing.assert_close(net(x.view(6, 2, 8, 8)), logits)
    torch.testing.assert_close(net(x), logits)
    with pytest.raises(ConfigError, match=r"expected inputs \[N, 128\]"):
        net(torch.randn(6, 2, 8, 7, dtype=torch.float64))
    assert net.input_shapes() == [(8, 8), (4, 4)]


def test_jacobian_terms_are_each_layers_exact_frobenius_norm(net):
    """Each term is ||∂h_l/∂h_{l-1}||_F² of the layer on the input it really sees (torch.func)."""
    x = torch.randn(3, 2, 8, 8, dtype=torch.float64)
    _, jsq = net(x, return_jacobian=True)
    h, col = x, 0
    for layer in net.conv_layers:
        for i in range(x.shape[0]):
            J = torch.func.jacrev(lambda u: layer(u[None])[0])(h[i])
            assert float(J.detach().pow(2).sum()) == pytest.approx(float(jsq[i, col].detach()), rel=1e-6, abs=1e-6)
        h, col = net.pool(layer(h)), col + 1
    h = h.flatten(1)
    for layer in net.hidden_layers:
        for i in range(x.shape[0]):
            J = torch.func.jacrev(layer)(h[i])
            assert float(J.detach().pow(2).sum()) == pytest.approx(float(jsq[i, col].detach()), rel=1e-6)
        h, col = layer(h), col + 1


def test_collector_equals_explicit_return_and_reaches_coefficients(net):
    x = torch.randn(4, 128, dtype=torch.float64)
    _, jsq = net(x, return_jacobian=True)
    with cz.collect(net) as terms:
        net(x)
    torch.testing.assert_close(terms.penalty(), cz.dreg_penalty(jsq))
    terms.penalty().backward()
    layers = list(net.conv_layers) + list(net.hidden_layers)
    weights = [l.conv.weight if hasattr(l, "conv") else l.linear.weight for l in layers]
    assert all(w.grad is not None and bool(w.grad.abs().sum() > 0) for w in weights)
    assert all(p.grad is None for p in net.head.parameters())  # the head is not penalized
    if net.activation_name == "chainzrule":
        assert all(bool(l.activation.coefficients.grad.abs().sum() > 0) for l in layers)


def test_lipschitz_bound_bounds_the_input_jacobian(net):
    x = torch.randn(64, 128, dtype=torch.float64)
    bound = lipschitz_bound(net)
    assert np.isfinite(bound)
    spectral = torch.stack([torch.linalg.matrix_norm(torch.func.jacrev(net)(xi[None])[0, :, 0].detach(), 2) for xi in x[:8]])
    assert float(spectral.max()) <= bound * (1 + 1e-9)  # the conv factors are upper bounds: no slack needed
    assert float(jacobian_norms(net, x).detach().max()) / 3 ** 0.5 <= bound * (1 + 1e-9)


def test_operator_norm_matches_the_conv_matrix():
    torch.manual_seed(1)
    for kw in (dict(padding=1), dict(stride=2), dict(padding=1, padding_mode="circular"), dict(groups=2)):
        layer = ConvHiddenLayer(4, 6, 3, cz.activations.ReLU(), **kw).double()
        f = lambda u: torch.nn.functional.conv2d(u.view(1, 4, 7, 8), layer.conv.weight, None, layer.conv.stride,
                                                 layer.conv.padding, layer.conv.dilation, layer.conv.groups) \
            if kw.get("padding_mode") != "circular" else layer._conv_nobias(u.view(1, 4, 7, 8), layer.conv.weight)
        J = torch.func.jacrev(lambda u: f(u).flatten())(torch.zeros(4 * 7 * 8, dtype=torch.float64))
        exact = float(torch.linalg.matrix_norm(J.detach(), 2))
        assert layer.operator_norm((7, 8), iters=500) == pytest.approx(exact, rel=2e-3)
        assert layer.operator_norm((7, 8), iters=500) <= exact * (1 + 1e-9)


def test_image_shape_inference_and_refusals():
    assert infer_image_shape(784) == (1, 28, 28) and infer_image_shape(3 * 32 * 32) == (3, 32, 32)
    with pytest.raises(ConfigError, match="square images"):
        infer_image_shape(10)
    with pytest.raises(ConfigError, match="at least 8 pixels"):
        CNN((1, 4, 4), [2, 2, 2], [4], 2)
    with pytest.raises(ConfigError, match="expected a head taking the last hidden width, 4 features, got Linear with in_features=5"):
        CNN((1, 8, 8), [2], [4], 2, head=torch.nn.Linear(5, 2))
    with pytest.raises(ConfigError, match="unknown activation"):
        CNN((1, 4, 4), [2], [4], 2, activation="swish2")
    with pytest.raises(ConfigError, match="channels"):
        CNN((1, 4, 4), [], [4], 2)
    with pytest.raises(ConfigError, match="conv_channels"):
        TrainConfig(model="cnn", conv_channels=(0,))


@pytest.mark.parametrize("model", ["cnn", "chainzrule-cnn"])
def test_factory_builds_the_family_with_its_dreg_default(model):
    cfg = TrainConfig(dataset="synthetic", model=model, conv_channels=(2,), hidden=(4,))
    net = build_model(cfg, 36, 3, "classification")
    assert isinstance(net, CNN) and net.image_shape == (1, 6, 6)
    assert (cfg.dreg_lambda > 0) == (model == "chainzrule-cnn")
    assert net(torch.rand(2, 36)).shape == (2, 3)
    with pytest.raises(ConfigError, match="square images"):
        build_model(cfg, 10, 3, "classification")
