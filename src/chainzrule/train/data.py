"""A run's data: the dataset named by the config, and its seeded train/validation/test splits."""

from __future__ import annotations

import numpy as np

from ..config import TrainConfig
from ..errors import ConfigError
from ..data import load_dataset
from ..data.base import Dataset
from ..data.splits import Splits, make_splits, zero_untrained_categories

__all__ = ["synthetic_dataset", "load_data", "load_splits", "cv_fold_indices", "cv_dataset"]


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
    try:
        return load_dataset(cfg.dataset, data_dir=cfg.data_dir, target=cfg.target,
                            featurizer=cfg.featurizer, limit=cfg.limit, progress=progress)
    except ConfigError as e:
        if str(e).startswith("unknown dataset"):  # the library's list, and the harness's own toy set
            raise ConfigError(f'{e}, "synthetic"') from None
        raise


def load_splits(cfg: TrainConfig, dataset: Dataset | None = None, progress: bool = True) -> Splits:
    """Train/validation/test tensors; the validation carve is seeded by ``cfg.seed``. With
    ``cfg.cv_folds`` the train/test split is fold ``cv_fold`` of repeat ``cv_repeat``
    (:func:`cv_dataset`) and validation is carved from the training folds."""
    ds = dataset if dataset is not None else load_data(cfg, progress)
    if cfg.cv_folds:
        ds = cv_dataset(ds, cfg.cv_folds, cfg.cv_fold, cfg.cv_repeat)
    return make_splits(ds, val_fraction=cfg.val_fraction, seed=cfg.seed)


def cv_fold_indices(y: np.ndarray, folds: int, fold: int, repeat: int) -> tuple[np.ndarray, np.ndarray]:
    """``(train, test)`` row indices of fold ``fold`` of repeat ``repeat`` of a repeated stratified
    k-fold over labels ``y`` (scikit-learn's StratifiedKFold, shuffled with ``random_state=repeat``):
    the test folds of one repeat are disjoint, stratified and cover every row."""
    from sklearn.model_selection import StratifiedKFold

    y = np.asarray(y)
    counts = np.bincount(y)
    if len(y) < folds or counts[counts > 0].min() < folds:
        raise ConfigError(f"cv_folds = {folds}: a class has fewer than {folds} rows, so the folds cannot be stratified")
    splits = StratifiedKFold(n_splits=folds, shuffle=True, random_state=repeat).split(np.zeros(len(y)), y)
    for i, (tr, te) in enumerate(splits):
        if i == fold:
            return np.sort(tr), np.sort(te)
    raise ConfigError(f"cv_fold {fold} is not in 0..{folds - 1}")


def cv_dataset(ds: Dataset, folds: int, fold: int, repeat: int) -> Dataset:
    """``ds`` with its train and test rows pooled and re-split into fold ``fold`` of repeat ``repeat``.

    One-hot columns (``meta["onehot_columns"]``, a CSV table's categories) follow the fold: a
    category that none of the fold's training rows has is zeroed in its test rows too, as an
    unseen category is (``meta["unseen_categories"]`` then counts the fold's test rows left with
    no category), so no test row gets a weight its training never moved.

    >>> onehot = np.eye(4, dtype=np.float32)  # one column "c" with categories 0..3, one row each below
    >>> ds = Dataset("t", "classification", onehot[[0, 0, 1, 1]], np.array([0, 0, 1, 1]), onehot[[2, 3]],
    ...              np.array([0, 1]), 2, meta={"onehot_columns": {"c": [0, 1, 2, 3]}})
    >>> cv = cv_dataset(ds, 2, 0, 0)
    >>> cv.X_train.any(0).tolist(), cv.X_test.tolist()  # category 2 is in no training row: zeroed
    ([True, True, False, True], [[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    >>> cv.meta["unseen_categories"]
    {'c': 1}
    """
    from dataclasses import replace

    if ds.X_val is not None:
        raise ConfigError(f"{ds.name} has an official validation split: resampling (cv_folds) is for datasets "
                          "with a train/test split only")
    X = np.concatenate([ds.X_train, ds.X_test])
    y = np.concatenate([ds.y_train, ds.y_test])
    tr, te = cv_fold_indices(y, folds, fold, repeat)
    X_tr, X_te = X[tr], X[te]  # [n_train, D], [n_test, D]
    meta = {**ds.meta, "cv": {"folds": folds, "fold": fold, "repeat": repeat},
            "test_split": f"fold {fold} of repeat {repeat} of stratified {folds}-fold CV over all rows"}
    onehot = ds.meta.get("onehot_columns") or {}
    if onehot:  # categories no training row of this fold has: zeroed in its test rows
        (X_te,), (meta["unseen_categories"],) = zero_untrained_categories(X_tr, onehot, X_te)
    return replace(ds, X_train=X_tr, y_train=y[tr], X_test=X_te, y_test=y[te], meta=meta)
