"""The convolutional hidden layer: ``nn.Conv1d/2d`` + a derivative-aware activation, with exact DREG.

A conv layer computes ``h = σ(z)``, ``z = C x + b``, where ``C`` is the convolution written as a
matrix (``[C_out·P', C_in·P]`` for ``P`` input and ``P'`` output positions). Its Jacobian is
``S = diag(σ'(z)) C``, so per example

    ||S||_F² = Σ_{c,p} σ'(z_{c,p})² · ||row_{c,p}(C)||²

exactly as for a dense layer (guide §2). The squared row norms depend on the weight and on the
geometry only — padding, stride, dilation and groups, border effects included — and come from one
convolution of a ones map with ``W²`` (:func:`chainzrule.functional.conv_row_norms_sq`; the other
padding modes are handled exactly too). So DREG on a conv layer costs one tiny batch-1 convolution
and one elementwise pass, no double backward and no random projection. The tests hold the term
against ``torch.func.jacrev`` of the layer for every stride/padding/dilation/groups combination.

The layer mirrors :class:`~chainzrule.layers.HiddenLayer`: ``layer(x)`` computes exactly
``σ(conv(x))``; ``layer(x, return_jacobian=True)`` also returns ``||S||_F²`` ``[N]``; inside
``chainzrule.dreg.collect(model)`` it records the term for the collector. The convolution is a
genuine ``nn.Conv1d/2d`` (``layer.conv``), called as a module, so its hooks, parametrizations and
``state_dict`` keys behave as usual.

>>> import torch
>>> from chainzrule.poly import PolynomialActivation
>>> layer = ConvHiddenLayer(3, 8, 3, PolynomialActivation(8, dim=1), padding=1)
>>> h, jsq = layer(torch.randn(4, 3, 10, 10), return_jacobian=True)
>>> h.shape, jsq.shape
(torch.Size([4, 8, 10, 10]), torch.Size([4]))
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from . import dreg
from . import functional as CF
from .errors import ConfigError, check_int, is_int
from .poly import PolynomialActivation

#: input entries (C_in·H·W) up to which :meth:`ConvHiddenLayer.operator_norm_bound` is the exact σ_max
#: from a dense Gram matrix (3136, the MNIST CNN's second layer, takes a few seconds on 2 cores)
DENSE_NORM_LIMIT = 4096


class ConvHiddenLayer(nn.Module):
    """``σ(conv(x))`` that can also return its per-example ``||S||_F²`` (see module docstring).

    Args:
        in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
        padding_mode: as for ``nn.Conv1d`` / ``nn.Conv2d`` (``padding_mode`` any of zeros,
            reflect, replicate, circular: the row norms are exact for each).
        activation: an elementwise module with ``value_and_derivative(z)`` — a standard one from
            :mod:`chainzrule.activations` (any shape), or a per-channel
            :class:`~chainzrule.poly.PolynomialActivation` built with ``num_features=out_channels``
            and ``dim=1`` (``groups`` of the polynomial: shared coefficients, as usual).
        spatial_dims: 1 (``nn.Conv1d``, inputs ``[N, C, L]``) or 2 (``nn.Conv2d``, ``[N, C, H, W]``).

    Shapes: ``[N, in_channels, *spatial]`` → ``[N, out_channels, *out_spatial]``; the Jacobian
    term ``[N]``. Unbatched inputs are refused (add the batch dimension).

    ConfigError before anything is built unless the channel counts and ``groups`` are positive
    integers, ``groups`` divides both channel counts, ``kernel_size``, ``stride`` and ``dilation``
    are positive integers (or tuples of ``spatial_dims`` of them), ``padding`` non-negative
    integers (or ``"valid"``, or ``"same"`` with stride 1) and ``padding_mode`` one of
    :data:`~chainzrule.functional.PADDING_MODES`.

    >>> from chainzrule.activations import ReLU
    >>> layer = ConvHiddenLayer(2, 4, 3, ReLU(), stride=2, spatial_dims=1)
    >>> layer(torch.randn(5, 2, 9)).shape
    torch.Size([5, 4, 4])
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, activation: nn.Module, stride=1,
                 padding=0, dilation=1, groups: int = 1, bias: bool = True, padding_mode: str = "zeros",
                 spatial_dims: int = 2, device=None, dtype=None) -> None:
        super().__init__()
        if spatial_dims not in (1, 2):
            raise ConfigError(f"spatial_dims must be 1 (Conv1d) or 2 (Conv2d), got {spatial_dims!r}")
        _check_geometry(spatial_dims, in_channels, out_channels, kernel_size, stride, padding, dilation, groups,
                        padding_mode)
        _check_activation(activation, out_channels)
        cls = nn.Conv1d if spatial_dims == 1 else nn.Conv2d
        self.conv = cls(in_channels, out_channels, kernel_size, stride=stride, padding=padding, dilation=dilation,
                        groups=groups, bias=bias, padding_mode=padding_mode, device=device, dtype=dtype)
        self.activation = activation

    @property
    def spatial_dims(self) -> int:
        return self.conv.weight.dim() - 2

    @property
    def in_channels(self) -> int:
        return self.conv.in_channels

    @property
    def out_channels(self) -> int:
        return self.conv.out_channels

    def _check(self, x: Tensor) -> None:
        n = self.spatial_dims
        if x.dim() != n + 2 or x.shape[1] != self.conv.in_channels:
            want = "[N, C, L]" if n == 1 else "[N, C, H, W]"
            raise ConfigError(f"expected input {want} with C={self.conv.in_channels} (batched), "
                              f"got shape {tuple(x.shape)}")

    def forward(self, x: Tensor, return_jacobian: bool = False):
        """``σ(conv(x))`` ``[N, C_out, *S']``; with ``return_jacobian`` also ``||S||_F²`` ``[N]``."""
        self._check(x)
        if not (return_jacobian or dreg.wanted(self)):
            return self.activation(self.conv(x))
        h, jsq = self.forward_with_jacobian(x)
        dreg.record(self, jsq)
        return (h, jsq) if return_jacobian else h

    def forward_with_jacobian(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(σ(conv(x)), ||S||_F²)``: ``[N, C_out, *S']``, ``[N]`` (records nothing anywhere).

        Refused under ``torch.jit.trace``: the row norms depend on the input's spatial size, which
        a trace would freeze, so the traced terms would be silently wrong at any other size
        (``torch.export`` and ``torch.compile`` specialize on it or refuse a dynamic one).
        """
        self._check(x)
        if torch.jit.is_tracing():
            raise ConfigError("expected torch.export or torch.compile to capture a ConvHiddenLayer's DREG term, got "
                              "torch.jit.trace, which would freeze its row norms at the traced input size (trace "
                              "the model without return_jacobian, or use torch.export)")
        z = self.conv(x)  # [N, C_out, *S']
        rn = self.row_norms_sq(x.shape[2:])  # [C_out, *S']
        act = self.activation
        if isinstance(act, PolynomialActivation):  # per-channel: fused σ and Σ σ'² r, no data moved
            return act.value_and_jacobian_sq(z, rn)
        fused = getattr(act, "value_and_jacobian_sq", None)
        if fused is not None and getattr(act, "num_features", None) is None:
            # an elementwise activation does not care about the layout: flatten to [N, C·S']
            h, jsq = fused(z.flatten(1), rn.reshape(-1))
            return h.view(z.shape), jsq
        h, slope = act.value_and_derivative(z)  # [N, C_out, *S'] each
        return h, CF.conv_layer_jacobian_sq(slope, rn)

    def row_norms_sq(self, input_shape) -> Tensor:
        """``||row_{c,p}(C)||²`` for an input of spatial shape ``input_shape``, ``[C_out, *S']``."""
        c = self.conv
        return CF.conv_row_norms_sq(c.weight, tuple(input_shape), c.stride, c.padding, c.dilation, c.groups,
                                    c.padding_mode)

    @torch.no_grad()
    def operator_norm(self, input_shape, iters: int = 100, seed: int = 0) -> float:
        """ℓ2 operator norm of the convolution (bias aside) on inputs of spatial shape
        ``input_shape``: the largest singular value of ``C``, by power iteration on ``CᵀC``
        (``iters`` steps from a seeded random start; an estimate from below that converges to it —
        no certificate: :meth:`operator_norm_bound` is the upper bound ``lipschitz_bound`` uses).

        >>> from chainzrule.activations import ReLU
        >>> layer = ConvHiddenLayer(1, 1, 1, ReLU(), bias=False)
        >>> with torch.no_grad():
        ...     _ = layer.conv.weight.fill_(-2.0)
        >>> round(layer.operator_norm((5, 5)), 6)                   # a 1x1 conv is 2·identity
        2.0
        """
        c = self.conv
        w = c.weight.detach().double()
        g = torch.Generator().manual_seed(int(seed))
        v = torch.randn((1, c.in_channels, *input_shape), generator=g, dtype=torch.float64).to(w.device)
        conv = lambda u: self._conv_nobias(u, w)  # [1, C_in, *S] -> [1, C_out, *S']
        norm = 0.0
        for _ in range(int(iters)):
            v = v / v.norm().clamp_min(1e-300)
            u = conv(v)
            (v,) = torch.autograd.functional.vjp(conv, v, u)[1:]  # Cᵀ C v
            norm = float(u.norm())
        return norm

    @torch.no_grad()
    def operator_norm_bound(self, input_shape, dense_limit: int = DENSE_NORM_LIMIT) -> float:
        """A certified upper bound on the ℓ2 operator norm of the convolution (bias aside) on inputs
        of spatial shape ``input_shape`` — what :func:`chainzrule.lipschitz_bound` multiplies.

        Up to ``dense_limit`` input entries (``C_in·H·W``; the MNIST CNN's layers have 784 and
        3136): the exact σ_max, ``sqrt(λ_max(CᵀC))`` with ``CᵀC`` built column by column (one
        convolution and its transpose per chunk of unit inputs) and ``torch.linalg.eigvalsh`` in
        float64 — as exact as the spectral norm of a dense weight. Above it: the norm of the
        circular convolution on the padded grid (``max_ω ||Ŵ(ω)||_2`` over its DFT frequencies,
        Sedghi et al. 2019), of which the padded convolution is a block (so it is never smaller),
        times the padding operator's norm ``sqrt(max multiplicity)`` for reflect/replicate padding
        (a circular padding of the kernel's reach is the circulant on the input's grid itself); a
        stride keeps a subset of the outputs (norm ≤). Zero padding: within 1% of σ_max on 28×28
        maps and 2% on 14×14 (measured on random kernels), looser on tiny maps, strides and
        reflect/replicate padding (up to 1.8× on 7×8).

        (:meth:`operator_norm`'s power iteration converges to σ_max *from below*: 500 steps stop
        up to 5e-4 under it on 28×28 maps, so it is no certificate.)

        >>> from chainzrule.activations import ReLU
        >>> layer = ConvHiddenLayer(1, 1, 1, ReLU(), bias=False)
        >>> with torch.no_grad():
        ...     _ = layer.conv.weight.fill_(-2.0)
        >>> round(layer.operator_norm_bound((5, 5)), 12), round(layer.operator_norm_bound((5, 5), dense_limit=0), 12)
        (2.0, 2.0)
        """
        shape = tuple(int(v) for v in input_shape)
        w = self.conv.weight.detach().double()
        n = self.conv.in_channels * math.prod(shape)
        if n <= dense_limit:
            return self._dense_norm(shape, w)
        return self._circulant_norm_bound(shape, w)

    def _dense_norm(self, shape: tuple[int, ...], w: Tensor, chunk: int = 256) -> float:
        """Exact σ_max from the Gram matrix ``CᵀC`` ``[n, n]``, ``n = C_in·prod(shape)``."""
        c_in = self.conv.in_channels
        n = c_in * math.prod(shape)
        gram = torch.empty(n, n, dtype=torch.float64, device=w.device)
        conv = lambda u: self._conv_nobias(u, w)  # [B, C_in, *S] -> [B, C_out, *S']
        for start in range(0, n, chunk):
            rows = torch.arange(start, min(start + chunk, n), device=w.device)
            e = torch.zeros(len(rows), n, dtype=torch.float64, device=w.device)
            e[torch.arange(len(rows), device=w.device), rows] = 1.0  # unit inputs
            out, vjp = torch.func.vjp(conv, e.view(len(rows), c_in, *shape))
            gram[start:start + len(rows)] = vjp(out)[0].reshape(len(rows), n)  # CᵀC e_j
        return math.sqrt(max(float(torch.linalg.eigvalsh(gram)[-1]), 0.0))

    def _circulant_norm_bound(self, shape: tuple[int, ...], w: Tensor) -> float:
        """``||P|| · max_ω ||Ŵ(ω)||_2`` (see :meth:`operator_norm_bound`)."""
        c = self.conv
        n_sp = len(shape)
        if c.groups > 1:  # the block-diagonal dense kernel [C_out, C_in, *k]
            full = w.new_zeros(c.out_channels, c.in_channels, *w.shape[2:])
            o, i = c.out_channels // c.groups, c.in_channels // c.groups
            for g in range(c.groups):
                full[g * o:(g + 1) * o, g * i:(g + 1) * i] = w[g * o:(g + 1) * o]
            w = full
        pads = c._reversed_padding_repeated_twice  # (last dim left, right, previous dim left, right, ...)
        total = [pads[2 * (n_sp - 1 - d)] + pads[2 * (n_sp - 1 - d) + 1] for d in range(n_sp)]
        extent = [c.dilation[d] * (w.shape[2 + d] - 1) + 1 for d in range(n_sp)]
        # a circular padding of exactly the kernel's reach makes the (stride-1) map the circulant on the
        # input's own grid, P included; otherwise the padded input on a grid it fits in (no wrap)
        wrap = c.padding_mode == "circular" and all(total[d] == extent[d] - 1 <= shape[d] - 1 for d in range(n_sp))
        grid = list(shape) if wrap else [max(shape[d] + total[d], extent[d]) for d in range(n_sp)]
        dilated = w.new_zeros(*w.shape[:2], *grid)
        dilated[(slice(None), slice(None), *(slice(0, extent[d], c.dilation[d]) for d in range(n_sp)))] = w
        spectrum = torch.fft.fftn(dilated, dim=tuple(range(2, 2 + n_sp)))  # [C_out, C_in, *grid]
        per_freq = spectrum.permute(*range(2, 2 + n_sp), 0, 1)  # [*grid, C_out, C_in]
        norm = float(torch.linalg.matrix_norm(per_freq, ord=2).max())
        if c.padding_mode != "zeros" and any(total) and not wrap:  # P copies border entries: ||P||² = max multiplicity
            ones = torch.ones(1, 1, *shape, dtype=torch.float64, device=w.device)
            _, vjp = torch.func.vjp(lambda u: torch.nn.functional.pad(u, pads, mode=c.padding_mode), ones)
            norm *= math.sqrt(float(vjp(torch.ones(1, 1, *[s + t for s, t in zip(shape, total)],
                                                  dtype=torch.float64, device=w.device))[0].max()))
        return norm

    def _conv_nobias(self, u: Tensor, w: Tensor) -> Tensor:
        c = self.conv
        if c.padding_mode != "zeros":
            u = torch.nn.functional.pad(u, c._reversed_padding_repeated_twice, mode=c.padding_mode)
            pad = 0
        else:
            pad = c.padding
        fn = torch.nn.functional.conv1d if self.spatial_dims == 1 else torch.nn.functional.conv2d
        return fn(u, w, None, c.stride, pad, c.dilation, c.groups)

    def derivative(self, x: Tensor) -> Tensor:
        """σ'(conv(x)), ``[N, C_out, *S']`` (for inspection)."""
        self._check(x)
        return self.activation.derivative(self.conv(x))

    @torch.no_grad()
    def max_slope(self) -> Tensor:
        """Certified bound on |σ'| per channel (``[C_out]``) or for all channels (0-d)."""
        return self.activation.max_slope()


def _check_geometry(n: int, in_channels, out_channels, kernel_size, stride, padding, dilation, groups,
                    padding_mode) -> None:
    """ConfigError naming the argument, what it must be and what was given (see :class:`ConvHiddenLayer`):
    torch would build zero-element weights, fail only in the forward, or name no values."""
    for name, v in (("in_channels", in_channels), ("out_channels", out_channels), ("groups", groups)):
        check_int(name, v)
    for name, v in (("in_channels", in_channels), ("out_channels", out_channels)):
        if v % groups:
            raise ConfigError(f"groups must divide in_channels and out_channels, got groups={groups} and {name}={v}")
    for name, v, kind in (("kernel_size", kernel_size, "positive"), ("stride", stride, "positive"),
                          ("dilation", dilation, "positive"), ("padding", padding, "non-negative")):
        if name == "padding" and isinstance(v, str) and v in ("valid", "same"):
            continue
        vals = tuple(v) if isinstance(v, (tuple, list)) else (v,)
        low = 1 if kind == "positive" else 0
        if (isinstance(v, (tuple, list)) and len(vals) != n) or not all(is_int(x) and x >= low for x in vals):
            strings = "'valid', 'same', " if name == "padding" else ""
            raise ConfigError(f"{name} must be {strings}a {kind} integer or a tuple of {n} {kind} integers "
                              f"(spatial_dims={n}), got {v!r}")
    if padding == "same" and any(s != 1 for s in (stride if isinstance(stride, (tuple, list)) else (stride,))):
        raise ConfigError(f"padding 'same' needs stride 1 (a strided conv's output is smaller than its input), "
                          f"got stride={stride!r}")
    if padding_mode not in CF.PADDING_MODES:
        raise ConfigError(f"padding_mode must be one of {', '.join(CF.PADDING_MODES)}, got {padding_mode!r}")


def _check_activation(activation: nn.Module, out_channels: int) -> None:
    if not callable(getattr(activation, "value_and_derivative", None)):
        raise ConfigError("activation must provide value_and_derivative(z) (see chainzrule.activations), "
                          f"got {type(activation).__name__}")
    n = getattr(activation, "num_features", None)
    if n is None:
        return
    if n != out_channels:
        raise ConfigError(f"activation has {n} features, expected out_channels={out_channels}")
    if getattr(activation, "dim", None) != 1:
        raise ConfigError("a per-channel activation of a conv layer acts on the channel axis of "
                          f"[N, C, *spatial]: expected dim=1, got dim={getattr(activation, 'dim', None)!r}")


def conv_hidden_layers(model: nn.Module) -> list[tuple[str, ConvHiddenLayer]]:
    """All :class:`ConvHiddenLayer` submodules of ``model`` (itself included), in registration order.

    >>> from chainzrule.activations import ReLU
    >>> net = nn.Sequential(ConvHiddenLayer(1, 4, 3, ReLU()), nn.Flatten())
    >>> [name for name, _ in conv_hidden_layers(net)]
    ['0']
    """
    return [(name, m) for name, m in model.named_modules() if isinstance(m, ConvHiddenLayer)]
