"""Bases of the polynomial coefficients, and Horner's rule (see :mod:`chainzrule.functional`).

Also the argument checks of the public entry points of :mod:`chainzrule.functional`
(:func:`check_bound`, :func:`check_degree`, :func:`check_coefficients`): Python comparisons of
scalars and shapes only (no host sync, nothing traced), run before any work; the autograd
kernels themselves never check.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from ..errors import is_int, is_number

BASES = ("legendre", "chebyshev", "monomial", "power")
RANGE_CONTROLS = ("linear", "tanh", "none")
INITS = ("gelu", "silu", "tanh", "identity")


def require_choice(kind: str, value: str, allowed: tuple[str, ...]) -> None:
    """ValueError naming the expected values and the given one when ``value`` is not allowed."""
    if value not in allowed:
        raise ValueError(f"unknown {kind} {value!r}: expected one of {', '.join(allowed)}")


def check_bound(bound) -> None:
    """ValueError unless the working-interval bound ``R`` is a finite number > 0 (``[-R, R]`` is the
    interval; R = 0 divides by zero). A tensor ``bound`` is passed unchecked (reading it would
    sync the device; the functions document a float).

    >>> check_bound(0.0)
    Traceback (most recent call last):
    ...
    ValueError: expected a finite working-interval bound > 0, got 0.0
    """
    if isinstance(bound, Tensor):
        return
    if not (is_number(bound) and math.isfinite(bound) and bound > 0):
        raise ValueError(f"expected a finite working-interval bound > 0, got {bound!r}")


#: Largest polynomial degree. The engine is tested at degrees 1-5 and the fights use 3; at 12 the
#: Legendre-to-power matrix (R = 3) has condition number 1.2e6, from 14 on it passes float32's
#: 1/eps (8.4e6): a GELU-start activation of degree 20 is off by 2.7e-4 in float32, of degree 26
#: by 1.4e-2, and degree 40 diverges on Pima (a million runs out of memory).
DEGREE_LIMIT = 12


def check_degree(degree) -> None:
    """ValueError unless ``degree`` is an integer in 1..DEGREE_LIMIT (a constant has no slope to
    learn; above the limit float32 evaluation loses the polynomial, see ``DEGREE_LIMIT``)."""
    if not (is_int(degree) and 1 <= degree <= DEGREE_LIMIT):
        raise ValueError(f"expected an integer degree in 1..{DEGREE_LIMIT}, got {degree!r}")


def check_coefficients(a: Tensor, z: Tensor | None = None, name: str = "z") -> None:
    """ValueError unless ``a`` is power coefficients ``[D+1, F]`` with D >= 1 and, given the input
    ``z`` ``[..., F]``, F equals ``z``'s last dimension (or ``a`` has one column, shared by every
    feature: broadcast, as the ops do).

    >>> check_coefficients(torch.ones(4, 3), torch.ones(2, 5))
    Traceback (most recent call last):
    ...
    ValueError: expected z of shape [..., 3] (the coefficients' feature count), got shape (2, 5)
    """
    if a.dim() != 2 or a.shape[0] < 2:
        raise ValueError(f"expected power coefficients a of shape [D+1, F] with degree D >= 1, got shape "
                         f"{tuple(a.shape)}")
    if z is not None and (z.dim() < 1 or (z.shape[-1] != a.shape[1] and a.shape[1] != 1)):
        raise ValueError(f"expected {name} of shape [..., {a.shape[1]}] (the coefficients' feature count), got "
                         f"shape {tuple(z.shape)}")


# --------------------------------------------------------------------------------------------
# parametrization
# --------------------------------------------------------------------------------------------


def basis_matrix(basis: str, degree: int, bound: float, dtype=torch.float64, device=None) -> Tensor:
    """``M`` ``[D+1, D+1]`` with power coefficients ``a = M θ`` (row k: coefficient of u^k).

    Column j holds the power coefficients of the j-th basis function of ``t = u / bound``.
    ValueError unless ``degree`` is an integer >= 1 and ``bound`` a finite number > 0.

    >>> basis_matrix("legendre", 2, 1.0)        # P0 = 1, P1 = t, P2 = (3t² - 1)/2
    tensor([[ 1.0000,  0.0000, -0.5000],
            [ 0.0000,  1.0000,  0.0000],
            [ 0.0000,  0.0000,  1.5000]], dtype=torch.float64)
    """
    return torch.tensor(basis_matrix_np(basis, degree, bound), dtype=dtype, device=device)


def basis_matrix_np(basis: str, degree: int, bound: float) -> np.ndarray:
    """:func:`basis_matrix` in numpy (float64), for the init fit (works under a meta-device context)."""
    require_choice("basis", basis, BASES)
    check_degree(degree)
    check_bound(bound)
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


def horner(a: Tensor, u: Tensor) -> tuple[Tensor, Tensor]:
    """Value and derivative of per-feature polynomials by Horner's rule.

    ``a`` is ``[D+1, F]`` (row k: coefficient of u^k; D >= 1; one column is shared by every
    feature), ``u`` is ``[..., F]``; returns ``(p(u), p'(u))``, both ``[..., F]``. ValueError
    for other shapes.

    >>> p, dp = horner(torch.tensor([[1.0], [2.0], [3.0]]), torch.tensor([[2.0]]))  # 1 + 2u + 3u²
    >>> float(p), float(dp)
    (17.0, 14.0)
    """
    check_coefficients(a, u, "u")
    return _horner(a, u)


def _horner(a: Tensor, u: Tensor) -> tuple[Tensor, Tensor]:
    """:func:`horner` without the argument checks (the kernels' and the checked entry points' own)."""
    degree = a.shape[0] - 1
    p = a[degree].expand_as(u)  # [..., F]
    dp = None
    for k in range(degree - 1, -1, -1):
        dp = p if dp is None else torch.addcmul(p, dp, u)  # dp ← dp·u + p   (first step: a_D)
        p = torch.addcmul(a[k], p, u)  # p ← p·u + a_k
    if degree == 1:  # p' = a_1: keep u in the graph (a zero-gradient edge), as every degree has
        dp = torch.addcmul(dp, torch.zeros_like(u), u)
    return p, dp
