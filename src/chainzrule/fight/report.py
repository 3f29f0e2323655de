"""The Fair Fight report: ``OUT/report.md``, ``OUT/summary.csv`` and ``OUT/plots/*.png``.

:func:`write_report` reads a fight folder written by the runner (``docs/FIGHT_FORMAT.md``):

- ``spec.json`` — the resolved spec (name, dataset, reference, seeds, trials, tune_epochs, base,
  contenders, accuracy_matched, lambda_sweep, claims, command, configs; spec_dataset when the
  command line ran the spec on another dataset than its own);
- ``results.csv`` — one row per run, all phases (tune / final / width / lambda);
- ``runs/*.json`` — per run: ``grad_norms`` (gradient-norm trace) and ``activations`` (polynomial
  coefficients), used for the trace and activation-shape plots;
- ``tuning.json`` — per contender: ``best_params``, ``best_val_accuracy``, ``trials``;

and writes, every file atomically:

1. the protocol header; 2. the main table (final runs, mean ± std [95% CI]); 3. paired
comparisons against the reference (paired t, Wilcoxon, Holm–Bonferroni); 4. the two size views
(parameter-matched, accuracy-matched); 5. the λ sweep; 6. the claims table with verdicts;
7. plots; 8. findings generated from the verdicts.

All statistics come from :mod:`chainzrule.fight.stats`; the verdict functions decide, the report
only formats. :func:`summary_table` gives the main table as data (one dict per contender), which
is also written to ``OUT/summary.csv``.

Where the parts live: loading the folder, the tables and the claim verdicts in
:mod:`chainzrule.fight.analysis` (and the modules it lists); the plots in
:mod:`chainzrule.fight.figures`; the markdown sections of the size, λ, attribution and tuning
views and of the changes in :mod:`chainzrule.fight.report_sections`. This module only builds the
rest of the markdown (header, main table, paired comparisons, claims, findings) and writes the
files (it re-exports the analysis API for existing callers).

Choices made here (the papers and the guide are silent):

- A level claim with ``claimed_range = [lo, hi]`` is judged by equivalence (TOST on the range,
  ``rule = "equivalence"``, the default) or at its *strict* end (``rule = "strict-end"``: ``hi``
  for direction "higher", ``lo`` for "lower"); ``tolerance`` (spec key) widens it.
- "At least as good" claims are non-inferiority tests with the spec's ``margin`` (no default);
  compare (superiority) and non-inferiority claims on the same metric form one Holm–Bonferroni
  family (their p is the adjusted p); level and reduction claims report the raw t p against the
  claimed value (the verdict is the 95% interval's position, equivalent to that test).
- A claim with ``not_comparable = "reason"`` shows our value but no verdict statistic.
- Repeated CV (``repeat``/``fold``, ``n_train``/``n_test`` columns): pairs are splits and every
  test uses the Nadeau–Bengio corrected variance.
- A quick-profile run (``spec.json`` ``quick``) labels every verdict "preview (quick profile)".
- Accuracy-matched: baselines are the final contenders whose ``model`` differs from the
  accuracy-matched contender's (all other contenders if every one shares it); the best baseline is
  the one with the highest mean primary metric among those with a parameter count. A
  ``param_ratio`` claim naming a ``baseline`` uses that one.
- Runs flagged ``diverged`` stay in every statistic (their values, where not empty, are what the
  fight measured); the main table counts them.

>>> import tempfile, json
>>> folder = Path(tempfile.mkdtemp())
>>> try:
...     write_report(folder)
... except ValueError as e:
...     print(str(e).split(":")[1].strip())
expected results.csv and spec.json, missing results.csv, spec.json
"""

from __future__ import annotations

import csv
import datetime as _dt
import io
import json
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from ..data.cache import atomic_write_text
from . import analysis as _analysis
from .analysis import failure_text, paired_comparisons, summary_table
from .claims import PREVIEW, claim_rows
from .formatting import format_p, format_summary, format_value, format_with_unit, is_fraction, metric_unit, md_table
# MAIN_METRICS, accuracy_matched, attribution_table, size_view, tuning_edges: only re-exported (__all__)
from .loading import MAIN_METRICS, Fight, as_fight, load_fight, to_number  # noqa: F401
from .report_sections import attribution_section, changes_section, lambda_section, size_section, tuning_section
from .views import (  # noqa: F401
    accuracy_matched,
    attribution_table,
    expected_max_curves,
    lambda_table,
    size_view,
    tuning_edges,
)
from .verdicts import NOT_COMPARABLE
from .figures import (
    plot_accuracy_vs_params,
    plot_accuracy_vs_tau,
    plot_activations,
    plot_expected_max,
    plot_grad_norms,
    plot_lambda,
)

