"""Executing the runs of a fight: one run per config hash, resumable, stoppable.

:func:`execute` runs one :class:`Task` unless ``runs/<key>.json`` already holds it; an
:class:`Executor` runs batches of tasks in-process or in a process pool. A run file that cannot
be read back (empty, truncated, not a run record) is named in a warning, moved aside to
``runs/<key>.json.damaged`` and the run is done again.

Stopping: :func:`~chainzrule.signals.stop_on_signals` turns SIGTERM/SIGINT into ``Interrupted`` (a
``KeyboardInterrupt``), and ``Executor.close(abort=True)`` terminates the pool's workers, so a
stopped fight never leaves workers behind blocked on a pipe; on Linux the workers also ask the
kernel to SIGTERM them if the fight process dies by SIGKILL. Runs in flight are lost, finished
ones are kept.

Peak memory is not stored in the run records: ``ru_maxrss`` is a process's lifetime high-water
mark, so in a fight (many runs per process, in-process or in pool workers) every run would
inherit the peaks of the runs before it. ``chainzrule train`` (one run per process) reports it.
"""

from __future__ import annotations

import ctypes
import json
import logging
import math
import os
import signal
import sys
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from ..config import TrainConfig, content_hash
from ..data.cache import atomic_write_text
from ..data.splits import Splits
from ..errors import DataError, RunLost
from ..layers import hidden_layers
from ..poly import PolynomialActivation
from ..signals import Interrupted, stop_on_signals  # noqa: F401 - the fight's stop, re-exported
from ..train import load_data, load_splits, train

#: What a run file must hold to be reused on resume.
RECORD_KEYS = ("key", "phase", "contender", "seed", "test", "config", "result")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Task:
    """One run to execute: its config, whether it may read the test split, and its labels."""

    phase: str
    contender: str
    config: TrainConfig
    test: bool
    seed: int
    trial: int | None = None

    @property
    def key(self) -> str:
        return run_key(self.config, self.test)


def run_key(cfg: TrainConfig, test: bool) -> str:
    """20 hex digits of sha256 over the run config (:meth:`TrainConfig.key_dict`) and whether it
    reads the test split."""
    return content_hash({"config": cfg.key_dict(), "test": test}, 20)


# --------------------------------------------------------------------------------------------
# executing one run (in this process or a worker)
# --------------------------------------------------------------------------------------------

_DATA_CACHE: dict[tuple, Any] = {}
#: splits kept per process (each a full copy of the data: 10 seeds of MNIST would be ~2 GB)
_MAX_SPLITS = 4


def splits_for(cfg: TrainConfig) -> Splits:
    """The data of ``cfg``, cached per process (one dataset per fight; one split per seed)."""
    data_key = (cfg.dataset, cfg.data_dir, cfg.target, cfg.featurizer, cfg.limit)
    if data_key not in _DATA_CACHE:
        _DATA_CACHE.clear()  # one dataset per fight: keep memory flat
        _DATA_CACHE[data_key] = load_data(cfg)
    split_key = data_key + (cfg.seed, cfg.val_fraction, cfg.cv_folds, cfg.cv_fold, cfg.cv_repeat)
    if split_key not in _DATA_CACHE:
        splits_held = [k for k in _DATA_CACHE if k != data_key]
        for old in splits_held[:max(0, len(splits_held) - _MAX_SPLITS + 1)]:  # oldest first: memory stays flat
            del _DATA_CACHE[old]
        _DATA_CACHE[split_key] = load_splits(cfg, _DATA_CACHE[data_key])
    return _DATA_CACHE[split_key]


def _activations(model) -> dict:
    out = {}
    if model is None:
        return out
    for name, layer in hidden_layers(model):
        act = layer.activation
        if isinstance(act, PolynomialActivation):
            # "coefficients": of u^k (what the figures evaluate); "basis_coefficients": the trained θ
            out[name] = {"kind": "poly", "bound": act.bound, "range_control": act.range_control,
                         "basis": act.basis,
                         "coefficients": act.power_coefficients().detach().double().tolist(),
                         "basis_coefficients": act.coefficients.detach().double().tolist()}
        else:
            out[name] = {"kind": type(act).__name__.lower()}
    return out


def atomic_json(path: Path, obj: Any) -> None:
    """Write ``obj`` as JSON atomically (NaN kept as NaN: run records are read back by us)."""
    atomic_write_text(path, json.dumps(obj, allow_nan=True))  # run records keep NaN as NaN


