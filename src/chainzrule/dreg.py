"""DREG — Differential Regularization: ``L = L_task + λ Σ_l E_x ||S^(l)(x)||_F²``.

The per-example ``||S^(l)||_F²`` of every hidden layer is computed analytically in the forward
pass (:mod:`chainzrule.layers`) — only when asked for, and handed back by the call that asked.
Two ways to ask:

**Explicit return** (chainzrule models; works with DataParallel, DDP, torch.export, torch.compile)::

    logits, jsq = model(x, return_jacobian=True)        # jsq: [batch, layers]
    loss = task_loss(logits, y) + lam * dreg_penalty(jsq)

**Collector** (any model that contains chainzrule layers, e.g. inside your own module)::

    with chainzrule.dreg.collect(model) as terms:
        logits = model(x)
    loss = task_loss(logits, y) + lam * terms.penalty()

The collector lives as long as the ``with`` block and belongs to the caller: no tensor is left on
any module. Every forward of the model inside the block is recorded (two forwards — clean and
adversarial, say — give one mean over both). Layers compute nothing for a collector when grad
mode is off, unless it was opened with ``always=True`` (diagnostics). A collector sees only the
layers of the model it was opened on, in this thread (DataParallel replicas run in other threads:
use the explicit return there).

Only hidden layers count; the linear output head is not penalized (guide §2).
λ can follow a schedule (:func:`lambda_schedule`).

>>> import torch
>>> from chainzrule.models import ChainzRuleMLP
>>> net = ChainzRuleMLP(6, [8, 8], 3)
>>> with collect(net) as terms:
...     _ = net(torch.randn(4, 6))
>>> sorted(terms.per_layer())
['hidden_layers.0', 'hidden_layers.1']
>>> bool(terms.penalty() > 0)
True
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Iterator

import torch
from torch import Tensor, nn

from .errors import ConfigError

SCHEDULES = ("constant", "warmup", "linear", "cosine")

_ACTIVE: ContextVar[tuple["DregTerms", ...]] = ContextVar("chainzrule_dreg_collectors", default=())


def is_dreg_layer(module: nn.Module) -> bool:
    """Whether ``module`` can report a per-example layer-Jacobian term (``forward_with_jacobian``)."""
    return callable(getattr(module, "forward_with_jacobian", None))


class DregTerms:
    """What :func:`collect` yields: the per-example ``||S||_F²`` each DREG layer recorded."""

    def __init__(self, model: nn.Module, always: bool = False) -> None:
        self._names = {id(m): name for name, m in model.named_modules() if is_dreg_layer(m)}
        if not self._names:
            raise ConfigError(f"model {type(model).__name__} has no chainzrule hidden layer: build it from "
                              "chainzrule.MLP / ChainzRuleMLP / HiddenLayer")
        self.always = bool(always)
        self.records: list[tuple[str, Tensor]] = []

    def wants(self, layer: nn.Module) -> bool:
        return id(layer) in self._names and (self.always or torch.is_grad_enabled())

    def record(self, layer: nn.Module, jsq: Tensor) -> None:
        self.records.append((self._names[id(layer)], jsq))

    def per_example(self) -> dict[str, Tensor]:
        """``{layer name: per-example terms of every recorded forward, flattened}`` (``[N]`` each)."""
        out: dict[str, list[Tensor]] = {}
        for name, jsq in self.records:
            out.setdefault(name, []).append(jsq.reshape(-1))
        return {name: torch.cat(parts) for name, parts in out.items()}

    def per_layer(self) -> dict[str, Tensor]:
        """``{layer name: mean over the recorded examples of ||S||_F²}`` (0-d tensors)."""
        if not self.records:
            raise ConfigError("no layer Jacobian was recorded: expected a forward of the model inside the "
                              "collect() block with grad enabled (or collect(model, always=True)), got none; "
                              "compiled/exported models and DataParallel replicas do not report to a "
                              "collector: use model(x, return_jacobian=True) there")
        return {name: v.mean() for name, v in self.per_example().items()}

    def penalty(self) -> Tensor:
        """``Σ_l mean_x ||S^(l)(x)||_F²`` (0-d)."""
        return torch.stack(list(self.per_layer().values())).sum()


@contextmanager
def collect(model: nn.Module, always: bool = False) -> Iterator[DregTerms]:
    """Record the DREG terms of ``model``'s layers for the duration of the block (see module doc)."""
    terms = DregTerms(model, always)
    token = _ACTIVE.set(_ACTIVE.get() + (terms,))
    try:
        yield terms
    finally:
        _ACTIVE.reset(token)


