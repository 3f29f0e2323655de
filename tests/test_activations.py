"""Derivative-aware standard activations: exact derivatives and slope bounds."""

import re

import pytest
import torch

from chainzrule import make_activation
from chainzrule.activations import GELU_MAX_SLOPE, SILU_MAX_SLOPE, STANDARD_ACTIVATIONS


@pytest.mark.parametrize("name", list(STANDARD_ACTIVATIONS))
def test_derivative_matches_autograd_and_forward_matches_torch(name):
    act = make_activation(name)
    z = torch.linspace(-8, 8, 1601, dtype=torch.float64).reshape(1601, 1)
    z = z[(z != 0).squeeze()]  # ReLU is not differentiable at 0
    zr = z.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(act(zr).sum(), zr)
    v, d = act.value_and_derivative(z)
    assert torch.allclose(d, g, rtol=1e-12, atol=1e-12)
    assert torch.allclose(v, act(z), rtol=1e-12, atol=1e-14)
    assert torch.allclose(act.derivative(z), d)


@pytest.mark.parametrize("name, expected", [("relu", 1.0), ("tanh", 1.0), ("gelu", GELU_MAX_SLOPE), ("silu", SILU_MAX_SLOPE)])
def test_max_slope_is_the_true_supremum(name, expected):
    act = make_activation(name)
    z = torch.linspace(-10, 10, 2_000_001, dtype=torch.float64)
    observed = act.derivative(z).abs().max().item()
    assert float(act.max_slope()) == pytest.approx(expected)
    assert observed <= expected + 1e-12
    assert observed == pytest.approx(expected, rel=1e-9)
    assert float(act.max_slope()) >= observed  # a bound: the float32 value is rounded up, never down


@pytest.mark.parametrize("name", ["gelu", "silu"])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_a_dreg_forward_gives_the_plain_forward_in_reduced_precision(name, dtype):
    """In bfloat16/float16 the DREG path takes σ from torch's kernel, as forward does (the
    hand-written z·Φ(z) rounds three times and flipped argmaxes)."""
    act = make_activation(name)
    z = torch.randn(256, 64, generator=torch.Generator().manual_seed(0)).to(dtype)
    value, slope = act.value_and_derivative(z)
    assert torch.equal(value, act(z))
    assert torch.allclose(slope.double(), act.value_and_derivative(z.double())[1], atol=2e-2)


def test_known_constants():
    assert GELU_MAX_SLOPE == pytest.approx(1.1289, abs=1e-4)
    assert SILU_MAX_SLOPE == pytest.approx(1.0998, abs=1e-4)


def test_unknown_activation_names_allowed_ones():
    with pytest.raises(ValueError, match=r"unknown activation 'swish': expected one of relu, gelu, silu, tanh, poly"):
        make_activation("swish")


NAMES = "expected one of relu, gelu, silu, tanh, poly"


@pytest.mark.parametrize("name", ["ReLU", "GELU", "Tanh", "Poly", "ChainzRule", " relu", None])
def test_a_name_is_spelt_one_way_exact_lower_case(name):
    """One spelling per activation, as in a TrainConfig and on the command line: "ReLU" used to
    build the ReLU MLP a TrainConfig (and its run key) would only know as "relu"."""
    from chainzrule.cnn import CNN
    from chainzrule.config import TrainConfig
    from chainzrule.errors import ConfigError
    from chainzrule.finetune import FinetuneConfig
    from chainzrule.models import MLP

    shown = re.escape(repr(name))
    with pytest.raises(ConfigError, match=rf"^unknown activation {shown}: {NAMES}$"):
        make_activation(name, 4)
    with pytest.raises(ConfigError, match=rf"^unknown activation {shown}: {NAMES}$"):
        MLP(4, [8], 2, activation=name)
    with pytest.raises(ConfigError, match=rf"^unknown activation {shown}: {NAMES}$"):
        CNN((1, 8, 8), [4], [8], 2, activation=name)
    with pytest.raises(ConfigError, match=rf"^unknown activation {shown}: expected one of chainzrule, relu, gelu"):
        FinetuneConfig(hidden=(4,), activation=name)
    with pytest.raises(ConfigError, match=rf"^activation {shown} is not known: expected one of relu, gelu, silu, tanh$"):
        TrainConfig(model="mlp", activation=name)


@pytest.mark.parametrize("init", ["GELU", "Tanh", "nope"])
def test_a_polynomial_start_is_spelt_one_way_in_a_config_too(init):
    """TrainConfig took any poly_init (another hash for "GELU" than for "gelu", or for a name no
    model takes) and the model build refused it later; now the config refuses it, naming the starts."""
    from chainzrule.config import TrainConfig
    from chainzrule.errors import ConfigError
    from chainzrule.poly import PolynomialActivation

    with pytest.raises(ConfigError, match=rf"^poly_init '{init}' is not known: expected one of gelu, silu, tanh, identity$"):
        TrainConfig(model="chainzrule", poly_init=init)
    with pytest.raises(ConfigError, match=rf"^poly_init '{init}' is not known"):
        TrainConfig(model="mlp", poly_init=init)  # inert for an MLP, but it would still enter the run key
    with pytest.raises(ConfigError, match=rf"^unknown init '{init}': expected one of gelu, silu, tanh, identity$"):
        PolynomialActivation(4, init=init)


def test_options_to_standard_activation_refused():
    with pytest.raises(ValueError, match="takes no options"):
        make_activation("relu", degree=3)


def test_poly_needs_width():
    with pytest.raises(ValueError, match="num_features"):
        make_activation("poly")


@pytest.mark.parametrize("name", list(STANDARD_ACTIVATIONS))
def test_value_and_jacobian_sq_matches_jacrev(name):
    """Σ_i σ'(z_i)² r_i per example against the diagonal of torch.func's per-example Jacobian."""
    act = make_activation(name)
    z = 3 * torch.randn(6, 5, dtype=torch.float64)
    rn = torch.rand(5, dtype=torch.float64)
    h, J = act.value_and_jacobian_sq(z, rn)
    jac = torch.func.vmap(torch.func.jacrev(act))(z)  # [6, 5, 5], diagonal
    torch.testing.assert_close(jac, torch.diag_embed(torch.diagonal(jac, dim1=-2, dim2=-1)))
    torch.testing.assert_close(h, act(z), rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(J, (torch.diagonal(jac, dim1=-2, dim2=-1) ** 2) @ rn, rtol=1e-12, atol=1e-12)
    h1, J1 = act.value_and_jacobian_sq(z[0], rn)  # unbatched
    assert h1.shape == (5,) and J1.shape == ()
    torch.testing.assert_close(J1, J[0])


@pytest.mark.parametrize("name", list(STANDARD_ACTIVATIONS))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_huge_inputs_finite(name, dtype):
    act = make_activation(name)
    z = torch.tensor([[1e4, -1e4, 3e3, -7.5]], dtype=dtype, requires_grad=True)
    h, J = act.value_and_jacobian_sq(z, torch.ones(4, dtype=dtype))
    (h.sum() + J.sum()).backward()
    assert torch.isfinite(h).all() and torch.isfinite(J).all() and torch.isfinite(z.grad).all()
