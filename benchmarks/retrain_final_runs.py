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
what a change to the evaluation alone does; ``--reference DIR`` compares with such a folder's run
files instead of the committed ones (is a machine's retrain the same at two commits?). The last
line gives, over the runs that differ, the largest relative difference of every number that moved.
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


def _numbers(d, prefix: str = "") -> dict[str, float]:
    """Every number of a result, by dotted path (booleans and timing fields left out)."""
    if isinstance(d, dict):
        out: dict[str, float] = {}
        for k, v in d.items():
            if k not in ("train_seconds", "step_ms", "peak_memory_mb", "history"):
                out.update(_numbers(v, f"{prefix}{k}."))
        return out
    if isinstance(d, (int, float)) and not isinstance(d, bool):
        return {prefix[:-1]: float(d)}
    return {}


def largest_relative_differences(pairs: list[tuple[dict, dict]]) -> dict[str, float]:
    """Per number that moved in any (stored, retrained) pair, the largest ``|new − old| / |old|``.

    >>> largest_relative_differences([({"pgv": 2.0, "test": {"accuracy": 0.75}}, {"pgv": 2.002, "test": {"accuracy": 0.75}})])
    {'pgv': 0.001}
    """
    out: dict[str, float] = {}
    for old, new in pairs:
        a, b = _numbers(old), _numbers(new)
        for k in a.keys() & b.keys():
            if not _same(a[k], b[k]):
                rel = abs(b[k] - a[k]) / abs(a[k]) if a[k] else math.inf
                out[k] = max(out.get(k, 0.0), round(rel, 12))
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


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
    ap.add_argument("--reference", type=Path, help="compare with this folder's run files (an earlier --keep) instead "
                    "of the fight's")
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
    stored = {r["key"]: r["result"] for r in sample}
    if args.reference:
        stored = {k: json.loads((args.reference / f"{k}.json").read_text())["result"] for k in stored}
    against = f"the run files in {args.reference}" if args.reference else "the stored runs"
    print(f"{args.fight}: {len(sample)} of {len(recs)} attacked runs retrained ({'batched' if args.batch else 'alone'}), "
          f"compared with {against}\n")
    bad = []
    for r in sample:
        diff = differences(stored[r["key"]], now[r["key"]])
        if diff:
            bad.append((stored[r["key"]], now[r["key"]]))
        print(f"{r['key']}  {r['contender']:>14}  seed {r['seed']}: {', '.join(diff) if diff else 'identical'}")
    print(f"\n{len(sample) - len(bad)} of {len(sample)} reproduce every stored number")
    if bad:
        rel = largest_relative_differences(bad)
        print("largest relative differences where not: " + ", ".join(f"{k} {v:.1e}" for k, v in rel.items()))


if __name__ == "__main__":
    main()
