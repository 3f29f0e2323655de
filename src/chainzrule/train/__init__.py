"""One training run: a :class:`~chainzrule.config.TrainConfig` in, a result out.

Read in this order: :mod:`.data` (:func:`load_splits`), :mod:`.device` (:func:`available_device`) → :mod:`.factory` (:func:`build_model`,
loss, optimizer) → :mod:`.loop` (:func:`train`) → :mod:`.evaluate` (metrics and diagnostics) →
:mod:`.record` (the training half of the result, stability rules); :mod:`.classical` holds the
scikit-learn/XGBoost baselines. Everything is seeded by ``cfg.seed``: model initialisation, the
validation carve and the batch order (a fresh permutation per epoch from a generator seeded with
``(seed, epoch)``), so two runs with the same config produce the same numbers on CPU, and every
contender of a Fair Fight sees the same batches.

The loop records the global parameter-gradient norm at every step (for ``tau_train`` and
peak gradient volatility); the result dict holds the test metrics, the sensitivity diagnostics,
the parameter count, wall time, step time and peak memory.

>>> from chainzrule.config import TrainConfig
>>> cfg = TrainConfig(dataset="synthetic", model="chainzrule", hidden=(16,), epochs=2, batch_size=64)
>>> run = train(cfg, progress=False)
>>> 0.0 <= run.result["test"]["accuracy"] <= 1.0
True
"""

from .classical import train_classical
from .data import cv_dataset, cv_fold_indices, load_data, load_splits, synthetic_dataset
from .device import available_device, check_devices
from .evaluate import accuracy, eval_logits, eval_subset, evaluate, robust_subset, robustness_metrics, to_model
from .factory import (build_model, decoupled_decay, head_kind, make_optimizer, make_run_regularizer, predict,
                      task_loss)
from .loop import TrainingLoop, grad_norm, seed_everything, train, world_rank
from .record import DIVERGED_LOSS_FACTOR, UNSTABLE_RATIO, RunResult, diverged, peak_memory_mb, train_record

__all__ = [
    "synthetic_dataset", "load_data", "load_splits", "cv_fold_indices", "cv_dataset", "available_device", "check_devices",
    "head_kind", "build_model", "task_loss", "predict", "decoupled_decay", "make_run_regularizer", "make_optimizer",
    "train", "TrainingLoop", "seed_everything", "world_rank", "grad_norm",
    "to_model", "eval_logits", "accuracy", "evaluate", "eval_subset", "robust_subset", "robustness_metrics",
    "RunResult", "train_record", "diverged", "peak_memory_mb", "UNSTABLE_RATIO", "DIVERGED_LOSS_FACTOR",
    "train_classical",
]
