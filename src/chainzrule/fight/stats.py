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

The v2 protocol's building blocks (their verdicts are in :mod:`chainzrule.fight.verdicts`):

- :func:`corrected_resampled_ttest` — Nadeau–Bengio's t-test for repeated k-fold CV.
- :func:`noninferiority_test` — "at least as good as, up to a margin δ" (paired, plain or
  corrected variance).
- :func:`tost` / :func:`tost_paired` — equivalence to a range (two one-sided tests).
- :func:`failure_rate` / :func:`compare_failure_rates` — unstable runs: Clopper–Pearson
  interval, Fisher's exact test.
- :func:`expected_max_curve` — expected best validation score vs tuning budget (Dodge et al.).
- :func:`range_position` / :func:`edge_of_range` — tuned optima on the edge of their range.
- :func:`params_at_accuracy` / :func:`param_ratio_bootstrap` — the accuracy-matched parameter
  ratio from width sweeps, with a bootstrap interval over seeds.

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
    "corrected_resampled_ttest",
    "noninferiority_test",
    "tost",
    "tost_paired",
    "failure_rate",
    "compare_failure_rates",
    "expected_max_curve",
    "range_position",
    "edge_of_range",
    "params_at_accuracy",
    "param_ratio_bootstrap",
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


# ----------------------------------------------------------------------------------------------
# v2 protocol: t-tests on a mean with a plain or resampling-corrected variance
# ----------------------------------------------------------------------------------------------


def _check_alternative(alternative: str) -> str:
    if alternative not in _ALTERNATIVES:
        raise ConfigError(f"expected alternative in {list(_ALTERNATIVES)}, got {alternative!r}")
    return alternative


def _check_sizes(n_train: float | None, n_test: float | None) -> float:
    """``n_test / n_train`` (0.0 when both are None: the plain variance); ValueError otherwise."""
    if n_train is None and n_test is None:
        return 0.0
    for name, v in (("n_train", n_train), ("n_test", n_test)):
        number = isinstance(v, (int, float, np.number)) and not isinstance(v, bool)
        if not (number and math.isfinite(v) and v > 0):
            raise ConfigError(f"expected a positive finite {name} (or neither n_train nor n_test), got {v!r}")
    return float(n_test) / float(n_train)


def _mean_var(d: np.ndarray, test_train_ratio: float) -> tuple[float, float, int]:
    """Mean, variance of the mean and df of ``d``: ``(1/J + n_test/n_train) · s²``, ``J − 1``.

    The variance is ``nan`` for one value (no spread can be estimated).
    """
    j = int(d.size)
    mean = float(np.mean(d))
    if j < 2:
        return mean, float("nan"), 0
    s2 = 0.0 if np.all(d == d[0]) else float(np.var(d, ddof=1))  # exact 0, not rounding noise
    return mean, (1.0 / j + test_train_ratio) * s2, j - 1


def _t_test(mean: float, var: float, df: int, null: float, alternative: str) -> tuple[float, float]:
    """t statistic and p-value of ``H0: μ = null`` (``≤`` for "greater", ``≥`` for "less").

    Zero variance: no difference gives ``(0, 1)`` (no evidence, as :func:`paired_tests`), any
    difference ``t = ±inf`` with scipy's limiting p-value.
    """
    if math.isnan(var):
        return float("nan"), float("nan")
    diff = mean - null
    if var == 0.0:
        if diff == 0.0:
            return 0.0, 1.0
        t = math.copysign(math.inf, diff)
    else:
        t = diff / math.sqrt(var)
    if alternative == "greater":
        p = _st.t.sf(t, df)
    elif alternative == "less":
        p = _st.t.cdf(t, df)
    else:
        p = 2.0 * _st.t.sf(abs(t), df)
    return float(t), float(min(1.0, p))


def _interval(mean: float, var: float, df: int, confidence: float) -> tuple[float, float]:
    """``mean ± t_{(1+confidence)/2, df} · sqrt(var)`` (nan without a variance)."""
    if math.isnan(var):
        return float("nan"), float("nan")
    half = float(_st.t.ppf(0.5 + confidence / 2.0, df)) * math.sqrt(var) if var > 0 else 0.0
    return mean - half, mean + half


