"""Where downloaded data and cached features live, and how files get there safely.

The cache folder is ``$CHAINZRULE_CACHE``, else ``$XDG_CACHE_HOME/chainzrule``, else
``~/.cache/chainzrule``. Nothing is ever written into site-packages or the repository.

Every file chainzrule writes (here, and checkpoints, run records, reports and plots) goes through
:func:`atomic_write`: a temporary file in the same folder, ``fsync``, then :func:`os.replace`, so
a crash or a parallel run never leaves a half-written file under its final name, and every
output gets the same mode (:data:`FILE_MODE` under the umask).

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

import functools
import hashlib
import io
import os
import secrets
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

__all__ = ["cache_dir", "atomic_write", "atomic_write_bytes", "atomic_write_text", "atomic_save_npy",
           "atomic_replace_dir", "dir_mode", "FILE_MODE", "DIR_MODE"]

#: Mode of every file chainzrule writes, before the umask (0644 & ~umask: 0644 under umask 022).
FILE_MODE = 0o644
#: Mode of every folder moved into place by :func:`atomic_replace_dir`, before the umask.
DIR_MODE = 0o755


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


def verify_cached(path: str | Path, expected_sha256: str, dataset: str) -> Path:
    """``path`` if its sha256 is ``expected_sha256``, else a DataError naming the fix (a cached
    file damaged after it was fetched is never used). Hashed once per process and file version.

    >>> import hashlib, tempfile
    >>> p = Path(tempfile.mkdtemp()) / "f"
    >>> _ = p.write_bytes(b"abc")
    >>> verify_cached(p, hashlib.sha256(b"abc").hexdigest(), "x") == p
    True
    """
    from ..errors import DataError

    p = Path(path)
    st = p.stat()
    got = _file_sha256(str(p), st.st_size, st.st_mtime_ns)
    if got != expected_sha256:
        raise DataError(f"the cached {dataset} file {p} is damaged (sha256 {got[:12]}…, expected "
                        f"{expected_sha256[:12]}…): fetch it again with `chainzrule data fetch {dataset} --force`")
    return p


def file_sha256(path: str | Path) -> str:
    """sha256 hex digest of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@functools.lru_cache(maxsize=64)
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:
    return file_sha256(path)


def atomic_write(path: str | Path, write: Callable[[Path], object]) -> Path:
    """Create ``path`` atomically: ``write(tmp)`` fills a temporary file in the same folder, which
    is then flushed to disk (``fsync``) and renamed over ``path`` (:func:`os.replace`).

    This is the one writer for every file chainzrule produces (cache, checkpoints, run records,
    reports, plots), so they all get the same guarantees: a reader sees the old file or the
    complete new one, never a torn one; after a crash only a hidden ``.NAME.*.tmp`` can remain;
    and the mode is :data:`FILE_MODE` as filtered by the umask (0644 under the usual umask 022),
    like a file made by ``open(path, "w")`` but not group-writable.

    ``write`` gets the temporary path (a :class:`~pathlib.Path` that already exists, empty, with
    the final mode) so that writers which only take a file name (``safetensors.torch.save_file``,
    ``Figure.savefig``) can use it. Parent folders are created. Returns ``path``.

    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> p = atomic_write(d / "sub" / "x.txt", lambda tmp: tmp.write_text("hello"))
    >>> p.read_text(), oct(p.stat().st_mode & 0o777) == oct(FILE_MODE & ~_umask())
    ('hello', True)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp, mode = _create_temp(path)
    try:
        write(tmp)
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        if os.stat(tmp).st_mode & 0o7777 != mode:  # the writer made the file anew
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        _silent_unlink(tmp)
        raise
    _fsync_dir(path.parent)
    return path


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` with :func:`atomic_write`. Returns the final path.

    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> atomic_write_bytes(d / "a" / "b.txt", b"hi").read_bytes()
    b'hi'
    """
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))


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
    os.chmod(tmp_dir, DIR_MODE & ~_umask())
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


def dir_mode() -> int:
    """The mode chainzrule gives a folder it moves into place: :data:`DIR_MODE` under the umask."""
    return DIR_MODE & ~_umask()


def _create_temp(path: Path) -> tuple[Path, int]:
    """A new empty ``.NAME.<random>.tmp`` beside ``path`` and its mode (the kernel applied the umask)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
        try:
            fd = os.open(tmp, flags, FILE_MODE)
        except FileExistsError:
            continue
        try:
            mode = os.fstat(fd).st_mode & 0o7777
        finally:
            os.close(fd)
        return tmp, mode
    raise FileExistsError(f"cannot create a temporary file beside {path}")


def _umask() -> int:
    """The process umask, read without changing it (``os.umask`` can only set it, which would
    race with other threads creating files)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    with tempfile.TemporaryDirectory() as d:  # no /proc: let the kernel apply it to a probe file
        probe = os.path.join(d, "probe")
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT, 0o777))
        return 0o777 & ~os.stat(probe).st_mode


def _fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable; a no-op where folders cannot be opened (Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _silent_unlink(path: str | Path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
