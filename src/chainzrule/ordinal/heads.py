"""Ordinal output heads: cumulative link (CLM), CORAL and CORN, and :func:`make_ordinal_head`.

Every head takes the *penultimate features* ``h`` ``[..., in_features]``, owns the projection to
the score and returns one tensor of logits ``[..., K-1]``; which probability those logits
describe depends on the head's ``kind`` (see :mod:`chainzrule.ordinal`). The losses, class
probabilities and prediction rules that read these logits are in :mod:`chainzrule.ordinal.losses`.

>>> make_ordinal_head("corn", 8, 5)(torch.zeros(2, 8)).shape
torch.Size([2, 4])
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from chainzrule.errors import ConfigError, check_int

__all__ = ["ORDINAL_KINDS", "CumulativeLinkHead", "CoralHead", "CornHead", "check_kind", "make_ordinal_head",
           "ordered_cutpoints"]

#: The kinds of ordinal head understood by :func:`make_ordinal_head`, :func:`ordinal_loss`,
#: :func:`ordinal_predict` and :func:`class_probs`.
ORDINAL_KINDS: tuple[str, ...] = ("clm", "coral", "corn")


def check_kind(kind: str) -> str:
    """``kind`` itself if it is one of :data:`ORDINAL_KINDS`; ConfigError otherwise."""
    if kind not in ORDINAL_KINDS:
        raise ConfigError(f"unknown ordinal kind: expected one of {list(ORDINAL_KINDS)}, got {kind!r}")
    return kind


def _check_sizes(in_features: int, num_classes: int) -> None:
    check_int("in_features", in_features)
    check_int("num_classes", num_classes, minimum=2)


# ----------------------------------------------------------------------------------------------
# cumulative link model (ordered logit)
# ----------------------------------------------------------------------------------------------


def ordered_cutpoints(first: Tensor, gaps_raw: Tensor, min_gap: float = 1e-3) -> Tensor:
    """Cutpoints ``θ_1 < … < θ_{K-1}`` from unconstrained parameters, ordered by construction.

    ``θ_1 = first`` and ``θ_{k+1} = θ_k + min_gap + softplus(gaps_raw[k])``, so every gap is at
    least ``min_gap`` (the floor keeps them strictly ordered even where softplus underflows to 0).
    In floating point the order is strict as long as ``|θ|`` times the machine epsilon stays below
    ``min_gap`` (``|θ|`` up to about 8000 in float32 with the default).

    Args:
        first: ``[1]`` (or ``[]``), the first cutpoint.
        gaps_raw: ``[K-2]``, unconstrained gap parameters.
        min_gap: smallest gap between neighbouring cutpoints (> 0).

    Returns:
        ``[K-1]`` cutpoints, strictly increasing.

    >>> ordered_cutpoints(torch.tensor([-1.0]), torch.tensor([-50.0, 0.0]), min_gap=0.5)
    tensor([-1.0000, -0.5000,  0.6931])
    """
    if min_gap <= 0:
        raise ConfigError(f"expected min_gap > 0, got {min_gap}")
    first = first.reshape(1)  # [1]
    gaps = F.softplus(gaps_raw) + min_gap  # [K-2], every gap >= min_gap
    return torch.cat([first, first + torch.cumsum(gaps, dim=0)])  # [K-1]


def _inverse_softplus(y: Tensor) -> Tensor:
    # softplus(x) = y  <=>  x = y + log(1 - exp(-y)),  y > 0
    return y + torch.log(-torch.expm1(-y))


def _uniform_prior_thresholds(num_classes: int) -> Tensor:
    """``logit((k+1)/K)`` for k = 0..K-2: cutpoints under which a zero score gives uniform classes."""
    q = torch.arange(1, num_classes, dtype=torch.float64) / num_classes  # [K-1]
    return torch.log(q) - torch.log1p(-q)  # [K-1]


class CumulativeLinkHead(nn.Module):
    """Cumulative link (ordered logit) output head.

    A linear score without bias ``s = w·h`` and learned cutpoints ``θ_1 < … < θ_{K-1}`` (ordered by
    construction, see :func:`ordered_cutpoints`) give ``P(y ≤ k) = sigmoid(θ_k − s)``.
    ``forward`` returns the ``K−1`` cumulative logits ``θ_k − s``, shape ``[..., K-1]``.

    At initialisation the cutpoints are ``logit((k+1)/K)``, so a zero score predicts uniform class
    probabilities; the weight is initialised like ``nn.Linear``'s.

    Args:
        in_features: size of the last dimension of the input (``1`` for a scalar score).
        num_classes: K >= 2.
        min_gap: smallest gap between neighbouring cutpoints.

    >>> head = CumulativeLinkHead(3, 4)
    >>> head(torch.zeros(2, 3)).shape
    torch.Size([2, 3])
    >>> bool((head.cutpoints.diff() > 0).all())
    True
    >>> from chainzrule.ordinal import class_probs
    >>> class_probs(head(torch.zeros(1, 3)), "clm").detach()  # zero score: uniform classes
    tensor([[0.2500, 0.2500, 0.2500, 0.2500]])
    """

    kind = "clm"

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        min_gap: float = 1e-3,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        _check_sizes(in_features, num_classes)
        if not min_gap > 0:
            raise ConfigError(f"expected min_gap > 0, got {min_gap}")
        kw = {"device": device, "dtype": dtype}
        self.in_features = int(in_features)
        self.num_classes = int(num_classes)
        self.min_gap = float(min_gap)
        self.weight = nn.Parameter(torch.empty(1, self.in_features, **kw))  # [1, in]
        self.cutpoint_first = nn.Parameter(torch.empty(1, **kw))  # [1]
        self.cutpoint_gaps_raw = nn.Parameter(torch.empty(self.num_classes - 2, **kw))  # [K-2]
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.in_features)  # nn.Linear's default weight range
        nn.init.uniform_(self.weight, -bound, bound)
        theta = _uniform_prior_thresholds(self.num_classes)  # [K-1], float64
        gaps = (theta.diff() - self.min_gap).clamp_min(1e-6)  # [K-2]
        with torch.no_grad():
            self.cutpoint_first.copy_(theta[:1])
            self.cutpoint_gaps_raw.copy_(_inverse_softplus(gaps))

    @property
    def cutpoints(self) -> Tensor:
        """The ordered cutpoints ``θ``, shape ``[K-1]``."""
        return ordered_cutpoints(self.cutpoint_first, self.cutpoint_gaps_raw, self.min_gap)

    def score(self, h: Tensor) -> Tensor:
        """The latent score ``s = w·h``: ``[..., in_features]`` → ``[...]``."""
        return F.linear(h, self.weight).squeeze(-1)  # [..., 1] -> [...]

    def forward(self, h: Tensor) -> Tensor:
        s = F.linear(h, self.weight)  # [..., 1]
        return self.cutpoints - s  # [K-1] - [..., 1] -> [..., K-1]

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, num_classes={self.num_classes}, min_gap={self.min_gap}"


# ----------------------------------------------------------------------------------------------
# CORAL and CORN
# ----------------------------------------------------------------------------------------------


class CoralHead(nn.Module):
    """CORAL output head (Cao, Mirjalili & Raschka 2020): one shared weight, ``K−1`` biases.

    ``logits[..., k] = w·h + b_k`` is the logit of ``P(y > k)``; the weight sharing makes the
    binary tasks rank-consistent once trained. Biases start at ``logit(1 − (k+1)/K)`` (uniform
    classes at zero score); the weight is initialised like ``nn.Linear``'s.

    >>> head = CoralHead(3, 5)
    >>> head(torch.zeros(2, 3)).detach()       # zero score: logit(1 - (k+1)/5)
    tensor([[ 1.3863,  0.4055, -0.4055, -1.3863],
            [ 1.3863,  0.4055, -0.4055, -1.3863]])
    """

    kind = "coral"

    def __init__(self, in_features: int, num_classes: int, device: Any = None, dtype: Any = None) -> None:
        super().__init__()
        _check_sizes(in_features, num_classes)
        kw = {"device": device, "dtype": dtype}
        self.in_features = int(in_features)
        self.num_classes = int(num_classes)
        self.weight = nn.Parameter(torch.empty(1, self.in_features, **kw))  # [1, in]
        self.bias = nn.Parameter(torch.empty(self.num_classes - 1, **kw))  # [K-1]
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.in_features)
        nn.init.uniform_(self.weight, -bound, bound)
        with torch.no_grad():
            self.bias.copy_(-_uniform_prior_thresholds(self.num_classes))

    def forward(self, h: Tensor) -> Tensor:
        return F.linear(h, self.weight) + self.bias  # [..., 1] + [K-1] -> [..., K-1]

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, num_classes={self.num_classes}"


class CornHead(nn.Linear):
    """CORN output head (Shi, Cao & Raschka 2021): a plain linear layer with ``K−1`` outputs.

    ``logits[..., k]`` is the logit of the *conditional* probability ``P(y > k | y > k−1)``; the
    unconditional ``P(y > k)`` is the cumulative product of the sigmoids, monotone by
    construction. Being an ``nn.Linear``, it has ``weight [K-1, in]`` and ``bias [K-1]``.

    >>> CornHead(3, 5)(torch.zeros(2, 3)).shape
    torch.Size([2, 4])
    """

    kind = "corn"

    def __init__(self, in_features: int, num_classes: int, device: Any = None, dtype: Any = None) -> None:
        _check_sizes(in_features, num_classes)
        super().__init__(int(in_features), int(num_classes) - 1, bias=True, device=device, dtype=dtype)
        self.num_classes = int(num_classes)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, num_classes={self.num_classes}"


def make_ordinal_head(kind: str, in_features: int, num_classes: int, **kwargs: Any) -> nn.Module:
    """Build the output head of ``kind``: "clm" (:class:`CumulativeLinkHead`), "coral"
    (:class:`CoralHead`) or "corn" (:class:`CornHead`). ``kwargs`` go to the head (``device``,
    ``dtype``; ``min_gap`` for "clm").

    >>> make_ordinal_head("coral", 16, 5)
    CoralHead(in_features=16, num_classes=5)
    """
    check_kind(kind)
    cls = {"clm": CumulativeLinkHead, "coral": CoralHead, "corn": CornHead}[kind]
    return cls(in_features, num_classes, **kwargs)

