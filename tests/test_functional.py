"""chainzrule.functional: the pure ops of the Polynomial Engine and of DREG.

The fused kernel (``poly_activation_and_jacobian_sq``, a hand-written autograd.Function for
"linear" and "none") must equal the plain-op reference (``poly_activation_and_slope``) in values
and in every gradient, be differentiable twice (gradcheck + gradgradcheck in float64), work under
``torch.func`` (vmap, grad, jacrev), run without a host sync (meta tensors) and stay finite for huge
inputs. The parametrization (``basis_matrix``), the certified slope bound (``poly_max_slope``) and
the whole-line initial fit (``fit_coefficients``) are held against numpy and dense grids.
"""

import math
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings, strategies as st

from chainzrule import functional as CF

DT = torch.float64
R = 3.0
DEGREES = [1, 2, 3, 4, 5]
FUSED_RC = ["linear", "none"]  # the range controls that run the fused kernel


def _coeffs(F_, degree, basis="legendre", scale=0.3, bound=R, init="gelu", seed=None):
    """Power coefficients ``a`` [D+1, F] of a perturbed fit (every coefficient matters)."""
    g = torch.Generator().manual_seed(seed) if seed is not None else None
    theta = CF.fit_coefficients(init, degree, bound, basis).unsqueeze(1).expand(degree + 1, F_)
    theta = theta + scale * torch.randn(degree + 1, F_, dtype=DT, generator=g)
    return CF.basis_matrix(basis, degree, bound) @ theta


def _inputs(where, shape, rc="linear"):
    """'inside': every |z| < R (no clamp); 'outside': many points beyond ±R.

    For "none" the scale stays moderate: finite differences of a degree-5 polynomial lose their
    precision at |z|^5 ~ 1e7.
    """
    z = torch.randn(*shape, dtype=DT)
    if where == "inside":
        return 0.97 * R * torch.tanh(z)
    return (2.0 if rc == "none" else 3.0) * z


def _reference(z, a, rn, rc):
    """σ and J from plain ops (autograd-generated derivatives)."""
    h, slope = CF.poly_activation_and_slope(z, a, R, rc)
    return h, CF.layer_jacobian_sq(slope, rn)


def _uses_fused(t, depth=4, kernel="PolyJacobianSqFn"):
    """Whether the fused Function ``kernel`` appears within ``depth`` nodes of ``t``'s autograd graph."""
    frontier = [t.grad_fn]
    for _ in range(depth):
        if any(fn is not None and kernel in type(fn).__name__ for fn in frontier):
            return True
        frontier = [nxt for fn in frontier if fn is not None for nxt, _ in fn.next_functions]
    return False


# --------------------------------------------------------------------------------------------
# parametrization
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("basis", CF.BASES)
@pytest.mark.parametrize("degree", DEGREES)
def test_basis_matrix_matches_numpy_basis_functions(basis, degree):
    """p(u) = Σ θ_k B_k(u/R) evaluated by numpy equals Horner on a = M θ."""
    theta = torch.randn(degree + 1, dtype=DT)
    bound = 2.5
    u = np.linspace(-2 * bound, 2 * bound, 41)
    th = theta.numpy()
    expected = {
        "legendre": lambda: np.polynomial.legendre.legval(u / bound, th),
        "chebyshev": lambda: np.polynomial.chebyshev.chebval(u / bound, th),
        "monomial": lambda: np.polynomial.polynomial.polyval(u / bound, th),
        "power": lambda: np.polynomial.polynomial.polyval(u, th),
    }[basis]()
    a = CF.basis_matrix(basis, degree, bound) @ theta  # [D+1]
    p, _ = CF.horner(a.unsqueeze(1), torch.from_numpy(u).unsqueeze(1))
    np.testing.assert_allclose(p[:, 0].numpy(), expected, rtol=1e-12, atol=1e-12)


def test_basis_matrix_known_values_dtype_device_and_errors():
    torch.testing.assert_close(
        CF.basis_matrix("legendre", 2, 1.0),
        torch.tensor([[1.0, 0.0, -0.5], [0.0, 1.0, 0.0], [0.0, 0.0, 1.5]], dtype=DT),
    )
    torch.testing.assert_close(  # T2 = 2t² - 1 with t = u/2: 0.5 u² - 1
        CF.basis_matrix("chebyshev", 2, 2.0),
        torch.tensor([[1.0, 0.0, -1.0], [0.0, 0.5, 0.0], [0.0, 0.0, 0.5]], dtype=DT),
    )
    torch.testing.assert_close(CF.basis_matrix("monomial", 2, 2.0), torch.diag(torch.tensor([1.0, 0.5, 0.25], dtype=DT)))
    assert torch.equal(CF.basis_matrix("power", 3, 7.0), torch.eye(4, dtype=DT))
    assert CF.basis_matrix("legendre", 3, 3.0, dtype=torch.float32).dtype == torch.float32
    with pytest.raises(ValueError, match=r"unknown basis 'hermite': expected one of legendre, chebyshev, monomial, power"):
        CF.basis_matrix("hermite", 3, 3.0)


def test_orthogonal_bases_are_well_conditioned_on_the_interval():
    """The reason for the basis (guide §2): Gram matrix of the cubic basis on [-3, 3]."""
    u = torch.linspace(-R, R, 20001, dtype=DT)
    cond = {}
    for basis in CF.BASES:
        V = (u.unsqueeze(1) ** torch.arange(4)) @ CF.basis_matrix(basis, 3, R)  # [P, 4]
        cond[basis] = float(torch.linalg.cond(V.T @ V / len(u)))
    assert cond["legendre"] < 8 and cond["chebyshev"] < 8  # measured 7.0 and 5.9
    assert cond["power"] > 200  # measured ~249
    assert cond["legendre"] < cond["monomial"] < cond["power"]


