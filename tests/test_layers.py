"""HiddenLayer: the analytic per-example ||S||_F² against torch.func, and the zero-cost path."""

import pytest
import torch
from hypothesis import given, settings, strategies as st

from chainzrule import HiddenLayer, make_activation
from chainzrule.layers import jacobian_tracking

ACTIVATIONS = [("relu", {}), ("gelu", {}), ("silu", {}), ("tanh", {})] + [
    ("poly", dict(degree=d, range_control=rc)) for d in (1, 2, 3, 4, 5) for rc in ("linear", "tanh", "none")
]


def _layer(name, opts, n_in, n_out, dtype=torch.float64):
    act = make_activation(name, n_out, **opts) if name == "poly" else make_activation(name)
    layer = HiddenLayer(n_in, n_out, act, track_jacobian=True).to(dtype)
    if name == "poly":
        with torch.no_grad():
            act.coefficients.add_(0.3 * torch.randn_like(act.coefficients))
    return layer


def _reference_jacobian_sq(layer, x):
    """||∂ layer(x) / ∂x||_F² per example, from the layer's own forward via torch.func."""
    with jacobian_tracking(layer, False):
        jac = torch.func.vmap(torch.func.jacrev(lambda xi: layer(xi.unsqueeze(0)).squeeze(0)))(x)  # [B, out, in]
    return jac.pow(2).sum(dim=(-2, -1))  # [B]


@pytest.mark.parametrize("name, opts", ACTIVATIONS, ids=[f"{n}-{o}" for n, o in ACTIVATIONS])
@pytest.mark.parametrize("batch, n_in, n_out", [(1, 3, 5), (6, 7, 9), (4, 1, 1)])
def test_analytic_jacobian_norm_matches_torch_func(name, opts, batch, n_in, n_out):
    layer = _layer(name, opts, n_in, n_out)
    x = 2.0 * torch.randn(batch, n_in, dtype=torch.float64)
    layer(x)
    analytic = layer.jacobian_sq
    ref = _reference_jacobian_sq(layer, x)
    assert analytic.shape == (batch,)
    torch.testing.assert_close(analytic, ref, rtol=1e-6, atol=1e-12)


def test_jacobian_method_matches_torch_func():
    layer = _layer("poly", dict(degree=3), 4, 5)
    x = torch.randn(3, 4, dtype=torch.float64)
    with jacobian_tracking(layer, False):
        ref = torch.func.vmap(torch.func.jacrev(lambda xi: layer(xi.unsqueeze(0)).squeeze(0)))(x)
    torch.testing.assert_close(layer.jacobian(x), ref)


def test_extra_batch_dimensions():
    layer = _layer("gelu", {}, 3, 4)
    x = torch.randn(2, 5, 3, dtype=torch.float64)
    y = layer(x)
    analytic = layer.jacobian_sq
    assert y.shape == (2, 5, 4) and analytic.shape == (2, 5)
    flat = _reference_jacobian_sq(layer, x.reshape(10, 3))
    torch.testing.assert_close(analytic.reshape(10), flat)


def test_tracking_off_computes_plain_forward_only():
    layer = _layer("gelu", {}, 3, 4)
    layer.track_jacobian = False
    x = torch.randn(5, 3, dtype=torch.float64)
    y = layer(x)
    assert layer.jacobian_sq is None
    torch.testing.assert_close(y, torch.nn.functional.gelu(layer.linear(x)))


def test_tracking_off_never_calls_the_derivative(monkeypatch):
    layer = HiddenLayer(3, 4, make_activation("relu"))

    def boom(z):
        raise AssertionError("derivative computed with DREG off")

    monkeypatch.setattr(layer.activation, "value_and_derivative", boom)
    layer(torch.randn(2, 3))  # must not raise


def test_spectral_norm_parametrization_is_seen_by_dreg():
    layer = _layer("tanh", {}, 6, 5)
    torch.nn.utils.parametrizations.spectral_norm(layer.linear)
    x = torch.randn(4, 6, dtype=torch.float64)
    layer.eval()
    layer(x)
    analytic = layer.jacobian_sq
    torch.testing.assert_close(analytic, _reference_jacobian_sq(layer, x), rtol=1e-6, atol=1e-12)


def test_huge_inputs_give_finite_penalty():
    for name, opts in [("poly", dict(degree=5)), ("gelu", {}), ("silu", {}), ("tanh", {}), ("relu", {})]:
        layer = _layer(name, opts, 4, 6, dtype=torch.float32)
        x = torch.tensor([[1e4, -1e4, 5e3, -2.0]]).requires_grad_(True)
        h = layer(x)
        (h.sum() + layer.jacobian_sq.sum()).backward()
        assert torch.isfinite(h).all() and torch.isfinite(layer.jacobian_sq).all(), name
        assert torch.isfinite(x.grad).all() and torch.isfinite(layer.linear.weight.grad).all(), name


def test_feature_mismatch_raises_value_error():
    layer = _layer("relu", {}, 3, 4)
    with pytest.raises(ValueError, match=r"expected 3 input features.*got shape \(2, 5\)"):
        layer(torch.randn(2, 5, dtype=torch.float64))


def test_activation_width_mismatch_raises():
    with pytest.raises(ValueError, match="activation has 5 features, expected out_features=4"):
        HiddenLayer(3, 4, make_activation("poly", 5))


def test_activation_without_derivative_refused():
    with pytest.raises(ValueError, match="value_and_derivative"):
        HiddenLayer(3, 4, torch.nn.ReLU())


def test_state_dict_keys_are_plain_linear_and_activation():
    layer = _layer("poly", dict(degree=3), 3, 4)
    assert set(layer.state_dict()) == {"linear.weight", "linear.bias", "activation.coefficients"}


@settings(max_examples=20, deadline=None)
@given(
    n_in=st.integers(1, 6), n_out=st.integers(1, 6), batch=st.integers(1, 5),
    which=st.sampled_from(range(len(ACTIVATIONS))), scale=st.floats(0.1, 10.0),
)
def test_property_random_shapes(n_in, n_out, batch, which, scale):
    name, opts = ACTIVATIONS[which]
    layer = _layer(name, opts, n_in, n_out)
    x = scale * torch.randn(batch, n_in, dtype=torch.float64)
    layer(x)
    analytic = layer.jacobian_sq
    torch.testing.assert_close(analytic, _reference_jacobian_sq(layer, x), rtol=1e-6, atol=1e-10)
