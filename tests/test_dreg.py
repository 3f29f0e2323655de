"""DREG penalty: Σ_l mean_x ||S^(l)(x)||_F² against per-layer torch.func references, its
gradients (gradcheck + gradgradcheck through the fused path), dreg_penalty's inputs, schedules.

How the terms are handed over (collector, explicit return, no hidden state) is tested in
test_dreg_explicit.py.
"""

import math
import re

import numpy as np
import pytest
import torch

import chainzrule
from chainzrule import ChainzRuleMLP, HiddenLayer, MLP, DregTerms, PolynomialActivation, collect, dreg_penalty, lambda_schedule
from chainzrule.dreg import SCHEDULES

DT = torch.float64

MODELS = {
    "cr-legendre-d3": lambda: ChainzRuleMLP(5, [7, 9, 3], 4, degree=3),
    "cr-chebyshev-d5-tanh": lambda: ChainzRuleMLP(5, [7, 9], 4, degree=5, range_control="tanh", basis="chebyshev"),
    "cr-power-d4-none": lambda: ChainzRuleMLP(5, [7, 9], 4, degree=4, range_control="none", basis="power"),
    "cr-monomial-d2": lambda: ChainzRuleMLP(5, [6], 4, degree=2, basis="monomial"),
    "mlp-silu": lambda: MLP(5, [7, 9], 4, activation="silu"),
    "mlp-relu": lambda: MLP(5, [7, 9], 4, activation="relu"),
}


def _perturbed(make):
    net = make().double()
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name.endswith("coefficients"):
                p.add_(0.2 * torch.randn_like(p))
    return net


def _layer_inputs(net, x):
    """The input each hidden layer sees (plain forwards, no DREG)."""
    inputs, h = [], x
    for layer in net.hidden_layers:
        inputs.append(h)
        h = layer(h)
    return inputs


def _per_example_reference(layer, x):
    """||∂ layer(x)/∂x||_F² per example by torch.func on the layer's own forward, [B]."""
    jac = torch.func.vmap(torch.func.jacrev(lambda xi: layer(xi)))(x)  # [B, out, in]
    return jac.pow(2).sum(dim=(-2, -1))


@pytest.mark.parametrize("make", list(MODELS.values()), ids=list(MODELS))
def test_penalty_is_sum_of_per_layer_torch_func_references(make):
    net = _perturbed(make)
    x = 2 * torch.randn(6, 5, dtype=DT)
    refs = [_per_example_reference(layer, inp) for layer, inp in zip(net.hidden_layers, _layer_inputs(net, x))]
    with collect(net) as terms:
        logits = net(x)
    names = [f"hidden_layers.{i}" for i in range(len(refs))]
    assert list(terms.per_layer()) == names and list(terms.per_example()) == names
    for name, ref in zip(names, refs):
        torch.testing.assert_close(terms.per_example()[name], ref, rtol=1e-6, atol=1e-12)
        torch.testing.assert_close(terms.per_layer()[name], ref.mean(), rtol=1e-6, atol=0)
    expected = torch.stack([r.mean() for r in refs]).sum()
    torch.testing.assert_close(terms.penalty(), expected, rtol=1e-6, atol=0)
    torch.testing.assert_close(dreg_penalty(terms), expected, rtol=1e-6, atol=0)
    # the explicit return: [B, L] per-example terms, same numbers
    logits2, jsq = net(x, return_jacobian=True)
    assert jsq.shape == (6, len(refs))
    torch.testing.assert_close(jsq, torch.stack(refs, dim=-1), rtol=1e-6, atol=1e-12)
    torch.testing.assert_close(dreg_penalty(jsq), expected, rtol=1e-6, atol=0)
    torch.testing.assert_close(logits2, logits, rtol=1e-12, atol=1e-12)


def test_head_is_not_penalized():
    net = ChainzRuleMLP(3, [4], 2).double()
    x = torch.randn(5, 3, dtype=DT)
    before = dreg_penalty(net(x, return_jacobian=True)[1])
    with torch.no_grad():
        net.head.weight.mul_(100)
    logits, jsq = net(x, return_jacobian=True)
    assert jsq.shape == (5, 1)
    assert torch.equal(dreg_penalty(jsq), before)


@pytest.mark.parametrize("how", ["explicit", "collector"])
def test_penalty_gradient_reaches_weights_and_coefficients_not_the_head(how):
    net = ChainzRuleMLP(4, [6, 6], 3)
    x = 2 * torch.randn(8, 4)
    if how == "explicit":
        penalty = dreg_penalty(net(x, return_jacobian=True)[1])
    else:
        with collect(net) as terms:
            net(x)
        penalty = terms.penalty()
    penalty.backward()
    for layer in net.hidden_layers:
        assert layer.linear.weight.grad.abs().sum() > 0
        assert layer.activation.coefficients.grad.abs().sum() > 0
    assert net.head.weight.grad is None  # the head takes no part in the penalty


