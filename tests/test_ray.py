"""Fights on Ray (``--executor ray``): a local cluster of this machine (``ray.init(num_cpus=2)``
in the test process), a driver killed by SIGKILL midway, the fight finished with the local
pool: the same results.csv as an all-local fight (timing columns aside). Plus the bad inputs:
no Ray installed, an unreachable address, an unopenable storage URL, a worker that dies."""

from __future__ import annotations

import csv
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from chainzrule.fight.runner import TIMING_COLUMNS

from conftest import REPO, own_processes

pytestmark = own_processes

TINY = REPO / "tests" / "fixtures" / "tiny_fight.toml"


def _rows(path):
    with open(path) as f:
        return [{k: v for k, v in r.items() if k not in TIMING_COLUMNS} for r in csv.DictReader(f)]


def _cli(*args, env=None, timeout=600):
    return subprocess.run([sys.executable, "-m", "chainzrule", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})}, cwd=REPO)


@pytest.fixture(scope="module")
def cluster():
    """A 2-CPU Ray cluster of this machine, started and stopped by this test module."""
    ray = pytest.importorskip("ray", reason="the ray extra (pip install 'chainzrule[ray]') is not installed")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


def test_killed_ray_driver_resumed_locally_equals_all_local(tmp_path, cluster):
    import optuna

    t0 = time.time()
    url = f"sqlite:///{tmp_path}/study.db"
    ref = _cli("fight", TINY, "--out", tmp_path / "local", "--no-batch", "--no-report", "--storage", url)
    assert ref.returncode == 0, ref.stderr
    t_local = time.time() - t0
    again = _cli("fight", TINY, "--out", tmp_path / "local", "--no-batch", "--no-report", "--storage", url)
    assert again.returncode == 0, again.stderr  # a driver restart: the stored studies get nothing twice
    names = sorted(s.study_name for s in optuna.get_all_study_summaries(url))
    assert [n.split(":")[1] for n in names] == ["cr-dreg", "logreg", "relu"]
    for n in names:
        trials = optuna.load_study(study_name=n, storage=url).get_trials()
        assert [t.user_attrs["trial"] for t in trials] == [0, 1]
        assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    out = tmp_path / "ray"
    driver = subprocess.Popen([sys.executable, "-m", "chainzrule", "fight", str(TINY), "--out", str(out), "--no-batch",
                               "--no-report", "--executor", "ray", "--ray-address", cluster],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=REPO)
    deadline = time.time() + 300
    while time.time() < deadline and driver.poll() is None and len(list((out / "runs").glob("*.json"))) < 6:
        time.sleep(0.2)
    assert driver.poll() is None, f"the Ray driver ended before it was killed: {driver.stderr.read()}"
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait()
    done_on_ray = len(list((out / "runs").glob("*.json")))
    n_runs = len({r["key"] for r in _rows(tmp_path / "local" / "results.csv")})
    assert 6 <= done_on_ray < n_runs, (done_on_ray, n_runs)
    assert not (out / "results.csv").exists()
    time.sleep(1)  # tasks of the dead driver may still be finishing their atomic writes: harmless
    res = _cli("fight", TINY, "--out", out, "--no-batch", "--no-report")
    assert res.returncode == 0, res.stderr
    assert _rows(out / "results.csv") == _rows(tmp_path / "local" / "results.csv")
    print(f"\nall-local {t_local:.0f}s; ray+resume {time.time() - t0 - t_local:.0f}s; {done_on_ray} runs done on Ray")


def test_ray_fight_batched_resumed_locally(tmp_path, cluster):
    """A whole fight on Ray with batching, resumed (nothing left to do) locally: the runs on Ray
    are the local pool's (same files), so the local finish trains nothing."""
    out = tmp_path / "ray"
    res = _cli("fight", TINY, "--out", out, "--no-report", "--executor", "ray", "--ray-address", cluster)
    assert res.returncode == 0, res.stderr
    files = {p.name: p.stat().st_mtime_ns for p in (out / "runs").glob("*.json")}
    assert len(files) == len({r["key"] for r in _rows(out / "results.csv")})
    again = _cli("fight", TINY, "--out", out, "--no-report")
    assert again.returncode == 0, again.stderr
    assert {p.name: p.stat().st_mtime_ns for p in (out / "runs").glob("*.json")} == files
    assert {f"{r['key']}.json" for r in _rows(out / "results.csv")} == set(files)


def test_dead_worker_is_retried_or_reported(tmp_path, cluster):
    from chainzrule.fight.ray_executor import RayPool, RunLost

    def _marker_exit(marker: str) -> str:  # nested: shipped to the workers by value
        """Dies (like a worker killed mid-run) the first time, succeeds when run again."""
        import os
        from pathlib import Path

        if not os.path.exists(marker):
            Path(marker).write_text("died once")
            os._exit(1)
        return "done"

    pool = RayPool(cluster)
    assert pool.submit(_marker_exit, str(tmp_path / "m1")).result(timeout=300) == "done"  # retried
    pool0 = RayPool(cluster, max_retries=0)
    with pytest.raises(RunLost, match="lost on the Ray cluster"):
        pool0.submit(_marker_exit, str(tmp_path / "m2")).result(timeout=300)  # reported, not a result


