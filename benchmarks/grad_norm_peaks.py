"""Where in training each final run's largest gradient norm falls (the "unstable" rule's max / median).

Reads a committed fight folder's final run files (their per-step global gradient norms) and prints,
per contender and run, the step of the maximum, the maximum, the median and their ratio (the
stability rule flags a run when the ratio exceeds 20).

    python benchmarks/grad_norm_peaks.py results/mnist --runs 3
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("fight", help="a committed fight folder, e.g. results/mnist")
    ap.add_argument("--runs", type=int, default=3, help="final runs per contender (first seeds)")
    args = ap.parse_args()
    rows = pd.read_csv(Path(args.fight) / "results.csv", low_memory=False)
    finals = rows[rows.phase == "final"]
    print("| contender | seed | steps | step of max | max | median | max / median |\n|---|---|---|---|---|---|---|")
    for name, group in finals.groupby("contender", sort=False):
        for _, row in group.sort_values("seed").head(args.runs).iterrows():
            g = np.asarray(json.loads((Path(args.fight) / "runs" / f"{row.key}.json").read_text())["grad_norms"])
            med = float(np.median(g))
            print(f"| {name} | {row.seed} | {len(g)} | {int(g.argmax())} | {g.max():.3g} | {med:.3g} | {g.max() / med:.1f} |")


if __name__ == "__main__":
    main()
