"""The hidden layer: ``nn.Linear`` + a derivative-aware activation, and its own Jacobian norm.

For ``h = σ(z)``, ``z = W x + b`` the layer Jacobian is ``S = diag(σ'(z)) W``, so per example

    ||S||_F² = Σ_i σ'(z_i)² · ||W_i,:||²

— one elementwise pass for σ' (fused with σ itself) and the row norms of W: no double backward,
no random projections. The layer computes it only when asked, and hands it back from the call:

- ``h, jsq = layer(x, return_jacobian=True)`` — explicit (``jsq`` has the input's batch shape);
- inside ``with chainzrule.dreg.collect(model) as terms:`` the layer records ``jsq`` in ``terms``
  (what a training loop over an arbitrary model uses).

Otherwise it computes exactly ``σ(W x + b)`` and nothing else. Nothing is ever stored on the
module between calls, so deepcopy, pickling, ``AveragedModel``, DataParallel and ``torch.export``
see a plain module.

The linear map is a genuine ``nn.Linear`` (``layer.linear``), so spectral normalization, pruning
and ``state_dict`` surgery work unchanged; ``layer.linear.weight`` is read at every call, so a
parametrized weight is the one DREG sees. The term assumes that ``z`` is ``W x + b``: a forward
hook on ``layer.linear`` that changes its output (scales it, adds noise) is applied to ``z`` but
not to ``||W_i,:||²``, so the term is then not the layer's Jacobian; put such a change in the
weight (a parametrization) or outside the layer. One layer's ``jsq`` has no layer axis: its
penalty is ``jsq.mean()`` (:func:`chainzrule.dreg.dreg_penalty` takes a model's ``[..., layers]``).

>>> import torch
>>> from chainzrule.activations import GELU
>>> layer = HiddenLayer(5, 3, GELU())
>>> h, jsq = layer(torch.randn(4, 5), return_jacobian=True)   # [4, 3], [4]
>>> jsq.shape
torch.Size([4])
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize
from torch.nn.modules import module as _torch_module  # the global hook dicts (see _hookless_linear)

from . import dreg
from . import functional as CF
from .errors import ConfigError, check_int


def check_features(x, n: int) -> None:
    """ConfigError unless ``x`` is a tensor ``[..., n]`` (the check every dense entry point makes).

    >>> check_features([0.0, 1.0], 2)
    Traceback (most recent call last):
    ...
    chainzrule.errors.ConfigError: expected a tensor [..., 2], got list
    """
    if not isinstance(x, Tensor):
        raise ConfigError(f"expected a tensor [..., {n}], got {type(x).__name__}")
    if x.dim() == 0 or x.shape[-1] != n:
        raise ConfigError(f"expected {n} input features in the last dimension, got shape {tuple(x.shape)}")


def check_module(model, what: str = "model") -> None:
    """ConfigError unless ``model`` is an ``nn.Module`` (what the module-walking helpers need)."""
    if not isinstance(model, nn.Module):
        raise ConfigError(f"expected the {what} to be an nn.Module, got {type(model).__name__}")


def _hookless_linear(lin: nn.Module) -> bool:
    """Whether calling ``lin`` is exactly ``F.linear(x, lin.weight, lin.bias)``: a plain nn.Linear
    with no forward (pre-)hooks of its own or global ones (pruning recomputes the weight in a
    pre-hook). torch has no public query for registered hooks, so their dicts are read. A
    parametrized weight (spectral norm) takes the module's own call, inside ``parametrize.cached()``."""
    return (type(lin) is nn.Linear and not (lin._forward_hooks or lin._forward_pre_hooks)
            and not (_torch_module._global_forward_hooks or _torch_module._global_forward_pre_hooks))


