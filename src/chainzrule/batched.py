"""Batched training: M runs that share every shape trained at once as one stacked model.

A Fair Fight trains many tiny models (a Pima network has ~1,700 parameters), so a step of one run
is Python and dispatch overhead, not arithmetic. Runs that differ only in their seed — and in
per-run scalar hyperparameters (learning rate, coefficient-lr scale, DREG λ and its schedule,
regularizer strength, patience, evaluation options: :data:`PER_MEMBER_FIELDS`) — have identical
shapes, so their parameters can be stacked along a new leading "member" dimension ``[M, ...]``
(``torch.func.stack_module_state``) and trained as one model:

- every member is built exactly as :func:`chainzrule.train.train` builds it (seeded by its own
  ``cfg.seed``), then the members are stacked;
- every member draws its own batch order (``torch.Generator().manual_seed(seed * 100_003 + epoch)``)
  from its own validation carve: inputs are ``[M, B, D]``;
- the objective is computed per member (its task loss, its own DREG term times its own λ(step),
  its own regularizer term times its own strength); the sum over members is backpropagated once,
  which gives every member exactly its own gradient (members never interact);
- the optimizer is Adam / AdamW / SGD (Nesterov) written over the stacked tensors with the
  *same arithmetic* as ``torch.optim``'s single-tensor implementation, with a per-member learning
  rate (a ``[M, 1, ...]`` step size) taken from each member's own scheduler (OneCycle / cosine /
  constant, replayed on the member's real ``torch.optim`` optimizer, momentum/β₁ cycling included);
- gradient-norm trace, training loss/accuracy sums, per-epoch validation accuracy, early stopping
  with best-epoch restore and the divergence stop are kept per member; a member that stops leaves
  the stack (the stack is compacted, so it costs nothing afterwards);
- at the end each member's weights go back into its own ordinary model, which is evaluated by
  :func:`chainzrule.train.evaluate` with the global RNG in the state it would have had in
  :func:`~chainzrule.train.train`, and its record is built by the same code as there.

Two engines compute the stacked forward:

- ``"grouped"`` (default where it applies): the forward of a :class:`~chainzrule.models.FeedForward`
  (``nn.Linear`` hidden layers with a polynomial or ReLU/GELU/SiLU/tanh activation, ``nn.Linear``
  head) written out with batched matmuls (``baddbmm``); a polynomial activation runs as
  :mod:`chainzrule.functional`'s per-feature kernel on the members folded into the feature
  axis (``[B, M·F]``, each feature with its own member's coefficients). ``torch.func.vmap``
  wraps every op of a tiny network in more Python than the op itself costs (measured: ~3x
  slower than this on Pima); this is the fast path.
  Input-gradient regularizers (igp, jr) work here: one ``autograd.grad`` of the sum over members
  is every member's own input gradient; jr draws each member's projections from its own
  seeded generator, in the order the unbatched run draws them.
- ``"vmap"``: ``torch.func.vmap`` of ``torch.func.functional_call`` of the model and objective
  (the fused polynomial kernel has a generated vmap rule): any model whose ops vmap; not igp/jr
  (``autograd.grad`` inside ``vmap`` is not supported).

So per run the result is the one :func:`~chainzrule.train.train` gives (float64: equal to 1e-9,
tested for both engines), except the timing fields: ``train_seconds`` is the member's share of
the batch's wall time (each epoch's time divided among the members still training), ``step_ms``
follows from it; ``peak_memory_mb`` is the process's, as always.

What can be batched (:func:`batchable`): chainzrule and mlp models with a linear
(classification) head; reg none, wd, igp or jr; any optimizer and schedule. Not batched (trained
one by one as before): KAN (B-spline layers: not in the grouped engine, not verified under
vmap), spectral norm (a parametrization whose power-iteration vectors are updated in place at
every forward), ordinal heads (their label checks are data-dependent) and the classical
baselines.

>>> from chainzrule.config import TrainConfig
>>> cfgs = [TrainConfig(dataset="synthetic", model="mlp", hidden=(8,), epochs=1, batch_size=256,
...                     seed=s, diag_examples=50) for s in (0, 1)]
>>> runs = train_batched(cfgs, test=False)
>>> [r.result["epochs_run"] for r in runs]
[1, 1]
"""

from __future__ import annotations

import copy
import json
import math
import time
import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, stack_module_state, vmap
from tqdm.auto import tqdm

