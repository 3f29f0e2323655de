"""The ``chainzrule`` command, run as a user runs it: in a subprocess, on tiny data.

train writes result.json and a pickle-free checkpoint; evaluate and inspect read it back; bad
input of every kind gets one ``chainzrule: error:`` line, exit status 2 and an untouched --out.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import click
import numpy as np
import pytest
from click.testing import CliRunner

from chainzrule.cli import cli
from chainzrule.data.mnist import write_idx
from conftest import SST5, needs_sst5

TIMING = ("train_seconds", "step_ms", "peak_memory_mb")
TINY = ["--hidden", "8", "--epochs", "1", "--quiet"]


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    """One cache for the module: SST-5 embeddings are computed once and shared by the heads."""
    return tmp_path_factory.mktemp("cache")


def chainzrule(*args, cache: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHAINZRULE_")}
    env.update(CHAINZRULE_CACHE=str(cache), OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", PYTHONWARNINGS="ignore")
    return subprocess.run([sys.executable, "-m", "chainzrule.cli", *map(str, args)], capture_output=True,
                          text=True, env=env, timeout=timeout)


def ok(p: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert p.returncode == 0, p.stderr[-3000:]
    assert "Traceback" not in p.stderr
    return p


def write_mnist(folder: Path, n_train: int = 200, n_test: int = 60, seed: int = 0) -> Path:
    """Four IDX files in MNIST's layout whose digits are learnable: a bright 6x6 block placed by
    the label on a noisy background."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        y = (np.arange(n) % 10).astype(np.uint8)
        img = rng.integers(0, 60, size=(n, 28, 28), dtype=np.uint8)
        for i, lab in enumerate(y):
            r, c = 2 + 13 * (lab // 5), 1 + 5 * (lab % 5)
            img[i, r:r + 6, c:c + 5] = 250
        write_idx(folder / f"{prefix}-images-idx3-ubyte", img)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte", y)
    return folder


@pytest.fixture(scope="module")
def mnist_dir(tmp_path_factory) -> Path:
    return write_mnist(tmp_path_factory.mktemp("mnist"))


def load_result(out: Path) -> dict:
    return json.loads((out / "result.json").read_text())


def assert_png(path: Path) -> None:
    assert path.is_file() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def assert_checkpoint(out: Path) -> None:
    assert (out / "model.safetensors").is_file() and (out / "model.json").is_file()
    meta = json.loads((out / "model.json").read_text())
    assert {"config", "in_features", "num_classes", "task"} <= set(meta)
    for f in out.iterdir():  # no pickle anywhere
        assert f.suffix not in (".pt", ".pth", ".pkl", ".bin", ".ckpt"), f
        assert not f.read_bytes().startswith(b"\x80"), f"{f} looks like a pickle"


# ------------------------------------------------------------------------------- train / evaluate / inspect
def test_train_evaluate_inspect_on_mnist_files(tmp_path, mnist_dir, cache):
    out = tmp_path / "run"
    p = ok(chainzrule("train", "--dataset", "mnist", "--data-dir", mnist_dir, "--model", "chainzrule",
                      "--hidden", "16", "--epochs", "3", "--batch-size", "32", "--lr", "1e-2", "--quiet",
                      "--out", out, cache=cache))
    assert f"wrote {out / 'result.json'}" in p.stdout and "test accuracy" in p.stdout
    r = load_result(out)
    assert r["test"]["accuracy"] > 0.5  # learnable toy digits: chance is 0.1
    assert r["params"] == 784 * 16 + 16 + 16 * 4 + 16 * 10 + 10
    assert 0 < r["jacobian_fro"]["mean"] <= r["jacobian_fro"]["p99"]
    for key in ("tau_input", "tau_train", "pgv", "lipschitz_bound", "train_seconds"):
        assert isinstance(r[key], float) and math.isfinite(r[key]) and r[key] >= 0, key
    assert r["dataset"]["train"] + r["dataset"]["val"] == 200 and r["dataset"]["test"] == 60
    assert r["config"]["dataset"] == "mnist" and r["config"]["hidden"] == [16]
    assert len(json.loads((out / "grad_norms.json").read_text())) == r["steps"]
    assert_checkpoint(out)

    # evaluate re-measures the saved model on the same test split: same numbers
    ev = tmp_path / "eval.json"
    p = ok(chainzrule("evaluate", out, "--out", ev, cache=cache))
    e = json.loads(ev.read_text())
    assert e == json.loads(p.stdout)
    assert e["test"]["accuracy"] == pytest.approx(r["test"]["accuracy"])
    assert e["jacobian_fro"]["mean"] == pytest.approx(r["jacobian_fro"]["mean"], rel=1e-5)
    assert e["lipschitz_bound"] == pytest.approx(r["lipschitz_bound"], rel=1e-6)

    p = ok(chainzrule("inspect", out, cache=cache))
    assert "hidden_layers.0" in p.stdout and "Lipschitz upper bound" in p.stdout
    assert_png(out / "activations.png")


def test_spectral_norm_model_evaluates_and_inspects(tmp_path, cache):
    out = tmp_path / "sn"
    ok(chainzrule("train", "--dataset", "synthetic", "--model", "mlp", "--reg", "sn", *TINY, "--out", out,
                  cache=cache))
    r = load_result(out)
    assert r["lipschitz_bound"] <= 1.01  # ReLU and spectrally normalised maps
    assert_checkpoint(out)
    e = json.loads(ok(chainzrule("evaluate", out, cache=cache)).stdout)
    assert e["test"]["accuracy"] == pytest.approx(r["test"]["accuracy"])
    assert e["lipschitz_bound"] == pytest.approx(r["lipschitz_bound"], rel=1e-6)
    png = tmp_path / "plots" / "act.png"
    p = ok(chainzrule("inspect", out, "--plot", png, cache=cache))
    assert f"wrote {png}" in p.stdout
    assert_png(png)


def test_spectral_norm_gain_and_temperature_survive_the_checkpoint(tmp_path, cache):
    out = tmp_path / "sn-gain"
    ok(chainzrule("train", "--dataset", "synthetic", "--model", "mlp", "--activation", "silu", "--reg", "sn",
                  "--sn-gain", "3", "--logit-scale", "2", *TINY, "--out", out, cache=cache))
    r = load_result(out)
    assert r["config"]["sn_gain"] == 3.0 and r["config"]["logit_scale"] == 2.0
    depth = len(r["config"]["hidden"])
    # τ · Π gain · max|SiLU'| (≤ 1.0998) · head 1
    assert 2.0 * 3.0 ** depth < r["lipschitz_bound"] <= 2.0 * (3.0 * 1.1) ** depth * 1.01
    e = json.loads(ok(chainzrule("evaluate", out, cache=cache)).stdout)  # the reloaded model has the gain
    assert e["test"]["accuracy"] == pytest.approx(r["test"]["accuracy"])
    assert e["lipschitz_bound"] == pytest.approx(r["lipschitz_bound"], rel=1e-6)
    bad = chainzrule("train", "--dataset", "synthetic", "--model", "mlp", "--sn-gain", "3", *TINY,
                     "--out", tmp_path / "bad", cache=cache)
    assert bad.returncode == 2 and "sn_gain" in bad.stderr and not (tmp_path / "bad").exists()


def test_same_seed_gives_identical_result_json(tmp_path, cache):
    args = ["train", "--dataset", "synthetic", "--model", "chainzrule", "--reg", "jr", "--reg-strength", "0.1",
            "--seed", "7", *TINY]
    a, b = tmp_path / "a", tmp_path / "b"
    ok(chainzrule(*args, "--out", a, cache=cache))
    ok(chainzrule(*args, "--out", b, cache=cache))
    ra, rb = load_result(a), load_result(b)
    for r in (ra, rb):
        for k in TIMING:
            assert r.pop(k) is not None
    assert ra == rb
    assert (a / "grad_norms.json").read_text() == (b / "grad_norms.json").read_text()
    assert (a / "model.safetensors").read_bytes() == (b / "model.safetensors").read_bytes()


def test_config_file_with_flags_overriding_it(tmp_path, cache):
    cfg = tmp_path / "run.toml"
    cfg.write_text('dataset = "synthetic"\nmodel = "mlp"\nactivation = "tanh"\nhidden = [8, 4]\n'
                   'epochs = 3\nseed = 1\nbatch-size = 256\nlr = 0.02\n')
    out = tmp_path / "out"
    ok(chainzrule("train", "--config", cfg, "--epochs", "1", "--seed", "5", "--quiet", "--out", out, cache=cache))
    r = load_result(out)
    c = r["config"]
    assert (c["dataset"], c["model"], c["activation"], c["hidden"], c["lr"], c["batch_size"]) == \
           ("synthetic", "mlp", "tanh", [8, 4], 0.02, 256)  # from the file
    assert (c["epochs"], c["seed"]) == (1, 5)  # the flags win
    assert r["steps"] == math.ceil(r["dataset"]["train"] / 256)  # one epoch was really run
    assert r["params"] == 10 * 8 + 8 + 8 * 4 + 4 + 4 * 3 + 3


def test_diverged_run_still_writes_strict_json(tmp_path, cache):
    out = tmp_path / "boom"
    ok(chainzrule("train", "--dataset", "synthetic", "--model", "mlp", "--optimizer", "sgd", "--lr", "1e6",
                  "--hidden", "8", "--epochs", "2", "--quiet", "--out", out, cache=cache))
    text = (out / "result.json").read_text()
    r = json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} in result.json is not JSON"))
    assert r["diverged"] is True and r["pgv"] is None
    json.loads((out / "grad_norms.json").read_text(), parse_constant=lambda c: pytest.fail(c))
    # inspect refuses a NaN checkpoint in one line rather than crashing
    p = chainzrule("inspect", out, cache=cache)
    assert p.returncode == 2 and p.stderr.startswith("chainzrule: error:") and "diverged" in p.stderr


