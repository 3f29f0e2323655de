"""DREG as an explicit computation: terms come back from the call that asked for them.

- the collector equals the explicit return and the per-layer torch.func references;
- two forwards in one ``collect`` block give one mean over both (adversarial training,
  consistency losses, micro-batching);
- nothing is computed when nobody asked or grad is off (unless ``always=True``);
- collectors see only their own model's layers, in their own thread, and nothing under
  ``suspended()``;
- no tensor is left on any module, so deepcopy, pickle, ``AveragedModel``, DataParallel and
  DistributedDataParallel work after a training step with DREG.
"""

import copy
import pickle
import threading

import pytest
import torch
import torch.nn.functional as F

from chainzrule import ChainzRuleMLP, HiddenLayer, MLP, collect, dreg, dreg_penalty

DT = torch.float64


def _net(kind="cr", seed=0):
    torch.manual_seed(seed)
    net = ChainzRuleMLP(4, [6, 5], 3) if kind == "cr" else MLP(4, [6, 5], 3, activation=kind)
    net = net.double()
    with torch.no_grad():
        for layer in net.hidden_layers:
            layer.linear.weight.mul_(2.0)  # pre-activations on both sides of ±R
    return net


def _x(n=8, seed=1):
    return 2 * torch.randn(n, 4, dtype=DT, generator=torch.Generator().manual_seed(seed))


@pytest.fixture
def jacobian_calls(monkeypatch):
    """Counts every per-layer Jacobian computation (HiddenLayer.forward_with_jacobian)."""
    calls = []
    original = HiddenLayer.forward_with_jacobian

    def counting(self, x):
        calls.append(self)
        return original(self, x)

    monkeypatch.setattr(HiddenLayer, "forward_with_jacobian", counting)
    return calls


def _no_tensor_attributes(model):
    """No module holds a tensor outside its parameters and buffers."""
    return all(not isinstance(v, torch.Tensor) for m in model.modules() for v in vars(m).values())


@pytest.mark.parametrize("kind", ["cr", "relu", "gelu"])
def test_collector_equals_explicit_return_and_references(kind):
    net, x = _net(kind), _x()
    with collect(net) as terms:
        logits_c = net(x)
    logits_e, jsq = net(x, return_jacobian=True)
    torch.testing.assert_close(logits_c, logits_e, rtol=0, atol=0)
    per_example = terms.per_example()
    for i, name in enumerate(per_example):
        assert torch.equal(per_example[name], jsq[:, i])
    assert torch.equal(terms.penalty(), dreg_penalty(jsq))
    # and both equal Σ_l mean of the per-layer torch.func references
    h, refs = x, []
    for layer in net.hidden_layers:
        jac = torch.func.vmap(torch.func.jacrev(lambda xi: layer(xi)))(h)
        refs.append(jac.pow(2).sum(dim=(-2, -1)).mean())
        h = layer(h)
    torch.testing.assert_close(terms.penalty(), torch.stack(refs).sum(), rtol=1e-6, atol=0)
    # same gradients through either route
    params = list(net.parameters())
    g_c = torch.autograd.grad(terms.penalty(), params, allow_unused=True)
    g_e = torch.autograd.grad(dreg_penalty(jsq), params, allow_unused=True)
    for a, b in zip(g_c, g_e):
        assert (a is None) == (b is None) and (a is None or torch.equal(a, b))


def test_two_forwards_in_one_block_give_the_mean_over_both():
    net, x1, x2 = _net(), _x(5, seed=1), _x(3, seed=2)
    with collect(net) as terms:
        net(x1)
        net(x2)  # e.g. the adversarial or augmented view
    _, jsq = net(torch.cat([x1, x2]), return_jacobian=True)  # [8, L]
    assert [t.shape for t in terms.per_example().values()] == [(8,), (8,)]
    torch.testing.assert_close(torch.stack(list(terms.per_example().values()), dim=-1), jsq, rtol=1e-12, atol=0)
    torch.testing.assert_close(terms.penalty(), dreg_penalty(jsq), rtol=1e-12, atol=0)
    _, j1 = net(x1, return_jacobian=True)
    assert not torch.allclose(terms.penalty(), dreg_penalty(j1))  # the second forward did not replace the first


def test_explicit_return_inside_a_collector_is_recorded_once_per_call():
    net, x = _net(), _x()
    with collect(net) as terms:
        _, jsq = net(x, return_jacobian=True)
    assert len(terms.records) == 2  # one per hidden layer
    assert torch.equal(terms.penalty(), dreg_penalty(jsq))


@pytest.mark.parametrize("kind", ["cr", "relu"])
def test_nothing_is_computed_when_nobody_asks(kind, jacobian_calls):
    net, x = _net(kind), _x().requires_grad_(True)
    out = net(x)
    assert isinstance(out, torch.Tensor) and jacobian_calls == []
    out.sum().backward()
    assert jacobian_calls == []
    with collect(_net(kind, seed=5)):  # a collector on another model does not count
        net(x)
    assert jacobian_calls == []
    net(x, return_jacobian=True)
    assert len(jacobian_calls) == 2


