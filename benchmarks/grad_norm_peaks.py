"""Where in training each final run's largest gradient norm falls (the "unstable" rule's max / median).

Reads a committed fight folder's final run files (their per-step global gradient norms) and prints,
per contender and run, the step of the maximum, the maximum, the median and their ratio (the
stability rule flags a run when the ratio exceeds 20).

    python benchmarks/grad_norm_peaks.py results/mnist --runs 3
    python benchmarks/grad_norm_peaks.py results/pima --jumps relu cr cr-dreg   # where PGV's jump falls

``--jumps`` prints instead, per named contender over all its final runs, where the largest
step-to-step jump of the gradient norm (the one PGV divides by the mean) falls, as a fraction of
the learning-rate schedule's planned steps (``OneCycleLR`` peaks at 0.3), how much of the schedule
the run trained before early stopping ended it, and how many runs reached the schedule's peak.
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
    ap.add_argument("--jumps", nargs="+", metavar="CONTENDER", help="summarize where PGV's jump falls instead")
    args = ap.parse_args()
    rows = pd.read_csv(Path(args.fight) / "results.csv", low_memory=False)
    finals = rows[rows.phase == "final"]
    if args.jumps:
        jumps(Path(args.fight), finals, args.jumps)
        return
    print("| contender | seed | steps | step of max | max | median | max / median |\n|---|---|---|---|---|---|---|")
    for name, group in finals.groupby("contender", sort=False):
        for _, row in group.sort_values("seed").head(args.runs).iterrows():
            g = np.asarray(json.loads((Path(args.fight) / "runs" / f"{row.key}.json").read_text())["grad_norms"])
            med = float(np.median(g))
            print(f"| {name} | {row.seed} | {len(g)} | {int(g.argmax())} | {g.max():.3g} | {med:.3g} | {g.max() / med:.1f} |")


def jumps(fight: Path, finals: pd.DataFrame, contenders: list[str]) -> None:
    """Per contender: medians of the largest jump's position and of the share of the schedule trained."""
    print("| contender | runs | largest jump at (of the schedule, median) | schedule trained (median) | epochs run "
          "(median) | runs past the peak (0.3) | PGV (mean) |\n|---|---|---|---|---|---|---|")
    for name in contenders:
        group = finals[finals.contender == name]
        if group.empty:
            raise SystemExit(f"no final runs of {name!r} in {fight} (contenders: {', '.join(finals.contender.unique())})")
        where, trained, epochs = [], [], []
        for key in group.key:
            run = json.loads((fight / "runs" / f"{key}.json").read_text())
            g, res = np.asarray(run["grad_norms"], dtype=float), run["result"]  # one norm per step
            planned = res["steps"] / res["epochs_run"] * run["config"]["epochs"]  # the schedule's steps
            where.append((np.abs(np.diff(g)).argmax() + 1) / planned)
            trained.append(res["epochs_run"] / run["config"]["epochs"])
            epochs.append(res["epochs_run"])
        print(f"| {name} | {len(group)} | {np.median(where):.3f} | {np.median(trained):.3f} | {np.median(epochs):.0f} "
              f"| {int((np.asarray(trained) > 0.3).sum())} | {group.pgv.mean():.2f} |")


if __name__ == "__main__":
    main()