# The analysis API is re-exported for existing callers.
__all__ = [name for name in _analysis.__all__ if name != "EXTRA_METRICS"] + ["write_report"]

_PLOTS = "plots"


# ----------------------------------------------------------------------------------------------
# the markdown
# ----------------------------------------------------------------------------------------------


def _fight_date(fight: Fight) -> str:
    for key in ("date", "created"):
        if fight.get(key):
            return str(fight.get(key))
    ts = (fight.folder / "results.csv").stat().st_mtime
    return _dt.datetime.fromtimestamp(ts, tz=_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC") + " (results.csv written)"


def _protocol_value(fight: Fight, key: str) -> Any:
    """A training setting: spec base, else the reference's seed-0 final run config, else the default."""
    if key in fight.base:
        return fight.base[key]
    ref = fight.reference or (fight.contenders() or [None])[0]
    rec = fight.seed0_run(ref) if ref else None
    if rec and isinstance(rec.get("config"), dict) and key in rec["config"]:
        return rec["config"][key]
    from ..config import TrainConfig

    return TrainConfig.__dataclass_fields__[key].default if key in TrainConfig.__dataclass_fields__ else None


def _evidence(fight: Fight) -> str:
    """What a quick run's verdicts stand for: the committed full run of this fight (named by its
    path in the repository, and linked relative to this report when the full run's folder is a
    sibling of this one, as with ``--out results/mnist-quick``: a Markdown link resolves from the
    report's folder, so ``results/NAME/report.md`` from ``results/mnist-quick/`` would be broken),
    or, for a spec run on another dataset than its own, a full run that has yet to be made."""
    if fight.get("spec_dataset"):
        return f"a full run on `{fight.get('dataset')}` (none is committed: run the spec without `--quick`)"
    name = fight.get("name", fight.folder.name)
    path = f"results/{name}/report.md"
    if name != fight.folder.name and (fight.folder.parent / name / "report.md").is_file():
        return f"the committed full run, [`{path}`](../{name}/report.md)"
    return f"the committed full run, `{path}` in the repository"


def _header(fight: Fight) -> list[str]:
    name = fight.get("name", fight.folder.name)
    dataset = fight.get("dataset") or fight.base.get("dataset") or "?"
    seeds = fight.get("seeds")
    final_rows = fight.phase("final")
    seed_list = sorted({int(s) for s in (to_number(r.get("seed")) for r in final_rows) if s is not None})
    L = [f"# Fair Fight: {name}" + (f" on `{dataset}`" if fight.get("spec_dataset") else ""), ""]
    if fight.get("description"):
        L += [str(fight.get("description")), ""]
    if fight.get("spec_dataset"):
        L += [f"**Run on `{dataset}`**, not on the spec's own dataset `{fight.get('spec_dataset')}`: the description "
              "above is the spec's; the protocol, contenders and claims are the same.", ""]
    hidden = _protocol_value(fight, "hidden")
    L += [
        f"- **Dataset**: `{dataset}`" + (f" (target `{fight.get('target')}`)" if fight.get("target") else ""),
        f"- **Date**: {_fight_date(fight)}",
        f"- **Reference contender**: `{fight.reference}` (every other contender is compared against it, paired by "
        f"{'(repeat, fold) split, the mean of its seeds' if fight.resampled else 'seed'})",
        f"- **Final seeds**: {seeds} (seeds {', '.join(map(str, seed_list)) or 'none run'})",
        *([f"- **Resampling**: repeated stratified {res.get('folds')}-fold CV × {res.get('repeats')} repeats over all "
           f"rows; tuning, final runs and ablations in every (repeat, fold) cell, on its training folds; paired "
           "tests and intervals use Nadeau–Bengio's corrected variance"] if (res := fight.get("resampling")) else []),
        f"- **Tuning**: {fight.get('trials')} trials per contender{' and cell' if fight.get('resampling') else ''} "
        f"(equal budget, Optuna TPE, an independent sampler seed per contender derived from tune_seed "
        f"{fight.get('tune_seed')}; {fight.get('tune_seeds') or 1} seed(s) per trial; pruner "
        f"{fight.get('pruner') or 'none'}), {fight.get('tune_epochs')} epochs per trial with early stopping "
        f"(patience {fight.get('patience')}), selected on validation accuracy",
        f"- **Final training**: {_protocol_value(fight, 'epochs')} epochs, batch size {_protocol_value(fight, 'batch_size')}, "
        f"optimizer {_protocol_value(fight, 'optimizer')}, lr schedule {_protocol_value(fight, 'lr_schedule')}",
        f"- **Hidden widths (base)**: {list(hidden) if isinstance(hidden, (list, tuple)) else hidden}; "
        f"parameter-matched: {'yes' if fight.get('param_match') else 'no'} (mlp/kan widths solved to the reference's count ±5%)",
        f"- **Primary metric**: `{fight.primary}`; α = {fight.alpha} for every test and interval (95% CIs)",
    ]
    if fight.get("quick"):
        L.append("- **Profile**: quick (reduced seeds/trials/epochs/contenders: numbers are a smoke test, not evidence; "
                 f"every verdict is a preview — the evidence is {_evidence(fight)})")
    if fight.get("command"):
        L.append(f"- **Command**: `{fight.get('command')}`")
    if fight.get("source"):
        L.append(f"- **Spec file**: `{fight.get('source')}`")
    L += ["", "The test set is read only by final runs: tuning trials select hyperparameters on a validation split "
          "carved from the training set; the width and λ ablations reuse the tuned hyperparameters"
          + (" (the width sweeps choose each width's learning rate on validation: `lr_factors`)"
             if (fight.section("accuracy_matched") or {}).get("lr_factors") not in (None, [1.0]) else "")
          + " and are reported on test, never used for tuning."]
    leaked = [r for r in fight.phase("tune") if to_number(r.get("test_accuracy")) is not None]
    if leaked:
        L += ["", f"**Warning**: {len(leaked)} tuning row(s) in results.csv carry a test accuracy."]
    if fight.unreadable_runs:
        L += ["", f"Note: {fight.unreadable_runs} file(s) in runs/ could not be read and were skipped."]
    # contenders and their tuning
    L += ["", "## Contenders", ""]
    rows = []
    tuning = fight.tuning or {}
    for c in fight.spec_contenders:
        cfg = fight.config_of(c["name"])
        cfg_txt = ", ".join(f"{k}={v}" for k, v in cfg.items()) if cfg else "—"
        trials, best_txt, bva = _tuning_summary(tuning.get(c["name"]) or {})
        rows.append([f"`{c['name']}`", fight.label(c["name"]), cfg_txt,
                     json.dumps(c.get("tune")) if c.get("tune") else "—", trials, best_txt,
                     format_value("val_accuracy", bva)])
    L.append(md_table(["name", "label", "config", "tuned space", "trials", "best params", "best val acc (%)"], rows))
    if any((tuning.get(c["name"]) or {}).get("cells") for c in fight.spec_contenders):
        L += ["", "Under resampling every cell is tuned on its own: trials are per cell × cells, best params "
              "the median of the cells' optima (each cell's own in `tuning.json`), best val acc the mean over cells."]
    return L


def _tuning_summary(tn: dict) -> tuple[str, str, float | None]:
    """``(trials, best params, best validation accuracy)`` of one contender's tuning.json entry;
    with resampling cells: trials per cell × cells, the median optimum, the mean best accuracy."""
    fmt = lambda k, v: f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
    cells = tn.get("cells") or {}
    if not cells:
        best = tn.get("best_params")
        return (str(len(tn.get("trials") or [])), ", ".join(fmt(k, v) for k, v in best.items()) if best else "—",
                to_number(tn.get("best_val_accuracy")))
    per_cell = [len(v.get("trials") or []) for v in cells.values()]
    trials = (f"{per_cell[0]} × {len(cells)} cells" if len(set(per_cell)) == 1
              else f"{sum(per_cell)} in {len(cells)} cells")
    params: dict[str, list] = {}
    for v in cells.values():
        for k, x in (v.get("best_params") or {}).items():
            params.setdefault(k, []).append(x)
    best = {k: (float(np.median(xs)) if all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in xs)
                else max(set(map(str, xs)), key=list(map(str, xs)).count)) for k, xs in params.items()}
    accs = [a for a in (to_number(v.get("best_val_accuracy")) for v in cells.values()) if a is not None]
    return (trials, ", ".join(fmt(k, v) for k, v in best.items()) if best else "—",
            sum(accs) / len(accs) if accs else None)


