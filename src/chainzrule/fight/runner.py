"""Running a Fair Fight: tuning, final runs, size views and the λ sweep, resumable.

Phases (guide §4), each a list of runs:

1. **tune** — every contender gets the same number of Optuna trials (TPE, seeded) over its own
   hyperparameters, trained for ``tune_epochs`` on the train split and scored on the
   validation split (carved from train with ``tune_seed``). The test split is never read.
   Contenders are advanced in lockstep (trial 1 of all, then trial 2, …) so that ``--jobs``
   can run them side by side.
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
import io
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import ATTACKS, TrainConfig, content_hash
from ..data.cache import atomic_write_text
from ..errors import ConfigError
from ..models import closest_width
from ..rundir import check_out_dir
from ..sizing import check_fits, parameter_count
from ..train import build_model, head_kind, load_data
from .executor import (Executor, Interrupted, Task, atomic_json, execute, load_record, run_key,  # noqa: F401
                       stop_on_signals, stored_record)
from .spec import FightSpec

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
    count = lambda w: _params_of(cfg.replace(hidden=[w] * depth), in_features, num_classes, task)
    best = closest_width(count, target, limit=1 << 16)
    return best, abs(count(best) - target) / target


def _suggest(trial, name: str, space: Any) -> Any:
    if isinstance(space, dict):
        return trial.suggest_categorical(name, space["choices"])
    lo, hi, scale = space
    if scale.startswith("int"):
        return trial.suggest_int(name, int(lo), int(hi), log=scale == "int-log")
    return trial.suggest_float(name, float(lo), float(hi), log=scale == "log")


def _score(rec: dict) -> float:
    v = (rec["result"].get("val") or {}).get("accuracy")
    return float(v) if v is not None and math.isfinite(v) else 0.0


@dataclass(frozen=True)
class Cell:
    """One train/test split of a fight: the dataset's own (``repeat``/``fold`` None) or fold
    ``fold`` of repeat ``repeat`` of ``[fight] resampling``. Tuning, finals, width and λ runs are
    done per cell; tuning reads only the cell's training folds (validation carved from them)."""

    repeat: int | None = None
    fold: int | None = None
    folds: int = 0

    @property
    def name(self) -> str:
        return "" if self.fold is None else f"r{self.repeat}f{self.fold}"

    def config(self) -> dict[str, int]:
        return {} if self.fold is None else {"cv_folds": self.folds, "cv_fold": self.fold, "cv_repeat": self.repeat}


def cells(spec: FightSpec) -> list[Cell]:
    r = spec.resampling
    if not r:
        return [Cell()]
    return [Cell(rep, f, r["folds"]) for rep in range(r["repeats"]) for f in range(r["folds"])]


def sampler_seed(spec: FightSpec, contender: str, cell: Cell = Cell()) -> int:
    """The TPE sampler seed of one contender's study: derived from ``tune_seed``, the contender's
    name and the cell, so every contender explores its space independently, and the same on every
    machine and every resume."""
    return int(content_hash({"tune_seed": spec.tune_seed, "contender": contender, "cell": cell.name}, 8), 16)