@contextmanager
def suspended() -> Iterator[None]:
    """Within the block no open collector records anything (diagnostics measuring mid-step)."""
    token = _ACTIVE.set(())
    try:
        yield
    finally:
        _ACTIVE.reset(token)


def wanted(layer: nn.Module) -> bool:
    """Whether an open collector wants ``layer``'s term now (what a layer asks before computing it)."""
    if torch.compiler.is_compiling():
        return False  # compiled / exported graphs: use return_jacobian=True
    return any(c.wants(layer) for c in _ACTIVE.get())


def record(layer: nn.Module, jsq: Tensor) -> None:
    """Hand ``layer``'s per-example term to every open collector that wants it."""
    if torch.compiler.is_compiling():
        return
    for c in _ACTIVE.get():
        if c.wants(layer):
            c.record(layer, jsq)


def dreg_penalty(terms) -> Tensor:
    """``Σ_l mean_batch ||S^(l)||_F²`` (0-d) from ``jsq`` ``[..., L]`` or a :class:`DregTerms`.

    >>> dreg_penalty(torch.tensor([[1.0, 2.0], [3.0, 4.0]]))   # layer means 2 and 3
    tensor(5.)
    """
    if isinstance(terms, DregTerms):
        return terms.penalty()
    if isinstance(terms, nn.Module):
        raise ConfigError("dreg_penalty takes the terms a forward returned, got a model: use "
                          "`logits, jsq = model(x, return_jacobian=True); dreg_penalty(jsq)` or "
                          "`with chainzrule.dreg.collect(model) as terms: ...; terms.penalty()` (changed in 0.2)")
    if not isinstance(terms, Tensor) or terms.dim() < 1:
        raise ConfigError(f"expected per-example terms [..., layers], got {type(terms).__name__}"
                          f"{tuple(terms.shape) if isinstance(terms, Tensor) else ''}")
    return terms.reshape(-1, terms.shape[-1]).mean(0).sum()


@dataclass(frozen=True)
class LambdaSchedule:
    """λ as a function of the training step (``schedule(step) -> float``).

    kinds:
      - ``constant``: λ = ``lam`` throughout;
      - ``warmup``: 0 → ``lam`` linearly over ``warmup_steps``, then ``lam``;
      - ``linear``: ``lam`` → ``final`` linearly over ``total_steps`` (after any warm-up);
      - ``cosine``: ``lam`` → ``final`` along a half cosine over ``total_steps`` (after warm-up).

    ``warmup_steps`` applies to ``linear`` and ``cosine`` too (warm-up then anneal).

    >>> s = LambdaSchedule("cosine", lam=1e-2, total_steps=100, final=1e-4)
    >>> round(s(0), 6), round(s(100), 6)
    (0.01, 0.0001)
    """

    kind: str = "constant"
    lam: float = 0.0
    total_steps: int = 1
    warmup_steps: int = 0
    final: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in SCHEDULES:
            raise ConfigError(f"unknown λ schedule {self.kind!r}: expected one of {', '.join(SCHEDULES)}")
        for name in ("lam", "final"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                raise ConfigError(f"λ schedule {name} must be a finite number >= 0, got {v!r}")
        if self.total_steps < 1 or self.warmup_steps < 0:
            raise ConfigError(
                f"λ schedule needs total_steps >= 1 and warmup_steps >= 0, got {self.total_steps}, {self.warmup_steps}"
            )

    def __call__(self, step: int) -> float:
        if self.kind == "constant":
            return float(self.lam)
        if self.warmup_steps and step < self.warmup_steps:
            return float(self.lam) * step / self.warmup_steps
        if self.kind == "warmup":
            return float(self.lam)
        span = max(self.total_steps - self.warmup_steps, 1)
        frac = min(max((step - self.warmup_steps) / span, 0.0), 1.0)
        if self.kind == "linear":
            return float(self.lam + (self.final - self.lam) * frac)
        return float(self.final + 0.5 * (self.lam - self.final) * (1.0 + math.cos(math.pi * frac)))


def lambda_schedule(kind: str, lam: float, total_steps: int = 1, warmup_steps: int = 0, final: float = 0.0) -> LambdaSchedule:
    """Build a :class:`LambdaSchedule` (see there for the kinds).

    >>> [round(lambda_schedule("warmup", 1.0, warmup_steps=4)(t), 2) for t in range(6)]
    [0.0, 0.25, 0.5, 0.75, 1.0, 1.0]
    """
    return LambdaSchedule(kind, lam, total_steps, warmup_steps, final)
