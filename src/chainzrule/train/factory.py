"""The model factory: the network, head, loss, prediction rule and optimizer a config names."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import TrainConfig
from ..errors import ConfigError
from ..kan import KAN
from ..models import ChainzRuleMLP, MLP
from ..ordinal import make_ordinal_head, ordinal_loss, ordinal_predict
from ..poly import parameter_groups

__all__ = ["head_kind", "build_model", "task_loss", "predict", "make_optimizer"]


def head_kind(cfg: TrainConfig, task: str) -> str:
    """"linear" for classification; for ordinal tasks the configured head ("clm" when auto)."""
    if task == "ordinal":
        return "clm" if cfg.head in ("auto", "linear") else cfg.head
    if cfg.head not in ("auto", "linear"):
        raise ConfigError(f"head {cfg.head!r} needs an ordinal task, got task {task!r} (dataset {cfg.dataset})")
    return "linear"


def build_model(cfg: TrainConfig, in_features: int, num_classes: int, task: str) -> nn.Module:
    """The network of ``cfg`` for inputs of ``in_features`` and ``num_classes`` labels."""
    kind = head_kind(cfg, task)
    width = cfg.hidden[-1]
    head = None if kind == "linear" else make_ordinal_head(kind, width, num_classes)
    if cfg.model == "chainzrule":
        return ChainzRuleMLP(in_features, list(cfg.hidden), num_classes, degree=cfg.degree, init=cfg.poly_init,
                             bound=cfg.bound, range_control=cfg.range_control, basis=cfg.poly_basis, head=head)
    if cfg.model == "mlp":
        return MLP(in_features, list(cfg.hidden), num_classes, activation=cfg.activation, head=head)
    if cfg.model == "kan":
        if cfg.dreg_lambda > 0:
            raise ConfigError("DREG needs a chainzrule or mlp model, got model 'kan' with dreg > 0")
        if head is None:
            return KAN(in_features, list(cfg.hidden), num_classes, grid_size=cfg.kan_grid)
        return nn.Sequential(KAN(in_features, list(cfg.hidden[:-1]), width, grid_size=cfg.kan_grid), head)
    raise ConfigError(f"model {cfg.model!r} is not a neural network")


def task_loss(kind: str, logits: Tensor, y: Tensor) -> Tensor:
    """Batch-mean task loss: cross-entropy, or the ordinal head's own loss."""
    return F.cross_entropy(logits, y) if kind == "linear" else ordinal_loss(kind, logits, y)


def predict(kind: str, logits: Tensor) -> Tensor:
    """Class indices from logits."""
    return logits.argmax(dim=-1) if kind == "linear" else ordinal_predict(logits, kind)


def make_optimizer(cfg: TrainConfig, model: nn.Module, steps: int):
    """Optimizer and per-step LR scheduler; polynomial coefficients get ``lr * coef_lr_scale``."""
    groups = parameter_groups(model, cfg.lr, cfg.coef_lr_scale)
    if cfg.optimizer == "adam":
        opt = torch.optim.Adam(groups)
    elif cfg.optimizer == "adamw":
        opt = torch.optim.AdamW(groups, weight_decay=0.0)  # decay is a regularizer choice
    else:
        opt = torch.optim.SGD(groups, momentum=0.9, nesterov=True)
    if cfg.lr_schedule == "onecycle":
        max_lr = [g["lr"] for g in opt.param_groups]
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=max_lr, total_steps=steps)
    elif cfg.lr_schedule == "cosine":
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    else:
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    return opt, sched
