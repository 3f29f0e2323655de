"""One tuning round of a resampled fight, one by one vs batched: the first-seed runs of one
contender in all 25 cells of the committed Pima v2 fight (each cell's tuned hyperparameters), timed in
one process with one thread, ``train`` per run against one ``train_batched`` call.

    python benchmarks/bench_batch_group.py relu-sn relu cr-dreg
    python benchmarks/bench_batch_group.py --final relu cr-dreg    # final runs: test metrics + robustness

``--final`` times what a final run does: training, then the test metrics and the robustness
attacks of the spec (FGSM, PGD, APGD-CE + APGD-DLR) — APGD one member at a time alone, all
members at once batched; the last column is then the largest difference in any APGD accuracy.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from chainzrule.batched import train_batched
from chainzrule.config import TrainConfig
from chainzrule.train import load_data, load_splits, train


def main(contenders: list[str], final: bool = False) -> None:
    torch.set_num_threads(1)
    spec = json.load(open("results/pima/spec.json"))
    tuning = json.load(open("results/pima/tuning.json"))
    data = None
    for name in contenders:
        base = {**spec["base"], **spec["configs"][name], **({} if final else {"robustness": False})}
        cfgs = [TrainConfig.from_dict({**base, **tuning[name]["cells"][f"r{r}f{f}"]["best_params"], "cv_folds": 5,
                                       "cv_fold": f, "cv_repeat": r, "seed": 0}) for r in range(5) for f in range(5)]
        data = data if data is not None else load_data(cfgs[0], progress=False)
        splits = [load_splits(c, data) for c in cfgs]
        t0 = time.perf_counter()
        alone = [train(c, s, progress=False, test=final) for c, s in zip(cfgs, splits)]
        t1 = time.perf_counter()
        batched = train_batched(cfgs, splits, test=final)
        t2 = time.perf_counter()
        if final:
            diff = max(abs((a.result["robustness"][k] or 0) - (b.result["robustness"][k] or 0))
                       for a, b in zip(alone, batched) for k in a.result["robustness"] if k.startswith("apgd_"))
        else:
            diff = max(abs(a.result["val"]["accuracy"] - b.result["val"]["accuracy"]) for a, b in zip(alone, batched))
        print(f"| `{name}` | {len(cfgs)} | {t1 - t0:.1f} | {t2 - t1:.1f} | {(t1 - t0) / (t2 - t1):.2f}× | {diff:.4f} |",
              flush=True)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].replace("\n", " "))
    ap.add_argument("contenders", nargs="*", default=["relu-sn", "relu", "cr-dreg"],
                    help="contenders of results/pima (default: relu-sn relu cr-dreg)")
    ap.add_argument("--final", action="store_true", help="time final runs (test metrics and robustness attacks)")
    args = ap.parse_args()
    tuned = json.load(open("results/pima/tuning.json"))
    unknown = [c for c in args.contenders if c not in tuned]
    if unknown:
        ap.error(f"unknown contender(s) {', '.join(unknown)}: expected some of {', '.join(tuned)}")
    main(args.contenders, args.final)
