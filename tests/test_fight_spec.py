"""Fight specs: the shipped specs parse; bad specs are refused before any run starts."""

import copy
import subprocess
import sys
import tomllib

from pathlib import Path

import pytest

from chainzrule.errors import ConfigError
from chainzrule.fight.spec import load_spec, parse_spec

from conftest import REPO

# fight specs only: stability maps (test_stability.py) and fine-tuning fights (test_finetune.py) have their own
FIGHTS = [p for p in sorted((REPO / "fights").glob("*.toml")) if "fight" in tomllib.loads(p.read_text())]
TINY = REPO / "tests" / "fixtures" / "tiny_fight.toml"


def _tiny() -> dict:
    return tomllib.loads(TINY.read_text())


@pytest.mark.parametrize("path", FIGHTS, ids=[p.stem for p in FIGHTS])
@pytest.mark.parametrize("quick", [False, True])
def test_shipped_specs_parse(path, quick):
    spec = load_spec(path, quick=quick)
    assert spec.contenders and spec.reference in {c.name for c in spec.contenders}
    assert spec.claims, "every shipped spec tests some of the papers' claims"
    if quick:
        full = load_spec(path)
        assert len(spec.contenders) <= len(full.contenders)
        assert spec.base.get("epochs", 10) <= full.base.get("epochs", 10)


def test_quick_profile_is_merged():
    raw = _tiny()
    raw["quick"] = {"seeds": 1, "base": {"epochs": 1}, "contenders": ["relu", "cr-dreg"]}
    spec = parse_spec(raw, quick=True)
    assert spec.seeds == 1 and spec.base["epochs"] == 1 and [c.name for c in spec.contenders] == ["relu", "cr-dreg"]
    assert spec.base["hidden"] == [16]  # untouched keys survive the merge


def test_dataset_override_reaches_every_contender():
    spec = parse_spec(_tiny(), dataset="csv:data.csv", target="label", data_dir="/tmp")
    cfg = spec.contender("relu").train_config(spec.base)
    # a csv:PATH is named absolutely (not under /tmp: no data.csv there), so the run keys say which file
    assert (cfg.dataset, cfg.target, cfg.data_dir) == (f"csv:{Path('data.csv').absolute()}", "label", "/tmp")


@pytest.mark.parametrize("mutate, message", [
    (lambda r: r["fight"].update(colour="red"), "[fight]: unknown key(s) colour"),
    (lambda r: r.update(extras={}), "spec: unknown key(s) extras"),
    (lambda r: r["base"].update(epochz=3), "[base]: unknown key(s) epochz"),
    (lambda r: r["contender"][0].update(modle="mlp"), "contender relu: unknown key(s) modle"),
    (lambda r: r["contender"][0].update(model="transformer"), "model 'transformer' is not known"),
    (lambda r: r["contender"][0].update(tune={"momentum": [0.1, 0.9, "linear"]}), "cannot tune 'momentum'"),
    (lambda r: r["contender"][0].update(tune={"lr": [1e-2, 1e-3, "log"]}), "low < high"),
    (lambda r: r["fight"].update(reference="gpt"), "reference 'gpt' is not a contender"),
    (lambda r: r["claim"][0].update(metric="f1"), "unknown metric 'f1'"),
    (lambda r: r["claim"][0].update(kind="vibes"), "unknown kind 'vibes'"),
    (lambda r: r["lambda_sweep"].update(contender="nobody"), "[lambda_sweep] contender 'nobody' is not a contender"),
    (lambda r: r.update(quick={"contenders": ["relu", "ghost"]}), "unknown contender(s) ghost"),
    (lambda r: r["contender"].append(copy.deepcopy(r["contender"][0])), "duplicate contender name(s): relu"),
    (lambda r: r["fight"].update(seeds=0), "seeds must be an integer in 1..4294967296, got 0"),
    # the tiny spec's dataset is synthetic: generated, so a column or a folder would do nothing
    (lambda r: r["fight"].update(target="label"), "target names where data is read, got it with dataset synthetic"),
    (lambda r: r["base"].update(data_dir="/tmp"), "data_dir names where data is read, got it with dataset synthetic"),
])
def test_bad_specs_are_refused_with_a_clear_message(mutate, message):
    raw = _tiny()
    mutate(raw)
    with pytest.raises(ValueError) as err:
        parse_spec(raw, quick="quick" in raw)
    assert message in str(err.value)


