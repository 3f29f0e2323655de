"""Fight protocol v2 (issue 11): early stopping, tuning v2 (pruning, per-contender sampler seeds,
several tune seeds), repeated stratified k-fold, fair baselines, the robustness subset."""

import csv
import json
import math

import numpy as np
import pytest
import torch

from chainzrule.config import TrainConfig
from chainzrule.fight.runner import cells, run_fight, sampler_seed, tune_cells, val_curve
from chainzrule.fight.spec import parse_spec
from chainzrule.train import (build_model, cv_dataset, cv_fold_indices, eval_subset, load_data, make_optimizer,
                              make_run_regularizer, train)


def _spec(**fight):
    raw = {"fight": {"dataset": "synthetic", "trials": 12, "tune_seeds": 2, **fight},
           "base": {"epochs": 6, "hidden": [4]},
           "contender": [{"name": "a", "model": "mlp", "tune": {"lr": [1e-4, 1e-1, "log"]}},
                         {"name": "b", "model": "mlp", "tune": {"lr": [1e-4, 1e-1, "log"]}}]}
    return parse_spec(raw)


class FakeExecutor:
    """Records with a validation curve that is a fixed function of (lr, seed): no training."""

    def __init__(self):
        self.tasks = []
        self.calls = 0
        self.skipped = 0

    @staticmethod
    def curve(cfg):
        quality = 1.0 - abs(math.log10(cfg.lr) + 2.0) / 3.0  # best at lr = 1e-2
        return [quality * (1 - 0.5 ** (e + 1)) + 0.001 * cfg.seed for e in range(cfg.epochs)]

    def skip(self, n):
        self.skipped += n

    def run(self, tasks):
        self.tasks += tasks
        self.calls += 1
        out = []
        for t in tasks:
            c = self.curve(t.config)
            out.append({"key": t.key, "result": {"val": {"accuracy": max(c)}, "history": {"val_accuracy": c}}})
        return out


def test_defaults_patience_and_tuning_keys():
    spec = _spec()
    assert spec.patience == 3 and spec.pruner == "median" and spec.tune_seeds == 2 and spec.tune_epochs == 6
    assert spec.contender("a").train_config(spec.base).patience == 3
    assert parse_spec({"fight": {"dataset": "synthetic", "patience": 0}, "contender": [{"name": "a", "model": "mlp"}]}
                      ).contender("a").train_config(_spec().base | {"patience": 0}).patience == 0
    with pytest.raises(ValueError, match="pruner"):
        _spec(pruner="asha")
    with pytest.raises(ValueError, match="resampling"):
        _spec(resampling={"folds": 5, "reps": 2})


def test_sampler_seed_per_contender_is_independent_and_stable():
    spec = _spec()
    assert sampler_seed(spec, "a") != sampler_seed(spec, "b")
    assert sampler_seed(spec, "a") == sampler_seed(_spec(), "a") == 783952205  # same on every machine
    assert sampler_seed(_spec(tune_seed=1), "a") != sampler_seed(spec, "a")
    tuned = tune_cells(spec, {"a": {}, "b": {}}, FakeExecutor(), cells(spec))
    lrs = lambda n: [t["params"]["lr"] for t in tuned[n][""]["trials"]]
    assert lrs("a") != lrs("b")  # same space, different points


@pytest.mark.parametrize("pruner", ["median", "hyperband"])
def test_trial_value_is_mean_over_tune_seeds_and_pruning_never_changes_it(pruner):
    spec = _spec(pruner=pruner)
    ex = FakeExecutor()
    tuned = tune_cells(spec, {"a": {}, "b": {}}, ex, cells(spec))
    states = set()
    for name in ("a", "b"):
        res = tuned[name][""]
        assert len(res["trials"]) == spec.trials
        for t in res["trials"]:
            states.add(t["state"])
            cfgs = [TrainConfig.from_dict({**spec.base, "model": "mlp", "lr": t["params"]["lr"], "seed": s})
                    for s in t["seeds"]]
            seed_values = [max(FakeExecutor.curve(c)) for c in cfgs]
            assert t["seed_values"] == pytest.approx(seed_values)
            if t["state"] == "complete":  # its value is its own runs' mean, whatever was pruned later
                assert t["seeds"] == [0, 1] and t["value"] == pytest.approx(np.mean(seed_values))
            else:
                assert t["seeds"] == [0] and t["value"] is None
        best = max((t for t in res["trials"] if t["state"] == "complete"), key=lambda t: t["value"])
        assert res["best_val_accuracy"] == best["value"] and res["space"] == {"lr": [1e-4, 1e-1, "log"]}
    assert "pruned" in states and "complete" in states
    # the same trials tuned without a pruner: every trial completed in both has the same value
    none = tune_cells(_spec(pruner="none"), {"a": {}, "b": {}}, FakeExecutor(), cells(spec))
    for name in ("a", "b"):
        by_params = {t["params"]["lr"]: t["value"] for t in none[name][""]["trials"]}
        for t in tuned[name][""]["trials"]:
            if t["state"] == "complete" and t["params"]["lr"] in by_params:
                assert t["value"] == by_params[t["params"]["lr"]]
    assert all(not t.test for t in ex.tasks)