def corrected_resampled_ttest(
    diffs: Any,
    n_train: float,
    n_test: float,
    *,
    alternative: str = "two-sided",
    confidence: float = 0.95,
    null: float = 0.0,
) -> dict[str, Any]:
    """Corrected resampled t-test of paired differences from repeated (k-fold) resampling.

    The ``J`` differences ``d_j = score_A − score_B`` on the same train/test splits are
    correlated (the training sets overlap), so the plain paired t underestimates the variance.
    Nadeau & Bengio (2003) correct the variance of the mean to
    ``σ̂² = (1/J + n_test/n_train) · s²`` (``s²`` the sample variance of ``d``, ddof=1) and use
    ``t = (mean(d) − null) / σ̂`` with ``J − 1`` degrees of freedom. For ``r`` repetitions of ``k``-fold
    CV, ``J = r·k`` and ``n_test/n_train = 1/(k − 1)`` (Bouckaert & Frank 2004).

    Parameters
    ----------
    diffs : array_like, shape (J,)
        Per-split differences A − B (metric units), finite, ``J ≥ 1``.
    n_train, n_test : float
        Number of training and test examples of one split (means if folds differ), > 0.
    alternative : {"two-sided", "greater", "less"}
        ``H1: μ_d ≠ null``, ``μ_d > null`` or ``μ_d < null``.
    confidence : float
        Level of the two-sided interval for the mean difference (whatever ``alternative``).
    null : float
        The mean under ``H0`` (0 for a paired comparison; the claimed value for a level claim
        on per-split values).

    Returns
    -------
    dict
        ``mean_diff, statistic, p_value, variance`` (the corrected variance of the mean, squared
        metric units), ``df`` (``J − 1``), ``ci_low, ci_high, n`` (``J``). One split: statistic,
        p-value, variance and interval are ``nan``. Zero spread: see :func:`paired_tests`.

    References
    ----------
    C. Nadeau and Y. Bengio, "Inference for the generalization error", Machine Learning 52, 2003.

    Examples
    --------
    Ten splits of 5-fold CV (2 × 5), 80 train and 20 test examples each:

    >>> r = corrected_resampled_ttest([1, 2, 3, 1, 2, 3, 1, 2, 3, 2], 80, 20)
    >>> r["mean_diff"], round(r["variance"], 4), r["df"]   # (1/10 + 20/80) · 2/3
    (2.0, 0.2333, 9)
    >>> round(r["statistic"], 4), round(r["p_value"], 4)   # 2 / sqrt(0.2333)
    (4.1404, 0.0025)
    """
    ratio = _check_sizes(n_train, n_test)
    _check_alternative(alternative)
    if not 0.0 < confidence < 1.0:
        raise ConfigError(f"expected confidence in (0, 1), got {confidence}")
    if not math.isfinite(null):
        raise ConfigError(f"expected a finite null value, got {null}")
    d = _as_values(diffs, "diffs")
    mean, var, df = _mean_var(d, ratio)
    t, p = _t_test(mean, var, df, float(null), alternative)
    lo, hi = _interval(mean, var, df, confidence)
    return {"mean_diff": mean, "statistic": t, "p_value": p, "variance": var, "df": df,
            "ci_low": lo, "ci_high": hi, "n": int(d.size)}