def test_no_grad_records_nothing_unless_always(jacobian_calls):
    net, x = _net(), _x()
    with torch.no_grad(), collect(net) as terms:
        net(x)
    assert terms.records == [] and jacobian_calls == []
    with torch.inference_mode(), collect(net) as terms:
        net(x)
    assert terms.records == [] and jacobian_calls == []
    with torch.no_grad(), collect(net, always=True) as terms:
        logits = net(x)
    assert len(terms.records) == 2 and len(jacobian_calls) == 2
    _, jsq = net(x, return_jacobian=True)
    torch.testing.assert_close(terms.penalty(), dreg_penalty(jsq).detach())
    assert not terms.penalty().requires_grad and not logits.requires_grad


def test_nested_collectors_on_two_models_see_only_their_own_layers():
    a, b = _net("cr", seed=0), _net("gelu", seed=1)
    xa, xb = _x(4, seed=3), _x(6, seed=4)
    with collect(a) as ta:
        a(xa)
        with collect(b) as tb:
            b(xb)
            a(xa)
        b(xb)  # after tb closed: nobody records b
    assert [t.shape for t in ta.per_example().values()] == [(8,), (8,)]  # a's two forwards
    assert [t.shape for t in tb.per_example().values()] == [(6,), (6,)]  # b's forward inside tb only
    torch.testing.assert_close(ta.penalty(), dreg_penalty(a(xa, return_jacobian=True)[1]), rtol=1e-12, atol=0)
    torch.testing.assert_close(tb.penalty(), dreg_penalty(b(xb, return_jacobian=True)[1]), rtol=1e-12, atol=0)


def test_nested_collectors_on_the_same_model_both_record():
    net, x = _net(), _x()
    with collect(net) as outer, collect(net) as inner:
        net(x)
    assert torch.equal(outer.penalty(), inner.penalty())


def test_collector_on_a_submodule_and_inside_a_user_module():
    net, x = _net(), _x()
    with collect(net.hidden_layers[1]) as terms:
        net(x)
    assert list(terms.per_layer()) == [""]  # the collected module itself
    torch.testing.assert_close(terms.penalty(), net(x, return_jacobian=True)[1][:, 1].mean())

    class Wrapper(torch.nn.Module):  # a user's model that contains a chainzrule network
        def __init__(self):
            super().__init__()
            self.body = net
            self.extra = torch.nn.Linear(3, 1).double()

        def forward(self, x):
            return self.extra(self.body(x))

    user = Wrapper()
    with collect(user) as terms:
        user(x)
    assert list(terms.per_layer()) == ["body.hidden_layers.0", "body.hidden_layers.1"]
    torch.testing.assert_close(terms.penalty(), dreg_penalty(net(x, return_jacobian=True)[1]))


def test_a_collected_layer_is_named_as_named_modules_names_it():
    """A collector opened on a layer itself names it '' (as ``named_modules`` does), the name
    ``hidden_layers`` / ``conv_hidden_layers`` give it, by which ``layer_report`` matches its terms."""
    from chainzrule.activations import ReLU
    from chainzrule.conv import ConvHiddenLayer, conv_hidden_layers
    from chainzrule.diagnostics import layer_report
    from chainzrule.layers import hidden_layers

    layer, x = _net().hidden_layers[0], _x()
    with collect(layer) as terms:
        layer(x)
    assert list(terms.per_layer()) == list(terms.per_example()) == [name for name, _ in hidden_layers(layer)] == [""]
    assert [row["name"] for row in layer_report(layer, x)] == [""]
    conv = ConvHiddenLayer(2, 3, 3, ReLU(), padding=1).double()
    with collect(conv) as terms:
        conv(torch.randn(2, 2, 5, 5, dtype=DT))
    assert list(terms.per_layer()) == [name for name, _ in conv_hidden_layers(conv)] == [""]


def test_suspended_hides_forwards_from_open_collectors(jacobian_calls):
    net, x = _net(), _x()
    with collect(net) as terms:
        net(x)
        with dreg.suspended():
            net(3 * x)  # a diagnostic mid-step
        net(x)
    assert len(terms.records) == 4 and len(jacobian_calls) == 4
    torch.testing.assert_close(terms.penalty(), dreg_penalty(net(x, return_jacobian=True)[1]))


def test_collector_is_closed_after_an_exception():
    net, x = _net(), _x()
    with pytest.raises(RuntimeError, match="boom"):
        with collect(net) as terms:
            net(x)
            raise RuntimeError("boom")
    net(x)
    assert len(terms.records) == 2
    assert dreg.wanted(net.hidden_layers[0]) is False


def test_forwards_in_other_threads_are_not_recorded():
    """A collector belongs to the thread that opened it (DataParallel replicas run in threads:
    they use the explicit return)."""
    net, x = _net(), _x()
    seen = []
    with collect(net) as terms:
        t = threading.Thread(target=lambda: seen.append(net(x)))
        t.start()
        t.join()
    assert len(seen) == 1 and terms.records == []


