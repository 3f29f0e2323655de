"""The training loop: :func:`train` (one run, neural or classical) and :class:`TrainingLoop`
(the epochs of a neural run: seeded batch order, objective, optimizer step, gradient-norm trace,
validation and best-epoch weights)."""

from __future__ import annotations

import math
import time

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from ..config import TrainConfig
from ..data.splits import Splits
from ..dreg import collect, dreg_penalty, lambda_schedule
from .compiling import check_compiler
from .data import load_splits
from .device import available_device
from .classical import train_classical
from .evaluate import accuracy, evaluate, to_model
from .factory import build_model, head_kind, make_optimizer, make_run_regularizer, predict, task_loss
from .record import RunResult, train_record

__all__ = ["train", "TrainingLoop", "seed_everything", "world_rank", "grad_norm"]


def seed_everything(seed: int) -> None:
    """Seed torch's and numpy's global generators (numpy's with ``seed mod 2**32``)."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)


def world_rank() -> tuple[int, int]:
    """``(world size, rank)`` of the initialized process group (``torchrun``), else ``(1, 0)``."""
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size(), dist.get_rank()
    return 1, 0


def grad_norm(params: list[Tensor]) -> Tensor:
    """Global gradient norm (the one ``torch.nn.utils.clip_grad_norm_`` computes), 0-d, no sync."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.zeros(())
    return torch.nn.utils.get_total_norm(grads)


def train(cfg: TrainConfig, splits: Splits | None = None, progress: bool = True, test: bool = True) -> RunResult:
    """Train the model of ``cfg`` and evaluate it on the test split.

    ``splits`` may be passed in to share loaded data between runs (the Fair Fight does).
    ``test=False`` never reads the test split (tuning runs): only validation metrics and the
    training record are returned. With ``cfg.patience > 0`` training stops after that many epochs
    without a better validation accuracy and the best epoch's weights are restored (ties keep the
    earlier epoch); with 0 every epoch runs and the last weights are kept.
    """
    device = available_device(cfg.device) if cfg.is_neural else None  # refused before any data is loaded
    if cfg.compile:
        check_compiler(cfg.device)
    splits = splits if splits is not None else load_splits(cfg)
    seed_everything(cfg.seed)
    if not cfg.is_neural:
        return train_classical(cfg, splits, test)
    model = build_model(cfg, splits.in_features, splits.num_classes, splits.task)
    reg = make_run_regularizer(cfg)
    model = reg.prepare(model).to(device=device, dtype=getattr(torch, cfg.dtype))
    loop = TrainingLoop(cfg, model, reg, splits, device, progress and world_rank()[1] == 0)
    history = loop.run()
    result = evaluate(model, cfg, splits) if test else {}
    result.update(train_record(cfg, model, loop, history))
    return RunResult(model, result, loop.grad_norms)


