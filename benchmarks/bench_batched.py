"""Runs per minute: M seeds of one config trained one after the other vs as one stacked batch.

The Pima quick profile (``fights/pima.toml``: its ``[base]`` merged with ``[quick]``: 8-32-32-2,
20 epochs, batch 32, Adam + OneCycle, robustness evaluation on) for each contender named by
``--contenders`` (default: cr-dreg, the reference; ChainzRule + DREG λ=0.003; any contender of
the spec, including those the quick profile drops, e.g. relu-igp, relu-jr). For each contender,
in one process, one right after the other:

  unbatched   ``chainzrule.train.train(cfg_s)`` for s = 0..M-1, sequentially (what a fight with
              ``--jobs 1`` does)
  batched     ``chainzrule.batched.train_batched([cfg_0 .. cfg_{M-1}])``

Hyperparameters that the fight would tune and the contender does not fix are set to the middle
of their tuning range (geometric for log ranges: lr 3e-3, igp strength 0.1, ...).
Both sides include everything a fight run does: split carve, model build, training, per-epoch
validation, test evaluation (diagnostics + FGSM/PGD). A warm-up run of each side (2 epochs)
comes first, so one-time costs (imports, kernel selection) are not counted. ``--repeats`` rounds
(default 3) of (unbatched, batched) back to back; the table shows the medians and the worst
round's ratio (the machine may be shared: interleaving keeps both sides under the same load). Both sides run with
the same torch thread count (``--threads``, default 1: what ``--jobs 2`` gives each worker on
this 2-core machine). Results are checked to agree (test accuracy to 1e-6) before timing counts.

Usage::

    PYTHONPATH=src python benchmarks/bench_batched.py                         # Pima, cr-dreg, M=10
    PYTHONPATH=src python benchmarks/bench_batched.py --contenders relu,relu-dreg,cr,cr-dreg
    PYTHONPATH=src python benchmarks/bench_batched.py --dataset synthetic-pima  # 768x8, 2 classes, no download

``--dataset pima`` fetches the data from Debian (``apt-get download r-cran-mlbench``) on first
use; if that fails the script says so and uses ``synthetic-pima`` (Gaussian blobs, 768 x 8,
2 classes, Pima's 80/20 split) instead. This is a benchmark, not a test: pytest never collects it.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]


def synthetic_pima():
    from chainzrule.data.base import Dataset
    from chainzrule.train import synthetic_dataset

    ds = synthetic_dataset(n=960, d=8, classes=2)  # 768 train / 192 test; Pima: 614 / 154
    return Dataset(name="synthetic-pima", task="classification", X_train=ds.X_train[:614], y_train=ds.y_train[:614],
                   X_test=ds.X_test[:154], y_test=ds.y_test[:154], num_classes=2, meta={"standardize": True})


def tuned_midpoint(contender) -> dict:
    """A stand-in for the tuned values: the middle (geometric for log ranges) of every tuned
    range the contender's config leaves open (so reg_strength is not 0 for igp/jr/wd)."""
    out = {}
    for name, space in contender.tune.items():
        if name in contender.config or isinstance(space, dict):
            continue
        lo, hi, scale = space
        out[name] = float(np.sqrt(lo * hi)) if scale == "log" else (lo + hi) / 2
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--spec", default=str(ROOT / "fights" / "pima.toml"))
    ap.add_argument("--dataset", default="pima", help="pima (fetched) or synthetic-pima")
    ap.add_argument("--contenders", default="cr-dreg")
    ap.add_argument("--members", type=int, default=10, help="M: seeds per batch")
    ap.add_argument("--epochs", type=int, default=None, help="override the quick profile's epochs")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3, help="rounds of (unbatched, batched); medians reported")
    args = ap.parse_args(argv)

    from chainzrule.batched import train_batched
    from chainzrule.data.splits import make_splits
    from chainzrule.fight.spec import load_spec
    from chainzrule.train import load_data, train

    torch.set_num_threads(args.threads)
    spec = load_spec(args.spec, quick=True)
    full = load_spec(args.spec)  # contenders the quick profile drops (igp, jr, ...) can be measured too
    base = dict(spec.base)
    if args.epochs:
        base["epochs"] = args.epochs
    data, note = None, ""
    if args.dataset == "pima":
        try:
            data = load_data(spec.contender(spec.reference).train_config(base), progress=False)
        except Exception as e:  # no network / no apt: say so and fall back
            note = f"pima could not be loaded ({type(e).__name__}: {e}); used synthetic-pima (768x8, 2 classes)"
    if data is None:
        data = synthetic_pima()
        base["dataset"] = "synthetic"  # a name TrainConfig accepts; the data passed in is synthetic-pima

    rows = []
    for name in [c.strip() for c in args.contenders.split(",") if c.strip()]:
        contender = full.contender(name)
        cfgs = [contender.train_config(base, seed=s, **tuned_midpoint(contender)) for s in range(args.members)]

        def unbatched(cfgs):
            return [train(c, make_splits(data, c.val_fraction, c.seed), progress=False) for c in cfgs]

        def batched(cfgs):
            return train_batched(cfgs, [make_splits(data, c.val_fraction, c.seed) for c in cfgs])

        warm = [c.replace(epochs=2) for c in cfgs[:2]]
        unbatched(warm), batched(warm)
        tu, tb, agree = [], [], 0.0
        for _ in range(args.repeats):  # one round: unbatched then batched, back to back
            t0 = time.perf_counter()
            ref = unbatched(cfgs)
            t1 = time.perf_counter()
            got = batched(cfgs)
            t2 = time.perf_counter()
            tu.append(t1 - t0)
            tb.append(t2 - t1)
            agree = max(agree, *(abs(r.result["test"]["accuracy"] - g.result["test"]["accuracy"])
                                 for r, g in zip(ref, got)))
        mu, mb = float(np.median(tu)), float(np.median(tb))
        ratios = sorted(u / b for u, b in zip(tu, tb))
        rows.append((name, cfgs[0].model, len(cfgs), mu, mb, 60 * len(cfgs) / mu, 60 * len(cfgs) / mb, mu / mb,
                     ratios[0], agree))

    cmd = "PYTHONPATH=src python benchmarks/bench_batched.py " + " ".join(sys.argv[1:] if argv is None else argv)
    print(f"`{cmd.strip()}`\n")
    print(f"{spec.name} quick profile, dataset {data.name} ({len(data.X_train)} train rows before the "
          f"validation carve), {base.get('epochs')} epochs, batch {base.get('batch_size')}, hidden "
          f"{base.get('hidden')}, robustness {base.get('robustness')}; torch {torch.__version__}, "
          f"{args.threads} thread(s), {platform.processor() or platform.machine()}\n")
    if note:
        print(f"note: {note}\n")
    print(f"median of {args.repeats} rounds (each round: all M runs unbatched, then the same M batched)\n")
    print("| contender | model | runs | unbatched s | batched s | runs/min unbatched | runs/min batched | speed-up "
          "| worst round | max test-acc diff |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, model, m, tu, tb, ru, rb, sp, worst, ag in rows:
        print(f"| {name} | {model} | {m} | {tu:.2f} | {tb:.2f} | {ru:.1f} | {rb:.1f} | {sp:.2f}x | {worst:.2f}x "
              f"| {ag:.1e} |")
    return 0 if all(r[-1] <= 1e-6 for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