def noninferiority_test(
    a: Any,
    b: Any,
    margin: float,
    *,
    direction: str = "higher",
    alpha: float = 0.05,
    n_train: float | None = None,
    n_test: float | None = None,
) -> dict[str, Any]:
    """Paired non-inferiority t-test: "A is at least as good as B, up to a margin δ".

    With ``d = a − b`` per seed (or per split) and ``s = +1`` for ``direction="higher"`` (larger
    is better), ``−1`` for "lower": ``H0: s·μ_d ≤ −δ`` (A worse by δ or more) against
    ``H1: s·μ_d > −δ``, a one-sided t-test at level ``alpha``. The ``1 − 2·alpha`` interval of
    ``μ_d`` reads the same decision: its favourable end lies beyond the bound ``−s·δ`` iff
    ``p ≤ alpha``. With ``n_train`` and ``n_test`` the variance is Nadeau–Bengio's
    (:func:`corrected_resampled_ttest`), for repeated-CV data.

    Parameters
    ----------
    a, b : array_like, shape (n,)
        Paired results of A and B (metric units), finite.
    margin : float
        δ ≥ 0 in the metric's units (e.g. 0.005 = 0.5 accuracy points); δ = 0 makes this the
        one-sided superiority test.
    direction : {"higher", "lower"}
        Which way is better for the metric.
    alpha : float
        One-sided level (0.025 gives the CONSORT reading of a two-sided 95% interval).
    n_train, n_test : float, optional
        Split sizes for the corrected variance; both or neither.

    Returns
    -------
    dict
        ``mean_diff`` (mean of a − b), ``bound`` (``−s·δ``, in a − b units), ``statistic``,
        ``p_value`` (one-sided, ``nan`` for one pair), ``variance`` (of the mean), ``df``,
        ``ci_low, ci_high`` (the ``1 − 2·alpha`` interval of ``μ_d``), ``n``, ``alpha``,
        ``direction``, ``corrected`` (bool). :func:`~chainzrule.fight.verdicts.verdict_noninferiority`
        turns it into a verdict.

    Examples
    --------
    d = [−0.1, 0.1, 0.0, 0.2, −0.2]: mean 0, s² = 0.025, t = (0 + 0.5)/sqrt(0.025/5) = 7.07:

    >>> r = noninferiority_test([96.9, 97.1, 97.0, 97.2, 96.8], [97.0] * 5, margin=0.5)
    >>> round(r["statistic"], 2), round(r["p_value"], 5), r["bound"]
    (7.07, 0.00106, -0.5)
    """
    _check_direction(direction)
    alpha = _check_alpha(alpha)
    if not (isinstance(margin, (int, float, np.number)) and math.isfinite(margin) and margin >= 0):
        raise ConfigError(f"expected a finite margin >= 0 (metric units), got {margin!r}")
    ratio = _check_sizes(n_train, n_test)
    x, y = _as_pair(a, b)
    sign = 1.0 if direction == "higher" else -1.0
    mean, var, df = _mean_var(x - y, ratio)
    t, p = _t_test(sign * mean, var, df, -float(margin), "greater")
    lo, hi = _interval(mean, var, df, 1.0 - 2.0 * alpha)
    return {"mean_diff": mean, "bound": -sign * float(margin), "statistic": t, "p_value": p,
            "variance": var, "df": df, "ci_low": lo, "ci_high": hi, "n": int(x.size),
            "alpha": alpha, "direction": direction, "corrected": ratio > 0}


def tost(
    x: Any,
    low: float,
    high: float,
    *,
    alpha: float = 0.05,
    n_train: float | None = None,
    n_test: float | None = None,
) -> dict[str, Any]:
    """Two one-sided tests (TOST, Schuirmann 1987): is the mean of ``x`` within ``[low, high]``?

    ``H0: μ ≤ low or μ ≥ high`` against ``H1: low < μ < high``. Two one-sided t-tests,
    ``p_low`` of ``H0: μ ≤ low`` and ``p_high`` of ``H0: μ ≥ high``; the TOST p-value is
    ``max(p_low, p_high)`` (an intersection–union test of size ``alpha``): equivalence iff
    ``p ≤ alpha`` iff the ``1 − 2·alpha`` interval of ``μ`` lies inside ``[low, high]``.
    With ``n_train`` and ``n_test`` the variance is Nadeau–Bengio's (repeated CV).

    Parameters
    ----------
    x : array_like, shape (n,)
        Per-seed (or per-split) values, finite.
    low, high : float
        The equivalence range, ``low < high``, in the units of ``x``.
    alpha : float
        Level of each one-sided test.
    n_train, n_test : float, optional
        Split sizes for the corrected variance; both or neither.

    Returns
    -------
    dict
        ``mean, low, high, p_low, p_high, p_value`` (``nan`` for one value), ``variance``,
        ``df``, ``ci_low, ci_high`` (the ``1 − 2·alpha`` interval), ``n``, ``alpha``,
        ``corrected``. :func:`~chainzrule.fight.verdicts.verdict_equivalence` gives the verdict.

    Examples
    --------
    τ of five seeds against the claimed 1.01–1.02: mean 1.015, se = sqrt(2.5e-6 / 5), so both
    one-sided statistics are ``0.005 / 7.07e-4 = 7.07`` on 4 df:

    >>> r = tost([1.013, 1.014, 1.015, 1.016, 1.017], 1.01, 1.02)
    >>> round(r["p_low"], 5), round(r["p_high"], 5), round(r["p_value"], 5)
    (0.00106, 0.00106, 0.00106)
    """
    alpha = _check_alpha(alpha)
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise ConfigError(f"expected finite low < high, got [{low}, {high}]")
    ratio = _check_sizes(n_train, n_test)
    v = _as_values(x, "x")
    mean, var, df = _mean_var(v, ratio)
    _, p_low = _t_test(mean, var, df, float(low), "greater")
    _, p_high = _t_test(mean, var, df, float(high), "less")
    lo, hi = _interval(mean, var, df, 1.0 - 2.0 * alpha)
    return {"mean": mean, "low": float(low), "high": float(high), "p_low": p_low, "p_high": p_high,
            "p_value": max(p_low, p_high), "variance": var, "df": df, "ci_low": lo, "ci_high": hi,
            "n": int(v.size), "alpha": alpha, "corrected": ratio > 0}


