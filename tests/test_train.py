"""train.py: one run from a TrainConfig — determinism, the test split's seal, divergence, every
regularizer, KAN, the classical baselines, ordinal heads, and that DREG does what it says."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from chainzrule.config import TrainConfig
from chainzrule.data.base import Dataset
from chainzrule.data.splits import Splits
from chainzrule.errors import ConfigError
from chainzrule.train import load_splits, synthetic_dataset, train

TIMING = ("train_seconds", "step_ms", "peak_memory_mb")
DATA = synthetic_dataset(n=500)  # 400 train (360 after the validation carve) / 100 test, 3 classes


def cfg_of(**kw) -> TrainConfig:
    base = dict(dataset="synthetic", hidden=(16,), epochs=2, batch_size=64, lr=1e-2)
    return TrainConfig(**{**base, **kw})


def run(test: bool = True, **kw):
    cfg = cfg_of(**kw)
    return train(cfg, load_splits(cfg, DATA), progress=False, test=test)


def untimed(result: dict) -> dict:
    return {k: v for k, v in result.items() if k not in TIMING}


def weight_norm2(model) -> float:
    return sum(float(p.detach().pow(2).sum()) for n, p in model.named_parameters() if n.endswith("weight"))


# ------------------------------------------------------------------------------- determinism
def test_same_seed_gives_identical_metrics_trace_and_weights():
    # jr draws random projections and chainzrule has DREG on: every random source is exercised
    a = run(model="chainzrule", reg="jr", reg_strength=0.1, seed=3)
    b = run(model="chainzrule", reg="jr", reg_strength=0.1, seed=3)
    assert untimed(a.result) == untimed(b.result)
    assert a.grad_norms == b.grad_norms and len(a.grad_norms) == a.result["steps"] > 0
    sa, sb = a.model.state_dict(), b.model.state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    # ... and the seed matters: another seed is another run
    c = run(model="chainzrule", reg="jr", reg_strength=0.1, seed=4)
    assert c.grad_norms != a.grad_norms


def test_result_has_the_documented_fields():
    r = run(model="chainzrule").result
    for key in ("params", "tau_input", "tau_train", "pgv", "lipschitz_bound", "train_seconds", "step_ms",
                "peak_memory_mb", "steps", "diverged", "history", "val"):
        assert key in r, key
    assert 0.0 <= r["test"]["accuracy"] <= 1.0 and r["test"]["accuracy"] > 0.5  # 3 classes: chance is 1/3
    assert 0 < r["jacobian_fro"]["mean"] <= r["jacobian_fro"]["p99"]
    assert r["tau_input"] >= 1.0 and r["tau_train"] > 0 and r["pgv"] >= 0
    assert r["params"] == 10 * 16 + 16 + 16 * 4 + 16 * 3 + 3  # linear + cubic coefficients + head
    assert r["steps"] == 2 * math.ceil(360 / 64) and r["diverged"] is False
    assert len(r["history"]["val_accuracy"]) == 2
    json.dumps(r, allow_nan=False)  # strict JSON as it is


# ------------------------------------------------------------------------------- test=False
class SealedSplits(Splits):
    """Splits whose test tensors raise on any read."""

    def __getattribute__(self, name):
        if name in ("X_test", "y_test"):
            raise AssertionError(f"tuning run read {name}")
        return super().__getattribute__(name)


def sealed(cfg: TrainConfig, ds: Dataset = DATA) -> SealedSplits:
    s = load_splits(cfg, ds)
    nan_x = torch.full_like(s.X_test, float("nan"))
    return SealedSplits(s.X_train, s.y_train, s.X_val, s.y_val, nan_x, s.y_test, s.num_classes, s.task, s.meta)


@pytest.mark.parametrize("model", ["chainzrule", "logreg"])
def test_test_false_never_reads_the_test_split(model):
    cfg = cfg_of(model=model)
    r = train(cfg, sealed(cfg), progress=False, test=False)
    assert "test" not in r.result
    assert 0.5 < r.result["val"]["accuracy"] <= 1.0
    assert r.result["diverged"] is False


# ------------------------------------------------------------------------------- divergence
@pytest.mark.parametrize("kw", [dict(model="mlp", optimizer="sgd"), dict(model="chainzrule")])
def test_absurd_learning_rate_is_reported_as_diverged_not_raised(kw):
    epochs = 2
    r = run(lr=1e6, epochs=epochs, **kw)
    res = r.result
    assert res["diverged"] is True
    assert res["lipschitz_bound"] is None or math.isfinite(res["lipschitz_bound"])
    if kw["model"] == "mlp":  # NaN loss: the loop stops instead of burning the budget
        assert not all(math.isfinite(g) for g in r.grad_norms)
        assert res["pgv"] is None and res["tau_train"] is None  # undefined on a non-finite trace
        assert res["steps"] < epochs * math.ceil(360 / 64)
    else:  # the bounded polynomial keeps every number finite: diverged by its loss (> 10 ln C)
        assert res["history"]["train_loss"][-1] > 10 * math.log(3)


# ------------------------------------------------------------------------------- regularizers
@pytest.mark.parametrize("model", ["mlp", "chainzrule"])
def test_every_regularizer_runs_and_acts(model):
    out = {}
    for reg in ("none", "wd", "igp", "jr", "sn"):
        r = run(model=model, dreg=0.0, reg=reg, reg_strength=0.0 if reg == "none" else 1.0, epochs=3)
        assert r.result["diverged"] is False, reg
        assert r.result["test"]["accuracy"] > 0.5, reg
        out[reg] = r
    none = out["none"].result
    # each does what its name says, against the unregularized run with the same seed
    assert weight_norm2(out["wd"].model) < 0.5 * weight_norm2(out["none"].model)
    assert out["igp"].result["jacobian_fro"]["mean"] < none["jacobian_fro"]["mean"]
    assert out["jr"].result["jacobian_fro"]["mean"] < 0.75 * none["jacobian_fro"]["mean"]
    assert out["sn"].result["lipschitz_bound"] < none["lipschitz_bound"]
    if model == "mlp":  # ReLU slopes are 1 and every map has spectral norm 1 (up to power iteration)
        assert out["sn"].result["lipschitz_bound"] <= 1.0 + 1e-2


def test_kan_runs_and_learns():
    r = run(model="kan", hidden=(8,), epochs=3)
    res = r.result
    assert res["diverged"] is False and res["test"]["accuracy"] > 0.5
    assert res["params"] == sum(p.numel() for p in r.model.parameters() if p.requires_grad)
    assert res["jacobian_fro"]["mean"] > 0 and res["lipschitz_bound"] is None  # no derivative-aware layers
    with pytest.raises(ConfigError, match="DREG"):
        run(model="kan", dreg=1e-3)


# ------------------------------------------------------------------------------- classical
@pytest.fixture(scope="module")
def blobs_csv(tmp_path_factory):
    rng = np.random.default_rng(0)
    n = 200
    y = np.arange(n) % 2
    x = rng.normal(size=(n, 3)) + 3.0 * y[:, None]
    color = np.where(rng.random(n) < 0.5, "red", "blue")
    path = tmp_path_factory.mktemp("tab") / "blobs.csv"
    rows = "".join(f"{a:.4f},{b:.4f},{c:.4f},{k},{'yes' if t else 'no'}\n" for (a, b, c), k, t in zip(x, color, y))
    path.write_text("f1,f2,f3,color,label\n" + rows)
    return path


@pytest.mark.parametrize("model", ["logreg", "svm", "xgboost"])
def test_classical_baselines_fit_a_csv(blobs_csv, model):
    cfg = TrainConfig(dataset=f"csv:{blobs_csv}", target="label", model=model, lr=0.3)
    splits = load_splits(cfg)
    assert splits.in_features == 5  # 3 numeric + 2 one-hot
    r = train(cfg, splits, progress=False)
    res = r.result
    assert r.model is None and r.grad_norms == []
    assert res["test"]["accuracy"] >= 0.9 and res["val"]["accuracy"] >= 0.8
    assert res["params"] > 0 and res["diverged"] is False
    assert res["pgv"] is None and res["jacobian_fro"] == {"mean": None, "p99": None}


# ------------------------------------------------------------------------------- ordinal
def ordinal_dataset(n_train=400, n_test=100, d=6, seed=0) -> Dataset:
    rng = np.random.default_rng(seed)
    w = rng.normal(size=d)
    X = rng.normal(size=(n_train + n_test, d)).astype(np.float32)
    score = X @ w + 0.3 * rng.normal(size=len(X))
    y = np.digitize(score, np.quantile(score, [0.2, 0.4, 0.6, 0.8])).astype(np.int64)  # 5 ordered classes
    return Dataset("ordinal-toy", "ordinal", X[:n_train], y[:n_train], X[n_train:], y[n_train:], 5)


@pytest.mark.parametrize("head", ["auto", "clm", "coral", "corn"])
def test_ordinal_dataset_trains_every_head(head):
    ds = ordinal_dataset()
    cfg = cfg_of(model="chainzrule", head=head, epochs=20)
    r = train(cfg, load_splits(cfg, ds), progress=False)
    t = r.result["test"]
    assert set(t) >= {"accuracy", "mae", "off_by_one", "qwk"}
    assert t["accuracy"] > 0.4  # chance is 0.2
    assert t["off_by_one"] >= t["accuracy"] and t["off_by_one"] > 0.8  # chance: about 0.52
    assert 1.0 - t["accuracy"] - 1e-9 <= t["mae"] < 0.8  # every miss costs >= 1
    assert 0.7 < t["qwk"] <= 1.0
    assert r.result["lipschitz_bound"] is not None and r.result["diverged"] is False


def test_ordinal_head_on_a_classification_task_is_refused():
    with pytest.raises(ConfigError, match="ordinal"):
        run(head="coral")


# ------------------------------------------------------------------------------- DREG
def test_dreg_lowers_input_sensitivity():
    kw = dict(model="chainzrule", hidden=(32, 32), epochs=5)
    off = run(dreg=0.0, **kw).result
    on = run(dreg=1.0, **kw).result
    assert on["jacobian_fro"]["mean"] < 0.5 * off["jacobian_fro"]["mean"]
    assert on["jacobian_fro"]["p99"] < off["jacobian_fro"]["p99"]
    assert on["history"]["dreg"][-1] < on["history"]["dreg"][0]  # the penalty itself went down
    assert off["history"]["dreg"] == [None] * 5


def test_training_semantics_found_by_the_audit():
    """A λ anneal from 0 runs DREG (it was off: only the starting λ was looked at); bfloat16 runs
    record exact training counts (the stacked sums were rounded to bfloat16); a KAN with an
    ordinal head takes its logit temperature (it was ignored)."""
    import torch

    from chainzrule.temperature import temperature_of
    from chainzrule.train.factory import build_model

    ramp = TrainConfig(dataset="synthetic", model="mlp", hidden=(8,), epochs=2, batch_size=256, dreg=0.0,
                       dreg_schedule="linear", dreg_final=0.5)
    assert ramp.uses_dreg and not ramp.replace(dreg_final=0.0).uses_dreg
    history = train(ramp, load_splits(ramp), progress=False).result["history"]
    assert all(d is not None and d > 0 for d in history["dreg"])
    bf = TrainConfig(dataset="synthetic", model="mlp", hidden=(16,), epochs=2, batch_size=1000, dtype="bfloat16", lr=0.05)
    splits = load_splits(bf)
    for acc in train(bf, splits, progress=False).result["history"]["train_accuracy"]:
        assert acc * len(splits.y_train) == pytest.approx(round(acc * len(splits.y_train)), abs=1e-9)
    x = torch.randn(4, 6)
    outs = []
    for tau in (1.0, 5.0):
        torch.manual_seed(0)
        m = build_model(TrainConfig(model="kan", head="clm", hidden=(8,), logit_scale=tau), 6, 5, "ordinal")
        assert temperature_of(m) == tau
        outs.append(m(x))
    assert not torch.allclose(outs[0], outs[1])
