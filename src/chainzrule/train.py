"""One training run: a :class:`~chainzrule.config.TrainConfig` in, a result out.

Read top to bottom: :func:`load_splits` (data) → :func:`build_model` (model) → :func:`train`
(the loop) → :func:`evaluate` (metrics and diagnostics). Everything is seeded by ``cfg.seed``:
model initialisation, the validation carve and the batch order (a fresh permutation per epoch
from a generator seeded with ``(seed, epoch)``), so two runs with the same config produce the
same numbers on CPU, and every contender of a Fair Fight sees the same batches.

The loop records the global parameter-gradient norm at every step (for ``tau_train`` and
peak gradient volatility); the result dict holds the test metrics, the sensitivity diagnostics,
the parameter count, wall time, step time and peak memory.

>>> from chainzrule.config import TrainConfig
>>> cfg = TrainConfig(dataset="synthetic", model="chainzrule", hidden=(16,), epochs=2, batch_size=64)
>>> run = train(cfg, progress=False)
>>> 0.0 <= run.result["test"]["accuracy"] <= 1.0
True
"""

from __future__ import annotations

import math
import resource
import sys
import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from .config import TrainConfig
from .data import load_dataset
from .data.base import Dataset
from .data.splits import Splits, make_splits
from .diagnostics import jacobian_norms, lipschitz_bound, peak_gradient_volatility, tau_input, tau_train
from .dreg import collect, lambda_schedule
from .errors import ConfigError
from .kan import KAN
from .layers import hidden_layers
from .models import ChainzRuleMLP, MLP, count_parameters
from .poly import parameter_groups
from .ordinal import make_ordinal_head, ordinal_loss, ordinal_metrics, ordinal_predict
from .regularizers import make_regularizer

# --------------------------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------------------------


def synthetic_dataset(n: int = 2000, d: int = 10, classes: int = 3, seed: int = 1234) -> Dataset:
    """A small built-in classification task (Gaussian blobs through a random tanh map).

    Used by doctests and ``--dataset synthetic``; needs no download.
    """
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 2.0, size=(classes, d))
    y = rng.integers(0, classes, size=n)
    X = centers[y] + rng.normal(0, 1.5, size=(n, d))
    X = np.tanh(X @ rng.normal(0, 0.5, size=(d, d))) + 0.1 * rng.normal(size=(n, d))
    cut = int(0.8 * n)
    return Dataset(name="synthetic", task="classification", X_train=X[:cut].astype(np.float32),
                   y_train=y[:cut].astype(np.int64), X_test=X[cut:].astype(np.float32),
                   y_test=y[cut:].astype(np.int64), num_classes=classes, meta={"standardize": True})


def load_data(cfg: TrainConfig, progress: bool = True) -> Dataset:
    """The dataset named by ``cfg.dataset`` (plus the built-in ``synthetic``)."""
    if cfg.dataset == "synthetic":
        return synthetic_dataset()
    return load_dataset(cfg.dataset, data_dir=cfg.data_dir, target=cfg.target,
                        featurizer=cfg.featurizer, limit=cfg.limit, progress=progress)


def load_splits(cfg: TrainConfig, dataset: Dataset | None = None, progress: bool = True) -> Splits:
    """Train/validation/test tensors; the validation carve is seeded by ``cfg.seed``. With
    ``cfg.cv_folds`` the train/test split is fold ``cv_fold`` of repeat ``cv_repeat``
    (:func:`cv_dataset`) and validation is carved from the training folds."""
    ds = dataset if dataset is not None else load_data(cfg, progress)
    if cfg.cv_folds:
        ds = cv_dataset(ds, cfg.cv_folds, cfg.cv_fold, cfg.cv_repeat)
    return make_splits(ds, val_fraction=cfg.val_fraction, seed=cfg.seed)


