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
from .dreg import dreg_penalty, lambda_schedule
from .errors import ConfigError
from .kan import KAN
from .layers import hidden_layers, set_jacobian_tracking
from .models import ChainzRuleMLP, MLP, count_parameters
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
    """Train/validation/test tensors; the validation carve is seeded by ``cfg.seed``."""
    ds = dataset if dataset is not None else load_data(cfg, progress)
    return make_splits(ds, val_fraction=cfg.val_fraction, seed=cfg.seed)


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
        return ChainzRuleMLP(in_features, list(cfg.hidden), num_classes, degree=cfg.degree, init=cfg.poly_init,
                             bound=cfg.bound, range_control=cfg.range_control,
                             track_jacobian=cfg.dreg_lambda > 0, head=head)
    if cfg.model == "mlp":
        return MLP(in_features, list(cfg.hidden), num_classes, activation=cfg.activation,
                   track_jacobian=cfg.dreg_lambda > 0, head=head)
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
    """Optimizer and per-step LR scheduler."""
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer == "adam":
        opt = torch.optim.Adam(params, lr=cfg.lr)
    elif cfg.optimizer == "adamw":
        opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0)  # decay is a regularizer choice
    else:
        opt = torch.optim.SGD(params, lr=cfg.lr, momentum=0.9, nesterov=True)
    if cfg.lr_schedule == "onecycle":
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=steps)
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


