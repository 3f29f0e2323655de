"""Fine-tuning fight specs: a TOML file → a validated :class:`FinetuneSpec`.

Layout (``fights/sst5-finetune.toml``)::

    [finetune]
    name = "sst5-finetune"          # default: the file's stem
    description = "..."
    dataset = "sst5"                # the only text dataset with an official dev split so far
    seeds = 3                       # seeds 0..seeds-1 per contender
    reference = "cr-dreg"           # the ChainzRule head the claim is about (or a list: each judged)
    baseline = "linear"             # the standard fine-tuning head it is compared with
    claimed_gain = 0.89             # the papers' gain of the reference over the baseline (points)
    head_lrs = [1e-3, 3e-3, 1e-2]   # optional: each head's learning rate is chosen from these on dev

    [base]                          # any FinetuneConfig field except seed
    epochs = 3

    [[contender]]                   # name, label + FinetuneConfig fields
    name = "linear"
    head = "linear"
    head_lrs = [1e-4, 1e-3, 1e-2]   # optional: this head's own list (e.g. widened where it chose an end)

    [quick]                         # merged in with --quick
    seeds = 1
    head_lrs = [1e-3, 1e-2]
    base = { limit = 200, epochs = 1 }
    contenders = ["linear", "cr-dreg"]

With ``head_lrs`` (two or more values) each head is first fine-tuned with seed 0 at every
learning rate of the list; the one with the best dev accuracy is that head's, and its seeds run
at it (seed 0's run is the tuning run). ``head_lr`` is then set by the list, not by ``[base]`` or
a contender. A contender's own ``head_lrs`` replaces the list for that head (a range widened
where a head's choice lay at an end of it); ``[quick] head_lrs`` replaces every list. Everything is checked before any run: unknown keys, names, seeds, the list, every
run's :class:`~chainzrule.finetune.FinetuneConfig`, that reference and baseline are contenders, and
that no contender sets ``limit`` (every head is paired with the others on the same sentences), in
both profiles (the ``[quick]`` one without ``--quick`` too).

>>> s = parse_finetune_spec({"finetune": {"seeds": 2, "reference": "cr", "baseline": "linear"},
...     "contender": [{"name": "linear"}, {"name": "cr", "hidden": [8], "activation": "chainzrule"}]})
>>> [(c.name, s.config(c, 1).hidden) for c in s.contenders], s.n_runs
([('linear', ()), ('cr', (8,))], 4)
>>> s = parse_finetune_spec({"finetune": {"seeds": 3, "head_lrs": [1e-2, 1e-3]}, "contender": [{"name": "linear"}]})
>>> s.head_lrs, s.config(s.contenders[0], 2, head_lr=1e-2).head_lr, s.n_runs   # 2 tuning runs + seeds 1, 2
([0.001, 0.01], 0.01, 4)
>>> s = parse_finetune_spec({"finetune": {"head_lrs": [1e-2, 1e-3]},
...     "contender": [{"name": "linear", "head_lrs": [1e-4, 1e-3, 1e-2]}, {"name": "clm", "head": "clm"}]})
>>> [s.lrs_of(c) for c in s.contenders], s.all_head_lrs, s.n_runs   # 3 + 2 tuning runs + seeds 1, 2 of each
([[0.0001, 0.001, 0.01], [0.001, 0.01]], [0.0001, 0.001, 0.01], 9)
>>> parse_finetune_spec({"finetune": {}, "base": {"batch_size": 32.0}, "contender": [{"name": "linear"}]})
Traceback (most recent call last):
...
chainzrule.errors.ConfigError: [base] batch_size must be an integer >= 1, got 32.0
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from ..config import INT_LIMIT, check_spec_kind, read_toml
from ..errors import ConfigError, is_number
from ..finetune import FinetuneConfig
from .spec_sections import NAME_RE, check_int, check_keys, check_values, merge_tables, parse_both_profiles, quick_contenders

__all__ = ["FinetuneContender", "FinetuneSpec", "parse_finetune_spec", "load_finetune_spec"]

TOP_KEYS = {"finetune", "base", "contender", "quick"}
HEAD_KEYS = {"name", "description", "dataset", "data_dir", "seeds", "reference", "baseline", "claimed_gain", "head_lrs"}
QUICK_KEYS = {"seeds", "base", "contenders", "head_lrs"}
CONFIG_FIELDS = {f.name for f in fields(FinetuneConfig)} - {"seed"}
CONTENDER_KEYS = CONFIG_FIELDS | {"name", "label", "head_lrs"}
DATASETS = ("sst5",)
#: FinetuneConfig's fields by type, as a spec table must give them (from the dataclass, so a new
#: field is checked too); FinetuneConfig itself converts with int(), which would take 32.0 or true
#: and crash mid-run (or truncate hidden = [8.5] to 8)
_TYPES = {f.name: str(f.type) for f in fields(FinetuneConfig) if f.name in CONFIG_FIELDS}
INT_FIELDS = {name for name, t in _TYPES.items() if t.split(" |")[0] == "int"}
FLOAT_FIELDS = {name for name, t in _TYPES.items() if t.split(" |")[0] == "float"}
STR_FIELDS = {name for name, t in _TYPES.items() if t.split(" |")[0] == "str"}
INT_TUPLE_FIELDS = {name for name, t in _TYPES.items() if t.startswith("tuple[int")}
#: the smallest value of an integer field (1 unless listed): limit keeps >= 2 sentences per split
INT_LOWER = {"limit": 2}


def _check_keys(where: str, got: dict, allowed: set[str]) -> None:
    """:func:`~.spec_sections.check_keys`, pointing a ``seed`` set in a table to ``[finetune] seeds``."""
    check_keys(where, got, allowed, lambda unknown: " (runs are seeded 0..seeds-1: set [finetune] seeds)"
               if "seed" in unknown else "")


def _check_int(where: str, v: Any, lo: int) -> int:
    """:func:`~.spec_sections.check_int` (an integer >= ``lo``, not a bool), and at most INT_LIMIT."""
    check_int(where, v, lo)
    if v > INT_LIMIT:
        raise ConfigError(f"{where} must be an integer in {lo}..{INT_LIMIT}, got {v!r}")
    return v


def check_config_types(where: str, table: dict) -> None:
    """ConfigError unless every FinetuneConfig field in ``table`` has its type: integers (not bools,
    not 32.0) in range for the integer fields, a list of such for ``hidden``, numbers (not bools)
    for the float fields, strings for the string fields. Ranges of the floats and the choices of the
    strings are FinetuneConfig's own checks.

    >>> check_config_types("[base]", {"epochs": 3, "hidden": [256], "dreg": 0, "head": "clm"})
    >>> check_config_types("contender cr", {"hidden": [8.5]})
    Traceback (most recent call last):
    ...
    chainzrule.errors.ConfigError: contender cr hidden[0] must be an integer >= 1, got 8.5
    """
    for key, v in table.items():
        at = f"{where} {key}"
        if key in INT_FIELDS:
            _check_int(at, v, INT_LOWER.get(key, 1))
        elif key in INT_TUPLE_FIELDS:
            if not isinstance(v, list):
                raise ConfigError(f"{at} must be a list of integers >= 1 (e.g. [256]), got {v!r}")
            for i, h in enumerate(v):
                _check_int(f"{at}[{i}]", h, 1)
        elif key in FLOAT_FIELDS and not is_number(v):
            raise ConfigError(f"{at} must be a number, got {v!r}")
        elif key in STR_FIELDS and not isinstance(v, str):
            raise ConfigError(f"{at} must be a string, got {v!r}")


@dataclass(frozen=True)
class FinetuneContender:
    """One head: name, label and its FinetuneConfig overrides."""

    name: str
    label: str
    config: dict[str, Any]
    head_lrs: tuple[float, ...] = ()  # this head's own list; () = the spec's [finetune] head_lrs


@dataclass
class FinetuneSpec:
    """A validated fine-tuning fight: contenders × seeds on one text dataset."""

    name: str
    description: str
    dataset: str
    data_dir: str | None
    seeds: int
    reference: str                  # the first head the claim is judged for
    baseline: str
    claimed_gain: float
    base: dict[str, Any]
    contenders: list[FinetuneContender]
    quick: bool = False
    source: str = ""
    command: str = ""
    created: str = field(default="")
    head_lrs: list[float] = field(default_factory=list)  # sorted; [] = no tuning (the config's head_lr)
    other_references: list[str] = field(default_factory=list)  # further heads the claim is judged for

    @property
    def references(self) -> list[str]:
        """Every head the claim is judged for, the first (``reference``) first."""
        return [self.reference, *self.other_references]

    def config(self, c: FinetuneContender, seed: int, head_lr: float | None = None) -> FinetuneConfig:
        """The run config of contender ``c`` at ``seed``: base, then contender, then ``head_lr`` (if
        given), then the seed."""
        lr = {} if head_lr is None else {"head_lr": head_lr}
        return FinetuneConfig.from_dict({**self.base, **c.config, **lr, "seed": seed})

    @property
    def tunes(self) -> bool:
        """Whether some head's learning rate is chosen on dev (two or more values in its list)."""
        return any(self.tunes_head(c) for c in self.contenders)

    def lrs_of(self, c: FinetuneContender) -> list[float]:
        """The head learning rates contender ``c`` is tuned over: its own list, else the spec's."""
        return list(c.head_lrs) or self.head_lrs

    def tunes_head(self, c: FinetuneContender) -> bool:
        """Whether ``c``'s head learning rate is chosen on dev (two or more values)."""
        return len(self.lrs_of(c)) > 1

    @property
    def all_head_lrs(self) -> list[float]:
        """Every head learning rate some head is tuned over, sorted (the columns of the report's table)."""
        return sorted({lr for c in self.contenders if self.tunes_head(c) for lr in self.lrs_of(c)})

    @property
    def n_runs(self) -> int:
        """Distinct runs: a tuned head runs every value of its list at seed 0, then seeds 1.. at the
        chosen one; an untuned head runs its seeds."""
        return sum(len(self.lrs_of(c)) + self.seeds - 1 if self.tunes_head(c) else self.seeds
                   for c in self.contenders)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_finetune_spec(raw: dict[str, Any], *, quick: bool = False, source: str = "") -> FinetuneSpec:
    """Validate a spec dict (as read from TOML) and resolve the ``[quick]`` profile.

    Both profiles are checked, whichever ``quick`` asks for (:func:`~.spec_sections.parse_both_profiles`):
    a quick run checks every contender, also those ``[quick] contenders`` leaves out, and every
    table's values; a full run the quick profile's values."""
    check_spec_kind(raw, "finetune")
    return parse_both_profiles(raw, quick, lambda r, q: _parse_profile(r, q, source))


