"""What ``chainzrule inspect`` and ``evaluate`` print, and the learned-activation plots, checked
against independent recomputation (audit 2026-12-03).

- ``evaluate RUN`` reproduces the run's own result.json (test metrics, Jacobian norms, tau_input,
  Lipschitz bound) exactly;
- ``inspect RUN`` measures its per-layer numbers on the same seeded, stratified ``diag_examples``
  subset of the test split as evaluate and result.json (it used to take the first
  ``diag_examples`` test rows — on MNIST the easier half); each layer's ``||S||_F`` mean/p99,
  ``||W||_2`` and observed ``max|σ'|`` equal a torch.func recomputation, and the Lipschitz line is
  :func:`~chainzrule.diagnostics.lipschitz_bound`;
- the plotted σ(z) curves (inspect's activations.png, the fight report's activations plot) equal
  the polynomial evaluated with numpy from the trained basis coefficients, range control included.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from chainzrule import diagnostics, plots
from chainzrule.checkpoint import checkpoint_data, checkpoint_splits, load_checkpoint
from chainzrule.cli import main
from chainzrule.config import TrainConfig
from chainzrule.diagnostics import lipschitz_bound
from chainzrule.layers import hidden_layers
from chainzrule.train import build_model
from chainzrule.train.evaluate import eval_subset

P = np.polynomial


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A ChainzRule run on the synthetic data (400 test rows) measured on a 40-example subset."""
    root = tmp_path_factory.mktemp("inspect_audit")
    (root / "c.toml").write_text("diag_examples = 40\n")
    with pytest.raises(SystemExit) as e:
        main(["train", "--config", str(root / "c.toml"), "--dataset", "synthetic", "--model", "chainzrule",
              "--hidden", "8,8", "--epochs", "1", "--batch-size", "64", "--seed", "3", "--quiet",
              "--out", str(root / "cr")])
    assert e.value.code == 0
    return root / "cr"


def cz(capsys, *args) -> str:
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        main([str(a) for a in args])
    out, err = capsys.readouterr()
    assert e.value.code == 0, err
    return out


def test_evaluate_reproduces_the_runs_result_json(run, capsys, tmp_path):
    cz(capsys, "evaluate", run, "--out", tmp_path / "e.json")
    got, want = json.loads((tmp_path / "e.json").read_text()), json.loads((run / "result.json").read_text())
    for key in ("test", "jacobian_fro", "tau_input", "lipschitz_bound"):
        assert got[key] == want[key], key


def test_inspect_per_layer_numbers_on_the_evaluate_subset(run, capsys, tmp_path, monkeypatch):
    model, cfg, meta = load_checkpoint(run)
    splits = checkpoint_splits(checkpoint_data(cfg, meta, None, None, None), meta)
    assert len(splits.y_test) > cfg.diag_examples == 40
    x = splits.X_test[eval_subset(splits.y_test, cfg.diag_examples, cfg.seed)]
    seen = []
    real = diagnostics.layer_report
    monkeypatch.setattr(diagnostics, "layer_report", lambda m, xs: seen.append(xs) or real(m, xs))
    out = cz(capsys, "inspect", run, "--plot", tmp_path / "a.png")
    assert len(seen) == 1 and torch.equal(seen[0], x)  # the subset result.json's jacobian_fro was measured on
    # every printed row against torch.func on the loaded checkpoint and the same inputs
    lines = out.splitlines()
    head = lines.index(next(l for l in lines if l.split()[:1] == ["name"]))
    keys = lines[head].split()
    model.eval()
    h = x
    with torch.no_grad():
        for (name, layer), line in zip(hidden_layers(model), lines[head + 1:]):
            row = dict(zip(keys, line.split()))
            assert row["name"] == name
            f = lambda v: layer(v.unsqueeze(0)).squeeze(0)
            fro = torch.func.vmap(torch.func.jacrev(f))(h).reshape(len(h), -1).double().norm(dim=1).numpy()
            z = layer.linear(h).double().requires_grad_(True)
            with torch.enable_grad():
                (slope,) = torch.autograd.grad(layer.activation(z).sum(), z)
            want = {"jacobian_fro.mean": fro.mean(), "jacobian_fro.p99": np.percentile(fro, 99),
                    "spectral_norm": torch.linalg.svdvals(layer.linear.weight.double())[0].item(),
                    "observed_max_slope": slope.abs().max().item()}
            for k, v in want.items():
                assert float(row[k]) == pytest.approx(v, rel=1e-3), (name, k)  # printed to 4 digits
            assert float(row["max_slope"]) >= want["observed_max_slope"] * (1 - 1e-3)
            h = layer(h)
    lip = float(re.search(r"Lipschitz upper bound \(input → logits, L2\): (\S+)", out).group(1))
    assert lip == float(f"{lipschitz_bound(model):.4g}")


