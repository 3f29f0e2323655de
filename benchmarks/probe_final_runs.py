"""Retrain a committed fight's final runs of one contender with one setting changed, paired by run.

Reads each final run's config from ``FOLDER/runs/<key>.json``, applies ``--set`` (e.g. the function
the polynomials start as), retrains it (test metrics only: no robustness suite), and sets the
result beside the committed runs of the same contender and of ``--against`` with the same seeds (and
resampling cells, in a cross-validated fight):
test accuracy, PGV and the PGV reduction ``1 − PGV / PGV(against)`` (guide §3), mean over seeds
with a plain paired t interval (no correction for the overlap of cross-validation folds, unlike a
fight's report). A probe, not a fight: the changed runs keep the hyperparameters tuned
for the original setting.

    python benchmarks/probe_final_runs.py results/mnist --contender cr-dreg --set poly_init=tanh --against relu --jobs 2
"""

from __future__ import annotations

import argparse
import json
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy import stats

from chainzrule.config import TrainConfig
from chainzrule.train import load_splits, train

RUN = ["repeat", "fold", "seed"]  # what pairs two final runs (-1: no resampling)


def _train(cfg_dict: dict) -> dict:
    torch.set_num_threads(1)
    cfg = TrainConfig.from_dict(cfg_dict)
    r = train(cfg, load_splits(cfg, progress=False), progress=False).result
    return {"repeat": cfg.cv_repeat if cfg.cv_folds else -1, "fold": cfg.cv_fold if cfg.cv_folds else -1,
            "seed": cfg.seed, "test_accuracy": r["test"]["accuracy"], "pgv": r["pgv"],
            "jacobian_fro_mean": r["jacobian_fro"]["mean"]}


def _ci(d: np.ndarray) -> str:
    lo, hi = stats.t.interval(0.95, len(d) - 1, loc=d.mean(), scale=stats.sem(d)) if len(d) > 1 else (d[0], d[0])
    return f"{d.mean():+.4f} [{lo:+.4f}, {hi:+.4f}]"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("--contender", required=True)
    ap.add_argument("--set", dest="changes", action="append", default=[], metavar="FIELD=VALUE")
    ap.add_argument("--against", default="relu")
    ap.add_argument("--jobs", type=int, default=1)
    a = ap.parse_args()
    changes = dict(c.split("=", 1) for c in a.changes)  # strings: TrainConfig.from_dict reads them as its fields' types
    rows = pd.read_csv(a.folder / "results.csv", low_memory=False)
    final = rows[rows.phase == "final"].fillna({"repeat": -1, "fold": -1}).astype({"repeat": int, "fold": int})
    final = final.set_index(["contender", *RUN])  # a final run: its resampling cell (if any) and seed
    keys = final.loc[a.contender].key
    cfgs = [{**json.loads((a.folder / "runs" / f"{k}.json").read_text())["config"], **changes, "robustness": False}
            for k in keys]
    with ProcessPoolExecutor(a.jobs) as pool:
        new = pd.DataFrame(list(pool.map(_train, cfgs))).set_index(RUN).sort_index()
    old, base = final.loc[a.contender].loc[new.index], final.loc[a.against].loc[new.index]
    what = ", ".join(f"{k} = {v}" for k, v in changes.items())
    print(f"{a.folder}: {a.contender} with {what} (n = {len(new)} runs) against {a.contender} as committed "
          f"and {a.against}")
    print("| runs | test accuracy (%) | PGV | mean ‖J‖_F |\n|---|---:|---:|---:|")
    for name, t in ((f"{a.contender}, {what}", new), (f"{a.contender} (committed)", old), (f"{a.against} (committed)", base)):
        print(f"| {name} | {100 * t.test_accuracy.mean():.2f} | {t.pgv.mean():.2f} | {t.jacobian_fro_mean.mean():.2f} |")
    cut = (1 - new.pgv / base.pgv).to_numpy()
    print(f"\nPGV reduction vs {a.against}, paired by run: {_ci(cut)}; committed {a.contender}: "
          f"{_ci((1 - old.pgv / base.pgv).to_numpy())}")
    print(f"test accuracy vs {a.against} (points): {_ci(100 * (new.test_accuracy - base.test_accuracy).to_numpy())}; "
          f"committed {a.contender}: {_ci(100 * (old.test_accuracy - base.test_accuracy).to_numpy())}")


if __name__ == "__main__":
    main()
