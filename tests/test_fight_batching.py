"""Batched execution of a fight (the default) against ``--no-batch`` on the tiny fixture: the
same runs, the same files, the same results.csv except the weight-derived float32 diagnostics,
which agree to float rounding (the stacked engine's batched matmuls round differently)."""

from __future__ import annotations

import csv
import math

from chainzrule.fight.runner import TIMING_COLUMNS, run_fight
from chainzrule.fight.spec import load_spec

from conftest import REPO

TINY = REPO / "tests" / "fixtures" / "tiny_fight.toml"
FLOAT32_DIAGNOSTICS = ("jacobian_fro_mean", "jacobian_fro_p99", "tau_input", "tau_train", "pgv", "lipschitz_bound")


def _rows(path):
    with open(path) as f:
        return [{k: v for k, v in r.items() if k not in TIMING_COLUMNS} for r in csv.DictReader(f)]


def test_batched_fight_equals_unbatched(tmp_path):
    plain = _rows(run_fight(load_spec(TINY), tmp_path / "plain", progress=False, batch=False))
    batched = _rows(run_fight(load_spec(TINY), tmp_path / "batched", jobs=2, progress=False, batch=True))
    assert [r["key"] for r in batched] == [r["key"] for r in plain]
    assert sorted(p.name for p in (tmp_path / "batched" / "runs").iterdir()) == \
        sorted(p.name for p in (tmp_path / "plain" / "runs").iterdir())
    for a, b in zip(plain, batched):
        assert a.keys() == b.keys()
        for k in a:
            if k in FLOAT32_DIAGNOSTICS and a[k] and b[k]:
                assert math.isclose(float(a[k]), float(b[k]), rel_tol=1e-5), (a["key"], k, a[k], b[k])
            else:
                assert a[k] == b[k], (a["key"], k, a[k], b[k])
    # resuming the finished fight with the pool and batching: every round's runs are on disk, nothing
    # is trained again, the same results.csv comes back (a call with no pending run was an error)
    before = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "batched" / "runs").iterdir()}
    again = _rows(run_fight(load_spec(TINY), tmp_path / "batched", jobs=2, progress=False, batch=True))
    assert again == batched
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "batched" / "runs").iterdir()} == before


def test_default_batches_small_networks_only(tmp_path, monkeypatch):
    """Neither the call nor the spec deciding, a fight batches when its reference network has at most
    AUTO_BATCH_MAX_PARAMS parameters (dispatch-bound) and runs one by one above (compute-bound:
    slower batched); an explicit ``batch`` always wins."""
    import chainzrule.fight.runner as R

    seen = []
    real = R.Executor

    class Spy(real):
        def __init__(self, *a, **k):
            seen.append(k["batch"])
            super().__init__(*a, **k)

    monkeypatch.setattr(R, "Executor", Spy)
    spec = load_spec(TINY)
    assert spec.execution.get("batch") is None  # the fixture leaves it to the default
    run_fight(spec, tmp_path / "small", progress=False)
    monkeypatch.setattr(R, "AUTO_BATCH_MAX_PARAMS", 10)  # every network is "large" now
    run_fight(spec, tmp_path / "large", progress=False)
    run_fight(spec, tmp_path / "forced", progress=False, batch=True)
    assert seen == [True, False, True]
    assert _rows(tmp_path / "small" / "results.csv") and (tmp_path / "large" / "results.csv").exists()
