"""σ, σ' and the layer term ‖S‖_F² of a polynomial activation, and the linear map's row norms
(plain-op references and the fused kernels' entry points; see :mod:`chainzrule.functional`)."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from ..errors import ConfigError
from .basis import RANGE_CONTROLS, _horner as horner, check_bound, check_coefficients, require_choice
from .kernels import LinearRowNormSqFn, PolyActivationFn, PolyJacobianSqFn


def _given(t) -> str:
    """What a message shows was given: a tensor's shape, or the type of anything else."""
    return f"shape {tuple(t.shape)}" if isinstance(t, Tensor) else type(t).__name__


def _check_row_norms(rn: Tensor, of: Tensor, what: str) -> None:
    """ConfigError unless the row norms ``rn`` are a tensor ``[F]``, one per feature of ``of``
    ``[..., F]`` (comparisons of shapes: no host sync)."""
    if not isinstance(of, Tensor):
        raise ConfigError(f"expected {what} a tensor [..., F], got {type(of).__name__}")
    if not (isinstance(rn, Tensor) and of.dim() >= 1 and tuple(rn.shape) == (of.shape[-1],)):
        F = of.shape[-1] if of.dim() else "F"
        raise ConfigError(f"expected row norms rn of shape ({F},), one per feature of {what} {tuple(of.shape)}, "
                          f"got {_given(rn)}")


def _check_weight(weight: Tensor) -> None:
    """ConfigError unless ``weight`` is a ``[out, in]`` matrix."""
    if not (isinstance(weight, Tensor) and weight.dim() == 2):
        raise ConfigError(f"expected a weight of shape [out, in], got {_given(weight)}")


def poly_activation_and_slope(z: Tensor, a: Tensor, bound: float, range_control: str = "linear") -> tuple[Tensor, Tensor]:
    """``(σ(z), σ'(z))`` with plain torch ops, both ``[..., F]``; ``a`` power coefficients ``[D+1, F]``.

    Differentiable to any order, traceable by torch.func, torch.compile, torch.export and
    ``torch.jit.trace`` (no data-dependent branch). ValueError unless ``bound`` is finite and
    > 0, ``a`` has degree D >= 1 and ``z``'s last dimension is its F (or ``a`` has one column,
    shared by every feature); the same checks for every function below that takes them.
    """
    check_bound(bound)
    check_coefficients(a, z)
    return _activation_and_slope(z, a, bound, range_control)


def _activation_and_slope(z: Tensor, a: Tensor, bound: float, range_control: str) -> tuple[Tensor, Tensor]:
    """:func:`poly_activation_and_slope` without the argument checks (its callers' own)."""
    if range_control == "linear":
        c = z.clamp(-bound, bound)  # [..., F]
        p, dp = horner(a, c)
        return torch.addcmul(p, dp, z - c), dp  # tangent continuation outside [-R, R]
    if range_control == "tanh":
        s = torch.tanh(z / bound)  # [..., F]
        p, dp = horner(a, s * bound)
        return p, dp * (1.0 - s * s)
    require_choice("range_control", range_control, RANGE_CONTROLS)
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
    check_bound(bound)
    check_coefficients(a, z)
    if range_control == "tanh" or not _eager():
        return _activation_and_slope(z, a, bound, range_control)[0]
    require_choice("range_control", range_control, RANGE_CONTROLS)
    z2 = z.reshape(-1, z.shape[-1])  # [N, F]
    h, _ = PolyActivationFn.apply(z2, a, float(bound), range_control == "linear")
    return h.view(z.shape)


def row_norms_sq(weight: Tensor) -> Tensor:
    """``||W_i,:||²`` for every row of a ``[out, in]`` weight, ``[out]``; ConfigError for a weight
    that is not 2-D (a conv kernel's row norms depend on the input size: :func:`conv_row_norms_sq`).

    >>> row_norms_sq(torch.tensor([[3.0, 4.0], [1.0, 0.0]]))
    tensor([25.,  1.])
    >>> row_norms_sq(torch.ones(3))
    Traceback (most recent call last):
    ...
    chainzrule.errors.ConfigError: expected a weight of shape [out, in], got shape (3,)
    """
    _check_weight(weight)
    return (weight * weight).sum(dim=1)  # [out]


