"""The fine-tuned encoder fight's outputs: per-head summaries, the paired verdict, the report.

From the run records of :mod:`.finetune_fight` (flattened to rows by its ``result_row``), this
writes ``spec.json``, ``results.csv``, ``summary.csv``, ``tuning.csv``, ``plots/dev_curves.png``
and ``report.md``: the claim's verdict (:func:`verdict`), a table per head (:func:`summarize_heads`),
the dev curves, what changed from ``previous/`` (:mod:`.finetune_changes`), the paired
differences between every pair of heads (:func:`paired_differences`), the head-lr tuning table,
the recipe and how the setting relates to the papers'.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..data.cache import atomic_write_text
from ..data.text import ENCODER_NAME as ENCODER
from ..errors import DataError
from ..finetune import FinetuneConfig
from .finetune_changes import head_changes, load_previous, previous_summary_floats
from .finetune_spec import FinetuneSpec
from .runner import write_results_csv

__all__ = ["summarize_heads", "paired_differences", "verdict", "write_outputs", "render_report"]


def summarize_heads(spec: FinetuneSpec, rows: list[dict]) -> list[dict[str, Any]]:
    """One row per head: mean ± std and 95% t-interval of test accuracy; paired difference to the
    baseline head (by seed) with its 95% t-interval; dev accuracy, MAE, QWK, time per run."""
    from .stats.summaries import summarize

    by = {c.name: {r["seed"]: r for r in rows if r["contender"] == c.name} for c in spec.contenders}
    base = by[spec.baseline]
    out = []
    for c in spec.contenders:
        rs = by[c.name]
        acc = [r["test_accuracy"] for r in rs.values() if r["test_accuracy"] is not None]
        s = summarize(acc) if acc else {"mean": None, "std": None, "n": 0, "ci_low": None, "ci_high": None}
        seeds = [k for k in rs if k in base and rs[k]["test_accuracy"] is not None and base[k]["test_accuracy"] is not None]
        diff = summarize([rs[k]["test_accuracy"] - base[k]["test_accuracy"] for k in seeds]) if seeds and c.name != spec.baseline else None

        def mean(key):
            v = [r[key] for r in rs.values() if r[key] is not None]
            return float(np.mean(v)) if v else None

        out.append({"contender": c.name, "label": c.label, "runs": len(rs), "diverged": sum(bool(r["diverged"]) for r in rs.values()),
                    "test_accuracy_mean": s["mean"], "test_accuracy_std": s["std"], "ci_low": s["ci_low"], "ci_high": s["ci_high"],
                    "diff_vs_baseline": diff["mean"] if diff else None,
                    "diff_ci_low": diff["ci_low"] if diff else None, "diff_ci_high": diff["ci_high"] if diff else None,
                    "val_accuracy_mean": mean("val_accuracy"), "test_mae_mean": mean("test_mae"),
                    "test_qwk_mean": mean("test_qwk"), "best_epoch_mean": mean("best_epoch"),
                    "params_head": next(iter(rs.values()))["params_head"] if rs else None,
                    "wall_seconds_mean": mean("wall_seconds")})
    return out


def paired_differences(spec: FinetuneSpec, rows: list[dict]) -> list[dict[str, Any]]:
    """Every pair of heads (in spec order, the later minus the earlier): the mean paired
    difference of test accuracy over the seeds both finished, in points, with its 95% t-interval.
    Consecutive heads of a spec built as an ablation ladder (head alone → + hidden layer → + DREG
    → polynomial) read as the attribution of each step.

    >>> from types import SimpleNamespace as NS
    >>> spec = NS(contenders=[NS(name="a"), NS(name="b")])
    >>> rows = [{"contender": c, "seed": s, "test_accuracy": v}
    ...         for c, vals in (("a", [40.0, 41.0]), ("b", [42.0, 44.0])) for s, v in enumerate(vals)]
    >>> d = paired_differences(spec, rows)[0]
    >>> d["contender"], d["versus"], d["diff"], d["n"]
    ('b', 'a', 2.5, 2)
    """
    from .stats.summaries import summarize

    acc = {c.name: {r["seed"]: r["test_accuracy"] for r in rows if r["contender"] == c.name
                    and r["test_accuracy"] is not None} for c in spec.contenders}
    out = []
    names = [c.name for c in spec.contenders]
    for j, b in enumerate(names):
        for a in names[:j]:
            seeds = sorted(set(acc[a]) & set(acc[b]))
            if not seeds:
                continue
            d = summarize([acc[b][k] - acc[a][k] for k in seeds])
            out.append({"contender": b, "versus": a, "diff": d["mean"], "ci_low": d["ci_low"], "ci_high": d["ci_high"],
                        "n": d["n"]})
    return out


def verdict(spec: FinetuneSpec, summary: list[dict], reference: str | None = None) -> tuple[str, str]:
    """The claim "the reference head beats the baseline head" (by ``claimed_gain`` points in the
    papers) for ``reference`` (default: the spec's first): ``supported`` when the paired 95%
    interval of the gain lies above 0 (checked first: the head beats the baseline, whatever the
    size of the gain; one below the papers' is said in the reason), else ``not supported`` when
    it lies below the claimed gain, ``inconclusive`` otherwise (or with fewer than 2 seeds)."""
    ref = next(s for s in summary if s["contender"] == (reference or spec.reference))
    lo, hi = ref["diff_ci_low"], ref["diff_ci_high"]
    if lo is None or hi is None or not np.isfinite(lo) or not np.isfinite(hi):
        return "inconclusive", "fewer than 2 paired seeds: no interval"
    why = f"gain {ref['diff_vs_baseline']:+.2f} points, 95% CI [{lo:+.2f}, {hi:+.2f}]; claimed {spec.claimed_gain:+.2f}"
    if lo > 0:
        return "supported", why + ("; it beats the baseline, by less than the papers' gain" if hi < spec.claimed_gain else "")
    if hi < spec.claimed_gain:
        return "not supported", why
    return "inconclusive", why


def write_outputs(spec: FinetuneSpec, out: Path, rows: list[dict], records: list[dict],
                  tuning: list[dict] | None = None) -> Path:
    """Write spec.json, results.csv, summary.csv, tuning.csv (with head-lr tuning),
    plots/dev_curves.png and report.md."""
    if not spec.created:
        spec.created = time.strftime("%Y-%m-%d")
    order = [c.name for c in spec.contenders]
    rows = sorted(rows, key=lambda r: (order.index(r["contender"]), r["seed"]))
    summary = summarize_heads(spec, rows)
    atomic_write_text(out / "spec.json", json.dumps(spec.to_dict(), indent=1))
    write_results_csv(out / "results.csv", rows)
    write_results_csv(out / "summary.csv", summary)
    if tuning:
        write_results_csv(out / "tuning.csv", tuning)
    figure = _plot_dev_curves(spec, records, out / "plots")
    return atomic_write_text(out / "report.md", render_report(spec, rows, summary, figure, tuning or [],
                                                              load_previous(out)))


def _plot_dev_curves(spec: FinetuneSpec, records: list[dict], folder: Path) -> str:
    """Development accuracy against training epoch as small multiples: a panel per head (shared
    axes), a line per seed, a star at each run's restored (best-dev) checkpoint, and the baseline
    head's mean curve in grey in every other panel for reference."""
    import math

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def curve(rec: dict) -> tuple[list[float], list[float], int]:
        h = rec["result"].get("history") or {}
        return h.get("epoch", []), [100 * v for v in h.get("val_accuracy", [])], rec["result"].get("best_eval", -1)

    folder.mkdir(parents=True, exist_ok=True)
    n = len(spec.contenders)
    cols = min(4, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.0 * cols, 2.5 * rows + 0.6), sharex=True, sharey=True, squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    base = [curve(r) for r in records if r["contender"] == spec.baseline]
    base_ep = base[0][0] if base else []
    base_mean = [float(np.mean([b[1][k] for b in base if k < len(b[1])])) for k in range(len(base_ep))]
    label = {c.name: c.label for c in spec.contenders}
    for ax, c in zip(axes.flat, spec.contenders):
        if c.name != spec.baseline and base_mean:
            ax.plot(base_ep, base_mean, color="0.6", lw=1.5, label=f"{label[spec.baseline]} (mean)")
        for j, rec in enumerate(r for r in records if r["contender"] == c.name):
            ep, acc, best = curve(rec)
            ax.plot(ep, acc, marker=".", color=colors[j % len(colors)], alpha=0.9, label=f"seed {rec['seed']}")
            if 0 <= best < len(acc):  # the restored checkpoint
                ax.plot([ep[best]], [acc[best]], marker="*", markersize=9, color=colors[j % len(colors)])
        ax.set_title(c.label, fontsize=8)
        ax.grid(alpha=0.3)
    for k, ax in enumerate(axes.flat):
        if k >= n:
            ax.axis("off")
        elif k + cols >= n:  # the lowest panel of its column: it carries the epoch axis
            ax.xaxis.set_tick_params(labelbottom=True)
            ax.set_xlabel("epoch")
    for ax in axes[:, 0]:
        ax.set_ylabel("dev accuracy (%)")
    handles, labels = max((ax.get_legend_handles_labels() for ax in axes.flat[:n]), key=lambda hl: len(hl[0]))
    if handles:
        fig.legend(handles, labels, loc="lower right", fontsize=7, frameon=False)
    fig.suptitle(f"{spec.name}: dev accuracy while fine-tuning (★ = restored checkpoint)", fontsize=10)
    fig.tight_layout()
    tmp = folder / ".dev_curves.png.tmp"
    fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
    tmp.replace(folder / "dev_curves.png")
    return "plots/dev_curves.png"


def _head_lr_section(spec: FinetuneSpec, tuning: list[dict]) -> list[str]:
    """Report lines: each head's dev accuracy (seed 0) at every tuned learning rate, the chosen one
    in bold, and a note for every choice at an end of a list of three or more; nothing without tuning."""
    if not spec.tunes:
        return []
    lrs = spec.all_head_lrs
    lines = ["## Head learning rate (chosen per head on dev)", "",
             "Each head was fine-tuned with seed 0 at every head learning rate below (everything else as in the recipe); "
             "the best dev accuracy chose its learning rate, and seed 0's final run is that run"
             + ("; – : not in that head's list" if any(spec.lrs_of(c) != lrs for c in spec.contenders if spec.tunes_head(c)) else "")
             + ". Dev accuracy, %:", "",
             "| Head | " + " | ".join(f"{lr:g}" for lr in lrs) + " |", "|---|" + "---|" * len(lrs)]
    edges = []
    for c in spec.contenders:
        own = spec.lrs_of(c)
        by_lr = {r["head_lr"]: r for r in tuning if r["contender"] == c.name}
        cells = []
        for lr in lrs:
            r = by_lr.get(lr)
            v = _f(r["val_accuracy"]) if r else "–"
            cells.append(f"**{v}**" if r and r["chosen"] else v)
            if r and r["chosen"] and len(own) > 2 and lr in (own[0], own[-1]):
                edges.append(f"{c.label} ({lr:g}, the {'lowest' if lr == own[0] else 'highest'})")
        lines.append(f"| {c.label} | " + " | ".join(cells) + " |")
    note = ("With two values every choice is at an end of the list." if max(len(spec.lrs_of(c)) for c in spec.contenders) == 2 else
            "Chosen at an end of the list: " + "; ".join(edges) + ". A wider list might do better there." if edges else
            "No head's choice is at an end of the list.")
    lines += ["", note, ""]
    return lines


def _pairs_section(spec: FinetuneSpec, rows: list[dict]) -> list[str]:
    """Report lines: the paired test-accuracy difference of every pair of heads (none with one head)."""
    label = {c.name: c.label for c in spec.contenders}
    pairs = paired_differences(spec, rows)
    if not pairs:
        return []
    lines = ["## Paired differences between heads (test accuracy, points)", "",
             "Each row is the head minus the one it is compared with, paired by seed (a seed fixes the batch order "
             "and the dropout masks for every head), with the 95% t-interval; with few seeds these intervals are "
             "wide, and they are not corrected for the number of pairs.", "",
             "| Head | minus | difference | 95% CI | seeds |", "|---|---|---|---|---|"]
    for d in pairs:
        lines.append(f"| {label[d['contender']]} | {label[d['versus']]} | {_f(d['diff'], '{:+.2f}')} | "
                     f"[{_f(d['ci_low'], '{:+.2f}')}, {_f(d['ci_high'], '{:+.2f}')}] | {d['n']} |")
    return lines + [""]


def _f(v, fmt="{:.2f}") -> str:
    return "–" if v is None or (isinstance(v, float) and not np.isfinite(v)) else fmt.format(v)


def _changes_section(spec: FinetuneSpec, rows: list[dict], summary: list[dict], tuning: list[dict],
                     previous: dict | None) -> list[str]:
    """Report lines: what changed from ``previous/`` (see :mod:`.finetune_changes`); nothing without it."""
    if previous is None:
        return []
    label = {c.name: c.label for c in spec.contenders}
    changes = []
    for ref in spec.references:
        try:
            before = verdict(spec, previous_summary_floats(previous), ref)[0]
        except StopIteration:  # the reference or the baseline head is new
            before = "–"
        changes.append(f"{label[ref]} **{before}** → **{verdict(spec, summary, ref)[0]}**")
    lines = ["## Changes from the previous results", "",
             f"The previous committed results are kept in `previous/`. Claim verdict (same rule): {'; '.join(changes)}. "
             "Run files are keyed by their config, so a run that did not change is reused, not "
             "retrained: the last column counts today's final runs that are previous final runs.", "",
             "| Head | previous test acc. % (runs) | now (runs) | change | head lr chosen: before → now | final runs reused |",
             "|---|---|---|---|---|---|"]
    for h in head_changes(summary, previous, rows, tuning):
        change = "new head" if h["new"] or h["previous"] is None else _f(h["now"] - h["previous"], "{:+.2f}")
        lr = f"{_f(h['lr_before'], '{:g}')} → {_f(h['lr_now'], '{:g}')}"
        lines.append(f"| {h['label']} | {_f(h['previous'])} ({h['previous_runs']}) | {_f(h['now'])} ({h['runs']}) | "
                     f"{change} | {lr} | {h['same_runs']} of {h['runs']} |")
    return lines + [""]


def render_report(spec: FinetuneSpec, rows: list[dict], summary: list[dict], figure: str,
                  tuning: list[dict] | None = None, previous: dict | None = None) -> str:
    """The fight's report.md (``tuning``: the ``tuning.csv`` rows, when head lrs were tuned;
    ``previous``: :func:`.finetune_changes.load_previous` of the folder, for a "Changes" section)."""
    if not rows:
        raise DataError("no finished runs to report")
    base = FinetuneConfig.from_dict({**spec.base, "seed": 0})
    label = {c.name: c.label for c in spec.contenders}
    walls = {r["key"]: r["wall_seconds"] or 0 for r in [*rows, *(tuning or [])]}  # a tuned seed 0 is in both
    total_h = sum(walls.values()) / 3600
    extra = len(walls) - len(rows)
    lines = [f"# Fine-tuned encoder fight: {spec.name}", "",
             f"{spec.description}", "",
             f"Command: `{spec.command}`  ", f"Date: {spec.created}  ",
             f"Runs: {len(rows)} ({len(spec.contenders)} heads × {spec.seeds} seeds)"
             + (f" and {extra} more to choose the head learning rates" if extra else "")
             + f"; {total_h:.2f} h of fine-tuning summed over the runs (runs overlap under `--jobs`)"
             + (" — **quick profile: a preview, not a result**" if spec.quick else ""), "",
             "## Claim", "",
             "| Claim | Verdict | Evidence |", "|---|---|---|",
             *(f"| {label[ref]} beats the standard head ({label[spec.baseline]}) when the encoder is fine-tuned "
               f"(papers: +{spec.claimed_gain:.2f} points with BERT) | **{v}** | {why} |"
               for ref in spec.references for v, why in [verdict(spec, summary, ref)]), "",
             "Rule: paired by seed, 95% t-interval of the test-accuracy gain; supported when it lies above 0 "
             "(checked first: the head beats the standard one, even by less than the papers' gain, which the "
             "evidence then says), else not supported when it lies below the claimed gain, inconclusive otherwise."
             + (" One row per head the spec names as a reference; the intervals are not corrected for there being "
                f"{len(spec.references)}." if spec.other_references else ""), "",
             "## Results (test split, best-dev checkpoint)", "",
             "| Head | runs | test acc. % (mean ± sd) | 95% CI | vs. baseline (paired) | dev acc. % | MAE | QWK | best epoch | head params | min / run |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for s in summary:
        diff = "–" if s["diff_vs_baseline"] is None else (
            f"{s['diff_vs_baseline']:+.2f} [{_f(s['diff_ci_low'], '{:+.2f}')}, {_f(s['diff_ci_high'], '{:+.2f}')}]")
        runs = f"{s['runs']} ({s['diverged']} diverged)" if s["diverged"] else str(s["runs"])
        lines.append(f"| {s['label']} | {runs} | "
                     f"{_f(s['test_accuracy_mean'])} ± {_f(s['test_accuracy_std'])} | [{_f(s['ci_low'])}, {_f(s['ci_high'])}] | "
                     f"{diff} | {_f(s['val_accuracy_mean'])} | {_f(s['test_mae_mean'], '{:.3f}')} | "
                     f"{_f(s['test_qwk_mean'], '{:.3f}')} | {_f(s['best_epoch_mean'], '{:.1f}')} | "
                     f"{s['params_head'] if s['params_head'] is not None else '–'} | {_f((s['wall_seconds_mean'] or 0) / 60, '{:.1f}')} |")
    lines += ["", f"![dev curves]({figure})", "",
              *_changes_section(spec, rows, summary, tuning or [], previous),
              *_pairs_section(spec, rows),
              *_head_lr_section(spec, tuning or []),
              "## Recipe (the same for every head" + (" but its learning rate)" if spec.tunes else ", not tuned)"), "",
              f"Encoder {ENCODER} (6 layers, 384-d, 22.7M parameters), fine-tuned end to end; mean pooling over real "
              f"tokens, LayerNorm, dropout {base.dropout}, then the head. AdamW, encoder lr {base.encoder_lr:g}, head lr "
              + ("tuned per head (above)" if spec.tunes else f"{spec.head_lrs[0] if spec.head_lrs else base.head_lr:g}")
              + f", weight decay {base.weight_decay:g} on weight matrices, linear warm-up over "
              f"{base.warmup:.0%} of the steps then linear decay; {base.epochs} epochs of batches of {base.batch_size} "
              f"(similar lengths), at most {base.max_length} tokens; dev accuracy {base.evals_per_epoch}× per epoch, the "
              f"best checkpoint restored before testing" + (f"; first {base.limit} sentences of each split" if base.limit else "") + ".", "",
              "## How this relates to the papers", "",
              "The papers fine-tune BERT-base (12 layers, 768-d, 110M parameters) and report 55.79% for the ChainzRule "
              "head vs 54.9% for the standard head; they publish no recipe. We fine-tune a 5× smaller encoder on two CPU "
              "cores with a standard recipe, so absolute accuracies are not comparable; what transfers is the claim that "
              "the head matters once the encoder moves. With few seeds the intervals are wide: a gain of the papers' size "
              "(under one point) needs many more seeds to be resolved.", ""]
    return "\n".join(lines)
