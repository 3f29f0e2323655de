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

import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from .data.cache import dir_mode
from .errors import ConfigError

__all__ = ["RUN_FILES", "check_out_dir", "check_out_kind", "folder_kind", "staged_dir", "commit_dir"]

#: What ``chainzrule train`` (and ``inspect``) write into a run folder: the only files that a
#: new run may replace. A folder holding anything else is refused as ``--out``.
RUN_FILES = ("model.safetensors", "model.json", "result.json", "grad_norms.json", "activations.png",
             "model.onnx", "model.pt2")  # the last two: `chainzrule export`


_KIND_NAMES = {"run": "a `chainzrule train` run folder", "fight": "a `chainzrule fight` folder",
               "stability": "a `chainzrule stability` map", "finetune": "a `chainzrule finetune` fight"}


#: What a new ``--out`` of fight, stability or finetune may hold and still be taken: ``runs/`` (the
#: run records of an interrupted or unpacked run, before or without its spec.json: the resumable
#: state, :mod:`chainzrule.fight.executor`) and ``previous/`` (the last results, kept by hand for
#: the report's "changes" section); nothing in either is overwritten.
_NEUTRAL_DIRS = ("runs", "previous")


def _read_spec(p: Path) -> dict | None:
    """The folder ``p``'s ``spec.json`` as a dict, or None (none, unreadable, or not a JSON object)."""
    try:
        spec = json.loads((p / "spec.json").read_text())
    except (OSError, ValueError):
        return None
    return spec if isinstance(spec, dict) else None


def _spec_kind(p: Path) -> str | None:
    """The command whose ``spec.json`` the folder ``p`` holds: its marker, written by the command
    itself (a fight's at its start, a map's and a fine-tune fight's with their outputs), or None."""
    spec = _read_spec(p)
    if spec is None:
        return None
    if {"lrs", "lambdas"} <= spec.keys():
        return "stability"
    if {"baseline", "head_lrs"} <= spec.keys():
        return "finetune"
    if "trials" in spec:
        return "fight"
    return None


def folder_kind(path: str | Path) -> str | None:
    """Which chainzrule command wrote the folder ``path``: "run", "fight", "stability",
    "finetune", or None (no folder, an empty one, or none of their markers).

    A fight, map or fine-tune fight is known by its command's ``spec.json`` only (the generic
    ``results.csv``, ``summary.csv`` or ``report.md`` may be anyone's); a ``stability.csv``, a
    name only ``chainzrule stability`` writes, also marks a map for the other commands.

    >>> folder_kind("/nonexistent/folder") is None
    True
    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp()); _ = (d / "results.csv").write_text("mine")
    >>> folder_kind(d) is None, _spec_kind(d) is None
    (True, True)
    """
    p = Path(path)
    if not p.is_dir():
        return None
    kind = _spec_kind(p)
    if kind is not None:
        return kind
    if (p / "stability.csv").is_file():
        return "stability"
    if any((p / name).is_file() for name in ("model.json", "result.json", "model.safetensors")):
        return "run"
    return None


def _is_run_record(p: Path) -> bool:
    """A file of ``runs/``: a run record ``KEY.json`` or a writer's hidden ``.NAME.*.tmp``."""
    return p.is_file() and not p.is_symlink() and (p.suffix == ".json" or (p.name.startswith(".") and p.suffix == ".tmp"))


def _foreign_entries(p: Path) -> list[str]:
    """What the folder ``p`` holds besides :data:`_NEUTRAL_DIRS` (and run records in runs/)."""
    if not p.is_dir():
        return []
    foreign = []
    for entry in sorted(p.iterdir()):
        if entry.name not in _NEUTRAL_DIRS or entry.is_symlink() or not entry.is_dir():
            foreign.append(entry.name + ("/" if entry.is_dir() else ""))
        elif entry.name == "runs":
            foreign += [f"runs/{q.name}" for q in sorted(entry.iterdir()) if not _is_run_record(q)]
    return foreign


