"""The Fair Fight report's markdown sections for the analysis views and the changes.

Each builder takes a loaded :class:`~chainzrule.fight.loading.Fight` and returns the section's
markdown lines, starting with a blank line: the size views (parameter-matched, from validation
width sweeps, and the legacy accuracy-matched one chosen on test, which :func:`size_section` also
returns for the findings), the λ sweep, the activation × DREG attribution, the tuned optima on
the edge of their range, and the changes from ``previous/`` (no lines without previous results).
The numbers come from :mod:`.views` and :mod:`.changes`; :func:`chainzrule.fight.report.write_report`
puts the sections in order.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .formatting import (format_margin, format_p, format_summary, format_value, format_with_unit, is_fraction,
                         metric_unit, md_table)
from .loading import WIDTH_POINT, Fight, to_number
from .spec_sections import width_reg_field
from .tuning_views import edge_bands, tuning_edges
from .views import accuracy_matched, attribution_table, size_view

__all__ = ["size_section", "lambda_section", "attribution_section", "tuning_section", "changes_section"]


def size_section(fight: Fight, table: list[dict[str, Any]]) -> tuple[list[str], dict[str, Any], dict[str, Any]]:
    """The size views' lines, the legacy accuracy-matched view and the validation one (:func:`size_view`)."""
    L = ["", "## Size views", "", "### Parameter-matched", "",
         "Rule: with param_match, mlp/kan contenders get widths solved to the reference's parameter count "
         "within ±5%; other model kinds are not matched. Δ is relative to the reference.", ""]
    ref_params = next((d["params"] for d in table if d["contender"] == fight.reference), None)
    rows = []
    for d in table:
        if d["params"] is None or not ref_params:
            rel, ok = "—", "—"
        else:
            x = d["params"] / ref_params - 1
            rel, ok = f"{100 * x:+.1f}%", "yes" if abs(x) <= 0.05 else "no"
        rows.append([d["label"], d["model"] or "—", d["hidden"] or "—", format_value("params", d["params"]), rel, ok])
    L.append(md_table(["contender", "model", "hidden", "params", "Δ vs reference", "within ±5%"], rows))
    sv = size_view(fight)
    L += _size_view_section(fight, sv)
    am = accuracy_matched(fight)
    L += ["", "### Accuracy-matched (legacy: chosen on test)", ""]
    if not am["widths"]:
        L.append(f"Not run ({am['reason'] or 'no [accuracy_matched] section'}).")
        return L, am, sv
    pm = fight.primary
    L.append(f"Width runs of {fight.label(am['contender'])} (phase \"width\"), mean {pm} over seeds; the smallest "
             f"within {format_margin(pm, am['margin'])} (margin) of the best baseline's mean counts.")
    L.append("")
    def width_summary(w: dict[str, Any]) -> dict[str, Any] | None:
        if w["mean"] is None:
            return None
        return {"mean": w["mean"], "std": float("nan") if w["std"] is None else w["std"], "n": w["n"]}

    rows = [[w["hidden"], format_value("params", w["params"]), str(w["n"]), format_summary(pm, width_summary(w)),
             "← match" if am["match"] is w else ""] for w in am["widths"]]
    L.append(md_table(["hidden", "params", "seeds", f"{pm}{metric_unit(pm)}", ""], rows))
    L.append("")
    b = am["baseline"]
    if b is None:
        L.append(f"No ratio: {am['reason']}.")
    else:
        L.append(f"Best baseline: {b['label']} ({format_value('params', b['params'])} params, mean {format_value(pm, b['mean'])}); "
                 f"threshold {format_value(pm, am['threshold'])}.")
        if am["ratio"] is not None:
            m = am["match"]
            L.append(f"Smallest within margin: hidden {m['hidden']} ({format_value('params', m['params'])} params, mean "
                     f"{format_value(pm, m['mean'])}). **Parameter ratio {am['ratio']:.2f}×** (best-baseline params / its params).")
        else:
            L.append(f"No width is within the margin: {am['reason']}; no parameter ratio.")
    return L, am, sv


