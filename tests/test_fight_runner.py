"""The fight runner: phases, equal budgets, hash-keyed runs, resume after a kill."""

import csv
import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest

from chainzrule.fight.runner import TIMING_COLUMNS, run_fight, run_key
from chainzrule.fight.spec import load_spec

from conftest import REPO, own_processes

pytestmark = own_processes  # the whole module: its module fixtures are built once

TINY = REPO / "tests" / "fixtures" / "tiny_fight.toml"


def _rows(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def _without_timing(rows):
    return [{k: v for k, v in r.items() if k not in TIMING_COLUMNS} for r in rows]


@pytest.fixture(scope="module")
def reference_fight(tmp_path_factory):
    out = tmp_path_factory.mktemp("fight") / "ref"
    run_fight(load_spec(TINY), out, jobs=1, progress=False)
    return out


def test_phases_and_budgets(reference_fight):
    rows = _rows(reference_fight / "results.csv")
    spec = json.loads((reference_fight / "spec.json").read_text())
    tune = [r for r in rows if r["phase"] == "tune"]
    tuned = [c["name"] for c in spec["contenders"] if c["tune"]]
    for name in tuned:  # equal tuning budget: trials per contender; a completed trial runs every tune seed
        trials = {r["trial"] for r in tune if r["contender"] == name}
        assert len(trials) == spec["trials"]
        for t in trials:
            rows_t = [r for r in tune if r["contender"] == name and r["trial"] == t]
            assert len(rows_t) == (spec["tune_seeds"] if rows_t[0]["trial_state"] == "complete" else 1)
    assert all(r["test_accuracy"] == "" for r in tune), "tuning runs must never read the test split"
    final = [r for r in rows if r["phase"] == "final"]
    assert len(final) == spec["seeds"] * len(spec["contenders"])
    assert all(r["test_accuracy"] != "" for r in final)
    widths = {r["hidden"] for r in rows if r["phase"] == "width"}
    assert widths == {"4", "8"}
    assert {float(r["dreg"]) for r in rows if r["phase"] == "lambda"} == {0.0, 0.01}
    tuning = json.loads((reference_fight / "tuning.json").read_text())
    for r in final:  # finals use the best tuned hyperparameters
        best = tuning[r["contender"]]["best_params"]
        if "lr" in best:
            assert float(r["lr"]) == pytest.approx(best["lr"])


def test_parameter_matching_within_5_percent(reference_fight):
    rows = [r for r in _rows(reference_fight / "results.csv") if r["phase"] == "final" and r["seed"] == "0"]
    params = {r["contender"]: int(r["params"]) for r in rows}
    ref = params["cr-dreg"]
    assert abs(params["relu"] - ref) / ref <= 0.05


def test_run_files_are_keyed_by_config_hash(reference_fight):
    files = sorted((reference_fight / "runs").glob("*.json"))
    assert files
    for f in files[:5]:
        rec = json.loads(f.read_text())
        from chainzrule.config import TrainConfig

        assert f.stem == rec["key"] == run_key(TrainConfig.from_dict(rec["config"]), rec["test"])


def test_rerun_repeats_nothing(reference_fight):
    before = {f.name: f.stat().st_mtime_ns for f in (reference_fight / "runs").glob("*.json")}
    t0 = time.perf_counter()
    run_fight(load_spec(TINY), reference_fight, jobs=1, progress=False)
    after = {f.name: f.stat().st_mtime_ns for f in (reference_fight / "runs").glob("*.json")}
    assert before == after, "a finished run was repeated or rewritten"
    assert time.perf_counter() - t0 < 30


def _fight_cmd(out):
    return [sys.executable, "-m", "chainzrule.cli", "fight", str(TINY), "--out", str(out), "--no-report"]


@pytest.mark.parametrize("kill_seed", [1, 2, 3])
def test_resume_after_kill_gives_the_same_results(reference_fight, tmp_path, kill_seed):
    out = tmp_path / "killed"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(_fight_cmd(out), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # kill at a random point: after a random number of finished runs, mid-way through the next
    total = len(list((reference_fight / "runs").glob("*.json")))
    kill_after = random.Random(kill_seed).randint(1, total - 3)
    deadline = time.time() + 120
    while time.time() < deadline and len(list((out / "runs").glob("*.json"))) < kill_after:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = len(list((out / "runs").glob("*.json")))
    assert done_before < total, "the kill came too late to test resuming"
    resumed = subprocess.run(_fight_cmd(out), env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert _without_timing(_rows(out / "results.csv")) == _without_timing(_rows(reference_fight / "results.csv"))
    assert not list((out / "runs").glob(".*.tmp"))


def test_a_committed_folder_is_extended_without_retraining_its_tuning(reference_fight, tmp_path):
    """results/migrations/restore_tuning_runs.py: a committed folder keeps no tuning run files; the
    restored ones let the fight replay tuning without training, train only what the spec adds
    (here the width sweeps' learning-rate factors) and give back every committed row identically."""
    import shutil

    sys.path.insert(0, str(REPO / "results" / "migrations"))
    import restore_tuning_runs as rt

    committed = tmp_path / "committed"
    shutil.copytree(reference_fight, committed)
    tune_keys = {r["key"] for r in _rows(committed / "results.csv") if r["phase"] == "tune"}
    for k in tune_keys:
        (committed / "runs" / f"{k}.json").unlink()
    out = tmp_path / "extended"
    assert rt.restore(committed, out) == len(tune_keys)
    spec = tmp_path / "spec.toml"
    spec.write_text(TINY.read_text().replace("widths = [4, 8]\n", "widths = [4, 8]\nlr_factors = [1.0, 2.0]\n"))
    run_fight(load_spec(spec), out, jobs=1, progress=False)
    assert rt.check(committed, out) == 0  # every committed row back, byte for byte
    for k in tune_keys:  # replayed from the restored files: none retrained (a trained run's file has grad_norms)
        assert "grad_norms" not in json.loads((out / "runs" / f"{k}.json").read_text())
    old = {r["key"] for r in _rows(committed / "results.csv")}
    new = [r for r in _rows(out / "results.csv") if r["key"] not in old]
    assert new and {r["phase"] for r in new} == {"width"}
    assert len(new) == len([r for r in _rows(committed / "results.csv") if r["phase"] == "width"])
