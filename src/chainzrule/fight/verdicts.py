"""Verdicts of the Fair Fight v2 protocol (GUIDE §4 rule 5), from the tests of :mod:`.stats`.

Every function maps a test result (a dict from :mod:`chainzrule.fight.stats`) or an interval to
one of :data:`~chainzrule.fight.stats.VERDICTS` — "supported", "not supported",
"inconclusive" — with one rule throughout: **supported** needs the claim's test to reject at
``alpha`` (after Holm when the row belongs to a family: pass ``p_adjusted``); **not supported**
needs the interval to lie entirely on the wrong side (evidence against a claim needs no
multiplicity correction); anything else is **inconclusive**. :data:`NOT_COMPARABLE` is the fourth
label, for rows where the papers' quantity is undefined or the setting differs (the caller gives
the reason; no statistic decides it).

- :func:`verdict_noninferiority` — "A is at least as good as B" (margin δ).
- :func:`verdict_equivalence` — "the value is within [low, high]" (TOST).
- :func:`strict_end` / :func:`verdict_interval` — one-sided range or level claims, judged at the
  claimed range's strict end, on any interval (plain or Nadeau–Bengio corrected).
- :func:`verdict_superiority` — "A beats B" from a :func:`~.stats.corrected_resampled_ttest`
  result (the repeated-CV counterpart of :func:`~.stats.verdict_compare`).
- :func:`verdict_range` — a range claim end to end, by equivalence or at the strict end.

A family of non-inferiority claims, Holm over their one-sided p-values:

>>> from chainzrule.fight.stats import holm_bonferroni, noninferiority_test
>>> relu = [0.970, 0.972, 0.968, 0.971, 0.969]
>>> tests = {"cr": noninferiority_test([0.971, 0.972, 0.969, 0.972, 0.970], relu, 0.005),
...          "kan": noninferiority_test([0.950, 0.955, 0.952, 0.949, 0.951], relu, 0.005)}
>>> holm = holm_bonferroni({k: t["p_value"] for k, t in tests.items()})
>>> {k: verdict_noninferiority(t, holm.adjusted[k]) for k, t in tests.items()}
{'cr': 'supported', 'kan': 'not supported'}
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import ConfigError, DataError
from .stats import corrected_resampled_ttest, one_sample_tests, summarize, tost

__all__ = [
    "NOT_COMPARABLE",
    "strict_end",
    "verdict_interval",
    "verdict_noninferiority",
    "verdict_equivalence",
    "verdict_superiority",
    "verdict_range",
]

#: The label of a claim row that no statistic can judge (quantity undefined, setting differs).
NOT_COMPARABLE = "not comparable"

_RULES = ("equivalence", "strict-end")


def _check_p(p: float | None, default: float) -> float:
    p = default if p is None else p
    if not (isinstance(p, (int, float)) and (math.isnan(p) or 0.0 <= p <= 1.0)):
        raise ConfigError(f"expected p_adjusted in [0, 1], nan or None, got {p!r}")
    return float(p)


def _needs(result: Mapping[str, Any], keys: Sequence[str], what: str) -> None:
    missing = [k for k in keys if k not in result]
    if missing:
        raise DataError(f"expected a {what} result with keys {list(keys)}, missing {missing}")


def strict_end(claimed_range: Sequence[float], direction: str) -> float:
    """The strict end of a claimed range for a one-sided claim: the end harder to reach.

    "Reaches 1.07–1.09" with larger better is judged at 1.09; "τ of 1.01–1.02" with smaller
    better at 1.01 (v1 judged both at the lenient end).

    Parameters
    ----------
    claimed_range : (float, float)
        ``[low, high]``, ``low ≤ high``.
    direction : {"higher", "lower"}
        Which way is better for the metric.

    Examples
    --------
    >>> strict_end([1.01, 1.02], "lower"), strict_end([0.96, 0.97], "higher")
    (1.01, 0.97)
    """
    if direction not in ("higher", "lower"):
        raise ConfigError(f"expected direction in ['higher', 'lower'], got {direction!r}")
    rng = list(claimed_range)
    if len(rng) != 2 or not all(math.isfinite(v) for v in rng) or rng[0] > rng[1]:
        raise ConfigError(f"expected a claimed range [low, high] with finite low <= high, got {rng!r}")
    return float(rng[1] if direction == "higher" else rng[0])


def verdict_interval(lo: float, hi: float, claimed: float, direction: str = "higher", tolerance: float = 0.0) -> str:
    """Level-claim verdict from an interval ``[lo, hi]`` of our value (the rule of ``verdict_level``).

    With ``c = claimed ∓ tolerance`` (moved to the unfavourable side): **supported** iff the
    whole interval is on the favourable side of ``c`` (bound included), **not supported** iff
    strictly on the other side, **inconclusive** otherwise or for a ``nan`` interval. For plain
    per-seed values this equals :func:`~.stats.verdict_level`; for repeated CV pass the
    interval of :func:`~.stats.corrected_resampled_ttest` on the per-split values.

    Examples
    --------
    >>> verdict_interval(1.012, 1.018, 1.01, "lower"), verdict_interval(1.012, 1.018, 1.02, "lower")
    ('not supported', 'supported')
    """
    if direction not in ("higher", "lower"):
        raise ConfigError(f"expected direction in ['higher', 'lower'], got {direction!r}")
    if not (math.isfinite(claimed) and math.isfinite(tolerance) and tolerance >= 0):
        raise ConfigError(f"expected a finite claimed value and tolerance >= 0, got {claimed} and {tolerance}")
    if math.isnan(lo) or math.isnan(hi):
        return "inconclusive"
    s = 1.0 if direction == "higher" else -1.0  # compare s·value with s·c: larger is better
    c = s * claimed - tolerance
    lo_s, hi_s = sorted((s * lo, s * hi))
    if lo_s >= c:
        return "supported"
    if hi_s < c:
        return "not supported"
    return "inconclusive"


def verdict_noninferiority(result: Mapping[str, Any], p_adjusted: float | None = None) -> str:
    """Verdict on "A is at least as good as B" from :func:`~.stats.noninferiority_test`.

    - **supported** (non-inferior): ``p ≤ alpha`` (``p_adjusted`` after Holm if given, else the
      result's one-sided p), i.e. the ``1 − 2·alpha`` interval clears the bound ``−δ``;
    - **not supported** (inferior): the whole interval lies beyond the bound on the worse side
      (``ci_high < −δ`` for "higher", ``ci_low > δ`` for "lower");
    - **inconclusive**: otherwise (the interval contains the bound, or one pair).

    Examples
    --------
    >>> from chainzrule.fight.stats import noninferiority_test
    >>> verdict_noninferiority(noninferiority_test([1.0, 2.0, 3.0], [1.5, 2.5, 3.5], margin=0.1))
    'not supported'
    """
    _needs(result, ("p_value", "bound", "ci_low", "ci_high", "alpha", "direction"), "non-inferiority")
    p = _check_p(p_adjusted, result["p_value"])
    if p <= result["alpha"]:
        return "supported"
    if result["direction"] == "higher":
        worse = result["ci_high"] < result["bound"]
    else:
        worse = result["ci_low"] > result["bound"]
    return "not supported" if worse else "inconclusive"


def verdict_equivalence(result: Mapping[str, Any], p_adjusted: float | None = None) -> str:
    """Verdict on "the value lies within [low, high]" from :func:`~.stats.tost`.

    - **supported** (equivalent): TOST ``p ≤ alpha`` (or ``p_adjusted``), i.e. the
      ``1 − 2·alpha`` interval lies inside ``[low, high]``;
    - **not supported**: the interval lies entirely outside (``ci_high < low`` or
      ``ci_low > high``);
    - **inconclusive**: it straddles an end (or one value).

    Examples
    --------
    >>> from chainzrule.fight.stats import tost
    >>> verdict_equivalence(tost([1.05, 1.06, 1.07], 1.01, 1.02))
    'not supported'
    """
    _needs(result, ("p_value", "low", "high", "ci_low", "ci_high", "alpha"), "TOST")
    p = _check_p(p_adjusted, result["p_value"])
    if p <= result["alpha"]:
        return "supported"
    if result["ci_high"] < result["low"] or result["ci_low"] > result["high"]:
        return "not supported"
    return "inconclusive"


def verdict_superiority(result: Mapping[str, Any], p_adjusted: float | None = None,
                        direction: str = "higher", alpha: float = 0.05) -> str:
    """Verdict on "A beats B" from :func:`~.stats.corrected_resampled_ttest` (two-sided).

    The rule of :func:`~.stats.verdict_compare` on the corrected test: **supported** iff the
    mean difference favours A and ``p ≤ alpha`` (``p_adjusted`` after Holm if given);
    **not supported** iff it favours B and either ``p ≤ alpha`` or the interval (computed at
    ``confidence = 1 − alpha``) excludes 0 on B's side; **inconclusive** otherwise.

    Examples
    --------
    >>> from chainzrule.fight.stats import corrected_resampled_ttest
    >>> r = corrected_resampled_ttest([1, 2, 3, 1, 2, 3, 1, 2, 3, 2], 80, 20)
    >>> verdict_superiority(r), verdict_superiority(r, direction="lower")
    ('supported', 'not supported')
    """
    _needs(result, ("mean_diff", "p_value", "ci_low", "ci_high"), "corrected t-test")
    if direction not in ("higher", "lower"):
        raise ConfigError(f"expected direction in ['higher', 'lower'], got {direction!r}")
    if not 0.0 < alpha < 1.0:
        raise ConfigError(f"expected alpha in (0, 1), got {alpha}")
    p = _check_p(p_adjusted, result["p_value"])
    s = 1.0 if direction == "higher" else -1.0
    m = s * result["mean_diff"]
    if m > 0 and p <= alpha:
        return "supported"
    if m < 0 and (p <= alpha or max(s * result["ci_low"], s * result["ci_high"]) < 0):
        return "not supported"
    return "inconclusive"


def verdict_range(
    values: Any,
    claimed_range: Sequence[float],
    direction: str = "higher",
    *,
    rule: str = "equivalence",
    alpha: float = 0.05,
    tolerance: float = 0.0,
    n_train: float | None = None,
    n_test: float | None = None,
) -> dict[str, Any]:
    """A range claim ("τ = 1.01–1.02") judged by equivalence (TOST) or at its strict end.

    ``rule="equivalence"``: :func:`~.stats.tost` on ``[low − tolerance, high + tolerance]``
    and :func:`verdict_equivalence`. ``rule="strict-end"`` (a one-sided reading, "at least as
    good as the claimed range"): :func:`verdict_interval` at :func:`strict_end` with the
    ``1 − alpha`` interval (as ``verdict_level``). With ``n_train``/``n_test`` both use the
    Nadeau–Bengio corrected variance (repeated CV).

    Returns
    -------
    dict
        ``verdict, rule, p_value`` (TOST p, or the two-sided t p against the strict end moved by
        ``tolerance`` to its unfavourable side: the value the verdict compares with),
        ``ci_low, ci_high`` (the interval the verdict read), ``target`` (the strict end) or
        ``bounds`` (the equivalence range).

    Examples
    --------
    >>> x = [1.013, 1.014, 1.015, 1.016, 1.017]
    >>> verdict_range(x, [1.01, 1.02], "lower")["verdict"]
    'supported'
    >>> verdict_range(x, [1.01, 1.02], "lower", rule="strict-end")["verdict"]   # ≤ 1.01?
    'not supported'
    """
    if rule not in _RULES:
        raise ConfigError(f"expected rule in {list(_RULES)}, got {rule!r}")
    target = strict_end(claimed_range, direction)
    if not (math.isfinite(tolerance) and tolerance >= 0):
        raise ConfigError(f"expected a finite tolerance >= 0, got {tolerance}")
    if rule == "equivalence":
        low, high = float(claimed_range[0]) - tolerance, float(claimed_range[1]) + tolerance
        if not low < high:
            raise ConfigError(f"expected a range of positive width (or a tolerance > 0), got [{low}, {high}]")
        t = tost(values, low, high, alpha=alpha, n_train=n_train, n_test=n_test)
        return {"verdict": verdict_equivalence(t), "rule": rule, "p_value": t["p_value"],
                "ci_low": t["ci_low"], "ci_high": t["ci_high"], "bounds": [low, high]}
    edge = target - tolerance if direction == "higher" else target + tolerance  # what the verdict compares with
    if n_train is None and n_test is None:
        s = summarize(values, confidence=1.0 - alpha)
        lo, hi, p = s["ci_low"], s["ci_high"], one_sample_tests(values, edge)["t_p"]
    else:
        r = corrected_resampled_ttest(values, n_train, n_test, null=edge, confidence=1.0 - alpha)
        lo, hi, p = r["ci_low"], r["ci_high"], r["p_value"]
    return {"verdict": verdict_interval(lo, hi, target, direction, tolerance), "rule": rule,
            "p_value": p, "ci_low": lo, "ci_high": hi, "target": target}
