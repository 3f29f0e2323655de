"""Running a fight's runs on a Ray cluster (``--executor ray``): one Ray task per run, or per
batch group, each asking for one CPU.

The driver (the ``chainzrule fight`` process) keeps everything but the training: planning,
Optuna tuning (ask/tell), the progress bar, ``results.csv``. A Ray task runs exactly what a
local pool worker runs (:func:`chainzrule.fight.executor.execute` or
:func:`chainzrule.batched.execute_group`): it skips a run whose file exists, trains it, and
writes ``runs/<key>.json`` itself, atomically (a temporary file in ``runs/`` renamed over the
final name). So **the fight folder must be on a file system every Ray node sees at the same
path** (NFS, a cluster file system, or one machine); a worker that cannot write there fails
its task with the OS error. The run files, the resume rule and ``results.csv`` are the ones of
the local pool: a fight started on Ray can be finished locally, or the reverse.

A worker that dies mid-run (killed, out of memory, node lost) leaves no run file (the write
is atomic); Ray runs the task again, up to :data:`MAX_RETRIES` times, and if it still fails
the fight stops with one line naming the run (:class:`RunLost`); finished runs are kept and
the same command resumes.

Ray is an optional extra (``pip install chainzrule[ray]``) imported only here, and only when
``--executor ray`` is asked for.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from concurrent.futures import Future
from typing import Any, Callable

from ..errors import ConfigError, RunLost

#: how many times Ray runs a task again after its worker died
MAX_RETRIES = 3
#: seconds to wait for a TCP connection to HOST:PORT before calling it unreachable
CONNECT_TIMEOUT = 5.0
#: seconds a HOST:PORT that accepts connections gets to answer as a Ray cluster (:func:`probe_cluster`)
ANSWER_TIMEOUT = 60.0
EXECUTORS = ("local", "ray")


def import_ray():
    try:
        import ray
    except ImportError:
        raise ConfigError("--executor ray needs Ray, which is not installed: pip install 'chainzrule[ray]'") from None
    return ray


def check_address(address: str | None) -> str:
    """``auto`` (a cluster started on this machine with ``ray start --head``), ``local`` (a
    private cluster of this machine, started and stopped by the fight), ``HOST:PORT`` or
    ``ray://HOST:PORT``; a HOST:PORT that does not accept a TCP connection is refused here,
    before Ray's own (much longer) connection timeout."""
    address = (address or "auto").strip()
    if address in ("auto", "local"):
        return address
    hostport = address.removeprefix("ray://")
    host, sep, port = hostport.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"--ray-address {address!r} is not auto, local or HOST:PORT")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT):
            pass
    except OSError as e:
        raise ConfigError(f"--ray-address {address}: no Ray cluster reachable there ({e.strerror or e})") from None
    return address