def _main_section(fight: Fight, table: list[dict[str, Any]]) -> list[str]:
    metrics = fight.main_metrics()
    L = ["", "## Main table (final runs)", "",
         f"Mean ± std over {'the splits (each split the mean of its seeds)' if fight.resampled else 'seeds'}; {fight.primary} also with its "
         f"95% {'corrected (Nadeau–Bengio) ' if fight.resampled else ''}t-interval [lo, hi]. "
         "Accuracies in %. Empty columns (not applicable) are omitted.", ""]
    L[-2] += (" Failures: runs diverged or unstable, k/n with the 95% Clopper–Pearson interval of the rate "
              "(\"unstable not recorded\": results without an `unstable` column, so the rate is unknown).")
    header = (["contender", "hidden", "params", "runs (diverged)", "failures [95% CI]"]
              + [f"{m}{metric_unit(m)}" for m in metrics])
    rows = []
    for d in table:
        r = [d["label"], d["hidden"] or "—", format_value("params", d["params"]), f"{d['runs']} ({d['diverged']})", failure_text(d)]
        for m in metrics:
            s = None if d.get(f"{m}_n") in (None, 0) else {k: d[f"{m}_{k}"] for k in ("mean", "std", "ci_low", "ci_high", "n")}
            if s is not None:
                s = {k: (float("nan") if v is None else v) for k, v in s.items()}
            r.append(format_summary(m, s, ci=(m == fight.primary)))
        rows.append(r)
    L.append(md_table(header, rows))
    return L


