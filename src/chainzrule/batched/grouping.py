"""Which runs can share a batch: :func:`batchable`, :func:`batch_key`, :func:`eligible_groups`."""

from __future__ import annotations

import json
from typing import Sequence

from ..config import TrainConfig
from ..errors import ConfigError
from ..train.factory import decoupled_decay

__all__ = ["BATCHABLE_MODELS", "BATCHABLE_REGS", "PER_MEMBER_FIELDS", "ENGINES", "batchable", "batch_key", "eligible_groups"]

#: models whose forward is written with plain, vmap-able torch ops (KAN: through the vmap engine only)
BATCHABLE_MODELS = ("chainzrule", "mlp", "kan")
#: regularizers whose penalty is a function of the weights (or of nothing), and spectral norm (the grouped
#: engine normalizes each member's weights with its own power-iteration vectors; without DREG)
BATCHABLE_REGS = ("none", "wd", "igp", "jr", "sn")
#: config fields that may differ between the members of one batch (everything else must be equal):
#: per-member scalars of the update, of the objective, of early stopping, and of evaluation, and the
#: resampling cell (each member brings its own data; members whose splits differ in size are trained
#: in separate sub-batches by :func:`chainzrule.batched.train_batched`)
PER_MEMBER_FIELDS = ("seed", "lr", "coef_lr_scale", "dreg", "dreg_schedule", "dreg_final", "dreg_warmup",
                     "reg_strength", "patience", "diag_examples", "robustness", "adv_eps", "pgd_steps",
                     "corruption_examples", "cv_fold", "cv_repeat", "logit_scale", "sn_gain")
ENGINES = ("auto", "grouped", "vmap")


def batchable(cfg: TrainConfig) -> str | None:
    """``None`` if ``cfg`` can be trained in a batch, else the reason why not (one phrase)."""
    if not cfg.is_neural:
        return f"model {cfg.model!r} is a classical baseline"
    if cfg.model not in BATCHABLE_MODELS:
        return f"model {cfg.model!r} is not batched (only {', '.join(BATCHABLE_MODELS)})"
    if cfg.reg not in BATCHABLE_REGS:
        return f"reg {cfg.reg!r} is not batched (only {', '.join(BATCHABLE_REGS)})"
    if cfg.compile:
        return "a compiled run (compile = true) trains alone"
    if cfg.fused_optimizer:
        return "a fused-optimizer run trains alone (the batched update rounds as the unfused optimizer)"
    if cfg.head not in ("auto", "linear"):
        return f"head {cfg.head!r} is not batched (only the linear head)"
    if cfg.reg == "sn" and cfg.uses_dreg:
        return "spectral norm with DREG is not batched"
    if cfg.model == "kan" and (cfg.reg in ("sn", "igp", "jr") or cfg.logit_scale != 1.0):
        return "a KAN is batched without spectral norm, gradient penalties or a logit temperature"
    return None


def batch_key(cfg: TrainConfig, test: bool = True) -> str:
    """Runs with equal keys may share a batch: the config without :data:`PER_MEMBER_FIELDS`, plus
    whether DREG and a loss-side regularizer are on at all (they change the forward and the graph;
    AdamW's decoupled decay does not)."""
    d = {k: v for k, v in cfg.to_dict().items() if k not in PER_MEMBER_FIELDS}
    d["dreg_on"] = cfg.uses_dreg
    d["reg_on"] = cfg.reg != "none" and cfg.reg_strength > 0 and not decoupled_decay(cfg)  # AdamW: in the update
    d["test"] = bool(test)
    return json.dumps(d, sort_keys=True, separators=(",", ":"))


def eligible_groups(tasks: Sequence, max_size: int | None = None) -> list[list]:
    """Partition ``tasks`` (runner ``Task`` objects) into groups that may be trained together.

    Every task is in exactly one group; groups keep the tasks' order and come in the order of
    their first task. Tasks that cannot be batched (:func:`batchable`) are groups of one, so
    are tasks whose run key repeats an earlier task's (the same run, asked twice). ``max_size``
    splits large groups into chunks (e.g. ``ceil(len / jobs)`` to keep every worker busy).
    """
    if max_size is not None and max_size < 1:
        raise ConfigError(f"max_size must be >= 1 or None, got {max_size}")
    groups: dict[str, list] = {}
    out: list[list] = []
    seen: set[str] = set()
    for t in tasks:
        if batchable(t.config) is not None or t.key in seen:
            out.append([t])
            continue
        seen.add(t.key)
        key = batch_key(t.config, t.test)
        g = groups.get(key)
        if g is None or (max_size is not None and len(g) >= max_size):
            g = groups[key] = []
            out.append(g)
        g.append(t)
    return out