def _size_view_section(fight: Fight, sv: dict[str, Any]) -> list[str]:
    L = ["", "### Accuracy-matched from validation width sweeps", ""]
    if sv["val"] is None:
        L.append(f"Not available: {sv['reason']}. (The legacy view below picks the best baseline and the matching "
                 "width on the test set; it is kept for comparison with earlier results, not as evidence.)")
        return L
    r = sv["val"]
    units = "splits" if fight.resampled else "seeds"
    factors = _width_factors(fight)
    varied = " and ".join(n for n, f in (("learning rate", factors["lr_factors"]),
                                          ("regularization strength (DREG's λ, else the regularizer's)",
                                           factors["reg_factors"])) if len(f) > 1)
    how = ("each width trained with its family's tuned hyperparameters" if not varied else
           f"each width trained with its family's tuned hyperparameters but the {varied}, chosen "
           + ("per width and split" if fight.resampled else "per width (mean over its seeds)")
           + " on validation among "
           + " × ".join(f"{{{', '.join(f'{x:g}' for x in f)}}}" for f in factors.values() if len(f) > 1)
           + " × the family's tuned values "
           "(kept inside its search range; table below)")
    L.append(f"Width sweeps of `{sv['contender']}` and `{sv['baseline']}` (of the spec's `baselines`, the family with the "
             f"best tuned validation accuracy), {how}. Target: the "
             f"best baseline width's mean validation accuracy − {format_margin('val_accuracy', sv['margin'])}; each "
             "family's mean curve is read where it first reaches it (linear in log params); 95% percentile interval "
             + (f"from resampling the {units} jointly (the same {units} ran at every width of both families, so one "
                f"draw serves them all)" if sv.get("paired") else f"from resampling {units} within each width")
             + f" ({r['n_boot']} resamples, the best-width choice redone in each"
             + (", and each width's choice on validation too" if sv.get("choice_redone") else
                "; each split's own choice at a width travels with it" if varied and fight.resampled else "")
             + "). No choice reads the test set.")
    L.append("")
    rows = []
    for name, lab in ((sv["baseline"], "baseline"), (sv["contender"], "ChainzRule")):
        for view in ("val", "test"):
            t = sv[view]
            if t is None:
                continue
            key = "params_base" if lab == "baseline" else "params_cr"
            note = t["note_base"] if lab == "baseline" else t["note_cr"]
            rows.append([view, f"`{name}`", format_value("val_accuracy", t["target"]), format_value("params", t[key]), note or ""])
    L.append(md_table(["curves", "family", "target (%)", "params at target", "note"], rows))
    L.append("")
    for view, what in (("val", "validation"), ("test", "test (target: that baseline width's test mean − margin)")):
        t = sv[view]
        if t is not None:
            ci = "—" if t["reason"] else f"[{t['ci_low']:.2f}, {t['ci_high']:.2f}]"
            L.append(f"- Parameter ratio on {what}: **{t['ratio']:.2f}×** {ci}" + (f" ({t['reason']})" if t["reason"] else ""))
    if varied:
        L += ["", "Values chosen at each width, as multiples of the family's tuned ones"
              + (" in the same split (how many splits chose them):" if fight.resampled else ":"), ""]
        rows, ends, n = _width_choice_rows(fight, [sv["baseline"], sv["contender"]], factors)
        L.append(md_table(["family", "hidden", "varied", "chosen × tuned"], [r[:4] for r in rows]))
        if n:
            L += ["", f"{n} of {sum(r[4] for r in rows)} choices lie at an end of a factor grid without reaching the "
                  "search range's end, so a wider grid might choose beyond it: "
                  + "; ".join(f"`{name}` {', '.join(c)}" for name, c in ends.items() if c) + "."]
    return L


