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

**Tokens and padding.** A :class:`~chainzrule.layers.HiddenLayer` on ``[B, T, D]`` gives one term
per token, ``[B, T]``. With padded sequences the mean must run over the real tokens only, not over
``B·T``: pass the mask (``True`` or nonzero = a real token, the shape of the per-token terms) to
``terms.penalty(mask=mask)``, ``dreg_penalty(jsq, mask=mask)`` or :func:`masked_mean`. Padding
positions are excluded by selection, so whatever they hold never reaches the penalty nor its
gradient::

    with chainzrule.dreg.collect(model) as terms:
        logits = model(tokens, padding_mask)
    loss = task_loss(logits, y) + lam * terms.penalty(mask=~padding_mask)

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

from .errors import ConfigError, is_int, is_number

SCHEDULES = ("constant", "warmup", "linear", "cosine")

_ACTIVE: ContextVar[tuple["DregTerms", ...]] = ContextVar("chainzrule_dreg_collectors", default=())


def is_dreg_layer(module: nn.Module) -> bool:
    """Whether ``module`` can report a per-example layer-Jacobian term (``forward_with_jacobian``)."""
    return callable(getattr(module, "forward_with_jacobian", None))


class DregTerms:
    """What :func:`collect` yields: the per-example ``||S||_F²`` each DREG layer recorded.

    The keys of :meth:`per_layer` and :meth:`per_example` are the layers' names in
    ``model.named_modules()`` — the names :func:`~chainzrule.layers.hidden_layers` and
    :func:`~chainzrule.conv.conv_hidden_layers` give, which
    :func:`~chainzrule.diagnostics.layer_report` matches the terms by. So a collector opened on a
    chainzrule layer itself names it ``''``, as ``named_modules`` does the module it is called on:

    >>> from chainzrule.models import ChainzRuleMLP
    >>> layer = ChainzRuleMLP(6, [8], 3).hidden_layers[0]
    >>> with collect(layer) as terms:
    ...     _ = layer(torch.randn(4, 6))
    >>> list(terms.per_layer())
    ['']
    """

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

    def per_layer(self, mask: Tensor | None = None) -> dict[str, Tensor]:
        """``{layer name: mean over the recorded examples of ||S||_F²}`` (0-d tensors).

        With ``mask`` (the shape of every recorded term, e.g. ``[B, T]``): the mean over the
        positions where it is true (see :func:`masked_mean`), over every recorded forward. No
        recorded example (an empty batch) gives 0, as :func:`dreg_penalty` does.
        """
        if not self.records:
            raise ConfigError("no layer Jacobian was recorded: expected a forward of the model inside the "
                              "collect() block with grad enabled (or collect(model, always=True)), got none; "
                              "compiled/exported models and DataParallel replicas do not report to a "
                              "collector: use model(x, return_jacobian=True) there")
        if mask is None:  # an empty batch: the sum of nothing, 0 (a mean would be nan)
            return {name: v.mean() if v.numel() else v.sum() for name, v in self.per_example().items()}
        sums: dict[str, list[Tensor]] = {}
        for name, jsq in self.records:
            m = _mask(mask, jsq, f"the terms of layer {name!r}")
            sums.setdefault(name, []).append(torch.where(m, jsq, torch.zeros_like(jsq)).sum())
        count = _mask(mask, self.records[0][1], "").sum().clamp_min(1)
        return {name: torch.stack(parts).sum() / (count * len(parts)) for name, parts in sums.items()}

    def penalty(self, mask: Tensor | None = None) -> Tensor:
        """``Σ_l mean_x ||S^(l)(x)||_F²`` (0-d); ``mask`` as in :meth:`per_layer`.

        >>> from chainzrule import ChainzRuleMLP
        >>> net = ChainzRuleMLP(4, [8], 2)
        >>> x, real = torch.randn(2, 3, 4), torch.tensor([[True, True, False], [True, False, False]])
        >>> with collect(net) as terms:
        ...     _ = net(x)                                  # per-token terms [2, 3]
        >>> jsq = terms.per_example()["hidden_layers.0"].view(2, 3)
        >>> bool(torch.isclose(terms.penalty(mask=real), jsq[real].mean()))
        True
        """
        return torch.stack(list(self.per_layer(mask).values())).sum()


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


