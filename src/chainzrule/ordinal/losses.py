"""Ordinal losses, class probabilities and predictions, all read from a head's logits ``[..., K-1]``.

One module because they share the CLM class log-likelihood (:func:`class_log_probs` of "clm"
is the log-likelihood :func:`cumulative_link_loss` maximises). The heads are in
:mod:`chainzrule.ordinal.heads`; which probability the logits describe per kind is in the table of
:mod:`chainzrule.ordinal`.

>>> logits = torch.zeros(2, 4)                  # [batch, K-1], K = 5
>>> ordinal_predict(logits, "coral"), round(ordinal_loss("coral", logits, torch.tensor([1, 3])).item(), 4)
(tensor([0, 0]), 2.7726)
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from chainzrule.errors import ChainzRuleError, DataError
from chainzrule.ordinal.heads import check_kind

__all__ = ["cumulative_link_loss", "coral_loss", "corn_loss", "class_log_probs", "class_probs", "ordinal_predict",
           "decision_scores", "ordinal_loss"]

_LN2 = math.log(2.0)
_PROB_FLOOR = 1e-12  # smallest probability factor the CLM log-likelihood will take the log of


# ----------------------------------------------------------------------------------------------
# checks
# ----------------------------------------------------------------------------------------------


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
# losses
# ----------------------------------------------------------------------------------------------


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
    check_kind(kind)
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
    check_kind(kind)
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
    check_kind(method)
    _check_logits(logits)
    if method == "clm":
        return _clm_log_probs(logits).argmax(dim=-1)
    if method == "coral":
        return (torch.sigmoid(logits) > 0.5).sum(dim=-1)
    return (torch.cumprod(torch.sigmoid(logits), dim=-1) > 0.5).sum(dim=-1)


def decision_scores(logits: Tensor, kind: str) -> Tensor:
    """Per-class scores ``[..., K]`` whose argmax is the head's prediction (:func:`ordinal_predict`).

    What an attack that needs one score per class (APGD's cross-entropy and DLR margin) ascends.
    For ``clm`` they are the class log-probabilities (:func:`class_log_probs`), whose argmax is the
    prediction. For ``coral`` and ``corn`` the prediction is not the argmax of the class
    probabilities but a count of thresholds (the median class, not the mode), so a margin on those
    probabilities aims at the wrong decision: the scores are ``S_0 = 0``,
    ``S_{j+1} = S_j + c_j`` with ``c_j`` the statistic the count compares with its threshold,
    sorted in decreasing order — CORAL: the logits sorted; CORN: ``log Π_{i≤j} σ(logit_i) − log 0.5``
    (decreasing already). ``S`` then rises while ``c_j > 0`` and falls after, so its argmax
    (first on ties) is ``#{j: c_j > 0}``, the predicted class, and ``S_y − max_{j≠y} S_j`` is the
    distance of the nearest threshold statistic from its threshold, the exact decision margin.
    (Where a CORN threshold statistic rounds to exactly 0.5 the count and the argmax can differ;
    decide correctness with :func:`ordinal_predict`.)

    >>> decision_scores(torch.tensor([[2.0, -1.0, 1.0]]), "coral")       # 2 of 3 logits > 0
    tensor([[0., 2., 3., 2.]])
    >>> decision_scores(torch.tensor([[2.0, -1.0, 1.0]]), "coral").argmax(-1), ordinal_predict(
    ...     torch.tensor([[2.0, -1.0, 1.0]]), "coral")
    (tensor([2]), tensor([2]))
    >>> lg = torch.tensor([[4.0, 0.0, 3.0, -2.0]])                     # CORN: P(y > k) 0.98, 0.49, ...
    >>> decision_scores(lg, "corn").argmax(-1), ordinal_predict(lg, "corn")
    (tensor([1]), tensor([1]))
    """
    check_kind(kind)
    _check_logits(logits)
    if kind == "clm":
        return _clm_log_probs(logits)
    if kind == "coral":
        c = logits.sort(dim=-1, descending=True).values  # [..., K-1] count of positives = #{c_j > 0}
    else:
        c = torch.cumsum(F.logsigmoid(logits), dim=-1) - math.log(0.5)  # [..., K-1] log(P(y > j) / 0.5), decreasing
    return torch.cat([torch.zeros_like(c[..., :1]), torch.cumsum(c, dim=-1)], dim=-1)  # [..., K]


def ordinal_loss(kind: str, logits: Tensor, y: Tensor) -> Tensor:
    """The loss of ``kind`` ("clm", "coral" or "corn") on logits ``[..., K-1]`` and labels ``[...]``.

    >>> ordinal_loss("ordinal", torch.zeros(1, 2), torch.tensor([0]))
    Traceback (most recent call last):
    ...
    chainzrule.errors.ConfigError: unknown ordinal kind: expected one of ['clm', 'coral', 'corn'], got 'ordinal'
    """
    check_kind(kind)
    if kind == "clm":
        return cumulative_link_loss(logits, y)
    if kind == "coral":
        return coral_loss(logits, y)
    return corn_loss(logits, y)
