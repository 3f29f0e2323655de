"""Tests for chainzrule.diagnostics: Jacobian norms, tail ratios, PGV, Lipschitz bound, reports."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.autograd.functional import jacobian

from chainzrule.diagnostics import (
    global_grad_norm,
    jacobian_norms,
    layer_report,
    lipschitz_bound,
    peak_gradient_volatility,
    sensitivity_summary,
    tau_input,
    tau_train,
)
from chainzrule.activations import ReLU
from chainzrule.layers import HiddenLayer
from chainzrule.models import MLP, ChainzRuleMLP
from chainzrule.regularizers import SpectralNorm


def _x(n=12, d=5, seed=0, scale=1.0):
    return scale * torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _net(kind, seed=0, out=3, **kw):
    torch.manual_seed(seed)
    if kind == "cr":
        return ChainzRuleMLP(5, [8, 6], out, **kw).double()
    return MLP(5, [8, 6], out, activation=kind).double()


def _per_example_jacobians(model, x):
    """Independent reference: torch.autograd.functional.jacobian, one example at a time."""
    model.eval()
    return torch.stack([jacobian(lambda v: model(v.unsqueeze(0)).squeeze(0), xi) for xi in x])  # [N, C, D]


# --- jacobian_norms ------------------------------------------------------------------------


def test_exact_norms_linear_model_is_frobenius_of_w():
    torch.manual_seed(0)
    lin = nn.Linear(5, 4).double()
    norms = jacobian_norms(lin, _x())
    assert norms.shape == (12,)
    torch.testing.assert_close(norms, lin.weight.detach().norm().expand(12))


@pytest.mark.parametrize("kind", ["cr", "relu", "tanh"])
def test_exact_norms_match_per_example_jacobian(kind):
    net = _net(kind)
    x = _x(n=9, scale=2.0)  # reach beyond the polynomial's working interval
    ref = _per_example_jacobians(net, x).pow(2).sum(dim=(1, 2)).sqrt()
    for bs in (256, 4):  # chunking does not change the result
        torch.testing.assert_close(jacobian_norms(net, x, batch_size=bs), ref)


def test_exact_norms_multidim_input_and_output():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(6, 4), nn.Tanh(), nn.Linear(4, 6), nn.Unflatten(1, (2, 3)))
    net = net.double()
    x = torch.randn(5, 2, 3, dtype=torch.float64)
    ref = torch.stack([jacobian(lambda v: net(v.unsqueeze(0)).squeeze(0), xi).pow(2).sum().sqrt() for xi in x])
    torch.testing.assert_close(jacobian_norms(net, x), ref)


def test_projection_estimator_unbiased():
    net = _net("cr", out=10)
    x = _x(n=6)
    exact_sq = jacobian_norms(net, x).pow(2)
    draws = torch.stack([jacobian_norms(net, x, method="projection", n_proj=10, seed=s).pow(2) for s in range(100)])
    mean_sq = draws.mean(dim=0)  # 1000 projections per example
    rel = (mean_sq - exact_sq).abs() / exact_sq
    assert float(rel.max()) < 0.08  # per example
    assert abs(float(mean_sq.mean() / exact_sq.mean()) - 1.0) < 0.03  # pooled
    # seeded: same seed, same estimate; another seed, another one
    a = jacobian_norms(net, x, method="projection", seed=1)
    assert torch.equal(a, jacobian_norms(net, x, method="projection", seed=1))
    assert not torch.equal(a, jacobian_norms(net, x, method="projection", seed=2))


def test_auto_method_switch():
    small, wide = _net("gelu", out=32), _net("gelu", out=33)
    x = _x(n=4)
    assert torch.equal(jacobian_norms(small, x, method="auto"), jacobian_norms(small, x, method="exact"))
    assert torch.equal(
        jacobian_norms(wide, x, method="auto", seed=3), jacobian_norms(wide, x, method="projection", seed=3)
    )


def test_jacobian_norms_bad_arguments():
    net, x = _net("relu"), _x()
    with pytest.raises(ValueError, match="method"):
        jacobian_norms(net, x, method="spectral")
    with pytest.raises(ValueError, match="n_proj"):
        jacobian_norms(net, x, method="projection", n_proj=0)
    assert jacobian_norms(net, x[:0]).shape == (0,)


def test_jacobian_norms_leaves_parameter_grads_alone():
    net, x = _net("gelu"), _x()
    jacobian_norms(net, x)
    jacobian_norms(net, x, method="projection")
    assert all(p.grad is None for p in net.parameters())


# --- state restoration ---------------------------------------------------------------------


@pytest.mark.parametrize("train", [True, False])
def test_caller_state_restored(train):
    from chainzrule.dreg import collect, dreg_penalty

    net = _net("cr")
    net.train(train)
    net.hidden_layers[1].activation.train(not train)  # a mixed state survives too
    modes = {name: m.training for name, m in net.named_modules()}
    x = _x()
    with collect(net) as terms:  # a training step's collector stays the caller's own
        net(x)
        for fn in (
            lambda: jacobian_norms(net, x),
            lambda: jacobian_norms(net, x, method="projection"),
            lambda: lipschitz_bound(net),
            lambda: layer_report(net, x),
            lambda: sensitivity_summary(net, x),
        ):
            fn()
            assert {name: m.training for name, m in net.named_modules()} == modes
    assert len(terms.records) == 2  # the diagnostics' forwards were not recorded
    torch.testing.assert_close(terms.penalty(), dreg_penalty(net(x, return_jacobian=True)[1]))
    assert all(not isinstance(v, torch.Tensor) for m in net.modules() for v in vars(m).values())


def test_eval_semantics_with_dropout():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 8), nn.Dropout(0.5), nn.Tanh(), nn.Linear(8, 3)).double().train()
    x = _x()
    a, b = jacobian_norms(net, x), jacobian_norms(net, x)
    assert torch.equal(a, b)  # dropout off while measuring
    assert net.training and net[1].training


# --- tail ratios, PGV, gradient norm -------------------------------------------------------


def test_tau_hand_computed():
    # p99 of [1, 2, 3, 4] with linear interpolation: rank 0.99·3 = 2.97 → 3 + 0.97 = 3.97
    assert math.isclose(tau_input([1.0, 2.0, 3.0, 4.0]), 3.97 / 2.5)
    assert math.isclose(tau_train(torch.tensor([1.0, 2.0, 3.0, 4.0])), 3.97 / 2.5)
    v = np.arange(1, 201, dtype=float)  # p99 rank 0.99·199 = 197.01 → 198.01
    assert math.isclose(tau_input(v), 198.01 / 100.5)
    assert tau_input([5.0]) == 1.0
    assert math.isnan(tau_input([0.0, 0.0]))
    with pytest.raises(ValueError):
        tau_input([])
    with pytest.raises(ValueError):
        tau_train([1.0, float("nan")])


def test_pgv_hand_computed():
    assert math.isclose(peak_gradient_volatility([1.0, 3.0, 2.0, 6.0]), 4.0 / 3.0)
    assert math.isclose(peak_gradient_volatility([4.0, 1.0]), 3.0 / 2.5)  # absolute jump
    assert peak_gradient_volatility(torch.ones(10)) == 0.0
    with pytest.raises(ValueError, match="at least 2"):
        peak_gradient_volatility([1.0])


def test_global_grad_norm():
    net = _net("gelu")
    assert global_grad_norm(net) == 0.0
    net(_x()).sum().backward()
    net.hidden_layers[0].linear.bias.grad = None  # missing grads are skipped
    grads = [p.grad for p in net.parameters() if p.grad is not None]
    hand = math.sqrt(sum(float((g ** 2).sum()) for g in grads))
    assert math.isclose(global_grad_norm(net), hand, rel_tol=1e-12)


# --- Lipschitz bound -----------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["relu", "gelu", "cr"])
def test_lipschitz_bound_is_upper_bound(kind):
    net = _net(kind, seed=2)
    x = _x(n=200, scale=3.0)
    jac = _per_example_jacobians(net, x[:40])
    observed = torch.linalg.matrix_norm(jac, ord=2).max()
    bound = lipschitz_bound(net)
    assert math.isfinite(bound) and bound >= float(observed)
    # consistency with the exact Frobenius norms: ||J||_2 ≥ ||J||_F / sqrt(C)
    assert bound >= float(jacobian_norms(net, x).max()) / math.sqrt(3)


def test_lipschitz_bound_hand_product():
    net = _net("gelu")
    hand = torch.linalg.matrix_norm(net.head.weight.detach(), ord=2)
    for layer in net.hidden_layers:
        hand = hand * torch.linalg.matrix_norm(layer.linear.weight.detach(), ord=2) * layer.activation.max_slope()
    assert math.isclose(lipschitz_bound(net), float(hand), rel_tol=1e-12)


def test_lipschitz_bound_is_attained_by_aligned_rank_one_relu_net():
    # W_1 = u 1ᵀ, W_head = uᵀ with u > 0, x > 0: every unit active, J = ||u||² 1ᵀ, so
    # ||J||_F = ||J||_2 = ||u||² √3 = ||W_head||_2 · ||W_1||_2 — the bound is attained
    torch.manual_seed(0)
    net = MLP(3, [4], 1, activation="relu").double()
    u = torch.rand(4, 1, dtype=torch.float64) + 0.1
    with torch.no_grad():
        net.hidden_layers[0].linear.weight.copy_(u @ torch.ones(1, 3, dtype=torch.float64))
        net.hidden_layers[0].linear.bias.zero_()
        net.head.weight.copy_(u.T)
    x = torch.rand(5, 3, dtype=torch.float64) + 0.1
    torch.testing.assert_close(jacobian_norms(net, x), torch.full((5,), lipschitz_bound(net), dtype=torch.float64))


def test_lipschitz_bound_raw_polynomial_is_inf_and_sn_reads_normalized_weights():
    assert lipschitz_bound(_net("cr", range_control="none")) == math.inf
    net = SpectralNorm().prepare(_net("relu"))
    net.train()
    with torch.no_grad():
        for _ in range(50):
            net(_x())
    u_before = net.head.parametrizations.weight[0]._u.clone()
    assert abs(lipschitz_bound(net) - 1.0) < 1e-3  # ReLU slopes 1, every ||W||_2 = 1
    norms = jacobian_norms(net, _x())  # torch.func through the parametrization, in eval mode
    assert float(norms.max()) <= math.sqrt(3) * (1.0 + 1e-3)
    jacobian_norms(net, _x(), method="projection")
    layer_report(net, _x())
    assert torch.equal(net.head.parametrizations.weight[0]._u, u_before)  # no power iteration
    assert net.training


def test_lipschitz_bound_counts_the_spectral_norm_gain():
    net = SpectralNorm(gain=2.5).prepare(_net("relu"))
    net.train()
    with torch.no_grad():
        for _ in range(50):
            net(_x())
    net.eval()
    depth = len(net.hidden_layers)
    assert lipschitz_bound(net) == pytest.approx(2.5 ** depth, rel=1e-3)  # ReLU slopes 1, head ||W||_2 = 1


@pytest.mark.parametrize("kind", ["mlp", "kan"])
def test_lipschitz_bound_counts_the_logit_temperature_and_bounds_the_jacobian(kind):
    """τ multiplies the logits (the head's input, or a headless model's output), so it multiplies
    the bound; the bound stays above the measured Jacobian norm; the model deep-copies and pickles."""
    import copy
    import pickle

    from chainzrule.config import TrainConfig
    from chainzrule.train.factory import build_model

    cfg = TrainConfig(model=kind, activation="silu", hidden=(8, 6), kan_grid=3)
    plain = build_model(cfg, 5, 3, "classification").double()
    hot = build_model(cfg.replace(logit_scale=7.0), 5, 3, "classification").double()
    hot.load_state_dict(plain.state_dict())
    x = _x()
    if kind == "kan":  # no head: the output is scaled
        assert torch.allclose(hot(x), 7.0 * plain(x))
    else:
        assert lipschitz_bound(hot) == pytest.approx(7.0 * lipschitz_bound(plain), rel=1e-12)
        j = jacobian_norms(hot, x, method="exact")  # ||J||_F ≤ √C · ||J||_2 ≤ √3 · bound
        assert float(j.max()) <= math.sqrt(3) * lipschitz_bound(hot)
    for clone in (copy.deepcopy(hot), pickle.loads(pickle.dumps(hot))):
        assert torch.equal(clone(x), hot(x))


def test_lipschitz_bound_needs_a_head():
    with pytest.raises(ValueError, match="head"):
        lipschitz_bound(nn.Sequential(nn.Linear(2, 2)))


# --- layer report and summary --------------------------------------------------------------


@pytest.mark.parametrize("kind", ["cr", "silu"])
def test_layer_report(kind):
    net = _net(kind)
    x = _x(n=50, scale=2.0)
    rows = layer_report(net, x)
    assert [r["name"] for r in rows] == ["hidden_layers.0", "hidden_layers.1"]
    h = x
    with torch.no_grad():
        for row, layer in zip(rows, net.hidden_layers):
            fro = layer.jacobian(h).pow(2).sum(dim=(-2, -1)).sqrt()  # [N]
            assert math.isclose(row["jacobian_fro.mean"], float(fro.mean()), rel_tol=1e-10)
            assert math.isclose(row["jacobian_fro.p99"], float(np.percentile(fro.numpy(), 99)), rel_tol=1e-10)
            slope = layer.activation.derivative(layer.linear(h)).abs().max()
            assert math.isclose(row["observed_max_slope"], float(slope), rel_tol=1e-12)
            assert row["observed_max_slope"] <= row["max_slope"] + 1e-9
            assert math.isclose(
                row["spectral_norm"], float(torch.linalg.matrix_norm(layer.linear.weight, ord=2)), rel_tol=1e-12
            )
            assert all(isinstance(v, float) for k, v in row.items() if k != "name")
            h = layer(h)
    assert not any(hasattr(layer, "_forward_pre_hooks") and layer._forward_pre_hooks for layer in net.hidden_layers)


def test_sensitivity_summary():
    net = _net("cr")
    x = _x(n=100)
    s = sensitivity_summary(net, x)
    assert set(s) == {"jacobian_fro.mean", "jacobian_fro.p99", "tau_input", "lipschitz_bound"}
    assert all(isinstance(v, float) for v in s.values())
    norms = jacobian_norms(net, x)
    assert math.isclose(s["jacobian_fro.mean"], float(norms.mean()), rel_tol=1e-12)
    assert math.isclose(s["tau_input"], tau_input(norms), rel_tol=1e-12)
    assert math.isclose(s["tau_input"], s["jacobian_fro.p99"] / s["jacobian_fro.mean"], rel_tol=1e-12)
    assert s["lipschitz_bound"] == lipschitz_bound(net)


def test_works_under_no_grad_and_float32():
    torch.manual_seed(0)
    net = ChainzRuleMLP(5, [8], 3)  # float32
    x = torch.randn(20, 5)
    with torch.no_grad():
        exact = jacobian_norms(net, x)
        proj = jacobian_norms(net, x, method="projection", n_proj=4)
        s = sensitivity_summary(net, x)
    assert exact.dtype == proj.dtype == torch.float32
    assert torch.isfinite(exact).all() and torch.isfinite(proj).all()
    ref = jacobian_norms(net.double(), x.double())
    torch.testing.assert_close(exact.double(), ref, rtol=1e-5, atol=1e-6)
    assert math.isfinite(s["tau_input"])


@pytest.mark.parametrize("kind", ["clm", "coral", "corn"])
def test_lipschitz_bound_with_ordinal_heads(kind):
    from chainzrule.ordinal import make_ordinal_head

    torch.manual_seed(0)
    net = MLP(5, [8], 5, activation="relu", head=make_ordinal_head(kind, 8, 5)).double()
    x = _x(n=30, scale=2.0)
    observed = float(torch.linalg.matrix_norm(_per_example_jacobians(net, x), ord=2).max())
    bound = lipschitz_bound(net)
    assert bound >= observed
    if kind != "corn":  # the head's own Jacobian is ±1 wᵀ: its factor is exact
        w = net.head.weight.detach()
        h = torch.zeros(1, 8, dtype=torch.float64, requires_grad=True)
        head_jac = jacobian(lambda v: net.head(v), h).reshape(4, 8)
        hand = torch.linalg.matrix_norm(head_jac, ord=2) * torch.linalg.matrix_norm(
            net.hidden_layers[0].linear.weight.detach(), ord=2
        )
        assert math.isclose(bound, float(hand), rel_tol=1e-10)
        assert w.shape == (1, 8)


@pytest.mark.parametrize("extra", ["layernorm", "linear_before", "kan"])
def test_lipschitz_bound_refuses_parameters_it_does_not_count(extra):
    """A module with parameters outside the hidden layers and the head would be left out of the
    product: the "bound" could then be below the true Lipschitz constant. Refused, named."""
    from chainzrule.errors import ConfigError
    from chainzrule.kan import KAN

    torch.manual_seed(0)
    if extra == "kan":
        model, name = KAN(4, [8], 3), "KAN"
    else:
        model = MLP(4, [8, 8], 3)
        lipschitz_bound(model)  # the plain network is bounded
        if extra == "layernorm":
            model.norm, name = nn.LayerNorm(4), "norm (LayerNorm)"
        else:
            model.scale, name = nn.Linear(4, 4), "scale (Linear)"
    if extra == "kan":  # its own forward: refused as no chain first, then for its splines when called one
        with pytest.raises(ConfigError, match="bounds a plain chain only .* got KAN with its own forward"):
            lipschitz_bound(model)
    with pytest.raises(ConfigError, match=r"lipschitz_bound counts the hidden layers and model.head only.*"
                                          + name.replace("(", r"\(").replace(")", r"\)")):
        lipschitz_bound(model, assume_chain=extra == "kan")


class _Custom(nn.Module):
    """hidden_layers + head like an MLP, with a forward of its own (``how``)."""

    def __init__(self, how: str):
        super().__init__()
        self.how = how
        self.hidden_layers = nn.ModuleList([HiddenLayer(6, 6, ReLU())])
        self.head = nn.Linear(6, 6)

    def forward(self, x):
        layer = self.hidden_layers[0]
        if self.how == "residual":
            return self.head(x + layer(x))
        if self.how == "twice":
            return self.head(layer(layer(x)))
        if self.how == "scaled":
            return self.head(layer(100.0 * x))
        return self.head(layer(x))  # "chain"


@pytest.mark.parametrize("how, gain", [("residual", 0.01), ("twice", 3.0), ("scaled", 1.0)])
def test_lipschitz_bound_refuses_a_forward_it_cannot_bound(how, gain):
    """The product of the layers' bounds is no bound for a residual connection, a layer called
    twice or a scaling between layers: a model with its own forward is refused. With W = gain·I, an
    identity head and positive inputs (ReLU open), J = (1 + gain)·I, 9·I and 100·I, against the
    product's 0.01, 3 and 1 — what it would have claimed with assume_chain=True."""
    from chainzrule.errors import ConfigError

    model = _Custom(how)
    with torch.no_grad():
        model.hidden_layers[0].linear.weight.copy_(gain * torch.eye(6))
        model.hidden_layers[0].linear.bias.zero_()
        model.head.weight.copy_(torch.eye(6))
        model.head.bias.zero_()
    with pytest.raises(ConfigError, match="got _Custom with its own forward; pass assume_chain=True"):
        lipschitz_bound(model)
    x = torch.rand(8, 6) + 0.1  # positive: every ReLU open
    spectral = float(jacobian_norms(model, x, method="exact").max()) / math.sqrt(6)  # J = c·I: ||J||_F = c·√6
    assert lipschitz_bound(model, assume_chain=True) < 0.5 * spectral


