"""Fight specs: a TOML file → a validated :class:`FightSpec` (format: ``docs/FIGHT_FORMAT.md``).

Everything is checked before any run starts: unknown sections or keys, unknown contender
fields or names, tuning spaces over fields that do not exist, claims on unknown contenders or
metrics, a data key or ``patience`` set in ``[fight]`` and ``[base]`` to different values. The
``[quick]`` table is merged in with ``--quick``, and both profiles are checked either way;
``--dataset/--data-dir/--target`` point any spec at another dataset.

>>> spec = parse_spec({"fight": {"dataset": "synthetic"}, "contender": [
...     {"name": "relu", "model": "mlp"}, {"name": "cr", "model": "chainzrule"}]}, seeds=3)
>>> [c.name for c in spec.contenders], spec.reference, spec.seeds
(['relu', 'cr'], 'relu', 3)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..config import ATTACKS, CHAINZRULE_MODELS, DREG_MODELS, INT_LIMIT, MODELS, NEURAL_MODELS, SEED_LIMIT, TrainConfig, check_spec_kind, inert_setting, read_toml
from ..data import csv_reference
from ..errors import ConfigError
# CLAIM_KINDS, CLAIM_KEYS, CLAIM_RULES: re-exported (they lived here)
from .spec_sections import (CLAIM_KEYS, CLAIM_KINDS, CLAIM_RULES, DATA_KEYS, NAME_RE, check_accuracy_matched, check_claim,  # noqa: F401
                            check_keys, check_sweep, merge_tables, parse_both_profiles, quick_contenders,
                            refuse_own_data, refuse_two_values)

FIGHT_KEYS = {"name", "description", "dataset", "data_dir", "target", "reference", "seeds", "trials", "tune_epochs",
              "tune_seed", "tune_seeds", "pruner", "patience", "resampling", "param_match", "primary_metric",
              "executor", "ray_address", "storage", "batch"}
PRUNERS = ("median", "hyperband", "none")
#: early-stopping patience of every neural run of a fight unless [fight] or [base] says otherwise
DEFAULT_PATIENCE = 3
#: [fight] keys that choose how the runs are executed, not what is run (flags override them)
EXECUTION_KEYS = ("executor", "ray_address", "storage", "batch")
#: Config fields the runner sets for every run (its seed, its cross-validation split): a spec may not.
RUNNER_KEYS = ("seed", "cv_folds", "cv_fold", "cv_repeat")
TOP_KEYS = {"fight", "base", "contender", "accuracy_matched", "lambda_sweep", "claim", "quick"}
QUICK_KEYS = FIGHT_KEYS | {"base", "contenders", "accuracy_matched", "lambda_sweep"}
CONFIG_FIELDS = set(TrainConfig.__dataclass_fields__)
#: [fight] keys that are TrainConfig fields too (dataset, data_dir, patience, target): copied into [base],
#: so they may not be set there to another value
SHARED_KEYS = sorted(FIGHT_KEYS & CONFIG_FIELDS)
#: results.csv metric columns a claim may name (fgsm_/pgd_ columns are added per eps).
METRIC_COLUMNS = ("val_accuracy", "test_accuracy", "test_mae", "test_off_by_one", "test_qwk", "jacobian_fro_mean",
                  "jacobian_fro_p99", "tau_input", "tau_train", "pgv", "lipschitz_bound", "corruption_accuracy",
                  "params", "train_seconds", "step_ms")  # not peak_memory_mb: the executor drops it (a
#: process-wide peak, not the run's; see fight/executor.py)


@dataclass
class Contender:
    """One entrant: its name, table label, TrainConfig overrides and Optuna search space."""

    name: str
    label: str
    config: dict[str, Any]
    tune: dict[str, Any] = field(default_factory=dict)

    def train_config(self, base: dict[str, Any], **changes: Any) -> TrainConfig:
        return TrainConfig.from_dict({**base, **self.config, **changes})


@dataclass
class FightSpec:
    name: str
    description: str
    dataset: str
    reference: str
    seeds: int
    trials: int
    tune_epochs: int
    tune_seed: int
    param_match: bool
    primary_metric: str
    base: dict[str, Any]
    contenders: list[Contender]
    accuracy_matched: dict[str, Any] | None
    lambda_sweep: dict[str, Any] | None
    claims: list[dict[str, Any]]
    quick: bool = False
    tune_seeds: int = 2
    pruner: str = "median"
    patience: int = DEFAULT_PATIENCE
    resampling: dict[str, int] | None = None
    source: str = ""
    command: str = ""
    #: the dataset the spec file names, when the command line ran it on another ("" otherwise)
    spec_dataset: str = ""
    #: how to execute (never changes a result): executor, ray_address, storage, batch
    execution: dict[str, Any] = field(default_factory=dict)

    def contender(self, name: str) -> Contender:
        for c in self.contenders:
            if c.name == name:
                return c
        raise ConfigError(f"unknown contender {name!r}: expected one of {', '.join(c.name for c in self.contenders)}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "FightSpec":
        d = dict(d)
        d["contenders"] = [Contender(**c) for c in d["contenders"]]
        return cls(**d)

    def metric_columns(self) -> list[str]:
        eps = TrainConfig.from_dict(self.base).adv_eps if self.base.get("robustness") else ()
        return list(METRIC_COLUMNS) + [f"{m}_{e:g}" for e in eps for m in ATTACKS]


#: Tunable fields and the models they act on (tuning anything else would spend trials on a no-op).
TUNABLE = {"lr": (*NEURAL_MODELS, "xgboost"), "reg_strength": MODELS,
           "dreg": DREG_MODELS, "dreg_final": DREG_MODELS, "bound": CHAINZRULE_MODELS, "poly_init": CHAINZRULE_MODELS,
           "logit_scale": NEURAL_MODELS, "sn_gain": DREG_MODELS, "svm_gamma": ("svm",), "xgb_trees": ("xgboost",),
           "xgb_depth": ("xgboost",), "xgb_min_child_weight": ("xgboost",), "xgb_subsample": ("xgboost",)}


def _table(raw: dict, key: str, where: str) -> dict:
    """``raw[key]`` as a TOML table (``{}`` if absent); ConfigError if it is anything else."""
    v = raw.get(key, {})
    if not isinstance(v, dict):
        raise ConfigError(f"{where} must be a table, got {type(v).__name__} {v!r}")
    return dict(v)


def _tables(raw: dict, key: str, where: str) -> list[dict]:
    """``raw[key]`` as an array of tables (``[[key]]``); ConfigError if it is anything else."""
    v = raw.get(key, [])
    if not isinstance(v, list) or not all(isinstance(t, dict) for t in v):
        raise ConfigError(f"{where} must be an array of tables ([[{key}]] sections), got {v!r}")
    return [dict(t) for t in v]


def _check_space(where: str, name: str, space: Any, model: str) -> list:
    """Validate one search space; returns the values to check as configs (both ends, or the choices)."""
    if name not in TUNABLE:
        raise ConfigError(f"{where}: cannot tune {name!r}: expected one of {', '.join(sorted(TUNABLE))}")
    if model not in TUNABLE[name]:
        raise ConfigError(f"{where}: cannot tune {name!r} on model {model!r}: it acts only on "
                          f"{', '.join(TUNABLE[name])}")
    if isinstance(space, dict):
        if set(space) != {"choices"} or not isinstance(space["choices"], list) or not space["choices"]:
            raise ConfigError(f"{where}: tune.{name} must be [low, high, \"log\"|\"linear\"] or {{choices = [...]}}, got {space!r}")
        return list(space["choices"])
    number = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    ok = (isinstance(space, list) and len(space) == 3 and all(number(v) for v in space[:2])
          and space[2] in ("log", "linear", "int", "int-log") and space[0] < space[1]
          and (space[2] in ("linear", "int") or space[0] > 0)
          and (not space[2].startswith("int") or all(isinstance(v, int) for v in space[:2])))
    if not ok:
        raise ConfigError(f"{where}: tune.{name} must be [low, high, \"log\"|\"linear\"|\"int\"|\"int-log\"] "
                          f"with finite numbers low < high (low > 0 for log, integers for int), got {space!r}")
    return list(space[:2])


def _parse_contender(i: int, c: dict, base: dict) -> Contender:
    name = c.pop("name", None)
    where = f"contender {name if isinstance(name, str) else i + 1}"
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise ConfigError(f"{where}: name must match [a-z0-9-]+, got {name!r}")
    label = c.pop("label", name)
    tune = _table(c, "tune", f"{where}: tune")
    c.pop("tune", None)
    check_keys(where, c, CONFIG_FIELDS)
    try:
        cfg = TrainConfig.from_dict({**base, **c})
    except ConfigError as e:
        raise ConfigError(f"{where}: {e}") from None
    if cfg.dreg is not None and cfg.dreg > 0 and cfg.model not in DREG_MODELS:
        raise ConfigError(f"{where}: dreg = {cfg.dreg:g} needs a model with DREG ({', '.join(DREG_MODELS)}), "
                          f"got model {cfg.model!r}")
    # the contender's own fields (the base's are shared by every model; a tuned one is checked per value),
    # then the λ schedule over everything that sets it
    problem = inert_setting(cfg, set(c) - set(tune), schedule_given=set(base) | set(c) | set(tune))
    if problem:
        raise ConfigError(f"{where}: {problem}")
    for pname, space in tune.items():
        for v in _check_space(where, pname, space, cfg.model):
            try:  # every value the sampler can draw must make a valid run
                TrainConfig.from_dict({**base, **c, pname: v})
            except ConfigError as e:
                raise ConfigError(f"{where}: tune.{pname} value {v!r}: {e}") from None
    return Contender(name, str(label), c, tune)


def _apply_quick(fight: dict, base: dict, contenders_raw: list[dict], acc, sweep, q: dict):
    for key, (lo, hi) in _FIGHT_INTS.items():  # named as the [quick] values they are
        if key in q:
            _fight_int(q, key, 0, lo, hi, table="[quick]")
    fight.update({k: v for k, v in q.items() if k in FIGHT_KEYS})
    base = merge_tables(base, _table(q, "base", "[quick] base"))
    if "contenders" in q:
        names = {c.get("name") for c in contenders_raw if isinstance(c.get("name"), str)}  # others: refused below
        keep = q["contenders"]
        contenders_raw = quick_contenders(contenders_raw, keep)
        if acc and isinstance(acc.get("baselines"), list):  # families the profile dropped are not swept
            unknown = [b for b in acc["baselines"] if b not in names]
            acc = {**acc, "baselines": unknown + [b for b in acc["baselines"] if b in keep]}
    if "accuracy_matched" in q:
        acc = merge_tables(acc or {}, _table(q, "accuracy_matched", "[quick] accuracy_matched")) if q["accuracy_matched"] else None
    if "lambda_sweep" in q:
        sweep = merge_tables(sweep or {}, _table(q, "lambda_sweep", "[quick] lambda_sweep")) if q["lambda_sweep"] else None
    return base, contenders_raw, acc, sweep


def _fight_int(fight: dict, key: str, default: int, lo: int = 1, hi: int = SEED_LIMIT, table: str = "[fight]") -> int:
    v = fight.get(key, default)
    if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
        raise ConfigError(f"{table} {key} must be an integer in {lo}..{hi}, got {v!r}")
    return v


#: the integer [fight] keys a [quick] profile may set, with their ranges (as _build_spec checks them)
_FIGHT_INTS = {"seeds": (1, SEED_LIMIT), "trials": (0, INT_LIMIT), "tune_epochs": (1, INT_LIMIT),
               "tune_seed": (0, SEED_LIMIT - 1), "tune_seeds": (1, 1000), "patience": (0, INT_LIMIT)}


@dataclass
class _Sections:
    """A spec's tables as read from TOML (each checked to be a table), the quick profile merged in."""

    fight: dict
    base: dict
    contenders: list[dict]
    #: the contender names the spec defines, before the quick profile drops any
    defined: list[Any]
    accuracy_matched: dict | None
    lambda_sweep: dict | None
    claims: list[dict]


