"""Any CSV file as a classification dataset (``csv:PATH`` with ``target=COLUMN``).

Read with the stdlib ``csv`` module; :func:`~chainzrule.data.tabular.load_pima` reads Pima's
cached table through :func:`load_csv` too. The rules:

- delimiter ``,`` (``;`` or tab when the header uses them instead), UTF-8 with optional BOM,
  blank lines skipped, a header row required;
- a column whose every filled cell parses as a number is a numeric feature (each value within
  float32's range); a column with at most half its cells numeric is categorical (its numbers are
  categories too) and one-hot encoded with the categories seen in the *train* rows
  (sorted; a category seen only in test rows encodes as all zeros, counted in
  ``meta["unseen_categories"]``; ``meta["onehot_columns"]`` maps each categorical column to its
  feature indices, so that a cross-validation fold can zero the categories its own training rows
  lack, :func:`chainzrule.train.data.cv_dataset`, and a run those its rows left after the
  validation carve lack, :func:`chainzrule.data.splits.make_splits`); a column that is mostly numeric with a few non-numbers is an
  error naming the column, line and value; NaN/inf are errors too;
- missing cells (empty, ``NA``, ``NaN``, ``?``, ``null``, ``None``, ``N/A``) are *reported, never
  filled*: any missing feature or target cell raises :class:`~chainzrule.errors.DataError` with
  the count per column;
- the target's sorted distinct values (numerically sorted when all are numbers) become classes
  ``0..K-1``; the original values are in ``meta["classes"]``; a target with more classes than
  half its rows (a measurement such as age, or an id) is refused;
- the test split is the fixed stratified 80/20 split with seed 0 that Pima uses (plain seeded
  80/20 when a class has fewer than 2 rows, noted in ``meta["test_split"]``); ``limit`` keeps the
  first ``limit`` data rows of the file before splitting.

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
import io
from collections import Counter
from pathlib import Path

import numpy as np

from chainzrule.data.base import Dataset, stratified_indices
from chainzrule.errors import ConfigError, DataError

__all__ = ["load_csv", "read_table", "stratified_test_split", "MISSING_TOKENS"]

MISSING_TOKENS = frozenset({"", "na", "nan", "n/a", "?", "null", "none"})


# --------------------------------------------------------------------------------------------
# Reading the table
# --------------------------------------------------------------------------------------------

def _is_missing(cell: str) -> bool:
    return cell.strip().lower() in MISSING_TOKENS


def _to_float(cell: str) -> float | None:
    """The number a cell holds, or None; Python's digit separators (``1_0``) are no CSV number."""
    if "_" in cell:
        return None
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
            if not row or (len(row) == 1 and not row[0].strip()):  # a blank line
                continue
            if header is not None and all(not c.strip() for c in row):  # ",," is a row of missing cells
                raise DataError(f"{path}:{reader.line_num}: every cell of this row is empty: expected values "
                                "(missing cells are reported, never filled or dropped)")
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
    """The most frequent of ``,``, ``;`` and tab in the first non-blank line outside quoted names
    (``,`` when none): ``"dose;mg;kg",age,y`` is a comma file."""
    first = next((ln for ln in text.split("\n") if ln.strip()), "")  # blank and whitespace-only lines skipped
    unquoted = "".join(first.split('"')[::2])  # the parts outside "..." (a doubled "" quote stays inside)
    counts = {d: unquoted.count(d) for d in (",", ";", "\t")}
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


# --------------------------------------------------------------------------------------------
# Split, labels and features
# --------------------------------------------------------------------------------------------

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
    blocks, names, kinds, unseen, onehot = [], [], {}, {}, {}
    for j, (h, col) in enumerate(zip(header, cols)):
        if j == t:
            continue
        block, block_names, kinds[h], n_unseen = _feature_block(path, lines, h, col, is_train)
        if kinds[h] == "categorical":
            onehot[h] = list(range(len(names), len(names) + len(block_names)))
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
              "unseen_categories": unseen, "onehot_columns": onehot, "test_split": how, "standardize": True,
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
    """Target cells → 0..K-1, and the classes. When every label is a number, a class is a numeric
    value ("1", "1.0" and "01" are one class, named as it is first written) and the classes are
    in numeric order; otherwise the distinct strings, sorted."""
    numeric = all(_to_float(v) is not None for v in set(labels))
    if numeric:
        names: dict[float, str] = {}
        for v in labels:
            names.setdefault(_to_float(v), v)
        values = sorted(names)
        distinct = [names[v] for v in values]
        key = {v: i for i, v in enumerate(values)}
        index = [key[_to_float(v)] for v in labels]
    else:
        distinct = sorted(set(labels))
        key = {v: i for i, v in enumerate(distinct)}
        index = [key[v] for v in labels]
    if len(distinct) < 2:
        raise DataError(f"{path}: target column {target!r} has a single class {distinct[0]!r}; "
                        f"expected at least 2 classes")
    if 2 * len(distinct) > len(labels):  # most rows a class of their own: a measurement or an id, not a label
        raise DataError(f"{path}: target column {target!r} has {len(distinct)} distinct "
                        f"{'numbers' if numeric else 'values'} in "
                        f"{len(labels)} rows; expected class labels, at most half as many classes as rows "
                        f"(chainzrule trains classifiers: bin a continuous target first)")
    return np.array(index, dtype=np.int64), distinct


def _feature_block(path: Path, lines: list, h: str, col,
                   is_train: np.ndarray) -> tuple[np.ndarray, list[str], str, int]:
    """Column ``h`` as features: ``(block [N, k], feature names, kind, unseen-category rows)``.

    All cells numeric: one finite float column (within float32's range). Mostly numeric: refused
    (a stray text cell). Otherwise categorical: one-hot over the categories seen in training rows
    (the default split's; a cross-validation fold zeroes those its own training rows lack)."""
    values = [_to_float(c) for c in col]
    n_num = sum(v is not None for v in values)
    if n_num == len(col):
        arr = np.array(values, dtype=np.float64)
        nonfinite = np.flatnonzero(~np.isfinite(arr))
        if nonfinite.size:
            r = int(nonfinite[0])
            raise DataError(f"{path}:{lines[r]}: column {h!r} has non-finite value "
                            f"{col[r]!r}; expected finite numbers")
        huge = np.flatnonzero(np.abs(arr) > np.finfo(np.float32).max)  # features are float32
        if huge.size:
            r = int(huge[0])
            raise DataError(f"{path}:{lines[r]}: column {h!r} has value {col[r]!r} beyond float32's range; "
                            f"expected numbers of magnitude at most {np.finfo(np.float32).max:.3g}")
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

