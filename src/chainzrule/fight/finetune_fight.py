"""The fine-tuned encoder fight: every head × seed fine-tuned end to end, best-dev checkpoint.

Protocol (issue 10; spec format in :mod:`chainzrule.fight.finetune_spec`, training in
:mod:`chainzrule.finetune`): each contender (a head on the same pretrained encoder) is fine-tuned
with seeds ``0..seeds-1`` under one standard BERT-style recipe, reported beside the results. The
recipe's one knob that differs between heads is tuned: a cumulative-link head must move its
cutpoints by units, which a linear head never needs, so one head learning rate for all would decide
the fight (measured: SST-5, encoder frozen, 801 steps — linear 42.8% at 1e-3 or 1e-2, the
cumulative-link head 33.9% at 1e-3 and 39.2% at 1e-2). With ``head_lrs`` each head picks its own on
dev (seed 0, full-length runs, :func:`choose_head_lr`); everything else is shared. At several
minutes per run on a CPU a wider search would cost more than the fight. The checkpoint with the
best accuracy on the official dev split is restored before the test split is read. A seed fixes the head's
initialization, the dropout masks and the batch order, and is shared across heads, so the
comparisons are paired by seed.

Runs are keyed by the hash of their config and dataset (:func:`run_key`), stored atomically as
``OUT/runs/<key>.json`` and never repeated: an interrupted fight resumes at the next run. Runs go
one after the other in this process (a fine-tuning step already uses every core), or ``jobs`` at a
time in worker processes that share the cores (``--jobs``; on 2 cores two one-thread runs make
~15% more steps per second than one two-thread run). Only when all
are done are the outputs written: ``spec.json``, ``results.csv`` (one row per run),
``summary.csv`` (one row per head), ``tuning.csv`` (one row per head and learning rate, with
tuning), ``plots/dev_curves.png`` and ``report.md`` (:mod:`.finetune_report`) — all of them or none
(:func:`write_all_outputs`: an interrupted write removes its part; a rerun writes them all).

>>> run_key({"head": "linear"}, "sst5") == run_key({"head": "linear"}, "sst5") != run_key({"head": "clm"}, "sst5")
True
"""

from __future__ import annotations

import json
import time
from concurrent.futures import as_completed
from pathlib import Path
from typing import Any

import numpy as np

from ..config import content_hash
from ..data.cache import atomic_write_text
from ..data.text import ENCODER_NAME as ENCODER
from ..errors import check_int
from ..finetune import FinetuneConfig, finetune
from .finetune_report import write_outputs
from .finetune_spec import FinetuneSpec

__all__ = ["run_key", "load_text_splits", "train_and_store", "run_finetune_fight", "choose_head_lr", "tuning_row",
           "result_row", "write_all_outputs", "remove_outputs"]


def run_key(config: dict, dataset: str) -> str:
    """20 hex digits of sha256 over the run config, the dataset and the encoder."""
    return content_hash({"finetune": config, "dataset": dataset, "encoder": ENCODER}, 20)


def load_text_splits(dataset: str, data_dir: str | None) -> dict[str, tuple[list[str], np.ndarray]]:
    """``{"train", "val", "test"}`` → (sentences, labels) of SST-5 (``dev.txt`` is ``val``)."""
    from ..data.text_files import SST5_FILES, find_sst5_dir, read_sst5_file

    folder = find_sst5_dir(data_dir)
    return {split: read_sst5_file(folder / f) for split, f in zip(("train", "val", "test"), SST5_FILES)}


def _record(path: Path) -> dict | None:
    try:
        rec = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return None  # damaged or half-written: run again
    return rec if isinstance(rec, dict) and rec.get("key") == path.stem and "result" in rec else None


def train_and_store(contender: str, seed: int, cfg: FinetuneConfig, splits: dict, dataset: str, path: Path,
                    loader, progress: bool = False) -> dict:
    """One run: a fresh encoder from ``loader``, fine-tuned under ``cfg``; the run's record is
    written atomically to ``path`` and returned. Module level, so that a process pool can run it."""
    encoder, tokenizer, dim = loader()
    t0 = time.perf_counter()
    _, result = finetune(cfg, splits, encoder=encoder, tokenizer=tokenizer, dim=dim, progress=progress)
    rec = {"key": path.stem, "contender": contender, "seed": seed, "dataset": dataset, "encoder": ENCODER,
           "config": cfg.to_dict(), "result": {**result, "wall_seconds": time.perf_counter() - t0}}
    atomic_write_text(path, json.dumps(rec, allow_nan=True))
    return rec