def cv_fold_indices(y: np.ndarray, folds: int, fold: int, repeat: int) -> tuple[np.ndarray, np.ndarray]:
    """``(train, test)`` row indices of fold ``fold`` of repeat ``repeat`` of a repeated stratified
    k-fold over labels ``y`` (scikit-learn's StratifiedKFold, shuffled with ``random_state=repeat``):
    the test folds of one repeat are disjoint, stratified and cover every row."""
    from sklearn.model_selection import StratifiedKFold

    y = np.asarray(y)
    counts = np.bincount(y)
    if len(y) < folds or counts[counts > 0].min() < folds:
        raise ConfigError(f"cv_folds = {folds}: a class has fewer than {folds} rows, so the folds cannot be stratified")
    splits = StratifiedKFold(n_splits=folds, shuffle=True, random_state=repeat).split(np.zeros(len(y)), y)
    for i, (tr, te) in enumerate(splits):
        if i == fold:
            return np.sort(tr), np.sort(te)
    raise ConfigError(f"cv_fold {fold} is not in 0..{folds - 1}")


def cv_dataset(ds: Dataset, folds: int, fold: int, repeat: int) -> Dataset:
    """``ds`` with its train and test rows pooled and re-split into fold ``fold`` of repeat ``repeat``."""
    from dataclasses import replace

    if ds.X_val is not None:
        raise ConfigError(f"{ds.name} has an official validation split: resampling (cv_folds) is for datasets "
                          "with a train/test split only")
    X = np.concatenate([ds.X_train, ds.X_test])
    y = np.concatenate([ds.y_train, ds.y_test])
    tr, te = cv_fold_indices(y, folds, fold, repeat)
    meta = {**ds.meta, "cv": {"folds": folds, "fold": fold, "repeat": repeat}}
    return replace(ds, X_train=X[tr], y_train=y[tr], X_test=X[te], y_test=y[te], meta=meta)


# --------------------------------------------------------------------------------------------
# model
# --------------------------------------------------------------------------------------------


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
        return _apply_logit_scale(cfg, ChainzRuleMLP(
            in_features, list(cfg.hidden), num_classes, degree=cfg.degree, init=cfg.poly_init, bound=cfg.bound,
            range_control=cfg.range_control, basis=cfg.poly_basis, head=head))
    if cfg.model == "mlp":
        return _apply_logit_scale(cfg, MLP(in_features, list(cfg.hidden), num_classes, activation=cfg.activation,
                                           head=head))
    if cfg.model == "kan":
        if cfg.dreg_lambda > 0:
            raise ConfigError("DREG needs a chainzrule or mlp model, got model 'kan' with dreg > 0")
        if head is None:
            kan = KAN(in_features, list(cfg.hidden), num_classes, grid_size=cfg.kan_grid)
            return _apply_logit_scale(cfg, _kan_input_norm(cfg, kan, in_features))
        kan = _kan_input_norm(cfg, KAN(in_features, list(cfg.hidden[:-1]), width, grid_size=cfg.kan_grid), in_features)
        return nn.Sequential(kan, head)
    raise ConfigError(f"model {cfg.model!r} is not a neural network")


def _kan_input_norm(cfg: TrainConfig, model: nn.Module, in_features: int) -> nn.Module:
    """``cfg.input_norm = "layernorm"``: a LayerNorm over the features before the KAN."""
    return nn.Sequential(nn.LayerNorm(in_features), model) if cfg.input_norm == "layernorm" else model


def _apply_logit_scale(cfg: TrainConfig, model: nn.Module) -> nn.Module:
    """``cfg.logit_scale`` τ ≠ 1: the head's input is multiplied by τ (a forward pre-hook on
    ``model.head``), i.e. the logits of a linear head are τ·Wh + b: the temperature that lets a
    Lipschitz-constrained (spectrally normalized) network reach confident logits. A model
    without a ``head`` attribute (a KAN) has its output multiplied by τ."""
    tau = float(cfg.logit_scale)
    if tau == 1.0:
        return model
    head = getattr(model, "head", None)
    if isinstance(head, nn.Module):
        head.register_forward_pre_hook(lambda m, args: (args[0] * tau, *args[1:]))
    else:
        model.register_forward_hook(lambda m, args, out: out * tau)
    return model