def linear_and_row_norms_sq(x: Tensor, weight: Tensor, bias: Tensor | None) -> tuple[Tensor, Tensor]:
    """``(x Wᵀ + b, ||W_i,:||²)``: ``[..., in]`` → ``[..., out]``, ``[out]``.

    In eager mode (and without autocast) one autograd node whose backward builds the weight
    gradient once, ``g_W = g_zᵀ x + 2 g_r ⊙ W``, instead of two ``[out, in]`` gradients that
    autograd then sums (measured in ``BENCHMARKS.md``); elsewhere the plain ops.

    ConfigError unless ``weight`` is ``[out, in]``, ``x`` ``[..., in]`` (at least 1-D) and ``bias``
    None or ``[out]`` (shapes only, checked before any work).

    >>> linear_and_row_norms_sq(torch.ones(2, 3), torch.ones(4, 5), None)
    Traceback (most recent call last):
    ...
    chainzrule.errors.ConfigError: expected x of shape [..., 5] (the weight's in features), got shape (2, 3)
    """
    _check_weight(weight)
    if not (isinstance(x, Tensor) and x.dim() >= 1 and x.shape[-1] == weight.shape[1]):
        raise ConfigError(f"expected x of shape [..., {weight.shape[1]}] (the weight's in features), got "
                          f"{_given(x)}")
    if bias is not None and not (isinstance(bias, Tensor) and tuple(bias.shape) == (weight.shape[0],)):
        raise ConfigError(f"expected a bias of shape ({weight.shape[0]},) (the weight's out features) or None, got "
                          f"{_given(bias)}")
    if not _eager() or _autocast(x):
        return torch.nn.functional.linear(x, weight, bias), row_norms_sq(weight)
    x2 = x.reshape(-1, x.shape[-1])  # [N, in]
    z, rn = LinearRowNormSqFn.apply(x2, weight, bias)
    return z.view(*x.shape[:-1], z.shape[-1]), rn


def _autocast(x: Tensor) -> bool:
    try:
        return torch.is_autocast_enabled(x.device.type)
    except RuntimeError:  # device types without autocast (meta): nothing to respect
        return False


def layer_jacobian_sq(slope: Tensor, rn: Tensor) -> Tensor:
    """Per-example ``||S||_F² = Σ_i σ'(z_i)² r_i``: slope ``[..., out]``, ``r`` ``[out]`` → ``[...]``.

    >>> layer_jacobian_sq(torch.tensor([[1.0, 0.5]]), torch.tensor([2.0, 4.0]))
    tensor([3.])

    ConfigError unless ``rn`` is ``[out]`` for the slope's last dimension (shapes only):

    >>> layer_jacobian_sq(torch.ones(4, 3), torch.ones(3, 1))
    Traceback (most recent call last):
    ...
    chainzrule.errors.ConfigError: expected row norms rn of shape (3,), one per feature of slope (4, 3), got shape (3, 1)
    """
    _check_row_norms(rn, slope, "slope")
    return (slope * slope) @ rn  # [..., out] @ [out] → [...]