def run_finetune_fight(spec: FinetuneSpec, out: Path, progress: bool = True, encoder_loader=None,
                       jobs: int = 1, threads: int | None = None) -> Path:
    """Run (or resume) ``spec`` into ``out``; returns the path of ``report.md``.

    With ``spec.head_lrs`` (two or more) each head is first run with seed 0 at every learning rate
    of the list and keeps the one with the best dev accuracy (ties: the smaller); its seeds then
    run at it, seed 0's run being the tuning run itself. Test accuracy plays no part in the choice.

    ``encoder_loader``: a callable giving a fresh ``(encoder, tokenizer, dim)`` per run (default:
    the pretrained all-MiniLM-L6-v2 of :func:`chainzrule.finetune.load_pretrained_encoder`);
    picklable when ``jobs > 1``. ``jobs``: runs trained at once, each in a worker process with
    ``threads`` torch threads (default cores // jobs; the tuning runs first, then the seeds; on 2 cores two
    one-thread runs get through ~15% more steps per second than one two-thread run). A run's
    record does not depend on ``jobs`` beyond float rounding.
    """
    from tqdm.auto import tqdm

    from ..finetune import load_pretrained_encoder
    from .executor import process_pool, remove_stale_temps, shutdown_pool

    check_int("jobs", jobs)
    from ..rundir import check_out_dir, check_out_kind

    # before any work: not into another command's folder, nor --quick into a full run's
    check_out_kind(check_out_dir(out, subdirs=("runs", "plots")), "finetune", quick=spec.quick)
    loader = encoder_loader or load_pretrained_encoder
    splits = load_text_splits(spec.dataset, spec.data_dir)  # a missing folder fails before any run
    loader()  # the encoder extra and its weights, before any run
    out = Path(out)
    runs = out / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(runs)
    pool = process_pool(jobs, threads) if jobs > 1 else None

    def run_all(tasks: list[tuple[Any, int, FinetuneConfig]]) -> list[dict]:
        """The records of ``tasks`` (contender, seed, config), in order: stored runs read back,
        the others trained, one after the other in this process or ``jobs`` at a time in the pool."""
        recs: list[dict | None] = [None] * len(tasks)
        futures = {}
        for i, (c, seed, cfg) in enumerate(tasks):
            path = runs / f"{run_key(cfg.to_dict(), spec.dataset)}.json"
            recs[i] = _record(path) if path.exists() else None
            if recs[i] is None and pool is None:
                recs[i] = train_and_store(c.name, seed, cfg, splits, spec.dataset, path, loader, progress)
            elif recs[i] is None:
                futures[pool.submit(train_and_store, c.name, seed, cfg, splits, spec.dataset, path, loader)] = i
                continue
            bar.update(1)
        for fut in as_completed(futures):
            recs[futures[fut]] = fut.result()
            bar.update(1)
        return recs

    labels = {c.name: c.label for c in spec.contenders}
    tuning: list[dict] = []
    ok = False
    try:
        with tqdm(total=spec.n_runs, desc=f"fine-tune {spec.name}", unit="run", disable=not progress) as bar:
            chosen = {c.name: spec.lrs_of(c)[0] if spec.lrs_of(c) else None for c in spec.contenders}
            tuned: dict[str, dict] = {}  # head → its seed-0 run at the chosen lr
            trial_plan = [(c, lr) for c in spec.contenders if spec.tunes_head(c) for lr in spec.lrs_of(c)]
            if trial_plan:  # seed 0 at every head lr of the head's list; the best dev accuracy wins
                recs = run_all([(c, 0, spec.config(c, 0, lr)) for c, lr in trial_plan])
                for c in spec.contenders:
                    trials = [(lr, rec) for (tc, lr), rec in zip(trial_plan, recs) if tc is c]
                    if not trials:
                        continue
                    chosen[c.name] = choose_head_lr(trials)
                    tuned[c.name] = dict(trials)[chosen[c.name]]
                    tuning += [tuning_row(rec, labels[c.name], lr, lr == chosen[c.name]) for lr, rec in trials]
            # seed-major: every head before the next seed; a tuned head's seed 0 is its tuning run
            plan = [(c, seed) for seed in range(spec.seeds) for c in spec.contenders]
            new = iter(run_all([(c, seed, spec.config(c, seed, chosen[c.name])) for c, seed in plan
                                if not (seed == 0 and c.name in tuned)]))
            records = [tuned[c.name] if seed == 0 and c.name in tuned else next(new) for c, seed in plan]
        ok = True
    finally:
        if pool is not None:
            shutdown_pool(pool, abort=not ok, runs_dir=runs)
    return write_all_outputs(spec, out, [result_row(r, labels[r["contender"]]) for r in records], records, tuning)


