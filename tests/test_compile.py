"""``compile = true``: training through torch.compile (inductor) gives the eager run's numbers.

Compiling costs ~10 s per model on CPU, so the two compiled runs below are shared by the tests
that read them (module fixture)."""

from __future__ import annotations

import shutil

import pytest
import torch

from chainzrule.batched import batchable
from chainzrule.config import TrainConfig
from chainzrule.errors import ConfigError
from chainzrule.train import check_devices, synthetic_dataset, train
from chainzrule.data.splits import make_splits

from conftest import needs_cxx

BASE = dict(dataset="synthetic", hidden=(16, 16), epochs=2, batch_size=64, lr=3e-3, seed=3, diag_examples=50)
CASES = {
    "chainzrule + DREG": dict(model="chainzrule", dreg=1e-2),
    "ReLU MLP + DREG, spectral norm": dict(model="mlp", activation="relu", dreg=1e-3, reg="sn", sn_gain=2.0),
}


@pytest.fixture(scope="module")
def runs():
    """``{case: (eager run, compiled run)}`` on the same splits."""
    splits = make_splits(synthetic_dataset(n=600), val_fraction=0.1, seed=0)
    out = {}
    for name, extra in CASES.items():
        cfg = TrainConfig(**BASE, **extra)
        out[name] = (train(cfg, splits, progress=False), train(cfg.replace(compile=True), splits, progress=False))
    return out


@needs_cxx
@pytest.mark.parametrize("case", list(CASES))
def test_a_compiled_run_trains_the_eager_run(runs, case):
    eager, comp = runs[case]
    assert len(comp.grad_norms) == len(eager.grad_norms) > 0
    torch.testing.assert_close(torch.tensor(comp.grad_norms), torch.tensor(eager.grad_norms), rtol=1e-4, atol=1e-6)
    for (k, a), (k2, b) in zip(eager.model.state_dict().items(), comp.model.state_dict().items()):
        assert k == k2  # the checkpoint is the eager module's: no "_orig_mod." prefix
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5, msg=f"{case}: {k}")
    h_e, h_c = eager.result["history"], comp.result["history"]
    assert h_c["val_accuracy"] == h_e["val_accuracy"]
    assert h_c["train_loss"] == pytest.approx(h_e["train_loss"], rel=1e-5)
    assert h_c["dreg"] == pytest.approx(h_e["dreg"], rel=1e-5) and all(v > 0 for v in h_c["dreg"])
    assert comp.result["test"]["accuracy"] == eager.result["test"]["accuracy"]


def test_compile_enters_the_run_key_only_when_on():
    assert "compile" not in TrainConfig().key_dict()
    assert TrainConfig(compile=True).key_dict()["compile"] is True
    assert TrainConfig.from_dict({"compile": "true"}).compile is True


@pytest.mark.parametrize("changes, words", [
    (dict(model="logreg"), "expected a neural model"),
    (dict(model="mlp", reg="igp", reg_strength=0.1), "reg igp or jr"),
    (dict(model="mlp", reg="jr", reg_strength=0.1), "got model='mlp', reg='jr'"),
])
def test_compile_is_refused_where_it_cannot_trace_the_step(changes, words):
    with pytest.raises(ConfigError, match=words.replace("(", r"\(")):
        TrainConfig(compile=True, **changes)


def test_a_compiled_run_is_not_batched():
    assert batchable(TrainConfig(model="mlp", hidden=(8,))) is None
    assert "compiled" in batchable(TrainConfig(model="mlp", hidden=(8,), compile=True))


@pytest.fixture
def no_compiler(monkeypatch):
    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None)


def test_no_cpp_compiler_is_refused_before_the_data(no_compiler, monkeypatch):
    import chainzrule.train.loop as loop

    monkeypatch.setattr(loop, "load_splits", lambda *a, **k: pytest.fail("data read before the check"))
    cfg = TrainConfig(dataset="synthetic", model="mlp", hidden=(8,), compile=True)
    with pytest.raises(ConfigError, match=r"needs a C\+\+ compiler .* got none"):
        train(cfg)
    with pytest.raises(ConfigError, match="C\\+\\+ compiler"):
        check_devices([cfg, cfg.replace(compile=False)])
    check_devices([cfg.replace(compile=False)])  # without compile nothing is asked of the machine
