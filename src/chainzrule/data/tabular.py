"""Tables: Pima Indians Diabetes (fetched from Debian) and any CSV file (``csv:PATH``).

**Pima Indians Diabetes** (768 women, 8 numeric features, ``diabetes`` = neg 500 / pos 268) comes
from the Debian package ``r-cran-mlbench``: :func:`fetch_pima` runs ``apt-get download``,
unpacks the ``.deb`` with ``dpkg-deb -x``, reads ``PimaIndiansDiabetes.rda`` with the PyPI
package ``rdata`` (no R needed) and caches it as ``cache_dir()/pima/pima.csv`` after checking the
shape, the class counts and the CSV's sha256 (the ``.rda`` is kept beside it). This is the
original version *with zeros*: zeros in glucose, pressure, triceps, insulin and mass are
physiologically impossible, i.e. disguised missing values. They are kept as recorded (this is
the table most published Pima results use) and counted per column in
``meta["missing_values"]``; the table ``PimaIndiansDiabetes2`` (zeros as NA) is not used.

Pima has no official test split. **Ours is fixed**: a stratified 80/20 split with
``sklearn.model_selection.train_test_split(..., test_size=0.2, stratify=y, random_state=0)``,
giving 614 train / 154 test rows. Every contender sees the same split.

**Generic CSV** (``csv:PATH`` with ``target=COLUMN``) is read by :mod:`chainzrule.data.csv_table`
(its rules are there); :func:`load_csv`, :func:`read_table`, :func:`stratified_test_split` and
:data:`MISSING_TOKENS` are re-exported here.

>>> load_csv is __import__("chainzrule.data.csv_table", fromlist=["load_csv"]).load_csv   # example there
True
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
import warnings
from collections import Counter
from pathlib import Path

import numpy as np

from chainzrule.data.base import Dataset
from chainzrule.data.cache import atomic_write_bytes, atomic_write_text, cache_dir, verify_cached
from chainzrule.data.csv_table import MISSING_TOKENS, load_csv, read_table, stratified_test_split
from chainzrule.errors import DataError

__all__ = ["load_csv", "read_table", "load_pima", "fetch_pima", "pima_cached",
           "stratified_test_split", "rda_to_pima_csv", "MISSING_TOKENS", "PIMA_COLUMNS",
           "PIMA_CSV_SHA256"]

PIMA_COLUMNS = ["pregnant", "glucose", "pressure", "triceps", "insulin", "mass", "pedigree",
                "age", "diabetes"]
#: sha256 of the canonical pima.csv this module writes (checked on every fetch).
PIMA_CSV_SHA256 = "d579e2243fd8bff59098eafc42ac88c80c1e90785d9f53f9285732c3d3d5e591"
_PIMA_ZERO_MEANS_MISSING = ("glucose", "pressure", "triceps", "insulin", "mass")


# --------------------------------------------------------------------------------------------
# Pima Indians Diabetes
# --------------------------------------------------------------------------------------------

def pima_cached() -> Path | None:
    """The cached ``pima.csv`` if present, else None.

    >>> pima_cached() is None or pima_cached().name == "pima.csv"
    True
    """
    p = cache_dir() / "pima" / "pima.csv"
    return p if p.is_file() else None


def _fmt(v: float) -> str:
    v = float(v)
    return str(int(v)) if v.is_integer() else repr(v)


def rda_to_pima_csv(rda_path: str | Path) -> str:
    """Convert mlbench's ``PimaIndiansDiabetes.rda`` into the canonical CSV text (checked).

        text = rda_to_pima_csv("PimaIndiansDiabetes.rda")
        text.splitlines()[0]
    'pregnant,glucose,pressure,triceps,insulin,mass,pedigree,age,diabetes'
    """
    import rdata

    rda_path = Path(rda_path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "Unknown encoding. Assumed ASCII."
            frames = rdata.read_rda(str(rda_path))
    except Exception as e:  # rdata raises assorted errors on bad input
        raise DataError(f"{rda_path}: cannot read R data file ({type(e).__name__}: {e})") from None
    df = frames.get("PimaIndiansDiabetes")
    if df is None:
        raise DataError(f"{rda_path}: expected an R object 'PimaIndiansDiabetes', found "
                        f"{', '.join(frames) or 'none'}")
    columns = [str(c) for c in df.columns]
    if columns != PIMA_COLUMNS:
        raise DataError(f"{rda_path}: expected columns {PIMA_COLUMNS}, got {columns}")
    data = [df[c].to_numpy(dtype=np.float64) for c in PIMA_COLUMNS[:-1]]
    target = [str(v) for v in df["diabetes"].astype(str).to_numpy()]
    if len(target) != 768 or Counter(target) != Counter({"neg": 500, "pos": 268}):
        raise DataError(f"{rda_path}: expected 768 rows with diabetes neg 500 / pos 268, got "
                        f"{len(target)} rows {dict(Counter(target))}")
    out = [",".join(PIMA_COLUMNS)]
    for i in range(len(target)):
        out.append(",".join([_fmt(col[i]) for col in data] + [target[i]]))
    return "\n".join(out) + "\n"


def _run(cmd: list[str], cwd: str, timeout: float) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise DataError(f"cannot fetch Pima: `{' '.join(cmd)}` did not finish within "
                        f"{timeout:.0f} s") from None


def fetch_pima(force: bool = False, timeout: float = 300.0) -> Path:
    """Fetch Pima from Debian's ``r-cran-mlbench`` into ``cache_dir()/pima/pima.csv``.

    Needs ``apt-get`` and ``dpkg-deb`` (Debian/Ubuntu); runs ``apt-get update`` once if the
    package lists are missing. Returns the cache folder.

        folder = fetch_pima()
        (folder / "pima.csv").read_text().count("\\n")
    769
    """
    if not force and (hit := pima_cached()) is not None:
        return hit.parent
    apt, dpkg = shutil.which("apt-get"), shutil.which("dpkg-deb")
    if apt is None or dpkg is None:
        raise DataError("cannot fetch Pima: expected `apt-get` and `dpkg-deb` (Debian/Ubuntu) "
                        "on PATH; elsewhere pass data_dir= (--data-dir) a folder holding pima.csv or mlbench's "
                        "PimaIndiansDiabetes.rda")
    with tempfile.TemporaryDirectory(prefix="pima-deb-") as work:
        proc = _run([apt, "download", "r-cran-mlbench"], work, timeout)
        if proc.returncode != 0:
            upd = _run([apt, "update"], work, timeout)
            proc = _run([apt, "download", "r-cran-mlbench"], work, timeout)
            if proc.returncode != 0:
                last = (proc.stderr or proc.stdout or upd.stderr).strip().splitlines()
                raise DataError(f"cannot fetch Pima: `apt-get download r-cran-mlbench` failed "
                                f"(exit {proc.returncode}): {last[-1] if last else 'no output'}")
        debs = sorted(Path(work).glob("r-cran-mlbench_*.deb"))
        if not debs:
            raise DataError(f"cannot fetch Pima: apt-get download left no r-cran-mlbench .deb "
                            f"in {work}")
        x = Path(work) / "x"
        proc = _run([dpkg, "-x", str(debs[0]), str(x)], work, timeout)
        if proc.returncode != 0:
            raise DataError(f"cannot fetch Pima: `dpkg-deb -x {debs[0].name}` failed: "
                            f"{proc.stderr.strip()}")
        rdas = sorted(x.rglob("PimaIndiansDiabetes.rda"))
        if not rdas:
            raise DataError(f"cannot fetch Pima: {debs[0].name} has no PimaIndiansDiabetes.rda")
        text = rda_to_pima_csv(rdas[0])
        digest = hashlib.sha256(text.encode()).hexdigest()
        if digest != PIMA_CSV_SHA256:
            raise DataError(f"cannot fetch Pima: sha256 of the converted table: expected "
                            f"{PIMA_CSV_SHA256}, got {digest} (from {debs[0].name})")
        folder = cache_dir() / "pima"
        atomic_write_bytes(folder / "PimaIndiansDiabetes.rda", rdas[0].read_bytes())
        atomic_write_text(folder / "SOURCE", f"Debian package {debs[0].name}, "
                                             f"{rdas[0].relative_to(x)}\n")
        atomic_write_text(folder / "pima.csv", text)
        return folder


def load_pima(folder: str | Path | None = None, *, fetch: bool = True,
              limit: int | None = None) -> Dataset:
    """Load Pima Indians Diabetes with the fixed stratified 80/20 split (seed 0).

    ``folder`` may hold ``pima.csv`` (as written by :func:`fetch_pima`) or mlbench's
    ``PimaIndiansDiabetes.rda``; without it the cache is used (fetched if absent and ``fetch``).

        ds = load_pima()
        ds.X_train.shape, ds.X_test.shape, ds.meta["classes"]
    ((614, 8), (154, 8), ['neg', 'pos'])
    """
    if folder is not None:
        folder = Path(folder)
        csv_path, rda_path = folder / "pima.csv", folder / "PimaIndiansDiabetes.rda"
        if csv_path.is_file():
            source = csv_path
        elif rda_path.is_file():
            source = folder / "pima.csv (converted from PimaIndiansDiabetes.rda)"
            tmp = tempfile.NamedTemporaryFile("w", suffix=".csv", delete=False)
            with tmp:
                tmp.write(rda_to_pima_csv(rda_path))
            csv_path = Path(tmp.name)
        else:
            raise DataError(f"Pima folder {folder} holds neither pima.csv nor "
                            f"PimaIndiansDiabetes.rda; expected one of them")
    else:
        hit = pima_cached()
        if hit is None:
            if not fetch:
                raise DataError(f"Pima is not in the cache ({cache_dir() / 'pima' / 'pima.csv'}) "
                                f"and fetch=False; fetch it first or pass data_dir")
            hit = fetch_pima() / "pima.csv"
        csv_path = source = verify_cached(hit, PIMA_CSV_SHA256, "pima")  # damaged since its fetch: refused
    try:
        ds = load_csv(csv_path, target="diabetes", name="pima", limit=limit)
    finally:
        if csv_path != source:
            csv_path.unlink(missing_ok=True)
    if ds.feature_names != PIMA_COLUMNS[:-1]:
        raise DataError(f"{source}: expected Pima columns {PIMA_COLUMNS}, got "
                        f"{ds.feature_names + ['diabetes']}")
    X = np.concatenate([ds.X_train, ds.X_test])
    zeros = {c: int((X[:, j] == 0).sum()) for j, c in enumerate(ds.feature_names)
             if c in _PIMA_ZERO_MEANS_MISSING}
    ds.meta.update(source=str(source), missing_values=zeros,
                   missing_values_note="zeros in these columns are disguised missing values; "
                                       "kept as recorded (mlbench PimaIndiansDiabetes)")
    return ds
