"""The fight under hostile conditions (issue 8): signals, damaged run files, classical models on
a split that lacks a class, networks that cannot fit, a bad --out, honest measurement columns."""

import csv
import json
import logging
import os
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import numpy as np
import pytest
import torch

from chainzrule.config import TrainConfig
from chainzrule.data.splits import Splits
from chainzrule.errors import ConfigError
from chainzrule.fight.runner import TIMING_COLUMNS, record_row, run_fight
from chainzrule.fight.spec import parse_spec
from chainzrule.train import train

from conftest import REPO, own_processes

pytestmark = own_processes  # the whole module: its module fixtures are built once

TINY = REPO / "tests" / "fixtures" / "tiny_fight.toml"


def small_spec(**fight):
    """The tiny fight cut to 6 runs: relu, cr-dreg, logreg; one trial, one seed."""
    raw = tomllib.loads(TINY.read_text())
    raw["fight"].update(seeds=1, trials=1, **fight)
    del raw["accuracy_matched"], raw["lambda_sweep"]
    raw["contender"] = [c for c in raw["contender"] if c["name"] != "kan"]
    return raw


def slow_tiny(folder: Path) -> Path:
    """The tiny fight with runs long enough (tuning 60 epochs, finals 100, no early stopping: ~1 s
    a run) that a signal or a kill sent a second after the workers start always lands mid-run; at
    2 epochs the whole fight runs in about a second and the stop can miss it (a finished fight)."""
    text = TINY.read_text().replace("\nepochs = 2\n", "\nepochs = 100\npatience = 0\n")
    text = text.replace("\ntune_epochs = 1\n", "\ntune_epochs = 60\n")
    assert "epochs = 100" in text and "tune_epochs = 60" in text
    path = folder / "slow_tiny.toml"
    path.write_text(text)
    return path


def _rows(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def _without_timing(rows):
    return [{k: v for k, v in r.items() if k not in TIMING_COLUMNS} for r in rows]


# ------------------------------------------------------------------------------------------------ signals
def _stat(pid: int) -> tuple[int, str] | None:
    """(ppid, state) of a live process, None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()  # after "pid (comm) "
    return int(fields[1]), fields[0]


def _descendants(root: int) -> set[int]:
    procs = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit() and (st := _stat(int(d.name))) is not None:
            procs[int(d.name)] = st[0]
    found, frontier = set(), {root}
    while frontier:
        frontier = {pid for pid, ppid in procs.items() if ppid in frontier} - found
        found |= frontier
    return found


def _alive(pid: int) -> bool:
    st = _stat(pid)
    return st is not None and st[1] != "Z"


def _signal_once_workers_run(args: list[str], env: dict, signum: int, start_s: float, settle_s: float,
                             stop_s: float) -> tuple[subprocess.Popen, str, set[int], float]:
    """Start ``chainzrule *args``, wait (``start_s`` at most) until it has two worker processes,
    let them run ``settle_s``, send ``signum``; returns the process, its stderr, every worker seen
    and the seconds it took to exit."""
    proc = subprocess.Popen([sys.executable, "-m", "chainzrule", *args], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + start_s
        workers: set[int] = set()
        while time.time() < deadline and len(workers) < 2:  # the pool is up: runs are being executed
            time.sleep(0.1)
            workers = _descendants(proc.pid)
        assert len(workers) >= 2, f"chainzrule {args[0]} never started its workers"
        time.sleep(settle_s)  # well inside the first runs
        workers |= _descendants(proc.pid)
        proc.send_signal(signum)
        t0 = time.time()
        _, err = proc.communicate(timeout=stop_s)
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc, err, workers, time.time() - t0


@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 128 + 15), (signal.SIGINT, 128 + 2)],
                         ids=["SIGTERM", "SIGINT"])
def test_signal_to_fight_jobs_2_stops_its_workers(tmp_path, signum, code):
    out = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "src")}
    proc, err, workers, took = _signal_once_workers_run(["fight", str(slow_tiny(tmp_path)), "--out", str(out), "--jobs", "2",
                                                         "--no-report"],
                                                        env, signum, start_s=120, settle_s=1.0, stop_s=20)
    assert took < 10, "the fight took too long to stop"
    assert proc.returncode == code, err
    assert "Traceback" not in err and f"interrupted by {signal.Signals(signum).name}" in err, err
    deadline = time.time() + 5
    while time.time() < deadline and any(_alive(p) for p in workers):
        time.sleep(0.1)
    assert not [p for p in workers if _alive(p)], "worker processes outlived the fight"
    assert not list((out / "runs").glob(".*.tmp")) if (out / "runs").exists() else True


def test_sigterm_to_finetune_jobs_2_stops_its_workers_and_keeps_no_partial_run(tmp_path):
    """The fine-tune fight's pool (``chainzrule finetune --jobs 2``, the real encoder on a tiny
    SST-5 folder): SIGTERM mid-run ends the command with 143 and one line, and no worker survives."""
    data = tmp_path / "sst5"
    data.mkdir()
    for name in ("train.txt", "dev.txt", "test.txt"):
        (data / name).write_text("".join(f"{i % 5} a {'good ' * (i % 4)}film number {i}\n" for i in range(64)))
    spec = tmp_path / "spec.toml"
    spec.write_text('[finetune]\nname = "tiny"\nseeds = 2\nreference = "clm"\nbaseline = "linear"\n'
                    "[base]\nepochs = 50\nbatch_size = 8\nlimit = 64\n"
                    '[[contender]]\nname = "linear"\n[[contender]]\nname = "clm"\nhead = "clm"\n')
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    proc, err, workers, took = _signal_once_workers_run(
        ["finetune", str(spec), "--out", str(out), "--data-dir", str(data), "--jobs", "2"], env, signal.SIGTERM,
        start_s=180, settle_s=3.0, stop_s=30)  # settle inside the first runs (50 epochs of 8 batches: minutes)
    assert took < 15, "the fine-tune fight took too long to stop"
    assert proc.returncode == 128 + 15, err
    assert "Traceback" not in err and "interrupted by SIGTERM" in err, err
    deadline = time.time() + 5
    while time.time() < deadline and any(_alive(p) for p in workers):
        time.sleep(0.1)
    assert not [p for p in workers if _alive(p)], "worker processes outlived the fine-tune fight"
    assert not (out / "report.md").exists() and not list((out / "runs").glob("*.json"))  # none had finished


_STOP_IN_PLOTS = """
import os, signal, sys
import chainzrule.fight.report as report
def stop(*args):  # SIGTERM while the report writes its plots (after one plot is on disk)
    os.kill(os.getpid(), signal.SIGTERM)
