"""Stability-map specs: a TOML file → a validated :class:`StabilitySpec`.

Layout (every table but ``[stability]`` optional)::

    [stability]
    name = "mnist"                 # default: the file's stem
    description = "..."
    dataset = "mnist"              # also data_dir, target: copied into [base]
    lrs = [1e-3, 3e-3, 1e-2]       # learning rates (TrainConfig.lr), each > 0
    lambdas = [0.0, 1e-3, 1e-2]    # DREG strengths (TrainConfig.dreg), each >= 0
    seeds = 3                      # seeds 0..seeds-1 per cell (default 3)
    unstable_ratio = 20.0          # a run is unstable if max G > ratio x median G (default 20)

    [base]                         # any TrainConfig field except lr, dreg, seed (set by the grid)

    [[contender]]                  # at least one; name, label, seeds + TrainConfig fields (not the data's)
    name = "cr"
    model = "chainzrule"
    seeds = 1                      # optional per-contender seed count

    [quick]                        # merged in with --quick
    lrs = [...]; lambdas = [...]; seeds = 1; unstable_ratio = ...
    base = { limit = 3000, epochs = 1 }
    contenders = ["cr", "relu"]    # optional subset

With ``--quick``, ``[quick].seeds`` replaces every contender's seed count. Everything is checked
here, before any run starts: unknown keys, empty or negative grids, duplicate values, unknown
contender fields, a contender setting the data's fields (``dataset``, ``data_dir``, ``target``,
``featurizer``, ``limit``, ``val_fraction``: every contender's cells are on the same rows), a
``dataset``, ``data_dir`` or ``target`` set in ``[stability]`` and ``[base]`` to different values, and
every cell's :class:`~chainzrule.config.TrainConfig`, in both profiles (the ``[quick]`` one without
``--quick`` too). Errors are
:class:`~chainzrule.errors.ConfigError` naming what was expected and what was given.

>>> spec = parse_stability_spec({"stability": {"dataset": "synthetic", "lrs": [1e-2, 1e-3],
...     "lambdas": [0.0], "seeds": 2}, "contender": [{"name": "relu", "model": "mlp", "seeds": 1}]})
>>> spec.lrs, spec.lambdas, [(c.name, c.seeds) for c in spec.contenders], spec.n_runs
([0.001, 0.01], [0.0], [('relu', 1)], 2)
>>> spec.config(spec.contenders[0], lr=0.01, lam=0.0, seed=0).dreg
0.0
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..config import NEURAL_MODELS, TrainConfig, check_spec_kind, inert_setting, read_toml
from ..data import csv_reference
from ..errors import ConfigError
from .spec_sections import (NAME_RE, check_int, check_keys, check_values, merge_tables, parse_both_profiles,
                            quick_contenders, refuse_own_data, refuse_two_values)

__all__ = ["StabilityContender", "StabilitySpec", "parse_stability_spec", "load_stability_spec"]

TOP_KEYS = {"stability", "base", "contender", "quick"}
STABILITY_KEYS = {"name", "description", "dataset", "data_dir", "target", "lrs", "lambdas", "seeds", "unstable_ratio"}
QUICK_KEYS = {"lrs", "lambdas", "seeds", "unstable_ratio", "base", "contenders"}
#: TrainConfig fields that the grid sets for every run; a spec may not set them itself.
GRID_FIELDS = {"lr", "dreg", "seed"}
CONFIG_FIELDS = set(TrainConfig.__dataclass_fields__) - GRID_FIELDS
CONTENDER_KEYS = CONFIG_FIELDS | {"name", "label", "seeds"}
#: [stability] keys that are TrainConfig fields too (dataset, data_dir, target): copied into [base], so
#: they may not be set there to another value
SHARED_KEYS = sorted(STABILITY_KEYS & CONFIG_FIELDS)
DEFAULT_SEEDS = 3
DEFAULT_UNSTABLE_RATIO = 20.0


@dataclass(frozen=True)
class StabilityContender:
    """One entrant: name, label, TrainConfig overrides and its number of seeds."""

    name: str
    label: str
    config: dict[str, Any]
    seeds: int


@dataclass
class StabilitySpec:
    """A validated stability map: the grid (``lrs`` × ``lambdas``), contenders and base config."""

    name: str
    description: str
    dataset: str
    lrs: list[float]
    lambdas: list[float]
    unstable_ratio: float
    base: dict[str, Any]
    contenders: list[StabilityContender]
    quick: bool = False
    source: str = ""
    command: str = ""
    created: str = field(default="")

    def config(self, c: StabilityContender, lr: float, lam: float, seed: int) -> TrainConfig:
        """The run config of one cell and seed: base, then contender, then the grid values."""
        return TrainConfig.from_dict({**self.base, **c.config, "lr": lr, "dreg": lam, "seed": seed})

    @property
    def n_runs(self) -> int:
        return len(self.lrs) * len(self.lambdas) * sum(c.seeds for c in self.contenders)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _check_keys(where: str, got: dict, allowed: set[str]) -> None:
    """:func:`~.spec_sections.check_keys`, pointing grid fields set in a table to ``[stability]``."""

    def hint(unknown: list[str]) -> str:
        grid = sorted(set(unknown) & GRID_FIELDS)
        return f" ({', '.join(grid)} set by the grid: use [stability] lrs/lambdas/seeds)" if grid else ""

    check_keys(where, got, allowed, hint)


def _ratio(v: Any, table: str = "[stability]") -> float:
    if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v) or v <= 1:
        raise ConfigError(f"{table} unstable_ratio must be a finite number > 1, got {v!r}")
    return float(v)


def _apply_quick(head: dict, base: dict, contenders: list[dict], q: dict) -> tuple[dict, dict, list[dict], int | None]:
    """Merge the ``[quick]`` table: grid keys into ``head`` (checked as ``[quick]``'s), ``base``
    deep-merged, contender subset."""
    _check_keys("[quick]", q, QUICK_KEYS)
    for key, zero_ok in (("lrs", False), ("lambdas", True)):
        if key in q:
            check_values(f"[quick] {key}", q[key], zero_ok=zero_ok)
    if "unstable_ratio" in q:
        _ratio(q["unstable_ratio"], "[quick]")
    head = {**head, **{k: q[k] for k in ("lrs", "lambdas", "unstable_ratio") if k in q}}
    base = merge_tables(base, q.get("base", {}))
    if "contenders" in q:
        contenders = quick_contenders(contenders, q["contenders"])
    seeds = check_int("[quick] seeds", q["seeds"]) if "seeds" in q else None
    return head, base, contenders, seeds


def _contender(i: int, raw: Any, default_seeds: int, quick_seeds: int | None) -> StabilityContender:
    c = dict(raw) if isinstance(raw, dict) else raw
    name = c.get("name") if isinstance(c, dict) else None
    where = f"contender {name or i + 1}"
    _check_keys(where, c, CONTENDER_KEYS)
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise ConfigError(f"{where}: name must match [a-z0-9][a-z0-9-]*, got {name!r}")
    refuse_own_data(where, c, "[stability]")  # its cells would sit beside the others' on other data
    label = str(c.pop("label", name))
    c.pop("name")
    seeds = check_int(f"{where}: seeds", c.pop("seeds", default_seeds))
    return StabilityContender(name, label, c, quick_seeds or seeds)


def _check_cells(spec: StabilitySpec) -> None:
    """Every (contender, lr, λ) must give a valid TrainConfig of a neural model."""
    for c in spec.contenders:
        try:
            for lr in spec.lrs:
                for lam in spec.lambdas:
                    cfg = spec.config(c, lr, lam, 0)
            # model and reg are the same in every cell (contenders cannot set the grid's lr and λ)
            problem = inert_setting(cfg, set(c.config), schedule_given=set(spec.base) | set(c.config))
            if problem:
                raise ConfigError(problem)
        except ConfigError as e:
            raise ConfigError(f"contender {c.name}: {e}") from None
        if cfg.model not in NEURAL_MODELS:
            raise ConfigError(f"contender {c.name}: model {cfg.model!r} has no gradient-norm trace: "
                              f"expected one of {', '.join(NEURAL_MODELS)}")


def parse_stability_spec(raw: dict[str, Any], *, quick: bool = False, source: str = "") -> StabilitySpec:
    """Validate a spec dict (as read from TOML) and resolve the ``[quick]`` profile.

    Both profiles are checked, whichever ``quick`` asks for (as ``fight`` and ``finetune`` do:
    :func:`~.spec_sections.parse_both_profiles`): a quick run refuses a bad value that ``[quick]``
    overrides, and a full run a bad ``[quick]`` value."""
    check_spec_kind(raw, "stability")
    return parse_both_profiles(raw, quick, lambda r, q: _parse_profile(r, q, source))


def _parse_profile(raw: dict[str, Any], quick: bool, source: str) -> StabilitySpec:
    """:func:`parse_stability_spec` in one profile: the full one, or with ``[quick]`` merged in."""
    _check_keys("spec", raw, TOP_KEYS)
    if "stability" not in raw:
        raise ConfigError("spec has no [stability] table: expected one with lrs and lambdas")
    head = dict(raw["stability"]) if isinstance(raw["stability"], dict) else raw["stability"]
    _check_keys("[stability]", head, STABILITY_KEYS)
    base = raw.get("base", {})
    _check_keys("[base]", base, CONFIG_FIELDS)
    base = dict(base)
    contenders_raw = raw.get("contender", [])
    if not isinstance(contenders_raw, list) or not contenders_raw:
        raise ConfigError(f"spec needs at least one [[contender]], got {contenders_raw!r}")
    quick_seeds = None
    if quick:
        head, base, contenders_raw, quick_seeds = _apply_quick(head, base, list(contenders_raw), raw["quick"])
        _check_keys("[base] (with [quick].base)", base, CONFIG_FIELDS)
    refuse_two_values("[stability]", head, base, SHARED_KEYS)  # the head's is copied into [base] below
    if isinstance(head.get("dataset"), str):  # csv:PATH names its file absolutely: the run keys say which file
        head["dataset"] = csv_reference(head["dataset"], head.get("data_dir"))
    for key in ("dataset", "data_dir", "target"):
        if head.get(key) is not None:
            base[key] = head[key]
    seeds = check_int("[stability] seeds", head.get("seeds", DEFAULT_SEEDS))
    contenders = [_contender(i, c, seeds, quick_seeds) for i, c in enumerate(contenders_raw)]
    names = [c.name for c in contenders]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ConfigError(f"duplicate contender name(s) {', '.join(dup)}: expected every name once")
    spec = StabilitySpec(
        name=str(head.get("name", Path(source).stem or "stability")),
        description=str(head.get("description", "")),
        dataset=str(base.get("dataset", TrainConfig.dataset)),
        lrs=check_values("[stability] lrs", head.get("lrs"), zero_ok=False),
        lambdas=check_values("[stability] lambdas", head.get("lambdas"), zero_ok=True),
        unstable_ratio=_ratio(head.get("unstable_ratio", DEFAULT_UNSTABLE_RATIO)),
        base=base, contenders=contenders, quick=quick, source=source)
    _check_cells(spec)
    return spec


def load_stability_spec(path: str | Path, *, quick: bool = False) -> StabilitySpec:
    """Read and validate a stability spec TOML file."""
    raw = read_toml(path, "stability spec")
    return parse_stability_spec(raw, quick=quick, source=str(path))
