"""The command line against the hostile probe of issue 8: bad values, bad --out, run folders as a
set, checkpoints that carry their data reference and standardization, broken inputs to
evaluate and report. In-process (``main([...])``) on tiny synthetic data, so it stays fast."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from chainzrule.cli import main

TINY = ["--hidden", "8", "--epochs", "1", "--quiet"]
RUN = ["grad_norms.json", "model.json", "model.safetensors", "result.json"]


def run(capsys, *args) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of ``chainzrule ARGS``."""
    with pytest.raises(SystemExit) as e:
        main([str(a) for a in args])
    out = capsys.readouterr()
    return e.value.code, out.out, out.err


def one_line_error(capsys, *args) -> str:
    code, _, err = run(capsys, *args)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("chainzrule: error: "), (code, err)
    assert "Traceback" not in err
    return lines[0]


def train_synthetic(capsys, out: Path, *extra) -> dict:
    code, _, err = run(capsys, "train", "--dataset", "synthetic", *TINY, *extra, "--out", out)
    assert code == 0, err
    return json.loads((out / "result.json").read_text())


@pytest.fixture
def no_data(monkeypatch):
    """Fail the test if the data is read: the checks under test must come first."""
    import chainzrule.train as train_mod

    monkeypatch.setattr(train_mod, "load_splits", lambda *a, **k: pytest.fail("data read before the check"))


# ------------------------------------------------------------------------------------------ values
@pytest.mark.parametrize("flags, words", [
    (["--lr", "1e300"], "lr must be at most 1e+30"),
    (["--bound", "1e300"], "bound must be at most 1e+30"),
    (["--reg-strength", "1e308"], "reg_strength must be at most 1e+30"),
    (["--dreg", "3.4e38"], "dreg must be at most 1e+30"),
    (["--seed", "4294967296"], "seed must be an integer in [0, 2**32)"),
    (["--seed", "-1"], "seed must be an integer in [0, 2**32)"),
])
def test_out_of_range_values_are_one_line_exit_2(capsys, tmp_path, no_data, flags, words):
    line = one_line_error(capsys, "train", "--dataset", "synthetic", *TINY, *flags, "--out", tmp_path / "o")
    assert words in line
    assert not (tmp_path / "o").exists()


def test_network_too_large_is_refused_before_allocation(capsys, tmp_path):
    line = one_line_error(capsys, "train", "--dataset", "synthetic", "--model", "mlp", "--hidden", "10000000,10000000",
                          "--epochs", "1", "--quiet", "--out", tmp_path / "o")
    # 10*1e7 + 1e7 + 1e7*1e7 + 1e7 + 1e7*3 + 3 (synthetic: 10 features, 3 classes)
    assert "has 100,000,150,000,003 parameters and needs about" in line and "GB of memory" in line
    assert not (tmp_path / "o").exists()


# ------------------------------------------------------------------------------------------ --out
def test_out_under_a_regular_file_is_refused_before_the_data(capsys, tmp_path, no_data):
    (tmp_path / "file").write_text("x")
    line = one_line_error(capsys, "train", "--dataset", "synthetic", *TINY, "--out", tmp_path / "file" / "run")
    assert "which is a file, not a folder" in line


def test_unwritable_out_is_refused_before_the_data(capsys, no_data):
    line = one_line_error(capsys, "train", "--dataset", "synthetic", *TINY, "--out", "/proc/chainzrule-run")
    assert "cannot write in /proc" in line


def test_out_holding_foreign_files_is_refused_and_untouched(capsys, tmp_path, no_data):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    line = one_line_error(capsys, "train", "--dataset", "synthetic", *TINY, "--out", out)
    assert "holds files that are not from a chainzrule run (notes.txt)" in line
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


def test_an_older_run_is_replaced_as_a_set(capsys, tmp_path):
    out = tmp_path / "run"
    train_synthetic(capsys, out, "--seed", "1")
    (out / "activations.png").write_bytes(b"old plot")  # from inspect of the older run
    r = train_synthetic(capsys, out, "--seed", "2")
    assert r["config"]["seed"] == 2
    assert sorted(p.name for p in out.iterdir()) == RUN  # the old run's plot went with it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # no staging folder left behind


