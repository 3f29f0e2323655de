"""Fight statistics: v2 protocol: t-tests on a mean with a plain or resampling-corrected variance."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import stats as _st

from ...errors import ConfigError
from .checks import as_pair, as_values, check_alpha, check_alternative, check_direction

__all__ = ["corrected_resampled_ttest", "noninferiority_test", "tost", "tost_paired"]


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


def _one_sided_alpha(alpha: float) -> float:
    """``alpha`` of a one-sided test whose ``1 − 2·alpha`` interval is reported: in (0, 0.5)."""
    alpha = check_alpha(alpha)
    if alpha >= 0.5:
        raise ConfigError(f"expected alpha < 0.5 (the test reports its 1 − 2·alpha interval), got {alpha}")
    return alpha


def _interval(mean: float, var: float, df: int, confidence: float) -> tuple[float, float]:
    """``mean ± t_{(1+confidence)/2, df} · sqrt(var)`` (nan without a variance)."""
    if math.isnan(var):
        return float("nan"), float("nan")
    half = float(_st.t.ppf(0.5 + confidence / 2.0, df)) * math.sqrt(var) if var > 0 else 0.0
    return mean - half, mean + half


# over 60 lines only by its docstring (formula, assumptions, example); the code is one test
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
    check_alternative(alternative)
    if not 0.0 < confidence < 1.0:
        raise ConfigError(f"expected confidence in (0, 1), got {confidence}")
    if not math.isfinite(null):
        raise ConfigError(f"expected a finite null value, got {null}")
    d = as_values(diffs, "diffs")
    mean, var, df = _mean_var(d, ratio)
    t, p = _t_test(mean, var, df, float(null), alternative)
    lo, hi = _interval(mean, var, df, confidence)
    return {"mean_diff": mean, "statistic": t, "p_value": p, "variance": var, "df": df,
            "ci_low": lo, "ci_high": hi, "n": int(d.size)}


# over 60 lines only by its docstring (formula, assumptions, example); the code is one test
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
    check_direction(direction)
    alpha = _one_sided_alpha(alpha)
    if not (isinstance(margin, (int, float, np.number)) and math.isfinite(margin) and margin >= 0):
        raise ConfigError(f"expected a finite margin >= 0 (metric units), got {margin!r}")
    ratio = _check_sizes(n_train, n_test)
    x, y = as_pair(a, b)
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
    alpha = _one_sided_alpha(alpha)
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise ConfigError(f"expected finite low < high, got [{low}, {high}]")
    ratio = _check_sizes(n_train, n_test)
    v = as_values(x, "x")
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
    x, y = as_pair(a, b)
    return tost(x - y, low, high, **kwargs)


def summarize_splits(values: Any, sizes: tuple[float, float] | None, confidence: float = 0.95) -> dict[str, Any]:
    """:func:`~.summaries.summarize` of per-run values; with ``sizes = (n_train, n_test)`` of
    repeated-CV splits the interval is Nadeau–Bengio's corrected one (the runs share training
    data, so the plain t-interval over them is too narrow). Same keys as ``summarize``.

    >>> s = summarize_splits([0.70, 0.80, 0.75, 0.72, 0.78], (600.0, 150.0))
    >>> round(s["mean"], 3), s["n"], round(s["ci_high"] - s["ci_low"], 4)   # vs 0.1024 uncorrected
    (0.75, 5, 0.1536)
    """
    from .summaries import summarize

    s = summarize(values, confidence=confidence)
    if sizes is None or s["n"] < 2:
        return s
    r = corrected_resampled_ttest(values, sizes[0], sizes[1], confidence=confidence)
    return {**s, "ci_low": r["ci_low"], "ci_high": r["ci_high"]}
