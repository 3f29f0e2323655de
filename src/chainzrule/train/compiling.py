"""``compile = true`` (``chainzrule train --compile``): the training forward through ``torch.compile``.

The eager engine runs the polynomial activation as a handful of elementwise passes over each
``[batch, width]`` pre-activation; inductor fuses them (and DREG's terms) into one loop, which is
what makes ChainzRule + DREG cost about what a ReLU network costs (``BENCHMARKS.md``, "compiled").
Only the training forward is compiled: validation, test metrics, diagnostics and the checkpoint use
the eager module (the same parameters), so a compiled run's outputs are those of an eager one.

On CPU inductor writes C++ and needs a compiler; :func:`check_compiler` refuses the run before any
data is loaded when none is found, instead of failing at the first step. The first steps compile
(tens of seconds for an MNIST MLP; a last batch of another size compiles once more), so compiling
pays on long runs of wide layers, not on the tiny runs of a tabular fight.

>>> from chainzrule.config import TrainConfig
>>> TrainConfig(compile=True).hash() != TrainConfig().hash()  # a compiled run is its own run
True
"""

from __future__ import annotations

import os
import shutil

from ..errors import ConfigError

__all__ = ["CXX_COMPILERS", "check_compiler"]

#: What inductor's C++ backend can call on CPU (besides ``$CXX``).
CXX_COMPILERS = ("g++", "c++", "clang++")


def check_compiler(device: str) -> None:
    """Refuse ``compile`` on a CPU without a C++ compiler (inductor needs one there).

    >>> check_compiler("cuda")  # GPU kernels come from Triton, shipped with torch's CUDA wheels
    """
    if str(device).split(":")[0] != "cpu":
        return
    cxx = os.environ.get("CXX")
    if (cxx and shutil.which(cxx)) or any(shutil.which(c) for c in CXX_COMPILERS):
        return
    raise ConfigError(f"compile on CPU needs a C++ compiler for torch.compile's inductor backend: expected "
                      f"$CXX or one of {', '.join(CXX_COMPILERS)} on PATH, got none (install one, e.g. "
                      f"`apt-get install g++`, or train without compile)")

