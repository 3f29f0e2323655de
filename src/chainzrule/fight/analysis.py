"""Loading a Fair Fight folder and turning it into numbers: the tables and the claim verdicts.

:func:`load_fight` reads a fight folder written by the runner (``docs/FIGHT_FORMAT.md``) into a
:class:`Fight`; :func:`summary_table`, :func:`paired_comparisons`, :func:`accuracy_matched` and
:func:`lambda_table` give the report's tables as data, and :func:`claim_rows` judges every spec
claim. The display formatting shared with the markdown report (``format_value``, ``format_with_unit``, ``format_p``,
``metric_unit``, ...) is re-exported here too. The choices made where the papers are silent are listed in
:mod:`chainzrule.fight.report`. All statistics come from :mod:`chainzrule.fight.stats`.

Where the parts live, each module importing only those above it, so there is no import cycle:

- :mod:`.loading` — :class:`Fight`, :func:`load_fight` and the cell readers (``to_number``, ``summary_of``);
- :mod:`.formatting` — every number in its display unit;
- :mod:`.views` — the size, λ, attribution and tuning views;
- :mod:`.claims` — :func:`claim_rows` and a handler per claim kind;
- this module — the main table (:func:`summary_table`, :func:`failure_text`) and
  :func:`paired_comparisons`, and the whole API re-exported for existing callers
  (``from chainzrule.fight.analysis import ...``); new code may import from the home modules.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from ..config import NEURAL_MODELS
from .claims import PREVIEW, claim_rows
# re-exported for existing callers (format_*, is_fraction, metric_unit, to_number, ATTRIBUTION_*)
from .formatting import format_margin, format_p, format_value, format_with_unit, is_fraction, metric_unit  # noqa: F401
from .loading import MAIN_METRICS, Fight, as_fight, load_fight, summary_of, to_number  # noqa: F401
from .stats import corrected_resampled_ttest, failure_rate, holm_bonferroni, paired_tests
from .views import (  # noqa: F401
    ATTRIBUTION_DREG,
    ATTRIBUTION_FAMILIES,
    accuracy_matched,
    attribution_table,
    expected_max_curves,
    lambda_table,
    size_view,
    tuning_edges,
)

__all__ = [
    "Fight",
    "load_fight",
    "summary_table",
    "paired_comparisons",
    "accuracy_matched",
    "lambda_table",
    "claim_rows",
    "failure_text",
    "attribution_table",
    "tuning_edges",
    "expected_max_curves",
    "size_view",
    "PREVIEW",
    "MAIN_METRICS",
    "EXTRA_METRICS",
]

#: Extra metric columns summarised in summary.csv (not shown in the markdown table).
EXTRA_METRICS: tuple[str, ...] = ("val_accuracy", "jacobian_fro_p99", "peak_memory_mb")


def _truthy(cell: Any) -> bool:
    return str(cell).strip().lower() in ("true", "1", "yes")


# ----------------------------------------------------------------------------------------------
# the numbers
# ----------------------------------------------------------------------------------------------


def summary_table(folder: str | Path | Fight) -> list[dict[str, Any]]:
    """The main table as data: one dict per contender with final runs.

    Keys: ``contender, label, model, activation, hidden, runs, diverged, params`` (mean over its
    final runs), ``failures, failures_unknown, failure_rate, failure_ci_low, failure_ci_high``
    (runs diverged or unstable, 95% Clopper–Pearson; rate None when some run's ``unstable`` is
    not recorded, see :func:`failure_text`), then for every metric column present (:data:`MAIN_METRICS`, fgsm_/pgd_ columns,
    val_accuracy, jacobian_fro_p99, peak_memory_mb) ``<metric>_mean``, ``<metric>_std``,
    ``<metric>_ci_low``, ``<metric>_ci_high`` (95% t-interval over seeds; under repeated CV over
    the splits, each its seeds' mean, with Nadeau–Bengio's corrected variance) and ``<metric>_n``;
    ``None`` where the metric has no value (not applicable). Values are in results.csv units
    (accuracies as fractions).
    """
    fight = as_fight(folder)
    metrics = fight.main_metrics()
    finals = fight.phase("final")
    metrics += [m for m in EXTRA_METRICS if m in fight.columns and m not in metrics
                and any(to_number(r.get(m)) is not None for r in finals)]
    out = []
    for name in fight.contenders():
        rows = fight.phase("final", name)
        first = rows[0]
        neural = (first.get("model") or "") in NEURAL_MODELS or not first.get("model")
        params = [v for v in (to_number(r.get("params")) for r in rows) if v is not None]
        d: dict[str, Any] = {
            "contender": name,
            "label": fight.label(name),
            "model": first.get("model") or None,
            "activation": first.get("activation") or None,
            "hidden": (first.get("hidden") or None) if neural else None,  # a classical model has no width
            "runs": len(rows),
            "diverged": sum(_truthy(r.get("diverged")) for r in rows),
            "params": float(np.mean(params)) if params else None,
            **(_failures(fight, rows) if neural else _classical_failures(rows)),
        }
        for m in metrics:
            s = fight.summary(rows, m)  # repeated CV: one value per split (its seeds' mean), corrected interval
            for k in ("mean", "std", "ci_low", "ci_high", "n"):
                v = s[k] if s else None
                d[f"{m}_{k}"] = None if isinstance(v, float) and math.isnan(v) else v
        out.append(d)
    return out


#: Classical models (logreg, svm, xgboost) have no gradient trace: failure is not defined ("—").
_NO_FAILURES = {"failures": 0, "failures_unknown": 0, "failure_rate": None, "failure_ci_low": None,
                "failure_ci_high": None}


def _classical_failures(rows: list[dict[str, str]]) -> dict[str, Any]:
    """A classical contender's runs that could not be done (their ``failed`` cell says why, e.g. a
    training split of one class), with a Clopper–Pearson interval; "—" when none failed (they
    have no gradient trace to be unstable). A failed run has no accuracy, so without this count
    it would only be missing from the mean."""
    failed = sum(bool(str(r.get("failed") or "").strip()) for r in rows)
    if not failed:
        return dict(_NO_FAILURES)
    fr = failure_rate(failed, len(rows))
    return {"failures": failed, "failures_unknown": 0, "failure_rate": fr["rate"],
            "failure_ci_low": fr["ci_low"], "failure_ci_high": fr["ci_high"]}


def _failures(fight: Fight, rows: list[dict[str, str]]) -> dict[str, Any]:
    """Failed runs (``diverged`` or ``unstable``) of one contender with a Clopper–Pearson interval.

    A run counts as failed when either flag is true; a run with neither flag true and an empty
    or absent ``unstable`` cell is *unknown* (results written before the column existed), never
    counted as a success: then ``failure_rate`` is None and ``failures_unknown`` says how many.
    """
    failed = unknown = 0
    for r in rows:
        if _truthy(r.get("diverged")) or _truthy(r.get("unstable")):
            failed += 1
        elif "unstable" not in fight.columns or not str(r.get("unstable") or "").strip():
            unknown += 1
    out: dict[str, Any] = {"failures": failed, "failures_unknown": unknown, "failure_rate": None,
                           "failure_ci_low": None, "failure_ci_high": None}
    if rows and not unknown:
        fr = failure_rate(failed, len(rows))
        out.update(failure_rate=fr["rate"], failure_ci_low=fr["ci_low"], failure_ci_high=fr["ci_high"])
    return out


def failure_text(d: dict[str, Any]) -> str:
    """A summary row's failures as ``"k/n [lo, hi]"`` (95% Clopper–Pearson, in %), or why unknown."""
    if d.get("failure_rate") is None:
        if d.get("failures_unknown"):
            low = f"≥ {d['failures']}/{d['runs']}" if d.get("failures") else "unknown"
            return f"{low} (unstable not recorded)"
        return "—"
    return f"{d['failures']}/{d['runs']} [{100 * d['failure_ci_low']:.0f}%, {100 * d['failure_ci_high']:.0f}%]"


