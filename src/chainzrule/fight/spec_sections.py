"""Checking a fight spec's optional sections: ``[accuracy_matched]``, ``[lambda_sweep]`` and every ``[[claim]]``.

:func:`chainzrule.fight.spec.parse_spec` calls these once the contenders are parsed (a section
names contenders, and a claim the spec's metrics); each returns the section as the
:class:`~chainzrule.fight.spec.FightSpec` stores it, or raises ConfigError saying what is wrong.
:func:`check_keys` (unknown keys of a table), :func:`check_values` (a list of distinct numbers),
:func:`check_int`, :data:`NAME_RE` (contender names), :func:`merge_tables`,
:func:`quick_contenders` (the ``[quick]`` contender subset), :func:`parse_both_profiles` (a spec is
valid in its full and its quick profile) and :func:`refuse_two_values` (a key in the head table and
``[base]``) are shared by the fight, stability and fine-tuning specs.
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Callable, TypeVar

from ..config import ADV_COLUMN, DREG_MODELS, FLOAT_LIMIT, INT_LIMIT, NEURAL_MODELS, SEED_LIMIT
from ..errors import ConfigError

if TYPE_CHECKING:  # spec.py imports this module
    from .spec import FightSpec

T = TypeVar("T")

__all__ = ["NAME_RE", "check_keys", "check_values", "check_int", "merge_tables", "quick_contenders", "parse_both_profiles",
           "refuse_two_values", "check_accuracy_matched", "check_sweep", "check_claim", "CLAIM_KINDS", "CLAIM_KEYS",
           "CLAIM_RULES"]

CLAIM_KINDS = ("level", "compare", "noninferior", "reduction", "param_ratio")
CLAIM_KEYS = {"id", "text", "kind", "contender", "metric", "claimed", "claimed_range", "direction", "baseline", "note",
              "not_tested", "margin", "tolerance", "rule", "not_comparable"}
#: How a claimed_range is judged: by equivalence (TOST, the default) or at its strict end.
CLAIM_RULES = ("equivalence", "strict-end")


#: a contender name: lower-case letters, digits and dashes, not starting with a dash
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]*$")


def check_keys(where: str, got: dict, allowed: set[str], hint: Callable[[list[str]], str] | None = None) -> None:
    """ConfigError if ``got`` (the table at ``where``) is not a table or has keys that are not ``allowed``.

    ``hint`` turns the sorted unknown keys into extra text for the message (e.g. where they belong).

    >>> check_keys("[base]", {"epochs": 4, "lr_max": 1}, {"epochs", "lr"})
    Traceback (most recent call last):
    ...
    chainzrule.errors.ConfigError: [base]: unknown key(s) lr_max: expected some of epochs, lr
    """
    if not isinstance(got, dict):
        raise ConfigError(f"{where}: expected a table, got {got!r}")
    unknown = sorted(set(got) - allowed)
    if unknown:
        extra = hint(unknown) if hint else ""
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}{extra}: expected some of {', '.join(sorted(allowed))}")


def check_values(where: str, values: Any, *, zero_ok: bool) -> list[float]:
    """A sorted list of distinct finite numbers > 0 (``>= 0`` with ``zero_ok``), e.g. a grid of
    learning rates.

    >>> check_values("[stability] lrs", [0.01, 0.001], zero_ok=False)
    [0.001, 0.01]
    >>> check_values("[stability] lrs", [0.01, 0], zero_ok=False)
    Traceback (most recent call last):
    ...
    chainzrule.errors.ConfigError: [stability] lrs[1] must be a finite number > 0, got 0
    """
    bound = ">= 0" if zero_ok else "> 0"
    if not isinstance(values, list) or not values:
        raise ConfigError(f"{where} must be a non-empty list of numbers {bound}, got {values!r}")
    for i, v in enumerate(values):
        ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
        if not ok or v < 0 or (v == 0 and not zero_ok):
            raise ConfigError(f"{where}[{i}] must be a finite number {bound}, got {v!r}")
    floats = [float(v) for v in values]
    if len(set(floats)) != len(floats):
        raise ConfigError(f"{where} must hold distinct values, got {values!r}")
    return sorted(floats)


def check_int(where: str, v: Any, lo: int = 1) -> int:
    """``v`` if it is an integer ``>= lo`` (not a bool), else ConfigError naming ``where``."""
    if not isinstance(v, int) or isinstance(v, bool) or v < lo:
        raise ConfigError(f"{where} must be an integer >= {lo}, got {v!r}")
    return v


#: Config fields that decide a run's rows (the data, the test split, the validation carve): shared by every
#: contender, so a spec's head table or [base] only; in a contender they would pair its runs with others' on
#: other rows
DATA_KEYS = ("dataset", "data_dir", "target", "featurizer", "limit", "val_fraction")


def refuse_own_data(where: str, table: dict, head: str) -> None:
    """ConfigError if the contender ``table`` (named ``where``) sets any of :data:`DATA_KEYS`: every
    contender's runs are compared on the same rows, given in ``head`` (``[fight]``, ``[stability]``)
    or ``[base]``.

    >>> refuse_own_data("contender 'relu'", {"limit": 300}, "[fight]")
    Traceback (most recent call last):
    chainzrule.errors.ConfigError: contender 'relu' sets limit: the data every contender shares (its rows, test split and validation carve) is given in [fight] or [base], for all
    """
    given = [k for k in DATA_KEYS if k in table]
    if given:
        raise ConfigError(f"{where} sets {', '.join(given)}: the data every contender shares (its rows, test "
                          f"split and validation carve) is given in {head} or [base], for all")


def require_quick_table(raw: dict, quick: bool) -> None:
    """ConfigError for ``--quick`` on a spec without a ``[quick]`` table (fights, stability maps and
    fine-tune fights alike): it would run the full profile labelled as a preview."""
    if quick and "quick" not in raw:
        raise ConfigError("--quick needs the spec's [quick] table, got a spec without one (run it without --quick "
                          "for its full profile)")


def parse_both_profiles(raw: dict, quick: bool, parse: Callable[[dict, bool], T]) -> T:
    """``parse(raw, quick)``, the spec (fight, stability map, fine-tune fight) checked in both profiles.

    ``parse`` reads a spec in one profile (``False``: the full one; ``True``: with ``[quick]`` merged
    in). Both are parsed, each from a throwaway copy of ``raw`` (the quick one when the spec has a
    ``[quick]`` table), and the one ``quick`` asks for is returned: a full run refuses a bad
    ``[quick]`` value too, rather than leave it for the first ``--quick`` run (CI's) to find, and a
    quick run a bad full-profile value that ``[quick]`` overrides. A quick-profile error names
    ``[quick]`` (prefixed "[quick] profile: " unless it does already); ``--quick`` on a spec without
    ``[quick]``: :func:`require_quick_table`.

    >>> parse = lambda raw, quick: check_int("[x] seeds", raw["quick"]["seeds"] if quick else raw["seeds"])
    >>> parse_both_profiles({"seeds": 3, "quick": {"seeds": 1}}, False, parse)
    3
    >>> parse_both_profiles({"seeds": 3, "quick": {"seeds": 0}}, False, parse)
    Traceback (most recent call last):
    ...
    chainzrule.errors.ConfigError: [quick] profile: [x] seeds must be an integer >= 1, got 0
    """
    full = parse(copy.deepcopy(raw), False)
    require_quick_table(raw, quick)
    if "quick" not in raw:
        return full
    try:
        fast = parse(copy.deepcopy(raw), True)
    except ConfigError as e:
        message = str(e)
        raise ConfigError(message if "[quick]" in message else f"[quick] profile: {message}") from None
    return fast if quick else full


def refuse_two_values(head: str, table: dict, base: dict, keys: Iterable[str]) -> None:
    """ConfigError if one of ``keys`` is set in the spec's head table ``head`` (``[fight]``,
    ``[stability]``; its values ``table``) and in ``[base]`` to different values: the head's is
    copied into ``[base]``, so one of them would silently win. The same value in both is accepted.

    >>> refuse_two_values("[stability]", {"dataset": "mnist"}, {"dataset": "mnist", "epochs": 2}, ["dataset"])
    >>> refuse_two_values("[stability]", {"dataset": "mnist"}, {"dataset": "pima"}, ["dataset"])
    Traceback (most recent call last):
    ...
    chainzrule.errors.ConfigError: dataset is set twice, to different values: [stability] dataset = 'mnist' and [base] dataset = 'pima': expected it in one of them (or the same value in both)
    """
    for key in keys:
        if key in table and key in base and table[key] != base[key]:
            raise ConfigError(f"{key} is set twice, to different values: {head} {key} = {table[key]!r} and [base] "
                              f"{key} = {base[key]!r}: expected it in one of them (or the same value in both)")


def merge_tables(a: dict, b: dict) -> dict:
    """``a`` deep-merged with ``b`` (``b`` wins; nested tables merged key by key); neither is changed.

    >>> merge_tables({"epochs": 4, "x": {"p": 1, "q": 2}}, {"x": {"q": 3}})
    {'epochs': 4, 'x': {'p': 1, 'q': 3}}
    """
    out = copy.deepcopy(a)
    for k, v in b.items():
        out[k] = merge_tables(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out


def quick_contenders(contenders_raw: list, keep: Any) -> list:
    """The ``[[contender]]`` tables named by ``[quick] contenders``, in spec order.

    ConfigError unless ``keep`` is a non-empty list of names that all exist.

    >>> [c["name"] for c in quick_contenders([{"name": "a"}, {"name": "b"}, {"name": "c"}], ["c", "a"])]
    ['a', 'c']
    """
    names = [c.get("name") for c in contenders_raw if isinstance(c, dict) and isinstance(c.get("name"), str)]
    if not isinstance(keep, list) or not keep or not all(isinstance(n, str) for n in keep):
        raise ConfigError(f"[quick] contenders must be a non-empty list of contender names: expected some of "
                          f"{', '.join(names)}, got {keep!r}")
    missing = [n for n in keep if n not in names]
    if missing:
        raise ConfigError(f"[quick] contenders: unknown contender(s) {', '.join(missing)}: expected some of "
                          f"{', '.join(names)}")
    return [c for c in contenders_raw if isinstance(c, dict) and c.get("name") in keep]


def _section_seeds(where: str, section: dict) -> int | None:
    seeds = section.get("seeds")
    if seeds is not None and (not isinstance(seeds, int) or isinstance(seeds, bool) or not 1 <= seeds <= SEED_LIMIT):
        raise ConfigError(f"{where} seeds must be an integer in 1..{SEED_LIMIT}, got {seeds!r}")
    return seeds


def _section_contender(where: str, section: dict, models: dict[str, str], allowed: tuple[str, ...], why: str) -> str:
    name = section.get("contender")
    if not isinstance(name, str) or name not in models:
        raise ConfigError(f"{where} contender {name!r} is not a contender: expected one of {', '.join(models)}")
    if models[name] not in allowed:
        raise ConfigError(f"{where} contender {name!r} is a {models[name]!r} model: {why} "
                          f"(expected one of {', '.join(allowed)})")
    return name


def check_accuracy_matched(acc: dict | None, models: dict[str, str]) -> dict | None:
    if not acc:
        return None
    check_keys("[accuracy_matched]", acc, {"contender", "widths", "margin", "seeds", "baselines", "lr_factors",
                                             "reg_factors"})
    name = _section_contender("[accuracy_matched]", acc, models, NEURAL_MODELS, "only networks have a width to sweep")
    baselines = acc.get("baselines", [])
    if not isinstance(baselines, list) or any(not isinstance(b, str) for b in baselines):
        raise ConfigError(f"[accuracy_matched] baselines must be a list of contender names, got {baselines!r}")
    for b in baselines:
        _section_contender("[accuracy_matched] baselines", {"contender": b}, models, NEURAL_MODELS,
                           "only networks have a width to sweep")
    if name in baselines:
        raise ConfigError(f"[accuracy_matched] baselines must not include the contender itself ({name!r})")
    widths = acc.get("widths")
    if not isinstance(widths, list) or not widths or any(not isinstance(w, int) or isinstance(w, bool)
                                                         or not 1 <= w <= INT_LIMIT for w in widths):
        raise ConfigError(f"[accuracy_matched] widths must be a list of positive integers, got {widths!r}")
    margin = acc.get("margin", 0.005)
    if not isinstance(margin, (int, float)) or isinstance(margin, bool) or not 0 <= margin < 1:
        raise ConfigError(f"[accuracy_matched] margin must be in [0, 1), got {margin!r}")
    out = {"contender": name, "widths": sorted(widths), "margin": float(margin),
           "seeds": _section_seeds("[accuracy_matched]", acc), "baselines": list(dict.fromkeys(baselines))}
    for key, what in (("lr_factors", "learning rate"), ("reg_factors", "regularization strength (dreg or reg_strength)")):
        if key in acc:  # absent: every width trains at its family's tuned value (factor 1)
            out[key] = _factors(key, what, acc[key])
    return out


#: the regularization strengths a width sweep's ``reg_factors`` scale, in this order of preference:
#: the first one the family tunes (DREG's λ, else its regularizer's strength)
WIDTH_REG_FIELDS = ("dreg", "reg_strength")


def width_reg_field(space: dict, cfg: Any = None) -> str | None:
    """The regularization strength a family's width sweep varies: the first of
    :data:`WIDTH_REG_FIELDS` in its search ``space`` (and set in its tuned ``cfg`` when given), or None.

    >>> width_reg_field({"lr": [1e-4, 1e-1, "log"], "dreg": [1e-5, 3e-2, "log"]}), width_reg_field({"lr": [1e-4, 1e-1]})
    ('dreg', None)
    """
    return next((f for f in WIDTH_REG_FIELDS if f in space and (cfg is None or getattr(cfg, f) is not None)), None)


def _factors(key: str, what: str, factors) -> list[float]:
    """``[accuracy_matched] lr_factors`` / ``reg_factors``: the multiples of a family's tuned value
    that each width tries (all combinations of the two), the point with the best validation
    accuracy kept (per width and split)."""
    if (not isinstance(factors, list) or not 1 <= len(factors) <= 9
            or any(not isinstance(f, (int, float)) or isinstance(f, bool) or not math.isfinite(f)
                   or not 1e-3 <= f <= 1e3 for f in factors)
            or len(set(float(f) for f in factors)) != len(factors)):
        raise ConfigError(f"[accuracy_matched] {key} must be a list of 1 to 9 distinct numbers in [0.001, 1000] "
                          f"(multiples of each family's tuned {what}), got {factors!r}")
    return sorted(float(f) for f in factors)


def check_sweep(sweep: dict | None, models: dict[str, str]) -> dict | None:
    if not sweep:
        return None
    check_keys("[lambda_sweep]", sweep, {"contender", "values", "seeds"})
    name = _section_contender("[lambda_sweep]", sweep, models, DREG_MODELS, "a λ sweep needs a model with DREG")
    vals = sweep.get("values")
    if not isinstance(vals, list) or not vals or any(not isinstance(v, (int, float)) or isinstance(v, bool) or v < 0
                                                     or not math.isfinite(v) or v > FLOAT_LIMIT for v in vals):
        raise ConfigError(f"[lambda_sweep] values must be a list of numbers in [0, {FLOAT_LIMIT:g}], got {vals!r}")
    return {"contender": name, "values": [float(v) for v in vals], "seeds": _section_seeds("[lambda_sweep]", sweep)}


def check_claim(c: dict, i: int, spec: FightSpec, defined: list[str]) -> dict:
    where = f"claim {c.get('id', i + 1)}"
    check_keys(where, c, CLAIM_KEYS)
    kind = c.get("kind")
    if kind not in CLAIM_KINDS:
        raise ConfigError(f"{where}: unknown kind {kind!r}: expected one of {', '.join(CLAIM_KINDS)}")
    known = {x.name for x in spec.contenders}
    if not isinstance(c.get("contender"), str):
        raise ConfigError(f"{where}: needs a contender, got {c.get('contender')!r}")
    # a claim may name a contender the quick profile dropped ("not tested"), never one the spec
    # lacks, unless it says why it cannot be tested here (not_tested = "reason")
    untestable = c.get("not_tested")
    if untestable is not None and (not isinstance(untestable, str) or not untestable.strip()):
        raise ConfigError(f"{where}: not_tested must be the reason the claim cannot be tested, got {untestable!r}")
    for role in ("contender", "baseline"):
        if untestable is None and c.get(role) is not None and c.get(role) not in defined:
            raise ConfigError(f"{where}: {role} {c.get(role)!r} is not a contender of this spec: expected one of "
                              f"{', '.join(map(str, defined))}")
    metric = c.get("metric", "test_accuracy")
    if kind != "param_ratio" and metric not in spec.metric_columns() and metric not in _attack_columns(spec):
        known = [*spec.metric_columns(), *sorted(_attack_columns(spec) - set(spec.metric_columns()))]
        raise ConfigError(f"{where}: unknown metric {metric!r}: expected one of {', '.join(known)}"
                          + (" (an attack column needs robustness on, with that ε in adv_eps)"
                             if ADV_COLUMN.match(str(metric)) else ""))
    direction = c.get("direction", "higher")
    if direction not in ("higher", "lower"):
        raise ConfigError(f"{where}: direction must be 'higher' or 'lower', got {direction!r}")
    if kind in ("compare", "noninferior", "reduction") and not isinstance(c.get("baseline"), str):
        raise ConfigError(f"{where}: kind {kind!r} needs a baseline contender")
    if kind in ("level", "reduction", "param_ratio") and "claimed" not in c and "claimed_range" not in c:
        raise ConfigError(f"{where}: kind {kind!r} needs claimed (or claimed_range)")
    extra = _check_claim_rules(where, c, kind)
    out = {"id": str(c.get("id", f"claim-{i + 1}")), "text": str(c.get("text", "")), "kind": kind,
           "contender": c["contender"], "metric": metric, "direction": direction,
           "baseline": c.get("baseline"), "claimed": c.get("claimed"), "claimed_range": c.get("claimed_range"),
           **extra, "note": c.get("note") or untestable or "",
           "tested": untestable is None and c["contender"] in known and c.get("baseline") in known | {None}}
    return out


def _check_claim_rules(where: str, c: dict, kind: str) -> dict:
    """The verdict-rule keys of a claim: ``margin`` (non-inferiority δ, metric units, no default:
    required by kind "noninferior", and on a "compare" claim it makes it one), ``tolerance`` (≥ 0,
    level/reduction/range claims), ``rule`` (how a claimed_range is judged) and ``not_comparable``
    (the reason no statistic can judge the claim here)."""
    out: dict[str, Any] = {}
    for key in ("margin", "tolerance"):
        v = c.get(key)
        if v is not None and (not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v) or v < 0):
            raise ConfigError(f"{where}: {key} must be a finite number >= 0 (metric units), got {v!r}")
        if v is not None:
            out[key] = float(v)
    if kind == "noninferior" and "margin" not in out:
        raise ConfigError(f"{where}: kind 'noninferior' needs a margin (metric units, e.g. 0.005 = 0.5 points); "
                          "there is no default")
    if "margin" in out and kind not in ("compare", "noninferior"):
        raise ConfigError(f"{where}: margin applies to compare/noninferior claims, not {kind!r}")
    rule = c.get("rule")
    if rule is not None:
        if rule not in CLAIM_RULES:
            raise ConfigError(f"{where}: rule must be one of {', '.join(CLAIM_RULES)}, got {rule!r}")
        if c.get("claimed_range") is None:
            raise ConfigError(f"{where}: rule applies to a claimed_range, and the claim has none")
        out["rule"] = rule
    nc = c.get("not_comparable")
    if nc is not None:
        if not isinstance(nc, str) or not nc.strip():
            raise ConfigError(f"{where}: not_comparable must be the reason the claim is not comparable, got {nc!r}")
        out["not_comparable"] = nc.strip()
    return out


def _attack_columns(spec: "FightSpec") -> set[str]:
    """The ``fgsm_/pgd_/apgd_<ε>`` columns some contender's runs will have (robustness on, ε in adv_eps)."""
    from ..config import ATTACKS

    cols: set[str] = set()
    for c in spec.contenders:
        cfg = c.train_config(spec.base)
        if cfg.robustness:
            cols |= {f"{m}_{e:g}" for e in cfg.adv_eps for m in ATTACKS}
    return cols