def _paired_section(fight: Fight) -> tuple[list[str], dict[str, list[dict[str, Any]]]]:
    if fight.resampled:
        L = ["", "## Paired comparisons vs the reference", "",
             f"Each contender minus `{fight.reference}`, paired by repeated-CV split (each split the mean of its seeds). p: two-sided "
             "Nadeau–Bengio corrected resampled t over the paired splits (the splits' training sets overlap, so "
             "a plain paired t would be too confident; no Wilcoxon p, which assumes independent pairs); "
             f"Holm–Bonferroni over the family (all comparisons of that metric); reject at α = {fight.alpha}."]
    else:
        L = ["", "## Paired comparisons vs the reference", "",
             f"Each contender minus `{fight.reference}`, paired by seed. p: two-sided paired t-test and Wilcoxon "
             "signed-rank; Holm–Bonferroni over the family (all comparisons of that metric) on the paired-t p; "
             f"reject at α = {fight.alpha}."]
    n_seeds = len({r.get("seed") for r in fight.phase("final")})
    if not fight.resampled and 0 < n_seeds and 2 / 2 ** n_seeds > fight.alpha:
        L[-1] += (f" With {n_seeds} seeds the exact two-sided Wilcoxon p cannot go below 2/2^{n_seeds} = "
                  f"{2 / 2 ** n_seeds:.4g}, so only the t-test can reach significance.")
    out = {}
    for metric in (fight.primary, "jacobian_fro_mean"):
        comps = paired_comparisons(fight, metric)
        out[metric] = comps
        L += ["", f"**{metric}**{metric_unit(metric)}", ""]
        if not comps:
            L.append("No comparisons (no reference runs or no values).")
            continue
        rows = [[fight.label(c["contender"]), str(c["n"]), format_value(metric, c["mean_diff"], diff=True), format_p(c["t_p"]),
                 format_p(c["wilcoxon_p"]), format_p(c["holm_p"]), "yes" if c["reject"] else "no", c["note"] or ""]
                for c in comps]
        header = ["contender", "n", "mean diff", "paired t p", "Wilcoxon p", "Holm p", "reject", "note"]
        if fight.resampled:  # n counts splits; no Wilcoxon column
            header[1], header[3] = "n (splits)", "corrected t p"
            del header[4]
            rows = [r[:4] + r[5:] for r in rows]
        L.append(md_table(header, rows))
    return L, out


