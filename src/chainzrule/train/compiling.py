"""``compile = true`` (``chainzrule train --compile``): the training forward through ``torch.compile``.

The eager engine runs the polynomial activation as a handful of elementwise passes over each
``[batch, width]`` pre-activation; inductor fuses them (and DREG's terms) into a few loops: a
ChainzRule + DREG step then costs 1.19–1.23× a compiled ReLU step instead of 1.47–1.50× eagerly
(``BENCHMARKS.md``, "Compiled"). Only the training forward of full batches is compiled; the last,
smaller batch, validation, test metrics, diagnostics and the checkpoint use the eager module (the
same parameters), so a compiled run's numbers are an eager run's up to float rounding.

On CPU inductor writes C++ and needs a compiler; :func:`check_compiler` refuses the run before any
data is loaded when none is found, instead of failing at the first step. The first steps compile
(~16 s for the MNIST MLP on a 2-core machine, ~2 s from torch's cache), so compiling pays on
runs of minutes, not on the second-long runs of a tabular fight. A compiled run's
``train_seconds`` and ``step_ms`` include the compilation.

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

