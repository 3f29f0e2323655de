"""DREG — Differential Regularization: ``L = L_task + λ Σ_l E_x ||S^(l)(x)||_F²``.

The per-example ``||S^(l)||_F²`` of every hidden layer is computed analytically in the forward
pass (:mod:`chainzrule.layers`); :func:`dreg_penalty` sums their batch means. A training step is

    logits = model(x)
    loss = task_loss(logits, y) + lam * dreg_penalty(model)

Only hidden layers count; the linear output head is not penalized (guide §2).
λ can follow a schedule (:func:`lambda_schedule`): constant, linear warm-up, linear or cosine
annealing between two values.

>>> import torch
>>> from chainzrule.models import ChainzRuleMLP
>>> net = ChainzRuleMLP(6, [8, 8], 3)
>>> _ = net(torch.randn(4, 6))
>>> sorted(dreg_terms(net))
['hidden_layers.0', 'hidden_layers.1']
>>> bool(dreg_penalty(net) > 0)
True
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .errors import ConfigError
from .layers import hidden_layers

SCHEDULES = ("constant", "warmup", "linear", "cosine")


def dreg_terms(model: nn.Module) -> dict[str, Tensor]:
    """``{layer name: mean over the batch of ||S||_F²}`` from the last forward pass (0-d tensors).

    Raises ``ValueError`` if no hidden layer tracked its Jacobian in the last forward.
    """
    layers = hidden_layers(model)
    if not layers:
        raise ConfigError(
            f"model {type(model).__name__} has no chainzrule HiddenLayer: build it from "
            "chainzrule.MLP / ChainzRuleMLP / HiddenLayer"
        )
    terms = {name: layer.jacobian_sq.mean() for name, layer in layers if layer.jacobian_sq is not None}
    if not terms:
        raise ConfigError(
            "no layer Jacobian was recorded in the last forward pass: expected Jacobian tracking on, "
            "got it off (build with track_jacobian=True or call chainzrule.set_jacobian_tracking(model))"
        )
    return terms


def dreg_penalty(model: nn.Module) -> Tensor:
    """``Σ_l mean_batch ||S^(l)||_F²`` over the hidden layers of the last forward pass (0-d)."""
    return torch.stack(list(dreg_terms(model).values())).sum()


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
