"""A small CNN family: conv blocks (3x3 conv + activation, 2x2 max-pool), dense layers, a head.

``CNN(image_shape, channels, hidden, out_features, activation)`` is

    [N, C·H·W] → view [N, C, H, W]
    → for c in channels: ConvHiddenLayer(3x3, padding 1, c) → MaxPool2d(2)
    → flatten → HiddenLayer(w) for w in hidden → head

with the activation a standard one ("relu", "gelu", "silu", "tanh") or ``"chainzrule"``: learnable
polynomials, one per channel in the conv layers (``PolynomialActivation(c, dim=1)``) and one per
unit in the dense layers. Every conv and dense layer is DREG-ready, with the exact per-example
``||S||_F²`` of :mod:`chainzrule.conv` and :mod:`chainzrule.layers`; pooling and the head are not
penalized (max-pooling over disjoint windows is 1-Lipschitz, the head is affine).

Inputs may be flat ``[N, C·H·W]`` (as the CLI's datasets give them) or ``[N, C, H, W]``.

>>> import torch
>>> net = CNN((1, 28, 28), [8, 16], [32], 10, activation="chainzrule")
>>> logits, jsq = net(torch.rand(2, 784), return_jacobian=True)
>>> logits.shape, jsq.shape                     # 2 conv + 1 dense hidden layers
(torch.Size([2, 10]), torch.Size([2, 3]))
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor, nn

from .activations import POLY_NAMES, make_activation
from .conv import ConvHiddenLayer
from .errors import ConfigError, check_int, is_int, is_list_like
from .layers import HiddenLayer
from .models import check_head
from .poly import PolynomialActivation

__all__ = ["CNN", "infer_image_shape"]


def infer_image_shape(in_features: int) -> tuple[int, int, int]:
    """``(C, H, W)`` of square images flattened to ``in_features``: ``(1, s, s)`` if it is a
    square, ``(3, s, s)`` if a third of it is (never both); ConfigError otherwise.

    >>> infer_image_shape(784), infer_image_shape(3 * 32 * 32)
    ((1, 28, 28), (3, 32, 32))
    """
    for c in (1, 3):
        s = math.isqrt(in_features // c) if in_features % c == 0 else 0
        if s > 0 and c * s * s == in_features:
            return (c, s, s)
    raise ConfigError(f"a CNN needs square images with 1 or 3 channels: expected in_features = C*s*s with C in "
                      f"(1, 3), got {in_features}")


def _positive_ints(name: str, values: Sequence[int], allow_empty: bool = False) -> list[int]:
    vals = list(values) if is_list_like(values) else [None]
    if (not vals and not allow_empty) or any(not is_int(v) or v < 1 for v in vals):
        raise ConfigError(f"{name} must be a {'' if allow_empty else 'non-empty '}list of positive integers, got {values!r}")
    return [int(v) for v in vals]


class CNN(nn.Module):
    """Conv blocks, dense hidden layers and a head (see the module docstring).

    Args:
        image_shape: ``(C, H, W)`` of one input.
        channels: output channels of each conv block (3x3, padding 1, then 2x2 max-pool).
        hidden: widths of the dense hidden layers after flattening (may be empty).
        out_features: number of logits (ignored when ``head`` is given).
        activation: a standard activation name, or "chainzrule" for learnable polynomials.
        head: an output module on ``[N, last width]``; default ``nn.Linear``.
        poly: options of the polynomials (degree, init, bound, range_control, basis).
    """

    def __init__(self, image_shape: Sequence[int], channels: Sequence[int], hidden: Sequence[int],
                 out_features: int, activation: str = "relu", head: nn.Module | None = None, **poly) -> None:
        super().__init__()
        shape = _positive_ints("image_shape", image_shape)
        if len(shape) != 3:
            raise ConfigError(f"image_shape must be (C, H, W), got {tuple(image_shape)!r}")
        channels = _positive_ints("channels", channels)
        hidden = _positive_ints("hidden", hidden, allow_empty=True)
        out_features = check_int("out_features", out_features)
        c, h, w = shape
        if h >> len(channels) < 1 or w >> len(channels) < 1:
            raise ConfigError(f"{len(channels)} 2x2 poolings need images of at least {2 ** len(channels)} pixels a "
                              f"side, got {h}x{w}")
        self.image_shape = (c, h, w)
        is_poly = activation in POLY_NAMES
        if is_poly:
            make_activation("poly", 1, **poly)  # validate before building anything
        else:
            make_activation(activation, **poly)  # refuses unknown names and stray options
        self.activation_name = activation
        self.poly_options = dict(poly) if is_poly else {}

        def conv_act(n: int) -> nn.Module:
            return PolynomialActivation(n, dim=1, **poly) if is_poly else make_activation(activation)

        def dense_act(n: int) -> nn.Module:
            return make_activation("poly", n, **poly) if is_poly else make_activation(activation)

        self.conv_layers = nn.ModuleList()
        for c_out in channels:
            self.conv_layers.append(ConvHiddenLayer(c, c_out, 3, conv_act(c_out), padding=1))
            c, h, w = c_out, h // 2, w // 2
        self.pool = nn.MaxPool2d(2)
        dims = [c * h * w] + hidden
        self.hidden_layers = nn.ModuleList(HiddenLayer(a, b, dense_act(b)) for a, b in zip(dims[:-1], dims[1:]))
        check_head(head, dims[-1])
        self.head = head if head is not None else nn.Linear(dims[-1], out_features)
        self.in_features = math.prod(self.image_shape)
        self.out_features = out_features

    def _images(self, x: Tensor) -> Tensor:
        if not isinstance(x, Tensor):
            raise ConfigError(f"expected a tensor [N, {self.in_features}] or [N, "
                              f"{', '.join(map(str, self.image_shape))}], got {type(x).__name__}")
        if x.dim() == 2 and x.shape[1] == self.in_features:
            return x.view(x.shape[0], *self.image_shape)  # [N, C, H, W]
        if x.dim() == 4 and tuple(x.shape[1:]) == self.image_shape:
            return x
        raise ConfigError(f"expected inputs [N, {self.in_features}] or [N, {', '.join(map(str, self.image_shape))}], "
                          f"got shape {tuple(x.shape)}")

    def forward(self, x: Tensor, return_jacobian: bool = False):
        """Logits ``[N, out]``; with ``return_jacobian`` also every conv and dense hidden layer's
        per-example ``||S||_F²``, ``[N, layers]`` (what :func:`chainzrule.dreg_penalty` takes)."""
        h = self._images(x)
        terms = []
        for layer in self.conv_layers:
            if return_jacobian:
                h, jsq = layer(h, return_jacobian=True)  # [N, c, H, W], [N]
                terms.append(jsq)
            else:
                h = layer(h)
            h = self.pool(h)  # [N, c, H/2, W/2]
        h = h.flatten(1)  # [N, c·H·W]
        for layer in self.hidden_layers:
            if return_jacobian:
                h, jsq = layer(h, return_jacobian=True)  # [N, width], [N]
                terms.append(jsq)
            else:
                h = layer(h)
        logits = self.head(h)
        return (logits, torch.stack(terms, dim=-1)) if return_jacobian else logits  # [N, out], [N, L]

    def input_shapes(self) -> list[tuple[int, ...]]:
        """The spatial input shape ``(H, W)`` each conv layer sees."""
        _, h, w = self.image_shape
        out = []
        for _ in self.conv_layers:
            out.append((h, w))
            h, w = h // 2, w // 2
        return out