def _width_factors(fight: Fight) -> dict[str, list[float]]:
    """The width sweeps' multiples from spec.json: ``{"lr_factors": [...], "reg_factors": [...]}``
    (``[1.0]`` where the spec has none: that value stays the family's tuned one)."""
    acc = fight.section("accuracy_matched") or {}
    return {k: [float(x) for x in acc[k]] if isinstance(acc.get(k), list) and acc[k] else [1.0]
            for k in ("lr_factors", "reg_factors")}


def _width_choice_rows(fight: Fight, names: list[str], factors: dict[str, list[float]]) -> tuple[list[list], dict[str, list[str]], int]:
    """Per family and width: how often each multiple of the tuned values was chosen (the width's
    chosen learning rate, and its regularization strength when the sweep varied one, over the same
    split's final runs' values) — table rows ``[family, hidden, varied, counts, choices]`` — and per
    family the widths whose choice is at the lowest or highest factor of a grid (``"16-16 (4×: 1)"``)
    with how many choices that is: a range's end cuts a factor to another multiple, never one of these."""
    rows, ends, n_end = [], {}, 0
    col = {f: i for i, f in enumerate(WIDTH_POINT)}  # positions in a width point
    for name in names:
        space = next((c.get("tune") or {} for c in fight.spec_contenders if c["name"] == name), {})
        reg = width_reg_field(space) if len(factors["reg_factors"]) > 1 else None
        fields = [("lr", factors["lr_factors"])] + ([(reg, factors["reg_factors"])] if reg else [])
        tuned = {}
        for r in fight.phase("final", name):
            tuned.setdefault(tuple(str(r.get(c) or "") for c in ("repeat", "fold")),
                             [to_number(r.get(f)) for f, _ in fields])
        counts: dict[str, dict[tuple, int]] = {}
        for c in fight.width_choices(name):
            t = tuned.get(c["split"]) or [None] * len(fields)
            mult = tuple(round(c["point"][col[f]] / tv, 3) if tv and c["point"][col[f]] else float("nan")
                         for (f, _), tv in zip(fields, t))
            counts.setdefault(c["hidden"], {}).setdefault(mult, 0)
            counts[c["hidden"]][mult] += 1
        label = lambda m: ", ".join(f"{x:g}×" for x in m)
        for hidden in sorted(counts, key=lambda h: [int(x) if x.isdigit() else 0 for x in str(h).split("-")]):
            cnt = counts[hidden]
            rows.append([f"`{name}`", str(hidden), ", ".join(f for f, _ in fields),
                         "; ".join(f"{label(m)}: {cnt[m]}" for m in sorted(cnt)), sum(cnt.values())])
            at_end = [m for m in sorted(cnt) if any(len(g) > 1 and x in (round(g[0], 3), round(g[-1], 3))
                                                    for x, (_, g) in zip(m, fields))]
            if at_end:
                ends.setdefault(name, []).append(f"{hidden} ({'; '.join(f'{label(m)}: {cnt[m]}' for m in at_end)})")
                n_end += sum(cnt[m] for m in at_end)
    return rows, ends, n_end


def lambda_section(fight: Fight, table: list[dict[str, Any]]) -> list[str]:
    L = ["", "## λ sweep", ""]
    if not table:
        L.append("Not run (no \"lambda\" rows in results.csv).")
        return L
    sweep = fight.section("lambda_sweep") or {}
    L.append(f"{fight.label(sweep.get('contender', ''))} at each DREG λ with its tuned hyperparameters; mean ± std over "
             f"{'splits (each the mean of its seeds)' if fight.resampled else 'seeds'}. ★ marks λ = 10^-2.5 ≈ 0.00316, the follow-up paper's fixed value.")
    L.append("")
    pm = fight.primary
    rows = [[f"{d['lambda']:.4g}" + (" ★" if d["marked"] else ""), str(d["n"]),
             format_summary(pm, d.get(pm)), format_summary("jacobian_fro_mean", d.get("jacobian_fro_mean")),
             format_summary("pgv", d.get("pgv"))] for d in table]
    L.append(md_table(["λ", "runs", f"{pm}{metric_unit(pm)}", "jacobian_fro_mean", "pgv"], rows))
    return L