@pytest.mark.parametrize("pruner", ["median", "hyperband", "none"])
def test_tuning_rounds_equal_one_trial_at_a_time(pruner, monkeypatch):
    """Asking TPE's random trials together, and running a trial's seeds at once while the pruner
    cannot prune it, changes nothing: the same parameters, values, states and runs as the old
    schedule (one trial per round, its first seed, then the rest), in fewer executor calls."""
    from chainzrule.fight import tuning

    spec = _spec(pruner=pruner, trials=30)
    rounds = tuning.trial_rounds(spec)
    assert sorted(t for r, _ in rounds for t in r) == list(range(30))
    fast_ex = FakeExecutor()
    fast = tune_cells(spec, {"a": {}, "b": {}}, fast_ex, cells(spec))
    monkeypatch.setattr(tuning, "trial_rounds", lambda spec: [([t], False) for t in range(spec.trials)])
    slow_ex = FakeExecutor()
    slow = tune_cells(spec, {"a": {}, "b": {}}, slow_ex, cells(spec))
    assert fast == slow
    assert sorted(t.key for t in fast_ex.tasks) == sorted(t.key for t in slow_ex.tasks)
    assert slow_ex.calls == 60
    assert fast_ex.calls == {"median": 49, "hyperband": 60, "none": 21}[pruner]
    states = {t["state"] for n in ("a", "b") for t in fast[n][""]["trials"]}
    assert states == ({"complete"} if pruner == "none" else {"complete", "pruned"})
    pruned = sum(t["state"] == "pruned" for n in ("a", "b") for t in fast[n][""]["trials"])
    assert fast_ex.skipped == slow_ex.skipped == pruned  # one skipped second seed per pruned trial
    assert len(fast_ex.tasks) == 2 * spec.trials * spec.tune_seeds - pruned


def test_val_curve_is_best_so_far_and_padded():
    rec = {"result": {"history": {"val_accuracy": [0.5, 0.7, 0.6]}}}
    assert val_curve(rec, 5) == [0.5, 0.7, 0.7, 0.7, 0.7]
    assert val_curve({"result": {"history": {}}}, 5) == []


def test_cv_folds_are_stratified_disjoint_and_cover():
    y = np.array([0] * 30 + [1] * 20 + [2] * 10)
    tests = [cv_fold_indices(y, 5, f, 3)[1] for f in range(5)]
    assert sorted(np.concatenate(tests).tolist()) == list(range(60))  # disjoint and covering
    for f, te in enumerate(tests):
        tr, _ = cv_fold_indices(y, 5, f, 3)
        assert not set(tr) & set(te) and len(tr) + len(te) == 60
        assert np.bincount(y[te]).tolist() == [6, 4, 2]  # stratified
    assert not np.array_equal(cv_fold_indices(y, 5, 0, 3)[1], cv_fold_indices(y, 5, 0, 4)[1])  # repeats differ
    assert np.array_equal(cv_fold_indices(y, 5, 0, 3)[1], tests[0])  # seeded


def test_cv_fight_tunes_inside_training_folds(tmp_path):
    raw = {"fight": {"dataset": "synthetic", "trials": 2, "seeds": 1, "resampling": {"folds": 2, "repeats": 1},
                     "param_match": False},
           "base": {"epochs": 2, "hidden": [4], "diag_examples": 20, "limit": None},
           "contender": [{"name": "a", "model": "mlp", "tune": {"lr": [1e-3, 1e-2, "log"]}},
                         {"name": "lr", "model": "logreg", "tune": {"reg_strength": [1e-2, 1.0, "log"]}}]}
    raw["base"].pop("limit")
    spec = parse_spec(raw)
    out = run_fight(spec, tmp_path / "cv", progress=False)
    rows = list(csv.DictReader(open(out)))
    n_total = len(load_data(TrainConfig(dataset="synthetic")).y_train) + 400
    assert {(r["repeat"], r["fold"]) for r in rows} == {("0", "0"), ("0", "1")}
    for r in rows:
        assert int(r["n_train"]) + int(r["n_val"]) + int(r["n_test"]) == n_total
        if r["phase"] == "tune":
            assert r["test_accuracy"] == "", "tuning must never read the test fold"
    # a tuning run's training + validation rows are exactly the cell's training folds
    ds = load_data(TrainConfig(dataset="synthetic"))
    y = np.concatenate([ds.y_train, ds.y_test])
    for fold in (0, 1):
        tr, te = cv_fold_indices(y, 2, fold, 0)
        cv = cv_dataset(ds, 2, fold, 0)
        assert len(cv.y_train) == len(tr) and np.array_equal(cv.y_test, y[te])
    tuning = json.loads((tmp_path / "cv" / "tuning.json").read_text())
    assert set(tuning["a"]["cells"]) == {"r0f0", "r0f1"}


