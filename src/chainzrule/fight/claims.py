"""Judging a fight's claims: :func:`claim_rows`, one row (claimed, ours, verdict, p) per spec claim.

Each claim kind has a handler (``_CLAIM_HANDLERS``) that fills its row or notes why it cannot;
paired claims (compare, noninferior) wait in ``_ClaimCtx.pending`` until every claim is read, then
each metric's family is judged at its Holm-adjusted p (``_judge_families``). The verdict
functions are :mod:`chainzrule.fight.verdicts` and :mod:`chainzrule.fight.stats`; param_ratio
claims read the size views of :mod:`.views`.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .formatting import format_margin, format_p, format_value, format_with_unit, is_fraction
from .loading import Fight, as_fight, to_number
from .stats import (
    VERDICTS,
    corrected_resampled_ttest,
    holm_bonferroni,
    noninferiority_test,
    one_sample_tests,
    paired_tests,
    ratio_reduction,
    summarize_splits,
    verdict_compare,
    verdict_level,
)
from .verdicts import (
    NOT_COMPARABLE,
    verdict_interval,
    verdict_noninferiority,
    verdict_range,
    verdict_superiority,
)
from .views import accuracy_matched, size_view

__all__ = ["claim_rows", "verdict_tally", "PREVIEW"]


def _claimed_text(claim: dict[str, Any], metric: str) -> str:
    kind, direction = claim.get("kind"), claim.get("direction", "higher")
    sym = "≥" if direction == "higher" else "≤"
    if kind == "param_ratio":
        return f"{claim.get('claimed')}×" if claim.get("claimed") is not None else "—"
    if kind == "reduction":
        c = claim.get("claimed")
        return f"{sym} {100 * float(c):.1f}% reduction" if c is not None else "—"
    if kind in ("compare", "noninferior") and claim.get("margin") is not None:
        m = float(claim["margin"])
        return f"{'≥' if direction == 'higher' else '≤'} {claim.get('baseline')} {'−' if direction == 'higher' else '+'} {format_margin(metric, m)}"
    if kind == "compare":
        return f"{'higher' if direction == 'higher' else 'lower'} {metric} than {claim.get('baseline')}"
    rng = claim.get("claimed_range")
    if rng:
        return f"{format_value(metric, float(rng[0]))}–{format_with_unit(metric, float(rng[1]))}"
    c = claim.get("claimed")
    return format_with_unit(metric, float(c)) if c is not None else "—"


def _ours_text(metric: str, s: dict[str, Any], *, diff: bool = False, percent: bool = False) -> str:
    unit = "%" if percent or (is_fraction(metric) and not diff) else ""

    def f(v: float) -> str:
        return (f"{100 * v:.1f}" if percent else format_value(metric, v, diff=diff)) + unit

    pts = " points" if diff and is_fraction(metric) else ""
    if s["n"] < 2:
        return f"{f(s['mean'])}{pts} (n=1, no CI)"
    return f"{f(s['mean'])}{pts} [{f(s['ci_low'])}, {f(s['ci_high'])}]"


def _level(alpha2: float, n: int = 2) -> str:
    """`` (90% CI)``-style marker for a row whose interval is not the table's 1 − α one (none for
    one unit, which has no interval)."""
    return f" ({100 * (1 - alpha2):.0f}% CI)" if n >= 2 else ""


def _missing_reason(fight: Fight, name: str | None, metric: str, role: str = "contender") -> str | None:
    """Why ``name``'s ``metric`` cannot be tested, or None if it has final values."""
    if not name:
        return f"the claim names no {role}"
    if name not in {c["name"] for c in fight.spec_contenders}:
        return f"{role} {name!r} is not in this fight (dropped by the spec/profile)"
    rows = fight.phase("final", name)
    if not rows:
        return f"no final runs of {role} {name!r}"
    if metric not in fight.columns:
        return f"column {metric!r} is not in results.csv"
    if not fight.by_seed(rows, metric):
        return f"{metric} is empty for {name!r} (not applicable or diverged)"
    return None


