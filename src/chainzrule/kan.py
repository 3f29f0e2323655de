"""A compact B-spline KAN baseline, in the style of efficient-kan (Blealtan/efficient-kan).

A Kolmogorov-Arnold layer puts a learnable univariate function on every edge ``j -> i``:

    y_i = sum_j  w_base[i, j] * silu(x_j)  +  sum_j sum_k  c[i, j, k] * B_k(x_j)

with ``B_k`` the ``grid_size + spline_order`` B-spline basis functions of order ``spline_order``
on a uniform grid over ``grid_range`` (extended by ``spline_order`` knots on each side). As in
efficient-kan, both sums are plain matrix multiplies: the base path is
``F.linear(silu(x), base_weight)`` and the spline path is
``F.linear(b_splines(x).view(B, -1), spline_weight.view(out, -1))``.

Differences from efficient-kan (choices of ours, for a baseline that stays simple):

- the grid is fixed (no ``update_grid``), and there is no separate ``spline_scaler`` parameter
  and no bias, so a layer has exactly ``out * in * (grid_size + spline_order + 1)`` parameters;
- the spline coefficients start as small uniform noise (``scale_noise / sqrt(in_features)``)
  instead of a least-squares fit of noise, so the network starts close to a SiLU MLP;
- there is no LayerNorm between layers.

**Standardize the inputs.** The splines live on ``grid_range`` (``[-1, 1]`` by default); they
sum to one there and vanish beyond ``grid_range`` widened by ``spline_order`` grid steps, where
only the SiLU base path is left. Feed features with zero mean and unit variance (or widen
``grid_range``); hidden activations are not renormalized, which is the design of the baseline.

>>> import torch
>>> net = KAN(4, [8], 3)
>>> net(torch.randn(5, 4)).shape
torch.Size([5, 3])
>>> sum(p.numel() for p in net.parameters()) == kan_num_parameters(4, [8], 3)
True
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from chainzrule.errors import ConfigError, check_int

__all__ = ["KANLinear", "KAN", "b_spline_bases", "kan_num_parameters", "kan_width_for_params"]


def _hidden_list(hidden: Sequence[int] | int) -> list[int]:
    if not isinstance(hidden, bool) and hasattr(hidden, "__index__"):
        hidden = [hidden]
    try:
        widths = list(hidden)
    except TypeError:
        raise ConfigError(f"expected hidden to be an int or a sequence of ints, got {hidden!r}") from None
    return [check_int("every hidden width", h) for h in widths]


def b_spline_bases(x: torch.Tensor, grid: torch.Tensor, spline_order: int) -> torch.Tensor:
    """B-spline bases of every feature, ``[..., in] -> [..., in, G + K]``, on the knots ``grid``
    ``[in, G + 2K + 1]`` (K = ``spline_order``): Cox-de Boor recursion from order 0 (indicators of
    the half-open knot intervals). Elementwise in the leading dimensions, so a stack of members
    ``[M, B, in]`` (batched training) gets exactly each member's own bases.

    >>> import torch
    >>> grid = KANLinear(2, 1).grid
    >>> b_spline_bases(torch.zeros(4, 3, 2), grid, 3).shape
    torch.Size([4, 3, 2, 8])
    """
    x = x.unsqueeze(-1)  # [..., in, 1]
    bases = ((x >= grid[:, :-1]) & (x < grid[:, 1:])).to(x.dtype)  # [..., in, G + 2K]
    for k in range(1, spline_order + 1):
        left = (x - grid[:, : -(k + 1)]) / (grid[:, k:-1] - grid[:, : -(k + 1)])  # [..., in, G+2K-k]
        right = (grid[:, k + 1 :] - x) / (grid[:, k + 1 :] - grid[:, 1:(-k)])  # [..., in, G+2K-k]
        bases = left * bases[..., :-1] + right * bases[..., 1:]  # [..., in, G + 2K - k]
    return bases.contiguous()  # [..., in, G + K]


class KANLinear(nn.Module):
    """One KAN layer: a SiLU base path plus a B-spline path, both as matrix multiplies.

    Inputs ``[..., in_features]``, outputs ``[..., out_features]``. Parameters:
    ``base_weight [out, in]`` and ``spline_weight [out, in, grid_size + spline_order]``; the
    knots are the buffer ``grid [in, grid_size + 2 * spline_order + 1]``.

    >>> import torch
    >>> layer = KANLinear(3, 2, grid_size=4)
    >>> print(layer.extra_repr())
    in_features=3, out_features=2, grid_size=4, spline_order=3, grid_range=(-1.0, 1.0)
    >>> layer(torch.zeros(7, 3)).shape
    torch.Size([7, 2])
    >>> layer(torch.zeros(7, 4))
    Traceback (most recent call last):
    ...
    chainzrule.errors.ConfigError: expected 3 input features, got 4
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        grid_size: int = 5,
        spline_order: int = 3,
        grid_range: Sequence[float] = (-1.0, 1.0),
        base_activation: type[nn.Module] | nn.Module = nn.SiLU,
        scale_noise: float = 0.1,
    ) -> None:
        super().__init__()
        self.in_features = check_int("in_features", in_features)
        self.out_features = check_int("out_features", out_features)
        self.grid_size = check_int("grid_size", grid_size)
        if isinstance(spline_order, bool) or int(spline_order) != spline_order or spline_order < 0:
            raise ConfigError(f"expected spline_order >= 0, got {spline_order!r}")
        self.spline_order = int(spline_order)
        lo, hi = (float(v) for v in grid_range)
        if not hi > lo:
            raise ConfigError(f"expected grid_range with lo < hi, got ({lo}, {hi})")
        self.grid_range = (lo, hi)
        self.scale_noise = float(scale_noise)

        h = (hi - lo) / self.grid_size
        # the knots on the CPU, then to the default device: the same values everywhere, and a model
        # built under ``torch.device("meta")`` (parameter counting, chainzrule.sizing) does no meta
        # arithmetic, whose first call costs about a second of torch's set-up (benchmarks/bench_kan_engines.py)
        knots = torch.arange(-self.spline_order, self.grid_size + self.spline_order + 1, device="cpu") * h + lo
        grid = knots.expand(self.in_features, -1).contiguous().to(torch.get_default_device())  # [in, G + 2K + 1]
        self.register_buffer("grid", grid)

        n_basis = self.grid_size + self.spline_order
        self.base_weight = nn.Parameter(torch.empty(self.out_features, self.in_features))  # [out, in]
        self.spline_weight = nn.Parameter(
            torch.empty(self.out_features, self.in_features, n_basis)  # [out, in, G + K]
        )
        self.base_activation = base_activation() if isinstance(base_activation, type) else base_activation
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """``base_weight`` as ``nn.Linear``'s weight; spline coefficients U(±scale_noise/sqrt(in))."""
        nn.init.kaiming_uniform_(self.base_weight, a=math.sqrt(5))
        bound = self.scale_noise / math.sqrt(self.in_features)
        nn.init.uniform_(self.spline_weight, -bound, bound)

    def b_splines(self, x: torch.Tensor) -> torch.Tensor:
        """B-spline bases of every input feature, ``[B, in] -> [B, in, grid_size + spline_order]``.

        Cox-de Boor recursion from order 0 (indicators of the half-open knot intervals) up to
        ``spline_order``; inside ``grid_range`` the bases of each feature sum to one.

        >>> import torch
        >>> layer = KANLinear(2, 1)
        >>> bases = layer.b_splines(torch.tensor([[0.3, -0.9]]))
        >>> bases.shape, torch.allclose(bases.sum(-1), torch.ones(1, 2))
        (torch.Size([1, 2, 8]), True)
        """
        if x.dim() != 2 or x.shape[1] != self.in_features:
            raise ConfigError(f"expected x of shape [B, {self.in_features}], got {list(x.shape)}")
        return b_spline_bases(x, self.grid.to(x.dtype), self.spline_order)  # [B, in, G + K]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() < 1 or x.shape[-1] != self.in_features:
            got = x.shape[-1] if x.dim() else 0
            raise ConfigError(f"expected {self.in_features} input features, got {got}")
        lead = x.shape[:-1]
        x = x.reshape(-1, self.in_features)  # [B, in]
        base = F.linear(self.base_activation(x), self.base_weight)  # [B, in] @ [in, out] -> [B, out]
        spline = F.linear(
            self.b_splines(x).view(x.shape[0], -1),  # [B, in * (G + K)]
            self.spline_weight.view(self.out_features, -1),  # [out, in * (G + K)]
        )  # [B, out]
        return (base + spline).reshape(*lead, self.out_features)  # [..., out]

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"grid_size={self.grid_size}, spline_order={self.spline_order}, grid_range={self.grid_range}"
        )


