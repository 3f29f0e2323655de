"""Stability-map audit: the committed maps (``results/stability-mnist``, ``results/stability-mnist-long``)
recomputed from their run files with numpy/pandas and the documented definitions — not with
:mod:`chainzrule.fight.stability` — and checked against ``stability.csv``, ``summary.csv``,
``report.md``, the heatmaps' data and the issue-7 numbers that docs/engine.md §5 quotes.

Definitions (docs/FIGHT_FORMAT.md, the stability module's docstring, guide §3): per run, over the
whole gradient-norm trace ``G_1..G_T`` (``runs/<key>.json``'s ``grad_norms``, every step):
``max G``, ``median G``, their ratio; unstable = a non-finite G, training loss or test accuracy, or
``max G > unstable_ratio · median G``; PGV = ``max_t |G_t − G_{t−1}| / mean_t G_t``. Per cell:
mean and sample std (ddof = 1) of the test accuracy over seeds, mean PGV, the largest max G,
unstable count and share. A change to the code that moves any committed number fails here.
"""

from __future__ import annotations

import json
import math
import re
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
MAPS = ("stability-mnist", "stability-mnist-long")
LAM25 = 10 ** -2.5


@lru_cache(maxsize=None)
def _spec(name: str) -> dict:
    return json.loads((ROOT / "results" / name / "spec.json").read_text())


@lru_cache(maxsize=None)
def _runs(name: str) -> pd.DataFrame:
    """One row per run file, every statistic computed here from the trace."""
    ratio_limit = _spec(name)["unstable_ratio"]
    rows = []
    for path in sorted((ROOT / "results" / name / "runs").glob("*.json")):
        rec = json.loads(path.read_text())
        g = np.asarray(rec["grad_norms"], dtype=np.float64)  # [T]
        fin = g[np.isfinite(g)]
        res = rec["result"]
        acc, losses = res["test"]["accuracy"], res["history"]["train_loss"]
        g_max, g_med = fin.max(), np.median(fin)
        broken = not math.isfinite(acc) or not all(math.isfinite(v) for v in losses)
        rows.append({"key": path.stem, "contender": rec["contender"], "lr": rec["config"]["lr"],
                     "lambda": rec["config"]["dreg"], "seed": rec["seed"], "steps": len(g),
                     "test_accuracy": acc, "val_accuracy": res["val"]["accuracy"],
                     "grad_norm_max": g_max, "grad_norm_median": g_med, "grad_norm_ratio": g_max / g_med,
                     "nonfinite_steps": int(g.size - fin.size),
                     "unstable": bool(fin.size < g.size or g_max > ratio_limit * g_med or broken),
                     "pgv": np.abs(np.diff(g)).max() / g.mean()})
    return pd.DataFrame(rows)


@lru_cache(maxsize=None)
def _cells(name: str) -> pd.DataFrame:
    by = _runs(name).groupby(["contender", "lr", "lambda"], sort=False)
    return pd.DataFrame({
        "seeds": by.size(), "accuracy_mean": by.test_accuracy.mean(),
        "accuracy_std": by.test_accuracy.std(ddof=1),  # NaN for a one-seed cell (the csv's empty field)
        "val_accuracy_mean": by.val_accuracy.mean(), "pgv_mean": by.pgv.mean(),
        "grad_norm_max": by.grad_norm_max.max(), "grad_norm_ratio_max": by.grad_norm_ratio.max(),
        "unstable_runs": by.unstable.sum(), "unstable_share": by.unstable.mean()}).reset_index()


def _cell(name: str, c: str, lr: float, lam: float) -> pd.Series:
    d = _cells(name)
    r = d[(d.contender == c) & np.isclose(d.lr, lr) & np.isclose(d["lambda"], lam)]
    assert len(r) == 1, (c, lr, lam)
    return r.iloc[0]