@dataclass
class _ClaimCtx:
    """What the claim handlers share: the fight, α, and the paired claims awaiting their Holm family."""

    fight: Fight
    alpha: float
    # (row, unadjusted p, verdict from the adjusted p, p_note) — one Holm family per metric
    pending: list[tuple[dict[str, Any], float, Any, str]] = field(default_factory=list)


def _fail(row: dict[str, Any], reason: str) -> None:
    row["note"] = reason + (f"; {row['note']}" if row["note"] else "")


def _tolerance(claim: dict[str, Any]) -> float:
    return float(to_number(claim.get("tolerance")) or 0.0)


def _note_missing(ctx: _ClaimCtx, row: dict[str, Any], names: list[str], metric: str) -> None:
    """Say in the row's note how many final runs of ``names`` have no ``metric`` value (an empty or
    non-finite cell: a diverged run's NaN): their split's mean is then over its other seeds."""
    for name in names:
        n = sum(to_number(r.get(metric)) is None for r in ctx.fight.phase("final", name))
        if n:
            _fail(row, f"{n} final run(s) of {name!r} without a {metric} value, left out of their split's mean")


def _claim_values(ctx: _ClaimCtx, name: str, metric: str) -> tuple[list[float], tuple[float, float] | None]:
    """Per-split values of ``name`` (per seed without resampling) and the split sizes or None."""
    rows = ctx.fight.phase("final", name)
    vals = ctx.fight.by_split(rows, metric)
    return list(vals.values()), ctx.fight.split_sizes(rows)


def _claim_pairs(ctx: _ClaimCtx, row: dict[str, Any], name: str, base: str, metric: str):
    """Paired values ``(a, b, sizes)`` of contender and baseline (None after noting why not)."""
    f = ctx.fight
    _note_missing(ctx, row, [name, base], metric)
    va, vb = f.by_split(f.phase("final", name), metric), f.by_split(f.phase("final", base), metric)
    keys = [k for k in va if k in vb]
    if not keys:
        _fail(row, f"no seeds where both {name!r} and {base!r} have {metric}")
        return None
    sizes = f.split_sizes(f.phase("final", name) + f.phase("final", base))
    return [va[k] for k in keys], [vb[k] for k in keys], sizes


def _pairing_text(n: int, sizes: tuple[float, float] | None) -> str:
    return f"{n} paired splits (repeated CV)" if sizes else f"paired over {n} seeds"


def _interval_summary(values: list[float], sizes: tuple[float, float] | None, alpha: float,
                      confidence: float | None = None) -> dict[str, Any]:
    """``summarize``-like dict; with split sizes the interval is Nadeau–Bengio's corrected one."""
    return summarize_splits(values, sizes, confidence=1.0 - alpha if confidence is None else confidence)


def _claim_level(ctx: _ClaimCtx, claim: dict[str, Any], row: dict[str, Any]) -> None:
    metric, direction = row["metric"], claim.get("direction", "higher")
    _note_missing(ctx, row, [row["contender"]], metric)
    x, sizes = _claim_values(ctx, row["contender"], metric)
    n_tr, n_te = sizes if sizes else (None, None)
    s = _interval_summary(x, sizes, ctx.alpha)
    row["ours"], row["ours_value"] = _ours_text(metric, s), s["mean"]
    rng = claim.get("claimed_range")
    if rng:
        rule = claim.get("rule") or "equivalence"
        r = verdict_range(x, rng, direction, rule=rule, alpha=ctx.alpha, tolerance=_tolerance(claim),
                          n_train=n_tr, n_test=n_te)
        row["verdict"], p = r["verdict"], r["p_value"]
        if rule == "equivalence":
            lo, hi = r["bounds"]
            row["p_note"] = f"TOST on [{format_value(metric, lo)}, {format_value(metric, hi)}]"
            # the interval TOST reads (1 − 2α), not the 1 − α one
            row["ours"] = _ours_text(metric, {**s, "ci_low": r["ci_low"], "ci_high": r["ci_high"]}) + _level(2 * ctx.alpha, s["n"])
        else:
            row["p_note"] = f"t vs strict end {format_value(metric, r['target'])}"
    elif to_number(claim.get("claimed")) is not None:
        target = float(claim["claimed"])
        # the p of the comparison the verdict makes: against the claim moved by the tolerance
        edge = target - _tolerance(claim) if direction == "higher" else target + _tolerance(claim)
        if sizes:
            r = corrected_resampled_ttest(x, n_tr, n_te, null=edge, confidence=1.0 - ctx.alpha)
            row["verdict"] = verdict_interval(r["ci_low"], r["ci_high"], target, direction, _tolerance(claim))
            p = r["p_value"]
        else:
            row["verdict"] = verdict_level(target, x, direction, alpha=ctx.alpha, tolerance=_tolerance(claim))
            p = one_sample_tests(x, edge)["t_p"]
        row["p_note"] = ("corrected t" if sizes else "t") + f" vs {format_value(metric, edge)}"
        if is_fraction(metric) and abs(target) > 1:
            _fail(row, "claimed value > 1 on a fraction metric: check units")
    else:
        _fail(row, "the claim has no claimed value")
        return
    row["p_value"], row["p"] = p, format_p(p)
    if _tolerance(claim):
        _fail(row, f"tolerance {format_margin(metric, _tolerance(claim))}")
    _fail(row, f"n={s['n']}" + (" splits, Nadeau–Bengio corrected" if sizes else ""))


