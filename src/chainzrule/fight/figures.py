"""The Fair Fight report's plots: one function per figure, each taking a loaded
:class:`~chainzrule.fight.loading.Fight`, saving a PNG to ``path`` and returning whether there
was anything to plot (False: nothing written).

:func:`plot_accuracy_vs_params`, :func:`plot_accuracy_vs_tau`, :func:`plot_grad_norms`,
:func:`plot_activations` and :func:`plot_lambda` are called by
:func:`chainzrule.fight.report.write_report`; matplotlib and torch are imported inside them
(through :func:`chainzrule.plots.new_figure`: no pyplot, no global backend switch).
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import numpy as np

from .formatting import is_fraction, metric_unit
from .loading import Fight, to_number

__all__ = [
    "plot_accuracy_vs_params",
    "plot_accuracy_vs_tau",
    "plot_grad_norms",
    "plot_activations",
    "plot_lambda",
    "plot_expected_max",
]

_LAMBDA_MARK = 10 ** -2.5  # the follow-up paper's fixed λ


def plot_accuracy_vs_params(fight: Fight, path: Path) -> bool:
    """Test accuracy against parameter count: every contender's final runs (points), and the width
    sweeps of the size view (one line per swept family: ChainzRule and the validation-chosen
    baseline family); the legend sits outside the axes."""
    from ..plots import new_figure, save_figure

    pm = fight.primary
    pts = []
    for name in fight.contenders():
        rows = fight.phase("final", name)
        params = [v for v in (to_number(r.get("params")) for r in rows) if v is not None and v > 0]
        s = fight.summary(rows, pm)
        if params and s:
            pts.append((name, fight.label(name), float(np.mean(params)), s))
    sweeps = {}
    for name in dict.fromkeys(r.get("contender") for r in fight.width_rows()):
        groups: dict[str, list] = {}
        for r in fight.width_rows(name):
            groups.setdefault(r.get("hidden") or "?", []).append(r)
        line = []
        for rs in groups.values():
            p = [v for v in (to_number(r.get("params")) for r in rs) if v]
            s = fight.summary(rs, pm)
            if p and s:
                line.append((float(np.mean(p)), s))
        if len(line) >= 2:
            sweeps[name] = sorted(line, key=lambda t: t[0])
    if not pts and not sweeps:
        return False
    scale = 100.0 if is_fraction(pm) else 1.0
    err = lambda s: 0 if s["n"] < 2 or s["std"] is None or not np.isfinite(s["std"]) else scale * s["std"]
    fig, ax = new_figure(figsize=(10.5, 5.0))
    cmap = _cmap(len(pts))
    for i, (name, label, p, s) in enumerate(pts):
        ref = name == fight.reference
        ax.errorbar([p], [scale * s["mean"]], yerr=[err(s)], fmt="*" if ref else "o", ms=11 if ref else 5, capsize=2,
                    color="k" if ref else cmap(i % cmap.N), alpha=1.0 if ref else 0.8, label=label + (" (reference)" if ref else ""))
    for j, (name, line) in enumerate(sweeps.items()):
        ax.errorbar([p for p, _ in line], [scale * s["mean"] for _, s in line], yerr=[err(s) for _, s in line],
                    fmt="s-" if name == fight.reference else "D--", color=("0.15", "tab:red", "tab:blue")[min(j, 2)],
                    capsize=3, lw=1.5, label=f"{fight.label(name)}: width sweep")
    units = "splits" if fight.resampled else "seeds"
    ax.set_xscale("log")
    ax.set_xlabel("parameters (log)")
    ax.set_ylabel(f"{pm}{metric_unit(pm)}")
    ax.set_title(f"test accuracy vs parameters (mean ± std over {units})", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    save_figure(fig, path)
    return True


def _cmap(n: int):
    """A qualitative colour map with at least ``n`` distinct colours."""
    import matplotlib

    return matplotlib.colormaps["tab20" if n > 10 else "tab10"]


def plot_accuracy_vs_tau(fight: Fight, path: Path) -> bool:
    from ..plots import new_figure, save_figure


    pm = fight.primary
    scale = 100.0 if is_fraction(pm) else 1.0
    pts = []
    for name in fight.contenders():
        rows = fight.phase("final", name)
        t, a = fight.summary(rows, "tau_input"), fight.summary(rows, pm)
        if t and a:
            pts.append((fight.label(name), t, a))
    if not pts:
        return False
    fig, ax = new_figure(figsize=(6.4, 4.4))
    for label, t, a in pts:
        ax.errorbar([t["mean"]], [scale * a["mean"]], xerr=[0 if t["n"] < 2 else t["std"]],
                    yerr=[0 if a["n"] < 2 else scale * a["std"]], fmt="o", capsize=3, label=label)
    ax.set_xlabel("tau_input = p99 / mean of ||J_f(x)||_F")
    ax.set_ylabel(f"{pm}{metric_unit(pm)}")
    ax.set_title("accuracy vs input-gradient tail ratio (mean ± std)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    save_figure(fig, path)
    return True


def _smooth(y: np.ndarray, window: int) -> np.ndarray:
    if window <= 1 or len(y) < window:
        return y
    k = np.ones(window) / window
    return np.convolve(y, k, mode="valid")


def _family(fight: Fight, name: str) -> str:
    """The panel a contender's trace goes to: the activation for MLPs, else the model kind."""
    cfg = fight.config_of(name)
    rows = fight.phase("final", name)
    model = cfg.get("model") or (rows[0].get("model") if rows else "") or "?"
    if model in ("mlp", "cnn"):
        act = cfg.get("activation") or (rows[0].get("activation") if rows else "") or "relu"
        return model.upper() + " " + {"relu": "ReLU", "gelu": "GELU", "silu": "SiLU"}.get(str(act), str(act))
    return {"chainzrule": "ChainzRule", "chainzrule-cnn": "ChainzRule CNN"}.get(model, model)


