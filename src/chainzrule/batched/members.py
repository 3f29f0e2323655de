"""What each member of a stack keeps of its own: its training record (:class:`MemberRecord`), its
replayed hyperparameter schedule (:func:`replay_schedule`) and its global RNG state
(:func:`rng_state`, :func:`set_rng_state`), used by :class:`~chainzrule.batched.stack.StackedRuns`.

>>> rec = MemberRecord(steps_per_epoch=4, num_classes=3)
>>> rec.step, rec.best_val, sorted(rec.history)
(0, -1.0, ['dreg', 'epoch', 'train_accuracy', 'train_loss', 'val_accuracy'])
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ..config import TrainConfig
from ..train import make_optimizer

__all__ = ["MemberRecord", "replay_schedule", "rng_state", "set_rng_state"]


class MemberRecord:
    """The per-run counters :func:`~chainzrule.train.train_record` reads from a training loop."""

    def __init__(self, steps_per_epoch: int, num_classes: int) -> None:
        self.steps_per_epoch = steps_per_epoch
        self.num_classes = num_classes
        self.grad_norms: list[float] = []
        self.train_seconds = 0.0
        self.step = 0
        self.best_epoch = 0
        self.stopped_early = False
        self.history: dict[str, list] = {"epoch": [], "train_loss": [], "train_accuracy": [], "val_accuracy": [],
                                         "dreg": []}
        self.best_val = -1.0
        self.best_state: dict[str, Tensor] | None = None
        self.waited = 0
        self.final_state: dict[str, Tensor] | None = None


def replay_schedule(cfg: TrainConfig, model: nn.Module, total: int):
    """The learning rate of every parameter group at every step (and the other hyperparameters
    the scheduler moves: Adam's β₁, SGD's momentum) from the member's real optimizer + scheduler,
    stepped exactly as the training loop steps them (read before each optimizer step).

    Returns ``(lrs [T][G], others [T], optimizer, {parameter name: group index})``."""
    opt, sched = make_optimizer(cfg, model, total)
    index = {id(p): g for g, group in enumerate(opt.param_groups) for p in group["params"]}
    group_of = {name: index[id(p)] for name, p in model.named_parameters()}
    lrs, others = [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "lr_scheduler.step() before optimizer.step()": nothing to step here
        for _ in range(total):
            lrs.append([float(g["lr"]) for g in opt.param_groups])
            g0 = opt.param_groups[0]
            others.append({"betas": tuple(g0.get("betas", ())), "momentum": g0.get("momentum")})
            sched.step()
    return lrs, others, opt, group_of


def rng_state(device: torch.device) -> dict[str, Any]:
    """The global torch and numpy RNG states (and ``device``'s CUDA one), for :func:`set_rng_state`."""
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    """Restore the global RNG states that :func:`rng_state` saved."""
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    if "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)
