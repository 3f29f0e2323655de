"""Spec and folder checks of fight, stability and finetune (audit 2026-12-03), through the command
line: a spec is valid in both profiles (a bad ``[quick]`` value is refused by a full run too, not
only by the first ``--quick`` run), a key set in the head table and in ``[base]`` to different values
is refused (one silently won), and ``--quick`` into a folder holding the full profile's results is
refused before anything is written (it replaced them); a full run into a quick folder is not."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from chainzrule.errors import ConfigError
from chainzrule.fight.finetune_spec import parse_finetune_spec
from chainzrule.fight.spec import parse_spec
from chainzrule.fight.stability_spec import parse_stability_spec
from chainzrule.rundir import check_out_kind

from test_cli_hardening import one_line_error, run  # the in-process CLI helpers

FIGHT = """
[fight]
dataset = "synthetic"
seeds = 1
trials = 0
[base]
epochs = 1
hidden = [4]
diag_examples = 20
[[contender]]
name = "relu"
model = "mlp"
[[contender]]
name = "cr"
model = "chainzrule"
"""
STABILITY = """
[stability]
dataset = "synthetic"
lrs = [1e-2]
lambdas = [0.0]
seeds = 1
[base]
epochs = 1
hidden = [4]
[[contender]]
name = "relu"
model = "mlp"
"""
FINETUNE = """
[finetune]
seeds = 1
reference = "cr"
baseline = "linear"
data_dir = "no-such-folder"
[[contender]]
name = "linear"
[[contender]]
name = "cr"
hidden = [8]
activation = "chainzrule"
"""
SPECS = {"fight": FIGHT, "stability": STABILITY, "finetune": FINETUNE}
PARSE = {"fight": parse_spec, "stability": parse_stability_spec, "finetune": parse_finetune_spec}


@pytest.fixture
def no_work(monkeypatch):
    """Fail the test if a command gets as far as reading its data."""
    import chainzrule.fight.finetune_fight as finetune_fight
    import chainzrule.fight.runner as runner
    import chainzrule.fight.stability as stability

    fail = lambda *a, **k: pytest.fail("data read before the check")  # noqa: E731
    monkeypatch.setattr(runner, "load_data", fail)
    monkeypatch.setattr(stability, "load_data", fail)
    monkeypatch.setattr(finetune_fight, "load_text_splits", fail)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "spec.toml"
    path.write_text(text)
    return path


def files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# ------------------------------------------------------------------ a bad [quick] value, without --quick
@pytest.mark.parametrize("command, quick, message", [
    ("fight", "seeds = 0", "[quick] seeds must be an integer in 1..4294967296, got 0"),
    ("fight", "trials = -3", "[quick] trials must be an integer in 0..2147483647, got -3"),
    ("fight", 'contenders = ["nope"]', "[quick] contenders: unknown contender(s) nope: expected some of relu, cr"),
    ("fight", "base = { epochs = 0 }", "[quick] profile: contender relu: epochs must be an integer in 1..2147483647, got 0"),
    ("fight", 'pruner = "bogus"', "[quick] profile: [fight] pruner must be one of median, hyperband, none, got 'bogus'"),
    ("stability", "seeds = 0", "[quick] seeds must be an integer >= 1, got 0"),
    ("stability", "lrs = [-1e-3]", "[quick] lrs[0] must be a finite number > 0, got -0.001"),
    ("stability", 'contenders = ["nope"]', "[quick] contenders: unknown contender(s) nope: expected some of relu"),
    ("stability", "base = { epochs = 0 }", "[quick] profile: contender relu: epochs must be an integer in 1..2147483647, got 0"),
    ("finetune", "seeds = 0", "[quick] seeds must be an integer >= 1, got 0"),
    ("finetune", 'contenders = ["nope"]', "[quick] contenders: unknown contender(s) nope: expected some of linear, cr"),
    ("finetune", "base = { dropout = 5.0 }", "[quick] profile: contender linear: dropout must be in [0, 1), got 5.0"),
])
def test_a_bad_quick_value_is_refused_by_a_full_run(capsys, tmp_path, no_work, command, quick, message):
    spec = write(tmp_path, SPECS[command] + f"[quick]\n{quick}\n")
    line = one_line_error(capsys, command, spec, "--out", tmp_path / "out")
    assert line == f"chainzrule: error: {message}"
    assert line == one_line_error(capsys, command, spec, "--out", tmp_path / "out", "--quick")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("command", SPECS)
def test_a_valid_quick_profile_still_passes_both_ways(command):
    raw = tomllib.loads(SPECS[command] + "[quick]\nseeds = 1\n")
    assert PARSE[command](raw).quick is False and PARSE[command](raw, quick=True).quick is True


# ------------------------------------------------------------------ one key, two values
@pytest.mark.parametrize("command, text, message", [
    ("fight", FIGHT.replace("[base]\n", '[base]\ndataset = "pima"\n'),
     "dataset is set twice, to different values: [fight] dataset = 'synthetic' and [base] dataset = 'pima'"),
    ("fight", FIGHT.replace("[base]\n", "patience = 3\n[base]\npatience = 7\n"),
     "patience is set twice, to different values: [fight] patience = 3 and [base] patience = 7"),
    ("fight", FIGHT.replace("[base]\n", 'target = "y"\n[base]\ntarget = "z"\n'),
     "target is set twice, to different values: [fight] target = 'y' and [base] target = 'z'"),
    ("stability", STABILITY.replace("[base]\n", '[base]\ndataset = "pima"\n'),
     "dataset is set twice, to different values: [stability] dataset = 'synthetic' and [base] dataset = 'pima'"),
    ("stability", STABILITY + '[quick]\nbase = { dataset = "pima" }\n',
     "[quick] profile: dataset is set twice, to different values: [stability] dataset = 'synthetic' and [base] "
     "dataset = 'pima'"),
])
def test_a_key_set_to_two_values_is_refused(capsys, tmp_path, no_work, command, text, message):
    line = one_line_error(capsys, command, write(tmp_path, text), "--out", tmp_path / "out")
    assert line == f"chainzrule: error: {message}: expected it in one of them (or the same value in both)"
    assert not (tmp_path / "out").exists()


def test_the_same_value_in_both_places_is_accepted():
    fight = parse_spec(tomllib.loads(FIGHT.replace("[base]\n", 'patience = 2\n[base]\ndataset = "synthetic"\npatience = 2\n')))
    assert (fight.dataset, fight.patience) == ("synthetic", 2)
    stability = parse_stability_spec(tomllib.loads(STABILITY.replace("[base]\n", '[base]\ndataset = "synthetic"\n')))
    assert stability.dataset == "synthetic"


# ------------------------------------------------------------------ --quick into a full profile's folder
REFUSED = "holds the full profile's results; a --quick run would replace them: choose another --out"


def test_fight_quick_into_a_full_fight_is_refused_and_its_results_kept(capsys, tmp_path):
    spec = write(tmp_path, FIGHT + '[quick]\ncontenders = ["relu"]\n')
    out = tmp_path / "out"
    code, _, err = run(capsys, "fight", spec, "--out", out)
    assert code == 0, err
    before = files(out)
    assert {"spec.json", "results.csv", "report.md"} <= before.keys()
    assert one_line_error(capsys, "fight", spec, "--out", out, "--quick") == f"chainzrule: error: --out {out} {REFUSED}"
    assert files(out) == before


@pytest.mark.parametrize("command, outputs", [("stability", ("stability.csv", "summary.csv", "report.md")),
                                              ("finetune", ("results.csv", "summary.csv", "report.md"))])
def test_quick_into_a_full_map_or_finetune_fight_is_refused(capsys, tmp_path, no_work, command, outputs):
    text = SPECS[command] + "[quick]\nseeds = 1\n"
    out = tmp_path / "out"
    (out / "runs").mkdir(parents=True)
    (out / "spec.json").write_text(json.dumps(PARSE[command](tomllib.loads(text)).to_dict()))  # as the command writes it
    for name in outputs:
        (out / name).write_text(f"the full profile's {name}\n")
    before = files(out)
    line = one_line_error(capsys, command, write(tmp_path, text), "--out", out, "--quick")
    assert line == f"chainzrule: error: --out {out} {REFUSED}"
    assert files(out) == before


@pytest.mark.parametrize("command", SPECS)
def test_a_full_run_into_a_quick_folder_and_quick_into_quick_are_allowed(tmp_path, command):
    raw = tomllib.loads(SPECS[command] + "[quick]\nseeds = 1\n")
    (tmp_path / "spec.json").write_text(json.dumps(PARSE[command](raw, quick=True).to_dict()))
    check_out_kind(tmp_path, command)
    check_out_kind(tmp_path, command, quick=True)
    (tmp_path / "spec.json").write_text(json.dumps(PARSE[command](raw).to_dict()))
    with pytest.raises(ConfigError, match="holds the full profile's results"):
        check_out_kind(tmp_path, command, quick=True)