def attribution_section(fight: Fight) -> list[str]:
    pm = fight.primary
    at = attribution_table(fight)
    L = ["", "## Attribution: activation × DREG", "",
         "What the polynomial adds and what DREG adds, separately: contenders identified by their configs "
         "(mlp ReLU/GELU or ChainzRule, no other regularizer; \"DREG\" = constant λ > 0). Each row is a − b "
         f"on {pm}, paired by {'split (corrected variance)' if fight.resampled else 'seed'}, mean "
         f"[{100 * (1 - fight.alpha):.0f}% CI], two-sided paired t and Holm over the rows.", ""]
    if at["cells"]:
        grid = []
        for fam in ("ReLU", "GELU", "ChainzRule"):
            r = [fam]
            for setting in ("no DREG", "DREG"):
                c = at["cells"].get((fam, setting))
                r.append("—" if c is None else f"`{c['contender']}`" + (f" (λ={c['lambda']:.2g}{', median' if c['per_split'] else ''})" if c["lambda"] else "")
                         + (f": {format_summary(pm, c['summary'])}" if c["summary"] else ""))
            grid.append(r)
        L += [md_table(["activation", "no DREG", "DREG"], grid), ""]
    if at["reason"]:
        L.append(f"No attribution comparisons: {at['reason']}.")
        return L
    if at["missing"]:
        L += ["Missing cells (their comparisons are omitted): "
              + ", ".join(f"{f} ({d})" for f, d in at["missing"]) + ".", ""]
    if at["lambda_note"]:
        L += [f"Note: {at['lambda_note']}.", ""]
    pts = " points" if is_fraction(pm) else ""
    rows = [[c["what"], f"`{c['a']}` − `{c['b']}`", str(c["n"]),
             f"{format_value(pm, c['mean_diff'], diff=True)}{pts} [{format_value(pm, c['ci_low'], diff=True)}, {format_value(pm, c['ci_high'], diff=True)}]",
             format_p(c["p"]), format_p(c["holm_p"])] for c in at["comparisons"]]
    L.append(md_table(["effect", "a − b", "n", f"mean diff{metric_unit(pm)} [CI]", "p", "Holm p"], rows))
    return L


def tuning_section(fight: Fight) -> list[str]:
    L = ["", "## Tuning", ""]
    edges = tuning_edges(fight)
    if not edges:
        L.append("No tuned numeric hyperparameters (no tuning.json or no `tune` ranges in spec.json).")
        return L
    if any(e.get("cell") for e in edges):
        return L + _tuning_edges_by_cell(fight, edges)
    on_edge = [e for e in edges if e["edge"]]
    outside = [e for e in edges if e["edge"] is None]
    L.append(f"{len(on_edge)} of {len(edges)} tuned optima lie in the outer 10% of their search range (log scale for "
             "log ranges); each such range should be widened and the contender retuned (GUIDE §4 rule 2), unless "
             "the trials show a plateau there. " + _BANDS_NOTE)
    if on_edge or outside:
        rows = [[f"`{e['contender']}`", e["param"], f"{e['value']:.4g}",
                 f"[{e['low']:g}, {e['high']:g}]{' log' if e['log'] else ''}",
                 "outside the range" if e["position"] is None else f"{e['position']:.2f}",
                 "low end" if e["position"] is not None and e["position"] <= 0.5 else "high end",
                 _bands_text(fight, e["contender"], e["param"], e["position"] is None or e["position"] > 0.5)]
                for e in on_edge + outside]
        L += ["", md_table(["contender", "hyperparameter", "optimum", "range", "position (0–1)", "edge",
                            "trials' val. score: outer 10% / next 20%"], rows)]
    return L


