"""Pure functions of the Polynomial Engine and of DREG: values in, results out, no state.

The modules (:mod:`chainzrule.poly`, :mod:`chainzrule.layers`) are thin wrappers over these, in
the style of ``torch.nn.functional``.

**Parametrization.** A polynomial activation of degree D is stored as coefficients θ in a basis of
the *normalized* pre-activation ``t = u / R`` on the working interval ``[-R, R]``:

    p(u) = Σ_k θ_k B_k(u / R)

with ``B_k`` the Legendre polynomials (default), the Chebyshev polynomials, or the monomials
``t^k``; ``"power"`` is the v0.1 engine's basis, monomials of ``u`` itself. Every basis spans the
same functions, so the choice changes *training*, not what a network can compute: Adam moves every
coefficient by about ``lr`` per step, and with a basis bounded by 1 on the interval such a step
moves σ by at most ``lr`` everywhere on it, whatever k. In the power basis a step on θ_3 moves σ at
|u| = 3 by 27·lr (condition number of the Gram matrix on [-3, 3]: ~250 for powers of u, ~7 for
Legendre in t). Why Legendre, measured on MNIST: see ``docs/engine.md``.

:func:`basis_matrix` turns θ into power coefficients ``a`` of ``u`` (``a = M θ``, a fixed
``[D+1, D+1]`` matrix), so there is one evaluation kernel for all bases: Horner's rule in ``u``.

**Range control** is part of σ, so σ' is the exact derivative of what is computed:

- ``"linear"``: σ(z) = p(c) + p'(c)(z - c), c = clamp(z, -R, R): the polynomial on the interval,
  its tangent outside. σ'(z) = p'(c), so ``max|σ'| = max_{|u|≤R} |p'(u)|`` (:func:`poly_max_slope`).
- ``"tanh"``: σ(z) = p(R tanh(z/R)); σ' = p'(u)(1 - tanh²(z/R)).
- ``"none"``: σ = p(z) (slope unbounded; for ablations only).

**DREG.** For ``h = σ(W x + b)`` the layer Jacobian is ``S = diag(σ'(z)) W``, so per example
``||S||_F² = Σ_i σ'(z_i)² ||W_i,:||²`` (:func:`layer_jacobian_sq`).
:func:`poly_activation_and_jacobian_sq` computes σ and this term in one pass, with a hand-written
backward for "linear" and "none" (measured in ``BENCHMARKS.md``).

>>> import torch
>>> a = basis_matrix("legendre", 3, 3.0) @ fit_coefficients("gelu", 3, 3.0, "legendre")  # [4]
>>> z = torch.linspace(-6, 6, 5, dtype=torch.float64).unsqueeze(1)     # [5, 1]
>>> h, slope = poly_activation_and_slope(z, a.unsqueeze(1), 3.0)
>>> [round(float(s), 3) for s in slope[:, 0]]    # GELU-like: slope 0 far left, 1 far right
[0.0, 0.0, 0.5, 1.0, 1.0]
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

BASES = ("legendre", "chebyshev", "monomial", "power")
RANGE_CONTROLS = ("linear", "tanh", "none")
INITS = ("gelu", "silu", "tanh", "identity")


def _choice(kind: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"unknown {kind} {value!r}: expected one of {', '.join(allowed)}")


# --------------------------------------------------------------------------------------------
# parametrization
# --------------------------------------------------------------------------------------------


def basis_matrix(basis: str, degree: int, bound: float, dtype=torch.float64, device=None) -> Tensor:
    """``M`` ``[D+1, D+1]`` with power coefficients ``a = M θ`` (row k: coefficient of u^k).

    Column j holds the power coefficients of the j-th basis function of ``t = u / bound``.

    >>> basis_matrix("legendre", 2, 1.0)        # P0 = 1, P1 = t, P2 = (3t² - 1)/2
    tensor([[ 1.0000,  0.0000, -0.5000],
            [ 0.0000,  1.0000,  0.0000],
            [ 0.0000,  0.0000,  1.5000]], dtype=torch.float64)
    """
    _choice("basis", basis, BASES)
    n = degree + 1
    if basis == "power":
        return torch.eye(n, dtype=dtype, device=device)
    cols = []
    for j in range(n):
        unit = np.eye(n)[j]
        if basis == "legendre":
            col = np.polynomial.legendre.leg2poly(unit)
        elif basis == "chebyshev":
            col = np.polynomial.chebyshev.cheb2poly(unit)
        else:
            col = unit
        cols.append(np.pad(col, (0, n - len(col))))
    t_to_u = float(bound) ** -np.arange(n)  # coefficient of t^k is bound^k times that of u^k
    m = np.stack(cols, axis=1) * t_to_u[:, None]  # [D+1, D+1]
    return torch.from_numpy(m).to(dtype=dtype, device=device)


# --------------------------------------------------------------------------------------------
# evaluation
# --------------------------------------------------------------------------------------------


def horner(a: Tensor, u: Tensor) -> tuple[Tensor, Tensor]:
    """Value and derivative of per-feature polynomials by Horner's rule.

    ``a`` is ``[D+1, F]`` (row k: coefficient of u^k), ``u`` is ``[..., F]``; returns
    ``(p(u), p'(u))``, both ``[..., F]``.

    >>> p, dp = horner(torch.tensor([[1.0], [2.0], [3.0]]), torch.tensor([[2.0]]))  # 1 + 2u + 3u²
    >>> float(p), float(dp)
    (17.0, 14.0)
    """
    degree = a.shape[0] - 1
    p = a[degree].expand_as(u)  # [..., F]
    dp = torch.zeros_like(u)
    for k in range(degree - 1, -1, -1):
        dp = torch.addcmul(p, dp, u)  # dp ← dp·u + p
        p = torch.addcmul(a[k], p, u)  # p ← p·u + a_k
    return p, dp


def poly_activation_and_slope(z: Tensor, a: Tensor, bound: float, range_control: str = "linear") -> tuple[Tensor, Tensor]:
    """``(σ(z), σ'(z))`` with plain torch ops, both ``[..., F]``; ``a`` power coefficients ``[D+1, F]``.

    Differentiable to any order, traceable by torch.func, torch.compile, torch.export and
    ``torch.jit.trace`` (no data-dependent branch).
    """
    if range_control == "linear":
        c = z.clamp(-bound, bound)  # [..., F]
        p, dp = horner(a, c)
        return torch.addcmul(p, dp, z - c), dp  # tangent continuation outside [-R, R]
    if range_control == "tanh":
        s = torch.tanh(z / bound)  # [..., F]
        p, dp = horner(a, s * bound)
        return p, dp * (1.0 - s * s)
    _choice("range_control", range_control, RANGE_CONTROLS)
    return horner(a, z)


def _eager() -> bool:
    """Whether the hand-written kernels may run: not inside torch.compile / torch.export (which
    trace the plain ops and fuse them themselves) nor torch.jit.trace."""
    return not (torch.compiler.is_compiling() or torch.jit.is_tracing())


def poly_activation(z: Tensor, a: Tensor, bound: float, range_control: str = "linear") -> Tensor:
    """σ(z), ``[..., F]`` → ``[..., F]`` (see :func:`poly_activation_and_slope`).

    "linear" and "none" run a fused kernel in eager mode (one Horner sweep forward, a
    hand-written backward); the same numbers as the plain ops.
    """
    if range_control == "tanh" or not _eager():
        return poly_activation_and_slope(z, a, bound, range_control)[0]
    _choice("range_control", range_control, RANGE_CONTROLS)
    z2 = z.reshape(-1, z.shape[-1])  # [N, F]
    h, _ = _PolyActivation.apply(z2, a, float(bound), range_control == "linear")
    return h.view(z.shape)


def row_norms_sq(weight: Tensor) -> Tensor:
    """``||W_i,:||²`` for every row of a ``[out, in]`` weight, ``[out]``."""
    return (weight * weight).sum(dim=1)  # [out]


def linear_and_row_norms_sq(x: Tensor, weight: Tensor, bias: Tensor | None) -> tuple[Tensor, Tensor]:
    """``(x Wᵀ + b, ||W_i,:||²)``: ``[..., in]`` → ``[..., out]``, ``[out]``.

    In eager mode (and without autocast) one autograd node whose backward builds the weight
    gradient once, ``g_W = g_zᵀ x + 2 g_r ⊙ W``, instead of two ``[out, in]`` gradients that
    autograd then sums (measured in ``BENCHMARKS.md``); elsewhere the plain ops.
    """
    if not _eager() or _autocast(x):
        return torch.nn.functional.linear(x, weight, bias), row_norms_sq(weight)
    x2 = x.reshape(-1, x.shape[-1])  # [N, in]
    z, rn = _LinearRowNormSq.apply(x2, weight, bias)
    return z.view(*x.shape[:-1], z.shape[-1]), rn


def _autocast(x: Tensor) -> bool:
    try:
        return torch.is_autocast_enabled(x.device.type)
    except RuntimeError:  # device types without autocast (meta): nothing to respect
        return False


class _LinearRowNormSq(torch.autograd.Function):
    """``(x Wᵀ + b, Σ_j W_ij²)`` for 2-D ``x``; out-of-place differentiable backward (vmap-safe)."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x: Tensor, w: Tensor, b: Tensor | None):
        z = x @ w.t() if b is None else torch.addmm(b, x, w.t())  # [N, out]
        return z, torch.linalg.vector_norm(w, dim=-1).square()  # [N, out], [out]

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, w, b = inputs
        ctx.save_for_backward(x, w)
        ctx.has_bias = b is not None
        ctx.set_materialize_grads(False)

    @staticmethod
    def backward(ctx, gz: Tensor | None, grn: Tensor | None):
        x, w = ctx.saved_tensors
        gx = gw = gb = None
        if gz is not None and ctx.needs_input_grad[0]:
            gx = gz @ w  # [N, in]
        if ctx.needs_input_grad[1]:
            if gz is None:
                gw = w * (2.0 * grn).unsqueeze(-1) if grn is not None else torch.zeros_like(w)
            elif grn is None:
                gw = gz.t() @ x  # [out, in]
            else:
                gw = torch.addcmul(gz.t() @ x, w, (2.0 * grn).unsqueeze(-1))  # one [out, in] result
        if gz is not None and ctx.has_bias and ctx.needs_input_grad[2]:
            gb = gz.sum(0)  # [out]
        return gx, gw, gb


def layer_jacobian_sq(slope: Tensor, rn: Tensor) -> Tensor:
    """Per-example ``||S||_F² = Σ_i σ'(z_i)² r_i``: slope ``[..., out]``, ``r`` ``[out]`` → ``[...]``.

    >>> layer_jacobian_sq(torch.tensor([[1.0, 0.5]]), torch.tensor([2.0, 4.0]))
    tensor([3.])
    """
    return (slope * slope) @ rn  # [..., out] @ [out] → [...]


def poly_activation_and_jacobian_sq(z: Tensor, a: Tensor, rn: Tensor, bound: float,
                                    range_control: str = "linear") -> tuple[Tensor, Tensor]:
    """``(σ(z), Σ_i σ'(z_i)² rn_i)``: ``[..., F]``, ``[D+1, F]``, ``[F]`` → ``[..., F]``, ``[...]``.

    "linear" and "none" run a fused kernel (one Horner sweep, hand-written backward that is
    itself differentiable, works under ``torch.func`` transforms); inside ``torch.compile`` /
    ``torch.export`` / ``torch.jit.trace`` the plain ops are traced instead (the compiler fuses
    them on its own). Both give the same numbers (tested to float64 precision).
    """
    if range_control == "tanh" or not _eager():
        h, slope = poly_activation_and_slope(z, a, bound, range_control)
        return h, layer_jacobian_sq(slope, rn)
    _choice("range_control", range_control, RANGE_CONTROLS)
    z2 = z.reshape(-1, z.shape[-1])  # [N, F]
    h, jsq, _ = _PolyJacobianSq.apply(z2, a, rn, float(bound), range_control == "linear")
    return h.view(z.shape), jsq.view(z.shape[:-1])


# --------------------------------------------------------------------------------------------
# the fused kernel
#
#   σ(z) = p(c) + p'(c) e,   c = clamp(z, -R, R),  e = z - c   (e ≡ 0 on the interval)
#   J    = Σ_i p'(c_i)² r_i
#   ∂σ/∂z = p'(c),  ∂σ/∂a_k = c^k + k c^(k-1) e
#   ∂J/∂z_i = p'(c_i) v_i with v = 2 r p''(c) 1[|z| ≤ R];  ∂J/∂a_k = 2 r Σ_i p'(c_i) k c_i^(k-1);
#   ∂J/∂r_i = p'(c_i)²
#
# so with upstream gradients g_h [N, F] and g_J [N], w = g_J p'(c) and q = g_h e + 2 r w:
#
#   g_z = p'(c) (g_h + g_J v),   g_a[k] = Σ_n g_h c^k + k Σ_n q c^(k-1),   g_r = Σ_n w p'(c).
#
# Two running-product chains over c give every g_a row; no [D+1, N, F] buffer is kept. The
# backward uses only out-of-place differentiable ops: under create_graph (double backward,
# gradgradcheck) it recomputes p'(c) from the saved inputs, so the graph reaches z, a and r; under
# vmap the rule is generated from these same ops.
# --------------------------------------------------------------------------------------------


def _derivative_rows(a: Tensor) -> Tensor:
    """Power coefficients of p' from those of p: ``[D+1, F]`` → ``[D, F]``."""
    k = torch.arange(1, a.shape[0], dtype=a.dtype, device=a.device).unsqueeze(1)  # [D, 1]
    return a[1:] * k


def _slope(a: Tensor, c: Tensor) -> Tensor:
    """p'(c) by Horner, ``[N, F]``."""
    da = _derivative_rows(a)  # [D, F]
    dp = da[-1].expand_as(c)
    for k in range(da.shape[0] - 2, -1, -1):
        dp = torch.addcmul(da[k], dp, c)
    return dp


class _PolyActivation(torch.autograd.Function):
    """σ(z) for 2-D ``z`` ``[N, F]`` (returns σ' too, non-differentiable): the no-DREG forward."""

    generate_vmap_rule = True

    @staticmethod
    def forward(z: Tensor, a: Tensor, bound: float, clamp: bool):
        c = z.clamp(-bound, bound) if clamp else z  # [N, F]
        p, dp = horner(a, c)
        return (torch.addcmul(p, dp, z - c) if clamp else p), dp  # [N, F], [N, F]

    @staticmethod
    def setup_context(ctx, inputs, output):
        z, a, bound, clamp = inputs
        ctx.mark_non_differentiable(output[1])
        ctx.save_for_backward(z, a, output[1])
        ctx.bound, ctx.clamp = bound, clamp
        ctx.set_materialize_grads(False)

    @staticmethod
    def backward(ctx, gh: Tensor | None, _g_slope=None):
        z, a, dp = ctx.saved_tensors
        if gh is None:
            return None, None, None, None
        c = z.clamp(-ctx.bound, ctx.bound) if ctx.clamp else z  # [N, F]
        if torch.is_grad_enabled():  # create_graph: rebuild p'(c) so the graph reaches z and a
            dp = _slope(a, c)
        gz = gh * dp if ctx.needs_input_grad[0] else None
        ga = None
        if ctx.needs_input_grad[1]:
            ga = _coefficient_grad(gh, None, c, z - c if ctx.clamp else None, None, a.shape[0] - 1)
        return gz, ga, None, None


class _PolyJacobianSq(torch.autograd.Function):
    """σ(z) and J = Σ_i σ'(z_i)² rn_i for 2-D ``z`` ``[N, F]`` (returns σ' too, non-differentiable)."""

    generate_vmap_rule = True

    @staticmethod
    def forward(z: Tensor, a: Tensor, rn: Tensor, bound: float, clamp: bool):
        c = z.clamp(-bound, bound) if clamp else z  # [N, F]
        p, dp = horner(a, c)
        h = torch.addcmul(p, dp, z - c) if clamp else p  # [N, F]
        return h, (dp * dp) @ rn, dp  # [N, F], [N], [N, F]

    @staticmethod
    def setup_context(ctx, inputs, output):
        z, a, rn, bound, clamp = inputs
        ctx.mark_non_differentiable(output[2])
        ctx.save_for_backward(z, a, rn, output[2])
        ctx.bound, ctx.clamp = bound, clamp
        ctx.set_materialize_grads(False)

    @staticmethod
    def backward(ctx, gh: Tensor | None, gj: Tensor | None, _g_slope=None):
        z, a, rn, dp = ctx.saved_tensors
        R, clamp = ctx.bound, ctx.clamp
        c = z.clamp(-R, R) if clamp else z  # [N, F]
        e = z - c if clamp else None
        if torch.is_grad_enabled():  # create_graph: rebuild p'(c) so the graph reaches z and a
            dp = _slope(a, c)
        d = a.shape[0] - 1
        w = None if gj is None else gj.unsqueeze(-1) * dp  # g_J p'(c)   [N, F]
        gz = ga = grn = None
        if ctx.needs_input_grad[0]:
            t = torch.zeros_like(z) if gh is None else gh
            if w is not None and d >= 2:
                pp = _slope(_derivative_rows(a), c)  # p''(c)   [N, F]
                if clamp:
                    pp = pp * (e == 0)  # σ'' = 0 outside the interval
                t = t + 2.0 * gj.unsqueeze(-1) * pp * rn
            gz = t * dp
        if ctx.needs_input_grad[1]:
            ga = _coefficient_grad(gh, w, c, e, rn, d)
        if ctx.needs_input_grad[2] and w is not None:
            grn = (w * dp).sum(0)  # [F]
        return gz, ga, grn, None, None


def _coefficient_grad(gh: Tensor | None, w: Tensor | None, c: Tensor, e: Tensor | None, rn: Tensor,
                      d: int) -> Tensor:
    """``g_a[k] = Σ_n g_h c^k + k Σ_n q c^(k-1)``, ``q = g_h e + 2 r w`` → ``[D+1, F]``."""
    rows = []
    if gh is not None:
        t = gh
        rows.append(t.sum(0))
        for _ in range(d):
            t = t * c  # g_h c^k   [N, F]
            rows.append(t.sum(0))
    else:
        rows = [torch.zeros_like(c[0])] * (d + 1)
    q = None
    if gh is not None and e is not None:
        q = gh * e
    if w is not None:
        q = 2.0 * rn * w if q is None else torch.addcmul(q, w, 2.0 * rn.expand_as(w))
    if q is None:
        return torch.stack(rows)
    out = [rows[0]]
    t = q
    for k in range(1, d + 1):
        out.append(rows[k] + k * t.sum(0))
        if k < d:
            t = t * c  # q c^k
    return torch.stack(out)  # [D+1, F]


# --------------------------------------------------------------------------------------------
# certified slope bound
# --------------------------------------------------------------------------------------------


def poly_max_slope(a: Tensor, bound: float, range_control: str = "linear") -> Tensor:
    """Certified ``max_z |σ'(z)|`` per feature, ``[F]`` (``inf`` for ``"none"`` with degree > 1).

    For "linear" and "tanh" it is ``max |p'(u)|`` over ``[-R, R]``, exact from the endpoints and
    the real roots of p'' inside the interval (the extrema of p').

    >>> poly_max_slope(torch.tensor([[0.0], [1.0], [0.5]]), 2.0)   # p = u + u²/2: p' = 1 + u
    tensor([3.])
    """
    _choice("range_control", range_control, RANGE_CONTROLS)
    coef = a.detach().double().cpu().numpy()  # [D+1, F]
    d, F = coef.shape[0] - 1, coef.shape[1]
    if range_control == "none" and d > 1:
        return torch.full((F,), math.inf, dtype=a.dtype)
    dcoef = coef[1:] * np.arange(1, d + 1)[:, None]  # p', [D, F], low → high
    out = np.empty(F)
    for i in range(F):
        cand = [-bound, bound]
        if d >= 3:
            for r in np.roots((dcoef[1:, i] * np.arange(1, d))[::-1]):  # roots of p''
                if abs(r.imag) < 1e-12 and -bound <= r.real <= bound:
                    cand.append(r.real)
        out[i] = np.abs(np.polynomial.polynomial.polyval(np.asarray(cand), dcoef[:, i])).max()
    return torch.from_numpy(out).to(a.dtype)


# --------------------------------------------------------------------------------------------
# initialization
# --------------------------------------------------------------------------------------------


def target_activation(name: str, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Value and derivative (float64) of the activation a polynomial starts as."""
    _choice("init", name, INITS)
    if name == "gelu":
        erf = np.vectorize(math.erf)
        cdf = 0.5 * (1.0 + erf(u / math.sqrt(2.0)))
        pdf = np.exp(-0.5 * u * u) / math.sqrt(2.0 * math.pi)
        return u * cdf, cdf + u * pdf
    if name == "silu":
        s = 1.0 / (1.0 + np.exp(-u))
        return u * s, s * (1.0 + u * (1.0 - s))
    if name == "tanh":
        t = np.tanh(u)
        return t, 1.0 - t * t
    return u, np.ones_like(u)


#: asymptotic slopes (z → -∞, z → +∞) of each init target
ASYMPTOTIC_SLOPES = {"gelu": (0.0, 1.0), "silu": (0.0, 1.0), "tanh": (0.0, 0.0), "identity": (1.0, 1.0)}


def fit_coefficients(init: str, degree: int, bound: float, basis: str = "legendre",
                     range_control: str = "linear", spread: float | None = None, points: int = 2001) -> Tensor:
    """Coefficients θ ``[D+1]`` in ``basis`` so that σ looks like ``init`` on the whole line.

    σ (polynomial *and* its range control) is linear in θ, so this is a weighted least-squares
    fit of σ and σ' to the target over ``u ∈ [-4R, 4R]`` with Gaussian weights of standard
    deviation ``spread`` (default R: pre-activations of a fresh layer are mostly within a few
    units; the weight keeps the continuation in view). With ``"linear"`` range control and
    degree ≥ 3, the slopes at ±R — the slopes of the continuation — are constrained to the
    target's asymptotic slopes (GELU: 0 on the left, 1 on the right), so a GELU start is never a
    V. The v0.1 engine fitted the polynomial on [-R, R] only, which for GELU gave a parabola
    whose left continuation had slope −0.41.

    >>> th = fit_coefficients("identity", 3, 3.0, "monomial")
    >>> [round(float(v), 6) + 0.0 for v in th]     # identity = t·R in the basis of t = u/R
    [0.0, 3.0, 0.0, 0.0]
    """
    _choice("range_control", range_control, RANGE_CONTROLS)
    spread = float(bound) if spread is None else float(spread)
    u = np.linspace(-4 * bound, 4 * bound, points)  # [P]
    value, slope = target_activation(init, u)
    m = basis_matrix(basis, degree, bound).numpy()  # [D+1, D+1]
    A, dA = _design(u, degree, bound, range_control)  # [P, D+1] each, in power coefficients
    A, dA = A @ m, dA @ m  # in θ
    sw = np.exp(-0.25 * (u / spread) ** 2)  # sqrt of the Gaussian weight
    lhs = np.concatenate([A * sw[:, None], dA * sw[:, None]])  # [2P, D+1]
    rhs = np.concatenate([value * sw, slope * sw])  # [2P]
    if range_control == "linear" and degree >= 3:  # degree 2 cannot bend: tanh would become 0
        ends, _ = _design(np.array([-bound, bound]), degree, bound, range_control, slopes_only=True)
        return torch.from_numpy(_constrained_lstsq(lhs, rhs, ends @ m, np.array(ASYMPTOTIC_SLOPES[init])))
    theta, *_ = np.linalg.lstsq(lhs, rhs, rcond=None)
    return torch.from_numpy(theta)


def _design(u: np.ndarray, degree: int, bound: float, range_control: str, slopes_only: bool = False):
    """``(A, dA)``: σ(u) = A a and σ'(u) = dA a for power coefficients a (``[P, D+1]`` each)."""
    k = np.arange(degree + 1)
    if range_control == "tanh":
        s = np.tanh(u / bound)
        c, e, chain = bound * s, np.zeros_like(u), 1.0 - s * s
    else:
        c = np.clip(u, -bound, bound) if range_control == "linear" else u
        e, chain = u - c, np.ones_like(u)
    V = c[:, None] ** k  # [P, D+1]
    dV = np.zeros_like(V)
    dV[:, 1:] = k[1:] * c[:, None] ** (k[1:] - 1)
    if slopes_only:
        return dV, None
    return V + dV * e[:, None], dV * chain[:, None]


def _constrained_lstsq(A: np.ndarray, b: np.ndarray, C: np.ndarray, d: np.ndarray) -> np.ndarray:
    """argmin ||A x - b|| subject to C x = d (KKT system; C has full row rank here)."""
    n, m = A.shape[1], C.shape[0]
    kkt = np.block([[2 * A.T @ A, C.T], [C, np.zeros((m, m))]])
    rhs = np.concatenate([2 * A.T @ b, d])
    return np.linalg.solve(kkt, rhs)[:n]