def tost_paired(a: Any, b: Any, low: float, high: float, **kwargs: Any) -> dict[str, Any]:
    """Paired TOST: is the mean of ``a − b`` within ``[low, high]``? (:func:`tost` on ``a − b``.)

    For "A equals B up to ±δ" pass ``low = −δ, high = δ``; keyword arguments as :func:`tost`.

    Examples
    --------
    >>> r = tost_paired([0.91, 0.92, 0.93], [0.91, 0.91, 0.92], -0.02, 0.02)
    >>> round(r["mean"], 4), round(r["p_value"], 4)
    (0.0067, 0.0286)
    """
    x, y = _as_pair(a, b)
    return tost(x - y, low, high, **kwargs)


# ----------------------------------------------------------------------------------------------
# failure rates (unstable runs) with their own interval
# ----------------------------------------------------------------------------------------------


def _check_count(k: Any, n: Any, what: str = "n_failed") -> tuple[int, int]:
    ok = all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in (k, n))
    if not ok or not (n >= 1 and 0 <= k <= n):
        raise DataError(f"expected integer counts 0 <= {what} <= n with n >= 1, got {what}={k!r}, n={n!r}")
    return int(k), int(n)


def failure_rate(n_failed: int, n: int, confidence: float = 0.95, method: str = "clopper-pearson") -> dict[str, Any]:
    """Failure rate (share of unstable runs) with its own binomial confidence interval.

    Clopper–Pearson ("exact") is the default: with n = 5–10 runs per contender, its coverage is
    at least ``confidence`` for every true rate, where Wilson's dips below nominal for some rates
    at small n; an interval meant to say "the failure rate may be as high as …" should not
    undercover. Its bounds are Beta quantiles: ``lo = B(α/2; k, n−k+1)`` (0 for k = 0),
    ``hi = B(1−α/2; k+1, n−k)`` (1 for k = n). ``method="wilson"`` gives the score interval.

    Parameters
    ----------
    n_failed : int
        Runs that failed (diverged, non-finite loss, …), ``0 ≤ n_failed ≤ n``.
    n : int
        Runs attempted, ``≥ 1``.
    confidence : float
        Level of the two-sided interval.
    method : {"clopper-pearson", "wilson"}

    Returns
    -------
    dict
        ``rate`` (``n_failed / n``), ``n_failed, n, ci_low, ci_high, method``.

    Examples
    --------
    One failure in five runs: the interval cannot tell 1-in-5 from (almost) never or from
    most runs.

    >>> r = failure_rate(1, 5)
    >>> r["rate"], round(r["ci_low"], 5), round(r["ci_high"], 4)
    (0.2, 0.00505, 0.7164)
    >>> round(failure_rate(0, 10)["ci_high"], 4)     # 1 − 0.025^(1/10)
    0.3085
    """
    k, n = _check_count(n_failed, n)
    if not 0.0 < confidence < 1.0:
        raise ConfigError(f"expected confidence in (0, 1), got {confidence}")
    methods = {"clopper-pearson": "exact", "wilson": "wilson"}
    if method not in methods:
        raise ConfigError(f"expected method in {list(methods)}, got {method!r}")
    ci = _st.binomtest(k, n).proportion_ci(confidence_level=confidence, method=methods[method])
    return {"rate": k / n, "n_failed": k, "n": n, "ci_low": float(ci.low), "ci_high": float(ci.high),
            "method": method}