def test_horner_matches_numpy_polyval():
    coef = torch.randn(5, 3, dtype=DT)  # degree 4, 3 features
    u = torch.randn(7, 3, dtype=DT)
    p, dp = CF.horner(coef, u)
    for i in range(3):
        c = coef[:, i].numpy()
        np.testing.assert_allclose(p[:, i].numpy(), np.polynomial.polynomial.polyval(u[:, i].numpy(), c), rtol=1e-12)
        dc = np.polynomial.polynomial.polyder(c)
        np.testing.assert_allclose(dp[:, i].numpy(), np.polynomial.polynomial.polyval(u[:, i].numpy(), dc), rtol=1e-12)


def test_row_norms_and_layer_jacobian_sq_known_values():
    w = torch.tensor([[3.0, 4.0], [1.0, 0.0], [0.0, -2.0]])
    assert torch.equal(CF.row_norms_sq(w), torch.tensor([25.0, 1.0, 4.0]))
    slope = torch.tensor([[[1.0, 2.0, 0.5]], [[0.0, 1.0, 1.0]]])  # [2, 1, 3]
    out = CF.layer_jacobian_sq(slope, torch.tensor([25.0, 1.0, 4.0]))
    assert out.shape == (2, 1)
    torch.testing.assert_close(out, torch.tensor([[25.0 + 4.0 + 1.0], [0.0 + 1.0 + 4.0]]))


