"""Exact DREG for convolutions: the row norms of the conv operator (see the derivation below)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .basis import require_choice


# --------------------------------------------------------------------------------------------
# convolutions
#
# A conv layer z = C x + b (C the convolution as a matrix, [C_out·P', C_in·P], P input and P'
# output positions) followed by an elementwise σ has the layer Jacobian S = diag(σ'(z)) C, so per
# example ||S||_F² = Σ_{c,p} σ'(z_{c,p})² ||row_{c,p}(C)||². Row (c, p) of C holds the kernel W[c]
# placed at the input pixels that output position p reads; a tap that falls on zero padding
# contributes nothing. With "zeros" padding each tap k of p reads its own pixel, so
#
#     ||row_{c,p}(C)||² = Σ_{i,k} W[c,i,k]² · 1[tap k of p lands inside the input]
#
# which is exactly one convolution of a ones map with W² — border effects of padding, stride,
# dilation and groups included, and no dependence on the batch. The other padding modes read a
# real pixel through the padding (wrapped, reflected, replicated), so two taps of one output can
# read the same pixel and their weights add before squaring; see conv_row_norms_sq.
# --------------------------------------------------------------------------------------------

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


def _ntuple(value, n: int) -> tuple[int, ...]:
    return tuple(value) if isinstance(value, (tuple, list)) else (value,) * n


def conv_padding_pairs(padding, kernel_size, dilation) -> list[tuple[int, int]]:
    """``(before, after)`` padding per spatial dim, as ``nn.Conv1d/2d`` and ``F.conv1d/2d`` apply it.

    ``padding``: an int, a tuple, ``"valid"`` or ``"same"`` (total ``d·(k-1)``, the odd one after).

    >>> conv_padding_pairs("same", (4, 3), (1, 2))
    [(1, 2), (2, 2)]
    """
    k = _ntuple(kernel_size, 1)
    n = len(k)
    d = _ntuple(dilation, n)
    if padding == "valid":
        return [(0, 0)] * n
    if padding == "same":
        return [(di * (ki - 1) // 2, di * (ki - 1) - di * (ki - 1) // 2) for ki, di in zip(k, d)]
    return [(p, p) for p in _ntuple(padding, n)]


def _tap_index(input_shape, kernel_size, stride, dilation, pairs, padding_mode: str) -> Tensor:
    """Which input pixel (flat index) tap k of output position p reads: ``[K, P']`` (-1: zero padding)."""
    n = len(input_shape)
    idx = torch.arange(math.prod(input_shape), dtype=torch.float64).view(1, 1, *input_shape)
    pad = [v for pair in reversed(pairs) for v in pair]  # F.pad lists the last dim first
    if padding_mode == "zeros":
        idx = torch.nn.functional.pad(idx, pad, value=-1.0)
    else:
        idx = torch.nn.functional.pad(idx, pad, mode=padding_mode)
    k, s, d = _ntuple(kernel_size, n), _ntuple(stride, n), _ntuple(dilation, n)
    if n == 1:  # unfold is 2-D only: a 1-D signal is a 1-row image
        idx, k, s, d = idx.unsqueeze(2), (1,) + k, (1,) + s, (1,) + d
    return torch.nn.functional.unfold(idx, k, dilation=d, stride=s)[0]  # [K, P']


def conv_row_norms_sq(weight: Tensor, input_shape, stride=1, padding=0, dilation=1, groups: int = 1,
                      padding_mode: str = "zeros") -> Tensor:
    """Squared row norms of the convolution operator, ``[C_out, *out_spatial]``.

    ``weight`` ``[C_out, C_in/groups, *kernel]`` (1-D or 2-D kernel), ``input_shape`` the input's
    spatial shape; the other arguments as for ``nn.Conv1d/2d``. Entry ``[c, p]`` is
    ``||row_{c,p}(C)||²``, the squared norm of the gradient of output ``(c, p)`` w.r.t. the input.

    - ``"zeros"``: one convolution of a ones map ``[1, C_in, *input_shape]`` with ``W²`` (no bias,
      same stride, padding, dilation and groups) — see the derivation above this function.
    - ``"reflect"``, ``"replicate"``, ``"circular"``: a pixel read by taps k and l of output p
      counts ``W_k + W_l`` once, so ``||row_{c,p}||² = Σ_{k,l} G[c,k,l] E[k,l,p]`` with the Gram
      matrix over input channels ``G[c,k,l] = Σ_i W[c,i,k] W[c,i,l]`` and ``E[k,l,p] = 1`` when
      taps k and l of p read the same pixel (built from the padded index map; geometry only).

    Differentiable in ``weight`` (the DREG gradient reaches the kernel).

    >>> w = torch.ones(1, 1, 3, dtype=torch.float64)                  # 3-tap box filter
    >>> conv_row_norms_sq(w, (4,), padding=1)                         # border rows lose a tap
    tensor([[2., 3., 3., 2.]], dtype=torch.float64)
    >>> conv_row_norms_sq(w, (4,), padding=1, padding_mode="replicate")  # (1+1)² + 1 at the borders
    tensor([[5., 3., 3., 5.]], dtype=torch.float64)
    """
    n = weight.dim() - 2
    if n not in (1, 2) or len(tuple(input_shape)) != n:
        raise ValueError(f"expected a 1-D or 2-D conv weight and an input shape of as many dims, got weight "
                         f"{tuple(weight.shape)} and input shape {tuple(input_shape)}")
    require_choice("padding_mode", padding_mode, PADDING_MODES)
    input_shape = tuple(int(v) for v in input_shape)
    if padding_mode == "zeros":
        conv = torch.nn.functional.conv1d if n == 1 else torch.nn.functional.conv2d
        ones = weight.new_ones(1, weight.shape[1] * groups, *input_shape)  # [1, C_in, *S]
        return conv(ones, weight * weight, None, stride, padding, dilation, groups)[0]  # [C_out, *S']
    kernel = tuple(weight.shape[2:])
    pairs = conv_padding_pairs(padding, kernel, dilation)
    tap = _tap_index(input_shape, kernel, stride, dilation, pairs, padding_mode)  # [K, P']
    same = (tap.unsqueeze(1) == tap.unsqueeze(0)).to(weight.dtype)  # E [K, K, P']
    wf = weight.flatten(2)  # [C_out, C_in/groups, K]
    gram = torch.einsum("cik,cil->ckl", wf, wf)  # [C_out, K, K]
    out = _conv_out_shape(input_shape, kernel, stride, dilation, pairs)
    rn = gram.reshape(gram.shape[0], -1) @ same.reshape(-1, same.shape[-1]).to(weight.device)  # [C_out, P']
    return rn.view(gram.shape[0], *out)


def _conv_out_shape(input_shape, kernel, stride, dilation, pairs) -> tuple[int, ...]:
    n = len(input_shape)
    s, d = _ntuple(stride, n), _ntuple(dilation, n)
    return tuple((L + b + a - di * (k - 1) - 1) // si + 1
                 for L, k, si, di, (b, a) in zip(input_shape, kernel, s, d, pairs))


def conv_layer_jacobian_sq(slope: Tensor, rn: Tensor) -> Tensor:
    """Per-example ``||S||_F² = Σ_{c,p} σ'(z_{c,p})² r_{c,p}``: ``[N, C, *S]``, ``[C, *S]`` → ``[N]``.

    The conv counterpart of :func:`layer_jacobian_sq` (sums over channels *and* positions).

    >>> conv_layer_jacobian_sq(torch.ones(2, 1, 3), torch.tensor([[2.0, 3.0, 2.0]]))
    tensor([7., 7.])
    """
    if tuple(slope.shape[1:]) != tuple(rn.shape):
        raise ValueError(f"expected row norms of shape {tuple(slope.shape[1:])}, got {tuple(rn.shape)}")
    return (slope * slope).flatten(1) @ rn.reshape(-1)  # [N, C·S] @ [C·S] → [N]
