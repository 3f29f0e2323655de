"""Running a Fair Fight: tuning, final runs, size views and the λ sweep, resumable.

Phases (guide §4), each a list of runs:

1. **tune** — every contender gets the same number of Optuna trials (TPE, seeded) over its own
   hyperparameters, trained for ``tune_epochs`` on the train split and scored on the
   validation split (carved from train with ``tune_seed``). The test split is never read.
   Contenders are advanced in lockstep (a round of trials of all, then the next) so that
   ``--jobs`` and batching can run them side by side; TPE's random first trials share a round,
   and a trial's seeds run together while the pruner cannot prune it
   (:func:`.tuning.trial_rounds`: the same results as one trial at a time).
2. **final** — each contender's best configuration, full epochs, seeds ``0..seeds-1``; the only
   phase (with the two below) that reads the test split. Seed ``s`` fixes initialisation,
   validation carve and batch order identically for every contender.
3. **width** — accuracy-matched view: the chosen contender's tuned config at smaller widths.
4. **lambda** — the DREG λ ablation on the chosen contender's tuned config.

Every run is keyed by a hash of its full config (:func:`run_key`) and stored atomically as
``runs/<key>.json``; a run whose file exists is never repeated, so a killed fight resumes where it
stopped. Tuning replays deterministically from the stored trials. ``results.csv`` (one row per
run of this spec) is rebuilt from the run files at the end.

Executing runs (damaged run files, signals, worker processes, why no peak memory is recorded)
is :mod:`chainzrule.fight.executor`. SIGTERM or SIGINT stop the fight and its workers;
:class:`Interrupted` (a ``KeyboardInterrupt``) reaches the caller and the command exits with
128 + the signal number.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import math
import time
from pathlib import Path
from typing import Any

from ..config import ATTACKS, TrainConfig
from ..data.cache import atomic_write_text, file_sha256
from ..errors import ConfigError
from ..models import closest_width
from ..rundir import check_out_dir, check_out_kind
from ..sizing import check_fits, parameter_count
from ..train import build_model, check_devices, head_kind, load_data
from .executor import (Executor, Interrupted, Task, atomic_json, execute, load_record, member_bytes,  # noqa: F401
                       remove_stale_temps, run_key, stop_on_signals, stored_record)
from .spec import FightSpec
from .spec_sections import width_reg_field
from .tuning import Cell, cells, sampler_seed, tune, tune_cells, tuning_json, val_curve  # noqa: F401

#: Columns that differ between two executions of the same fight (peak memory: see the module doc).
TIMING_COLUMNS = ("train_seconds", "step_ms")
# --------------------------------------------------------------------------------------------
# planning
# --------------------------------------------------------------------------------------------


def _params_of(cfg: TrainConfig, in_features: int, num_classes: int, task: str) -> int:
    return parameter_count(cfg, in_features, num_classes, task)  # counted on the meta device: no memory


def match_widths(spec: FightSpec, in_features: int, num_classes: int, task: str) -> dict[str, dict]:
    """Parameter-matched configs: every mlp/kan contender's width solved (bisection on the exact
    count of the built model) to the reference's parameter count within 5%, at the same depth when
    some width gets there, else at the deepest depth that does (KANs have ~9x the parameters of
    an MLP per edge, so a small two-layer KAN can jump over the ±5% window)."""
    ref = spec.contender(spec.reference)
    ref_cfg = ref.train_config(spec.base)
    configs = {c.name: dict(c.config) for c in spec.contenders}
    if not spec.param_match or not ref_cfg.is_neural:
        return configs
    target = _params_of(ref_cfg, in_features, num_classes, task)
    for c in spec.contenders:
        cfg = c.train_config(spec.base)
        if c.name == ref.name or not cfg.is_neural or "hidden" in c.config:
            continue  # an explicit width in the contender wins
        best, depth = None, len(cfg.hidden)
        for depth in range(len(cfg.hidden), 0, -1):  # same depth if possible, else the deepest that fits
            best, err = _solve_width(cfg, depth, target, in_features, num_classes, task)
            if err <= 0.05:
                break
        else:
            raise ConfigError(f"contender {c.name}: no width matches the reference's {target} parameters within 5% "
                              f"at any depth <= {len(cfg.hidden)}")
        configs[c.name] = {**c.config, "hidden": [best] * depth}
    return configs


def _solve_width(cfg: TrainConfig, depth: int, target: int, in_features: int, num_classes: int,
                 task: str) -> tuple[int, float]:
    """Width (bisection on the exact parameter count) closest to ``target`` at ``depth``, and its error."""
    @functools.cache  # the bisection asks for some widths twice; each count builds a model
    def count(w: int) -> int:
        return _params_of(cfg.replace(hidden=[w] * depth), in_features, num_classes, task)

    best = closest_width(count, target, limit=1 << 16)
    return best, abs(count(best) - target) / target


def final_config(spec: FightSpec, configs: dict[str, dict], tuning: dict[str, dict], name: str, **changes) -> TrainConfig:
    return TrainConfig.from_dict({**spec.base, **configs[name], **tuning[name]["best_params"], **changes})


def plan_after_tuning(spec: FightSpec, configs: dict[str, dict], tuning: dict[str, dict],
                      cell: Cell | None = None, baseline: str | None = None) -> list[Task]:
    """Final, width and λ-sweep tasks of one cell, given that cell's tuned parameters; the width
    sweep covers the ``[accuracy_matched]`` contender and ``baseline`` (default: the
    :func:`best_baseline` of ``tuning``; a fight with several cells picks one for all of them)."""
    cv = (cell or Cell()).config()
    tasks = [Task("final", c.name, final_config(spec, configs, tuning, c.name, seed=s, **cv), True, s)
             for s in range(spec.seeds) for c in spec.contenders]
    acc = spec.accuracy_matched
    if acc and acc["contender"] in configs:
        b = baseline if baseline is not None else best_baseline(acc, tuning)
        swept = [acc["contender"]] + ([b] if b else [])
        for name in swept:
            tuned_cfg = final_config(spec, configs, tuning, name)
            grid = width_grid(tuned_cfg, spec.contender(name).tune, acc)
            for s in range(acc.get("seeds") or spec.seeds):
                for w in acc["widths"]:
                    for point in grid:
                        cfg = final_config(spec, configs, tuning, name, seed=s, hidden=[w] * len(tuned_cfg.hidden),
                                           **point, **cv)
                        tasks.append(Task("width", name, cfg, True, s))
    sweep = spec.lambda_sweep
    if sweep and sweep["contender"] in configs:
        for s in range(sweep.get("seeds") or spec.seeds):
            for lam in sweep["values"]:
                cfg = final_config(spec, configs, tuning, sweep["contender"], seed=s, dreg=lam, **cv)
                tasks.append(Task("lambda", sweep["contender"], cfg, True, s))
    return tasks


def width_grid(cfg: TrainConfig, space: dict, acc: dict) -> list[dict[str, float]]:
    """The hyperparameter points every width of a family's sweep tries: its tuned learning rate
    times each of ``acc["lr_factors"]`` and, when the family tunes one, its tuned regularization
    strength (:data:`WIDTH_REG_FIELDS`) times each of ``acc["reg_factors"]`` — all combinations,
    each value kept inside the family's search range (:func:`width_values`). Without factors: the
    tuned values alone (one run per width and seed)."""
    axes = [("lr", width_values(cfg.lr, acc.get("lr_factors") or [1.0], space.get("lr")))]
    reg = width_reg_field(space, cfg)
    if reg is not None:
        axes.append((reg, width_values(float(getattr(cfg, reg)), acc.get("reg_factors") or [1.0], space[reg])))
    grid = [{}]
    for field, values in axes:
        grid = [{**p, field: v} for p in grid for v in values]
    return grid


def width_values(value: float, factors: list[float], space: Any = None) -> list[float]:
    """The values of one hyperparameter each width of a sweep tries: ``value`` (the family's tuned
    one) times each factor, kept inside the family's search range ``space`` (``[lo, hi, scale]``
    or ``{"choices": [...]}``; None: no range), duplicates dropped, in ascending order. The
    width's run with the best validation accuracy is the one its size view uses
    (``Fight.width_rows``).

    >>> width_values(0.01, [0.5, 1.0, 4.0])
    [0.005, 0.01, 0.04]
    >>> width_values(0.01, [0.5, 1.0, 4.0], [3e-4, 3e-2, "log"])   # 0.04 is outside the range: 0.03
    [0.005, 0.01, 0.03]
    >>> width_values(0.03, [1.0, 4.0], [3e-4, 3e-2, "log"])        # at the range's top already: one run
    [0.03]
    """
    if factors == [1.0]:
        return [value]  # the family's own value, untouched (the same run keys as a sweep without factors)
    lo, hi = 0.0, math.inf
    if isinstance(space, dict) and space.get("choices"):
        lo, hi = min(space["choices"]), max(space["choices"])
    elif isinstance(space, (list, tuple)) and len(space) == 3:
        lo, hi = float(space[0]), float(space[1])
    return sorted({min(max(value * f, lo), hi) if f != 1.0 else value for f in factors})


def best_baseline(acc: dict, tuning: dict[str, dict]) -> str | None:
    """The ``[accuracy_matched]`` baseline family to sweep: of ``acc["baselines"]``, the one whose
    tuned best validation accuracy is highest (validation only: no test data decides it)."""
    scored = [(tuning[b]["best_val_accuracy"], b) for b in acc.get("baselines") or ()
              if b in tuning and tuning[b].get("best_val_accuracy") is not None]
    return max(scored)[1] if scored else None


def fight_baseline(spec: FightSpec, tuned: dict[str, dict]) -> str | None:
    """:func:`best_baseline` over every cell of a fight: the family whose tuned validation accuracy,
    averaged over the cells, is highest (one family swept in every cell, so the curves pair up)."""
    acc = spec.accuracy_matched
    if not acc or not acc.get("baselines"):
        return None
    mean = {}
    for b in acc["baselines"]:
        vals = [v.get("best_val_accuracy") for v in (tuned.get(b) or {}).values()]
        if vals and all(x is not None for x in vals):
            mean[b] = {"best_val_accuracy": sum(vals) / len(vals)}
    return best_baseline(acc, mean)


def _count_after_tuning(spec: FightSpec) -> int:
    return len(cells(spec)) * _count_after_tuning_per_cell(spec)


def _count_after_tuning_per_cell(spec: FightSpec) -> int:
    n = spec.seeds * len(spec.contenders)
    if spec.accuracy_matched:
        families = 1 + bool(spec.accuracy_matched.get("baselines"))
        acc = spec.accuracy_matched  # at most: a factor outside a range is skipped, a family may tune no strength
        n += (families * (acc.get("seeds") or spec.seeds) * len(acc["widths"])
              * len(acc.get("lr_factors") or [1.0]) * len(acc.get("reg_factors") or [1.0]))
    if spec.lambda_sweep:
        n += (spec.lambda_sweep.get("seeds") or spec.seeds) * len(spec.lambda_sweep["values"])
    return n


# --------------------------------------------------------------------------------------------
# results.csv
# --------------------------------------------------------------------------------------------


def _get(d: dict, *path: str):
    for p in path:
        if not isinstance(d, dict) or p not in d:
            return None
        d = d[p]
    return d


#: results.csv columns taken from a run record's ``result`` (the path into it), in column order:
#: these come after the config columns, then the attack columns, then :data:`RESULT_TAIL_COLUMNS`
RESULT_COLUMNS = {
    "params": ("params",), "val_accuracy": ("val", "accuracy"), "test_accuracy": ("test", "accuracy"),
    "test_mae": ("test", "mae"), "test_off_by_one": ("test", "off_by_one"), "test_qwk": ("test", "qwk"),
    "jacobian_fro_mean": ("jacobian_fro", "mean"), "jacobian_fro_p99": ("jacobian_fro", "p99"),
    "tau_input": ("tau_input",), "tau_train": ("tau_train",), "pgv": ("pgv",), "lipschitz_bound": ("lipschitz_bound",),
    "corruption_accuracy": ("robustness", "corruption_accuracy"),
}
RESULT_TAIL_COLUMNS = {**{k: (k,) for k in TIMING_COLUMNS},
                       **{k: (k,) for k in ("diverged", "unstable", "selected_epoch", "epochs_run")}}


def record_row(rec: dict, labels: dict[str, str]) -> dict[str, Any]:
    """Flatten one run record into a results.csv row (see docs/FIGHT_FORMAT.md)."""
    c, r = rec["config"], rec["result"]
    row = {
        "key": rec["key"], "phase": rec["phase"], "contender": rec["contender"],
        "label": labels.get(rec["contender"], rec["contender"]), "seed": rec["seed"], "trial": rec.get("trial"),
        "trial_state": rec.get("trial_state"),
        "repeat": c.get("cv_repeat") if c.get("cv_folds") else None,
        "fold": c.get("cv_fold") if c.get("cv_folds") else None,
        "n_train": _get(rec, "data", "n_train"), "n_val": _get(rec, "data", "n_val"),
        "n_test": _get(rec, "data", "n_test"),
        "model": c["model"], "activation": c["activation"] if c["model"] in ("mlp", "cnn") else None,
        "hidden": "-".join(str(w) for w in c["hidden"]), "reg": c["reg"], "reg_strength": c["reg_strength"],
        "dreg": TrainConfig.from_dict(c).dreg_lambda, "lr": c["lr"], "epochs": c["epochs"],
        **{col: _get(r, *path) for col, path in RESULT_COLUMNS.items()},
    }
    for eps in c.get("adv_eps", []) if c.get("robustness") else []:
        for m in ATTACKS:
            row[f"{m}_{eps:g}"] = _get(r, "robustness", f"{m}_{eps:g}")
    row.update({col: _get(r, *path) for col, path in RESULT_TAIL_COLUMNS.items()})
    row["patience"] = c.get("patience")
    if r.get("failed"):  # a run that could not be done (e.g. a classical model on one class): why
        row["failed"] = r["failed"]
    return row


def write_results_csv(path: Path, rows: list[dict]) -> Path:
    """Write rows atomically; the header is the union of the rows' keys in first-seen order."""
    header: list[str] = []
    for row in rows:
        header += [k for k in row if k not in header]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=header, lineterminator="\n")
    w.writeheader()
    for row in rows:
        w.writerow({k: ("" if v is None else repr(v) if isinstance(v, float) else v) for k, v in row.items()})
    return atomic_write_text(path, buf.getvalue())


