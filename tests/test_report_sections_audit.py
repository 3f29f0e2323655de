"""Report sections audit (2026-12-03): the Tuning, λ sweep and attribution sections of committed
fights, recomputed from their results.csv / tuning.json / spec.json with pandas and numpy alone,
against report.md; and the attribution's DREG cell is its no-DREG cell's twin but for λ."""

import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from chainzrule.fight.report import load_fight
from chainzrule.fight.views import attribution_table

RESULTS = Path(__file__).resolve().parents[1] / "results"


def _section(name: str, head: str) -> str:
    text = (RESULTS / name / "report.md").read_text()
    return text.split(f"\n## {head}\n", 1)[1].split("\n## ", 1)[0]


def _table(sec: str, first: str) -> list[dict[str, str]]:
    lines = sec.splitlines()
    i = next(i for i, line in enumerate(lines) if line.startswith(f"| {first} |"))
    hdr = [c.strip() for c in lines[i].strip("|").split("|")]
    rows = []
    for line in lines[i + 2:]:
        if not line.startswith("|"):
            break
        rows.append(dict(zip(hdr, [c.strip() for c in line.strip()[1:-1].split("|")])))
    return rows


def _position(v, space):
    lo, hi, kind = space[0], space[1], (space[2] if len(space) > 2 else "linear")
    if kind in ("log", "int-log"):
        return (math.log(v) - math.log(lo)) / (math.log(hi) - math.log(lo))
    return (v - lo) / (hi - lo)


def test_mnist_tuned_values_and_edges_recomputed():
    tuning = json.loads((RESULTS / "mnist" / "tuning.json").read_text())
    df = pd.read_csv(RESULTS / "mnist" / "results.csv", low_memory=False, dtype={"hidden": str})
    edges, total = {}, 0
    for name, e in tuning.items():
        done = [t for t in e["trials"] if t["state"] == "complete"]  # pruned trials have no value
        best = max(done, key=lambda t: t["value"])  # the first of equal values, as Optuna
        assert best["params"] == e["best_params"] and best["value"] == e["best_val_accuracy"]
        final = df[(df.phase == "final") & (df.contender == name)]
        for p, v in best["params"].items():  # the final runs used the tuned values
            if p in final.columns:
                assert np.allclose(final[p].astype(float), v, rtol=1e-12), (name, p)
            total += 1
            pos = _position(v, e["space"][p])
            if pos <= 0.1 or pos >= 0.9:
                end = pos >= 0.9
                inner = [_position(t["params"][p], e["space"][p]) for t in done]
                inner = [1 - x if not end else x for x in inner]
                outer = [t["value"] for t, x in zip(done, inner) if x >= 0.9]
                nxt = [t["value"] for t, x in zip(done, inner) if 0.7 <= x < 0.9]
                edges[(name, p)] = (f"{pos:.2f}", "high end" if end else "low end",
                                    f"{100 * np.mean(outer):.2f} ({len(outer)}) / {100 * np.mean(nxt):.2f} ({len(nxt)})")
    sec = _section("mnist", "Tuning")
    assert re.search(r"(\d+) of (\d+) tuned optima", sec).groups() == (str(len(edges)), str(total))
    rows = {(r["contender"].strip("`"), r["hyperparameter"]): (r["position (0–1)"], r["edge"],
                                                              r["trials' val. score: outer 10% / next 20%"])
            for r in _table(sec, "contender")}
    assert rows == edges


def test_mnist_lambda_sweep_recomputed():
    df = pd.read_csv(RESULTS / "mnist" / "results.csv", low_memory=False, dtype={"hidden": str})
    lam = df[df.phase == "lambda"]

    def ms(x, scale, dec):
        return f"{scale * x.mean():.{dec}f} ± {scale * x.std(ddof=1):.{dec}f}"

    mine = [[f"{v:.4g}" + (" ★" if math.isclose(v, 10 ** -2.5, rel_tol=1e-6) else ""), str(len(g)),
             ms(g.test_accuracy, 100, 2), ms(g.jacobian_fro_mean, 1, 3), ms(g.pgv, 1, 3)]
            for v, g in lam.groupby("dreg")]
    assert mine == [list(r.values()) for r in _table(_section("mnist", "λ sweep"), "λ")]


def test_attribution_dreg_cell_is_the_no_dreg_cells_twin():
    # sst5-tanh: cr-tanh (poly_init tanh, λ = 0) has the twin cr-dreg-tanh; the reference cr-dreg
    # (another poly_init) comes first in spec order but would make "DREG vs no DREG" change two things
    at = attribution_table(load_fight(RESULTS / "sst5-tanh"))
    assert at["cells"][("ChainzRule", "no DREG")]["contender"] == "cr-tanh"
    assert at["cells"][("ChainzRule", "DREG")]["contender"] == "cr-dreg-tanh"
    df = pd.read_csv(RESULTS / "sst5-tanh" / "results.csv", low_memory=False, dtype={"hidden": str})
    fin = df[df.phase == "final"]
    d = (fin[fin.contender == "cr-dreg-tanh"].set_index("seed").test_accuracy
         - fin[fin.contender == "cr-tanh"].set_index("seed").test_accuracy).dropna().to_numpy()
    row = next(c for c in at["comparisons"] if c["what"] == "DREG vs no DREG (ChainzRule)")
    assert (row["a"], row["b"], row["n"]) == ("cr-dreg-tanh", "cr-tanh", len(d))
    assert row["mean_diff"] == pytest.approx(d.mean(), rel=1e-12)
    assert row["p"] == pytest.approx(stats.ttest_1samp(d, 0.0).pvalue, rel=1e-9)
    report = [r for r in _table(_section("sst5-tanh", "Attribution: activation × DREG"), "effect")
              if r["effect"] == "DREG vs no DREG (ChainzRule)"]
    assert report[0]["a − b"] == "`cr-dreg-tanh` − `cr-tanh`"
    assert report[0]["mean diff (%) [CI]"].startswith(f"{100 * d.mean():+.2f} points")
