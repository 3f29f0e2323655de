"""The process group of a ``torchrun`` launch of ``chainzrule train``.

Under ``torchrun`` (``WORLD_SIZE > 1``) every process trains its share of each global batch
(DistributedDataParallel, gloo on CPU, NCCL on CUDA); :func:`world_rank` in :mod:`.loop` reads
the group this context manager starts. A plain launch starts nothing and yields rank 0.
"""

from __future__ import annotations

import os
from contextlib import contextmanager

from ..config import TrainConfig
from ..errors import ConfigError

__all__ = ["torchrun_process_group"]


@contextmanager
def torchrun_process_group(cfg: TrainConfig):
    """The process group of a ``torchrun`` launch (WORLD_SIZE > 1), yielding this process's rank;
    a plain launch yields 0 and starts nothing."""
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if world <= 1:
        yield 0
        return
    import torch.distributed as dist

    if cfg.batch_size < world:
        raise ConfigError(f"batch_size {cfg.batch_size} is smaller than the {world} processes of this launch: "
                          f"expected batch_size >= {world}")
    backend = "nccl" if cfg.device.startswith("cuda") else "gloo"
    dist.init_process_group(backend)
    try:
        if cfg.device.startswith("cuda"):
            import torch

            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        yield dist.get_rank()
    finally:
        dist.destroy_process_group()
