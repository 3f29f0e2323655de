"""M same-shaped runs trained as one stacked model: :class:`StackedRuns`.

What each member keeps of its own (:class:`MemberRecord`, the schedule replay that gives it its
own per-step hyperparameters, its RNG state) is in :mod:`chainzrule.batched.members`;
:class:`MemberRecord` and :func:`replay_schedule` are re-exported here."""

from __future__ import annotations

import copy
import math
import time

import torch
from torch import Tensor
from torch.func import functional_call, stack_module_state, vmap
from tqdm.auto import tqdm

from ..config import TrainConfig
from ..data.splits import Splits
from ..dreg import lambda_schedule
from ..errors import ConfigError
from ..train.loop import at_least_float32
from ..train import (RunResult, build_model, decoupled_decay, evaluate, head_kind, make_run_regularizer, predict,
                     robust_subset, seed_everything, train_record)
from .attack import members_apgd_table
from .engines import GroupedEngine, GroupedKAN, MemberObjective
from .grouping import ENGINES
from .members import MemberRecord, replay_schedule, rng_state, set_rng_state

__all__ = ["StackedRuns", "MemberRecord", "replay_schedule"]


class StackedRuns:
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
        self.dreg_on = c0.uses_dreg
        self.reg_on = c0.reg != "none" and c0.reg_strength > 0 and not decoupled_decay(c0)  # AdamW decays in _update
        regs = self._build_members()
        self._replay_hyperparameters()
        self._objective_tables()
        self._choose_engine(engine, regs)
        # optimizer state, stacked like the parameters
        self.state: dict[str, dict[str, Tensor]] = {n: {} for n in self.names}
        self.opt_steps = 0
        self._stack_data()
        self.active = list(range(self.M))  # member index of every slot of the stack
        self.bar = tqdm(total=self.total, desc=f"{c0.model} {c0.dataset} x{self.M}", unit="step",
                        disable=not progress, leave=False, dynamic_ncols=True)

    # --- construction, in this order ---------------------------------------------------------

    def _build_members(self) -> list:
        """Every member built exactly as train() builds it; the global RNG state right after the
        build is what train() evaluates with (its loop draws nothing from the global RNG). Returns
        the members' regularizers."""
        cfgs, splits = self.cfgs, self.splits
        self.models, self.rng_states, regs = [], [], []
        for cfg, sp in zip(cfgs, splits):
            seed_everything(cfg.seed)
            model = build_model(cfg, sp.in_features, sp.num_classes, sp.task)
            reg = make_run_regularizer(cfg)  # as train() makes it (jr: its own seeded generator)
            model = reg.prepare(model).to(device=self.device, dtype=self.dtype)
            self.models.append(model)
            regs.append(reg)
            self.rng_states.append(rng_state(self.device))
        self.records = [MemberRecord(self.steps_per_epoch, sp.num_classes) for sp in splits]
        self.names = [name for name, p in self.models[0].named_parameters()]
        if not all(p.requires_grad for p in self.models[0].parameters()):  # pragma: no cover
            raise ConfigError("cannot batch a model with frozen parameters")
        return regs

    def _replay_hyperparameters(self) -> None:
        """Per-step hyperparameters of every member, from its own optimizer + scheduler: the lr
        tables ``[T, G, M]``, the shared β₁/momentum schedule and the optimizer constants."""
        cfgs, names = self.cfgs, self.names
        self.opt_kind = cfgs[0].optimizer
        lr_tables, shared, replayed = [], None, {}
        decay = []  # [M][G] decoupled weight decay of every member's groups (AdamW, reg "wd")
        for cfg, model in zip(cfgs, self.models):
            key = (cfg.lr, cfg.coef_lr_scale, cfg.reg_strength)  # everything else of the schedule is shared
            if key not in replayed:
                replayed[key] = replay_schedule(cfg, model, self.total)
            lrs, others, opt, group_of = replayed[key]
            self.group_of = [group_of[n] for n in names]
            d = opt.defaults
            decoupled = type(opt) is torch.optim.AdamW
            if type(opt) not in (torch.optim.Adam, torch.optim.AdamW, torch.optim.SGD) or any(
                    g.get(k) for g in opt.param_groups for k in ("amsgrad", "maximize")) or (
                    not decoupled and any(g.get("weight_decay") for g in opt.param_groups)):
                raise ConfigError(f"cannot batch optimizer {type(opt).__name__} with coupled weight_decay/amsgrad/"
                                  "maximize: the batched update implements make_optimizer's Adam, AdamW and SGD only")
            decay.append([float(g.get("weight_decay", 0.0)) if decoupled else 0.0 for g in opt.param_groups])
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
        self.decay = decay if any(any(row) for row in decay) else None

    def _objective_tables(self) -> None:
        """λ(step) ``[T, M]`` and the regularizer strength ``[M]`` of every member."""
        cfgs = self.cfgs
        lam = []
        for cfg in cfgs:
            of = lambda_schedule(cfg.dreg_schedule, cfg.dreg_lambda, self.total, int(cfg.dreg_warmup * self.total),
                                 cfg.dreg_final)
            lam.append([of(t) for t in range(self.total)])
        self.lam_table = torch.tensor(lam, dtype=self.dtype, device=self.device).T.contiguous()  # [T, M]
        self.strength = torch.tensor([c.reg_strength for c in cfgs], dtype=self.dtype, device=self.device)  # [M]

    def _choose_engine(self, engine: str, regs: list) -> None:
        """The stacked parameters and the step/logits functions of ``engine`` ("auto": grouped
        where it applies, else vmap)."""
        names, c0 = self.names, self.cfgs[0]
        base = copy.deepcopy(self.models[0])
        self.objective = MemberObjective(base, regs[0], self.kind, self.dreg_on, self.reg_on)
        params, buffers = stack_module_state(self.models)
        self.params = {n: params[n] for n in names}  # [M, ...] leaves
        self.buffers = buffers

        if engine not in ENGINES:
            raise ConfigError(f"unknown batching engine {engine!r}: expected one of {', '.join(ENGINES)}")
        taus = [c.logit_scale for c in self.cfgs]
        scaled = any(t != 1.0 for t in taus)
        gains = [c.sn_gain for c in self.cfgs]  # spectral norm's hidden-layer gains (1 unless reg "sn")
        if engine != "vmap" and GroupedEngine.supports(base, logit_scale=scaled):
            per_member = lambda v, on: torch.tensor(v, dtype=torch.float64).to(device=self.device, dtype=self.dtype) if on else None
            tau, gain = per_member(taus, scaled), per_member(gains, any(g != 1.0 for g in gains))  # [M] or None
            pick = lambda t, idx: None if t is None else t[idx]  # the members' τ or gain, [M']
            grouped = GroupedEngine(base, self.kind, self.dreg_on, self.reg_on, regs)
            self.engine = "grouped"
            self._step = lambda params, buffers, x, y, lam, strength: grouped(
                params, x, y, lam, strength, self.active, buffers, pick(tau, self.slots), pick(gain, self.slots))
            self._logits = lambda params, buffers, x: grouped.logits(
                params, x, False, buffers, taus=pick(tau, self.slots), gains=pick(gain, self.slots))[0]
            self._members_logits = lambda params, buffers, x, members: grouped.logits(
                params, x, False, buffers, taus=pick(tau, members), gains=pick(gain, members))[0]  # the members' [M', N, C]
        elif engine != "vmap" and not scaled and GroupedKAN.supports(base, self.dreg_on, self.reg_on):
            kan = GroupedKAN(base)
            self.engine = "grouped"
            self._step = lambda params, buffers, x, y, lam, strength: kan(params, x, y)
            self._logits = lambda params, buffers, x: kan.logits(params, x)
            self._members_logits = lambda params, buffers, x, members: kan.logits(params, x)  # [M', N, C]
        elif engine == "grouped":
            raise ConfigError("the grouped engine needs a chainzrule FeedForward model or a plain KAN (no DREG, "
                              f"loss-side regularizer or logit temperature), got {type(base).__name__}")
        elif scaled or any(".parametrizations." in k for k in self.buffers):
            raise ConfigError("cannot batch a logit temperature or spectral norm with the vmap engine: "
                              "use the grouped engine")
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
            # the members' logits [M', N, C] from their stacked weights; ``members`` selects per-member constants
            # kept outside the weights (the grouped engine's logit temperatures), of which this engine has none
            self._members_logits = lambda params, buffers, x, members: self._logits(params, buffers, x)

    def _stack_data(self) -> None:
        """The members' data, stacked: ``[M, N, D]`` in the model's dtype, labels ``[M, N]``."""
        splits = self.splits
        self.X = torch.stack([sp.X_train for sp in splits]).to(device=self.device, dtype=self.dtype)
        self.Y = torch.stack([sp.y_train for sp in splits]).to(self.device)
        self.Xv = torch.stack([sp.X_val for sp in splits]).to(device=self.device, dtype=self.dtype)
        self.Yv = torch.stack([sp.y_val for sp in splits])

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
                if self.decay is not None:
                    self._decay(p, t, grp)
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

    def _decay(self, p: Tensor, t: int, grp: int) -> None:
        """AdamW's decoupled decay of group ``grp`` at step ``t``: ``p *= 1 − lr·wd`` per member
        (torch.optim's single-tensor order: before the moments; skipped where wd = 0)."""
        if all(self.decay[m][grp] == 0 for m in self.active):
            return
        factors = [1 - self.lr_python[m][t][grp] * self.decay[m][grp] for m in self.active]  # [M'] Python floats
        if len(set(factors)) == 1:
            p.mul_(factors[0])
        else:
            f = torch.tensor(factors, dtype=torch.float64).to(device=p.device, dtype=p.dtype)  # [M']
            p.mul_(f.view(-1, *([1] * (p.dim() - 1))))

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
            loss_w = at_least_float32(loss.detach())  # bfloat16 would round the stacked count and loss·B
            sums += torch.stack([loss_w * y.shape[1], (predict(self.kind, logits.detach()) == y).sum(1),
                                 at_least_float32(pen.detach())], dim=1)
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
        """The parameters and buffers (spectral norm's u, v) of the member in ``slot``."""
        return {**{n: p[slot].detach().clone() for n, p in self.params.items()},
                **{n: b[slot].clone() for n, b in self.buffers_active.items()}}

    def _compact(self, keep: list[int]) -> None:
        """Drop the stopped members from the stack (parameters, optimizer state, data)."""
        for k, b in self.buffers_active.items():  # buffers the forward updated in place (spectral norm)
            self.buffers[k][self.slots] = b
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
        apgd = self._members_apgd() if test else {}
        return [self._result(m, test, apgd.get(m)) for m in range(self.M)]

    def _members_apgd(self) -> dict[int, dict]:
        """Member → {ε: APGD accuracy (or the NoInputGradient)} for the members with robustness,
        all attacked at once through the stacked forward of their final weights
        (:func:`~chainzrule.batched.attack.members_apgd_table`: every member and ε in one APGD run, each
        member's result the one it gets alone); empty when fewer than two members are attacked."""
        todo = [m for m, c in enumerate(self.cfgs) if c.robustness and c.adv_eps]
        if len(todo) < 2 or self.kind != "linear":
            return {}
        final = [self.records[m].final_state for m in range(self.M)]
        P = {n: torch.stack([f[n] for f in final]) for n in self.params}  # [M, ...] final weights
        B = {n: torch.stack([f[n] for f in final]) for n in self.buffers}
        subsets = {m: robust_subset(self.models[m], self.cfgs[m], self.splits[m]) for m in todo}
        rng = self.splits[todo[0]].meta.get("input_range")
        sel = torch.tensor(todo, device=self.device)
        Pm, Bm = {n: p[sel] for n, p in P.items()}, {n: b[sel] for n, b in B.items()}
        was = self.objective.training
        self.objective.eval()
        try:
            table = members_apgd_table(lambda X: self._members_logits(Pm, Bm, X, sel),
                                       [subsets[m][0] for m in todo], [subsets[m][1] for m in todo],
                                       [self.cfgs[m].adv_eps for m in todo], steps=self.cfgs[todo[0]].apgd_steps,
                                       input_range=rng, seeds=[self.cfgs[m].seed for m in todo])
            out = dict(zip(todo, table))
        finally:
            self.objective.train(was)
        return out

    def _result(self, m: int, test: bool, apgd: dict | None = None) -> RunResult:
        """Member ``m`` as an ordinary trained model, evaluated and recorded as ``train`` does
        (``apgd``: its APGD results from :meth:`_members_apgd`)."""
        cfg, model, rec, sp = self.cfgs[m], self.models[m], self.records[m], self.splits[m]
        with torch.no_grad():
            for name, t in (*model.named_parameters(), *model.named_buffers()):
                if name in rec.final_state:
                    t.copy_(rec.final_state[name])
        set_rng_state(self.rng_states[m], self.device)
        result = evaluate(model, cfg, sp, apgd) if test else {}
        result.update(train_record(cfg, model, rec, rec.history))
        return RunResult(model, result, rec.grad_norms)
