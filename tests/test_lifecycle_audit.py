"""A single model's life cycle as a user meets it: ``chainzrule train`` on a small CSV, then
``evaluate``, ``inspect`` and ``export`` of the run — in process, on tiny data.

Covers what an audit found: ``inspect`` of a KAN run (no per-layer report, not an error), an
ONNX export of a float64 or bfloat16 run (the float32 graph, checked against that model),
evaluating or inspecting a run on data whose features are not the model's, or whose classes share
names with the model's at other outputs (one line, exit 2, nothing on stdout: columns swapped or
renamed used to be measured silently; another class count is refused by the library function
both commands call), training-loop flags given to a classical model (refused like --hidden), and
the DREG penalty a torchrun step logs (the global batch's mean).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from chainzrule.checkpoint import checkpoint_data, checkpoint_splits, load_checkpoint, save_checkpoint
from chainzrule.cli import main
from chainzrule.errors import ConfigError


def cz(capsys, *args) -> tuple[int, str, str]:
    """``(exit status, stdout, stderr)`` of ``chainzrule ARGS``, run in this process."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        main([str(a) for a in args])
    out, err = capsys.readouterr()
    return e.value.code, out, err


def refused(result, *phrases) -> None:
    """One ``chainzrule: error:`` line naming ``phrases``, exit status 2 and nothing on stdout."""
    code, out, err = result
    assert code == 2 and out == "", (code, out, err)
    assert err.count("\n") == 1 and err.startswith("chainzrule: error: "), err
    for p in phrases:
        assert p in err, err


def write_table(path: Path, columns=("age", "bmi", "color", "label"), rename: dict | None = None) -> Path:
    """200 rows: two numbers, a categorical column and a yes/no label, columns in the order given."""
    rng = np.random.default_rng(0)
    age, bmi = rng.normal(40, 10, 200), rng.normal(25, 4, 200)
    color = rng.choice(["red", "green", "blue"], 200)
    label = np.where(age / 10 + bmi / 5 + (color == "red") + rng.normal(size=200) > 10, "yes", "no")
    cells = {"age": [f"{v:.1f}" for v in age], "bmi": [f"{v:.1f}" for v in bmi], "color": list(color),
             "label": [(rename or {}).get(v, v) for v in label]}
    rows = [",".join(columns)] + [",".join(cells[c][i] for c in columns) for i in range(200)]
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    """A float64 ChainzRule run and a KAN run on the CSV (trained once for the module)."""
    root = tmp_path_factory.mktemp("lifecycle")
    table = write_table(root / "my.csv")
    common = ["--dataset", f"csv:{table}", "--target", "label", "--hidden", "8", "--epochs", "2",
              "--batch-size", "32", "--quiet"]
    for name, extra in (("f64", ["--model", "chainzrule", "--dtype", "float64"]), ("kan", ["--model", "kan"])):
        with pytest.raises(SystemExit) as e:
            main(["train", *common, *extra, "--out", str(root / name)])
        assert e.value.code == 0
    return root


def test_inspect_of_a_kan_run_reports_no_layers_instead_of_failing(runs, capsys):
    code, out, err = cz(capsys, "inspect", runs / "kan")
    assert code == 0, err
    assert "nothing per layer to report" in out and "error" not in err


@pytest.mark.parametrize("dtype", ["float64", "bfloat16"])
def test_onnx_export_of_a_wider_or_narrower_dtype_run_is_the_float32_model(runs, capsys, tmp_path, dtype):
    run = runs / "f64"
    if dtype == "bfloat16":  # the same run saved in bfloat16: what --dtype bfloat16 writes
        model, cfg, meta = load_checkpoint(run)
        run = tmp_path / "bf16"
        st = meta["standardization"]
        save_checkpoint(run, model.to(torch.bfloat16), cfg.replace(dtype="bfloat16"), in_features=meta["in_features"],
                        num_classes=meta["num_classes"], task=meta["task"], standardization=(st["mean"], st["std"]),
                        extra={k: meta[k] for k in ("feature_names", "classes")})
    code, out, err = cz(capsys, "export", run, "--format", "onnx")
    assert code == 0, err
    assert (run / "model.onnx").is_file() and out.startswith(f"wrote {run / 'model.onnx'}")
    model, _, meta = load_checkpoint(run)
    assert meta["feature_names"] == ["age", "bmi", "color=blue", "color=green", "color=red"]
    assert meta["classes"] == ["no", "yes"]
    raw = torch.tensor([[41.3, 24.5, 0, 0, 1], [20.0, 40.0, 1, 0, 0], [90.0, 10.0, 0, 1, 0]], dtype=torch.float64)
    mean, std = (torch.tensor(meta["standardization"][k], dtype=torch.float64) for k in ("mean", "std"))
    with torch.no_grad():
        want = model.float()(((raw - mean) / std).float()).numpy()  # the float32 model, fed as in training
    sess = ort.InferenceSession(str(run / "model.onnx"), providers=["CPUExecutionProvider"])
    got = sess.run(None, {sess.get_inputs()[0].name: raw.float().numpy()})[0]  # raw rows in
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=1e-5)


def test_evaluate_refuses_swapped_columns(runs, capsys):
    swapped = write_table(runs / "swapped.csv", columns=("bmi", "age", "color", "label"))
    result = cz(capsys, "evaluate", runs / "f64", "--dataset", f"csv:{swapped}", "--target", "label",
                "--out", runs / "m.json")
    refused(result, "has the features bmi, age,", "the model expects age, bmi,")
    assert not (runs / "m.json").exists()