def _claims_section(fight: Fight, claims: list[dict[str, Any]]) -> list[str]:
    L = ["", "## Claims", "",
         "Verdicts from `chainzrule.fight.verdicts` / `stats`: level/reduction — the 95% interval of ours against the "
         "claimed value (± the claim's `tolerance`); a claimed range by equivalence (TOST, 90% interval inside the "
         "range) or at its strict end (`rule`); compare — paired superiority, non-inferiority where the claim has "
         "a `margin` (\"at least as good\": supported when the one-sided test rejects \"worse by the margin or "
         "more\"); paired claims of one metric share a Holm family, and their verdicts read the Holm-adjusted p (the "
         "interval shown is the unadjusted one, so a non-inferiority interval clearing the margin can still read "
         "inconclusive when the adjusted p does not reject); param_ratio — the accuracy-matched ratio "
         "from validation width sweeps, its bootstrap interval (seeds, or splits, paired across widths) against the claimed ratio (widened by "
         "Nadeau–Bengio's factor under repeated CV; at most inconclusive when a family reaches the target at its "
         "smallest width, which makes the ratio a bound; without validation sweeps, the legacy test-set ratio: no "
         "CI, supported if ≥ claimed). Intervals are 95% unless the cell says otherwise (a one-sided test at 5% and "
         "TOST read the 90% one). \"not comparable\": the papers' quantity is undefined or their setting "
         "differs (reason in the note; our value is shown, no verdict). \"not tested\": the fight has no data for it.",
         ""]
    if fight.resampled:
        L[-2] += " Results are repeated-CV splits: every interval and test uses the Nadeau–Bengio corrected variance."
    if fight.get("quick"):
        L += [f"**Preview only.** This is a quick-profile run (fewer seeds, trials and epochs): no row below is "
              f"evidence for or against a claim, so every verdict reads \"{PREVIEW}\". The verdicts are those "
              f"of {_evidence(fight)}.", ""]
    if not claims:
        L.append("The spec lists no claims.")
        return L

    def verdict(c: dict[str, Any]) -> str:
        return c["verdict"] if c["verdict"] == PREVIEW else f"**{c['verdict']}**"

    rows = [[c["id"], c["text"], c["claimed"], c["ours"], verdict(c),
             c["p"] + (f" ({c['p_note']})" if c["p_note"] and c["p"] != "—" else ""), c["note"]] for c in claims]
    L.append(md_table(["id", "claim", "claimed", "ours [CI]", "verdict", "p", "note"], rows))
    return L


def _findings(fight: Fight, claims: list[dict[str, Any]], table: list[dict[str, Any]],
              comps: dict[str, list[dict[str, Any]]], am: dict[str, Any], sv: dict[str, Any]) -> list[str]:
    L = ["", "## Findings", ""]
    parts = []
    if claims:
        groups: dict[str, list[str]] = {}
        for c in claims:
            groups.setdefault(c["verdict"], []).append(c["id"])
        counts = ", ".join(f"{len(groups[v])} {v} ({', '.join(groups[v])})"
                           for v in ("supported", "not supported", "inconclusive", NOT_COMPARABLE, PREVIEW,
                                     "not tested") if v in groups)
        parts.append(f"Of {len(claims)} claims: {counts}.")
        for c in claims:
            if c["verdict"] in ("supported", "not supported"):
                parts.append(f"{c['id']}: claimed {c['claimed']}, ours {c['ours']} → {c['verdict']}.")
    pm = fight.primary
    ranked = [d for d in table if d.get(f"{pm}_mean") is not None]
    if ranked:
        best = max(ranked, key=lambda d: d[f"{pm}_mean"])
        parts.append(f"Highest mean {pm}: {best['label']} ({format_with_unit(pm, best[f'{pm}_mean'])}).")
    for metric, rows in comps.items():
        sig = [r for r in rows if r["reject"]]
        if rows:
            if sig:
                pts = " points" if is_fraction(metric) else ""
                txt = "; ".join(f"{fight.label(r['contender'])} {format_value(metric, r['mean_diff'], diff=True)}{pts}" for r in sig)
                parts.append(f"On {metric}, after Holm, these differ significantly from {fight.label(fight.reference)}: {txt}.")
            else:
                parts.append(f"On {metric}, no contender differs significantly from {fight.label(fight.reference)} after Holm.")
    r = sv.get("val") or {}
    if r.get("ratio") is not None and math.isfinite(r["ratio"]):  # the view chosen on validation, never the legacy one
        ci = "" if r["reason"] else f" [{r['ci_low']:.2f}, {r['ci_high']:.2f}]"
        parts.append(f"Accuracy-matched parameter ratio (validation width sweeps, {fight.label(sv['baseline'])} / "
                     f"{fight.label(sv['contender'])}): {r['ratio']:.2f}×{ci}.")
    elif am.get("ratio") is not None:
        parts.append(f"Accuracy-matched parameter ratio, legacy view (baseline and width chosen on the test set, "
                     f"not evidence): {am['ratio']:.2f}×.")
    elif am.get("widths"):
        parts.append("No width of the accuracy-matched sweep reached the best baseline within the margin.")
    if fight.get("quick"):
        parts.append("This was a quick-profile run: its numbers are previews, not evidence; the verdicts are those of "
                     f"{_evidence(fight)}.")
    L.append(" ".join(parts) if parts else "No final runs: nothing to report.")
    return L