def task_loss(kind: str, logits: Tensor, y: Tensor) -> Tensor:
    """Batch-mean task loss: cross-entropy, or the ordinal head's own loss."""
    return F.cross_entropy(logits, y) if kind == "linear" else ordinal_loss(kind, logits, y)


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
    return make_regularizer(cfg.reg, **({"n_proj": cfg.jr_projections, "seed": cfg.seed} if cfg.reg == "jr" else {}))


def _decay_groups(cfg: TrainConfig, model: nn.Module, groups: list[dict]) -> list[dict]:
    """Split ``groups`` so that only the weight matrices (``WeightDecay.decay_parameters``) get
    ``weight_decay = reg_strength``; biases, polynomial coefficients, cutpoints and norms get 0."""
    from .regularizers import WeightDecay

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
    if cfg.optimizer == "adam":
        opt = torch.optim.Adam(groups)
    elif cfg.optimizer == "adamw":
        opt = torch.optim.AdamW(groups, weight_decay=0.0)  # decay: reg="wd" (decoupled_decay), per group
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


# --------------------------------------------------------------------------------------------
# train
# --------------------------------------------------------------------------------------------


@dataclass
class RunResult:
    """What :func:`train` returns: the trained model, the result dict, the gradient-norm trace."""

    model: nn.Module | None
    result: dict
    grad_norms: list[float] = field(default_factory=list)


#: a run is "unstable" when its largest gradient norm exceeds this multiple of its median
UNSTABLE_RATIO = 20.0


def _grad_norm(params: list[Tensor]) -> Tensor:
    """Global gradient norm (the one ``torch.nn.utils.clip_grad_norm_`` computes), 0-d, no sync."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.zeros(())
    return torch.nn.utils.get_total_norm(grads)


def _peak_memory_mb() -> float:
    """Peak resident memory of this process over its whole lifetime (ru_maxrss; KiB on Linux,
    bytes on macOS). It is a run's peak only when the process ran that one run (``chainzrule
    train``); the fight runner drops it from its records for that reason."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)


def train(cfg: TrainConfig, splits: Splits | None = None, progress: bool = True, test: bool = True) -> RunResult:
    """Train the model of ``cfg`` and evaluate it on the test split.

    ``splits`` may be passed in to share loaded data between runs (the Fair Fight does).
    ``test=False`` never reads the test split (tuning runs): only validation metrics and the
    training record are returned. With ``cfg.patience > 0`` training stops after that many epochs
    without a better validation accuracy and the best epoch's weights are restored (ties keep the
    earlier epoch); with 0 every epoch runs and the last weights are kept.
    """
    splits = splits if splits is not None else load_splits(cfg)
    seed_everything(cfg.seed)
    if not cfg.is_neural:
        return _train_classical(cfg, splits, test)
    device = torch.device(cfg.device)
    model = build_model(cfg, splits.in_features, splits.num_classes, splits.task)
    reg = make_run_regularizer(cfg)
    model = reg.prepare(model).to(device=device, dtype=getattr(torch, cfg.dtype))
    loop = _Loop(cfg, model, reg, splits, device, progress and world_rank()[1] == 0)
    history = loop.run()
    result = evaluate(model, cfg, splits) if test else {}
    result.update(train_record(cfg, model, loop, history))
    return RunResult(model, result, loop.grad_norms)


def world_rank() -> tuple[int, int]:
    """``(world size, rank)`` of the initialized process group (``torchrun``), else ``(1, 0)``."""
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size(), dist.get_rank()
    return 1, 0