@pytest.mark.parametrize("make", [
    lambda: ChainzRuleMLP(3, [4, 5], 2, degree=3),
    lambda: ChainzRuleMLP(3, [4], 2, degree=5, basis="chebyshev"),
    lambda: MLP(3, [4, 5], 2, activation="relu"),
    lambda: MLP(3, [4], 2, activation="gelu"),
], ids=["cr-d3", "cr-d5-chebyshev", "relu", "gelu"])
def test_penalty_gradcheck_and_gradgradcheck_through_inputs_weights_coefficients(make):
    torch.manual_seed(3)
    net = make().double()
    with torch.no_grad():  # some pre-activations outside [-R, R]: both branches are exercised
        net.hidden_layers[0].linear.weight.mul_(6.0)
    x = torch.randn(3, 3, dtype=DT, requires_grad=True)
    params = {k: v.detach().clone().requires_grad_(True) for k, v in net.named_parameters() if "head" not in k}
    names = list(params)

    def explicit(x, *ps):
        _, jsq = torch.func.functional_call(net, dict(zip(names, ps)), (x,), {"return_jacobian": True}, strict=False)
        return dreg_penalty(jsq)

    def collected(x, *ps):
        with collect(net) as terms:
            torch.func.functional_call(net, dict(zip(names, ps)), (x,), strict=False)
        return terms.penalty()

    if isinstance(net, ChainzRuleMLP):
        assert (net.hidden_layers[0].linear(x).abs() > 3).any(), "the clamped branch must be exercised"
    torch.testing.assert_close(explicit(x, *params.values()), collected(x, *params.values()), rtol=0, atol=0)
    assert torch.autograd.gradcheck(explicit, (x, *params.values()))
    assert torch.autograd.gradgradcheck(explicit, (x, *params.values()))
    assert torch.autograd.gradcheck(collected, (x, *params.values()))


def test_training_with_dreg_lowers_the_penalty():
    torch.manual_seed(0)
    net = ChainzRuleMLP(10, [32, 32], 3)
    x, y = torch.randn(128, 10), torch.randint(0, 3, (128,))
    opt = torch.optim.Adam(chainzrule.parameter_groups(net, 1e-2))
    with torch.no_grad():
        start = float(dreg_penalty(net(x, return_jacobian=True)[1]))
    for _ in range(60):
        opt.zero_grad()
        logits, jsq = net(x, return_jacobian=True)
        loss = torch.nn.functional.cross_entropy(logits, y) + 1.0 * dreg_penalty(jsq)
        loss.backward()
        opt.step()
    with torch.no_grad():
        assert float(dreg_penalty(net(x, return_jacobian=True)[1])) < 0.5 * start


def test_dreg_penalty_of_tensors():
    assert torch.equal(dreg_penalty(torch.tensor([[1.0, 2.0], [3.0, 4.0]])), torch.tensor(5.0))
    jsq = torch.rand(2, 3, 4)  # extra batch dimensions: mean over all of them per layer
    torch.testing.assert_close(dreg_penalty(jsq), jsq.reshape(6, 4).mean(0).sum())
    torch.testing.assert_close(dreg_penalty(torch.tensor([[1.0, 2.0, 3.0]])), torch.tensor(6.0))  # one example


def test_dreg_penalty_refuses_one_layers_terms():
    """A HiddenLayer's terms have no layer axis: [N] is refused (read as [layers] it would sum the
    batch, scaling λ by N), and a mask shaped like [B, T] terms says why; the documented ways give
    the mean."""
    layer = HiddenLayer(4, 8, PolynomialActivation(8))
    _, jsq = layer(torch.randn(16, 4), return_jacobian=True)  # [16]
    with pytest.raises(ValueError, match=r"expected per-example terms \[batch\.\.\., layers\].*got shape \(16,\): "
                                         r"one layer's terms \[N\] have no layer axis"):
        dreg_penalty(jsq)
    torch.testing.assert_close(dreg_penalty(jsq.unsqueeze(-1)), jsq.mean())
    _, jsq = layer(torch.randn(2, 5, 4), return_jacobian=True)  # tokens: [2, 5]
    mask = torch.ones(2, 5, dtype=torch.bool)
    with pytest.raises(ValueError, match=r"expected a mask of shape \(2,\) .* got \(2, 5\), the terms' own shape"):
        dreg_penalty(jsq, mask)
    torch.testing.assert_close(dreg_penalty(jsq.unsqueeze(-1), mask), jsq.mean())
    with pytest.raises(ValueError, match=r"expected per-example terms \[\.\.\., layers\], got Tensor\(\)"):
        dreg_penalty(torch.tensor(1.0))
    with pytest.raises(ValueError, match="expected per-example terms .* got list"):
        dreg_penalty([1.0, 2.0])


