"""The Fair Fight report on a hand-built fight folder with known numbers."""

import csv
import json
import math
import re

import numpy as np
import pytest

from chainzrule.errors import ConfigError
from chainzrule.fight.report import claim_rows, load_fight, summary_table, write_report

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SEEDS = [0, 1, 2, 3, 4]

# final-phase numbers per contender, per seed (hand-chosen)
ACC = {
    "relu": [0.960, 0.962, 0.958, 0.961, 0.959],
    "cr": [0.970, 0.971, 0.969, 0.972, 0.968],
    "cr-dreg": [0.975, 0.977, 0.974, 0.976, 0.978],
}
JAC = {"relu": [9.0, 9.2, 8.8, 9.1, 8.9], "cr": [4.0, 4.1, 3.9, 4.2, 4.0], "cr-dreg": [2.0, 2.1, 1.9, 2.0, 2.2]}
TAU = {"relu": [1.50, 1.52, 1.48, 1.51, 1.49], "cr": [1.3] * 5, "cr-dreg": [1.20, 1.22, 1.18, 1.21, 1.19]}
PGV = {"relu": [2.0, 2.2, 1.8, 2.1, 1.9], "cr": [1.5] * 5, "cr-dreg": [1.0, 1.1, 0.9, 1.0, 1.0]}
PARAMS = {"relu": 100_000, "cr": 101_000, "cr-dreg": 101_000}
MODEL = {"relu": "mlp", "cr": "chainzrule", "cr-dreg": "chainzrule"}
# width sweep of cr-dreg: hidden → (params, accuracies over 3 seeds)
WIDTHS = {"8-8": (2_000, [0.90, 0.91, 0.92]), "16-16": (5_000, [0.958, 0.959, 0.960]), "32-32": (12_000, [0.97, 0.97, 0.97])}
LAMBDAS = [0.0, 1e-3, 0.0031622776601683794, 1e-2]

COLUMNS = ["key", "phase", "contender", "label", "seed", "trial", "model", "activation", "hidden", "reg",
           "reg_strength", "dreg", "lr", "epochs", "params", "val_accuracy", "test_accuracy", "test_mae",
           "test_off_by_one", "test_qwk", "jacobian_fro_mean", "jacobian_fro_p99", "tau_input", "tau_train", "pgv",
           "lipschitz_bound", "corruption_accuracy", "fgsm_0.1", "pgd_0.1", "train_seconds", "step_ms",
           "peak_memory_mb", "diverged"]

LABELS = {"relu": "MLP ReLU", "cr": "ChainzRule", "cr-dreg": "ChainzRule+DREG"}

CLAIMS = [
    {"id": "acc-met", "text": "CR+DREG reaches 96.38%", "kind": "level", "contender": "cr-dreg",
     "metric": "test_accuracy", "claimed": 0.9638, "direction": "higher"},
    {"id": "acc-failed", "text": "CR+DREG reaches 99%", "kind": "level", "contender": "cr-dreg",
     "metric": "test_accuracy", "claimed": 0.99, "direction": "higher"},
    {"id": "acc-straddle", "text": "CR+DREG reaches 97.6%", "kind": "level", "contender": "cr-dreg",
     "metric": "test_accuracy", "claimed": 0.976, "direction": "higher"},
    {"id": "tau-range", "text": "tau 1.01-1.02", "kind": "level", "contender": "cr-dreg", "metric": "tau_input",
     "claimed_range": [1.01, 1.02], "direction": "lower"},
    {"id": "beats-relu", "text": "CR+DREG beats ReLU", "kind": "compare", "contender": "cr-dreg",
     "baseline": "relu", "metric": "test_accuracy", "direction": "higher"},
    {"id": "pgv-cut", "text": "PGV cut by 23.1%", "kind": "reduction", "contender": "cr-dreg", "baseline": "relu",
     "metric": "pgv", "claimed": 0.231, "direction": "higher"},
    {"id": "ratio-ok", "text": "15.5x fewer parameters", "kind": "param_ratio", "contender": "cr-dreg",
     "metric": "test_accuracy", "claimed": 15.5, "direction": "higher"},
    {"id": "ratio-too-high", "text": "25x fewer parameters", "kind": "param_ratio", "contender": "cr-dreg",
     "metric": "test_accuracy", "claimed": 25.0, "direction": "higher"},
    {"id": "kan-dropped", "text": "CR beats KAN", "kind": "compare", "contender": "cr-dreg", "baseline": "kan",
     "metric": "test_accuracy", "direction": "higher"},
    {"id": "corr-empty", "text": "corruption accuracy 90%", "kind": "level", "contender": "cr-dreg",
     "metric": "corruption_accuracy", "claimed": 0.9, "direction": "higher"},
]


