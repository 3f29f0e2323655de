"""The Polynomial Engine: a learnable polynomial activation per feature (thin module).

``PolynomialActivation(num_features, degree=3)`` holds, for each feature ``i``, coefficients θ_i in
a well-conditioned basis of ``t = u / R`` on the working interval ``[-R, R]`` (``basis="legendre"``
by default) and computes

    σ_i(z) = p_i(c) + p_i'(c) (z - c),   c = clamp(z, -R, R),   p_i(u) = Σ_k θ_{i,k} P_k(u / R)

(``range_control="linear"``: the polynomial on the interval, its tangent outside). The math lives in
:mod:`chainzrule.functional`; this module only owns the parameters and the fixed basis matrix (a
non-persistent buffer, so ``.to()``, ``.double()``, deepcopy and DataParallel move it along).
:meth:`derivative` is the exact σ', :meth:`max_slope` a certified bound on |σ'|.

Initial coefficients make σ look like a named activation (gelu, silu, tanh, identity) on the whole
line, continuation included (:func:`chainzrule.functional.fit_coefficients`).

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

import torch
from torch import Tensor, nn

from . import functional as CF
from .errors import ConfigError

RANGE_CONTROLS = CF.RANGE_CONTROLS
BASES = CF.BASES
INITS = CF.INITS


class PolynomialActivation(nn.Module):
    """Learnable per-feature polynomial activation with range control (see module docstring).

    Args:
        num_features: size of the feature dimension of the input (the last one).
        degree: polynomial degree, ≥ 1 (default 3, the papers' cubic).
        init: activation σ starts as: gelu, silu, tanh or identity.
        bound: half-width R of the working interval [-R, R].
        range_control: "linear" (default), "tanh" or "none".
        basis: basis of the trained coefficients: "legendre" (default), "chebyshev", "monomial"
            (powers of u/R) or "power" (powers of u, the v0.1 engine; for ablations).

    Shapes: input ``[..., num_features]`` → output ``[..., num_features]``.
    Parameter: ``coefficients`` ``[degree + 1, num_features]``, row k = coefficient of the k-th
    basis function. :meth:`power_coefficients` gives the coefficients of u^k.

    >>> act = PolynomialActivation(3, degree=2, init="identity")
    >>> act(torch.tensor([[1.0, -2.0, 10.0]])).detach()
    tensor([[ 1., -2., 10.]])
    """

    def __init__(self, num_features: int, degree: int = 3, init: str = "gelu", bound: float = 3.0,
                 range_control: str = "linear", basis: str = "legendre", device=None, dtype=None) -> None:
        super().__init__()
        if not isinstance(num_features, int) or num_features < 1:
            raise ConfigError(f"num_features must be a positive integer, got {num_features!r}")
        if not isinstance(degree, int) or isinstance(degree, bool) or degree < 1:
            raise ConfigError(f"degree must be an integer >= 1, got {degree!r}")
        if not (isinstance(bound, (int, float)) and math.isfinite(bound) and 0 < bound < 1e6):
            raise ConfigError(f"bound must be a positive finite number below 1e6, got {bound!r}")
        for kind, value, allowed in (("range_control", range_control, RANGE_CONTROLS), ("basis", basis, BASES),
                                     ("init", init, INITS)):
            if value not in allowed:
                raise ConfigError(f"unknown {kind} {value!r}: expected one of {', '.join(allowed)}")
        self.num_features = num_features
        self.degree = degree
        self.init = init
        self.bound = float(bound)
        self.range_control = range_control
        self.basis = basis
        factory = {"device": device, "dtype": dtype}
        self.coefficients = nn.Parameter(torch.empty(degree + 1, num_features, **factory))  # θ [D+1, F]
        m = CF.basis_matrix(basis, degree, self.bound).to(dtype=self.coefficients.dtype, device=device)
        self.register_buffer("basis_matrix", m, persistent=False)  # a = M θ   [D+1, D+1]
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Refit every feature's coefficients to ``init`` (see :func:`~chainzrule.functional.fit_coefficients`)."""
        theta = CF.fit_coefficients(self.init, self.degree, self.bound, self.basis, self.range_control)  # [D+1]
        with torch.no_grad():
            self.coefficients.copy_(theta.to(self.coefficients).unsqueeze(1).expand_as(self.coefficients))

    def extra_repr(self) -> str:
        return (f"num_features={self.num_features}, degree={self.degree}, init={self.init!r}, "
                f"bound={self.bound}, range_control={self.range_control!r}, basis={self.basis!r}")

    def _check(self, z: Tensor) -> None:
        if z.dim() == 0 or z.shape[-1] != self.num_features:
            raise ConfigError(f"expected input with {self.num_features} features in the last dimension, "
                              f"got shape {tuple(z.shape)}")

    def power_coefficients(self) -> Tensor:
        """Coefficients of u^k, ``[D+1, F]`` (differentiable in ``coefficients``)."""
        return self.basis_matrix @ self.coefficients  # [D+1, D+1] @ [D+1, F]

    def forward(self, z: Tensor) -> Tensor:
        """σ(z), ``[..., F]`` → ``[..., F]``."""
        self._check(z)
        return CF.poly_activation(z, self.power_coefficients(), self.bound, self.range_control)

    def value_and_derivative(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """``(σ(z), σ'(z))``, both ``[..., F]``; σ' is exact for the range control."""
        self._check(z)
        return CF.poly_activation_and_slope(z, self.power_coefficients(), self.bound, self.range_control)

    def value_and_jacobian_sq(self, z: Tensor, row_norms_sq: Tensor) -> tuple[Tensor, Tensor]:
        """``(σ(z), Σ_i σ'(z_i)² r_i)``: ``[..., F]``, ``[F]`` → ``[..., F]``, ``[...]`` (fused)."""
        self._check(z)
        return CF.poly_activation_and_jacobian_sq(z, self.power_coefficients(), row_norms_sq, self.bound,
                                                  self.range_control)

    def derivative(self, z: Tensor) -> Tensor:
        """σ'(z), the exact elementwise derivative of :meth:`forward`, ``[..., F]``."""
        return self.value_and_derivative(z)[1]

    @torch.no_grad()
    def max_slope(self) -> Tensor:
        """Certified ``max_z |σ'(z)|`` per feature, ``[F]`` (``inf`` for ``range_control="none"``)."""
        return CF.poly_max_slope(self.power_coefficients(), self.bound, self.range_control)


def coefficient_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The polynomial coefficients of every :class:`PolynomialActivation` in ``model``."""
    return [m.coefficients for m in model.modules() if isinstance(m, PolynomialActivation)]


def parameter_groups(model: nn.Module, lr: float, coef_lr_scale: float = 1.0, **options) -> list[dict]:
    """Optimizer parameter groups: polynomial coefficients at ``lr * coef_lr_scale``, the rest at ``lr``.

    ``options`` (e.g. ``weight_decay``) go to both groups. Use it in your own loop::

        opt = torch.optim.AdamW(parameter_groups(model, 3e-3, coef_lr_scale=0.3))

    >>> from chainzrule.models import ChainzRuleMLP
    >>> groups = parameter_groups(ChainzRuleMLP(4, [8], 2), 1e-3, coef_lr_scale=0.5)
    >>> [(len(g["params"]), g["lr"]) for g in groups]
    [(4, 0.001), (1, 0.0005)]
    """
    if not (math.isfinite(lr) and lr > 0 and math.isfinite(coef_lr_scale) and coef_lr_scale > 0):
        raise ConfigError(f"lr and coef_lr_scale must be finite and > 0, got lr={lr}, coef_lr_scale={coef_lr_scale}")
    coef = {id(p) for p in coefficient_parameters(model)}
    rest = [p for p in model.parameters() if p.requires_grad and id(p) not in coef]
    poly = [p for p in coefficient_parameters(model) if p.requires_grad]
    groups = [{"params": rest, "lr": lr, **options}]
    if poly:
        groups.append({"params": poly, "lr": lr * coef_lr_scale, **options})
    return groups
