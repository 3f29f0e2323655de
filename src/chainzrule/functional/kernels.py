"""The hand-written autograd kernels of the Polynomial Engine (see the derivation below)."""

from __future__ import annotations

import functools
import math

import torch
from torch import Tensor

from .basis import _horner as horner  # unchecked: the public entry points check the arguments

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


class PolyActivationFn(torch.autograd.Function):
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
        ctx.save_for_forward(z, a, output[1])  # the same tensors (torch.func's vmap rule keeps one set)
        ctx.bound, ctx.clamp = bound, clamp
        ctx.set_materialize_grads(False)

    @staticmethod
    def jvp(ctx, tz: Tensor | None, ta: Tensor | None, _tb=None, _tc=None):
        """Forward mode (``torch.func.jvp``, ``jacfwd``, ``hessian``): ``σ̇ = p'(c) ż + ṗ(c) + ṗ'(c) e``
        with ``ṗ`` the polynomial of the coefficient tangents ``ȧ``; σ' is not differentiable."""
        z, a, _ = ctx.saved_tensors
        c = z.clamp(-ctx.bound, ctx.bound) if ctx.clamp else z  # [N, F]
        return _value_tangent(z, a, c, ctx.clamp, tz, ta), None

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


class PolyJacobianSqFn(torch.autograd.Function):
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
        ctx.save_for_forward(z, a, rn, output[2])  # the same tensors (torch.func's vmap rule keeps one set)
        ctx.bound, ctx.clamp = bound, clamp
        ctx.set_materialize_grads(False)

    @staticmethod
    def jvp(ctx, tz: Tensor | None, ta: Tensor | None, trn: Tensor | None, _tb=None, _tc=None):
        """Forward mode: σ̇ as in :class:`PolyActivationFn`, and
        ``J̇ = Σ_i 2 p'(c_i) ṡ_i r_i + p'(c_i)² ṙ_i`` with ``ṡ = p''(c) 1[|z| ≤ R] ż + ṗ'(c)``."""
        z, a, rn, _ = ctx.saved_tensors
        R, clamp = ctx.bound, ctx.clamp
        c = z.clamp(-R, R) if clamp else z  # [N, F]
        dp = _slope(a, c)  # p'(c)   [N, F]
        th = _value_tangent(z, a, c, clamp, tz, ta)
        ts = torch.zeros_like(z)  # the slope's tangent   [N, F]
        if tz is not None and a.shape[0] > 2:
            v = _second_derivative_times(a, torch.ones_like(rn), c)  # p''(c)
            if clamp:
                v = torch.where(z.abs() <= R, v, torch.zeros_like(v))
            ts = ts + v * tz
        if ta is not None:
            ts = ts + _slope(ta, c)
        tj = (2.0 * dp * ts) @ rn  # [N]
        if trn is not None:
            tj = tj + (dp * dp) @ trn
        return th, tj, None

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


def _value_tangent(z: Tensor, a: Tensor, c: Tensor, clamp: bool, tz: Tensor | None, ta: Tensor | None) -> Tensor:
    """σ's forward-mode tangent ``p'(c) ż + ṗ(c) + ṗ'(c)(z − c)``, ``[N, F]``."""
    out = torch.zeros_like(z)
    if tz is not None:
        out = out + _slope(a, c) * tz
    if ta is not None:
        tp, tdp = horner(ta, c)  # ṗ(c), ṗ'(c)
        out = out + (torch.addcmul(tp, tdp, z - c) if clamp else tp)
    return out


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


class LinearRowNormSqFn(torch.autograd.Function):
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
        ctx.save_for_forward(x, w)  # the same tensors (torch.func's vmap rule keeps one set)
        ctx.has_bias = b is not None
        ctx.set_materialize_grads(False)

    @staticmethod
    def jvp(ctx, tx: Tensor | None, tw: Tensor | None, tb: Tensor | None):
        """Forward mode: ``ż = ẋ Wᵀ + x Ẇᵀ + ḃ``, ``ṙ_i = 2 Σ_j W_ij Ẇ_ij``."""
        x, w = ctx.saved_tensors
        tz = torch.zeros(x.shape[0], w.shape[0], dtype=x.dtype, device=x.device)  # [N, out]
        if tx is not None:
            tz = tz + tx @ w.t()
        if tw is not None:
            tz = tz + x @ tw.t()
        if tb is not None:
            tz = tz + tb
        trn = 2.0 * (w * tw).sum(-1) if tw is not None else torch.zeros_like(w[:, 0])  # [out]
        return tz, trn

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
            elif torch.is_grad_enabled():  # create_graph, torch.func (jacrev, hessian): out of place, so
                # the op is differentiable and vmaps when W is batched and g_zᵀ x is not
                gw = torch.addcmul(gz.t() @ x, w, (2.0 * grn).unsqueeze(-1))
            else:  # g_zᵀ x, then += 2 g_r ⊙ W in place on that fresh tensor: W read once, no second
                # [out, in] tensor (measured faster than one beta = 1 GEMM over a W-sized temporary)
                gw = (gz.t() @ x).addcmul_(w, (2.0 * grn).unsqueeze(-1))
        if gz is not None and ctx.has_bias and ctx.needs_input_grad[2]:
            gb = gz.sum(0)  # [out]
        return gx, gw, gb
