"""Falsification probes of the certified numbers (certificates audit, 2026-12-03).

Each test checks a certificate against an independent measurement, never against the code path
that computes it: ``max_slope()`` against autograd through the activation's own forward on a dense
grid far outside the working interval; ``lipschitz_bound`` (ℓ2, input → logits) against the
spectral norm of the input Jacobian found by ``torch.func.jacrev`` + gradient ascent, and against
finite-difference ratios; a conv layer's factor against the dense conv matrix; the Jacobian and
gradient-trace diagnostics against their definitions (guide §3) recomputed here.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

import chainzrule as cz
from chainzrule.activations import ReLU, make_activation
from chainzrule.cnn import CNN
from chainzrule.conv import ConvHiddenLayer
from chainzrule.diagnostics import jacobian_norms, lipschitz_bound, peak_gradient_volatility, tau_input, tau_train
from chainzrule.models import ChainzRuleMLP, MLP
from chainzrule.ordinal import make_ordinal_head
from chainzrule.poly import PolynomialActivation
from chainzrule.temperature import apply_temperature


def _dense_conv_norm(layer: ConvHiddenLayer, shape) -> float:
    """σ_max of the convolution (bias aside) on inputs of spatial ``shape``, from its dense matrix."""
    w = layer.conv.weight.detach().double()
    n = layer.in_channels * math.prod(shape)
    J = torch.func.jacrev(lambda u: layer._conv_nobias(u.view(1, layer.in_channels, *shape), w).reshape(-1))(
        torch.zeros(n, dtype=torch.float64))
    return float(torch.linalg.matrix_norm(J, ord=2))


def _spectral_jacobian(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``||J_f(x)||_2`` per example ``[N]`` (exact: torch.func.jacrev, then the spectral norm)."""
    f = lambda v: model(v.unsqueeze(0)).reshape(-1)
    J = torch.func.vmap(torch.func.jacrev(f))(x)  # [N, out, in]
    return torch.linalg.matrix_norm(J.reshape(x.shape[0], J.shape[1], -1), ord=2)


def _ascend(model: nn.Module, starts: torch.Tensor, steps: int = 25, lr: float = 0.1) -> float:
    """Largest ``||J_f(x)||_2`` seen on ``starts`` and along gradient ascent from each of them."""
    best = float(_spectral_jacobian(model, starts).detach().max())
    x = starts.clone().requires_grad_(True)
    opt = torch.optim.Adam([x], lr=lr)
    for _ in range(steps):
        val = _spectral_jacobian(model, x)
        best = max(best, float(val.detach().max()))
        opt.zero_grad()
        (-val.sum()).backward()
        opt.step()
    return best


# --------------------------------------------------------------------------------------------
# the conv factor of lipschitz_bound: an upper bound, not an estimate from below
# --------------------------------------------------------------------------------------------


class _ConvChain(nn.Module):
    """conv (ReLU) → flatten → linear head: a plain chain that ``lipschitz_bound`` bounds with
    ``assume_chain=True``."""

    def __init__(self, shape=(3, 12, 12), channels=8, seed=3) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.shape = shape
        self.conv = ConvHiddenLayer(shape[0], channels, 3, ReLU(), padding=1)
        self.head = nn.Linear(channels * shape[1] * shape[2], 1)

    def forward(self, x):
        return self.head(self.conv(x.view(-1, *self.shape)).flatten(1))

    def input_shapes(self):
        return [self.shape[1:]]


