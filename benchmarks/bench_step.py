"""Train-step time of ChainzRule / DREG against ReLU and the double-backward regularizers.

One process, one machine, all contenders interleaved: every round runs one train step of each
variant (in a rotating order) and the ratios are taken *within* the round, then the median over
rounds is reported. This makes the ratios robust to a machine whose load changes over time; the
absolute milliseconds are only indicative.

A train step is: zero_grad, forward, loss, backward, Adam step. Batch 256, widths 784-1024-1024-10,
cross-entropy on random data (x ~ N(0, 1), uniform labels), float32, CPU, torch's default thread
count unless ``--threads`` is given. Variants:

  relu          chainzrule.MLP (ReLU), plain loss
  relu_dreg     chainzrule.MLP(track_jacobian=True), loss + λ·dreg_penalty
  cr            ChainzRuleMLP(track_jacobian=False), plain loss
  cr_dreg       ChainzRuleMLP(track_jacobian=True), loss + λ·dreg_penalty
  relu_igp      ReLU + input-gradient penalty (double backprop), inline
  relu_jacreg   ReLU + Jacobian regularization, 1 random projection (Hoffman et al. 2019), inline
  cr_dreg_compiled   (only with --compile) cr_dreg with torch.compile(model); compile time reported

Usage::

    python benchmarks/bench_step.py                 # print the table (~1-3 min)
    python benchmarks/bench_step.py --write         # ... and update BENCHMARKS.md
    python benchmarks/bench_step.py --repeats 40 --variants relu,cr_dreg
    python benchmarks/bench_step.py --profile       # matmul / elementwise / optimizer split

This is a benchmark, not a test: it asserts nothing and is never collected by pytest.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import platform
import re
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import chainzrule as cz

ROOT = Path(__file__).resolve().parents[1]
BENCH_MD = ROOT / "BENCHMARKS.md"
BEGIN, END = "<!-- bench_step:begin -->", "<!-- bench_step:end -->"

BATCH, IN, HIDDEN, OUT = 256, 784, [1024, 1024], 10
LAM = 3e-3  # DREG λ (guide §2's MNIST run); the value does not change the cost
LAM_IGP = 1e-2
LAM_JR = 1e-2
ALL_VARIANTS = ["relu", "relu_dreg", "cr", "cr_dreg", "relu_igp", "relu_jacreg"]
# (numerator, denominator, target or None)
RATIOS = [
    ("relu_dreg", "relu", 1.10),
    ("cr", "relu", None),
    ("cr_dreg", "cr", 1.10),
    ("cr_dreg", "relu", 1.50),
    ("relu_igp", "relu", None),
    ("relu_jacreg", "relu", None),
    ("cr_dreg_compiled", "relu", None),
    ("cr_dreg_compiled", "cr_dreg", None),
]


# ----------------------------------------------------------------------------- variants


def _model(kind: str) -> torch.nn.Module:
    torch.manual_seed(0)  # every ReLU variant starts from the same weights, every CR one too
    if kind.startswith("cr"):
        return cz.ChainzRuleMLP(IN, HIDDEN, OUT, track_jacobian="dreg" in kind)
    return cz.MLP(IN, HIDDEN, OUT, activation="relu", track_jacobian=kind == "relu_dreg")


def make_step(kind: str, x: torch.Tensor, y: torch.Tensor):
    """A closure running one train step of ``kind`` and returning (t_forward, t_backward, t_opt)."""
    model = _model(kind)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    forward = model
    if kind == "cr_dreg_compiled":
        forward = torch.compile(model)
    B = x.shape[0]

    def loss_fn():
        if kind in ("relu", "cr"):
            return F.cross_entropy(forward(x), y)
        if kind in ("relu_dreg", "cr_dreg", "cr_dreg_compiled"):
            return F.cross_entropy(forward(x), y) + LAM * cz.dreg_penalty(model)
        xg = x.detach().clone().requires_grad_(True)  # [B, IN]
        logits = forward(xg)  # [B, OUT]
        loss = F.cross_entropy(logits, y)
        if kind == "relu_igp":
            # input-gradient penalty (double backprop): per-example ∂ℓ_b/∂x_b = B · ∂loss/∂x_b
            (g,) = torch.autograd.grad(loss * B, xg, create_graph=True)  # [B, IN]
            return loss + LAM_IGP * g.pow(2).sum(1).mean()
        if kind == "relu_jacreg":
            # Hoffman et al. 2019, one projection: v uniform on the unit sphere of the output,
            # ||J||_F² ≈ C · ||vᵀ J||², penalty λ/2 · that, batch mean
            v = torch.randn(B, OUT)
            v = v / v.norm(dim=1, keepdim=True)  # [B, OUT]
            (jv,) = torch.autograd.grad(logits, xg, grad_outputs=v, create_graph=True)  # [B, IN]
            return loss + 0.5 * LAM_JR * OUT * jv.pow(2).sum(1).mean()
        raise ValueError(f"unknown variant {kind!r}")

    def step():
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = loss_fn()
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        opt.step()
        t3 = time.perf_counter()
        return t1 - t0, t2 - t1, t3 - t2

    step.model = model
    return step


# ----------------------------------------------------------------------------- measurement


def _loadavg() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:  # pragma: no cover
        return "n/a"


def measure(variants, repeats, warmup, max_seconds, x, y, compile_: bool):
    steps = {}
    compile_s = None
    for kind in variants:
        steps[kind] = make_step(kind, x, y)
        t = time.perf_counter()
        steps[kind]()  # first step (compiles, for the compiled variant)
        if kind == "cr_dreg_compiled":
            compile_s = time.perf_counter() - t
        for _ in range(warmup):
            steps[kind]()
    times = {k: [] for k in variants}  # per round: (fwd, bwd, opt)
    start = time.perf_counter()
    done = 0
    for r in range(repeats):
        order = variants[r % len(variants):] + variants[: r % len(variants)]  # rotate
        for kind in order:
            times[kind].append(steps[kind]())
        done += 1
        if max_seconds and time.perf_counter() - start > max_seconds:
            break
    return times, done, compile_s, steps


def _pct(v, q):
    v = sorted(v)
    i = min(len(v) - 1, max(0, round(q * (len(v) - 1))))
    return v[i]


def summarize(times):
    total = {k: [sum(t) for t in v] for k, v in times.items()}
    rows = []
    for kind, tt in times.items():
        rows.append(dict(
            variant=kind,
            step=statistics.median(total[kind]) * 1e3,
            fwd=statistics.median(t[0] for t in tt) * 1e3,
            bwd=statistics.median(t[1] for t in tt) * 1e3,
            opt=statistics.median(t[2] for t in tt) * 1e3,
        ))
    ratios = []
    for num, den, target in RATIOS:
        if num in total and den in total:
            r = [a / b for a, b in zip(total[num], total[den])]  # same round: paired
            ratios.append(dict(num=num, den=den, target=target, median=statistics.median(r),
                               q25=_pct(r, 0.25), q75=_pct(r, 0.75)))
    return rows, ratios


def outside_fraction(step, x) -> str:
    """Fraction of CR pre-activations outside the working interval [-R, R] (per hidden layer)."""
    model = step.model
    if not isinstance(model, cz.ChainzRuleMLP):
        return ""
    fr, h = [], x
    with torch.no_grad():
        for layer in model.hidden_layers:
            z = layer.linear(h)
            fr.append(f"{(z.abs() > layer.activation.bound).float().mean().item():.2e}")
            h = layer.activation(z)
    return ", ".join(fr)


# ----------------------------------------------------------------------------- profile


MATMUL_OPS = {"aten::mm", "aten::addmm", "aten::mv", "aten::addmv", "aten::bmm", "aten::baddbmm",
              "aten::addmm_", "aten::addmv_", "aten::dot", "aten::vdot"}


def profile(variants, x, y, steps_n=10):
    from torch.profiler import ProfilerActivity, profile as tprofile

    out = []
    for kind in variants:
        step = make_step(kind, x, y)
        for _ in range(5):
            step()
        with tprofile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(steps_n):
                step()
        # walk the event tree: ops under Optimizer.step count as Adam, mat-muls as matmul
        by_name: dict[str, float] = {}
        optim = 0.0
        for e in prof.events():
            anc, in_opt = e.cpu_parent, e.name.startswith("Optimizer.step")
            while anc is not None and not in_opt:
                in_opt = anc.name.startswith("Optimizer.step")
                anc = anc.cpu_parent
            if in_opt:
                optim += e.self_cpu_time_total
            else:
                by_name[e.name] = by_name.get(e.name, 0.0) + e.self_cpu_time_total
        matmul = sum(v for k, v in by_name.items() if k in MATMUL_OPS)
        total = optim + sum(by_name.values())
        other = total - matmul - optim
        out.append(dict(variant=kind, total=total / steps_n / 1e3, matmul=matmul / total,
                        optim=optim / total, other=other / total))
        top = sorted(((k, v) for k, v in by_name.items() if k not in MATMUL_OPS), key=lambda kv: -kv[1])[:6]
        out[-1]["top"] = ", ".join(f"{k.replace('aten::', '')} {v / total:.0%}" for k, v in top)
    return out


# ----------------------------------------------------------------------------- report


def machine() -> str:
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs, "
            f"torch {torch.__version__} ({torch.backends.cpu.get_cpu_capability()}), "
            f"{torch.get_num_threads()} intra-op threads, Python {platform.python_version()}")


def render(rows, ratios, meta) -> str:
    lines = [BEGIN, ""]
    lines.append(f"Command: `{meta['command']}`  ")
    lines.append(f"Date: {meta['date']}  ")
    lines.append(f"Machine: {meta['machine']}  ")
    lines.append(f"Rounds: {meta['rounds']} interleaved (warm-up {meta['warmup']} steps each); "
                 f"load average before / after: {meta['load_before']} / {meta['load_after']}  ")
    if meta.get("outside"):
        lines.append(f"CR pre-activations outside [-R, R] (layer 1, layer 2): {meta['outside']}  ")
    if meta.get("compile_s") is not None:
        lines.append(f"torch.compile: first step (compilation) took {meta['compile_s']:.1f} s  ")
    lines += ["", "| ratio (median of per-round ratios) | median | IQR | target | met |",
              "|---|---|---|---|---|"]
    for r in ratios:
        tgt = f"≤ {r['target']:.2f}" if r["target"] else "—"
        met = ("yes" if r["median"] <= r["target"] else "**no**") if r["target"] else "—"
        lines.append(f"| {r['num']} / {r['den']} | {r['median']:.3f} | {r['q25']:.3f}–{r['q75']:.3f} | {tgt} | {met} |")
    lines += ["", "| variant | step ms (median) | forward+loss | backward | Adam step |", "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['variant']} | {r['step']:.2f} | {r['fwd']:.2f} | {r['bwd']:.2f} | {r['opt']:.2f} |")
    lines += ["", END]
    return "\n".join(lines)


def write_markdown(block: str) -> None:
    text = BENCH_MD.read_text() if BENCH_MD.exists() else "# Benchmarks\n\n" + BEGIN + "\n" + END + "\n"
    if BEGIN not in text:
        text = text.rstrip() + "\n\n" + BEGIN + "\n" + END + "\n"
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.S)
    BENCH_MD.write_text(pattern.sub(lambda _: block, text, count=1))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=150, help="interleaved rounds (default 150)")
    ap.add_argument("--warmup", type=int, default=5, help="warm-up steps per variant (default 5)")
    ap.add_argument("--max-seconds", type=float, default=150.0,
                    help="stop measuring after this many seconds even if rounds remain (default 150)")
    ap.add_argument("--variants", default=",".join(ALL_VARIANTS), help="comma-separated subset")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    ap.add_argument("--input-scale", type=float, default=1.0,
                    help="multiply the random inputs (pushes CR pre-activations outside [-R, R])")
    ap.add_argument("--compile", action="store_true", help="add cr_dreg_compiled (torch.compile)")
    ap.add_argument("--profile", action="store_true", help="print the matmul / elementwise / Adam split")
    ap.add_argument("--write", action="store_true", help=f"update {BENCH_MD.name}")
    args = ap.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    if args.compile and "cr_dreg_compiled" not in variants:
        variants.append("cr_dreg_compiled")
    if "relu" not in variants:
        variants.insert(0, "relu")
    torch.manual_seed(1234)
    x = args.input_scale * torch.randn(BATCH, IN)
    y = torch.randint(0, OUT, (BATCH,))

    if args.profile:
        print(f"machine: {machine()}")
        print("| variant | ms/step (profiled) | matmul | Adam | elementwise + other | largest others |")
        print("|---|---|---|---|---|---|")
        for r in profile(variants, x, y):
            print(f"| {r['variant']} | {r['total']:.1f} | {r['matmul']:.0%} | {r['optim']:.0%} | "
                  f"{r['other']:.0%} | {r['top']} |")
        return 0

    load_before = _loadavg()
    times, rounds, compile_s, steps = measure(
        variants, args.repeats, args.warmup, args.max_seconds, x, y, args.compile)
    rows, ratios = summarize(times)
    meta = dict(
        command="python benchmarks/bench_step.py " + " ".join(sys.argv[1:] if argv is None else argv),
        date=_dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        machine=machine(), rounds=rounds, warmup=args.warmup, load_before=load_before,
        load_after=_loadavg(), compile_s=compile_s,
        outside=outside_fraction(steps["cr_dreg"], x) if "cr_dreg" in steps else "",
    )
    block = render(rows, ratios, meta)
    print(block)
    if args.write:
        write_markdown(block)
        print(f"updated {BENCH_MD}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