class HiddenLayer(nn.Module):
    """``σ(W x + b)`` that can also return its per-example ``||S||_F²``.

    Args:
        in_features, out_features: sizes of ``W`` (``[out, in]``).
        activation: an elementwise module with ``value_and_derivative(z)`` (see
            :mod:`chainzrule.activations`); per-feature activations must have ``out_features``,
            and a feature axis that is the last one (``dim`` unset or -1).
        bias: whether the linear map has a bias.

    Shapes: ``[..., in_features]`` → ``[..., out_features]``; the Jacobian term: ``[...]``.
    The activation always receives ``[N, out_features]`` (the leading dims flattened; a view), so
    a polynomial built without ``dim`` works on token inputs ``[B, T, in]`` too.
    """

    def __init__(self, in_features: int, out_features: int, activation: nn.Module, bias: bool = True,
                 device=None, dtype=None) -> None:
        super().__init__()
        in_features, out_features = check_int("in_features", in_features), check_int("out_features", out_features)
        if not hasattr(activation, "value_and_derivative"):
            raise ConfigError("activation must provide value_and_derivative(z) (see chainzrule.activations), "
                              f"got {type(activation).__name__}")
        n = getattr(activation, "num_features", None)
        if n is not None and n != out_features:
            raise ConfigError(f"activation has {n} features, expected out_features={out_features}")
        dim = getattr(activation, "dim", None)
        if n is not None and dim not in (None, -1):
            raise ConfigError("a HiddenLayer's pre-activations are [..., out_features] (features last): expected "
                              f"an activation with dim=None or dim=-1, got dim={dim!r}")
        self.linear = nn.Linear(in_features, out_features, bias=bias, device=device, dtype=dtype)
        self.activation = activation

    @property
    def in_features(self) -> int:
        return self.linear.in_features

    @property
    def out_features(self) -> int:
        return self.linear.out_features

    def forward(self, x: Tensor, return_jacobian: bool = False):
        """``σ(W x + b)`` ``[..., out]``; with ``return_jacobian`` also ``||S||_F²`` ``[...]``."""
        check_features(x, self.linear.in_features)
        if not (return_jacobian or dreg.wanted(self)):
            z = self.linear(x)  # [..., out]
            return self.activation(_rows(z)).reshape(z.shape)
        h, jsq = self.forward_with_jacobian(x)
        dreg.record(self, jsq)
        return (h, jsq) if return_jacobian else h

    def forward_with_jacobian(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(σ(W x + b), ||S||_F²)``: ``[..., out]``, ``[...]`` (records nothing anywhere)."""
        if _hookless_linear(self.linear):  # W x + b and ||W_i||² in one node (weight gradient built once)
            z, rn = CF.linear_and_row_norms_sq(x, self.linear.weight, self.linear.bias)  # [..., out], [out]
        else:  # pruning, user hooks, parametrizations: the module's own call, so they run; cached() makes a
            # parametrized weight (spectral norm: one power iteration per training forward) computed once for both
            with parametrize.cached():
                z, rn = self.linear(x), CF.row_norms_sq(self.linear.weight)
        fused = getattr(self.activation, "value_and_jacobian_sq", None)
        if fused is not None:  # chainzrule activations: σ and Σ_i σ'² ||W_i||² in one pass
            h, jsq = fused(_rows(z), rn)  # [N, out], [N]
        else:
            h, slope = self.activation.value_and_derivative(_rows(z))  # [N, out] each
            jsq = CF.layer_jacobian_sq(slope, rn)
        return h.reshape(z.shape), jsq.reshape(z.shape[:-1])

    def row_norms_sq(self) -> Tensor:
        """``||W_i,:||²`` for every output unit, ``[out]``."""
        return CF.row_norms_sq(self.linear.weight)

    def derivative(self, x: Tensor) -> Tensor:
        """σ'(W x + b), ``[..., out]`` (for inspection)."""
        z = self.linear(x)  # [..., out]
        return self.activation.derivative(_rows(z)).reshape(z.shape)

    def jacobian(self, x: Tensor) -> Tensor:
        """The layer Jacobian ``S = diag(σ'(z)) W`` per example, ``[..., out, in]`` (for inspection)."""
        slope = self.derivative(x)  # [..., out]
        return slope.unsqueeze(-1) * self.linear.weight  # [..., out, 1] * [out, in]

    @torch.no_grad()
    def max_slope(self) -> Tensor:
        """Certified bound on |σ'| per unit (``[out]``) or for all units (0-d)."""
        return self.activation.max_slope()


def _rows(z: Tensor) -> Tensor:
    """``[..., F]`` as ``[N, F]`` (a view for a contiguous ``z``): what the activation sees."""
    return z if z.dim() == 2 else z.reshape(-1, z.shape[-1])


def hidden_layers(model: nn.Module) -> list[tuple[str, HiddenLayer]]:
    """All :class:`HiddenLayer` submodules of ``model`` (itself included), in registration order."""
    check_module(model)
    return [(name, m) for name, m in model.named_modules() if isinstance(m, HiddenLayer)]
