"""Tests for chainzrule.regularizers: each penalty against a brute-force or hand computation."""

from __future__ import annotations

import math

import pytest

from chainzrule.errors import ConfigError
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, jacrev, vmap

from chainzrule.dreg import dreg_penalty
from chainzrule.models import MLP, ChainzRuleMLP
from chainzrule.regularizers import (
    DREG,
    REGULARIZERS,
    InputGradientPenalty,
    JacobianProjections,
    NoReg,
    Regularizer,
    SpectralNorm,
    WeightDecay,
    make_regularizer,
)

NAMES = ["none", "dreg", "wd", "igp", "jr", "sn"]


def _data(n=6, d=5, c=3, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=dtype)
    y = torch.randint(0, c, (n,), generator=g)
    return x, y


def _mlp(kind="gelu", seed=0, dtype=torch.float64):
    torch.manual_seed(seed)
    if kind == "cr":
        net = ChainzRuleMLP(5, [7, 6], 3)
    else:
        net = MLP(5, [7, 6], 3, activation=kind)
    return net.to(dtype)


def _step_inputs(reg, net, x, y):
    x = x.clone().requires_grad_(reg.needs_input_grad)
    logits = net(x)
    loss_fn = lambda out: F.cross_entropy(out, y)  # noqa: E731
    return x, logits, loss_fn


def test_make_regularizer_names_and_types():
    assert list(REGULARIZERS) == NAMES
    for name in NAMES:
        reg = make_regularizer(name)
        assert isinstance(reg, Regularizer)
        assert reg.name == name
    assert make_regularizer("JR", n_proj=3).n_proj == 3


def test_make_regularizer_unknown_name_lists_allowed():
    with pytest.raises(ValueError) as e:
        make_regularizer("dropout")
    for name in NAMES:
        assert name in str(e.value)
    with pytest.raises(ValueError, match="bad options"):
        make_regularizer("wd", strength=1.0)


def test_flags():
    assert not NoReg().needs_input_grad and not DREG().needs_input_grad
    assert InputGradientPenalty().needs_input_grad and JacobianProjections().needs_input_grad
    assert not any(make_regularizer(n).weight_decay for n in NAMES)
    assert WeightDecay(via_optimizer=True).weight_decay


def test_noreg_and_sn_penalty_zero():
    net = _mlp()
    x, y = _data()
    for reg in (NoReg(), SpectralNorm()):
        net = reg.prepare(net)
        xx, logits, loss_fn = _step_inputs(reg, net, x, y)
        p = reg.penalty(net, xx, logits, loss_fn)
        assert p.shape == () and float(p.detach()) == 0.0 and p.dtype == logits.dtype


@pytest.mark.parametrize("kind", ["tanh", "cr"])
def test_dreg_equals_dreg_penalty(kind):
    net = _mlp(kind, seed=1)
    reg = DREG()
    assert reg.prepare(net) is net
    x, y = _data()
    xx, logits, loss_fn = _step_inputs(reg, net, x, y)
    p = reg.penalty(net, xx, logits, loss_fn)
    _, jsq = net(x, return_jacobian=True)
    # the same terms, reduced in another order (per-layer means of the collector's dict, summed, vs
    # the [N, L] tensor's column means): equal to float64 rounding, 1 ulp apart for some weights
    assert torch.allclose(p, dreg_penalty(jsq), rtol=4e-16, atol=0)
    # and dreg_penalty is Σ_l mean ||S_l||_F² with S_l the layer Jacobian
    h, expect = x, 0.0
    with torch.no_grad():
        for layer in net.hidden_layers:
            expect += float(layer.jacobian(h).pow(2).sum(dim=(-2, -1)).mean())
            h = layer(h)
    assert math.isclose(float(p.detach()), expect, rel_tol=1e-10)
    p.backward()  # the penalty is differentiable in the weights
    assert all(layer.linear.weight.grad is not None for layer in net.hidden_layers)


