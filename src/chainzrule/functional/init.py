"""Initial coefficients: σ fitted to a named activation on the whole line (see
:func:`fit_coefficients`)."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from ..errors import ConfigError, is_int, is_number
from .basis import INITS, RANGE_CONTROLS, basis_matrix_np, check_bound, check_degree, require_choice


# --------------------------------------------------------------------------------------------
# initialization
# --------------------------------------------------------------------------------------------


def target_activation(name: str, u) -> tuple[np.ndarray, np.ndarray]:
    """Value and derivative (float64) of the activation a polynomial starts as, at the points ``u``:
    a numpy array, a number, a list or a tensor (any device; read as a float64 array).

    >>> value, slope = target_activation("gelu", [0.0, 1.0])
    >>> [round(float(v), 4) for v in slope]
    [0.5, 1.0833]
    >>> target_activation("gelu", ["0.5"])
    Traceback (most recent call last):
    ...
    chainzrule.errors.ConfigError: expected real numbers u (an array, a list or a tensor), got list ['0.5']
    """
    require_choice("init", name, INITS)
    u = _real_array(u)
    if name == "gelu":
        erf = np.vectorize(math.erf, otypes=[np.float64])  # otypes: no trial call, so no points is fine
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


def _real_array(u) -> np.ndarray:
    """``u`` as a float64 array, or a ConfigError naming what was given (strings, None and bools are
    not read as numbers, as ``np.asarray(u, dtype=float)`` would)."""
    if isinstance(u, Tensor) and u.dtype.is_floating_point and not u.is_meta:
        return u.detach().to("cpu", torch.float64).numpy()
    try:
        arr = np.asarray(u)
    except (TypeError, ValueError, RuntimeError):  # ragged lists, tensors numpy cannot read
        arr = None
    if arr is None or arr.dtype.kind not in "iuf":
        raise ConfigError(f"expected real numbers u (an array, a list or a tensor), got {type(u).__name__} "
                          f"{_short(u)}")
    return arr.astype(np.float64)


def _short(v, limit: int = 60) -> str:
    """``repr(v)``, cut to ``limit`` characters (a message quotes what was given, not all of it)."""
    r = repr(v)
    return r if len(r) <= limit else r[:limit - 3] + "..."


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

    ``points`` is the number of grid points on ``[-4R, 4R]`` (σ and σ' are fitted at each).

    ValueError unless ``degree`` is an integer in 1..12 (``DEGREE_LIMIT``, as
    :class:`~chainzrule.poly.PolynomialActivation` requires), ``bound`` a finite number > 0, ``spread`` None or a number > 0 (``inf``: every
    point weighs alike) and ``points`` an integer >= ``degree + 1`` (fewer points cannot pin down
    D+1 coefficients; a handful gives a coarse fit, the default a smooth one).

    >>> th = fit_coefficients("identity", 3, 3.0, "monomial")
    >>> [round(float(v), 6) + 0.0 for v in th]     # identity = t·R in the basis of t = u/R
    [0.0, 3.0, 0.0, 0.0]
    """
    require_choice("range_control", range_control, RANGE_CONTROLS)
    check_degree(degree)
    check_bound(bound)
    if spread is not None and not (is_number(spread) and spread > 0):  # nan > 0 is False
        raise ConfigError(f"expected spread None or a number > 0 (the standard deviation of the fit's Gaussian "
                          f"weight), got {spread!r}")
    if not (is_int(points) and points >= degree + 1):
        raise ConfigError(f"expected an integer number of points >= degree + 1 = {degree + 1} (grid points on "
                          f"[-4R, 4R]), got {points!r}")
    spread = float(bound) if spread is None else float(spread)
    u = np.linspace(-4 * bound, 4 * bound, points)  # [P]
    value, slope = target_activation(init, u)
    m = basis_matrix_np(basis, degree, bound)  # [D+1, D+1]
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
