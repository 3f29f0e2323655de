"""Heatmaps of a stability map: one figure per metric, one panel per contender.

Each panel is the lr × λ grid of one contender (λ left to right, learning rate bottom to top);
every panel of a figure shares one colour scale and one colour bar, and every cell is annotated
with its value. Colours run bright = better in every figure (viridis for accuracy, reversed
viridis for PGV, maximum gradient norm and unstable share). PGV and the maximum gradient norm
use a logarithmic colour scale (they span orders of magnitude when a run spikes); the accuracy
scale spans at most the 5 points below the best cell, so near-equal cells stay distinguishable
(worse cells take the bottom colour; the colour bar is extended). Cells without a finite value
are grey and marked "n/a".

matplotlib is imported inside the functions and drives the Agg canvas directly
(:class:`matplotlib.figure.Figure`, no pyplot), so importing this module or plotting changes no
global backend. PNGs are written atomically.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..data.cache import atomic_write_bytes
from .stability_spec import StabilitySpec

__all__ = ["HEATMAPS", "plot_heatmaps", "fmt_value"]

MAX_COLUMNS = 4
ACCURACY_SPAN = 5.0  # points below the best cell that the accuracy colour scale shows


@dataclass(frozen=True)
class Heatmap:
    """One figure: the summary.csv column it shows, its title and how cells are coloured/written."""

    name: str
    column: str
    title: str
    unit: str
    higher_is_better: bool
    log: bool
    text: Callable[[dict], str]


def fmt_value(v: float) -> str:
    """Grid values as axis labels: ``0`` for zero, else 3 significant digits.

    >>> [fmt_value(v) for v in (0.0, 1e-3, 10 ** -2.5, 3e-2)]
    ['0', '0.001', '0.00316', '0.03']
    """
    return "0" if v == 0 else f"{v:.3g}"


def to_number(v: Any) -> float:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else math.nan


def _acc_text(cell: dict) -> str:
    mean, std = to_number(cell.get("accuracy_mean")), to_number(cell.get("accuracy_std"))
    if math.isnan(mean):
        return "n/a"
    return f"{100 * mean:.2f}" + ("" if math.isnan(std) else f"\n±{100 * std:.2f}")


def _num_text(column: str) -> Callable[[dict], str]:
    return lambda cell: "n/a" if math.isnan(to_number(cell.get(column))) else f"{to_number(cell.get(column)):.3g}"


HEATMAPS = (
    Heatmap("accuracy", "accuracy_mean", "test accuracy (%), mean ± std over seeds", "test accuracy (%)", True, False,
            _acc_text),
    Heatmap("pgv", "pgv_mean", "peak gradient volatility (PGV), mean over seeds (log colour scale)", "PGV", False, True,
            _num_text("pgv_mean")),
    Heatmap("grad_norm_max", "grad_norm_max", "maximum gradient norm over steps and seeds (log colour scale)",
            "max gradient norm", False, True, _num_text("grad_norm_max")),
    Heatmap("unstable", "unstable_share", "unstable seeds (non-finite, or max > {ratio:g} × median gradient norm)",
            "share of unstable seeds", False, False, lambda cell: f"{cell['unstable_runs']}/{cell['seeds']}"),
)


def _grid(spec: StabilitySpec, cells: dict, name: str, column: str) -> np.ndarray:
    """Values of ``column`` for one contender as an array [n_lrs, n_lambdas] (NaN where missing)."""
    scale = 100.0 if column == "accuracy_mean" else 1.0
    return np.array([[scale * to_number((cells.get((name, lr, lam)) or {}).get(column)) for lam in spec.lambdas]
                     for lr in spec.lrs])


def _norm(h: Heatmap, values: np.ndarray):
    """Colour normalisation shared by all panels; returns (norm, colour-bar extend)."""
    from matplotlib.colors import LogNorm, Normalize

    if h.name == "unstable":
        return Normalize(0.0, 1.0), "neither"
    v = values[np.isfinite(values) & ((values > 0) if h.log else True)]
    if v.size == 0:
        return (LogNorm(1.0, 10.0) if h.log else Normalize(0.0, 1.0)), "neither"
    lo, hi = float(v.min()), float(v.max())
    if h.log:
        lo, hi = (lo / 2, hi * 2) if lo == hi else (lo, hi)
        return LogNorm(lo, hi), "neither"
    extend = "neither"
    if h.higher_is_better and hi - lo > ACCURACY_SPAN:
        lo, extend = hi - ACCURACY_SPAN, "min"
    if lo == hi:
        lo, hi = lo - 0.5, hi + 0.5
    return Normalize(lo, hi), extend


def _panel(ax, spec: StabilitySpec, grid: np.ndarray, cells: list[list[dict]], h: Heatmap, norm, cmap) -> None:
    """Draw one contender's annotated lr × λ heatmap on ``ax``. ``grid``: [n_lrs, n_lambdas]."""
    shown = np.ma.masked_invalid(np.where(grid > 0, grid, np.nan) if h.log else grid)
    ax.imshow(shown, cmap=cmap, norm=norm, origin="lower", aspect="auto", interpolation="nearest")
    for i in range(grid.shape[0]):
        for j in range(grid.shape[1]):
            v = shown[i, j]
            r, g, b, _ = cmap(norm(v)) if v is not np.ma.masked else cmap.get_bad()
            colour = "black" if 0.299 * r + 0.587 * g + 0.114 * b > 0.5 else "white"
            ax.text(j, i, h.text(cells[i][j]) if cells[i][j] else "n/a", ha="center", va="center",
                    fontsize=7, color=colour)
    ax.set_xticks(range(len(spec.lambdas)), [fmt_value(v) for v in spec.lambdas], fontsize=7,
                  rotation=30 if len(spec.lambdas) > 4 else 0)
    ax.set_yticks(range(len(spec.lrs)), [fmt_value(v) for v in spec.lrs], fontsize=7)
    ax.set_xlabel("DREG λ", fontsize=8)
    ax.set_ylabel("learning rate", fontsize=8)


