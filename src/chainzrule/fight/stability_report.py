"""``report.md`` of a stability map: protocol, command, heatmaps and the tables behind them.

:func:`render_report` only formats; the numbers come from
:func:`chainzrule.fight.stability.run_row` (per run) and :func:`~chainzrule.fight.stability.summarize`
(per cell). Sections: header (command, data, grid, the unstable rule), at a glance (per contender:
the largest learning rate with no unstable seed at any λ, the best cell), the four heatmaps, one
lr × λ table per metric, and the list of unstable runs.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable

from .stability_figures import fmt_value
from .stability_spec import StabilitySpec

__all__ = ["render_report"]


def _f(v: Any, spec: str = ".3g") -> str:
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    return format(v, spec) if ok else "n/a"


def _acc(cell: dict) -> str:
    m, s = cell.get("accuracy_mean"), cell.get("accuracy_std")
    if m is None:
        return "n/a"
    return f"{100 * m:.2f}" + (f" ± {100 * s:.2f}" if s is not None else "")


METRIC_TABLES: tuple[tuple[str, Callable[[dict], str]], ...] = (
    ("Test accuracy (%), mean ± std over seeds", _acc),
    ("PGV, mean over seeds", lambda c: _f(c.get("pgv_mean"))),
    ("Maximum gradient norm over steps and seeds", lambda c: _f(c.get("grad_norm_max"))),
    ("Unstable seeds", lambda c: f"{c['unstable_runs']}/{c['seeds']}"),
)


def _header(spec: StabilitySpec, rows: list[dict]) -> list[str]:
    b = spec.base
    keys = ("epochs", "hidden", "batch_size", "optimizer", "lr_schedule", "limit", "diag_examples")
    base = ", ".join(f"{k} = {b[k]}" for k in keys if k in b)
    seeds = ", ".join(f"{c.name}: {c.seeds}" for c in spec.contenders)
    L = [f"# Stability map: {spec.name}", ""]
    if spec.description:
        L += [spec.description, ""]
    L += [f"- **Command**: `{spec.command}`" if spec.command else "- **Command**: (library call)",
          f"- **Spec**: `{spec.source}`{' (quick profile)' if spec.quick else ''}; run on {spec.created}",
          f"- **Data**: {spec.dataset}; base config: {base or 'defaults'}",
          f"- **Grid**: learning rate ∈ {{{', '.join(map(fmt_value, spec.lrs))}}} × DREG λ ∈ "
          f"{{{', '.join(map(fmt_value, spec.lambdas))}}}; seeds per contender: {seeds}; {len(rows)} runs",
          f"- **Unstable run**: a non-finite gradient norm, training loss or test accuracy, or a maximum "
          f"gradient norm above {spec.unstable_ratio:g}× the run's median gradient norm. Unstable runs stay in "
          "the accuracy means and are counted in their own table. The rule is scale-free: a run whose gradient "
          "norm is large at every step is not flagged by it (the maximum-gradient-norm heatmap shows such runs).",
          "- Every run reads the test split once, at its end; there is no tuning (the grid is the experiment).",
          ""]
    return L


def _glance(spec: StabilitySpec, summary: list[dict]) -> list[str]:
    L = ["## At a glance", "",
         "| contender | unstable runs | largest lr up to which no seed is unstable at any λ | best cell (accuracy) |",
         "|---|---|---|---|"]
    for c in spec.contenders:
        cells = [s for s in summary if s["contender"] == c.name]
        bad = sum(s["unstable_runs"] for s in cells)
        total = sum(s["seeds"] for s in cells)
        clean = [lr for lr in spec.lrs if all(s["unstable_runs"] == 0 for s in cells if s["lr"] == lr)]
        safe = max((lr for lr in clean if all(x in clean for x in spec.lrs if x <= lr)), default=None)
        scored = [s for s in cells if s["accuracy_mean"] is not None]
        best = max(scored, key=lambda s: s["accuracy_mean"], default=None)
        best_txt = f"{_acc(best)} at lr {fmt_value(best['lr'])}, λ {fmt_value(best['lambda'])}" if best else "n/a"
        L.append(f"| {c.label} | {bad}/{total} | {fmt_value(safe) if safe is not None else 'none'} | {best_txt} |")
    return L + [""]


def _metric_table(spec: StabilitySpec, cells: dict, title: str, text: Callable[[dict], str]) -> list[str]:
    L = [f"### {title}", "", "| contender | lr | " + " | ".join(f"λ = {fmt_value(v)}" for v in spec.lambdas) + " |",
         "|---|---|" + "---|" * len(spec.lambdas)]
    for c in spec.contenders:
        for lr in spec.lrs:
            vals = [text(cells[(c.name, lr, lam)]) if (c.name, lr, lam) in cells else "n/a" for lam in spec.lambdas]
            L.append(f"| {c.label} | {fmt_value(lr)} | " + " | ".join(vals) + " |")
    return L + [""]


def _unstable(rows: list[dict]) -> list[str]:
    bad = [r for r in rows if r["unstable"]]
    L = ["## Unstable runs", ""]
    if not bad:
        return L + ["None.", ""]
    L += ["| contender | lr | λ | seed | max G | median G | max/median | non-finite steps | test acc. (%) |",
          "|---|---|---|---|---|---|---|---|---|"]
    for r in bad:
        acc = r["test_accuracy"]
        L.append(f"| {r['label']} | {fmt_value(r['lr'])} | {fmt_value(r['lambda'])} | {r['seed']} | "
                 f"{_f(r['grad_norm_max'])} | {_f(r['grad_norm_median'])} | {_f(r['grad_norm_ratio'])} | "
                 f"{r['nonfinite_steps']} | {_f(100 * acc if isinstance(acc, (int, float)) else None, '.2f')} |")
    return L + [""]


def render_report(spec: StabilitySpec, rows: list[dict], summary: list[dict], figures: dict[str, Path]) -> str:
    """The markdown of ``report.md``; ``figures`` maps heatmap names to PNG paths next to it."""
    cells = {(s["contender"], s["lr"], s["lambda"]): s for s in summary}
    L = _header(spec, rows) + _glance(spec, summary) + ["## Heatmaps", ""]
    for name, path in figures.items():
        L += [f"![{name}]({Path(path).name})", ""]
    L += ["## Tables", "", "Rows: contender and learning rate; columns: DREG λ.", ""]
    for title, text in METRIC_TABLES:
        L += _metric_table(spec, cells, title, text)
    L += _unstable(rows)
    L += ["## Files", "", "- `stability.csv`: one row per run; `summary.csv`: one row per (contender, lr, λ);",
          "- `runs/<key>.json`: each run's full record (config, result, gradient-norm trace);",
          "- `spec.json`: the resolved spec and the command above.", ""]
    return "\n".join(L)
