"""Where downloaded data and cached features live, and how files get there safely.

The cache folder is ``$CHAINZRULE_CACHE``, else ``$XDG_CACHE_HOME/chainzrule``, else
``~/.cache/chainzrule``. Nothing is ever written into site-packages or the repository.

Every file the data layer writes goes through a temporary file in the same folder followed by
:func:`os.replace`, so a crash or a parallel run never leaves a half-written file under its
final name.

>>> import os, tempfile
>>> old = os.environ.get("CHAINZRULE_CACHE")
>>> os.environ["CHAINZRULE_CACHE"] = tempfile.mkdtemp()
>>> cache_dir() == Path(os.environ["CHAINZRULE_CACHE"])
True
>>> p = atomic_write_bytes(cache_dir() / "demo" / "x.bin", b"abc")
>>> p.read_bytes()
b'abc'
>>> if old is None: del os.environ["CHAINZRULE_CACHE"]
... else: os.environ["CHAINZRULE_CACHE"] = old
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

__all__ = ["cache_dir", "atomic_write_bytes", "atomic_write_text", "atomic_save_npy",
           "atomic_replace_dir", "default_mode"]


def cache_dir() -> Path:
    """Return the cache root (not created here).

    ``$CHAINZRULE_CACHE`` wins, then ``$XDG_CACHE_HOME/chainzrule``, then
    ``~/.cache/chainzrule``.

    >>> import os
    >>> old = os.environ.pop("CHAINZRULE_CACHE", None)
    >>> os.environ["XDG_CACHE_HOME"] = "/tmp/xdg"
    >>> str(cache_dir())
    '/tmp/xdg/chainzrule'
    >>> del os.environ["XDG_CACHE_HOME"]
    >>> if old is not None: os.environ["CHAINZRULE_CACHE"] = old
    """
    env = os.environ.get("CHAINZRULE_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg:
        return Path(xdg).expanduser() / "chainzrule"
    return Path.home() / ".cache" / "chainzrule"


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` via a temporary file in the same folder and ``os.replace``.

    Parent folders are created. Returns the final path.

    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> atomic_write_bytes(d / "a" / "b.txt", b"hi").read_bytes()
    b'hi'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, default_mode())
        os.replace(tmp, path)
    except BaseException:
        _silent_unlink(tmp)
        raise
    return path


def atomic_write_text(path: str | Path, text: str, encoding: str = "utf-8") -> Path:
    """Text version of :func:`atomic_write_bytes`.

    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> atomic_write_text(d / "t.csv", "a,b\\n1,2\\n").read_text()
    'a,b\\n1,2\\n'
    """
    return atomic_write_bytes(path, text.encode(encoding))


def atomic_save_npy(path: str | Path, array: np.ndarray) -> Path:
    """Save ``array`` as ``.npy`` (no pickle) atomically.

    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> p = atomic_save_npy(d / "e.npy", np.ones((2, 3), np.float32))
    >>> np.load(p).shape
    (2, 3)
    """
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array), allow_pickle=False)
    return atomic_write_bytes(path, buf.getvalue())


def default_mode(is_dir: bool = False) -> int:
    """Permission bits a plain ``open``/``mkdir`` would give under the current umask
    (temporary files start as 0600 / folders as 0700).

    >>> 0 < default_mode() <= 0o666 and 0 < default_mode(True) <= 0o777
    True
    """
    mask = os.umask(0)
    os.umask(mask)
    return (0o777 if is_dir else 0o666) & ~mask


def atomic_replace_dir(tmp_dir: str | Path, target: str | Path) -> Path:
    """Move a fully written folder ``tmp_dir`` to ``target`` in one rename.

    ``tmp_dir`` must be on the same file system as ``target`` (create it next to the target).
    An existing ``target`` is removed first (it is only ever replaced by a complete folder).
    If another process wins the race, its folder is kept and ``tmp_dir`` is discarded.

    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> tmp = Path(tempfile.mkdtemp(dir=root)); _ = (tmp / "f").write_text("x")
    >>> atomic_replace_dir(tmp, root / "final").joinpath("f").read_text()
    'x'
    """
    tmp_dir, target = Path(tmp_dir), Path(target)
    os.chmod(tmp_dir, default_mode(is_dir=True))
    if target.exists():
        shutil.rmtree(target, ignore_errors=True)
    try:
        os.replace(tmp_dir, target)
    except OSError:
        if target.is_dir():  # a parallel fetch finished first: keep its folder
            shutil.rmtree(tmp_dir, ignore_errors=True)
        else:
            raise
    return target


def _silent_unlink(path: str | Path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
