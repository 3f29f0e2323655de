"""The stability map (``chainzrule stability``): spec validation before any run, the unstable
rule on constructed gradient-norm traces, a tiny map on synthetic data that writes every output,
and resuming without retraining."""

from __future__ import annotations

import copy
import csv
import json
import math
from pathlib import Path

import pytest
from click.testing import CliRunner

from chainzrule.cli import cli
from chainzrule.errors import ConfigError
from chainzrule.fight import executor as runner_mod  # where runs are trained (train imported there)
from chainzrule.fight.stability import gradient_stability, plan_runs, run_row, run_stability, summarize
from chainzrule.fight.stability_figures import plot_heatmaps
from chainzrule.fight.stability_spec import load_stability_spec, parse_stability_spec

REPO = Path(__file__).resolve().parents[1]
OUTPUTS = ("spec.json", "stability.csv", "summary.csv", "report.md", "heatmap_accuracy.png", "heatmap_pgv.png",
           "heatmap_grad_norm_max.png", "heatmap_unstable.png")

TINY_TOML = """
[stability]
name = "tiny"
dataset = "synthetic"
lrs = [1e-2, 3e-2]
lambdas = [0.0, 1e-2]
seeds = 1
unstable_ratio = 20.0
[base]
epochs = 1
hidden = [8]
batch_size = 128
diag_examples = 50
[[contender]]
name = "cr"
label = "ChainzRule"
model = "chainzrule"
[[contender]]
name = "relu"
model = "mlp"
activation = "relu"
seeds = 2
[quick]
lrs = [1e-2]
seeds = 1
"""

RAW = {"stability": {"dataset": "synthetic", "lrs": [1e-2, 3e-2], "lambdas": [0.0, 1e-2], "seeds": 1},
       "base": {"epochs": 1, "hidden": [8]},
       "contender": [{"name": "cr", "model": "chainzrule"}, {"name": "relu", "model": "mlp"}]}


def _raw(**edits) -> dict:
    """RAW with ``section__key=value`` edits (``contender0__key`` edits the first contender)."""
    raw = copy.deepcopy(RAW)
    for path, value in edits.items():
        section, key = path.split("__")
        table = raw["contender"][int(section[-1])] if section.startswith("contender") else raw.setdefault(section, {})
        table[key] = value
    return raw


# ------------------------------------------------------------------------------- the unstable rule
def test_unstable_rule_on_constructed_traces():
    calm = [1.0] * 99
    spike = gradient_stability(calm + [25.0], unstable_ratio=20.0)
    assert spike == {"grad_norm_max": 25.0, "grad_norm_median": 1.0, "grad_norm_ratio": 25.0,
                     "nonfinite_steps": 0, "unstable": True}
    at_threshold = gradient_stability(calm + [20.0], unstable_ratio=20.0)
    assert at_threshold["grad_norm_ratio"] == 20.0 and at_threshold["unstable"] is False  # strictly above
    assert gradient_stability(calm + [25.0], unstable_ratio=30.0)["unstable"] is False
    nan = gradient_stability([1.0, 2.0, float("nan"), 3.0], unstable_ratio=20.0)
    assert nan["nonfinite_steps"] == 1 and nan["unstable"] is True
    assert nan["grad_norm_max"] == 3.0 and nan["grad_norm_median"] == 2.0  # statistics of the finite steps
    inf = gradient_stability([1.0, float("inf")], unstable_ratio=20.0)
    assert inf["unstable"] is True and inf["grad_norm_max"] == 1.0
    dead = gradient_stability([float("nan")] * 3, unstable_ratio=20.0)
    assert dead["grad_norm_max"] is None and dead["unstable"] is True
    zeros = gradient_stability([0.0, 0.0], unstable_ratio=20.0)
    assert zeros["grad_norm_ratio"] == 1.0 and zeros["unstable"] is False
    assert gradient_stability([0.0, 0.0, 1.0], unstable_ratio=20.0)["grad_norm_ratio"] == math.inf


def _record(norms, test_acc=0.9, losses=(0.5,)) -> dict:
    return {"key": "k", "contender": "cr", "seed": 0, "grad_norms": list(norms),
            "config": {"lr": 0.01, "dreg": 0.0, "model": "chainzrule", "activation": "relu", "poly_basis": "legendre"},
            "result": {"test": {"accuracy": test_acc}, "val": {"accuracy": 0.8}, "pgv": 1.5,
                       "history": {"train_loss": list(losses)}, "diverged": False, "steps": len(norms),
                       "train_seconds": 1.0}}


def test_run_row_flags_a_non_finite_loss_or_accuracy_even_with_a_calm_trace():
    assert run_row(_record([1.0, 1.1]), "CR", 20.0)["unstable"] is False
    assert run_row(_record([1.0, 1.1], test_acc=float("nan")), "CR", 20.0)["unstable"] is True
    assert run_row(_record([1.0, 1.1], losses=(0.5, float("inf"))), "CR", 20.0)["unstable"] is True


