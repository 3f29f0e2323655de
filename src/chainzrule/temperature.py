"""The logit temperature τ (``TrainConfig.logit_scale``) as a hook object that diagnostics can read.

A Lipschitz-constrained network (spectral norm) needs a temperature to reach confident logits:
:func:`apply_temperature` multiplies the head's input by τ (a forward pre-hook on
``model.head``, so a linear head's logits are ``τ·Wh + b``) or, for a model without a head (a
KAN), its output. :func:`temperature_of` reads τ back, so that a Lipschitz bound of the model
counts it. The hook is an object, not a closure: models with a temperature deep-copy and pickle.

>>> import torch
>>> from torch import nn
>>> net = apply_temperature(nn.Sequential(nn.Linear(3, 2)), 4.0)
>>> temperature_of(net)
4.0
>>> x = torch.randn(5, 3)
>>> torch.allclose(net(x), 4.0 * net[0](x))
True
"""

from __future__ import annotations

import math

from torch import Tensor, nn

from .errors import ConfigError

__all__ = ["LogitTemperature", "apply_temperature", "temperature_of"]


def check_tau(tau) -> float:
    """``tau`` as a float; ConfigError unless it is a finite number > 0 (a temperature of 0, a
    negative one or NaN would turn the logits, and the Lipschitz bound, into nonsense).

    >>> check_tau(0.0)
    Traceback (most recent call last):
    ...
    chainzrule.errors.ConfigError: expected a finite logit temperature tau > 0, got 0.0
    """
    try:
        value = math.nan if isinstance(tau, (bool, str, bytes)) else float(tau)
    except (TypeError, ValueError):
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise ConfigError(f"expected a finite logit temperature tau > 0, got {tau!r}")
    return value


class LogitTemperature:
    """τ as forward hooks: :meth:`pre_hook` scales a head's input, :meth:`output_hook` a model's output."""

    def __init__(self, tau: float) -> None:
        self.tau = check_tau(tau)

    def pre_hook(self, module: nn.Module, args: tuple) -> tuple:
        return (args[0] * self.tau, *args[1:])

    def output_hook(self, module: nn.Module, args: tuple, out: Tensor) -> Tensor:
        return out * self.tau

    def __repr__(self) -> str:
        return f"LogitTemperature({self.tau:g})"


def apply_temperature(model: nn.Module, tau: float) -> nn.Module:
    """``model`` with the logit temperature ``tau`` (in place; τ = 1: unchanged, no hook).

    A model with a ``head`` (or a ``Sequential(body, head)`` whose head is an ordinal one) gets
    the temperature on the head's input; any other model on its output. ``tau`` must be a finite
    number > 0 (ConfigError otherwise)."""
    tau = check_tau(tau)
    if tau == 1.0:
        return model
    t = LogitTemperature(tau)
    head = _head_of(model)
    if isinstance(head, nn.Module):
        head.register_forward_pre_hook(t.pre_hook)
    else:
        model.register_forward_hook(t.output_hook)
    return model


def temperature_of(model: nn.Module) -> float:
    """The product of the temperatures :func:`apply_temperature` put on ``model`` (1 if none)."""
    tau = 1.0
    head = _head_of(model)
    hooks = [*model._forward_hooks.values()]
    if isinstance(head, nn.Module):
        hooks += head._forward_pre_hooks.values()
    for h in hooks:
        owner = getattr(h, "__self__", None)
        if isinstance(owner, LogitTemperature):
            tau *= owner.tau
    return tau


def _head_of(model: nn.Module) -> nn.Module | None:
    """``model.head``, or the last module of a ``Sequential(body, head)`` when it is an ordinal head
    (a KAN with an ordinal head is built that way), else None."""
    head = getattr(model, "head", None)
    if isinstance(head, nn.Module):
        return head
    if isinstance(model, nn.Sequential) and len(model) > 1:
        from .ordinal import CoralHead, CornHead, CumulativeLinkHead

        if isinstance(model[-1], (CumulativeLinkHead, CoralHead, CornHead)):
            return model[-1]
    return None