# --------------------------------------------------------------------------------------------
# plain ops: σ and σ' per range control
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("rc", CF.RANGE_CONTROLS)
@pytest.mark.parametrize("degree", DEGREES)
def test_slope_is_the_exact_derivative_of_the_value(rc, degree):
    a = _coeffs(4, degree)
    z = (4.0 * torch.randn(9, 4, dtype=DT)).requires_grad_(True)
    h, slope = CF.poly_activation_and_slope(z, a, R, rc)
    (g,) = torch.autograd.grad(h.sum(), z)
    torch.testing.assert_close(slope, g, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(CF.poly_activation(z, a, R, rc), h)


def test_range_controls_closed_forms():
    a = _coeffs(3, 3)
    z = torch.tensor([[-10.0, 0.5, 7.0]], dtype=DT)
    c = z.clamp(-R, R)
    p, dp = CF.horner(a, c)
    torch.testing.assert_close(CF.poly_activation(z, a, R, "linear"), p + dp * (z - c))
    s = torch.tanh(z / R)
    torch.testing.assert_close(CF.poly_activation(z, a, R, "tanh"), CF.horner(a, R * s)[0])
    torch.testing.assert_close(CF.poly_activation(z, a, R, "none"), CF.horner(a, z)[0])


def test_linear_continuation_matches_value_and_slope_at_the_bound():
    a = _coeffs(3, 3)
    for edge in (R, -R):
        inside = torch.full((1, 3), edge * (1 - 1e-10), dtype=DT)
        outside = torch.full((1, 3), edge * (1 + 1e-10), dtype=DT)
        hi, si = CF.poly_activation_and_slope(inside, a, R)
        ho, so = CF.poly_activation_and_slope(outside, a, R)
        torch.testing.assert_close(hi, ho, atol=1e-8, rtol=0)
        torch.testing.assert_close(si, so, atol=1e-8, rtol=0)


@pytest.mark.parametrize("fn", [
    lambda: CF.poly_activation_and_slope(torch.zeros(2, 3), torch.zeros(4, 3), R, "clip"),
    lambda: CF.poly_activation_and_jacobian_sq(torch.zeros(2, 3), torch.zeros(4, 3), torch.ones(3), R, "clip"),
    lambda: CF.poly_max_slope(torch.zeros(4, 3), R, "clip"),
    lambda: CF.fit_coefficients("gelu", 3, R, "legendre", "clip"),
])
def test_unknown_range_control_names_expected_and_given(fn):
    with pytest.raises(ValueError, match=r"unknown range_control 'clip': expected one of linear, tanh, none"):
        fn()


# --------------------------------------------------------------------------------------------
# the fused kernel against the plain-op reference
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("rc", FUSED_RC)
@pytest.mark.parametrize("degree", DEGREES)
@pytest.mark.parametrize("where", ["inside", "outside"])
def test_fused_values_and_gradients_equal_reference(rc, degree, where):
    a = _coeffs(5, degree).requires_grad_(True)
    z = _inputs(where, (7, 5), rc).requires_grad_(True)
    rn = torch.rand(5, dtype=DT).requires_grad_(True)
    h, J = CF.poly_activation_and_jacobian_sq(z, a, rn, R, rc)
    assert _uses_fused(h) and _uses_fused(J)
    hr, Jr = _reference(z, a, rn, rc)
    torch.testing.assert_close(h, hr, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(J, Jr, rtol=1e-12, atol=1e-12)
    gh, gJ = torch.randn_like(h), torch.randn_like(J)
    fused = torch.autograd.grad((h, J), (z, a, rn), (gh, gJ))
    ref = torch.autograd.grad((hr, Jr), (z, a, rn), (gh, gJ))
    for name, g, r in zip(("z", "a", "rn"), fused, ref):
        torch.testing.assert_close(g, r, rtol=1e-10, atol=1e-12, msg=lambda m: f"d/d{name}: {m}")


@pytest.mark.parametrize("where", ["inside", "outside"])
def test_fused_with_only_one_output_used(where):
    a = _coeffs(4, 3).requires_grad_(True)
    z = _inputs(where, (6, 4)).requires_grad_(True)
    rn = torch.rand(4, dtype=DT).requires_grad_(True)
    h, J = CF.poly_activation_and_jacobian_sq(z, a, rn, R)
    hr, Jr = _reference(z, a, rn, "linear")
    for out, ref in ((h.sum(), hr.sum()), (J.sum(), Jr.sum())):
        g = torch.autograd.grad(out, (z, a, rn), retain_graph=True, allow_unused=True)
        gr = torch.autograd.grad(ref, (z, a, rn), retain_graph=True, allow_unused=True)
        for x, y in zip(g, gr):
            if y is None:  # σ does not depend on rn
                assert x is None or torch.count_nonzero(x) == 0
            else:
                torch.testing.assert_close(x, y, rtol=1e-10, atol=1e-12)


def test_tanh_range_control_runs_plain_ops():
    a = _coeffs(3, 3).requires_grad_(True)
    z = torch.randn(4, 3, dtype=DT, requires_grad=True)
    rn = torch.rand(3, dtype=DT)
    h, J = CF.poly_activation_and_jacobian_sq(z, a, rn, R, "tanh")
    assert not _uses_fused(h) and not _uses_fused(J)
    hr, Jr = _reference(z, a, rn, "tanh")
    torch.testing.assert_close(h, hr)
    torch.testing.assert_close(J, Jr)


@pytest.mark.parametrize("rc", CF.RANGE_CONTROLS)
@pytest.mark.parametrize("degree", DEGREES)
@pytest.mark.parametrize("where", ["inside", "outside"])
def test_gradcheck_and_gradgradcheck_wrt_z_a_rn(rc, degree, where):
    a = _coeffs(3, degree).requires_grad_(True)
    z = _inputs(where, (4, 3), rc).requires_grad_(True)
    rn = torch.rand(3, dtype=DT).requires_grad_(True)

    def f(z, a, rn):
        return CF.poly_activation_and_jacobian_sq(z, a, rn, R, rc)

    assert _uses_fused(f(z, a, rn)[1]) == (rc in FUSED_RC)
    assert torch.autograd.gradcheck(f, (z, a, rn))
    assert torch.autograd.gradgradcheck(f, (z, a, rn))


def test_fast_and_create_graph_backward_agree():
    a = _coeffs(6, 3).requires_grad_(True)
    z = _inputs("outside", (9, 6)).requires_grad_(True)
    rn = torch.rand(6, dtype=DT).requires_grad_(True)
    h, J = CF.poly_activation_and_jacobian_sq(z, a, rn, R)
    gh, gJ = torch.randn_like(h), torch.randn_like(J)
    fast = torch.autograd.grad((h, J), (z, a, rn), (gh, gJ), retain_graph=True)
    slow = torch.autograd.grad((h, J), (z, a, rn), (gh, gJ), create_graph=True)
    for x, y in zip(fast, slow):
        torch.testing.assert_close(x, y.detach(), rtol=1e-12, atol=1e-12)
        assert y.requires_grad  # the double-backward graph reaches the inputs


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_boundary_points_follow_the_clamp_convention(dtype):
    """At |z| = R exactly the fused σ'' (inside) matches autograd through clamp (inclusive)."""
    a = _coeffs(4, 3).to(dtype)
    z = torch.tensor([[3.0, -3.0, 3.5, 1.0], [-3.5, 3.0, 0.0, -3.0]], dtype=dtype, requires_grad=True)
    rn = torch.rand(4, dtype=dtype)
    _, J = CF.poly_activation_and_jacobian_sq(z, a, rn, R)
    _, Jr = _reference(z, a, rn, "linear")
    (g,) = torch.autograd.grad(J.sum(), z)
    (gr,) = torch.autograd.grad(Jr.sum(), z)
    torch.testing.assert_close(g, gr)
    assert (g[0, :2] != 0).all() and g[0, 2] == 0  # inside at the bound, flat outside


@pytest.mark.parametrize("rc", CF.RANGE_CONTROLS)
def test_shapes_extra_batch_dims_unbatched_and_empty(rc):
    a = _coeffs(4, 3).requires_grad_(True)
    rn = torch.rand(4, dtype=DT)
    z = 3 * torch.randn(2, 5, 4, dtype=DT)
    h, J = CF.poly_activation_and_jacobian_sq(z, a, rn, R, rc)
    assert h.shape == (2, 5, 4) and J.shape == (2, 5)
    hr, Jr = _reference(z, a, rn, rc)
    torch.testing.assert_close(h, hr, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(J, Jr, rtol=1e-12, atol=1e-12)
    h1, J1 = CF.poly_activation_and_jacobian_sq(z[1, 2], a, rn, R, rc)  # unbatched [F]
    assert h1.shape == (4,) and J1.shape == ()
    torch.testing.assert_close(h1, h[1, 2])
    torch.testing.assert_close(J1, J[1, 2])
    z0 = torch.zeros(0, 4, dtype=DT, requires_grad=True)
    h0, J0 = CF.poly_activation_and_jacobian_sq(z0, a, rn, R, rc)
    assert h0.shape == (0, 4) and J0.shape == (0,)
    (h0.sum() + J0.sum()).backward()
    assert a.grad is not None and a.grad.abs().sum() == 0


@pytest.mark.parametrize("rc", FUSED_RC)
def test_fused_kernel_needs_no_host_sync(rc):
    """Forward, backward and double backward on meta tensors: nothing reads a value on the host."""
    z = torch.randn(5, 3, device="meta", requires_grad=True)
    a = torch.randn(4, 3, device="meta", requires_grad=True)
    rn = torch.rand(3, device="meta", requires_grad=True)
    h, J = CF.poly_activation_and_jacobian_sq(z, a, rn, R, rc)
    assert h.shape == (5, 3) and J.shape == (5,) and _uses_fused(h)
    grads = torch.autograd.grad(h.sum() + J.sum(), (z, a, rn), create_graph=True)
    assert [g.shape for g in grads] == [z.shape, a.shape, rn.shape]
    torch.autograd.grad(sum(g.sum() for g in grads), (z, a, rn))


# --------------------------------------------------------------------------------------------
# the fused value-only kernel (the forward without DREG) and the fused linear + row norms
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("rc", FUSED_RC)
@pytest.mark.parametrize("degree", DEGREES)
@pytest.mark.parametrize("where", ["inside", "outside"])
def test_fused_value_kernel_equals_reference_and_passes_gradgradcheck(rc, degree, where):
    a = _coeffs(3, degree).requires_grad_(True)
    z = _inputs(where, (5, 3), rc).requires_grad_(True)
    h = CF.poly_activation(z, a, R, rc)
    assert _uses_fused(h, kernel="PolyActivationFn")
    hr = CF.poly_activation_and_slope(z, a, R, rc)[0]
    torch.testing.assert_close(h, hr, rtol=1e-12, atol=1e-12)
    gh = torch.randn_like(h)
    for g, r in zip(torch.autograd.grad(h, (z, a), gh), torch.autograd.grad(hr, (z, a), gh)):
        torch.testing.assert_close(g, r, rtol=1e-10, atol=1e-12)
    f = lambda z, a: CF.poly_activation(z, a, R, rc)  # noqa: E731
    assert torch.autograd.gradcheck(f, (z, a))
    assert torch.autograd.gradgradcheck(f, (z, a))


@pytest.mark.parametrize("rc", FUSED_RC)
def test_fused_value_kernel_under_vmap_grad_and_meta(rc):
    a = _coeffs(3, 4)
    z = _inputs("outside", (6, 3), rc)
    hv = torch.func.vmap(lambda zi: CF.poly_activation(zi, a, R, rc))(z)
    torch.testing.assert_close(hv, CF.poly_activation_and_slope(z, a, R, rc)[0], rtol=1e-12, atol=1e-12)
    gz = torch.func.vmap(torch.func.grad(lambda zi: CF.poly_activation(zi, a, R, rc).sum()))(z)
    torch.testing.assert_close(gz, CF.poly_activation_and_slope(z, a, R, rc)[1], rtol=1e-12, atol=1e-12)
    zm = torch.randn(5, 3, device="meta", requires_grad=True)
    am = torch.randn(5, 3, device="meta", requires_grad=True)
    hm = CF.poly_activation(zm, am, R, rc)  # no host sync: runs on meta tensors
    grads = torch.autograd.grad(hm.sum(), (zm, am), create_graph=True)
    assert [g.shape for g in grads] == [zm.shape, am.shape]


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("used", ["both", "z", "rn"])
def test_fused_linear_and_row_norms_equal_plain_ops_and_pass_gradgradcheck(bias, used):
    x = torch.randn(5, 3, dtype=DT, requires_grad=True)
    w = torch.randn(4, 3, dtype=DT, requires_grad=True)
    b = torch.randn(4, dtype=DT, requires_grad=True) if bias else None
    inputs = (x, w, b) if bias else (x, w)

    def f(x, w, b=None):
        z, rn = CF.linear_and_row_norms_sq(x, w, b)
        return {"both": (z, rn), "z": z, "rn": rn}[used]

    z, rn = CF.linear_and_row_norms_sq(x, w, b)
    assert _uses_fused(z, kernel="LinearRowNormSqFn")
    torch.testing.assert_close(z, F.linear(x, w, b), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(rn, CF.row_norms_sq(w), rtol=1e-12, atol=1e-12)
    gz, gr = torch.randn_like(z), torch.randn_like(rn)
    outs, ref_outs, grads_out = {"both": ((z, rn), (F.linear(x, w, b), CF.row_norms_sq(w)), (gz, gr)),
                                 "z": ((z,), (F.linear(x, w, b),), (gz,)),
                                 "rn": ((rn,), (CF.row_norms_sq(w),), (gr,))}[used]
    got = torch.autograd.grad(outs, inputs, grads_out, allow_unused=True)
    ref = torch.autograd.grad(ref_outs, inputs, grads_out, allow_unused=True)
    for g, r in zip(got, ref):
        if r is None:
            assert g is None or torch.count_nonzero(g) == 0
        else:
            torch.testing.assert_close(g, r, rtol=1e-12, atol=1e-12)
    assert torch.autograd.gradcheck(f, inputs)
    assert torch.autograd.gradgradcheck(f, inputs)


def test_fused_linear_shapes_vmap_and_autocast():
    w = torch.randn(4, 3, dtype=DT)
    b = torch.randn(4, dtype=DT)
    x = torch.randn(2, 5, 3, dtype=DT)
    z, rn = CF.linear_and_row_norms_sq(x, w, b)
    assert z.shape == (2, 5, 4) and rn.shape == (4,)
    torch.testing.assert_close(z, F.linear(x, w, b))
    z1, _ = CF.linear_and_row_norms_sq(x[0, 0], w, b)  # unbatched
    torch.testing.assert_close(z1, z[0, 0])
    zv = torch.func.vmap(lambda xi: CF.linear_and_row_norms_sq(xi, w, b)[0])(x[0])
    torch.testing.assert_close(zv, z[0])
    gw = torch.func.vmap(torch.func.grad(lambda xi, w: CF.linear_and_row_norms_sq(xi, w, b)[0].sum()
                                         + CF.linear_and_row_norms_sq(xi, w, b)[1].sum(), argnums=1),
                         in_dims=(0, None))(x[0], w)
    torch.testing.assert_close(gw, torch.ones(5, 4, 1, dtype=DT) * x[0].unsqueeze(1) + 2 * w)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # autocast: the plain ops, cast by autocast
        za, ra = CF.linear_and_row_norms_sq(x.float(), w.float(), b.float())
    assert za.dtype == torch.bfloat16 and not _uses_fused(za, kernel="LinearRowNormSqFn")
    torch.testing.assert_close(za.float(), z.float(), rtol=2e-2, atol=5e-2)


# --------------------------------------------------------------------------------------------
# torch.func: vmap, grad, jacrev of the fused kernel
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("rc", FUSED_RC)
@pytest.mark.parametrize("degree", [1, 3, 5])
def test_vmap_and_grad_of_the_fused_kernel(rc, degree):
    a = _coeffs(3, degree)
    rn = torch.rand(3, dtype=DT)
    z = _inputs("outside", (6, 3), rc)

    def jsq(zi, a, rn):  # one example [F] -> 0-d
        return CF.poly_activation_and_jacobian_sq(zi, a, rn, R, rc)[1]

    # vmap of the forward equals the batched call
    hv, Jv = torch.func.vmap(lambda zi: CF.poly_activation_and_jacobian_sq(zi, a, rn, R, rc))(z)
    hb, Jb = CF.poly_activation_and_jacobian_sq(z, a, rn, R, rc)
    torch.testing.assert_close(hv, hb, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(Jv, Jb, rtol=1e-12, atol=1e-12)
    # per-example gradients of J w.r.t. z, a and rn equal autograd on the plain ops
    gz, ga, grn = torch.func.vmap(torch.func.grad(jsq, argnums=(0, 1, 2)), in_dims=(0, None, None))(z, a, rn)
    for n in range(z.shape[0]):
        zr, ar, rr = (t.clone().requires_grad_(True) for t in (z[n], a, rn))
        ref = torch.autograd.grad(_reference(zr, ar, rr, rc)[1], (zr, ar, rr))
        for g, r in zip((gz[n], ga[n], grn[n]), ref):
            torch.testing.assert_close(g, r, rtol=1e-10, atol=1e-12)
    # the per-example Jacobian of σ is diag(σ')
    jac = torch.func.vmap(torch.func.jacrev(lambda zi: CF.poly_activation_and_jacobian_sq(zi, a, rn, R, rc)[0]))(z)
    slope = CF.poly_activation_and_slope(z, a, R, rc)[1]
    torch.testing.assert_close(jac, torch.diag_embed(slope), rtol=1e-12, atol=1e-12)
    # second order through the hand-written backward: jacrev of grad
    hess = torch.func.jacrev(torch.func.grad(jsq))(z[0], a, rn)
    zr = z[0].clone().requires_grad_(True)
    ref = torch.autograd.functional.hessian(lambda t: _reference(t, a, rn, rc)[1], zr)
    torch.testing.assert_close(hess, ref, rtol=1e-10, atol=1e-12)


# --------------------------------------------------------------------------------------------
# huge inputs
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("rc", ["linear", "tanh"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_huge_inputs_stay_finite(rc, dtype):
    a = _coeffs(4, 5).to(dtype).requires_grad_(True)
    z = torch.tensor([[1e4, -1e4, 3e3, -7.5], [2.0, -1.0, 0.5, 1e4]], dtype=dtype, requires_grad=True)
    rn = torch.rand(4, dtype=dtype, requires_grad=True)
    h, J = CF.poly_activation_and_jacobian_sq(z, a, rn, R, rc)
    assert _uses_fused(h) == (rc == "linear")
    (h.sum() + J.sum()).backward()
    for t in (h, J, z.grad, a.grad, rn.grad):
        assert torch.isfinite(t).all()


# --------------------------------------------------------------------------------------------
# certified slope bound
# --------------------------------------------------------------------------------------------


def _attained_max_slope(a, bound):
    """``max_{|u|≤R} |p'(u)|`` per feature, found independently of poly_max_slope: the max refined to ~1e-12 around the
    best point of a dense grid (golden section on |p'|, which is smooth near an interior max)."""
    from scipy.optimize import minimize_scalar

    coef = a.detach().double().numpy()  # [D+1, F]
    dcoef = coef[1:] * np.arange(1, coef.shape[0])[:, None]  # p'
    grid = np.linspace(-bound, bound, 20001)
    out = []
    for i in range(coef.shape[1]):
        vals = np.abs(np.polynomial.polynomial.polyval(grid, dcoef[:, i]))
        k = int(vals.argmax())
        best = vals[k]
        lo, hi = grid[max(k - 1, 0)], grid[min(k + 1, len(grid) - 1)]
        if 0 < k < len(grid) - 1:
            res = minimize_scalar(lambda u: -abs(np.polynomial.polynomial.polyval(u, dcoef[:, i])),
                                  bounds=(lo, hi), method="bounded", options={"xatol": 1e-12})
            best = max(best, -res.fun)
        out.append(best)
    return np.asarray(out)


@pytest.mark.parametrize("rc", ["linear", "tanh"])
@pytest.mark.parametrize("degree", DEGREES)
@pytest.mark.parametrize("basis", CF.BASES)
def test_max_slope_is_certified_and_tight(rc, degree, basis):
    a = _coeffs(4, degree, basis=basis, scale=0.5)
    bound = CF.poly_max_slope(a, R, rc)
    assert bound.shape == (4,) and bound.dtype == DT
    z = torch.cat([torch.linspace(-1e4, 1e4, 2001, dtype=DT), torch.linspace(-3 * R, 3 * R, 60001, dtype=DT),
                   torch.tensor([-R, R], dtype=DT)]).unsqueeze(1).expand(-1, 4)
    observed = CF.poly_activation_and_slope(z, a, R, rc)[1].abs().max(dim=0).values  # [4]
    assert torch.all(observed <= bound + 1e-9), (observed, bound)
    # tight: max |p'| over [-R, R] is attained (σ' = p' on the interval for "linear")
    attained = _attained_max_slope(a, R)
    np.testing.assert_allclose(attained, bound.numpy(), rtol=0, atol=1e-9)
    if rc == "linear":
        torch.testing.assert_close(observed, bound, rtol=1e-6, atol=0)  # the dense grid sees it


@settings(max_examples=40, deadline=None)
@given(degree=st.integers(1, 5), bound=st.floats(0.5, 8.0), seed=st.integers(0, 2**31 - 1),
       scale=st.floats(0.01, 5.0))
def test_property_max_slope_certified_and_tight(degree, bound, seed, scale):
    g = torch.Generator().manual_seed(seed)
    a = CF.basis_matrix("legendre", degree, bound) @ (scale * torch.randn(degree + 1, 3, dtype=DT, generator=g))
    ms = CF.poly_max_slope(a, bound)
    z = torch.linspace(-3 * bound, 3 * bound, 30001, dtype=DT).unsqueeze(1).expand(-1, 3)
    observed = CF.poly_activation_and_slope(z, a, bound)[1].abs().max(dim=0).values
    assert torch.all(observed <= ms * (1 + 1e-12) + 1e-12)
    np.testing.assert_allclose(_attained_max_slope(a, bound), ms.numpy(), rtol=1e-10, atol=1e-12)


def test_max_slope_known_value_and_raw_polynomial():
    torch.testing.assert_close(CF.poly_max_slope(torch.tensor([[0.0], [1.0], [0.5]]), 2.0), torch.tensor([3.0]))
    a = _coeffs(3, 3)
    assert torch.isinf(CF.poly_max_slope(a, R, "none")).all()
    lin = _coeffs(3, 1)  # degree 1 without range control: the slope is |a_1| everywhere
    torch.testing.assert_close(CF.poly_max_slope(lin, R, "none"), lin[1].abs())


# --------------------------------------------------------------------------------------------
# initial fit
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("basis", CF.BASES)
@pytest.mark.parametrize("degree", [3, 4, 5])
@pytest.mark.parametrize("init, left, right", [("gelu", 0.0, 1.0), ("silu", 0.0, 1.0), ("tanh", 0.0, 0.0),
                                               ("identity", 1.0, 1.0)])
def test_fit_continuation_slopes_are_the_asymptotic_slopes(basis, degree, init, left, right):
    theta = CF.fit_coefficients(init, degree, R, basis)
    assert theta.shape == (degree + 1,) and theta.dtype == DT
    a = (CF.basis_matrix(basis, degree, R) @ theta).unsqueeze(1)
    z = torch.tensor([[-1e3], [-R - 1e-6], [R + 1e-6], [1e3]], dtype=DT)
    slope = CF.poly_activation_and_slope(z, a, R)[1][:, 0]
    torch.testing.assert_close(slope, torch.tensor([left, left, right, right], dtype=DT), rtol=0, atol=1e-9)
    assert CF.ASYMPTOTIC_SLOPES[init] == (left, right)


@pytest.mark.parametrize("rc", ["linear", "none"])
@pytest.mark.parametrize("basis", CF.BASES)
@pytest.mark.parametrize("degree", DEGREES)
def test_identity_fit_is_exact_in_every_basis(rc, basis, degree):
    a = CF.basis_matrix(basis, degree, R) @ CF.fit_coefficients("identity", degree, R, basis, rc)
    expected = torch.zeros(degree + 1, dtype=DT)
    expected[1] = 1.0
    torch.testing.assert_close(a, expected, rtol=0, atol=1e-10)
    z = torch.linspace(-50, 50, 101, dtype=DT).unsqueeze(1)
    torch.testing.assert_close(CF.poly_activation(z, a.unsqueeze(1), R, rc), z, rtol=0, atol=1e-8)


@pytest.mark.parametrize("basis", CF.BASES)
@pytest.mark.parametrize("degree", [3, 4, 5])
def test_tanh_fit_is_bounded_with_linear_range_control(basis, degree):
    """Flat continuation (slopes 0 at ±R): bounded on the whole line and close to tanh."""
    a = (CF.basis_matrix(basis, degree, R) @ CF.fit_coefficients("tanh", degree, R, basis)).unsqueeze(1)
    z = torch.cat([torch.linspace(-1e4, 1e4, 20001, dtype=DT), torch.linspace(-2 * R, 2 * R, 6001, dtype=DT)])
    h = CF.poly_activation(z.unsqueeze(1), a, R)[:, 0]
    assert h.abs().max() < 1.25
    assert (h - torch.tanh(z)).abs().max() < 0.25  # measured 0.236 (degree 3-4), 0.068 (degree 5)
    torch.testing.assert_close(h[0], h[:100].mean(), rtol=0, atol=1e-12)  # constant far left


@pytest.mark.parametrize("degree", DEGREES)
def test_tanh_fit_is_bounded_with_tanh_range_control(degree):
    a = (CF.basis_matrix("legendre", degree, R) @ CF.fit_coefficients("tanh", degree, R, "legendre", "tanh"))
    z = torch.linspace(-1e4, 1e4, 20001, dtype=DT).unsqueeze(1)
    h = CF.poly_activation(z, a.unsqueeze(1), R, "tanh")
    assert h.abs().max() < 1.5 and (h - torch.tanh(z)).abs().max() < 0.4  # measured ≤ 0.35


@pytest.mark.parametrize("init, degree, inside, whole", [
    # measured max |σ - target|: on [-R, R] and on [-4R, 4R] (linear range control, legendre)
    ("gelu", 3, 0.5, 0.5), ("gelu", 5, 0.09, 0.09),
    ("silu", 3, 0.4, 0.4), ("silu", 5, 0.06, 0.11),
    ("tanh", 5, 0.07, 0.07),
])
def test_fit_looks_like_its_target_on_the_whole_line(init, degree, inside, whole):
    ref = {"gelu": F.gelu, "silu": F.silu, "tanh": torch.tanh}[init]
    a = (CF.basis_matrix("legendre", degree, R) @ CF.fit_coefficients(init, degree, R)).unsqueeze(1)
    z_in = torch.linspace(-R, R, 601, dtype=DT).unsqueeze(1)
    z_all = torch.linspace(-4 * R, 4 * R, 2401, dtype=DT).unsqueeze(1)
    assert (CF.poly_activation(z_in, a, R) - ref(z_in)).abs().max() < inside
    assert (CF.poly_activation(z_all, a, R) - ref(z_all)).abs().max() < whole


@pytest.mark.parametrize("init", CF.INITS)
@pytest.mark.parametrize("degree", [3, 5])
def test_fit_is_the_same_function_in_every_basis(init, degree):
    z = torch.linspace(-12, 12, 97, dtype=DT).unsqueeze(1)
    outs = [CF.poly_activation(z, (CF.basis_matrix(b, degree, R) @ CF.fit_coefficients(init, degree, R, b)).unsqueeze(1), R)
            for b in CF.BASES]
    for o in outs[1:]:
        torch.testing.assert_close(o, outs[0], rtol=0, atol=1e-10)


def test_fit_bad_names():
    with pytest.raises(ValueError, match=r"unknown init 'relu6': expected one of gelu, silu, tanh, identity"):
        CF.fit_coefficients("relu6", 3, R)
    with pytest.raises(ValueError, match=r"unknown basis 'bernstein': expected one of legendre"):
        CF.fit_coefficients("gelu", 3, R, "bernstein")


def test_docstring_example_values():
    a = CF.basis_matrix("legendre", 3, 3.0) @ CF.fit_coefficients("gelu", 3, 3.0, "legendre")
    z = torch.linspace(-6, 6, 5, dtype=DT).unsqueeze(1)
    _, slope = CF.poly_activation_and_slope(z, a.unsqueeze(1), 3.0)
    assert [round(float(s), 3) for s in slope[:, 0]] == [0.0, 0.0, 0.5, 1.0, 1.0]
    assert math.isclose(float(CF.layer_jacobian_sq(torch.tensor([[1.0, 0.5]]), torch.tensor([2.0, 4.0]))), 3.0)


# --------------------------------------------------------------------------------------------
# argument checks: row norms, weights, bias, the fit's grid (shapes and Python numbers only)
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("weight, given", [(torch.ones(3), "shape (3,)"), (torch.ones(3, 4, 5), "shape (3, 4, 5)"),
                                           (torch.ones(()), "shape ()"), ([[1.0, 2.0]], "list")])
def test_row_norms_sq_refuses_a_weight_that_is_not_a_matrix(weight, given):
    with pytest.raises(ValueError, match=rf"expected a weight of shape \[out, in\], got {re.escape(given)}$"):
        CF.row_norms_sq(weight)


@pytest.mark.parametrize("rn, given", [(torch.ones(5), "shape (5,)"), (torch.ones(3, 1), "shape (3, 1)"),
                                       (torch.ones(()), "shape ()"), ([1.0, 1.0, 1.0], "list")])
def test_layer_jacobian_sq_refuses_row_norms_of_another_shape(rn, given):
    """[3, 1] used to broadcast silently into a [4, 1] result; [5] was a RuntimeError deep in matmul."""
    with pytest.raises(ValueError, match=r"expected row norms rn of shape \(3,\), one per feature of slope \(4, 3\), "
                                         rf"got {re.escape(given)}$"):
        CF.layer_jacobian_sq(torch.ones(4, 3), rn)
    with pytest.raises(ValueError, match=r"expected slope a tensor \[\.\.\., F\], got list"):
        CF.layer_jacobian_sq([[1.0, 2.0, 3.0]], torch.ones(3))


@pytest.mark.parametrize("rc", CF.RANGE_CONTROLS)
def test_fused_jacobian_sq_refuses_row_norms_of_another_shape(rc):
    z, a = torch.randn(5, 2, dtype=DT), _coeffs(2, 3)
    for rn, given in ((torch.ones(3, dtype=DT), "(3,)"), (torch.ones(1, dtype=DT), "(1,)"),
                      (torch.ones(2, 1, dtype=DT), "(2, 1)")):
        with pytest.raises(ValueError, match=r"expected row norms rn of shape \(2,\), one per feature of z \(5, 2\), "
                                             rf"got shape {re.escape(given)}"):
            CF.poly_activation_and_jacobian_sq(z, a, rn, R, rc)
    shared = a[:, :1]  # one coefficient column for every feature: rn still counts z's features
    with pytest.raises(ValueError, match=r"expected row norms rn of shape \(2,\)"):
        CF.poly_activation_and_jacobian_sq(z, shared, torch.ones(1, dtype=DT), R, rc)
    h, J = CF.poly_activation_and_jacobian_sq(z, shared, torch.ones(2, dtype=DT), R, rc)
    assert h.shape == (5, 2) and J.shape == (5,)


@pytest.mark.parametrize("x, w, b, message", [
    (torch.ones(2, 3), torch.ones(4, 5), None, r"expected x of shape \[\.\.\., 5\] \(the weight's in features\), "
                                               r"got shape \(2, 3\)"),
    (torch.tensor(1.0), torch.ones(4, 3), None, r"expected x of shape \[\.\.\., 3\] .*got shape \(\)"),
    ([1.0, 2.0, 3.0], torch.ones(4, 3), None, r"expected x of shape \[\.\.\., 3\] .*got list"),
    (torch.ones(2, 3), torch.ones(4, 3), torch.ones(5), r"expected a bias of shape \(4,\) \(the weight's out "
                                                        r"features\) or None, got shape \(5,\)"),
    (torch.ones(2, 3), torch.ones(4, 3), torch.ones(()), r"expected a bias of shape \(4,\) .*got shape \(\)"),
    (torch.ones(2, 3), torch.ones(3), None, r"expected a weight of shape \[out, in\], got shape \(3,\)"),
])
def test_linear_and_row_norms_sq_refuses_mismatched_shapes(x, w, b, message):
    with pytest.raises(ValueError, match=message):
        CF.linear_and_row_norms_sq(x, w, b)
    with torch.autocast("cpu", dtype=torch.bfloat16), pytest.raises(ValueError, match=message):  # plain-op path
        CF.linear_and_row_norms_sq(x, w, b)


def test_target_activation_reads_lists_and_tensors_and_refuses_non_numbers():
    """A list was a TypeError deep in the GELU formula; now any real array-like is read as float64."""
    ref = CF.target_activation("gelu", np.array([0.0, 1.0]))
    for u in ([0.0, 1.0], (0, 1), torch.tensor([0.0, 1.0], requires_grad=True), torch.tensor([0, 1])):
        got = CF.target_activation("gelu", u)
        assert all(g.dtype == np.float64 and np.array_equal(g, r) for g, r in zip(got, ref))
    assert CF.target_activation("silu", 0.0)[1] == 0.5  # a number
    assert CF.target_activation("gelu", [])[0].shape == (0,)  # no points: empty, no numpy error
    for bad, given in ((["0.5"], r"list \['0\.5'\]"), (None, "NoneType None"), ("1", "str '1'"),
                       ([True, False], r"list \[True, False\]"), ([[1.0, 2.0], [3.0]], "list")):
        with pytest.raises(ValueError, match=rf"expected real numbers u \(an array, a list or a tensor\), got {given}"):
            CF.target_activation("gelu", bad)


@pytest.mark.parametrize("spread", [0.0, -1.0, math.nan, -math.inf, True, "1"])
def test_fit_refuses_a_spread_that_is_not_positive(spread):
    """0 and nan gave all-nan coefficients (and numpy RuntimeWarnings)."""
    with pytest.raises(ValueError, match=r"expected spread None or a number > 0 \(the standard deviation of the fit's "
                                         rf"Gaussian weight\), got {re.escape(repr(spread))}"):
        CF.fit_coefficients("gelu", 5, R, spread=spread)


@pytest.mark.parametrize("points", [0, 1, 2, 5, -3, 6.0, True, "2001"])
def test_fit_refuses_fewer_points_than_coefficients(points):
    """Degree 5 has 6 coefficients: 2 points gave meaningless ones, 1 a singular matrix, 0 a numpy error."""
    with pytest.raises(ValueError, match=r"expected an integer number of points >= degree \+ 1 = 6 \(grid points on "
                                         rf"\[-4R, 4R\]\), got {re.escape(repr(points))}"):
        CF.fit_coefficients("gelu", 5, R, points=points)


def test_fit_keeps_the_smallest_grid_and_an_infinite_spread():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no numpy RuntimeWarning either
        for rc in CF.RANGE_CONTROLS:
            for degree in (1, 3, 5, 12):
                th = CF.fit_coefficients("gelu", degree, R, range_control=rc, points=degree + 1)
                assert th.shape == (degree + 1,) and bool(th.isfinite().all())
        flat = CF.fit_coefficients("gelu", 5, R, spread=math.inf)  # every point weighs alike
    assert bool(flat.isfinite().all())
    assert torch.equal(CF.fit_coefficients("gelu", 3, R, spread=R), CF.fit_coefficients("gelu", 3, R))
