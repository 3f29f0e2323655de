"""What the robustness measurements share: argument checks, class predictions, seeded draws.

Used by :mod:`chainzrule.corruptions`, :mod:`chainzrule.attacks` and :mod:`chainzrule.apgd`.
Randomness is drawn on the CPU from a ``torch.Generator`` and then moved to the device, so a
seeded corruption or attack start is the same on every device.

>>> check_range((0, 1))
(0.0, 1.0)
>>> check_batch_size(0)
Traceback (most recent call last):
...
chainzrule.errors.ConfigError: expected batch_size to be a positive integer, got 0
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from chainzrule.errors import ConfigError, DataError, check_int

__all__ = ["check_range", "check_examples", "check_xy", "check_batch_size", "predict_indices", "cpu_rand", "cpu_randn"]


def check_range(input_range: Sequence[float]) -> tuple[float, float]:
    """``input_range`` as floats ``(lo, hi)`` with ``lo < hi``; ConfigError otherwise."""
    try:
        lo, hi = (float(v) for v in input_range)
    except (TypeError, ValueError):
        raise ConfigError(f"expected input_range (lo, hi), got {input_range!r}") from None
    if not hi > lo:
        raise ConfigError(f"expected input_range with lo < hi, got ({lo}, {hi})")
    return lo, hi


def check_inside(x: torch.Tensor, lo: float, hi: float, what: str = "your inputs") -> None:
    """DataError if ``x`` lies outside ``[lo, hi]`` (beyond a 1e-6 relative tolerance): data is
    refused, never clamped into a range it does not have."""
    if x.numel():
        tol = 1e-6 * (hi - lo)
        x_lo, x_hi = float(x.min()), float(x.max())
        if x_lo < lo - tol or x_hi > hi + tol:
            raise DataError(f"x lies in [{x_lo:.4g}, {x_hi:.4g}], outside input_range ({lo:g}, {hi:g}): pass the "
                            f"valid range of {what} as input_range (the default (0, 1) is for pixels in [0, 1])")


def check_examples(x: torch.Tensor) -> torch.Tensor:
    """``x`` itself if it holds at least one example (row); DataError otherwise: an accuracy of
    no examples is undefined (not 0), and an attack on none measures nothing.

    >>> check_examples(torch.zeros(0, 4))
    Traceback (most recent call last):
    ...
    chainzrule.errors.DataError: expected at least one example, got 0 (x of shape [0, 4])
    """
    if x.dim() >= 1 and x.shape[0] == 0:
        raise DataError(f"expected at least one example, got 0 (x of shape {list(x.shape)})")
    return x


def check_xy(x, y) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x, y)`` as tensors, ``y`` one label per row of ``x``, at least one row
    (:func:`check_examples`); DataError otherwise."""
    x, y = torch.as_tensor(x), torch.as_tensor(y)
    if y.dim() != 1 or x.dim() < 1 or y.shape[0] != x.shape[0]:
        raise DataError(
            f"expected labels y of shape [{x.shape[0] if x.dim() else '?'}], got shape {list(y.shape)}"
        )
    return check_examples(x), y


def check_batch_size(batch_size: int) -> int:
    """``batch_size`` as an int >= 1; ConfigError otherwise."""
    return check_int("batch_size", batch_size)


def predict_indices(predict, x: torch.Tensor) -> torch.Tensor:
    """``predict(x)`` as a tensor, checked to be one class index per row of ``x``."""
    pred = torch.as_tensor(predict(x))
    if pred.dim() != 1 or pred.shape[0] != x.shape[0]:
        raise ConfigError(
            f"expected predict to return class indices of shape [{x.shape[0]}], "
            f"got shape {list(pred.shape)}"
        )
    return pred


def cpu_randn(shape, like: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Standard normal draws from the CPU generator ``g``, in ``like``'s dtype and device."""
    return torch.randn(shape, generator=g, dtype=like.dtype).to(like.device)


def cpu_rand(shape, like: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Uniform [0, 1) draws from the CPU generator ``g``, in ``like``'s dtype and device."""
    return torch.rand(shape, generator=g, dtype=like.dtype).to(like.device)