def test_weight_decay_hand_sum():
    net = _mlp("cr")
    reg = WeightDecay()
    x, y = _data()
    xx, logits, loss_fn = _step_inputs(reg, net, x, y)
    p = reg.penalty(net, xx, logits, loss_fn)
    hand = sum(float((layer.linear.weight.detach() ** 2).sum()) for layer in net.hidden_layers)
    hand += float((net.head.weight.detach() ** 2).sum())
    assert math.isclose(float(p.detach()), hand, rel_tol=1e-12)
    # biases and polynomial coefficients are not decayed
    p.backward()
    for layer in net.hidden_layers:
        assert layer.linear.bias.grad is None
        assert layer.activation.coefficients.grad is None
        torch.testing.assert_close(layer.linear.weight.grad, 2 * layer.linear.weight.detach())


def test_weight_decay_via_optimizer():
    net = SpectralNorm().prepare(_mlp())
    reg = WeightDecay(via_optimizer=True)
    x, y = _data()
    xx, logits, loss_fn = _step_inputs(reg, net, x, y)
    assert float(reg.penalty(net, xx, logits, loss_fn)) == 0.0
    params = reg.decay_parameters(net)
    assert len(params) == 3 and all(isinstance(p, nn.Parameter) and p.dim() == 2 for p in params)
    assert params[0] is net.hidden_layers[0].linear.parametrizations.weight.original


@pytest.mark.parametrize("kind", ["tanh", "cr"])
def test_igp_equals_per_example_bruteforce(kind):
    net = _mlp(kind)
    x, y = _data(n=7)
    reg = InputGradientPenalty()
    xx, logits, loss_fn = _step_inputs(reg, net, x, y)
    p = reg.penalty(net, xx, logits, loss_fn)

    params = {k: v.detach() for k, v in net.named_parameters()}

    def loss_one(xi, yi):  # per-example loss of one example
        out = functional_call(net, params, (xi.unsqueeze(0),))
        return F.cross_entropy(out, yi.unsqueeze(0))

    with torch.no_grad():
        g = vmap(grad(loss_one))(x, y)  # [N, D]
    brute = g.pow(2).sum(dim=1).mean()
    torch.testing.assert_close(p.detach(), brute, rtol=1e-10, atol=1e-12)


def test_igp_requires_input_grad():
    net = _mlp()
    x, y = _data()
    with pytest.raises(ValueError, match="requires_grad"):
        InputGradientPenalty().penalty(net, x, net(x), lambda out: F.cross_entropy(out, y))


def test_jacobian_projections_unbiased():
    net = _mlp("gelu")
    x, _ = _data(n=4)
    with torch.no_grad():
        jac = vmap(jacrev(net))(x)  # [N, C, D]
    exact = float(jac.pow(2).sum(dim=(1, 2)).mean())
    reg = JacobianProjections(n_proj=20, seed=0)
    xx = x.clone().requires_grad_()
    logits = net(xx)
    draws = [float(reg.penalty(net, xx, logits, None).detach()) for _ in range(100)]  # 2000 projections
    mean = sum(draws) / len(draws)
    assert abs(mean - exact) < 0.04 * exact  # std of the mean here ≈ 1 %
    assert len(set(draws)) > 1  # the draws vary from call to call
    # same seed, same draws
    a = JacobianProjections(n_proj=3, seed=5).penalty(net, xx, logits, None)
    b = JacobianProjections(n_proj=3, seed=5).penalty(net, xx, logits, None)
    assert torch.equal(a, b)


def test_jacobian_projections_single_output_is_exact():
    # with C = 1 the only unit vectors are ±1, so the estimate is exact
    torch.manual_seed(0)
    net = MLP(5, [7], 1, activation="silu").double()
    x, _ = _data(n=4)
    xx = x.clone().requires_grad_()
    p = JacobianProjections(n_proj=1).penalty(net, xx, net(xx), None)
    with torch.no_grad():
        exact = vmap(jacrev(net))(x).pow(2).sum(dim=(1, 2)).mean()
    torch.testing.assert_close(p.detach(), exact)