def check_out_kind(out: str | Path, kind: str, *, quick: bool = False) -> None:
    """Refuse an existing ``--out`` that another chainzrule command wrote, or that holds files no
    ``chainzrule KIND`` wrote (a user's results.csv or notes: they would be overwritten or mixed
    with this command's outputs). Its own kind of folder (its spec.json) is resumed, but not by a
    ``quick`` run (``--quick``) when its spec.json was recorded without the quick profile: the
    quick run would replace the full one's spec.json, results and report (a full run into a quick
    folder is fine). A new, empty or runs-only folder (:data:`_NEUTRAL_DIRS`) is fine.

    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp()); _ = (d / "notes.txt").write_text("mine")
    >>> check_out_kind(d, "fight")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    chainzrule.errors.ConfigError: --out ... holds files that no `chainzrule fight` wrote (notes.txt): expected ...
    """
    found = folder_kind(out)
    if found is not None and found != kind:
        raise ConfigError(f"--out {out} is {_KIND_NAMES[found]}, expected a new or empty folder or "
                          f"{_KIND_NAMES[kind]} to resume: choose another --out")
    if _spec_kind(Path(out)) == kind:
        if quick and not _read_spec(Path(out)).get("quick"):
            raise ConfigError(f"--out {out} holds the full profile's results; a --quick run would replace them: "
                              "choose another --out")
        return  # its own folder: resumed
    foreign = _foreign_entries(Path(out))
    if foreign:
        raise ConfigError(f"--out {out} holds files that no `chainzrule {kind}` wrote ({', '.join(foreign[:5])}"
                          f"{', ...' if len(foreign) > 5 else ''}): expected a new or empty folder or "
                          f"{_KIND_NAMES[kind]} to resume; choose another --out")


def _nearest_existing(path: Path) -> Path:
    for p in (path, *path.parents):
        if os.path.lexists(p):
            return p
    return Path(path.anchor or ".")


def _probe(folder: Path, out: Path, option: str = "--out") -> None:
    if not folder.is_dir():
        raise ConfigError(f"{option} {out} is under {folder}, which is a file, not a folder")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".chainzrule-probe-", dir=folder))
    except OSError as e:
        raise ConfigError(f"{option} {out}: cannot write in {folder} ({e.strerror or e})") from None


def check_out_file(path: str | Path, option: str) -> Path:
    """Refuse an output file ``path`` (given as ``option``) that cannot be written: a folder
    there, or a nearest existing folder above it that is a file or not writable. Creates nothing.

    >>> check_out_file("/dev/null/m.json", "--out")
    Traceback (most recent call last):
    chainzrule.errors.ConfigError: --out /dev/null/m.json is under /dev/null, which is a file, not a folder
    """
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{option} {path} is a folder, expected a file")
    _probe(_nearest_existing(path.absolute().parent), path, option)
    return path


def check_out_dir(out: str | Path, replace_only: Iterable[str] | None = None,
                  subdirs: Iterable[str] = (), option: str = "--out") -> Path:
    """Refuse an ``--out`` (or the folder given as ``option``) that cannot be written; returns it
    as a Path. Creates nothing.

    With ``replace_only`` (a run folder, replaced as a whole), the folder's parent must be
    writable too, and an existing ``out`` may hold only those file names. ``subdirs``: the
    folders a resumed ``out`` writes into (``runs``, ``plots``): those that exist must be
    writable folders, so that a resume fails here and not after its first run.

    >>> check_out_dir("/dev/null/out")
    Traceback (most recent call last):
    chainzrule.errors.ConfigError: --out /dev/null/out is under /dev/null, which is a file, not a folder
    """
    out = Path(out)
    if os.path.lexists(out) and not out.is_dir():
        raise ConfigError(f"{option} {out} is a file, expected a folder")
    if replace_only is None:
        _probe(_nearest_existing(out.absolute()), out, option)
        for name in subdirs:
            sub = out / name
            if os.path.lexists(sub) and not sub.is_dir():
                raise ConfigError(f"--out {out} holds a file {name!r} where its {name}/ folder goes: "
                                  f"move it away or choose another --out")
            if sub.is_dir():
                _probe(sub, out)
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