def _label_bar(bar, norm, log: bool) -> None:
    """Plain numbers on the colour bar (no 4×10⁰); on a log bar spanning under 1.5 decades the
    minor ticks are labelled too, else only the decades."""
    from matplotlib.ticker import FuncFormatter

    plain = FuncFormatter(lambda v, _: f"{v:.3g}")
    bar.ax.yaxis.set_major_formatter(plain)
    if log:
        narrow = math.log10(norm.vmax / norm.vmin) < 1.5
        bar.ax.yaxis.set_minor_formatter(plain if narrow else FuncFormatter(lambda v, _: ""))
    bar.ax.tick_params(which="both", labelsize=7)


def _figure(spec: StabilitySpec, cells: dict, h: Heatmap):
    """The Figure of heatmap ``h``: one panel per contender, shared colour scale and bar."""
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.cm import ScalarMappable
    from matplotlib.figure import Figure

    names = [c.name for c in spec.contenders]
    grids = {n: _grid(spec, cells, n, h.column) for n in names}
    norm, extend = _norm(h, np.concatenate([g.ravel() for g in grids.values()]))
    cmap = matplotlib.colormaps["viridis" if h.higher_is_better else "viridis_r"].with_extremes(bad="0.85")
    ncols = min(MAX_COLUMNS, len(names))
    nrows = math.ceil(len(names) / ncols)
    w, ht = 0.62 * len(spec.lambdas) + 1.3, 0.5 * len(spec.lrs) + 1.3
    fig = Figure(figsize=(ncols * w + 1.0, nrows * ht + 0.6), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, c in zip(axes, spec.contenders):
        table = [[cells.get((c.name, lr, lam)) for lam in spec.lambdas] for lr in spec.lrs]
        _panel(ax, spec, grids[c.name], table, h, norm, cmap)
        ax.set_title(f"{c.label}  ({c.seeds} seed{'s' * (c.seeds > 1)})", fontsize=9)
    for ax in axes[len(names):]:
        ax.set_visible(False)
    bar = fig.colorbar(ScalarMappable(norm, cmap), ax=list(axes[:len(names)]), extend=extend, shrink=0.9)
    _label_bar(bar, norm, h.log)
    bar.set_label(h.unit, fontsize=8)
    fig.suptitle(f"{spec.name}: {h.title.format(ratio=spec.unstable_ratio)}", fontsize=10)
    return fig


def plot_heatmaps(spec: StabilitySpec, summary: list[dict], out: Path) -> dict[str, Path]:
    """Write ``out/heatmap_<name>.png`` for every entry of :data:`HEATMAPS`.

    ``summary`` holds one dict per (contender, lr, λ) cell (``summary.csv`` rows). Returns
    ``{name: path}`` in the order of :data:`HEATMAPS`.
    """
    cells = {(r["contender"], r["lr"], r["lambda"]): r for r in summary}
    paths = {}
    for h in HEATMAPS:
        fig = _figure(spec, cells, h)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=120)
        paths[h.name] = atomic_write_bytes(Path(out) / f"heatmap_{h.name}.png", buf.getvalue())
    return paths
