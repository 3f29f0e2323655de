"""Loading a Fair Fight folder and turning it into numbers: the tables and the claim verdicts.

:func:`load_fight` reads a fight folder written by the runner (``docs/FIGHT_FORMAT.md``) into a
:class:`Fight`; :func:`summary_table`, :func:`paired_comparisons`, :func:`accuracy_matched` and
:func:`lambda_table` give the report's tables as data, and :func:`claim_rows` judges every spec
claim. The display formatting shared with the markdown report (``_fmt``, ``_fmtu``, ``_fmt_p``,
``_unit``, ...) lives here too. The choices made where the papers are silent are listed in
:mod:`chainzrule.fight.report`. All statistics come from :mod:`chainzrule.fight.stats`.
"""

from __future__ import annotations

import csv
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, DataError
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
    "MAIN_METRICS",
    "EXTRA_METRICS",
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


def _read_results(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """Header and rows of a results.csv; DataError for a file that is not one (binary, garbled)."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            rows = [dict(r) for r in reader]
            columns = list(reader.fieldnames or [])
    except (UnicodeDecodeError, csv.Error) as e:
        raise DataError(f"{path} is not a readable results.csv (expected UTF-8 CSV text: {e})") from None
    except OSError as e:
        raise DataError(f"{path} cannot be read: {e.strerror or e}") from None
    for need in ("phase", "contender", "seed"):
        if need not in columns:
            raise ConfigError(f"{path}: expected a {need!r} column, got {', '.join(map(repr, columns[:8])) or 'no header'}")
    bad = [i + 2 for i, r in enumerate(rows) if None in r or any(v is None for v in r.values())]
    if bad:
        raise DataError(f"{path}: line(s) {', '.join(map(str, bad[:5]))} do not have the header's "
                        f"{len(columns)} fields: the file is truncated or garbled")
    return columns, rows


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
    columns, rows = _read_results(folder / "results.csv")
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


def _fmt_p(p: float | None) -> str:
    if p is None or math.isnan(p):
        return "—"
    return "<0.0001" if p < 1e-4 else f"{p:.4f}"


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