# --------------------------------------------------------------------------------------------
# the fight
# --------------------------------------------------------------------------------------------


def _check_before_runs(spec: FightSpec, in_features: int, num_classes: int, task: str) -> dict[str, dict]:
    """Everything that needs the data's shape, before any run: head/task compatibility, DREG on
    KAN, parameter matching, and that every network of every phase fits in memory."""
    for c in spec.contenders:
        cfg = c.train_config(spec.base)
        if cfg.is_neural:
            head_kind(cfg, task)
            build_model(cfg.replace(hidden=[2] * len(cfg.hidden)), in_features, num_classes, task)
    configs = match_widths(spec, in_features, num_classes, task)
    for name, conf in configs.items():
        cfg = TrainConfig.from_dict({**spec.base, **conf})
        check_fits(cfg, in_features, num_classes, task)
        acc = spec.accuracy_matched
        if acc and (acc["contender"] == name or name in acc.get("baselines", ())):
            for w in acc["widths"]:
                check_fits(cfg.replace(hidden=[w] * len(cfg.hidden)), in_features, num_classes, task)
    return configs


#: Batching by default up to this many parameters in the reference network: the Pima quick fight
#: (1,666 parameters) runs 1.97× faster batched, the MNIST quick fight (784-256-256-10, ~270k) 0.63×
#: (slower: stacked matmuls of compute-bound layers, fewer parallel jobs). Measured 2026-12-01.
AUTO_BATCH_MAX_PARAMS = 20_000


