"""make_splits: validation carving, standardisation fit on train only, dtypes, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from chainzrule.data import Dataset, Splits, make_splits
from chainzrule.errors import ConfigError, DataError


def _ds(n=200, d=4, k=3, seed=0, dtype=np.float32, **kw):
    rng = np.random.default_rng(seed)
    X = (rng.normal(size=(n, d)) * 3 + 5).astype(dtype)
    y = np.arange(n) % k
    Xt = (rng.normal(size=(20, d)) * 3 + 5).astype(dtype)
    return Dataset("toy", "classification", X, y, Xt, np.arange(20) % k, k, **kw)


def test_carved_split_is_stratified_disjoint_and_seeded():
    ds = _ds()
    s = make_splits(ds, val_fraction=0.15, seed=3)
    assert isinstance(s, Splits) and len(s.X_val) == 30 and len(s.X_train) == 170
    assert torch.bincount(s.y_val).tolist() == [10, 10, 10]
    assert s.meta["val_source"] == "carved" and s.meta["val_fraction"] == 0.15
    assert s.meta["val_split"] == "stratified 0.15 of train, seed 3"
    # train and val partition the original train rows (compare raw values via std/mean)
    raw = lambda X: X.numpy() * s.meta["feature_std"] + s.meta["feature_mean"]  # noqa: E731
    rows = {tuple(np.round(r, 3)) for r in np.concatenate([raw(s.X_train), raw(s.X_val)])}
    assert rows == {tuple(np.round(r, 3)) for r in ds.X_train}
    again = make_splits(ds, val_fraction=0.15, seed=3)
    assert torch.equal(s.X_val, again.X_val)
    other = make_splits(ds, val_fraction=0.15, seed=4)
    assert not torch.equal(s.X_val, other.X_val)


def test_standardisation_fit_on_train_minus_val_only():
    ds = _ds()
    ds.X_train[0] = 1e6  # an outlier; if it lands in val it must not affect the statistics
    s = make_splits(ds, val_fraction=0.1, seed=0)
    Xtr = s.X_train.double()
    assert torch.allclose(Xtr.mean(0), torch.zeros(4, dtype=torch.float64), atol=1e-5)
    assert torch.allclose(Xtr.std(0, unbiased=False), torch.ones(4, dtype=torch.float64),
                          atol=1e-4)
    mean, std = s.meta["feature_mean"], s.meta["feature_std"]
    np.testing.assert_allclose(s.X_test.numpy(), (ds.X_test - mean) / std, rtol=1e-5)
    # statistics equal those of exactly the rows kept for training
    kept = s.X_train.numpy() * std + mean
    np.testing.assert_allclose(mean, kept.mean(0), rtol=1e-4)


def test_constant_column_gets_std_one():
    ds = _ds()
    ds.X_train[:, 2] = 7.0
    ds.X_test[:, 2] = 9.0
    s = make_splits(ds)
    assert s.meta["feature_std"][2] == 1.0
    assert torch.all(s.X_train[:, 2] == 0) and torch.all(s.X_test[:, 2] == 2.0)


def test_standardize_false_keeps_raw_units():
    ds = _ds(meta={"standardize": False, "input_range": (0.0, 1.0)})
    s = make_splits(ds)
    assert "feature_mean" not in s.meta and s.meta["input_range"] == (0.0, 1.0)
    np.testing.assert_array_equal(s.X_test.numpy(), ds.X_test)


def test_official_validation_split_used():
    base = _ds()
    rng = np.random.default_rng(1)
    ds = _ds(X_val=rng.normal(size=(7, 4)).astype(np.float32), y_val=np.arange(7) % 3)
    s = make_splits(ds, val_fraction=0.5)
    assert len(s.X_train) == 200 and len(s.X_val) == 7
    assert s.meta["val_source"] == "official" and s.meta["val_fraction"] is None
    assert len(base.X_train) == 200


def test_dtypes_and_task():
    s = make_splits(_ds())
    assert s.X_train.dtype == torch.float32 and s.y_train.dtype == torch.int64
    assert s.num_classes == 3 and s.task == "classification" and s.in_features == 4
    s64 = make_splits(_ds(dtype=np.float64))
    assert s64.X_val.dtype == torch.float64
    ints = Dataset("i", "ordinal", np.ones((10, 2), np.uint8), np.arange(10) % 2,
                   np.ones((2, 2), np.uint8), np.array([0, 1]), 2)
    si = make_splits(ints, val_fraction=0.2)
    assert si.X_train.dtype == torch.float32 and si.task == "ordinal"


def test_rare_class_falls_back_to_random_carve():
    ds = Dataset("r", "classification", np.arange(20, dtype=np.float32)[:, None],
                 np.array([0] * 19 + [1]), np.zeros((1, 1), np.float32), np.array([0]), 2)
    s = make_splits(ds, val_fraction=0.2)
    assert "not stratified" in s.meta["val_split"] and len(s.X_val) == 4


@pytest.mark.parametrize("frac", [0, 1, -0.1, 1.5, "0.1", None])
def test_bad_val_fraction(frac):
    with pytest.raises(ConfigError, match=r"val_fraction must be in \(0, 1\)"):
        make_splits(_ds(), val_fraction=frac)


def test_too_few_rows():
    ds = Dataset("tiny", "classification", np.zeros((1, 2), np.float32), np.array([0]),
                 np.zeros((1, 2), np.float32), np.array([1]), 2)
    with pytest.raises(DataError, match="tiny: cannot carve a validation split .* from 1 "
                                        "training rows"):
        make_splits(ds)


def test_splits_to_device():
    s = make_splits(_ds()).to("cpu")
    assert s.X_test.device.type == "cpu" and "Splits(train=180" in repr(s)


@settings(max_examples=25, deadline=None)
@given(n=st.integers(10, 80), k=st.integers(2, 4), frac=st.floats(0.05, 0.5),
       seed=st.integers(0, 1000))
def test_carve_sizes_property(n, k, frac, seed):
    ds = Dataset("p", "classification", np.random.default_rng(seed).normal(size=(n, 2))
                 .astype(np.float32), np.arange(n) % k, np.zeros((3, 2), np.float32),
                 np.zeros(3, np.int64), k)
    s = make_splits(ds, val_fraction=frac, seed=seed)
    assert len(s.X_train) + len(s.X_val) == n and len(s.X_val) >= 1 and len(s.X_train) >= 1
    assert torch.isfinite(s.X_train).all() and torch.isfinite(s.X_val).all()
