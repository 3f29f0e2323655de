"""The one shape every data source returns: :class:`Dataset` (plain numpy arrays).

>>> import numpy as np
>>> ds = Dataset(name="toy", task="classification",
...              X_train=np.zeros((4, 3), np.float32), y_train=np.array([0, 1, 0, 1]),
...              X_test=np.zeros((2, 3), np.float32), y_test=np.array([1, 0]), num_classes=2)
>>> ds.in_features
3
>>> ds
Dataset(name='toy', task='classification', train=4, val=None, test=2, in_features=3, num_classes=2)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from chainzrule.errors import DataError

__all__ = ["Dataset", "TASKS"]

TASKS = ("classification", "ordinal")


@dataclass(repr=False, eq=False)
class Dataset:
    """A labelled dataset with a fixed train/test split (and an optional official dev split).

    Arrays: ``X_*`` float ``[N, D]`` (float32 from every loader), ``y_*`` int ``[N]`` with labels
    in ``0..num_classes-1``. ``X_val``/``y_val`` are set only where the source ships an official
    dev split (SST-5); otherwise :func:`chainzrule.data.make_splits` carves one from train.

    ``meta`` keys used by the loaders (all optional): ``image_shape`` (C, H, W),
    ``input_range`` (lo, hi), ``standardize`` (bool, default True — False keeps raw pixel
    units), ``source`` (where the data came from), ``classes`` (original label of each class
    index), ``missing_values`` ({column: count}), ``featurizer``, ``test_split`` (how the test
    split was made when the source has none).

    Construction checks shapes and labels and raises :class:`~chainzrule.errors.DataError`:

    >>> Dataset("bad", "classification", np.zeros((3, 2)), np.array([0, 1]),
    ...         np.zeros((1, 2)), np.array([0]), 2)
    Traceback (most recent call last):
    ...
    chainzrule.errors.DataError: bad: X_train has 3 rows but y_train has 2 labels
    """

    name: str
    task: str
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    X_val: np.ndarray | None = None
    y_val: np.ndarray | None = None
    feature_names: list[str] | None = None
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise DataError(f"{self.name}: task must be one of {TASKS}, got {self.task!r}")
        if (self.X_val is None) != (self.y_val is None):
            raise DataError(f"{self.name}: X_val and y_val must both be given or both be None")
        if int(self.num_classes) < 2:
            raise DataError(f"{self.name}: expected num_classes >= 2, got {self.num_classes}")
        width = None
        for split in ("train", "val", "test"):
            X, y = getattr(self, f"X_{split}"), getattr(self, f"y_{split}")
            if X is None:
                continue
            if X.ndim != 2:
                raise DataError(f"{self.name}: X_{split} must be 2-d [N, D], got shape {X.shape}")
            if y.ndim != 1:
                raise DataError(f"{self.name}: y_{split} must be 1-d [N], got shape {y.shape}")
            if X.shape[0] != y.shape[0]:
                raise DataError(f"{self.name}: X_{split} has {X.shape[0]} rows but y_{split} "
                                f"has {y.shape[0]} labels")
            if width is not None and X.shape[1] != width:
                raise DataError(f"{self.name}: X_{split} has {X.shape[1]} features, expected "
                                f"{width} as in X_train")
            width = X.shape[1]
            if not np.issubdtype(y.dtype, np.integer):
                raise DataError(f"{self.name}: y_{split} must hold integer labels, got dtype "
                                f"{y.dtype}")
            if y.size and (y.min() < 0 or y.max() >= self.num_classes):
                hi = self.num_classes - 1
                raise DataError(f"{self.name}: y_{split} labels must be in 0..{hi},"
                                f" got range {int(y.min())}..{int(y.max())}")
        if self.X_train.shape[0] == 0:
            raise DataError(f"{self.name}: the training split is empty")
        if self.feature_names is not None and len(self.feature_names) != width:
            raise DataError(f"{self.name}: {len(self.feature_names)} feature names for "
                            f"{width} features")

    @property
    def in_features(self) -> int:
        """Number of input features ``D`` (columns of ``X_train``)."""
        return int(self.X_train.shape[1])

    def __repr__(self) -> str:
        val = None if self.X_val is None else len(self.X_val)
        return (f"Dataset(name={self.name!r}, task={self.task!r}, train={len(self.X_train)}, "
                f"val={val}, test={len(self.X_test)}, in_features={self.in_features}, "
                f"num_classes={self.num_classes})")


def stratified_indices(y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray, bool]:
    """Seeded split of ``range(len(y))`` into sorted ``(kept, held_out)`` indices, with
    ``ceil(fraction * n)`` held out; stratified by ``y`` when every present class has at least 2
    rows and both sides can hold every class (third value True), else a plain seeded split.

    >>> kept, held, stratified = stratified_indices(np.array([0] * 8 + [1] * 2), 0.2, seed=0)
    >>> len(kept), len(held), stratified
    (8, 2, True)
    """
    from sklearn.model_selection import train_test_split

    y = np.asarray(y)
    n = len(y)
    n_held = int(np.ceil(fraction * n))
    counts = np.bincount(y)
    k = int(np.count_nonzero(counts))
    stratified = bool(counts[counts > 0].min() >= 2 and n_held >= k and n - n_held >= k)
    kept, held = train_test_split(np.arange(n), test_size=fraction, random_state=seed,
                                  stratify=y if stratified else None)
    return np.sort(kept), np.sort(held), stratified