def compare_failure_rates(
    failed_a: int, n_a: int, failed_b: int, n_b: int, alternative: str = "two-sided"
) -> dict[str, Any]:
    """Fisher's exact test of two failure rates (``scipy.stats.fisher_exact``).

    The 2 × 2 table is ``[[failed_a, n_a − failed_a], [failed_b, n_b − failed_b]]``;
    ``alternative="greater"`` tests "A fails more often than B" (odds ratio > 1).

    Parameters
    ----------
    failed_a, n_a, failed_b, n_b : int
        Failed and attempted runs of A and of B (``0 ≤ failed ≤ n``, ``n ≥ 1``).
    alternative : {"two-sided", "greater", "less"}

    Returns
    -------
    dict
        ``rate_a, rate_b, difference`` (``rate_a − rate_b``), ``odds_ratio`` (scipy's sample
        odds ratio; inf or nan when a cell is 0) and ``p_value``.

    Examples
    --------
    0/10 against 5/10: ``P = C(10,0)·C(10,5)/C(20,5) = 252/15504`` per tail, doubled:

    >>> round(compare_failure_rates(0, 10, 5, 10)["p_value"], 4)
    0.0325
    >>> compare_failure_rates(1, 5, 0, 5)["p_value"]   # five seeds cannot tell 1/5 from 0/5
    1.0
    """
    ka, na = _check_count(failed_a, n_a, "failed_a")
    kb, nb = _check_count(failed_b, n_b, "failed_b")
    _check_alternative(alternative)
    res = _st.fisher_exact([[ka, na - ka], [kb, nb - kb]], alternative=alternative)
    return {"rate_a": ka / na, "rate_b": kb / nb, "difference": ka / na - kb / nb,
            "odds_ratio": float(res.statistic), "p_value": float(min(1.0, res.pvalue))}


# ----------------------------------------------------------------------------------------------
# tuning budget: expected best validation score (Dodge et al. 2019), edges of search ranges
# ----------------------------------------------------------------------------------------------


def expected_max_curve(scores: Any, ks: Any = None, direction: str = "higher") -> dict[str, list]:
    """Expected best validation score of ``k`` trials, for each ``k`` (Dodge et al. 2019).

    The ``k`` trials are drawn i.i.d. (with replacement) from the empirical distribution of the
    ``n`` observed scores, so ``k`` may exceed ``n``. With the scores sorted,
    ``v_(1) ≤ … ≤ v_(n)``, ``P(max ≤ v_(i)) = (i/n)^k`` and

    ``E[max_k] = Σ_i v_(i) · w_i``, ``w_i = (i/n)^k − ((i−1)/n)^k``,
    ``Var[max_k] = Σ_i w_i · (v_(i) − E[max_k])²``.

    ``k = 1`` gives the mean (and the population variance, ddof=0); large ``k`` tends to the max.
    Budgets ``k > n`` extrapolate the empirical distribution (they can never exceed the best
    observed score): plot ``k ≤ n``, as Dodge et al. do.

    Parameters
    ----------
    scores : array_like, shape (n,)
        One validation score per tuning trial of one contender, finite.
    ks : array_like of int, optional
        Budgets ``k ≥ 1``; default ``1, …, n``.
    direction : {"higher", "lower"}
        "lower" gives the expected minimum (for losses).

    Returns
    -------
    dict
        ``k`` (list of int), ``mean``, ``variance``, ``std`` (lists of float, score units).

    References
    ----------
    J. Dodge, S. Gururangan, D. Card, R. Schwartz, N. A. Smith, "Show Your Work: Improved
    Reporting of Experimental Results", EMNLP 2019.

    Examples
    --------
    ``k = 2`` of [0.7, 0.8, 0.9]: ``w = [1/9, 3/9, 5/9]``, ``(0.7 + 2.4 + 4.5) / 9``:

    >>> c = expected_max_curve([0.9, 0.7, 0.8], ks=[1, 2])
    >>> [round(m, 4) for m in c["mean"]]
    [0.8, 0.8444]
    """
    _check_direction(direction)
    v = np.sort(_as_values(scores, "scores"))
    n = v.size
    k = np.arange(1, n + 1) if ks is None else np.asarray(ks)
    if k.ndim != 1 or k.size == 0 or not np.issubdtype(k.dtype, np.integer) or np.any(k < 1):
        raise ConfigError(f"expected a 1-D sequence of integer budgets k >= 1, got {ks!r}")
    if direction == "lower":
        v = -v[::-1]  # the min of v is minus the max of −v
    i = np.arange(1, n + 1) / n  # [n]
    w = i[None, :] ** k[:, None] - (i - 1.0 / n)[None, :] ** k[:, None]  # [K, n]
    mean = w @ v  # [K]
    var = np.sum(w * (v[None, :] - mean[:, None]) ** 2, axis=1)  # Σ w_i (v_i − E)², as Σ w_i = 1
    if direction == "lower":
        mean = -mean
    return {"k": [int(j) for j in k], "mean": [float(m) for m in mean],
            "variance": [float(s) for s in var], "std": [float(s) for s in np.sqrt(var)]}


