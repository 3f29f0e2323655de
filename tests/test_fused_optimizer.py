"""``fused_optimizer = true``: torch's fused Adam/AdamW/SGD kernel runs the same update as the
default optimizer (to rounding), stays out of the run key when off, and trains alone."""

from __future__ import annotations

import pytest
import torch

from chainzrule.batched import batchable
from chainzrule.config import TrainConfig
from chainzrule.data.splits import make_splits
from chainzrule.errors import ConfigError
from chainzrule.optim import make_optimizer, make_schedule
from chainzrule.train import synthetic_dataset, train


def _initial(dtype: torch.dtype, g: torch.Generator | None = None) -> list[torch.nn.Parameter]:
    g = g if g is not None else torch.Generator().manual_seed(0)
    return [torch.nn.Parameter(torch.randn(*s, generator=g, dtype=dtype)) for s in ((33, 17), (33,), (1,))]


def _steps(name: str, fused: bool, dtype: torch.dtype, steps: int = 40) -> list[torch.Tensor]:
    """Parameters after ``steps`` one-cycle steps on seeded gradients of several scales."""
    g = torch.Generator().manual_seed(0)
    params = _initial(dtype, g)
    groups = [{"params": params[:2], "lr": 3e-2, "weight_decay": 1e-2 if name == "adamw" else 0.0},
              {"params": params[2:], "lr": 3e-3}]
    opt = make_optimizer(name, groups, fused=fused)
    sched = make_schedule("onecycle", opt, steps)
    for t in range(steps):
        for p in params:
            p.grad = torch.randn(p.shape, generator=g, dtype=dtype) * 10.0 ** (t % 5 - 2)
        opt.step()
        sched.step()
    return params


@pytest.mark.parametrize("name", ["adam", "adamw", "sgd"])
@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
def test_the_fused_kernel_runs_the_same_update(name, dtype, tol):
    assert make_optimizer(name, [{"params": [torch.nn.Parameter(torch.zeros(2))], "lr": 0.1}], fused=True).defaults["fused"]
    ref, fused = _steps(name, False, dtype), _steps(name, True, dtype)
    moved = max((p - q).abs().max().item() for p, q in zip(ref, _initial(dtype)))
    assert moved > 1e-2  # the parameters did move
    for a, b in zip(ref, fused):
        torch.testing.assert_close(b, a, rtol=tol, atol=tol)


def test_a_fused_run_trains_the_unfused_run_in_float64():
    splits = make_splits(synthetic_dataset(n=400), val_fraction=0.1, seed=0)
    cfg = TrainConfig(dataset="synthetic", model="chainzrule", hidden=(12, 12), epochs=2, batch_size=50, lr=1e-2,
                      dreg=1e-2, dtype="float64", seed=1, diag_examples=50)
    ref, fused = train(cfg, splits, progress=False), train(cfg.replace(fused_optimizer=True), splits, progress=False)
    for (k, a), b in zip(ref.model.state_dict().items(), fused.model.state_dict().values()):
        torch.testing.assert_close(b, a, rtol=1e-10, atol=1e-12, msg=k)
    assert fused.result["history"]["val_accuracy"] == ref.result["history"]["val_accuracy"]
    assert fused.result["test"]["accuracy"] == ref.result["test"]["accuracy"]


def test_fused_optimizer_enters_the_run_key_only_when_on():
    assert "fused_optimizer" not in TrainConfig().key_dict()
    assert TrainConfig(fused_optimizer=True).key_dict()["fused_optimizer"] is True
    assert TrainConfig.from_dict({"fused_optimizer": "true"}).fused_optimizer is True


def test_fused_optimizer_is_refused_for_a_classical_model_and_not_batched():
    with pytest.raises(ConfigError, match="expected a neural model"):
        TrainConfig(model="logreg", fused_optimizer=True)
    assert batchable(TrainConfig(model="mlp", hidden=(8,))) is None
    assert "fused" in batchable(TrainConfig(model="mlp", hidden=(8,), fused_optimizer=True))
