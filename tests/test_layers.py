"""HiddenLayer: the analytic per-example ||S||_F² against torch.func on the layer's own forward,
the explicit return, the zero-cost plain path, shapes and errors."""

import pytest
import torch
from hypothesis import given, settings, strategies as st

from chainzrule import HiddenLayer, dreg, functional as CF, make_activation
from chainzrule.poly import BASES, RANGE_CONTROLS

DT = torch.float64
STANDARD = [("relu", {}), ("gelu", {}), ("silu", {}), ("tanh", {})]
POLY = [("poly", dict(degree=d, range_control=rc, basis=b)) for b in BASES for d in (1, 2, 3, 4, 5)
        for rc in RANGE_CONTROLS]
ACTIVATIONS = STANDARD + POLY


def _id(name, opts):
    return name if not opts else f"{opts['basis']}-d{opts['degree']}-{opts['range_control']}"


def _layer(name, opts, n_in, n_out, dtype=DT, bias=True):
    act = make_activation(name, n_out, **opts) if name == "poly" else make_activation(name)
    layer = HiddenLayer(n_in, n_out, act, bias=bias).to(dtype)
    if name == "poly":
        with torch.no_grad():
            act.coefficients.add_(0.3 * torch.randn_like(act.coefficients))
    return layer


def _reference_jacobian_sq(layer, x):
    """||∂ layer(x) / ∂x||_F² per example, from the layer's own plain forward via torch.func."""
    jac = torch.func.vmap(torch.func.jacrev(lambda xi: layer(xi)))(x)  # [B, out, in]
    return jac.pow(2).sum(dim=(-2, -1))  # [B]


