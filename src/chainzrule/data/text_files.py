"""The SST-5 and Yelp Review Full files: where they are found and how they are read.

Both hold 5-class **ordinal** labels (0..4 once read):

- **SST-5**: a folder with ``train.txt``, ``dev.txt``, ``test.txt``, one sentence a line as
  ``<label 0-4> <sentence>`` (8544 / 1101 / 2210 lines in the canonical split). ``dev`` becomes
  the official validation split (``X_val``). Folder: ``data_dir`` (or ``data_dir/sst5``), else
  ``$CHAINZRULE_SST5_DIR``, else ``cache_dir()/sst5``. SST-5 is not on any package registry.
- **Yelp Review Full** (Zhang et al. 2015): a folder with ``train.csv`` and ``test.csv`` (650k /
  50k rows), no header, each row ``"label","text"`` with labels 1..5 (mapped to 0..4), quotes
  doubled and line breaks written as the two characters ``\\n`` (turned back into newlines).
  Folder: ``data_dir`` (or ``data_dir/yelp_review_full_csv`` or ``data_dir/yelp-full``), else
  ``$CHAINZRULE_YELP_DIR``, else ``cache_dir()/yelp-full``. Not reachable offline here.

``limit`` keeps the **first** ``limit`` rows of each file (no shuffling, the files are already in
random order; reading stops there, so a small limit is fast on the 650k-row Yelp file).

Each reader returns ``(texts, labels)``; :mod:`chainzrule.data.text` turns them into feature
vectors and a :class:`~chainzrule.data.base.Dataset`.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np

from chainzrule.data.cache import cache_dir
from chainzrule.errors import DataError

__all__ = ["read_sst5_file", "read_yelp_csv", "find_sst5_dir", "find_yelp_dir", "SST5_FILES", "YELP_FILES"]

SST5_FILES = ("train.txt", "dev.txt", "test.txt")
YELP_FILES = ("train.csv", "test.csv")


def read_sst5_file(path: str | Path, limit: int | None = None) -> tuple[list[str], np.ndarray]:
    """Read one SST-5 file of ``<label 0-4> <sentence>`` lines; blank lines are skipped.

    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp()) / "dev.txt"
    >>> _ = p.write_text("3 a fine film .\\n0 dreadful .\\n")
    >>> read_sst5_file(p)
    (['a fine film .', 'dreadful .'], array([3, 0]))
    >>> _ = p.write_text("3 a fine film .\\n7 dreadful .\\n")
    >>> read_sst5_file(p)
    Traceback (most recent call last):
    ...
    chainzrule.errors.DataError: ...dev.txt:2: expected '<label 0-4> <sentence>', got '7 dreadful .'
    """
    return _read_labelled(path, limit, _sst5_rows, kind="SST-5",
                          expected="lines '<label 0-4> <sentence>'")


def _sst5_rows(f, path: Path):
    for lineno, line in enumerate(f, 1):
        line = line.rstrip("\r\n")
        if not line.strip():
            continue
        head, _, sentence = line.partition(" ")
        if head not in ("0", "1", "2", "3", "4") or not sentence.strip():
            shown = line if len(line) <= 60 else line[:57] + "..."
            raise DataError(f"{path}:{lineno}: expected '<label 0-4> <sentence>', got "
                            f"{shown!r}")
        yield sentence.strip(), int(head)


def read_yelp_csv(path: str | Path, limit: int | None = None) -> tuple[list[str], np.ndarray]:
    """Read a Yelp Review Full CSV (``"label","text"``, labels 1..5 → 0..4).

    A first row whose label field is ``label`` or ``class`` is taken as a header and skipped.
    Rows with three fields (``label, title, text``, as in the Amazon/Yahoo variants) join the
    text fields with a newline.

    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp()) / "test.csv"
    >>> _ = p.write_text('"5","Great ""tacos"".\\\\nWill return."\\n"1","Cold."\\n')
    >>> read_yelp_csv(p)
    (['Great "tacos".\\nWill return.', 'Cold.'], array([4, 0]))
    """
    return _read_labelled(path, limit, _yelp_rows, kind="Yelp", newline="",
                          expected="rows \"label\",\"text\" with labels 1..5")


def _yelp_rows(f, path: Path):
    reader = csv.reader(f)
    start = 1
    try:
        for row in reader:
            lineno, start = start, reader.line_num + 1
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            if len(row) < 2 or len(row) > 3:
                raise DataError(f"{path}:{lineno}: expected 2 fields \"label\",\"text\", "
                                f"got {len(row)}")
            head = row[0].strip()
            if lineno == 1 and head.lower() in ("label", "class", "stars"):
                continue
            if head not in ("1", "2", "3", "4", "5"):
                shown = head if len(head) <= 20 else head[:17] + "..."
                raise DataError(f"{path}:{lineno}: label must be 1..5, got {shown!r}")
            yield "\n".join(row[1:]).replace("\\n", "\n"), int(head) - 1
    except csv.Error as e:
        raise DataError(f"{path}:{start}: malformed CSV ({e})") from None


def _read_labelled(path: str | Path, limit: int | None, rows, *, kind: str, expected: str,
                   newline: str | None = None) -> tuple[list[str], np.ndarray]:
    """The first ``limit`` ``(text, label)`` pairs that ``rows(file, path)`` yields from the
    UTF-8 file ``path``; one-line DataErrors for a missing, undecodable or empty file."""
    path = Path(path)
    texts, labels = [], []
    try:
        with open(path, encoding="utf-8", newline=newline) as f:
            for text, label in rows(f, path):
                texts.append(text)
                labels.append(label)
                if limit is not None and len(texts) >= limit:
                    break
    except FileNotFoundError:
        raise DataError(f"{kind} file not found: {path}") from None
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: expected UTF-8 text, got undecodable bytes at offset "
                        f"{e.start}") from None
    if not texts:
        raise DataError(f"{path} is empty: expected {expected}")
    return texts, np.array(labels, dtype=np.int64)


def _find_dir(kind: str, files: tuple[str, ...], data_dir: str | Path | None,
              subdirs: tuple[str, ...], env: str, cache_name: str) -> Path:
    if data_dir is not None:
        base = Path(data_dir)
        candidates = [base] + [base / s for s in subdirs]
    elif os.environ.get(env):
        candidates = [Path(os.environ[env])]
    else:
        candidates = [cache_dir() / cache_name]
    for c in candidates:
        if all((c / f).is_file() for f in files):
            return c
    first = candidates[0]
    if data_dir is None and not os.environ.get(env):
        raise DataError(f"{kind} not found in {first}: pass data_dir= (--data-dir) a folder holding "
                        f"{', '.join(files)} (or set {env}); {kind} cannot be downloaded here")
    if not first.is_dir():
        raise DataError(f"{kind} folder does not exist: {first}")
    missing = [f for f in files if not (first / f).is_file()]
    tried = " or ".join(str(c) for c in candidates)
    raise DataError(f"{kind} folder {first} is missing {', '.join(missing)}; expected "
                    f"{', '.join(files)} in {tried}")


def find_sst5_dir(data_dir: str | Path | None = None) -> Path:
    """The SST-5 folder: ``data_dir`` or ``data_dir/sst5``, else ``$CHAINZRULE_SST5_DIR``, else
    ``cache_dir()/sst5``; :class:`~chainzrule.errors.DataError` names what is missing.

    >>> import tempfile
    >>> find_sst5_dir(tempfile.mkdtemp())
    Traceback (most recent call last):
    ...
    chainzrule.errors.DataError: SST-5 folder ... is missing train.txt, dev.txt, test.txt; expected ...
    """
    return _find_dir("SST-5", SST5_FILES, data_dir, ("sst5",), "CHAINZRULE_SST5_DIR", "sst5")


def find_yelp_dir(data_dir: str | Path | None = None) -> Path:
    """The Yelp Review Full folder: ``data_dir`` (or its ``yelp_review_full_csv``/``yelp-full``
    subfolder), else ``$CHAINZRULE_YELP_DIR``, else ``cache_dir()/yelp-full``.

    >>> import tempfile
    >>> find_yelp_dir(tempfile.mkdtemp())
    Traceback (most recent call last):
    ...
    chainzrule.errors.DataError: Yelp Review Full folder ... is missing train.csv, test.csv; ...
    """
    return _find_dir("Yelp Review Full", YELP_FILES, data_dir,
                     ("yelp_review_full_csv", "yelp-full"), "CHAINZRULE_YELP_DIR", "yelp-full")