# ------------------------------------------------------------------------------- SST-5, frozen encoder, ordinal heads
@needs_sst5
@pytest.mark.parametrize("head", ["clm", "coral", "corn"])
def test_sst5_encoder_ordinal_heads(tmp_path, cache, head):
    assert (SST5 / "train.txt").is_file(), f"SST-5 expected in {SST5}"
    out = tmp_path / head
    ok(chainzrule("train", "--dataset", "sst5", "--data-dir", SST5, "--featurizer", "encoder", "--head", head,
                  "--limit", "200", "--hidden", "16", "--epochs", "20", "--batch-size", "32", "--quiet",
                  "--out", out, cache=cache, timeout=600))
    r = load_result(out)
    t = r["test"]
    assert set(t) >= {"accuracy", "mae", "off_by_one", "qwk"}
    assert 0 <= t["accuracy"] <= t["off_by_one"] <= 1
    assert 0.15 < t["qwk"] <= 1  # the order was learned (guessing gives ~0)
    assert 1 - t["accuracy"] - 1e-9 <= t["mae"] <= 4
    assert r["dataset"] == {"name": "sst5", "train": 200, "val": 200, "test": 200, "in_features": 384,
                            "num_classes": 5, "task": "ordinal"}
    assert r["config"]["head"] == head and r["lipschitz_bound"] is not None
    assert any(p.suffix == ".npy" for p in (cache / "embeddings").iterdir())  # embeddings cached
    assert_checkpoint(out)
    if head == "clm":
        e = json.loads(ok(chainzrule("evaluate", out, cache=cache)).stdout)
        assert e["test"] == pytest.approx(t)
        ok(chainzrule("inspect", out, cache=cache))
        assert_png(out / "activations.png")