def test_lipschitz_bound_of_a_conv_chain_is_attained_not_exceeded():
    """A conv + ReLU layer with every unit active (bias 100) and a head along the conv's top
    left singular vector: the network's local ℓ2 Lipschitz constant at 0 *is* the conv's σ_max, so
    the bound must reach it. The 500-step power iteration the bound used to read stopped 8e-5
    (relative) below σ_max on this kernel: the "certified" bound was below the network's slope."""
    net = _ConvChain().double()
    c, h, w = net.shape
    with torch.no_grad():
        net.conv.conv.bias.fill_(100.0)
        W = torch.func.jacrev(lambda u: net.conv._conv_nobias(u.view(1, c, h, w), net.conv.conv.weight).reshape(-1))(
            torch.zeros(c * h * w, dtype=torch.float64))  # [C_out·H·W, C·H·W]
        u_top = torch.linalg.svd(W)[0][:, 0]
        net.head.weight.copy_(u_top.unsqueeze(0))  # ||W_head||_2 = 1
    net.eval()
    local = float(_spectral_jacobian(net, torch.zeros(1, c * h * w, dtype=torch.float64))[0].detach())
    sigma = float(torch.linalg.matrix_norm(W, ord=2))
    assert local == pytest.approx(sigma, rel=1e-12)  # the construction attains σ_max
    bound = lipschitz_bound(net, assume_chain=True)
    assert bound >= local * (1 - 1e-12)
    assert bound == pytest.approx(sigma, rel=1e-9)  # exact on a layer this small (dense path)


@pytest.mark.parametrize("kw", [dict(padding=1), dict(stride=2), dict(padding=1, padding_mode="circular"),
                                dict(groups=2), dict(padding=2, dilation=2), dict(padding=1, padding_mode="reflect"),
                                dict(padding=1, padding_mode="replicate"), dict(padding="same"), dict(),
                                dict(padding=1, padding_mode="circular", stride=2),
                                dict(padding=2, dilation=2, padding_mode="circular")])
@pytest.mark.parametrize("spatial", [1, 2])
def test_conv_operator_norm_bound_is_an_upper_bound(kw, spatial):
    """The dense path is σ_max itself; the circulant path (layers above ``dense_limit``) is never
    below it and stays within a small factor."""
    torch.manual_seed(7)
    shape = (9,) if spatial == 1 else (7, 8)
    layer = ConvHiddenLayer(4, 6, 3, ReLU(), spatial_dims=spatial, **kw).double()
    exact = _dense_conv_norm(layer, shape)
    assert layer.operator_norm_bound(shape) == pytest.approx(exact, rel=1e-10)
    fft = layer.operator_norm_bound(shape, dense_limit=0)
    assert exact * (1 - 1e-12) <= fft <= 2.5 * exact


def test_conv_operator_norm_bound_on_mnist_shapes():
    """The first conv of the committed CNN fights (1→16 at 28×28; the second, 16→32 at 14×14 with
    3136 inputs, takes the same dense path, a few seconds): the bound is the dense σ_max, at or
    above the power-iteration estimate the bound used to read, below the circulant bound."""
    torch.manual_seed(0)
    layer = CNN((1, 28, 28), [16], [8], 10).conv_layers[0]
    bound = layer.operator_norm_bound((28, 28))
    assert bound == pytest.approx(_dense_conv_norm(layer, (28, 28)), rel=1e-10)
    assert bound >= layer.operator_norm((28, 28), iters=100) * (1 - 1e-12)
    assert bound <= layer.operator_norm_bound((28, 28), dense_limit=0) <= bound * 1.01  # within 1% at 28×28



def test_lipschitz_bound_of_a_cnn_under_inference_mode():
    """Under a caller's ``torch.inference_mode()`` the power iteration's vjp returned zeros, so a
    CNN's bound was 0.0; the bound reads the same there as outside."""
    net = CNN((1, 8, 8), [2], [4], 3)
    plain = lipschitz_bound(net)
    with torch.inference_mode():
        assert lipschitz_bound(net) == pytest.approx(plain, rel=1e-12)
    assert plain > 0

# --------------------------------------------------------------------------------------------
# max_slope(): autograd through the module's own forward, far outside [-R, R]
# --------------------------------------------------------------------------------------------


def _sampled_slope(act: nn.Module, R: float, dtype) -> torch.Tensor:
    """max |σ'(u)| per feature over a dense grid of [-50R, 50R], a finer one of [-1.2R, 1.2R], and
    exactly ±R and their float neighbours — by autograd of ``act``'s forward (the fused kernel's
    backward) and by its ``derivative``."""
    r = torch.tensor(R, dtype=dtype)
    edges = torch.stack([r, -r, torch.nextafter(r, 2 * r), torch.nextafter(r, 0 * r),
                         -torch.nextafter(r, 2 * r), -torch.nextafter(r, 0 * r)])
    u = torch.cat([torch.linspace(-50 * R, 50 * R, 4001, dtype=dtype), torch.linspace(-1.2 * R, 1.2 * R, 4001, dtype=dtype),
                   edges])
    z = u.unsqueeze(1).expand(-1, act.num_features).contiguous().requires_grad_(True)
    (g,) = torch.autograd.grad(act(z).sum(), z)
    return torch.maximum(g.abs(), act.derivative(z.detach()).abs()).amax(0)  # [F]


