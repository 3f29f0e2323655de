"""Regularizers audit (2026-12-03): what one training step adds to the loss, against independent
torch.func references of the documented penalties (value and gradient w.r.t. every parameter),
for every model kind; which parameters each optimizer group holds and decays; jr's unbiasedness
on a nonlinear network; spectral norm's gains and the Lipschitz bound the docs state."""

from __future__ import annotations

import math

import pytest
import torch
from torch.func import functional_call, jacrev, vmap

from chainzrule.config import TrainConfig
from chainzrule.conv import conv_hidden_layers
from chainzrule.data.splits import Splits
from chainzrule.diagnostics import lipschitz_bound
from chainzrule.layers import hidden_layers
from chainzrule.poly import coefficient_parameters
from chainzrule.regularizers import JacobianProjections, WeightDecay
from chainzrule.train.factory import build_model, head_kind, make_run_regularizer, task_loss
from chainzrule.train.loop import TrainingLoop

K = 4  # classes


def _loop(**kw):
    base = dict(dataset="synthetic", hidden=(6,), epochs=1, batch_size=16, lr=1e-2, dtype="float64", seed=1)
    cfg = TrainConfig(**{**base, **kw})
    task = "classification" if cfg.head in ("auto", "linear") else "ordinal"
    d = 16 if "cnn" in cfg.model else 5
    g = torch.Generator().manual_seed(0)
    X, y = torch.randn(48, d, generator=g, dtype=torch.float64), torch.randint(0, K, (48,), generator=g)
    sp = Splits(X, y, X[:8], y[:8], X[:8], y[:8], K, task, {})
    torch.manual_seed(cfg.seed)
    model = build_model(cfg, sp.in_features, sp.num_classes, sp.task)
    reg = make_run_regularizer(cfg)
    model = reg.prepare(model).to(dtype=torch.float64)
    return cfg, model, reg, TrainingLoop(cfg, model, reg, sp, torch.device("cpu"), False), sp


def _reference(cfg, model, params, x, y, kind, v):
    """The documented objective, written independently: task + λ_DREG Σ_l mean_x ||∂(layer l)/∂(its
    input)||_F² (exact Jacobians) + reg_strength · (Σ||W||² | mean_x ||∇_x L_x||² | C/n_proj Σ_v ||vᵀJ||²)."""
    obj = task_loss(kind, functional_call(model, params, (x,)), y)
    if cfg.uses_dreg:
        layers = [*conv_hidden_layers(model), *hidden_layers(model)]
        ins = {}
        hooks = [m.register_forward_pre_hook(lambda _, a, n=n: ins.__setitem__(n, a[0])) for n, m in layers]
        functional_call(model, params, (x,))
        for h in hooks:
            h.remove()
        for n, m in layers:
            lp = {k[len(n) + 1:]: t for k, t in params.items() if k.startswith(n + ".")}
            J = vmap(jacrev(lambda xi: functional_call(m, lp, (xi.unsqueeze(0),)).squeeze(0)))(ins[n])
            obj = obj + cfg.dreg_lambda * J.reshape(len(x), -1).pow(2).sum(1).mean()
    lam = cfg.reg_strength
    if cfg.reg == "wd":
        last = ("weight", "base_weight", "spline_weight", "original")
        obj = obj + lam * sum((p * p).sum() for n, p in params.items() if n.rsplit(".", 1)[-1] in last and p.dim() >= 2)
    if cfg.reg == "igp":  # each example's own loss, differentiated w.r.t. its own input, one at a time
        gs = []
        for i in range(len(x)):
            xi = x[i:i + 1].clone().requires_grad_()
            li = task_loss(kind, functional_call(model, params, (xi,)), y[i:i + 1])
            gs.append(torch.autograd.grad(li, xi, create_graph=True)[0])
        obj = obj + lam * torch.cat(gs).reshape(len(x), -1).pow(2).sum(1).mean()
    if cfg.reg == "jr":  # the exact Jacobian, projected on the directions the run draws
        J = vmap(jacrev(lambda xi: functional_call(model, params, (xi.unsqueeze(0),)).reshape(-1)))(x)  # [N, C, D]
        vj = torch.einsum("npc,ncd->npd", v, J)
        obj = obj + lam * J.shape[1] * vj.pow(2).sum((1, 2)).mean() / v.shape[1]
    return obj


CNN = dict(conv_channels=(2,), hidden=(5,))
CASES = [
    dict(model="mlp", reg="wd", reg_strength=0.7, dreg=0.3),
    dict(model="mlp", activation="gelu", reg="igp", reg_strength=0.5, logit_scale=2.5),
    dict(model="mlp", activation="silu", reg="jr", reg_strength=0.5, jr_projections=3),
    dict(model="chainzrule", reg="igp", reg_strength=0.7, dreg=0.3),
    dict(model="chainzrule", reg="jr", reg_strength=0.7, dreg=0.3, bound=0.5, range_control="tanh"),
    dict(model="chainzrule", reg="none", dreg=0.5, bound=0.5, range_control="linear"),
    dict(model="cnn", reg="igp", reg_strength=0.7, dreg=0.3, **CNN),
    dict(model="chainzrule-cnn", reg="jr", reg_strength=0.7, dreg=0.3, **CNN),
    dict(model="chainzrule-cnn", reg="wd", reg_strength=0.7, dreg=0.3, **CNN),
    dict(model="mlp", head="clm", reg="igp", reg_strength=0.5, dreg=0.2),
    dict(model="chainzrule", head="coral", reg="jr", reg_strength=0.5, dreg=0.2),
    dict(model="kan", reg="igp", reg_strength=0.5, hidden=(4,)),
    dict(model="kan", reg="wd", reg_strength=0.5, hidden=(4,)),
    dict(model="mlp", activation="gelu", reg="sn", hidden=(6, 5), sn_gain=3.0, logit_scale=2.0, dreg=0.3),
]


