"""Whether this machine can run on a config's device: :func:`available_device`.

``TrainConfig`` checks that a device is *spelled* right (cpu, cuda, cuda:N, mps); whether it
exists is a property of the machine that runs the config, not of the config (a fight spec
written for a GPU cluster is valid on a laptop). So the check is made where work starts on this
machine: :func:`chainzrule.train.train`, and a fight, stability map or fine-tune fight before
its first run when its runs execute here (not on a Ray cluster, whose workers may have devices
the driver lacks).

>>> available_device("cpu")
device(type='cpu')
"""

from __future__ import annotations

import torch

from ..errors import ConfigError
from .compiling import check_compiler

__all__ = ["available_device", "check_devices"]


def available_device(name: str) -> torch.device:
    """``torch.device(name)`` if this process can place tensors on it; otherwise a
    :class:`~chainzrule.errors.ConfigError` (a ``ValueError``) naming the device asked for and
    the ones this machine has, before any data is loaded or model built."""
    dev = torch.device(name)
    if dev.type == "cuda":
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if n == 0:
            raise ConfigError(f"device {name!r} is not available: this machine's torch ({torch.__version__}) "
                              "sees no CUDA device; expected cpu")
        if dev.index is not None and dev.index >= n:
            raise ConfigError(f"device {name!r} is not available: expected cuda or cuda:0 to cuda:{n - 1} "
                              f"({n} CUDA device{'s' if n > 1 else ''} here)")
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device {name!r} is not available: this machine's torch ({torch.__version__}) "
                          "has no MPS backend; expected cpu")
    return dev


def check_devices(cfgs) -> None:
    """:func:`available_device` for every device the neural configs of ``cfgs`` ask for, and a C++
    compiler where they ask for ``compile`` on CPU (a fight's preflight: one message before any
    run, not one failed run per worker)."""
    cfgs = [c for c in cfgs if c.is_neural]
    for name in sorted({c.device for c in cfgs}):
        available_device(name)
    for name in sorted({c.device for c in cfgs if c.compile}):
        check_compiler(name)