from . import functional as CF
from .activations import GELU, ReLU, SiLU, Tanh
from .config import TrainConfig
from .data.splits import Splits
from .dreg import collect, lambda_schedule
from .errors import ConfigError
from .layers import HiddenLayer
from .models import FeedForward
from .poly import PolynomialActivation
from .regularizers import make_regularizer
from .train import (RunResult, build_model, evaluate, head_kind, load_data, load_splits, make_optimizer, predict,
                    seed_everything, task_loss, train_record)

#: models whose forward is written with plain, vmap-able torch ops
BATCHABLE_MODELS = ("chainzrule", "mlp")
#: regularizers whose penalty is a function of the weights (or of nothing)
BATCHABLE_REGS = ("none", "wd", "igp", "jr")
#: config fields that may differ between the members of one batch (everything else must be equal):
#: per-member scalars of the update, of the objective, of early stopping, and of evaluation
PER_MEMBER_FIELDS = ("seed", "lr", "coef_lr_scale", "dreg", "dreg_schedule", "dreg_final", "dreg_warmup",
                     "reg_strength", "patience", "diag_examples", "robustness", "adv_eps", "pgd_steps",
                     "corruption_examples")
ENGINES = ("auto", "grouped", "vmap")
#: activations without state: the same module applies to every member
_STATELESS = (ReLU, GELU, SiLU, Tanh)


# --------------------------------------------------------------------------------------------
# which runs can share a batch
# --------------------------------------------------------------------------------------------


def batchable(cfg: TrainConfig) -> str | None:
    """``None`` if ``cfg`` can be trained in a batch, else the reason why not (one phrase)."""
    if not cfg.is_neural:
        return f"model {cfg.model!r} is a classical baseline"
    if cfg.model not in BATCHABLE_MODELS:
        return f"model {cfg.model!r} is not batched (only {', '.join(BATCHABLE_MODELS)})"
    if cfg.reg not in BATCHABLE_REGS:
        return f"reg {cfg.reg!r} is not batched (only {', '.join(BATCHABLE_REGS)})"
    if cfg.head not in ("auto", "linear"):
        return f"head {cfg.head!r} is not batched (only the linear head)"
    return None


def batch_key(cfg: TrainConfig, test: bool = True) -> str:
    """Runs with equal keys may share a batch: the config without :data:`PER_MEMBER_FIELDS`, plus
    whether DREG and the regularizer are on at all (they change the forward and the graph)."""
    d = {k: v for k, v in cfg.to_dict().items() if k not in PER_MEMBER_FIELDS}
    d["dreg_on"] = cfg.dreg_lambda > 0
    d["reg_on"] = cfg.reg != "none" and cfg.reg_strength > 0
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


# --------------------------------------------------------------------------------------------
# training
# --------------------------------------------------------------------------------------------


def train_batched(cfgs: Sequence[TrainConfig], splits_per_cfg: Sequence[Splits] | None = None,
                  progress: bool = False, test: bool = True, engine: str = "auto") -> list[RunResult]:
    """Train every config of ``cfgs`` (one batch: all :func:`batchable`, all with the same
    :func:`batch_key`) and return one :class:`~chainzrule.train.RunResult` per config, in order,
    each what ``train(cfg, splits, test=test)`` returns (timing fields aside: see module doc).

    ``splits_per_cfg`` gives each run its data (the validation carve depends on the seed); by
    default they are loaded (the dataset once). Members whose splits differ in size (a carve that
    rounds differently) are trained in separate sub-batches. ``engine``: "grouped" (the stacked
    forward written out with batched matmuls; chainzrule/mlp models), "vmap"
    (``torch.func.vmap`` of ``functional_call``; not igp/jr) or "auto" (grouped where it applies).
    """
    cfgs = list(cfgs)
    if not cfgs:
        return []
    for c in cfgs:
        why = batchable(c)
        if why is not None:
            raise ConfigError(f"cannot batch this run: {why}; train it with chainzrule.train.train")
    keys = {batch_key(c) for c in cfgs}
    if len(keys) > 1:
        raise ConfigError("cannot batch runs whose configs differ in more than "
                          f"{', '.join(PER_MEMBER_FIELDS)} (and DREG/regularizer on or off): group them with "
                          "chainzrule.batched.eligible_groups")
    if splits_per_cfg is None:
        data = load_data(cfgs[0], progress)
        splits_per_cfg = [load_splits(c, data) for c in cfgs]
    splits_per_cfg = list(splits_per_cfg)
    if len(splits_per_cfg) != len(cfgs):
        raise ConfigError(f"expected one Splits per config ({len(cfgs)}), got {len(splits_per_cfg)}")
    parts: dict[tuple, list[int]] = {}
    for i, sp in enumerate(splits_per_cfg):
        if head_kind(cfgs[i], sp.task) != "linear":
            raise ConfigError(f"cannot batch a run with an ordinal head (task {sp.task!r}); train it with "
                              "chainzrule.train.train")
        shape = (tuple(sp.X_train.shape), tuple(sp.X_val.shape), sp.num_classes, sp.task)
        parts.setdefault(shape, []).append(i)
    out: list[RunResult | None] = [None] * len(cfgs)
    for idx in parts.values():
        runs = _Batch([cfgs[i] for i in idx], [splits_per_cfg[i] for i in idx], progress, engine).run(test)
        for i, r in zip(idx, runs):
            out[i] = r
    return out  # type: ignore[return-value]


