"""Figures audit (2026-12-03): the data behind the report's plots, recomputed independently."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from chainzrule.fight.loading import Fight, as_fight
from chainzrule.fight.tuning_views import expected_max_curves

ROOT = Path(__file__).resolve().parents[1]


def _fight(name: str) -> Fight:
    folder = ROOT / "results" / name
    assert (folder / "tuning.json").is_file(), f"committed results/{name} missing"
    return as_fight(folder)


def _run(contender: str, seed: int, repeat: int, fold: int, key: str) -> dict:
    return {"key": key, "phase": "final", "contender": contender, "seed": seed, "grad_norms": [1.0, 2.0],
            "config": {"cv_repeat": repeat, "cv_fold": fold}}


def test_seed0_run_is_the_first_split_not_the_first_run_file():
    """Under repeated CV every contender's plotted trace (gradient norms, activations) must come from
    the same split: seed 0 of r0f0, whatever order the run files (hash keys) load in."""
    f = Fight.__new__(Fight)
    f.runs = [_run("a", 0, 2, 3, "00aa"), _run("a", 1, 0, 0, "01bb"), _run("a", 0, 0, 1, "02cc"),
              _run("a", 0, 0, 0, "ffdd")]
    rec = f.seed0_run("a")
    assert (rec["seed"], rec["config"]["cv_repeat"], rec["config"]["cv_fold"]) == (0, 0, 0)


def test_seed0_run_pima_all_contenders_share_split():
    f = _fight("pima")
    picked = {(r["seed"], r["config"].get("cv_repeat"), r["config"].get("cv_fold"))
              for r in (f.seed0_run(n) for n in f.contenders())}
    assert picked == {(0, 0, 0)}


def _dodge(scores: list[float]) -> tuple[np.ndarray, np.ndarray]:
    """Dodge et al. 2019, k draws with replacement from the empirical distribution, k = 1..n."""
    v = np.sort(scores)
    n = v.size
    i = np.arange(1, n + 1)
    mean, std = [], []
    for k in range(1, n + 1):
        w = (i / n) ** k - ((i - 1) / n) ** k
        mu = float(w @ v)
        mean.append(mu)
        std.append(math.sqrt(float(w @ (v - mu) ** 2)))
    return np.array(mean), np.array(std)


@pytest.mark.parametrize("name,contender", [("mnist", "cr-dreg"), ("pima", "cr")])
def test_expected_max_curve_is_the_standard_estimator(name, contender):
    """Complete trials scored by their value (mean over seeds), pruned ones by the best of their first
    seed's curve; under resampling the per-cell curves are averaged."""
    f = _fight(name)
    entry = json.loads((f.folder / "tuning.json").read_text())[contender]
    cells = list((entry.get("cells") or {"": entry}).values())
    means, stds = [], []
    for c in cells:
        sc = [t["value"] if t["state"] == "complete" else max(t["curve"]) for t in c["trials"]]
        m, s = _dodge(sc)
        means.append(m)
        stds.append(s)
    got = expected_max_curves(f)[contender]
    assert got["k"] == list(range(1, len(cells[0]["trials"]) + 1))
    np.testing.assert_allclose(got["mean"], np.mean(means, axis=0), rtol=0, atol=1e-12)
    np.testing.assert_allclose(got["std"], np.mean(stds, axis=0), rtol=0, atol=1e-12)
