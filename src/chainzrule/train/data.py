"""A run's data: the dataset named by the config, and its seeded train/validation/test splits."""

from __future__ import annotations

import numpy as np

from ..config import TrainConfig
from ..data import load_dataset
from ..data.base import Dataset
from ..data.splits import Splits, make_splits

__all__ = ["synthetic_dataset", "load_data", "load_splits"]


def synthetic_dataset(n: int = 2000, d: int = 10, classes: int = 3, seed: int = 1234) -> Dataset:
    """A small built-in classification task (Gaussian blobs through a random tanh map).

    Used by doctests and ``--dataset synthetic``; needs no download.
    """
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 2.0, size=(classes, d))
    y = rng.integers(0, classes, size=n)
    X = centers[y] + rng.normal(0, 1.5, size=(n, d))
    X = np.tanh(X @ rng.normal(0, 0.5, size=(d, d))) + 0.1 * rng.normal(size=(n, d))
    cut = int(0.8 * n)
    return Dataset(name="synthetic", task="classification", X_train=X[:cut].astype(np.float32),
                   y_train=y[:cut].astype(np.int64), X_test=X[cut:].astype(np.float32),
                   y_test=y[cut:].astype(np.int64), num_classes=classes, meta={"standardize": True})


def load_data(cfg: TrainConfig, progress: bool = True) -> Dataset:
    """The dataset named by ``cfg.dataset`` (plus the built-in ``synthetic``)."""
    if cfg.dataset == "synthetic":
        return synthetic_dataset()
    return load_dataset(cfg.dataset, data_dir=cfg.data_dir, target=cfg.target,
                        featurizer=cfg.featurizer, limit=cfg.limit, progress=progress)


def load_splits(cfg: TrainConfig, dataset: Dataset | None = None, progress: bool = True) -> Splits:
    """Train/validation/test tensors; the validation carve is seeded by ``cfg.seed``."""
    ds = dataset if dataset is not None else load_data(cfg, progress)
    return make_splits(ds, val_fraction=cfg.val_fraction, seed=cfg.seed)
