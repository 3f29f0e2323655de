"""Derivative-aware activations: what DREG needs from any elementwise σ.

Every activation here is an ``nn.Module`` on ``[..., F]`` with

- ``forward(z)`` — σ(z);
- ``derivative(z)`` — the exact σ'(z);
- ``value_and_derivative(z)`` — both in one pass (what a DREG-tracking layer calls);
- ``max_slope()`` — a certified bound on the exact |σ'| (a 0-d tensor, or ``[F]`` for per-feature
  ones). For the standard activations σ' *computed* in a dtype can exceed it by that dtype's
  rounding: in float32 by an ulp (SiLU's σ' reaches 1.09983945 against 1.09983933); the
  polynomial's bound is widened to cover its own float32 evaluation.

Standard activations (ReLU, GELU, SiLU, tanh) are stateless and work with any F, so DREG applies
to ordinary networks too. :func:`make_activation` builds any of them, including the polynomial.

>>> import torch
>>> act = make_activation("gelu")
>>> z = torch.tensor([-1.0, 0.0, 2.0])
>>> torch.allclose(act.derivative(z), torch.func.vmap(torch.func.grad(act))(z))
True
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .errors import ConfigError
from .poly import PolynomialActivation

_INV_SQRT2 = 1.0 / math.sqrt(2.0)
_INV_SQRT2PI = 1.0 / math.sqrt(2.0 * math.pi)

# max |σ'| of the standard activations, derived in closed form and checked numerically in tests:
# GELU: σ'' = φ(z)(2 - z²) = 0 at z = √2  →  Φ(√2) + √2 φ(√2).
GELU_MAX_SLOPE = 0.5 * (1.0 + math.erf(1.0)) + math.sqrt(2.0) * math.exp(-1.0) * _INV_SQRT2PI
# SiLU: σ'' = 0 where z = 2 coth(z/2) (z* ≈ 2.399357); value from the closed form at z*.
_SILU_ZSTAR = 2.3993572805154676
_s = 1.0 / (1.0 + math.exp(-_SILU_ZSTAR))
SILU_MAX_SLOPE = _s * (1.0 + _SILU_ZSTAR * (1.0 - _s))
#: dtypes whose σ is taken from torch's own kernel on the DREG path too (see GELU.value_and_derivative)
_REDUCED = (torch.bfloat16, torch.float16)


def _bound(value: float) -> Tensor:
    """A float32 0-d tensor at or above ``value`` (a bound must not round down): the nearest
    float32 above ``value`` widened by a few double ulps, for the rounding of its closed form."""
    hi = value * (1.0 + 4.0 * 2.0 ** -52)
    t = torch.tensor(hi, dtype=torch.float32)
    return t if float(t) >= hi else torch.nextafter(t, torch.tensor(math.inf))


def _check_row_norms(z: Tensor, row_norms_sq: Tensor) -> None:
    """One squared row norm per feature of ``z``, or a ConfigError naming both shapes."""
    if z.dim() == 0 or row_norms_sq.shape != (z.shape[-1],):
        raise ConfigError(f"expected row_norms_sq of shape ({z.shape[-1] if z.dim() else '?'},), one per feature "
                          f"of z {tuple(z.shape)}, got {tuple(row_norms_sq.shape)}")


class DerivativeActivation(nn.Module):
    """Base class: subclasses implement :meth:`value_and_derivative` and :meth:`max_slope`."""

    def value_and_derivative(self, z: Tensor) -> tuple[Tensor, Tensor]:  # pragma: no cover
        raise NotImplementedError

    def derivative(self, z: Tensor) -> Tensor:
        """σ'(z), same shape as ``z``."""
        return self.value_and_derivative(z)[1]

    def value_and_jacobian_sq(self, z: Tensor, row_norms_sq: Tensor) -> tuple[Tensor, Tensor]:
        """``(σ(z), Σ_i σ'(z_i)² r_i)``: ``[..., F]``, ``[F]`` → ``[..., F]``, ``[...]``.

        What a DREG-tracking :class:`~chainzrule.layers.HiddenLayer` calls with ``r`` = the
        squared row norms of its weight. Subclasses may override it with a cheaper equivalent.
        """
        _check_row_norms(z, row_norms_sq)
        value, slope = self.value_and_derivative(z)  # [..., F] each
        return value, (slope * slope) @ row_norms_sq  # [...]

    def max_slope(self) -> Tensor:  # pragma: no cover
        raise NotImplementedError


