"""Plots of single models (the Fair Fight's report plots live in ``fight/figures.py``).

:func:`plot_activations` draws the learned activation of every hidden layer: for polynomial
layers a sample of neurons' σ(z) (thin lines) with the working interval shaded, for standard
activations the one curve.

Figures are made with :class:`matplotlib.figure.Figure` and rendered by the Agg canvas directly:
no pyplot, so importing or calling this module never changes matplotlib's global backend or
keeps figures alive in pyplot's registry. :func:`new_figure` and :func:`save_figure` are what
``fight/figures.py`` uses too; files go through the one atomic writer
(:func:`chainzrule.data.cache.atomic_write`).

>>> import tempfile, os
>>> from chainzrule.models import ChainzRuleMLP
>>> path = os.path.join(tempfile.mkdtemp(), "act.png")
>>> plot_activations(ChainzRuleMLP(4, [8, 8], 2), path)
True
"""

from __future__ import annotations

from pathlib import Path

import torch

from .data.cache import atomic_write
from .layers import hidden_layers


def new_figure(nrows: int = 1, ncols: int = 1, *, figsize: tuple[float, float], layout: str | None = None,
               squeeze: bool = True):
    """``(figure, axes)`` like ``pyplot.subplots``, but a free-standing Agg figure (no pyplot state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout=layout)
    FigureCanvasAgg(fig)
    return fig, fig.subplots(nrows, ncols, squeeze=squeeze)


def save_figure(fig, path: str | Path) -> Path:
    """Save ``fig`` as PNG to ``path`` with the one atomic writer."""
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight"))


@torch.no_grad()
def plot_activations(model, path: str | Path, max_neurons: int = 24) -> bool:
    """PNG of every hidden layer's activation shapes; False if the model has no hidden layers."""
    layers = hidden_layers(model)
    if not layers:
        return False
    fig, axes = new_figure(1, len(layers), figsize=(4.2 * len(layers), 3.4), squeeze=False)
    for ax, (name, layer) in zip(axes[0], layers):
        act = layer.activation
        F = layer.out_features
        R = float(getattr(act, "bound", 3.0))
        z = torch.linspace(-2 * R, 2 * R, 401, dtype=torch.float64)  # [P]
        zz = z.unsqueeze(1).expand(-1, F).to(layer.linear.weight.dtype)  # [P, F]
        y = act(zz).double()  # [P, F]
        idx = torch.linspace(0, F - 1, min(F, max_neurons)).round().long().unique()
        for i in idx.tolist():
            ax.plot(z.numpy(), y[:, i].numpy(), lw=0.8, alpha=0.7)
        if hasattr(act, "bound"):
            ax.axvspan(-R, R, color="0.92", zorder=0, label=f"working interval ±{R:g}")
            ax.legend(loc="upper left", fontsize=7)
        ax.set_title(f"{name}: {type(act).__name__}" + (f" ({len(idx)} of {F} neurons)" if F > 1 else ""), fontsize=9)
        ax.set_xlabel("z")
        ax.set_ylabel("σ(z)")
        ax.grid(alpha=0.3)
    save_figure(fig, path)
    return True