def test_lipschitz_bound_of_a_custom_chain_and_a_subclass():
    """assume_chain=True bounds a custom model that is a chain; a subclass of MLP keeping its
    forward needs no opt-in and gets the MLP's bound."""
    torch.manual_seed(0)
    model, x = _Custom("chain"), torch.randn(64, 6)
    j = jacobian_norms(model, x, method="exact")  # Frobenius ≤ √rank · spectral
    assert float(j.max()) <= math.sqrt(6) * lipschitz_bound(model, assume_chain=True)

    class Wider(MLP):
        pass

    net, plain = Wider(4, [8], 3), MLP(4, [8], 3)
    plain.load_state_dict(net.state_dict())
    assert lipschitz_bound(net) == lipschitz_bound(plain)


def test_lipschitz_bound_takes_parameter_free_modules_as_they_are():
    """Dropout and ReLU modules added between layers carry no parameters: no refusal."""
    model = ChainzRuleMLP(4, [8], 3)
    before = lipschitz_bound(model)
    model.drop = nn.Dropout(0.1)
    assert lipschitz_bound(model) == before


def test_jacobian_norms_under_inference_mode_and_a_one_dimensional_input():
    """The projection estimate works under the caller's torch.inference_mode() (it raised "element
    0 of tensors does not require grad"), with the same numbers; a 1-D input to a model with
    in_features is refused naming its own shape, not one vmapped example's (1,)."""
    from chainzrule.errors import ConfigError

    torch.manual_seed(0)
    net, x = ChainzRuleMLP(4, [8], 40), torch.randn(6, 4)  # 40 outputs: "auto" picks projection
    want = jacobian_norms(net, x, method="projection")
    with torch.inference_mode():
        xi = x.clone()
        for method in ("projection", "auto"):
            assert torch.equal(jacobian_norms(net, xi, method=method), want)
    with pytest.raises(ConfigError, match=r"expected 4 input features in the last dimension, got shape \(4,\)"):
        jacobian_norms(net, torch.randn(4))