@pytest.mark.parametrize("basis", ["legendre", "chebyshev", "monomial", "power"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_polynomial_max_slope_is_never_exceeded_and_tight(basis, dtype):
    """Perturbed coefficients (per feature: none to 3× the init's scale), degrees 1-6, each range
    control, R from 0.5 to 10. No sampled |σ'| in the module's dtype exceeds the certificate; for
    "linear" it is attained (the maximum of |p'| over [-R, R] is σ' at some sampled point)."""
    gen = torch.Generator().manual_seed(11)
    for degree in (1, 2, 3, 4, 6):
        for rc in ("linear", "tanh", "none"):
            for R in (0.5, 3.0, 10.0):
                act = PolynomialActivation(5, degree=degree, bound=R, range_control=rc, basis=basis, dtype=dtype)
                with torch.no_grad():
                    scale = torch.tensor([0.0, 0.05, 0.3, 1.0, 3.0], dtype=dtype)
                    act.coefficients.add_(torch.randn(act.coefficients.shape, generator=gen, dtype=dtype) * scale)
                cert = act.max_slope()
                if rc == "none" and degree > 1:
                    assert torch.isinf(cert).all()
                    continue
                seen = _sampled_slope(act, R, dtype)
                assert bool((seen <= cert).all()), (degree, rc, R, (seen - cert).max())
                if rc == "linear":
                    assert bool((seen >= cert * (1 - 2e-3)).all())  # a grid step of 2.4R/4000 from the max


def test_polynomial_max_slope_with_ill_conditioned_critical_points():
    """p'' with two nearly equal roots (np.roots returns them complex), a root at the interval's
    edge, a vanishing leading coefficient: the certificate still covers the maximum of |p'| on
    [-R, R] found by a dense grid refined around its argmax (float64, exact math)."""
    rng = np.random.default_rng(5)
    for trial in range(300):
        R = float(rng.choice([0.5, 3.0, 7.0]))
        kind = trial % 3
        if kind == 0:
            r = rng.uniform(-R, R)
            pp = np.polynomial.polynomial.polyfromroots([r, r + 10 ** rng.uniform(-9, -2)]) * 10 ** rng.uniform(-2, 2)
        elif kind == 1:
            pp = np.concatenate([np.polynomial.polynomial.polyfromroots(rng.uniform(-R, R, 2)), [10 ** rng.uniform(-14, -6)]])
        else:
            edge = R * (1 - 10 ** rng.uniform(-12, -3)) * rng.choice([-1, 1])
            pp = np.polynomial.polynomial.polyfromroots([edge, *rng.uniform(-3 * R, 3 * R, 2)])
        dp = np.polynomial.polynomial.polyint(pp, k=rng.standard_normal())  # p', low → high
        a = np.concatenate([[0.0], dp / np.arange(1, len(dp) + 1)])  # p
        cert = float(cz.functional.poly_max_slope(torch.tensor(a).unsqueeze(1), R)[0])
        u = np.linspace(-R, R, 20001)
        i = int(np.abs(np.polynomial.polynomial.polyval(u, dp)).argmax())
        fine = np.linspace(u[max(i - 1, 0)], u[min(i + 1, len(u) - 1)], 2001)
        assert np.abs(np.polynomial.polynomial.polyval(fine, dp)).max() <= cert


def test_standard_activation_max_slopes():
    """Exact math (float64 samples, 1e-6 apart around the maximizer) never above ``max_slope()``;
    in float32 the computed σ' stays within one float32 ulp of it (SiLU's reaches 1.09983945
    against the certificate 1.09983933 — the documented rounding, not a looser function)."""
    for name in ("relu", "gelu", "silu", "tanh"):
        act = make_activation(name)
        cert = float(act.max_slope())
        for dtype, slack in ((torch.float64, 0.0), (torch.float32, 2.0 ** -23)):
            z = torch.cat([torch.linspace(-60, 60, 100_001, dtype=dtype), torch.linspace(1.3, 2.6, 1_300_001, dtype=dtype)])
            z.requires_grad_(True)
            (g,) = torch.autograd.grad(act(z).sum(), z)
            seen = max(float(g.abs().max()), float(act.derivative(z.detach()).abs().max()))
            assert seen <= cert * (1 + slack), (name, dtype, seen, cert)
            assert seen >= cert * (1 - 1e-6), (name, dtype)  # tight (the certificate is a float32 rounded up)


# --------------------------------------------------------------------------------------------
# lipschitz_bound (ℓ2, input → logits) against local constants found by search
# --------------------------------------------------------------------------------------------


def _perturbed(model: nn.Module, seed: int = 0, coef: float = 0.5, weight: float = 1.5) -> nn.Module:
    """``model`` with weights scaled up and polynomial coefficients perturbed, in float64, eval mode
    (far from the init, where the bound is loosest and a wrong factor would show)."""
    gen = torch.Generator().manual_seed(seed)
    model = model.double()
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=gen, dtype=p.dtype)
            p.add_(noise * coef * p.abs().mean()) if "coefficients" in name else p.mul_(weight)
    return model.eval()


def _starts(d: int, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.cat([torch.randn(8, d, generator=gen, dtype=torch.float64) * s for s in (0.3, 1.0, 4.0, 30.0, 1e3)])


def _models():
    yield "mlp-relu", MLP(5, [12, 12], 3, activation="relu")
    yield "mlp-gelu-T3", apply_temperature(MLP(5, [12, 12], 3, activation="gelu"), 3.0)
    yield "mlp-silu", MLP(5, [12, 12], 3, activation="silu")
    yield "mlp-tanh", MLP(5, [12, 12], 3, activation="tanh")
    for basis, degree, rc, R in (("legendre", 3, "linear", 3.0), ("chebyshev", 5, "linear", 1.0),
                                 ("monomial", 2, "tanh", 3.0), ("power", 4, "tanh", 2.0), ("legendre", 1, "none", 3.0)):
        yield f"cr-{basis}-{degree}-{rc}", ChainzRuleMLP(5, [12, 12], 3, degree=degree, bound=R, range_control=rc,
                                                          basis=basis)
    for kind in ("clm", "coral", "corn"):
        yield f"cr-{kind}-T2", apply_temperature(ChainzRuleMLP(5, [12, 12], 5, head=make_ordinal_head(kind, 12, 5)), 2.0)


@pytest.mark.parametrize("name,model", list(_models()), ids=lambda v: v if isinstance(v, str) else "")
def test_lipschitz_bound_is_never_exceeded(name, model):
    """The spectral norm of the input Jacobian, over inputs from 0.3 to 1000 times the unit scale
    and along gradient ascent from the worst of them, and finite-difference ratios of random
    pairs, all stay at or below ``lipschitz_bound``."""
    model = _perturbed(model)
    bound = lipschitz_bound(model)
    starts = _starts(5)
    local = _ascend(model, starts[_spectral_jacobian(model, starts).argsort(descending=True)[:6]], steps=15)
    with torch.no_grad():
        b = starts + torch.randn_like(starts) * 1e-3 * (1 + starts.norm(dim=1, keepdim=True))
        fd = float(((model(starts) - model(b)).norm(dim=1) / (starts - b).norm(dim=1)).max())
    assert max(local, fd) <= bound * (1 + 1e-9), (name, local, fd, bound)
    assert local > 0


def test_lipschitz_bound_of_a_chainzrule_cnn_is_never_exceeded():
    torch.manual_seed(1)
    net = _perturbed(CNN((1, 8, 8), [3, 4], [6], 3, activation="chainzrule", range_control="linear"))
    bound = lipschitz_bound(net)
    starts = _starts(64)[::4]
    local = _ascend(net, starts[_spectral_jacobian(net, starts).argsort(descending=True)[:3]], steps=10)
    assert local <= bound * (1 + 1e-9)


def test_lipschitz_bound_with_spectral_norm_gain_is_never_exceeded():
    from chainzrule.regularizers import SpectralNorm

    net = SpectralNorm(gain=2.0).prepare(apply_temperature(MLP(5, [12, 12], 3, activation="gelu"), 1.5))
    net.train()
    for _ in range(5):  # a few power iterations, so u, v are not the init's
        net(torch.randn(4, 5))
    net = net.double().eval()
    bound = lipschitz_bound(net)
    local = _ascend(net, _starts(5)[:12], steps=10)
    assert local <= bound * (1 + 1e-9)
    assert bound == pytest.approx(1.5 * 4.0 * float(make_activation("gelu").max_slope()) ** 2, rel=0.05)


# --------------------------------------------------------------------------------------------
# the diagnostics, recomputed from their definitions (guide §3)
# --------------------------------------------------------------------------------------------


def test_run_diagnostics_match_their_definitions(monkeypatch):
    """One short run: the gradient-norm trace is the global ℓ2 norm of the parameter gradients at
    every step (recomputed here from p.grad), ``tau_train`` = p99/mean of its last epoch, ``pgv`` =
    max |G_t − G_{t−1}| / mean G_t over the run; ``jacobian_fro`` mean/p99 and ``tau_input`` from
    per-example ||J_f(x)||_F by torch.autograd.functional.jacobian on the evaluated test subset;
    ``lipschitz_bound`` equal to the hand product of the trained layers."""
    import chainzrule.train.loop as loop
    from chainzrule.config import TrainConfig
    from chainzrule.train import load_splits, train
    from chainzrule.train.evaluate import eval_subset

    seen, original = [], loop.grad_norm

    def spy(params):
        seen.append(math.sqrt(sum(float(p.grad.double().pow(2).sum()) for p in params if p.grad is not None)))
        return original(params)

    monkeypatch.setattr(loop, "grad_norm", spy)
    cfg = TrainConfig(dataset="synthetic", model="chainzrule", hidden=(8, 8), epochs=3, batch_size=64, dreg=0.01,
                      diag_examples=40, logit_scale=2.0, dtype="float64", seed=2)
    run = train(cfg, progress=False)
    r, G = run.result, np.array(seen)
    splits = load_splits(cfg)
    np.testing.assert_allclose(run.grad_norms, G, rtol=1e-12)
    steps = math.ceil(len(splits.X_train) / cfg.batch_size)
    assert r["tau_train"] == pytest.approx(np.percentile(G[-steps:], 99) / G[-steps:].mean(), rel=1e-12)
    assert r["pgv"] == pytest.approx(np.abs(np.diff(G)).max() / G.mean(), rel=1e-12)
    model = run.model.eval()
    x = splits.X_test[eval_subset(splits.y_test, cfg.diag_examples, cfg.seed)].double()
    fro = np.array([float(torch.autograd.functional.jacobian(lambda v: model(v[None])[0], xi).pow(2).sum().sqrt())
                    for xi in x])
    assert r["jacobian_fro"]["mean"] == pytest.approx(fro.mean(), rel=1e-10)
    assert r["jacobian_fro"]["p99"] == pytest.approx(np.percentile(fro, 99), rel=1e-10)
    assert r["tau_input"] == pytest.approx(np.percentile(fro, 99) / fro.mean(), rel=1e-10)
    hand = 2.0 * float(torch.linalg.matrix_norm(model.head.weight.detach(), 2))
    for layer in model.hidden_layers:
        hand *= float(layer.activation.max_slope().max()) * float(torch.linalg.matrix_norm(layer.linear.weight.detach(), 2))
    assert r["lipschitz_bound"] == pytest.approx(hand, rel=1e-12)
    assert tau_train(G[-steps:]) == pytest.approx(r["tau_train"], rel=1e-12)
    assert peak_gradient_volatility(G) == pytest.approx(r["pgv"], rel=1e-12)
    assert tau_input(fro) == pytest.approx(r["tau_input"], rel=1e-10)
    assert float(jacobian_norms(model, x).max()) <= r["lipschitz_bound"] * math.sqrt(2)  # ||J||_F ≤ √rank ||J||_2