def _mask(mask: Tensor, values: Tensor, what: str) -> Tensor:
    """``mask`` as a bool tensor on ``values``' device, or a ConfigError naming both shapes."""
    if not isinstance(mask, Tensor) or mask.dtype.is_floating_point or mask.is_complex():
        raise ConfigError(f"expected a bool or integer mask tensor (True / nonzero = real token), got "
                          f"{type(mask).__name__}{' of dtype ' + str(mask.dtype) if isinstance(mask, Tensor) else ''}")
    if tuple(mask.shape) != tuple(values.shape):
        raise ConfigError(f"expected a mask of shape {tuple(values.shape)} ({what or 'the terms'}), "
                          f"got {tuple(mask.shape)}")
    return (mask if mask.dtype == torch.bool else mask != 0).to(values.device)


def masked_mean(values: Tensor, mask: Tensor | None = None) -> Tensor:
    """Mean of ``values`` over the positions where ``mask`` is true (0-d).

    ``values`` e.g. per-token terms ``[B, T]``; ``mask`` bool or integer, same shape (``True`` /
    nonzero: a real token; ``None``: every position). Masked-out positions are dropped by
    ``torch.where``, not multiplied by 0, so what they hold never reaches the result nor its
    gradient. With no true position the mean is 0 (no host sync to check it).

    >>> masked_mean(torch.tensor([[1.0, 3.0, 1e6]]), torch.tensor([[1, 1, 0]]))
    tensor(2.)
    """
    if mask is None:
        return values.mean()
    m = _mask(mask, values, "the values")
    total = torch.where(m, values, torch.zeros_like(values)).sum()
    return total / m.sum().clamp_min(1)


def dreg_penalty(terms, mask: Tensor | None = None) -> Tensor:
    """``Σ_l mean_batch ||S^(l)||_F²`` (0-d) from ``jsq`` ``[..., L]`` or a :class:`DregTerms`.

    ``mask`` (``[...]``, the terms' shape without the layer axis; bool or integer): the mean runs
    over the true positions only — the real tokens of padded sequences (see :func:`masked_mean`).
    No examples (or a mask with no true position) give 0.

    The last axis is always the layers. One layer's terms (``layer(x, return_jacobian=True)`` of a
    :class:`~chainzrule.layers.HiddenLayer`: ``[N]`` or ``[B, T]``) have none: their penalty is
    ``jsq.mean()`` (or ``masked_mean(jsq, mask)``), or ``dreg_penalty(jsq.unsqueeze(-1))``. A 1-D
    tensor is refused, since read as ``[layers]`` it would sum a batch instead of averaging it.

    >>> dreg_penalty(torch.tensor([[1.0, 2.0], [3.0, 4.0]]))   # layer means 2 and 3
    tensor(5.)
    >>> dreg_penalty(torch.tensor([[1.0, 2.0], [3.0, 4.0]]), mask=torch.tensor([True, False]))
    tensor(3.)
    """
    if isinstance(terms, DregTerms):
        return terms.penalty(mask)
    if isinstance(terms, nn.Module):
        raise ConfigError("dreg_penalty takes the terms a forward returned, got a model: use "
                          "`logits, jsq = model(x, return_jacobian=True); dreg_penalty(jsq)` or "
                          "`with chainzrule.dreg.collect(model) as terms: ...; terms.penalty()` (changed in 0.2)")
    if not isinstance(terms, Tensor) or terms.dim() < 1:
        raise ConfigError(f"expected per-example terms [..., layers], got {type(terms).__name__}"
                          f"{tuple(terms.shape) if isinstance(terms, Tensor) else ''}")
    if terms.dim() == 1:  # [N] of one layer read as [layers] would be a batch sum: λ scaled by N, silently
        raise ConfigError(f"expected per-example terms [batch..., layers] (a model's return_jacobian), got shape "
                          f"{tuple(terms.shape)}: one layer's terms [N] have no layer axis (use jsq.mean(), or "
                          "dreg_penalty(jsq.unsqueeze(-1))); one example's [layers]: dreg_penalty(jsq.unsqueeze(0))")
    if mask is not None:
        if isinstance(mask, Tensor) and tuple(mask.shape) == tuple(terms.shape):
            raise ConfigError(f"expected a mask of shape {tuple(terms.shape[:-1])} (the terms without their last, "
                              f"layer axis), got {tuple(mask.shape)}, the terms' own shape: one layer's terms "
                              "have no layer axis (use masked_mean(jsq, mask), or dreg_penalty(jsq.unsqueeze(-1), mask))")
        m = _mask(mask, terms[..., 0], "the terms without their layer axis").unsqueeze(-1)  # [..., 1]
        total = torch.where(m, terms, torch.zeros_like(terms)).reshape(-1, terms.shape[-1]).sum(0)  # [L]
        return (total / m.sum().clamp_min(1)).sum()
    if terms.numel() == 0:  # no examples: nothing to penalize (as with a mask that selects none)
        return terms.sum()
    return terms.reshape(-1, terms.shape[-1]).mean(0).sum()


