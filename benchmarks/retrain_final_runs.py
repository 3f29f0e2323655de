"""Do a committed fight's attacked runs reproduce at today's code? Retrains a sample, compares every metric.

Run files hold no weights, so each sampled run (a run with robustness metrics: the final runs) is
rebuilt from its stored config and trained again as the fight trained it — one torch thread per
process, as ``fight --jobs 2`` gives each worker on 2 cores; with ``--batch``, same-shaped runs as
one stacked model (``chainzrule.batched``), as the fight batches small networks such as Pima's.
Then every stored number is compared exactly: test and validation metrics, the selected epoch,
epochs and steps, the gradient statistics, ||J||_F, τ, the corruption accuracies and every
FGSM/PGD/APGD accuracy (the Lipschitz bound to 1e-5 relative). Use it after a change to code that
computes committed numbers, on a fight made on this machine (runs made on another CPU differ at
float level: results/README.md).

    python benchmarks/retrain_final_runs.py results/pima --sample 60 --batch --jobs 2
    python benchmarks/retrain_final_runs.py results/sst5 --sample 10 --jobs 2

``--keep DIR`` keeps the retrained run files: two runs of the script at two commits
(``PYTHONPATH=<worktree>/src``) with the same sample retrain the same models, so their files show
what a change to the evaluation alone does.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from chainzrule.batched import eligible_groups, execute_group
from chainzrule.config import TrainConfig
from chainzrule.fight.executor import Task, load_record

#: result fields compared exactly (dotted paths into a run record's ``result``)
EXACT = ("test", "val", "selected_epoch", "epochs_run", "steps", "pgv", "grad_norm_max", "grad_norm_median",
         "jacobian_fro", "tau_input", "tau_train", "params", "diverged", "unstable")
RELATIVE = {"lipschitz_bound": 1e-5}


def _get(d: dict, path: str):
    for part in path.split("."):
        d = d.get(part) if isinstance(d, dict) else None
    return d


def _same(a, b) -> bool:
    return a == b or (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b))


def differences(old: dict, new: dict) -> list[str]:
    """The fields of the stored result ``old`` that the retrained ``new`` does not reproduce."""
    out = [p for p in EXACT if not _same(_get(old, p), _get(new, p))]
    rob_old, rob_new = old.get("robustness") or {}, new.get("robustness") or {}
    out += [f"robustness.{k}" for k in sorted(set(rob_old) | set(rob_new))
            if k != "attack" and not _same(rob_old.get(k), rob_new.get(k))]
    return out + relative_differences(old, new)


def relative_differences(old: dict, new: dict) -> list[str]:
    """The :data:`RELATIVE` fields (the Lipschitz bound) that differ by more than their tolerance."""
    out = []
    for p, tol in RELATIVE.items():
        a, b = _get(old, p), _get(new, p)
        if (a is None) != (b is None) or (a is not None and abs(a - b) > tol * abs(a)):
            out.append(p)
    return out


def task_of(rec: dict) -> Task:
    cfg = TrainConfig.from_dict(rec["config"])
    return Task(rec["phase"], rec["contender"], cfg, bool(rec["test"]), rec["seed"], rec.get("trial"))


def _retrain(tasks: list[Task], out: str) -> None:
    import torch

    torch.set_num_threads(1)
    execute_group(tasks, Path(out))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("fight", type=Path, help="a committed fight folder, e.g. results/pima")
    ap.add_argument("--sample", type=int, default=20, help="how many attacked runs to retrain")
    ap.add_argument("--seed", type=int, default=0, help="which sample (random.Random(seed))")
    ap.add_argument("--batch", action="store_true", help="train same-shaped runs as one stacked model, as the fight "
                    "did for small networks")
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--keep", type=Path, help="keep the retrained run files in this folder (default: a temporary one)")
    args = ap.parse_args()

    recs = [load_record(f) for f in sorted((args.fight / "runs").glob("*.json"))]
    recs = [r for r in recs if (r["result"].get("robustness") or {})]
    wrong = [r["key"] for r in recs if task_of(r).key != r["key"]]
    if wrong:
        raise SystemExit(f"{len(wrong)} of {len(recs)} stored configs do not give their run key (first: {wrong[0]}): "
                         "the config format changed since")
    sample = random.Random(args.seed).sample(recs, min(args.sample, len(recs)))
    sample.sort(key=lambda r: (r["contender"], r["seed"]))  # same-shaped runs next to each other, as the fight
    tasks = [task_of(r) for r in sample]
    size = math.ceil(len(tasks) / max(1, args.jobs))
    groups = eligible_groups(tasks, max_size=size) if args.batch else [[t] for t in tasks]
    with tempfile.TemporaryDirectory() as tmp, ProcessPoolExecutor(args.jobs) as pool:
        out = str(args.keep or tmp)
        Path(out).mkdir(parents=True, exist_ok=True)
        list(pool.map(_retrain, groups, [out] * len(groups)))
        now = {r["key"]: json.loads((Path(out) / f"{r['key']}.json").read_text())["result"] for r in sample}
    print(f"{args.fight}: {len(sample)} of {len(recs)} attacked runs retrained ({'batched' if args.batch else 'alone'})\n")
    bad = 0
    for r in sample:
        diff = differences(r["result"], now[r["key"]])
        bad += bool(diff)
        print(f"{r['key']}  {r['contender']:>14}  seed {r['seed']}: {', '.join(diff) if diff else 'identical'}")
    print(f"\n{len(sample) - bad} of {len(sample)} reproduce every stored number")


if __name__ == "__main__":
    main()