@pytest.mark.parametrize("name", MAPS)
def test_every_run_row_is_recomputed_from_its_trace(name):
    mine = _runs(name)
    csv = pd.read_csv(ROOT / "results" / name / "stability.csv")
    spec = _spec(name)
    n_runs = len(spec["lrs"]) * len(spec["lambdas"]) * sum(c["seeds"] for c in spec["contenders"])
    assert len(mine) == len(csv) == n_runs
    m = csv.merge(mine, on="key", suffixes=("", "_mine"), validate="one_to_one")
    assert len(m) == len(csv)
    for col in ("contender", "lr", "lambda", "seed", "unstable", "nonfinite_steps"):
        assert (m[col] == m[f"{col}_mine"]).all(), col
    assert (m.steps == m.steps_mine).all()  # PGV and the ratio read every step of the run
    for col in ("test_accuracy", "val_accuracy", "grad_norm_max", "grad_norm_median", "grad_norm_ratio", "pgv"):
        np.testing.assert_allclose(m[col], m[f"{col}_mine"], rtol=1e-12, atol=0, err_msg=col)


@pytest.mark.parametrize("name", MAPS)
def test_every_cell_is_recomputed_from_its_runs(name):
    mine = _cells(name)
    csv = pd.read_csv(ROOT / "results" / name / "summary.csv")
    m = csv.merge(mine, on=["contender", "lr", "lambda"], suffixes=("", "_mine"), validate="one_to_one")
    assert len(m) == len(csv) == len(mine)
    for col in ("seeds", "unstable_runs"):
        assert (m[col] == m[f"{col}_mine"]).all(), col
    for col in ("accuracy_mean", "accuracy_std", "val_accuracy_mean", "pgv_mean", "grad_norm_max",
                "grad_norm_ratio_max", "unstable_share"):
        np.testing.assert_allclose(m[col], m[f"{col}_mine"], rtol=1e-12, atol=1e-15, err_msg=col)
    assert m.accuracy_std.isna().sum() == (m.seeds == 1).sum()  # one seed: no std, not 0


def _table(report: str, title: str) -> list[list[str]]:
    section = re.search(rf"^#+ {re.escape(title)}.*?\n(.*?)(?=^#)", report + "\n#", re.S | re.M).group(1)
    lines = [ln for ln in section.splitlines() if ln.startswith("|")][2:]
    return [[c.strip() for c in ln.strip("|").split("|")] for ln in lines]


def _acc(r: pd.Series) -> str:
    return f"{100 * r.accuracy_mean:.2f}" + ("" if r.seeds < 2 else f" ± {100 * r.accuracy_std:.2f}")


@pytest.mark.parametrize("name", MAPS)
def test_report_tables_are_the_recomputed_cells(name):
    spec, report = _spec(name), (ROOT / "results" / name / "report.md").read_text()
    label = {c["label"]: c["name"] for c in spec["contenders"]}
    formats = {"Test accuracy": _acc, "PGV, mean": lambda r: f"{r.pgv_mean:.3g}",
               "Maximum gradient norm": lambda r: f"{r.grad_norm_max:.3g}",
               "Unstable seeds": lambda r: f"{r.unstable_runs}/{r.seeds}"}
    for title, fmt in formats.items():
        rows = _table(report, title)
        assert len(rows) == len(spec["contenders"]) * len(spec["lrs"])
        for row in rows:
            assert row[2:] == [fmt(_cell(name, label[row[0]], float(row[1]), lam)) for lam in spec["lambdas"]], row
    assert len(_table(report, "Unstable runs")) == _runs(name).unstable.sum()
    cells = _cells(name)
    for row in _table(report, "At a glance"):
        c = label[row[0]]
        runs, mine = _runs(name)[lambda d: d.contender == c], cells[cells.contender == c]
        safe = None
        for lr in sorted(spec["lrs"]):  # the largest lr up to which every cell has no unstable seed
            if mine[np.isclose(mine.lr, lr)].unstable_runs.sum():
                break
            safe = lr
        best = mine.loc[mine.accuracy_mean.idxmax()]
        lam = "0" if best["lambda"] == 0 else f"{best['lambda']:.3g}"
        assert row[1:] == [f"{runs.unstable.sum()}/{len(runs)}", "none" if safe is None else f"{safe:g}",
                           f"{_acc(best)} at lr {best.lr:g}, λ {lam}"], row