def _parse_profile(raw: dict[str, Any], quick: bool, source: str) -> FinetuneSpec:
    """:func:`parse_finetune_spec` in one profile: the full one, or with ``[quick]`` merged in."""
    _check_keys("spec", raw, TOP_KEYS)
    if not isinstance(raw.get("finetune"), dict):
        raise ConfigError("spec has no [finetune] table: expected one with seeds, reference and baseline")
    head = dict(raw["finetune"])
    _check_keys("[finetune]", head, HEAD_KEYS)
    base = raw.get("base", {})
    _check_keys("[base]", base, CONFIG_FIELDS)
    check_config_types("[base]", base)
    contenders_raw = raw.get("contender", [])
    if not isinstance(contenders_raw, list) or not contenders_raw:
        raise ConfigError(f"spec needs at least one [[contender]], got {contenders_raw!r}")
    seeds = check_int("[finetune] seeds", head.get("seeds", 3))
    head_lrs = check_values("[finetune] head_lrs", head["head_lrs"], zero_ok=False) if "head_lrs" in head else []
    quick_lrs = None
    if "quick" in raw:
        q = raw["quick"]
        _check_keys("[quick]", q, QUICK_KEYS)
        quick_lrs = check_values("[quick] head_lrs", q["head_lrs"], zero_ok=False) if "head_lrs" in q else None
        if "base" in q:  # checked whatever the profile, as the rest of [quick]
            _check_keys("[quick] base", q["base"], CONFIG_FIELDS)
            check_config_types("[quick] base", q["base"])
        if quick:
            base = merge_tables(base, q.get("base", {}))
            _check_keys("[base] (with [quick].base)", base, CONFIG_FIELDS)
            seeds = check_int("[quick] seeds", q.get("seeds", seeds))
            head_lrs = head_lrs if quick_lrs is None else quick_lrs
            if "contenders" in q:
                contenders_raw = quick_contenders(contenders_raw, q["contenders"])
    contenders = []
    for i, c in enumerate(contenders_raw):
        name = c.get("name") if isinstance(c, dict) else None
        where = f"contender {name or i + 1}"
        _check_keys(where, c, CONTENDER_KEYS)
        if not isinstance(name, str) or not NAME_RE.match(name):
            raise ConfigError(f"{where}: name must match [a-z0-9][a-z0-9-]*, got {name!r}")
        if "limit" in c:  # its own sentences: its runs would be paired with the others' on other dev and test rows
            raise ConfigError(f"{where} sets limit: the sentences every head shares are given in [base], for all")
        cfg = {k: v for k, v in c.items() if k not in ("name", "label", "head_lrs")}
        check_config_types(where, cfg)
        own = () if "head_lrs" not in c or (quick and quick_lrs is not None) else \
            tuple(check_values(f"{where} head_lrs", c["head_lrs"], zero_ok=False))
        contenders.append(FinetuneContender(name, str(c.get("label", name)), cfg, own))
    names = [c.name for c in contenders]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ConfigError(f"duplicate contender name(s) {', '.join(dup)}: expected every name once")
    dataset = str(head.get("dataset", "sst5"))
    if dataset not in DATASETS:
        raise ConfigError(f"[finetune] dataset must be one of {', '.join(DATASETS)}, got {dataset!r}")
    gain = head.get("claimed_gain", 0.0)
    if not isinstance(gain, (int, float)) or isinstance(gain, bool) or not math.isfinite(gain):
        raise ConfigError(f"[finetune] claimed_gain must be a finite number (points), got {gain!r}")
    refs = head.get("reference", names[-1])
    refs = refs if isinstance(refs, list) else [refs]
    if not refs or not all(isinstance(r, str) for r in refs) or len(set(refs)) != len(refs):
        raise ConfigError(f"[finetune] reference must be a contender name or a list of distinct names, got "
                          f"{head.get('reference')!r}")
    if quick:  # the quick profile judges the references it runs (the first must be one)
        refs = refs[:1] + [r for r in refs[1:] if r in names]
    spec = FinetuneSpec(
        name=str(head.get("name", Path(source).stem or "finetune")), description=str(head.get("description", "")),
        dataset=dataset, data_dir=head.get("data_dir"), seeds=seeds,
        reference=refs[0], baseline=str(head.get("baseline", names[0])),
        claimed_gain=float(gain), base=dict(base), contenders=contenders, quick=quick, source=source,
        head_lrs=head_lrs, other_references=refs[1:])
    setters = [f"contender {c.name}" for c in contenders if "head_lr" in c.config and spec.lrs_of(c)]
    if "head_lr" in base and any(spec.lrs_of(c) for c in contenders):
        setters.insert(0, "[base]")
    if setters:
        raise ConfigError(f"head_lr is chosen from head_lrs (the spec's or the contender's): remove it from "
                          f"{', '.join(setters)}")
    for role, name in [*(("reference", r) for r in spec.references), ("baseline", spec.baseline)]:
        if name not in names:
            raise ConfigError(f"[finetune] {role} must be a contender: expected one of {', '.join(names)}, "
                              f"got {name!r}")
    for c in contenders:
        try:
            for lr in spec.lrs_of(c) or [None]:
                spec.config(c, 0, lr)
        except (ConfigError, TypeError) as e:
            raise ConfigError(f"contender {c.name}: {e}") from None
    return spec


def load_finetune_spec(path: str | Path, *, quick: bool = False) -> FinetuneSpec:
    """Read and validate a fine-tuning spec TOML file."""
    return parse_finetune_spec(read_toml(path, "fine-tuning spec"), quick=quick, source=str(path))