@pytest.mark.parametrize("kw", CASES, ids=lambda kw: "-".join(str(v) for v in kw.values()))
def test_one_steps_objective_is_the_documented_one_in_value_and_gradient(kw):
    cfg, model, reg, loop, sp = _loop(**kw)
    x, y = sp.X_train[:16].clone(), sp.y_train[:16]
    v = None
    if cfg.reg == "jr":  # the directions the step will draw, from a copy of the run's generator state
        state = reg._generator.get_state()
        c = model(x).reshape(16, -1).shape[1]  # the output width (an ordinal head's K−1 logits)
        v = torch.stack([reg.directions(16, c, x) for _ in range(reg.n_proj)], 1)  # [N, n_proj, C]
        reg._generator.set_state(state)
    obj = loop.objective(x, y)[0]
    names = [n for n, _ in model.named_parameters()]
    got = torch.autograd.grad(obj, list(model.parameters()), allow_unused=True)
    if cfg.reg == "sn":  # eval mode: the σ the training forward just computed (no further power step)
        model.eval()
    params = {n: p.detach().clone().requires_grad_() for n, p in model.named_parameters()}
    ref = _reference(cfg, model, {**params, **dict(model.named_buffers())}, x.clone(), y, head_kind(cfg, sp.task), v)
    want = torch.autograd.grad(ref, [params[n] for n in names], allow_unused=True)
    assert float(obj.detach()) == pytest.approx(float(ref.detach()), rel=1e-12)
    for n, a, b in zip(names, got, want):
        a = torch.zeros_like(params[n]) if a is None else a
        b = torch.zeros_like(params[n]) if b is None else b
        assert torch.allclose(a, b, rtol=1e-10, atol=1e-12), n


@pytest.mark.parametrize("kw", [dict(model="mlp"), dict(model="chainzrule", head="clm"),
                                dict(model="chainzrule-cnn", **CNN), dict(model="kan", hidden=(4,), input_norm="layernorm"),
                                dict(model="kan", head="corn", hidden=(4, 4))], ids=lambda kw: kw["model"])
@pytest.mark.parametrize("opt", ["adam", "adamw", "sgd"])
def test_every_parameter_in_one_group_coefficients_scaled_and_only_weight_matrices_decayed(kw, opt):
    cfg, model, _, loop, _ = _loop(**kw, optimizer=opt, reg="wd", reg_strength=0.3, coef_lr_scale=0.25)
    groups = loop.opt.param_groups
    ids = [id(p) for g in groups for p in g["params"]]
    assert len(ids) == len(set(ids)) and set(ids) == {id(p) for p in model.parameters() if p.requires_grad}
    decayed = {id(p) for g in groups if g.get("weight_decay") for p in g["params"]}
    matrices = {id(p) for p in WeightDecay(via_optimizer=True).decay_parameters(model)}
    names = {id(p): n for n, p in model.named_parameters()}
    assert all(p.dim() >= 2 and "weight" in names[i] for i, p in ((id(p), p) for p in model.parameters()) if i in matrices)
    assert decayed == (matrices if opt == "adamw" else set())  # coupled wd: the loss penalty instead
    coef = {id(p) for p in coefficient_parameters(model)}
    assert not decayed & coef
    for _ in range(loop.steps_per_epoch):  # one-cycle: both groups follow the same shape, ratio fixed
        w = {g["lr"] for g in groups if g["name"] == "weights"}
        c = {g["lr"] for g in groups if g["name"] == "coefficients"}
        assert len(w) == 1 and all(lr == pytest.approx(0.25 * next(iter(w)), rel=1e-12) for lr in c)
        assert bool(c) == bool(coef)
        loop.opt.step()
        loop.sched.step()


def test_jr_averaged_over_draws_is_the_exact_frobenius_norm_of_a_nonlinear_net():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.GELU(), torch.nn.Linear(8, 5)).double()
    x = torch.randn(6, 3, dtype=torch.float64, requires_grad=True)
    exact = vmap(jacrev(net))(x.detach()).pow(2).sum((1, 2)).mean()
    est = JacobianProjections(n_proj=20000, seed=1).penalty(net, x, net(x), None)
    assert float(est.detach()) == pytest.approx(float(exact), rel=0.02)


def test_spectral_norm_gain_head_and_the_documented_lipschitz_bound():
    """Hidden maps σ = g, the head's 1 (an ordinal CLM head's score: unit norm), and the bound
    τ·g^L·Π max|σ'| of docs/FIGHT_FORMAT.md — times √(K−1) for a CLM/CORAL head."""
    for kw, factor in ((dict(model="mlp", activation="gelu", hidden=(6, 5), sn_gain=3.0, logit_scale=2.0), 1.0),
                       (dict(model="mlp", activation="relu", head="clm", hidden=(6,), sn_gain=2.0), math.sqrt(K - 1))):
        cfg, model, _, loop, _ = _loop(**kw, reg="sn", epochs=3)
        loop.run()
        model.eval()
        sig = [float(torch.linalg.matrix_norm(m.linear.weight.detach(), 2)) for _, m in hidden_layers(model)]
        assert sig == pytest.approx([cfg.sn_gain] * len(sig), rel=1e-4)
        assert float(torch.linalg.matrix_norm(model.head.weight.detach(), 2)) == pytest.approx(1.0, rel=1e-4)
        slopes = math.prod(float(m.max_slope().max()) for _, m in hidden_layers(model))
        doc = cfg.logit_scale * cfg.sn_gain ** len(sig) * slopes * factor
        assert lipschitz_bound(model) == pytest.approx(doc, rel=1e-4)
