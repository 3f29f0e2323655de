"""Fight statistics: input checks."""

from __future__ import annotations

from typing import Any

import numpy as np

from ...errors import ConfigError, DataError

__all__ = ["ALTERNATIVES", "VERDICTS", "as_pair", "as_values", "check_alpha", "check_alternative", "check_direction"]


#: The three verdicts a claim row can get.
VERDICTS: tuple[str, str, str] = ("supported", "not supported", "inconclusive")

_DIRECTIONS = ("higher", "lower")
ALTERNATIVES = ("two-sided", "greater", "less")


def as_values(values: Any, name: str = "values") -> np.ndarray:
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


def as_pair(a: Any, b: Any) -> tuple[np.ndarray, np.ndarray]:
    """Two :func:`as_values` arrays of equal length (values paired by position, e.g. by seed)."""
    x, y = as_values(a, "a"), as_values(b, "b")
    if x.size != y.size:
        raise DataError(f"expected paired values of equal length, got {x.size} and {y.size}")
    return x, y


def check_alpha(alpha: float) -> float:
    """``alpha`` as a float in (0, 1); ConfigError otherwise."""
    if not 0.0 < alpha < 1.0:
        raise ConfigError(f"expected alpha in (0, 1), got {alpha}")
    return float(alpha)


def check_direction(direction: str) -> str:
    """``direction`` if it is "higher" or "lower"; ConfigError otherwise."""
    if direction not in _DIRECTIONS:
        raise ConfigError(f"expected direction in {list(_DIRECTIONS)}, got {direction!r}")
    return direction


def check_alternative(alternative: str) -> str:
    """``alternative`` if it is one of :data:`ALTERNATIVES`; ConfigError otherwise."""
    if alternative not in ALTERNATIVES:
        raise ConfigError(f"expected alternative in {list(ALTERNATIVES)}, got {alternative!r}")
    return alternative
