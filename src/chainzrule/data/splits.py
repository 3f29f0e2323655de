"""Train / validation / test tensors for one run: :func:`make_splits`.

The validation split is the source's official one when it has it (``Dataset.X_val``, SST-5),
else a stratified ``val_fraction`` of train carved with ``seed`` (plain seeded when a class is too
rare to stratify). Standardisation (``meta["standardize"]``, default True) fits mean/std on the
remaining train rows only — never on validation or test — and applies them to all three
(columns with std 0 get std 1). One-hot columns (``meta["onehot_columns"]``, a CSV table's
categories) follow the rows that train: a category none of them has is zeroed in the validation
and test rows, counted in ``meta["unseen_categories_val"]`` and ``meta["unseen_categories"]``.
The fitted statistics are in ``meta["feature_mean"]`` and ``meta["feature_std"]`` (numpy float
arrays) so that a model can be deployed on raw inputs.

>>> import numpy as np
>>> from chainzrule.data.base import Dataset
>>> rng = np.random.default_rng(0)
>>> ds = Dataset("toy", "classification", rng.normal(size=(100, 3)).astype(np.float32),
...              np.arange(100) % 2, np.zeros((10, 3), np.float32), np.arange(10) % 2, 2)
>>> s = make_splits(ds, val_fraction=0.2, seed=0)
>>> tuple(s.X_train.shape), tuple(s.X_val.shape), tuple(s.X_test.shape), s.X_train.dtype
((80, 3), (20, 3), (10, 3), torch.float32)
>>> bool(abs(s.X_train.mean()) < 1e-6)
True
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import torch

from chainzrule.data.base import Dataset, stratified_indices
from chainzrule.errors import ConfigError, DataError

__all__ = ["Splits", "make_splits", "zero_untrained_categories"]


@dataclass(eq=False)
class Splits:
    """Torch tensors for one run: features float (float32 from every loader), labels int64.

    ``meta`` is the dataset's meta plus ``name``, ``in_features``, ``val_source`` ("official"
    or "carved"), ``val_split`` (how), ``seed``, ``val_fraction`` and, when standardised,
    ``feature_mean``/``feature_std``.
    """

    X_train: torch.Tensor
    y_train: torch.Tensor
    X_val: torch.Tensor
    y_val: torch.Tensor
    X_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    task: str
    meta: dict = field(default_factory=dict)

    @property
    def in_features(self) -> int:
        """Number of input features."""
        return int(self.X_train.shape[1])

    def to(self, device: str | torch.device) -> Splits:
        """A copy with every tensor on ``device`` (meta shared).

        >>> xy = (torch.zeros(2, 1), torch.zeros(2, dtype=torch.long))
        >>> s = Splits(*xy * 3, num_classes=2, task="classification")
        >>> s.to("cpu").X_val.device.type
        'cpu'
        """
        return replace(self, **{k: getattr(self, k).to(device) for k in
                                ("X_train", "y_train", "X_val", "y_val", "X_test", "y_test")})

    def __repr__(self) -> str:
        return (f"Splits(train={len(self.X_train)}, val={len(self.X_val)}, "
                f"test={len(self.X_test)}, in_features={self.in_features}, "
                f"num_classes={self.num_classes}, task={self.task!r})")


def _features(X: np.ndarray) -> torch.Tensor:
    X = np.asarray(X)
    if X.dtype not in (np.float32, np.float64):
        X = X.astype(np.float32)
    return torch.from_numpy(np.ascontiguousarray(X))


def _labels(y: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(np.asarray(y, dtype=np.int64)))


def _carve(y: np.ndarray, val_fraction: float, seed: int, name: str):
    n = len(y)
    n_val = int(np.ceil(val_fraction * n))
    if n_val < 1 or n - n_val < 1:
        raise DataError(f"{name}: cannot carve a validation split of fraction {val_fraction} "
                        f"from {n} training rows; expected at least 1 row on each side")
    tr, va, stratified = stratified_indices(y, val_fraction, seed)
    how = (f"stratified {val_fraction:g} of train, seed {seed}" if stratified else
           f"random {val_fraction:g} of train, seed {seed} (not stratified: a class is too rare)")
    return tr, va, how


def _statistics(X_tr: np.ndarray, meta: dict, standardization, name: str):
    """(mean, std) to standardise with, or None (see :func:`make_splits`)."""
    dtype = X_tr.dtype if X_tr.dtype in (np.float32, np.float64) else np.float32
    if isinstance(standardization, str):
        if standardization not in ("fit", "none"):
            raise ConfigError(f"standardization must be 'fit', 'none' or (mean, std), got {standardization!r}")
        if standardization == "none" or not meta.get("standardize", True):
            return None
        mean = X_tr.mean(axis=0, dtype=np.float64)
        std = X_tr.std(axis=0, dtype=np.float64)
        std[std == 0] = 1.0
        return mean.astype(dtype), std.astype(dtype)
    mean, std = (np.asarray(v, dtype=dtype) for v in standardization)
    d = X_tr.shape[1]
    if mean.shape != (d,) or std.shape != (d,):
        raise DataError(f"{name}: saved standardization has {mean.shape}/{std.shape} values, expected ({d},) "
                        f"for {d} features")
    if not (np.isfinite(mean).all() and np.isfinite(std).all() and (std > 0).all()):
        raise DataError(f"{name}: saved standardization holds non-finite values or a std <= 0")
    return mean, std


def zero_untrained_categories(X_tr: np.ndarray, onehot: dict, *evaluated: np.ndarray):
    """``(arrays, counts)``: each of ``evaluated`` (copied, never changed in place) with the one-hot
    columns that no row of ``X_tr`` has zeroed, so that no evaluated row gets a weight its training
    never moved; and per array the rows left with no category, per column (columns with none left
    out). ``onehot`` maps each categorical column to its feature indices (``meta["onehot_columns"]``).

    >>> tr = np.array([[1, 0, 0], [0, 1, 0]], np.float32)  # category 2 in no training row
    >>> (va, te), (n_va, n_te) = zero_untrained_categories(tr, {"c": [0, 1, 2]}, np.eye(3, dtype=np.float32)[[2]],
    ...                                                    np.eye(3, dtype=np.float32)[[0, 2]])
    >>> va.tolist(), te.tolist(), n_va, n_te
    ([[0.0, 0.0, 0.0]], [[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]], {'c': 1}, {'c': 1})
    """
    arrays = [np.array(X, copy=True) for X in evaluated]  # never the caller's own arrays
    counts = [{} for _ in arrays]
    for h, cols in onehot.items():
        lacking = [c for c in cols if not X_tr[:, c].any()]  # categories no training row has
        for X, unseen in zip(arrays, counts):
            X[:, lacking] = 0
            n = int((X[:, cols].sum(1) == 0).sum())  # rows left with no category  [n_rows] -> count
            if n:
                unseen[h] = n
    return arrays, counts


def make_splits(ds: Dataset, val_fraction: float = 0.1, seed: int = 0,
                standardization: str | tuple[np.ndarray, np.ndarray] = "fit") -> Splits:
    """Build train / val / test tensors from ``ds`` (see the module doc).

    ``val_fraction`` must be in (0, 1); it is ignored when ``ds`` has an official validation
    split. The same ``seed`` always gives the same carve.

    ``standardization``: ``"fit"`` (default) fits mean/std on the train rows when
    ``meta["standardize"]`` says so; ``(mean, std)`` applies saved statistics instead (a
    checkpoint's, so that a model sees its inputs as in training, whatever data it is evaluated
    on); ``"none"`` keeps the features as they are.

    >>> import numpy as np
    >>> from chainzrule.data.base import Dataset
    >>> ds = Dataset("px", "classification", np.full((10, 2), 0.5, np.float32), np.arange(10) % 2,
    ...              np.ones((4, 2), np.float32), np.arange(4) % 2, 2, meta={"standardize": False})
    >>> s = make_splits(ds, val_fraction=0.2)
    >>> float(s.X_test.max()), s.meta["val_source"]
    (1.0, 'carved')
    """
    if not isinstance(val_fraction, (int, float)) or not 0.0 < float(val_fraction) < 1.0:
        raise ConfigError(f"val_fraction must be in (0, 1), got {val_fraction!r}")
    meta = dict(ds.meta)
    meta.update(name=ds.name, in_features=ds.in_features, seed=seed, feature_names=ds.feature_names)
    if ds.X_val is not None:
        assert ds.y_val is not None
        X_tr, y_tr, X_va, y_va = ds.X_train, ds.y_train, ds.X_val, ds.y_val
        meta.update(val_source="official", val_split="official validation split",
                    val_fraction=None)
    else:
        tr, va, how = _carve(np.asarray(ds.y_train), float(val_fraction), seed, ds.name)
        X_tr, y_tr, X_va, y_va = ds.X_train[tr], ds.y_train[tr], ds.X_train[va], ds.y_train[va]
        meta.update(val_source="carved", val_split=how, val_fraction=float(val_fraction))
    X_te = ds.X_test
    if meta.get("onehot_columns"):
        (X_va, X_te), (unseen_va, unseen_te) = zero_untrained_categories(X_tr, meta["onehot_columns"], X_va, X_te)
        meta.update(unseen_categories=unseen_te, unseen_categories_val=unseen_va)
    stats = _statistics(X_tr, meta, standardization, ds.name)
    if stats is not None:
        mean, std = stats
        X_tr, X_va, X_te = ((X - mean) / std for X in (X_tr, X_va, X_te))
        meta.update(feature_mean=mean, feature_std=std, standardize=True)
    elif standardization == "none":
        meta.update(standardize=False)
    return Splits(
        X_train=_features(X_tr), y_train=_labels(y_tr),
        X_val=_features(X_va), y_val=_labels(y_va),
        X_test=_features(X_te), y_test=_labels(ds.y_test),
        num_classes=int(ds.num_classes), task=ds.task, meta=meta,
    )
