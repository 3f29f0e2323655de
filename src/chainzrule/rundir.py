"""Output folders: checked before any work, and a run's files committed as one set.

:func:`check_out_dir` is called before data loading and training, so that a ``--out`` under a
regular file, on a read-only file system or in a folder we may not write finds out in a second
rather than after the training it would have thrown away. It probes by creating (and removing)
a temporary folder, which also works for root, for whom permission bits say nothing.

:func:`staged_dir` gives a run a temporary sibling folder of ``--out``; only when every file is
written is it renamed into place (an older run already at ``--out`` is swapped out and then
removed). A run folder is therefore either complete or absent: a crash, a full disk or Ctrl-C
never leaves new weights beside an old or missing ``result.json``. Interrupted commits leave
hidden ``.NAME.*.tmp`` folders next to ``--out``; they never hold a finished run's only copy.

>>> import tempfile
>>> root = Path(tempfile.mkdtemp())
>>> with staged_dir(root / "run") as tmp:
...     _ = (tmp / "result.json").write_text("{}")
>>> sorted(p.name for p in root.iterdir()), (root / "run" / "result.json").read_text()
(['run'], '{}')
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from .data.cache import dir_mode
from .errors import ConfigError

__all__ = ["RUN_FILES", "check_out_dir", "staged_dir", "commit_dir"]

#: What ``chainzrule train`` (and ``inspect``) write into a run folder: the only files that a
#: new run may replace. A folder holding anything else is refused as ``--out``.
RUN_FILES = ("model.safetensors", "model.json", "result.json", "grad_norms.json", "activations.png")


def _nearest_existing(path: Path) -> Path:
    for p in (path, *path.parents):
        if os.path.lexists(p):
            return p
    return Path(path.anchor or ".")


def _probe(folder: Path, out: Path) -> None:
    if not folder.is_dir():
        raise ConfigError(f"--out {out} is under {folder}, which is a file, not a folder")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".chainzrule-probe-", dir=folder))
    except OSError as e:
        raise ConfigError(f"--out {out}: cannot write in {folder} ({e.strerror or e})") from None


def check_out_dir(out: str | Path, replace_only: Iterable[str] | None = None) -> Path:
    """Refuse an ``--out`` that cannot be written; returns it as a Path. Creates nothing.

    With ``replace_only`` (a run folder, replaced as a whole), the folder's parent must be
    writable too, and an existing ``out`` may hold only those file names.
    """
    out = Path(out)
    if os.path.lexists(out) and not out.is_dir():
        raise ConfigError(f"--out {out} is a file, expected a folder")
    if replace_only is None:
        _probe(_nearest_existing(out.absolute()), out)
        return out
    full, cwd = Path(os.path.abspath(out)), Path.cwd()
    if full == cwd or full in cwd.parents:
        raise ConfigError(f"--out {out} is the working folder or holds it: a run folder is replaced as a whole; "
                          f"name a subfolder")
    _probe(_nearest_existing(full.parent), out)
    if out.is_dir():
        allowed = set(replace_only)
        foreign = sorted(p.name for p in out.iterdir() if p.name not in allowed)
        if foreign:
            raise ConfigError(f"--out {out} holds files that are not from a chainzrule run ({', '.join(foreign[:5])}"
                              f"{', ...' if len(foreign) > 5 else ''}): a run folder is replaced as a whole; "
                              f"choose a new or empty folder")
    return out


def commit_dir(tmp: Path, out: Path) -> Path:
    """Move the complete folder ``tmp`` to ``out`` (a sibling), replacing an older ``out``."""
    os.chmod(tmp, dir_mode())
    old = None
    if os.path.lexists(out):
        old = Path(f"{tmp}.old")
        os.replace(out, old)
    try:
        os.replace(tmp, out)
    except OSError:
        if old is not None:
            os.replace(old, out)  # put the older run back: never leave neither
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return out


@contextmanager
def staged_dir(out: str | Path) -> Iterator[Path]:
    """A temporary sibling folder of ``out``; renamed to ``out`` if the block succeeds, removed
    if it raises (``out`` is then untouched)."""
    out = Path(os.path.abspath(out))  # "." or "a/.." name a folder too: stage next to the real one
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        yield tmp
        commit_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