@pytest.mark.parametrize("how", ["explicit", "collector"])
def test_no_tensor_is_left_on_modules(how):
    net, x = _net(), _x()
    assert _no_tensor_attributes(net)
    if how == "explicit":
        logits, jsq = net(x, return_jacobian=True)
        loss = logits.sum() + dreg_penalty(jsq)
    else:
        with collect(net) as terms:
            logits = net(x)
        loss = logits.sum() + terms.penalty()
    loss.backward()
    assert _no_tensor_attributes(net)


def _train_step(net, how, x, y):
    """One forward + backward + optimizer step with DREG, the way a training loop does it."""
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    if how == "explicit":
        logits, jsq = net(x, return_jacobian=True)
        penalty = dreg_penalty(jsq)
    else:
        with collect(net) as terms:
            logits = net(x)
        penalty = terms.penalty()
    (F.cross_entropy(logits, y) + 0.1 * penalty).backward()
    opt.step()
    return logits, penalty


def _same_outputs(a, b, x):
    torch.testing.assert_close(a(x), b(x), rtol=0, atol=0)
    for u, v in zip(a(x, return_jacobian=True), b(x, return_jacobian=True)):
        torch.testing.assert_close(u, v, rtol=0, atol=0)
    with collect(a) as ta, collect(b) as tb:
        a(x)
        b(x)
    torch.testing.assert_close(ta.penalty(), tb.penalty(), rtol=0, atol=0)


@pytest.mark.parametrize("how", ["explicit", "collector"])
@pytest.mark.parametrize("kind", ["cr", "relu"])
def test_deepcopy_pickle_and_averaged_model_after_a_dreg_training_step(how, kind):
    net, x = _net(kind), _x()
    y = torch.randint(0, 3, (8,), generator=torch.Generator().manual_seed(0))
    logits, penalty = _train_step(net, how, x, y)
    assert logits.grad_fn is not None and penalty.grad_fn is not None  # graphs of the step still alive
    twin = copy.deepcopy(net)
    _same_outputs(twin, net, x)
    restored = pickle.loads(pickle.dumps(net))
    _same_outputs(restored, net, x)
    avg = torch.optim.swa_utils.AveragedModel(net)
    avg.update_parameters(net)
    _same_outputs(avg.module, net, x)
    torch.testing.assert_close(avg(x), net(x), rtol=0, atol=0)
    _train_step(net, how, x, y)
    avg.update_parameters(net)  # a second average still works and is the mean of the two states
    net2 = copy.deepcopy(twin)
    with torch.no_grad():
        for p_avg, p_old, p_new in zip(avg.module.parameters(), net2.parameters(), net.parameters()):
            torch.testing.assert_close(p_avg, (p_old + p_new) / 2)


def test_data_parallel_explicit_return_on_cpu():
    """Smoke test: on a machine without GPUs DataParallel has no device ids and just calls the
    module, so this checks the wrapper's call path (args, kwargs, tuple outputs), not replicas."""
    net, x = _net(), _x()
    dp = torch.nn.DataParallel(net)
    logits, jsq = dp(x, return_jacobian=True)
    ref_logits, ref_jsq = net(x, return_jacobian=True)
    torch.testing.assert_close(logits, ref_logits, rtol=0, atol=0)
    torch.testing.assert_close(jsq, ref_jsq, rtol=0, atol=0)
    dreg_penalty(jsq).backward()
    assert all(layer.linear.weight.grad is not None for layer in net.hidden_layers)


def test_distributed_data_parallel_single_process_gloo(tmp_path):
    """DDP (one CPU process, gloo) with the explicit return: same loss and gradients as the module."""
    import torch.distributed as dist

    net, x = _net(), _x()
    y = torch.randint(0, 3, (8,), generator=torch.Generator().manual_seed(0))
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'pg'}", rank=0, world_size=1)
    try:
        ddp = torch.nn.parallel.DistributedDataParallel(net)
        logits, jsq = ddp(x, return_jacobian=True)
        (F.cross_entropy(logits, y) + 0.1 * dreg_penalty(jsq)).backward()
        grads = [p.grad.clone() for p in net.parameters()]
    finally:
        dist.destroy_process_group()
    net.zero_grad()
    ref_logits, ref_jsq = net(x, return_jacobian=True)
    (F.cross_entropy(ref_logits, y) + 0.1 * dreg_penalty(ref_jsq)).backward()
    torch.testing.assert_close(jsq, ref_jsq, rtol=0, atol=0)
    for g, p in zip(grads, net.parameters()):
        torch.testing.assert_close(g, p.grad, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("kind", ["cr", "relu"])
def test_an_empty_batch_gives_a_zero_penalty_as_the_explicit_terms_do(kind):
    net = _net(kind)
    with collect(net) as terms:
        _, jsq = net(torch.randn(0, 4, dtype=DT), return_jacobian=True)
    assert terms.penalty().item() == 0.0 and dreg_penalty(jsq).item() == 0.0
    assert all(v.item() == 0.0 for v in terms.per_layer().values())
