"""The fused hot path: hand-written autograd.Functions must equal the plain-op reference exactly,
be differentiable twice (gradcheck + gradgradcheck, float64), and stay finite for huge inputs."""

import pytest
import torch

from chainzrule import ChainzRuleMLP, HiddenLayer, MLP, PolynomialActivation, dreg_penalty, make_activation
from chainzrule.layers import _LinearRowNormSq, _RowNormSq
from chainzrule.poly import _poly_parts, _value_coefficient_grad

DT = torch.float64


def _poly(F, degree=3, rc="linear", scale=0.3):
    act = PolynomialActivation(F, degree=degree, range_control=rc, dtype=DT)
    with torch.no_grad():
        act.coefficients.add_(scale * torch.randn_like(act.coefficients))
    return act


def _inputs(kind, shape):
    """'inside': every |z| < R (the no-clamp branch); 'outside': many points beyond ±R."""
    z = torch.randn(*shape, dtype=DT)
    return 2.9 * torch.tanh(z) if kind == "inside" else 3.0 * z


def _reference(act, z, rn):
    """σ and J from the plain ops of value_and_derivative (autograd-generated derivatives)."""
    v, d = act.value_and_derivative(z)
    return v, (d * d) @ rn


def _uses_fused(t, depth=3):
    """Whether the fused Function appears within ``depth`` nodes of ``t``'s autograd graph."""
    frontier = [t.grad_fn]
    for _ in range(depth):
        if any(fn is not None and "_PolyFn" in type(fn).__name__ for fn in frontier):
            return True
        frontier = [nxt for fn in frontier if fn is not None for nxt, _ in fn.next_functions]
    return False