@pytest.mark.parametrize("name, opts", ACTIVATIONS, ids=[_id(n, o) for n, o in ACTIVATIONS])
@pytest.mark.parametrize("batch, n_in, n_out", [(1, 3, 5), (6, 7, 9), (4, 1, 1)])
def test_analytic_jacobian_norm_matches_torch_func(name, opts, batch, n_in, n_out):
    layer = _layer(name, opts, n_in, n_out)
    x = 2.0 * torch.randn(batch, n_in, dtype=DT)  # pre-activations inside and outside [-3, 3]
    h, analytic = layer(x, return_jacobian=True)
    assert analytic.shape == (batch,) and h.shape == (batch, n_out)
    torch.testing.assert_close(h, layer(x), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(analytic, _reference_jacobian_sq(layer, x), rtol=1e-6, atol=1e-12)
    h2, analytic2 = layer.forward_with_jacobian(x)
    assert torch.equal(h2, h) and torch.equal(analytic2, analytic)


@pytest.mark.parametrize("name, opts", STANDARD + [("poly", dict(degree=3, range_control="linear", basis="legendre"))],
                         ids=["relu", "gelu", "silu", "tanh", "poly"])
def test_jacobian_method_matches_torch_func(name, opts):
    layer = _layer(name, opts, 4, 5)
    x = 2 * torch.randn(3, 4, dtype=DT)
    ref = torch.func.vmap(torch.func.jacrev(lambda xi: layer(xi)))(x)
    torch.testing.assert_close(layer.jacobian(x), ref)
    torch.testing.assert_close(layer.row_norms_sq(), layer.linear.weight.pow(2).sum(1))


@pytest.mark.parametrize("name", ["gelu", "poly"])
def test_extra_batch_dimensions_and_unbatched(name):
    layer = _layer(name, {} if name == "gelu" else dict(degree=3), 3, 4)
    x = 2 * torch.randn(2, 5, 3, dtype=DT)
    y, analytic = layer(x, return_jacobian=True)
    assert y.shape == (2, 5, 4) and analytic.shape == (2, 5)
    torch.testing.assert_close(analytic.reshape(10), _reference_jacobian_sq(layer, x.reshape(10, 3)))
    y1, j1 = layer(x[0, 0], return_jacobian=True)
    assert y1.shape == (4,) and j1.shape == ()
    torch.testing.assert_close(y1, y[0, 0])
    torch.testing.assert_close(j1, analytic[0, 0])


def test_empty_batch():
    layer = _layer("poly", dict(degree=3), 3, 4)
    x = torch.randn(0, 3, dtype=DT, requires_grad=True)
    y, jsq = layer(x, return_jacobian=True)
    assert y.shape == (0, 4) and jsq.shape == (0,)
    (y.sum() + jsq.sum()).backward()
    assert layer.activation.coefficients.grad.abs().sum() == 0


def test_plain_forward_computes_sigma_of_linear_only(monkeypatch):
    layer = _layer("gelu", {}, 3, 4)
    x = torch.randn(5, 3, dtype=DT)
    y = layer(x)
    assert isinstance(y, torch.Tensor)
    torch.testing.assert_close(y, torch.nn.functional.gelu(layer.linear(x)))

    def boom(*args, **kwargs):
        raise AssertionError("a Jacobian term was computed for a plain forward")

    monkeypatch.setattr(layer.activation, "value_and_derivative", boom)
    monkeypatch.setattr(layer.activation, "value_and_jacobian_sq", boom)
    monkeypatch.setattr(HiddenLayer, "forward_with_jacobian", boom)
    layer(x)  # must not raise
    layer(x.requires_grad_(True)).sum().backward()


def test_layer_records_nothing_on_itself():
    layer = _layer("poly", dict(degree=3), 3, 4)
    before = dict(vars(layer))
    with dreg.collect(layer) as terms:
        layer(torch.randn(2, 3, dtype=DT))
    layer(torch.randn(2, 3, dtype=DT), return_jacobian=True)
    assert len(terms.records) == 1
    assert vars(layer).keys() == before.keys()
    for m in layer.modules():  # no tensor attribute besides parameters and buffers
        assert not any(isinstance(v, torch.Tensor) for v in vars(m).values())


def test_spectral_norm_parametrization_is_seen_by_dreg():
    layer = _layer("tanh", {}, 6, 5)
    torch.nn.utils.parametrizations.spectral_norm(layer.linear)
    x = torch.randn(4, 6, dtype=DT)
    layer.eval()
    _, analytic = layer(x, return_jacobian=True)
    torch.testing.assert_close(analytic, _reference_jacobian_sq(layer, x), rtol=1e-6, atol=1e-12)


def _graph_nodes(t):
    """Names of every autograd node behind ``t``."""
    seen, stack, names = set(), [t.grad_fn], set()
    while stack:
        fn = stack.pop()
        if fn is None or fn in seen:
            continue
        seen.add(fn)
        names.add(type(fn).__name__)
        stack.extend(nxt for nxt, _ in fn.next_functions)
    return names


def _layer_grads(layer, x, kernels=()):
    h, jsq = layer(x, return_jacobian=True)
    nodes = _graph_nodes(jsq)
    assert all(any(k in n for n in nodes) == expected for k, expected in kernels), nodes
    loss = (h * torch.linspace(-1, 1, h.shape[-1], dtype=h.dtype)).sum() + 0.7 * jsq.sum()
    return [loss.detach()] + [g.clone() for g in torch.autograd.grad(loss, [x] + list(layer.parameters()))]


def _plain_poly_jacobian_sq(z, a, rn, bound, range_control="linear"):
    h, slope = CF.poly_activation_and_slope(z, a, bound, range_control)
    return h, CF.layer_jacobian_sq(slope, rn)


@pytest.mark.parametrize("name, opts", [("relu", {}), ("gelu", {}), ("poly", dict(degree=3)),
                                        ("poly", dict(degree=5, range_control="none", basis="power"))])
@pytest.mark.parametrize("bias", [True, False])
def test_fused_kernels_and_plain_ops_give_the_same_layer_values_and_gradients(name, opts, bias, monkeypatch):
    """The hand-written kernels (linear + row norms, polynomial σ + ||S||²) against plain ops + autograd."""
    layer = _layer(name, opts, 4, 5, bias=bias)
    x = 2 * torch.randn(6, 4, dtype=DT, requires_grad=True)
    fused = _layer_grads(layer, x, [("LinearRowNormSqFn", True), ("PolyJacobianSqFn", name == "poly")])
    monkeypatch.setattr(CF, "linear_and_row_norms_sq",
                        lambda x, w, b: (torch.nn.functional.linear(x, w, b), CF.row_norms_sq(w)))
    monkeypatch.setattr(CF, "poly_activation_and_jacobian_sq", _plain_poly_jacobian_sq)
    plain = _layer_grads(layer, x, [("LinearRowNormSqFn", False), ("PolyJacobianSqFn", False)])
    for a, b in zip(fused, plain):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", ["relu", "poly"])
def test_pruning_is_seen_by_dreg(name):
    """Pruning recomputes ``linear.weight`` in a forward pre-hook of ``layer.linear``: the DREG
    path must run it too, or it computes σ(W_stale x) and a stale ||W||² (silently wrong)."""
    from torch.nn.utils import prune

    layer = _layer(name, dict(degree=3) if name == "poly" else {}, 4, 5)
    prune.l1_unstructured(layer.linear, "weight", amount=0.5)
    with torch.no_grad():  # what an optimizer step does to the pruned weight's `weight_orig`
        layer.linear.weight_orig.mul_(2.0)
    x = torch.randn(3, 4, dtype=DT)
    h, jsq = layer(x, return_jacobian=True)  # before any plain forward has run the hook
    w = layer.linear.weight_orig * layer.linear.weight_mask
    z = torch.nn.functional.linear(x, w, layer.linear.bias)
    value, slope = layer.activation.value_and_derivative(z)
    torch.testing.assert_close(h, value, msg=lambda m: f"σ(W x + b) with a stale weight: {m}")
    torch.testing.assert_close(jsq, (slope * slope) @ (w * w).sum(1))
    torch.testing.assert_close(h, layer(x))


@pytest.mark.parametrize("name", ["relu", "gelu", "silu", "tanh", "poly"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_huge_inputs_give_finite_penalty(name, dtype):
    layer = _layer(name, dict(degree=5) if name == "poly" else {}, 4, 6, dtype=dtype)
    x = torch.tensor([[1e4, -1e4, 5e3, -2.0]], dtype=dtype).requires_grad_(True)
    h, jsq = layer(x, return_jacobian=True)
    (h.sum() + jsq.sum()).backward()
    assert torch.isfinite(h).all() and torch.isfinite(jsq).all()
    assert torch.isfinite(x.grad).all() and torch.isfinite(layer.linear.weight.grad).all()


def test_relu_penalty_has_no_backward_through_the_mask():
    layer = _layer("relu", {}, 3, 4)
    x = torch.randn(5, 3, dtype=DT, requires_grad=True)
    _, jsq = layer(x, return_jacobian=True)
    (gx,) = torch.autograd.grad(jsq.sum(), x, allow_unused=True)
    assert gx is None  # σ'' = 0: the penalty reaches W through the row norms only
    (gw,) = torch.autograd.grad(layer(x, return_jacobian=True)[1].sum(), layer.linear.weight)
    mask = (layer.linear(x) > 0).to(DT)  # d/dW Σ_n Σ_i m_ni ||W_i||² = 2 (Σ_n m_ni) W_i
    torch.testing.assert_close(gw, 2 * mask.sum(0).unsqueeze(1) * layer.linear.weight)


@pytest.mark.parametrize("name, opts", [("relu", {}), ("silu", {}), ("poly", dict(degree=3)),
                                        ("poly", dict(degree=4, range_control="none"))])
def test_gradcheck_and_gradgradcheck_of_the_layer_term(name, opts):
    layer = _layer(name, opts, 3, 4, bias=True)
    with torch.no_grad():  # some pre-activations outside [-R, R]
        layer.linear.weight.mul_(3.0)
    params = {k: v.detach().clone().requires_grad_(True) for k, v in layer.named_parameters()}
    x = torch.randn(3, 3, dtype=DT, requires_grad=True)

    def f(x, *ps):
        return torch.func.functional_call(layer, dict(zip(params, ps)), (x,), {"return_jacobian": True})

    assert torch.autograd.gradcheck(f, (x, *params.values()))
    assert torch.autograd.gradgradcheck(f, (x, *params.values()))


def test_feature_mismatch_raises_value_error():
    layer = _layer("relu", {}, 3, 4)
    for kw in ({}, {"return_jacobian": True}):
        with pytest.raises(ValueError, match=r"expected 3 input features.*got shape \(2, 5\)"):
            layer(torch.randn(2, 5, dtype=DT), **kw)


@pytest.mark.parametrize("build, fragment", [
    (lambda: HiddenLayer(3, 4, make_activation("poly", 5)), "activation has 5 features, expected out_features=4"),
    (lambda: HiddenLayer(3, 4, torch.nn.ReLU()), "must provide value_and_derivative.*got ReLU"),
    (lambda: HiddenLayer(0, 4, make_activation("relu")), "expected in_features to be a positive integer, got 0"),
    (lambda: HiddenLayer(3, True, make_activation("relu")), "expected out_features to be a positive integer, got True"),
])
def test_bad_construction_raises_value_error(build, fragment):
    with pytest.raises(ValueError, match=fragment):
        build()


def test_state_dict_keys_are_plain_linear_and_activation():
    layer = _layer("poly", dict(degree=3), 3, 4)
    assert set(layer.state_dict()) == {"linear.weight", "linear.bias", "activation.coefficients"}
    assert (layer.in_features, layer.out_features) == (3, 4)
    assert layer.max_slope().shape == (4,)


@settings(max_examples=20, deadline=None)
@given(
    n_in=st.integers(1, 6), n_out=st.integers(1, 6), batch=st.integers(1, 5),
    which=st.sampled_from(range(len(ACTIVATIONS))), scale=st.floats(0.1, 10.0),
)
def test_property_random_shapes(n_in, n_out, batch, which, scale):
    name, opts = ACTIVATIONS[which]
    layer = _layer(name, opts, n_in, n_out)
    x = scale * torch.randn(batch, n_in, dtype=DT)
    _, analytic = layer(x, return_jacobian=True)
    torch.testing.assert_close(analytic, _reference_jacobian_sq(layer, x), rtol=1e-6, atol=1e-10)


def test_spectral_norm_weight_is_computed_once_per_forward_with_jacobian():
    """A parametrized weight (spectral norm: a power iteration per training forward) is computed
    once by ``return_jacobian=True`` as by a plain forward, so the DREG term and the output come
    from the same weight and the iteration count is the parametrization's own."""
    from torch.nn.utils.parametrizations import spectral_norm

    import chainzrule as cz
    from chainzrule.layers import HiddenLayer

    torch.manual_seed(0)
    layer = HiddenLayer(5, 4, cz.PolynomialActivation(4)).double()
    spectral_norm(layer.linear)
    layer.train()
    calls = []
    layer.linear.parametrizations.weight[0].register_forward_hook(lambda *_: calls.append(1))
    x = torch.randn(3, 5, dtype=torch.float64)
    layer(x)
    assert len(calls) == 1
    h, jsq = layer(x, return_jacobian=True)
    assert len(calls) == 2
    layer.eval()  # the weight of that forward (eval: no further iteration)
    w, b = layer.linear.weight, layer.linear.bias
    z = x @ w.t() + b
    assert torch.allclose(h, layer.activation(z), rtol=0, atol=1e-14)
    ref = (layer.activation.derivative(z) ** 2 * (w * w).sum(1)).sum(1)
    assert torch.allclose(jsq, ref, rtol=1e-12, atol=0)