def make_record(task: Task, run, splits: Splits | None = None) -> dict:
    """The run record of ``task`` trained as ``run`` (a :class:`~chainzrule.train.RunResult`);
    with ``splits``, ``"data"`` holds the row counts (n_train, n_val, n_test) of its split."""
    result = {k: v for k, v in run.result.items() if k != "peak_memory_mb"}  # see the module doc
    rec = {"key": task.key, "phase": task.phase, "contender": task.contender, "seed": task.seed,
           "trial": task.trial, "test": task.test, "config": task.config.to_dict(), "result": result,
           "grad_norms": run.grad_norms, "activations": _activations(run.model)}
    if splits is not None:  # sizes only (the Nadeau-Bengio correction needs them): no test content
        rec["data"] = {"n_train": len(splits.y_train), "n_val": len(splits.y_val), "n_test": len(splits.y_test)}
    return rec


def execute(task: Task, runs_dir: Path) -> dict:
    """Run ``task`` unless ``runs_dir/<key>.json`` holds it; return the stored record."""
    path = runs_dir / f"{task.key}.json"
    stored = stored_record(path)
    if stored is not None:
        return stored
    splits = splits_for(task.config)
    run = train(task.config, splits, progress=False, test=task.test)
    record = make_record(task, run, splits)
    atomic_json(path, record)
    return record


def load_record(path: Path) -> dict:
    """The run record in ``path``; DataError naming the file if it is not one."""
    try:
        rec = json.loads(Path(path).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"run file {path} is damaged (not JSON: {e})") from None
    if not isinstance(rec, dict) or any(k not in rec for k in RECORD_KEYS):
        raise DataError(f"run file {path} is damaged (expected a JSON object with {', '.join(RECORD_KEYS)})")
    if rec["key"] != Path(path).stem:
        raise DataError(f"run file {path} is damaged (it holds run {rec['key']!r})")
    try:  # the record must be the run its name says: its own config hashes to its key
        key = run_key(TrainConfig.from_dict(rec["config"]), bool(rec["test"]))
    except (ValueError, TypeError, AttributeError) as e:
        raise DataError(f"run file {path} is damaged (its config is not a run config: {e})") from None
    if key != rec["key"]:
        raise DataError(f"run file {path} is damaged (its config is run {key}, not {rec['key']})")
    return rec


def stored_record(path: Path) -> dict | None:
    """The record in ``path``; None if there is none, or if it is damaged: then the file is moved
    aside to ``<name>.damaged`` with a warning naming it, and the run will be done again."""
    if not path.exists():
        return None
    try:
        return load_record(path)
    except DataError as e:
        aside = path.with_name(path.name + ".damaged")
        os.replace(path, aside)
        log.warning("chainzrule: warning: %s; moved to %s, the run is done again", e, aside)
        return None


def _die_with_parent(parent: int) -> None:
    """Linux: have the kernel SIGTERM this worker when the fight process dies, even by SIGKILL
    (``prctl(PR_SET_PDEATHSIG)``); elsewhere a no-op."""
    if not sys.platform.startswith("linux"):
        return
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def _worker_init(threads: int, parent: int) -> None:
    torch.set_num_threads(threads)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the parent stops us
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the parent's handler, inherited by fork
    _die_with_parent(parent)