@dataclass(frozen=True)
class LambdaSchedule:
    """λ as a function of the training step (``schedule(step) -> float``).

    kinds:
      - ``constant``: λ = ``lam`` throughout;
      - ``warmup``: 0 → ``lam`` linearly over ``warmup_steps``, then ``lam``;
      - ``linear``: ``lam`` → ``final`` linearly, reaching ``final`` at step ``total_steps``;
      - ``cosine``: ``lam`` → ``final`` along a half cosine, reaching ``final`` at ``total_steps``.

    ``warmup_steps`` applies to ``linear`` and ``cosine`` too: warm-up, then the anneal over the
    remaining ``total_steps - warmup_steps`` steps (``total_steps`` counts the warm-up, so it must
    exceed ``warmup_steps`` there: ConfigError otherwise). The training loop calls it at steps
    ``0 … total_steps − 1``, so the last step's λ is one step short of ``final`` (kept so: the
    committed annealed-λ runs were trained this way). ``total_steps`` and ``final`` play no part
    in ``constant`` and ``warmup`` (``final`` is accepted and ignored there: the training loop
    passes its configured value whatever the kind). A step must be an integer >= 0.

    >>> s = LambdaSchedule("cosine", lam=1e-2, total_steps=100, final=1e-4)
    >>> round(s(0), 6), round(s(100), 6)
    (0.01, 0.0001)
    >>> LambdaSchedule("linear", lam=1.0, total_steps=10, warmup_steps=20)
    Traceback (most recent call last):
    ...
    chainzrule.errors.ConfigError: λ schedule linear anneals over total_steps - warmup_steps steps: expected warmup_steps < total_steps, got warmup_steps=20, total_steps=10
    >>> s(-5)
    Traceback (most recent call last):
    ...
    chainzrule.errors.ConfigError: expected a training step (an integer >= 0), got -5
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
            if not (is_number(v) and math.isfinite(v) and v >= 0):
                raise ConfigError(f"λ schedule {name} must be a finite number >= 0, got {v!r}")
        if not (is_int(self.total_steps) and is_int(self.warmup_steps)) or self.total_steps < 1 or self.warmup_steps < 0:
            raise ConfigError(
                f"λ schedule needs integers total_steps >= 1 and warmup_steps >= 0, got {self.total_steps!r}, {self.warmup_steps!r}"
            )
        if self.kind in ("linear", "cosine") and self.warmup_steps >= self.total_steps:
            # else λ holds at lam past total_steps, then drops to final in one step
            raise ConfigError(
                f"λ schedule {self.kind} anneals over total_steps - warmup_steps steps: expected warmup_steps < "
                f"total_steps, got warmup_steps={self.warmup_steps}, total_steps={self.total_steps}")

    def __call__(self, step: int) -> float:
        if not (is_int(step) and step >= 0):  # Python comparisons only: one call per training step
            raise ConfigError(f"expected a training step (an integer >= 0), got {step!r}")
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
