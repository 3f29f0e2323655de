"""Train-step time of exact conv DREG against a ReLU CNN step and the input-gradient penalty.

A small CNN — 1×28×28 → ConvHiddenLayer(1→32, 3×3, padding 1) → ConvHiddenLayer(32→64, 3×3,
stride 2, padding 1) → Linear(64·14·14 → 10) — on a batch of 128 random inputs (x ~ N(0, 1),
uniform labels, cross-entropy), float32, CPU. A train step is zero_grad, forward, loss, backward,
Adam step. Variants:

  relu        ReLU CNN, plain loss (the layer's plain path is exactly relu(conv(x)))
  relu_dreg   ReLU CNN; logits, jsq = model(x, return_jacobian=True); loss + λ·dreg_penalty(jsq)
  cr          ChainzRule CNN: per-channel cubic PolynomialActivation(C, dim=1), plain loss
  cr_dreg     ChainzRule CNN + exact conv DREG, as relu_dreg
  relu_igp    ReLU CNN + input-gradient penalty by double backprop (inline, as in bench_step.py)

Same method as ``benchmarks/bench_step.py``: one process, every round runs one step of each variant
in a rotating order, ratios are taken within the round and the median over rounds is reported.
Default ``--threads 1 --clock cpu`` (process CPU time of one intra-op thread): the measurement that
best survives a machine that other jobs are loading.

Usage::

    python benchmarks/bench_conv.py                       # print the table
    python benchmarks/bench_conv.py --repeats 60 --write  # ... and replace its block in BENCHMARKS.md

This is a benchmark, not a test: it asserts nothing and is never collected by pytest.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

import chainzrule as cz
from bench_step import _cpu_model, write_markdown  # the benchmarks' CPU-name probe and block writer (same folder)

ROOT = Path(__file__).resolve().parents[1]
BENCH_MD = ROOT / "BENCHMARKS.md"
BEGIN, END = "<!-- bench_conv:begin -->", "<!-- bench_conv:end -->"
LAM, LAM_IGP = 3e-3, 1e-2  # λ does not change the cost
VARIANTS = ["relu", "relu_dreg", "cr", "cr_dreg", "relu_igp"]
RATIOS = [("relu_dreg", "relu"), ("cr", "relu"), ("cr_dreg", "cr"), ("cr_dreg", "relu"), ("relu_igp", "relu")]
CLOCK = time.process_time


class SmallCNN(nn.Module):
    """``[B, 1, 28, 28]`` → logits ``[B, 10]``; ``return_jacobian`` also gives ``[B, 2]`` DREG terms."""

    def __init__(self, poly: bool) -> None:
        super().__init__()
        act = (lambda c: cz.PolynomialActivation(c, dim=1)) if poly else (lambda c: cz.ReLU())
        self.c1 = cz.ConvHiddenLayer(1, 32, 3, act(32), padding=1)  # [B, 32, 28, 28]
        self.c2 = cz.ConvHiddenLayer(32, 64, 3, act(64), stride=2, padding=1)  # [B, 64, 14, 14]
        self.head = nn.Linear(64 * 14 * 14, 10)

    def forward(self, x, return_jacobian: bool = False):
        if not return_jacobian:
            return self.head(self.c2(self.c1(x)).flatten(1))
        h, j1 = self.c1(x, return_jacobian=True)
        h, j2 = self.c2(h, return_jacobian=True)
        return self.head(h.flatten(1)), torch.stack([j1, j2], dim=1)


def make_step(kind: str, x: torch.Tensor, y: torch.Tensor):
    """A closure running one train step of ``kind``; returns its time."""
    torch.manual_seed(0)  # every ReLU variant starts from the same weights, every CR one too
    model = SmallCNN(poly=kind.startswith("cr"))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    B = x.shape[0]

    def loss_fn():
        if kind in ("relu", "cr"):
            return F.cross_entropy(model(x), y)
        if kind in ("relu_dreg", "cr_dreg"):
            logits, jsq = model(x, return_jacobian=True)  # [B, 10], [B, 2]
            return F.cross_entropy(logits, y) + LAM * cz.dreg_penalty(jsq)
        if kind == "relu_igp":
            xg = x.detach().clone().requires_grad_(True)
            loss = F.cross_entropy(model(xg), y)
            (g,) = torch.autograd.grad(loss * B, xg, create_graph=True)  # per-example ∂ℓ_b/∂x_b
            return loss + LAM_IGP * g.pow(2).flatten(1).sum(1).mean()
        raise ValueError(f"unknown variant {kind!r}")

    def step() -> float:
        t0 = CLOCK()
        opt.zero_grad(set_to_none=True)
        loss_fn().backward()
        opt.step()
        return CLOCK() - t0

    step.model = model
    return step


def measure(variants, repeats: int, warmup: int, max_seconds: float, x, y):
    """Interleaved rounds in a rotating order: ``{variant: [step seconds per round]}``, rounds done."""
    steps = {k: make_step(k, x, y) for k in variants}
    for s in steps.values():
        for _ in range(warmup):
            s()
    times = {k: [] for k in variants}
    start, done = time.perf_counter(), 0
    for r in range(repeats):
        for kind in variants[r % len(variants):] + variants[: r % len(variants)]:
            times[kind].append(steps[kind]())
        done += 1
        if max_seconds and time.perf_counter() - start > max_seconds:
            break
    return times, done, steps


def _pct(v, q):
    v = sorted(v)
    return v[min(len(v) - 1, max(0, round(q * (len(v) - 1))))]


def outside_fraction(model: SmallCNN, x) -> str:
    """Fraction of CR pre-activations outside the working interval [-R, R] (per conv layer)."""
    out, h = [], x
    with torch.no_grad():
        for layer in (model.c1, model.c2):
            z = layer.conv(h)
            out.append(f"{(z.abs() > layer.activation.bound).float().mean().item():.2e}")
            h = layer.activation(z)
    return ", ".join(out)


def _loadavg() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:  # pragma: no cover
        return "n/a"


def render(times, meta) -> str:
    lines = [BEGIN, "", "## Train-step time: exact DREG on a CNN (`benchmarks/bench_conv.py`)", "",
             "1×28×28 → ConvHiddenLayer(1→32, 3×3, pad 1) → ConvHiddenLayer(32→64, 3×3, stride 2, pad 1) → "
             "Linear(12544→10), batch 128 of random inputs, cross-entropy, Adam; float32, CPU. `relu_dreg` / "
             "`cr_dreg`: loss + λ·`dreg_penalty(jsq)` with the analytic per-example ‖S‖_F² of both conv layers "
             "(row norms of the conv operator from one batch-1 convolution of a ones map with W²); `cr`: "
             "per-channel cubic `PolynomialActivation(C, dim=1)`; `relu_igp`: input-gradient penalty by double "
             "backprop. Rounds interleaved in one process, ratios taken within a round (median, IQR) and as the "
             "ratio of the 10th-percentile step times.", "",
             "Reading: DREG's own cost on a conv layer is one batch-1 convolution for the row norms (≈0.1–0.4 ms "
             "forward + backward for these layers) and one elementwise pass with a mat-vec over the activations "
             "(`relu_dreg / relu`). The polynomial's cost is a couple of dozen elementwise passes over the "
             "activations in forward and backward (Horner, coefficient gradients; torch.profiler: `mul`, "
             "`addcmul`, `sum` lead), memory-bound — and a CNN's activations are large for its FLOPs (conv 1 "
             "does 9 multiply-adds per output), so `cr / relu` is far above its value on the MLP of "
             "`bench_step.py`.", "",
             f"Command: `{meta['command']}`  ", f"Date: {meta['date']}  ", f"Machine: {meta['machine']}  ",
             f"Rounds: {meta['rounds']} interleaved (warm-up {meta['warmup']} steps each), {meta['clock']}; "
             f"load average before / after: {meta['load_before']} / {meta['load_after']}  ",
             f"CR pre-activations outside [-R, R] (conv 1, conv 2): {meta['outside']}  ", "",
             "| ratio | median of per-round ratios | IQR | ratio of 10th-percentile times |", "|---|---|---|---|"]
    for num, den in RATIOS:
        r = [a / b for a, b in zip(times[num], times[den])]
        lines.append(f"| {num} / {den} | {statistics.median(r):.3f} | {_pct(r, 0.25):.3f}–{_pct(r, 0.75):.3f} "
                     f"| {_pct(times[num], 0.1) / _pct(times[den], 0.1):.3f} |")
    lines += ["", "| variant | step ms (median) | step ms (10th pct) |", "|---|---|---|"]
    for kind, t in times.items():
        lines.append(f"| {kind} | {statistics.median(t) * 1e3:.1f} | {_pct(t, 0.1) * 1e3:.1f} |")
    lines += ["", END]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=40, help="interleaved rounds (default 40)")
    ap.add_argument("--warmup", type=int, default=3, help="warm-up steps per variant (default 3)")
    ap.add_argument("--max-seconds", type=float, default=300.0, help="stop after this many seconds of rounds")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default 1)")
    ap.add_argument("--clock", choices=("wall", "cpu"), default="cpu",
                    help="process CPU time (default; with one thread it ignores time other processes hold "
                         "the core) or wall time")
    ap.add_argument("--write", action="store_true", help=f"replace this benchmark's block in {BENCH_MD.name}")
    args = ap.parse_args(argv)
    argv = list(sys.argv[1:] if argv is None else argv)
    global CLOCK
    CLOCK = time.process_time if args.clock == "cpu" else time.perf_counter
    torch.set_num_threads(args.threads)
    torch.manual_seed(1234)
    x, y = torch.randn(args.batch, 1, 28, 28), torch.randint(0, 10, (args.batch,))
    load_before = _loadavg()
    times, rounds, steps = measure(VARIANTS, args.repeats, args.warmup, args.max_seconds, x, y)
    meta = dict(command=" ".join(["python benchmarks/bench_conv.py"] + argv),
                date=_dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                machine=(f"{_cpu_model()}, {os.cpu_count()} logical CPUs, torch {torch.__version__} "
                         f"({torch.backends.cpu.get_cpu_capability()}), {torch.get_num_threads()} intra-op "
                         f"threads, Python {platform.python_version()}"),
                rounds=rounds, warmup=args.warmup, load_before=load_before, load_after=_loadavg(),
                clock="process CPU time" if args.clock == "cpu" else "wall time",
                outside=outside_fraction(steps["cr_dreg"].model, x))
    block = render(times, meta)
    print(block)
    if args.write:
        write_markdown(block, BEGIN, END)
        print(f"updated {BENCH_MD}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
