"""Fight specs: a TOML file → a validated :class:`FightSpec` (format: ``docs/FIGHT_FORMAT.md``).

Everything is checked before any run starts: unknown sections or keys, unknown contender
fields or names, tuning spaces over fields that do not exist, claims on unknown contenders or
metrics. The ``[quick]`` table is merged in with ``--quick``; ``--dataset/--data-dir/--target``
point any spec at another dataset.

>>> spec = parse_spec({"fight": {"dataset": "synthetic"}, "contender": [
...     {"name": "relu", "model": "mlp"}, {"name": "cr", "model": "chainzrule"}]}, seeds=3)
>>> [c.name for c in spec.contenders], spec.reference, spec.seeds
(['relu', 'cr'], 'relu', 3)
"""

from __future__ import annotations

import copy
import math
import re
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..config import TrainConfig
from ..errors import ConfigError

FIGHT_KEYS = {"name", "description", "dataset", "data_dir", "target", "reference", "seeds", "trials", "tune_epochs",
              "tune_seed", "param_match", "primary_metric"}
TOP_KEYS = {"fight", "base", "contender", "accuracy_matched", "lambda_sweep", "claim", "quick"}
QUICK_KEYS = FIGHT_KEYS | {"base", "contenders", "accuracy_matched", "lambda_sweep"}
CLAIM_KINDS = ("level", "compare", "reduction", "param_ratio")
CLAIM_KEYS = {"id", "text", "kind", "contender", "metric", "claimed", "claimed_range", "direction", "baseline", "note"}
CONFIG_FIELDS = set(TrainConfig.__dataclass_fields__)
#: results.csv metric columns a claim may name (fgsm_/pgd_ columns are added per eps).
METRIC_COLUMNS = ("val_accuracy", "test_accuracy", "test_mae", "test_off_by_one", "test_qwk", "jacobian_fro_mean",
                  "jacobian_fro_p99", "tau_input", "tau_train", "pgv", "lipschitz_bound", "corruption_accuracy",
                  "params", "train_seconds", "step_ms", "peak_memory_mb")
TUNABLE = {"lr", "reg_strength", "dreg", "dreg_final", "bound"}
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]*$")


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
    source: str = ""
    command: str = ""

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
        return list(METRIC_COLUMNS) + [f"{m}_{e:g}" for e in eps for m in ("fgsm", "pgd")]


def _check_keys(where: str, got: dict, allowed: set[str]) -> None:
    unknown = sorted(set(got) - allowed)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}: expected some of {', '.join(sorted(allowed))}")


def _merge(a: dict, b: dict) -> dict:
    out = copy.deepcopy(a)
    for k, v in b.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out


def _check_space(where: str, name: str, space: Any) -> None:
    if name not in TUNABLE:
        raise ConfigError(f"{where}: cannot tune {name!r}: expected one of {', '.join(sorted(TUNABLE))}")
    if isinstance(space, dict):
        if set(space) != {"choices"} or not isinstance(space["choices"], list) or not space["choices"]:
            raise ConfigError(f"{where}: tune.{name} must be [low, high, \"log\"|\"linear\"] or {{choices = [...]}}, got {space!r}")
        return
    ok = (isinstance(space, list) and len(space) == 3 and all(isinstance(v, (int, float)) for v in space[:2])
          and space[2] in ("log", "linear") and space[0] < space[1] and (space[2] == "linear" or space[0] > 0))
    if not ok:
        raise ConfigError(f"{where}: tune.{name} must be [low, high, \"log\"|\"linear\"] with low < high, got {space!r}")


