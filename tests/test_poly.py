"""PolynomialActivation: Horner, init fit, range control, exact derivative, slope bound."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from chainzrule import PolynomialActivation
from chainzrule.poly import RANGE_CONTROLS, fit_coefficients, horner

DEGREES = [1, 2, 3, 4, 5]


def _random_poly(F, degree, rc, dtype=torch.float64, scale=0.5):
    act = PolynomialActivation(F, degree=degree, range_control=rc, dtype=dtype)
    with torch.no_grad():  # move away from the fitted init so every coefficient matters
        act.coefficients.add_(scale * torch.randn_like(act.coefficients))
    return act


def test_horner_matches_numpy_polyval():
    coef = torch.randn(5, 3, dtype=torch.float64)  # degree 4, 3 features
    u = torch.randn(7, 3, dtype=torch.float64)
    p, dp = horner(coef, u)
    for i in range(3):
        c = coef[:, i].numpy()
        np.testing.assert_allclose(p[:, i].numpy(), np.polynomial.polynomial.polyval(u[:, i].numpy(), c), rtol=1e-12)
        dc = np.polynomial.polynomial.polyder(c)
        np.testing.assert_allclose(dp[:, i].numpy(), np.polynomial.polynomial.polyval(u[:, i].numpy(), dc), rtol=1e-12)


@pytest.mark.parametrize("init", ["gelu", "silu", "tanh", "identity"])
def test_init_fits_named_activation(init):
    ref = {"gelu": torch.nn.functional.gelu, "silu": torch.nn.functional.silu, "tanh": torch.tanh,
           "identity": lambda z: z}[init]
    act = PolynomialActivation(2, degree=5, init=init, dtype=torch.float64)
    z = torch.linspace(-3, 3, 101, dtype=torch.float64).unsqueeze(1).expand(101, 2)
    err5 = (act(z) - ref(z)).abs().max().item()
    cubic = PolynomialActivation(2, degree=3, init=init, dtype=torch.float64)
    err3 = (cubic(z) - ref(z)).abs().max().item()
    assert err5 < 0.07, f"{init}: degree-5 fit max error {err5}"
    assert err5 <= err3 + 1e-12, "a higher degree must fit at least as well"


def test_cubic_gelu_fit_is_close_and_every_feature_equal():
    act = PolynomialActivation(6, degree=3, init="gelu", dtype=torch.float64)
    assert torch.allclose(act.coefficients, act.coefficients[:, :1].expand(4, 6))
    z = torch.linspace(-3, 3, 61, dtype=torch.float64).unsqueeze(1).expand(61, 6)
    assert (act(z) - torch.nn.functional.gelu(z)).abs().max() < 0.25  # measured 0.213: a cubic cannot do better


def test_fit_coefficients_identity_exact():
    c = fit_coefficients("identity", 4, 2.0)
    assert torch.allclose(c, torch.tensor([0.0, 1.0, 0.0, 0.0, 0.0], dtype=torch.float64), atol=1e-10)


@pytest.mark.parametrize("rc", RANGE_CONTROLS)
@pytest.mark.parametrize("degree", DEGREES)
def test_derivative_is_exact_derivative_of_forward(rc, degree):
    act = _random_poly(5, degree, rc)
    z = 4.0 * torch.randn(9, 5, dtype=torch.float64)  # many points outside [-3, 3]
    auto = torch.func.vmap(torch.func.vmap(torch.func.jacrev(lambda t: act(t.view(1, 1).expand(1, 5))[0, 0])))(z[..., :1])
    # per-feature derivative via elementwise grad: d/dz_i sum(act(z)) since act is elementwise
    z_req = z.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(act(z_req).sum(), z_req)
    assert torch.allclose(act.derivative(z), g, rtol=1e-10, atol=1e-12)
    assert auto.shape == (9, 1)


@pytest.mark.parametrize("rc", ["linear", "tanh"])
@pytest.mark.parametrize("degree", DEGREES)
def test_max_slope_is_a_tight_certified_bound(rc, degree):
    act = _random_poly(4, degree, rc)
    z = torch.linspace(-50, 50, 200001, dtype=torch.float64).unsqueeze(1).expand(-1, 4)
    observed = act.derivative(z).abs().max(dim=0).values  # [4]
    bound = act.max_slope()
    assert bound.shape == (4,)
    assert torch.all(observed <= bound + 1e-9)
    if rc == "linear":  # the interval is sampled densely: the bound is attained
        assert torch.allclose(observed, bound, rtol=1e-6)


def test_max_slope_raw_polynomial_is_infinite():
    act = PolynomialActivation(3, degree=3, range_control="none")
    assert torch.isinf(act.max_slope()).all()


def test_linear_continuation_matches_value_and_slope_at_the_bound():
    act = _random_poly(3, 3, "linear")
    R = act.bound
    for edge in (R, -R):
        inside = torch.full((1, 3), edge * (1 - 1e-9), dtype=torch.float64)
        outside = torch.full((1, 3), edge * (1 + 1e-9), dtype=torch.float64)
        assert torch.allclose(act(inside), act(outside), atol=1e-7)
        assert torch.allclose(act.derivative(inside), act.derivative(outside), atol=1e-7)


@pytest.mark.parametrize("rc", RANGE_CONTROLS)
@pytest.mark.parametrize("degree", [1, 3, 5])
def test_gradcheck_and_gradgradcheck(rc, degree):
    act = _random_poly(3, degree, rc, scale=0.2)
    z = (2.5 * torch.randn(4, 3, dtype=torch.float64)).requires_grad_(True)
    coef = act.coefficients
    assert torch.autograd.gradcheck(lambda z, c: torch.func.functional_call(act, {"coefficients": c}, (z,)), (z, coef))
    assert torch.autograd.gradgradcheck(lambda z, c: torch.func.functional_call(act, {"coefficients": c}, (z,)), (z, coef))
    assert torch.autograd.gradcheck(
        lambda z, c: torch.func.functional_call(act, {"coefficients": c}, (z,), strict=False) * 0
        + torch.func.functional_call(act, {"coefficients": c}, (z,)), (z, coef))


@pytest.mark.parametrize("rc", ["linear", "tanh"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_no_nan_or_inf_for_huge_inputs(rc, dtype):
    act = _random_poly(4, 5, rc, dtype=dtype)
    z = torch.tensor([[1e4, -1e4, 3e3, -7.5]], dtype=dtype).expand(2, 4).contiguous().requires_grad_(True)
    v, d = act.value_and_derivative(z)
    assert torch.isfinite(v).all() and torch.isfinite(d).all()
    v.sum().backward()
    assert torch.isfinite(z.grad).all() and torch.isfinite(act.coefficients.grad).all()


def test_deep_stack_stays_finite_with_range_control():
    torch.manual_seed(1)
    acts = [PolynomialActivation(16, degree=3) for _ in range(12)]
    lins = [torch.nn.Linear(16, 16) for _ in range(12)]
    x = 100 * torch.randn(8, 16)
    for lin, act in zip(lins, acts):
        x = act(lin(x))
    assert torch.isfinite(x).all()


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        (dict(num_features=4, degree=0), "degree must be an integer >= 1, got 0"),
        (dict(num_features=4, init="swish"), "unknown init 'swish'"),
        (dict(num_features=0), "num_features must be a positive integer, got 0"),
        (dict(num_features=4, range_control="clip"), "unknown range_control 'clip'"),
        (dict(num_features=4, bound=-1.0), "bound must be a positive finite number, got -1.0"),
    ],
)
def test_bad_arguments_raise_value_error(kwargs, fragment):
    with pytest.raises(ValueError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        PolynomialActivation(**kwargs)


def test_feature_mismatch_names_expected_and_given():
    act = PolynomialActivation(4)
    with pytest.raises(ValueError, match=r"expected input with 4 features.*got shape \(2, 5\)"):
        act(torch.randn(2, 5))


def test_extra_repr_and_reset():
    act = PolynomialActivation(4, degree=2, init="tanh")
    assert "degree=2" in repr(act) and "init='tanh'" in repr(act)
    before = act.coefficients.detach().clone()
    with torch.no_grad():
        act.coefficients.mul_(3)
    act.reset_parameters()
    assert torch.equal(act.coefficients, before)


@settings(max_examples=25, deadline=None)
@given(
    batch=st.lists(st.integers(1, 4), min_size=0, max_size=2),
    F=st.integers(1, 7),
    degree=st.integers(1, 5),
    rc=st.sampled_from(RANGE_CONTROLS),
    scale=st.floats(0.1, 20.0),
)
def test_property_shapes_and_derivative(batch, F, degree, rc, scale):
    act = _random_poly(F, degree, rc)
    z = scale * torch.randn(*batch, F, dtype=torch.float64, requires_grad=True)
    v, d = act.value_and_derivative(z)
    assert v.shape == z.shape == d.shape
    (g,) = torch.autograd.grad(v.sum(), z)
    assert torch.allclose(g, d, rtol=1e-9, atol=1e-9)