class KAN(nn.Module):
    """A stack of :class:`KANLinear` layers ``in -> hidden... -> out`` (no LayerNorm).

    ``hidden`` is a width or a list of widths (``[]`` gives a single layer). The output is
    the last layer's value ``[..., out_features]`` (logits for classification). Inputs should
    be standardized (see the module docstring).

    >>> import torch
    >>> net = KAN(10, [16, 16], 4, grid_size=3)
    >>> len(net.layers), net(torch.randn(2, 5, 10)).shape
    (3, torch.Size([2, 5, 4]))
    """

    def __init__(
        self,
        in_features: int,
        hidden: Sequence[int] | int,
        out_features: int,
        grid_size: int = 5,
        spline_order: int = 3,
        grid_range: Sequence[float] = (-1.0, 1.0),
        base_activation: type[nn.Module] | nn.Module = nn.SiLU,
    ) -> None:
        super().__init__()
        widths = [check_int("in_features", in_features), *_hidden_list(hidden),
                  check_int("out_features", out_features)]
        self.in_features, self.out_features = widths[0], widths[-1]
        self.layers = nn.ModuleList(
            KANLinear(a, b, grid_size=grid_size, spline_order=spline_order,
                      grid_range=grid_range, base_activation=base_activation)
            for a, b in zip(widths[:-1], widths[1:])
        )

    def reset_parameters(self) -> None:
        """Re-initialize every layer."""
        for layer in self.layers:
            layer.reset_parameters()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)  # [..., width_l] -> [..., width_{l+1}]
        return x


