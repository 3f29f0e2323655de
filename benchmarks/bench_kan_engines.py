"""Batched KANs: the grouped engine against vmap and against one run at a time (issue 9).

Three measurements, one process, one thread:

1. width matching's first parameter count: ``match_widths`` on ``fights/pima.toml`` in this fresh
   process (the KANs are built on the meta device; run it at an older commit to compare);
2. training only (robustness off): M seeds of the Pima quick profile's KAN (its ``[base]`` merged
   with ``[quick]``, lr 0.01), one by one, then ``train_batched`` with ``engine="vmap"`` and with
   the default (grouped) engine; medians of ``--repeats`` rounds;
3. exactness at scale: the first 10 KAN final runs of ``results/pima`` that share a batch, each
   retrained as one group by both engines; whether every weight and every gradient-norm trace is
   bitwise equal between the two.

Usage::

    PYTHONPATH=src python benchmarks/bench_kan_engines.py                 # all three, M = 10
    PYTHONPATH=src python benchmarks/bench_kan_engines.py --members 25 --repeats 3

This is a benchmark, not a test: it asserts nothing and is never collected by pytest.
"""

from __future__ import annotations

import argparse
import collections
import json
import statistics
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--members", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(1)

    from chainzrule.fight.runner import match_widths
    from chainzrule.fight.spec import load_spec

    full = load_spec(ROOT / "fights" / "pima.toml")
    t = time.perf_counter()
    match_widths(full, 8, 2, "classification")
    print(f"match_widths on fights/pima.toml, first call in this process: {time.perf_counter() - t:.2f} s")

    from chainzrule.batched import batch_key, train_batched
    from chainzrule.data.splits import make_splits
    from chainzrule.train import load_data, train

    quick = load_spec(ROOT / "fights" / "pima.toml", quick=True)
    base = dict(quick.base)
    data = load_data(quick.contender(quick.reference).train_config(base), progress=False)
    kan = full.contender("kan")
    cfgs = [kan.train_config(base, seed=s, lr=0.01, robustness=False) for s in range(args.members)]
    splits = lambda cs: [make_splits(data, c.val_fraction, c.seed) for c in cs]  # noqa: E731
    train_batched(cfgs[:2], splits(cfgs[:2]), engine="vmap")  # warm-up: one-time costs not counted
    train_batched(cfgs[:2], splits(cfgs[:2]))
    sides = {
        "one by one": lambda: [train(c, s, progress=False) for c, s in zip(cfgs, splits(cfgs))],
        "vmap": lambda: train_batched(cfgs, splits(cfgs), engine="vmap"),
        "grouped": lambda: train_batched(cfgs, splits(cfgs)),
    }
    times = collections.defaultdict(list)
    for _ in range(args.repeats):
        for name, run in sides.items():
            t = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - t)
    print(f"training {args.members} Pima KAN runs (hidden {list(cfgs[0].hidden)}, {cfgs[0].epochs} epochs, "
          "robustness off), median seconds: " +
          ", ".join(f"{k} {statistics.median(v):.2f}" for k, v in times.items()))

    from chainzrule.config import TrainConfig
    from chainzrule.fight import executor

    groups = collections.defaultdict(list)
    for f in sorted((ROOT / "results" / "pima" / "runs").glob("*.json")):
        r = json.loads(f.read_text())
        if r.get("contender") == "kan" and r.get("phase") == "final":
            cfg = TrainConfig.from_dict(r["config"])
            groups[batch_key(cfg, r["test"])].append(cfg)
    group = max(groups.values(), key=len)[:10]
    sp = [executor.splits_for(c) for c in group]
    a, b = train_batched(group, sp, engine="vmap"), train_batched(group, sp)
    same_w = all(torch.equal(x.model.state_dict()[k], y.model.state_dict()[k]) for x, y in zip(a, b)
                 for k in x.model.state_dict())
    same_g = all(x.grad_norms == y.grad_norms for x, y in zip(a, b))
    print(f"{len(group)} results/pima KAN final runs, vmap vs grouped: weights bitwise equal {same_w}, "
          f"gradient-norm traces bitwise equal {same_g}")


if __name__ == "__main__":
    main()