def parse_spec(raw: dict[str, Any], *, quick: bool = False, dataset: str | None = None, data_dir: str | None = None,
               target: str | None = None, seeds: int | None = None, source: str = "") -> FightSpec:
    """Validate a spec dict (as read from TOML) and resolve the quick profile and overrides."""
    _check_keys("spec", raw, TOP_KEYS)
    fight = dict(raw.get("fight", {}))
    _check_keys("[fight]", fight, FIGHT_KEYS)
    base = dict(raw.get("base", {}))
    contenders_raw = list(raw.get("contender", []))
    acc = raw.get("accuracy_matched")
    sweep = raw.get("lambda_sweep")
    claims = [dict(c) for c in raw.get("claim", [])]
    q = dict(raw.get("quick", {}))
    _check_keys("[quick]", q, QUICK_KEYS)
    if quick:
        fight.update({k: v for k, v in q.items() if k in FIGHT_KEYS})
        base = _merge(base, q.get("base", {}))
        if "contenders" in q:
            names = {c.get("name") for c in contenders_raw}
            missing = [n for n in q["contenders"] if n not in names]
            if missing:
                raise ConfigError(f"[quick] contenders: unknown contender(s) {', '.join(missing)}: expected some of {', '.join(sorted(map(str, names)))}")
            contenders_raw = [c for c in contenders_raw if c.get("name") in q["contenders"]]
        if "accuracy_matched" in q:
            acc = _merge(acc or {}, q["accuracy_matched"]) if q["accuracy_matched"] else None
        if "lambda_sweep" in q:
            sweep = _merge(sweep or {}, q["lambda_sweep"]) if q["lambda_sweep"] else None
    for key, val in (("dataset", dataset), ("data_dir", data_dir), ("target", target)):
        if val is not None:
            fight[key] = val
    if seeds is not None:
        fight["seeds"] = seeds
    for key in ("dataset", "data_dir", "target"):
        if fight.get(key) is not None:
            base[key] = fight[key]
    _check_keys("[base]", base, CONFIG_FIELDS)

    contenders = []
    for i, c in enumerate(contenders_raw):
        c = dict(c)
        name = c.pop("name", None)
        where = f"contender {name or i + 1}"
        if not isinstance(name, str) or not NAME_RE.match(name):
            raise ConfigError(f"{where}: name must match [a-z0-9-]+, got {name!r}")
        label = c.pop("label", name)
        tune = c.pop("tune", {})
        _check_keys(where, c, CONFIG_FIELDS)
        for pname, space in tune.items():
            _check_space(where, pname, space)
        try:
            TrainConfig.from_dict({**base, **c})
        except ConfigError as e:
            raise ConfigError(f"{where}: {e}") from None
        contenders.append(Contender(name, str(label), c, dict(tune)))
    names = [c.name for c in contenders]
    if not contenders:
        raise ConfigError("spec has no [[contender]]: expected at least two")
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ConfigError(f"duplicate contender name(s): {', '.join(dup)}")
    reference = fight.get("reference", names[0])
    if reference not in names:
        raise ConfigError(f"[fight] reference {reference!r} is not a contender: expected one of {', '.join(names)}")

    def _int(key, default, lo=1):
        v = fight.get(key, default)
        if not isinstance(v, int) or isinstance(v, bool) or v < lo:
            raise ConfigError(f"[fight] {key} must be an integer >= {lo}, got {v!r}")
        return v

    spec = FightSpec(
        name=str(fight.get("name", Path(source).stem or "fight")),
        description=str(fight.get("description", "")),
        dataset=str(base.get("dataset", TrainConfig.dataset)),
        reference=reference,
        seeds=_int("seeds", 5),
        trials=_int("trials", 8, lo=0),
        tune_epochs=_int("tune_epochs", int(base.get("epochs", TrainConfig.epochs))),
        tune_seed=_int("tune_seed", 0, lo=0),
        param_match=bool(fight.get("param_match", True)),
        primary_metric=str(fight.get("primary_metric", "accuracy")),
        base=base,
        contenders=contenders,
        accuracy_matched=_check_accuracy_matched(acc, names),
        lambda_sweep=_check_sweep(sweep, names),
        claims=[],
        quick=quick,
        source=source,
    )
    if spec.primary_metric != "accuracy":
        raise ConfigError(f"[fight] primary_metric {spec.primary_metric!r} is not supported: expected 'accuracy'")
    spec.claims = [_check_claim(c, i, spec) for i, c in enumerate(claims)]
    return spec


