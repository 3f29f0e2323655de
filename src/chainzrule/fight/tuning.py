"""Tuning a Fair Fight (phase 1): equal-budget Optuna studies per contender and resampling cell.

Every contender gets ``trials`` trials (TPE with its own sampler seed, :func:`sampler_seed`) at the
full epoch budget, each scored on ``tune_seeds`` seeds on the validation split carved from the
cell's training data (the test split is never read); a median or Hyperband pruner stops trials
whose first seed's validation curve lags. Studies advance in lockstep (a round of trials of
every study, then the next: :func:`trial_rounds`) so that the executor can run them side by side,
batched; runs are hash-keyed, so a resumed fight replays the same trials. :mod:`.runner` plans the phases after tuning.

>>> Cell(1, 3, 5).name, Cell().name      # one Cell per (repeat, fold) of [fight] resampling
('r1f3', '')
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, NamedTuple

from ..config import TrainConfig, content_hash
from ..errors import ConfigError
from .executor import Executor, Task
from .spec import FightSpec

__all__ = ["Cell", "cells", "sampler_seed", "stored_tuning_runs", "trial_rounds", "val_curve", "tune", "tune_cells",
           "tuning_json"]


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

    @classmethod
    def from_name(cls, name: str, folds: int = 0) -> "Cell":
        """The cell called ``name`` ("" or "r<repeat>f<fold>") of a fight with ``folds`` folds.

        >>> Cell.from_name("r1f3", 5) == Cell(1, 3, 5), Cell.from_name("") == Cell()
        (True, True)
        """
        if not name:
            return cls()
        m = re.fullmatch(r"r(\d+)f(\d+)", name)
        if m is None:
            raise ConfigError(f"cell {name!r} is not known: expected '' or r<repeat>f<fold>")
        return cls(int(m.group(1)), int(m.group(2)), folds)


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


def _sampler_startup(spec: FightSpec) -> int:
    """How many first trials TPE samples at random (independent of every earlier trial's result)."""
    return max(1, min(10, spec.trials // 3))


def _pruner_startup(spec: FightSpec) -> int:
    """How many first trials the pruner can never prune: the median pruner prunes only once
    ``n_startup_trials`` trials are complete; no pruner prunes nothing; Hyperband may prune from
    the first trial on."""
    return {"median": max(2, spec.trials // 5), "hyperband": 0}.get(spec.pruner, spec.trials)


def trial_rounds(spec: FightSpec) -> list[tuple[list[int], bool]]:
    """How tuning is scheduled: ``(trial numbers asked together, whether all their seeds run at
    once)`` per round. Each round's results equal one-trial-at-a-time tuning exactly: trials are
    asked together only while TPE samples them at random (their parameters do not depend on
    earlier results; the sampler draws them in the same order), and a trial's other seeds run with
    its first only when the pruner cannot prune it. Trials are still told in order, so every
    pruning decision sees what it would see one at a time.

    >>> from types import SimpleNamespace as Spec      # a FightSpec's trials and pruner
    >>> rounds = trial_rounds(Spec(trials=30, pruner="median"))
    >>> rounds[:2]              # TPE draws its first 10 at random; the median pruner spares the first 6
    [([0, 1, 2, 3, 4, 5], True), ([6], False)]
    >>> len(rounds)             # 25 rounds (49 runs of the executor) instead of 30 (60)
    25
    >>> trial_rounds(Spec(trials=3, pruner="median"))   # the quick profiles: 4 runs of the executor, not 6
    [([0], True), ([1], True), ([2], False)]
    """
    free, safe = _sampler_startup(spec), _pruner_startup(spec)
    head = list(range(min(free, safe, spec.trials)))
    rounds = [(head, True)] if head else []
    return rounds + [([t], t < safe) for t in range(len(head), spec.trials)]


def _pruner(spec: FightSpec, epochs: int):
    import optuna

    if spec.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max(epochs, 1), reduction_factor=3)
    if spec.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=_pruner_startup(spec), n_warmup_steps=1)
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

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    out, studies = _open_studies(spec, cell_list)
    seeds = [spec.tune_seed + i for i in range(spec.tune_seeds)]
    base = _tuning_base(spec.base, spec.tune_epochs)
    for round_trials, together in (trial_rounds(spec) if studies else []):  # lockstep: a round of every study
        asked = [a for t in round_trials for a in _ask(spec, studies, configs, base, seeds, t)]
        if together:  # no trial of this round can be pruned: every seed runs at once
            recs = iter(ex.run([task for a in asked for task in a.tasks(seeds)]))
            runs = [[next(recs) for _ in a.cfgs] for a in asked]
        else:
            runs = [[rec] for rec in ex.run([task for a in asked for task in a.tasks(seeds, 0, 1)])]
        pruned = [_should_prune(a.trial, rs[0], spec.tune_epochs) for a, rs in zip(asked, runs)]
        if not together:  # the other seeds of the trials the pruner kept
            ex.skip(sum(len(a.cfgs) - 1 for a, p in zip(asked, pruned) if p))
            rest = iter(ex.run([task for a, p in zip(asked, pruned) if not p for task in a.tasks(seeds, 1)]))
            runs = [rs if p else rs + [next(rest) for _ in a.cfgs[1:]] for a, rs, p in zip(asked, runs, pruned)]
        for a, rs, p in zip(asked, runs, pruned):
            out[a.name][a.cell.name]["trials"].append(
                _tell(studies[(a.cell, a.name)], a.trial, a.params, rs[:1] if p else rs, p, seeds, spec.tune_epochs,
                      mirror=mirror, study_name=a.name + (f"-{a.cell.name}" if a.cell.name else "")))
    for (cell, name) in studies:
        _set_best(out[name][cell.name])
    return out


def _open_studies(spec: FightSpec, cell_list: list[Cell]) -> tuple[dict[str, dict], dict]:
    """The empty result table and one Optuna study per (cell, contender with a search space)."""
    import optuna

    out: dict[str, dict] = {c.name: {} for c in spec.contenders}
    studies = {}
    for cell in cell_list:
        for c in spec.contenders:
            seed = sampler_seed(spec, c.name, cell)
            out[c.name][cell.name] = {"best_params": {}, "best_val_accuracy": None, "trials": [], "space": c.tune,
                                      "sampler_seed": seed if c.tune else None}
            if c.tune and spec.trials > 0:
                sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=_sampler_startup(spec))
                studies[(cell, c.name)] = optuna.create_study(
                    direction="maximize", sampler=sampler, pruner=_pruner(spec, spec.tune_epochs),
                    study_name=f"{c.name}{'-' + cell.name if cell.name else ''}")  # Hyperband hashes the name
    return out, studies


class _Asked(NamedTuple):
    """One trial asked of one study: its number, cell, contender, Optuna trial, parameters and one
    config per tuning seed."""

    number: int
    cell: Cell
    name: str
    trial: Any
    params: dict
    cfgs: list

    def tasks(self, seeds: list[int], first: int = 0, stop: int | None = None) -> list[Task]:
        """The tuning tasks of seeds ``first:stop``."""
        return [Task("tune", self.name, cfg, False, s, self.number)
                for cfg, s in zip(self.cfgs[first:stop], seeds[first:stop])]


def _tuning_base(spec_base: dict, tune_epochs: int) -> dict:
    """The config every tuning run starts from: the spec's base at the tuning epochs, no attacks."""
    return {**spec_base, "epochs": tune_epochs, "robustness": False}


def _tuning_config(base: dict, contender: dict, cell: Cell, params: dict, seed: int) -> TrainConfig:
    """One tuning run's config: base, the contender's (matched) config, its cell, the trial's params, a seed."""
    return TrainConfig.from_dict({**base, **contender, **cell.config(), **params, "seed": seed})


def _ask(spec: FightSpec, studies: dict, configs: dict[str, dict], base: dict, seeds: list[int],
         number: int) -> list[_Asked]:
    """One new trial (number ``number``) per study."""
    asked = []
    for (cell, name), study in studies.items():
        trial = study.ask()
        params = {p: _suggest(trial, p, space) for p, space in spec.contender(name).tune.items()}
        cfgs = [_tuning_config(base, configs[name], cell, params, s) for s in seeds]
        asked.append(_Asked(number, cell, name, trial, params, cfgs))
    return asked


def stored_tuning_runs(spec_json: dict, tuning_json: dict) -> list[dict]:
    """Every tuning run of a fight folder, rebuilt from its ``spec.json`` and ``tuning.json`` (the
    tuning run files are not kept in committed folders): per run its contender, cell, trial,
    seed, stored ``key``, stored validation accuracy ``val`` and ``config`` (a TrainConfig built
    exactly as tuning built it, so ``run_key(config, False)`` is the stored key while the config
    schema is unchanged)."""
    base = _tuning_base(spec_json["base"], spec_json["tune_epochs"])
    folds = (spec_json.get("resampling") or {}).get("folds", 0)
    out = []
    for name, entry in tuning_json.items():
        by_cell = entry.get("cells") or {"": {"trials": entry.get("trials", [])}}
        for cell_name, res in by_cell.items():
            cell = Cell.from_name(cell_name, folds)
            for t in res["trials"]:
                for seed, key, val in zip(t["seeds"], t["keys"], t["seed_values"]):
                    out.append({"contender": name, "cell": cell_name, "trial": t["trial"], "seed": seed, "key": key,
                                "val": val, "config": _tuning_config(base, spec_json["configs"][name], cell,
                                                                     t["params"], seed)})
    return out


def _should_prune(trial, rec: dict, epochs: int) -> bool:
    """Report the first seed's best-so-far validation curve to the pruner; whether it prunes."""
    for step, v in enumerate(val_curve(rec, epochs)):
        trial.report(v, step)
        if trial.should_prune():
            return True
    return False


def _tell(study, trial, params: dict, recs: list[dict], pruned: bool, seeds: list[int], epochs: int, *,
          mirror, study_name: str) -> dict:
    """Close ``trial`` (pruned, or its value: the mean score of its runs) and return its tuning.json entry."""
    from optuna.trial import TrialState

    value = None if pruned else sum(_score(r) for r in recs) / len(recs)
    if pruned:
        study.tell(trial, state=TrialState.PRUNED)
    else:
        study.tell(trial, value)
        if mirror is not None:  # --storage: every completed trial also lands in the stored study
            mirror.tell(study_name, trial.number, trial, value, recs[0]["key"])
    return {"trial": trial.number, "params": params, "state": "pruned" if pruned else "complete", "value": value,
            "val_accuracy": value, "seed_values": [_score(r) for r in recs], "seeds": seeds[:len(recs)],
            "curve": val_curve(recs[0], epochs), "keys": [r["key"] for r in recs], "key": recs[0]["key"]}


def _set_best(res: dict) -> None:
    """The best completed trial's params and value (a pruned one only if none completed; first on ties)."""
    done = [r for r in res["trials"] if r["state"] == "complete"] or res["trials"]
    best = max(done, key=lambda r: r["value"] if r["value"] is not None else r["seed_values"][0])
    res["best_params"] = best["params"]
    res["best_val_accuracy"] = best["value"]


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