def _claim_compare(ctx: _ClaimCtx, claim: dict[str, Any], row: dict[str, Any]) -> None:
    if claim.get("margin") is not None:
        return _claim_noninferior(ctx, claim, row)
    metric, direction = row["metric"], claim.get("direction", "higher")
    pair = _claim_pairs(ctx, row, row["contender"], row["baseline"], metric)
    if pair is None:
        return
    a, b, sizes = pair
    diffs = [x - y for x, y in zip(a, b)]
    d = _interval_summary(diffs, sizes, ctx.alpha)
    row["ours"], row["ours_value"] = "Δ " + _ours_text(metric, d, diff=True), d["mean"]
    if sizes:
        r = corrected_resampled_ttest(diffs, sizes[0], sizes[1], confidence=1.0 - ctx.alpha)
        ctx.pending.append((row, r["p_value"], lambda p: verdict_superiority(r, p, direction, ctx.alpha),
                            "corrected resampled t"))
    else:
        ctx.pending.append((row, paired_tests(a, b)["t_p"], lambda p: verdict_compare(a, b, p, direction, alpha=ctx.alpha),
                            "paired t"))
    _fail(row, f"{row['contender']} − {row['baseline']}, {_pairing_text(len(a), sizes)}")


def _claim_noninferior(ctx: _ClaimCtx, claim: dict[str, Any], row: dict[str, Any]) -> None:
    metric, direction = row["metric"], claim.get("direction", "higher")
    margin = to_number(claim.get("margin"))
    if margin is None:
        _fail(row, "a non-inferiority claim needs a margin (spec key `margin`, no default)")
        return
    pair = _claim_pairs(ctx, row, row["contender"], row["baseline"], metric)
    if pair is None:
        return
    a, b, sizes = pair
    r = noninferiority_test(a, b, margin, direction=direction, alpha=ctx.alpha,
                            n_train=sizes[0] if sizes else None, n_test=sizes[1] if sizes else None)
    d = {"mean": r["mean_diff"], "n": r["n"], "ci_low": r["ci_low"], "ci_high": r["ci_high"]}
    row["ours"], row["ours_value"] = "Δ " + _ours_text(metric, d, diff=True) + _level(2 * ctx.alpha, d["n"]), r["mean_diff"]
    row["claimed"] = (f"{'≥' if direction == 'higher' else '≤'} {row['baseline']} "
                      f"{'−' if direction == 'higher' else '+'} {format_margin(metric, margin)}")
    ctx.pending.append((row, r["p_value"], lambda p: verdict_noninferiority(r, p),
                        f"one-sided non-inferiority {'corrected ' if sizes else ''}t, δ = {format_margin(metric, margin)}"))
    _fail(row, f"{row['contender']} − {row['baseline']}, {_pairing_text(len(a), sizes)}; "
               f"interval at {100 * (1 - 2 * ctx.alpha):.0f}% (the one-sided test's), bound {format_value(metric, r['bound'], diff=True)}")


