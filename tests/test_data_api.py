"""The package-level API (load_dataset dispatch, fetch_dataset, list_datasets, cache_dir),
Dataset validation, atomic writes, and the docstring examples of every data module."""

from __future__ import annotations

import doctest
import importlib
from pathlib import Path

import numpy as np
import pytest

import chainzrule.data as D
from chainzrule.data import Dataset, cache_dir, fetch_dataset, list_datasets, load_dataset
from chainzrule.data.cache import atomic_replace_dir, atomic_save_npy, atomic_write_bytes
from chainzrule.errors import ConfigError, DataError


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CHAINZRULE_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("CHAINZRULE_SST5_DIR", raising=False)
    monkeypatch.delenv("CHAINZRULE_YELP_DIR", raising=False)


# ------------------------------------------------------------------ cache_dir

def test_cache_dir_precedence(monkeypatch, tmp_path):
    assert cache_dir() == tmp_path / "cache"
    monkeypatch.delenv("CHAINZRULE_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "chainzrule"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" / ".cache" / "chainzrule"


def test_atomic_helpers(tmp_path):
    p = atomic_write_bytes(tmp_path / "a" / "b.bin", b"123")
    assert p.read_bytes() == b"123" and [f.name for f in p.parent.iterdir()] == ["b.bin"]
    q = atomic_save_npy(tmp_path / "e.npy", np.arange(6, dtype=np.float32).reshape(2, 3))
    assert np.load(q, allow_pickle=False).tolist() == [[0, 1, 2], [3, 4, 5]]
    old = tmp_path / "final"
    old.mkdir()
    (old / "stale").write_text("x")
    new = tmp_path / ".tmp-new"
    new.mkdir()
    (new / "fresh").write_text("y")
    atomic_replace_dir(new, old)
    assert [f.name for f in old.iterdir()] == ["fresh"] and not new.exists()


def test_atomic_write_failure_leaves_nothing(tmp_path, monkeypatch):
    import chainzrule.data.cache as C

    monkeypatch.setattr(C.os, "replace", lambda *a: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError):
        atomic_write_bytes(tmp_path / "x.bin", b"data")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_every_output_gets_one_mode(tmp_path, umask):
    """Cache files, checkpoint weights and metadata, plots and report files all come from the one
    writer: mode 0644 filtered by the umask (model.safetensors used to be 0600), no temp left."""
    import os

    from chainzrule.checkpoint import save_checkpoint
    from chainzrule.config import TrainConfig
    from chainzrule.fight.report import write_report
    from chainzrule.models import ChainzRuleMLP
    from chainzrule.plots import plot_activations
    from chainzrule.train import build_model

    old = os.umask(umask)
    try:
        files = [atomic_write_bytes(tmp_path / "a.bin", b"x"), atomic_save_npy(tmp_path / "e.npy", np.ones(2))]
        cfg = TrainConfig(dataset="synthetic", hidden=(4,))
        ckpt = save_checkpoint(tmp_path / "ckpt", build_model(cfg, 3, 2, "classification"), cfg, in_features=3,
                               num_classes=2, task="classification")
        files += [ckpt / "model.safetensors", ckpt / "model.json"]
        assert plot_activations(ChainzRuleMLP(3, [4], 2), tmp_path / "act.png")
        files.append(tmp_path / "act.png")
        fight = tmp_path / "fight"
        fight.mkdir()
        (fight / "spec.json").write_text('{"name": "t", "contenders": {}, "claims": []}')
        (fight / "results.csv").write_text("phase,contender,seed\nfinal,a,0\n")  # a header alone is refused
        files += [write_report(fight), fight / "summary.csv"]
        folder = tmp_path / ".tmp-dir"
        folder.mkdir(mode=0o700)
        moved = atomic_replace_dir(folder, tmp_path / "dir")
    finally:
        os.umask(old)
    for f in files:
        assert oct(f.stat().st_mode & 0o777) == oct(0o644 & ~umask), f
    assert oct(moved.stat().st_mode & 0o777) == oct(0o755 & ~umask)
    leftovers = [p for p in tmp_path.rglob(".*.tmp")]
    assert not leftovers


# ------------------------------------------------------------------ load_dataset dispatch

@pytest.mark.parametrize("spec", ["cifar10", "MNISTT", "yelp-polarity", "csv"])
def test_unknown_spec_lists_known(spec):
    with pytest.raises(ConfigError) as e:
        load_dataset(spec)
    assert f"unknown dataset {spec!r}" in str(e.value)
    for known in ("mnist", "pima", "sst5", "yelp-full", "csv:PATH"):
        assert f'"{known}"' in str(e.value)


@pytest.mark.parametrize("spec", ["", "   ", None, 3])
def test_empty_or_non_string_spec(spec):
    with pytest.raises(ConfigError, match="expected a dataset name"):
        load_dataset(spec)


@pytest.mark.parametrize("limit", [0, -1, 2.5, True, "10"])
def test_bad_limit(limit):
    with pytest.raises(ConfigError, match="expected limit to be a positive integer or None"):
        load_dataset("mnist", limit=limit)


def test_fetch_dataset_rejects_non_fetchable():
    with pytest.raises(ConfigError, match=r"cannot fetch 'sst5': only \"mnist\", \"pima\""):
        fetch_dataset("sst5")
    with pytest.raises(ConfigError, match="csv:PATH datasets are read from PATH"):
        fetch_dataset("csv:/x.csv")
    with pytest.raises(ConfigError, match="unknown dataset 'imagenet'"):
        fetch_dataset("imagenet")


def test_list_datasets(tmp_path, monkeypatch):
    rows = list_datasets()
    assert [r["name"] for r in rows] == ["mnist", "pima", "sst5", "yelp-full", "csv:PATH"]
    for r in rows:
        assert set(r) >= {"name", "description", "cached", "path"} and r["cached"] is False
    sst = tmp_path / "s"
    sst.mkdir()
    for f in ("train.txt", "dev.txt", "test.txt"):
        (sst / f).write_text("1 x\n")
    monkeypatch.setenv("CHAINZRULE_SST5_DIR", str(sst))
    row = {r["name"]: r for r in list_datasets()}["sst5"]
    assert row["cached"] is True and row["path"] == str(sst)


# ------------------------------------------------------------------ Dataset validation

def _arrays(n=4):
    return np.zeros((n, 3), np.float32), np.arange(n) % 2


@pytest.mark.parametrize("kwargs, msg", [
    (dict(task="regression"), "task must be one of"),
    (dict(num_classes=1), "expected num_classes >= 2"),
    (dict(y_train=np.array([0, 1, 2, 0])), r"labels must be in 0..1, got range 0..2"),
    (dict(y_train=np.array([0.0, 1.0, 0.0, 1.0])), "must hold integer labels"),
    (dict(X_train=np.zeros(4, np.float32)), r"X_train must be 2-d"),
    (dict(y_train=np.zeros((4, 1), np.int64)), r"y_train must be 1-d"),
    (dict(X_test=np.zeros((2, 5), np.float32)), "X_test has 5 features, expected 3"),
    (dict(X_val=np.zeros((2, 3), np.float32)), "X_val and y_val must both be given"),
    (dict(feature_names=["a"]), "1 feature names for 3 features"),
    (dict(X_train=np.zeros((0, 3), np.float32), y_train=np.zeros(0, np.int64)),
     "training split is empty"),
])
def test_dataset_validation(kwargs, msg):
    X, y = _arrays()
    args = dict(name="t", task="classification", X_train=X, y_train=y, X_test=X[:2],
                y_test=y[:2], num_classes=2)
    args.update(kwargs)
    with pytest.raises(DataError, match=msg):
        Dataset(**args)


# ------------------------------------------------------------------ docstring examples

@pytest.mark.parametrize("module", ["chainzrule.data", "chainzrule.data.base",
                                    "chainzrule.data.cache", "chainzrule.data.mnist",
                                    "chainzrule.data.tabular", "chainzrule.data.csv_table",
                                    "chainzrule.data.text", "chainzrule.data.text_files",
                                    "chainzrule.data.splits"])
def test_docstring_examples(module):
    mod = importlib.import_module(module)
    res = doctest.testmod(mod, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert res.failed == 0 and res.attempted > 0


def test_public_api_surface():
    assert set(D.__all__) >= {"Dataset", "Splits", "load_dataset", "fetch_dataset",
                              "list_datasets", "cache_dir", "make_splits"}
    assert isinstance(cache_dir(), Path)
