"""Deployment from the command line: ``chainzrule export RUN --format onnx|pt2`` and
``chainzrule inspect RUN --formulas`` on a run that ``chainzrule train`` wrote, as a user runs them.

The ONNX file is checked with onnxruntime against torch on inputs inside and far outside the
working interval; the pt2 program with ``torch.export.load``; the formulas with sympy.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import sympy
import torch

from chainzrule.checkpoint import load_checkpoint
from chainzrule.export import probe_inputs


def chainzrule(*args, cache: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHAINZRULE_")}
    env.update(CHAINZRULE_CACHE=str(cache), OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    return subprocess.run([sys.executable, "-m", "chainzrule.cli", *map(str, args)], capture_output=True,
                          text=True, env=env, timeout=300)


def _image_csv(path: Path) -> Path:
    """A 6x6 one-channel 'image' dataset (36 pixel columns + label) for the CNN families."""
    rng = np.random.default_rng(0)
    x = rng.random((300, 36))
    y = (x[:, :18].mean(1) > x[:, 18:].mean(1)).astype(int)
    lines = [",".join([f"p{i}" for i in range(36)] + ["label"])]
    lines += [",".join([f"{v:.4f}" for v in row] + [str(c)]) for row, c in zip(x, y)]
    path.write_text("\n".join(lines) + "\n")
    return path


# every model family the CLI trains (issue: an ONNX export of each runs in onnxruntime and matches torch)
@pytest.fixture(scope="module", params=["chainzrule", "mlp", "kan", "cnn", "chainzrule-cnn"])
def run(request, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp(f"run-{request.param}")
    data = (["--dataset", f"csv:{_image_csv(out / 'images.csv')}", "--target", "label", "--conv-channels", "4"]
            if request.param.endswith("cnn") else ["--dataset", "synthetic"])
    res = chainzrule("train", *data, "--model", request.param, "--hidden", "8,8", "--epochs", "1",
                     "--quiet", "--out", out / "run", cache=out)
    assert res.returncode == 0, res.stderr
    return out / "run"


def _eager(model, meta: dict, x: torch.Tensor) -> torch.Tensor:
    """What the export must compute: the checkpoint's model on ``x`` standardized as in training
    (the export takes raw features; ``model.json``'s statistics, or none)."""
    stats = meta.get("standardization")
    if stats is not None:
        x = (x - torch.tensor(stats["mean"])) / torch.tensor(stats["std"])
    with torch.no_grad():
        return model(x)


def test_onnx_export_matches_torch_inside_and_outside_the_interval(run):
    res = chainzrule("export", run, "--format", "onnx", cache=run.parent)
    assert res.returncode == 0, res.stderr
    assert "max |diff|" in res.stdout and (run / "model.onnx").is_file()
    assert "torchvision" not in res.stderr and "LeafSpec" not in res.stderr  # torch's own noise, silenced
    model, _, meta = load_checkpoint(run)
    sess = ort.InferenceSession(str(run / "model.onnx"), providers=["CPUExecutionProvider"])
    for scale in (0.1, 10.0, 1000.0):  # well inside, outside, far outside [-R, R]
        x = probe_inputs(meta["in_features"], scale=scale, n=33)  # a batch size never seen at export
        got = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]
        want = _eager(model, meta, x).numpy()
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * max(1.0, float(np.abs(want).max())))


def test_pt2_export_round_trips(run):
    res = chainzrule("export", run, "--format", "pt2", cache=run.parent)
    assert res.returncode == 0, res.stderr
    program = torch.export.load(str(run / "model.pt2"))
    model, _, meta = load_checkpoint(run)
    x = probe_inputs(meta["in_features"], scale=10.0, n=7)
    torch.testing.assert_close(program.module()(x), _eager(model, meta, x))


def test_formulas_are_the_activations(run):
    model, cfg, _ = load_checkpoint(run)
    res = chainzrule("inspect", run, "--formulas", cache=run.parent)
    if cfg.model not in ("chainzrule", "chainzrule-cnn"):
        assert res.returncode == 2 and "no polynomial activations" in res.stderr
        return
    assert res.returncode == 0, res.stderr
    lines = res.stdout.strip().splitlines()
    if cfg.model == "chainzrule-cnn":  # 4 conv channels, then the two dense layers of 8
        assert len(lines) == 20 and lines[0].startswith("conv_layers.0.activation[0]: ")
        lines = lines[4:]
    assert len(lines) == 16  # two layers of 8 neurons
    name, formula = lines[11].split(": ", 1)
    assert name == "hidden_layers.1.activation[3]"
    expr, x = sympy.sympify(formula), sympy.Symbol("x")
    act = model.hidden_layers[1].activation
    for v in (-40.0, -3.5, -1.0, 0.0, 2.2, 3.0, 9.0):
        with torch.no_grad():
            want = float(act(torch.full((1, 8), v, dtype=torch.float64).float())[0, 3])
        assert abs(float(expr.subs(x, v)) - want) <= 1e-4 * max(1.0, abs(want))


@pytest.mark.parametrize("args, message", [
    (["export", "NOPE", "--format", "onnx"], "not a run folder"),
    (["export", "EMPTY", "--format", "pt2"], "not a chainzrule checkpoint"),
    (["export", "EMPTY", "--format", "tflite"], "Invalid value"),
])
def test_export_refuses_what_is_not_a_run(tmp_path, args, message):
    (tmp_path / "EMPTY").mkdir()
    res = chainzrule(*[str(tmp_path / a) if a in ("NOPE", "EMPTY") else a for a in args], cache=tmp_path)
    assert res.returncode == 2
    assert message in res.stderr and "Traceback" not in res.stderr