def _claim_reduction(ctx: _ClaimCtx, claim: dict[str, Any], row: dict[str, Any]) -> None:
    metric, direction, base = row["metric"], claim.get("direction", "higher"), row["baseline"]
    claimed = to_number(claim.get("claimed"))
    if claimed is None:
        _fail(row, "the claim has no numeric claimed reduction")
        return
    pair = _claim_pairs(ctx, row, row["contender"], base, metric)
    if pair is None:
        return
    a, b, sizes = pair
    if any(v == 0 for v in b):
        _fail(row, f"{metric} of {base!r} is 0 on some seed: reduction undefined")
        return
    r = ratio_reduction(a, b)
    s = _interval_summary(r["per_seed"], sizes, ctx.alpha) if sizes else r["summary"]
    row["ours"], row["ours_value"] = _ours_text(metric, s, percent=True), r["mean"]
    # the p of the comparison the verdict makes: against the claim moved by the tolerance (as level claims)
    edge = claimed - _tolerance(claim) if direction == "higher" else claimed + _tolerance(claim)
    if sizes:
        t = corrected_resampled_ttest(r["per_seed"], sizes[0], sizes[1], null=edge, confidence=1.0 - ctx.alpha)
        row["verdict"], p = verdict_interval(t["ci_low"], t["ci_high"], claimed, direction, _tolerance(claim)), t["p_value"]
    else:
        row["verdict"] = verdict_level(claimed, r["per_seed"], direction, alpha=ctx.alpha, tolerance=_tolerance(claim))
        p = one_sample_tests(r["per_seed"], edge)["t_p"]
    row["p_value"], row["p"] = p, format_p(p)
    row["p_note"] = f"{'corrected ' if sizes else ''}t vs {100 * edge:.1f}%"
    _fail(row, f"1 − {row['contender']}/{base} per {'split' if sizes else 'seed'}, {len(a)} {'splits' if sizes else 'seeds'}")


def _claim_param_ratio(ctx: _ClaimCtx, claim: dict[str, Any], row: dict[str, Any]) -> None:
    fight, name, base = ctx.fight, row["contender"], row["baseline"]
    sv = size_view(fight)
    if sv["val"] is not None and sv["contender"] == name and base in (None, sv["baseline"]):
        return _claim_param_ratio_val(row, claim, sv, fight)
    miss = _missing_reason(fight, name, fight.primary)
    if miss is None and base:
        miss = _missing_reason(fight, base, fight.primary, "baseline")
    if miss:
        return _fail(row, miss)
    am = accuracy_matched(fight, baseline=base)
    if am["contender"] not in (None, name):
        return _fail(row, f"the accuracy-matched sweep is of {am['contender']!r}, not {name!r}")
    if not am["widths"]:
        return _fail(row, am["reason"] or "no width runs")
    claimed = to_number(claim.get("claimed"))
    if claimed is None:
        return _fail(row, "the claim has no numeric claimed ratio")
    if am["ratio"] is None:
        row["verdict"] = "inconclusive"
        return _fail(row, am["reason"])
    m = am["match"]
    _fail(row, "legacy view: the best baseline and the matching width are picked on test accuracy (no validation "
               "width sweeps of a baseline family in these results)")
    row["ours"], row["ours_value"] = f"{am['ratio']:.2f}×", am["ratio"]
    row["verdict"] = "inconclusive"  # a ratio whose baseline and width were read off the test set judges nothing
    _fail(row, f"no verdict from it ({'≥' if am['ratio'] >= claimed else '<'} the claimed {claimed:g}×): run "
               "[accuracy_matched] sweeps with validation accuracy")
    _fail(row, f"{name} at hidden {m['hidden']} ({m['params']:,.0f} params, {format_with_unit(fight.primary, m['mean'])}) vs "
               f"{am['baseline']['label']} ({am['baseline']['params']:,.0f} params, "
               f"{format_with_unit(fight.primary, am['baseline']['mean'])}), margin {format_margin(fight.primary, am['margin'])}")


