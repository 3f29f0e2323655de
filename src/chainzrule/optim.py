"""Optimizers and learning-rate schedules by name: the choices a run accepts, and the one place
that builds them (:func:`chainzrule.train.make_optimizer` gives them the parameter groups).

>>> import torch
>>> w = torch.nn.Parameter(torch.zeros(3))
>>> opt = make_optimizer("adamw", [{"params": [w], "lr": 1e-2}])
>>> sched = make_schedule("onecycle", opt, steps=10)
>>> type(opt).__name__, type(sched).__name__
('AdamW', 'OneCycleLR')
"""

from __future__ import annotations

import torch

from .errors import ConfigError

__all__ = ["OPTIMIZERS", "LR_SCHEDULES", "make_optimizer", "make_schedule"]

#: Optimizer names: Adam, AdamW (decay set per parameter group, never globally), SGD with Nesterov momentum 0.9.
OPTIMIZERS = ("adam", "adamw", "sgd")
#: Per-step learning-rate schedules: one-cycle (peak = each group's lr), cosine annealing, constant.
LR_SCHEDULES = ("onecycle", "cosine", "constant")


def make_optimizer(name: str, groups: list[dict], fused: bool = False) -> torch.optim.Optimizer:
    """The optimizer ``name`` over parameter ``groups`` (each with its own ``lr``).

    ``fused``: torch's fused kernel (one pass over each parameter per step instead of the
    multi-tensor implementation's several; an Adam step over a 1.9M-parameter MLP takes 0.27x the
    time on CPU). The update is the same formula, rounded differently: parameters differ in their
    last bits (at most 2.4e-7 after 60 float32 steps), so a fused run is not bit-identical to an
    unfused one (BENCHMARKS.md, "Fused optimizer").
    """
    kw = {"fused": True} if fused else {}
    if name == "adam":
        return torch.optim.Adam(groups, **kw)
    if name == "adamw":
        return torch.optim.AdamW(groups, weight_decay=0.0, **kw)  # decay only where a group sets weight_decay
    if name == "sgd":
        return torch.optim.SGD(groups, momentum=0.9, nesterov=True, **kw)
    raise ConfigError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {name!r}")


def make_schedule(name: str, opt: torch.optim.Optimizer, steps: int) -> torch.optim.lr_scheduler.LRScheduler:
    """The per-step schedule ``name`` over ``steps`` optimizer steps."""
    if name == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=[g["lr"] for g in opt.param_groups], total_steps=steps)
    if name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    if name == "constant":
        return torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    raise ConfigError(f"lr_schedule must be one of {', '.join(LR_SCHEDULES)}, got {name!r}")
