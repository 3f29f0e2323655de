"""Fight statistics: failure rates (unstable runs) with their own interval."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import stats as _st

from ...errors import ConfigError, DataError
from .checks import check_alternative

__all__ = ["compare_failure_rates", "failure_rate"]


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
    check_alternative(alternative)
    res = _st.fisher_exact([[ka, na - ka], [kb, nb - kb]], alternative=alternative)
    return {"rate_a": ka / na, "rate_b": kb / nb, "difference": ka / na - kb / nb,
            "odds_ratio": float(res.statistic), "p_value": float(min(1.0, res.pvalue))}