def _read_sections(raw: dict, quick: bool) -> _Sections:
    """The spec's tables, unknown sections and keys refused, with ``[quick]`` merged in when ``quick``;
    a :data:`SHARED_KEYS` key set in ``[fight]`` and ``[base]`` to different values refused."""
    check_keys("spec", raw, TOP_KEYS)
    fight = _table(raw, "fight", "[fight]")
    check_keys("[fight]", fight, FIGHT_KEYS)
    base = _table(raw, "base", "[base]")
    contenders_raw = _tables(raw, "contender", "contender")
    defined = [c.get("name") for c in contenders_raw]
    acc = _table(raw, "accuracy_matched", "[accuracy_matched]") or None
    sweep = _table(raw, "lambda_sweep", "[lambda_sweep]") or None
    claims = _tables(raw, "claim", "claim")
    q = _table(raw, "quick", "[quick]")
    check_keys("[quick]", q, QUICK_KEYS)
    if quick:
        base, contenders_raw, acc, sweep = _apply_quick(fight, base, contenders_raw, acc, sweep, q)
    refuse_two_values("[fight]", fight, base, SHARED_KEYS)
    return _Sections(fight, base, contenders_raw, defined, acc, sweep, claims)


def _apply_overrides(fight: dict, base: dict, *, dataset: str | None, data_dir: str | None, target: str | None,
                     seeds: int | None) -> None:
    """The command line's dataset and seeds over ``[fight]``; the dataset keys and the default
    patience into ``[base]``, which is then checked (both dicts are changed in place)."""
    for key, val in (("dataset", dataset), ("data_dir", data_dir), ("target", target)):
        if val is not None:
            fight[key] = val
    if seeds is not None:
        fight["seeds"] = seeds
    if isinstance(fight.get("dataset"), str):  # csv:PATH names its file absolutely: the run keys say which file
        fight["dataset"] = csv_reference(fight["dataset"], fight.get("data_dir"))
    for key in ("dataset", "data_dir", "target"):
        if fight.get(key) is not None:
            base[key] = fight[key]
    if base.get("dataset") == "synthetic":  # built in code: no file, no column to name
        for key in ("target", "data_dir"):
            if base.get(key) is not None:
                raise ConfigError(f"{key} names where data is read, got it with dataset synthetic, which is "
                                  "generated: it would be recorded and do nothing")
    patience = _fight_int(fight, "patience", DEFAULT_PATIENCE, lo=0, hi=INT_LIMIT)
    base.setdefault("patience", patience)  # early stopping on by default; [base] or a contender may say otherwise
    check_keys("[base]", base, CONFIG_FIELDS)


