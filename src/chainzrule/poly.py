"""The Polynomial Engine: a learnable polynomial activation per feature.

``PolynomialActivation(num_features, degree=3)`` computes, for each feature ``i``,

    p_i(u) = a_{i,0} + a_{i,1} u + ... + a_{i,d} u^d        (Horner's rule)

on a *working interval* ``[-R, R]`` (``bound=R``, default 3). What happens outside that interval
is the **range control**, and it is part of the activation σ, so :meth:`derivative` is the exact
derivative of what :meth:`forward` computes:

``"linear"`` (default)
    σ(z) = p(c) + p'(c) (z - c) with c = clamp(z, -R, R): inside the interval the polynomial,
    outside its tangent line at ±R (matching value and slope, so σ is C¹). σ'(z) = p'(c).
    Then |σ'| ≤ max_{|u|≤R} |p'(u)|, a bound we compute exactly (:meth:`max_slope`), the output
    grows at most linearly, and a deep stack neither overflows nor produces gradient spikes.
    Chosen as default because it is the only option that keeps the activation *identical* to the
    polynomial on the working interval while making the slope bound certifiable; on MNIST
    (guide §2) it removed the gradient spikes of a raw cubic (PGV 19.0 → 2.7) at equal accuracy.
``"tanh"``
    σ(z) = p(R tanh(z / R)): the input is squashed into the interval. σ'(z) = p'(u)(1 - tanh²(z/R)),
    bounded by the same max |p'|; the output is bounded.
``"none"``
    The raw polynomial, σ = p(z). Grows like |z|^d, its slope is unbounded
    (:meth:`max_slope` returns ``inf``). Provided only for ablations.

Initial coefficients are a least-squares fit to a named activation (gelu, silu, tanh, identity)
on value *and* derivative over the working interval, so a fresh ChainzRule network starts as a
smooth GELU-like network.

>>> import torch
>>> act = PolynomialActivation(4, degree=3, init="gelu")
>>> z = torch.linspace(-5, 5, 8).unsqueeze(1).expand(8, 4)    # [8, 4]
>>> act(z).shape
torch.Size([8, 4])
>>> bool((act.derivative(z).abs() <= act.max_slope() + 1e-6).all())
True
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor, nn

from .errors import ConfigError

RANGE_CONTROLS = ("linear", "tanh", "none")


def _target_function(name: str):
    """Value and derivative (numpy, float64) of the activation a polynomial is fitted to."""
    from scipy.special import erf

    sqrt2 = math.sqrt(2.0)

    def gelu(u):
        cdf = 0.5 * (1.0 + erf(u / sqrt2))
        pdf = np.exp(-0.5 * u * u) / math.sqrt(2.0 * math.pi)
        return u * cdf, cdf + u * pdf

    def silu(u):
        s = 1.0 / (1.0 + np.exp(-u))
        return u * s, s * (1.0 + u * (1.0 - s))

    def tanh(u):
        t = np.tanh(u)
        return t, 1.0 - t * t

    def identity(u):
        return u, np.ones_like(u)

    table = {"gelu": gelu, "silu": silu, "tanh": tanh, "identity": identity}
    if name not in table:
        raise ConfigError(f"unknown init {name!r}: expected one of {', '.join(sorted(table))}")
    return table[name]


def fit_coefficients(init: str, degree: int, bound: float, points: int = 401) -> Tensor:
    """Least-squares coefficients ``[degree + 1]`` (a_0 first) fitting ``init`` on value and slope.

    Minimises Σ_u (p(u) - f(u))² + (p'(u) - f'(u))² over ``points`` equispaced u in [-bound, bound].

    >>> c = fit_coefficients("identity", 3, 3.0)
    >>> [round(float(v), 6) + 0.0 for v in c]
    [0.0, 1.0, 0.0, 0.0]
    """
    f = _target_function(init)
    u = np.linspace(-bound, bound, points)  # [P]
    value, slope = f(u)
    powers = np.arange(degree + 1)  # [D+1]
    vander = u[:, None] ** powers  # [P, D+1]
    dvander = np.zeros_like(vander)  # [P, D+1]
    dvander[:, 1:] = powers[1:] * u[:, None] ** (powers[1:] - 1)
    A = np.concatenate([vander, dvander])  # [2P, D+1]
    b = np.concatenate([value, slope])  # [2P]
    coef, *_ = np.linalg.lstsq(A, b, rcond=None)
    return torch.from_numpy(coef)


def horner(coefficients: Tensor, u: Tensor) -> tuple[Tensor, Tensor]:
    """Value and derivative of per-feature polynomials by Horner's rule.

    ``coefficients`` is ``[degree + 1, F]`` (row k holds a_k of every feature), ``u`` is
    ``[..., F]``; returns ``(p(u), p'(u))``, both ``[..., F]``.

    >>> p, dp = horner(torch.tensor([[1.0], [2.0], [3.0]]), torch.tensor([[2.0]]))  # 1 + 2u + 3u²
    >>> float(p), float(dp)
    (17.0, 14.0)
    """
    degree = coefficients.shape[0] - 1
    p = coefficients[degree].expand_as(u)  # [..., F]
    dp = None
    for k in range(degree - 1, -1, -1):
        dp = p if dp is None else torch.addcmul(p, dp, u)  # dp ← dp·u + p      [..., F]
        p = torch.addcmul(coefficients[k], p, u)  # p ← p·u + a_k                   [..., F]
    if dp is None:  # degree 0 is refused by the module; kept for completeness
        dp = torch.zeros_like(u)
    return p, dp


# --------------------------------------------------------------------------------------------
# Fused kernel: the hot path of "linear" (and "none") range control.
#
# Eager autograd through ``value_and_derivative`` records ~9 elementwise ops in the forward and
# ~25 in the backward (each addcmul of Horner's rule gets its own backward node, coefficient
# grads are reduced one broadcast at a time). ``_PolyFn`` computes σ, σ' and, with DREG, the
# per-example J = Σ_i σ'(z_i)² r_i in one Horner sweep and has a hand-written backward:
#
#     σ(z) = p(c) + p'(c) e,    c = clamp(z, -R, R),  e = z - c  (e ≡ 0 inside the interval)
#     ∂σ/∂z = p'(c),            ∂σ/∂a_k = c^k + k c^(k-1) e
#     ∂J/∂z_i = p'(c_i) v_i     with v = 2 r p''(c) 1[|z| ≤ R]
#     ∂J/∂a_k = 2 r Σ_i p'(c_i) k c_i^(k-1),   ∂J/∂r_i = p'(c_i)²
#
# Because r is per feature and g_J per example, the DREG parts of the coefficient and row-norm
# gradients are *one* mat-vec: the forward writes B = [p'², p', p' c, …, p' c^(D-1)] into one
# ``[D+1, N, F]`` buffer, and the backward computes g_Jᵀ B (``[D+1, F]``): row 0 is g_r, row k
# is Σ_n g_J p' c^(k-1). The input gradient is g_z = p'(c) (g_h + g_J v), two elementwise ops.
# The value part of the coefficient gradient is Σ_n g_h c^k (d products, d+1 batch sums); its
# continuation part Σ_n k g_h e c^(k-1) needs only two more products, g_h e and g_h e c, since
# c = ±R wherever e ≠ 0 (so c^(k-1) = R^(k-1) or R^(k-2) c).
#
# The backward uses only differentiable torch ops. When it runs with grad mode on
# (``create_graph=True``: double backward, gradgradcheck, input-gradient penalties) it recomputes
# the intermediates from the saved *inputs* with out-of-place ops, so the graph of the gradient
# reaches z, a and r; otherwise it reuses what the forward saved. When no element lies
# outside [-R, R] (one min/max reduction) the clamp and continuation terms are skipped: then
# c = z, e = 0 and every formula above reduces exactly. Under torch.func transforms,
# forward-mode AD and torch.compile the module uses the plain ops of ``value_and_derivative``
# (same math, autograd-generated derivatives; the compiler fuses those itself).
# --------------------------------------------------------------------------------------------


_BUFFERED = True  # no-grad forward fills the DREG buffer B in place (False: torch.stack; ablations)


def _fused_allowed(*tensors: Tensor) -> bool:
    """True when the custom autograd.Functions may be used: eager mode, no functorch transform or
    forward-mode AD. Under torch.compile the plain ops are traced instead, which the compiler
    fuses on its own (and the Functions' data-dependent shortcuts would break the graph)."""
    if torch.compiler.is_compiling():
        return False
    if torch._C._are_functorch_transforms_active():
        return False
    if getattr(torch.autograd.forward_ad, "_current_level", -1) >= 0:
        return False
    return not any(torch._C._functorch.is_functorch_wrapped_tensor(t) for t in tensors if t is not None)


def _any_outside(z: Tensor, bound: float) -> bool:
    """Whether some element of ``z`` lies outside [-bound, bound] (one min/max reduction)."""
    if z.numel() == 0:
        return False
    lo, hi = torch.aminmax(z)  # two 0-d tensors
    return lo.item() < -bound or hi.item() > bound


_CONSTANTS: dict = {}


def _constants(d: int, dtype, device, bound: float) -> tuple[Tensor, ...]:
    """Cached ``[D, 1]`` / ``[D-1, 1]`` columns: k, 2k, 2k(k-1) (k = 2..d), and the weights of
    Σ gh e and Σ gh e c in the continuation part of ∂/∂a_k (see ``_value_coefficient_grad``)."""
    key = (d, dtype, device, bound)
    if key not in _CONSTANTS:
        with torch.inference_mode(False), torch.no_grad():  # plain tensors, usable in any mode
            k = torch.arange(1, d + 1, dtype=dtype, device=device).unsqueeze(1)  # [D, 1]
            scale = k * bound ** (2 * torch.div(k - 1, 2, rounding_mode="floor"))  # k R^(2⌊(k-1)/2⌋)
            odd = (k % 2 == 1).to(dtype)  # k odd: weight of Σ gh e; k even: of Σ gh e c
            _CONSTANTS[key] = (k, 2 * k, (2 * k * (k - 1))[1:], scale * odd, scale * (1 - odd))
    return _CONSTANTS[key]


def _next_up(bound: float, dtype) -> float:
    """The smallest ``dtype`` number above ``bound``, so ``z < it`` ⟺ ``z ≤ bound`` in ``dtype``."""
    key = ("next_up", bound, dtype)
    if key not in _CONSTANTS:
        b = torch.tensor(bound, dtype=dtype)
        _CONSTANTS[key] = torch.nextafter(b, torch.tensor(math.inf, dtype=dtype)).item()
    return _CONSTANTS[key]


def _horner_rows(rows, u: Tensor, out: Tensor | None = None) -> Tensor:
    """Σ_k rows[k] u^k by Horner's rule; ``rows[k]`` is ``[F]``, ``u`` ``[N, F]`` → ``[N, F]``.

    With ``out`` (no-grad only) the last step writes into it.
    """
    if len(rows) == 1:
        acc = rows[0].expand_as(u)
        return acc if out is None else out.copy_(acc)
    acc = rows[-1]
    for k in range(len(rows) - 2, -1, -1):
        last = k == 0 and out is not None
        acc = torch.addcmul(rows[k], acc, u, out=out) if last else torch.addcmul(rows[k], acc, u)
    return acc  # acc ← acc·u + a_k at each step


def _poly_parts(z: Tensor, a: Tensor, rn: Tensor | None, bound: float, clamp: bool):
    """Everything the forward computes and the backward needs.

    Returns ``(c, e, h, dp, J, B, v)``: c the clamped input (``z`` when not clamping), e = z - c
    (None when not clamping), h = σ(z), dp = σ'(z) = p'(c); with ``rn``: J = (dp²) @ rn ``[N]``,
    B ``[D+1, N, F]`` = [dp², dp, dp c, …, dp c^(D-1)] and v = 2 rn p''(c) 1[|z| ≤ R] (``[N, F]``,
    or ``[F]`` for degree 2 with nothing clamped; None for degree 1); otherwise J = B = v = None.
    In no-grad mode buffers are filled in place; with grad mode on only out-of-place ops are used.
    """
    d = a.shape[0] - 1
    fast = _BUFFERED and not torch.is_grad_enabled()
    k, _, k2k1, _, _ = _constants(d, a.dtype, a.device, bound)
    if clamp:
        c = z.clamp(-bound, bound)  # [N, F]
        e = z - c  # [N, F], zero inside the interval
    else:
        c, e = z, None
    p = _horner_rows(a.unbind(0), c)  # [N, F]
    da = (a[1:] * k).unbind(0)  # coefficients of p', D × [F]
    J = B = v = None
    if rn is None:
        dp = _horner_rows(da, c)  # [N, F]
    else:
        N, F = c.shape
        if fast:
            B = torch.empty(d + 1, N, F, dtype=c.dtype, device=c.device)  # [D+1, N, F]
            dp = _horner_rows(da, c, out=B[1])  # [N, F] (a contiguous slice of B)
            torch.mul(dp, dp, out=B[0])
            for j in range(2, d + 1):
                torch.mul(B[j - 1], c, out=B[j])  # dp c^(j-1)
        else:
            dp = _horner_rows(da, c)
            cols = [dp * dp, dp]
            for _ in range(2, d + 1):
                cols.append(cols[-1] * c)
            B = torch.stack(cols)  # [D+1, N, F]
        J = B[0] @ rn  # [N, F] @ [F] → [N]
        if d >= 2:
            dda = a[2:] * k2k1 * rn  # coefficients of 2 r p'', [D-1, F]
            v = _horner_rows(dda.unbind(0), c) if d >= 3 else dda[0]  # [N, F] or [F]
            if e is not None:  # σ'' = 0 outside [-R, R]: v·1[|z| ≤ R] in one op, no bool mask
                r = _next_up(bound, z.dtype)  # hardtanh_backward's test is strict: -r < z < r
                v = torch.ops.aten.hardtanh_backward(v.expand(N, F), z, -r, r)  # [N, F]
    if e is None:
        h = p
    elif fast:
        h = p.addcmul_(dp, e)  # tangent continuation outside [-R, R]
    else:
        h = torch.addcmul(p, dp, e)
    return c, e, h, dp, J, B, v


def _value_coefficient_grad(gh: Tensor, c: Tensor, e: Tensor | None, d: int, bound: float) -> Tensor:
    """``Σ_n gh c^k + k gh e c^(k-1)`` for k = 0..d (the σ part of ∂/∂a), ``[D+1, F]``.

    Where e ≠ 0, c = ±R, so e c^(k-1) is R^(k-1) e (k odd) or R^(k-2) e c (k even): the whole
    continuation part needs only Σ gh e and Σ gh e c, two extra products whatever the degree.
    (Writing the products into one buffer and reducing it with one mat-vec was measured ~1.5%
    slower per train step than these separate products and sums, so there is one code path.)
    """
    rows, t = [gh.sum(0)], gh
    for _ in range(d):
        t = t * c  # gh c^k   [N, F]
        rows.append(t.sum(0))  # [F]
    out = torch.stack(rows)  # [D+1, F]
    if e is not None:  # + k R^(k-1) Σ gh e (k odd), k R^(k-2) Σ gh e c (k even)
        ge = gh * e  # [N, F]
        _, _, _, w_e, w_ec = _constants(d, c.dtype, c.device, bound)
        tail = out[1:] + w_e * ge.sum(0) + w_ec * (ge * c).sum(0)  # [D, F]
        out = torch.cat([out[:1], tail])
    return out


class _PolyFn(torch.autograd.Function):
    """σ(z), and J = Σ_i σ'(z_i)² rn_i when ``rn`` is given, for 2-D ``z`` ``[N, F]``."""

    @staticmethod
    def forward(ctx, z: Tensor, a: Tensor, rn: Tensor | None, bound: float, clamp: bool):
        c, e, h, dp, J, B, v = _poly_parts(z, a, rn, bound, clamp)
        ctx.bound, ctx.clamp = bound, clamp
        ctx.save_for_backward(z, a, rn, c if clamp else None, e, dp, B, v)
        ctx.set_materialize_grads(False)
        return h if rn is None else (h, J)

    @staticmethod
    def backward(ctx, gh: Tensor | None, gJ: Tensor | None = None):
        z, a, rn, c, e, dp, B, v = ctx.saved_tensors
        if torch.is_grad_enabled():  # create_graph: rebuild the intermediates from the inputs
            c, e, _, dp, _, B, v = _poly_parts(z, a, rn, ctx.bound, ctx.clamp)
        elif c is None:
            c = z
        d = a.shape[0] - 1
        need_z, need_a, need_rn = ctx.needs_input_grad[:3]
        gz = g_a = g_rn = None
        if need_z:
            t = gh  # g_h + g_J v
            if gJ is not None and v is not None:
                gjv = gJ.unsqueeze(-1)  # [N, 1]
                t = gjv * v if t is None else torch.addcmul(t, gjv, v)
            gz = torch.zeros_like(z) if t is None else t * dp  # [N, F]
        if need_a:
            g_a = _value_coefficient_grad(gh, c, e, d, ctx.bound) if gh is not None else torch.zeros_like(a)
        if gJ is not None and (need_a or need_rn):
            R = gJ @ B  # Σ_n g_J[n] B[k, n, :], one batched mat-vec   [D+1, F]
            if need_rn:
                g_rn = R[0]
            if need_a:  # + Σ_n g_J 2 r k p' c^(k-1)
                _, k2, _, _, _ = _constants(d, a.dtype, a.device, ctx.bound)
                g_dreg = R[1:] * k2 * rn  # [D, F]
                if torch.is_grad_enabled():
                    g_a = torch.cat([g_a[:1], g_a[1:] + g_dreg])
                else:
                    g_a[1:] += g_dreg  # g_a is a fresh tensor
        return gz, g_a, g_rn, None, None


class PolynomialActivation(nn.Module):
    """Learnable per-feature polynomial activation with range control (see module docstring).

    Args:
        num_features: size of the last dimension of the input.
        degree: polynomial degree, ≥ 1 (default 3, the papers' cubic).
        init: activation the initial coefficients are fitted to: gelu, silu, tanh or identity.
        bound: half-width R of the working interval [-R, R].
        range_control: "linear" (default), "tanh" or "none".

    Shapes: input ``[..., num_features]`` → output ``[..., num_features]``.
    Parameter: ``coefficients`` ``[degree + 1, num_features]``, row k = coefficient of u^k.

    >>> act = PolynomialActivation(3, degree=2, init="identity")
    >>> act(torch.tensor([[1.0, -2.0, 10.0]])).detach()
    tensor([[ 1., -2., 10.]])
    """

    def __init__(
        self,
        num_features: int,
        degree: int = 3,
        init: str = "gelu",
        bound: float = 3.0,
        range_control: str = "linear",
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        if not isinstance(num_features, int) or num_features < 1:
            raise ConfigError(f"num_features must be a positive integer, got {num_features!r}")
        if not isinstance(degree, int) or degree < 1:
            raise ConfigError(f"degree must be an integer >= 1, got {degree!r}")
        if not (isinstance(bound, (int, float)) and math.isfinite(bound) and bound > 0):
            raise ConfigError(f"bound must be a positive finite number, got {bound!r}")
        if range_control not in RANGE_CONTROLS:
            raise ConfigError(
                f"unknown range_control {range_control!r}: expected one of {', '.join(RANGE_CONTROLS)}"
            )
        _target_function(init)  # validates the name early
        self.num_features = num_features
        self.degree = degree
        self.init = init
        self.bound = float(bound)
        self.range_control = range_control
        self.coefficients = nn.Parameter(
            torch.empty(degree + 1, num_features, device=device, dtype=dtype)
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Refit every feature's coefficients to ``init`` on the working interval."""
        coef = fit_coefficients(self.init, self.degree, self.bound)  # [D+1]
        with torch.no_grad():
            self.coefficients.copy_(coef.to(self.coefficients).unsqueeze(1).expand_as(self.coefficients))

    def extra_repr(self) -> str:
        return (
            f"num_features={self.num_features}, degree={self.degree}, init={self.init!r}, "
            f"bound={self.bound}, range_control={self.range_control!r}"
        )

    def _check(self, z: Tensor) -> None:
        if z.shape[-1] != self.num_features:
            raise ConfigError(
                f"expected input with {self.num_features} features in the last dimension, "
                f"got shape {tuple(z.shape)}"
            )

    def value_and_derivative(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """``(σ(z), σ'(z))`` in one pass, both ``[..., F]``; σ' is exact for the range control."""
        self._check(z)
        a = self.coefficients  # [D+1, F]
        R = self.bound
        if self.range_control == "linear":
            c = z.clamp(-R, R)  # [..., F]
            p, dp = horner(a, c)  # [..., F] each
            value = torch.addcmul(p, dp, z - c)  # tangent continuation outside [-R, R]
            return value, dp
        if self.range_control == "tanh":
            t = torch.tanh(z / R)  # [..., F]
            p, dp = horner(a, t * R)
            return p, dp * (1.0 - t * t)
        return horner(a, z)

    def _fused(self, z: Tensor) -> bool:
        return self.range_control in ("linear", "none") and _fused_allowed(z, self.coefficients)

    def _apply_fused(self, z: Tensor, rn: Tensor | None):
        flat = z.dim() != 2
        z2 = z.reshape(-1, self.num_features) if flat else z  # [N, F]
        clamp = self.range_control == "linear" and _any_outside(z2, self.bound)
        out = _PolyFn.apply(z2, self.coefficients, rn, self.bound, clamp)
        if not flat:
            return out
        if rn is None:
            return out.view(z.shape)
        h, J = out
        return h.view(z.shape), J.view(z.shape[:-1])

    def forward(self, z: Tensor) -> Tensor:
        """σ(z), ``[..., F]`` → ``[..., F]``."""
        self._check(z)
        if self._fused(z):
            return self._apply_fused(z, None)
        return self.value_and_derivative(z)[0]

    def value_and_jacobian_sq(self, z: Tensor, row_norms_sq: Tensor) -> tuple[Tensor, Tensor]:
        """``(σ(z), Σ_i σ'(z_i)² r_i)``: ``[..., F]``, ``[F]`` → ``[..., F]``, ``[...]``.

        What a DREG-tracking :class:`~chainzrule.layers.HiddenLayer` calls (``r`` = squared row
        norms of its weight); equal to ``(σ, (σ'²) @ r)`` from :meth:`value_and_derivative`, in
        one fused pass with a hand-written backward for "linear" and "none".
        """
        self._check(z)
        if self._fused(z):
            return self._apply_fused(z, row_norms_sq)
        value, slope = self.value_and_derivative(z)
        return value, (slope * slope) @ row_norms_sq

    def derivative(self, z: Tensor) -> Tensor:
        """σ'(z), the exact elementwise derivative of :meth:`forward`, ``[..., F]``."""
        return self.value_and_derivative(z)[1]

    @torch.no_grad()
    def max_slope(self) -> Tensor:
        """Certified ``max_z |σ'(z)|`` per feature, ``[F]`` (``inf`` for ``range_control="none"``).

        For "linear" and "tanh" this is max |p'(u)| over u in [-R, R], found exactly from the
        endpoints and the real roots of p'' inside the interval (the extrema of p').
        """
        F = self.num_features
        if self.range_control == "none" and self.degree > 1:
            return torch.full((F,), math.inf, dtype=self.coefficients.dtype)
        coef = self.coefficients.detach().double().cpu().numpy()  # [D+1, F]
        R = self.bound
        d = self.degree
        k = np.arange(1, d + 1)
        dcoef = coef[1:] * k[:, None]  # p' coefficients, [D, F], low → high
        out = np.empty(F)
        for i in range(F):
            cand = [-R, R]
            if d >= 3:
                ddcoef = dcoef[1:, i] * np.arange(1, d)  # p'' low → high, [D-1]
                for r in np.roots(ddcoef[::-1]):
                    if abs(r.imag) < 1e-12 and -R <= r.real <= R:
                        cand.append(r.real)
            pts = np.asarray(cand)
            vals = np.polynomial.polynomial.polyval(pts, dcoef[:, i])
            out[i] = np.abs(vals).max()
        return torch.from_numpy(out).to(self.coefficients.dtype)