def _claim_param_ratio_val(row: dict[str, Any], claim: dict[str, Any], sv: dict[str, Any], fight: Fight) -> None:
    """A param_ratio claim from :func:`size_view`: supported iff the bootstrap interval lies at or
    above the claimed ratio, not supported iff below, inconclusive otherwise (or without one)."""
    claimed, r = to_number(claim.get("claimed")), sv["val"]
    if claimed is None:
        return _fail(row, "the claim has no numeric claimed ratio")
    if r["reason"] and math.isnan(r["ratio"]):
        row["verdict"] = "inconclusive"
        return _fail(row, f"validation width sweeps: {r['reason']}")
    row["ours"], row["ours_value"] = f"{r['ratio']:.2f}× [{r['ci_low']:.2f}, {r['ci_high']:.2f}]", r["ratio"]
    row["verdict"] = verdict_interval(r["ci_low"], r["ci_high"], claimed, "higher")
    # a family that reaches the target at its smallest width makes the ratio a bound: ChainzRule's
    # (it may need fewer parameters) a lower bound, which cannot refute the claim; the baseline's an
    # upper bound, which cannot confirm it
    bound = "reached at the smallest width"
    if (row["verdict"] == "not supported" and r["note_cr"] == bound) or (row["verdict"] == "supported" and r["note_base"] == bound):
        row["verdict"] = "inconclusive"
    notes = [f"{who}: {n}" for who, n in ((sv["baseline"], r["note_base"]), (sv["contender"], r["note_cr"])) if n]
    _fail(row, f"{sv['contender']} vs {sv['baseline']} width sweeps on validation accuracy, target "
               f"{format_with_unit('val_accuracy', r['target'])} (best baseline width − {format_margin('val_accuracy', sv['margin'])}), "
               f"{'split' if sv.get('variance_factor', 1.0) > 1.0 else 'seed'} bootstrap ({r['n_boot']}"
               + (", paired across widths)" if sv.get("paired") else ")")
               + (f", interval widened by Nadeau–Bengio's factor {sv['variance_factor']:.2f} (repeated CV)"
                  if sv.get("variance_factor", 1.0) > 1.0 else "")
               + (f"; {'; '.join(notes)}" if notes else "")
               + (f"; {r['reason']}" if r["reason"] else ""))


#: One handler per claim kind; each fills its row (verdict, ours, p) or notes why it cannot.
_CLAIM_HANDLERS = {
    "level": _claim_level,
    "compare": _claim_compare,
    "noninferior": _claim_noninferior,
    "reduction": _claim_reduction,
    "param_ratio": _claim_param_ratio,
}
#: The verdict shown for every judged row of a quick-profile run (never read as evidence).
PREVIEW = "preview (quick profile)"


def _claim_row(claim: dict[str, Any], metric: str) -> dict[str, Any]:
    return {
        "id": str(claim.get("id", "")), "text": str(claim.get("text", "")), "kind": claim.get("kind"),
        "contender": claim.get("contender"), "baseline": claim.get("baseline"), "metric": metric,
        "claimed": _claimed_text(claim, metric), "ours": "—", "ours_value": None,
        "verdict": "not tested", "p_value": None, "p": "—", "p_note": "", "note": str(claim.get("note") or ""),
        "not_comparable": str(claim.get("not_comparable") or ""), "preview_of": None,
    }


def _judge_families(ctx: _ClaimCtx) -> None:
    """Paired claims (compare, noninferior) of one metric form one Holm–Bonferroni family."""
    by_metric: dict[str, list[int]] = {}
    for i, (row, *_rest) in enumerate(ctx.pending):
        by_metric.setdefault(row["metric"], []).append(i)
    for idx in by_metric.values():
        holm = holm_bonferroni([ctx.pending[i][1] for i in idx], alpha=ctx.alpha)
        for j, i in enumerate(idx):
            row, _p, judge, note = ctx.pending[i]
            p_adj = holm.adjusted[j]
            row["verdict"] = judge(p_adj)
            row["p_value"], row["p"] = p_adj, format_p(p_adj)
            row["p_note"] = note + (f", Holm over {len(idx)}" if len(idx) > 1 else "")