def run_fight(spec: FightSpec, out: Path, jobs: int = 1, progress: bool = True, batch: bool | None = None,
              executor: str | None = None, ray_address: str | None = None, storage: str | None = None) -> Path:
    """Run (or resume) ``spec`` into ``out``; returns the path of ``results.csv``.

    ``out`` is checked for writability first, then the executor (``local`` or ``ray`` at
    ``ray_address``: connected here), the Optuna ``storage`` URL, the data and every
    contender's network; nothing is written before all of that passes. ``batch``, ``executor``,
    ``ray_address`` and ``storage`` default to the spec's ``[fight]`` values (batch on, local
    pool, no storage). Neither the call nor the spec deciding, runs are batched when the reference
    network has at most :data:`AUTO_BATCH_MAX_PARAMS` parameters (small networks are dispatch-bound
    and gain; large ones are compute-bound and lose: BENCHMARKS.md). SIGTERM/SIGINT raise :class:`Interrupted` after the workers are stopped
    (see the module doc)."""
    from .ray_executor import make_pool
    from .study_store import StudyMirror, open_storage

    ex_opts = getattr(spec, "execution", None) or {}
    batch = ex_opts.get("batch") if batch is None else batch  # None: decided by the network's size below
    out = check_out_dir(out, subdirs=("runs", "plots"))
    check_out_kind(out, "fight", quick=spec.quick)
    given = lambda v, key, default=None: v if v is not None else ex_opts.get(key, default)  # "" is given: refused
    store = open_storage(given(storage, "storage"))  # a bad URL: one line, before any run
    pool = make_pool(given(executor, "executor", "local"), given(ray_address, "ray_address"))
    with stop_on_signals():
        try:
            ref_cfg = spec.contender(spec.reference).train_config(spec.base)
            if pool is None:  # runs on this machine: its devices (a Ray cluster's workers may have others)
                check_devices(c.train_config(spec.base) for c in spec.contenders)
            data = load_data(ref_cfg)  # every input problem surfaces here, before any run starts
            in_features, num_classes, task = data.in_features, data.num_classes, data.task
            nbytes = member_bytes(data)
            configs = _check_before_runs(spec, in_features, num_classes, task)
            if batch is None:
                batch = _params_of(ref_cfg, in_features, num_classes, task) <= AUTO_BATCH_MAX_PARAMS
        except BaseException:
            if pool is not None:
                pool.shutdown()
            raise
        runs_dir = _prepare_folder(spec, out, configs, in_features, num_classes, task)
        cell_list = cells(spec)
        n_tune = spec.trials * spec.tune_seeds * sum(1 for c in spec.contenders if c.tune) * len(cell_list)  # at most
        ex = Executor(runs_dir, jobs, n_tune + _count_after_tuning(spec), progress,  # pruned trials: ex.skip
                      batch=batch, pool=pool, member_bytes=nbytes)
        ok = False
        try:
            tuned = tune_cells(spec, configs, ex, cell_list, StudyMirror(store, spec) if store is not None else None)
            atomic_json(out / "tuning.json", tuning_json(spec, tuned))
            base = fight_baseline(spec, tuned)
            tasks = [t for cell in cell_list
                     for t in plan_after_tuning(spec, configs, {n: v[cell.name] for n, v in tuned.items()}, cell, base)]
            ex.skip(_count_after_tuning(spec) - len(tasks))  # width-sweep values a range cut off, strengths not tuned
            records = ex.run(tasks)
            ok = True
        finally:
            ex.close(abort=not ok)
    labels = {c.name: c.label for c in spec.contenders}
    tune_records = [{**load_record(runs_dir / f"{k}.json"), "phase": "tune", "contender": name,
                     "trial": t["trial"], "trial_state": t["state"]}
                    for name, by_cell in tuned.items() for v in by_cell.values() for t in v["trials"] for k in t["keys"]]
    rows = [record_row(r, labels) for r in tune_records + records]
    return write_results_csv(out / "results.csv", rows)