def _parse_contenders(contenders_raw: list[dict], base: dict) -> list[Contender]:
    """Every ``[[contender]]``, checked; at least one, and no name twice."""
    contenders = [_parse_contender(i, c, base) for i, c in enumerate(contenders_raw)]
    names = [c.name for c in contenders]
    if not contenders:
        raise ConfigError("spec has no [[contender]]: expected at least two")
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ConfigError(f"duplicate contender name(s): {', '.join(dup)}")
    return contenders


def _build_spec(s: _Sections, contenders: list[Contender], resampling: dict[str, int] | None, *, quick: bool,
                source: str) -> FightSpec:
    """The :class:`FightSpec` of the read sections and parsed contenders, every ``[fight]`` value and
    the accuracy-matched and λ-sweep sections checked (claims and execution are added after)."""
    fight, base = s.fight, s.base
    names = [c.name for c in contenders]
    reference = fight.get("reference", names[0])
    if reference not in names:
        raise ConfigError(f"[fight] reference {reference!r} is not a contender: expected one of {', '.join(names)}")
    param_match = fight.get("param_match", True)
    if not isinstance(param_match, bool):
        raise ConfigError(f"[fight] param_match must be true or false, got {param_match!r}")
    models = {c.name: c.train_config(base).model for c in contenders}
    return FightSpec(
        name=str(fight.get("name", Path(source).stem or "fight")),
        description=str(fight.get("description", "")),
        dataset=str(base.get("dataset", TrainConfig.dataset)),
        reference=reference,
        seeds=_fight_int(fight, "seeds", 5),
        trials=_fight_int(fight, "trials", 8, lo=0, hi=INT_LIMIT),
        tune_epochs=_fight_int(fight, "tune_epochs", int(base.get("epochs", TrainConfig.epochs)), hi=INT_LIMIT),
        tune_seed=_fight_int(fight, "tune_seed", 0, lo=0, hi=SEED_LIMIT - 1),
        param_match=param_match,
        primary_metric=str(fight.get("primary_metric", "accuracy")),
        base=base,
        contenders=contenders,
        accuracy_matched=check_accuracy_matched(s.accuracy_matched, models),
        lambda_sweep=check_sweep(s.lambda_sweep, models),
        claims=[],
        quick=quick,
        tune_seeds=_fight_int(fight, "tune_seeds", 2, hi=1000),
        pruner=str(fight.get("pruner", "median")),
        patience=int(base["patience"]),
        resampling=resampling,
        source=source,
    )