def poly_activation_and_jacobian_sq(z: Tensor, a: Tensor, rn: Tensor, bound: float,
                                    range_control: str = "linear") -> tuple[Tensor, Tensor]:
    """``(σ(z), Σ_i σ'(z_i)² rn_i)``: ``[..., F]``, ``[D+1, F]``, ``[F]`` → ``[..., F]``, ``[...]``.

    "linear" and "none" run a fused kernel (one Horner sweep, hand-written backward that is
    itself differentiable, works under ``torch.func`` transforms); inside ``torch.compile`` /
    ``torch.export`` / ``torch.jit.trace`` the plain ops are traced instead (the compiler fuses
    them on its own). Both give the same numbers (tested to float64 precision).

    ValueError for ``bound`` and ``a`` as in :func:`poly_activation_and_slope`, and unless ``rn``
    is ``[F]``, one row norm per feature of ``z`` (shapes only, before any work).
    """
    check_bound(bound)
    check_coefficients(a, z)
    _check_row_norms(rn, z, "z")
    if range_control == "tanh" or not _eager():
        h, slope = _activation_and_slope(z, a, bound, range_control)
        return h, (slope * slope) @ rn  # layer_jacobian_sq, its shapes checked above
    require_choice("range_control", range_control, RANGE_CONTROLS)
    z2 = z.reshape(-1, z.shape[-1])  # [N, F]
    h, jsq, _ = PolyJacobianSqFn.apply(z2, a, rn, float(bound), range_control == "linear")
    return h.view(z.shape), jsq.view(z.shape[:-1])


# --------------------------------------------------------------------------------------------
# certified slope bound
# --------------------------------------------------------------------------------------------


def poly_max_slope(a: Tensor, bound: float, range_control: str = "linear") -> Tensor:
    """Certified ``max_z |σ'(z)|`` per feature, ``[F]`` (``inf`` for ``"none"`` with degree > 1).

    For "linear" and "tanh" it is ``max |p'(u)|`` over ``[-R, R]``, exact from the endpoints and
    the real roots of p'' inside the interval (the extrema of p'), computed in float64. It is then
    widened by a bound on the rounding error of evaluating σ' in ``a``'s dtype (Horner's
    ``(2D + 4)·ε·Σ_k |k a_k| R^(k-1)``, ε the dtype's unit roundoff: about 1e-16 relative in float64,
    1e-6 in float32, a few percent in bfloat16) and rounded up to that dtype, so no σ' the
    activation computes in that dtype exceeds it. ``nan`` for a feature with non-finite coefficients.

    >>> poly_max_slope(torch.tensor([[0.0], [1.0], [0.5]], dtype=torch.float64), 2.0)   # p' = 1 + u
    tensor([3.0000], dtype=torch.float64)
    >>> float(poly_max_slope(torch.tensor([[0.0], [1.0], [0.5]]), 2.0)[0]) - 3.0   # float32: + rounding
    1.430511474609375e-06

    ValueError unless ``bound`` is finite and > 0 and ``a`` is ``[D+1, F]`` with D >= 1.
    """
    require_choice("range_control", range_control, RANGE_CONTROLS)
    check_bound(bound)
    check_coefficients(a)
    coef = a.detach().double().cpu().numpy()  # [D+1, F]
    d, F = coef.shape[0] - 1, coef.shape[1]
    if range_control == "none" and d > 1:
        return torch.full((F,), math.inf, dtype=a.dtype)
    dcoef = coef[1:] * np.arange(1, d + 1)[:, None]  # p', [D, F], low → high
    out = np.full(F, np.nan)
    for i in range(F):
        if not np.isfinite(dcoef[:, i]).all():
            continue
        cand = [-bound, bound]
        if d >= 3:
            for r in np.roots((dcoef[1:, i] * np.arange(1, d))[::-1]):  # roots of p''
                if abs(r.imag) < 1e-12 and -bound <= r.real <= bound:
                    cand.append(r.real)
        out[i] = np.abs(np.polynomial.polynomial.polyval(np.asarray(cand), dcoef[:, i])).max()
    eps = torch.finfo(a.dtype).eps / 2  # unit roundoff of the dtype σ' is computed in
    powers = float(bound) ** np.arange(d)  # R^(k-1) for the rows of p'   [D]
    out = out + (2 * d + 4) * eps * (np.abs(dcoef) * powers[:, None]).sum(0)  # evaluation error   [F]
    res = torch.from_numpy(out).to(a.dtype)  # [F]
    below = res.double() < torch.from_numpy(out)  # rounded down by the cast: one step up
    return torch.where(below, torch.nextafter(res, torch.full_like(res, math.inf)), res)