def _summary_csv(table: list[dict[str, Any]]) -> str:
    header: list[str] = []
    for d in table:
        header += [k for k in d if k not in header]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=header or ["contender"], lineterminator="\n")
    w.writeheader()
    for d in table:
        w.writerow({k: ("" if v is None else repr(v) if isinstance(v, float) else v) for k, v in d.items()})
    return buf.getvalue()


def write_report(folder: str | Path | Fight) -> Path:
    """Write ``report.md``, ``summary.csv`` and ``plots/*.png`` into the fight folder (or the
    loaded :class:`Fight`'s); returns the path of report.md. ConfigError if the folder lacks
    results.csv or spec.json."""
    fight = as_fight(folder)
    folder = fight.folder
    table = summary_table(fight)
    lam = lambda_table(fight)
    claims = claim_rows(fight)

    L = _header(fight)
    L += _main_section(fight, table)
    paired, comps = _paired_section(fight)
    L += paired
    size, am, sv = size_section(fight, table)
    L += size
    L += lambda_section(fight, lam)
    L += attribution_section(fight)
    L += tuning_section(fight)
    L += _claims_section(fight, claims)
    L += changes_section(fight)

    try:  # from here on files are written: all of them, or none (an interrupted write removes its part)
        return _write(fight, folder, table, lam, claims, comps, am, sv, L)
    except BaseException:
        remove_report_files(folder)
        raise


#: what :func:`write_report` writes into a fight folder (besides ``plots/``)
REPORT_FILES = ("report.md", "summary.csv")


def remove_report_files(folder: str | Path) -> None:
    """Remove what :func:`write_report` writes (report.md, summary.csv, plots/) from ``folder``."""
    folder = Path(folder)
    for name in REPORT_FILES:
        (folder / name).unlink(missing_ok=True)
    shutil.rmtree(folder / _PLOTS, ignore_errors=True)


def _write(fight: Fight, folder: Path, table, lam, claims, comps, am, sv, L: list[str]) -> Path:
    """The writing half of :func:`write_report`: the plots, summary.csv, then report.md."""
    plots_dir = folder / _PLOTS
    made = []
    for fname, title, fn in (
        ("accuracy_vs_params.png", "Accuracy vs parameters", lambda p: plot_accuracy_vs_params(fight, p)),
        ("accuracy_vs_tau.png", "Accuracy vs tau_input", lambda p: plot_accuracy_vs_tau(fight, p)),
        ("grad_norms.png", "Gradient-norm traces (seed-0 final runs)", lambda p: plot_grad_norms(fight, p)),
        ("activations.png", "Learned activation shapes (seed-0 final runs)", lambda p: plot_activations(fight, p)),
        ("lambda_sweep.png", "λ sweep", lambda p: plot_lambda(fight, lam, p)),
        ("expected_max_val.png", "Expected best validation accuracy vs tuning trials (Dodge et al. 2019)",
         lambda p: plot_expected_max(fight, expected_max_curves(fight), p)),
    ):
        if fn(plots_dir / fname):
            made.append((fname, title))
    L += ["", "## Plots", ""]
    if not made:
        L.append("No data to plot.")
    for fname, title in made:
        L += [f"### {title}", "", f"![{title}]({_PLOTS}/{fname})", ""]
    L += _findings(fight, claims, table, comps, am, sv)

    atomic_write_text(folder / "summary.csv", _summary_csv(table))
    out = folder / "report.md"
    atomic_write_text(out, "\n".join(L).rstrip() + "\n")
    return out
