"""Will a network fit? Parameter count and memory estimate, checked before anything is allocated.

``--hidden 10000000,10000000`` asks for 10^14 parameters; building it would fail deep inside
PyTorch's allocator (or swap the machine to a halt). :func:`check_fits` counts the parameters
of the configured network without allocating them (the model is built on PyTorch's ``meta``
device, which records shapes only) and refuses a run whose estimated training memory exceeds
the machine's physical memory.

The estimate (ours; documented here and in the error message):

- 16 bytes per parameter: float32 weights, their gradients and Adam's two moment buffers;
- plus float32 activations of one batch: ``batch_size x (sum of widths + in + out)`` values,
  times 8 for what autograd keeps (pre-activations, activations, Jacobian terms, gradients).

The limit is the physical memory (``os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")``),
not the memory free at this instant: a fixed bound gives the same answer on every run on the
same machine, and anything above it can never train. Runs close to it may still be slow or
killed by the system; the check only refuses the impossible.

>>> from chainzrule.config import TrainConfig
>>> cfg = TrainConfig(dataset="synthetic", model="mlp", hidden=(8,))
>>> parameter_count(cfg, 10, 3, "classification")
115
>>> check_fits(cfg.replace(hidden=[10**7, 10**7]), 784, 10, "classification", limit_bytes=2**34)
Traceback (most recent call last):
...
chainzrule.errors.ConfigError: model mlp with hidden [10000000, 10000000] has 100,007,960,000,010 parameters and needs about 1.6e+06 GB to train (16 bytes per parameter plus one batch of activations); this machine has 17.2 GB of memory: choose smaller widths
"""

from __future__ import annotations

import os

import torch

from .config import TrainConfig
from .errors import ConfigError

__all__ = ["parameter_count", "memory_estimate", "physical_memory", "check_fits"]

BYTES_PER_PARAMETER = 16  # weight + gradient + two Adam moments, float32
ACTIVATION_FACTOR = 8  # float32 values autograd keeps per activation value of a batch


def parameter_count(cfg: TrainConfig, in_features: int, num_classes: int, task: str) -> int:
    """Exact parameter count of ``cfg``'s network, built on the ``meta`` device (no memory); if
    the model cannot be built there, built for real when it can fit, else a lower bound (the
    dense weights alone) that already exceeds the memory."""
    from .models import count_parameters
    from .train import build_model

    try:
        with torch.device("meta"):
            return count_parameters(build_model(cfg, in_features, num_classes, task))
    except (RuntimeError, NotImplementedError):  # a constructor that needs real numbers
        pass
    widths = [in_features, *cfg.hidden, num_classes]
    lower = sum(a * b + b for a, b in zip(widths, widths[1:]))  # the dense weights alone
    limit = physical_memory()
    if limit is not None and memory_estimate(cfg, lower, in_features, num_classes) > limit:
        return lower  # cannot fit anyway: check_fits refuses it on this bound
    return count_parameters(build_model(cfg, in_features, num_classes, task))


def memory_estimate(cfg: TrainConfig, params: int, in_features: int, num_classes: int) -> int:
    """Bytes to train ``params`` parameters with ``cfg.batch_size`` (see the module doc)."""
    values = cfg.batch_size * (sum(cfg.hidden) + in_features + num_classes)
    return BYTES_PER_PARAMETER * params + 4 * ACTIVATION_FACTOR * values


def physical_memory() -> int | None:
    """Physical memory of this machine in bytes, or None where ``os.sysconf`` cannot tell."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return None


def check_fits(cfg: TrainConfig, in_features: int, num_classes: int, task: str,
               limit_bytes: int | None = None) -> int:
    """ConfigError if ``cfg``'s network cannot be trained in ``limit_bytes`` (default: the
    physical memory); returns the parameter count. Classical models are not checked (0)."""
    if not cfg.is_neural:
        return 0
    limit = physical_memory() if limit_bytes is None else limit_bytes
    params = parameter_count(cfg, in_features, num_classes, task)
    need = memory_estimate(cfg, params, in_features, num_classes)
    if limit is not None and need > limit:
        raise ConfigError(
            f"model {cfg.model} with hidden {list(cfg.hidden)} has {params:,} parameters and needs about "
            f"{need / 1e9:.2g} GB to train ({BYTES_PER_PARAMETER} bytes per parameter plus one batch of "
            f"activations); this machine has {limit / 1e9:.3g} GB of memory: choose smaller widths")
    return params