def test_inspect_refuses_renamed_columns_before_printing(runs, capsys):
    renamed = write_table(runs / "renamed.csv", columns=("age", "bmi", "color", "label"))
    renamed.write_text(renamed.read_text().replace("age,", "height,", 1))
    refused(cz(capsys, "inspect", runs / "f64", "--dataset", f"csv:{renamed}", "--target", "label"),
            "has the features height, bmi,")


def test_evaluate_and_inspect_refuse_another_feature_count_in_their_own_words(runs, capsys):
    for command in ("evaluate", "inspect"):  # was: "saved standardization has (5,)/(5,) values" / a shape error
        refused(cz(capsys, command, runs / "f64", "--dataset", "synthetic"),
                "dataset synthetic has 10 features, the model expects 5")


def test_evaluate_refuses_class_names_that_would_be_scored_as_other_outputs(runs, capsys):
    other = write_table(runs / "relabelled.csv", rename={"no": "yes", "yes": "yes!"})  # "yes": output 0, not 1
    refused(cz(capsys, "evaluate", runs / "f64", "--dataset", f"csv:{other}", "--target", "label"),
            "has the classes yes, yes!, the model expects no, yes")


def test_another_class_count_is_refused_by_the_library_and_the_command_line(runs, capsys):
    """The check lived in the command line only: a library user of checkpoint_splits got a model of 2
    outputs scored on 3 classes; it is checkpoint_splits' now, so evaluate and inspect refuse alike."""
    three = write_table(runs / "three.csv")
    lines = three.read_text().splitlines()
    three.write_text("\n".join([lines[0]] + [ln.rsplit(",", 1)[0] + ",maybe" if i % 3 == 0 else ln
                                             for i, ln in enumerate(lines[1:])]) + "\n")
    words = f"dataset csv:{three} has 3 classes, the model predicts 2"
    model, cfg, meta = load_checkpoint(runs / "f64")
    with pytest.raises(ConfigError, match=re.escape(words)):
        checkpoint_splits(checkpoint_data(cfg, meta, f"csv:{three}", None, "label"), meta, progress=False)
    for command in ("evaluate", "inspect"):
        refused(cz(capsys, command, runs / "f64", "--dataset", f"csv:{three}", "--target", "label"), words)


def test_evaluate_takes_wholly_renamed_classes_by_position(runs, capsys):
    other = write_table(runs / "renamed-labels.csv", rename={"no": "healthy", "yes": "sick"})
    code, out, err = cz(capsys, "evaluate", runs / "f64", "--dataset", f"csv:{other}", "--target", "label")
    assert code == 0, err
    assert json.loads(out)["test"]["accuracy"] > 0


def test_evaluate_of_the_same_run_on_its_own_data_matches_training(runs, capsys):
    code, out, err = cz(capsys, "evaluate", runs / "f64")
    assert code == 0, err
    trained = json.loads((runs / "f64" / "result.json").read_text())
    assert json.loads(out)["test"] == trained["test"]


@pytest.mark.parametrize("flag", [["--epochs", "100"], ["--batch-size", "7"], ["--patience", "3"],
                                  ["--optimizer", "sgd"], ["--lr-schedule", "constant"], ["--dtype", "float64"]])
@pytest.mark.parametrize("model", ["logreg", "svm"])
def test_train_refuses_a_training_loop_flag_for_a_classical_model(tmp_path, capsys, model, flag):
    # was: accepted and recorded in result.json, though scikit-learn's fit never reads it
    refused(cz(capsys, "train", "--dataset", "synthetic", "--model", model, *flag, "--quiet", "--out", tmp_path / "r"),
            f"{flag[0]} acts on model(s) chainzrule, mlp, kan, cnn, chainzrule-cnn only", f"--model {model}")
    assert not (tmp_path / "r").exists()


def test_train_refuses_a_training_loop_key_of_a_config_file_for_a_classical_model(tmp_path, capsys):
    config = tmp_path / "svm.toml"
    config.write_text('model = "svm"\ndtype = "float64"\n')
    refused(cz(capsys, "train", "--dataset", "synthetic", "--config", config, "--out", tmp_path / "r"),
            "--dtype acts on model(s)", "--model svm")


@pytest.mark.parametrize("rows", [[5, 9, 11], [7]])  # shares 2:1, and a rank whose part is empty
def test_a_ranks_dreg_sum_is_weighted_by_its_share_of_the_global_batch(rows):
    """The logged DREG penalty of a torchrun step (the ranks' sums / world) is the global batch's mean,
    as in one process; was: the unweighted mean of the ranks' means (2.7e-6 off in a float64 Pima run)."""
    from chainzrule.config import TrainConfig
    from chainzrule.train import TrainingLoop, build_model, load_splits, make_run_regularizer, seed_everything

    cfg = TrainConfig(dataset="synthetic", model="chainzrule", hidden=(8,), dreg=3e-3, dtype="float64", batch_size=3)
    splits = load_splits(cfg, progress=False)

    def step_sums(world: int, rank: int) -> torch.Tensor:
        seed_everything(0)
        model = build_model(cfg, splits.in_features, splits.num_classes, splits.task).double()
        loop = TrainingLoop(cfg, model, make_run_regularizer(cfg), splits, torch.device("cpu"), False)
        loop.world, loop.rank = world, rank  # what a process group of `world` gives this rank (no DDP: one step)
        return loop.batch(torch.tensor(rows))[1]

    one = step_sums(1, 0)
    two = step_sums(2, 0) + step_sums(2, 1)  # the all-reduce
    assert float(two[2] / 2) == pytest.approx(float(one[2]), rel=1e-12)
    assert float(two[0]) == pytest.approx(float(one[0]), rel=1e-12) and float(two[1]) == float(one[1])
