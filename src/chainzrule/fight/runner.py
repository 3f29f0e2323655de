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
from pathlib import Path
from typing import Any

from ..config import TrainConfig
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
    return trial.suggest_float(name, float(lo), float(hi), log=scale == "log")


def _score(rec: dict) -> float:
    v = (rec["result"].get("val") or {}).get("accuracy")
    return float(v) if v is not None and math.isfinite(v) else 0.0


def tune(spec: FightSpec, configs: dict[str, dict], ex: Executor, mirror=None) -> dict[str, dict]:
    """Equal-budget Optuna tuning; returns per contender the best params, score and trials.
    ``mirror`` (a :class:`~chainzrule.fight.study_store.StudyMirror`) also stores every trial."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    out: dict[str, dict] = {}
    studies = {}
    for c in spec.contenders:
        if c.tune and spec.trials > 0:
            sampler = optuna.samplers.TPESampler(seed=spec.tune_seed, n_startup_trials=max(1, spec.trials // 2))
            studies[c.name] = optuna.create_study(direction="maximize", sampler=sampler)
        out[c.name] = {"best_params": {}, "best_val_accuracy": None, "trials": []}
    base = {**spec.base, "epochs": spec.tune_epochs, "seed": spec.tune_seed, "robustness": False}
    for t in range(spec.trials if studies else 0):
        batch, asked = [], []
        for c in spec.contenders:
            if c.name not in studies:
                continue
            trial = studies[c.name].ask()
            params = {name: _suggest(trial, name, space) for name, space in c.tune.items()}
            cfg = TrainConfig.from_dict({**base, **configs[c.name], **params})
            batch.append(Task("tune", c.name, cfg, test=False, seed=spec.tune_seed, trial=t))
            asked.append((c.name, trial, params))
        for (name, trial, params), rec in zip(asked, ex.run(batch)):
            score = _score(rec)
            studies[name].tell(trial, score)
            if mirror is not None:
                mirror.tell(name, t, trial, score, rec["key"])
            out[name]["trials"].append({"trial": trial.number, "params": params, "val_accuracy": score, "key": rec["key"]})
    for name, study in studies.items():
        best = max(out[name]["trials"], key=lambda r: r["val_accuracy"])  # first on ties
        out[name]["best_params"] = best["params"]
        out[name]["best_val_accuracy"] = best["val_accuracy"]
    return out


def final_config(spec: FightSpec, configs: dict[str, dict], tuning: dict[str, dict], name: str, **changes) -> TrainConfig:
    return TrainConfig.from_dict({**spec.base, **configs[name], **tuning[name]["best_params"], **changes})


def plan_after_tuning(spec: FightSpec, configs: dict[str, dict], tuning: dict[str, dict]) -> list[Task]:
    """Final, width and λ-sweep tasks, given the tuned parameters."""
    tasks = [Task("final", c.name, final_config(spec, configs, tuning, c.name, seed=s), True, s)
             for s in range(spec.seeds) for c in spec.contenders]
    acc = spec.accuracy_matched
    if acc and acc["contender"] in configs:
        depth = len(final_config(spec, configs, tuning, acc["contender"]).hidden)
        for s in range(acc.get("seeds") or spec.seeds):
            for w in acc["widths"]:
                cfg = final_config(spec, configs, tuning, acc["contender"], seed=s, hidden=[w] * depth)
                tasks.append(Task("width", acc["contender"], cfg, True, s))
    sweep = spec.lambda_sweep
    if sweep and sweep["contender"] in configs:
        for s in range(sweep.get("seeds") or spec.seeds):
            for lam in sweep["values"]:
                cfg = final_config(spec, configs, tuning, sweep["contender"], seed=s, dreg=lam)
                tasks.append(Task("lambda", sweep["contender"], cfg, True, s))
    return tasks


def _count_after_tuning(spec: FightSpec) -> int:
    n = spec.seeds * len(spec.contenders)
    if spec.accuracy_matched:
        n += (spec.accuracy_matched.get("seeds") or spec.seeds) * len(spec.accuracy_matched["widths"])
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
        "model": c["model"], "activation": c["activation"] if c["model"] == "mlp" else None,
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
        for m in ("fgsm", "pgd"):
            row[f"{m}_{eps:g}"] = _get(r, "robustness", f"{m}_{eps:g}")
    row.update({k: r.get(k) for k in TIMING_COLUMNS})
    row["diverged"] = r.get("diverged")
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
        if acc and acc["contender"] == name:
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
        n_tune = spec.trials * sum(1 for c in spec.contenders if c.tune)
        ex = Executor(runs_dir, jobs, n_tune + _count_after_tuning(spec), progress, batch=batch, pool=pool)
        ok = False
        try:
            tuning = tune(spec, configs, ex, StudyMirror(store, spec) if store is not None else None)
            atomic_json(out / "tuning.json", tuning)
            records = ex.run(plan_after_tuning(spec, configs, tuning))
            ok = True
        finally:
            ex.close(abort=not ok)
    labels = {c.name: c.label for c in spec.contenders}
    tune_records = [load_record(runs_dir / f"{t['key']}.json") for v in tuning.values() for t in v["trials"]]
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
