"""Graph capture with and without DREG: torch.export, torch.compile, torch.jit.trace, dynamo ONNX.

Inside a capture the layers run the plain ops (no data-dependent branch, no host sync), so a graph
captured on inputs inside the working interval [-R, R] stays exact far outside it (the v0.1
engine froze an ``.item()`` test into traces and was wrong by up to 4.4 there).

The ONNX tests need ``onnx``, ``onnxscript`` and ``onnxruntime`` (the ``onnx`` extra); they are
imported unconditionally: a skipped export test would hide a broken export.
"""

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from chainzrule import ChainzRuleMLP, MLP, collect, dreg_penalty

R = 3.0


def _model(kind, dtype=torch.float64):
    torch.manual_seed(0)
    net = ChainzRuleMLP(4, [6, 5], 3, bound=R) if kind == "cr" else MLP(4, [6, 5], 3, activation="gelu")
    net = net.to(dtype)
    if kind == "cr":
        with torch.no_grad():  # every coefficient matters
            for layer in net.hidden_layers:
                layer.activation.coefficients.add_(0.3 * torch.randn_like(layer.activation.coefficients))
    return net.eval()


def _inside(net, n=8, dtype=torch.float64):
    """Inputs whose pre-activations are inside [-R, R] at every layer (asserted)."""
    x = 0.1 * torch.randn(n, 4, dtype=dtype)
    h = x
    with torch.no_grad():
        for layer in net.hidden_layers:
            assert layer.linear(h).abs().max() < R
            h = layer(h)
    return x


def _outside(net, n=8, dtype=torch.float64):
    """Inputs with many pre-activations far outside [-R, R] (asserted)."""
    x = 30 * torch.randn(n, 4, dtype=dtype)
    with torch.no_grad():
        z = net.hidden_layers[0].linear(x).abs()
        assert (z > R).float().mean() > 0.5 and z.max() > 5 * R
    return x


def _close(got, want, tol):
    for g, w in zip(got if isinstance(got, tuple) else (got,), want if isinstance(want, tuple) else (want,)):
        g = torch.as_tensor(g)
        torch.testing.assert_close(g.to(w.dtype), w.detach(), rtol=tol, atol=tol)


# --------------------------------------------------------------------------------------------
# torch.export
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["cr", "mlp"])
@pytest.mark.parametrize("return_jacobian", [False, True])
def test_torch_export_equals_eager_inside_and_outside(kind, return_jacobian):
    net = _model(kind)
    x = _inside(net)
    kwargs = {"return_jacobian": True} if return_jacobian else {}
    dynamic = {"x": {0: torch.export.Dim("batch")}, **({"return_jacobian": None} if return_jacobian else {})}
    ep = torch.export.export(net, (x,), kwargs=kwargs, dynamic_shapes=dynamic)
    code = ep.graph_module.code
    assert "_local_scalar_dense" not in code and "item" not in code  # no host sync in the graph
    exported = ep.module()
    for xx in (x, _outside(net, n=13)):  # another batch size too
        got, want = exported(xx, **kwargs), net(xx, **kwargs)
        assert isinstance(got, tuple) == return_jacobian
        _close(got, want, 1e-6)


# --------------------------------------------------------------------------------------------
# torch.compile (eager / aot_eager backends: fast on CPU; inductor takes ~1 min here to compile)
# --------------------------------------------------------------------------------------------


def _loss_and_grads(model, net, x, y, lam=0.1):
    logits, jsq = model(x, return_jacobian=True)
    loss = F.cross_entropy(logits, y) + lam * dreg_penalty(jsq)
    params = list(net.parameters())
    return loss, logits, jsq, torch.autograd.grad(loss, params)


@pytest.mark.parametrize("backend", ["eager", "aot_eager"])
@pytest.mark.parametrize("kind", ["cr", "mlp"])
def test_torch_compile_forward_and_backward_with_dreg(backend, kind):
    torch._dynamo.reset()
    net = _model(kind).train()
    x = torch.cat([_inside(net, 4), _outside(net, 4)])
    y = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    compiled = torch.compile(net, backend=backend, fullgraph=True)
    loss_c, logits_c, jsq_c, grads_c = _loss_and_grads(compiled, net, x, y)
    loss_e, logits_e, jsq_e, grads_e = _loss_and_grads(net, net, x, y)
    torch.testing.assert_close(loss_c, loss_e, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(jsq_c, jsq_e, rtol=1e-12, atol=1e-12)
    for (name, _), gc, ge in zip(net.named_parameters(), grads_c, grads_e):
        torch.testing.assert_close(gc, ge, rtol=1e-10, atol=1e-12, msg=lambda m: f"{name}: {m}")
    torch.testing.assert_close(compiled(x), logits_e, rtol=1e-12, atol=1e-12)  # plain forward too


def test_collector_around_a_compiled_model_refuses_instead_of_returning_nothing():
    """Compiled graphs carry no collector: use return_jacobian=True. The block's penalty raises
    rather than silently giving a penalty without the compiled forward's terms."""
    torch._dynamo.reset()
    net = _model("cr").train()
    compiled = torch.compile(net, backend="eager", fullgraph=True)
    x = _outside(net)
    with collect(net) as terms:
        compiled(x)
    with pytest.raises(ValueError, match="no layer Jacobian was recorded"):
        terms.penalty()


# --------------------------------------------------------------------------------------------
# torch.jit.trace: exact outside the interval it was traced on
# --------------------------------------------------------------------------------------------


class _WithJacobian(torch.nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(x, return_jacobian=True)


@pytest.mark.parametrize("return_jacobian", [False, True])
@pytest.mark.parametrize("kind", ["cr", "mlp"])
def test_jit_trace_on_inside_inputs_is_exact_outside(kind, return_jacobian):
    net = _model(kind)
    module = _WithJacobian(net) if return_jacobian else net
    x = _inside(net)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # jit.trace is deprecated; shape checks are traced as constants
        traced = torch.jit.trace(module, (x,), check_trace=False)
    for xx in (x, _outside(net), 1e3 * torch.randn(8, 4, dtype=torch.float64)):
        _close(traced(xx), module(xx), 1e-12)


# --------------------------------------------------------------------------------------------
# dynamo ONNX export, run by onnxruntime
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind, return_jacobian", [("cr", False), ("cr", True), ("mlp", True)])
def test_dynamo_onnx_export_matches_eager_in_onnxruntime(kind, return_jacobian):
    import onnxruntime

    net = _model(kind, dtype=torch.float32)
    x = _inside(net, dtype=torch.float32)
    kwargs = {"return_jacobian": True} if return_jacobian else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(net, (x,), kwargs=kwargs, dynamo=True, verbose=False)
    session = onnxruntime.InferenceSession(program.model_proto.SerializeToString(),
                                           providers=["CPUExecutionProvider"])
    inputs = session.get_inputs()
    assert len(inputs) == 1 and len(session.get_outputs()) == (2 if return_jacobian else 1)
    for xx in (x, _outside(net, dtype=torch.float32)):
        got = session.run(None, {inputs[0].name: xx.numpy()})
        with torch.no_grad():
            want = net(xx, **kwargs)
        want = want if isinstance(want, tuple) else (want,)
        for g, w in zip(got, want):
            scale = max(1.0, float(w.abs().max()))  # float32: 1e-5 relative to the output's size
            np.testing.assert_allclose(g, w.numpy(), rtol=1e-5, atol=1e-5 * scale)
