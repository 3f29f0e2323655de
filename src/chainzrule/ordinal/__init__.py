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

The package has one module per idea, and re-exports every public name here:
:mod:`~chainzrule.ordinal.heads` (the heads, :data:`ORDINAL_KINDS`, :func:`make_ordinal_head`),
:mod:`~chainzrule.ordinal.losses` (losses, class probabilities, predictions, the decision scores
attacks ascend) and :mod:`~chainzrule.ordinal.metrics` (accuracy, MAE, off-by-one, QWK).

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

from chainzrule.ordinal.heads import (ORDINAL_KINDS, CoralHead, CornHead, CumulativeLinkHead, make_ordinal_head,
                                      ordered_cutpoints)
from chainzrule.ordinal.losses import (class_log_probs, class_probs, coral_loss, corn_loss, cumulative_link_loss,
                                       decision_scores, ordinal_loss, ordinal_predict)
from chainzrule.ordinal.metrics import ordinal_metrics, quadratic_weighted_kappa

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
    "decision_scores",
    "ordinal_loss",
    "make_ordinal_head",
    "quadratic_weighted_kappa",
    "ordinal_metrics",
]