@pytest.mark.parametrize("name", MAPS)
def test_heatmaps_draw_the_recomputed_cells(name):
    """Each heatmap pixel block is ``_grid``'s value for (contender, lr, λ), looked up in summary.csv
    by the spec's grid floats: every cell is found (no "n/a") and equals the recomputed one."""
    from chainzrule.fight.stability_figures import HEATMAPS, _grid
    from chainzrule.fight.stability_spec import load_stability_spec

    spec = load_stability_spec(ROOT / "fights" / f"{name}.toml")
    assert (spec.lrs, spec.lambdas) == (_spec(name)["lrs"], _spec(name)["lambdas"])
    summary = pd.read_csv(ROOT / "results" / name / "summary.csv").to_dict("records")
    cells = {(r["contender"], r["lr"], r["lambda"]): r for r in summary}
    for h in HEATMAPS:
        assert (ROOT / "results" / name / f"heatmap_{h.name}.png").stat().st_size > 0
        for c in spec.contenders:
            grid = _grid(spec, cells, c.name, h.column)  # [n_lrs, n_lambdas]
            scale = 100.0 if h.column == "accuracy_mean" else 1.0
            want = [[scale * _cell(name, c.name, lr, lam)[h.column] for lam in spec.lambdas] for lr in spec.lrs]
            np.testing.assert_allclose(grid, want, rtol=1e-12, err_msg=f"{h.name} {c.name}")


def _pgv_vs(name, c, base, lrs, lams, base_lam=None):
    """Cells (lr, λ) where ``c``'s mean PGV is at or below ``base``'s at the same lr and λ (or at
    ``base_lam``)."""
    return sum(_cell(name, c, lr, lam).pgv_mean <= _cell(name, base, lr, lam if base_lam is None else base_lam).pgv_mean
               for lr in lrs for lam in lams)


def _gap(name, c, lr):
    d = _cells(name)
    d = d[(d.contender == c) & np.isclose(d.lr, lr)]
    return 100 * (d.accuracy_mean.max() - _cell(name, c, lr, LAM25).accuracy_mean)


