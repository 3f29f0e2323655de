"""Ordinal metrics on class labels: exact accuracy, MAE, off-by-one accuracy, quadratic weighted kappa.

>>> ordinal_metrics([0, 1, 2, 3], [0, 1, 3, 3], num_classes=4)["off_by_one"]
1.0
"""

from __future__ import annotations

from typing import Any

import numpy as np
from torch import Tensor

from chainzrule.errors import ConfigError, DataError

__all__ = ["quadratic_weighted_kappa", "ordinal_metrics"]


def _as_label_array(values: Any, name: str, num_classes: int) -> np.ndarray:
    if isinstance(values, Tensor):
        values = values.detach().cpu().numpy()
    arr = np.asarray(values).reshape(-1)
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        if not np.issubdtype(arr.dtype, np.number) or not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
            raise DataError(f"expected integer class labels in {name}, got dtype {arr.dtype}")
    arr = arr.astype(np.int64)
    bad = (arr < 0) | (arr >= num_classes)
    if bad.any():
        raise DataError(
            f"expected {name} in 0..{num_classes - 1}, got {sorted(set(arr[bad].tolist()))[:5]}"
        )
    return arr


def _check_pair(y_true: Any, y_pred: Any, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    if int(num_classes) != num_classes or num_classes < 2:
        raise ConfigError(f"expected num_classes >= 2, got {num_classes!r}")
    t = _as_label_array(y_true, "y_true", num_classes)
    p = _as_label_array(y_pred, "y_pred", num_classes)
    if t.shape != p.shape:
        raise DataError(f"expected y_true and y_pred of equal length, got {t.size} and {p.size}")
    if t.size == 0:
        raise DataError("expected at least one label, got none")
    return t, p


def quadratic_weighted_kappa(y_true: Any, y_pred: Any, num_classes: int) -> float:
    """Cohen's kappa with quadratic weights ``w_ij = (i − j)² / (K − 1)²`` over classes ``0..K-1``.

    ``κ = 1 − Σ w·O / Σ w·E`` with ``O`` the confusion matrix and ``E`` the outer product of the
    two marginals divided by n (as ``sklearn.metrics.cohen_kappa_score(weights="quadratic")``).
    Undefined (``nan``) when ``Σ w·E = 0``, i.e. when both label sets are one and the same class.

    >>> quadratic_weighted_kappa([0, 1, 2], [0, 1, 2], 3)
    1.0
    >>> quadratic_weighted_kappa([0, 0, 2, 2], [2, 2, 0, 0], 3)
    -1.0
    """
    t, p = _check_pair(y_true, y_pred, num_classes)
    k = int(num_classes)
    observed = np.zeros((k, k), dtype=np.float64)  # [K, K]
    np.add.at(observed, (t, p), 1.0)
    expected = np.outer(observed.sum(1), observed.sum(0)) / t.size  # [K, K]
    idx = np.arange(k)
    weights = (idx[:, None] - idx[None, :]) ** 2 / (k - 1) ** 2  # [K, K]
    denom = float((weights * expected).sum())
    if denom == 0.0:
        return float("nan")
    return float(1.0 - (weights * observed).sum() / denom)


def ordinal_metrics(y_true: Any, y_pred: Any, num_classes: int) -> dict[str, float]:
    """Exact accuracy, MAE, off-by-one accuracy and quadratic weighted kappa (GUIDE §3).

    Args:
        y_true, y_pred: integer labels in ``0..K-1`` (lists, numpy arrays or tensors, any shape;
            flattened).
        num_classes: K.

    Returns:
        ``{"accuracy", "mae", "off_by_one", "qwk"}`` as Python floats; ``off_by_one`` is the
        fraction with ``|y_pred − y_true| ≤ 1``; ``qwk`` is ``nan`` where undefined
        (see :func:`quadratic_weighted_kappa`).

    >>> m = ordinal_metrics([0, 1, 2, 3, 4], [0, 2, 2, 1, 4], num_classes=5)
    >>> m["accuracy"], m["mae"], m["off_by_one"], round(m["qwk"], 4)   # qwk = 1 - 5/19
    (0.6, 0.6, 0.8, 0.7368)
    """
    t, p = _check_pair(y_true, y_pred, num_classes)
    err = np.abs(p - t)
    return {
        "accuracy": float(np.mean(err == 0)),
        "mae": float(np.mean(err)),
        "off_by_one": float(np.mean(err <= 1)),
        "qwk": quadratic_weighted_kappa(t, p, num_classes),
    }
