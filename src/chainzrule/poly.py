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

**Feature axis and shared coefficients.** ``dim`` names the feature (channel) axis: ``dim=-1`` for
features last (``[N, F]``, ``[B, T, F]``), ``dim=1`` for channels first (``[N, C, L]``,
``[N, C, H, W]``). ``groups=G`` shares coefficients between features: G sets, the features split
into G contiguous groups (``groups=1``: one polynomial for the whole layer, as in PAU).

*The layout rule.* A tensor's shape does not say which axis holds the channels: ``[N, C, H, W]``
with ``W == C`` looks exactly like features last. So a polynomial built without ``dim`` (the
default, ``dim=None``) accepts only ``[F]`` and ``[N, F]``, where the feature axis is the last one
beyond doubt, and refuses any input with more than 2 dimensions — whatever its sizes — asking for
``dim``. The refusal depends only on the rank, never on whether two sizes happen to coincide, so
a network cannot fail on one batch and pass on the next. :class:`~chainzrule.layers.HiddenLayer`
feeds its activation ``[N, F]`` (its output is features last by construction), and
:class:`~chainzrule.conv.ConvHiddenLayer` requires ``dim=1``.

>>> act = PolynomialActivation(8, dim=1, groups=2)           # 2 coefficient sets, channels first
>>> act.coefficients.shape, act(torch.randn(2, 8, 5, 5)).shape
(torch.Size([4, 2]), torch.Size([2, 8, 5, 5]))
>>> PolynomialActivation(5)(torch.randn(2, 5, 5, 5))         # doctest: +ELLIPSIS
Traceback (most recent call last):
...
chainzrule.errors.ConfigError: PolynomialActivation(num_features=5) got an input of shape (2, 5, 5, 5): ...

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
from .errors import ConfigError, check_int, is_int, is_number

RANGE_CONTROLS = CF.RANGE_CONTROLS
BASES = CF.BASES
INITS = CF.INITS
DEGREE_LIMIT = CF.DEGREE_LIMIT


