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

**Generic CSV** (``csv:PATH`` with ``target=COLUMN``), read with the stdlib ``csv`` module:

- delimiter ``,`` (``;`` or tab when the header uses them instead), UTF-8 with optional BOM,
  blank lines skipped, a header row required;
- a column whose every filled cell parses as a number is a numeric feature; a column with no
  numeric cell is categorical and one-hot encoded with the categories seen in the *train* rows
  (sorted; a category seen only in test rows encodes as all zeros, counted in
  ``meta["unseen_categories"]``); a column that is mostly numeric with a few non-numbers is an
  error naming the column, line and value; NaN/inf are errors too;
- missing cells (empty, ``NA``, ``NaN``, ``?``, ``null``, ``None``, ``N/A``) are *reported, never
  filled*: any missing feature or target cell raises :class:`~chainzrule.errors.DataError` with
  the count per column;
- the target's sorted distinct values (numerically sorted when all are numbers) become classes
  ``0..K-1``; the original values are in ``meta["classes"]``;
- the test split is the same fixed stratified 80/20 split with seed 0 (plain seeded 80/20 when a
  class has fewer than 2 rows, noted in ``meta["test_split"]``); ``limit`` keeps the first
  ``limit`` data rows of the file before splitting.

>>> import tempfile
>>> p = Path(tempfile.mkdtemp()) / "toy.csv"
>>> rows = "".join(f"{i},{'rgb'[i % 3]},{'ab'[i % 2]}\\n" for i in range(20))
>>> _ = p.write_text("age,color,y\\n" + rows)
>>> ds = load_csv(p, target="y")
>>> ds.feature_names, ds.meta["classes"], ds.X_train.shape, ds.X_test.shape
(['age', 'color=b', 'color=g', 'color=r'], ['a', 'b'], (16, 4), (4, 4))
"""

from __future__ import annotations

import csv
import hashlib
import io
import shutil
import subprocess
import tempfile
import warnings
from collections import Counter
from pathlib import Path

import numpy as np

from chainzrule.data.base import Dataset, stratified_indices
from chainzrule.data.cache import atomic_write_bytes, atomic_write_text, cache_dir
from chainzrule.errors import ConfigError, DataError

__all__ = ["load_csv", "read_table", "load_pima", "fetch_pima", "pima_cached",
           "stratified_test_split", "rda_to_pima_csv", "MISSING_TOKENS", "PIMA_COLUMNS",
           "PIMA_CSV_SHA256"]

MISSING_TOKENS = frozenset({"", "na", "nan", "n/a", "?", "null", "none"})

PIMA_COLUMNS = ["pregnant", "glucose", "pressure", "triceps", "insulin", "mass", "pedigree",
                "age", "diabetes"]
#: sha256 of the canonical pima.csv this module writes (checked on every fetch).
PIMA_CSV_SHA256 = "d579e2243fd8bff59098eafc42ac88c80c1e90785d9f53f9285732c3d3d5e591"
_PIMA_ZERO_MEANS_MISSING = ("glucose", "pressure", "triceps", "insulin", "mass")


# --------------------------------------------------------------------------------------------
# Generic CSV
# --------------------------------------------------------------------------------------------

def _is_missing(cell: str) -> bool:
    return cell.strip().lower() in MISSING_TOKENS


def _to_float(cell: str) -> float | None:
    try:
        return float(cell)
    except ValueError:
        return None


def read_table(path: str | Path, limit: int | None = None) -> tuple[list[str], list[list[str]],
                                                                     list[int]]:
    """Read a delimited text file into ``(header, rows, line_numbers)``; cells are stripped strings.

    Checks: file exists and is not empty, header has unique non-empty names, every row has as
    many fields as the header (else :class:`~chainzrule.errors.DataError` with ``file:line``).

    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp()) / "t.csv"
    >>> _ = p.write_text("a;b\\n1;2\\n\\n3;4\\n")
    >>> read_table(p)
    (['a', 'b'], [['1', '2'], ['3', '4']], [2, 4])
    """
    path = Path(path)
    text = _read_text(path)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_sniff_delimiter(text))
    header: list[str] | None = None
    rows: list[list[str]] = []
    lines: list[int] = []
    try:
        for row in reader:
            if not row or all(not c.strip() for c in row):
                continue
            row = [c.strip() for c in row]
            if header is None:
                header = _checked_header(f"{path}:{reader.line_num}", row)
                continue
            if len(row) != len(header):
                raise DataError(f"{path}:{reader.line_num}: expected {len(header)} fields (as in "
                                f"the header), got {len(row)}")
            rows.append(row)
            lines.append(reader.line_num)
            if limit is not None and len(rows) >= limit:
                break
    except csv.Error as e:
        raise DataError(f"{path}:{reader.line_num}: malformed CSV ({e})") from None
    assert header is not None
    if not rows:
        raise DataError(f"{path} has a header but no data rows: expected at least one data row")
    return header, rows, lines


def _read_text(path: Path) -> str:
    """The file's text (UTF-8, BOM dropped); a missing, folder, undecodable or blank file is refused."""
    if not path.exists():
        raise DataError(f"CSV file not found: {path}")
    if path.is_dir():
        raise DataError(f"expected a CSV file, got a folder: {path}")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: expected UTF-8 text, got undecodable bytes at offset "
                        f"{e.start}") from None
    if not text.strip():
        raise DataError(f"{path} is empty: expected a header row and at least one data row")
    return text