def test_a_late_failure_leaves_the_older_run_complete(capsys, tmp_path, monkeypatch):
    import chainzrule.checkpoint as ckpt

    out = tmp_path / "run"
    train_synthetic(capsys, out, "--seed", "1")
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    real = ckpt.write_json

    def disk_full(path, obj):
        if Path(path).name == "result.json":
            raise OSError(28, "No space left on device")
        return real(path, obj)

    monkeypatch.setattr(ckpt, "write_json", disk_full)
    with pytest.raises(OSError, match="No space left"):
        main(["train", "--dataset", "synthetic", *TINY, "--seed", "2", "--out", str(out)])
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # not new weights beside an old result
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_a_failed_first_run_leaves_no_folder(capsys, tmp_path, monkeypatch):
    import chainzrule.checkpoint as ckpt

    monkeypatch.setattr(ckpt, "write_json", lambda path, obj: (_ for _ in ()).throw(OSError(28, "No space left")))
    with pytest.raises(OSError):
        main(["train", "--dataset", "synthetic", *TINY, "--out", str(tmp_path / "run")])
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------------------ evaluate
def test_evaluate_refuses_nan_weights(capsys, tmp_path):
    out = tmp_path / "run"
    train_synthetic(capsys, out)
    state = load_file(str(out / "model.safetensors"))
    name = next(iter(state))
    state[name] = torch.full_like(state[name], float("nan"))
    save_file(state, str(out / "model.safetensors"))
    line = one_line_error(capsys, "evaluate", out)
    assert "the weights hold NaN/inf" in line and name in line and "accuracy" not in line


def test_evaluate_refuses_a_model_json_too_large_to_build(capsys, tmp_path):
    out = tmp_path / "run"
    train_synthetic(capsys, out)
    meta = json.loads((out / "model.json").read_text())
    meta["config"]["hidden"] = [10_000_000, 10_000_000]
    (out / "model.json").write_text(json.dumps(meta))
    assert "parameters and needs about" in one_line_error(capsys, "evaluate", out)