report.plot_grad_norms = stop
from chainzrule.cli import main
main(sys.argv[1:])
"""


def test_sigterm_while_the_report_is_written_leaves_runs_and_no_end_products(tmp_path):
    """Stopped after its runs, while writing report.md and its plots: one line, exit 143, the runs
    kept and none of results.csv, summary.csv, report.md, plots/ (a complete set or none); the same
    command then writes them all."""
    import tomllib as _toml

    spec = tmp_path / "small.toml"
    raw = small_spec()
    spec.write_text(_toml_dumps(raw))
    assert _toml.loads(spec.read_text()) == raw
    out = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "src")}
    args = ["fight", str(spec), "--out", str(out)]
    proc = subprocess.run([sys.executable, "-c", _STOP_IN_PLOTS, *args], env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 128 + 15, proc.stderr
    assert "Traceback" not in proc.stderr and "interrupted by SIGTERM" in proc.stderr, proc.stderr
    runs = sorted(p.name for p in (out / "runs").glob("*.json"))
    assert runs
    left = sorted(p.name for p in out.iterdir())
    assert left == ["runs", "spec.json"], left
    assert not [p for p in out.rglob("*") if p.name.startswith(".")]  # no temporary file either
    done = subprocess.run([sys.executable, "-m", "chainzrule", *args], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in (out / "runs").glob("*.json")) == runs  # every run was kept: none redone
    assert {"results.csv", "summary.csv", "report.md", "tuning.json", "plots"} <= {p.name for p in out.iterdir()}


def _toml_dumps(raw: dict) -> str:
    """The tiny spec's dict back as TOML (tables of scalars and lists; arrays of tables)."""
    def value(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return json.dumps(v)
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        if isinstance(v, dict):
            return "{" + ", ".join(f"{k} = {value(x)}" for k, x in v.items()) + "}"
        return repr(v)

    lines = []
    for name, table in raw.items():
        for t in table if isinstance(table, list) else [table]:
            lines.append(f"[[{name}]]" if isinstance(table, list) else f"[{name}]")
            lines += [f"{k} = {value(v)}" for k, v in t.items()]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------------ damaged run files
@pytest.fixture(scope="module")
def small_fight(tmp_path_factory):
    out = tmp_path_factory.mktemp("fight") / "small"
    run_fight(parse_spec(small_spec()), out, progress=False)
    return out


@pytest.mark.parametrize("damage", [b"", b'{"key": "trunc', b"[1, 2, 3]", b"\xff\xfe\x00garbage"],
                         ids=["empty", "truncated", "not-a-record", "binary"])
def test_damaged_run_file_is_named_set_aside_and_redone(small_fight, tmp_path, caplog, damage):
    out = tmp_path / "copy"
    (out / "runs").mkdir(parents=True)
    for f in (small_fight / "runs").glob("*.json"):
        (out / "runs" / f.name).write_bytes(f.read_bytes())
    victim = sorted((out / "runs").glob("*.json"))[0]
    victim.write_bytes(damage)
    with caplog.at_level(logging.WARNING, logger="chainzrule.fight.executor"):
        run_fight(parse_spec(small_spec()), out, progress=False)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and str(victim) in warnings[0] and "damaged" in warnings[0], warnings
    aside = victim.with_name(victim.name + ".damaged")
    assert aside.read_bytes() == damage
    assert json.loads(victim.read_text())["key"] == victim.stem  # redone
    assert _without_timing(_rows(out / "results.csv")) == _without_timing(_rows(small_fight / "results.csv"))


def test_fight_results_have_no_process_lifetime_peak_memory(small_fight):
    rows = _rows(small_fight / "results.csv")
    assert "peak_memory_mb" not in rows[0] and "peak_memory_mb" not in TIMING_COLUMNS
    for f in (small_fight / "runs").glob("*.json"):
        assert "peak_memory_mb" not in json.loads(f.read_text())["result"]


# ------------------------------------------------------------------------------------------------ classical baselines
def _splits(y_train, y_test, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    centers = np.eye(classes, 4) * 4
    X_tr = torch.tensor(centers[y_train] + rng.normal(0, 0.3, (len(y_train), 4)), dtype=torch.float32)
    X_te = torch.tensor(centers[y_test] + rng.normal(0, 0.3, (len(y_test), 4)), dtype=torch.float32)
    y_tr, y_te = torch.tensor(y_train), torch.tensor(y_test)
    return Splits(X_tr, y_tr, X_tr[:10], y_tr[:10], X_te, y_te, num_classes=classes, task="classification")


@pytest.mark.parametrize("model", ["logreg", "svm", "xgboost"])
def test_classical_baseline_on_a_split_lacking_a_class_works(model):
    y_train = np.array([0, 2] * 30)  # class 1 never seen in training
    y_test = np.array([0, 2, 1] * 10)
    run = train(TrainConfig(dataset="synthetic", model=model, lr=0.3, seed=0), _splits(y_train, y_test), progress=False)
    r = run.result
    assert "failed" not in r
    assert r["test"]["accuracy"] == pytest.approx(2 / 3)  # every 0 and 2 right (labels mapped back), every 1 wrong
    assert r["val"]["accuracy"] == 1.0


@pytest.mark.parametrize("model", ["logreg", "svm", "xgboost"])
def test_classical_baseline_on_one_class_fails_the_run_with_a_reason(model):
    splits = _splits(np.zeros(40, dtype=np.int64), np.array([0, 1, 2] * 5))
    cfg = TrainConfig(dataset="synthetic", model=model)
    run = train(cfg, splits, progress=False)
    r = run.result
    assert r["failed"] == f"the training split holds only class 0: {model} needs at least 2 classes"
    assert r["val"]["accuracy"] is None and r["test"]["accuracy"] is None and r["diverged"] is False
    record = {"key": "k", "phase": "final", "contender": model, "seed": 0, "trial": None, "test": True,
              "config": cfg.to_dict(), "result": r}
    row = record_row(record, {})
    assert row["failed"] == r["failed"] and row["test_accuracy"] is None


# ------------------------------------------------------------------------------------------------ before any run
def test_network_too_large_for_memory_is_refused_before_anything_is_written(tmp_path):
    raw = small_spec()
    raw["base"]["hidden"] = [10_000_000, 10_000_000]
    raw["fight"]["param_match"] = False
    out = tmp_path / "out"
    with pytest.raises(ConfigError, match=r"has [0-9,]+ parameters and needs about .* GB to train .* this machine has"):
        run_fight(parse_spec(raw), out, progress=False)
    assert not out.exists()


@pytest.mark.parametrize("where", ["under-a-file", "read-only"])
def test_bad_fight_out_is_refused_before_the_data_is_read(tmp_path, monkeypatch, where):
    import chainzrule.fight.runner as runner

    monkeypatch.setattr(runner, "load_data", lambda cfg: pytest.fail("data read before --out was checked"))
    if where == "under-a-file":
        (tmp_path / "f").write_text("x")
        out, message = tmp_path / "f" / "fight", "which is a file, not a folder"
    else:
        out, message = Path("/proc/chainzrule-fight"), "cannot write in /proc"
    with pytest.raises(ConfigError, match=message):
        run_fight(parse_spec(small_spec()), out, progress=False)


@pytest.mark.parametrize("name", ["runs", "plots"])
def test_a_resumed_fight_whose_subfolder_is_a_file_is_refused_before_the_data_is_read(tmp_path, monkeypatch, name):
    """The folders a resume writes into are checked with --out: not a traceback after the data load."""
    import chainzrule.fight.runner as runner

    monkeypatch.setattr(runner, "load_data", lambda cfg: pytest.fail("data read before --out was checked"))
    out = tmp_path / "fight"
    out.mkdir()
    (out / name).write_text("not a folder")
    with pytest.raises(ConfigError, match=f"holds a file '{name}' where its {name}/ folder goes"):
        run_fight(parse_spec(small_spec()), out, progress=False)
    assert (out / name).read_text() == "not a folder" and sorted(p.name for p in out.iterdir()) == [name]


def test_check_out_dir_accepts_writable_or_missing_subfolders_and_refuses_files(tmp_path):
    from chainzrule.rundir import check_out_dir

    out = tmp_path / "map"
    out.mkdir()
    (out / "runs").mkdir()
    assert check_out_dir(out, subdirs=("runs", "plots")) == out  # a writable runs/ and no plots/: fine
    (out / "plots").write_text("x")
    with pytest.raises(ConfigError, match="holds a file 'plots'"):
        check_out_dir(out, subdirs=("runs", "plots"))


# ------------------------------------------------------------------------------------------------ honest measurements
def test_a_single_step_run_is_not_reported_as_diverged():
    cfg = TrainConfig(dataset="synthetic", model="mlp", hidden=(8,), epochs=1, batch_size=4096)
    r = train(cfg, progress=False).result
    assert r["steps"] == 1 and r["diverged"] is False and r["pgv"] is None
    assert r["tau_train"] is not None


def test_a_run_with_nan_gradients_is_diverged():
    cfg = TrainConfig(dataset="synthetic", model="mlp", hidden=(8,), epochs=2, optimizer="sgd", lr=1e6)
    r = train(cfg, progress=False).result
    assert r["diverged"] is True and r["pgv"] is None


def test_a_worker_killed_mid_run_stops_the_fight_with_one_line_and_keeps_finished_runs(tmp_path):
    """A worker killed by the OS (the OOM killer's SIGKILL) breaks the local pool: one line, exit 2,
    no traceback, no run recorded for the lost work, and the same command resumes."""
    out = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "src")}
    cmd = [sys.executable, "-m", "chainzrule", "fight", str(slow_tiny(tmp_path)), "--out", str(out), "--jobs", "2",
           "--no-report"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        workers: set[int] = set()
        while time.time() < deadline and len(workers) < 2:
            time.sleep(0.1)
            workers = _descendants(proc.pid)
        assert len(workers) >= 2, "the fight never started its workers"
        time.sleep(1.0)
        os.kill(min(workers), signal.SIGKILL)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    lines = err.strip().splitlines()
    assert proc.returncode == 2, err
    assert "Traceback" not in err and "a worker process died while running" in lines[-1], err
    assert "run the same command to resume" in lines[-1]
    for f in (out / "runs").glob("*.json"):  # whatever was stored is a complete run record
        assert json.loads(f.read_text())["result"] is not None
    deadline = time.time() + 5
    while time.time() < deadline and any(_alive(p) for p in workers):
        time.sleep(0.1)
    assert not [p for p in workers if _alive(p)], "worker processes outlived the fight"
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert (out / "results.csv").exists()


def test_batch_groups_are_capped_by_memory(tmp_path):
    from chainzrule.fight.executor import BATCH_MEMORY_BYTES, Executor, Task, batch_member_cap
    from chainzrule.config import TrainConfig

    assert batch_member_cap(BATCH_MEMORY_BYTES // 3, slots=1) in (1, 2, 3)  # ≤ 3 by the budget, ≥ 1 always
    assert batch_member_cap(10, slots=2) >= 2 and batch_member_cap(None, 2) is None
    tasks = [Task("final", "relu", TrainConfig(dataset="synthetic", model="mlp", hidden=[4], epochs=1, seed=s), True, s)
             for s in range(10)]
    ex = Executor(tmp_path, 1, len(tasks), progress=False, member_bytes=BATCH_MEMORY_BYTES // 4)
    try:
        sizes = [len(g) for g in ex.groups(tasks)]
    finally:
        ex.close()
    assert sum(sizes) == 10 and max(sizes) <= 4 and len(sizes) >= 3


def test_an_aborted_pool_leaves_no_half_written_run_file(tmp_path):
    """A worker terminated while writing a run file leaves its temporary behind; once an aborted
    executor has stopped its workers, it removes those (a finished run file is kept)."""
    from chainzrule.fight.executor import Executor

    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / ".abc.json.1f2e3d4c.tmp").write_text('{"key": "ab')  # what a terminated writer leaves
    (runs / "abc.json").write_text("{}")
    ex = Executor(runs, jobs=2, total=0, progress=False)
    ex.close(abort=True)
    assert sorted(p.name for p in runs.iterdir()) == ["abc.json"]


def test_a_run_file_whose_config_is_another_run_is_damaged(tmp_path):
    """A run file is the run its name says: one whose config hashes to another key (a record
    copied under another name, an emptied config) is damaged — moved aside and redone, never
    reused as that run."""
    import json

    from chainzrule.config import TrainConfig
    from chainzrule.errors import DataError
    from chainzrule.fight.executor import load_record, run_key, stored_record

    cfg = TrainConfig(dataset="synthetic", model="mlp", hidden=(4,))
    other = cfg.replace(hidden=(5,))
    key = run_key(cfg, True)
    rec = {"key": key, "phase": "final", "contender": "a", "seed": 0, "test": True,
           "config": other.to_dict(), "result": {}}
    path = tmp_path / f"{key}.json"
    path.write_text(json.dumps(rec))
    with pytest.raises(DataError, match=f"its config is run {run_key(other, True)}, not {key}"):
        load_record(path)
    assert stored_record(path) is None and (tmp_path / f"{key}.json.damaged").exists()
    path.write_text(json.dumps({**rec, "config": cfg.to_dict()}))
    assert load_record(path)["key"] == key


def test_a_starting_fight_removes_the_last_outputs_and_refuses_changed_csv_data(tmp_path):
    """When a fight starts, the previous results.csv, summary, report, tuning.json and plots go
    (they are written again from the stored runs at the end: an interrupted fight never leaves
    an old spec's results beside a new spec.json); a csv:PATH whose file changed since the
    folder's runs is refused (its run keys name only the path)."""
    import json

    from chainzrule.errors import ConfigError
    from chainzrule.fight import runner
    from chainzrule.fight.spec import parse_spec

    data = tmp_path / "d.csv"
    data.write_text("a,y\n" + "".join(f"{i},{i % 2}\n" for i in range(40)))
    spec = parse_spec({"fight": {"name": "x", "dataset": f"csv:{data}", "target": "y", "reference": "a"},
                       "contender": [{"name": "a", "model": "mlp"}, {"name": "b", "model": "logreg"}]})
    out = tmp_path / "out"
    runner._prepare_folder(spec, out, {}, 1, 2, "classification")
    for name in ("results.csv", "summary.csv", "report.md", "tuning.json"):
        (out / name).write_text("old")
    (out / "plots").mkdir()
    runner._prepare_folder(spec, out, {}, 1, 2, "classification")
    assert sorted(p.name for p in out.iterdir()) == ["runs", "spec.json"]
    assert json.loads((out / "spec.json").read_text())["data"]["sha256"]
    data.write_text("a,y\n" + "".join(f"{i},{(i + 1) % 2}\n" for i in range(40)))
    with pytest.raises(ConfigError, match="another version of the data file"):
        runner._prepare_folder(spec, out, {}, 1, 2, "classification")
