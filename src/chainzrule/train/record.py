"""What a run reports about its training: the :class:`RunResult`, and the training half of the
result dict — cost, gradient-trace statistics and the stability rules (unstable, diverged)."""

from __future__ import annotations

import math
import resource
import sys
from dataclasses import dataclass, field

import numpy as np
from torch import nn

from ..diagnostics import peak_gradient_volatility, tau_train
from ..models import count_parameters

__all__ = ["RunResult", "UNSTABLE_RATIO", "DIVERGED_LOSS_FACTOR", "diverged", "peak_memory_mb", "train_record"]


@dataclass
class RunResult:
    """What :func:`~chainzrule.train.train` returns: the trained model, the result dict, the
    gradient-norm trace."""

    model: nn.Module | None
    result: dict
    grad_norms: list[float] = field(default_factory=list)


#: a run is "unstable" when its largest gradient norm exceeds this multiple of its median
UNSTABLE_RATIO = 20.0

#: a run whose last-epoch training loss exceeds this multiple of ln(classes) — the loss of a uniform
#: guess — has diverged even when every number stayed finite (a huge learning rate on a bounded
#: activation: weights ~1e16, loss ~1e18, nothing overflows)
DIVERGED_LOSS_FACTOR = 10.0


def peak_memory_mb() -> float:
    """Peak resident memory of this process over its whole lifetime (ru_maxrss; KiB on Linux,
    bytes on macOS). It is a run's peak only when the process ran that one run (``chainzrule
    train``); the fight runner drops it from its records for that reason."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024


def diverged(finite: bool, history: dict, num_classes: int) -> bool:
    """Non-finite gradients or losses, or a last-epoch loss far worse than a uniform guess.

    >>> diverged(True, {"train_loss": [1.0, 0.5]}, 3), diverged(True, {"train_loss": [1e18]}, 3)
    (False, True)
    """
    losses = history["train_loss"]
    if not finite or not all(math.isfinite(v) for v in losses):
        return True
    return bool(losses) and losses[-1] > DIVERGED_LOSS_FACTOR * math.log(max(num_classes, 2))


def train_record(cfg, model, loop, history) -> dict:
    """The training half of a run's result: cost, gradient-trace statistics, stability flags.

    ``loop`` provides ``grad_norms``, ``steps_per_epoch``, ``num_classes``, ``best_epoch``,
    ``stopped_early``, ``train_seconds`` and ``step`` (the training loop, or batched training's
    per-member record)."""
    val = history["val_accuracy"]
    selected = (loop.best_epoch if cfg.patience > 0 else len(val)) or None
    return {
        "params": count_parameters(model),
        **_gradient_statistics(loop.grad_norms, loop.steps_per_epoch, history, loop.num_classes),
        "train_seconds": loop.train_seconds,
        "step_ms": 1000.0 * loop.train_seconds / max(loop.step, 1),  # optimizer steps only, no validation
        "steps": loop.step,
        "peak_memory_mb": peak_memory_mb(),
        "history": history,
        "epochs_run": len(val),
        "selected_epoch": selected,
        "stopped_early": loop.stopped_early,
        "val": {"accuracy": val[selected - 1] if selected else None},
    }


def _gradient_statistics(norms: list[float], steps_per_epoch: int, history: dict, num_classes: int) -> dict:
    """tau_train, PGV, the gradient-norm peak and median, and the unstable/diverged flags."""
    finite = bool(norms) and all(math.isfinite(g) for g in norms)
    last = norms[-steps_per_epoch:]
    med = float(np.median(norms)) if finite else None
    peak = max(norms) if finite else None
    return {
        "tau_train": tau_train(last) if finite and last else None,
        "pgv": peak_gradient_volatility(norms) if finite and len(norms) >= 2 else None,
        "grad_norm_max": peak,
        "grad_norm_median": med,
        # unstable: a non-finite step, or a gradient spike above 20x the run's own median (issue 7's rule)
        "unstable": (not finite) or (med is not None and med > 0 and peak > UNSTABLE_RATIO * med),
        "diverged": diverged(finite, history, num_classes),
    }
