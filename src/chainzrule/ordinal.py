"""Ordinal regression: heads, losses, predictions and metrics for K ordered classes ``0..K-1``.

Star ratings (Yelp Review Full, SST-5) are ordered: predicting 4 stars for a 5-star review is a
smaller mistake than predicting 1 star. Three standard ways to exploit the order live here, each as
an *output head* plus a loss:

=========  =============================================  ==========================================
kind       head output ``logits[..., k]``, k = 0..K-2     loss
=========  =============================================  ==========================================
``clm``    ``θ_k − s``: logit of ``P(y ≤ k)``              negative log-likelihood of the class
           (cumulative link / ordered logit)              probabilities ``P(y ≤ k) − P(y ≤ k−1)``
``coral``  ``s + b_k``: logit of ``P(y > k)``              sum over the K−1 binary tasks
           (Cao et al. 2020, rank-consistent)             ``y > k`` (extended binary labels)
``corn``   ``w_k·h + b_k``: logit of                      binary tasks trained only on the
           ``P(y > k | y > k−1)`` (Shi et al. 2021)       conditional subsets ``y > k−1``
=========  =============================================  ==========================================

Design choice (ours): every head takes the *penultimate features* ``h`` of shape
``[..., in_features]`` and owns the projection to the score, so it replaces the final
``nn.Linear`` of a network. To put a head on a scalar score, use ``in_features=1``: CLM and CORAL
then are the classic one-dimensional models with a learned scale. Every ``forward`` returns one
tensor of shape ``[..., K-1]`` (never a tuple); which probability those logits describe depends on
the kind (table above), so always pass the kind along (each head has a ``kind`` attribute).

Note the sign convention: CLM logits describe ``P(y ≤ k)`` (as in the ordered-logit literature),
CORAL and CORN logits describe ``P(y > k)`` (as in their papers).

Errors (all ``ValueError``): an unknown kind or bad size raises
:class:`~chainzrule.errors.ConfigError`; labels outside ``0..K-1``, of the wrong shape or dtype
raise :class:`~chainzrule.errors.DataError`, naming what was expected and what was given.

>>> import torch
>>> _ = torch.manual_seed(0)
>>> head = make_ordinal_head("clm", in_features=8, num_classes=5)
>>> h = torch.randn(4, 8)                       # [batch, in_features]
>>> logits = head(h)                            # [batch, K-1]
>>> logits.shape
torch.Size([4, 4])
>>> loss = ordinal_loss("clm", logits, torch.tensor([0, 2, 4, 1]))
>>> loss.backward()
>>> ordinal_predict(logits, head.kind).shape
torch.Size([4])
>>> m = ordinal_metrics([0, 1, 2, 3], [0, 1, 3, 3], num_classes=5)
>>> m["accuracy"], m["mae"], m["off_by_one"]
(0.75, 0.25, 1.0)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from chainzrule.errors import ChainzRuleError, ConfigError, DataError

__all__ = [
    "ORDINAL_KINDS",
    "CumulativeLinkHead",
    "CoralHead",
    "CornHead",
    "ordered_cutpoints",
    "cumulative_link_loss",
    "coral_loss",
    "corn_loss",
    "class_log_probs",
    "class_probs",
    "ordinal_predict",
    "ordinal_loss",
    "make_ordinal_head",
    "quadratic_weighted_kappa",
    "ordinal_metrics",
]

#: The kinds of ordinal head understood by :func:`make_ordinal_head`, :func:`ordinal_loss`,
#: :func:`ordinal_predict` and :func:`class_probs`.
ORDINAL_KINDS: tuple[str, ...] = ("clm", "coral", "corn")

_LN2 = math.log(2.0)
_PROB_FLOOR = 1e-12  # smallest probability factor the CLM log-likelihood will take the log of


# ----------------------------------------------------------------------------------------------
# checks
# ----------------------------------------------------------------------------------------------


def _check_kind(kind: str) -> str:
    if kind not in ORDINAL_KINDS:
        raise ConfigError(f"unknown ordinal kind: expected one of {list(ORDINAL_KINDS)}, got {kind!r}")
    return kind


def _check_sizes(in_features: int, num_classes: int) -> None:
    if int(in_features) != in_features or in_features < 1:
        raise ConfigError(f"expected in_features >= 1, got {in_features!r}")
    if int(num_classes) != num_classes or num_classes < 2:
        raise ConfigError(f"expected num_classes >= 2, got {num_classes!r}")


def _check_logits(logits: Tensor) -> int:
    """Return K (number of classes) from logits ``[..., K-1]``."""
    if not isinstance(logits, Tensor):
        raise ChainzRuleError(f"expected logits as a torch.Tensor, got {type(logits).__name__}")
    if logits.dim() < 1 or logits.shape[-1] < 1:
        raise ChainzRuleError(f"expected logits of shape [..., K-1] with K >= 2, got shape {tuple(logits.shape)}")
    if not logits.is_floating_point():
        raise ChainzRuleError(f"expected floating-point logits, got dtype {logits.dtype}")
    return logits.shape[-1] + 1


def _check_labels(logits: Tensor, y: Tensor) -> Tensor:
    """Validate integer labels ``y[...]`` against logits ``[..., K-1]``; return them as int64."""
    num_classes = _check_logits(logits)
    if not isinstance(y, Tensor):
        y = torch.as_tensor(y)
    if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        raise DataError(f"expected integer class labels, got dtype {y.dtype}")
    if tuple(y.shape) != tuple(logits.shape[:-1]):
        raise DataError(
            f"expected labels of shape {tuple(logits.shape[:-1])} (logits shape without the last "
            f"dimension), got {tuple(y.shape)}"
        )
    y = y.to(device=logits.device, dtype=torch.long)
    bad = (y < 0) | (y >= num_classes)
    if bool(bad.any()):
        given = sorted(set(y[bad].tolist()))[:5]
        raise DataError(f"expected class labels in 0..{num_classes - 1}, got {given}")
    return y


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


def _log1mexp(x: Tensor) -> Tensor:
    """``log(1 − exp(x))`` for ``x < 0``, accurate on both sides of ``−log 2`` (Mächler 2012)."""
    small = x < -_LN2
    x_small = torch.where(small, x, torch.full_like(x, -1.0))  # keep the unused branch finite
    x_big = torch.where(small, torch.full_like(x, -0.5), x)
    return torch.where(small, torch.log1p(-torch.exp(x_small)), torch.log(-torch.expm1(x_big)))


def _clm_log_probs(logits: Tensor) -> Tensor:
    """Class log-probabilities ``[..., K]`` from CLM cumulative logits ``[..., K-1]``.

    ``P(y = k) = σ(b) − σ(a)`` with ``a = logit_{k-1}``, ``b = logit_k``, computed in log space as
    ``log σ(b) + log σ(−a) + log(1 − exp(a − b))``; the last factor is floored at 1e-12 so that
    coinciding (or, for hand-made logits, crossing) cutpoints give a finite loss and gradient.
    """
    first = F.logsigmoid(logits[..., :1])  # [..., 1]   log P(y = 0)
    last = F.logsigmoid(-logits[..., -1:])  # [..., 1]   log P(y = K-1)
    if logits.shape[-1] == 1:
        return torch.cat([first, last], dim=-1)  # [..., 2]
    a, b = logits[..., :-1], logits[..., 1:]  # [..., K-2] each
    floor = max(_PROB_FLOOR, torch.finfo(logits.dtype).tiny)
    diff = torch.clamp(a - b, max=-floor)  # 1 - exp(a - b) >= ~floor
    middle = F.logsigmoid(b) + F.logsigmoid(-a) + _log1mexp(diff)  # [..., K-2]
    return torch.cat([first, middle, last], dim=-1)  # [..., K]


def cumulative_link_loss(logits: Tensor, y: Tensor) -> Tensor:
    """Mean negative log-likelihood of a cumulative link model.

    Args:
        logits: ``[..., K-1]`` cumulative logits ``θ_k − s`` (output of :class:`CumulativeLinkHead`).
        y: ``[...]`` integer labels in ``0..K-1``.

    Returns:
        Scalar: mean over examples of ``−log P(y)``, computed in log space.

    >>> logits = torch.tensor([[0.0, 2.0]])      # P(y<=0)=0.5, P(y<=1)=0.881
    >>> round(cumulative_link_loss(logits, torch.tensor([1])).item(), 4)   # -log(0.881-0.5)
    0.9655
    """
    y = _check_labels(logits, y)
    logp = _clm_log_probs(logits)  # [..., K]
    return -logp.gather(-1, y.unsqueeze(-1)).mean()


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


def coral_loss(logits: Tensor, y: Tensor) -> Tensor:
    """CORAL loss: binary cross-entropy on the extended labels ``1[y > k]``, k = 0..K-2.

    Summed over the ``K−1`` tasks and averaged over examples (the convention of the paper and of
    coral-pytorch), so its scale grows with K.

    Args:
        logits: ``[..., K-1]`` logits of ``P(y > k)``.
        y: ``[...]`` integer labels in ``0..K-1``.

    >>> logits = torch.zeros(1, 4)                          # every task at p = 0.5
    >>> round(coral_loss(logits, torch.tensor([2])).item(), 4)   # 4 * log 2
    2.7726
    """
    y = _check_labels(logits, y)
    k = torch.arange(logits.shape[-1], device=logits.device)  # [K-1]
    levels = (y.unsqueeze(-1) > k).to(logits.dtype)  # [..., K-1] extended binary labels
    bce = F.binary_cross_entropy_with_logits(logits, levels, reduction="none")  # [..., K-1]
    return bce.sum(-1).mean()


def corn_loss(logits: Tensor, y: Tensor) -> Tensor:
    """CORN loss: task k (``y > k``) is trained only on examples with ``y > k−1``.

    Binary cross-entropy summed over all (example, task) pairs in the conditional training subsets
    and divided by the number of such pairs (the convention of coral-pytorch's ``corn_loss``).

    Args:
        logits: ``[..., K-1]`` logits of ``P(y > k | y > k−1)``.
        y: ``[...]`` integer labels in ``0..K-1``.

    >>> logits = torch.zeros(2, 3)          # every conditional task at p = 0.5
    >>> round(corn_loss(logits, torch.tensor([0, 3])).item(), 4)   # 1 + 3 pairs, each log 2
    0.6931
    """
    y = _check_labels(logits, y)
    k = torch.arange(logits.shape[-1], device=logits.device)  # [K-1]
    y_ = y.unsqueeze(-1)  # [..., 1]
    in_subset = (y_ >= k).to(logits.dtype)  # [..., K-1] task k sees examples with y > k-1
    target = (y_ > k).to(logits.dtype)  # [..., K-1]
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")  # [..., K-1]
    return (bce * in_subset).sum() / in_subset.sum().clamp_min(1.0)


# ----------------------------------------------------------------------------------------------
# probabilities, prediction, dispatch
# ----------------------------------------------------------------------------------------------


def class_log_probs(logits: Tensor, kind: str = "clm") -> Tensor:
    """Class log-probabilities ``[..., K]`` from a head's logits ``[..., K-1]``.

    - ``clm``: ``log(P(y ≤ k) − P(y ≤ k−1))`` in log space (see :func:`cumulative_link_loss`).
    - ``coral``: from ``q_k = P(y > k) = σ(logit_k)``; since CORAL's ``q`` is not monotone by
      construction, we use its running minimum over k (our choice) so the result is a distribution.
    - ``corn``: ``q_k = Π_{j≤k} σ(logit_j)``, monotone by construction.

    For CORAL/CORN ``P(y = k) = q_{k−1} − q_k`` (``q_{−1} = 1``, ``q_{K−1} = 0``), floored at
    1e-12 before the log.
    """
    _check_kind(kind)
    _check_logits(logits)
    if kind == "clm":
        return _clm_log_probs(logits)
    return torch.log(class_probs(logits, kind).clamp_min(_PROB_FLOOR))


def class_probs(logits: Tensor, kind: str = "clm") -> Tensor:
    """Class probabilities ``[..., K]`` (non-negative, summing to 1) from logits ``[..., K-1]``.

    See :func:`class_log_probs` for each kind. These probabilities serve calibration, expected
    values and log-likelihoods; the *prediction* rule of each kind is :func:`ordinal_predict`
    (for CORAL and CORN it counts thresholds and can differ from the argmax of these).

    >>> class_probs(torch.tensor([[0.0, 0.0]]), "coral")   # P(y>0) = P(y>1) = 0.5
    tensor([[0.5000, 0.0000, 0.5000]])
    >>> class_probs(torch.tensor([[0.0, 0.0]]), "corn")    # P(y>0)=0.5, P(y>1)=0.25
    tensor([[0.5000, 0.2500, 0.2500]])
    """
    _check_kind(kind)
    _check_logits(logits)
    if kind == "clm":
        return _clm_log_probs(logits).exp()
    if kind == "coral":
        q = torch.cummin(torch.sigmoid(logits), dim=-1).values  # [..., K-1] P(y > k), monotone
    else:
        q = torch.cumprod(torch.sigmoid(logits), dim=-1)  # [..., K-1] P(y > k)
    ones = torch.ones_like(q[..., :1])  # [..., 1]
    zeros = torch.zeros_like(q[..., :1])  # [..., 1]
    q_ext = torch.cat([ones, q, zeros], dim=-1)  # [..., K+1]
    return (q_ext[..., :-1] - q_ext[..., 1:]).clamp_min(0.0)  # [..., K]


def ordinal_predict(logits: Tensor, method: str) -> Tensor:
    """Predicted class indices ``[...]`` (int64) from a head's logits ``[..., K-1]``.

    - ``clm``: argmax of the class probabilities (first class on ties).
    - ``coral``: number of tasks with ``σ(logit_k) > 0.5`` (i.e. ``logit_k > 0``).
    - ``corn``: number of k with ``Π_{j≤k} σ(logit_j) > 0.5``.

    >>> ordinal_predict(torch.tensor([[2.0, 1.0, -1.0]]), "coral")
    tensor([2])
    >>> ordinal_predict(torch.tensor([[2.0, 1.0, -1.0]]), "corn")    # 0.88, 0.64, 0.17
    tensor([2])
    >>> ordinal_predict(torch.tensor([[-3.0, 3.0, 4.0]]), "clm")     # P(y=1) ~ 0.9
    tensor([1])
    """
    _check_kind(method)
    _check_logits(logits)
    if method == "clm":
        return _clm_log_probs(logits).argmax(dim=-1)
    if method == "coral":
        return (torch.sigmoid(logits) > 0.5).sum(dim=-1)
    return (torch.cumprod(torch.sigmoid(logits), dim=-1) > 0.5).sum(dim=-1)


def ordinal_loss(kind: str, logits: Tensor, y: Tensor) -> Tensor:
    """The loss of ``kind`` ("clm", "coral" or "corn") on logits ``[..., K-1]`` and labels ``[...]``.

    >>> ordinal_loss("ordinal", torch.zeros(1, 2), torch.tensor([0]))
    Traceback (most recent call last):
    ...
    chainzrule.errors.ConfigError: unknown ordinal kind: expected one of ['clm', 'coral', 'corn'], got 'ordinal'
    """
    _check_kind(kind)
    if kind == "clm":
        return cumulative_link_loss(logits, y)
    if kind == "coral":
        return coral_loss(logits, y)
    return corn_loss(logits, y)


def make_ordinal_head(kind: str, in_features: int, num_classes: int, **kwargs: Any) -> nn.Module:
    """Build the output head of ``kind``: "clm" (:class:`CumulativeLinkHead`), "coral"
    (:class:`CoralHead`) or "corn" (:class:`CornHead`). ``kwargs`` go to the head (``device``,
    ``dtype``; ``min_gap`` for "clm").

    >>> make_ordinal_head("coral", 16, 5)
    CoralHead(in_features=16, num_classes=5)
    """
    _check_kind(kind)
    cls = {"clm": CumulativeLinkHead, "coral": CoralHead, "corn": CornHead}[kind]
    return cls(in_features, num_classes, **kwargs)


# ----------------------------------------------------------------------------------------------
# metrics
# ----------------------------------------------------------------------------------------------


def _as_label_array(values: Any, name: str, num_classes: int) -> np.ndarray:
    if isinstance(values, Tensor):
        values = values.detach().cpu().numpy()
    arr = np.asarray(values).reshape(-1)
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        if not np.issubdtype(arr.dtype, np.number) or not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
            raise DataError(f"expected integer class labels in {name}, got dtype {arr.dtype}")
    arr = arr.astype(np.int64)
    bad = (arr < 0) | (arr >= num_classes)
    if bad.any():
        raise DataError(
            f"expected {name} in 0..{num_classes - 1}, got {sorted(set(arr[bad].tolist()))[:5]}"
        )
    return arr


def _check_pair(y_true: Any, y_pred: Any, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    if int(num_classes) != num_classes or num_classes < 2:
        raise ConfigError(f"expected num_classes >= 2, got {num_classes!r}")
    t = _as_label_array(y_true, "y_true", num_classes)
    p = _as_label_array(y_pred, "y_pred", num_classes)
    if t.shape != p.shape:
        raise DataError(f"expected y_true and y_pred of equal length, got {t.size} and {p.size}")
    if t.size == 0:
        raise DataError("expected at least one label, got none")
    return t, p


def quadratic_weighted_kappa(y_true: Any, y_pred: Any, num_classes: int) -> float:
    """Cohen's kappa with quadratic weights ``w_ij = (i − j)² / (K − 1)²`` over classes ``0..K-1``.

    ``κ = 1 − Σ w·O / Σ w·E`` with ``O`` the confusion matrix and ``E`` the outer product of the
    two marginals divided by n (as ``sklearn.metrics.cohen_kappa_score(weights="quadratic")``).
    Undefined (``nan``) when ``Σ w·E = 0``, i.e. when both label sets are one and the same class.

    >>> quadratic_weighted_kappa([0, 1, 2], [0, 1, 2], 3)
    1.0
    >>> quadratic_weighted_kappa([0, 0, 2, 2], [2, 2, 0, 0], 3)
    -1.0
    """
    t, p = _check_pair(y_true, y_pred, num_classes)
    k = int(num_classes)
    observed = np.zeros((k, k), dtype=np.float64)  # [K, K]
    np.add.at(observed, (t, p), 1.0)
    expected = np.outer(observed.sum(1), observed.sum(0)) / t.size  # [K, K]
    idx = np.arange(k)
    weights = (idx[:, None] - idx[None, :]) ** 2 / (k - 1) ** 2  # [K, K]
    denom = float((weights * expected).sum())
    if denom == 0.0:
        return float("nan")
    return float(1.0 - (weights * observed).sum() / denom)


def ordinal_metrics(y_true: Any, y_pred: Any, num_classes: int) -> dict[str, float]:
    """Exact accuracy, MAE, off-by-one accuracy and quadratic weighted kappa (GUIDE §3).

    Args:
        y_true, y_pred: integer labels in ``0..K-1`` (lists, numpy arrays or tensors, any shape;
            flattened).
        num_classes: K.

    Returns:
        ``{"accuracy", "mae", "off_by_one", "qwk"}`` as Python floats; ``off_by_one`` is the
        fraction with ``|y_pred − y_true| ≤ 1``; ``qwk`` is ``nan`` where undefined
        (see :func:`quadratic_weighted_kappa`).

    >>> m = ordinal_metrics([0, 1, 2, 3, 4], [0, 2, 2, 1, 4], num_classes=5)
    >>> m["accuracy"], m["mae"], m["off_by_one"], round(m["qwk"], 4)   # qwk = 1 - 5/19
    (0.6, 0.6, 0.8, 0.7368)
    """
    t, p = _check_pair(y_true, y_pred, num_classes)
    err = np.abs(p - t)
    return {
        "accuracy": float(np.mean(err == 0)),
        "mae": float(np.mean(err)),
        "off_by_one": float(np.mean(err <= 1)),
        "qwk": quadratic_weighted_kappa(t, p, num_classes),
    }
