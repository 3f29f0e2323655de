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
>>> [round(float(s), 3) + 0.0 for s in slope[:, 0]]    # GELU-like: slope 0 far left, 1 far right
[0.0, 0.0, 0.5, 1.0, 1.0]
"""

from __future__ import annotations

import functools
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
    return torch.tensor(_basis_matrix_np(basis, degree, bound), dtype=dtype, device=device)


def _basis_matrix_np(basis: str, degree: int, bound: float) -> np.ndarray:
    """:func:`basis_matrix` in numpy (float64), for the init fit (works under a meta-device context)."""
    _choice("basis", basis, BASES)
    n = degree + 1
    if basis == "power":
        return np.eye(n)
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
    return np.stack(cols, axis=1) * t_to_u[:, None]  # [D+1, D+1]


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
    dp = None
    for k in range(degree - 1, -1, -1):
        dp = p if dp is None else torch.addcmul(p, dp, u)  # dp ← dp·u + p   (first step: a_D)
        p = torch.addcmul(a[k], p, u)  # p ← p·u + a_k
    if degree == 1:  # p' = a_1: keep u in the graph (a zero-gradient edge), as every degree has
        dp = torch.addcmul(dp, torch.zeros_like(u), u)
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
            else:  # 2 g_r ⊙ W + g_zᵀ x in one GEMM (beta = 1): one [out, in] result, vmap-safe
                gw = torch.addmm(w * (2.0 * grn).unsqueeze(-1), gz.t(), x)
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
# convolutions
#
# A conv layer z = C x + b (C the convolution as a matrix, [C_out·P', C_in·P], P input and P'
# output positions) followed by an elementwise σ has the layer Jacobian S = diag(σ'(z)) C, so per
# example ||S||_F² = Σ_{c,p} σ'(z_{c,p})² ||row_{c,p}(C)||². Row (c, p) of C holds the kernel W[c]
# placed at the input pixels that output position p reads; a tap that falls on zero padding
# contributes nothing. With "zeros" padding each tap k of p reads its own pixel, so
#
#     ||row_{c,p}(C)||² = Σ_{i,k} W[c,i,k]² · 1[tap k of p lands inside the input]
#
# which is exactly one convolution of a ones map with W² — border effects of padding, stride,
# dilation and groups included, and no dependence on the batch. The other padding modes read a
# real pixel through the padding (wrapped, reflected, replicated), so two taps of one output can
# read the same pixel and their weights add before squaring; see conv_row_norms_sq.
# --------------------------------------------------------------------------------------------

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


def _ntuple(value, n: int) -> tuple[int, ...]:
    return tuple(value) if isinstance(value, (tuple, list)) else (value,) * n


def conv_padding_pairs(padding, kernel_size, dilation) -> list[tuple[int, int]]:
    """``(before, after)`` padding per spatial dim, as ``nn.Conv1d/2d`` and ``F.conv1d/2d`` apply it.

    ``padding``: an int, a tuple, ``"valid"`` or ``"same"`` (total ``d·(k-1)``, the odd one after).

    >>> conv_padding_pairs("same", (4, 3), (1, 2))
    [(1, 2), (2, 2)]
    """
    k = _ntuple(kernel_size, 1)
    n = len(k)
    d = _ntuple(dilation, n)
    if padding == "valid":
        return [(0, 0)] * n
    if padding == "same":
        return [(di * (ki - 1) // 2, di * (ki - 1) - di * (ki - 1) // 2) for ki, di in zip(k, d)]
    return [(p, p) for p in _ntuple(padding, n)]


def _tap_index(input_shape, kernel_size, stride, dilation, pairs, padding_mode: str) -> Tensor:
    """Which input pixel (flat index) tap k of output position p reads: ``[K, P']`` (-1: zero padding)."""
    n = len(input_shape)
    idx = torch.arange(math.prod(input_shape), dtype=torch.float64).view(1, 1, *input_shape)
    pad = [v for pair in reversed(pairs) for v in pair]  # F.pad lists the last dim first
    if padding_mode == "zeros":
        idx = torch.nn.functional.pad(idx, pad, value=-1.0)
    else:
        idx = torch.nn.functional.pad(idx, pad, mode=padding_mode)
    k, s, d = _ntuple(kernel_size, n), _ntuple(stride, n), _ntuple(dilation, n)
    if n == 1:  # unfold is 2-D only: a 1-D signal is a 1-row image
        idx, k, s, d = idx.unsqueeze(2), (1,) + k, (1,) + s, (1,) + d
    return torch.nn.functional.unfold(idx, k, dilation=d, stride=s)[0]  # [K, P']


def conv_row_norms_sq(weight: Tensor, input_shape, stride=1, padding=0, dilation=1, groups: int = 1,
                      padding_mode: str = "zeros") -> Tensor:
    """Squared row norms of the convolution operator, ``[C_out, *out_spatial]``.

    ``weight`` ``[C_out, C_in/groups, *kernel]`` (1-D or 2-D kernel), ``input_shape`` the input's
    spatial shape; the other arguments as for ``nn.Conv1d/2d``. Entry ``[c, p]`` is
    ``||row_{c,p}(C)||²``, the squared norm of the gradient of output ``(c, p)`` w.r.t. the input.

    - ``"zeros"``: one convolution of a ones map ``[1, C_in, *input_shape]`` with ``W²`` (no bias,
      same stride, padding, dilation and groups) — see the derivation above this function.
    - ``"reflect"``, ``"replicate"``, ``"circular"``: a pixel read by taps k and l of output p
      counts ``W_k + W_l`` once, so ``||row_{c,p}||² = Σ_{k,l} G[c,k,l] E[k,l,p]`` with the Gram
      matrix over input channels ``G[c,k,l] = Σ_i W[c,i,k] W[c,i,l]`` and ``E[k,l,p] = 1`` when
      taps k and l of p read the same pixel (built from the padded index map; geometry only).

    Differentiable in ``weight`` (the DREG gradient reaches the kernel).

    >>> w = torch.ones(1, 1, 3, dtype=torch.float64)                  # 3-tap box filter
    >>> conv_row_norms_sq(w, (4,), padding=1)                         # border rows lose a tap
    tensor([[2., 3., 3., 2.]], dtype=torch.float64)
    >>> conv_row_norms_sq(w, (4,), padding=1, padding_mode="replicate")  # (1+1)² + 1 at the borders
    tensor([[5., 3., 3., 5.]], dtype=torch.float64)
    """
    n = weight.dim() - 2
    if n not in (1, 2) or len(tuple(input_shape)) != n:
        raise ValueError(f"expected a 1-D or 2-D conv weight and an input shape of as many dims, got weight "
                         f"{tuple(weight.shape)} and input shape {tuple(input_shape)}")
    _choice("padding_mode", padding_mode, PADDING_MODES)
    input_shape = tuple(int(v) for v in input_shape)
    if padding_mode == "zeros":
        conv = torch.nn.functional.conv1d if n == 1 else torch.nn.functional.conv2d
        ones = weight.new_ones(1, weight.shape[1] * groups, *input_shape)  # [1, C_in, *S]
        return conv(ones, weight * weight, None, stride, padding, dilation, groups)[0]  # [C_out, *S']
    kernel = tuple(weight.shape[2:])
    pairs = conv_padding_pairs(padding, kernel, dilation)
    tap = _tap_index(input_shape, kernel, stride, dilation, pairs, padding_mode)  # [K, P']
    same = (tap.unsqueeze(1) == tap.unsqueeze(0)).to(weight.dtype)  # E [K, K, P']
    wf = weight.flatten(2)  # [C_out, C_in/groups, K]
    gram = torch.einsum("cik,cil->ckl", wf, wf)  # [C_out, K, K]
    out = _conv_out_shape(input_shape, kernel, stride, dilation, pairs)
    rn = gram.reshape(gram.shape[0], -1) @ same.reshape(-1, same.shape[-1]).to(weight.device)  # [C_out, P']
    return rn.view(gram.shape[0], *out)


def _conv_out_shape(input_shape, kernel, stride, dilation, pairs) -> tuple[int, ...]:
    n = len(input_shape)
    s, d = _ntuple(stride, n), _ntuple(dilation, n)
    return tuple((L + b + a - di * (k - 1) - 1) // si + 1
                 for L, k, si, di, (b, a) in zip(input_shape, kernel, s, d, pairs))


def conv_layer_jacobian_sq(slope: Tensor, rn: Tensor) -> Tensor:
    """Per-example ``||S||_F² = Σ_{c,p} σ'(z_{c,p})² r_{c,p}``: ``[N, C, *S]``, ``[C, *S]`` → ``[N]``.

    The conv counterpart of :func:`layer_jacobian_sq` (sums over channels *and* positions).

    >>> conv_layer_jacobian_sq(torch.ones(2, 1, 3), torch.tensor([[2.0, 3.0, 2.0]]))
    tensor([7., 7.])
    """
    if tuple(slope.shape[1:]) != tuple(rn.shape):
        raise ValueError(f"expected row norms of shape {tuple(slope.shape[1:])}, got {tuple(rn.shape)}")
    return (slope * slope).flatten(1) @ rn.reshape(-1)  # [N, C·S] @ [C·S] → [N]


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


def _second_derivative_times(a: Tensor, scale: Tensor, c: Tensor) -> Tensor:
    """``scale · p''(c)`` by Horner over the pre-scaled coefficients of p'' (``[D-1, F]``, tiny),
    so the scale costs no pass over ``[N, F]``; ``[F]`` when p'' is constant (degree 2)."""
    k = torch.arange(2, a.shape[0], dtype=a.dtype, device=a.device).unsqueeze(1)  # [D-1, 1]
    dda = a[2:] * (k * (k - 1)) * scale  # [D-1, F]
    v = dda[-1]
    for j in range(dda.shape[0] - 2, -1, -1):
        v = torch.addcmul(dda[j], v, c)
    return v


@functools.lru_cache(maxsize=16)
def _inclusive_bounds(bound: float, dtype: torch.dtype) -> tuple[float, float]:
    """``(-b, b)`` one ulp wider than ``bound`` in ``dtype``: hardtanh_backward's test is strict
    (-b < z < b) and the clamp's derivative at |z| = R is 1 (as autograd's), so the mask is ≤."""
    try:
        b = torch.nextafter(torch.tensor(bound, dtype=dtype), torch.tensor(math.inf, dtype=dtype)).item()
    except RuntimeError:  # a dtype without nextafter (bfloat16): the float64 neighbour
        b = math.nextafter(bound, math.inf)
    return -b, b


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
                v = _second_derivative_times(a, 2.0 * rn, c)  # 2 r p''(c)   [N, F] (or [F] for d = 2)
                if clamp:  # σ'' = 0 outside [-R, R]: keep v where |z| <= R, in one pass
                    lo, hi = _inclusive_bounds(R, z.dtype)
                    v = torch.ops.aten.hardtanh_backward(v.expand_as(z), z, lo, hi)
                t = torch.addcmul(t, gj.unsqueeze(-1), v)
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
    m = _basis_matrix_np(basis, degree, bound)  # [D+1, D+1]
    A, dA = _design(u, degree, bound, range_control)  # [P, D+1] each, in power coefficients
    A, dA = A @ m, dA @ m  # in θ
    sw = np.exp(-0.25 * (u / spread) ** 2)  # sqrt of the Gaussian weight
    lhs = np.concatenate([A * sw[:, None], dA * sw[:, None]])  # [2P, D+1]
    rhs = np.concatenate([value * sw, slope * sw])  # [2P]
    if range_control == "linear" and degree >= 3:  # degree 2 cannot bend: tanh would become 0
        ends, _ = _design(np.array([-bound, bound]), degree, bound, range_control, slopes_only=True)
        return torch.tensor(_constrained_lstsq(lhs, rhs, ends @ m, np.array(ASYMPTOTIC_SLOPES[init])), device="cpu")
    theta, *_ = np.linalg.lstsq(lhs, rhs, rcond=None)
    return torch.tensor(theta, device="cpu")


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