def _check_accuracy_matched(acc: dict | None, names: list[str]) -> dict | None:
    if not acc:
        return None
    _check_keys("[accuracy_matched]", acc, {"contender", "widths", "margin", "seeds"})
    if acc.get("contender") not in names:
        raise ConfigError(f"[accuracy_matched] contender {acc.get('contender')!r} is not a contender: expected one of {', '.join(names)}")
    widths = acc.get("widths")
    if not isinstance(widths, list) or not widths or any(not isinstance(w, int) or w < 1 for w in widths):
        raise ConfigError(f"[accuracy_matched] widths must be a list of positive integers, got {widths!r}")
    margin = acc.get("margin", 0.005)
    if not isinstance(margin, (int, float)) or not 0 <= margin < 1:
        raise ConfigError(f"[accuracy_matched] margin must be in [0, 1), got {margin!r}")
    return {"contender": acc["contender"], "widths": sorted(widths), "margin": float(margin), "seeds": acc.get("seeds")}


def _check_sweep(sweep: dict | None, names: list[str]) -> dict | None:
    if not sweep:
        return None
    _check_keys("[lambda_sweep]", sweep, {"contender", "values", "seeds"})
    if sweep.get("contender") not in names:
        raise ConfigError(f"[lambda_sweep] contender {sweep.get('contender')!r} is not a contender: expected one of {', '.join(names)}")
    vals = sweep.get("values")
    if not isinstance(vals, list) or not vals or any(not isinstance(v, (int, float)) or v < 0 or not math.isfinite(v) for v in vals):
        raise ConfigError(f"[lambda_sweep] values must be a list of numbers >= 0, got {vals!r}")
    return {"contender": sweep["contender"], "values": [float(v) for v in vals], "seeds": sweep.get("seeds")}


def _check_claim(c: dict, i: int, spec: FightSpec) -> dict:
    where = f"claim {c.get('id', i + 1)}"
    _check_keys(where, c, CLAIM_KEYS)
    kind = c.get("kind")
    if kind not in CLAIM_KINDS:
        raise ConfigError(f"{where}: unknown kind {kind!r}: expected one of {', '.join(CLAIM_KINDS)}")
    known = {x.name for x in spec.contenders}
    # claims may name contenders that the quick profile dropped: they are reported as "not tested"
    if not isinstance(c.get("contender"), str):
        raise ConfigError(f"{where}: needs a contender, got {c.get('contender')!r}")
    metric = c.get("metric", "test_accuracy")
    if kind != "param_ratio" and metric not in spec.metric_columns() and not re.match(r"^(fgsm|pgd)_[0-9.e-]+$", metric):
        raise ConfigError(f"{where}: unknown metric {metric!r}: expected one of {', '.join(spec.metric_columns())}")
    direction = c.get("direction", "higher")
    if direction not in ("higher", "lower"):
        raise ConfigError(f"{where}: direction must be 'higher' or 'lower', got {direction!r}")
    if kind in ("compare", "reduction") and not isinstance(c.get("baseline"), str):
        raise ConfigError(f"{where}: kind {kind!r} needs a baseline contender")
    if kind in ("level", "reduction", "param_ratio") and "claimed" not in c and "claimed_range" not in c:
        raise ConfigError(f"{where}: kind {kind!r} needs claimed (or claimed_range)")
    out = {"id": str(c.get("id", f"claim-{i + 1}")), "text": str(c.get("text", "")), "kind": kind,
           "contender": c["contender"], "metric": metric, "direction": direction,
           "baseline": c.get("baseline"), "claimed": c.get("claimed"), "claimed_range": c.get("claimed_range"),
           "note": c.get("note", ""), "tested": c["contender"] in known and (c.get("baseline") in known or c.get("baseline") is None)}
    return out


def load_spec(path: str | Path, **overrides: Any) -> FightSpec:
    """Read and validate a fight spec TOML file (see :func:`parse_spec` for ``overrides``)."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"fight spec {path} does not exist") from None
    except IsADirectoryError:
        raise ConfigError(f"fight spec {path} is a folder, expected a TOML file") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"fight spec {path} is not valid TOML: {e}") from None
    return parse_spec(raw, source=str(path), **overrides)
