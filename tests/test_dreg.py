"""DREG penalty: sum of per-layer analytic norms, gradients, schedules."""

import math

import pytest
import torch

from chainzrule import (ChainzRuleMLP, MLP, dreg_penalty, dreg_terms, jacobian_tracking, lambda_schedule,
                        set_jacobian_tracking)


def _layer_reference(layer, x):
    with jacobian_tracking(layer, False):
        jac = torch.func.vmap(torch.func.jacrev(lambda xi: layer(xi.unsqueeze(0)).squeeze(0)))(x)
    return jac.pow(2).sum(dim=(-2, -1)).mean()


@pytest.mark.parametrize("make", [
    lambda: ChainzRuleMLP(5, [7, 9, 3], 4, degree=3),
    lambda: ChainzRuleMLP(5, [7, 9], 4, degree=5, range_control="tanh"),
    lambda: MLP(5, [7, 9], 4, activation="silu", track_jacobian=True),
    lambda: MLP(5, [7, 9], 4, activation="relu", track_jacobian=True),
])
def test_penalty_is_sum_of_per_layer_jacobian_norms(make):
    net = make().double()
    x = torch.randn(6, 5, dtype=torch.float64)
    inputs, h = [], x
    for layer in net.hidden_layers:  # the input each hidden layer sees
        inputs.append(h)
        with jacobian_tracking(layer, False):
            h = layer(h)
    net(x)
    penalty = dreg_penalty(net)
    terms = dreg_terms(net)
    refs = [_layer_reference(layer, inp) for layer, inp in zip(net.hidden_layers, inputs)]
    assert list(terms) == [f"hidden_layers.{i}" for i in range(len(refs))]
    for t, r in zip(terms.values(), refs):
        torch.testing.assert_close(t, r, rtol=1e-6, atol=0)
    torch.testing.assert_close(penalty, torch.stack(refs).sum(), rtol=1e-6, atol=0)


def test_head_is_not_penalized():
    net = ChainzRuleMLP(3, [4], 2).double()
    net(torch.randn(5, 3, dtype=torch.float64))
    before = dreg_penalty(net).item()
    with torch.no_grad():
        net.head.weight.mul_(100)
    net(torch.randn(5, 3, dtype=torch.float64))
    assert len(dreg_terms(net)) == 1
    assert dreg_penalty(net).item() == pytest.approx(before, rel=0.5)  # different batch, same scale


def test_penalty_gradient_reaches_weights_and_coefficients():
    net = ChainzRuleMLP(4, [6, 6], 3)
    net(torch.randn(8, 4))
    dreg_penalty(net).backward()
    for layer in net.hidden_layers:
        assert layer.linear.weight.grad is not None and layer.linear.weight.grad.abs().sum() > 0
        assert layer.activation.coefficients.grad.abs().sum() > 0
    assert net.head.weight.grad is None  # the head takes no part in the penalty


def test_penalty_gradcheck_through_inputs_weights_coefficients():
    net = ChainzRuleMLP(3, [4, 5], 2, degree=3).double()
    x = torch.randn(3, 3, dtype=torch.float64, requires_grad=True)
    params = {k: v.detach().clone().requires_grad_(True) for k, v in net.named_parameters() if "head" not in k}
    names = list(params)

    def f(x, *ps):
        torch.func.functional_call(net, dict(zip(names, ps)), (x,), strict=False)
        return dreg_penalty(net)

    assert torch.autograd.gradcheck(f, (x, *params.values()))


def test_training_with_dreg_lowers_the_penalty():
    torch.manual_seed(0)
    net = ChainzRuleMLP(10, [32, 32], 3)
    x, y = torch.randn(256, 10), torch.randint(0, 3, (256,))
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    net(x)
    start = dreg_penalty(net).item()
    for _ in range(100):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(net(x), y) + 1.0 * dreg_penalty(net)
        loss.backward()
        opt.step()
    net(x)
    assert dreg_penalty(net).item() < 0.5 * start


def test_error_when_tracking_is_off():
    net = MLP(4, [5], 2)
    net(torch.randn(2, 4))
    with pytest.raises(ValueError, match="expected Jacobian tracking on, got it off"):
        dreg_penalty(net)
    set_jacobian_tracking(net, True)
    net(torch.randn(2, 4))
    assert dreg_penalty(net) > 0


def test_error_without_hidden_layers():
    with pytest.raises(ValueError, match="no chainzrule HiddenLayer"):
        dreg_penalty(torch.nn.Linear(3, 3))


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
