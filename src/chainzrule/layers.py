"""The hidden layer: ``nn.Linear`` + a derivative-aware activation + its own Jacobian norm.

For ``h = σ(z)``, ``z = W x + b`` the layer Jacobian is ``S = diag(σ'(z)) W``, so per example

    ||S||_F² = Σ_i σ'(z_i)² · ||W_i,:||²

— one elementwise pass for σ' (fused with σ itself) and the row norms of W: no double backward,
no random projections. When ``track_jacobian`` is on, :meth:`HiddenLayer.forward` stores this
per-example value in ``layer.jacobian_sq`` (shape = the input's batch shape) for
:func:`chainzrule.dreg_penalty` to read. When it is off (the default for plain layers) the layer
computes exactly ``σ(W x + b)`` and nothing else: DREG costs nothing unless asked for.

The linear map is a genuine ``nn.Linear`` (``layer.linear``), so spectral normalization, pruning
and ``state_dict`` surgery work unchanged; ``layer.linear.weight`` is read at every forward, so a
parametrized weight is the one DREG sees.

>>> import torch
>>> from chainzrule.activations import GELU
>>> layer = HiddenLayer(5, 3, GELU(), track_jacobian=True)
>>> h = layer(torch.randn(4, 5))          # [4, 3]
>>> layer.jacobian_sq.shape                 # one ||S||_F² per example
torch.Size([4])
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch
from torch import Tensor, nn

from .errors import ConfigError
from .poly import _fused_allowed


class _RowNormSq(torch.autograd.Function):
    """``Σ_j W_ij²`` per row: one pass over W forward (``vector_norm``, no ``W*W`` temporary) and
    one backward (``2 g_i W_ij``; autograd's ``(W*W).sum(1)`` makes three). The backward is plain
    torch ops, so it is differentiable again (double backward)."""

    @staticmethod
    def forward(ctx, w: Tensor) -> Tensor:
        ctx.save_for_backward(w)
        return torch.linalg.vector_norm(w, dim=-1).square()  # [out, in] → [out]

    @staticmethod
    def backward(ctx, g: Tensor) -> Tensor:
        (w,) = ctx.saved_tensors
        return w * (2.0 * g).unsqueeze(-1)  # [out, in]


class _LinearRowNormSq(torch.autograd.Function):
    """``(x Wᵀ + b, Σ_j W_ij²)`` for 2-D ``x`` as one autograd node, so the weight gradient is
    built once, ``g_W = g_zᵀ x + 2 g_r ⊙ W`` (a matmul, then one in-place pass that reads W),
    instead of two [out, in] gradients that autograd then adds in a third pass. Plain torch ops
    throughout, so the backward is differentiable again (double backward)."""

    @staticmethod
    def forward(ctx, x: Tensor, w: Tensor, b: Tensor | None):
        z = x @ w.t() if b is None else torch.addmm(b, x, w.t())  # [N, out]
        rn = torch.linalg.vector_norm(w, dim=-1).square()  # [out]
        ctx.save_for_backward(x, w)
        ctx.has_bias = b is not None
        ctx.set_materialize_grads(False)
        return z, rn

    @staticmethod
    def backward(ctx, gz: Tensor | None, grn: Tensor | None):
        x, w = ctx.saved_tensors
        need_x, need_w, need_b = ctx.needs_input_grad
        gx = gw = gb = None
        if gz is not None and need_x:
            gx = gz @ w  # [N, in]
        if need_w:
            if grn is None:
                gw = gz.t() @ x if gz is not None else torch.zeros_like(w)
            elif gz is None:
                gw = w * (2.0 * grn).unsqueeze(-1)  # [out, in]
            else:  # g_zᵀ x, then += 2 g_r ⊙ W in place: W read once, no second [out, in] tensor
                gw = (gz.t() @ x).addcmul_(w, (2.0 * grn).unsqueeze(-1))
        if gz is not None and need_b and ctx.has_bias:
            gb = gz.sum(0)  # [out]
        return gx, gw, gb


def _global_module_hooks() -> bool:
    """Whether global nn.Module forward/backward hooks are registered (then no fusion)."""
    from torch.nn.modules import module as m

    names = ("_global_forward_hooks", "_global_forward_pre_hooks", "_global_backward_hooks",
             "_global_backward_pre_hooks")
    return any(getattr(m, n, None) for n in names)


class HiddenLayer(nn.Module):
    """``σ(W x + b)`` that can also report its per-example ``||S||_F²``.

    Args:
        in_features, out_features: sizes of ``W`` (``[out, in]``).
        activation: an elementwise module with ``value_and_derivative(z)`` (see
            :mod:`chainzrule.activations`); per-feature activations must have ``out_features``.
        bias: whether the linear map has a bias.
        track_jacobian: compute ``jacobian_sq`` during forward (needed by DREG).

    Shapes: ``[..., in_features]`` → ``[..., out_features]``; ``jacobian_sq``: ``[...]``.
    """

    jacobian_sq: Tensor | None

    def __init__(
        self,
        in_features: int,
        out_features: int,
        activation: nn.Module,
        bias: bool = True,
        track_jacobian: bool = False,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        for name, v in (("in_features", in_features), ("out_features", out_features)):
            if not isinstance(v, int) or v < 1:
                raise ConfigError(f"{name} must be a positive integer, got {v!r}")
        if not hasattr(activation, "value_and_derivative"):
            raise ConfigError(
                "activation must provide value_and_derivative(z) (see chainzrule.activations), "
                f"got {type(activation).__name__}"
            )
        n = getattr(activation, "num_features", None)
        if n is not None and n != out_features:
            raise ConfigError(f"activation has {n} features, expected out_features={out_features}")
        self.linear = nn.Linear(in_features, out_features, bias=bias, device=device, dtype=dtype)
        self.activation = activation
        self.track_jacobian = bool(track_jacobian)
        self.jacobian_sq = None

    @property
    def in_features(self) -> int:
        return self.linear.in_features

    @property
    def out_features(self) -> int:
        return self.linear.out_features

    def extra_repr(self) -> str:
        return f"track_jacobian={self.track_jacobian}"

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-1] != self.linear.in_features:
            raise ConfigError(
                f"expected {self.linear.in_features} input features in the last dimension, "
                f"got shape {tuple(x.shape)}"
            )
        if not self.track_jacobian:
            self.jacobian_sq = None
            return self.activation(self.linear(x))
        fused = getattr(self.activation, "value_and_jacobian_sq", None)
        if fused is not None:  # chainzrule activations: σ and Σ_i σ'² ||W_i||² in one pass
            z, rn = self._linear_and_row_norms_sq(x)  # [..., out], [out]
            h, self.jacobian_sq = fused(z, rn)  # [..., out], [...]
            return h
        z = self.linear(x)  # [..., out]
        h, slope = self.activation.value_and_derivative(z)  # [..., out] each
        self.jacobian_sq = self.jacobian_sq_from(slope)  # [...]
        return h

    def _linear_and_row_norms_sq(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(W x + b, ||W_i,:||²)``; one autograd node when ``self.linear`` is a plain nn.Linear
        (no hooks, no autocast, eager mode), so the DREG term of the weight gradient is added to
        the matmul's result in place instead of as a second gradient autograd must sum."""
        lin = self.linear
        w = lin.weight  # [out, in] (a parametrized weight is computed here)
        plain = (
            type(lin) is nn.Linear
            and not (lin._forward_hooks or lin._forward_pre_hooks or lin._backward_hooks
                     or lin._backward_pre_hooks)
            and not _global_module_hooks()
            and not torch.is_autocast_enabled(x.device.type)
            and _fused_allowed(x, w, lin.bias)
        )
        if not plain:
            return lin(x), self.row_norms_sq()
        x2 = x if x.dim() == 2 else x.reshape(-1, x.shape[-1])  # [N, in]
        z, rn = _LinearRowNormSq.apply(x2, w, lin.bias)  # [N, out], [out]
        return (z if x.dim() == 2 else z.view(*x.shape[:-1], z.shape[-1])), rn

    def row_norms_sq(self) -> Tensor:
        """``||W_i,:||²`` for every output unit, ``[out]``."""
        w = self.linear.weight  # [out, in]
        if _fused_allowed(w):
            return _RowNormSq.apply(w)  # [out]
        return (w * w).sum(dim=1)  # under torch.func transforms: plain ops

    def jacobian_sq_from(self, slope: Tensor) -> Tensor:
        """``Σ_i slope_i² ||W_i,:||²`` per example: ``[..., out]`` → ``[...]``."""
        return (slope * slope) @ self.row_norms_sq()  # [..., out] @ [out] → [...]

    def jacobian(self, x: Tensor) -> Tensor:
        """The layer Jacobian ``S = diag(σ'(z)) W`` per example, ``[..., out, in]`` (for inspection)."""
        z = self.linear(x)  # [..., out]
        slope = self.activation.derivative(z)  # [..., out]
        return slope.unsqueeze(-1) * self.linear.weight  # [..., out, 1] * [out, in]

    @torch.no_grad()
    def max_slope(self) -> Tensor:
        """Certified bound on |σ'| per unit (``[out]``) or for all units (0-d)."""
        return self.activation.max_slope()


def hidden_layers(model: nn.Module) -> list[tuple[str, HiddenLayer]]:
    """All :class:`HiddenLayer` submodules of ``model`` (itself included), in registration order."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, HiddenLayer)]


def set_jacobian_tracking(model: nn.Module, enabled: bool = True) -> nn.Module:
    """Turn per-example ``||S||_F²`` tracking on or off in every hidden layer; returns ``model``."""
    for _, layer in hidden_layers(model):
        layer.track_jacobian = bool(enabled)
        layer.jacobian_sq = None
    return model


@contextmanager
def jacobian_tracking(model: nn.Module, enabled: bool = True) -> Iterator[nn.Module]:
    """Context manager: set tracking for the block, then restore each layer's previous setting.

    >>> from chainzrule.models import MLP
    >>> net = MLP(4, [8], 2)
    >>> with jacobian_tracking(net):
    ...     _ = net(torch.randn(3, 4))
    ...     net.hidden_layers[0].jacobian_sq.shape
    torch.Size([3])
    """
    layers = hidden_layers(model)
    before = [layer.track_jacobian for _, layer in layers]
    try:
        set_jacobian_tracking(model, enabled)
        yield model
    finally:
        for (_, layer), was in zip(layers, before):
            layer.track_jacobian = was