def test_jacobian_projections_bad_n_proj():
    with pytest.raises(ValueError, match="n_proj"):
        JacobianProjections(n_proj=0)


@pytest.mark.parametrize("kind", ["relu", "cr"])
def test_spectral_norm_unit_spectral_norm(kind):
    net = _mlp(kind, seed=3)
    reg = SpectralNorm()
    assert reg.prepare(net) is net
    reg.prepare(net)  # idempotent: no second parametrization
    linears = [layer.linear for layer in net.hidden_layers] + [net.head]
    for lin in linears:
        assert len(lin.parametrizations.weight) == 1
    net.train()
    x, _ = _data(n=8)
    with torch.no_grad():
        for _ in range(50):
            net(x)
    net.eval()
    for lin in linears:
        sigma = torch.linalg.matrix_norm(lin.weight.detach(), ord=2)
        assert abs(float(sigma) - 1.0) < 1e-3


@pytest.mark.parametrize("kind", ["silu", "cr"])
def test_spectral_norm_gain_sets_the_hidden_layers_norm_and_leaves_the_head_at_one(kind):
    net = SpectralNorm(gain=3.0).prepare(_mlp(kind, seed=3))
    plain = SpectralNorm().prepare(_mlp(kind, seed=3))
    assert net.state_dict().keys() == plain.state_dict().keys()  # the gain holds no tensor
    for layer in net.hidden_layers:
        assert [type(p).__name__ for p in layer.linear.parametrizations.weight] == ["_SpectralNorm", "Gain"]
    assert len(net.head.parametrizations.weight) == 1
    x, _ = _data(n=8)
    net.train()
    with torch.no_grad():
        for _ in range(50):
            net(x)
    net.eval()
    for layer in net.hidden_layers:
        assert float(torch.linalg.matrix_norm(layer.linear.weight.detach(), ord=2)) == pytest.approx(3.0, rel=1e-3)
    assert float(torch.linalg.matrix_norm(net.head.weight.detach(), ord=2)) == pytest.approx(1.0, rel=1e-3)
    # the same raw weights with gain 1: hidden maps exactly 3x smaller
    plain.load_state_dict(net.state_dict())
    plain.eval()
    for a, b in zip(net.hidden_layers, plain.hidden_layers):
        assert torch.allclose(a.linear.weight, 3.0 * b.linear.weight, rtol=1e-12, atol=0)


@pytest.mark.parametrize("gain", [0.0, -1.0, math.nan, math.inf, "2"])
def test_spectral_norm_gain_refuses_bad_values(gain):
    with pytest.raises(ValueError, match="gain must be a finite number > 0"):
        SpectralNorm(gain=gain)


@pytest.mark.parametrize("name", ["dreg", "wd", "igp", "jr"])
@pytest.mark.parametrize("kind", ["relu", "gelu", "cr"])
def test_penalty_backpropagates_to_weights(name, kind):
    net = _mlp(kind)
    reg = make_regularizer(name)
    net = reg.prepare(net)
    x, y = _data()
    xx, logits, loss_fn = _step_inputs(reg, net, x, y)
    p = reg.penalty(net, xx, logits, loss_fn)
    assert p.shape == () and torch.isfinite(p) and float(p.detach()) > 0
    p.backward()
    for layer in net.hidden_layers:
        g = layer.linear.weight.grad
        assert g is not None and torch.isfinite(g).all()
    if name != "dreg":  # DREG never touches the head (guide §2)
        assert net.head.weight.grad is not None and torch.isfinite(net.head.weight.grad).all()


@pytest.mark.parametrize("name", NAMES)
def test_one_loop_treats_all_alike(name):
    """A generic training loop runs every contender and lowers the training loss."""
    torch.manual_seed(0)
    net = MLP(5, [16], 3, activation="gelu")
    reg = make_regularizer(name)
    net = reg.prepare(net)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    x, y = _data(n=32, dtype=torch.float32)

    def task_loss():
        net.eval()
        with torch.no_grad():
            out = F.cross_entropy(net(x), y).item()
        net.train()
        return out

    before = task_loss()
    for _ in range(20):
        xx = x.clone().requires_grad_(reg.needs_input_grad)
        logits = net(xx)
        loss_fn = lambda out: F.cross_entropy(out, y)  # noqa: E731
        loss = loss_fn(logits) + 1e-3 * reg.penalty(net, xx, logits, loss_fn)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert task_loss() < before


