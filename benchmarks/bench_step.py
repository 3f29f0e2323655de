"""Train-step time of ChainzRule / DREG against ReLU and the double-backward regularizers.

One process, one machine, all contenders interleaved: every round runs one train step of each
variant (in a rotating order) and the ratios are taken *within* the round, then the median over
rounds is reported. This makes the ratios robust to a machine whose load changes over time; the
absolute milliseconds are only indicative.

A train step is: zero_grad, forward, loss, backward, Adam step. Batch 256, widths 784-1024-1024-10 (--width, --batch),
cross-entropy on random data (x ~ N(0, 1), uniform labels), float32, CPU, torch's default thread
count unless ``--threads`` is given. Variants:

  relu          chainzrule.MLP (ReLU), plain loss
  relu_dreg     chainzrule.MLP; logits, jsq = model(x, return_jacobian=True); loss + λ·dreg_penalty(jsq)
  cr            ChainzRuleMLP (Legendre basis, linear range control), plain loss
  cr_dreg       ChainzRuleMLP, return_jacobian=True, loss + λ·dreg_penalty(jsq)
  relu_igp      ReLU + input-gradient penalty (double backprop), inline
  relu_jacreg   ReLU + Jacobian regularization, 1 random projection (Hoffman et al. 2019), inline
  relu_compiled, relu_dreg_compiled, cr_compiled, cr_dreg_compiled   (only with --compile) the
                same four with torch.compile(model) (inductor); the first step (compilation) is timed
                and reported. The like-for-like targets compare compiled with compiled.

Usage::

    python benchmarks/bench_step.py                 # print the table (~30 s idle, ≤ 150 s of rounds)
    python benchmarks/bench_step.py --write         # ... and update its block in BENCHMARKS.md
    python benchmarks/bench_step.py --repeats 300 --max-seconds 0   # more rounds, no time cap
    python benchmarks/bench_step.py --variants relu,cr_dreg --threads 1 --clock cpu
    python benchmarks/bench_step.py --ablations     # each hot-path optimization switched off in turn
    python benchmarks/bench_step.py --profile       # matmul / Adam / elementwise split (torch.profiler)
    python benchmarks/bench_step.py --compile       # + torch.compile'd CR variants (opt-in path)
    python benchmarks/bench_step.py --scaling --threads 1 --clock cpu --repeats 30 --max-seconds 40 --write

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
from chainzrule import functional as CF

ROOT = Path(__file__).resolve().parents[1]
BENCH_MD = ROOT / "BENCHMARKS.md"
BEGIN, END = "<!-- bench_step:begin -->", "<!-- bench_step:end -->"

CLOCK = time.perf_counter  # wall time; --clock cpu switches to process CPU time
FUSED_ADAM = False  # --fused-adam: every variant's Adam with fused=True
BATCH, IN, HIDDEN, OUT = 256, 784, [1024, 1024], 10
LAM = 3e-3  # DREG λ (guide §2's MNIST run); the value does not change the cost
LAM_IGP = 1e-2
LAM_JR = 1e-2
ALL_VARIANTS = ["relu", "relu_dreg", "cr", "cr_dreg", "relu_igp", "relu_jacreg"]
# (numerator, denominator, target or None)
RATIOS = [
    ("relu_dreg", "relu", 1.07),
    ("cr", "relu", None),
    ("cr_dreg", "cr", None),
    ("cr_dreg", "relu", 1.25),
    ("relu_igp", "relu", None),
    ("relu_jacreg", "relu", None),
    ("relu_dreg_compiled", "relu_compiled", 1.07),
    ("cr_compiled", "relu_compiled", None),
    ("cr_dreg_compiled", "relu_compiled", 1.25),
    ("relu_compiled", "relu", None),
    ("cr_dreg_compiled", "cr_dreg", None),
]


# ----------------------------------------------------------------------------- ablations
#
# Each idea of the hot path can be switched off by restoring the plain-op code it replaced, so
# its gain is measured in the same process, interleaved like everything else (--ablations).


def _plain_poly_jacobian_sq(z, a, rn, bound, range_control="linear"):
    h, slope = CF.poly_activation_and_slope(z, a, bound, range_control)
    return h, CF.layer_jacobian_sq(slope, rn)


def _plain_poly(z, a, bound, range_control="linear"):
    return CF.poly_activation_and_slope(z, a, bound, range_control)[0]


def _plain_linear(x, weight, bias):
    return F.linear(x, weight, bias), CF.row_norms_sq(weight)


def _patches(names: str):
    """(object, attribute, replacement) triples that switch off the named optimizations."""
    from chainzrule import activations

    out = []
    for name in filter(None, names.split("+")):
        if name == "nopolyfn":  # σ, σ' and ‖S‖² by plain ops + autograd instead of the fused kernels
            out.append((CF, "poly_activation_and_jacobian_sq", _plain_poly_jacobian_sq))
            out.append((CF, "poly_activation", _plain_poly))
        elif name == "nolinfuse":  # nn.Linear and the row norms as two autograd nodes (W.grad summed)
            out.append((CF, "linear_and_row_norms_sq", _plain_linear))
        elif name == "noreluopt":  # ReLU σ' as (z > 0).to(dtype), then squared
            out.append((activations.ReLU, "value_and_jacobian_sq",
                        activations.DerivativeActivation.value_and_jacobian_sq))
        else:
            raise ValueError(f"unknown ablation {name!r}")
    return out


class _Patched:
    def __init__(self, names: str):
        self.patches = _patches(names)

    def __enter__(self):
        self.saved = [(o, a, o.__dict__[a] if isinstance(o, type) else getattr(o, a)) for o, a, _ in self.patches]
        for o, a, v in self.patches:
            setattr(o, a, v)

    def __exit__(self, *exc):
        for o, a, v in reversed(self.saved):
            setattr(o, a, v)


ABLATIONS = [  # (label, model kind, switched-off optimizations)
    ("relu", "relu", ""),
    ("relu_dreg, plain ops", "relu_dreg", "noreluopt+nolinfuse"),
    ("relu_dreg + sign mask", "relu_dreg", "nolinfuse"),
    ("relu_dreg + fused linear (final)", "relu_dreg", ""),
    ("cr, plain ops + autograd", "cr", "nopolyfn"),
    ("cr (final: fused kernel)", "cr", ""),
    ("cr_dreg, plain ops + autograd", "cr_dreg", "nopolyfn+nolinfuse"),
    ("cr_dreg + fused poly kernel", "cr_dreg", "nolinfuse"),
    ("cr_dreg + fused linear (final)", "cr_dreg", ""),
]


# ----------------------------------------------------------------------------- variants


def _model(kind: str) -> torch.nn.Module:
    torch.manual_seed(0)  # every ReLU variant starts from the same weights, every CR one too
    if kind.startswith("cr"):
        return cz.ChainzRuleMLP(IN, HIDDEN, OUT)
    return cz.MLP(IN, HIDDEN, OUT, activation="relu")


def make_step(kind: str, x: torch.Tensor, y: torch.Tensor, ablate: str = ""):
    """A closure running one train step of ``kind`` and returning (t_forward, t_backward, t_opt).

    ``ablate``: "+"-joined optimizations to switch off for this variant (see ``_patches``).
    """
    model = _model(kind)
    patched = _Patched(ablate)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, **({"fused": True} if FUSED_ADAM else {}))
    forward = model
    if kind.endswith("_compiled"):
        forward = torch.compile(model)
    B = x.shape[0]

    def loss_fn():
        if kind in ("relu", "cr", "relu_compiled", "cr_compiled"):
            return F.cross_entropy(forward(x), y)
        if kind in ("relu_dreg", "cr_dreg", "relu_dreg_compiled", "cr_dreg_compiled"):
            logits, jsq = forward(x, return_jacobian=True)  # [B, OUT], [B, layers]
            return F.cross_entropy(logits, y) + LAM * cz.dreg_penalty(jsq)
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
        with patched:
            t0 = CLOCK()
            opt.zero_grad(set_to_none=True)
            loss = loss_fn()
            t1 = CLOCK()
            loss.backward()
            t2 = CLOCK()
            opt.step()
            t3 = CLOCK()
        return t1 - t0, t2 - t1, t3 - t2

    step.model = model
    return step


# ----------------------------------------------------------------------------- measurement


def _clock_name() -> str:
    return "process CPU time" if CLOCK is time.process_time else "wall time"


def _loadavg() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:  # pragma: no cover
        return "n/a"


def measure(variants, repeats, warmup, max_seconds, x, y, specs=None):
    """Interleaved rounds; ``specs`` maps a variant label to (model kind, ablations)."""
    specs = specs or {}
    steps = {}
    compile_s = {}
    for kind in variants:
        model_kind, ablate = specs.get(kind, (kind, ""))
        steps[kind] = make_step(model_kind, x, y, ablate)
        t = time.perf_counter()
        steps[kind]()  # first step (compiles, for the compiled variant)
        if kind.endswith("_compiled"):
            compile_s[kind] = time.perf_counter() - t
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
            p10=_pct(total[kind], 0.1) * 1e3,
            fwd=statistics.median(t[0] for t in tt) * 1e3,
            bwd=statistics.median(t[1] for t in tt) * 1e3,
            opt=statistics.median(t[2] for t in tt) * 1e3,
        ))
    ratios = []
    for num, den, target in RATIOS:
        if num in total and den in total:
            r = [a / b for a, b in zip(total[num], total[den])]  # same round: paired
            ratios.append(dict(num=num, den=den, target=target, median=statistics.median(r),
                               q25=_pct(r, 0.25), q75=_pct(r, 0.75),
                               floor=_pct(total[num], 0.1) / _pct(total[den], 0.1)))
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


def profile(variants, x, y, rounds=10):
    """Self CPU time per step split into matmul / Adam / everything else, profiled one step at a
    time in interleaved rounds (like the timing)."""
    from torch.profiler import ProfilerActivity, profile as tprofile

    steps = {kind: make_step(kind, x, y) for kind in variants}
    for step in steps.values():
        for _ in range(5):
            step()
    by_name = {kind: {} for kind in variants}
    optim = dict.fromkeys(variants, 0.0)
    for _ in range(rounds):
        for kind in variants:
            with tprofile(activities=[ProfilerActivity.CPU]) as prof:
                steps[kind]()
            for e in prof.events():  # ops under Optimizer.step count as Adam
                anc, in_opt = e.cpu_parent, e.name.startswith("Optimizer.")
                while anc is not None and not in_opt:
                    in_opt = anc.name.startswith("Optimizer.")
                    anc = anc.cpu_parent
                if in_opt:
                    optim[kind] += e.self_cpu_time_total
                else:
                    by_name[kind][e.name] = by_name[kind].get(e.name, 0.0) + e.self_cpu_time_total
    out = []
    for kind in variants:
        names = by_name[kind]
        matmul = sum(v for k, v in names.items() if k in MATMUL_OPS)
        total = optim[kind] + sum(names.values())
        top = sorted(((k, v) for k, v in names.items() if k not in MATMUL_OPS), key=lambda kv: -kv[1])[:5]
        out.append(dict(
            variant=kind, total=total / rounds / 1e3, matmul=matmul / rounds / 1e3,
            optim=optim[kind] / rounds / 1e3, other=(total - matmul - optim[kind]) / rounds / 1e3,
            top=", ".join(f"{k.replace('aten::', '')} {v / rounds / 1e3:.2f}" for k, v in top),
        ))
    return out


def render_profile(rows, meta, markers) -> str:
    lines = [markers[0], "",
             f"Command: `{meta['command']}`  ",
             f"Date: {meta['date']}  ",
             f"Machine: {meta['machine']}  ",
             f"Rounds: {meta['rounds']} interleaved, one profiled step per variant per round; "
             f"load average before / after: {meta['load_before']} / {meta['load_after']}  ",
             "",
             "| variant | profiled ms/step | matmul (mm, addmm, mv) | Adam step | elementwise + other "
             "| elementwise + other, share | largest non-matmul ops (ms/step) |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['variant']} | {r['total']:.2f} | {r['matmul']:.2f} | {r['optim']:.2f} | "
                     f"{r['other']:.2f} | {r['other'] / r['total']:.0%} | {r['top']} |")
    lines += ["", markers[1]]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- report


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> str:
    return (f"{_cpu_model()}, {os.cpu_count()} logical CPUs, "
            f"torch {torch.__version__} ({torch.backends.cpu.get_cpu_capability()}), "
            f"{torch.get_num_threads()} intra-op threads, Python {platform.python_version()}")


def _markers(args, kind: str = "") -> tuple[str, str]:
    """Markers of the BENCHMARKS.md block this run writes: one block per mode and configuration."""
    tags = [kind] if kind else []
    if (args.width, args.batch) != (1024, 256) and kind != "scaling":
        tags.append(f"784-{args.width}-{args.width}-10,batch={args.batch}")
    if args.threads:
        tags.append(f"threads={args.threads}")
    if args.input_scale != 1.0:
        tags.append(f"input-scale={args.input_scale:g}")
    if args.compile:
        tags.append("compile")
    if args.fused_adam:
        tags.append("fused-adam")
    if args.clock != "wall":
        tags.append(f"clock={args.clock}")
    if not tags:
        return BEGIN, END
    tag = ",".join(tags)  # e.g. "ablations,threads=1"
    return f"<!-- bench_step[{tag}]:begin -->", f"<!-- bench_step[{tag}]:end -->"


def render(rows, ratios, meta, markers=(BEGIN, END)) -> str:
    lines = [markers[0], ""]
    lines.append(f"Command: `{meta['command']}`  ")
    lines.append(f"Date: {meta['date']}  ")
    lines.append(f"Machine: {meta['machine']}  ")
    lines.append(f"Rounds: {meta['rounds']} interleaved (warm-up {meta['warmup']} steps each), {_clock_name()}; "
                 f"load average before / after: {meta['load_before']} / {meta['load_after']}  ")
    if meta.get("outside"):
        lines.append(f"CR pre-activations outside [-R, R] (layer 1, layer 2): {meta['outside']}  ")
    for kind, sec in (meta.get("compile_s") or {}).items():
        lines.append(f"torch.compile: first step of {kind} (compilation) took {sec:.1f} s  ")
    lines += ["", "| ratio | median of per-round ratios | IQR | ratio of 10th-percentile times | target | met (median) |",
              "|---|---|---|---|---|---|"]
    for r in ratios:
        tgt = f"≤ {r['target']:.2f}" if r["target"] else "—"
        met = ("yes" if r["median"] <= r["target"] else "**no**") if r["target"] else "—"
        lines.append(f"| {r['num']} / {r['den']} | {r['median']:.3f} | {r['q25']:.3f}–{r['q75']:.3f} "
                     f"| {r['floor']:.3f} | {tgt} | {met} |")
    lines += ["", "| variant | step ms (median) | step ms (10th pct) | forward+loss | backward | Adam step |",
              "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['variant']} | {r['step']:.2f} | {r['p10']:.2f} | {r['fwd']:.2f} | {r['bwd']:.2f} | {r['opt']:.2f} |")
    lines += ["", markers[1]]
    return "\n".join(lines)


def write_markdown(block: str, begin: str = BEGIN, end: str = END) -> None:
    """Replace the text between ``begin`` and ``end`` in BENCHMARKS.md (appending them if absent)."""
    text = BENCH_MD.read_text() if BENCH_MD.exists() else "# Benchmarks\n"
    if begin not in text:
        text = text.rstrip() + "\n\n" + begin + "\n" + end + "\n"
    pattern = re.compile(re.escape(begin) + ".*?" + re.escape(end), re.S)
    BENCH_MD.write_text(pattern.sub(lambda _: block, text, count=1))


def _emit(block: str, markers: tuple[str, str], args) -> int:
    """Print a result block and, with ``--write``, put it between its markers in BENCHMARKS.md."""
    print(block)
    if args.write:
        write_markdown(block, *markers)
        print(f"updated {BENCH_MD}")
    return 0


def run_ablations(args, x, y) -> int:
    specs = {label: (kind, ablate) for label, kind, ablate in ABLATIONS}
    labels = [label for label, _, _ in ABLATIONS]
    load_before = _loadavg()
    times, rounds, _, _ = measure(labels, args.repeats, args.warmup, args.max_seconds, x, y, specs)
    total = {k: [sum(t) for t in v] for k, v in times.items()}
    markers = _markers(args, "ablations")
    lines = [markers[0], "",
             f"Command: `python benchmarks/bench_step.py {' '.join(args.argv)}`  ",
             f"Date: {_dt.datetime.now(_dt.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}  ",
             f"Machine: {machine()}  ",
             f"Rounds: {rounds} interleaved, {_clock_name()}; load average before / after: {load_before} / {_loadavg()}  ",
             "", "| variant | switched off | step ms (median) | / relu (median of per-round ratios) | IQR |",
             "|---|---|---|---|---|"]
    for label, kind, ablate in ABLATIONS:
        r = [a / b for a, b in zip(total[label], total["relu"])]
        lines.append(f"| {label} | {ablate.replace('+', ', ') or '—'} | {statistics.median(total[label]) * 1e3:.2f} "
                     f"| {statistics.median(r):.3f} | {_pct(r, 0.25):.3f}–{_pct(r, 0.75):.3f} |")
    lines += ["", markers[1]]
    return _emit("\n".join(lines), markers, args)


SCALING_WIDTHS = (256, 1024, 4096)
SCALING_BATCHES = (64, 256, 1024)
SCALING_VARIANTS = ["relu", "relu_dreg", "cr", "cr_dreg", "relu_igp"]


def run_scaling(args) -> int:
    """Ratios over hidden widths × batch sizes (784-w-w-10): how DREG's O(batch·width) extra work
    compares with a step whose matmuls are O(batch·width²), and with a double-backward penalty."""
    global HIDDEN, BATCH
    markers = _markers(args, "scaling")
    load_before = _loadavg()
    lines = [markers[0], "",
             f"Command: `python benchmarks/bench_step.py {' '.join(args.argv)}`  ",
             f"Date: {_dt.datetime.now(_dt.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}  ",
             f"Machine: {machine()}  ",
             f"Per cell: up to {args.repeats} interleaved rounds or {args.max_seconds:g} s, {_clock_name()}; "
             "median of per-round ratios  ", "",
             "| width | batch | relu step ms | relu_dreg / relu | cr / relu | cr_dreg / relu | cr_dreg / cr "
             "| relu_igp / relu | rounds |",
             "|---|---|---|---|---|---|---|---|---|"]
    for width in SCALING_WIDTHS:
        for batch in SCALING_BATCHES:
            HIDDEN, BATCH = [width, width], batch
            torch.manual_seed(1234)
            x, y = torch.randn(batch, IN), torch.randint(0, OUT, (batch,))
            times, rounds, _, _ = measure(SCALING_VARIANTS, args.repeats, 2, args.max_seconds, x, y)
            total = {k: [sum(t) for t in v] for k, v in times.items()}
            ratio = lambda a, b: statistics.median(p / q for p, q in zip(total[a], total[b]))  # noqa: E731
            lines.append(f"| {width} | {batch} | {statistics.median(total['relu']) * 1e3:.2f} "
                         f"| {ratio('relu_dreg', 'relu'):.3f} | {ratio('cr', 'relu'):.3f} "
                         f"| {ratio('cr_dreg', 'relu'):.3f} | {ratio('cr_dreg', 'cr'):.3f} "
                         f"| {ratio('relu_igp', 'relu'):.3f} | {rounds} |")
            print(lines[-1], flush=True)
    lines += ["", f"Load average before / after: {load_before} / {_loadavg()}", "", markers[1]]
    return _emit("\n".join(lines), markers, args)


def main(argv=None) -> int:
    global CLOCK, HIDDEN, BATCH, FUSED_ADAM
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=150, help="interleaved rounds (default 150)")
    ap.add_argument("--warmup", type=int, default=5, help="warm-up steps per variant (default 5)")
    ap.add_argument("--max-seconds", type=float, default=150.0,
                    help="stop measuring after this many seconds even if rounds remain (default 150)")
    ap.add_argument("--variants", default=",".join(ALL_VARIANTS), help="comma-separated subset")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    ap.add_argument("--width", type=int, default=HIDDEN[0], help=f"hidden width of both layers (default {HIDDEN[0]})")
    ap.add_argument("--batch", type=int, default=BATCH, help=f"batch size (default {BATCH})")
    ap.add_argument("--input-scale", type=float, default=1.0,
                    help="multiply the random inputs (pushes CR pre-activations outside [-R, R])")
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                    help="wall time (default) or process CPU time (with --threads 1 it ignores the "
                         "time other processes hold the core; with more threads it counts spinning)")
    ap.add_argument("--compile", action="store_true",
                    help="add the torch.compile(model) twin (inductor) of every relu/relu_dreg/cr/cr_dreg variant")
    ap.add_argument("--fused-adam", action="store_true",
                    help="every variant's Adam with torch's fused kernel (fused=True) instead of the default foreach one")
    ap.add_argument("--profile", action="store_true", help="print the matmul / elementwise / Adam split")
    ap.add_argument("--ablations", action="store_true",
                    help="measure each optimization of the hot path switched off, one at a time")
    ap.add_argument("--scaling", action="store_true",
                    help=f"ratios over widths {SCALING_WIDTHS} x batches {SCALING_BATCHES} (use --max-seconds per cell)")
    ap.add_argument("--write", action="store_true", help=f"update {BENCH_MD.name}")
    args = ap.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    FUSED_ADAM = args.fused_adam
    HIDDEN, BATCH = [args.width, args.width], args.batch
    if args.clock == "cpu":
        CLOCK = time.process_time
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    if args.compile:
        variants += [f"{v}_compiled" for v in variants if v in ("relu", "relu_dreg", "cr", "cr_dreg")
                     and f"{v}_compiled" not in variants]
    if "relu" not in variants:
        variants.insert(0, "relu")
    torch.manual_seed(1234)
    x = args.input_scale * torch.randn(BATCH, IN)
    y = torch.randint(0, OUT, (BATCH,))

    if args.profile:
        load_before = _loadavg()
        rows = profile(variants, x, y, rounds=max(1, min(args.repeats, 20)))
        meta = dict(command=" ".join(["python benchmarks/bench_step.py"] + args.argv),
                    date=_dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                    machine=machine(), rounds=max(1, min(args.repeats, 20)),
                    load_before=load_before, load_after=_loadavg())
        markers = _markers(args, "profile")
        return _emit(render_profile(rows, meta, markers), markers, args)

    load_before = _loadavg()
    if args.scaling:
        return run_scaling(args)
    if args.ablations:
        return run_ablations(args, x, y)
    times, rounds, compile_s, steps = measure(
        variants, args.repeats, args.warmup, args.max_seconds, x, y)
    rows, ratios = summarize(times)
    meta = dict(
        command=" ".join(["python benchmarks/bench_step.py"] + args.argv),
        date=_dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        machine=machine(), rounds=rounds, warmup=args.warmup, load_before=load_before,
        load_after=_loadavg(), compile_s=compile_s,
        outside=outside_fraction(steps["cr_dreg"], x) if "cr_dreg" in steps else "",
    )
    markers = _markers(args)
    return _emit(render(rows, ratios, meta, markers), markers, args)


if __name__ == "__main__":
    sys.exit(main())