def numpy_sigma(theta: np.ndarray, basis: str, R: float, rc: str, z: np.ndarray) -> np.ndarray:
    """σ(z) of one neuron from its trained basis coefficients θ, by numpy alone."""
    series = {"legendre": P.legendre.Legendre, "chebyshev": P.chebyshev.Chebyshev,
              "monomial": P.polynomial.Polynomial}.get(basis)
    p = series(theta, domain=[-R, R]) if series else P.polynomial.Polynomial(theta)  # t = u / R, or powers of u
    if rc == "none":
        return p(z)
    if rc == "tanh":
        return p(R * np.tanh(z / R))
    u = np.clip(z, -R, R)
    return p(u) + p.deriv()(u) * (z - u)


CASES = [("legendre", "linear", 3.0, 3), ("chebyshev", "tanh", 2.0, 4), ("power", "none", 1.5, 2),
         ("monomial", "linear", 3.0, 5)]


def poly_model(basis, rc, R, degree):
    torch.manual_seed(0)
    cfg = TrainConfig(dataset="synthetic", hidden=(6, 5), poly_basis=basis, range_control=rc, bound=R, degree=degree)
    model = build_model(cfg, 4, 3, "classification").double()
    with torch.no_grad():
        for _, layer in hidden_layers(model):
            layer.activation.coefficients.add_(0.3 * torch.randn_like(layer.activation.coefficients))
    return model


def assert_curves(ax, n_features: int, theta: np.ndarray, basis: str, R: float, rc: str) -> None:
    """One line per neuron on [-2R, 2R], each the polynomial of its coefficients ``theta[:, i]``."""
    lines = ax.get_lines()
    assert len(lines) == n_features
    for i, line in enumerate(lines):
        z, y = np.asarray(line.get_xdata()), np.asarray(line.get_ydata())
        assert z.min() == -2 * R and z.max() == 2 * R
        np.testing.assert_allclose(y, numpy_sigma(theta[:, i], basis, R, rc, z), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("basis,rc,R,degree", CASES)
def test_inspect_activation_plot_draws_the_stored_polynomial(monkeypatch, basis, rc, R, degree):
    model = poly_model(basis, rc, R, degree)
    figs = []
    monkeypatch.setattr(plots, "save_figure", lambda fig, path: figs.append(fig))
    assert plots.plot_activations(model, "unused.png")
    axes = figs[0].axes
    for ax, (name, layer) in zip(axes, hidden_layers(model)):
        act = layer.activation
        theta = act.coefficients.detach().double().numpy()  # [D+1, F] (one set per neuron)
        assert_curves(ax, layer.out_features, theta, basis, R, rc)
        band = [p for p in ax.patches if p.get_label().startswith("working interval")]
        assert len(band) == 1 and band[0].get_label() == f"working interval ±{R:g}"
        xy = np.atleast_2d(np.asarray(band[0].get_xy(), dtype=float))  # a Polygon's vertices or a Rectangle's corner
        xs = xy[:, 0] if xy.shape[0] > 1 else np.array([band[0].get_x(), band[0].get_x() + band[0].get_width()])
        assert xs.min() == -R and xs.max() == R
        assert ax.get_xlabel() == "z" and ax.get_ylabel() == "σ(z)"


class _Fight:
    """What fight.figures.plot_activations reads of a Fight: one contender's seed-0 record."""

    def __init__(self, rec):
        self.rec = rec

    def contenders(self):
        return ["c"]

    def seed0_run(self, name):
        return self.rec

    def label(self, name):
        return name


@pytest.mark.parametrize("basis,rc,R,degree", CASES)
def test_fight_activation_plot_draws_the_stored_polynomial(monkeypatch, basis, rc, R, degree):
    from chainzrule.fight import executor, figures

    model = poly_model(basis, rc, R, degree)
    rec = {"seed": 0, "activations": json.loads(json.dumps(executor._activations(model)))}  # as the run file stores it
    figs = []
    monkeypatch.setattr(plots, "save_figure", lambda fig, path: figs.append(fig))
    assert figures.plot_activations(_Fight(rec), Path("unused.png"))
    for ax, (name, layer) in zip(figs[0].axes, hidden_layers(model)):
        theta = np.asarray(rec["activations"][name]["basis_coefficients"])
        assert_curves(ax, layer.out_features, theta, basis, R, rc)
        assert rc in ax.get_title()
