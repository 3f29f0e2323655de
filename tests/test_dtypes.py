"""Device and dtype: training and evaluation run in float64 and bfloat16 on the CPU (the config's
``dtype``), and the fused kernels agree with float32 within each dtype's precision."""

import math

import pytest
import torch

import chainzrule as cz
from chainzrule.config import TrainConfig
from chainzrule.train import train


@pytest.mark.parametrize("dtype", ["float64", "bfloat16"])
@pytest.mark.parametrize("model", ["chainzrule", "mlp"])
def test_training_runs_in_the_configured_dtype(dtype, model):
    cfg = TrainConfig(dataset="synthetic", model=model, hidden=(16,), epochs=2, batch_size=64, dtype=dtype,
                      dreg=1e-3)
    run = train(cfg, progress=False)
    assert all(p.dtype == getattr(torch, dtype) for p in run.model.parameters())
    assert run.result["test"]["accuracy"] > 0.6  # 3 classes: chance is 1/3
    assert not run.result["diverged"] and math.isfinite(run.result["jacobian_fro"]["mean"])


@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-5), (torch.bfloat16, 5e-2)])
def test_dreg_forward_backward_match_float32(dtype, tol):
    torch.manual_seed(0)
    ref = cz.ChainzRuleMLP(6, [8, 8], 3)
    other = cz.ChainzRuleMLP(6, [8, 8], 3).to(dtype)
    other.load_state_dict({k: v.to(dtype) for k, v in ref.state_dict().items()})
    x = 4 * torch.randn(32, 6)  # inside and outside [-R, R]
    grads = []
    for net, xx in ((ref, x), (other, x.to(dtype))):
        logits, jsq = net(xx, return_jacobian=True)
        (logits.float().square().mean() + cz.dreg_penalty(jsq).float()).backward()
        grads.append([p.grad.float() for p in net.parameters()])
    for g32, g in zip(*grads):
        scale = max(1.0, float(g32.abs().max()))
        assert float((g - g32).abs().max()) <= tol * scale
