"""Fight statistics: multiple comparisons."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from ...errors import DataError
from .checks import check_alpha

__all__ = ["HolmResult", "holm_bonferroni"]


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
    alpha = check_alpha(alpha)
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
