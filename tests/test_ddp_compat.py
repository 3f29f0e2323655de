"""DREG under DistributedDataParallel (world size 1, gloo on CPU): the collector and the explicit
return both see the wrapped model's layers, and give the same gradients."""

import torch
import torch.distributed as dist

import chainzrule as cz


def test_ddp_collector_and_explicit_return_agree(tmp_path):
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        torch.manual_seed(0)
        model = cz.ChainzRuleMLP(6, [8, 8], 3).double()
        ddp = torch.nn.parallel.DistributedDataParallel(model)
        x = torch.randn(5, 6, dtype=torch.float64)
        with cz.collect(ddp) as terms:
            logits = ddp(x)
        (logits.sum() + terms.penalty()).backward()
        collected = [p.grad.clone() for p in model.parameters()]
        model.zero_grad()
        logits2, jsq = ddp(x, return_jacobian=True)  # [5, 3], [5, 2]
        (logits2.sum() + cz.dreg_penalty(jsq)).backward()
        assert jsq.shape == (5, 2)
        torch.testing.assert_close(logits2, logits)
        for a, p in zip(collected, model.parameters()):
            torch.testing.assert_close(p.grad, a)
        assert float(terms.penalty().detach()) > 0
    finally:
        dist.destroy_process_group()