def _sniff_delimiter(text: str) -> str:
    """The most frequent of ``,``, ``;`` and tab in the first non-blank line (``,`` when none)."""
    first = text.lstrip("\r\n").split("\n", 1)[0]
    counts = {d: first.count(d) for d in (",", ";", "\t")}
    return max(counts, key=lambda d: counts[d]) if any(counts.values()) else ","


def _checked_header(where: str, header: list[str]) -> list[str]:
    """``header`` if every name is non-empty and unique, else a DataError at ``where`` (file:line)."""
    empty = [i + 1 for i, c in enumerate(header) if not c]
    if empty:
        raise DataError(f"{where}: header has an empty column name "
                        f"at position {empty[0]}; expected a name for every column")
    dup = [c for c, n in Counter(header).items() if n > 1]
    if dup:
        raise DataError(f"{where}: duplicate column names in header:"
                        f" {', '.join(dup)}")
    return header


def stratified_test_split(y: np.ndarray, test_fraction: float = 0.2,
                          seed: int = 0) -> tuple[np.ndarray, np.ndarray, str]:
    """Fixed train/test indices: stratified when every class has >= 2 rows, else plain seeded.

    Returns ``(train_idx, test_idx, description)``; indices are sorted.

    >>> tr, te, how = stratified_test_split(np.array([0] * 8 + [1] * 2))
    >>> len(tr), len(te), how
    (8, 2, 'stratified 80/20, seed 0')
    """
    pct = f"{round(100 * (1 - test_fraction))}/{round(100 * test_fraction)}"
    if len(y) < 2:
        raise DataError(f"need at least 2 rows to make a train/test split, got {len(y)}")
    tr, te, stratified = stratified_indices(y, test_fraction, seed)
    how = (f"stratified {pct}, seed {seed}" if stratified else
           f"random {pct}, seed {seed} (not stratified: a class has fewer than 2 rows or "
           f"the test split is smaller than the number of classes)")
    return tr, te, how


def load_csv(path: str | Path, target: str | None, *, name: str | None = None,
             limit: int | None = None, test_fraction: float = 0.2, seed: int = 0) -> Dataset:
    """Load a CSV table as a classification :class:`Dataset` (see the module doc for the rules).

    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp()) / "t.csv"
    >>> _ = p.write_text("x,y\\n1,a\\n2,b\\n3,a\\n4,b\\n5,a\\n6,b\\n7,a\\n8,b\\n9,a\\n10,b\\n")
    >>> load_csv(p, target="z")
    Traceback (most recent call last):
    ...
    chainzrule.errors.DataError: ...t.csv has no target column 'z'; available columns: x, y
    """
    path = Path(path)
    header, rows, lines = read_table(path, limit=limit)
    _check_columns(path, header, target)
    t = header.index(target)
    cols = list(zip(*rows))  # column-major view of the cells
    _refuse_missing(path, header, cols, target)
    y, distinct = _encode_labels(path, cols[t], target)
    train_idx, test_idx, how = stratified_test_split(y, test_fraction, seed)
    is_train = np.zeros(len(y), dtype=bool)
    is_train[train_idx] = True
    blocks, names, kinds, unseen = [], [], {}, {}
    for j, (h, col) in enumerate(zip(header, cols)):
        if j == t:
            continue
        block, block_names, kinds[h], n_unseen = _feature_block(path, lines, h, col, is_train)
        blocks.append(block)
        names.extend(block_names)
        if n_unseen:
            unseen[h] = n_unseen
    X = np.concatenate(blocks, axis=1).astype(np.float32)
    return Dataset(
        name=name or f"csv:{path}", task="classification",
        X_train=X[train_idx], y_train=y[train_idx], X_test=X[test_idx], y_test=y[test_idx],
        num_classes=len(distinct), feature_names=names,
        meta={"source": str(path), "target": target, "classes": distinct, "column_kinds": kinds,
              "unseen_categories": unseen, "test_split": how, "standardize": True,
              "missing_values": {}},
    )


