"""Fight statistics: summaries and tests."""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
from scipy import stats as _st

from ...errors import ConfigError
from .checks import ALTERNATIVES, as_pair, as_values

__all__ = ["one_sample_tests", "paired_tests", "summarize"]


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
    x = as_values(values)
    n = int(x.size)
    mean = float(np.mean(x))
    if n < 2:
        return {"mean": mean, "std": float("nan"), "n": n, "ci_low": float("nan"), "ci_high": float("nan")}
    std = float(np.std(x, ddof=1))
    half = float(_st.t.ppf(0.5 + confidence / 2.0, n - 1)) * std / math.sqrt(n)
    return {"mean": mean, "std": std, "n": n, "ci_low": mean - half, "ci_high": mean + half}


def _tests_on_differences(d: np.ndarray, alternative: str) -> dict[str, Any]:
    if alternative not in ALTERNATIVES:
        raise ConfigError(f"expected alternative in {list(ALTERNATIVES)}, got {alternative!r}")
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
    x, y = as_pair(a, b)
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
    return _tests_on_differences(as_values(values) - float(value), alternative)