class _Loop:
    """The epochs of one run: batches in a seeded order, the objective, the optimizer step, the
    gradient-norm trace (kept on the device until the end: no host sync per step), the per-epoch
    validation accuracy and the best-epoch weights.

    Under ``torchrun`` (an initialized process group) the model is wrapped in
    DistributedDataParallel and every global batch — the same seeded order as a single process —
    is split across ranks; each rank's objective is scaled by its share so that DDP's gradient
    average is exactly the gradient of the global-batch objective (task loss, DREG terms and the
    per-example penalties are batch means; constant penalties such as weight decay have scale
    mean 1). The epoch's loss and accuracy sums are all-reduced once per epoch."""

    def __init__(self, cfg, model, reg, splits, device, progress) -> None:
        self.cfg, self.model, self.reg, self.splits, self.device = cfg, model, reg, splits, device
        self.world, self.rank = world_rank()
        self.net = model
        if self.world > 1:
            self.net = torch.nn.parallel.DistributedDataParallel(model)
        self.kind = head_kind(cfg, splits.task)
        self.num_classes = splits.num_classes
        self.n = len(splits.X_train)
        self.steps_per_epoch = max(1, math.ceil(self.n / cfg.batch_size))
        total = self.steps_per_epoch * cfg.epochs
        self.opt, self.sched = make_optimizer(cfg, model, total)
        self.lam_of = lambda_schedule(cfg.dreg_schedule, cfg.dreg_lambda, total, int(cfg.dreg_warmup * total),
                                      cfg.dreg_final)
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.bar = tqdm(total=total, desc=f"{cfg.model} {cfg.dataset}", unit="step", disable=not progress,
                        leave=False, dynamic_ncols=True)
        self.step, self.train_seconds = 0, 0.0
        self.grad_norms: list[float] = []
        self.best_epoch, self.stopped_early = 0, False

    def objective(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor, Tensor | None, Tensor]:
        """``(objective, task loss, DREG penalty or None, logits)`` of one batch."""
        cfg, model = self.cfg, self.model
        if self.reg.needs_input_grad:
            x = x.requires_grad_(True)
        pen = None
        net = self.net  # the model, or its DDP wrapper under torchrun
        if cfg.dreg_lambda > 0:
            with collect(net) as terms:  # the terms of this forward, handed back here
                logits = net(x)  # [B, out]
            pen = terms.penalty()
        else:
            logits = net(x)
        loss = task_loss(self.kind, logits, y)
        obj = loss if pen is None else loss + self.lam_of(self.step) * pen
        if cfg.reg != "none" and cfg.reg_strength > 0:
            obj = obj + cfg.reg_strength * self.reg.penalty(model, x, logits, lambda lg: task_loss(self.kind, lg, y))
        return obj, loss, pen, logits

    def epoch(self, epoch: int) -> dict:
        cfg, model, sp = self.cfg, self.model, self.splits
        model.train()
        gen = torch.Generator().manual_seed(cfg.seed * 100_003 + epoch)
        order = torch.randperm(self.n, generator=gen)  # [N], same for every contender with this seed
        sums = torch.zeros(3, device=self.device)  # loss·B, correct, penalty
        norms = []
        start = time.perf_counter()
        for b in range(self.steps_per_epoch):
            idx, share = self.shard(order[b * cfg.batch_size:(b + 1) * cfg.batch_size])
            x, y = _to(self.model, sp.X_train[idx]), sp.y_train[idx].to(self.device)  # [B, D], [B]
            obj, loss, pen, logits = self.objective(x, y)
            self.opt.zero_grad(set_to_none=True)
            (obj if share is None else obj * share).backward()
            norms.append(_grad_norm(self.params))
            self.opt.step()
            self.sched.step()
            self.step += 1
            count = len(y) if share != 0.0 else 0
            sums += torch.stack([loss.detach() * count, (predict(self.kind, logits.detach()) == y).sum() * (count > 0),
                                 pen.detach() if pen is not None else loss.new_zeros(())])
            self.bar.update(1)
            if b % 50 == 0 or b == self.steps_per_epoch - 1:
                self.bar.set_postfix({"epoch": f"{epoch + 1}/{cfg.epochs}", "loss": f"{loss.item():.3f}"})
        self.train_seconds += time.perf_counter() - start
        self.grad_norms += torch.stack(norms).double().cpu().tolist()
        if self.world > 1:
            torch.distributed.all_reduce(sums)  # loss and correct: sums over ranks; penalty: / world
            sums[2] /= self.world
        loss_sum, correct, pen_sum = sums.tolist()
        return {"train_loss": loss_sum / self.n, "train_accuracy": correct / self.n,
                "dreg": pen_sum / self.steps_per_epoch if cfg.dreg_lambda > 0 else None}

    def shard(self, idx: Tensor) -> tuple[Tensor, float | None]:
        """This rank's part of a global batch and its objective scale (None: single process).

        A rank whose part is empty (a last batch smaller than the world) runs one example with
        scale 0, so every rank takes part in DDP's gradient all-reduce."""
        if self.world == 1:
            return idx, None
        local = idx[self.rank::self.world]
        if len(local) == 0:
            return idx[:1], 0.0
        return local, len(local) * self.world / len(idx)

    def run(self) -> dict:
        cfg = self.cfg
        history: dict[str, list] = {"epoch": [], "train_loss": [], "train_accuracy": [], "val_accuracy": [], "dreg": []}
        best_val, best_state, waited = -1.0, None, 0
        for epoch in range(cfg.epochs):
            row = self.epoch(epoch)
            val_acc = _accuracy(self.model, self.kind, self.splits.X_val, self.splits.y_val)
            for k, v in (("epoch", epoch + 1), ("val_accuracy", val_acc), *row.items()):
                history[k].append(v)
            if not math.isfinite(row["train_loss"]):
                break  # diverged: stop and report what happened rather than burn the budget
            if val_acc > best_val:
                best_val, self.best_epoch, waited = val_acc, epoch + 1, 0
                if cfg.patience > 0:
                    best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
            else:
                waited += 1
                if cfg.patience > 0 and waited >= cfg.patience:
                    self.stopped_early = True
                    break
        self.bar.close()
        if best_state is not None:
            self.model.load_state_dict(best_state)
        return history


