"""The Fair Fight report: ``OUT/report.md``, ``OUT/summary.csv`` and ``OUT/plots/*.png``.

:func:`write_report` reads a fight folder written by the runner (``docs/FIGHT_FORMAT.md``):

- ``spec.json`` — the resolved spec (name, dataset, reference, seeds, trials, tune_epochs, base,
  contenders, accuracy_matched, lambda_sweep, claims, command, configs);
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

Choices made here (the papers and the guide are silent):

- A level claim with ``claimed_range = [lo, hi]`` is judged against the *least favourable* end of
  the range (``lo`` for direction "higher", ``hi`` for "lower"): reaching the range counts as
  reproducing it.
- Compare claims on the same metric form one Holm–Bonferroni family (their p is the adjusted
  paired-t p); level and reduction claims report the raw two-sided t p against the claimed value
  (the verdict is the 95% interval's position, equivalent to that test).
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
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError
from .stats import (
    holm_bonferroni,
    one_sample_tests,
    paired_tests,
    ratio_reduction,
    summarize,
    verdict_compare,
    verdict_level,
)

__all__ = [
    "Fight",
    "load_fight",
    "summary_table",
    "paired_comparisons",
    "accuracy_matched",
    "lambda_table",
    "claim_rows",
    "write_report",
    "MAIN_METRICS",
]

#: Metric columns of the main table, in this order (fgsm_/pgd_ columns are inserted after
#: corruption_accuracy); a column is shown only if some final run has a value in it.
MAIN_METRICS: tuple[str, ...] = (
    "test_accuracy", "test_mae", "test_off_by_one", "test_qwk", "jacobian_fro_mean", "tau_input", "tau_train",
    "pgv", "lipschitz_bound", "corruption_accuracy", "step_ms", "train_seconds",
)
#: Extra metric columns summarised in summary.csv (not shown in the markdown table).
EXTRA_METRICS: tuple[str, ...] = ("val_accuracy", "jacobian_fro_p99", "peak_memory_mb")
#: Columns shown as percentages (they hold fractions in results.csv).
_FRACTION_METRICS = {"test_accuracy", "val_accuracy", "test_off_by_one", "corruption_accuracy"}
_ADV_RE = re.compile(r"^(fgsm|pgd)_([0-9.eE+-]+)$")
_LAMBDA_MARK = 10 ** -2.5  # the follow-up paper's fixed λ
_PLOTS = "plots"


# ----------------------------------------------------------------------------------------------
# loading
# ----------------------------------------------------------------------------------------------


@dataclass
class Fight:
    """A fight folder, loaded: the spec (raw JSON), the results.csv rows, the run records."""

    folder: Path
    spec: dict[str, Any]
    columns: list[str]
    rows: list[dict[str, str]]
    runs: list[dict[str, Any]] = field(default_factory=list)
    tuning: dict[str, Any] | None = None
    unreadable_runs: int = 0

    # --- spec access (flat, as the runner writes it; the TOML's nested form also works) -----
    def get(self, key: str, default: Any = None) -> Any:
        if key in self.spec:
            return self.spec[key]
        fight = self.spec.get("fight")
        if isinstance(fight, dict) and key in fight:
            return fight[key]
        return default

    @property
    def alpha(self) -> float:
        return float(self.get("alpha", 0.05))

    @property
    def reference(self) -> str | None:
        return self.get("reference")

    @property
    def primary(self) -> str:
        """The results.csv column of the primary metric ("accuracy" → test_accuracy)."""
        pm = str(self.get("primary_metric", "accuracy"))
        for cand in (f"test_{pm}", pm):
            if cand in self.columns:
                return cand
        return "test_accuracy"

    @property
    def spec_contenders(self) -> list[dict[str, Any]]:
        cs = self.spec.get("contenders", self.spec.get("contender", []))
        return [c for c in cs if isinstance(c, dict) and "name" in c]

    @property
    def claims(self) -> list[dict[str, Any]]:
        return [c for c in self.spec.get("claims", self.spec.get("claim", [])) if isinstance(c, dict)]

    def section(self, name: str) -> dict[str, Any] | None:
        s = self.get(name)
        return s if isinstance(s, dict) and s else None

    @property
    def base(self) -> dict[str, Any]:
        return dict(self.get("base") or {})

    # --- results access ---------------------------------------------------------------------
    def phase(self, phase: str, contender: str | None = None) -> list[dict[str, str]]:
        return [r for r in self.rows if r.get("phase") == phase and (contender is None or r.get("contender") == contender)]

    def contenders(self) -> list[str]:
        """Contenders with final runs: spec order first, then any others in first-seen order."""
        seen = {r.get("contender") for r in self.phase("final")}
        order = [c["name"] for c in self.spec_contenders if c["name"] in seen]
        for r in self.phase("final"):
            if r.get("contender") not in order:
                order.append(r["contender"])
        return order

    def label(self, name: str) -> str:
        for c in self.spec_contenders:
            if c["name"] == name and c.get("label"):
                return str(c["label"])
        for r in self.rows:
            if r.get("contender") == name and r.get("label"):
                return r["label"]
        return name

    def config_of(self, name: str) -> dict[str, Any]:
        """The contender's config overrides (spec.json ``configs`` if present, else its own)."""
        configs = self.spec.get("configs") or {}
        if name in configs and isinstance(configs[name], dict):
            return configs[name]
        for c in self.spec_contenders:
            if c["name"] == name:
                return c.get("config") or {k: v for k, v in c.items() if k not in ("name", "label", "tune")}
        return {}

    def by_seed(self, rows: list[dict[str, str]], metric: str) -> dict[int, float]:
        """seed → value of ``metric`` (mean if a seed repeats), empty and non-finite cells skipped."""
        acc: dict[int, list[float]] = {}
        for r in rows:
            v, s = _num(r.get(metric)), _num(r.get("seed"))
            if v is not None and s is not None:
                acc.setdefault(int(s), []).append(v)
        return {s: float(np.mean(v)) for s, v in sorted(acc.items())}

    def values(self, phase: str, contender: str, metric: str) -> dict[int, float]:
        return self.by_seed(self.phase(phase, contender), metric)

    def adversarial_columns(self) -> list[str]:
        cols = [c for c in self.columns if _ADV_RE.match(c)]
        return sorted(cols, key=lambda c: (_ADV_RE.match(c).group(1) != "fgsm", float(_ADV_RE.match(c).group(2))))

    def main_metrics(self) -> list[str]:
        """Metric columns of the main table present in results.csv with some final value."""
        i = MAIN_METRICS.index("corruption_accuracy") + 1
        cand = list(MAIN_METRICS[:i]) + self.adversarial_columns() + list(MAIN_METRICS[i:])
        if self.primary not in cand:
            cand.insert(0, self.primary)
        finals = self.phase("final")
        return [m for m in cand if m in self.columns and any(_num(r.get(m)) is not None for r in finals)]

    def seed0_run(self, contender: str, phase: str = "final") -> dict[str, Any] | None:
        """The run record of the contender's lowest seed (seed 0 when present) in ``phase``."""
        cands = [r for r in self.runs if r.get("phase") == phase and r.get("contender") == contender]
        if not cands:
            return None
        return min(cands, key=lambda r: (r.get("seed") is None, r.get("seed") or 0))