class PolynomialActivation(nn.Module):
    """Learnable per-feature polynomial activation with range control (see module docstring).

    Args:
        num_features: size of the feature (channel) dimension of the input.
        degree: polynomial degree, 1..``DEGREE_LIMIT`` (12; default 3, the papers' cubic).
        init: activation σ starts as: gelu, silu, tanh or identity.
        bound: half-width R of the working interval [-R, R].
        range_control: "linear" (default), "tanh" or "none".
        basis: basis of the trained coefficients: "legendre" (default), "chebyshev", "monomial"
            (powers of u/R) or "power" (powers of u, the v0.1 engine; for ablations).
        dim: the feature axis: ``None`` (default: inputs ``[F]`` or ``[N, F]`` only — see the
            layout rule in the module docstring), ``-1`` (features last, any rank) or ``1``
            (channels first, ``[N, C, *spatial]``); any other int names that axis.
        groups: ``None`` (default): one polynomial per feature; ``G``: G polynomials, feature i
            uses set ``i // (num_features // G)`` (``num_features % G == 0``); ``1``: one shared.

    Shapes: input with ``num_features`` entries along ``dim`` → output of the same shape.
    Parameter: ``coefficients`` ``[degree + 1, G]`` (G = ``num_features`` unless ``groups``),
    row k = coefficient of the k-th basis function. :meth:`power_coefficients` gives the
    coefficients of u^k for every feature, ``[degree + 1, num_features]``. The state dict holds
    the coefficients only: ``basis``, ``bound`` and ``range_control`` are the constructor's, so a
    state dict loads into a module built with the same ones (a checkpoint's ``model.json`` records
    them, and :func:`chainzrule.checkpoint.save_checkpoint` checks that they describe the model).

    >>> act = PolynomialActivation(3, degree=2, init="identity")
    >>> act(torch.tensor([[1.0, -2.0, 10.0]])).detach()
    tensor([[ 1., -2., 10.]])
    """

    def __init__(self, num_features: int, degree: int = 3, init: str = "gelu", bound: float = 3.0,
                 range_control: str = "linear", basis: str = "legendre", dim: int | None = None,
                 groups: int | None = None, device=None, dtype=None) -> None:
        super().__init__()
        check_int("num_features", num_features)
        if dim is not None and not is_int(dim):
            raise ConfigError(f"dim must be None or an integer axis, got {dim!r}")
        if groups is not None and (not is_int(groups) or groups < 1
                                   or num_features % groups):
            raise ConfigError(f"groups must be None or a positive divisor of num_features={num_features}, "
                              f"got {groups!r}")
        if not is_int(degree) or not 1 <= degree <= DEGREE_LIMIT:
            raise ConfigError(f"degree must be an integer in 1..{DEGREE_LIMIT} (higher degrees lose float32 precision), "
                              f"got {degree!r}")
        if not (is_number(bound) and math.isfinite(bound) and 0 < bound < 1e6):
            raise ConfigError(f"bound must be a positive finite number below 1e6, got {bound!r}")
        for kind, value, allowed in (("range_control", range_control, RANGE_CONTROLS), ("basis", basis, BASES),
                                     ("init", init, INITS)):
            if value not in allowed:
                raise ConfigError(f"unknown {kind} {value!r}: expected one of {', '.join(allowed)}")
        num_features, degree = int(num_features), int(degree)
        dim, groups = (None if dim is None else int(dim)), (None if groups is None else int(groups))
        self.num_features = num_features
        self.degree = degree
        self.init = init
        self.bound = float(bound)
        self.range_control = range_control
        self.basis = basis
        self.dim = dim
        self.groups = groups
        n_sets = num_features if groups is None else groups
        factory = {"device": device, "dtype": dtype}
        self.coefficients = nn.Parameter(torch.empty(degree + 1, n_sets, **factory))  # θ [D+1, G]
        m = CF.basis_matrix(basis, degree, self.bound).to(dtype=self.coefficients.dtype, device=device)
        # a = M θ   [D+1, D+1]. A constant of (basis, degree, bound), not state: not in the state dict, and
        # rebuilt from its float64 values whenever the module moves or changes dtype (so .double() after
        # float32 is exact, and a module built on the meta device gets real values from to_empty() or
        # load_state_dict(assign=True)).
        self.register_buffer("basis_matrix", m, persistent=False)
        self.register_load_state_dict_post_hook(PolynomialActivation._basis_after_load)
        self.reset_parameters()

    def _rebuild_basis(self) -> None:
        """The basis matrix from its float64 values, on the coefficients' device and dtype."""
        ref = self.coefficients
        if ref.is_meta:
            self.basis_matrix = torch.empty(self.degree + 1, self.degree + 1, dtype=ref.dtype, device="meta")
        else:
            self.basis_matrix = CF.basis_matrix(self.basis, self.degree, self.bound).to(dtype=ref.dtype,
                                                                                         device=ref.device)

    def _apply(self, fn, recurse=True):  # as torch's RNNs do: derived tensors follow .to()/.double()/to_empty()
        out = super()._apply(fn, recurse)
        self._rebuild_basis()
        return out

    @staticmethod
    def _basis_after_load(module, incompatible_keys) -> None:
        module._rebuild_basis()  # load_state_dict(assign=True) may have replaced the coefficients

    def reset_parameters(self) -> None:
        """Refit every feature's coefficients to ``init`` (see :func:`~chainzrule.functional.fit_coefficients`)."""
        theta = CF.fit_coefficients(self.init, self.degree, self.bound, self.basis, self.range_control)  # [D+1]
        with torch.no_grad():
            self.coefficients.copy_(theta.to(self.coefficients).unsqueeze(1).expand_as(self.coefficients))

    def extra_repr(self) -> str:
        extra = "".join(f", {k}={v!r}" for k, v in (("dim", self.dim), ("groups", self.groups)) if v is not None)
        return (f"num_features={self.num_features}, degree={self.degree}, init={self.init!r}, "
                f"bound={self.bound}, range_control={self.range_control!r}, basis={self.basis!r}{extra}")

    def _axis(self, z: Tensor) -> int:
        """The feature axis of ``z`` (non-negative), or a ConfigError naming expected and given."""
        shape, F = tuple(z.shape), self.num_features
        if self.dim is None and z.dim() > 2:
            raise ConfigError(
                f"PolynomialActivation(num_features={F}) got an input of shape {shape}: with more than 2 "
                "dimensions the feature axis is ambiguous (features last as in [B, T, F], or channels first "
                "as in [N, C, H, W]); build it with dim=-1 (features last) or dim=1 (channels first)")
        dim = -1 if self.dim is None else self.dim
        axis = dim + z.dim() if dim < 0 else dim
        where = "the last dimension" if dim == -1 else f"dimension {dim}"
        if not 0 <= axis < z.dim() or z.shape[axis] != F:
            raise ConfigError(f"expected input with {F} features in {where}, got shape {shape}")
        return axis

    def _flat(self, z: Tensor, a: Tensor) -> tuple[Tensor, Tensor, int]:
        """``z`` as ``[N, F·S]`` (a view when contiguous) and ``a`` expanded to match, and the axis.

        The feature axis and everything after it (``S`` = product of the trailing sizes) become
        one row, so the fused kernels run on channels-first inputs without moving any data: the
        coefficients of feature f are repeated S times (autograd sums their gradient back).
        """
        axis = self._axis(z)
        n = math.prod(z.shape[:axis])
        trailing = math.prod(z.shape[axis + 1:])
        if trailing != 1:
            a = a.unsqueeze(-1).expand(*a.shape, trailing).reshape(a.shape[0], -1)  # [D+1, F·S]
        return z.reshape(n, a.shape[1]), a, axis

    def group_power_coefficients(self) -> Tensor:
        """Coefficients of u^k of each coefficient set, ``[D+1, G]`` (differentiable).

        >>> act = PolynomialActivation(6, degree=2, groups=3)
        >>> act.group_power_coefficients().shape, act.power_coefficients().shape
        (torch.Size([3, 3]), torch.Size([3, 6]))
        """
        return self.basis_matrix @ self.coefficients  # [D+1, D+1] @ [D+1, G]

    def power_coefficients(self) -> Tensor:
        """Coefficients of u^k for every feature, ``[D+1, F]`` (differentiable in ``coefficients``)."""
        a = self.group_power_coefficients()  # [D+1, G]
        if a.shape[1] == self.num_features:
            return a
        return a.repeat_interleave(self.num_features // a.shape[1], dim=1)  # contiguous groups

    def forward(self, z: Tensor) -> Tensor:
        """σ(z), same shape as ``z`` (``num_features`` entries along ``dim``)."""
        z2, a, _ = self._flat(z, self.power_coefficients())
        return CF.poly_activation(z2, a, self.bound, self.range_control).view(z.shape)

    def value_and_derivative(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """``(σ(z), σ'(z))``, both shaped like ``z``; σ' is exact for the range control."""
        z2, a, _ = self._flat(z, self.power_coefficients())
        h, slope = CF.poly_activation_and_slope(z2, a, self.bound, self.range_control)
        return h.view(z.shape), slope.view(z.shape)

    def value_and_jacobian_sq(self, z: Tensor, row_norms_sq: Tensor) -> tuple[Tensor, Tensor]:
        """``(σ(z), Σ σ'(z)² r)`` with ``r`` shaped like ``z`` from the feature axis on (fused).

        Features last: ``[..., F]``, ``r`` ``[F]`` → ``[..., F]``, ``[...]``. Channels first (conv):
        ``[N, C, *S]``, ``r`` ``[C, *S]`` → ``[N, C, *S]``, ``[N]`` (sum over channels and positions).
        """
        z2, a, axis = self._flat(z, self.power_coefficients())
        if tuple(row_norms_sq.shape) != tuple(z.shape[axis:]):
            raise ConfigError(f"expected row norms of shape {tuple(z.shape[axis:])} for an input of shape "
                              f"{tuple(z.shape)}, got {tuple(row_norms_sq.shape)}")
        h, jsq = CF.poly_activation_and_jacobian_sq(z2, a, row_norms_sq.reshape(-1), self.bound,
                                                    self.range_control)
        return h.view(z.shape), jsq.view(z.shape[:axis])

    def derivative(self, z: Tensor) -> Tensor:
        """σ'(z), the exact elementwise derivative of :meth:`forward`, shaped like ``z``."""
        return self.value_and_derivative(z)[1]

    @torch.no_grad()
    def max_slope(self) -> Tensor:
        """Certified ``max_z |σ'(z)|`` per feature, ``[F]`` (``inf`` for ``range_control="none"``).

        Computed once per coefficient set, then repeated over the features of its group.
        """
        per_set = CF.poly_max_slope(self.group_power_coefficients(), self.bound, self.range_control)  # [G]
        return per_set.repeat_interleave(self.num_features // per_set.shape[0])


def coefficient_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The polynomial coefficients of every :class:`PolynomialActivation` in ``model``."""
    return [m.coefficients for m in model.modules() if isinstance(m, PolynomialActivation)]


def parameter_groups(model: nn.Module, lr: float, coef_lr_scale: float = 1.0, **options) -> list[dict]:
    """Optimizer parameter groups: polynomial coefficients at ``lr * coef_lr_scale``, the rest at ``lr``.

    ``options`` (e.g. ``betas``) go to both groups. Each group carries a ``"name"``: ``"weights"``
    (every other parameter) and, when the model has polynomial activations, ``"coefficients"``
    (a model without them, e.g. a ReLU ``MLP``, has the first group only). Use it in your own loop::

        opt = torch.optim.Adam(parameter_groups(model, 3e-3, coef_lr_scale=0.3))

    With weight decay, keep it off the coefficients (decay pulls σ towards zero, not towards a
    simpler function), as ``chainzrule train`` does; note that ``torch.optim.AdamW`` decays by 0.01
    unless told otherwise. Select the group by its name, not its position:

    >>> from chainzrule.models import MLP, ChainzRuleMLP
    >>> groups = parameter_groups(ChainzRuleMLP(4, [8], 2), 3e-3, coef_lr_scale=0.3, weight_decay=1e-2)
    >>> for g in groups:
    ...     if g["name"] == "coefficients":
    ...         g["weight_decay"] = 0.0
    >>> opt = torch.optim.AdamW(groups)
    >>> [(g["name"], len(g["params"]), g["weight_decay"]) for g in opt.param_groups]
    [('weights', 4, 0.01), ('coefficients', 1, 0.0)]
    >>> [g["name"] for g in parameter_groups(MLP(4, [8], 2, activation="relu"), 1e-3)]
    ['weights']
    """
    if not all(is_number(v) and math.isfinite(v) and v > 0 for v in (lr, coef_lr_scale)):
        raise ConfigError(f"lr and coef_lr_scale must be finite and > 0, got lr={lr!r}, coef_lr_scale={coef_lr_scale!r}")
    coef = {id(p) for p in coefficient_parameters(model)}
    rest = [p for p in model.parameters() if p.requires_grad and id(p) not in coef]
    poly = [p for p in coefficient_parameters(model) if p.requires_grad]
    groups = [{"params": rest, "lr": lr, "name": "weights", **options}]
    if poly:
        groups.append({"params": poly, "lr": lr * coef_lr_scale, "name": "coefficients", **options})
    return groups