def probe_cluster(address: str, timeout: float | None = None) -> None:
    """ConfigError unless a Ray driver started in a child process connects to ``address``
    (HOST:PORT) within ``timeout`` seconds (default :data:`ANSWER_TIMEOUT`). Something there that
    accepts connections but is no Ray cluster (a web server, Ray's dashboard port 8265) keeps
    ``ray.init`` retrying in C++ for many minutes, deaf to SIGTERM and printing a warning every
    few seconds; the child is killed at the deadline (or by a stop) and its output dropped."""
    timeout = ANSWER_TIMEOUT if timeout is None else timeout
    code = ("import sys, ray; ray.init(address=sys.argv[1], log_to_driver=False, include_dashboard=False, "
            "configure_logging=False); ray.shutdown()")
    try:
        res = subprocess.run([sys.executable, "-c", code, address], capture_output=True, text=True,
                             timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise ConfigError(f"--ray-address {address}: no Ray cluster answered within {timeout:g} s (expected the "
                          f"address `ray start --head` prints, HOST:6379 by default, not the dashboard's)") from None
    if res.returncode != 0:
        detail = (res.stderr.strip().splitlines() or [f"exit status {res.returncode}"])[-1]
        raise ConfigError(f"--ray-address {address}: no Ray cluster reachable ({detail})")


def _call(fn: Callable, *args) -> Any:
    """The body of every Ray task: one CPU thread, as a local pool worker with one core."""
    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1") or 1))
    return fn(*args)


class RayPool:
    """The Executor's pool on Ray: ``submit`` returns a ``concurrent.futures.Future``.

    Connecting happens in the constructor: an address with no cluster is one ConfigError
    (exit 2) before any run. ``slots`` is the cluster's CPU count (for batch group sizes)."""

    def __init__(self, address: str | None = "auto", num_cpus: int | None = None, max_retries: int = MAX_RETRIES) -> None:
        ray = import_ray()
        address = check_address(address)
        self.ray = ray
        self.owns = not ray.is_initialized()
        if self.owns:
            kw: dict[str, Any] = {"log_to_driver": False, "include_dashboard": False, "configure_logging": False}
            if address == "local":
                if num_cpus is not None:
                    kw["num_cpus"] = num_cpus
                address = None
            elif address != "auto":
                probe_cluster(address)
            handlers = _signal_handlers()
            try:
                ray.init(address=address, **kw)
            except ConnectionError as e:
                raise ConfigError(f"--ray-address {address or 'auto'}: no Ray cluster reachable "
                                  f"({str(e).splitlines()[0] if str(e) else 'connection failed'})") from None
            finally:  # ray.init's own SIGTERM handler exits with status 15 and no message: ours stays
                _restore(handlers)
        self.slots = max(1, int(ray.cluster_resources().get("CPU", 1)))
        self._remote = ray.remote(num_cpus=1, max_retries=max_retries, retry_exceptions=False)(_call)
        self._refs: dict[Any, Future] = {}

    def submit(self, fn: Callable, *args) -> Future:
        ref = self._remote.remote(fn, *args)
        out: Future = Future()
        self._refs[ref] = out
        what = _describe(args[0]) if args else fn.__name__

        def done(inner: Future) -> None:
            self._refs.pop(ref, None)
            try:
                out.set_result(inner.result())
            except self.ray.exceptions.TaskCancelledError:
                out.cancel() or out.set_exception(RunLost(f"{what} was cancelled"))
            except self.ray.exceptions.RayTaskError as e:  # an exception raised by the run itself
                out.set_exception(e.as_instanceof_cause())
            except self.ray.exceptions.RayError as e:  # worker or node died, retries used up
                out.set_exception(RunLost(f"{what} was lost on the Ray cluster ({type(e).__name__}: "
                                          f"{str(e).splitlines()[0] if str(e) else 'no detail'}); finished runs "
                                          f"are kept, run the same command to resume"))
            except BaseException as e:  # noqa: BLE001
                out.set_exception(e)

        ref.future().add_done_callback(done)
        return out

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        if cancel_futures or not wait:
            for ref in list(self._refs):
                try:
                    self.ray.cancel(ref, force=not wait)
                except Exception:  # noqa: BLE001 - already finished or gone
                    pass
        self._refs.clear()
        if self.owns and self.ray.is_initialized():
            self.ray.shutdown()


def _signal_handlers() -> dict:
    """The main thread's SIGTERM/SIGINT handlers (empty elsewhere: only it may set them)."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}


def _restore(handlers: dict) -> None:
    for s, h in handlers.items():
        if h is not None:
            signal.signal(s, h)


def _describe(arg: Any) -> str:
    tasks = arg if isinstance(arg, list) else [arg]
    keys = [getattr(t, "key", "?") for t in tasks]
    return f"run {keys[0]}" if len(keys) == 1 else f"the batch of runs {', '.join(keys[:3])}{', ...' if len(keys) > 3 else ''}"


def make_pool(executor: str, ray_address: str | None = None, num_cpus: int | None = None):
    """None for the local pool, a connected :class:`RayPool` for ``ray``."""
    if executor not in EXECUTORS:
        raise ConfigError(f"--executor {executor!r}: expected one of {', '.join(EXECUTORS)}")
    if executor == "local":
        if ray_address is not None:
            raise ConfigError(f"--ray-address {ray_address!r} names a Ray cluster: expected --executor ray with it, "
                              f"got --executor local")
        return None
    return RayPool(ray_address, num_cpus=num_cpus)