# ------------------------------------------------------------------------------- bad input
def bad_mnist(folder: Path, how: str) -> Path:
    write_mnist(folder, n_train=30, n_test=10)
    if how == "truncated":
        p = folder / "train-images-idx3-ubyte"
        p.write_bytes(p.read_bytes()[:-100])
    elif how == "magic":
        p = folder / "t10k-images-idx3-ubyte"
        p.write_bytes(b"\x12\x34\x08\x03" + p.read_bytes()[4:])
    elif how == "label":
        y = (np.arange(30) % 10).astype(np.uint8)
        y[7] = 12
        write_idx(folder / "train-labels-idx1-ubyte", y)
    return folder


def csv_file(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


ROWS = "".join(f"{i},{i % 3},{i % 2}\n" for i in range(40))

BAD_INPUT = {
    # case: (argument builder, words the message must contain)
    "truncated-idx": (lambda d: ["--dataset", "mnist", "--data-dir", bad_mnist(d / "m", "truncated")], "truncated"),
    "wrong-magic-idx": (lambda d: ["--dataset", "mnist", "--data-dir", bad_mnist(d / "m", "magic")], "magic"),
    "mnist-label-out-of-range": (lambda d: ["--dataset", "mnist", "--data-dir", bad_mnist(d / "m", "label")], "0..9"),
    "csv-missing-target": (lambda d: ["--dataset", f"csv:{csv_file(d, 't.csv', 'a,b,c' + chr(10) + ROWS)}",
                                      "--target", "y"], "no target column 'y'"),
    "csv-non-numeric": (lambda d: ["--dataset", f"csv:{csv_file(d, 't.csv', 'a,b,y' + chr(10) + ROWS + '40,x,1' + chr(10))}",
                                   "--target", "y"], "non-numeric value 'x'"),
    "csv-nan": (lambda d: ["--dataset", f"csv:{csv_file(d, 't.csv', 'a,b,y' + chr(10) + ROWS + '40,NaN,1' + chr(10))}",
                           "--target", "y"], "missing values"),
    "csv-inf": (lambda d: ["--dataset", f"csv:{csv_file(d, 't.csv', 'a,b,y' + chr(10) + ROWS + '40,inf,1' + chr(10))}",
                           "--target", "y"], "non-finite"),
    "csv-empty": (lambda d: ["--dataset", f"csv:{csv_file(d, 't.csv', '')}", "--target", "y"], "empty"),
    "unknown-dataset": (lambda d: ["--dataset", "cifar10"], "unknown dataset 'cifar10'"),
    "unknown-model": (lambda d: ["--dataset", "synthetic", "--model", "foo"], "--model"),
    "unknown-reg": (lambda d: ["--dataset", "synthetic", "--reg", "bar"], "--reg"),
    "unknown-flag": (lambda d: ["--dataset", "synthetic", "--bogus"], "--bogus"),
    "bad-number": (lambda d: ["--dataset", "synthetic", "--lr", "fast"], "--lr"),
    "invalid-toml": (lambda d: ["--config", csv_file(d, "c.toml", "epochs = = 3\n")], "not valid TOML"),
    "missing-config": (lambda d: ["--config", d / "nope.toml"], "does not exist"),
    "unknown-config-key": (lambda d: ["--config", csv_file(d, "c.toml", 'dataset = "synthetic"\nfoo = 3\n')],
                           "unknown config key(s) foo"),
    "bad-config-value": (lambda d: ["--config", csv_file(d, "c.toml", 'dataset = "synthetic"\nval_fraction = 1.5\n')],
                         "val_fraction must be in (0, 1)"),
    "head-on-classification": (lambda d: ["--dataset", "synthetic", "--head", "coral"], "ordinal"),
    # one spelling per activation and polynomial start, on the command line as in the library
    "activation-case": (lambda d: ["--dataset", "synthetic", "--model", "mlp", "--activation", "ReLU"],
                        "'ReLU' is not one of 'relu', 'gelu', 'silu', 'tanh'"),
    "poly-init-case-in-config": (lambda d: ["--config", csv_file(d, "c.toml", 'dataset = "synthetic"\npoly_init = "Tanh"\n')],
                                 "poly_init 'Tanh' is not known: expected one of gelu, silu, tanh, identity"),
}


def assert_one_line_error(p: subprocess.CompletedProcess, *words: str) -> None:
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert p.returncode == 2, (p.returncode, p.stderr[-2000:])
    assert "Traceback" not in p.stderr
    assert len(lines) == 1, p.stderr
    assert lines[0].startswith("chainzrule: error: ")
    for w in words:
        assert w in lines[0], (w, lines[0])


@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, cache, case):
    build, words = BAD_INPUT[case]
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    out = tmp_path / "out"
    p = chainzrule("train", *build(inputs), *TINY, "--out", out, cache=cache)
    assert_one_line_error(p, words)
    assert not out.exists()


