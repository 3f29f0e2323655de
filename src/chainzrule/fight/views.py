"""The fight's analysis views beyond the main table, as data for the report and the figures.

- size: :func:`accuracy_matched` (legacy, chosen on test) and :func:`size_view` (from
  validation-tuned width sweeps of both families);
- :func:`lambda_table` — the λ sweep;
- :func:`attribution_table` — activation family × (no DREG, DREG), paired;
- tuning: :func:`tuning_edges`, :func:`edge_bands` and :func:`expected_max_curves` live in
  :mod:`.tuning_views` and are re-exported here.

All statistics come from :mod:`chainzrule.fight.stats`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..config import CHAINZRULE_MODELS
from ..errors import DataError
from .formatting import format_margin
from .loading import Fight, to_number, width_point
from .tuning_views import edge_bands, expected_max_curves, tuning_edges  # noqa: F401  (re-exported)
from .stats import (
    corrected_resampled_ttest,
    holm_bonferroni,
    paired_tests,
    nadeau_bengio_factor,
    param_ratio_bootstrap,
    summarize,
)

__all__ = [
    "accuracy_matched",
    "size_view",
    "lambda_table",
    "attribution_table",
    "tuning_edges",
    "edge_bands",
    "expected_max_curves",
    "ATTRIBUTION_FAMILIES",
    "ATTRIBUTION_DREG",
]


# ----------------------------------------------------------------------------------------------
# size: the legacy accuracy-matched view (chosen on test)
# ----------------------------------------------------------------------------------------------


def _baselines(fight: Fight, contender: str) -> list[str]:
    names = [n for n in fight.contenders() if n != contender]
    model_of = {n: (fight.phase("final", n)[0].get("model") or "") for n in fight.contenders()}
    own = model_of.get(contender) or str(fight.config_of(contender).get("model", ""))
    other = [n for n in names if model_of.get(n) != own]
    return other or names


def accuracy_matched(fight: Fight, baseline: str | None = None) -> dict[str, Any]:
    """The accuracy-matched view from the "width" rows.

    Returns ``{"contender", "margin", "widths": [{"hidden", "params", "n", "mean", "std"}] sorted
    by params, "baseline": {"contender", "label", "params", "mean"} | None, "threshold",
    "match": one of widths | None, "ratio": best-baseline params / match params | None,
    "reason": why there is no ratio ("" when there is)}``.
    """
    acc = fight.section("accuracy_matched") or {}
    contender = acc.get("contender")
    margin = float(acc.get("margin", 0.005))
    out: dict[str, Any] = {"contender": contender, "margin": margin, "widths": [], "baseline": None,
                           "threshold": None, "match": None, "ratio": None, "reason": ""}
    width_rows = [r for r in fight.width_rows() if contender is None or r.get("contender") == contender]
    if contender is None and width_rows:
        contender = out["contender"] = width_rows[0].get("contender")
    if not width_rows:
        out["reason"] = "no width runs in results.csv"
        return out
    groups: dict[str, list[dict[str, str]]] = {}
    for r in width_rows:
        groups.setdefault(r.get("hidden") or "?", []).append(r)
    for hidden, rs in groups.items():
        s = fight.summary(rs, fight.primary)
        params = [v for v in (to_number(r.get("params")) for r in rs) if v is not None]
        out["widths"].append({"hidden": hidden, "params": float(np.mean(params)) if params else None,
                              "n": s["n"] if s else 0, "mean": s["mean"] if s else None,
                              "std": s["std"] if s else None})
    out["widths"].sort(key=lambda w: (w["params"] is None, w["params"] or 0))
    cands = [baseline] if baseline else _baselines(fight, contender)
    best = None
    for name in cands:
        rows = fight.phase("final", name)
        params = [v for v in (to_number(r.get("params")) for r in rows) if v is not None]
        s = fight.summary(rows, fight.primary)
        if not rows or s is None or not params:
            continue
        if best is None or s["mean"] > best["mean"]:
            best = {"contender": name, "label": fight.label(name), "params": float(np.mean(params)), "mean": s["mean"]}
    if best is None:
        out["reason"] = f"no baseline with final {fight.primary} and params" + (f" ({baseline})" if baseline else "")
        return out
    out["baseline"] = best
    out["threshold"] = best["mean"] - margin
    for w in out["widths"]:
        if w["mean"] is not None and w["params"] and w["mean"] >= out["threshold"]:
            out["match"] = w
            out["ratio"] = best["params"] / w["params"]
            break
    else:
        out["reason"] = f"no width of {contender} within {format_margin(fight.primary, margin)} of {best['label']}"
    return out



# ----------------------------------------------------------------------------------------------
# size view without test leakage: width sweeps of both families, ratio at equal accuracy
# ----------------------------------------------------------------------------------------------


def _sweep(fight: Fight, contender: str, metric: str) -> tuple[list[float], list[list[float]], list[str], list[list[tuple]]]:
    """A contender's "width" rows: params per width, per-unit ``metric`` per width, hidden labels,
    and the units of each width (:meth:`Fight.by_split`'s keys: seeds, or splits); widths without
    a parameter count or any value are left out."""
    groups: dict[str, list[dict[str, str]]] = {}
    for r in fight.width_rows(contender):
        groups.setdefault(r.get("hidden") or "?", []).append(r)
    params, accs, hidden, units = [], [], [], []
    for h, rs in groups.items():
        p = [v for v in (to_number(r.get("params")) for r in rs) if v]
        vals = fight.by_split(rs, metric)  # per seed, or per split (mean of its seeds)
        if p and vals:
            params.append(float(np.mean(p)))
            accs.append(list(vals.values()))
            hidden.append(h)
            units.append(list(vals))
    return params, accs, hidden, units


def _candidates(fight: Fight, sweep: dict[str, Any], metric: str) -> tuple[list[np.ndarray], list[np.ndarray]] | None:
    """Per width of a seed sweep ``sweep`` (:func:`_sweep`'s) that chose its hyperparameters among
    several points: ``metric`` and validation accuracy of every point, [P, S] arrays with the seeds
    in ``sweep["units"]`` order and the points in ascending order (the first of equal validation
    means wins, as in :meth:`Fight.width_choices`; a missing validation value counts 0 there and
    here). None under repeated CV (each split chose on its own rows, so its choice travels with it
    when splits are resampled), when every width had one point, or when a point misses a seed's
    value (then the choices stay as made)."""
    if fight.resampled:
        return None
    rows: dict[tuple, dict[tuple, list[dict[str, str]]]] = {}
    for r in fight.phase("width", sweep["name"]):
        rows.setdefault(r.get("hidden") or "?", {}).setdefault(width_point(r), []).append(r)
    acc, sel = [], []
    for h, units in zip(sweep["hidden"], sweep["units"]):
        points = sorted(rows.get(h, {}), key=lambda pt: tuple(x or 0.0 for x in pt))
        a, v = [], []
        for pt in points:
            ma, mv = fight.by_split(rows[h][pt], metric), fight.by_split(rows[h][pt], "val_accuracy")
            if any(u not in ma for u in units):
                return None
            a.append([ma[u] for u in units])
            v.append([mv.get(u, 0.0) for u in units])
        acc.append(np.array(a))
        sel.append(np.array(v))
    return (acc, sel) if any(x.shape[0] > 1 for x in acc) else None


def size_view(fight: Fight, claimed: float | None = None, n_boot: int = 2000) -> dict[str, Any]:
    """The accuracy-matched view from validation-tuned width sweeps of both families.

    Reads "width" rows (``contender, hidden, params, seed, val_accuracy, test_accuracy``; each
    width trained with its family's tuned hyperparameters — with ``lr_factors``, only the rows at
    each width's validation-chosen learning rate, :meth:`Fight.width_rows` —, the baseline family picked by the runner
    on tuned validation accuracy from ``[accuracy_matched] baselines``) of the ``[accuracy_matched]``
    contender and of the baseline family (every other contender with width rows; with several, the
    one whose best width has the highest mean *validation* accuracy). The target is the best baseline width's
    validation mean minus the section's ``margin``, and the ratio ``params_base / params_cr``
    where the two validation curves reach it, with a seed-bootstrap interval
    (:func:`~.stats.param_ratio_bootstrap`, the best-width choice redone in every resample, and
    with seeds the choice of each width's learning rate and strength among its points too,
    :func:`_candidates`; a split chose on its own rows, so its choice travels with it):
    no width and no baseline is chosen on the test set. The same ratio on the test curves, at
    the test mean of that validation-chosen baseline width minus the margin, is given for
    reference (``test``). Under repeated CV the interval is widened by Nadeau–Bengio's factor
    (``variance_factor``, :func:`~.stats.nadeau_bengio_factor` with the units per width and the
    width runs' split sizes): the resampled splits share training rows. When the same units ran
    at every width of both families (the runner's sweeps: the same seeds, or splits), they are
    resampled jointly (``paired``), as the paired tests pair them.

    Returns ``{"contender", "baseline", "margin", "val": bootstrap dict | None, "test": ... |
    None, "sweeps": {name: {"name", "params", "val", "test", "hidden", "units"}}, "variance_factor",
    "paired", "choice_redone", "reason"}``.
    """
    acc = fight.section("accuracy_matched") or {}
    cr = acc.get("contender")
    margin = float(acc.get("margin", 0.005))
    out: dict[str, Any] = {"contender": cr, "baseline": None, "margin": margin, "val": None, "test": None,
                           "sweeps": {}, "reason": ""}
    if "val_accuracy" not in fight.columns or not fight.width_rows():
        out["reason"] = "no width rows with val_accuracy in results.csv"
        return out
    names = list(dict.fromkeys(r.get("contender") for r in fight.width_rows()))
    cr = cr or names[0]
    out["contender"] = cr
    for n in names:
        p, v, h, u = _sweep(fight, n, "val_accuracy")
        pt, t, _, ut = _sweep(fight, n, fight.primary)
        if len(p) >= 2:
            out["sweeps"][n] = {"name": n, "params": p, "val": v, "hidden": h, "test": t if pt == p and ut == u else None,
                                "units": u}
    bases = [n for n in out["sweeps"] if n != cr]
    if cr not in out["sweeps"] or not bases:
        out["reason"] = (f"width sweeps (≥ 2 widths with val_accuracy) of {cr!r} and of a baseline family are "
                         f"needed; have {sorted(out['sweeps']) or 'none'}")
        return out
    base = max(bases, key=lambda n: max(np.mean(v) for v in out["sweeps"][n]["val"]))
    out["baseline"] = base
    sb, sc = out["sweeps"][base], out["sweeps"][cr]
    sizes = fight.split_sizes(fight.width_rows())
    units = min(len(v) for s in (sb, sc) for v in s["val"])
    factor = nadeau_bengio_factor(units, *sizes) if sizes else 1.0
    out["variance_factor"] = factor
    # the same units (seeds, or splits) at every width of both families: resample them jointly
    paired = len({tuple(u) for s in (sb, sc) for u in s["units"]}) == 1
    out["paired"] = paired
    # seeds that chose each width's point: the resamples redo the choice (None: the choices stay)
    cand = {view: [_candidates(fight, s, m) for s in (sb, sc)] for view, m in (("val", "val_accuracy"),
                                                                              ("test", fight.primary))}
    redo = {view: None not in c for view, c in cand.items()}
    out["choice_redone"] = redo["val"]
    try:
        if redo["val"]:
            (vb, selb), (vc, selc) = cand["val"]
            out["val"] = param_ratio_bootstrap(sb["params"], vb, sc["params"], vc, margin=margin, n_boot=n_boot,
                                               variance_factor=factor, paired=paired, base_select=selb, cr_select=selc)
        else:
            out["val"] = param_ratio_bootstrap(sb["params"], sb["val"], sc["params"], sc["val"], margin=margin,
                                               n_boot=n_boot, variance_factor=factor, paired=paired)
        if sb["test"] is not None and sc["test"] is not None:
            j = int(np.argmax([np.mean(v) for v in sb["val"]]))
            target = float(np.mean(sb["test"][j])) - margin
            if redo["test"]:
                (tb, selb), (tc, selc) = cand["test"]
                out["test"] = param_ratio_bootstrap(sb["params"], tb, sc["params"], tc, target=target, n_boot=n_boot,
                                                    variance_factor=factor, paired=paired, base_select=selb,
                                                    cr_select=selc)
            else:
                out["test"] = param_ratio_bootstrap(sb["params"], sb["test"], sc["params"], sc["test"], target=target,
                                                    n_boot=n_boot, variance_factor=factor, paired=paired)
    except (ValueError, DataError) as e:
        out["reason"] = str(e)
    return out


# ----------------------------------------------------------------------------------------------
# the λ sweep
# ----------------------------------------------------------------------------------------------


def _lambda_of(row: dict[str, str]) -> float | None:
    lam = to_number(row.get("dreg"))
    if lam is None and row.get("model") in CHAINZRULE_MODELS:
        from ..config import default_dreg

        lam = default_dreg(str(row["model"]))
    return lam


def lambda_table(fight: Fight) -> list[dict[str, Any]]:
    """Per λ of the "lambda" rows: ``{"lambda", "n", "<metric>": summarize(...) | None}`` for the
    primary metric, jacobian_fro_mean and pgv, sorted by λ; ``"marked"`` is True at λ ≈ 10^-2.5."""
    groups: dict[float, list[dict[str, str]]] = {}
    for r in fight.phase("lambda"):
        lam = _lambda_of(r)
        if lam is not None:
            groups.setdefault(lam, []).append(r)
    out = []
    for lam in sorted(groups):
        rs = groups[lam]
        d: dict[str, Any] = {"lambda": lam, "n": len(rs),
                             "marked": lam > 0 and abs(math.log10(lam) + 2.5) < 0.01}
        for m in (fight.primary, "jacobian_fro_mean", "pgv"):
            d[m] = fight.summary(rs, m) if m in fight.columns else None
        out.append(d)
    return out



# ----------------------------------------------------------------------------------------------
# attribution: activation family × (no DREG, DREG)
# ----------------------------------------------------------------------------------------------

#: The attribution grid's activation families and DREG settings, in display order.
ATTRIBUTION_FAMILIES = ("ReLU", "GELU", "ChainzRule")
ATTRIBUTION_DREG = ("no DREG", "DREG")


def _attribution_cell(fight: Fight, name: str) -> tuple[str, str, float] | None:
    """``(family, dreg setting, λ)`` of a contender from its config, or None if it is no cell.

    A cell is a plain contender: mlp with relu/gelu or chainzrule, no other regularizer, no DREG
    schedule; "no DREG" needs λ = 0 (a ChainzRule contender without an explicit ``dreg`` has the
    library default λ, so it is a DREG cell).
    """
    cfg = fight.config_of(name)
    model = cfg.get("model")
    if model in CHAINZRULE_MODELS:
        family = "ChainzRule"
    elif model in ("mlp", "cnn") and str(cfg.get("activation", "relu")).lower() in ("relu", "gelu"):
        family = str(cfg.get("activation", "relu")).upper().replace("RELU", "ReLU")
    else:
        return None
    if str(cfg.get("reg") or "none").lower() != "none" or cfg.get("dreg_schedule") not in (None, "", "none", "constant"):
        return None
    from ..config import default_dreg

    lam = to_number(cfg.get("dreg"))
    lam = default_dreg(model) if lam is None else lam
    return family, ("DREG" if lam > 0 else "no DREG"), lam


def _setup(fight: Fight, name: str) -> tuple:
    """What a contender's attribution cell holds fixed but λ: its config without ``dreg`` and
    ``hidden`` (set by parameter matching) and its tuned hyperparameters' names, λ's left out."""
    cfg = fight.config_of(name)
    tune = next((c.get("tune") or {} for c in fight.spec_contenders if c["name"] == name), {})
    fixed = {k: v for k, v in cfg.items() if k not in ("dreg", "hidden") and k not in tune}
    return tuple(sorted((k, repr(v)) for k, v in fixed.items())), tuple(sorted(set(tune) - {"dreg"}))


def _final_lambda(fight: Fight, name: str, base: float) -> tuple[float, bool]:
    """The λ a contender's final runs used (the tuned value when λ is tuned) and whether it
    differs between runs (tuned per split); ``base`` (its config's λ) when no final row has one."""
    lams = [v for v in (to_number(r.get("dreg")) for r in fight.phase("final", name)) if v is not None]
    if not lams:
        return base, False
    return float(np.median(lams)), len({round(v, 12) for v in lams}) > 1


def attribution_table(fight: Fight) -> dict[str, Any]:
    """The (ReLU, GELU, ChainzRule) × (no DREG, DREG) attribution on the primary metric, paired.

    Cells are contenders identified by their configs (:func:`_attribution_cell`; the first with
    final runs, in spec order, when several fit, except that a family's DREG cell is the first
    DREG contender whose config and tuned names equal its no-DREG cell's but for λ and hidden
    widths, :func:`_setup`, when one does: "DREG vs no DREG" then changes λ alone). Comparisons,
    each ``a − b`` paired by seed (by split under repeated CV, with the corrected variance), Holm
    over the family: the polynomial
    against ReLU and GELU at each matched DREG setting, and DREG against none within each
    activation.

    A cell's ``lambda`` is the λ its final runs used (the tuned one; the median when tuned per
    split, with ``per_split`` True); ``lambda_note`` says when the DREG cells' λ differ.

    Returns ``{"cells": {(family, setting): {"contender", "label", "lambda", "per_split", "summary"}},
    "comparisons": [{"what", "a", "b", "n", "mean_diff", "ci_low", "ci_high", "p", "holm_p"}],
    "missing": [(family, setting)], "lambda_note", "reason"}``; ``reason`` is non-empty (and
    there are no comparisons) when the spec lacks the cells to make any.
    """
    metric = fight.primary
    cells: dict[tuple[str, str], dict[str, Any]] = {}
    fits = [(name, cell) for name, cell in ((n, _attribution_cell(fight, n)) for n in fight.contenders())
            if cell is not None and fight.values("final", name, metric)]
    # the DREG cell of a family is the first DREG contender set up as its no-DREG cell but for λ
    # (pima-tanh's cr-dreg-tanh for cr-tanh, not the reference cr-dreg of another poly_init); the
    # first one only when none is
    plain = {cell[0]: _setup(fight, name) for name, cell in reversed(fits) if cell[1] == "no DREG"}

    def set_up_otherwise(name: str, cell: tuple) -> bool:  # a DREG cell unlike its family's no-DREG cell
        return cell[1] == "DREG" and cell[0] in plain and _setup(fight, name) != plain[cell[0]]

    chosen: dict[tuple[str, str], str] = {}
    for name, cell in sorted(fits, key=lambda nc: set_up_otherwise(*nc)):  # stable: spec order otherwise
        chosen.setdefault(cell[:2], name)
    for name, cell in fits:
        if chosen[cell[:2]] != name:
            continue
        lam, per_split = _final_lambda(fight, name, cell[2])
        cells[cell[:2]] = {"contender": name, "label": fight.label(name), "lambda": lam, "per_split": per_split,
                           "summary": fight.summary(fight.phase("final", name), metric)}
    missing = [(f, d) for f in ATTRIBUTION_FAMILIES for d in ATTRIBUTION_DREG if (f, d) not in cells]
    pairs = []
    for setting in ATTRIBUTION_DREG:
        for other in ("ReLU", "GELU"):
            pairs.append((f"ChainzRule vs {other} ({setting})", ("ChainzRule", setting), (other, setting)))
    for fam in ATTRIBUTION_FAMILIES:
        pairs.append((f"DREG vs no DREG ({fam})", (fam, "DREG"), (fam, "no DREG")))
    comps, pvals = [], {}
    for what, ca, cb in pairs:
        if ca not in cells or cb not in cells:
            continue
        a_rows, b_rows = fight.phase("final", cells[ca]["contender"]), fight.phase("final", cells[cb]["contender"])
        va, vb = fight.by_split(a_rows, metric), fight.by_split(b_rows, metric)
        keys = [k for k in va if k in vb]
        if len(keys) < 2:
            continue
        d = [va[k] - vb[k] for k in keys]
        sizes = fight.split_sizes(a_rows + b_rows)
        if sizes:
            r = corrected_resampled_ttest(d, sizes[0], sizes[1], confidence=1.0 - fight.alpha)
            p, lo, hi = r["p_value"], r["ci_low"], r["ci_high"]
        else:
            s = summarize(d, confidence=1.0 - fight.alpha)
            p, lo, hi = paired_tests([va[k] for k in keys], [vb[k] for k in keys])["t_p"], s["ci_low"], s["ci_high"]
        comps.append({"what": what, "a": cells[ca]["contender"], "b": cells[cb]["contender"], "n": len(keys),
                      "mean_diff": float(np.mean(d)), "ci_low": lo, "ci_high": hi, "p": p, "holm_p": None,
                      "corrected": bool(sizes)})
        pvals[what] = p
    if pvals:
        holm = holm_bonferroni(pvals, alpha=fight.alpha)
        for c in comps:
            c["holm_p"] = holm.adjusted[c["what"]]
    dreg_cells = [(f, c) for (f, d), c in cells.items() if d == "DREG"]
    n_lams = len({round(c["lambda"], 12) for f, c in dreg_cells})
    lambda_note = "" if n_lams <= 1 and not any(c["per_split"] for f, c in dreg_cells) else (
        "the DREG cells' λ are not matched (" + ", ".join(
            f"{f} {c['lambda']:.2g}" + (" median of its per-split optima" if c["per_split"] else "")
            for f, c in dreg_cells) + "): each activation is compared at its own tuned λ")
    reason = "" if comps else ("the spec lacks the cells: " + ", ".join(f"{f} ({d})" for f, d in missing)
                               if missing else "fewer than 2 paired seeds in every comparison")
    return {"cells": cells, "comparisons": comps, "missing": missing, "lambda_note": lambda_note, "reason": reason}