class TrainingLoop:
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
        # compile = true: the training forward of full batches (this rank's rows of one) is compiled;
        # a last, smaller batch would compile a graph for its shape, so it runs eagerly like evaluation
        self.compiled = torch.compile(self.net) if cfg.compile else None
        self.compiled_rows = len(self.shard(torch.arange(min(cfg.batch_size, self.n)))[0])

    def objective(self, x: Tensor, y: Tensor, part: tuple[int, Tensor] | None = None
                  ) -> tuple[Tensor, Tensor, Tensor | None, Tensor]:
        """``(objective, task loss, DREG penalty or None, logits)`` of one batch; ``part`` = (rows
        of the global batch, positions of ``x``'s rows in it) under torchrun."""
        cfg, model = self.cfg, self.model
        if self.reg.needs_input_grad:
            x = x.requires_grad_(True)
        pen = None
        net = self.net  # the model, or its DDP wrapper under torchrun
        if self.compiled is not None and len(x) == self.compiled_rows:
            net = self.compiled
            if cfg.uses_dreg:  # a compiled graph returns its terms (no collector)
                logits, jsq = net(x, return_jacobian=True)  # [B, out], [B, layers]
                pen = dreg_penalty(jsq)
            else:
                logits = net(x)  # [B, out]
        elif cfg.uses_dreg:
            with collect(net) as terms:  # the terms of this forward, handed back here
                logits = net(x)  # [B, out]
            pen = terms.penalty()
        else:
            logits = net(x)
        loss = task_loss(self.kind, logits, y)
        obj = loss if pen is None else loss + self.lam_of(self.step) * pen
        if cfg.reg != "none" and cfg.reg_strength > 0:
            drawn = {"part": part} if part is not None and self.reg.draws_per_row else {}  # jr: the global draw
            obj = obj + cfg.reg_strength * self.reg.penalty(model, x, logits, lambda lg: task_loss(self.kind, lg, y),
                                                            **drawn)
        return obj, loss, pen, logits

    def batch(self, idx: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """One optimizer step on the global batch ``idx``: ``(gradient norm, [loss·B, correct,
        penalty], task loss)``, all on the device (no host sync)."""
        sp = self.splits
        rows, share = self.shard(idx)
        part = None if share is None else (len(idx), rows)  # [B_global], this rank's positions
        if part is not None:
            idx = idx[rows]
        x, y = to_model(self.model, sp.X_train[idx]), sp.y_train[idx].to(self.device)  # [B, D], [B]
        obj, loss, pen, logits = self.objective(x, y, part)
        self.opt.zero_grad(set_to_none=True)
        (obj if share is None else obj * share).backward()
        norm = grad_norm(self.params)
        self.opt.step()
        self.sched.step()
        self.step += 1
        count = len(y) if share != 0.0 else 0
        loss_w = at_least_float32(loss.detach())  # bfloat16 would round the stacked count and loss·B
        # the penalty, a mean over this rank's rows, weighted by its share: the ranks' sum / world is
        # then the global batch's mean (a rank's empty part, run on one row, counts 0)
        pen_w = (loss_w.new_zeros(()) if pen is None
                 else at_least_float32(pen.detach()) * (1.0 if share is None else share))
        sums = torch.stack([loss_w * count, (predict(self.kind, logits.detach()) == y).sum() * (count > 0), pen_w])
        return norm, sums, loss

    def epoch(self, epoch: int) -> dict:
        """One pass over the training split in this epoch's seeded order: mean loss, accuracy, DREG."""
        cfg = self.cfg
        self.model.train()
        gen = torch.Generator().manual_seed(cfg.seed * 100_003 + epoch)
        order = torch.randperm(self.n, generator=gen)  # [N], same for every contender with this seed
        sums = torch.zeros(3, device=self.device)  # loss·B, correct, penalty
        norms = []
        start = time.perf_counter()
        if cfg.compile and epoch == 0:
            self.bar.set_postfix_str("compiling (torch.compile): the first steps take longer")
        for b in range(self.steps_per_epoch):
            norm, batch_sums, loss = self.batch(order[b * cfg.batch_size:(b + 1) * cfg.batch_size])
            norms.append(norm)
            sums += batch_sums
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
                "dreg": pen_sum / self.steps_per_epoch if cfg.uses_dreg else None}

    def shard(self, idx: Tensor) -> tuple[Tensor, float | None]:
        """The positions in the global batch ``idx`` of this rank's part, and its objective scale
        (None: single process, every position).

        A rank whose part is empty (a last batch smaller than the world) runs one example with
        scale 0, so every rank takes part in DDP's gradient all-reduce."""
        every = torch.arange(len(idx))  # [B]
        if self.world == 1:
            return every, None
        local = every[self.rank::self.world]
        if len(local) == 0:
            return every[:1], 0.0
        return local, len(local) * self.world / len(idx)

    def run(self) -> dict:
        """Every epoch (or until early stopping or divergence); the per-epoch history. The best
        epoch's weights are restored when ``cfg.patience > 0``."""
        cfg = self.cfg
        history: dict[str, list] = {"epoch": [], "train_loss": [], "train_accuracy": [], "val_accuracy": [], "dreg": []}
        best_val, best_state, waited = -1.0, None, 0
        for epoch in range(cfg.epochs):
            row = self.epoch(epoch)
            val_acc = accuracy(self.model, self.kind, self.splits.X_val, self.splits.y_val)
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


def at_least_float32(t: Tensor) -> Tensor:
    """``t`` in float32 if its dtype is narrower (bfloat16, float16), else ``t`` itself."""
    return t.float() if t.is_floating_point() and torch.finfo(t.dtype).bits < 32 else t
