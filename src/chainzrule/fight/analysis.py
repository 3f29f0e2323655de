"""Loading a Fair Fight folder and turning it into numbers: the tables and the claim verdicts.

:func:`load_fight` reads a fight folder written by the runner (``docs/FIGHT_FORMAT.md``) into a
:class:`Fight`; :func:`summary_table`, :func:`paired_comparisons`, :func:`accuracy_matched` and
:func:`lambda_table` give the report's tables as data, and :func:`claim_rows` judges every spec
claim. The display formatting shared with the markdown report (``format_value``, ``format_with_unit``, ``format_p``,
``metric_unit``, ...) lives here too. The choices made where the papers are silent are listed in
:mod:`chainzrule.fight.report`. All statistics come from :mod:`chainzrule.fight.stats`.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..config import ADV_COLUMN, ATTACKS, CHAINZRULE_MODELS
from ..errors import ConfigError, DataError
from .stats import (
    holm_bonferroni,
    one_sample_tests,
    paired_tests,
    range_position,
    ratio_reduction,
    VERDICTS,
    corrected_resampled_ttest,
    edge_of_range,
    expected_max_curve,
    failure_rate,
    noninferiority_test,
    param_ratio_bootstrap,
    summarize,
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
_ADV_RE = ADV_COLUMN
#: Columns that, with n_train/n_test, mark results.csv rows as splits of repeated CV.
_SPLIT_COLS = ("repeat", "fold")


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
            v, s = to_number(r.get(metric)), to_number(r.get("seed"))
            if v is not None and s is not None:
                acc.setdefault(int(s), []).append(v)
        return {s: float(np.mean(v)) for s, v in sorted(acc.items())}

    @property
    def resampled(self) -> bool:
        """True when the runs are repeated-CV splits: ``repeat``/``fold`` columns with values in some
        row, and ``n_train``/``n_test`` (the v2 runner writes the columns for every fight; a fight
        on the dataset's own split leaves repeat/fold empty)."""
        if not (any(c in self.columns for c in _SPLIT_COLS)
                and all(c in self.columns for c in ("n_train", "n_test"))):
            return False
        return any(str(r.get(c, "")).strip() not in ("", "None", "nan") for r in self.rows for c in _SPLIT_COLS)

    def by_split(self, rows: list[dict[str, str]], metric: str) -> dict[tuple, float]:
        """(seed, repeat, fold) → value of ``metric``; per seed (as :meth:`by_seed`) without CV columns."""
        if not self.resampled:
            return {(s,): v for s, v in self.by_seed(rows, metric).items()}
        acc: dict[tuple, list[float]] = {}
        for r in rows:
            v = to_number(r.get(metric))
            if v is not None:
                key = tuple(to_number(r.get(c)) for c in ("seed",) + _SPLIT_COLS)
                acc.setdefault(key, []).append(v)
        return {k: float(np.mean(v)) for k, v in sorted(acc.items(), key=lambda kv: [(x is None, x or 0) for x in kv[0]])}

    def split_sizes(self, rows: list[dict[str, str]]) -> tuple[float, float] | None:
        """Mean ``(n_train, n_test)`` of repeated-CV rows, or None (plain seeds: no correction)."""
        if not self.resampled:
            return None
        tr = [v for v in (to_number(r.get("n_train")) for r in rows) if v]
        te = [v for v in (to_number(r.get("n_test")) for r in rows) if v]
        return (float(np.mean(tr)), float(np.mean(te))) if tr and te else None

    def values(self, phase: str, contender: str, metric: str) -> dict[int, float]:
        return self.by_seed(self.phase(phase, contender), metric)

    def adversarial_columns(self) -> list[str]:
        cols = [c for c in self.columns if _ADV_RE.match(c)]
        return sorted(cols, key=lambda c: (ATTACKS.index(_ADV_RE.match(c).group(1)), float(_ADV_RE.match(c).group(2))))

    def main_metrics(self) -> list[str]:
        """Metric columns of the main table present in results.csv with some final value."""
        i = MAIN_METRICS.index("corruption_accuracy") + 1
        cand = list(MAIN_METRICS[:i]) + self.adversarial_columns() + list(MAIN_METRICS[i:])
        if self.primary not in cand:
            cand.insert(0, self.primary)
        finals = self.phase("final")
        return [m for m in cand if m in self.columns and any(to_number(r.get(m)) is not None for r in finals)]

    def seed0_run(self, contender: str, phase: str = "final") -> dict[str, Any] | None:
        """The run record of the contender's lowest seed (seed 0 when present) in ``phase``."""
        cands = [r for r in self.runs if r.get("phase") == phase and r.get("contender") == contender]
        if not cands:
            return None
        return min(cands, key=lambda r: (r.get("seed") is None, r.get("seed") or 0))


def to_number(cell: Any) -> float | None:
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


def is_fraction(metric: str) -> bool:
    return metric in _FRACTION_METRICS or bool(_ADV_RE.match(metric))


def format_value(metric: str, v: float | None, *, diff: bool = False) -> str:
    """One number of ``metric`` in its display unit (accuracies in %, diffs in points)."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    if is_fraction(metric):
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


def format_with_unit(metric: str, v: float | None) -> str:
    """:func:`format_value` with the unit: ``96.38%`` for fraction metrics."""
    return format_value(metric, v) + ("%" if is_fraction(metric) and v is not None else "")


def format_margin(metric: str, margin: float) -> str:
    return f"{100 * margin:.2f} points" if is_fraction(metric) else format_value(metric, margin)


def metric_unit(metric: str) -> str:
    return " (%)" if is_fraction(metric) else ""


def format_p(p: float | None) -> str:
    if p is None or math.isnan(p):
        return "—"
    return "<0.0001" if p < 1e-4 else f"{p:.4f}"


def summary_of(values: dict[int, float] | list[float]) -> dict[str, Any] | None:
    vals = list(values.values()) if isinstance(values, dict) else list(values)
    return summarize(vals) if vals else None


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
    ``<metric>_ci_low``, ``<metric>_ci_high`` (95% t-interval over seeds) and ``<metric>_n``;
    ``None`` where the metric has no value (not applicable). Values are in results.csv units
    (accuracies as fractions).
    """
    fight = _as_fight(folder)
    metrics = fight.main_metrics()
    finals = fight.phase("final")
    metrics += [m for m in EXTRA_METRICS if m in fight.columns and m not in metrics
                and any(to_number(r.get(m)) is not None for r in finals)]
    out = []
    for name in fight.contenders():
        rows = fight.phase("final", name)
        first = rows[0]
        params = [v for v in (to_number(r.get("params")) for r in rows) if v is not None]
        d: dict[str, Any] = {
            "contender": name,
            "label": fight.label(name),
            "model": first.get("model") or None,
            "activation": first.get("activation") or None,
            "hidden": first.get("hidden") or None,
            "runs": len(rows),
            "diverged": sum(_truthy(r.get("diverged")) for r in rows),
            "params": float(np.mean(params)) if params else None,
            **_failures(fight, rows),
        }
        for m in metrics:
            s = summary_of(fight.by_seed(rows, m))
            for k in ("mean", "std", "ci_low", "ci_high", "n"):
                v = s[k] if s else None
                d[f"{m}_{k}"] = None if isinstance(v, float) and math.isnan(v) else v
        out.append(d)
    return out


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
        s = summary_of(fight.by_seed(rs, fight.primary))
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
        s = summary_of(fight.by_seed(rows, fight.primary))
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


def _lambda_of(row: dict[str, str]) -> float | None:
    lam = to_number(row.get("dreg"))
    if lam is None and row.get("model") in CHAINZRULE_MODELS:
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
            d[m] = summary_of(fight.by_seed(rs, m)) if m in fight.columns else None
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


def _claim_values(ctx: _ClaimCtx, name: str, metric: str) -> tuple[list[float], tuple[float, float] | None]:
    """Per-split values of ``name`` (per seed without resampling) and the split sizes or None."""
    rows = ctx.fight.phase("final", name)
    vals = ctx.fight.by_split(rows, metric)
    return list(vals.values()), ctx.fight.split_sizes(rows)


def _claim_pairs(ctx: _ClaimCtx, row: dict[str, Any], name: str, base: str, metric: str):
    """Paired values ``(a, b, sizes)`` of contender and baseline (None after noting why not)."""
    f = ctx.fight
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
    conf = 1.0 - alpha if confidence is None else confidence
    if sizes is None:
        return summarize(values, confidence=conf)
    r = corrected_resampled_ttest(values, sizes[0], sizes[1], confidence=conf)
    return {"mean": r["mean_diff"], "n": r["n"], "ci_low": r["ci_low"], "ci_high": r["ci_high"]}


def _claim_level(ctx: _ClaimCtx, claim: dict[str, Any], row: dict[str, Any]) -> None:
    metric, direction = row["metric"], claim.get("direction", "higher")
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
        else:
            row["p_note"] = f"t vs strict end {format_value(metric, r['target'])}"
    elif to_number(claim.get("claimed")) is not None:
        target = float(claim["claimed"])
        if sizes:
            r = corrected_resampled_ttest(x, n_tr, n_te, null=target, confidence=1.0 - ctx.alpha)
            row["verdict"] = verdict_interval(r["ci_low"], r["ci_high"], target, direction, _tolerance(claim))
            p = r["p_value"]
        else:
            row["verdict"] = verdict_level(target, x, direction, alpha=ctx.alpha, tolerance=_tolerance(claim))
            p = one_sample_tests(x, target)["t_p"]
        row["p_note"] = ("corrected t" if sizes else "t") + f" vs {format_value(metric, target)}"
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
    row["ours"], row["ours_value"] = "Δ " + _ours_text(metric, d, diff=True), r["mean_diff"]
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
    if sizes:
        t = corrected_resampled_ttest(r["per_seed"], sizes[0], sizes[1], null=claimed, confidence=1.0 - ctx.alpha)
        row["verdict"], p = verdict_interval(t["ci_low"], t["ci_high"], claimed, direction, _tolerance(claim)), t["p_value"]
    else:
        row["verdict"] = verdict_level(claimed, r["per_seed"], direction, alpha=ctx.alpha, tolerance=_tolerance(claim))
        p = one_sample_tests(r["per_seed"], claimed)["t_p"]
    row["p_value"], row["p"] = p, format_p(p)
    row["p_note"] = f"{'corrected ' if sizes else ''}t vs {100 * claimed:.1f}%"
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
    row["verdict"] = "supported" if am["ratio"] >= claimed else "not supported"
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
    notes = [n for n in (r["note_base"], r["note_cr"]) if n]
    _fail(row, f"{sv['contender']} vs {sv['baseline']} width sweeps on validation accuracy, target "
               f"{format_with_unit('val_accuracy', r['target'])} (best baseline width − {format_margin('val_accuracy', sv['margin'])}), "
               f"seed bootstrap ({r['n_boot']})" + (f"; {'; '.join(notes)}" if notes else ""))


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
    "not comparable" (the spec's ``not_comparable`` reason, our value still shown), "not tested"
    (the reason in ``note``), or :data:`PREVIEW` for every judged row of a quick-profile run.

    Per kind: ``level`` — the interval against the claimed value, a ``claimed_range`` by TOST
    (``rule = "equivalence"``, the default) or at its strict end (``rule = "strict-end"``);
    ``compare`` — paired superiority (a ``margin`` makes it ``noninferior``); ``noninferior`` —
    one-sided paired test against ``−margin``; ``reduction`` — per-seed ``1 − A/B`` against the
    claimed share; ``param_ratio`` — the accuracy-matched ratio. ``tolerance`` widens level,
    range and reduction claims. With ``repeat``/``fold`` and ``n_train``/``n_test`` columns
    (repeated CV) every test uses the Nadeau–Bengio corrected variance.
    """
    fight = _as_fight(folder)
    ctx = _ClaimCtx(fight, fight.alpha)
    rows: list[dict[str, Any]] = []
    for claim in fight.claims:
        kind = claim.get("kind")
        metric = claim.get("metric") or fight.primary
        metric = fight.primary if metric == "accuracy" else metric
        row = _claim_row(claim, metric)
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
    lam = to_number(cfg.get("dreg"))
    if lam is None and model in CHAINZRULE_MODELS:
        from ..config import DEFAULT_CHAINZRULE_DREG

        lam = float(DEFAULT_CHAINZRULE_DREG)
    lam = lam or 0.0
    return family, ("DREG" if lam > 0 else "no DREG"), lam


def attribution_table(fight: Fight) -> dict[str, Any]:
    """The (ReLU, GELU, ChainzRule) × (no DREG, DREG) attribution on the primary metric, paired.

    Cells are contenders identified by their configs (:func:`_attribution_cell`; the first with
    final runs, in spec order, when several fit). Comparisons, each ``a − b`` paired by seed (by
    split under repeated CV, with the corrected variance), Holm over the family: the polynomial
    against ReLU and GELU at each matched DREG setting, and DREG against none within each
    activation.

    Returns ``{"cells": {(family, setting): {"contender", "label", "lambda", "summary"}},
    "comparisons": [{"what", "a", "b", "n", "mean_diff", "ci_low", "ci_high", "p", "holm_p"}],
    "missing": [(family, setting)], "lambda_note", "reason"}``; ``reason`` is non-empty (and
    there are no comparisons) when the spec lacks the cells to make any.
    """
    metric = fight.primary
    cells: dict[tuple[str, str], dict[str, Any]] = {}
    for name in fight.contenders():
        cell = _attribution_cell(fight, name)
        if cell is None or cell[:2] in cells or not fight.values("final", name, metric):
            continue
        cells[cell[:2]] = {"contender": name, "label": fight.label(name), "lambda": cell[2],
                           "summary": summary_of(fight.by_seed(fight.phase("final", name), metric))}
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
    lams = sorted({round(c["lambda"], 12) for (f, d), c in cells.items() if d == "DREG"})
    lambda_note = "" if len(lams) <= 1 else ("DREG cells use different λ (" + ", ".join(
        f"{f} {c['lambda']:g}" for (f, d), c in cells.items() if d == "DREG") + "): not matched")
    reason = "" if comps else ("the spec lacks the cells: " + ", ".join(f"{f} ({d})" for f, d in missing)
                               if missing else "fewer than 2 paired seeds in every comparison")
    return {"cells": cells, "comparisons": comps, "missing": missing, "lambda_note": lambda_note, "reason": reason}


# ----------------------------------------------------------------------------------------------
# tuning: optima on the edge of their range, expected best validation vs trials
# ----------------------------------------------------------------------------------------------


def _numeric_space(space: Any) -> tuple[float, float, bool] | None:
    """``(low, high, log)`` of a ``[low, high, "log"|"linear"]`` tune entry; None for choices."""
    if isinstance(space, (list, tuple)) and len(space) in (2, 3):
        lo, hi = to_number(space[0]), to_number(space[1])
        log = len(space) == 3 and str(space[2]).lower() == "log"
        if lo is not None and hi is not None and lo < hi and (not log or lo > 0):
            return lo, hi, log
    return None


def tuning_edges(fight: Fight, share: float = 0.1) -> list[dict[str, Any]]:
    """Every tuned optimum (``tuning.json`` best_params) against its search space (spec.json
    contenders' ``tune``): ``{"contender", "param", "value", "low", "high", "log", "position",
    "edge"}`` per numeric hyperparameter; ``edge`` from :func:`~.stats.edge_of_range` (outer
    ``share`` of the range, in log space for log ranges). Choices and values outside their range
    (a widened range not recorded in the spec) get ``position`` None and ``edge`` None."""
    out = []
    tuning = fight.tuning or {}
    for c in fight.spec_contenders:
        best = (tuning.get(c["name"]) or {}).get("best_params") or {}
        for param, space in (c.get("tune") or {}).items():
            rng, v = _numeric_space(space), to_number(best.get(param))
            if rng is None or v is None:
                continue
            lo, hi, log = rng
            inside = lo <= v <= hi
            out.append({"contender": c["name"], "param": param, "value": v, "low": lo, "high": hi, "log": log,
                        "position": range_position(v, lo, hi, log) if inside else None,
                        "edge": edge_of_range(v, lo, hi, log, share) if inside else None})
    return out


def expected_max_curves(fight: Fight) -> dict[str, dict[str, list]]:
    """Contender → :func:`~.stats.expected_max_curve` of its tuning trials' validation scores
    (``k = 1 … n`` completed trials; pruned or failed trials without a finite score are left out)."""
    out = {}
    for name, tn in (fight.tuning or {}).items():
        trials = (tn or {}).get("trials") if isinstance(tn, dict) else None
        scores = [v for v in (to_number((t or {}).get("val_accuracy")) for t in trials or [] if isinstance(t, dict))
                  if v is not None]
        if scores:
            out[name] = expected_max_curve(scores)
    return out


# ----------------------------------------------------------------------------------------------
# size view without test leakage: width sweeps of both families, ratio at equal accuracy
# ----------------------------------------------------------------------------------------------


def _sweep(fight: Fight, contender: str, metric: str) -> tuple[list[float], list[list[float]], list[str]]:
    """A contender's "width" rows: params per width, per-seed ``metric`` per width, hidden labels
    (widths without a parameter count or any value are left out)."""
    groups: dict[str, list[dict[str, str]]] = {}
    for r in fight.phase("width", contender):
        groups.setdefault(r.get("hidden") or "?", []).append(r)
    params, accs, hidden = [], [], []
    for h, rs in groups.items():
        p = [v for v in (to_number(r.get("params")) for r in rs) if v]
        vals = list(fight.by_seed(rs, metric).values())
        if p and vals:
            params.append(float(np.mean(p)))
            accs.append(vals)
            hidden.append(h)
    return params, accs, hidden


def size_view(fight: Fight, claimed: float | None = None, n_boot: int = 2000) -> dict[str, Any]:
    """The accuracy-matched view from validation-tuned width sweeps of both families.

    Reads "width" rows (``contender, hidden, params, seed, val_accuracy, test_accuracy``; each
    width trained with its family's tuned hyperparameters, the baseline family picked by the runner
    on tuned validation accuracy from ``[accuracy_matched] baselines``) of the ``[accuracy_matched]``
    contender and of the baseline family (every other contender with width rows; with several, the
    one whose best width has the highest mean *validation* accuracy). The target is the best baseline width's
    validation mean minus the section's ``margin``, and the ratio ``params_base / params_cr``
    where the two validation curves reach it, with a seed-bootstrap interval
    (:func:`~.stats.param_ratio_bootstrap`, the best-width choice redone in every resample):
    no width and no baseline is chosen on the test set. The same ratio on the test curves, at
    the test mean of that validation-chosen baseline width minus the margin, is given for
    reference (``test``).

    Returns ``{"contender", "baseline", "margin", "val": bootstrap dict | None, "test": ... |
    None, "sweeps": {name: {"params", "val", "test", "hidden"}}, "reason"}``.
    """
    acc = fight.section("accuracy_matched") or {}
    cr = acc.get("contender")
    margin = float(acc.get("margin", 0.005))
    out: dict[str, Any] = {"contender": cr, "baseline": None, "margin": margin, "val": None, "test": None,
                           "sweeps": {}, "reason": ""}
    if "val_accuracy" not in fight.columns or not fight.phase("width"):
        out["reason"] = "no width rows with val_accuracy in results.csv"
        return out
    names = list(dict.fromkeys(r.get("contender") for r in fight.phase("width")))
    cr = cr or names[0]
    out["contender"] = cr
    for n in names:
        p, v, h = _sweep(fight, n, "val_accuracy")
        pt, t, _ = _sweep(fight, n, fight.primary)
        if len(p) >= 2:
            out["sweeps"][n] = {"params": p, "val": v, "hidden": h, "test": t if pt == p else None}
    bases = [n for n in out["sweeps"] if n != cr]
    if cr not in out["sweeps"] or not bases:
        out["reason"] = (f"width sweeps (≥ 2 widths with val_accuracy) of {cr!r} and of a baseline family are "
                         f"needed; have {sorted(out['sweeps']) or 'none'}")
        return out
    base = max(bases, key=lambda n: max(np.mean(v) for v in out["sweeps"][n]["val"]))
    out["baseline"] = base
    sb, sc = out["sweeps"][base], out["sweeps"][cr]
    try:
        out["val"] = param_ratio_bootstrap(sb["params"], sb["val"], sc["params"], sc["val"], margin=margin, n_boot=n_boot)
        if sb["test"] is not None and sc["test"] is not None:
            j = int(np.argmax([np.mean(v) for v in sb["val"]]))
            out["test"] = param_ratio_bootstrap(sb["params"], sb["test"], sc["params"], sc["test"],
                                                target=float(np.mean(sb["test"][j])) - margin, n_boot=n_boot)
    except (ValueError, DataError) as e:
        out["reason"] = str(e)
    return out