class _Objective(nn.Module):
    """One member's objective, what ``train``'s loop computes for a batch: called through
    ``functional_call`` (the member's weights swapped in) under ``vmap``."""

    def __init__(self, net: nn.Module, reg, kind: str, dreg_on: bool, reg_on: bool) -> None:
        super().__init__()
        self.net, self.reg, self.kind, self.dreg_on, self.reg_on = net, reg, kind, dreg_on, reg_on

    def forward(self, x: Tensor, y: Tensor, lam: Tensor, strength: Tensor):
        """``(objective, task loss, DREG penalty (0 when off), logits)`` of one member's batch."""
        pen = None
        if self.dreg_on:
            with collect(self.net) as terms:
                logits = self.net(x)  # [B, out]
            pen = terms.penalty()
        else:
            logits = self.net(x)
        loss = task_loss(self.kind, logits, y)
        obj = loss if pen is None else loss + lam * pen
        if self.reg_on:
            obj = obj + strength * self.reg.penalty(self.net, x, logits, lambda lg: task_loss(self.kind, lg, y))
        return obj, loss, (pen if pen is not None else loss.new_zeros(())), logits


class _Grouped:
    """The same objective as :class:`_Objective`, for all members at once with grouped matmuls.

    For the models ``chainzrule`` builds (:class:`~chainzrule.models.FeedForward`: hidden layers of
    ``nn.Linear`` + a polynomial or standard activation, ``nn.Linear`` head) the stacked forward is
    written out: ``baddbmm`` per layer, the activation with each member's own coefficients, each
    member's own ``||S||_F²`` terms and loss. Same arithmetic as
    the model's own forward, without ``vmap``'s per-op wrapping (which costs more than the
    arithmetic of a Pima-sized network). :meth:`supports` says whether a model has that form;
    anything else goes through ``vmap``.
    """

    def __init__(self, net: nn.Module, kind: str, dreg_on: bool, reg_on: bool, regs: list) -> None:
        self.kind, self.dreg_on, self.reg_on = kind, dreg_on, reg_on
        self.regs = regs  # every member's own regularizer (jr: its own seeded generator)
        self.reg_name = regs[0].name
        self.needs_input_grad = regs[0].needs_input_grad
        self.layers = []
        for i, layer in enumerate(net.hidden_layers):
            act = layer.activation
            pre = f"hidden_layers.{i}"
            if isinstance(act, PolynomialActivation):
                self.layers.append((pre, act, act.basis_matrix.detach(), act.bound, act.range_control))
            else:
                self.layers.append((pre, act, None, None, None))
        self.weights = [n for n, p in net.named_parameters() if "weight" in n.rsplit(".", 1)[-1] and p.dim() >= 2]

    @staticmethod
    def supports(net: nn.Module) -> bool:
        layers = getattr(net, "hidden_layers", None)
        if not isinstance(net, FeedForward) or layers is None or type(net.head) is not nn.Linear:
            return False
        for layer in layers:
            if not isinstance(layer, HiddenLayer) or type(layer.linear) is not nn.Linear:
                return False
            if not (isinstance(layer.activation, PolynomialActivation) or type(layer.activation) in _STATELESS):
                return False
        return True

    @staticmethod
    def _linear(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        """``x W^T + b`` per member: ``[M, B, in]``, ``[M, out, in]``, ``[M, out]`` → ``[M, B, out]``."""
        if bias is None:
            return torch.bmm(x, weight.transpose(1, 2))
        return torch.baddbmm(bias.unsqueeze(1), x, weight.transpose(1, 2))

    def logits(self, P: dict[str, Tensor], x: Tensor, dreg: bool) -> tuple[Tensor, list[Tensor]]:
        """Logits ``[M, B, C]`` and (with ``dreg``) every hidden layer's ``||S||_F²`` ``[M, B]``."""
        terms = []
        for pre, act, basis, bound, rc in self.layers:
            w = P[f"{pre}.linear.weight"]  # [M, out, in]
            z = self._linear(x, w, P.get(f"{pre}.linear.bias"))  # [M, B, out]
            if basis is not None:
                # members folded into the feature axis, [B, M·F]: the polynomial acts per feature, so
                # chainzrule.functional's own kernels see one wide layer with per-feature coefficients
                m, b, f = z.shape
                a = torch.matmul(basis, P[f"{pre}.activation.coefficients"])  # [M, D+1, F] power coefficients
                af = a.transpose(0, 1).reshape(a.shape[1], m * f)  # [D+1, M·F]
                zf = z.transpose(0, 1).reshape(b, m * f)  # [B, M·F]
                if dreg:
                    hf, sf = CF.poly_activation_and_slope(zf, af, bound, rc)
                    slope = sf.view(b, m, f).transpose(0, 1)  # [M, B, F]
                else:
                    hf = CF.poly_activation(zf, af, bound, rc)
                x = hf.view(b, m, f).transpose(0, 1)  # [M, B, F]
            elif dreg:
                x, slope = act.value_and_derivative(z)
            else:
                x = act(z)
            if dreg:
                rn = (w * w).sum(dim=2)  # [M, out]: ||W_i,:||²
                terms.append(torch.matmul(slope * slope, rn.unsqueeze(-1)).squeeze(-1))  # [M, B]
        return self._linear(x, P["head.weight"], P.get("head.bias")), terms

    def __call__(self, P: dict[str, Tensor], x: Tensor, y: Tensor, lam: Tensor, strength: Tensor,
                 members: list[int]):
        """``(objective, task loss, DREG penalty, logits)``: ``[M]``, ``[M]``, ``[M]``, ``[M, B, C]``
        for the members ``members`` (their indices in the batch, one per slot of the stack)."""
        if self.needs_input_grad:
            x = x.requires_grad_(True)
        logits, terms = self.logits(P, x, self.dreg_on)
        m, b = y.shape
        loss = F.cross_entropy(logits.reshape(m * b, -1), y.reshape(-1), reduction="none").view(m, b).mean(dim=1)
        if self.dreg_on:
            pen = torch.stack([t.mean(dim=1) for t in terms], dim=1).sum(dim=1)  # [M]: Σ_l mean_x ||S_l||²
            obj = loss + lam * pen
        else:
            pen = loss.new_zeros(m)
            obj = loss
        if self.reg_on:
            obj = obj + strength * self._penalty(P, x, logits, loss, members)
        return obj, loss, pen, logits

    def _penalty(self, P: dict[str, Tensor], x: Tensor, logits: Tensor, loss: Tensor, members: list[int]) -> Tensor:
        """Every member's un-scaled regularizer term ``[M]`` (what ``reg.penalty`` gives one run).

        Members never interact, so one ``autograd.grad`` of the sum over members gives every
        member its own input gradient (igp, jr)."""
        m, b = logits.shape[:2]
        if self.reg_name == "wd":  # Σ ||W||_F² over weight matrices, in module order
            total = loss.new_zeros(m)
            for n in self.weights:
                total = total + (P[n] * P[n]).sum(dim=(1, 2))
            return total
        if self.reg_name == "igp":  # mean_x ||∇_x L(f(x), y)||², L the per-example loss
            (g,) = torch.autograd.grad((loss * b).sum(), x, create_graph=True)  # [M, B, D]
            return g.reshape(m, b, -1).pow(2).sum(dim=2).mean(dim=1)
        if self.reg_name == "jr":  # C / n_proj · mean_x Σ_v ||vᵀ J||², v from each member's own generator
            out = logits.reshape(m, b, -1)  # [M, B, C]
            c = out.shape[2]
            n_proj = self.regs[members[0]].n_proj
            total = loss.new_zeros(m)
            for _ in range(n_proj):
                # TODO(public): JacobianProjections.directions(n, c, like) in regularizers.py
                v = torch.stack([self.regs[i]._directions(b, c, out) for i in members])  # [M, B, C]
                (vj,) = torch.autograd.grad(out, x, grad_outputs=v, create_graph=True)  # [M, B, D]
                total = total + vj.reshape(m, b, -1).pow(2).sum(dim=(1, 2))
            return total * (c / (n_proj * b))
        raise ConfigError(f"reg {self.reg_name!r} is not batched")  # pragma: no cover (batchable refuses it)


class _MemberRecord:
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


def _replay_schedule(cfg: TrainConfig, model: nn.Module, total: int):
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


class _Batch:
    """M same-shaped runs as one stacked model (see the module doc)."""

    def __init__(self, cfgs: list[TrainConfig], splits: list[Splits], progress: bool, engine: str = "auto") -> None:
        self.cfgs, self.splits = cfgs, splits
        c0, sp0 = cfgs[0], splits[0]
        self.M = len(cfgs)
        self.device = torch.device(c0.device)
        self.dtype = getattr(torch, c0.dtype)
        self.kind = head_kind(c0, sp0.task)
        self.n = len(sp0.X_train)
        self.bs = c0.batch_size
        self.steps_per_epoch = max(1, math.ceil(self.n / self.bs))
        self.total = self.steps_per_epoch * c0.epochs
        self.dreg_on = c0.dreg_lambda > 0
        self.reg_on = c0.reg != "none" and c0.reg_strength > 0

        # members, built exactly as train() builds them; the global RNG state right after the build
        # is what train() evaluates with (its loop draws nothing from the global RNG)
        self.models, self.rng_states, regs = [], [], []
        for cfg, sp in zip(cfgs, splits):
            seed_everything(cfg.seed)
            model = build_model(cfg, sp.in_features, sp.num_classes, sp.task)
            jr = {"n_proj": cfg.jr_projections, "seed": cfg.seed} if cfg.reg == "jr" else {}
            reg = make_regularizer(cfg.reg, **jr)  # as train() makes it (jr: its own seeded generator)
            model = reg.prepare(model).to(device=self.device, dtype=self.dtype)
            self.models.append(model)
            regs.append(reg)
            self.rng_states.append(_rng_state(self.device))
        self.records = [_MemberRecord(self.steps_per_epoch, sp.num_classes) for sp in splits]

        # per-step hyperparameters of every member, from its own optimizer + scheduler
        names = [name for name, p in self.models[0].named_parameters()]
        if not all(p.requires_grad for p in self.models[0].parameters()):  # pragma: no cover
            raise ConfigError("cannot batch a model with frozen parameters")
        self.opt_kind = c0.optimizer
        lr_tables, shared, replayed = [], None, {}
        for cfg, model in zip(cfgs, self.models):
            key = (cfg.lr, cfg.coef_lr_scale)  # everything else of the schedule is shared by the batch
            if key not in replayed:
                replayed[key] = _replay_schedule(cfg, model, self.total)
            lrs, others, opt, group_of = replayed[key]
            self.group_of = [group_of[n] for n in names]
            d = opt.defaults
            if type(opt) not in (torch.optim.Adam, torch.optim.AdamW, torch.optim.SGD) or any(
                    g.get(k) for g in opt.param_groups for k in ("weight_decay", "amsgrad", "maximize")):
                raise ConfigError(f"cannot batch optimizer {type(opt).__name__} with weight_decay/amsgrad/maximize: "
                                  "the batched update implements make_optimizer's Adam, AdamW and SGD only")
            self.eps = d.get("eps")
            self.nesterov, self.dampening = d.get("nesterov"), d.get("dampening")
            if shared is None:
                shared = others
            elif others != shared:  # the schedules differ only in lr (same kind, same length)
                raise ConfigError("members' schedules move β₁/momentum differently: cannot batch them")
            lr_tables.append(lrs)
        self.sched_others = shared
        lr = torch.tensor(lr_tables, dtype=torch.float64)  # [M, T, G]
        self.lr_table = lr.permute(1, 2, 0).contiguous()  # [T, G, M]
        self.lr_python = lr_tables  # exact Python floats, [M][T][G]
        self.uniform_lr = bool((self.lr_table == self.lr_table[:, :, :1]).all())

        # λ(step) and the regularizer strength of every member
        lam = []
        for cfg in cfgs:
            of = lambda_schedule(cfg.dreg_schedule, cfg.dreg_lambda, self.total, int(cfg.dreg_warmup * self.total),
                                 cfg.dreg_final)
            lam.append([of(t) for t in range(self.total)])
        self.lam_table = torch.tensor(lam, dtype=self.dtype, device=self.device).T.contiguous()  # [T, M]
        self.strength = torch.tensor([c.reg_strength for c in cfgs], dtype=self.dtype, device=self.device)  # [M]

        # the stacked model and the vmapped objective
        base = copy.deepcopy(self.models[0])
        self.objective = _Objective(base, regs[0], self.kind, self.dreg_on, self.reg_on)
        params, buffers = stack_module_state(self.models)
        self.names = names
        self.params = {n: params[n] for n in names}  # [M, ...] leaves
        self.buffers = buffers

        if engine not in ENGINES:
            raise ConfigError(f"unknown batching engine {engine!r}: expected one of {', '.join(ENGINES)}")
        if engine != "vmap" and _Grouped.supports(base):
            grouped = _Grouped(base, self.kind, self.dreg_on, self.reg_on, regs)
            self.engine = "grouped"
            self._step = lambda params, buffers, x, y, lam, strength: grouped(params, x, y, lam, strength, self.active)
            self._logits = lambda params, buffers, x: grouped.logits(params, x, False)[0]
        elif engine == "grouped":
            raise ConfigError(f"the grouped engine needs a chainzrule FeedForward model, got {type(base).__name__}")
        elif regs[0].needs_input_grad:
            raise ConfigError(f"cannot batch reg {c0.reg!r} with the vmap engine (autograd.grad inside vmap): "
                              "use the grouped engine")
        else:
            self.engine = "vmap"
            objective = self.objective

            def member(params, buffers, x, y, lam, strength):  # one member: its weights swapped in
                state = {**{f"net.{k}": v for k, v in params.items()}, **{f"net.{k}": v for k, v in buffers.items()}}
                return functional_call(objective, state, (x, y, lam, strength))

            def logits(params, buffers, x):
                return functional_call(objective.net, {**params, **buffers}, (x,))

            self._step = vmap(member)
            self._logits = vmap(logits)

        # optimizer state, stacked like the parameters
        self.state: dict[str, dict[str, Tensor]] = {n: {} for n in names}
        self.opt_steps = 0

        # data, stacked: [M, N, D] in the model's dtype, labels [M, N]
        self.X = torch.stack([sp.X_train for sp in splits]).to(device=self.device, dtype=self.dtype)
        self.Y = torch.stack([sp.y_train for sp in splits]).to(self.device)
        self.Xv = torch.stack([sp.X_val for sp in splits]).to(device=self.device, dtype=self.dtype)
        self.Yv = torch.stack([sp.y_val for sp in splits])

        self.active = list(range(self.M))  # member index of every slot of the stack
        self.bar = tqdm(total=self.total, desc=f"{c0.model} {c0.dataset} x{self.M}", unit="step",
                        disable=not progress, leave=False, dynamic_ncols=True)

    # --- the optimizer, over the stacked tensors --------------------------------------------

    @torch.no_grad()
    def _update(self, t: int) -> None:
        """One optimizer step at global step ``t`` with torch.optim's single-tensor arithmetic.

        Every member shares the step count and the scheduler's β₁ / momentum (same schedule kind
        and length); only the learning rate may differ. Equal learning rates take the Python-float
        path of ``torch.optim`` verbatim; per-member ones a ``[M', 1, ...]`` tensor with the same
        operations in the same order (``addcdiv``'s ``self + value * t1 / t2``)."""
        self.opt_steps += 1
        others = self.sched_others[t]
        adam = self.opt_kind in ("adam", "adamw")
        if adam:
            beta1, beta2 = others["betas"]
            step = float(self.opt_steps)
            bias_correction1 = 1 - beta1 ** step
            bias_correction2 = 1 - beta2 ** step
            bias_correction2_sqrt = bias_correction2 ** 0.5
        else:
            momentum = others["momentum"]
        per_member = None
        if not self.uniform_lr:  # [G, M'] learning rates (float64, as Python floats are) → step sizes
            lr_t = self.lr_table[t][:, self.active]
            per_member = -(lr_t / bias_correction1) if adam else -lr_t
            per_member = per_member.to(device=self.device, dtype=self.dtype)
        for i, name in enumerate(self.names):
            p, g, st = self.params[name], self.params[name].grad, self.state[name]
            if g is None:
                continue
            grp = self.group_of[i]
            lr = self.lr_python[self.active[0]][t][grp]
            neg = None if per_member is None else per_member[grp].view(-1, *([1] * (p.dim() - 1)))  # [M', 1, ...]
            if adam:
                if not st:
                    st["exp_avg"] = torch.zeros_like(p)
                    st["exp_avg_sq"] = torch.zeros_like(p)
                exp_avg, exp_avg_sq = st["exp_avg"], st["exp_avg_sq"]
                exp_avg.lerp_(g, 1 - beta1)
                exp_avg_sq.mul_(beta2).addcmul_(g, g, value=1 - beta2)
                denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(self.eps)
                if neg is None:
                    p.addcdiv_(exp_avg, denom, value=-(lr / bias_correction1))
                else:
                    p.add_(exp_avg.mul(neg).div_(denom))
            else:  # SGD, Nesterov momentum, no dampening, no weight decay (make_optimizer's)
                buf = st.get("momentum_buffer")
                if buf is None:
                    buf = st["momentum_buffer"] = torch.clone(g).detach()
                else:
                    buf.mul_(momentum).add_(g, alpha=1 - self.dampening)
                d = g.add(buf, alpha=momentum) if self.nesterov else buf
                if neg is None:
                    p.add_(d, alpha=-lr)
                else:
                    p.add_(d * neg)

    # --- the loop ---------------------------------------------------------------------------

    def _grad_norms(self) -> Tensor:
        """Every member's global gradient norm (what ``get_total_norm`` gives per run), ``[M']``."""
        per = [torch.linalg.vector_norm(p.grad.reshape(p.shape[0], -1), dim=1)
               for p in self.params.values() if p.grad is not None]
        if not per:
            return torch.zeros(len(self.active))
        return torch.linalg.vector_norm(torch.stack(per, dim=1), dim=1)  # [M']

    def _epoch(self, epoch: int) -> tuple[list[dict], float]:
        m_act = len(self.active)
        self.objective.train()
        orders = torch.stack([torch.randperm(self.n, generator=torch.Generator().manual_seed(
            self.cfgs[m].seed * 100_003 + epoch)) for m in self.active]).to(self.device)  # [M', N]
        rows = torch.arange(m_act, device=self.device).unsqueeze(1)  # [M', 1]
        sums = torch.zeros(m_act, 3, device=self.device)  # loss·B, correct, penalty (float32, as train)
        norms = []
        start = time.perf_counter()
        for b in range(self.steps_per_epoch):
            t = epoch * self.steps_per_epoch + b
            idx = orders[:, b * self.bs:(b + 1) * self.bs]  # [M', B]
            x, y = self.X[rows, idx], self.Y[rows, idx]  # [M', B, D], [M', B]
            obj, loss, pen, logits = self._step(self.params, self.buffers_active, x, y, self.lam_table[t, self.slots],
                                                self.strength[self.slots])
            for p in self.params.values():
                p.grad = None
            obj.sum().backward()  # members are independent: each gets exactly its own gradient
            norms.append(self._grad_norms())
            self._update(t)
            sums += torch.stack([loss.detach() * y.shape[1], (predict(self.kind, logits.detach()) == y).sum(1),
                                 pen.detach()], dim=1)
            self.bar.update(1)
        seconds = time.perf_counter() - start
        grad_norms = torch.stack(norms, dim=1).double().cpu().tolist()  # [M'][steps]
        out = []
        for slot, (loss_sum, correct, pen_sum) in enumerate(sums.tolist()):
            out.append({"train_loss": loss_sum / self.n, "train_accuracy": correct / self.n,
                        "dreg": pen_sum / self.steps_per_epoch if self.dreg_on else None,
                        "grad_norms": grad_norms[slot]})
        return out, seconds

    @torch.no_grad()
    def _val_accuracy(self) -> list[float]:
        """Every active member's validation accuracy, computed as :func:`chainzrule.train.accuracy`."""
        was = self.objective.training
        self.objective.eval()
        try:
            xv = self.Xv[self.slots] if len(self.active) < self.M else self.Xv
            yv = self.Yv[self.slots_cpu] if len(self.active) < self.M else self.Yv
            chunks = [self._logits(self.params, self.buffers_active, xv[:, i:i + 2048]).float().cpu()
                      for i in range(0, xv.shape[1], 2048)]
            logits = torch.cat(chunks, dim=1)  # [M', Nv, C]
            return (predict(self.kind, logits) == yv).float().mean(dim=1).tolist()
        finally:
            self.objective.train(was)

    def _member_state(self, slot: int) -> dict[str, Tensor]:
        return {n: p[slot].detach().clone() for n, p in self.params.items()}

    def _compact(self, keep: list[int]) -> None:
        """Drop the stopped members from the stack (parameters, optimizer state, data)."""
        sel = torch.tensor(keep, device=self.device)
        self.params = {n: p.detach()[sel].clone().requires_grad_(True) for n, p in self.params.items()}
        self.state = {n: {k: v[sel].clone() for k, v in st.items()} for n, st in self.state.items()}
        self.active = [self.active[s] for s in keep]
        self._sync_slots()

    def _sync_slots(self) -> None:
        self.slots = torch.tensor(self.active, device=self.device)
        self.slots_cpu = torch.tensor(self.active)
        self.buffers_active = {k: v[self.slots] for k, v in self.buffers.items()}
        if len(self.active) < self.M:
            self.X, self.Y = self.X_all[self.slots], self.Y_all[self.slots]
        if len(self.active) != len(self.slots):  # pragma: no cover
            raise AssertionError

    def run(self, test: bool) -> list[RunResult]:
        self.X_all, self.Y_all = self.X, self.Y
        self._sync_slots()
        for epoch in range(self.cfgs[0].epochs):
            rows, seconds = self._epoch(epoch)
            vals = self._val_accuracy()
            share = seconds / len(self.active)
            keep = []
            for slot, (m, row, val_acc) in enumerate(zip(self.active, rows, vals)):
                rec, cfg = self.records[m], self.cfgs[m]
                rec.train_seconds += share
                rec.step += self.steps_per_epoch
                rec.grad_norms += row.pop("grad_norms")
                for k, v in (("epoch", epoch + 1), ("val_accuracy", val_acc), *row.items()):
                    rec.history[k].append(v)
                stop = False
                if not math.isfinite(row["train_loss"]):
                    stop = True  # diverged
                elif val_acc > rec.best_val:
                    rec.best_val, rec.best_epoch, rec.waited = val_acc, epoch + 1, 0
                    if cfg.patience > 0:
                        rec.best_state = self._member_state(slot)
                else:
                    rec.waited += 1
                    if cfg.patience > 0 and rec.waited >= cfg.patience:
                        rec.stopped_early = stop = True
                if stop:
                    rec.final_state = rec.best_state if rec.best_state is not None else self._member_state(slot)
                else:
                    keep.append(slot)
            if not keep:
                self.active = []
                break
            if len(keep) < len(self.active):
                self._compact(keep)
        for slot, m in enumerate(self.active):
            rec = self.records[m]
            rec.final_state = rec.best_state if rec.best_state is not None else self._member_state(slot)
        self.bar.close()
        return [self._result(m, test) for m in range(self.M)]

    def _result(self, m: int, test: bool) -> RunResult:
        """Member ``m`` as an ordinary trained model, evaluated and recorded as ``train`` does."""
        cfg, model, rec, sp = self.cfgs[m], self.models[m], self.records[m], self.splits[m]
        with torch.no_grad():
            for name, p in model.named_parameters():
                if name in rec.final_state:
                    p.copy_(rec.final_state[name])
        _set_rng_state(self.rng_states[m], self.device)
        result = evaluate(model, cfg, sp) if test else {}
        result.update(train_record(cfg, model, rec, rec.history))
        return RunResult(model, result, rec.grad_norms)


def _rng_state(device: torch.device) -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    if "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


# --------------------------------------------------------------------------------------------
# the runner's side: execute a group, store every run as runner.execute does
# --------------------------------------------------------------------------------------------


def execute_group(tasks: Sequence, runs_dir: Path) -> list[dict]:
    """Run the ``tasks`` of one :func:`eligible_groups` group and store each as ``runs/<key>.json``
    exactly as ``runner.execute`` does (same record, same atomic write); runs whose file exists
    are read, not repeated. Returns the records in the order of ``tasks``. A group of one, or of
    runs that cannot be batched, is executed run by run by ``runner.execute``."""
    from .fight import executor  # the runner imports this module: import it when called

    runs_dir = Path(runs_dir)
    records: dict[str, dict] = {}
    todo = []
    for t in tasks:
        path = runs_dir / f"{t.key}.json"
        if path.exists():
            records[t.key] = executor.load_record(path)
        elif t.key not in {u.key for u in todo}:
            todo.append(t)
    splits = []
    if len(todo) > 1 and all(batchable(t.config) is None for t in todo) and \
            len({batch_key(t.config, t.test) for t in todo}) == 1:
        splits = [executor.splits_for(t.config) for t in todo]
        if any(head_kind(t.config, sp.task) != "linear" for t, sp in zip(todo, splits)):
            splits = []  # an ordinal task: its heads are not batched
    if not splits:
        for t in todo:
            records[t.key] = executor.execute(t, runs_dir)
    else:
        runs = train_batched([t.config for t in todo], splits, progress=False, test=todo[0].test)
        for t, run in zip(todo, runs):
            record = executor.make_record(t, run)
            executor.atomic_json(runs_dir / f"{t.key}.json", record)
            records[t.key] = record
    return [records[t.key] for t in tasks]