def _csv(path: Path, n: int = 120, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    X = rng.normal(size=(n, 3)) * [1.0, 10.0, 100.0] + [0.0, 50.0, -20.0] + y[:, None] * 2.0
    path.write_text("a,b,c,y\n" + "".join(f"{r[0]:.6f},{r[1]:.6f},{r[2]:.6f},{t}\n" for r, t in zip(X, y)))
    return path


def test_checkpoint_evaluates_from_another_directory(capsys, tmp_path, monkeypatch):
    work, elsewhere = tmp_path / "work", tmp_path / "elsewhere"
    work.mkdir()
    elsewhere.mkdir()
    _csv(work / "t.csv")
    monkeypatch.chdir(work)
    r = train_synthetic_csv(capsys, Path("run"))
    meta = json.loads((work / "run" / "model.json").read_text())
    assert meta["data"]["dataset"] == f"csv:{work / 't.csv'}" and meta["config"]["dataset"] == "csv:t.csv"
    monkeypatch.chdir(elsewhere)
    code, out, err = run(capsys, "evaluate", work / "run")
    assert code == 0, err
    assert json.loads(out)["test"]["accuracy"] == pytest.approx(r["test"]["accuracy"])


def train_synthetic_csv(capsys, out: Path) -> dict:
    code, _, err = run(capsys, "train", "--dataset", "csv:t.csv", "--target", "y", "--model", "mlp", *TINY, "--out", out)
    assert code == 0, err
    return json.loads((out / "result.json").read_text())


def test_checkpoint_carries_the_training_standardization_and_evaluate_applies_it(capsys, tmp_path, monkeypatch):
    from chainzrule.checkpoint import checkpoint_splits, load_checkpoint
    from chainzrule.data import load_dataset
    from chainzrule.data.splits import make_splits

    _csv(tmp_path / "t.csv")
    monkeypatch.chdir(tmp_path)
    train_synthetic_csv(capsys, Path("run"))
    _, cfg, meta = load_checkpoint("run")
    fitted = make_splits(load_dataset("csv:t.csv", target="y"), val_fraction=cfg.val_fraction, seed=cfg.seed)
    assert meta["standardization"]["mean"] == [float(v) for v in fitted.meta["feature_mean"]]
    assert meta["standardization"]["std"] == [float(v) for v in fitted.meta["feature_std"]]
    # the saved statistics are applied, not refitted: with mean 0 / std 1 saved, features stay raw
    raw = make_splits(load_dataset("csv:t.csv", target="y"), val_fraction=cfg.val_fraction, seed=cfg.seed,
                      standardization="none")
    meta["standardization"] = {"mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0]}
    got = checkpoint_splits(cfg.replace(**meta["data"]), meta, progress=False)
    assert torch.equal(got.X_test, raw.X_test) and not torch.equal(got.X_test, fitted.X_test)


# ------------------------------------------------------------------------------------------ report
@pytest.mark.parametrize("content, words", [
    (bytes(range(256)) * 4, "is not a readable results.csv"),
    (b"key,phase,contender,seed\nk1,final,relu,0\nk2,final\n", "line(s) 3 do not have the header's 4 fields"),
    (b"\x00\x01\x02garbage\n", "expected a 'phase' column"),
])
def test_report_on_a_binary_or_garbled_results_csv(capsys, tmp_path, content, words):
    (tmp_path / "spec.json").write_text(json.dumps({"name": "x", "contenders": []}))
    (tmp_path / "results.csv").write_bytes(content)
    line = one_line_error(capsys, "report", tmp_path)
    assert words in line and "results.csv" in line


@pytest.mark.parametrize("out", [".", "..", "sub/.."])
def test_out_holding_the_working_folder_is_refused(capsys, tmp_path, monkeypatch, no_data, out):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    monkeypatch.chdir(run_dir)
    line = one_line_error(capsys, "train", "--dataset", "synthetic", *TINY, "--out", out)
    assert "is the working folder or holds it" in line


def test_a_format_1_checkpoint_still_evaluates_with_a_warning(capsys, tmp_path):
    out = tmp_path / "run"
    r = train_synthetic(capsys, out)
    meta = json.loads((out / "model.json").read_text())
    for key in ("data", "standardization"):
        del meta[key]
    meta["format_version"] = 1
    (out / "model.json").write_text(json.dumps(meta))
    code, stdout, err = run(capsys, "evaluate", out)
    assert code == 0 and "predates saved standardization statistics" in err
    assert json.loads(stdout)["test"]["accuracy"] == pytest.approx(r["test"]["accuracy"])


# ------------------------------------------------------------------------------------------ devices
@pytest.fixture
def no_accelerator(monkeypatch):
    """A machine without CUDA or MPS, whatever this one has."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)


@pytest.mark.parametrize("device", ["cuda", "cuda:1", "mps"])
def test_an_absent_device_is_one_line_exit_2_before_the_data(capsys, tmp_path, no_data, no_accelerator, device):
    line = one_line_error(capsys, "train", "--dataset", "synthetic", *TINY, "--device", device, "--out", tmp_path / "o")
    assert f"device {device!r} is not available" in line and line.endswith("expected cpu")
    assert not (tmp_path / "o").exists()


def test_compile_without_a_cpp_compiler_is_one_line_exit_2_before_the_data(capsys, tmp_path, no_data, monkeypatch):
    import shutil

    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None)
    line = one_line_error(capsys, "train", "--dataset", "synthetic", *TINY, "--compile", "--out", tmp_path / "o")
    assert "compile on CPU needs a C++ compiler" in line and "got none" in line
    assert not (tmp_path / "o").exists()


def test_a_cuda_index_past_the_last_device_names_the_ones_there(monkeypatch):
    from chainzrule.train import available_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(ValueError, match=r"'cuda:2' is not available: expected cuda or cuda:0 to cuda:1 \(2 CUDA "):
        available_device("cuda:2")
    assert available_device("cuda:1") == torch.device("cuda", 1)  # placed on it only when a run starts
    assert available_device("cpu") == torch.device("cpu")


def test_fights_on_an_absent_device_are_refused_before_any_run(tmp_path, no_accelerator, monkeypatch):
    """The fight and the stability map check the devices of their runs before the data, the
    folder or any run (they run here: the local pool); a classical contender has no device."""
    import chainzrule.fight.runner as runner
    import chainzrule.fight.stability as stability
    from chainzrule.fight.spec import parse_spec
    from chainzrule.fight.stability_spec import parse_stability_spec
    from test_stability import _raw

    monkeypatch.setattr(runner, "load_data", lambda *a, **k: pytest.fail("data read before the check"))
    spec = parse_spec({"fight": {"dataset": "synthetic", "trials": 1, "reference": "a"},
                       "base": {"epochs": 1, "hidden": [4], "device": "cuda"},
                       "contender": [{"name": "a", "model": "mlp"}, {"name": "b", "model": "logreg"}]})
    with pytest.raises(ValueError, match="device 'cuda' is not available"):
        runner.run_fight(spec, tmp_path / "fight", progress=False)
    assert not (tmp_path / "fight").exists()
    monkeypatch.setattr(stability, "load_data", lambda *a, **k: pytest.fail("data read before the check"))
    with pytest.raises(ValueError, match="device 'mps' is not available"):
        stability.run_stability(parse_stability_spec(_raw(base__device="mps")), tmp_path / "map", progress=False)
    assert not (tmp_path / "map").exists()


def test_a_fight_with_compiled_runs_and_no_cpp_compiler_is_refused_before_any_run(tmp_path, monkeypatch):
    """``compile = true`` on a contender: the fight's preflight checks for a C++ compiler (CPU) before
    the data, the folder or any run, as it checks devices."""
    import shutil

    import chainzrule.fight.runner as runner
    from chainzrule.fight.spec import parse_spec

    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None)
    monkeypatch.setattr(runner, "load_data", lambda *a, **k: pytest.fail("data read before the check"))
    spec = parse_spec({"fight": {"dataset": "synthetic", "trials": 1, "reference": "a"},
                       "base": {"epochs": 1, "hidden": [4]},
                       "contender": [{"name": "a", "model": "mlp", "compile": True}, {"name": "b", "model": "logreg"}]})
    with pytest.raises(ValueError, match=r"compile on CPU needs a C\+\+ compiler"):
        runner.run_fight(spec, tmp_path / "fight", progress=False)
    assert not (tmp_path / "fight").exists()


@pytest.mark.parametrize("files, words", [
    ({"stability.csv": "contender,lr\n", "spec.json": '{"command": "chainzrule stability S --out F"}'},
     "is a stability map, not a `chainzrule fight` folder: its report is rewritten by its own command, which reuses "
     "the stored runs: chainzrule stability S --out {folder}"),  # the folder given, not the one it was made in
    ({"results.csv": "contender,head\n", "tuning.csv": "", "spec.json": '{"baseline": "linear"}'},
     "is a fine-tune fight, not a `chainzrule fight` folder"),
])
def test_report_on_a_map_or_fine_tune_folder_names_the_command_that_rewrites_it(capsys, tmp_path, files, words):
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    before = sorted(p.name for p in tmp_path.iterdir())
    assert words.format(folder=tmp_path) in one_line_error(capsys, "report", tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written


@pytest.mark.parametrize("name, words", [
    ("sst5", "sst5 is not downloaded: give its files with --data-dir DIR or $CHAINZRULE_SST5_DIR"),
    ("yelp-full", "yelp-full is not downloaded: give its files with --data-dir DIR or $CHAINZRULE_YELP_DIR"),
    ("nope", "unknown dataset 'nope' to fetch: expected mnist or pima"),
])
def test_data_fetch_of_what_is_not_downloaded_says_where_it_is_read_from(capsys, name, words):
    assert words in one_line_error(capsys, "data", "fetch", name)


# ------------------------------------------------------------------ one command's folder, not another's
def test_commands_refuse_another_commands_folder(capsys, tmp_path):
    """fight, stability and finetune resume into their own kind of folder and refuse one another's
    (and a train run's) before any work; train may replace a run folder that `export` wrote into."""
    from chainzrule.rundir import check_out_kind, folder_kind

    root = Path(__file__).resolve().parents[1]
    fight_dir = tmp_path / "f"
    fight_dir.mkdir()
    (fight_dir / "spec.json").write_text(json.dumps({"name": "x", "trials": 3}))
    stab_dir = tmp_path / "s"
    stab_dir.mkdir()
    (stab_dir / "stability.csv").write_text("contender\n")
    assert (folder_kind(fight_dir), folder_kind(stab_dir), folder_kind(tmp_path / "new")) == ("fight", "stability", None)
    line = one_line_error(capsys, "stability", root / "fights" / "stability-mnist.toml", "--quick", "--out", fight_dir)
    assert "is a `chainzrule fight` folder, expected a new or empty folder or a `chainzrule stability` map" in line
    assert sorted(p.name for p in fight_dir.iterdir()) == ["spec.json"]  # nothing written
    line = one_line_error(capsys, "fight", root / "fights" / "pima.toml", "--quick", "--out", stab_dir)
    assert "is a `chainzrule stability` map" in line and sorted(p.name for p in stab_dir.iterdir()) == ["stability.csv"]
    check_out_kind(fight_dir, "fight")  # its own kind: resumed
    run_dir = tmp_path / "r"
    train_synthetic(capsys, run_dir)
    line = one_line_error(capsys, "fight", root / "fights" / "pima.toml", "--quick", "--out", run_dir)
    assert "is a `chainzrule train` run folder" in line
    (run_dir / "model.onnx").write_bytes(b"x")  # what `chainzrule export` adds
    (run_dir / "model.pt2").write_bytes(b"x")
    train_synthetic(capsys, run_dir)
    assert not (run_dir / "model.onnx").exists()  # replaced as a whole


def test_bare_command_prints_help_and_interrupts_say_what_was_kept(capsys, tmp_path, monkeypatch):
    """`chainzrule` (and `chainzrule data`) alone print their help (exit 0), not a one-line error; an
    interrupted train says nothing was written (it keeps nothing), a fight that finished runs are kept."""
    import sys

    import chainzrule.cli as cli_mod
    import chainzrule.train as train_mod

    code, out, err = run(capsys)
    assert code == 0 and out.startswith("Usage: chainzrule [OPTIONS] COMMAND") and "\n" in out.strip() and not err
    code, out, _ = run(capsys, "data")
    assert code == 0 and out.startswith("Usage: chainzrule data")

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(train_mod, "load_splits", interrupted)
    monkeypatch.setattr(cli_mod, "_exit_now", lambda code: sys.exit(code))  # not os._exit in the test process
    code, _, err = run(capsys, "train", "--dataset", "synthetic", *TINY, "--out", tmp_path / "r")
    assert code == 130 and "nothing was written" in err and not (tmp_path / "r").exists()


@pytest.mark.parametrize("flags, words", [
    (["--model", "logreg", "--dreg", "0.1"], "--dreg acts on model(s) chainzrule, mlp, cnn, chainzrule-cnn only, got --model logreg"),
    (["--model", "chainzrule", "--activation", "gelu"], "--activation acts on model(s) mlp, cnn only"),
    (["--model", "mlp", "--conv-channels", "4"], "--conv-channels acts on model(s) cnn, chainzrule-cnn only"),
    (["--model", "mlp", "--poly-init", "tanh"], "--poly-init acts on model(s) chainzrule, chainzrule-cnn only"),
    (["--model", "chainzrule", "--dreg-final", "0.1"], "expected --dreg-schedule linear or cosine, got constant"),
    (["--model", "chainzrule", "--dreg-warmup", "0.3"], "expected --dreg-schedule warmup, linear or cosine, got constant"),
    (["--model", "chainzrule", "--dreg-schedule", "warmup"], "is a constant λ: expected --dreg-warmup in (0, 1), got 0"),
])
def test_train_refuses_options_its_model_ignores(capsys, tmp_path, no_data, flags, words):
    """An option the model would ignore is refused (it would be recorded in result.json and do
    nothing), before the data is read; λ = 0 is no DREG and fine with any model."""
    line = one_line_error(capsys, "train", "--dataset", "synthetic", *TINY, *flags, "--out", tmp_path / "r")
    assert words in line and not (tmp_path / "r").exists()
    config = tmp_path / "c.toml"
    config.write_text(f'model = "{flags[1]}"\n{flags[2][2:]} = {flags[3]!r}\n'.replace("'", '"'))
    assert words.split(" only")[0] in one_line_error(capsys, "train", "--config", config, "--dataset", "synthetic",
                                                     "--out", tmp_path / "r")


def test_ray_address_without_the_ray_executor_is_refused(capsys, tmp_path):
    root = Path(__file__).resolve().parents[1]
    line = one_line_error(capsys, "fight", root / "fights" / "pima.toml", "--quick", "--executor", "local",
                          "--ray-address", "1.2.3.4:1", "--out", tmp_path / "f")
    assert "expected --executor ray with it" in line and not (tmp_path / "f").exists()


# ------------------------------------------------------------------------------------------ audit, 2026-12-03
def test_output_paths_under_a_file_are_one_line_exit_2_before_the_work(capsys, tmp_path):
    run_dir = tmp_path / "run"
    train_synthetic(capsys, run_dir)
    afile = tmp_path / "afile"
    afile.write_text("x")
    line = one_line_error(capsys, "evaluate", run_dir, "--robustness", "--out", afile / "m.json")
    assert "afile, which is a file, not a folder" in line and line.startswith("chainzrule: error: --out ")
    line = one_line_error(capsys, "inspect", run_dir, "--plot", afile / "a.png")
    assert "--plot" in line and "is a file, not a folder" in line
    assert "is a file, not a folder" in one_line_error(capsys, "scoreboard", tmp_path, "--out", afile / "sb")


def test_an_os_error_on_a_given_path_is_one_line_exit_2(capsys, tmp_path, monkeypatch):
    """A path that fails only when written (a cache that is a file, a folder gone read-only) ends
    with the path and the reason on one line, never a traceback."""
    afile = tmp_path / "afile"
    afile.write_text("x")
    monkeypatch.setenv("CHAINZRULE_CACHE", str(afile))
    line = one_line_error(capsys, "data", "fetch", "pima")
    assert str(afile) in line and "Not a directory" in line


def test_report_previous_must_be_another_folder(capsys, tmp_path):
    from test_fight_report import build_fight

    folder = build_fight(tmp_path / "f")
    assert "the fight folder itself" in one_line_error(capsys, "report", folder, "--previous", folder)
    (folder / "previous").mkdir()
    assert "its previous/ folder" in one_line_error(capsys, "report", folder, "--previous", folder / "previous")


def test_scoreboard_refuses_one_folder_twice_and_two_of_one_name(capsys, tmp_path):
    from test_fight_report import build_fight

    a, b = build_fight(tmp_path / "f"), build_fight(tmp_path / "x" / "f")
    assert "the same folder" in one_line_error(capsys, "scoreboard", a, a, "--out", tmp_path / "sb")
    assert "both named 'f'" in one_line_error(capsys, "scoreboard", a, b, "--out", tmp_path / "sb")


def test_a_diverged_run_says_so_first(capsys, monkeypatch):
    from chainzrule.cli import _print_summary

    _print_summary({"test": {"accuracy": 0.65}, "params": 10, "diverged": True, "train_seconds": 1.0})
    assert capsys.readouterr().out.startswith("DIVERGED")
    _print_summary({"test": {"accuracy": 0.65}, "params": 10, "diverged": False, "train_seconds": 1.0})
    assert capsys.readouterr().out.startswith("test accuracy")


def test_a_missing_choice_lists_the_choices_on_one_line(capsys, tmp_path):
    assert "Choose from: onnx, pt2" in one_line_error(capsys, "export", tmp_path)


@pytest.mark.parametrize("content, words", [("{not json", "is not valid JSON"), ("[1, 2]", "expected a JSON object, got list")])
def test_a_damaged_tuning_json_is_refused_not_read_as_no_trials(capsys, tmp_path, content, words):
    from test_fight_report import build_fight

    folder = build_fight(tmp_path / "f")
    (folder / "tuning.json").write_text(content)
    assert words in one_line_error(capsys, "report", folder)


def test_a_checkpoint_path_that_is_another_file_is_named(capsys, tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x")
    line = one_line_error(capsys, "evaluate", afile)
    assert str(afile) in line and "expected a run folder" in line


@pytest.mark.parametrize("value", ['"8"', "8.0", "true", "0"])
def test_a_model_json_with_a_non_integer_feature_count_is_refused(capsys, tmp_path, value):
    run_dir = tmp_path / "run"
    train_synthetic(capsys, run_dir)
    meta = json.loads((run_dir / "model.json").read_text())
    text = json.dumps(meta).replace(f'"in_features": {meta["in_features"]}', f'"in_features": {value}')
    (run_dir / "model.json").write_text(text)
    for command in ("evaluate", "inspect", "export"):
        extra = ["--format", "pt2"] if command == "export" else []
        assert "expected in_features to be a positive integer" in one_line_error(capsys, command, run_dir, *extra)


@pytest.mark.parametrize("flags, words", [
    (["--model", "logreg", "--logit-scale", "3"], "--logit-scale acts on model(s) chainzrule, mlp, kan"),
    (["--model", "svm", "--hidden", "5"], "--hidden acts on model(s) chainzrule, mlp, kan"),
    (["--model", "mlp", "--reg-strength", "0.5"], "--reg-strength acts with --reg wd or igp or jr only, got --reg none"),
    (["--model", "mlp", "--reg", "wd", "--jr-projections", "7"], "--jr-projections acts with --reg jr only, got --reg wd"),
])
def test_train_refuses_options_that_act_with_another_model_or_reg(capsys, tmp_path, no_data, flags, words):
    line = one_line_error(capsys, "train", "--dataset", "synthetic", *TINY[2:], *flags, "--out", tmp_path / "r")
    assert words in line and not (tmp_path / "r").exists()


def test_classical_models_read_reg_strength_without_reg(capsys, tmp_path):
    """logreg/svm read it as 1/C, xgboost as its L2 weight: no --reg needed."""
    code, _, err = run(capsys, "train", "--dataset", "synthetic", "--model", "logreg", "--reg-strength", "0.5",
                       "--quiet", "--out", tmp_path / "r")
    assert code == 0, err


# ------------------------------------------------------------------------------ empty strings
@pytest.mark.parametrize("args, words", [
    (["train", "--dataset", "synthetic", "--config", "", *TINY], "--config: expected a TOML file, got an empty path"),
    (["fight", "fights/pima.toml", "--quick", "--storage", ""], "--storage '' is not a database URL"),
    (["fight", "fights/pima.toml", "--quick", "--ray-address", ""], "--ray-address '' names a Ray cluster"),
])
def test_an_empty_string_is_refused_not_read_as_not_given(capsys, tmp_path, no_data, monkeypatch, args, words):
    """``--config ""`` (an unset shell variable) trained with the defaults, ``--storage ""`` ran
    without storage and ``--ray-address ""`` on the local pool: each is now one line, exit 2,
    before the data and before any output."""
    monkeypatch.chdir(Path(__file__).resolve().parents[1])
    line = one_line_error(capsys, *args, "--out", tmp_path / "o")
    assert words in line
    assert not (tmp_path / "o").exists()


def test_report_previous_must_be_the_same_fight(capsys, tmp_path):
    """Another fight's folder as --previous was copied in and its differences reported as what
    changed in this one; it is refused, naming both fights, and nothing is copied."""
    import json

    from test_fight_report import build_fight

    folder, other = build_fight(tmp_path / "f"), build_fight(tmp_path / "g")
    spec = json.loads((other / "spec.json").read_text())
    name = spec["name"]
    spec["name"] = "another-fight"
    (other / "spec.json").write_text(json.dumps(spec))
    line = one_line_error(capsys, "report", folder, "--previous", other)
    assert f"expected --previous to be an earlier run of fight {name!r}" in line and "'another-fight'" in line
    assert not (folder / "previous").exists()


def test_report_refuses_a_results_csv_with_a_header_only(capsys, tmp_path):
    """A results.csv cut to its header was reported as "no final runs" for every claim, over the
    report and summary.csv; it is refused, and report.md is left as it was."""
    from test_fight_report import build_fight

    folder = build_fight(tmp_path / "f")
    csv_path = folder / "results.csv"
    csv_path.write_text(csv_path.read_text().splitlines()[0] + "\n")
    before = (folder / "report.md").read_text() if (folder / "report.md").exists() else None
    line = one_line_error(capsys, "report", folder)
    assert "results.csv holds a header and no runs" in line and "rerun the fight command" in line
    assert ((folder / "report.md").read_text() if (folder / "report.md").exists() else None) == before


@pytest.mark.parametrize("flags, words", [
    (["--dataset", "synthetic", "--target", "label"],
     "--target names where data is read, got it with --dataset synthetic, which is generated"),
    (["--dataset", "synthetic", "--data-dir", "/tmp"], "--data-dir names where data is read, got it with --dataset synthetic"),
    (["--dataset", "pima", "--data-dir", "/nonexistent-chainzrule"], "--data-dir /nonexistent-chainzrule is not a directory"),
    (["--dataset", "synthetic", "--model", "svm", "--lr", "0.1"],
     "--lr acts on model(s) chainzrule, mlp, kan, cnn, chainzrule-cnn, xgboost only, got --model svm"),
])
def test_train_options_that_would_do_nothing_are_refused(capsys, tmp_path, no_data, flags, words):
    """Flags the run would record and ignore (the audit's cases, which exited 0) are one line, exit 2."""
    line = one_line_error(capsys, "train", *flags, "--epochs", "1", "--quiet", "--out", tmp_path / "o")
    assert words in line, line
    assert not (tmp_path / "o").exists()


def test_train_records_the_lambda_it_used(capsys, tmp_path):
    """A default ChainzRule run's config says dreg null; result.json and model.json say which λ
    that was (3e-3), and a ReLU MLP's 0."""
    r = train_synthetic(capsys, tmp_path / "cr", "--model", "chainzrule")
    assert r["config"]["dreg"] is None and r["dreg_lambda"] == pytest.approx(3e-3)
    assert json.loads((tmp_path / "cr" / "model.json").read_text())["dreg_lambda"] == pytest.approx(3e-3)
    assert train_synthetic(capsys, tmp_path / "relu", "--model", "mlp")["dreg_lambda"] == 0.0


def test_inspect_formulas_refuses_options_it_would_ignore(capsys, tmp_path):
    """--formulas prints and stops: a --plot path (never written) or a dataset is refused."""
    train_synthetic(capsys, tmp_path / "cr", "--model", "chainzrule")
    line = one_line_error(capsys, "inspect", tmp_path / "cr", "--formulas", "--plot", tmp_path / "q.png")
    assert "--formulas prints the polynomials and stops: expected no --plot, got --plot" in line
    assert not (tmp_path / "q.png").exists()