def test_summary_counts_unstable_seeds_and_keeps_them_in_the_accuracy_mean():
    rows = [run_row(_record([1.0] * 9 + [100.0], test_acc=0.5), "CR", 20.0),
            {**run_row(_record([1.0, 1.2], test_acc=0.9), "CR", 20.0), "seed": 1}]
    (cell,) = summarize(rows)
    assert cell["seeds"] == 2 and cell["unstable_runs"] == 1 and cell["unstable_share"] == 0.5
    assert cell["accuracy_mean"] == pytest.approx(0.7) and cell["grad_norm_max"] == 100.0
    assert cell["accuracy_std"] == pytest.approx(math.sqrt(0.08))


# ------------------------------------------------------------------------------- spec validation
BAD_SPECS = {
    "unknown [stability] key": (_raw(stability__lr_grid=[1e-3]), "lr_grid"),
    "unknown contender field": (_raw(contender0__widht=[8]), "widht"),
    "grid field in a contender": (_raw(contender1__lr=1e-3), "set by the grid"),
    "grid field in base": (_raw(base__dreg=1e-3), "set by the grid"),
    "empty lrs": (_raw(stability__lrs=[]), "non-empty list"),
    "empty lambdas": (_raw(stability__lambdas=[]), "non-empty list"),
    "negative lr": (_raw(stability__lrs=[1e-3, -1e-2]), "lrs[1] must be a finite number > 0, got -0.01"),
    "zero lr": (_raw(stability__lrs=[0.0]), "> 0"),
    "negative lambda": (_raw(stability__lambdas=[0.0, -1e-3]), "lambdas[1] must be a finite number >= 0"),
    "duplicate lambda": (_raw(stability__lambdas=[1e-3, 0.001]), "distinct"),
    "bad contender value": (_raw(contender0__poly_basis="fourier"), "poly_basis 'fourier'"),
    "classical contender": (_raw(contender1__model="logreg"), "no gradient-norm trace"),
    "zero seeds": (_raw(stability__seeds=0), "seeds must be an integer >= 1, got 0"),
    "ratio <= 1": (_raw(stability__unstable_ratio=1.0), "unstable_ratio"),
    "unknown [quick] key": (_raw(quick__epochs=1), "[quick]: unknown key(s) epochs"),
    "no contender": ({**RAW, "contender": []}, "at least one [[contender]]"),
    "unknown section": ({**RAW, "fight": {}}, "unknown key(s) fight"),
    "duplicate contender": ({**RAW, "contender": RAW["contender"] + [{"name": "cr"}]}, "duplicate contender"),
    "inert λ warm-up": (_raw(contender0__dreg_warmup=0.3),
                        "dreg_warmup warms λ up before a schedule: expected dreg_schedule warmup, linear or cosine, got constant"),
    "inert λ final": (_raw(base__dreg_final=1e-4), "dreg_final is where an annealed λ ends"),
    "field of another model": (_raw(contender1__degree=5),
                               "contender relu: degree acts on model(s) chainzrule, chainzrule-cnn only, got model 'mlp'"),
    "field of another regularizer": (_raw(contender0__jr_projections=2), "contender cr: jr_projections acts with reg jr only"),
}


@pytest.mark.parametrize("case", sorted(BAD_SPECS))
def test_bad_spec_is_refused_before_any_run(case, monkeypatch):
    def no_training(*a, **k):
        raise AssertionError("a run started before the spec was validated")

    monkeypatch.setattr(runner_mod, "train", no_training)
    raw, words = BAD_SPECS[case]
    with pytest.raises(ConfigError) as e:
        parse_stability_spec(raw, quick="quick" in raw)
    assert words in str(e.value), str(e.value)


def test_quick_profile_and_per_contender_seeds(tmp_path):
    (tmp_path / "s.toml").write_text(TINY_TOML)
    full = load_stability_spec(tmp_path / "s.toml")
    assert [c.seeds for c in full.contenders] == [1, 2] and full.n_runs == 12 and len(plan_runs(full)) == 12
    quick = load_stability_spec(tmp_path / "s.toml", quick=True)
    assert quick.lrs == [1e-2] and [c.seeds for c in quick.contenders] == [1, 1] and quick.n_runs == 4
    cfg = plan_runs(full)[-1].config
    assert (cfg.model, cfg.seed, cfg.lr, cfg.dreg, cfg.hidden) == ("mlp", 1, 3e-2, 1e-2, (8,))