class ReLU(DerivativeActivation):
    """max(z, 0); σ' = 1[z > 0] (0 at z = 0, as autograd). ``max_slope() == 1``."""

    def forward(self, z: Tensor) -> Tensor:
        return F.relu(z)

    def value_and_derivative(self, z: Tensor) -> tuple[Tensor, Tensor]:
        return F.relu(z), (z > 0).to(z.dtype)

    def value_and_jacobian_sq(self, z: Tensor, row_norms_sq: Tensor) -> tuple[Tensor, Tensor]:
        """σ' = 1[z > 0] is its own square, so ``Σ_i σ'² r_i`` is one mat-vec of the mask.

        The mask is ``sign(relu(z))`` (one elementwise op on the output, no comparison + cast,
        no square). It is detached: its derivative is zero almost everywhere, and autograd would
        otherwise spend a backward pass writing those zeros.
        """
        _check_row_norms(z, row_norms_sq)
        value = F.relu(z)  # [..., F]
        mask = torch.sign(value.detach())  # 1[z > 0]   [..., F]
        return value, mask @ row_norms_sq  # [...]

    def max_slope(self) -> Tensor:
        return torch.tensor(1.0)


class GELU(DerivativeActivation):
    """Exact (erf) GELU z·Φ(z); σ' = Φ(z) + z·φ(z); ``max_slope() ≈ 1.1289``."""

    def forward(self, z: Tensor) -> Tensor:
        return F.gelu(z)

    def value_and_derivative(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """σ(z) and σ'(z). In bfloat16/float16 σ is ``F.gelu`` (one rounding), so a DREG forward
        gives what :meth:`forward` gives; in float32/64 the hand-written ``z·Φ(z)`` stays (within
        an ulp of it, and what every committed DREG result was trained with)."""
        cdf = 0.5 * (1.0 + torch.erf(z * _INV_SQRT2))  # Φ(z)   [..., F]
        pdf = torch.exp(-0.5 * z * z) * _INV_SQRT2PI  # φ(z)   [..., F]
        return (F.gelu(z) if z.dtype in _REDUCED else z * cdf), torch.addcmul(cdf, z, pdf)

    def max_slope(self) -> Tensor:
        """``GELU_MAX_SLOPE`` rounded up to float32: at or above the exact ``max σ'``."""
        return _bound(GELU_MAX_SLOPE)


class SiLU(DerivativeActivation):
    """z·sigmoid(z); σ' = s(1 + z(1 - s)); ``max_slope() ≈ 1.0998``."""

    def forward(self, z: Tensor) -> Tensor:
        return F.silu(z)

    def value_and_derivative(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """σ(z) and σ'(z); σ is ``F.silu`` in bfloat16/float16, as in :meth:`GELU.value_and_derivative`."""
        s = torch.sigmoid(z)  # [..., F]
        return (F.silu(z) if z.dtype in _REDUCED else z * s), s * (1.0 + z * (1.0 - s))

    def max_slope(self) -> Tensor:
        """``SILU_MAX_SLOPE`` rounded up to float32: at or above the exact ``max σ'``."""
        return _bound(SILU_MAX_SLOPE)


class Tanh(DerivativeActivation):
    """tanh(z); σ' = 1 - tanh²(z); ``max_slope() == 1``."""

    def forward(self, z: Tensor) -> Tensor:
        return torch.tanh(z)

    def value_and_derivative(self, z: Tensor) -> tuple[Tensor, Tensor]:
        t = torch.tanh(z)
        return t, 1.0 - t * t

    def max_slope(self) -> Tensor:
        return torch.tensor(1.0)


STANDARD_ACTIVATIONS = {"relu": ReLU, "gelu": GELU, "silu": SiLU, "tanh": Tanh}
ACTIVATION_NAMES = tuple(STANDARD_ACTIVATIONS) + ("poly",)
#: names of the learnable polynomial (:class:`~chainzrule.poly.PolynomialActivation`)
POLY_NAMES = ("poly", "polynomial", "chainzrule")


def make_activation(name: str, num_features: int | None = None, **poly_kwargs) -> nn.Module:
    """Build an activation by name: relu, gelu, silu, tanh, or poly (needs ``num_features``).

    ``poly_kwargs`` go to :class:`~chainzrule.poly.PolynomialActivation` (degree, init, bound,
    range_control, basis). Names are exact and lower case, as in a ``TrainConfig`` and on the
    command line: one spelling per activation (``"chainzrule"`` is the polynomial too).

    >>> make_activation("poly", 8, degree=3)
    PolynomialActivation(num_features=8, degree=3, init='gelu', bound=3.0, range_control='linear', basis='legendre')
    >>> make_activation("ReLU")
    Traceback (most recent call last):
    ...
    chainzrule.errors.ConfigError: unknown activation 'ReLU': expected one of relu, gelu, silu, tanh, poly
    """
    if name in POLY_NAMES:
        if num_features is None:
            raise ConfigError("a polynomial activation needs num_features, got None")
        return PolynomialActivation(num_features, **poly_kwargs)
    if not isinstance(name, str) or name not in STANDARD_ACTIVATIONS:
        raise ConfigError(
            f"unknown activation {name!r}: expected one of {', '.join(ACTIVATION_NAMES)}"
        )
    if poly_kwargs:
        raise ConfigError(
            f"activation {name!r} takes no options, got {', '.join(sorted(poly_kwargs))}"
        )
    return STANDARD_ACTIVATIONS[name]()