#: what a fight writes once its runs are done, besides its report; removed with the report when it
#: starts, so an interrupted fight never leaves the previous spec's results beside this one's
#: spec.json (a complete set or none)
END_PRODUCTS = ("results.csv", "tuning.json")


def remove_end_products(out: Path) -> None:
    """Remove :data:`END_PRODUCTS` and the report (:func:`.report.remove_report_files`) from the
    fight folder ``out``; its runs stay."""
    from .report import remove_report_files  # imported here: the report's plotting is not a run's

    for name in END_PRODUCTS:
        (out / name).unlink(missing_ok=True)
    remove_report_files(out)


def _prepare_folder(spec: FightSpec, out: Path, configs: dict, in_features: int, num_classes: int, task: str) -> Path:
    data = {"in_features": in_features, "num_classes": num_classes, "task": task, **_data_fingerprint(spec.dataset)}
    _check_same_data(out, data)
    out.mkdir(parents=True, exist_ok=True)
    runs_dir = out / "runs"
    runs_dir.mkdir(exist_ok=True)
    remove_stale_temps(runs_dir)
    remove_end_products(out)  # written again from the stored runs at the end
    atomic_json(out / "spec.json", {**spec.to_dict(), "configs": configs, "created": time.strftime("%Y-%m-%d"),
                                     "data": data})
    return runs_dir


def _data_fingerprint(dataset: str) -> dict:
    """``{"sha256": ...}`` of a ``csv:PATH`` dataset's file (its run keys name only its path), else {}."""
    return {"sha256": file_sha256(dataset[4:])} if dataset.startswith("csv:") else {}


def _check_same_data(out: Path, data: dict) -> None:
    """ConfigError if ``out`` holds runs made on another version of the same CSV file."""
    try:
        old = json.loads((out / "spec.json").read_text()).get("data") or {}
    except (OSError, ValueError, AttributeError):
        return
    if data.get("sha256") and old.get("sha256") and old["sha256"] != data["sha256"]:
        raise ConfigError(f"--out {out} holds runs on another version of the data file (sha256 {old['sha256'][:12]}…, "
                          f"now {data['sha256'][:12]}…): expected the same data to resume; choose a new --out")