def paired_comparisons(fight: Fight, metric: str) -> list[dict[str, Any]]:
    """Every final contender vs the reference on ``metric``, paired, Holm over the family.

    Pairs are seeds, or under repeated CV ``(repeat, fold)`` splits (each the mean of its seeds): there the t-test is
    Nadeau–Bengio's corrected resampled t over the paired units (the splits' training sets
    overlap, so a plain paired t would be too confident) and no Wilcoxon p is given (it assumes
    independent pairs; ``wilcoxon_p`` is None).

    Each row: ``contender, n, mean_diff`` (contender − reference), ``t_p, wilcoxon_p, holm_p``
    (Holm–Bonferroni over the family's t p-values), ``reject`` (holm_p ≤ alpha), ``test``
    ("paired t" or "corrected resampled t") and ``note`` (why a comparison could not be made).
    """
    ref = fight.reference
    if ref is None or metric not in fight.columns:
        return []
    ref_rows = fight.phase("final", ref)
    ref_vals = fight.by_split(ref_rows, metric)
    rows, pvals = [], {}
    for name in fight.contenders():
        if name == ref:
            continue
        own = fight.phase("final", name)
        vals = fight.by_split(own, metric)
        units = [k for k in vals if k in ref_vals]
        sizes = fight.split_sizes(own + ref_rows)
        row: dict[str, Any] = {"contender": name, "n": len(units), "mean_diff": None, "t_p": None,
                               "wilcoxon_p": None, "holm_p": None, "reject": False,
                               "test": "corrected resampled t" if sizes else "paired t", "note": ""}
        if not units:
            row["note"] = "no paired seeds with values"
        elif len(units) < 2:
            row["mean_diff"] = vals[units[0]] - ref_vals[units[0]]
            row["note"] = "one paired seed: no test"
        elif sizes:
            diffs = [vals[k] - ref_vals[k] for k in units]  # [units]
            r = corrected_resampled_ttest(diffs, sizes[0], sizes[1], confidence=1.0 - fight.alpha)
            row.update(mean_diff=r["mean_diff"], t_p=r["p_value"])
            pvals[name] = r["p_value"]
        else:
            t = paired_tests([vals[k] for k in units], [ref_vals[k] for k in units])
            row.update(mean_diff=t["mean_diff"], t_p=t["t_p"], wilcoxon_p=t["wilcoxon_p"])
            pvals[name] = t["t_p"]
        rows.append(row)
    if pvals:
        holm = holm_bonferroni(pvals, alpha=fight.alpha)
        for row in rows:
            if row["contender"] in pvals:
                row["holm_p"] = holm.adjusted[row["contender"]]
                row["reject"] = holm.reject[row["contender"]]
    return rows