def test_bad_input_leaves_an_existing_out_folder_unchanged(tmp_path, cache):
    out = tmp_path / "out"  # an older run's folder (a folder holding other files is refused as --out)
    out.mkdir()
    (out / "result.json").write_text("older run")
    p = chainzrule("train", "--dataset", "mnist", "--data-dir", bad_mnist(tmp_path / "m", "truncated"), *TINY,
                   "--out", out, cache=cache)
    assert_one_line_error(p, "truncated")
    assert sorted(f.name for f in out.iterdir()) == ["result.json"] and (out / "result.json").read_text() == "older run"


def test_evaluate_a_folder_that_is_not_a_checkpoint(tmp_path, cache):
    assert_one_line_error(chainzrule("evaluate", tmp_path, cache=cache), "not a chainzrule checkpoint")


# ------------------------------------------------------------------------------- help
def test_python_dash_m_chainzrule_help(cache):
    env = {**os.environ, "CHAINZRULE_CACHE": str(cache)}
    p = subprocess.run([sys.executable, "-m", "chainzrule", "--help"], capture_output=True, text=True, env=env)
    assert p.returncode == 0 and p.stderr == ""
    for command in ("train", "evaluate", "inspect", "fight", "report", "data"):
        assert command in p.stdout


def _commands(group, prefix=()):
    for name, cmd in group.commands.items():
        yield prefix + (name,), cmd
        if hasattr(cmd, "commands"):
            yield from _commands(cmd, prefix + (name,))


@pytest.mark.parametrize("path", [(), *[p for p, _ in _commands(cli)]], ids=lambda p: " ".join(p) or "chainzrule")
def test_help_of_every_command_explains_every_option(path):
    cmd = cli
    for name in path:
        cmd = cmd.commands[name]
    res = CliRunner().invoke(cli, [*path, "--help"], prog_name="chainzrule")
    assert res.exit_code == 0, res.output
    assert res.output.startswith(f"Usage: chainzrule {' '.join(path)}".rstrip())
    assert cmd.help and cmd.help.split("\n")[0].strip() in " ".join(res.output.split())
    for param in cmd.params:
        if not isinstance(param, click.Option):  # an argument: named in the Usage line
            usage = res.output.splitlines()[0]
            choices = getattr(param.type, "choices", None)
            assert param.human_readable_name in usage or "|".join(choices or ()) in usage, (path, param.name)
            continue
        flag = param.opts[0]
        assert flag in res.output, (path, flag)
        if param.name not in ("optimizer", "lr_schedule", "epochs", "batch_size"):  # [default: ...] is their help
            assert param.help and len(param.help) > 12, (path, flag, "has no help text")
        else:
            assert param.help, (path, flag)
