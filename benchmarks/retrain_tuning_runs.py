"""Does a committed fight's tuning replay at today's code? Retrains a random sample of its tuning runs.

A fight's tuning run files are not committed (``tuning.json`` keeps each trial's parameters,
seeds, run keys and validation accuracies). This rebuilds each sampled run's config from
``spec.json`` (the matched configs, the tuning epochs, the trial's parameters, its cell and seed),
checks that the rebuilt config has the stored run key (so it is the same run), trains it with one
torch thread per process (what ``fight --jobs 2`` gives each worker on 2 cores) and compares its
validation accuracy with the stored one.

    python benchmarks/retrain_tuning_runs.py results/mnist --sample 17 --jobs 2
    python benchmarks/retrain_tuning_runs.py results/pima --sample 40 --jobs 2
"""

from __future__ import annotations

import argparse
import json
import random
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch

from chainzrule.config import TrainConfig
from chainzrule.fight.executor import Task, splits_for
from chainzrule.fight.tuning import stored_tuning_runs
from chainzrule.train import train


def tuning_runs(fight: Path) -> list[dict]:
    """Every tuning run of ``fight`` (:func:`chainzrule.fight.tuning.stored_tuning_runs`), its config as a dict."""
    runs = stored_tuning_runs(json.loads((fight / "spec.json").read_text()), json.loads((fight / "tuning.json").read_text()))
    return [{**r, "stored": r["val"], "config": r["config"].to_dict()} for r in runs]


def retrain(run: dict) -> float:
    """The validation accuracy of ``run`` trained now (best-validation checkpoint, as in the fight)."""
    torch.set_num_threads(1)
    cfg = TrainConfig.from_dict(run["config"])
    result = train(cfg, splits_for(cfg), progress=False, test=False).result
    return float((result.get("val") or {}).get("accuracy") or 0.0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("fight", type=Path, help="a committed fight folder, e.g. results/mnist")
    ap.add_argument("--sample", type=int, default=17, help="how many tuning runs to retrain")
    ap.add_argument("--seed", type=int, default=0, help="which sample (random.Random(seed))")
    ap.add_argument("--jobs", type=int, default=1)
    args = ap.parse_args()

    runs = tuning_runs(args.fight)
    wrong = [r for r in runs if Task("tune", r["contender"], TrainConfig.from_dict(r["config"]), False, r["seed"]).key
             != r["key"]]
    if wrong:
        raise SystemExit(f"{len(wrong)} of {len(runs)} rebuilt configs do not have their stored run key "
                         f"(first: {wrong[0]['contender']} trial {wrong[0]['trial']}): the spec changed since")
    sample = random.Random(args.seed).sample(runs, min(args.sample, len(runs)))
    with ProcessPoolExecutor(args.jobs) as pool:
        now = list(pool.map(retrain, sample))
    print(f"{args.fight}: {len(sample)} of {len(runs)} tuning runs retrained (every rebuilt config has its "
          f"stored run key)\n")
    print("| contender | cell | trial | seed | lr | stored val acc (%) | now (%) | difference (points) |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for r, v in zip(sample, now):
        print(f"| {r['contender']} | {r['cell'] or '—'} | {r['trial']} | {r['seed']} | {r['config']['lr']:.3g} | "
              f"{100 * r['stored']:.2f} | {100 * v:.2f} | {100 * (v - r['stored']):+.2f} |")
    diffs = [abs(v - r["stored"]) for r, v in zip(sample, now)]
    changed = sum(d > 0 for d in diffs)
    print(f"\n{changed} of {len(sample)} differ; largest difference {100 * max(diffs, default=0):.2f} points")


if __name__ == "__main__":
    main()