def _check_settings(spec: FightSpec) -> None:
    """The resolved settings that are only wrong together: pruner, tuning seeds, the primary metric;
    the runner's own fields (``RUNNER_KEYS``) in [base] or a contender; the data's (``DATA_KEYS``)
    or the epoch budget in a contender."""
    if spec.pruner not in PRUNERS:
        raise ConfigError(f"[fight] pruner must be one of {', '.join(PRUNERS)}, got {spec.pruner!r}")
    if spec.tune_seed + spec.tune_seeds > SEED_LIMIT:
        raise ConfigError(f"[fight] tune_seed + tune_seeds must be at most {SEED_LIMIT}")
    for where, table in [("[base]", spec.base)] + [(f"contender {c.name!r}", c.config) for c in spec.contenders]:
        given = [k for k in RUNNER_KEYS if k in table]
        if given:  # the runner sets them per run: a fixed fold would be read as repeated CV, a seed overridden
            raise ConfigError(f"{where} sets {', '.join(given)}, which the runner sets for every run: give the seeds "
                              "as [fight] seeds and the folds as [fight] resampling")
    for c in spec.contenders:
        refuse_own_data(f"contender {c.name!r}", c.config, "[fight]")
        if "epochs" in c.config:  # it would also tune at its own budget, past [fight] tune_epochs
            raise ConfigError(f"contender {c.name!r} sets epochs: the epoch budget every contender shares is given "
                              "in [base] (final runs) and [fight] tune_epochs (tuning), for all")
    if spec.primary_metric != "accuracy":
        raise ConfigError(f"[fight] primary_metric {spec.primary_metric!r} is not supported: expected 'accuracy'")