def test_onnx_export_of_a_spectral_norm_run_with_gain_and_temperature(tmp_path):
    """Large outputs (τ·g² = 72): the check is relative to the outputs' size; a refused export
    leaves no model.onnx behind and an earlier one untouched."""
    import chainzrule.export as ex
    from chainzrule.errors import DataError

    res = chainzrule("train", "--dataset", "synthetic", "--model", "mlp", "--activation", "silu", "--reg", "sn",
                     "--sn-gain", "6", "--logit-scale", "2", "--hidden", "8,8", "--epochs", "1", "--quiet",
                     "--out", tmp_path / "run", cache=tmp_path)
    assert res.returncode == 0, res.stderr
    run = tmp_path / "run"
    ok = chainzrule("export", run, "--format", "onnx", cache=tmp_path)
    assert ok.returncode == 0, ok.stderr
    model, _, meta = load_checkpoint(run)
    sess = ort.InferenceSession(str(run / "model.onnx"), providers=["CPUExecutionProvider"])
    x = probe_inputs(meta["in_features"], scale=10.0, n=33)
    want = _eager(model, meta, x).numpy()
    got = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * max(1.0, float(np.abs(want).max())))
    before = (run / "model.onnx").read_bytes()
    old, ex.ONNX_RTOL = ex.ONNX_RTOL, -1.0  # every check fails
    try:
        with pytest.raises(DataError, match="onnxruntime differs from torch"):
            ex.export_run(run, "onnx")
    finally:
        ex.ONNX_RTOL = old
    assert (run / "model.onnx").read_bytes() == before
    assert sorted(p.name for p in run.iterdir() if p.name.startswith(".")) == []


def test_export_model_leaves_the_callers_model_as_it_was(tmp_path):
    """export_model writes a float32, eval-mode copy: a float64 model in training mode stays one."""
    import torch

    import chainzrule as cz
    from chainzrule.export import export_model

    model = cz.ChainzRuleMLP(4, [6], 2).double().train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    path = export_model(model, 4, tmp_path / "m.pt2", "pt2")
    assert path.is_file() and model.training
    assert all(v.dtype == torch.float64 and torch.equal(v, before[k]) for k, v in model.state_dict().items())
    program = torch.export.load(path)
    x = torch.randn(3, 4, dtype=torch.float64)
    assert torch.allclose(program.module()(x.float()).double(), model.eval()(x), atol=1e-5)


def test_export_model_refuses_in_features_the_model_does_not_take(tmp_path):
    """A wrong in_features was traced with a symbolic batch and named as "got shape (s77, 5)"; it
    is refused before the export, naming the model's own count. Nothing is written."""
    import pytest

    import chainzrule as cz
    from chainzrule.errors import ConfigError
    from chainzrule.export import export_model

    model = cz.ChainzRuleMLP(4, [6], 2)
    with pytest.raises(ConfigError, match=r"expected in_features=4 \(the model's input features\), got 5"):
        export_model(model, 5, tmp_path / "m.pt2", "pt2")
    with pytest.raises(ConfigError, match=r"expected in_features to be a positive integer, got 0"):
        export_model(model, 0, tmp_path / "m.onnx", "onnx")
    assert list(tmp_path.iterdir()) == []


def test_an_export_takes_the_raw_rows_of_a_standardized_run(tmp_path):
    """A CSV run standardizes its features with statistics fitted on its training rows: the export
    takes the raw rows (the statistics are inside the graph), in model.json's feature_names order,
    and its outputs index model.json's classes. It was the standardized rows: on raw rows of the
    breast-cancer table an export predicted one class for every row."""
    rng = np.random.default_rng(0)
    x = rng.normal(loc=[100.0, -50.0, 3.0], scale=[20.0, 5.0, 1.0], size=(200, 3))
    y = np.where(x[:, 0] / 20 + x[:, 1] / 5 > -5.0, "yes", "no")
    lines = ["a,b,c,label"] + [f"{r[0]:.3f},{r[1]:.3f},{r[2]:.3f},{c}" for r, c in zip(x, y)]
    (tmp_path / "t.csv").write_text("\n".join(lines) + "\n")
    run = tmp_path / "run"
    res = chainzrule("train", "--dataset", f"csv:{tmp_path / 't.csv'}", "--target", "label", "--model", "chainzrule",
                     "--hidden", "8", "--epochs", "3", "--quiet", "--out", run, cache=tmp_path)
    assert res.returncode == 0, res.stderr
    model, _, meta = load_checkpoint(run)
    assert meta["feature_names"] == ["a", "b", "c"] and meta["classes"] == ["no", "yes"]
    assert meta["standardization"] is not None
    rows = torch.tensor(x, dtype=torch.float32)  # as the file holds them
    want = _eager(model, meta, rows)
    for fmt in ("onnx", "pt2"):
        res = chainzrule("export", run, "--format", fmt, cache=tmp_path)
        assert res.returncode == 0, res.stderr
    sess = ort.InferenceSession(str(run / "model.onnx"), providers=["CPUExecutionProvider"])
    got = sess.run(None, {sess.get_inputs()[0].name: rows.numpy()})[0]
    np.testing.assert_allclose(got, want.numpy(), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(torch.export.load(str(run / "model.pt2")).module()(rows), want)
    with torch.no_grad():
        assert not torch.allclose(model(rows), want)  # the bare model on raw rows is another function