def test_issue7_numbers_quoted_in_the_docs():
    """docs/engine.md §5 against the committed maps: each recomputed number, formatted as quoted."""
    engine = (ROOT / "docs" / "engine.md").read_text()
    m, lo = "stability-mnist", (1e-3, 3e-3, 1e-2)
    lams, dreg, small = _spec(m)["lambdas"], _spec(m)["lambdas"][1:], [v for v in _spec(m)["lambdas"] if v <= LAM25]
    runs = _runs(m)

    def three(values, spec=".2f"):
        return " / ".join(format(v, spec) for v in values)

    # unstable runs at lr ≤ 1e-2 (of 45) and at lr 3e-2 (of 15); PGV without DREG at lr 1e-3 / 3e-3 / 1e-2;
    # cells at lr ≤ 1e-2 (of 15) with a mean PGV at or below ReLU (+ DREG)'s at the same lr and λ
    quoted = {"cr": (0, 15, "2.74 / 3.37 / 3.73", 4), "relu": (0, 0, "1.83 / 2.46 / 2.59", 15),
              "cr-tanh": (0, 14, "1.31 / 1.64 / 1.58", 12), "cr-r2": (0, 15, "2.86 / 3.84 / 3.43", 5),
              "cr-r5": (0, 14, "2.29 / 3.95 / 4.28", 0), "cr-r8": (9, 7, "2.16 / 3.78 / 5.94", 0),
              "gelu": (0, 0, "2.57 / 4.10 / 3.61", 7)}
    for c, (unstable_lo, unstable_hi, pgv, below) in quoted.items():
        r = runs[runs.contender == c]
        assert (r[r.lr <= 1e-2].unstable.sum(), r[r.lr == 3e-2].unstable.sum()) == (unstable_lo, unstable_hi), c
        assert three(_cell(m, c, lr, 0.0).pgv_mean for lr in lo) == pgv and pgv in engine, c
        assert _pgv_vs(m, c, "relu", lo, lams) == below, c
    assert _pgv_vs(m, "cr", "relu", lo, dreg) == 4 and _pgv_vs(m, "cr-tanh", "relu", lo, small) == 9
    assert _pgv_vs(m, "cr", "relu", lo, dreg, base_lam=0.0) == 8  # the other reading: against the plain ReLU MLP
    ratios = [_cell(m, "cr", lr, 0.0).pgv_mean / _cell(m, "relu", lr, 0.0).pgv_mean for lr in lo]
    assert f"{min(ratios):.2f}–{max(ratios):.2f}×" == "1.37–1.49×" and "1.37–1.49×" in engine
    # the λ gap (best λ's mean minus λ = 10^-2.5's), per lr
    for c, text in (("cr", "0.28 / 0.38 / 0.67"), ("cr-tanh", "0.90 / 0.68 / 0.23"), ("cr-r2", "0.34 / 0.40 / 0.38"),
                    ("cr-r5", "0.39 / 0.49 / 0.69"), ("cr-r8", "1.13 / 1.08 / 0.67"), ("relu", "0.96 / 0.79 / 0.82")):
        assert three(_gap(m, c, lr) for lr in lo) == text, c
    assert f"{_gap(m, 'cr', 3e-2):.2f}" == "3.94" and f"{_gap(m, 'gelu', 1e-2):.2f}" == "1.44"
    cr = runs[runs.contender == "cr"]
    assert f"{cr[cr.lr <= 1e-2].grad_norm_ratio.max():.1f}" == "9.6"
    assert [f"{v:.0f}" for v in cr[cr.lr == 3e-2].grad_norm_ratio.agg(["min", "max"])] == ["60", "426"]
    power = _cells(m)[lambda d: (d.contender == "cr-power") & np.isclose(d.lr, 1e-2)]
    assert (power.unstable_runs > 0).sum() == 4 and round(power.grad_norm_max.max(), -2) == 7500
    # the long map: 12 epochs at lr 1e-2
    long_ = "stability-mnist-long"
    for c, accs, gap, pgv in (("cr", "98.40 ± 0.10 | 98.31 ± 0.06 | 98.06 ± 0.02", "0.35", "4.63 / 2.82 / 2.94"),
                              ("relu", "98.28 ± 0.04 | 98.21 ± 0.07 | 97.69 ± 0.16", "0.59", "3.53 / 2.60 / 1.88")):
        assert " | ".join(_acc(_cell(long_, c, 1e-2, lam)) for lam in _spec(long_)["lambdas"]) == accs
        assert f"{_gap(long_, c, 1e-2):.2f}" == gap and three(
            _cell(long_, c, 1e-2, lam).pgv_mean for lam in _spec(long_)["lambdas"]) == pgv and pgv in engine
    assert _runs(long_).unstable.sum() == 0


@pytest.mark.parametrize("name", MAPS)
def test_the_code_rewrites_the_committed_outputs_from_the_runs(name, tmp_path):
    """What ``write_outputs`` would write from the stored runs (no training, no data): the committed
    stability.csv, summary.csv and report.md, byte for byte. So a change to the code that moves a
    committed number fails here, and the checks above say which number is right."""
    from chainzrule.fight.runner import write_results_csv
    from chainzrule.fight.stability import run_row, summarize
    from chainzrule.fight.stability_figures import HEATMAPS
    from chainzrule.fight.stability_report import render_report
    from chainzrule.fight.stability_spec import StabilityContender, StabilitySpec

    raw = {k: v for k, v in _spec(name).items() if k != "data"}
    spec = StabilitySpec(**{**raw, "contenders": [StabilityContender(**c) for c in raw["contenders"]]})
    labels, order = {c.name: c.label for c in spec.contenders}, [c.name for c in spec.contenders]
    recs = [json.loads(p.read_text()) for p in sorted((ROOT / "results" / name / "runs").glob("*.json"))]
    rows = sorted((run_row(r, labels[r["contender"]], spec.unstable_ratio) for r in recs),
                  key=lambda r: (order.index(r["contender"]), r["lr"], r["lambda"], r["seed"]))
    summary = summarize(rows)
    write_results_csv(tmp_path / "stability.csv", rows)
    write_results_csv(tmp_path / "summary.csv", summary)
    (tmp_path / "report.md").write_text(
        render_report(spec, rows, summary, {h.name: Path(f"heatmap_{h.name}.png") for h in HEATMAPS}))
    for f in ("stability.csv", "summary.csv", "report.md"):
        assert (tmp_path / f).read_text() == (ROOT / "results" / name / f).read_text(), f