def parse_spec(raw: dict[str, Any], *, quick: bool = False, dataset: str | None = None, data_dir: str | None = None,
               target: str | None = None, seeds: int | None = None, source: str = "") -> FightSpec:
    """Validate a spec dict (as read from TOML) and resolve the quick profile and overrides.

    Everything a run could trip over later is refused here, before anything is written: wrong
    TOML types, tuning spaces that leave the valid range or act on nothing, DREG (a λ, a λ range,
    a λ sweep) on a model without it, width sweeps of a classical model, claims naming a
    contender the spec does not define. Both profiles are checked, whichever ``quick`` asks for
    (:func:`~.spec_sections.parse_both_profiles`).
    """
    check_spec_kind(raw, "fight")
    return parse_both_profiles(raw, quick, lambda r, q: _parse_profile(
        r, quick=q, dataset=dataset, data_dir=data_dir, target=target, seeds=seeds, source=source))


def _parse_profile(raw: dict[str, Any], *, quick: bool, dataset: str | None, data_dir: str | None,
                   target: str | None, seeds: int | None, source: str) -> FightSpec:
    """:func:`parse_spec` in one profile: the full one, or with ``[quick]`` merged in."""
    s = _read_sections(raw, quick)
    own = str(s.fight.get("dataset") or s.base.get("dataset") or TrainConfig.dataset)  # the spec file's dataset
    _apply_overrides(s.fight, s.base, dataset=dataset, data_dir=data_dir, target=target, seeds=seeds)
    resampling = _check_resampling(s.fight.get("resampling"))
    contenders = _parse_contenders(s.contenders, s.base)
    spec = _build_spec(s, contenders, resampling, quick=quick, source=source)
    spec.spec_dataset = own if spec.dataset != own else ""
    _check_settings(spec)
    spec.claims = [check_claim(c, i, spec, s.defined) for i, c in enumerate(s.claims)]
    spec.execution = _check_execution(s.fight)
    return spec


def _check_resampling(r: Any) -> dict[str, int] | None:
    """``[fight] resampling = { folds = 5, repeats = 5 }``: repeated stratified k-fold (None: the
    dataset's own train/test split)."""
    if r is None:
        return None
    if not isinstance(r, dict):
        raise ConfigError(f"[fight] resampling must be a table {{ folds = K, repeats = R }}, got {r!r}")
    check_keys("[fight] resampling", r, {"folds", "repeats"})
    out = {"folds": _fight_int(r, "folds", 5, lo=2, hi=1000), "repeats": _fight_int(r, "repeats", 1, hi=1000)}
    return out


def _check_execution(fight: dict) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in EXECUTION_KEYS:
        if key not in fight:
            continue
        v = fight[key]
        if key == "batch":
            if not isinstance(v, bool):
                raise ConfigError(f"[fight] batch must be true or false, got {v!r}")
        elif not isinstance(v, str) or not v.strip():
            raise ConfigError(f"[fight] {key} must be a string, got {v!r}")
        elif key == "executor" and v not in ("local", "ray"):
            raise ConfigError(f"[fight] executor {v!r}: expected one of local, ray")
        out[key] = v
    return out


def load_spec(path: str | Path, **overrides: Any) -> FightSpec:
    """Read and validate a fight spec TOML file (see :func:`parse_spec` for ``overrides``)."""
    return parse_spec(read_toml(path, "fight spec"), source=str(path), **overrides)