#: a run whose last-epoch training loss exceeds this multiple of ln(classes) — the loss of a uniform
#: guess — has diverged even when every number stayed finite (a huge learning rate on a bounded
#: activation: weights ~1e16, loss ~1e18, nothing overflows)
DIVERGED_LOSS_FACTOR = 10.0


def _diverged(finite: bool, history: dict, num_classes: int) -> bool:
    """Non-finite gradients or losses, or a last-epoch loss far worse than a uniform guess."""
    losses = history["train_loss"]
    if not finite or not all(math.isfinite(v) for v in losses):
        return True
    return bool(losses) and losses[-1] > DIVERGED_LOSS_FACTOR * math.log(max(num_classes, 2))


def train_record(cfg, model, loop, history) -> dict:
    """The training half of a run's result: cost, gradient-trace statistics, stability flags.

    ``loop`` provides ``grad_norms``, ``steps_per_epoch``, ``num_classes``, ``best_epoch``,
    ``stopped_early``, ``train_seconds`` and ``step`` (the training loop, or batched training's
    per-member record)."""
    norms = loop.grad_norms
    finite = bool(norms) and all(math.isfinite(g) for g in norms)
    last = norms[-loop.steps_per_epoch:]
    med = float(np.median(norms)) if finite else None
    peak = max(norms) if finite else None
    val = history["val_accuracy"]
    selected = (loop.best_epoch if cfg.patience > 0 else len(val)) or None
    return {
        "params": count_parameters(model),
        "tau_train": tau_train(last) if finite and last else None,
        "pgv": peak_gradient_volatility(norms) if finite and len(norms) >= 2 else None,
        "grad_norm_max": peak,
        "grad_norm_median": med,
        # unstable: a non-finite step, or a gradient spike above 20x the run's own median (issue 7's rule)
        "unstable": (not finite) or (med is not None and med > 0 and peak > UNSTABLE_RATIO * med),
        "diverged": _diverged(finite, history, loop.num_classes),
        "train_seconds": loop.train_seconds,
        "step_ms": 1000.0 * loop.train_seconds / max(loop.step, 1),  # optimizer steps only, no validation
        "steps": loop.step,
        "peak_memory_mb": _peak_memory_mb(),
        "history": history,
        "epochs_run": len(val),
        "selected_epoch": selected,
        "stopped_early": loop.stopped_early,
        "val": {"accuracy": val[selected - 1] if selected else None},
    }


