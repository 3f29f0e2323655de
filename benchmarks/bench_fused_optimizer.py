"""Training time with torch's fused optimizer kernel (``fused_optimizer = true``) against the default.

Trains the same run with ``fused_optimizer`` off and on, alternately, ``--repeats`` times each
(one process, one thread), and reports the median ``train_seconds`` (the training loop, data
loading and evaluation excluded) and what the fused kernel changes in the results: the largest
parameter difference after training and the two test accuracies.

    python benchmarks/bench_fused_optimizer.py --repeats 3 --write   # MNIST (1 epoch) and Pima (60 epochs)
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch

from chainzrule.config import TrainConfig
from chainzrule.train import load_splits, train

from bench_step import machine, write_markdown  # the benchmarks' folder is on sys.path when a script runs

ROOT = Path(__file__).resolve().parents[1]
BENCH_MD = ROOT / "BENCHMARKS.md"
BEGIN, END = "<!-- bench_fused_optimizer:begin -->", "<!-- bench_fused_optimizer:end -->"

CASES = {  # name: config
    "MNIST, ReLU MLP 784-256-256-10, 1 epoch": dict(dataset="mnist", model="mlp", epochs=1),
    "MNIST, ChainzRule + DREG, 1 epoch": dict(dataset="mnist", model="chainzrule", epochs=1, dreg=3e-3),
    "Pima, ReLU MLP 8-32-32-2, 60 epochs": dict(dataset="pima", model="mlp", hidden=(32, 32), batch_size=32, epochs=60),
    "Pima, ChainzRule + DREG, 60 epochs": dict(dataset="pima", model="chainzrule", hidden=(32, 32), batch_size=32,
                                              epochs=60, dreg=3e-3),
}


def measure(cfg: TrainConfig, repeats: int) -> dict:
    """Median training seconds off / on, and what changes between the two runs."""
    splits = load_splits(cfg)
    secs = {False: [], True: []}
    runs = {}
    for _ in range(repeats):
        for fused in (False, True):
            res = train(cfg.replace(fused_optimizer=fused), splits, progress=False)
            secs[fused].append(res.result["train_seconds"])
            runs[fused] = res
    a, b = runs[False].model.state_dict(), runs[True].model.state_dict()
    return {"off": statistics.median(secs[False]), "on": statistics.median(secs[True]),
            "max_dw": max((a[k].double() - b[k].double()).abs().max().item() for k in a),
            "acc_off": runs[False].result["test"]["accuracy"], "acc_on": runs[True].result["test"]["accuracy"]}


def optimizer_step_ms(repeats: int = 50) -> dict[str, float]:
    """Process-CPU ms of one Adam step over a 784-1024-1024-10 MLP's parameters (1.9M), with
    seeded gradients, foreach (torch's default) and fused, alternating; medians of 3 blocks."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(784, 1024), torch.nn.ReLU(), torch.nn.Linear(1024, 1024),
                              torch.nn.ReLU(), torch.nn.Linear(1024, 10))
    for p in net.parameters():
        p.grad = torch.randn_like(p)
    opts = {k: torch.optim.Adam(net.parameters(), lr=1e-4, **{k: True}) for k in ("foreach", "fused")}
    times: dict[str, list[float]] = {k: [] for k in opts}
    for _ in range(3):
        for k, opt in opts.items():
            for _ in range(5):
                opt.step()
            t = time.process_time()
            for _ in range(repeats):
                opt.step()
            times[k].append((time.process_time() - t) / repeats * 1e3)
    return {k: statistics.median(v) for k, v in times.items()}


def drift(dtype: torch.dtype, steps: int = 60) -> float:
    """Largest parameter difference, fused against foreach Adam, after ``steps`` one-cycle steps
    on seeded gradients of five scales (as tests/test_fused_optimizer.py does, on larger tensors)."""
    out = []
    for fused in (False, True):
        g = torch.Generator().manual_seed(0)
        params = [torch.nn.Parameter(torch.randn(*s, generator=g, dtype=dtype)) for s in ((1024, 784), (1024,), (3, 7))]
        opt = torch.optim.Adam(params, lr=3e-3, **({"fused": True} if fused else {"foreach": True}))
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-2, total_steps=steps)
        for t in range(steps):
            for p in params:
                p.grad = torch.randn(p.shape, generator=g, dtype=dtype) * 10.0 ** (t % 5 - 2)
            opt.step()
            sched.step()
        out.append(params)
    return max((a - b).abs().max().item() for a, b in zip(*out))


def _load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=3, help="runs of each setting, alternating (default 3)")
    ap.add_argument("--write", action="store_true", help=f"replace this benchmark's block in {BENCH_MD.name}")
    args = ap.parse_args(argv)
    argv = list(sys.argv[1:] if argv is None else argv)
    torch.set_num_threads(1)
    load_before = _load()
    step = optimizer_step_ms()
    d32, d64 = drift(torch.float32), drift(torch.float64)
    rows = []
    for name, values in CASES.items():
        m = measure(TrainConfig(**values), args.repeats)
        rows.append(f"| {name} | {m['off']:.2f} | {m['on']:.2f} | {m['on'] / m['off']:.2f}× | {m['max_dw']:.1e} | "
                    f"{100 * m['acc_off']:.2f} / {100 * m['acc_on']:.2f} |")
        print(rows[-1], flush=True)
    block = "\n".join([
        BEGIN, "",
        f"Command: `python benchmarks/bench_fused_optimizer.py {' '.join(argv)}`  ",
        f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}  ",
        f"Machine: {machine()}; load average before / after: {load_before} / {_load()}  ",
        f"One Adam step over a 784-1024-1024-10 MLP's parameters (1.9M), process CPU time: "
        f"{step['foreach']:.2f} ms foreach (torch's default), {step['fused']:.2f} ms fused "
        f"({step['fused'] / step['foreach']:.2f}×). Largest parameter difference, fused against foreach, after 60 "
        f"one-cycle steps on gradients of five scales: {d32:.1e} (float32), {d64:.1e} (float64).",
        "",
        f"Each run {args.repeats}× per setting, alternating; `train_seconds` of `result.json` (the training loop only), median.",
        "",
        "| run | unfused (s) | fused (s) | fused / unfused | max \\|Δ parameter\\| after training | test accuracy, unfused / fused (%) |",
        "|---|---:|---:|---:|---:|---:|",
        *rows, "", END])
    print(block)
    if args.write:
        write_markdown(block, BEGIN, END)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
