"""Where does ChainzRule's peak-gradient-volatility (PGV) gap come from? (issue 7 probe)

Retrains contenders of the committed Pima v2 fight with the hyperparameters it tuned for each
cross-validation cell (``results/pima/tuning.json``; repeat 0, its 5 folds × seeds 0 and 1),
changing one thing — the polynomial coefficients' learning-rate multiplier ``coef_lr_scale``, the
learning-rate schedule, or the function the polynomials start as — and prints mean test accuracy and PGV (± its standard error) per setting.

    python benchmarks/probe_pgv.py --scales 1 0.3 0.1 0.03            # ChainzRule + DREG
    python benchmarks/probe_pgv.py --contenders relu cr-dreg cr --schedules onecycle cosine
    python benchmarks/probe_pgv.py --contenders cr cr-dreg --inits gelu silu tanh identity
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from chainzrule.config import TrainConfig
from chainzrule.train import load_data, load_splits, train


def probe(name: str, change: dict, spec: dict, tuning: dict, data=None):
    """Mean test accuracy, PGV and its standard error over the 10 (fold, seed) runs; the dataset."""
    base = {**spec["base"], **spec["configs"][name], "robustness": False}
    test, pgv = [], []
    for fold in range(5):
        best = tuning[name]["cells"][f"r0f{fold}"]["best_params"]
        for seed in (0, 1):
            cfg = TrainConfig.from_dict({**base, **best, "cv_folds": 5, "cv_fold": fold, "cv_repeat": 0,
                                         "seed": seed, **change})
            data = data if data is not None else load_data(cfg, progress=False)
            r = train(cfg, load_splits(cfg, data), progress=False).result
            test.append(r["test"]["accuracy"])
            pgv.append(r["pgv"])
    return float(np.mean(test)), float(np.mean(pgv)), float(np.std(pgv, ddof=1) / np.sqrt(len(pgv))), data


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--contenders", nargs="+", default=["cr-dreg"])
    ap.add_argument("--scales", nargs="*", type=float, default=[], help="coef_lr_scale values (ChainzRule only)")
    ap.add_argument("--schedules", nargs="*", default=[], help="lr_schedule values: onecycle, cosine, constant")
    ap.add_argument("--inits", nargs="*", default=[], help="poly_init values: gelu, silu, tanh, identity (ChainzRule only)")
    a = ap.parse_args()
    torch.set_num_threads(1)
    spec = json.load(open("results/pima/spec.json"))
    tuning = json.load(open("results/pima/tuning.json"))
    changes = ([{"coef_lr_scale": s} for s in a.scales] + [{"lr_schedule": s} for s in a.schedules]
               + [{"poly_init": s} for s in a.inits]) or [{}]
    data = None
    for name in a.contenders:
        for change in changes:
            test, pgv, se, data = probe(name, change, spec, tuning, data)
            what = ", ".join(f"{k} {v}" for k, v in change.items()) or "as tuned"
            print(f"{name} ({what}): test {100 * test:.2f}%  PGV {pgv:.2f} ± {se:.2f} (n=10)", flush=True)


if __name__ == "__main__":
    main()