# --------------------------------------------------------------------------------------------
# evaluate
# --------------------------------------------------------------------------------------------


def _device(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def _to(model: nn.Module, x: Tensor) -> Tensor:
    """``x`` on the model's device, floating inputs in the model's dtype."""
    p = next(model.parameters(), None)
    if p is None:
        return x
    return x.to(device=p.device, dtype=p.dtype if x.is_floating_point() else x.dtype)


@torch.no_grad()
def _logits(model: nn.Module, x: Tensor, batch_size: int = 2048) -> Tensor:
    """Logits of ``x`` in eval mode, computed on the model's device, returned on the CPU."""
    was = model.training
    model.eval()
    try:
        return torch.cat([model(_to(model, x[i:i + batch_size])).float().cpu() for i in range(0, len(x), batch_size)])
    finally:
        model.train(was)


def _accuracy(model, kind, x, y) -> float:
    return (predict(kind, _logits(model, x)) == y).float().mean().item()


def _finite_or_none(v: float | None) -> float | None:
    return v if v is not None and math.isfinite(v) else None


def _finite_parameters(model: nn.Module) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in model.parameters())


def evaluate(model: nn.Module, cfg: TrainConfig, splits: Splits) -> dict:
    """Test metrics, input-sensitivity diagnostics and (optionally) robustness of a trained model."""
    kind = head_kind(cfg, splits.task)
    logits = _logits(model, splits.X_test)
    pred = predict(kind, logits)
    test = {"accuracy": (pred == splits.y_test).float().mean().item(),
            "loss": task_loss(kind, logits, splits.y_test).item()}
    if splits.task == "ordinal":
        test.update(ordinal_metrics(splits.y_test.numpy(), pred.numpy(), splits.num_classes))
    xd = _to(model, splits.X_test[eval_subset(splits.y_test, cfg.diag_examples, cfg.seed)])
    norms = jacobian_norms(model, xd, method="auto", seed=cfg.seed).detach().double().numpy()
    finite = np.isfinite(norms).all()
    out = {
        "test": test,
        "jacobian_fro": {"mean": float(norms.mean()) if finite else None,
                         "p99": float(np.percentile(norms, 99)) if finite else None},
        "tau_input": tau_input(norms) if finite and norms.mean() > 0 else None,
        # non-finite weights (a diverged run) have no spectral norm: report None, do not crash
        "lipschitz_bound": _finite_or_none(lipschitz_bound(model))
        if hidden_layers(model) and _finite_parameters(model) else None,
    }
    if cfg.robustness:
        out["robustness"] = robustness_metrics(model, kind, cfg, splits)
    return out


def eval_subset(y: Tensor, n: int, seed: int) -> Tensor:
    """Indices (sorted) of a seeded, stratified random subset of ``n`` of the test labels ``y``
    (all of them when ``n >= len(y)``; plain seeded when a class is too rare to stratify) — not
    the first ``n``, which on MNIST are an easier half of the test set."""
    m = len(y)
    if n >= m:
        return torch.arange(m)
    from sklearn.model_selection import train_test_split

    labels = y.numpy()
    counts = np.bincount(labels)
    k = int(np.count_nonzero(counts))
    strat = labels if counts[counts > 0].min() >= 2 and k <= n <= m - k else None
    keep, _ = train_test_split(np.arange(m), train_size=n, random_state=seed % 2**32, stratify=strat)
    return torch.from_numpy(np.sort(keep))


