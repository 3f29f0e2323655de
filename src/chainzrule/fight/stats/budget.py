"""Fight statistics: tuning budget: expected best validation score (Dodge et al. 2019), edges of search ranges."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ...errors import ConfigError
from .checks import as_values, check_direction

__all__ = ["edge_of_range", "expected_max_curve", "range_position"]


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
    check_direction(direction)
    v = np.sort(as_values(scores, "scores"))
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