@pytest.mark.parametrize("rc", ["linear", "none"])
@pytest.mark.parametrize("degree", [1, 2, 3, 5])
@pytest.mark.parametrize("where", ["inside", "outside"])
def test_fused_values_and_gradients_equal_reference(rc, degree, where):
    act = _poly(5, degree, rc)
    z = _inputs(where, (7, 5)).requires_grad_(True)
    rn = torch.rand(5, dtype=DT).requires_grad_(True)
    h, J = act.value_and_jacobian_sq(z, rn)
    assert _uses_fused(h)
    hr, Jr = _reference(act, z, rn)
    torch.testing.assert_close(h, hr, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(J, Jr, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(act(z), hr, rtol=1e-12, atol=1e-12)
    gh, gJ = torch.randn_like(h), torch.randn_like(J)
    params = (z, act.coefficients, rn)
    fused = torch.autograd.grad((h, J), params, (gh, gJ))
    ref = torch.autograd.grad((hr, Jr), params, (gh, gJ))
    for a, b in zip(fused, ref):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("where", ["inside", "outside"])
def test_only_one_output_used(where):
    act = _poly(4, 3)
    z = _inputs(where, (6, 4)).requires_grad_(True)
    rn = torch.rand(4, dtype=DT).requires_grad_(True)
    h, J = act.value_and_jacobian_sq(z, rn)
    hr, Jr = _reference(act, z, rn)
    for out, ref in ((h.sum(), hr.sum()), (J.sum(), Jr.sum())):
        g = torch.autograd.grad(out, (z, act.coefficients, rn), retain_graph=True, allow_unused=True)
        gr = torch.autograd.grad(ref, (z, act.coefficients, rn), retain_graph=True, allow_unused=True)
        for a, b in zip(g, gr):
            if b is None:  # σ does not depend on rn
                assert a is None or torch.count_nonzero(a) == 0
            else:
                torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("rc", ["linear", "none"])
@pytest.mark.parametrize("degree", [1, 2, 3, 4])
@pytest.mark.parametrize("where", ["inside", "outside"])
def test_gradcheck_and_gradgradcheck_fused(rc, degree, where):
    act = _poly(3, degree, rc)
    z = _inputs(where, (4, 3)).requires_grad_(True)
    a = act.coefficients.detach().clone().requires_grad_(True)
    rn = torch.rand(3, dtype=DT).requires_grad_(True)

    def f(z, a, rn):
        return _call(act, a, z, rn)

    assert _uses_fused(f(z, a, rn)[1])
    assert torch.autograd.gradcheck(f, (z, a, rn))
    assert torch.autograd.gradgradcheck(f, (z, a, rn))

    def value_only(z, a):
        return torch.func.functional_call(act, {"coefficients": a}, (z,))

    assert torch.autograd.gradcheck(value_only, (z, a))
    assert torch.autograd.gradgradcheck(value_only, (z, a))


def _call(act, a, z, rn):
    """value_and_jacobian_sq with the coefficients swapped for ``a`` (a differentiable input)."""
    saved = act.coefficients
    try:
        del act.coefficients
        act.coefficients = a
        return act.value_and_jacobian_sq(z, rn)
    finally:
        del act.coefficients
        act.coefficients = saved


def test_fast_and_create_graph_backward_agree():
    act = _poly(6, 3)
    z = _inputs("outside", (9, 6)).requires_grad_(True)
    rn = torch.rand(6, dtype=DT).requires_grad_(True)
    h, J = act.value_and_jacobian_sq(z, rn)
    gh, gJ = torch.randn_like(h), torch.randn_like(J)
    params = (z, act.coefficients, rn)
    fast = torch.autograd.grad((h, J), params, (gh, gJ), retain_graph=True)
    slow = torch.autograd.grad((h, J), params, (gh, gJ), create_graph=True)
    for a, b in zip(fast, slow):
        torch.testing.assert_close(a, b.detach(), rtol=1e-12, atol=1e-12)
        assert b.requires_grad


@pytest.mark.parametrize("degree", [1, 2, 3, 5])
@pytest.mark.parametrize("clamp", [False, True])
def test_buffered_no_grad_parts_equal_out_of_place_parts(degree, clamp):
    """The forward/backward fill buffers in no-grad mode; with grad on they use plain ops."""
    act = _poly(5, degree)
    z, gh = 3 * torch.randn(8, 5, dtype=DT), torch.randn(8, 5, dtype=DT)
    rn = torch.rand(5, dtype=DT)
    a = act.coefficients.detach()
    with torch.no_grad():
        fast = _poly_parts(z, a, rn, 3.0, clamp)
        c, e = fast[0], fast[1]
        assert clamp == (e is not None) and (not clamp or bool((e != 0).any()))
        gfast = _value_coefficient_grad(gh, c, e, degree, 3.0)
    with torch.enable_grad():
        slow = _poly_parts(z, a, rn, 3.0, clamp)
        gslow = _value_coefficient_grad(gh, c, e, degree, 3.0)
    for x, y in zip(fast, slow):
        assert (x is None) == (y is None)
        if x is not None:
            torch.testing.assert_close(x, y, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(gfast, gslow, rtol=1e-12, atol=1e-12)


def test_dreg_penalty_gradcheck_and_gradgradcheck_through_fused_path():
    torch.manual_seed(3)
    net = ChainzRuleMLP(3, [4, 5], 2, degree=3).double()
    with torch.no_grad():  # some pre-activations outside [-R, R]: both branches are exercised
        net.hidden_layers[0].linear.weight.mul_(6.0)
    x = torch.randn(3, 3, dtype=DT, requires_grad=True)
    params = {k: v.detach().clone().requires_grad_(True) for k, v in net.named_parameters() if "head" not in k}
    names = list(params)

    def f(x, *ps):
        torch.func.functional_call(net, dict(zip(names, ps)), (x,), strict=False)
        return dreg_penalty(net)

    f(x, *params.values())
    assert all(_uses_fused(layer.jacobian_sq) for layer in net.hidden_layers)
    outside = (net.hidden_layers[0].linear(x).abs() > 3).any()
    assert outside, "the clamped branch must be exercised"
    assert torch.autograd.gradcheck(f, (x, *params.values()))
    assert torch.autograd.gradgradcheck(f, (x, *params.values()))


def test_relu_dreg_penalty_gradcheck():
    net = MLP(3, [4, 5], 2, track_jacobian=True).double()
    x = torch.randn(3, 3, dtype=DT, requires_grad=True)
    params = {k: v.detach().clone().requires_grad_(True) for k, v in net.named_parameters() if "head" not in k}
    names = list(params)

    def f(x, *ps):
        torch.func.functional_call(net, dict(zip(names, ps)), (x,), strict=False)
        return dreg_penalty(net)

    assert torch.autograd.gradcheck(f, (x, *params.values()))
    assert torch.autograd.gradgradcheck(f, (x, *params.values()))


def test_row_norm_sq_function():
    w = torch.randn(4, 6, dtype=DT, requires_grad=True)
    torch.testing.assert_close(_RowNormSq.apply(w), (w * w).sum(1))
    assert torch.autograd.gradcheck(_RowNormSq.apply, (w,))
    assert torch.autograd.gradgradcheck(_RowNormSq.apply, (w,))


@pytest.mark.parametrize("name", ["relu", "gelu", "silu", "tanh"])
def test_standard_value_and_jacobian_sq_equals_reference(name):
    act = make_activation(name)
    z = 3 * torch.randn(6, 5, dtype=DT)
    rn = torch.rand(5, dtype=DT)
    h, J = act.value_and_jacobian_sq(z, rn)
    v, d = act.value_and_derivative(z)
    torch.testing.assert_close(h, v)
    torch.testing.assert_close(J, (d * d) @ rn)


def test_relu_dreg_has_no_backward_through_the_mask():
    act = make_activation("relu")
    z = torch.randn(4, 3, requires_grad=True)
    rn = torch.rand(3, requires_grad=True)
    _, J = act.value_and_jacobian_sq(z, rn)
    (gz,) = torch.autograd.grad(J.sum(), z, allow_unused=True)
    assert gz is None  # σ'' = 0: the penalty reaches W through the row norms only


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_huge_inputs_finite_in_fused_path(dtype):
    act = PolynomialActivation(4, degree=5, dtype=dtype)
    with torch.no_grad():
        act.coefficients.add_(0.3 * torch.randn_like(act.coefficients))
    z = torch.tensor([[1e4, -1e4, 3e3, -7.5], [2.0, -1.0, 0.5, 1e4]], dtype=dtype, requires_grad=True)
    rn = torch.rand(4, dtype=dtype, requires_grad=True)
    h, J = act.value_and_jacobian_sq(z, rn)
    assert _uses_fused(h)
    (h.sum() + J.sum()).backward()
    for t in (h, J, z.grad, act.coefficients.grad, rn.grad):
        assert torch.isfinite(t).all()


def test_layer_shapes_extra_batch_dims_and_unbatched():
    layer = HiddenLayer(3, 4, make_activation("poly", 4), track_jacobian=True).double()
    x = torch.randn(2, 5, 3, dtype=DT)
    y = layer(x)
    assert y.shape == (2, 5, 4) and layer.jacobian_sq.shape == (2, 5)
    y1 = layer(x[0, 0])
    assert y1.shape == (4,) and layer.jacobian_sq.shape == ()
    torch.testing.assert_close(y1, y[0, 0])


def test_tracking_off_returns_only_the_value():
    act = _poly(4, 3)
    z = torch.randn(3, 4, dtype=DT, requires_grad=True)
    h = act(z)
    assert isinstance(h, torch.Tensor) and _uses_fused(h)


def test_torch_func_transforms_fall_back_to_plain_ops():
    act = _poly(3, 3)
    z = _inputs("outside", (5, 3))
    auto = torch.func.vmap(torch.func.grad(lambda t: act(t.unsqueeze(0)).sum()))(z)
    torch.testing.assert_close(auto, act.derivative(z))
    layer = HiddenLayer(3, 3, act, track_jacobian=True).double()
    out = torch.func.vmap(lambda xi: layer(xi.unsqueeze(0)).squeeze(0))(z)  # tracking under vmap
    assert out.shape == (5, 3)


def test_tanh_range_control_keeps_plain_path():
    act = _poly(3, 3, "tanh")
    z = torch.randn(4, 3, dtype=DT, requires_grad=True)
    assert not _uses_fused(act(z))


@pytest.mark.parametrize("bias", [True, False])
def test_linear_row_norm_function_gradcheck(bias):
    x = torch.randn(5, 3, dtype=DT, requires_grad=True)
    w = torch.randn(4, 3, dtype=DT, requires_grad=True)
    b = torch.randn(4, dtype=DT, requires_grad=True) if bias else None
    inputs = (x, w, b) if bias else (x, w)

    def f(x, w, b=None):
        return _LinearRowNormSq.apply(x, w, b)

    z, rn = f(*inputs)
    torch.testing.assert_close(z, torch.nn.functional.linear(x, w, b))
    torch.testing.assert_close(rn, (w * w).sum(1))
    assert torch.autograd.gradcheck(f, inputs)
    assert torch.autograd.gradgradcheck(f, inputs)


def _layer_grads(layer, x):
    h = layer(x)
    loss = (h * torch.linspace(-1, 1, h.shape[-1], dtype=h.dtype)).sum() + 0.7 * layer.jacobian_sq.sum()
    params = [x] + list(layer.parameters())
    return [g.clone() for g in torch.autograd.grad(loss, params)]


@pytest.mark.parametrize("name", ["relu", "poly", "gelu"])
def test_layer_with_hooks_or_plain_give_the_same_gradients(name):
    """A forward hook (pruning, custom hooks) disables the fused linear: same numbers either way."""
    act = make_activation(name, 5) if name == "poly" else make_activation(name)
    layer = HiddenLayer(4, 5, act, track_jacobian=True).double()
    x = 2 * torch.randn(6, 4, dtype=DT, requires_grad=True)
    fused = _layer_grads(layer, x)
    handle = layer.linear.register_forward_hook(lambda m, i, o: None)
    try:
        plain = _layer_grads(layer, x)
    finally:
        handle.remove()
    for a, b in zip(fused, plain):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_pruning_is_seen_by_dreg():
    layer = HiddenLayer(4, 5, make_activation("relu"), track_jacobian=True).double()
    from torch.nn.utils import prune

    prune.l1_unstructured(layer.linear, "weight", amount=0.5)
    with torch.no_grad():  # the pre-hook recomputes `weight` at every forward; a stale one differs
        layer.linear.weight_orig.mul_(2.0)
    x = torch.randn(3, 4, dtype=DT)
    layer(x)
    w = layer.linear.weight_orig * layer.linear.weight_mask
    mask = (torch.nn.functional.linear(x, w, layer.linear.bias) > 0).to(DT)
    torch.testing.assert_close(layer.jacobian_sq, mask @ (w * w).sum(1))


def test_empty_batch():
    layer = HiddenLayer(3, 4, make_activation("poly", 4), track_jacobian=True).double()
    x = torch.randn(0, 3, dtype=DT, requires_grad=True)
    y = layer(x)
    assert y.shape == (0, 4) and layer.jacobian_sq.shape == (0,)
    (y.sum() + layer.jacobian_sq.sum()).backward()
    assert layer.activation.coefficients.grad.abs().sum() == 0


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_boundary_points_follow_clamp_convention(dtype):
    """At |z| = R exactly the fused σ'' (inside) matches autograd through clamp (inclusive)."""
    act = PolynomialActivation(4, degree=3, dtype=dtype)
    with torch.no_grad():
        act.coefficients.add_(0.3 * torch.randn_like(act.coefficients))
    z = torch.tensor([[3.0, -3.0, 3.5, 1.0], [-3.5, 3.0, 0.0, -3.0]], dtype=dtype, requires_grad=True)
    rn = torch.rand(4, dtype=dtype)
    _, J = act.value_and_jacobian_sq(z, rn)
    _, Jr = _reference(act, z, rn)
    (g,) = torch.autograd.grad(J.sum(), z)
    (gr,) = torch.autograd.grad(Jr.sum(), z)
    torch.testing.assert_close(g, gr)
    assert (g[0, :2] != 0).all() and g[0, 2] == 0  # inside at the bound, flat outside