def robustness_metrics(model: nn.Module, kind: str, cfg: TrainConfig, splits: Splits) -> dict:
    """Corruption accuracy (image data only) and FGSM/PGD accuracy at each ``cfg.adv_eps``.

    The attacks stay inside the data's declared input range (pixels: [0, 1]); data without one
    (tabular, text features) are attacked in the ε-ball only, and the record says "unbounded".
    An attack that finds no input gradient records None and the reason instead of an accuracy.
    """
    from .robustness import NoInputGradient, adversarial_accuracy, corruption_accuracy

    dev = _device(model)
    idx = eval_subset(splits.y_test, cfg.corruption_examples, cfg.seed)
    x, y = _to(model, splits.X_test[idx]), splits.y_test[idx].to(dev)
    was = model.training
    model.eval()
    try:
        pred = lambda xb: predict(kind, model(xb))
        loss = lambda xb, yb: task_loss(kind, model(xb), yb)
        rng = splits.meta.get("input_range")  # None: unbounded (only the ε-ball)
        out: dict = {}
        shape = splits.meta.get("image_shape")
        if shape is not None:
            c = corruption_accuracy(pred, x, y, shape, seed=cfg.seed, **({} if rng is None else {"input_range": rng}))
            out["corruption_accuracy"] = c["mean"]
            out["corruptions"] = c
        failed = {}
        for eps in cfg.adv_eps:
            for method in ("fgsm", "pgd"):
                try:
                    out[f"{method}_{eps:g}"] = adversarial_accuracy(loss, pred, x, y, eps, method=method,
                                                                    steps=cfg.pgd_steps, input_range=rng,
                                                                    seed=cfg.seed)
                except NoInputGradient as e:
                    out[f"{method}_{eps:g}"], failed[f"{method}_{eps:g}"] = None, str(e)
        out["attack"] = {"norm": "linf", "pgd_steps": cfg.pgd_steps, "step_size": "2.5*eps/steps",
                         "examples": len(x), "subset": "stratified random, seed = run seed",
                         "input_range": list(rng) if rng is not None else "unbounded",
                         **({"failed": failed} if failed else {})}
        return out
    finally:
        model.train(was)


# --------------------------------------------------------------------------------------------
# classical baselines (tabular fights): logistic regression, RBF SVM, XGBoost
# --------------------------------------------------------------------------------------------


def _classical_model(cfg: TrainConfig):
    """The estimator of ``cfg`` on its real knobs: logreg C = 1/reg_strength; SVM C = 1/reg_strength
    and γ = ``svm_gamma`` (None: scikit-learn's "scale"); XGBoost ``xgb_trees`` (an upper bound
    when ``xgb_early_stopping`` > 0: boosting stops after that many rounds without a better
    validation log-loss and the best round is used), ``xgb_depth``, ``xgb_min_child_weight``,
    ``xgb_subsample``, eta = lr, reg_lambda = reg_strength."""
    strength = max(cfg.reg_strength, 1e-6)
    if cfg.model == "logreg":
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(C=1.0 / strength, max_iter=2000, random_state=cfg.seed)
    if cfg.model == "svm":
        from sklearn.svm import SVC

        gamma = "scale" if cfg.svm_gamma is None else cfg.svm_gamma
        return SVC(C=1.0 / strength, kernel="rbf", gamma=gamma, random_state=cfg.seed)
    from xgboost import XGBClassifier

    stop = {"early_stopping_rounds": cfg.xgb_early_stopping} if cfg.xgb_early_stopping else {}
    return XGBClassifier(n_estimators=cfg.xgb_trees, max_depth=cfg.xgb_depth, learning_rate=min(cfg.lr, 1.0),
                         min_child_weight=cfg.xgb_min_child_weight, subsample=cfg.xgb_subsample,
                         reg_lambda=cfg.reg_strength, random_state=cfg.seed, n_jobs=1, tree_method="hist",
                         verbosity=0, **stop)


