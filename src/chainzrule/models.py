"""Models: ChainzRule MLP and the standard MLP, built from the same :class:`HiddenLayer`.

Both are a stack of hidden layers followed by a plain output head (``nn.Linear`` by default; an
ordinal head can be passed instead). The head is never penalized by DREG: its Jacobian is its
weight matrix, and penalizing that is plain weight decay.

Parameter counts are exact (:func:`count_parameters`) and have closed forms
(:func:`num_parameters`) used to match widths between contenders (:func:`match_width`).

>>> import torch
>>> cr = ChainzRuleMLP(784, [256, 256], 10)
>>> cr(torch.randn(2, 784)).shape
torch.Size([2, 10])
>>> count_parameters(cr) == num_parameters("chainzrule", 784, [256, 256], 10, degree=3)
True
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor, nn

from .activations import POLY_NAMES, make_activation
from .errors import ConfigError, check_int, is_int, is_list_like, is_number
from .layers import HiddenLayer, check_features, check_module
from .poly import DEGREE_LIMIT


def _widths(hidden: int | Sequence[int]) -> list[int]:
    widths = [hidden] if is_int(hidden) else list(hidden) if is_list_like(hidden) else []
    if not widths or any(not is_int(w) or w < 1 for w in widths):
        raise ConfigError(f"hidden must be a positive int or a non-empty list of them, got {hidden!r}")
    return [int(w) for w in widths]


def check_head(head: nn.Module | None, width: int) -> None:
    """ConfigError unless ``head`` is None or a module; one with an integer ``in_features`` (an
    ``nn.Linear``, the ordinal heads) must take the last hidden width ``width``.

    >>> check_head(nn.Linear(7, 3), 8)
    Traceback (most recent call last):
    ...
    chainzrule.errors.ConfigError: expected a head taking the last hidden width, 8 features, got Linear with in_features=7
    """
    if head is None:
        return
    if not isinstance(head, nn.Module):
        raise ConfigError(f"expected head to be an nn.Module (or None for nn.Linear), got {type(head).__name__}")
    n = getattr(head, "in_features", None)
    if is_int(n) and n != width:
        raise ConfigError(f"expected a head taking the last hidden width, {width} features, got "
                          f"{type(head).__name__} with in_features={n}")


class FeedForward(nn.Module):
    """Hidden layers (``self.hidden_layers``) then an output head (``self.head``).

    ``forward(x)``: ``[..., in_features]`` → ``[..., out_features]`` (a tensor, never a tuple);
    ``features(x)`` returns the last hidden representation. A given ``head`` decides the output:
    ``out_features`` is then ignored (an ordinal head's K − 1 logits, for instance), and a head
    with ``in_features`` must take the last hidden width (ConfigError otherwise).
    """

    def __init__(
        self,
        in_features: int,
        hidden: int | Sequence[int],
        out_features: int,
        activation_factory,
        head: nn.Module | None = None,
        bias: bool = True,
    ) -> None:
        super().__init__()
        in_features, out_features = check_int("in_features", in_features), check_int("out_features", out_features)
        widths = _widths(hidden)
        self.in_features = in_features
        self.out_features = out_features
        dims = [in_features] + widths
        self.hidden_layers = nn.ModuleList(
            HiddenLayer(d_in, d_out, activation_factory(d_out), bias=bias)
            for d_in, d_out in zip(dims[:-1], dims[1:])
        )
        check_head(head, widths[-1])
        self.head = head if head is not None else nn.Linear(widths[-1], out_features, bias=bias)

    @property
    def widths(self) -> list[int]:
        return [layer.out_features for layer in self.hidden_layers]

    def features(self, x: Tensor) -> Tensor:
        """Last hidden representation, ``[..., widths[-1]]``."""
        check_features(x, self.in_features)
        for layer in self.hidden_layers:
            x = layer(x)  # [..., width_l]
        return x

    def forward(self, x: Tensor, return_jacobian: bool = False):
        """Logits ``[..., out_features]``; with ``return_jacobian`` also every hidden layer's
        per-example ``||S||_F²``, ``[..., layers]`` (what :func:`chainzrule.dreg_penalty` takes)."""
        if not return_jacobian:
            return self.head(self.features(x))
        check_features(x, self.in_features)
        terms = []
        for layer in self.hidden_layers:
            x, jsq = layer(x, return_jacobian=True)  # [..., width_l], [...]
            terms.append(jsq)
        return self.head(x), torch.stack(terms, dim=-1)  # [..., out], [..., L]


class MLP(FeedForward):
    """A standard MLP with a derivative-aware activation (relu, gelu, silu, tanh).

    DREG-ready as is: ``logits, jsq = net(x, return_jacobian=True)`` (see :mod:`chainzrule.dreg`).

    >>> net = MLP(10, [32, 32], 3, activation="silu")
    >>> net(torch.randn(5, 10)).shape
    torch.Size([5, 3])
    """

    def __init__(
        self,
        in_features: int,
        hidden: int | Sequence[int],
        out_features: int,
        activation: str = "relu",
        head: nn.Module | None = None,
        bias: bool = True,
    ) -> None:
        if activation in POLY_NAMES:
            raise ConfigError("MLP takes a standard activation; use ChainzRuleMLP for polynomials")
        make_activation(activation)  # validate the name before building anything
        super().__init__(
            in_features, hidden, out_features, lambda n: make_activation(activation), head, bias,
        )
        self.activation_name = activation


class ChainzRuleMLP(FeedForward):
    """ChainzRule network: hidden layers with learnable per-neuron polynomials (Polynomial Engine).

    Args beyond :class:`MLP`: ``degree``, ``init``, ``bound``, ``range_control``, ``basis`` go to
    every :class:`~chainzrule.poly.PolynomialActivation`. Train it with DREG through
    ``net(x, return_jacobian=True)`` or :func:`chainzrule.dreg.collect`.

    >>> net = ChainzRuleMLP(10, 16, 2, degree=5, init="silu")
    >>> net.hidden_layers[0].activation.coefficients.shape
    torch.Size([6, 16])
    """

    def __init__(
        self,
        in_features: int,
        hidden: int | Sequence[int],
        out_features: int,
        degree: int = 3,
        init: str = "gelu",
        bound: float = 3.0,
        range_control: str = "linear",
        basis: str = "legendre",
        head: nn.Module | None = None,
        bias: bool = True,
    ) -> None:
        poly = dict(degree=degree, init=init, bound=bound, range_control=range_control, basis=basis)
        make_activation("poly", 1, **poly)  # validate before building anything
        super().__init__(
            in_features, hidden, out_features, lambda n: make_activation("poly", n, **poly), head, bias,
        )
        self.poly_options = poly


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Exact number of (unique) parameters of ``model``."""
    check_module(model)
    seen, total = set(), 0
    for p in model.parameters():
        if id(p) in seen or (trainable_only and not p.requires_grad):
            continue
        seen.add(id(p))
        total += p.numel()
    return total


def num_parameters(
    kind: str, in_features: int, hidden: int | Sequence[int], out_features: int, degree: int = 3
) -> int:
    """Closed-form parameter count of an ``MLP`` (kind "mlp") or ``ChainzRuleMLP`` ("chainzrule").

    Linear layers count ``in·out + out``; a polynomial adds ``degree + 1`` per hidden unit.

    >>> num_parameters("mlp", 784, [256, 256], 10)
    269322

    ConfigError for an unknown ``kind``, sizes that are not positive integers, or (kind
    "chainzrule") a degree outside 1..DEGREE_LIMIT, as the models themselves refuse.
    """
    if kind not in ("mlp", "chainzrule"):
        raise ConfigError(f"unknown model kind {kind!r}: expected 'mlp' or 'chainzrule'")
    in_features, out_features = check_int("in_features", in_features), check_int("out_features", out_features)
    if kind == "chainzrule" and not (is_int(degree) and 1 <= degree <= DEGREE_LIMIT):
        raise ConfigError(f"expected an integer degree in 1..{DEGREE_LIMIT}, got {degree!r}")
    widths = _widths(hidden)
    dims = [in_features] + widths + [out_features]
    total = sum(a * b + b for a, b in zip(dims[:-1], dims[1:]))
    if kind == "chainzrule":
        total += (degree + 1) * sum(widths)
    return total


def closest_width(count, target: int, limit: int = 1 << 20) -> int:
    """The width ``w >= 1`` whose ``count(w)`` (increasing in ``w``) is closest to ``target``.

    Doubling then bisection: O(log target) calls of ``count``.

    >>> closest_width(lambda w: 10 * w, 95)
    9
    """
    lo, hi = 1, 2
    while count(hi) < target and hi < limit:
        hi *= 2
    while hi - lo > 1:  # invariant: count(lo) < target <= count(hi), or lo == 1
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if count(mid) < target else (lo, mid)
    return min((lo, hi), key=lambda w: abs(count(w) - target))


def match_width(
    target_params: int,
    in_features: int,
    out_features: int,
    depth: int,
    kind: str = "mlp",
    degree: int = 3,
    tolerance: float = 0.05,
) -> int:
    """Width ``w`` (same for all ``depth`` hidden layers) whose parameter count is closest to target.

    Raises ``ValueError`` if the best width misses ``target_params`` by more than ``tolerance``
    (relative), which only happens for targets below the smallest network of that shape, and for
    a ``target_params`` that is not a finite number > 0, a ``depth`` (the number of hidden
    layers) that is not an integer >= 1, a ``tolerance`` that is not a number >= 0, or sizes,
    ``kind`` and ``degree`` :func:`num_parameters` refuses.

    >>> w = match_width(100_000, 784, 10, depth=2)
    >>> abs(num_parameters("mlp", 784, [w, w], 10) - 100_000) / 100_000 < 0.05
    True
    """
    if not (is_number(target_params) and math.isfinite(target_params) and target_params > 0):
        raise ConfigError(f"expected target_params (a parameter count) > 0, got {target_params!r}")
    check_int("depth (hidden layers)", depth)
    if not (is_number(tolerance) and tolerance >= 0):  # nan >= 0 is False
        raise ConfigError(f"expected tolerance (the relative miss allowed) a number >= 0, got {tolerance!r}")
    num_parameters(kind, in_features, 1, out_features, degree)  # the sizes, degree and kind, before the search

    def count(w: int) -> int:
        return num_parameters(kind, in_features, [w] * depth, out_features, degree)

    best = closest_width(count, target_params)
    err = abs(count(best) - target_params) / target_params
    if err > tolerance:
        raise ConfigError(
            f"no {kind} width with depth {depth} has {target_params} parameters within "
            f"{tolerance:.0%}: closest is width {best} with {count(best)}"
        )
    return best