def _check_columns(path: Path, header: list[str], target: str | None) -> None:
    """Refuse a missing or unknown target column, or a table with no feature column."""
    if target is None:
        raise ConfigError(f"csv:{path} needs a target column (target=COLUMN); available "
                          f"columns: {', '.join(header)}")
    if target not in header:
        raise DataError(f"{path} has no target column {target!r}; available columns: "
                        f"{', '.join(header)}")
    if len(header) < 2:
        raise DataError(f"{path}: expected at least one feature column besides target "
                        f"{target!r}, got only the target")


def _refuse_missing(path: Path, header: list[str], cols: list, target: str) -> None:
    """Missing cells are reported, never filled: in the target, or per feature column."""
    missing = {h: sum(_is_missing(c) for c in col) for h, col in zip(header, cols)}
    if missing[target]:
        raise DataError(f"{path}: target column {target!r} has {missing[target]} missing "
                        f"value(s); expected a label on every row")
    bad = {h: n for h, n in missing.items() if n}
    if bad:
        listed = ", ".join(f"{h} ({n})" for h, n in bad.items())
        raise DataError(f"{path}: missing values in feature column(s) {listed}; expected every "
                        f"feature cell filled (drop or impute those rows first)")


def _encode_labels(path: Path, labels, target: str) -> tuple[np.ndarray, list]:
    """Target cells → 0..K-1 (classes sorted numerically when all are numbers), and the classes."""
    distinct = sorted(set(labels))
    if all(_to_float(v) is not None for v in distinct):
        distinct.sort(key=lambda v: float(v))
    if len(distinct) < 2:
        raise DataError(f"{path}: target column {target!r} has a single class {distinct[0]!r}; "
                        f"expected at least 2 classes")
    class_index = {v: i for i, v in enumerate(distinct)}
    return np.array([class_index[v] for v in labels], dtype=np.int64), distinct


def _feature_block(path: Path, lines: list, h: str, col,
                   is_train: np.ndarray) -> tuple[np.ndarray, list[str], str, int]:
    """Column ``h`` as features: ``(block [N, k], feature names, kind, unseen-category rows)``.

    All cells numeric: one finite float column. Mostly numeric: refused (a stray text cell).
    Otherwise categorical: one-hot over the categories seen in training rows."""
    values = [_to_float(c) for c in col]
    n_num = sum(v is not None for v in values)
    if n_num == len(col):
        arr = np.array(values, dtype=np.float64)
        nonfinite = np.flatnonzero(~np.isfinite(arr))
        if nonfinite.size:
            r = int(nonfinite[0])
            raise DataError(f"{path}:{lines[r]}: column {h!r} has non-finite value "
                            f"{col[r]!r}; expected finite numbers")
        return arr[:, None], [h], "numeric", 0
    if 2 * n_num > len(col):
        r = next(i for i, v in enumerate(values) if v is None)
        raise DataError(f"{path}:{lines[r]}: column {h!r} is numeric but has non-numeric value "
                        f"{col[r]!r} ({len(col) - n_num} such row(s)); expected a number")
    cats = sorted({c for c, tr in zip(col, is_train) if tr})
    pos = {c: i for i, c in enumerate(cats)}
    onehot = np.zeros((len(col), len(cats)), dtype=np.float64)
    n_unseen = 0
    for r, c in enumerate(col):
        if c in pos:
            onehot[r, pos[c]] = 1.0
        else:
            n_unseen += 1
    return onehot, [f"{h}={c}" for c in cats], "categorical", n_unseen


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
                        "on PATH; elsewhere pass data_dir= a folder holding pima.csv or mlbench's "
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
        csv_path = source = hit
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
