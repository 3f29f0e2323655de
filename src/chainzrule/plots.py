"""Plots of single models (the Fair Fight's report plots live in ``fight/figures.py``).

:func:`plot_activations` draws the learned activation of every hidden layer: for polynomial
layers a sample of neurons' σ(z) (thin lines) with the working interval shaded, for standard
activations the one curve. Files are written atomically.

>>> import tempfile, os
>>> from chainzrule.models import ChainzRuleMLP
>>> path = os.path.join(tempfile.mkdtemp(), "act.png")
>>> plot_activations(ChainzRuleMLP(4, [8, 8], 2), path)
True
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from .layers import hidden_layers  # noqa: E402


def save_figure(fig, path: str | Path) -> Path:
    """Save ``fig`` as PNG atomically and close it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".png")
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=110, bbox_inches="tight")
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


@torch.no_grad()
def plot_activations(model, path: str | Path, max_neurons: int = 24) -> bool:
    """PNG of every hidden layer's activation shapes; False if the model has no hidden layers."""
    layers = hidden_layers(model)
    if not layers:
        return False
    fig, axes = plt.subplots(1, len(layers), figsize=(4.2 * len(layers), 3.4), squeeze=False)
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