#: What :func:`~.finetune_report.write_outputs` writes into a fine-tune fight folder besides
#: ``plots/dev_curves.png``: removed together when their writing is interrupted (runs/ stays: it is
#: the fight's state; previous/ stays: it is kept by hand).
OUTPUTS = ("spec.json", "results.csv", "summary.csv", "tuning.csv", "report.md")
PLOTS = ("dev_curves.png", ".dev_curves.png.tmp")


def remove_outputs(out: Path) -> None:
    """Remove :data:`OUTPUTS` and the dev-curve plot from the fine-tune fight folder ``out``
    (``plots/`` too when that leaves it empty); its runs stay."""
    out = Path(out)
    for path in (*(out / n for n in OUTPUTS), *(out / "plots" / n for n in PLOTS)):
        try:
            path.unlink(missing_ok=True)
        except OSError:
            pass  # cleaning up after a failure: never hide the failure itself
    try:
        (out / "plots").rmdir()
    except OSError:
        pass  # absent, or holds other files


def write_all_outputs(spec: FinetuneSpec, out: Path, rows: list[dict], records: list[dict],
                      tuning: list[dict] | None = None) -> Path:
    """:func:`~.finetune_report.write_outputs` (spec.json, results.csv, summary.csv, tuning.csv with
    head-lr tuning, plots/dev_curves.png, report.md; returns report.md) as one set: a write that
    fails or is interrupted (Ctrl-C, SIGTERM) removes them all (:func:`remove_outputs`; runs/ stays)
    and re-raises, and a rerun, which reads the stored runs back, writes them all again. A
    tuning.csv of an earlier spec with head-lr tuning is removed when this one has none."""
    out = Path(out)
    try:
        if not tuning:
            (out / "tuning.csv").unlink(missing_ok=True)  # not this spec's: never beside its results
        return write_outputs(spec, out, rows, records, tuning)
    except BaseException:
        remove_outputs(out)
        raise


def choose_head_lr(trials: list[tuple[float, dict]]) -> float:
    """The learning rate whose run has the best dev accuracy (ties: the first, i.e. the smaller
    of a sorted list; a run without a dev accuracy never wins).

    >>> rec = lambda acc: {"result": {"val": {"accuracy": acc}}}
    >>> choose_head_lr([(1e-3, rec(0.40)), (1e-2, rec(0.45)), (3e-2, rec(0.45))])
    0.01
    """
    def dev(rec: dict) -> float:
        v = (rec["result"].get("val") or {}).get("accuracy")
        return v if isinstance(v, (int, float)) and np.isfinite(v) else -np.inf

    return max(trials, key=lambda t: (dev(t[1]), -t[0]))[0]


def tuning_row(rec: dict, label: str, head_lr: float, chosen: bool) -> dict[str, Any]:
    """One ``tuning.csv`` row: a head at one learning rate (seed 0) and its dev accuracy in %
    (the test split is left out of the tuning table: it plays no part in the choice)."""
    res = rec["result"]
    val = (res.get("val") or {}).get("accuracy")
    return {"contender": rec["contender"], "label": label, "head_lr": head_lr, "seed": rec["seed"],
            "val_accuracy": None if val is None else 100.0 * val, "chosen": chosen, "diverged": res.get("diverged"),
            "wall_seconds": res.get("wall_seconds"), "key": rec["key"]}


def result_row(rec: dict, label: str) -> dict[str, Any]:
    """Flatten one run record into a ``results.csv`` row (accuracies in %, as in the fights)."""
    cfg, res = rec["config"], rec["result"]
    test = res.get("test") or {}

    def pct(v):
        return None if v is None else 100.0 * v

    return {"contender": rec["contender"], "label": label, "seed": rec["seed"], "key": rec["key"],
            "head": cfg["head"], "hidden": "-".join(map(str, cfg["hidden"])) or None,
            "activation": cfg["activation"] if cfg["hidden"] else None, "dreg": cfg["dreg"],
            "test_accuracy": pct(test.get("accuracy")), "val_accuracy": pct((res.get("val") or {}).get("accuracy")),
            "test_mae": test.get("mae"), "test_qwk": test.get("qwk"), "test_off_by_one": pct(test.get("off_by_one")),
            "best_epoch": res.get("best_step", 0) / max(1, res["steps"]) * cfg["epochs"] if res.get("steps") else None,
            "diverged": res.get("diverged"), "grad_norm_max": res.get("grad_norm_max"),
            "params_head": res.get("params_head"), "params_total": res.get("params_total"),
            "train_seconds": res.get("train_seconds"), "wall_seconds": res.get("wall_seconds")}