def test_cli_refuses_bad_spec_before_any_run(tmp_path):
    raw = TINY.read_text().replace('model = "kan"', 'model = "kan"\nwidth_multiplier = 2', 1)
    bad = tmp_path / "bad.toml"
    bad.write_text(raw)
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "chainzrule.cli", "fight", str(bad), "--out", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    lines = [l for l in proc.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and "unknown key(s) width_multiplier" in lines[0], proc.stderr
    assert not out.exists(), "nothing may be written before the spec is accepted"


def test_missing_and_malformed_spec_files(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        load_spec(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[fight\nname=")
    with pytest.raises(ValueError, match="not valid TOML"):
        load_spec(bad)


# ------------------------------------------------------------------------------------------------
# issue 8 probe: every spec error is found before any run, with one clear line and exit 2
# ------------------------------------------------------------------------------------------------
def _contender(raw, name):
    return next(c for c in raw["contender"] if c["name"] == name)


SPEC_PROBES = [
    (lambda r: r["lambda_sweep"].update(contender="kan"),
     "[lambda_sweep] contender 'kan' is a 'kan' model: a λ sweep needs a model with DREG"),
    (lambda r: r["lambda_sweep"].update(contender="logreg"), "[lambda_sweep] contender 'logreg' is a 'logreg' model"),
    (lambda r: _contender(r, "kan").update(tune={"dreg": [1e-4, 1e-2, "log"]}),
     "contender kan: cannot tune 'dreg' on model 'kan': it acts only on chainzrule, mlp"),
    (lambda r: _contender(r, "kan").update(dreg=1e-3), "contender kan: dreg = 0.001 needs a model with DREG"),
    (lambda r: _contender(r, "logreg").update(dreg=1e-3), "contender logreg: dreg = 0.001 needs a model with DREG"),
    (lambda r: _contender(r, "logreg").update(tune={"lr": [1e-3, 1e-1, "log"]}), "cannot tune 'lr' on model 'logreg'"),
    (lambda r: _contender(r, "relu").update(tune={"bound": [1.0, 4.0, "linear"]}), "cannot tune 'bound' on model 'mlp'"),
    (lambda r: r["accuracy_matched"].update(contender="logreg"), "only networks have a width to sweep"),
    (lambda r: r["accuracy_matched"].update(seeds="three"), "[accuracy_matched] seeds must be an integer"),
    (lambda r: r["accuracy_matched"].update(baselines="relu"), "[accuracy_matched] baselines must be a list"),
    (lambda r: r["accuracy_matched"].update(contender=["cr-dreg"]), "[accuracy_matched] contender ['cr-dreg'] is not a contender"),
    (lambda r: r["contender"][0].update(name=["relu"]) or r.update(quick={"seeds": 1}), "name must match"),
    (lambda r: r["accuracy_matched"].update(baselines=["ghost"]), "'ghost' is not a contender"),
    (lambda r: r["accuracy_matched"].update(baselines=["logreg"]), "only networks have a width to sweep"),
    (lambda r: r["accuracy_matched"].update(baselines=["cr-dreg"]), "must not include the contender itself"),
    (lambda r: _contender(r, "relu").update(degree=5), "contender relu: degree acts on model(s) chainzrule, chainzrule-cnn only"),
    (lambda r: _contender(r, "logreg").update(hidden=[8]), "contender logreg: hidden acts on model(s)"),
    (lambda r: _contender(r, "relu").update(jr_projections=2), "contender relu: jr_projections acts with reg jr only"),
    (lambda r: _contender(r, "cr-dreg").update(dreg_warmup=0.3),
     "contender cr-dreg: dreg_warmup warms λ up before a schedule: expected dreg_schedule warmup, linear or cosine"),
    (lambda r: _contender(r, "cr-dreg").update(dreg_schedule="warmup"), "contender cr-dreg: dreg_schedule warmup with dreg_warmup 0"),
    (lambda r: _contender(r, "cr-dreg").update(tune={"dreg_final": [1e-5, 1e-3, "log"]}),
     "contender cr-dreg: dreg_final is where an annealed λ ends: expected dreg_schedule linear or cosine, got constant"),
    (lambda r: r["accuracy_matched"].update(lr_factors=[1.0, 1.0]), "[accuracy_matched] lr_factors must be a list of 1 to 9 distinct"),
    (lambda r: r["accuracy_matched"].update(lr_factors=[0.0, 1.0]), "lr_factors must be a list"),
    (lambda r: r["accuracy_matched"].update(lr_factors=[]), "lr_factors must be a list"),
    (lambda r: r["accuracy_matched"].update(lr_factors=2.0), "lr_factors must be a list"),
    (lambda r: r["accuracy_matched"].update(reg_factors=[1.0, "4"]), "reg_factors must be a list of 1 to 9 distinct"),
    (lambda r: r["lambda_sweep"].update(seeds=0), "[lambda_sweep] seeds must be an integer"),
    (lambda r: r["lambda_sweep"].update(values=[0.0, 1e300]), "[lambda_sweep] values must be a list of numbers in [0, 1e+30]"),
    # bad tuning ranges
    (lambda r: _contender(r, "relu").update(tune={"lr": [0.0, 1e-2, "linear"]}),
     "contender relu: tune.lr value 0.0: lr must be a finite number > 0, got 0.0"),
    (lambda r: _contender(r, "relu").update(tune={"lr": [1e-3, 1e300, "log"]}), "tune.lr value 1e+300: lr must be at most 1e+30"),
    (lambda r: _contender(r, "relu").update(tune={"lr": [1e-3, float("inf"), "log"]}), "with finite numbers low < high"),
    (lambda r: _contender(r, "relu").update(tune={"lr": [False, True, "linear"]}), "with finite numbers low < high"),
    (lambda r: _contender(r, "relu").update(tune={"lr": {"choices": ["fast"]}}), "tune.lr value 'fast': config key 'lr'"),
    (lambda r: _contender(r, "relu").update(tune=3), "contender relu: tune must be a table, got int 3"),
    # claims naming contenders the spec does not define
    (lambda r: r["claim"][0].update(contender="ghost"),
     "claim a: contender 'ghost' is not a contender of this spec: expected one of relu, cr-dreg, kan, logreg"),
    (lambda r: r["claim"][0].update(kind="compare", baseline="nobody"), "claim a: baseline 'nobody' is not a contender"),
    (lambda r: r["claim"][0].update(not_tested=""), "not_tested must be the reason"),
    # wrong TOML types
    (lambda r: r.update(fight=3), "[fight] must be a table, got int 3"),
    (lambda r: r.update(contender="relu"), "contender must be an array of tables ([[contender]] sections), got 'relu'"),
    (lambda r: r.update(base=[1]), "[base] must be a table, got list"),
    (lambda r: r.update(claim="x"), "claim must be an array of tables"),
    (lambda r: r.update(lambda_sweep=[0.1]), "[lambda_sweep] must be a table"),
    (lambda r: r.update(quick={"contenders": "relu"}), "[quick] contenders must be a non-empty list of contender names"),
    (lambda r: r.update(quick={"base": 3}), "[quick] base must be a table"),
    (lambda r: r["fight"].update(param_match="no"), "[fight] param_match must be true or false, got 'no'"),
    (lambda r: r["fight"].update(tune_seed=2**32), "[fight] tune_seed must be an integer in 0..4294967295"),
    (lambda r: r["fight"].update(seeds=True), "[fight] seeds must be an integer"),
    (lambda r: r["base"].update(seed=-1), "seed must be an integer in [0, 2**32)"),
    # the runner's own fields: a fixed fold was read as repeated CV (one split, "n=1, no CI"), a seed overridden
    (lambda r: r["base"].update(cv_folds=5), "[base] sets cv_folds, which the runner sets for every run: give the "
                                              "seeds as [fight] seeds and the folds as [fight] resampling"),
    (lambda r: r["base"].update(seed=3, cv_folds=5, cv_fold=1), "[base] sets seed, cv_folds, cv_fold, which the runner sets"),
    (lambda r: r["contender"][0].update(cv_repeat=2), "contender 'relu' sets cv_repeat, which the runner sets"),
]


@pytest.mark.parametrize("mutate, message", SPEC_PROBES, ids=[m for _, m in SPEC_PROBES])
def test_spec_probe_is_refused_before_any_run(mutate, message):
    raw = _tiny()
    mutate(raw)
    with pytest.raises(ConfigError) as err:
        parse_spec(raw, quick="quick" in raw)
    assert message in str(err.value)


def test_claim_on_a_contender_dropped_by_quick_or_marked_untestable_is_accepted():
    raw = _tiny()
    raw["quick"] = {"contenders": ["relu", "cr-dreg"]}
    raw["claim"][0]["contender"] = "kan"
    spec = parse_spec(raw, quick=True)  # claim "a" names kan, dropped by the profile
    assert [c["tested"] for c in spec.claims] == [False]
    raw = _tiny()
    raw["claim"][0].update(contender="bert", not_tested="BERT is not reachable offline")
    claim = parse_spec(raw).claims[0]
    assert (claim["tested"], claim["note"]) == (False, "BERT is not reachable offline")


def _spec_file(tmp_path, text):
    p = tmp_path / "s.toml"
    p.write_text(text)
    return p


@pytest.mark.parametrize("edit, message", [
    (lambda t: t.replace('contender = "cr-dreg"\nvalues', 'contender = "kan"\nvalues'), "a λ sweep needs a model with DREG"),
    (lambda t: t.replace('hidden = [2]', 'hidden = [2]\ntune = { dreg = [1e-4, 1e-2, "log"] }'), "cannot tune 'dreg' on model 'kan'"),
    (lambda t: 'fight = 3\n[[contender]]\nname = "relu"\nmodel = "mlp"\n', "[fight] must be a table, got int 3"),
    (lambda t: 'contender = "relu"\n[fight]\ndataset = "synthetic"\n', "contender must be an array of tables"),
    (lambda t: t.replace('tune = { reg_strength = [1e-3, 10.0, "log"] }', 'tune = { reg_strength = [10.0, 1e-3, "log"] }'),
     "low < high"),
    (lambda t: t.replace('contender = "cr-dreg"\nmetric', 'contender = "ghost"\nmetric'), "'ghost' is not a contender"),
])
def test_cli_refuses_spec_probe_with_exit_2_and_writes_nothing(tmp_path, capsys, edit, message):
    from chainzrule.cli import main

    spec = _spec_file(tmp_path, edit(TINY.read_text()))
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exit_:
        main(["fight", str(spec), "--out", str(out)])
    err = capsys.readouterr().err
    assert exit_.value.code == 2
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("chainzrule: error: ") and message in lines[0], err
    assert not out.exists(), "nothing may be written before the spec is accepted"


def test_size_view_sweeps_the_baseline_family_best_on_validation():
    """[accuracy_matched] baselines: the runner adds a width sweep of the baseline family whose tuned
    validation accuracy is best — decided on validation, never on test."""
    from chainzrule.fight.runner import _count_after_tuning_per_cell, best_baseline, plan_after_tuning

    raw = _tiny()
    raw["contender"].append({"name": "gelu", "model": "mlp", "activation": "gelu", "tune": {"lr": [1e-3, 1e-2, "log"]}})
    raw["accuracy_matched"]["baselines"] = ["relu", "gelu", "kan"]
    spec = parse_spec(raw)
    configs = {c.name: c.config for c in spec.contenders}
    tuning = {c.name: {"best_params": {}, "best_val_accuracy": 0.8} for c in spec.contenders}
    tuning["gelu"]["best_val_accuracy"] = 0.9
    assert best_baseline(spec.accuracy_matched, tuning) == "gelu"
    tasks = plan_after_tuning(spec, configs, tuning)
    widths = {(t.contender, t.config.hidden) for t in tasks if t.phase == "width"}
    assert widths == {(n, (w,)) for n in ("cr-dreg", "gelu") for w in (4, 8)}
    assert len(tasks) == _count_after_tuning_per_cell(spec)
    tuning["gelu"]["best_val_accuracy"] = None  # no tuned score: not chosen
    assert best_baseline(spec.accuracy_matched, tuning) == "relu"
    # several cells: one family for all of them, the best on validation averaged over the cells
    from chainzrule.fight.runner import fight_baseline

    tuned = {"relu": {"r0f0": {"best_val_accuracy": 0.9}, "r0f1": {"best_val_accuracy": 0.7}},
             "gelu": {"r0f0": {"best_val_accuracy": 0.85}, "r0f1": {"best_val_accuracy": 0.8}}}
    assert fight_baseline(spec, tuned) == "gelu"
    tuning["gelu"]["best_val_accuracy"] = 0.1  # this cell alone would not pick it: the fight's choice wins
    tasks = plan_after_tuning(spec, configs, tuning, None, "gelu")
    assert {t.contender for t in tasks if t.phase == "width"} == {"cr-dreg", "gelu"}


def test_width_sweep_tries_each_factor_combination_inside_the_search_ranges():
    """[accuracy_matched] lr_factors and reg_factors: every width of both swept families runs at
    each combination of multiples of its family's tuned learning rate and tuned regularization
    strength (DREG's λ, else reg_strength; none for a family that tunes neither), kept inside the
    family's ranges; without them, one run per width at the tuned values (the same configs as
    before the options existed)."""
    from chainzrule.fight.runner import _count_after_tuning_per_cell, plan_after_tuning, width_values

    raw = _tiny()
    raw["accuracy_matched"]["baselines"] = ["relu"]
    spec = parse_spec(raw)
    configs = {c.name: c.config for c in spec.contenders}
    tuning = {c.name: {"best_params": {k: {"lr": 4e-3, "dreg": 1e-3}[k] for k in c.tune if k in ("lr", "dreg")},
                       "best_val_accuracy": 0.8} for c in spec.contenders}
    plain = [t for t in plan_after_tuning(spec, configs, tuning) if t.phase == "width"]
    assert {t.config.lr for t in plain} == {4e-3} and len(plain) == 2 * 2 * spec.seeds
    raw["accuracy_matched"]["lr_factors"] = [4.0, 0.5, 1.0]
    raw["accuracy_matched"]["reg_factors"] = [1.0, 4.0]
    spec = parse_spec(raw)
    assert spec.accuracy_matched["lr_factors"] == [0.5, 1.0, 4.0] and spec.accuracy_matched["reg_factors"] == [1.0, 4.0]
    tasks = plan_after_tuning(spec, configs, tuning)
    width = [t for t in tasks if t.phase == "width"]
    space = {c.name: c.tune for c in spec.contenders}
    for name in ("relu", "cr-dreg"):
        lrs = sorted({t.config.lr for t in width if t.contender == name})
        assert lrs == width_values(4e-3, [0.5, 1.0, 4.0], space[name]["lr"])
        assert lrs[0] == pytest.approx(2e-3) and lrs[-1] == pytest.approx(min(1.6e-2, space[name]["lr"][1]))
    lams = sorted({t.config.dreg for t in width if t.contender == "cr-dreg"})
    assert lams == width_values(1e-3, [1.0, 4.0], space["cr-dreg"]["dreg"]) == [1e-3, 4e-3]
    assert {t.config.dreg for t in width if t.contender == "relu"} == {None}  # relu tunes no strength: lr only
    for w in (4, 8):  # every combination at every width and seed
        assert len([t for t in width if t.contender == "relu" and t.config.hidden == (w,)]) == 3 * spec.seeds
        assert len([t for t in width if t.contender == "cr-dreg" and t.config.hidden == (w,)]) == 3 * 2 * spec.seeds
    assert {t.config for t in plain} <= {t.config for t in width}  # the tuned point's runs are the old runs
    assert len(tasks) <= _count_after_tuning_per_cell(spec)
    assert width_values(0.01, [0.5, 2.0], {"choices": [0.005, 0.01, 0.015]}) == [0.005, 0.015]


def test_unhashable_contender_name_is_a_config_error_with_or_without_quick():
    raw = _tiny()
    raw["contender"][0]["name"] = ["relu"]
    raw["quick"] = {"contenders": ["cr-dreg", "kan"]}
    with pytest.raises(ConfigError, match="name must match"):
        parse_spec(raw)  # the full profile keeps it: refused
    with pytest.raises(ConfigError, match="name must match"):
        parse_spec(raw, quick=True)  # the quick profile drops it, but the full profile is checked too


def test_csv_dataset_names_its_file_absolutely(tmp_path, monkeypatch):
    """`csv:my.csv` from two folders is two files: the fight's dataset (and so its run keys) holds
    the absolute path, resolved as the loader resolves it (under data_dir first)."""
    from chainzrule.fight.spec import parse_spec

    def spec():
        return {"fight": {"name": "x", "dataset": "csv:my.csv", "target": "y", "reference": "a"},
                "contender": [{"name": "a", "model": "mlp"}, {"name": "b", "model": "chainzrule"}]}

    keys = []
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        monkeypatch.chdir(tmp_path / sub)
        s = parse_spec(spec())
        assert s.base["dataset"] == f"csv:{tmp_path / sub / 'my.csv'}"
        keys.append(s.contender("a").train_config(s.base).hash())
    assert keys[0] != keys[1]
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "my.csv").write_text("y\n1\n")
    s = parse_spec({**spec(), "fight": {**spec()["fight"], "data_dir": str(tmp_path / "d")}})
    assert s.base["dataset"] == f"csv:{tmp_path / 'd' / 'my.csv'}"
    assert parse_spec(spec(), dataset="pima", target="diabetes").base["dataset"] == "pima"


def test_quick_profile_does_not_hide_a_bad_full_profile():
    """--quick validates the full profile too (a bad [fight] value that [quick] overrides is still
    refused), names a bad [quick] value as [quick]'s, and a claim on a column results.csv never has
    is refused before any run."""
    from chainzrule.fight.spec import parse_spec

    def spec(fight=None, quick=None, claim=None):
        raw = {"fight": {"name": "x", "dataset": "pima", "reference": "a", "trials": 3, **(fight or {})},
               "contender": [{"name": "a", "model": "mlp"}, {"name": "b", "model": "chainzrule"}],
               "quick": {"trials": 1, "seeds": 1, **(quick or {})}}
        if claim:
            raw["claim"] = [{"id": "c", "kind": "level", "contender": "a", "claimed": 1.0, **claim}]
        return raw

    assert parse_spec(spec(), quick=True).trials == 1
    for bad in ({"trials": "many"}, {"seeds": -2}):
        with pytest.raises(ConfigError, match=r"\[fight\] (trials|seeds) must be an integer"):
            parse_spec(spec(fight=bad), quick=True)
    with pytest.raises(ConfigError, match=r"\[quick\] trials must be an integer in 0\.\.\d+, got -3"):
        parse_spec(spec(quick={"trials": -3}), quick=True)
    with pytest.raises(ConfigError, match="peak_memory_mb"):
        parse_spec(spec(claim={"metric": "peak_memory_mb"}))


def test_claim_on_an_attack_column_no_run_will_have_is_refused():
    from chainzrule.fight.spec import parse_spec

    def spec(metric):
        return {"fight": {"name": "x", "dataset": "pima", "reference": "a"},
                "base": {"robustness": True, "adv_eps": [0.1]},
                "contender": [{"name": "a", "model": "mlp"}, {"name": "b", "model": "chainzrule"}],
                "claim": [{"id": "c", "kind": "level", "contender": "a", "claimed": 0.5, "metric": metric}]}

    assert parse_spec(spec("pgd_0.1")).claims[0]["metric"] == "pgd_0.1"
    with pytest.raises(ConfigError, match="unknown metric 'pgd_0.3'.*with that ε in adv_eps"):
        parse_spec(spec("pgd_0.3"))


def test_quick_without_a_quick_table_is_refused():
    """--quick on a spec without [quick] ran the full profile, labelled a preview: refused, for
    fights, stability maps and fine-tuning fights alike."""
    from chainzrule.fight.finetune_spec import parse_finetune_spec
    from chainzrule.fight.stability_spec import parse_stability_spec

    raw = _tiny()
    raw.pop("quick", None)
    parse_spec(copy.deepcopy(raw))  # fine without --quick
    message = r"--quick needs the spec's \[quick\] table, got a spec without one"
    with pytest.raises(ConfigError, match=message):
        parse_spec(raw, quick=True)
    for path, parse in (("stability-mnist-long.toml", parse_stability_spec), ("sst5-finetune.toml", parse_finetune_spec)):
        spec = tomllib.loads((REPO / "fights" / path).read_text())
        spec.pop("quick", None)
        with pytest.raises(ConfigError, match=message):
            parse(spec, quick=True)