def _trace(fight: Fight, name: str) -> tuple[int | None, np.ndarray] | None:
    rec = fight.seed0_run(name)
    g = np.asarray([to_number(v) if to_number(v) is not None else np.nan for v in (rec or {}).get("grad_norms") or []], dtype=float)
    if g.size >= 2 and np.any(np.isfinite(g) & (g > 0)):
        return rec.get("seed"), g
    return None


def _plot_trace(ax: Any, g: np.ndarray, color: str, label: str, lw: float = 1.2, ls: str = "-", raw: bool = True) -> None:
    steps = np.arange(g.size)
    ok = np.isfinite(g) & (g > 0)
    if raw:
        ax.plot(steps[ok], g[ok], color=color, lw=0.4, alpha=0.2)
    w = max(1, g.size // 100)
    if w > 1 and ok.all():
        ax.plot(steps[w - 1:], _smooth(g, w), color=color, lw=lw, ls=ls, label=label)
    else:
        ax.plot(steps[ok], g[ok], color=color, lw=lw, ls=ls, label=label)


def _share(axes: Any, x: bool = True, y: bool = True) -> None:
    """Share the x and/or y axis of every panel with the first (comparable small multiples)."""
    first = axes[0][0]
    for row in axes:
        for ax in row:
            if ax is not first:
                if x:
                    ax.sharex(first)
                if y:
                    ax.sharey(first)


def plot_grad_norms(fight: Fight, path: Path, ncols: int = 3) -> bool:
    """Gradient-norm traces of the seed-0 final runs as small multiples, one panel per family
    (MLP activation or model kind), the reference's moving average dashed black in every panel;
    shared log y axis so that panels compare."""
    from ..plots import new_figure, save_figure

    traces: dict[str, list[tuple[str, int | None, np.ndarray]]] = {}
    for name in fight.contenders():
        t = _trace(fight, name)
        if t is not None:
            traces.setdefault(_family(fight, name), []).append((name, *t))
    if not traces:
        return False
    ref = fight.reference
    ref_trace = _trace(fight, ref) if ref else None
    n = len(traces)
    ncols = min(ncols, n)
    nrows = -(-n // ncols)
    fig, axes = new_figure(nrows, ncols, figsize=(4.6 * ncols, 4.2 * nrows), squeeze=False, layout="constrained")
    _share(axes, x=False)
    for k, (fam, items) in enumerate(traces.items()):
        ax = axes[k // ncols][k % ncols]
        for i, (name, seed, g) in enumerate(items):
            if name == ref:
                continue
            _plot_trace(ax, g, f"C{i % 10}", textwrap.shorten(fight.label(name), width=40, placeholder="…"))
        if ref_trace is not None:
            _plot_trace(ax, ref_trace[1], "k", f"reference: {textwrap.shorten(fight.label(ref), width=32, placeholder='…')}",
                        lw=1.0, ls="--", raw=False)
        ax.set_yscale("log")
        ax.set_title(fam, fontsize=9)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=6, loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=2, frameon=False)
        if k % ncols == 0:
            ax.set_ylabel("gradient norm")
    for k in range(n, nrows * ncols):
        axes[k // ncols][k % ncols].axis("off")
    split = ", first CV split (repeat 0, fold 0)" if fight.resampled else ""
    fig.suptitle(f"global parameter-gradient norm vs training step, seed-0 final runs{split}, one panel per family "
                 "(light: raw; line: moving average; dashed: the reference)", fontsize=10)
    save_figure(fig, path)
    return True


def plot_expected_max(fight: Fight, curves: dict[str, dict[str, list]], path: Path, ncols: int = 4) -> bool:
    """Expected best validation score vs number of tuning trials (Dodge et al. 2019), one small
    panel per contender (mean ± std of the expected maximum), shared axes."""
    from ..plots import new_figure, save_figure

    if not curves:
        return False
    names = [n for n in [c["name"] for c in fight.spec_contenders] if n in curves]
    names += [n for n in curves if n not in names]
    n = len(names)
    ncols = min(ncols, n)
    nrows = -(-n // ncols)
    fig, axes = new_figure(nrows, ncols, figsize=(3.0 * ncols, 2.4 * nrows), squeeze=False, layout="constrained")
    _share(axes)
    for k, name in enumerate(names):
        ax = axes[k // ncols][k % ncols]
        c = curves[name]
        k_, m, sd = np.asarray(c["k"]), 100 * np.asarray(c["mean"]), 100 * np.asarray(c["std"])
        ax.plot(k_, m, color="C0", lw=1.2)
        ax.fill_between(k_, m - sd, m + sd, color="C0", alpha=0.2, lw=0)
        ax.set_title(textwrap.shorten(fight.label(name), width=30, placeholder="…"), fontsize=8)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=7)
        if k % ncols == 0:
            ax.set_ylabel("val acc (%)", fontsize=8)
        if k + ncols >= n:
            ax.set_xlabel("trials", fontsize=8)
    for k in range(n, nrows * ncols):
        axes[k // ncols][k % ncols].axis("off")
    fig.suptitle("expected best validation accuracy vs tuning trials (± std; Dodge et al. 2019)", fontsize=10)
    save_figure(fig, path)
    return True


def _poly_sigma(layer: dict[str, Any], z: np.ndarray, max_neurons: int) -> np.ndarray | None:
    """σ(z) of a stored polynomial layer for a sample of neurons: ``[P, K]``, or None if malformed."""
    import torch

    from ..functional import poly_activation

    try:
        coef = torch.tensor(layer["coefficients"], dtype=torch.float64)  # [D+1, F]
        R = float(layer.get("bound", 3.0))
    except (KeyError, TypeError, ValueError):
        return None
    if coef.ndim != 2 or coef.shape[0] < 1 or not torch.isfinite(coef).all():
        return None
    F = coef.shape[1]
    idx = torch.linspace(0, F - 1, min(F, max_neurons)).round().long().unique()
    coef = coef[:, idx]  # [D+1, K]
    zz = torch.as_tensor(z, dtype=torch.float64).unsqueeze(1).expand(-1, coef.shape[1])  # [P, K]
    try:  # the one σ of the library (power coefficients of u, as the run files store them)
        return poly_activation(zz, coef, R, layer.get("range_control", "linear")).numpy()
    except ValueError:
        return None


def plot_activations(fight: Fight, path: Path, max_neurons: int = 16) -> bool:
    import torch

    from ..activations import make_activation
    from ..plots import new_figure, save_figure

    polys = []
    for name in fight.contenders():
        rec = fight.seed0_run(name)
        acts = (rec or {}).get("activations") or {}
        layers = [(lname, lay) for lname, lay in acts.items() if isinstance(lay, dict) and lay.get("kind") == "poly"]
        if layers:
            polys.append((fight.label(name), rec.get("seed"), layers))
    if not polys:
        return False
    ncols = max(len(layers) for _, _, layers in polys)
    fig, axes = new_figure(len(polys) + 1, ncols, figsize=(4.0 * ncols, 3.0 * (len(polys) + 1)), squeeze=False,
                             layout="constrained")
    R_all = []
    for r, (label, seed, layers) in enumerate(polys):
        for c in range(ncols):
            ax = axes[r][c]
            if c >= len(layers):
                ax.axis("off")
                continue
            lname, lay = layers[c]
            R = float(lay.get("bound", 3.0))
            R_all.append(R)
            z = np.linspace(-2 * R, 2 * R, 401)
            y = _poly_sigma(lay, z, max_neurons)
            if y is None:
                ax.text(0.5, 0.5, "malformed coefficients", ha="center", transform=ax.transAxes)
            else:
                ax.plot(z, y, lw=0.8, alpha=0.7)
            ax.axvspan(-R, R, color="0.92", zorder=0)
            # two short lines (wrapped label, then layer details): long labels no longer run into
            # the neighbouring panel's title
            head = textwrap.shorten(label, width=48, placeholder="…")
            ax.set_title(f"{head}\n{lname.split('.')[-2] if '.' in lname else lname} {lname.split('.')[-1]} · "
                         f"seed {seed} · {lay.get('range_control', 'linear')} · "
                         f"{0 if y is None else y.shape[1]} neurons", fontsize=8)
            ax.set_xlabel("z")
            ax.set_ylabel("σ(z)")
            ax.grid(alpha=0.3)
    R = max(R_all) if R_all else 3.0
    z = torch.linspace(-2 * R, 2 * R, 401, dtype=torch.float64)
    ax = axes[-1][0]
    for name in ("relu", "gelu", "silu", "tanh"):
        ax.plot(z.numpy(), make_activation(name)(z).numpy(), lw=1.2, label=name)
    ax.axvspan(-R, R, color="0.92", zorder=0)
    ax.set_title("standard activations (reference)", fontsize=8)
    ax.set_xlabel("z")
    ax.set_ylabel("σ(z)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    for c in range(1, ncols):
        axes[-1][c].axis("off")
    fig.suptitle("learned activations (shaded: working interval [−R, R])", fontsize=10)
    save_figure(fig, path)
    return True


def plot_lambda(fight: Fight, table: list[dict[str, Any]], path: Path) -> bool:
    from ..plots import new_figure, save_figure


    if not table:
        return False
    metrics = [m for m in (fight.primary, "jacobian_fro_mean") if any(d.get(m) for d in table)]
    if not metrics:
        return False
    pos = [d for d in table if d["lambda"] > 0]
    zero = [d for d in table if d["lambda"] == 0]
    fig, axes = new_figure(1, len(metrics), figsize=(5.2 * len(metrics), 3.8), squeeze=False, layout="constrained")
    for ax, m in zip(axes[0], metrics):
        scale = 100.0 if is_fraction(m) else 1.0
        pts = [(d["lambda"], d[m]) for d in pos if d.get(m)]
        if pts:
            ax.errorbar([p[0] for p in pts], [scale * p[1]["mean"] for p in pts],
                        yerr=[0 if p[1]["n"] < 2 else scale * p[1]["std"] for p in pts], fmt="o-", capsize=3)
            ax.set_xscale("log")
        for d in zero:
            if d.get(m):
                ax.axhline(scale * d[m]["mean"], color="C3", ls="--", lw=1, label="λ = 0")
        ax.axvline(_LAMBDA_MARK, color="0.5", ls=":", lw=1, label="λ = 10^-2.5")
        ax.set_xlabel("λ (DREG)")
        ax.set_ylabel(f"{m}{metric_unit(m)}")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    fig.suptitle(f"λ sweep: {fight.label((fight.section('lambda_sweep') or {}).get('contender', ''))}", fontsize=10)
    save_figure(fig, path)
    return True
