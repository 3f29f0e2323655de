"""The model factory: the network, head, loss, prediction rule and optimizer a config names."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from ..config import DREG_MODELS, TrainConfig
from ..errors import ConfigError
from ..kan import KAN
from ..models import ChainzRuleMLP, MLP
from ..ordinal import decision_scores, make_ordinal_head, ordinal_loss, ordinal_predict
from ..optim import make_optimizer as make_optimizer_by_name, make_schedule
from ..poly import parameter_groups
from ..regularizers import make_regularizer
from ..temperature import apply_temperature

__all__ = ["head_kind", "build_model", "task_loss", "predict", "decoupled_decay", "make_run_regularizer",
           "make_optimizer"]


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
        return apply_temperature(ChainzRuleMLP(
            in_features, list(cfg.hidden), num_classes, degree=cfg.degree, init=cfg.poly_init, bound=cfg.bound,
            range_control=cfg.range_control, basis=cfg.poly_basis, head=head), cfg.logit_scale)
    if cfg.model == "mlp":
        return apply_temperature(MLP(in_features, list(cfg.hidden), num_classes, activation=cfg.activation, head=head),
                                 cfg.logit_scale)
    if cfg.model in ("cnn", "chainzrule-cnn"):
        from ..cnn import CNN, infer_image_shape

        poly = {} if cfg.model == "cnn" else dict(degree=cfg.degree, init=cfg.poly_init, bound=cfg.bound,
                                                   range_control=cfg.range_control, basis=cfg.poly_basis)
        cnn = CNN(infer_image_shape(in_features), list(cfg.conv_channels), list(cfg.hidden), num_classes,
                  activation="chainzrule" if poly else cfg.activation, head=head, **poly)
        return apply_temperature(cnn, cfg.logit_scale)
    if cfg.model == "kan":
        if cfg.uses_dreg:
            raise ConfigError(f"DREG needs one of {', '.join(DREG_MODELS)}, got model 'kan' with dreg > 0")
        if head is None:
            kan = KAN(in_features, list(cfg.hidden), num_classes, grid_size=cfg.kan_grid)
            return apply_temperature(_kan_input_norm(cfg, kan, in_features), cfg.logit_scale)
        kan = _kan_input_norm(cfg, KAN(in_features, list(cfg.hidden[:-1]), width, grid_size=cfg.kan_grid), in_features)
        return apply_temperature(nn.Sequential(kan, head), cfg.logit_scale)  # on the head's input, as an MLP's
    raise ConfigError(f"model {cfg.model!r} is not a neural network")


def _kan_input_norm(cfg: TrainConfig, model: nn.Module, in_features: int) -> nn.Module:
    """``cfg.input_norm = "layernorm"``: a LayerNorm over the features before the KAN."""
    return nn.Sequential(nn.LayerNorm(in_features), model) if cfg.input_norm == "layernorm" else model


def task_loss(kind: str, logits: Tensor, y: Tensor) -> Tensor:
    """Batch-mean task loss: cross-entropy, or the ordinal head's own loss."""
    return F.cross_entropy(logits, y) if kind == "linear" else ordinal_loss(kind, logits, y)


def class_scores(kind: str, logits: Tensor) -> Tensor:
    """Per-class scores ``[N, K]`` whose argmax is :func:`predict`'s class, for attacks that need
    one score per class (APGD): the logits, or an ordinal head's
    :func:`~chainzrule.ordinal.decision_scores` (CLM: its class log-probabilities; CORAL, CORN: the
    running sums of the threshold statistics their count compares — until 2026-12-03 their class
    log-probabilities, whose argmax is the mode, not the predicted median: APGD-DLR then aimed at
    the wrong decision and overstated CORN's robustness by several points)."""
    return logits if kind == "linear" else decision_scores(logits, kind)


def predict(kind: str, logits: Tensor) -> Tensor:
    """Class indices from logits."""
    return logits.argmax(dim=-1) if kind == "linear" else ordinal_predict(logits, kind)


def decoupled_decay(cfg: TrainConfig) -> bool:
    """Weight decay through AdamW's decoupled ``weight_decay`` (``reg="wd"`` with ``optimizer="adamw"``)
    instead of an L2 penalty in the loss."""
    return cfg.reg == "wd" and cfg.optimizer == "adamw"


def make_run_regularizer(cfg: TrainConfig):
    """The regularizer of ``cfg`` as :func:`train` uses it (decoupled decay: a zero penalty)."""
    if decoupled_decay(cfg):
        return make_regularizer("wd", via_optimizer=True)
    if cfg.reg == "jr":
        return make_regularizer("jr", n_proj=cfg.jr_projections, seed=cfg.seed)
    if cfg.reg == "sn":
        return make_regularizer("sn", gain=cfg.sn_gain)
    return make_regularizer(cfg.reg)


def _decay_groups(cfg: TrainConfig, model: nn.Module, groups: list[dict]) -> list[dict]:
    """Split ``groups`` so that only the weight matrices (``WeightDecay.decay_parameters``) get
    ``weight_decay = reg_strength``; biases, polynomial coefficients, cutpoints and norms get 0."""
    from ..regularizers import WeightDecay

    decay = {id(p) for p in WeightDecay(via_optimizer=True).decay_parameters(model)}
    out = []
    for g in groups:
        for wd, params in ((cfg.reg_strength, [p for p in g["params"] if id(p) in decay]),
                           (0.0, [p for p in g["params"] if id(p) not in decay])):
            if params:
                out.append({**g, "params": params, "weight_decay": wd})
    return out


def make_optimizer(cfg: TrainConfig, model: nn.Module, steps: int):
    """Optimizer and per-step LR scheduler; polynomial coefficients get ``lr * coef_lr_scale``.
    With :func:`decoupled_decay`, AdamW decays the weight matrices only (``reg_strength``)."""
    groups = parameter_groups(model, cfg.lr, cfg.coef_lr_scale)
    if decoupled_decay(cfg):
        groups = _decay_groups(cfg, model, groups)
    opt = make_optimizer_by_name(cfg.optimizer, groups, fused=cfg.fused_optimizer)  # AdamW: decay per group
    return opt, make_schedule(cfg.lr_schedule, opt, steps)