def claim_rows(folder: str | Path | Fight) -> list[dict[str, Any]]:
    """One row per spec claim: ``id, text, kind, contender, baseline, metric, claimed, ours,
    verdict, p, p_note, note`` (``claimed``/``ours``/``p`` as display strings, ``p_value`` the
    number or None, ``ours_value`` the point estimate or None), ``not_comparable`` (the reason,
    "" if comparable) and ``preview_of`` (the statistic's verdict on a quick-profile run).

    ``verdict`` is one of supported / not supported / inconclusive (:mod:`.verdicts`, :mod:`.stats`),
    "not comparable" (the spec's ``not_comparable`` reason, or, for a ``level`` claim of a fight run
    on another dataset than its spec's — ``spec_dataset`` — that the claimed number is the spec
    dataset's; our value still shown), "not tested"
    (the reason in ``note``), or :data:`PREVIEW` for every judged row of a quick-profile run.

    Per kind: ``level`` — the interval against the claimed value, a ``claimed_range`` by TOST
    (``rule = "equivalence"``, the default) or at its strict end (``rule = "strict-end"``);
    ``compare`` — paired superiority (a ``margin`` makes it ``noninferior``); ``noninferior`` —
    one-sided paired test against ``−margin``; ``reduction`` — per-seed ``1 − A/B`` against the
    claimed share; ``param_ratio`` — the accuracy-matched ratio. ``tolerance`` widens level,
    range and reduction claims. With ``repeat``/``fold`` and ``n_train``/``n_test`` columns
    (repeated CV) every test uses the Nadeau–Bengio corrected variance.
    """
    fight = as_fight(folder)
    ctx = _ClaimCtx(fight, fight.alpha)
    rows: list[dict[str, Any]] = []
    for claim in fight.claims:
        kind = claim.get("kind")
        metric = claim.get("metric") or fight.primary
        metric = fight.primary if metric == "accuracy" else metric
        row = _claim_row(claim, metric)
        if kind == "level" and fight.get("spec_dataset") and not row["not_comparable"]:
            # a claimed level is the papers' number on the spec's dataset: on other data our value
            # is shown but no statistic holds it against that number
            row["not_comparable"] = (f"the claimed value is for the spec's dataset `{fight.get('spec_dataset')}`; "
                                     f"this fight ran on `{fight.get('dataset')}`")
        rows.append(row)
        handler = _CLAIM_HANDLERS.get(kind)
        if handler is None:
            _fail(row, f"unknown claim kind {kind!r}")
            continue
        if kind != "param_ratio":
            miss = _missing_reason(fight, row["contender"], metric)
            if miss is None and kind in ("compare", "noninferior", "reduction"):
                miss = _missing_reason(fight, row["baseline"], metric, "baseline")
            if miss:
                _fail(row, miss)
                if row["not_comparable"]:
                    row["verdict"] = NOT_COMPARABLE
                    _fail(row, row["not_comparable"])
                continue
        handler(ctx, claim, row)
        if row["not_comparable"]:  # our value stays; no statistic decides
            ctx.pending = [pnd for pnd in ctx.pending if pnd[0] is not row]
            row.update(verdict=NOT_COMPARABLE, p_value=None, p="—", p_note="")
            _fail(row, row["not_comparable"])
    _judge_families(ctx)
    if fight.get("quick"):
        for row in rows:
            if row["verdict"] in VERDICTS:
                row["preview_of"], row["verdict"] = row["verdict"], PREVIEW
    return rows


def verdict_tally(rows: list[dict[str, Any]]) -> str:
    """One line counting the verdicts of :func:`claim_rows`' rows, in a fixed order.

    >>> verdict_tally([{"verdict": "supported"}, {"verdict": "inconclusive"}, {"verdict": "supported"}])
    'claims: 2 supported, 1 inconclusive'
    >>> verdict_tally([])
    'claims: none in the spec'
    """
    order = ["supported", "not supported", "inconclusive", NOT_COMPARABLE, "not tested", PREVIEW]
    counts = Counter(str(r["verdict"]) for r in rows)
    parts = [f"{counts.pop(v)} {v}" for v in order if v in counts] + [f"{n} {v}" for v, n in sorted(counts.items())]
    return "claims: " + (", ".join(parts) if parts else "none in the spec")