def process_pool(jobs: int, threads: int | None = None) -> ProcessPoolExecutor:
    """A pool of ``jobs`` worker processes with ``threads`` torch threads each (default: the cores
    shared out, cores // jobs, at least 1), ignoring Ctrl-C (the parent stops them) and dying with
    the parent on Linux."""
    threads = threads or max(1, (os.cpu_count() or 1) // jobs)
    return ProcessPoolExecutor(jobs, initializer=_worker_init, initargs=(threads, os.getpid()))


def _execute_in_worker(task: Task, runs_dir: str) -> dict:
    return execute(task, Path(runs_dir))


def execute_group_in_worker(tasks: list[Task], runs_dir: str) -> list[dict]:
    """One pool (or Ray) job: the tasks of one batch group, trained as one stacked model where
    they can be (:func:`chainzrule.batched.execute_group`), each stored as ``runs/<key>.json``."""
    from ..batched import execute_group

    return execute_group(tasks, Path(runs_dir))


#: Most memory one batch group's members may take (their data: a split copy and a stacked copy each).
BATCH_MEMORY_BYTES = 4 << 30


def member_bytes(data) -> int:
    """Memory one batched member needs in a pool worker, estimated from a
    :class:`~chainzrule.data.Dataset` (or anything with ``X_train``, ``X_val``, ``X_test``): 5×
    its float32 data — its own split (validation carved per seed), its slice of the stacked
    training and validation tensors, the worker's split cache and the allocator's slack. Measured
    on the MNIST fight: a worker's resident memory grew to 12.5 GB with 7 members of 219 MB of
    data each (1.8 GB per member); in a fresh process 0.5 GB per member.

    >>> import numpy as np
    >>> from types import SimpleNamespace as NS
    >>> member_bytes(NS(X_train=np.zeros((100, 10)), X_val=None, X_test=np.zeros((20, 10))))
    24000
    """
    rows = sum(len(x) for x in (data.X_train, data.X_val, data.X_test) if x is not None)
    return int(5 * 4 * rows * data.X_train.shape[1])


def _memory_available() -> int | None:
    """``MemAvailable`` of /proc/meminfo in bytes (None where there is none)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def batch_member_cap(nbytes: int | None, slots: int) -> int | None:
    """Most members per batch group so that ``slots`` groups at once fit in memory: each group at
    most :data:`BATCH_MEMORY_BYTES` and half the available memory shared by the slots. None:
    no estimate, no cap.

    >>> batch_member_cap(None, 2) is None, batch_member_cap(1 << 40, 2)
    (True, 1)
    """
    if not nbytes:
        return None
    budget = BATCH_MEMORY_BYTES
    avail = _memory_available()
    if avail is not None:
        budget = min(budget, avail // (2 * max(1, slots)))
    return max(1, budget // nbytes)


def _lost(group: list, done: int) -> RunLost:
    what = f"{group[0].phase}:{group[0].contender} seed {group[0].seed}" + \
        (f" and {len(group) - 1} more runs batched with it" if len(group) > 1 else "")
    return RunLost(f"a worker process died while running {what} (killed by the operating system, most often "
                   f"for lack of memory); the {done} finished runs are kept and nothing of the lost ones was "
                   "recorded: run the same command to resume (--jobs 1 or --no-batch use less memory)")


class Executor:
    """Runs batches of tasks, in-process (``jobs=1``), in a process pool (``jobs>1``) or on a
    given ``pool`` (an object with ``submit(fn, *args) -> concurrent.futures.Future``,
    ``shutdown(wait, cancel_futures)`` and ``slots``, e.g. the Ray pool of
    :mod:`chainzrule.fight.ray_executor`), with one progress bar.

    With ``batch`` (the default) the pending tasks of each call are grouped by
    :func:`chainzrule.batched.eligible_groups` (at most ``ceil(pending / slots)`` runs per group
    when there are several slots, so that every worker gets work) and each group is one job:
    same-shaped runs are trained as one stacked model, every run's record is the one it gets
    alone (timing fields aside) and is stored in its own run file. ``member_bytes`` (see
    :func:`member_bytes`) caps the members per group by memory (:func:`batch_member_cap`)."""

    def __init__(self, runs_dir: Path, jobs: int, total: int, progress: bool = True, desc: str = "fight",
                 batch: bool = True, pool: Any = None, member_bytes: int | None = None) -> None:
        self.runs_dir = runs_dir
        self.jobs = jobs
        self.batch = batch
        if pool is not None:
            self.pool = pool
            self.slots = max(1, int(getattr(pool, "slots", jobs)))
        else:
            self.pool = process_pool(jobs) if jobs > 1 else None
            self.slots = jobs
        self.max_members = batch_member_cap(member_bytes, self.slots)
        self.bar = tqdm(total=total, desc=desc, unit="run", disable=not progress, dynamic_ncols=True)
        self.done = 0

    def _finish(self, rec: dict) -> None:
        self.done += 1
        self.bar.update(1)

    def skip(self, n: int) -> None:
        """``n`` runs counted in ``total`` will not be made (the other seeds of pruned trials): the
        progress bar's total shrinks, so it ends at 100% and its time estimate stays honest."""
        if n > 0:
            self.bar.total = max(self.bar.n, self.bar.total - n)
            self.bar.refresh()

    def groups(self, todo: list[Task]) -> list[list[Task]]:
        """The jobs for the pending ``todo``: batch groups, or one task per job without batching."""
        if not self.batch:
            return [[t] for t in todo]
        from ..batched import eligible_groups

        if not todo:  # every run of the call is on disk already (a resumed fight)
            return []
        sizes = [n for n in (math.ceil(len(todo) / self.slots) if self.slots > 1 else None, self.max_members)
                 if n is not None]
        return eligible_groups(todo, max_size=min(sizes) if sizes else None)

    def run(self, tasks: list[Task]) -> list[dict]:
        results: dict[int, dict] = {}
        todo = []
        for i, t in enumerate(tasks):  # finished runs come straight from disk
            stored = stored_record(self.runs_dir / f"{t.key}.json")
            if stored is not None:
                results[i] = stored
                self._finish(results[i])
            else:
                todo.append((i, t))
        index: dict[int, list[int]] = {}  # id(task) -> its indices in `tasks`
        for i, t in todo:
            index.setdefault(id(t), []).append(i)
        groups = self.groups([t for _, t in todo])
        left = len(todo)

        def place(group: list[Task], recs: list[dict]) -> None:
            nonlocal left
            for t, rec in zip(group, recs):
                i = index[id(t)].pop(0)
                results[i] = rec
                left -= 1
                self._finish(rec)

        if self.pool is None:
            for g in groups:
                t = g[0]
                self.bar.set_postfix_str(f"running {t.phase}:{t.contender} seed {t.seed}"
                                         f"{f' (+{len(g) - 1} batched)' if len(g) > 1 else ''} | left {left}")
                place(g, [execute(t, self.runs_dir)] if not self.batch else
                      execute_group_in_worker(g, str(self.runs_dir)))
        else:
            pending = {}
            for g in groups:
                fut = (self.pool.submit(_execute_in_worker, g[0], str(self.runs_dir)) if not self.batch else
                       self.pool.submit(execute_group_in_worker, g, str(self.runs_dir)))
                pending[fut] = g
            while pending:
                self.bar.set_postfix_str(f"running {min(len(pending), self.slots)} | left {left}")
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    g = pending.pop(fut)
                    try:
                        rec = fut.result()
                    except BrokenProcessPool:
                        raise _lost(g, self.done) from None
                    place(g, rec if self.batch else [rec])
        if todo:
            self.bar.set_postfix_str("")  # done: no run still shown as running
        # a run shared by two phases (e.g. the λ sweep hitting the tuned λ) is labelled per task
        return [{**results[i], "phase": t.phase, "contender": t.contender, "trial": t.trial}
                for i, t in enumerate(tasks)]

    def close(self, abort: bool = False) -> None:
        """Shut the pool down; with ``abort`` (an error or a signal), terminate the workers now
        instead of waiting for the runs in flight."""
        self.bar.close()
        if self.pool is not None:
            shutdown_pool(self.pool, abort, self.runs_dir)


def remove_stale_temps(runs_dir: Path) -> None:
    """Remove the hidden ``.NAME.*.tmp`` files of run files whose writer died mid-write (a worker
    terminated by a stop, a crash): never a finished run. Call it only when no writer is alive.

    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp()); _ = (d / ".k.json.ab12.tmp").write_text("{"); _ = (d / "k.json").write_text("{}")
    >>> remove_stale_temps(d); sorted(p.name for p in d.iterdir())
    ['k.json']
    """
    for stale in Path(runs_dir).glob(".*.tmp"):
        stale.unlink(missing_ok=True)


def shutdown_pool(pool: Any, abort: bool = False, runs_dir: Path | None = None) -> None:
    """Shut ``pool`` down: wait for the jobs in flight, or with ``abort`` (an error or a signal)
    cancel the queued ones, terminate a process pool's workers now and remove the temporaries of
    the run files they were writing in ``runs_dir`` (if given; :func:`remove_stale_temps`)."""
    if not abort or not isinstance(pool, ProcessPoolExecutor):
        pool.shutdown(wait=not abort, cancel_futures=True)
        return
    stop = getattr(pool, "terminate_workers", None)  # Python >= 3.14
    # before 3.14 the pool has no public handle on its processes: its private map is the only one
    procs = [] if stop else list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    if stop:
        stop()
    for p in procs:
        p.terminate()
    for p in procs:
        p.join(5)
        if p.is_alive():
            p.kill()
            p.join()
    if runs_dir is not None:  # every worker is gone: nobody is writing there
        remove_stale_temps(runs_dir)