def _grad_norm(params: list[Tensor]) -> Tensor:
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.zeros(())
    return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))


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
    training record are returned.
    """
    splits = splits if splits is not None else load_splits(cfg)
    seed_everything(cfg.seed)
    if not cfg.is_neural:
        return _train_classical(cfg, splits, test)
    kind = head_kind(cfg, splits.task)
    model = build_model(cfg, splits.in_features, splits.num_classes, splits.task)
    reg = make_regularizer(cfg.reg, **({"n_proj": cfg.jr_projections, "seed": cfg.seed} if cfg.reg == "jr" else {}))
    model = reg.prepare(model)
    lam_dreg = cfg.dreg_lambda
    if lam_dreg > 0:
        set_jacobian_tracking(model, True)
    n = len(splits.X_train)
    steps_per_epoch = max(1, math.ceil(n / cfg.batch_size))
    total = steps_per_epoch * cfg.epochs
    opt, sched = make_optimizer(cfg, model, total)
    lam_of = lambda_schedule(cfg.dreg_schedule, lam_dreg, total, int(cfg.dreg_warmup * total), cfg.dreg_final)
    params = [p for p in model.parameters() if p.requires_grad]

    grad_norms: list[Tensor] = []
    history: dict[str, list] = {"epoch": [], "train_loss": [], "train_accuracy": [], "val_accuracy": [], "dreg": []}
    bar = tqdm(total=total, desc=f"{cfg.model} {cfg.dataset}", unit="step", disable=not progress,
               leave=False, dynamic_ncols=True)
    start = time.perf_counter()
    step = 0
    for epoch in range(cfg.epochs):
        model.train()
        gen = torch.Generator().manual_seed(cfg.seed * 100_003 + epoch)
        order = torch.randperm(n, generator=gen)  # [N], same for every contender with this seed
        loss_sum = torch.zeros(())
        correct = torch.zeros((), dtype=torch.long)
        dreg_sum = torch.zeros(())
        for b in range(steps_per_epoch):
            idx = order[b * cfg.batch_size:(b + 1) * cfg.batch_size]
            x, y = splits.X_train[idx], splits.y_train[idx]  # [B, D], [B]
            if reg.needs_input_grad:
                x = x.requires_grad_(True)
            logits = model(x)  # [B, out]
            loss = task_loss(kind, logits, y)
            objective = loss
            if lam_dreg > 0:
                pen = dreg_penalty(model)
                objective = objective + lam_of(step) * pen
                dreg_sum += pen.detach()
            if cfg.reg != "none" and cfg.reg_strength > 0:
                objective = objective + cfg.reg_strength * reg.penalty(model, x, logits, lambda lg: task_loss(kind, lg, y))
            opt.zero_grad(set_to_none=True)
            objective.backward()
            grad_norms.append(_grad_norm(params))
            opt.step()
            sched.step()
            step += 1
            loss_sum += loss.detach() * len(y)
            correct += (predict(kind, logits.detach()) == y).sum()
            bar.update(1)
            if b % 20 == 0 or b == steps_per_epoch - 1:
                post = {"epoch": f"{epoch + 1}/{cfg.epochs}", "loss": f"{loss.item():.3f}",
                        "acc": f"{correct.item() / min(n, (b + 1) * cfg.batch_size):.3f}"}
                if lam_dreg > 0:
                    post["dreg"] = f"{pen.item():.3g}"
                bar.set_postfix(post)
        val_acc = _accuracy(model, kind, splits.X_val, splits.y_val)
        history["epoch"].append(epoch + 1)
        history["train_loss"].append(loss_sum.item() / n)
        history["train_accuracy"].append(correct.item() / n)
        history["val_accuracy"].append(val_acc)
        history["dreg"].append(dreg_sum.item() / steps_per_epoch if lam_dreg > 0 else None)
        if not math.isfinite(history["train_loss"][-1]):
            break  # diverged: stop and report what happened rather than burn the budget
    bar.close()
    train_seconds = time.perf_counter() - start
    norms = [float(g) for g in torch.stack(grad_norms)] if grad_norms else []
    result = evaluate(model, cfg, splits) if test else {}
    result.update(_train_record(cfg, model, norms, steps_per_epoch, train_seconds, step, history))
    return RunResult(model, result, norms)


def _train_record(cfg, model, norms, steps_per_epoch, train_seconds, steps, history) -> dict:
    # diverged = a non-finite gradient norm or epoch loss; a run too short for PGV (one step) is
    # not a divergence, it just has no PGV
    ok = all(math.isfinite(g) for g in norms) and all(math.isfinite(v) for v in history["train_loss"])
    last = norms[-steps_per_epoch:]
    return {
        "params": count_parameters(model),
        "tau_train": tau_train(last) if ok and len(last) >= 1 else None,
        "pgv": peak_gradient_volatility(norms) if ok and len(norms) >= 2 else None,
        "train_seconds": train_seconds,
        "step_ms": 1000.0 * train_seconds / max(steps, 1),
        "steps": steps,
        "peak_memory_mb": _peak_memory_mb(),
        "diverged": not ok,
        "history": history,
        "val": {"accuracy": history["val_accuracy"][-1] if history["val_accuracy"] else None},
    }


# --------------------------------------------------------------------------------------------
# evaluate
# --------------------------------------------------------------------------------------------


@torch.no_grad()
def _logits(model: nn.Module, x: Tensor, batch_size: int = 2048) -> Tensor:
    was = model.training
    model.eval()
    try:
        return torch.cat([model(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])
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
    xd = splits.X_test[: cfg.diag_examples]
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


def robustness_metrics(model: nn.Module, kind: str, cfg: TrainConfig, splits: Splits) -> dict:
    """Corruption accuracy (image data only) and FGSM/PGD accuracy at each ``cfg.adv_eps``."""
    from .robustness import adversarial_accuracy, corruption_accuracy

    x, y = splits.X_test[: cfg.corruption_examples], splits.y_test[: cfg.corruption_examples]
    was = model.training
    model.eval()
    try:
        pred = lambda xb: predict(kind, model(xb))
        loss = lambda xb, yb: task_loss(kind, model(xb), yb)
        lo, hi = splits.meta.get("input_range", (float(x.min()), float(x.max())))
        out: dict = {}
        shape = splits.meta.get("image_shape")
        if shape is not None:
            c = corruption_accuracy(pred, x, y, shape, seed=cfg.seed, input_range=(lo, hi))
            out["corruption_accuracy"] = c["mean"]
            out["corruptions"] = c
        for eps in cfg.adv_eps:
            for method in ("fgsm", "pgd"):
                out[f"{method}_{eps:g}"] = adversarial_accuracy(loss, pred, x, y, eps, method=method,
                                                                steps=cfg.pgd_steps, input_range=(lo, hi),
                                                                seed=cfg.seed)
        out["attack"] = {"norm": "linf", "pgd_steps": cfg.pgd_steps, "step_size": "2.5*eps/steps",
                         "examples": len(x), "input_range": [lo, hi]}
        return out
    finally:
        model.train(was)


# --------------------------------------------------------------------------------------------
# classical baselines (tabular fights): logistic regression, RBF SVM, XGBoost
# --------------------------------------------------------------------------------------------


def _classical_model(cfg: TrainConfig):
    strength = max(cfg.reg_strength, 1e-6)
    if cfg.model == "logreg":
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(C=1.0 / strength, max_iter=2000, random_state=cfg.seed)
    if cfg.model == "svm":
        from sklearn.svm import SVC

        return SVC(C=1.0 / strength, kernel="rbf", gamma="scale", random_state=cfg.seed)
    from xgboost import XGBClassifier

    return XGBClassifier(n_estimators=200, max_depth=4, learning_rate=min(cfg.lr, 1.0), reg_lambda=cfg.reg_strength,
                         random_state=cfg.seed, n_jobs=1, tree_method="hist", verbosity=0)


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
        est.fit(X, np.searchsorted(classes, y))
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