def test_weight_decay_covers_ordinal_heads_and_kan():
    from chainzrule.kan import KAN
    from chainzrule.ordinal import make_ordinal_head

    reg = WeightDecay()
    for kind in ("clm", "coral", "corn"):
        torch.manual_seed(0)
        net = MLP(5, [7], 5, head=make_ordinal_head(kind, 7, 5)).double()
        hand = float(net.hidden_layers[0].linear.weight.detach().pow(2).sum() + net.head.weight.detach().pow(2).sum())
        assert math.isclose(float(reg.penalty(net, None, torch.zeros(1), None).detach()), hand, rel_tol=1e-12)
    kan = KAN(4, [5], 3).double()
    hand = sum(float(p.detach().pow(2).sum()) for n, p in kan.named_parameters() if "weight" in n)
    assert hand > 0
    assert math.isclose(float(reg.penalty(kan, None, torch.zeros(1), None).detach()), hand, rel_tol=1e-12)


def test_spectral_norm_ordinal_head_and_refuses_models_without_linear_maps():
    from chainzrule.kan import KAN
    from chainzrule.ordinal import make_ordinal_head

    torch.manual_seed(0)
    net = SpectralNorm().prepare(MLP(5, [7], 5, head=make_ordinal_head("clm", 7, 5)).double())
    net.eval()
    assert math.isclose(float(net.head.weight.detach().norm()), 1.0, rel_tol=1e-6)  # [1, in]: unit norm
    with pytest.raises(ValueError, match="spectral norm"):
        SpectralNorm().prepare(KAN(4, [5], 3))


def test_spectral_norm_refuses_conv_models():
    """torch's spectral_norm of a conv weight is not the conv operator's norm, and our SN only
    parametrizes linear maps: a CNN would keep unconstrained conv layers, so it is refused —
    in the library and in the config, before any work."""
    from chainzrule.cnn import CNN
    from chainzrule.config import TrainConfig
    from chainzrule.regularizers import SpectralNorm

    with pytest.raises(ConfigError, match="conv_layers.0.conv, conv_layers.1.conv"):
        SpectralNorm().prepare(CNN((1, 8, 8), [4, 8], [16], 3))
    for model in ("cnn", "chainzrule-cnn"):
        with pytest.raises(ConfigError, match="expected model chainzrule or mlp"):
            TrainConfig(model=model, reg="sn")


def test_jr_parts_of_a_global_batch_draw_the_global_directions():
    """Under torchrun each process holds part of the global batch (rows rank::world); with ``part``
    every process draws the global batch's directions and keeps its rows, so the share-weighted
    parts sum to the single-process estimate (was: each drew for its own rows, weights 7e-4 off)."""
    from chainzrule.regularizers import JacobianProjections

    torch.manual_seed(0)
    net = MLP(4, [8], 3, activation="gelu").double()
    x = torch.randn(7, 4, dtype=torch.float64, requires_grad=True)
    whole = JacobianProjections(n_proj=2, seed=5).penalty(net, x, net(x), None)
    parts = torch.zeros((), dtype=torch.float64)
    for rank in range(2):
        rows = torch.arange(7)[rank::2]
        xr = x.detach()[rows].requires_grad_(True)
        pen = JacobianProjections(n_proj=2, seed=5).penalty(net, xr, net(xr), None, part=(7, rows))
        parts = parts + pen * len(rows) / 7
    torch.testing.assert_close(parts, whole, rtol=1e-12, atol=0)
    with pytest.raises(ValueError, match="positions of 2 rows, got logits of 3"):
        JacobianProjections(seed=5).penalty(net, xr, net(xr), None, part=(7, torch.arange(2)))