def _classical_fit(cfg: TrainConfig, est, X, y, classes, splits: Splits) -> None:
    """Fit ``est`` on training rows; XGBoost with early stopping watches the validation split
    (its rows whose class was seen in training), never the test split."""
    if cfg.model == "xgboost" and cfg.xgb_early_stopping:
        yv = splits.y_val.numpy()
        seen = np.isin(yv, classes)
        est.fit(X, y, eval_set=[(splits.X_val.numpy()[seen], np.searchsorted(classes, yv[seen]))], verbose=False)
    else:
        est.fit(X, y)


def _train_classical(cfg: TrainConfig, splits: Splits, test: bool = True) -> RunResult:
    """Fit a scikit-learn/XGBoost baseline. ``reg_strength`` is 1/C (logreg, svm) or λ (xgboost);
    ``lr`` is XGBoost's learning rate. Gradient diagnostics do not apply and are reported as None.

    The labels seen in training are mapped to 0..k-1 (XGBoost needs them contiguous) and the
    predictions mapped back, so a training split that lacks a class still works (that class is
    never predicted). With a single class, or when the fit itself fails, the run is not a crash:
    its result says ``"failed": reason`` and holds no accuracies.
    """
    X, y = splits.X_train.numpy(), splits.y_train.numpy()
    classes = np.unique(y)
    if len(classes) < 2:
        return _failed_classical(f"the training split holds only class {classes[0] if len(classes) else 'none'}: "
                                 f"{cfg.model} needs at least 2 classes", test)
    est = _classical_model(cfg)
    start = time.perf_counter()
    try:
        _classical_fit(cfg, est, X, np.searchsorted(classes, y), classes, splits)
    except Exception as e:  # a baseline that cannot be fitted fails its run, never the fight
        return _failed_classical(f"{cfg.model} could not be fitted: {type(e).__name__}: {e}", test)
    seconds = time.perf_counter() - start
    predict = lambda x: classes[np.asarray(est.predict(x.numpy())).astype(np.int64)]
    metrics = None
    if test:
        pred = predict(splits.X_test)
        metrics = {"accuracy": float((pred == splits.y_test.numpy()).mean())}
        if splits.task == "ordinal":
            metrics.update(ordinal_metrics(splits.y_test.numpy(), pred, splits.num_classes))
    val_acc = float((predict(splits.X_val) == splits.y_val.numpy()).mean())
    result = {**_classical_result(), "val": {"accuracy": val_acc}, "params": _classical_params(est),
              "train_seconds": seconds, "peak_memory_mb": _peak_memory_mb()}
    if metrics is not None:
        result["test"] = metrics
    return RunResult(None, result, [])


def _classical_result() -> dict:
    return {"val": {"accuracy": None}, "params": None, "jacobian_fro": {"mean": None, "p99": None},
            "tau_input": None, "tau_train": None, "pgv": None, "lipschitz_bound": None, "train_seconds": None,
            "step_ms": None, "steps": 0, "peak_memory_mb": None, "diverged": False, "history": {}}


def _failed_classical(reason: str, test: bool) -> RunResult:
    result = {**_classical_result(), "failed": reason}
    if test:
        result["test"] = {"accuracy": None}
    return RunResult(None, result, [])


def _classical_params(est) -> int | None:
    """Number of fitted numbers: coefficients (logreg), support-vector coordinates + duals (svm),
    tree nodes (xgboost)."""
    if hasattr(est, "coef_"):
        return int(est.coef_.size + est.intercept_.size)
    if hasattr(est, "support_vectors_"):
        return int(est.support_vectors_.size + est.dual_coef_.size + est.intercept_.size)
    try:
        return int(len(est.get_booster().trees_to_dataframe()))
    except Exception:  # pandas missing: count nodes from the JSON dump
        return int(sum(d.count('"nodeid"') for d in est.get_booster().get_dump(dump_format="json")))