_BANDS_NOTE = ("The last column compares the mean validation score of the completed trials in the outer 10% of the "
               "range at that end with the next 20% inward (trials in each): about equal means a plateau (a wider "
               "range would not change the result), a clear rise means the optimum lies beyond the range.")


def _bands_text(fight: Fight, contender: str, param: str, high: bool) -> str:
    b = edge_bands(fight, contender, param, high)
    f = lambda v, n: "—" if v is None else f"{format_value('val_accuracy', v)} ({n})"
    return f"{f(b['outer'], b['n_outer'])} / {f(b['next'], b['n_next'])}"


def _tuning_edges_by_cell(fight: Fight, edges: list[dict[str, Any]]) -> list[str]:
    """Under resampling every cell has its own optimum: per (contender, hyperparameter), how many
    cells' optima lie in the outer 10% of the range, at which end, and the median position."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for e in edges:
        groups.setdefault((e["contender"], e["param"]), []).append(e)
    n_edge = sum(1 for e in edges if e["edge"])
    L = [f"Each of the {len({e['cell'] for e in edges})} resampling cells is tuned on its own training folds: "
         f"{n_edge} of {len(edges)} tuned optima (contender × hyperparameter × cell) lie in the outer 10% of "
         "their search range (log scale for log ranges). Per contender and hyperparameter (" + _BANDS_NOTE + "):"]
    rows = []
    for (name, param), es in groups.items():
        pos = [e["position"] for e in es if e["position"] is not None]
        low = sum(1 for e in es if e["edge"] and e["position"] is not None and e["position"] <= 0.5)
        high = sum(1 for e in es if e["edge"] and e["position"] is not None and e["position"] > 0.5)
        e0 = es[0]
        rows.append([f"`{name}`", param, f"[{e0['low']:g}, {e0['high']:g}]{' log' if e0['log'] else ''}",
                     f"{float(np.median(pos)):.2f}" if pos else "—", f"{low}/{len(es)}", f"{high}/{len(es)}",
                     "**widen**" if max(low, high) * 2 > len(es) else "",
                     _bands_text(fight, name, param, high >= low) if low or high else ""])
    return L + ["", md_table(["contender", "hyperparameter", "range", "median position (0–1)", "cells at low end",
                              "cells at high end", "most cells at one edge",
                              "trials' val. score: outer 10% / next 20%"], rows)]


def changes_section(fight: Fight) -> list[str]:
    """Verdicts and headline numbers against the fight's ``previous/`` results (:mod:`.changes`)."""
    from .changes import claim_changes, contender_changes

    claims = claim_changes(fight)
    if not claims:
        return []
    v = lambda s: "—" if s is None else s
    L = ["", "## Changes from the previous results", "",
         "Every claim read three ways: as **published** in the previous report (`previous/report.md`), with "
         "**today's verdict rules on the previous runs** (`previous/results.csv` re-judged by today's claims), "
         "and **now** (today's rules on today's runs). Published → re-judged is the effect of the verdict rules; "
         "re-judged → now is the effect of the runs (engine and protocol).", ""]
    L.append(md_table(["id", "published", "today's rules, previous runs", "now", "changed by"],
                       [[c["id"], f"{v(c['published'])} ({v(c['published_ours'])})",
                         f"{v(c['rejudged'])} ({v(c['rejudged_ours'])})", f"{c['now']} ({c['now_ours']})", c["cause"]]
                        for c in claims]))
    rows = contender_changes(fight)
    if rows:
        pm = rows[0]["metric"]
        L += ["", f"Mean {pm} per contender, previous → now (the runs behind each mean: previous seeds vs "
                  "today's seeds × splits):", ""]
        L.append(md_table(["contender", "previous", "now", "Δ", "runs (previous → now)"],
                           [[r["label"], format_with_unit(pm, r["before"]), format_with_unit(pm, r["now"]),
                             format_value(pm, None if r["before"] is None or r["now"] is None else r["now"] - r["before"],
                                          diff=True),
                             f"{r['before_runs']} → {r['now_runs']}"] for r in rows]))
    return L
