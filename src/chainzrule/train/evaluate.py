"""A trained model's test record: metrics, input-sensitivity diagnostics and robustness."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor, nn

from ..config import ATTACKS, TrainConfig
from ..data.splits import Splits
from ..diagnostics import jacobian_norms, lipschitz_bound, tau_input
from ..layers import hidden_layers
from ..ordinal import ordinal_metrics
from .factory import class_scores, head_kind, predict, task_loss

__all__ = ["to_model", "eval_logits", "accuracy", "evaluate", "eval_subset", "robust_subset", "robustness_metrics"]


def to_model(model: nn.Module, x: Tensor) -> Tensor:
    """``x`` on the model's device, floating inputs in the model's dtype."""
    p = next(model.parameters(), None)
    if p is None:
        return x
    return x.to(device=p.device, dtype=p.dtype if x.is_floating_point() else x.dtype)


@torch.no_grad()
def eval_logits(model: nn.Module, x: Tensor, batch_size: int = 2048) -> Tensor:
    """Logits of ``x`` in eval mode, computed on the model's device in chunks of ``batch_size``,
    returned on the CPU as float32."""
    was = model.training
    model.eval()
    try:
        chunks = range(0, len(x), batch_size)
        return torch.cat([model(to_model(model, x[i:i + batch_size])).float().cpu() for i in chunks])
    finally:
        model.train(was)


def accuracy(model: nn.Module, kind: str, x: Tensor, y: Tensor) -> float:
    """Fraction of ``x`` whose prediction (head ``kind``, see :func:`eval_logits`) equals ``y``."""
    return (predict(kind, eval_logits(model, x)) == y).float().mean().item()


def _device(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def _finite_or_none(v: float | None) -> float | None:
    return v if v is not None and math.isfinite(v) else None


def _finite_parameters(model: nn.Module) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in model.parameters())


def evaluate(model: nn.Module, cfg: TrainConfig, splits: Splits, apgd: dict | None = None,
             progress: bool = False) -> dict:
    """Test metrics, input-sensitivity diagnostics and (optionally) robustness of a trained model
    (``apgd``: APGD results already computed, see :func:`robustness_metrics`; ``progress``: a bar
    on stderr over the robustness measurements)."""
    kind = head_kind(cfg, splits.task)
    out = {"test": _test_metrics(model, kind, splits), **_sensitivity(model, cfg, splits)}
    if cfg.robustness:
        out["robustness"] = robustness_metrics(model, kind, cfg, splits, apgd, progress=progress)
    return out


def _test_metrics(model: nn.Module, kind: str, splits: Splits) -> dict:
    """Accuracy and loss on the test split (and the ordinal metrics for ordinal tasks)."""
    logits = eval_logits(model, splits.X_test)
    pred = predict(kind, logits)
    test = {"accuracy": (pred == splits.y_test).float().mean().item(),
            "loss": task_loss(kind, logits, splits.y_test).item()}
    if splits.task == "ordinal":
        test.update(ordinal_metrics(splits.y_test.numpy(), pred.numpy(), splits.num_classes))
    return test


def _sensitivity(model: nn.Module, cfg: TrainConfig, splits: Splits) -> dict:
    """Input-Jacobian norms and tau_input on the first ``cfg.diag_examples`` test inputs, and the
    Lipschitz bound (None for non-finite weights: a diverged run has no spectral norm)."""
    xd = to_model(model, splits.X_test[eval_subset(splits.y_test, cfg.diag_examples, cfg.seed)])
    norms = jacobian_norms(model, xd, method="auto", seed=cfg.seed).detach().double().numpy()
    finite = np.isfinite(norms).all()
    return {
        "jacobian_fro": {"mean": float(norms.mean()) if finite else None,
                         "p99": float(np.percentile(norms, 99)) if finite else None},
        "tau_input": tau_input(norms) if finite and norms.mean() > 0 else None,
        "lipschitz_bound": _finite_or_none(lipschitz_bound(model))
        if hidden_layers(model) and _finite_parameters(model) else None,
    }


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


def robust_subset(model: nn.Module, cfg: TrainConfig, splits: Splits) -> tuple[Tensor, Tensor]:
    """The test examples the robustness metrics attack (:func:`eval_subset`, on the model's
    device and dtype): ``x [n, ...]``, ``y [n]``."""
    idx = eval_subset(splits.y_test, cfg.corruption_examples, cfg.seed)
    return to_model(model, splits.X_test[idx]), splits.y_test[idx].to(_device(model))


def robustness_metrics(model: nn.Module, kind: str, cfg: TrainConfig, splits: Splits,
                       apgd: dict | None = None, progress: bool = False) -> dict:
    """Corruption accuracy (image data only) and FGSM/PGD/APGD accuracy at each ``cfg.adv_eps``.

    ``apgd`` maps an ε to the APGD accuracy (or the NoInputGradient) already computed for this
    model on :func:`robust_subset` — by the batched trainer, for all its members at once; the
    ε it lacks are attacked here.

    FGSM and PGD ascend the head's :func:`task_loss`, APGD cross-entropy and DLR on its
    :func:`class_scores` (whose argmax is the prediction); every attack counts an example robust
    when :func:`predict` — the rule of the test accuracy — is right on it clean and attacked.
    The attacks stay inside the data's declared input range (pixels: [0, 1]); data without one
    (tabular, text features) are attacked in the ε-ball only, and the record says "unbounded".
    An attack that finds no input gradient records None and the reason instead of an accuracy.
    """
    from tqdm.auto import tqdm

    from ..apgd import apgd_accuracy
    from ..robustness import NoInputGradient, adversarial_accuracy, corruption_accuracy

    x, y = robust_subset(model, cfg, splits)
    shape = splits.meta.get("image_shape")
    bar = tqdm(total=(shape is not None) + len(cfg.adv_eps) * len(ATTACKS), desc="robustness", unit="measure",
               disable=not progress, leave=False)
    was = model.training
    model.eval()
    try:
        pred = lambda xb: predict(kind, model(xb))
        loss = lambda xb, yb: task_loss(kind, model(xb), yb)
        rng = splits.meta.get("input_range")  # None: unbounded (only the ε-ball)
        out: dict = {}
        if shape is not None:
            bar.set_postfix_str("corruptions")
            c = corruption_accuracy(pred, x, y, shape, seed=cfg.seed, **({} if rng is None else {"input_range": rng}))
            out["corruption_accuracy"] = c["mean"]
            out["corruptions"] = c
            bar.update()
        scores = lambda xb: class_scores(kind, model(xb))  # [B, K]
        decide = (lambda s: s.argmax(dim=-1)) if kind == "linear" else None  # = pred on the attack's own forward
        failed = {}
        for eps in cfg.adv_eps:
            for method in ATTACKS:
                bar.set_postfix_str(f"{method} ε={eps:g}")
                try:
                    if method == "apgd" and eps in (apgd or {}):
                        acc = apgd[eps]
                        if isinstance(acc, NoInputGradient):
                            raise acc
                    elif method == "apgd":
                        acc = apgd_accuracy(scores, pred, x, y, eps, steps=cfg.apgd_steps, input_range=rng,
                                            seed=cfg.seed, decide=decide)
                    else:
                        acc = adversarial_accuracy(loss, pred, x, y, eps, method=method, steps=cfg.pgd_steps,
                                                   input_range=rng, seed=cfg.seed)
                    out[f"{method}_{eps:g}"] = acc
                except NoInputGradient as e:
                    out[f"{method}_{eps:g}"], failed[f"{method}_{eps:g}"] = None, str(e)
                bar.update()
        out["attack"] = {"norm": "linf", "pgd_steps": cfg.pgd_steps, "step_size": "2.5*eps/steps",
                         "apgd": f"APGD-CE + APGD-DLR, {cfg.apgd_steps} steps each, worst case per example",
                         "examples": len(x), "subset": "stratified random, seed = run seed",
                         "robust": "classified correctly clean and attacked",
                         "input_range": list(rng) if rng is not None else "unbounded",
                         **({"failed": failed} if failed else {})}
        return out
    finally:
        bar.close()
        model.train(was)
