"""Bases of the polynomial coefficients, and Horner's rule (see :mod:`chainzrule.functional`)."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

BASES = ("legendre", "chebyshev", "monomial", "power")
RANGE_CONTROLS = ("linear", "tanh", "none")
INITS = ("gelu", "silu", "tanh", "identity")


def require_choice(kind: str, value: str, allowed: tuple[str, ...]) -> None:
    """ValueError naming the expected values and the given one when ``value`` is not allowed."""
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
    return torch.tensor(basis_matrix_np(basis, degree, bound), dtype=dtype, device=device)


def basis_matrix_np(basis: str, degree: int, bound: float) -> np.ndarray:
    """:func:`basis_matrix` in numpy (float64), for the init fit (works under a meta-device context)."""
    require_choice("basis", basis, BASES)
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