def range_position(value: float, low: float, high: float, log: bool = False) -> float:
    """Where ``value`` lies in ``[low, high]``: 0 at ``low``, 1 at ``high`` (in log space if ``log``).

    Examples
    --------
    >>> range_position(1e-3, 1e-5, 1e-1, log=True)   # 2 of 4 decades
    0.5
    """
    vals = (value, low, high)
    if not all(isinstance(v, (int, float, np.number)) and math.isfinite(v) for v in vals) or not low < high:
        raise ConfigError(f"expected finite value, low < high, got value={value!r}, range=[{low!r}, {high!r}]")
    if log and low <= 0:
        raise ConfigError(f"expected low > 0 for a log range, got [{low}, {high}]")
    if not low <= value <= high:
        raise ConfigError(f"expected a value inside its range [{low}, {high}], got {value}")
    if log:
        value, low, high = math.log(value), math.log(low), math.log(high)
    return min(1.0, max(0.0, (value - low) / (high - low)))


def edge_of_range(value: float, low: float, high: float, log: bool = False, share: float = 0.1) -> bool:
    """True when a tuned optimum lies in the outer ``share`` of its search range, at either end.

    Measured in log space for log-uniform ranges (learning rates, λ), so that 0.0085 in
    [1e-4, 1e-2] (log) is at 0.96 of the range and on the edge (GUIDE §4 rule 2: reported and
    the range widened).

    Parameters
    ----------
    value : float
        The optimum, inside ``[low, high]``.
    low, high : float
        The search range (``low > 0`` if ``log``).
    log : bool
        Whether the range is searched on a log scale.
    share : float
        The outer share counted as edge at each end, in ``(0, 0.5)``.

    Examples
    --------
    >>> edge_of_range(0.0085, 1e-4, 1e-2, log=True), edge_of_range(1e-3, 1e-4, 1e-2, log=True)
    (True, False)
    >>> edge_of_range(0.0085, 1e-4, 1e-2)            # 0.85 of the linear range
    False
    """
    if not 0.0 < share < 0.5:
        raise ConfigError(f"expected share in (0, 0.5), got {share}")
    u = range_position(value, low, high, log)
    return u <= share or u >= 1.0 - share


# ----------------------------------------------------------------------------------------------
# size view: parameters needed to reach an accuracy, and their ratio with a bootstrap interval
# ----------------------------------------------------------------------------------------------


def _as_sweep(params: Any, acc: Any, name: str) -> tuple[np.ndarray, list[np.ndarray]]:
    """A width sweep sorted by parameter count: log params [W] and per-width seed values."""
    p = _as_values(params, f"{name} params")
    if np.any(p <= 0) or np.unique(p).size != p.size:
        raise DataError(f"expected distinct positive parameter counts for {name}, got {p.tolist()}")
    if isinstance(acc, np.ndarray) and acc.ndim == 2:
        acc = list(acc)
    if len(acc) != p.size:
        raise DataError(f"expected one array of seed accuracies per width for {name} ({p.size}), got {len(acc)}")
    a = [_as_values(v, f"{name} accuracies at {p[i]:g} params") for i, v in enumerate(acc)]
    order = np.argsort(p)
    return np.log(p[order]), [a[i] for i in order]


