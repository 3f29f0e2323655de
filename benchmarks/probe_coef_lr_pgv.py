"""Does a lower coefficient learning rate close ChainzRule's peak-gradient-volatility gap? (issue 7)

Retrains ChainzRule + DREG on Pima with the hyperparameters the committed v2 fight tuned for each
cross-validation cell (``results/pima/tuning.json``; repeat 0, its 5 folds × seeds 0 and 1), changing
only ``coef_lr_scale``, and prints mean test/validation accuracy and PGV per scale. Compare the PGV
with ``results/pima/report.md``'s ReLU MLP (1.96).

    python benchmarks/probe_coef_lr_pgv.py 1.0 0.3 0.1 0.03
"""

from __future__ import annotations

import json
import sys

import numpy as np
import torch

from chainzrule.config import TrainConfig
from chainzrule.train import load_data, load_splits, train


def main(scales: list[float]) -> None:
    torch.set_num_threads(1)
    spec = json.load(open("results/pima/spec.json"))
    tuning = json.load(open("results/pima/tuning.json"))
    base = {**spec["base"], **spec["configs"]["cr-dreg"], "robustness": False}
    data = None
    for scale in scales:
        test, val, pgv = [], [], []
        for fold in range(5):
            best = tuning["cr-dreg"]["cells"][f"r0f{fold}"]["best_params"]
            for seed in (0, 1):
                cfg = TrainConfig.from_dict({**base, **best, "cv_folds": 5, "cv_fold": fold, "cv_repeat": 0,
                                             "seed": seed, "coef_lr_scale": scale})
                data = data if data is not None else load_data(cfg, progress=False)
                r = train(cfg, load_splits(cfg, data), progress=False).result
                test.append(r["test"]["accuracy"])
                val.append(r["val"]["accuracy"])
                pgv.append(r["pgv"])
        print(f"coef_lr_scale {scale:g}: test {100 * np.mean(test):.2f}%  val {100 * np.mean(val):.2f}%  "
              f"PGV {np.mean(pgv):.2f} ± {np.std(pgv, ddof=1) / np.sqrt(len(pgv)):.2f} (n={len(pgv)})", flush=True)


if __name__ == "__main__":
    main([float(a) for a in sys.argv[1:]] or [1.0, 0.3, 0.1, 0.03])