def _num(cell: Any) -> float | None:
    """A csv cell as a finite float, or None (empty, 'None', non-numeric, nan, inf)."""
    if cell is None or isinstance(cell, bool):
        return None
    try:
        v = float(cell)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _truthy(cell: Any) -> bool:
    return str(cell).strip().lower() in ("true", "1", "yes")


def load_fight(folder: str | Path) -> Fight:
    """Load a fight folder; ConfigError if it lacks results.csv or spec.json."""
    folder = Path(folder)
    missing = [n for n in ("results.csv", "spec.json") if not (folder / n).is_file()]
    if missing:
        raise ConfigError(f"{folder} is not a fight folder: expected results.csv and spec.json, missing {', '.join(missing)}")
    try:
        spec = json.loads((folder / "spec.json").read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{folder / 'spec.json'} is not valid JSON: {e}") from None
    if not isinstance(spec, dict):
        raise ConfigError(f"{folder / 'spec.json'}: expected a JSON object, got {type(spec).__name__}")
    with open(folder / "results.csv", newline="") as f:
        reader = csv.DictReader(f)
        rows = [dict(r) for r in reader]
        columns = list(reader.fieldnames or [])
    for need in ("phase", "contender", "seed"):
        if need not in columns:
            raise ConfigError(f"{folder / 'results.csv'}: expected a {need!r} column, got {', '.join(columns) or 'no header'}")
    runs, bad = [], 0
    for p in sorted((folder / "runs").glob("*.json")) if (folder / "runs").is_dir() else []:
        try:
            rec = json.loads(p.read_text())
            if isinstance(rec, dict):
                runs.append(rec)
            else:
                bad += 1
        except (OSError, json.JSONDecodeError, UnicodeDecodeError):
            bad += 1
    tuning = None
    if (folder / "tuning.json").is_file():
        try:
            tuning = json.loads((folder / "tuning.json").read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            tuning = None
    return Fight(folder, spec, columns, rows, runs, tuning if isinstance(tuning, dict) else None, bad)


def _as_fight(folder_or_fight: str | Path | Fight) -> Fight:
    return folder_or_fight if isinstance(folder_or_fight, Fight) else load_fight(folder_or_fight)


# ----------------------------------------------------------------------------------------------
# formatting
# ----------------------------------------------------------------------------------------------


def _is_fraction(metric: str) -> bool:
    return metric in _FRACTION_METRICS or bool(_ADV_RE.match(metric))


def _fmt(metric: str, v: float | None, *, diff: bool = False) -> str:
    """One number of ``metric`` in its display unit (accuracies in %, diffs in points)."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    if _is_fraction(metric):
        return f"{100 * v:+.2f}" if diff else f"{100 * v:.2f}"
    if metric == "params":
        return f"{v:+,.0f}" if diff else f"{v:,.0f}"
    if metric in ("step_ms",):
        return f"{v:.2f}"
    if metric in ("train_seconds", "peak_memory_mb"):
        return f"{v:.1f}"
    if metric in ("test_mae", "test_qwk"):
        return f"{v:+.3f}" if diff else f"{v:.3f}"
    if v != 0 and not 1e-3 <= abs(v) < 1e5:
        return f"{v:+.3e}" if diff else f"{v:.3e}"
    return f"{v:+.3f}" if diff else f"{v:.3f}"


def _fmtu(metric: str, v: float | None) -> str:
    """:func:`_fmt` with the unit: ``96.38%`` for fraction metrics."""
    return _fmt(metric, v) + ("%" if _is_fraction(metric) and v is not None else "")


def _fmt_margin(metric: str, margin: float) -> str:
    return f"{100 * margin:.2f} points" if _is_fraction(metric) else _fmt(metric, margin)


def _unit(metric: str) -> str:
    return " (%)" if _is_fraction(metric) else ""


def _fmt_summary(metric: str, s: dict[str, Any] | None, ci: bool = False) -> str:
    """``mean ± std`` (``[lo, hi]`` with ``ci``); ``mean (n=1)`` for a single value."""
    if not s:
        return "—"
    if s["n"] < 2:
        return f"{_fmt(metric, s['mean'])} (n=1)"
    out = f"{_fmt(metric, s['mean'])} ± {_fmt(metric, s['std'])}"
    if ci:
        out += f" [{_fmt(metric, s['ci_low'])}, {_fmt(metric, s['ci_high'])}]"
    return out


def _fmt_p(p: float | None) -> str:
    if p is None or math.isnan(p):
        return "—"
    return "<0.0001" if p < 1e-4 else f"{p:.4f}"


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    def esc(x: Any) -> str:
        return str(x).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(esc(h) for h in header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(esc(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def _summ(values: dict[int, float] | list[float]) -> dict[str, Any] | None:
    vals = list(values.values()) if isinstance(values, dict) else list(values)
    return summarize(vals) if vals else None


# ----------------------------------------------------------------------------------------------
# the numbers
# ----------------------------------------------------------------------------------------------


def summary_table(folder: str | Path | Fight) -> list[dict[str, Any]]:
    """The main table as data: one dict per contender with final runs.

    Keys: ``contender, label, model, activation, hidden, runs, diverged, params`` (mean over its
    final runs), then for every metric column present (:data:`MAIN_METRICS`, fgsm_/pgd_ columns,
    val_accuracy, jacobian_fro_p99, peak_memory_mb) ``<metric>_mean``, ``<metric>_std``,
    ``<metric>_ci_low``, ``<metric>_ci_high`` (95% t-interval over seeds) and ``<metric>_n``;
    ``None`` where the metric has no value (not applicable). Values are in results.csv units
    (accuracies as fractions).
    """
    fight = _as_fight(folder)
    metrics = fight.main_metrics()
    finals = fight.phase("final")
    metrics += [m for m in EXTRA_METRICS if m in fight.columns and m not in metrics
                and any(_num(r.get(m)) is not None for r in finals)]
    out = []
    for name in fight.contenders():
        rows = fight.phase("final", name)
        first = rows[0]
        params = [v for v in (_num(r.get("params")) for r in rows) if v is not None]
        d: dict[str, Any] = {
            "contender": name,
            "label": fight.label(name),
            "model": first.get("model") or None,
            "activation": first.get("activation") or None,
            "hidden": first.get("hidden") or None,
            "runs": len(rows),
            "diverged": sum(_truthy(r.get("diverged")) for r in rows),
            "params": float(np.mean(params)) if params else None,
        }
        for m in metrics:
            s = _summ(fight.by_seed(rows, m))
            for k in ("mean", "std", "ci_low", "ci_high", "n"):
                v = s[k] if s else None
                d[f"{m}_{k}"] = None if isinstance(v, float) and math.isnan(v) else v
        out.append(d)
    return out


def paired_comparisons(fight: Fight, metric: str) -> list[dict[str, Any]]:
    """Every final contender vs the reference on ``metric``, paired by seed, Holm over the family.

    Each row: ``contender, n, mean_diff`` (contender − reference), ``t_p, wilcoxon_p, holm_p``
    (Holm–Bonferroni over the family's paired-t p-values), ``reject`` (holm_p ≤ alpha) and
    ``note`` (why a comparison could not be made).
    """
    ref = fight.reference
    if ref is None or metric not in fight.columns:
        return []
    ref_vals = fight.values("final", ref, metric)
    rows, pvals = [], {}
    for name in fight.contenders():
        if name == ref:
            continue
        vals = fight.values("final", name, metric)
        seeds = sorted(set(vals) & set(ref_vals))
        row: dict[str, Any] = {"contender": name, "n": len(seeds), "mean_diff": None, "t_p": None,
                               "wilcoxon_p": None, "holm_p": None, "reject": False, "note": ""}
        if not seeds:
            row["note"] = "no paired seeds with values"
        else:
            t = paired_tests([vals[s] for s in seeds], [ref_vals[s] for s in seeds])
            row.update(mean_diff=t["mean_diff"], t_p=t["t_p"], wilcoxon_p=t["wilcoxon_p"])
            pvals[name] = t["t_p"]
            if len(seeds) < 2:
                row["note"] = "one paired seed: no test"
        rows.append(row)
    if pvals:
        holm = holm_bonferroni(pvals, alpha=fight.alpha)
        for row in rows:
            if row["contender"] in pvals:
                row["holm_p"] = holm.adjusted[row["contender"]]
                row["reject"] = holm.reject[row["contender"]]
    return rows


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
    width_rows = [r for r in fight.phase("width") if contender is None or r.get("contender") == contender]
    if contender is None and width_rows:
        contender = out["contender"] = width_rows[0].get("contender")
    if not width_rows:
        out["reason"] = "no width runs in results.csv"
        return out
    groups: dict[str, list[dict[str, str]]] = {}
    for r in width_rows:
        groups.setdefault(r.get("hidden") or "?", []).append(r)
    for hidden, rs in groups.items():
        s = _summ(fight.by_seed(rs, fight.primary))
        params = [v for v in (_num(r.get("params")) for r in rs) if v is not None]
        out["widths"].append({"hidden": hidden, "params": float(np.mean(params)) if params else None,
                              "n": s["n"] if s else 0, "mean": s["mean"] if s else None,
                              "std": s["std"] if s else None})
    out["widths"].sort(key=lambda w: (w["params"] is None, w["params"] or 0))
    cands = [baseline] if baseline else _baselines(fight, contender)
    best = None
    for name in cands:
        rows = fight.phase("final", name)
        params = [v for v in (_num(r.get("params")) for r in rows) if v is not None]
        s = _summ(fight.by_seed(rows, fight.primary))
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
        out["reason"] = f"no width of {contender} within {_fmt_margin(fight.primary, margin)} of {best['label']}"
    return out


def _lambda_of(row: dict[str, str]) -> float | None:
    lam = _num(row.get("dreg"))
    if lam is None and row.get("model") == "chainzrule":
        from ..config import DEFAULT_CHAINZRULE_DREG

        lam = DEFAULT_CHAINZRULE_DREG
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
            d[m] = _summ(fight.by_seed(rs, m)) if m in fight.columns else None
        out.append(d)
    return out


# ----------------------------------------------------------------------------------------------
# claims
# ----------------------------------------------------------------------------------------------


def _claimed_text(claim: dict[str, Any], metric: str) -> str:
    kind, direction = claim.get("kind"), claim.get("direction", "higher")
    sym = "≥" if direction == "higher" else "≤"
    if kind == "param_ratio":
        return f"{claim.get('claimed')}×" if claim.get("claimed") is not None else "—"
    if kind == "reduction":
        c = claim.get("claimed")
        return f"{sym} {100 * float(c):.1f}% reduction" if c is not None else "—"
    if kind == "compare":
        return f"{'higher' if direction == 'higher' else 'lower'} {metric} than {claim.get('baseline')}"
    rng = claim.get("claimed_range")
    if rng:
        return f"{_fmt(metric, float(rng[0]))}–{_fmtu(metric, float(rng[1]))}"
    c = claim.get("claimed")
    return _fmtu(metric, float(c)) if c is not None else "—"


def _ours_text(metric: str, s: dict[str, Any], *, diff: bool = False, percent: bool = False) -> str:
    unit = "%" if percent or (_is_fraction(metric) and not diff) else ""

    def f(v: float) -> str:
        return (f"{100 * v:.1f}" if percent else _fmt(metric, v, diff=diff)) + unit

    pts = " points" if diff and _is_fraction(metric) else ""
    if s["n"] < 2:
        return f"{f(s['mean'])}{pts} (n=1, no CI)"
    return f"{f(s['mean'])}{pts} [{f(s['ci_low'])}, {f(s['ci_high'])}]"


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


def claim_rows(folder: str | Path | Fight) -> list[dict[str, Any]]:
    """One row per spec claim: ``id, text, kind, contender, baseline, metric, claimed, ours,
    verdict, p, p_note, note`` (``claimed``/``ours``/``p`` as display strings, ``p_value`` the
    number or None, ``ours_value`` the point estimate or None).

    ``verdict`` is one of supported / not supported / inconclusive (from the stats module's
    verdict functions) or "not tested" (with the reason in ``note``).
    """
    fight = _as_fight(folder)
    alpha = fight.alpha
    rows: list[dict[str, Any]] = []
    compare_pending: list[tuple[dict[str, Any], list[float], list[float], float, str]] = []
    for claim in fight.claims:
        kind = claim.get("kind")
        metric = claim.get("metric") or fight.primary
        if metric == "accuracy":
            metric = fight.primary
        direction = claim.get("direction", "higher")
        name, base = claim.get("contender"), claim.get("baseline")
        row: dict[str, Any] = {
            "id": str(claim.get("id", "")), "text": str(claim.get("text", "")), "kind": kind,
            "contender": name, "baseline": base, "metric": metric,
            "claimed": _claimed_text(claim, metric), "ours": "—", "ours_value": None,
            "verdict": "not tested", "p_value": None, "p": "—", "p_note": "", "note": str(claim.get("note") or ""),
        }
        rows.append(row)

        def fail(reason: str) -> None:
            row["note"] = reason + (f"; {row['note']}" if row["note"] else "")

        if kind == "param_ratio":
            miss = _missing_reason(fight, name, fight.primary)
            if miss is None and base:
                miss = _missing_reason(fight, base, fight.primary, "baseline")
            if miss:
                fail(miss)
                continue
            am = accuracy_matched(fight, baseline=base)
            if am["contender"] not in (None, name):
                fail(f"the accuracy-matched sweep is of {am['contender']!r}, not {name!r}")
                continue
            if not am["widths"]:
                fail(am["reason"] or "no width runs")
                continue
            claimed = _num(claim.get("claimed"))
            if claimed is None:
                fail("the claim has no numeric claimed ratio")
                continue
            if am["ratio"] is None:
                row["verdict"] = "inconclusive"
                fail(am["reason"])
                continue
            m = am["match"]
            row["ours"] = f"{am['ratio']:.2f}×"
            row["ours_value"] = am["ratio"]
            row["verdict"] = "supported" if am["ratio"] >= claimed else "not supported"
            fail(f"{name} at hidden {m['hidden']} ({m['params']:,.0f} params, {_fmtu(fight.primary, m['mean'])}) vs "
                 f"{am['baseline']['label']} ({am['baseline']['params']:,.0f} params, "
                 f"{_fmtu(fight.primary, am['baseline']['mean'])}), margin {_fmt_margin(fight.primary, am['margin'])}")
            continue

        miss = _missing_reason(fight, name, metric)
        if miss is None and kind in ("compare", "reduction"):
            miss = _missing_reason(fight, base, metric, "baseline")
        if miss:
            fail(miss)
            continue
        vals = fight.values("final", name, metric)

        if kind == "level":
            rng = claim.get("claimed_range")
            if rng:
                lo, hi = float(rng[0]), float(rng[1])
                target = lo if direction == "higher" else hi
            elif _num(claim.get("claimed")) is not None:
                target = float(claim["claimed"])
            else:
                fail("the claim has no claimed value")
                continue
            x = list(vals.values())
            s = summarize(x)
            row["ours"], row["ours_value"] = _ours_text(metric, s), s["mean"]
            row["verdict"] = verdict_level(target, x, direction, alpha=alpha, tolerance=float(claim.get("tolerance", 0.0)))
            p = one_sample_tests(x, target)["t_p"]
            row["p_value"], row["p"] = p, _fmt_p(p)
            row["p_note"] = f"t vs {_fmt(metric, target)}"
            if _is_fraction(metric) and abs(target) > 1:
                fail("claimed value > 1 on a fraction metric: check units")
            fail(f"n={s['n']}")
        elif kind in ("compare", "reduction"):
            bvals = fight.values("final", base, metric)
            seeds = sorted(set(vals) & set(bvals))
            if not seeds:
                fail(f"no seeds where both {name!r} and {base!r} have {metric}")
                continue
            a, b = [vals[s] for s in seeds], [bvals[s] for s in seeds]
            if kind == "compare":
                d = summarize([x - y for x, y in zip(a, b)])
                row["ours"], row["ours_value"] = "Δ " + _ours_text(metric, d, diff=True), d["mean"]
                p = paired_tests(a, b)["t_p"]
                compare_pending.append((row, a, b, p, direction))
                fail(f"{name} − {base}, paired over {len(seeds)} seeds")
            else:
                claimed = _num(claim.get("claimed"))
                if claimed is None:
                    fail("the claim has no numeric claimed reduction")
                    continue
                if any(v == 0 for v in b):
                    fail(f"{metric} of {base!r} is 0 on some seed: reduction undefined")
                    continue
                r = ratio_reduction(a, b)
                row["ours"], row["ours_value"] = _ours_text(metric, r["summary"], percent=True), r["mean"]
                row["verdict"] = verdict_level(claimed, r["per_seed"], direction, alpha=alpha,
                                               tolerance=float(claim.get("tolerance", 0.0)))
                p = one_sample_tests(r["per_seed"], claimed)["t_p"]
                row["p_value"], row["p"] = p, _fmt_p(p)
                row["p_note"] = f"t vs {100 * claimed:.1f}%"
                fail(f"1 − {name}/{base} per seed, {len(seeds)} seeds")
        else:
            fail(f"unknown claim kind {kind!r}")

    # compare claims on one metric form one Holm family
    by_metric: dict[str, list[int]] = {}
    for i, (row, *_rest) in enumerate(compare_pending):
        by_metric.setdefault(row["metric"], []).append(i)
    for metric, idx in by_metric.items():
        holm = holm_bonferroni([compare_pending[i][3] for i in idx], alpha=alpha)
        for j, i in enumerate(idx):
            row, a, b, _p, direction = compare_pending[i]
            p_adj = holm.adjusted[j]
            row["verdict"] = verdict_compare(a, b, p_adj, direction, alpha=alpha)
            row["p_value"], row["p"] = p_adj, _fmt_p(p_adj)
            row["p_note"] = f"paired t, Holm over {len(idx)}" if len(idx) > 1 else "paired t"
    return rows


# ----------------------------------------------------------------------------------------------
# plots
# ----------------------------------------------------------------------------------------------


def _plot_accuracy_vs_params(fight: Fight, path: Path) -> bool:
    import matplotlib.pyplot as plt

    from ..plots import save_figure

    pm = fight.primary
    pts = []
    for name in fight.contenders():
        rows = fight.phase("final", name)
        params = [v for v in (_num(r.get("params")) for r in rows) if v is not None and v > 0]
        s = _summ(fight.by_seed(rows, pm))
        if params and s:
            pts.append((fight.label(name), float(np.mean(params)), s))
    am = accuracy_matched(fight)
    widths = [w for w in am["widths"] if w["params"] and w["mean"] is not None]
    if not pts and not widths:
        return False
    scale = 100.0 if _is_fraction(pm) else 1.0
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for label, p, s in pts:
        ax.errorbar([p], [scale * s["mean"]], yerr=[0 if s["n"] < 2 else scale * s["std"]], fmt="o", capsize=3, label=label)
    if widths:
        ax.errorbar([w["params"] for w in widths], [scale * w["mean"] for w in widths],
                    yerr=[0 if w["n"] < 2 or w["std"] is None else scale * w["std"] for w in widths],
                    fmt="s--", color="0.3", capsize=3, label=f"{fight.label(am['contender'])} (width sweep)")
        if am["threshold"] is not None:
            ax.axhline(scale * am["threshold"], color="0.6", lw=0.8, ls=":", label="best baseline − margin")
    ax.set_xscale("log")
    ax.set_xlabel("parameters")
    ax.set_ylabel(f"{pm}{_unit(pm)}")
    ax.set_title("accuracy vs parameters (mean ± std over seeds)", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    save_figure(fig, path)
    return True


def _plot_accuracy_vs_tau(fight: Fight, path: Path) -> bool:
    import matplotlib.pyplot as plt

    from ..plots import save_figure

    pm = fight.primary
    scale = 100.0 if _is_fraction(pm) else 1.0
    pts = []
    for name in fight.contenders():
        rows = fight.phase("final", name)
        t, a = _summ(fight.by_seed(rows, "tau_input")), _summ(fight.by_seed(rows, pm))
        if t and a:
            pts.append((fight.label(name), t, a))
    if not pts:
        return False
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for label, t, a in pts:
        ax.errorbar([t["mean"]], [scale * a["mean"]], xerr=[0 if t["n"] < 2 else t["std"]],
                    yerr=[0 if a["n"] < 2 else scale * a["std"]], fmt="o", capsize=3, label=label)
    ax.set_xlabel("tau_input = p99 / mean of ||J_f(x)||_F")
    ax.set_ylabel(f"{pm}{_unit(pm)}")
    ax.set_title("accuracy vs input-gradient tail ratio (mean ± std)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    save_figure(fig, path)
    return True


def _smooth(y: np.ndarray, window: int) -> np.ndarray:
    if window <= 1 or len(y) < window:
        return y
    k = np.ones(window) / window
    return np.convolve(y, k, mode="valid")


def _plot_grad_norms(fight: Fight, path: Path) -> bool:
    import matplotlib.pyplot as plt

    from ..plots import save_figure

    traces = []
    for name in fight.contenders():
        rec = fight.seed0_run(name)
        g = np.asarray([_num(v) if _num(v) is not None else np.nan for v in (rec or {}).get("grad_norms") or []], dtype=float)
        if g.size >= 2 and np.any(np.isfinite(g) & (g > 0)):
            traces.append((fight.label(name), rec.get("seed"), g))
    if not traces:
        return False
    fig, ax = plt.subplots(figsize=(7.2, 4.4))
    for i, (label, seed, g) in enumerate(traces):
        color = f"C{i % 10}"
        steps = np.arange(g.size)
        ok = np.isfinite(g) & (g > 0)
        ax.plot(steps[ok], g[ok], color=color, lw=0.5, alpha=0.25)
        w = max(1, g.size // 100)
        gs = np.where(ok, g, np.nan)
        if w > 1 and ok.all():
            ax.plot(steps[w - 1:], _smooth(gs, w), color=color, lw=1.2, label=f"{label} (seed {seed})")
        else:
            ax.plot(steps[ok], gs[ok], color=color, lw=1.2, label=f"{label} (seed {seed})")
    ax.set_yscale("log")
    ax.set_xlabel("training step")
    ax.set_ylabel("global parameter-gradient norm")
    ax.set_title("gradient norm over training (light: raw; line: moving average)", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    save_figure(fig, path)
    return True


def _poly_sigma(layer: dict[str, Any], z: np.ndarray, max_neurons: int) -> np.ndarray | None:
    """σ(z) of a stored polynomial layer for a sample of neurons: ``[P, K]``, or None if malformed."""
    import torch

    from ..poly import horner

    try:
        coef = torch.tensor(layer["coefficients"], dtype=torch.float64)  # [D+1, F]
        R = float(layer.get("bound", 3.0))
    except (KeyError, TypeError, ValueError):
        return None
    if coef.ndim != 2 or coef.shape[0] < 1 or not torch.isfinite(coef).all():
        return None
    F = coef.shape[1]
    idx = torch.linspace(0, F - 1, min(F, max_neurons)).round().long().unique()
    coef = coef[:, idx]  # [D+1, K]
    zz = torch.as_tensor(z, dtype=torch.float64).unsqueeze(1).expand(-1, coef.shape[1])  # [P, K]
    rc = layer.get("range_control", "linear")
    if rc == "linear":
        c = zz.clamp(-R, R)  # [P, K]
        p, dp = horner(coef, c)
        y = p + dp * (zz - c)  # tangent line outside [-R, R]
    elif rc == "tanh":
        y, _ = horner(coef, R * torch.tanh(zz / R))
    else:
        y, _ = horner(coef, zz)
    return y.numpy()


def _plot_activations(fight: Fight, path: Path, max_neurons: int = 16) -> bool:
    import matplotlib.pyplot as plt
    import torch

    from ..activations import make_activation
    from ..plots import save_figure

    polys = []
    for name in fight.contenders():
        rec = fight.seed0_run(name)
        acts = (rec or {}).get("activations") or {}
        layers = [(lname, lay) for lname, lay in acts.items() if isinstance(lay, dict) and lay.get("kind") == "poly"]
        if layers:
            polys.append((fight.label(name), rec.get("seed"), layers))
    if not polys:
        return False
    ncols = max(len(layers) for _, _, layers in polys)
    fig, axes = plt.subplots(len(polys) + 1, ncols, figsize=(4.0 * ncols, 3.0 * (len(polys) + 1)), squeeze=False,
                             layout="constrained")
    R_all = []
    for r, (label, seed, layers) in enumerate(polys):
        for c in range(ncols):
            ax = axes[r][c]
            if c >= len(layers):
                ax.axis("off")
                continue
            lname, lay = layers[c]
            R = float(lay.get("bound", 3.0))
            R_all.append(R)
            z = np.linspace(-2 * R, 2 * R, 401)
            y = _poly_sigma(lay, z, max_neurons)
            if y is None:
                ax.text(0.5, 0.5, "malformed coefficients", ha="center", transform=ax.transAxes)
            else:
                ax.plot(z, y, lw=0.8, alpha=0.7)
            ax.axvspan(-R, R, color="0.92", zorder=0)
            ax.set_title(f"{label} (seed {seed}) {lname}: {lay.get('range_control', 'linear')}, "
                         f"{0 if y is None else y.shape[1]} neurons", fontsize=8)
            ax.set_xlabel("z")
            ax.set_ylabel("σ(z)")
            ax.grid(alpha=0.3)
    R = max(R_all) if R_all else 3.0
    z = torch.linspace(-2 * R, 2 * R, 401, dtype=torch.float64)
    ax = axes[-1][0]
    for name in ("relu", "gelu", "silu", "tanh"):
        ax.plot(z.numpy(), make_activation(name)(z).numpy(), lw=1.2, label=name)
    ax.axvspan(-R, R, color="0.92", zorder=0)
    ax.set_title("standard activations (reference)", fontsize=8)
    ax.set_xlabel("z")
    ax.set_ylabel("σ(z)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    for c in range(1, ncols):
        axes[-1][c].axis("off")
    fig.suptitle("learned activations (shaded: working interval [−R, R])", fontsize=10)
    save_figure(fig, path)
    return True


def _plot_lambda(fight: Fight, table: list[dict[str, Any]], path: Path) -> bool:
    import matplotlib.pyplot as plt

    from ..plots import save_figure

    if not table:
        return False
    metrics = [m for m in (fight.primary, "jacobian_fro_mean") if any(d.get(m) for d in table)]
    if not metrics:
        return False
    pos = [d for d in table if d["lambda"] > 0]
    zero = [d for d in table if d["lambda"] == 0]
    fig, axes = plt.subplots(1, len(metrics), figsize=(5.2 * len(metrics), 3.8), squeeze=False, layout="constrained")
    for ax, m in zip(axes[0], metrics):
        scale = 100.0 if _is_fraction(m) else 1.0
        pts = [(d["lambda"], d[m]) for d in pos if d.get(m)]
        if pts:
            ax.errorbar([p[0] for p in pts], [scale * p[1]["mean"] for p in pts],
                        yerr=[0 if p[1]["n"] < 2 else scale * p[1]["std"] for p in pts], fmt="o-", capsize=3)
            ax.set_xscale("log")
        for d in zero:
            if d.get(m):
                ax.axhline(scale * d[m]["mean"], color="C3", ls="--", lw=1, label="λ = 0")
        ax.axvline(_LAMBDA_MARK, color="0.5", ls=":", lw=1, label="λ = 10^-2.5")
        ax.set_xlabel("λ (DREG)")
        ax.set_ylabel(f"{m}{_unit(m)}")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    fig.suptitle(f"λ sweep: {fight.label((fight.section('lambda_sweep') or {}).get('contender', ''))}", fontsize=10)
    save_figure(fig, path)
    return True


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


def _header(fight: Fight) -> list[str]:
    name = fight.get("name", fight.folder.name)
    dataset = fight.get("dataset") or fight.base.get("dataset") or "?"
    seeds = fight.get("seeds")
    final_rows = fight.phase("final")
    seed_list = sorted({int(s) for s in (_num(r.get("seed")) for r in final_rows) if s is not None})
    L = [f"# Fair Fight: {name}", ""]
    if fight.get("description"):
        L += [str(fight.get("description")), ""]
    hidden = _protocol_value(fight, "hidden")
    L += [
        f"- **Dataset**: `{dataset}`" + (f" (target `{fight.get('target')}`)" if fight.get("target") else ""),
        f"- **Date**: {_fight_date(fight)}",
        f"- **Reference contender**: `{fight.reference}` (every other contender is compared against it, paired by seed)",
        f"- **Final seeds**: {seeds} (seeds {', '.join(map(str, seed_list)) or 'none run'})",
        f"- **Tuning**: {fight.get('trials')} trials per contender (equal budget, Optuna TPE, sampler seed "
        f"{fight.get('tune_seed')}), {fight.get('tune_epochs')} epochs per trial, selected on validation accuracy",
        f"- **Final training**: {_protocol_value(fight, 'epochs')} epochs, batch size {_protocol_value(fight, 'batch_size')}, "
        f"optimizer {_protocol_value(fight, 'optimizer')}, lr schedule {_protocol_value(fight, 'lr_schedule')}",
        f"- **Hidden widths (base)**: {list(hidden) if isinstance(hidden, (list, tuple)) else hidden}; "
        f"parameter-matched: {'yes' if fight.get('param_match') else 'no'} (mlp/kan widths solved to the reference's count ±5%)",
        f"- **Primary metric**: `{fight.primary}`; α = {fight.alpha} for every test and interval (95% CIs)",
    ]
    if fight.get("quick"):
        L.append("- **Profile**: quick (reduced seeds/trials/epochs/contenders: numbers are a smoke test, not evidence)")
    if fight.get("command"):
        L.append(f"- **Command**: `{fight.get('command')}`")
    if fight.get("source"):
        L.append(f"- **Spec file**: `{fight.get('source')}`")
    L += ["", "The test set is read only by final runs: tuning trials select hyperparameters on a validation split "
          "carved from the training set; the width and λ ablations reuse the tuned hyperparameters and are "
          "reported on test, never used for tuning."]
    leaked = [r for r in fight.phase("tune") if _num(r.get("test_accuracy")) is not None]
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
        tn = tuning.get(c["name"]) or {}
        best = tn.get("best_params")
        best_txt = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in best.items()) if best else "—"
        bva = _num(tn.get("best_val_accuracy"))
        rows.append([f"`{c['name']}`", fight.label(c["name"]), cfg_txt,
                     json.dumps(c.get("tune")) if c.get("tune") else "—", str(len(tn.get("trials") or [])),
                     best_txt, _fmt("val_accuracy", bva)])
    L.append(_md_table(["name", "label", "config", "tuned space", "trials", "best params", "best val acc (%)"], rows))
    return L


def _main_section(fight: Fight, table: list[dict[str, Any]]) -> list[str]:
    metrics = fight.main_metrics()
    L = ["", "## Main table (final runs)", "",
         f"Mean ± std over seeds; {fight.primary} also with its 95% t-interval [lo, hi]. "
         "Accuracies in %. Empty columns (not applicable) are omitted.", ""]
    header = ["contender", "hidden", "params", "runs (diverged)"] + [f"{m}{_unit(m)}" for m in metrics]
    rows = []
    for d in table:
        r = [d["label"], d["hidden"] or "—", _fmt("params", d["params"]), f"{d['runs']} ({d['diverged']})"]
        for m in metrics:
            s = None if d.get(f"{m}_n") in (None, 0) else {k: d[f"{m}_{k}"] for k in ("mean", "std", "ci_low", "ci_high", "n")}
            if s is not None:
                s = {k: (float("nan") if v is None else v) for k, v in s.items()}
            r.append(_fmt_summary(m, s, ci=(m == fight.primary)))
        rows.append(r)
    L.append(_md_table(header, rows))
    return L


def _paired_section(fight: Fight) -> tuple[list[str], dict[str, list[dict[str, Any]]]]:
    L = ["", "## Paired comparisons vs the reference", "",
         f"Each contender minus `{fight.reference}`, paired by seed. p: two-sided paired t-test and Wilcoxon "
         "signed-rank; Holm–Bonferroni over the family (all comparisons of that metric) on the paired-t p; "
         f"reject at α = {fight.alpha}."]
    n_seeds = len({r.get("seed") for r in fight.phase("final")})
    if 0 < n_seeds and 2 / 2 ** n_seeds > fight.alpha:
        L[-1] += (f" With {n_seeds} seeds the exact two-sided Wilcoxon p cannot go below 2/2^{n_seeds} = "
                  f"{2 / 2 ** n_seeds:.4g}, so only the t-test can reach significance.")
    out = {}
    for metric in (fight.primary, "jacobian_fro_mean"):
        comps = paired_comparisons(fight, metric)
        out[metric] = comps
        L += ["", f"**{metric}**{_unit(metric)}", ""]
        if not comps:
            L.append("No comparisons (no reference runs or no values).")
            continue
        rows = [[fight.label(c["contender"]), str(c["n"]), _fmt(metric, c["mean_diff"], diff=True), _fmt_p(c["t_p"]),
                 _fmt_p(c["wilcoxon_p"]), _fmt_p(c["holm_p"]), "yes" if c["reject"] else "no", c["note"] or ""]
                for c in comps]
        L.append(_md_table(["contender", "n", "mean diff", "paired t p", "Wilcoxon p", "Holm p", "reject", "note"], rows))
    return L, out


def _size_section(fight: Fight, table: list[dict[str, Any]]) -> tuple[list[str], dict[str, Any]]:
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
        rows.append([d["label"], d["model"] or "—", d["hidden"] or "—", _fmt("params", d["params"]), rel, ok])
    L.append(_md_table(["contender", "model", "hidden", "params", "Δ vs reference", "within ±5%"], rows))
    am = accuracy_matched(fight)
    L += ["", "### Accuracy-matched", ""]
    if not am["widths"]:
        L.append(f"Not run ({am['reason'] or 'no [accuracy_matched] section'}).")
        return L, am
    pm = fight.primary
    L.append(f"Width runs of {fight.label(am['contender'])} (phase \"width\"), mean {pm} over seeds; the smallest "
             f"within {_fmt_margin(pm, am['margin'])} (margin) of the best baseline's mean counts.")
    L.append("")
    def width_summary(w: dict[str, Any]) -> dict[str, Any] | None:
        if w["mean"] is None:
            return None
        return {"mean": w["mean"], "std": float("nan") if w["std"] is None else w["std"], "n": w["n"]}

    rows = [[w["hidden"], _fmt("params", w["params"]), str(w["n"]), _fmt_summary(pm, width_summary(w)),
             "← match" if am["match"] is w else ""] for w in am["widths"]]
    L.append(_md_table(["hidden", "params", "seeds", f"{pm}{_unit(pm)}", ""], rows))
    L.append("")
    b = am["baseline"]
    if b is None:
        L.append(f"No ratio: {am['reason']}.")
    else:
        L.append(f"Best baseline: {b['label']} ({_fmt('params', b['params'])} params, mean {_fmt(pm, b['mean'])}); "
                 f"threshold {_fmt(pm, am['threshold'])}.")
        if am["ratio"] is not None:
            m = am["match"]
            L.append(f"Smallest within margin: hidden {m['hidden']} ({_fmt('params', m['params'])} params, mean "
                     f"{_fmt(pm, m['mean'])}). **Parameter ratio {am['ratio']:.2f}×** (best-baseline params / its params).")
        else:
            L.append(f"No width is within the margin: {am['reason']}; no parameter ratio.")
    return L, am


def _lambda_section(fight: Fight, table: list[dict[str, Any]]) -> list[str]:
    L = ["", "## λ sweep", ""]
    if not table:
        L.append("Not run (no \"lambda\" rows in results.csv).")
        return L
    sweep = fight.section("lambda_sweep") or {}
    L.append(f"{fight.label(sweep.get('contender', ''))} at each DREG λ with its tuned hyperparameters; mean ± std over "
             "seeds. ★ marks λ = 10^-2.5 ≈ 0.00316, the follow-up paper's fixed value.")
    L.append("")
    pm = fight.primary
    rows = [[f"{d['lambda']:.4g}" + (" ★" if d["marked"] else ""), str(d["n"]),
             _fmt_summary(pm, d.get(pm)), _fmt_summary("jacobian_fro_mean", d.get("jacobian_fro_mean")),
             _fmt_summary("pgv", d.get("pgv"))] for d in table]
    L.append(_md_table(["λ", "runs", f"{pm}{_unit(pm)}", "jacobian_fro_mean", "pgv"], rows))
    return L


def _claims_section(claims: list[dict[str, Any]]) -> list[str]:
    L = ["", "## Claims", "",
         "Verdicts from `chainzrule.fight.stats`: level/reduction — the 95% interval of ours against the claimed "
         "value (a claimed range is judged at its least favourable end); compare — paired by seed, Holm-adjusted "
         "paired-t p over the compare claims of the same metric; param_ratio — the accuracy-matched ratio "
         "(no CI: supported if ≥ claimed). \"not tested\": the fight has no data for it.", ""]
    if not claims:
        L.append("The spec lists no claims.")
        return L
    rows = [[c["id"], c["text"], c["claimed"], c["ours"], f"**{c['verdict']}**",
             c["p"] + (f" ({c['p_note']})" if c["p_note"] and c["p"] != "—" else ""), c["note"]] for c in claims]
    L.append(_md_table(["id", "claim", "claimed", "ours (95% CI)", "verdict", "p", "note"], rows))
    return L


def _findings(fight: Fight, claims: list[dict[str, Any]], table: list[dict[str, Any]],
              comps: dict[str, list[dict[str, Any]]], am: dict[str, Any]) -> list[str]:
    L = ["", "## Findings", ""]
    parts = []
    if claims:
        groups: dict[str, list[str]] = {}
        for c in claims:
            groups.setdefault(c["verdict"], []).append(c["id"])
        counts = ", ".join(f"{len(groups[v])} {v} ({', '.join(groups[v])})"
                           for v in ("supported", "not supported", "inconclusive", "not tested") if v in groups)
        parts.append(f"Of {len(claims)} claims: {counts}.")
        for c in claims:
            if c["verdict"] in ("supported", "not supported"):
                parts.append(f"{c['id']}: claimed {c['claimed']}, ours {c['ours']} → {c['verdict']}.")
    pm = fight.primary
    ranked = [d for d in table if d.get(f"{pm}_mean") is not None]
    if ranked:
        best = max(ranked, key=lambda d: d[f"{pm}_mean"])
        parts.append(f"Highest mean {pm}: {best['label']} ({_fmtu(pm, best[f'{pm}_mean'])}).")
    for metric, rows in comps.items():
        sig = [r for r in rows if r["reject"]]
        if rows:
            if sig:
                pts = " points" if _is_fraction(metric) else ""
                txt = "; ".join(f"{fight.label(r['contender'])} {_fmt(metric, r['mean_diff'], diff=True)}{pts}" for r in sig)
                parts.append(f"On {metric}, after Holm, these differ significantly from {fight.label(fight.reference)}: {txt}.")
            else:
                parts.append(f"On {metric}, no contender differs significantly from {fight.label(fight.reference)} after Holm.")
    if am.get("ratio") is not None:
        parts.append(f"Accuracy-matched parameter ratio: {am['ratio']:.2f}×.")
    elif am.get("widths"):
        parts.append("No width of the accuracy-matched sweep reached the best baseline within the margin.")
    if fight.get("quick"):
        parts.append("This was a quick-profile run: treat every verdict as provisional.")
    L.append(" ".join(parts) if parts else "No final runs: nothing to report.")
    return L


def _atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", newline="") as f:
            f.write(text)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; outputs are meant to be shared and committed
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


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


def write_report(folder: str | Path) -> Path:
    """Write ``report.md``, ``summary.csv`` and ``plots/*.png`` into the fight folder; returns the
    path of report.md. ConfigError if the folder lacks results.csv or spec.json."""
    fight = load_fight(folder)
    folder = fight.folder
    table = summary_table(fight)
    lam = lambda_table(fight)
    claims = claim_rows(fight)

    L = _header(fight)
    L += _main_section(fight, table)
    paired, comps = _paired_section(fight)
    L += paired
    size, am = _size_section(fight, table)
    L += size
    L += _lambda_section(fight, lam)
    L += _claims_section(claims)

    plots_dir = folder / _PLOTS
    made = []
    for fname, title, fn in (
        ("accuracy_vs_params.png", "Accuracy vs parameters", lambda p: _plot_accuracy_vs_params(fight, p)),
        ("accuracy_vs_tau.png", "Accuracy vs tau_input", lambda p: _plot_accuracy_vs_tau(fight, p)),
        ("grad_norms.png", "Gradient-norm traces (seed-0 final runs)", lambda p: _plot_grad_norms(fight, p)),
        ("activations.png", "Learned activation shapes (seed-0 final runs)", lambda p: _plot_activations(fight, p)),
        ("lambda_sweep.png", "λ sweep", lambda p: _plot_lambda(fight, lam, p)),
    ):
        if fn(plots_dir / fname):
            made.append((fname, title))
    L += ["", "## Plots", ""]
    if not made:
        L.append("No data to plot.")
    for fname, title in made:
        L += [f"### {title}", "", f"![{title}]({_PLOTS}/{fname})", ""]
    L += _findings(fight, claims, table, comps, am)

    _atomic_write_text(folder / "summary.csv", _summary_csv(table))
    out = folder / "report.md"
    _atomic_write_text(out, "\n".join(L).rstrip() + "\n")
    return out