def _row(**kw):
    row = {c: "" for c in COLUMNS}
    row.update({k: ("" if v is None else repr(v) if isinstance(v, float) else str(v)) for k, v in kw.items()})
    return row


def _poly_layer(F=6, R=3.0):
    coef = np.zeros((4, F))  # [D+1, F]: p(u) = 0.5 u + 0.1 k u² + 0.01 u³
    coef[1] = 0.5
    coef[2] = 0.1 * np.arange(F)
    coef[3] = 0.01
    return {"kind": "poly", "bound": R, "range_control": "linear", "coefficients": coef.tolist()}


def build_fight(folder, n_steps=120):
    """A fight folder with known numbers: 3 contenders, 5 seeds, width and λ sweeps."""
    (folder / "runs").mkdir(parents=True)
    contenders = [{"name": n, "label": LABELS[n], "config": {"model": MODEL[n]}, "tune": {"lr": [1e-4, 1e-2, "log"]}}
                  for n in ("relu", "cr", "cr-dreg")]
    spec = {"name": "synthetic", "description": "hand-built", "dataset": "synthetic", "reference": "cr-dreg",
            "seeds": 5, "trials": 2, "tune_epochs": 1, "tune_seed": 0, "param_match": True,
            "primary_metric": "accuracy", "base": {"epochs": 3, "hidden": [64, 64], "batch_size": 64},
            "contenders": contenders, "accuracy_matched": {"contender": "cr-dreg", "widths": [8, 16, 32],
                                                           "margin": 0.005, "seeds": 3},
            "lambda_sweep": {"contender": "cr-dreg", "values": LAMBDAS, "seeds": 2}, "claims": CLAIMS,
            "quick": False, "source": "fights/synthetic.toml", "command": "chainzrule fight fights/synthetic.toml --out OUT"}
    (folder / "spec.json").write_text(json.dumps(spec))
    rows, k = [], 0
    for name in ("relu", "cr", "cr-dreg"):
        for t in range(2):  # tuning rows: validation only
            rows.append(_row(key=f"t{k}", phase="tune", contender=name, label=LABELS[name], seed=0, trial=t,
                             model=MODEL[name], hidden="64-64", params=PARAMS[name], val_accuracy=0.95))
            k += 1
        for i, s in enumerate(SEEDS):
            key = f"f{k}"
            k += 1
            rows.append(_row(key=key, phase="final", contender=name, label=LABELS[name], seed=s, model=MODEL[name],
                             activation="relu" if name == "relu" else None, hidden="64-64",
                             dreg=3e-3 if name == "cr-dreg" else 0.0, params=PARAMS[name], val_accuracy=0.95,
                             test_accuracy=ACC[name][i], jacobian_fro_mean=JAC[name][i], tau_input=TAU[name][i],
                             tau_train=1.1, pgv=PGV[name][i], lipschitz_bound=50.0, **{"fgsm_0.1": 0.5, "pgd_0.1": 0.4},
                             train_seconds=10.0 + i, step_ms=2.0, peak_memory_mb=300.0, diverged=False))
            g = 1.0 + 0.1 * np.sin(np.arange(n_steps)) + (1.0 if name == "relu" else 0.0)
            acts = {f"layers.{j}": (_poly_layer() if MODEL[name] == "chainzrule" else {"kind": "relu"}) for j in range(2)}
            rec = {"key": key, "phase": "final", "contender": name, "seed": s, "trial": None,
                   "config": {"model": MODEL[name], "epochs": 3, "batch_size": 64, "optimizer": "adam",
                              "lr_schedule": "onecycle", "hidden": [64, 64]},
                   "result": {}, "grad_norms": g.tolist(), "activations": acts}
            (folder / "runs" / f"{key}.json").write_text(json.dumps(rec))
    for hidden, (params, accs) in WIDTHS.items():
        for s, a in enumerate(accs):
            rows.append(_row(key=f"w{k}", phase="width", contender="cr-dreg", label=LABELS["cr-dreg"], seed=s,
                             model="chainzrule", hidden=hidden, dreg=3e-3, params=params, test_accuracy=a))
            k += 1
    for lam in LAMBDAS:
        for s in range(2):
            rows.append(_row(key=f"l{k}", phase="lambda", contender="cr-dreg", label=LABELS["cr-dreg"], seed=s,
                             model="chainzrule", hidden="64-64", dreg=lam, params=101_000,
                             test_accuracy=0.97 + 0.001 * s, jacobian_fro_mean=5.0 - 100 * lam, pgv=1.0))
            k += 1
    with open(folder / "results.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    tuning = {n: {"best_params": {"lr": 0.003}, "best_val_accuracy": 0.95, "trials": [{}, {}]} for n in LABELS}
    (folder / "tuning.json").write_text(json.dumps(tuning))
    return folder


@pytest.fixture(scope="module")
def fight_dir(tmp_path_factory):
    folder = build_fight(tmp_path_factory.mktemp("fight"))
    write_report(folder)
    return folder


def _verdicts(report: str) -> dict[str, str]:
    out = {}
    for line in report.splitlines():
        m = re.match(r"^\| ([a-z0-9-]+) \|.*\| \*\*([a-z ]+)\*\* \|", line)
        if m:
            out[m.group(1)] = m.group(2)
    return out


def test_report_written_with_contenders_and_claims(fight_dir):
    report = (fight_dir / "report.md").read_text()
    assert report.startswith("# Fair Fight: synthetic")
    for label in LABELS.values():
        assert label in report
    assert "chainzrule fight fights/synthetic.toml --out OUT" in report
    assert "test set is read only by final runs" in report
    assert "## Findings" in report
    assert not list(fight_dir.glob(".*.tmp"))  # atomic writes leave no temporaries


def test_claim_verdicts_follow_the_numbers(fight_dir):
    verdicts = _verdicts((fight_dir / "report.md").read_text())
    assert verdicts == {
        "acc-met": "supported",            # CI ≈ [97.4, 97.8] ≥ 96.38
        "acc-failed": "not supported",     # CI < 99
        "acc-straddle": "inconclusive",    # mean 97.6 = claimed
        "tau-range": "not supported",      # ours ≈ 1.2 > 1.02 (lower is favourable)
        "beats-relu": "supported",         # +1.6 points on every seed
        "pgv-cut": "supported",            # 1 - 1.0/2.0 ≈ 50% ≥ 23.1%
        "ratio-ok": "supported",           # 100000 / 5000 = 20× ≥ 15.5×
        "ratio-too-high": "not supported",  # 20× < 25×
        "kan-dropped": "not tested",
        "corr-empty": "not tested",
    }


def test_claim_rows_numbers(fight_dir):
    rows = {r["id"]: r for r in claim_rows(fight_dir)}
    assert rows["ratio-ok"]["ours_value"] == pytest.approx(20.0)
    red = np.mean([1 - a / b for a, b in zip(PGV["cr-dreg"], PGV["relu"])])
    assert rows["pgv-cut"]["ours_value"] == pytest.approx(red)
    diff = np.mean(np.subtract(ACC["cr-dreg"], ACC["relu"]))
    assert rows["beats-relu"]["ours_value"] == pytest.approx(diff)
    assert "not in this fight" in rows["kan-dropped"]["note"]
    assert rows["kan-dropped"]["p_value"] is None
    assert rows["acc-met"]["p_value"] < 0.05


def test_summary_csv_matches_hand_computed_means(fight_dir):
    with open(fight_dir / "summary.csv", newline="") as f:
        rows = {r["contender"]: r for r in csv.DictReader(f)}
    assert list(rows) == ["relu", "cr", "cr-dreg"]
    for name in rows:
        assert float(rows[name]["test_accuracy_mean"]) == pytest.approx(np.mean(ACC[name]))
        assert float(rows[name]["test_accuracy_std"]) == pytest.approx(np.std(ACC[name], ddof=1))
        assert float(rows[name]["jacobian_fro_mean_mean"]) == pytest.approx(np.mean(JAC[name]))
        assert float(rows[name]["pgv_mean"]) == pytest.approx(np.mean(PGV[name]))
        assert float(rows[name]["params"]) == PARAMS[name]
        assert int(rows[name]["test_accuracy_n"]) == 5
    assert "corruption_accuracy_mean" not in rows["relu"]  # empty column: omitted
    table = summary_table(fight_dir)
    assert [d["contender"] for d in table] == ["relu", "cr", "cr-dreg"]
    ci = (table[2]["test_accuracy_ci_low"], table[2]["test_accuracy_ci_high"])
    assert ci[0] < np.mean(ACC["cr-dreg"]) < ci[1]


def test_sections(fight_dir):
    report = (fight_dir / "report.md").read_text()
    assert "Parameter ratio 20.00×" in report
    assert "16-16" in report and "← match" in report
    assert "0.003162 ★" in report  # λ = 10^-2.5 marked
    assert "Holm p" in report
    # main table: accuracy of the reference with its CI, in percent
    s = f"{100 * np.mean(ACC['cr-dreg']):.2f} ± {100 * np.std(ACC['cr-dreg'], ddof=1):.2f} ["
    assert s in report
    assert "fgsm_0.1 (%)" in report and "pgd_0.1 (%)" in report


def test_plots_are_valid_pngs_and_linked(fight_dir):
    report = (fight_dir / "report.md").read_text()
    names = ["accuracy_vs_params.png", "accuracy_vs_tau.png", "grad_norms.png", "activations.png", "lambda_sweep.png"]
    for name in names:
        path = fight_dir / "plots" / name
        data = path.read_bytes()
        assert len(data) > 1000 and data[:8] == PNG_SIGNATURE, name
        assert f"](plots/{name})" in report


def test_missing_files_raise_config_error(tmp_path):
    msg = "is not a fight folder: expected results.csv and spec.json, missing results.csv, spec.json"
    with pytest.raises(ConfigError, match=msg):
        write_report(tmp_path)
    (tmp_path / "spec.json").write_text("{}")
    with pytest.raises(ConfigError, match="missing results.csv$"):
        write_report(tmp_path)


def test_dropped_contender_and_empty_sections(tmp_path):
    """A quick-profile folder: no width/λ rows, no run files; the report still builds."""
    folder = build_fight(tmp_path / "f")
    spec = json.loads((folder / "spec.json").read_text())
    spec["quick"] = True
    spec["accuracy_matched"] = None
    spec["lambda_sweep"] = None
    (folder / "spec.json").write_text(json.dumps(spec))
    with open(folder / "results.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["phase"] in ("tune", "final")]
    with open(folder / "results.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    for p in (folder / "runs").glob("*.json"):
        p.unlink()
    report = write_report(folder).read_text()
    v = _verdicts(report)
    assert v["ratio-ok"] == "not tested" and v["kan-dropped"] == "not tested"
    # a quick run's judged rows are previews, never a bold verdict, and point to the full results
    assert "acc-met" not in v and "beats-relu" not in v
    assert "| acc-met |" in report and "| preview (quick profile) |" in report
    assert "results/synthetic/report.md" in report
    rows = {r["id"]: r for r in claim_rows(folder)}
    assert rows["acc-met"]["verdict"] == "preview (quick profile)" and rows["acc-met"]["preview_of"] == "supported"
    assert "λ sweep" in report and "Not run" in report
    assert not (folder / "plots" / "grad_norms.png").exists()
    fight = load_fight(folder)
    assert fight.spec["quick"] and math.isclose(fight.alpha, 0.05)


@pytest.mark.parametrize("range_control", ["linear", "tanh", "none"])
def test_stored_activation_matches_the_module(range_control):
    """The activation plot evaluates stored coefficients exactly as PolynomialActivation does."""
    import torch

    from chainzrule.fight.figures import _poly_sigma
    from chainzrule.poly import PolynomialActivation

    act = PolynomialActivation(5, degree=3, bound=2.0, range_control=range_control).double()
    with torch.no_grad():
        act.coefficients.add_(0.1 * torch.randn_like(act.coefficients))
    layer = {"kind": "poly", "bound": act.bound, "range_control": act.range_control,
             "coefficients": act.power_coefficients().detach().tolist()}  # as the runner stores it
    z = np.linspace(-4.0, 4.0, 81)
    ours = _poly_sigma(layer, z, max_neurons=5)  # [P, 5]
    with torch.no_grad():
        ref = act(torch.tensor(z).unsqueeze(1).expand(-1, 5).contiguous()).numpy()
    np.testing.assert_allclose(ours, ref, rtol=1e-10, atol=1e-10)
