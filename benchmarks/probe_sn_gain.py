"""Does spectral norm's hidden-layer gain ``sn_gain`` matter? (issue 11 probe)

Retrains a spectral-norm contender of a committed fight from its first final run's config (the
hyperparameters that fight tuned; for Pima its first cross-validation cell), changing only the
layer gain g and the logit temperature τ, and prints validation and test accuracy (mean over
``--seeds`` seeds) per (g, τ). ``--pairs`` gives (g, τ) explicitly; by default τ is the tuned one
scaled by 1/g² (the same Lipschitz bound τg²) at g = 1, 2, 4, 8, plus g = 4 with τ/4.

    python benchmarks/probe_sn_gain.py results/mnist silu-sn --seeds 1 --pairs 1:49.58 2:49.58 4:49.58 4:3.1 8:0.78 16:3.1
    python benchmarks/probe_sn_gain.py results/pima gelu-sn
    python benchmarks/probe_sn_gain.py results/pima silu-sn
    python benchmarks/probe_sn_gain.py results/sst5 gelu-sn
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import pandas as pd
import torch

from chainzrule.config import TrainConfig
from chainzrule.train import train


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("fight", help="a committed fight folder, e.g. results/mnist")
    ap.add_argument("contender", help="a spectral-norm contender of that fight, e.g. silu-sn")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--pairs", nargs="*", default=None, metavar="G:TAU", help="explicit (gain, temperature) pairs")
    args = ap.parse_args()
    torch.set_num_threads(1)

    rows = pd.read_csv(Path(args.fight) / "results.csv", low_memory=False)
    finals = rows[(rows.contender == args.contender) & (rows.phase == "final")]
    if finals.empty:
        raise SystemExit(f"{args.fight}: no final runs of {args.contender!r}")
    record = json.loads((Path(args.fight) / "runs" / f"{finals.key.iloc[0]}.json").read_text())
    base = TrainConfig.from_dict(record["config"]).replace(robustness=False, diag_examples=100,
                                                           corruption_examples=100)
    tau = base.logit_scale
    pairs = ([tuple(map(float, p.split(":"))) for p in args.pairs] if args.pairs else
             [(1.0, tau), (2.0, tau / 4), (4.0, tau / 16), (4.0, tau / 4), (8.0, tau / 64)])
    print(f"{args.contender}: tuned lr {base.lr:.4g}, tau {tau:.4g}; {args.seeds} seed(s) each")
    print("| gain | tau | val acc (%) | test acc (%) |\n|---|---|---|---|")
    for g, t in pairs:
        vals, tests = [], []
        for seed in range(args.seeds):
            r = train(base.replace(sn_gain=g, logit_scale=t, seed=seed), progress=False).result
            vals.append(r["val"]["accuracy"])
            tests.append(r["test"]["accuracy"])
        print(f"| {g:g} | {t:.3g} | {100 * statistics.mean(vals):.2f} | {100 * statistics.mean(tests):.2f} |", flush=True)


if __name__ == "__main__":
    main()