def test_kan_with_dreg_is_refused_before_anything_is_written(tmp_path):
    spec = parse_stability_spec(_raw(contender1__model="kan"))
    with pytest.raises(ConfigError, match="contender relu: DREG needs"):
        run_stability(spec, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


def test_cli_bad_spec_is_one_line_and_exit_2(tmp_path):
    (tmp_path / "bad.toml").write_text(TINY_TOML.replace("lrs = [1e-2, 3e-2]", "lrs = [1e-2, -3e-2]"))
    res = CliRunner().invoke(cli, ["stability", str(tmp_path / "bad.toml"), "--out", str(tmp_path / "out")])
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert lines == ["chainzrule: error: [stability] lrs[1] must be a finite number > 0, got -0.03"]
    assert not (tmp_path / "out").exists()
    res = CliRunner().invoke(cli, ["stability", str(tmp_path / "missing.toml"), "--out", str(tmp_path / "out")])
    assert res.exit_code == 2 and "missing.toml does not exist" in res.stderr


# ------------------------------------------------------------------------------- a tiny map
def _csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def tiny_map(tmp_path_factory) -> tuple[Path, Path]:
    """A 2 lr × 2 λ map, 2 contenders (1 and 2 seeds: 12 runs), run through the CLI."""
    folder = tmp_path_factory.mktemp("stability")
    (folder / "tiny.toml").write_text(TINY_TOML)
    out = folder / "out"
    res = CliRunner().invoke(cli, ["stability", str(folder / "tiny.toml"), "--out", str(out)])
    assert res.exit_code == 0, (res.output, res.exception)
    return folder / "tiny.toml", out


def test_tiny_map_writes_every_output(tiny_map):
    spec_path, out = tiny_map
    for name in OUTPUTS:
        assert (out / name).is_file(), name
    for png in out.glob("heatmap_*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    runs = _csv(out / "stability.csv")
    assert len(runs) == 12 and len(list((out / "runs").glob("*.json"))) == 12
    assert {(r["contender"], r["seed"]) for r in runs} == {("cr", "0"), ("relu", "0"), ("relu", "1")}
    for r in runs:
        assert float(r["grad_norm_max"]) >= float(r["grad_norm_median"]) > 0
        assert r["unstable"] in ("True", "False") and 0 <= float(r["test_accuracy"]) <= 1
    summary = _csv(out / "summary.csv")
    assert len(summary) == 8
    assert sorted(int(s["seeds"]) for s in summary) == [1] * 4 + [2] * 4
    spec = json.loads((out / "spec.json").read_text())
    assert spec["command"] == f"chainzrule stability {spec_path} --out {out}"
    report = (out / "report.md").read_text()
    assert spec["command"] in report and "![accuracy](heatmap_accuracy.png)" in report
    assert "| ChainzRule | 0.03 |" in report


def test_tiny_map_resumes_without_retraining(tiny_map, monkeypatch):
    spec_path, out = tiny_map
    before = {f.name: f.stat().st_mtime_ns for f in (out / "runs").glob("*.json")}
    rows_before = (out / "stability.csv").read_text()

    def no_training(*a, **k):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(runner_mod, "train", no_training)
    run_stability(load_stability_spec(spec_path), out, progress=False)
    after = {f.name: f.stat().st_mtime_ns for f in (out / "runs").glob("*.json")}
    assert before == after
    assert (out / "stability.csv").read_text() == rows_before


def test_heatmaps_with_missing_values(tmp_path):
    spec = parse_stability_spec(RAW)
    summary = [{"contender": c.name, "label": c.label, "lr": lr, "lambda": lam, "seeds": 1,
                "accuracy_mean": None if lam else 0.9, "accuracy_std": None, "pgv_mean": None,
                "grad_norm_max": float("inf") if lr > 0.02 else 2.0, "unstable_runs": 1, "unstable_share": 1.0}
               for c in spec.contenders for lr in spec.lrs for lam in spec.lambdas]
    paths = plot_heatmaps(spec, summary, tmp_path)
    assert list(paths) == ["accuracy", "pgv", "grad_norm_max", "unstable"]
    assert all(p.is_file() and p.stat().st_size > 1000 for p in paths.values())


def test_mnist_stability_spec_is_valid():
    full = load_stability_spec(REPO / "fights" / "stability-mnist.toml")
    assert full.lrs == [1e-3, 3e-3, 1e-2, 3e-2]
    assert full.lambdas == pytest.approx([0.0, 1e-3, 10 ** -2.5, 1e-2, 3e-2])
    assert {c.name: c.seeds for c in full.contenders} == {"cr": 3, "relu": 3, "cr-tanh": 3, "cr-r2": 3,
                                                             "cr-r5": 3, "cr-r8": 3, "gelu": 3, "cr-power": 1}
    assert {c.name: c.config.get("bound") for c in full.contenders if c.name.startswith("cr-r")} == \
        {"cr-r2": 2.0, "cr-r5": 5.0, "cr-r8": 8.0}
    assert full.n_runs == 20 * 22
    quick = load_stability_spec(REPO / "fights" / "stability-mnist.toml", quick=True)
    assert quick.n_runs == 32 and quick.base["epochs"] <= 2