def _pruner(spec: FightSpec, epochs: int):
    import optuna

    if spec.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max(epochs, 1), reduction_factor=3)
    if spec.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=max(2, spec.trials // 5), n_warmup_steps=1)
    return optuna.pruners.NopPruner()


def val_curve(rec: dict, epochs: int) -> list[float]:
    """Best-so-far validation accuracy after each epoch of a run (what its checkpoint would score
    if stopped there), padded with its final value to ``epochs`` when it stopped early; [] for a
    run without epochs (classical models)."""
    hist = (rec["result"].get("history") or {}).get("val_accuracy") or []
    out, best = [], 0.0
    for v in hist:
        best = max(best, float(v) if v is not None and math.isfinite(v) else 0.0)
        out.append(best)
    return out + [best] * (epochs - len(out)) if out else []


def tune(spec: FightSpec, configs: dict[str, dict], ex: Executor, cell: Cell | None = None) -> dict[str, dict]:
    """Equal-budget Optuna tuning of every contender in every cell (:func:`tune_cells`); with one
    cell, the per-contender result of that cell."""
    out = tune_cells(spec, configs, ex, [cell or Cell()])
    return {name: v[(cell or Cell()).name] for name, v in out.items()}


def tune_cells(spec: FightSpec, configs: dict[str, dict], ex: Executor, cell_list: list[Cell],
               mirror=None) -> dict[str, dict]:
    """Tuning v2 (guide §4.2): per contender and cell, ``spec.trials`` Optuna trials (TPE, sampler
    seed :func:`sampler_seed`) at the full epoch budget (``tune_epochs``, default the final
    epochs) with early stopping, each scored on ``tune_seeds`` seeds (trial value = mean
    best-validation accuracy). A trial first runs its first seed; that run's per-epoch
    best-so-far validation curve is reported to the pruner (median or Hyperband), and a pruned
    trial skips its other seeds (state "pruned", no value). A completed trial's value is the mean
    of its own runs and never changes afterwards: pruning decides only whether later trials run
    their remaining seeds. Runs are atomic and hash-keyed, so tuning replays deterministically on
    resume. Returns ``{contender: {cell name: {best_params, best_val_accuracy, trials, space,
    sampler_seed}}}``."""
    import optuna
    from optuna.trial import TrialState

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    epochs = spec.tune_epochs
    out: dict[str, dict] = {c.name: {} for c in spec.contenders}
    studies = {}
    for cell in cell_list:
        for c in spec.contenders:
            seed = sampler_seed(spec, c.name, cell)
            out[c.name][cell.name] = {"best_params": {}, "best_val_accuracy": None, "trials": [], "space": c.tune,
                                      "sampler_seed": seed if c.tune else None}
            if c.tune and spec.trials > 0:
                sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=max(1, min(10, spec.trials // 3)))
                studies[(cell, c.name)] = optuna.create_study(
                    direction="maximize", sampler=sampler, pruner=_pruner(spec, epochs),
                    study_name=f"{c.name}{'-' + cell.name if cell.name else ''}")  # Hyperband hashes the name
    seeds = [spec.tune_seed + i for i in range(spec.tune_seeds)]
    base = {**spec.base, "epochs": epochs, "robustness": False}
    for t in range(spec.trials if studies else 0):
        asked = []
        for (cell, name), study in studies.items():
            trial = study.ask()
            params = {p: _suggest(trial, p, space) for p, space in spec.contender(name).tune.items()}
            cfgs = [TrainConfig.from_dict({**base, **configs[name], **cell.config(), **params, "seed": s})
                    for s in seeds]
            asked.append((cell, name, trial, params, cfgs))
        first = ex.run([Task("tune", name, cfgs[0], False, seeds[0], t) for _, name, _, _, cfgs in asked])
        pruned = []
        for (cell, name, trial, _, _), rec in zip(asked, first):
            stop = False
            for step, v in enumerate(val_curve(rec, epochs)):
                trial.report(v, step)
                if trial.should_prune():
                    stop = True
                    break
            pruned.append(stop)
        rest = ex.run([Task("tune", name, cfg, False, s, t) for (_, name, _, _, cfgs), p in zip(asked, pruned)
                       if not p for cfg, s in zip(cfgs[1:], seeds[1:])])
        rest_iter = iter(rest)
        for (cell, name, trial, params, cfgs), rec, p in zip(asked, first, pruned):
            recs = [rec] if p else [rec] + [next(rest_iter) for _ in cfgs[1:]]
            study = studies[(cell, name)]
            value = None if p else sum(_score(r) for r in recs) / len(recs)
            if p:
                study.tell(trial, state=TrialState.PRUNED)
            else:
                study.tell(trial, value)
                if mirror is not None:  # --storage: every completed trial also lands in the stored study
                    mirror.tell(name + (f"-{cell.name}" if cell.name else ""), trial.number, trial, value, rec["key"])
            out[name][cell.name]["trials"].append({
                "trial": trial.number, "params": params, "state": "pruned" if p else "complete", "value": value,
                "val_accuracy": value, "seed_values": [_score(r) for r in recs], "seeds": seeds[:len(recs)],
                "curve": val_curve(rec, epochs), "keys": [r["key"] for r in recs], "key": rec["key"]})
    for (cell, name) in studies:
        res = out[name][cell.name]
        done = [r for r in res["trials"] if r["state"] == "complete"] or res["trials"]
        best = max(done, key=lambda r: r["value"] if r["value"] is not None else r["seed_values"][0])  # first on ties
        res["best_params"] = best["params"]
        res["best_val_accuracy"] = best["value"]
    return out


def tuning_json(spec: FightSpec, tuned: dict[str, dict]) -> dict:
    """``tuning.json``: per contender its search space, protocol and, per cell, every trial (params,
    value, state, seeds, per-epoch curve). With one cell (no resampling) the cell's fields are
    also at the contender's top level (best_params, best_val_accuracy, trials)."""
    out = {}
    for name, by_cell in tuned.items():
        c = spec.contender(name)
        entry = {"space": c.tune, "pruner": spec.pruner, "tune_seeds": spec.tune_seeds, "trials_budget": spec.trials,
                 "tune_epochs": spec.tune_epochs, "patience": spec.patience}
        if list(by_cell) == [""]:
            entry.update(by_cell[""])
        else:
            entry.update({"best_params": {}, "best_val_accuracy": None, "trials": [], "cells": by_cell})
        out[name] = entry
    return out


def final_config(spec: FightSpec, configs: dict[str, dict], tuning: dict[str, dict], name: str, **changes) -> TrainConfig:
    return TrainConfig.from_dict({**spec.base, **configs[name], **tuning[name]["best_params"], **changes})


def plan_after_tuning(spec: FightSpec, configs: dict[str, dict], tuning: dict[str, dict],
                      cell: Cell | None = None) -> list[Task]:
    """Final, width and λ-sweep tasks of one cell, given that cell's tuned parameters."""
    cv = (cell or Cell()).config()
    tasks = [Task("final", c.name, final_config(spec, configs, tuning, c.name, seed=s, **cv), True, s)
             for s in range(spec.seeds) for c in spec.contenders]
    acc = spec.accuracy_matched
    if acc and acc["contender"] in configs:
        swept = [acc["contender"]] + ([b] if (b := best_baseline(acc, tuning)) else [])
        for name in swept:
            depth = len(final_config(spec, configs, tuning, name).hidden)
            for s in range(acc.get("seeds") or spec.seeds):
                for w in acc["widths"]:
                    cfg = final_config(spec, configs, tuning, name, seed=s, hidden=[w] * depth, **cv)
                    tasks.append(Task("width", name, cfg, True, s))
    sweep = spec.lambda_sweep
    if sweep and sweep["contender"] in configs:
        for s in range(sweep.get("seeds") or spec.seeds):
            for lam in sweep["values"]:
                cfg = final_config(spec, configs, tuning, sweep["contender"], seed=s, dreg=lam, **cv)
                tasks.append(Task("lambda", sweep["contender"], cfg, True, s))
    return tasks


def best_baseline(acc: dict, tuning: dict[str, dict]) -> str | None:
    """The ``[accuracy_matched]`` baseline family to sweep: of ``acc["baselines"]``, the one whose
    tuned best validation accuracy is highest (validation only: no test data decides it)."""
    scored = [(tuning[b]["best_val_accuracy"], b) for b in acc.get("baselines") or ()
              if b in tuning and tuning[b].get("best_val_accuracy") is not None]
    return max(scored)[1] if scored else None


def _count_after_tuning(spec: FightSpec) -> int:
    return len(cells(spec)) * _count_after_tuning_per_cell(spec)


def _count_after_tuning_per_cell(spec: FightSpec) -> int:
    n = spec.seeds * len(spec.contenders)
    if spec.accuracy_matched:
        families = 1 + bool(spec.accuracy_matched.get("baselines"))
        n += families * (spec.accuracy_matched.get("seeds") or spec.seeds) * len(spec.accuracy_matched["widths"])
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
        "params": r.get("params"), "val_accuracy": _get(r, "val", "accuracy"),
        "test_accuracy": _get(r, "test", "accuracy"), "test_mae": _get(r, "test", "mae"),
        "test_off_by_one": _get(r, "test", "off_by_one"), "test_qwk": _get(r, "test", "qwk"),
        "jacobian_fro_mean": _get(r, "jacobian_fro", "mean"), "jacobian_fro_p99": _get(r, "jacobian_fro", "p99"),
        "tau_input": r.get("tau_input"), "tau_train": r.get("tau_train"), "pgv": r.get("pgv"),
        "lipschitz_bound": r.get("lipschitz_bound"),
        "corruption_accuracy": _get(r, "robustness", "corruption_accuracy"),
    }
    for eps in c.get("adv_eps", []) if c.get("robustness") else []:
        for m in ATTACKS:
            row[f"{m}_{eps:g}"] = _get(r, "robustness", f"{m}_{eps:g}")
    row.update({k: r.get(k) for k in TIMING_COLUMNS})
    row["diverged"] = r.get("diverged")
    row["unstable"] = r.get("unstable")
    row["selected_epoch"] = r.get("selected_epoch")
    row["epochs_run"] = r.get("epochs_run")
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


def run_fight(spec: FightSpec, out: Path, jobs: int = 1, progress: bool = True, batch: bool | None = None,
              executor: str | None = None, ray_address: str | None = None, storage: str | None = None) -> Path:
    """Run (or resume) ``spec`` into ``out``; returns the path of ``results.csv``.

    ``out`` is checked for writability first, then the executor (``local`` or ``ray`` at
    ``ray_address``: connected here), the Optuna ``storage`` URL, the data and every
    contender's network; nothing is written before all of that passes. ``batch``, ``executor``,
    ``ray_address`` and ``storage`` default to the spec's ``[fight]`` values (batch on, local
    pool, no storage). SIGTERM/SIGINT raise :class:`Interrupted` after the workers are stopped
    (see the module doc)."""
    from .ray_executor import make_pool
    from .study_store import StudyMirror, open_storage

    ex_opts = getattr(spec, "execution", None) or {}
    batch = ex_opts.get("batch", True) if batch is None else batch
    out = check_out_dir(out)
    store = open_storage(storage or ex_opts.get("storage"))  # a bad URL: one line, before any run
    pool = make_pool(executor or ex_opts.get("executor", "local"), ray_address or ex_opts.get("ray_address"))
    with stop_on_signals():
        try:
            ref_cfg = spec.contender(spec.reference).train_config(spec.base)
            data = load_data(ref_cfg)  # every input problem surfaces here, before any run starts
            in_features, num_classes, task = data.in_features, data.num_classes, data.task
            configs = _check_before_runs(spec, in_features, num_classes, task)
        except BaseException:
            if pool is not None:
                pool.shutdown()
            raise
        runs_dir = _prepare_folder(spec, out, configs, in_features, num_classes, task)
        cell_list = cells(spec)
        n_tune = spec.trials * spec.tune_seeds * sum(1 for c in spec.contenders if c.tune) * len(cell_list)
        ex = Executor(runs_dir, jobs, n_tune + _count_after_tuning(spec), progress,  # pruned trials run fewer
                      batch=batch, pool=pool)
        ok = False
        try:
            tuned = tune_cells(spec, configs, ex, cell_list, StudyMirror(store, spec) if store is not None else None)
            atomic_json(out / "tuning.json", tuning_json(spec, tuned))
            tasks = [t for cell in cell_list
                     for t in plan_after_tuning(spec, configs, {n: v[cell.name] for n, v in tuned.items()}, cell)]
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


def _prepare_folder(spec: FightSpec, out: Path, configs: dict, in_features: int, num_classes: int, task: str) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    runs_dir = out / "runs"
    runs_dir.mkdir(exist_ok=True)
    for stale in runs_dir.glob(".*.tmp"):  # left by a run killed mid-write; never a finished run
        stale.unlink(missing_ok=True)
    atomic_json(out / "spec.json", {**spec.to_dict(), "configs": configs, "created": time.strftime("%Y-%m-%d"),
                                     "data": {"in_features": in_features, "num_classes": num_classes, "task": task}})
    return runs_dir