def _first_crossing(logp: np.ndarray, curves: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Log params where each curve first reaches its target, linear in log params.

    logp [W] increasing, curves [B, W] mean accuracies, target [B] → [B], ``nan`` where a curve
    never reaches its target, ``logp[0]`` where it is reached at the smallest width.
    """
    reached = curves >= target[:, None]  # [B, W]
    first = np.argmax(reached, axis=1)  # first width at or above the target
    out = np.full(curves.shape[0], np.nan)
    out[reached.any(axis=1) & (first == 0)] = logp[0]
    rows = np.flatnonzero(reached.any(axis=1) & (first > 0))
    j = first[rows]
    a0, a1 = curves[rows, j - 1], curves[rows, j]  # a0 < target ≤ a1
    out[rows] = logp[j - 1] + (target[rows] - a0) / (a1 - a0) * (logp[j] - logp[j - 1])
    return out


def params_at_accuracy(params: Any, accuracy: Any, target: float) -> tuple[float, str]:
    """Smallest parameter count at which a mean accuracy curve reaches ``target``.

    The curve is linear in log params between widths; the first crossing counts (the curve
    need not be monotone).

    Parameters
    ----------
    params : array_like, shape (W,)
        Parameter count of each width, distinct, > 0.
    accuracy : array_like, shape (W,)
        Mean accuracy of each width (fraction or points; the same units as ``target``).
    target : float

    Returns
    -------
    (float, str)
        The parameter count and a note: ``""``; ``"reached at the smallest width"`` (the count
        is an upper bound); ``"never reaches the target"`` with ``nan``.

    Examples
    --------
    Half way from 0.90 to 0.94 between 1,000 and 4,000 params is 2,000 on the log axis:

    >>> p, note = params_at_accuracy([1000, 4000, 16000], [0.90, 0.94, 0.96], 0.92)
    >>> round(p), note
    (2000, '')
    """
    logp, acc = _as_sweep(params, [[float(a)] for a in _as_values(accuracy, "accuracy")], "the curve")
    if not math.isfinite(target):
        raise ConfigError(f"expected a finite target accuracy, got {target}")
    x = _first_crossing(logp, np.array([[a[0] for a in acc]]), np.array([float(target)]))[0]
    if math.isnan(x):
        return float("nan"), "never reaches the target"
    return float(math.exp(x)), "reached at the smallest width" if x == logp[0] else ""


def _resampled_curves(acc: list[np.ndarray], n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """[n_boot, W] mean accuracy per width, seeds resampled with replacement within each width."""
    return np.stack([a[rng.integers(0, a.size, size=(n_boot, a.size))].mean(axis=1) for a in acc], axis=1)


def param_ratio_bootstrap(
    base_params: Any,
    base_acc: Any,
    cr_params: Any,
    cr_acc: Any,
    *,
    target: float | None = None,
    margin: float = 0.0,
    n_boot: int = 2000,
    confidence: float = 0.95,
    rng: np.random.Generator | int = 0,
) -> dict[str, Any]:
    """Parameter ratio at equal accuracy, ``params_base / params_cr``, with a bootstrap interval.

    Each family's mean accuracy curve over its width sweep (every width tuned on validation) is
    read at ``target`` with :func:`params_at_accuracy`. Without ``target`` it is the best
    baseline width's mean minus ``margin``, recomputed in every resample, so choosing that
    width is part of the estimator. The percentile interval resamples seeds with replacement
    within each width of each family (``n_boot`` times, from ``rng``). A resample where a family
    never reaches the target is censored, not dropped: ChainzRule never reaching it counts as
    ratio 0 (it would need more than its largest width), the baseline never reaching it as
    ``+inf``, so an interval bound of 0 or inf says the sweep is too short. If both never reach
    it in more than ``(1 − confidence)/2`` of the resamples, the interval is ``nan`` with the
    reason. If either never reaches it on the mean curves, the ratio is ``nan`` with the reason.

    Parameters
    ----------
    base_params, cr_params : array_like, shape (W_base,), (W_cr,)
        Parameter count of each width, distinct, > 0.
    base_acc, cr_acc : sequence of array_like, one shape (S_w,) array per width
        Per-seed accuracies of each width (any units, the same for both and for ``target``).
    target : float, optional
        A fixed accuracy to match.
    margin : float
        Subtracted from the best baseline mean when ``target`` is None.
    n_boot, confidence, rng
        Resamples, interval level, and a numpy Generator or seed (deterministic by default).

    Returns
    -------
    dict
        ``ratio, ci_low, ci_high, target, params_base, params_cr, note_base, note_cr`` (see
        :func:`params_at_accuracy`; "reached at the smallest width" makes the ratio a bound),
        ``n_boot``, ``frac_never`` (``{"baseline", "chainzrule"}``: share of the resamples in
        which each never reaches the target), ``reason`` ("" when the ratio and interval exist).

    Examples
    --------
    The CR curve is the baseline's shifted by a factor 4 in params:

    >>> r = param_ratio_bootstrap([1e3, 1e4, 1e5], [[0.90], [0.94], [0.96]],
    ...                           [250, 2.5e3, 2.5e4], [[0.90], [0.94], [0.96]], target=0.95)
    >>> round(r["ratio"], 6), round(r["ci_low"], 6), round(r["ci_high"], 6)
    (4.0, 4.0, 4.0)
    """
    lb, ab = _as_sweep(base_params, base_acc, "the baseline")
    lc, ac = _as_sweep(cr_params, cr_acc, "ChainzRule")
    if not (isinstance(n_boot, (int, np.integer)) and n_boot >= 1) or not 0.0 < confidence < 1.0:
        raise ConfigError(f"expected n_boot >= 1 and confidence in (0, 1), got {n_boot!r}, {confidence!r}")
    if (target is not None and not math.isfinite(target)) or not math.isfinite(margin):
        raise ConfigError(f"expected a finite target (or None) and margin, got {target!r}, {margin!r}")
    gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)

    def crossings(cb: np.ndarray, cc: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        t = np.full(cb.shape[0], float(target)) if target is not None else cb.max(axis=1) - margin
        return t, _first_crossing(lb, cb, t), _first_crossing(lc, cc, t)

    t, xb, xc = (float(v[0]) for v in crossings(*(np.array([[a.mean() for a in f]]) for f in (ab, ac))))
    _, bb, bc = crossings(_resampled_curves(ab, n_boot, gen), _resampled_curves(ac, n_boot, gen))
    ratios = np.exp(bb - bc)  # censored: ChainzRule never reaching → 0, the baseline never → inf
    ratios[np.isnan(bc)], ratios[np.isnan(bb)] = 0.0, np.inf
    ratios[np.isnan(bb) & np.isnan(bc)] = np.nan
    tail, undefined = (1.0 - confidence) / 2.0, float(np.mean(np.isnan(ratios)))
    reason = ""
    if math.isnan(xb) or math.isnan(xc):
        reason = "never reaches the target: " + " and ".join(
            n for n, x in (("the baseline", xb), ("ChainzRule", xc)) if math.isnan(x))
    elif undefined > tail:
        reason = f"neither family reaches the target in {100 * undefined:.1f}% of the resamples"
    lo, hi = (math.nan, math.nan) if reason else np.quantile(ratios[~np.isnan(ratios)], [tail, 1.0 - tail],
                                                             method="inverted_cdf")
    return {"ratio": math.exp(xb - xc), "ci_low": float(lo), "ci_high": float(hi),
            "target": t, "params_base": math.exp(xb), "params_cr": math.exp(xc),
            "note_base": _crossing_note(xb, lb), "note_cr": _crossing_note(xc, lc),
            "n_boot": int(n_boot), "frac_never": {"baseline": float(np.mean(np.isnan(bb))),
                                                  "chainzrule": float(np.mean(np.isnan(bc)))},
            "reason": reason}


def _crossing_note(x: float, logp: np.ndarray) -> str:
    if math.isnan(x):
        return "never reaches the target"
    return "reached at the smallest width" if x == logp[0] else ""