def test_early_stopping_restores_best_epoch_in_a_fight_record(tmp_path):
    raw = {"fight": {"dataset": "synthetic", "trials": 0, "seeds": 1, "patience": 1, "param_match": False},
           "base": {"epochs": 8, "hidden": [4], "lr": 0.3, "lr_schedule": "constant", "diag_examples": 20},
           "contender": [{"name": "a", "model": "mlp"}, {"name": "b", "model": "chainzrule"}]}
    run_fight(parse_spec(raw), tmp_path / "es", progress=False)
    for f in (tmp_path / "es" / "runs").glob("*.json"):
        r = json.loads(f.read_text())["result"]
        hist = r["history"]["val_accuracy"]
        best = int(np.argmax(hist)) + 1  # first best epoch
        assert r["selected_epoch"] == best and r["val"]["accuracy"] == hist[best - 1]
        assert r["epochs_run"] == len(hist) and (r["stopped_early"] or len(hist) == 8)


def test_logit_scale_multiplies_the_head_input():
    x = torch.randn(5, 10)
    outs = {}
    for tau in (1.0, 3.0):
        torch.manual_seed(0)
        cfg = TrainConfig(dataset="synthetic", model="mlp", hidden=(4,), reg="sn", logit_scale=tau)
        m = make_run_regularizer(cfg).prepare(build_model(cfg, 10, 3, "classification")).eval()
        with torch.no_grad():
            outs[tau] = (m(x) - m.head.bias, m.head.bias)
    assert torch.allclose(outs[3.0][0], 3.0 * outs[1.0][0], atol=1e-5)


def test_adamw_decoupled_decay_excludes_biases_and_coefficients():
    cfg = TrainConfig(dataset="synthetic", model="chainzrule", hidden=(4,), reg="wd", reg_strength=0.1,
                      optimizer="adamw")
    model = build_model(cfg, 10, 3, "classification")
    reg = make_run_regularizer(cfg)
    assert reg.via_optimizer and float(reg.penalty(model, None, torch.zeros(1, 3), None)) == 0.0
    opt, _ = make_optimizer(cfg, model, 10)
    names = {id(p): n for n, p in model.named_parameters()}
    decayed = [names[id(p)] for g in opt.param_groups if g["weight_decay"] > 0 for p in g["params"]]
    kept = [names[id(p)] for g in opt.param_groups if g["weight_decay"] == 0 for p in g["params"]]
    assert all(g["weight_decay"] in (0.0, 0.1) for g in opt.param_groups)
    assert decayed and all(n.endswith("weight") for n in decayed)
    assert any(n.endswith("bias") for n in kept) and any("coef" in n for n in kept)
    assert len(decayed) + len(kept) == len(list(model.parameters()))
    adam, _ = make_optimizer(cfg.replace(optimizer="adam"), model, 10)  # coupled L2 under Adam: no decay groups
    assert all(g.get("weight_decay", 0) == 0 for g in adam.param_groups)


def test_robustness_subset_is_stratified_and_seeded():
    y = torch.tensor([0] * 500 + [1] * 300 + [2] * 200)
    a, b, c = eval_subset(y, 100, 0), eval_subset(y, 100, 0), eval_subset(y, 100, 1)
    assert torch.equal(a, b) and not torch.equal(a, c) and len(a) == 100 and len(set(a.tolist())) == 100
    assert np.bincount(y[a].numpy()).tolist() == [50, 30, 20]
    assert a.max() >= 500, "not the first n"
    assert torch.equal(eval_subset(y, 5000, 0), torch.arange(1000))


def test_classical_baselines_on_their_knobs():
    base = dict(dataset="synthetic", hidden=(4,))
    svm = train(TrainConfig(**base, model="svm", svm_gamma=0.05), progress=False)
    xgb = train(TrainConfig(**base, model="xgboost", xgb_trees=400, xgb_depth=2, xgb_min_child_weight=2.0,
                            xgb_subsample=0.8, xgb_early_stopping=5, lr=0.3), progress=False)
    assert svm.result["test"]["accuracy"] > 0.5 and xgb.result["test"]["accuracy"] > 0.5
    with pytest.raises(ValueError, match="xgb_subsample"):
        TrainConfig(**base, model="xgboost", xgb_subsample=0.0)
    with pytest.raises(ValueError, match="KAN"):
        TrainConfig(**base, model="mlp", input_norm="layernorm")
    kan = build_model(TrainConfig(**base, model="kan", input_norm="layernorm"), 10, 3, "classification")
    assert isinstance(kan[0], torch.nn.LayerNorm)
