"""Token-wise DREG with a padding mask: the penalty is the mean over the real tokens (by hand),
padding positions cannot change it nor its gradient, wrong masks are refused naming both shapes;
and the transformer-block example runs."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from chainzrule import ChainzRuleMLP, HiddenLayer, dreg, dreg_penalty, make_activation

REPO = Path(__file__).resolve().parents[1]

DT = torch.float64
REAL = torch.tensor([[True, True, True, False, False], [True, False, False, False, False],
                     [True, True, True, True, True]])  # [B=3, T=5]


def _layer():
    return HiddenLayer(4, 6, make_activation("poly", 6)).double()


def test_masked_penalty_is_the_mean_over_real_tokens():
    jsq = torch.rand(3, 5, 2, dtype=DT)  # [B, T, layers]
    by_hand = sum(torch.stack([jsq[b, t, l] for b in range(3) for t in range(5) if REAL[b, t]]).mean()
                  for l in range(2))
    torch.testing.assert_close(dreg_penalty(jsq, mask=REAL), by_hand)
    torch.testing.assert_close(dreg_penalty(jsq, mask=REAL.long()), by_hand)  # 0/1 attention masks too
    assert not torch.isclose(dreg_penalty(jsq), by_hand)  # the unmasked mean runs over B·T
    torch.testing.assert_close(dreg.masked_mean(jsq[..., 0], REAL), jsq[..., 0][REAL].mean())
    torch.testing.assert_close(dreg.masked_mean(jsq[..., 0]), jsq[..., 0].mean())


def test_collector_penalty_with_mask_matches_the_explicit_return():
    net = ChainzRuleMLP(4, [6, 6], 3).double()
    x = torch.randn(3, 5, 4, dtype=DT)
    _, jsq = net(x, return_jacobian=True)  # [3, 5, 2]
    with dreg.collect(net) as terms:
        net(x)
    torch.testing.assert_close(terms.penalty(mask=REAL), dreg_penalty(jsq, mask=REAL))
    torch.testing.assert_close(dreg_penalty(terms, mask=REAL), dreg_penalty(jsq, mask=REAL))
    per_layer = terms.per_layer(mask=REAL)
    torch.testing.assert_close(per_layer["hidden_layers.1"], jsq[..., 1][REAL].mean())
    with dreg.collect(net) as twice:  # two forwards: one mean over both
        net(x)
        net(2 * x)
    _, jsq2 = net(2 * x, return_jacobian=True)
    torch.testing.assert_close(twice.per_layer(mask=REAL)["hidden_layers.0"],
                               torch.cat([jsq[..., 0][REAL], jsq2[..., 0][REAL]]).mean())


def test_padding_tokens_cannot_change_the_penalty_or_its_gradient():
    layer = _layer()
    x = torch.randn(3, 5, 4, dtype=DT)
    junk = x.clone()
    junk[~REAL] = 1e3 * torch.randn(int((~REAL).sum()), 4, dtype=DT)  # far outside [-R, R]

    def penalty_and_grads(inp):
        inp = inp.clone().requires_grad_(True)
        layer.zero_grad()
        _, jsq = layer(inp, return_jacobian=True)  # [3, 5]
        p = dreg.masked_mean(jsq, REAL)
        p.backward()
        return p.detach(), inp.grad[REAL], layer.linear.weight.grad.clone(), layer.activation.coefficients.grad.clone()

    for a, b in zip(penalty_and_grads(x), penalty_and_grads(junk)):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    _, jsq = layer(junk, return_jacobian=True)
    assert jsq.shape == (3, 5) and torch.isfinite(dreg.masked_mean(jsq, REAL))


def test_all_padding_gives_zero_not_nan():
    assert dreg.masked_mean(torch.ones(2, 3), torch.zeros(2, 3, dtype=torch.bool)).item() == 0.0


@pytest.mark.parametrize("call", ["dreg_penalty", "masked_mean", "terms"])
def test_wrong_mask_shape_names_both_shapes(call):
    net = ChainzRuleMLP(4, [6], 3).double()
    x = torch.randn(3, 5, 4, dtype=DT)
    bad = REAL[:, :4]
    with pytest.raises(ValueError, match=r"expected a mask of shape \(3, 5\).*got \(3, 4\)"):
        if call == "dreg_penalty":
            dreg_penalty(net(x, return_jacobian=True)[1], mask=bad)
        elif call == "masked_mean":
            dreg.masked_mean(torch.ones(3, 5), bad)
        else:
            with dreg.collect(net) as terms:
                net(x)
            terms.penalty(mask=bad)


def test_float_mask_is_refused():
    with pytest.raises(ValueError, match="expected a bool or integer mask tensor.*got Tensor of dtype torch.float32"):
        dreg.masked_mean(torch.ones(3, 5), REAL.float())


def _example():
    spec = importlib.util.spec_from_file_location("transformer_block", REPO / "examples" / "transformer_block.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_transformer_block_example_trains_with_masked_dreg(capsys):
    result = _example().main(d_model=8, heads=2, vocab=8, max_len=6, batch=16, steps=25, log_every=10)
    assert all(torch.isfinite(torch.tensor(v)) for v in result.values())
    assert result["last_loss"] < result["first_loss"]
    assert result["penalty_real_tokens"] > 0
    assert "DREG (real tokens)" in capsys.readouterr().out
