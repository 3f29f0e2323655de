"""Fight statistics: verdicts."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ...errors import ConfigError, DataError
from .checks import as_pair, check_alpha, check_direction
from .summaries import summarize

__all__ = ["ratio_reduction", "verdict_compare", "verdict_level"]


def verdict_level(
    claimed: float,
    ours_values: Any,
    direction: str = "higher",
    *,
    alpha: float = 0.05,
    tolerance: float = 0.0,
) -> str:
    """Verdict on a level claim: "the method reaches ``claimed``" (e.g. 96.38% accuracy).

    Let ``[lo, hi]`` be the ``1 − alpha`` t-interval of our per-seed values
    (:func:`summarize`) and ``c`` the claimed value moved by the tolerance toward the
    unfavourable side (``c = claimed − tolerance`` for ``direction="higher"``, where larger is
    better, e.g. accuracy; ``c = claimed + tolerance`` for ``"lower"``, e.g. an error or τ):

    - **supported**: the whole interval is on the favourable side of ``c``, bound included
      (``lo ≥ c`` for "higher", ``hi ≤ c`` for "lower"): our value reaches the claim up to the
      tolerance, with confidence;
    - **not supported**: the whole interval is strictly on the unfavourable side
      (``hi < c`` for "higher", ``lo > c`` for "lower");
    - **inconclusive**: the interval straddles ``c``, or it is undefined (one seed).

    Equivalently: a one-sided t-test against ``c`` at level ``alpha/2`` each way. With
    ``tolerance = 0`` a run that reproduces the claimed mean with noise is "inconclusive" (it may
    lie below); the fight spec states the tolerance (in the metric's units) it accepts as a
    reproduction. A gain claim ("+2.32 points over the MLP") is a level claim on the paired
    differences: ``verdict_level(2.32, [a - b for a, b in zip(cr, mlp)], "higher")``.

    >>> verdict_level(96.38, [96.2, 96.5, 96.4, 96.3, 96.6], "higher")
    'inconclusive'
    >>> verdict_level(96.38, [96.2, 96.5, 96.4, 96.3, 96.6], "higher", tolerance=0.5)
    'supported'
    >>> verdict_level(96.38, [95.1, 95.3, 95.2], "higher")
    'not supported'
    >>> verdict_level(1.02, [1.05, 1.06, 1.07], "lower")      # τ claimed 1.02, ours ≈ 1.06
    'not supported'
    """
    alpha = check_alpha(alpha)
    check_direction(direction)
    if not (math.isfinite(claimed) and math.isfinite(tolerance) and tolerance >= 0):
        raise ConfigError(f"expected a finite claimed value and tolerance >= 0, got {claimed} and {tolerance}")
    s = summarize(ours_values, confidence=1.0 - alpha)
    lo, hi = s["ci_low"], s["ci_high"]
    if math.isnan(lo):
        return "inconclusive"
    if direction == "higher":
        c = claimed - tolerance
        if lo >= c:
            return "supported"
        if hi < c:
            return "not supported"
    else:
        c = claimed + tolerance
        if hi <= c:
            return "supported"
        if lo > c:
            return "not supported"
    return "inconclusive"


def verdict_compare(
    a_values: Any,
    b_values: Any,
    p_adjusted: float,
    direction: str = "higher",
    *,
    alpha: float = 0.05,
) -> str:
    """Verdict on a comparative claim: "A beats B", from results paired by seed.

    ``d = a − b`` per seed; "favours A" means ``mean(d) > 0`` for ``direction="higher"``
    (larger is better) and ``mean(d) < 0`` for ``"lower"``; ``[lo, hi]`` is the ``1 − alpha``
    t-interval of ``d``. ``p_adjusted`` is this comparison's two-sided p-value after Holm over its
    family (:func:`holm_bonferroni`; for a lone comparison, its raw p).

    - **supported**: ``d`` favours A and ``p_adjusted ≤ alpha``;
    - **not supported**: ``d`` favours B and either ``p_adjusted ≤ alpha`` or the interval of
      ``d`` excludes 0 on B's side (``hi < 0`` for "higher", ``lo > 0`` for "lower") — evidence
      against a claim needs no multiplicity correction;
    - **inconclusive**: otherwise, including exact ties (``mean(d) = 0``) and ``p_adjusted = nan``
      without a decisive interval.

    >>> verdict_compare([0.90, 0.91, 0.92], [0.85, 0.86, 0.88], p_adjusted=0.004)
    'supported'
    >>> verdict_compare([0.90, 0.91, 0.92], [0.85, 0.86, 0.88], p_adjusted=0.2)
    'inconclusive'
    >>> verdict_compare([0.80, 0.81, 0.82], [0.85, 0.86, 0.88], p_adjusted=0.2)   # CI of d < 0
    'not supported'
    """
    alpha = check_alpha(alpha)
    check_direction(direction)
    if not (math.isnan(p_adjusted) or 0.0 <= p_adjusted <= 1.0):
        raise ConfigError(f"expected p_adjusted in [0, 1] or nan, got {p_adjusted}")
    x, y = as_pair(a_values, b_values)
    d = x - y
    s = summarize(d, confidence=1.0 - alpha)
    sign = 1.0 if direction == "higher" else -1.0
    m = sign * s["mean"]  # > 0: favours A
    significant = bool(p_adjusted <= alpha)  # False for nan
    if m > 0 and significant:
        return "supported"
    if m < 0:
        lo, hi = sign * s["ci_low"], sign * s["ci_high"]  # interval of sign·d
        excludes_zero = (not math.isnan(lo)) and max(lo, hi) < 0
        if significant or excludes_zero:
            return "not supported"
    return "inconclusive"


def ratio_reduction(cr_values: Any, base_values: Any) -> dict[str, Any]:
    """Relative reduction ``1 − CR/baseline`` paired by seed, averaged over seeds (PGV, GUIDE §3).

    Args:
        cr_values, base_values: per-seed values of the metric (e.g. PGV) for CR and for the
            baseline, equal length, finite; baseline values non-zero.

    Returns:
        ``{"mean": mean over seeds, "per_seed": [1 − cr_i/base_i, ...], "summary":
        summarize(per_seed)}``. The claim "cuts PGV by 23.1% on average" is then
        ``verdict_level(0.231, result["per_seed"], "higher")``.

    >>> r = ratio_reduction([1.5, 3.0], [2.0, 4.0])
    >>> r["per_seed"], r["mean"]
    ([0.25, 0.25], 0.25)
    """
    cr, base = as_pair(cr_values, base_values)
    zero = np.flatnonzero(base == 0)
    if zero.size:
        raise DataError(f"expected non-zero baseline values, got 0 at index {zero[0]}")
    per_seed = 1.0 - cr / base
    return {
        "mean": float(np.mean(per_seed)),
        "per_seed": [float(v) for v in per_seed],
        "summary": summarize(per_seed),
    }