def test_dreg_penalty_of_a_model_explains_the_new_api():
    net = ChainzRuleMLP(4, [5], 2)
    net(torch.randn(2, 4))
    with pytest.raises(ValueError, match=r"dreg_penalty takes the terms a forward returned, got a model.*"
                                         r"return_jacobian=True.*dreg\.collect\(model\).*changed in 0\.2"):
        dreg_penalty(net)
    with pytest.raises(ValueError, match="got a model"):
        dreg_penalty(torch.nn.Linear(3, 3))


def test_collector_errors_name_expected_and_given():
    with pytest.raises(ValueError, match="model Linear has no chainzrule hidden layer"):
        with collect(torch.nn.Linear(3, 3)):
            pass
    net = MLP(4, [5], 2)
    with collect(net) as terms:
        pass
    assert isinstance(terms, DregTerms) and terms.per_example() == {}
    with pytest.raises(ValueError, match="no layer Jacobian was recorded: expected a forward .* got none"):
        terms.penalty()


def test_old_api_is_gone():
    for name in ("set_jacobian_tracking", "jacobian_tracking", "dreg_terms"):
        assert not hasattr(chainzrule, name) and not hasattr(chainzrule.dreg, name)
    from chainzrule import HiddenLayer

    with pytest.raises(TypeError):
        HiddenLayer(3, 4, chainzrule.make_activation("relu"), track_jacobian=True)
    with pytest.raises(TypeError):
        MLP(3, [4], 2, track_jacobian=True)


def test_schedules():
    total = 100
    const = lambda_schedule("constant", 0.3, total)
    assert [const(t) for t in (0, 50, 100)] == [0.3, 0.3, 0.3]
    warm = lambda_schedule("warmup", 1.0, total, warmup_steps=10)
    assert warm(0) == 0 and warm(5) == pytest.approx(0.5) and warm(10) == 1.0 and warm(99) == 1.0
    lin = lambda_schedule("linear", 1.0, total, final=0.0)
    assert lin(0) == 1.0 and lin(50) == pytest.approx(0.5) and lin(100) == 0.0 and lin(500) == 0.0
    cos = lambda_schedule("cosine", 1.0, total, final=0.2)
    assert cos(0) == pytest.approx(1.0) and cos(50) == pytest.approx(0.6) and cos(100) == pytest.approx(0.2)
    wl = lambda_schedule("linear", 1.0, 110, warmup_steps=10, final=0.0)
    assert wl(5) == pytest.approx(0.5) and wl(10) == pytest.approx(1.0) and wl(60) == pytest.approx(0.5)
    assert all(not math.isnan(cos(t)) for t in range(0, 200))


@pytest.mark.parametrize("kwargs, fragment", [
    (dict(kind="exp", lam=1.0), "unknown λ schedule 'exp'"),
    (dict(kind="constant", lam=-1.0), "must be a finite number >= 0, got -1.0"),
    (dict(kind="linear", lam=1.0, total_steps=0), "total_steps >= 1"),
])
def test_schedule_errors(kwargs, fragment):
    with pytest.raises(ValueError, match=fragment):
        lambda_schedule(**kwargs)


@pytest.mark.parametrize("kind", ["linear", "cosine"])
@pytest.mark.parametrize("warmup", [10, 20])
def test_an_anneal_refuses_a_warmup_as_long_as_training(kind, warmup):
    """warmup_steps=20 of total_steps=10 held λ at 1 past step 20, then dropped it to final in one step."""
    with pytest.raises(ValueError, match=rf"λ schedule {kind} anneals over total_steps - warmup_steps steps: expected "
                                         rf"warmup_steps < total_steps, got warmup_steps={warmup}, total_steps=10$"):
        lambda_schedule(kind, 1.0, total_steps=10, warmup_steps=warmup)
    s = lambda_schedule(kind, 1.0, total_steps=10, warmup_steps=9)  # one annealing step is fine
    assert s(9) == 1.0 and s(10) == 0.0


def test_schedules_without_an_anneal_keep_their_warmup_and_final():
    """constant and warmup never read total_steps, and ignore final (the training loop passes its
    configured value whatever the kind)."""
    warm = lambda_schedule("warmup", 1.0, warmup_steps=20)  # total_steps defaults to 1
    assert warm(10) == pytest.approx(0.5) and warm(20) == 1.0
    assert lambda_schedule("constant", 0.3, final=1e-4)(5) == 0.3
    assert lambda_schedule("warmup", 1.0, 10, warmup_steps=4, final=1e-4)(9) == 1.0


@pytest.mark.parametrize("step", [-1, -5, 2.5, 3.0, True, "3", None])
def test_a_schedule_refuses_a_step_that_is_not_a_non_negative_integer(step):
    """A negative step gave a negative λ (warmup: -0.5 at step -5)."""
    for kind in SCHEDULES:
        with pytest.raises(ValueError, match=rf"expected a training step \(an integer >= 0\), got {re.escape(repr(step))}$"):
            lambda_schedule(kind, 1.0, 10, warmup_steps=2)(step)
    assert lambda_schedule("warmup", 1.0, warmup_steps=10)(np.int64(5)) == pytest.approx(0.5)
