"""Statistics of the Fair Fight (GUIDE section 4): summaries, paired tests, Holm, verdicts.

Every function takes plain sequences of per-seed results (lists, numpy arrays, CPU tensors) and
returns plain Python floats, lists and dicts, ready for JSON. Bad results (empty, non-finite,
unpaired) raise :class:`~chainzrule.errors.DataError`, bad settings (alpha, direction)
:class:`~chainzrule.errors.ConfigError`; both are ``ValueError``.

- :func:`summarize` — mean, std (ddof=1), n and a t-based confidence interval.
- :func:`paired_tests` / :func:`one_sample_tests` — paired t-test and Wilcoxon signed-rank
  (scipy), with the degenerate cases defined instead of raising.
- :func:`holm_bonferroni` — step-down adjusted p-values over a family of comparisons.
- :func:`verdict_level` — "our value reaches the claimed value v" claims.
- :func:`verdict_compare` — "A beats B" claims, from the paired results and the Holm-adjusted p.
- :func:`ratio_reduction` — "1 − CR/baseline, paired by seed, averaged over seeds" (PGV).

A whole claim row, as the report builds it:

>>> cr = [97.1, 97.3, 96.9, 97.2, 97.0]            # accuracy of CR over 5 seeds
>>> mlp = [96.8, 97.0, 96.7, 96.9, 96.6]           # the baseline, same seeds
>>> verdict_level(96.38, cr, "higher")             # "CR reaches 96.38%"
'supported'
>>> tests = paired_tests(cr, mlp)
>>> round(tests["mean_diff"], 2), round(tests["t_p"], 4), tests["wilcoxon_p"]
(0.3, 0.0007, 0.0625)
>>> holm = holm_bonferroni({"cr_vs_mlp": tests["t_p"], "cr_vs_kan": 0.20})
>>> holm.reject
{'cr_vs_mlp': True, 'cr_vs_kan': False}
>>> verdict_compare(cr, mlp, holm.adjusted["cr_vs_mlp"], "higher")   # "CR beats the MLP"
'supported'

Note: with 5 seeds the exact two-sided Wilcoxon p-value cannot go below 2/2^5 = 0.0625, so at
alpha = 0.05 only the t-test can reach significance; report both, decide on the one the fight
spec names (the paired t-test unless it says otherwise).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
from scipy import stats as _st

from chainzrule.errors import ConfigError, DataError

__all__ = [
    "VERDICTS",
    "summarize",
    "one_sample_tests",
    "paired_tests",
    "HolmResult",
    "holm_bonferroni",
    "verdict_level",
    "verdict_compare",
    "ratio_reduction",
]

#: The three verdicts a claim row can get.
VERDICTS: tuple[str, str, str] = ("supported", "not supported", "inconclusive")

_DIRECTIONS = ("higher", "lower")
_ALTERNATIVES = ("two-sided", "greater", "less")


# ----------------------------------------------------------------------------------------------
# input checks
# ----------------------------------------------------------------------------------------------


def _as_values(values: Any, name: str = "values") -> np.ndarray:
    """A 1-D float64 array of finite values; ValueError otherwise (empty included)."""
    if hasattr(values, "detach"):  # torch tensor, without importing torch here
        values = values.detach().cpu().numpy()
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise DataError(f"expected a 1-D sequence of numbers for {name}, got {type(values).__name__}") from e
    if arr.ndim != 1:
        raise DataError(f"expected a 1-D sequence of numbers for {name}, got shape {arr.shape}")
    if arr.size == 0:
        raise DataError(f"expected at least one value in {name}, got none")
    bad = np.flatnonzero(~np.isfinite(arr))
    if bad.size:
        raise DataError(f"expected finite values in {name}, got {arr[bad[0]]} at index {bad[0]}")
    return arr


def _as_pair(a: Any, b: Any) -> tuple[np.ndarray, np.ndarray]:
    x, y = _as_values(a, "a"), _as_values(b, "b")
    if x.size != y.size:
        raise DataError(f"expected paired values of equal length, got {x.size} and {y.size}")
    return x, y


def _check_alpha(alpha: float) -> float:
    if not 0.0 < alpha < 1.0:
        raise ConfigError(f"expected alpha in (0, 1), got {alpha}")
    return float(alpha)


def _check_direction(direction: str) -> str:
    if direction not in _DIRECTIONS:
        raise ConfigError(f"expected direction in {list(_DIRECTIONS)}, got {direction!r}")
    return direction


# ----------------------------------------------------------------------------------------------
# summaries and tests
# ----------------------------------------------------------------------------------------------


def summarize(values: Any, confidence: float = 0.95) -> dict[str, Any]:
    """Mean, sample standard deviation and t-based confidence interval of per-seed values.

    ``ci = mean ± t_{(1+confidence)/2, n-1} · std / sqrt(n)``.

    Args:
        values: 1-D, finite, at least one value (:class:`~chainzrule.errors.DataError`, a
            ``ValueError``, otherwise).
        confidence: level of the interval, default 95%.

    Returns:
        ``{"mean", "std", "n", "ci_low", "ci_high"}``. With ``n = 1`` the standard deviation
        (ddof=1) and the interval are undefined and returned as ``nan``. With zero spread the
        interval collapses to the mean.

    >>> s = summarize([1.0, 2.0, 3.0])
    >>> s["mean"], s["std"], s["n"]
    (2.0, 1.0, 3)
    >>> round(s["ci_low"], 4), round(s["ci_high"], 4)     # 2 ± 4.3027 / sqrt(3)
    (-0.4841, 4.4841)
    >>> summarize([5.0])
    {'mean': 5.0, 'std': nan, 'n': 1, 'ci_low': nan, 'ci_high': nan}
    """
    if not 0.0 < confidence < 1.0:
        raise ConfigError(f"expected confidence in (0, 1), got {confidence}")
    x = _as_values(values)
    n = int(x.size)
    mean = float(np.mean(x))
    if n < 2:
        return {"mean": mean, "std": float("nan"), "n": n, "ci_low": float("nan"), "ci_high": float("nan")}
    std = float(np.std(x, ddof=1))
    half = float(_st.t.ppf(0.5 + confidence / 2.0, n - 1)) * std / math.sqrt(n)
    return {"mean": mean, "std": std, "n": n, "ci_low": mean - half, "ci_high": mean + half}


def _tests_on_differences(d: np.ndarray, alternative: str) -> dict[str, Any]:
    if alternative not in _ALTERNATIVES:
        raise ConfigError(f"expected alternative in {list(_ALTERNATIVES)}, got {alternative!r}")
    n = int(d.size)
    out: dict[str, Any] = {"mean_diff": float(np.mean(d)), "n": n}
    nan = float("nan")
    if n < 2:
        out.update(t_stat=nan, t_p=nan, wilcoxon_stat=nan, wilcoxon_p=nan)
    elif np.all(d == 0):
        # no difference at all: no evidence against the null, instead of scipy's nan/warnings
        out.update(t_stat=0.0, t_p=1.0, wilcoxon_stat=0.0, wilcoxon_p=1.0)
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # precision loss for near-constant d
            t = _st.ttest_1samp(d, 0.0, alternative=alternative)
            w = _st.wilcoxon(d, alternative=alternative)  # zero_method="wilcox", method="auto"
        out.update(
            t_stat=float(t.statistic),
            t_p=float(t.pvalue),
            wilcoxon_stat=float(w.statistic),
            wilcoxon_p=float(w.pvalue),
        )
    return {k: out[k] for k in ("mean_diff", "t_stat", "t_p", "wilcoxon_stat", "wilcoxon_p", "n")}


def paired_tests(a: Any, b: Any, alternative: str = "two-sided") -> dict[str, Any]:
    """Paired t-test and Wilcoxon signed-rank test of ``a`` against ``b`` (paired by seed).

    The t-test is ``scipy.stats.ttest_rel(a, b)``; the Wilcoxon test is
    ``scipy.stats.wilcoxon(a - b)`` with scipy's defaults: zero differences dropped
    (``zero_method="wilcox"``) and ``method="auto"``, i.e. the exact null distribution for up to
    50 pairs, an exact permutation distribution for up to 13 pairs with ties or zeros, and the
    normal approximation otherwise.

    Degenerate cases (defined here, never an exception):

    - all differences zero: ``t_stat = wilcoxon_stat = 0`` and ``t_p = wilcoxon_p = 1.0``;
    - one pair: statistics and p-values ``nan`` (no test is possible);
    - constant non-zero differences: ``t_stat = ±inf`` and ``t_p = 0`` (scipy's limit).

    Args:
        a, b: per-seed results, equal length, finite (``DataError`` otherwise).
        alternative: "two-sided" (default), "greater" (a > b) or "less".

    Returns:
        ``{"mean_diff", "t_stat", "t_p", "wilcoxon_stat", "wilcoxon_p", "n"}`` with
        ``mean_diff = mean(a - b)``.

    >>> r = paired_tests([1.0, 2.0, 3.0, 4.0], [0.5, 1.0, 2.0, 2.0])
    >>> r["mean_diff"], r["wilcoxon_stat"], r["wilcoxon_p"], r["n"]
    (1.125, 0.0, 0.125, 4)
    >>> paired_tests([1.0, 2.0], [1.0, 2.0])["t_p"]
    1.0
    """
    x, y = _as_pair(a, b)
    return _tests_on_differences(x - y, alternative)


def one_sample_tests(values: Any, value: float, alternative: str = "two-sided") -> dict[str, Any]:
    """t-test and Wilcoxon signed-rank test of per-seed ``values`` against a fixed ``value``.

    The same as :func:`paired_tests` with ``b`` equal to ``value`` on every seed (same keys, same
    degenerate cases). Gives the p-value column of a level claim ("CR reaches 96.38%").

    >>> r = one_sample_tests([2.0, 3.0, 4.0], 1.0)
    >>> r["mean_diff"], round(r["t_stat"], 4), round(r["t_p"], 4)   # t = 2/(1/√3); df=2: p = 1 − t/√(t²+2)
    (2.0, 3.4641, 0.0742)
    """
    if not math.isfinite(value):
        raise ConfigError(f"expected a finite value, got {value}")
    return _tests_on_differences(_as_values(values) - float(value), alternative)


# ----------------------------------------------------------------------------------------------
# multiple comparisons
# ----------------------------------------------------------------------------------------------


class HolmResult(NamedTuple):
    """Holm–Bonferroni result: ``adjusted`` p-values and ``reject`` flags, in the input's shape
    (a dict with the same keys in the same order for a mapping, a list for a sequence)."""

    adjusted: dict[str, float] | list[float]
    reject: dict[str, bool] | list[bool]


def holm_bonferroni(pvalues: Mapping[str, float] | Sequence[float], alpha: float = 0.05) -> HolmResult:
    """Holm's step-down adjustment over one family of ``m`` comparisons.

    With the p-values sorted ``p_(1) ≤ … ≤ p_(m)``, the adjusted values are
    ``p̃_(i) = min(1, max_{j ≤ i} (m − j + 1) · p_(j))`` — monotone in the sorted order and
    capped at 1 — and hypothesis ``i`` is rejected iff ``p̃_i ≤ alpha`` (the same decisions as
    Holm's sequential procedure at level ``alpha``). Ties keep the input order.

    A ``nan`` p-value (a test that could not be run, e.g. one seed) counts in the family size
    ``m`` as if it were 1 (conservative), stays ``nan`` and is never rejected.

    Args:
        pvalues: a mapping name → p or a sequence of p, each in [0, 1] or nan.
        alpha: family-wise error rate.

    Returns:
        :class:`HolmResult` ``(adjusted, reject)``, same keys/order as the input.

    >>> res = holm_bonferroni([0.01, 0.04, 0.03])
    >>> [round(p, 4) for p in res.adjusted]    # 3·0.01; max(2·0.03, 0.03·3); max(0.06, 1·0.04)
    [0.03, 0.06, 0.06]
    >>> res.reject
    [True, False, False]
    >>> holm_bonferroni({"a": 0.5, "b": 0.001}).adjusted
    {'a': 0.5, 'b': 0.002}
    """
    alpha = _check_alpha(alpha)
    if isinstance(pvalues, Mapping):
        keys: list[Any] | None = list(pvalues.keys())
        raw = list(pvalues.values())
    elif isinstance(pvalues, (str, bytes)) or not isinstance(pvalues, (Sequence, np.ndarray)):
        raise DataError(f"expected a mapping or a sequence of p-values, got {type(pvalues).__name__}")
    else:
        keys = None
        raw = list(pvalues)
    try:
        p = np.asarray(raw, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as e:
        raise DataError(f"expected numeric p-values, got {raw!r}") from e
    bad = ~np.isnan(p) & ((p < 0) | (p > 1))
    if bad.any():
        raise DataError(f"expected p-values in [0, 1], got {p[bad][0]}")

    m = p.size
    adjusted = np.full(m, np.nan)
    if m:
        p_sort_key = np.where(np.isnan(p), 1.0, p)
        order = np.argsort(p_sort_key, kind="stable")  # [m]
        scaled = (m - np.arange(m)) * p_sort_key[order]  # (m - j + 1) p_(j), 1-based j
        adj_sorted = np.minimum(1.0, np.maximum.accumulate(scaled))  # monotone, capped
        adjusted[order] = adj_sorted
        adjusted[np.isnan(p)] = np.nan
    reject = [bool(v <= alpha) for v in adjusted]  # nan <= alpha is False
    adj_list = [float(v) for v in adjusted]
    if keys is None:
        return HolmResult(adj_list, reject)
    return HolmResult(dict(zip(keys, adj_list)), dict(zip(keys, reject)))


# ----------------------------------------------------------------------------------------------
# verdicts
# ----------------------------------------------------------------------------------------------


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
    alpha = _check_alpha(alpha)
    _check_direction(direction)
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
    alpha = _check_alpha(alpha)
    _check_direction(direction)
    if not (math.isnan(p_adjusted) or 0.0 <= p_adjusted <= 1.0):
        raise ConfigError(f"expected p_adjusted in [0, 1] or nan, got {p_adjusted}")
    x, y = _as_pair(a_values, b_values)
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
    cr, base = _as_pair(cr_values, base_values)
    zero = np.flatnonzero(base == 0)
    if zero.size:
        raise DataError(f"expected non-zero baseline values, got 0 at index {zero[0]}")
    per_seed = 1.0 - cr / base
    return {
        "mean": float(np.mean(per_seed)),
        "per_seed": [float(v) for v in per_seed],
        "summary": summarize(per_seed),
    }