def kan_num_parameters(
    in_features: int,
    hidden: Sequence[int] | int,
    out_features: int,
    grid_size: int = 5,
    spline_order: int = 3,
) -> int:
    """Closed-form parameter count of :class:`KAN`: ``sum_l in_l * out_l * (G + K + 1)``.

    >>> kan_num_parameters(784, [64], 10, grid_size=5, spline_order=3)
    457344
    """
    widths = [check_int("in_features", in_features), *_hidden_list(hidden),
              check_int("out_features", out_features)]
    per_edge = check_int("grid_size", grid_size) + int(spline_order) + 1
    return sum(a * b for a, b in zip(widths[:-1], widths[1:])) * per_edge


def kan_width_for_params(
    target: int,
    in_features: int,
    out_features: int,
    depth: int = 1,
    grid_size: int = 5,
    spline_order: int = 3,
) -> int:
    """Hidden width ``w`` (``depth`` layers of ``w``) whose :func:`kan_num_parameters` is
    closest to ``target`` (ties go to the smaller width; at least 1).

    >>> w = kan_width_for_params(100_000, 784, 10, depth=1)
    >>> w, kan_num_parameters(784, [w], 10)
    (14, 100044)
    """
    target = check_int("target", target)
    depth = check_int("depth", depth)
    per_edge = check_int("grid_size", grid_size) + int(spline_order) + 1
    a, b = depth - 1, in_features + out_features  # count / per_edge = a w^2 + b w
    t = target / per_edge
    w_real = t / b if a == 0 else (-b + math.sqrt(b * b + 4 * a * t)) / (2 * a)
    candidates = {max(1, math.floor(w_real) + d) for d in (-1, 0, 1, 2)}

    def count(w: int) -> int:
        return kan_num_parameters(in_features, [w] * depth, out_features, grid_size, spline_order)

    return min(sorted(candidates), key=lambda w: abs(count(w) - target))