_HANDLERS_KEPT = """
import signal, sys
from chainzrule.fight.ray_executor import RayPool
mine = lambda signum, frame: None
signal.signal(signal.SIGTERM, mine)
pool = RayPool(sys.argv[1])
print("kept" if signal.getsignal(signal.SIGTERM) is mine else f"replaced by {signal.getsignal(signal.SIGTERM)}")
pool.shutdown()
"""


def test_connecting_to_ray_keeps_the_commands_sigterm_handler(cluster):
    """ray.init installs a SIGTERM handler that exits with status 15 and no word (a fight stopped
    while writing its results left them half written); the driver keeps the command's own handler,
    so SIGTERM is one line, 128 + 15, every ``finally`` run."""
    res = subprocess.run([sys.executable, "-c", _HANDLERS_KEPT, cluster], capture_output=True, text=True,
                         timeout=300, cwd=REPO)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().splitlines()[-1] == "kept", res.stdout


def test_sigterm_to_a_ray_driver_mid_run_is_one_line_and_exit_143(tmp_path, cluster):
    spec = tmp_path / "slow.toml"
    text = TINY.read_text().replace("\nepochs = 2\n", "\nepochs = 100\npatience = 0\n")
    spec.write_text(text.replace("\ntune_epochs = 1\n", "\ntune_epochs = 60\n"))
    assert "tune_epochs = 60" in spec.read_text()
    out = tmp_path / "ray"
    driver = subprocess.Popen([sys.executable, "-m", "chainzrule", "fight", str(spec), "--out", str(out),
                               "--no-report", "--executor", "ray", "--ray-address", cluster],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=REPO)
    deadline = time.time() + 300
    while time.time() < deadline and driver.poll() is None and not (out / "spec.json").exists():
        time.sleep(0.2)  # spec.json is written once the driver is connected and the runs start
    time.sleep(2.0)
    assert driver.poll() is None, f"the Ray driver ended before it was stopped: {driver.stderr.read()}"
    driver.send_signal(signal.SIGTERM)
    _, err = driver.communicate(timeout=60)
    assert driver.returncode == 128 + 15, err
    lines = err.strip().splitlines()
    assert "Traceback" not in err and lines[-1].startswith("chainzrule: interrupted by SIGTERM"), err


def _one_line_exit_2(res, *words):
    assert res.returncode == 2, (res.returncode, res.stderr)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("chainzrule: "), res.stderr
    for w in words:
        assert w in lines[0], lines[0]


def test_a_ray_address_that_accepts_connections_but_is_no_cluster_is_refused_at_a_deadline(tmp_path):
    """A HOST:PORT that accepts TCP connections but never answers as Ray (a web server, Ray's
    dashboard port) kept ray.init retrying for many minutes, deaf to SIGTERM, with a C++ warning
    on stderr every few seconds; now it is one line and exit 2 at the deadline, nothing written."""
    pytest.importorskip("ray", reason="the ray extra (pip install 'chainzrule[ray]') is not installed")
    out = tmp_path / "f"
    with socket.socket() as silent:  # listening: the kernel completes connections, nobody answers
        silent.bind(("0.0.0.0", 0))
        silent.listen(16)
        address = f"127.0.0.1:{silent.getsockname()[1]}"
        code = ("import chainzrule.fight.ray_executor as r; r.ANSWER_TIMEOUT = 3.0; "
                "from chainzrule.console import main; "
                f"main(['fight', {str(TINY)!r}, '--out', {str(out)!r}, '--executor', 'ray', "
                f"'--ray-address', {address!r}])")
        res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO)
    _one_line_exit_2(res, "chainzrule: error: ", f"--ray-address {address}", "no Ray cluster answered within 3 s", "6379")
    assert not out.exists()


def test_unreachable_ray_address(tmp_path):
    pytest.importorskip("ray", reason="the ray extra (pip install 'chainzrule[ray]') is not installed")
    out = tmp_path / "f"
    res = _cli("fight", TINY, "--out", out, "--executor", "ray", "--ray-address", "127.0.0.1:9")
    _one_line_exit_2(res, "--ray-address 127.0.0.1:9", "no Ray cluster")
    assert not out.exists()
    res = _cli("fight", TINY, "--out", out, "--executor", "ray", "--ray-address", "nonsense")
    _one_line_exit_2(res, "--ray-address")
    assert not out.exists()


def test_without_the_ray_extra(tmp_path):
    out = tmp_path / "f"
    code = ("import sys; sys.modules['ray'] = None; from chainzrule.console import main; "
            f"main(['fight', {str(TINY)!r}, '--out', {str(out)!r}, '--executor', 'ray'])")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=REPO)
    _one_line_exit_2(res, "chainzrule[ray]")
    assert not out.exists()


def test_unopenable_storage(tmp_path):
    out = tmp_path / "f"
    res = _cli("fight", TINY, "--out", out, "--storage", f"sqlite:///{tmp_path}/no/such/dir/study.db")
    _one_line_exit_2(res, "--storage", "cannot be opened")
    assert not out.exists()
    res = _cli("fight", TINY, "--out", out, "--storage", "not-a-url")
    _one_line_exit_2(res, "--storage")
    assert not out.exists()
