"""PolynomialActivation (thin module over chainzrule.functional): parameters and basis buffer,
exact derivative, certified slope bound, bases that compute the same function, init, errors,
optimizer parameter groups."""

import copy

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings, strategies as st

from chainzrule import ChainzRuleMLP, PolynomialActivation, coefficient_parameters, functional as CF, parameter_groups
from chainzrule.poly import BASES, INITS, RANGE_CONTROLS

DT = torch.float64
DEGREES = [1, 2, 3, 4, 5]


def _random_poly(F_, degree, rc="linear", basis="legendre", dtype=DT, scale=0.5):
    act = PolynomialActivation(F_, degree=degree, range_control=rc, basis=basis, dtype=dtype)
    with torch.no_grad():  # move away from the fitted init so every coefficient matters
        act.coefficients.add_(scale * torch.randn_like(act.coefficients))
    return act


def test_parameter_buffer_and_state_dict():
    act = PolynomialActivation(6, degree=4, basis="chebyshev", bound=2.0)
    assert [n for n, _ in act.named_parameters()] == ["coefficients"]
    assert act.coefficients.shape == (5, 6)
    assert set(act.state_dict()) == {"coefficients"}  # the basis matrix is a non-persistent buffer
    torch.testing.assert_close(act.basis_matrix, CF.basis_matrix("chebyshev", 4, 2.0, dtype=torch.float32))
    act.double()
    assert act.basis_matrix.dtype == DT and act.coefficients.dtype == DT
    torch.testing.assert_close(act.power_coefficients(), CF.basis_matrix("chebyshev", 4, 2.0) @ act.coefficients)
    other = PolynomialActivation(6, degree=4, basis="chebyshev", bound=2.0).double()
    other.load_state_dict(act.state_dict())
    z = 4 * torch.randn(3, 6, dtype=DT)
    torch.testing.assert_close(other(z), act(z))


@pytest.mark.parametrize("basis", BASES)
@pytest.mark.parametrize("rc", RANGE_CONTROLS)
@pytest.mark.parametrize("degree", DEGREES)
def test_module_is_the_functional_op_and_its_derivative_is_exact(basis, rc, degree):
    act = _random_poly(5, degree, rc, basis)
    z = (4.0 * torch.randn(9, 5, dtype=DT)).requires_grad_(True)  # many points outside [-3, 3]
    h = act(z)
    torch.testing.assert_close(h, CF.poly_activation(z, act.basis_matrix @ act.coefficients, act.bound, rc))
    (g,) = torch.autograd.grad(h.sum(), z)
    v, d = act.value_and_derivative(z)
    torch.testing.assert_close(v, h, rtol=0, atol=0)
    torch.testing.assert_close(d, g, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(act.derivative(z), d)
    rn = torch.rand(5, dtype=DT)
    hj, J = act.value_and_jacobian_sq(z, rn)
    torch.testing.assert_close(hj, h, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(J, (d * d) @ rn, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("rc", ["linear", "tanh"])
@pytest.mark.parametrize("degree", DEGREES)
@pytest.mark.parametrize("basis", BASES)
def test_max_slope_is_a_certified_bound(rc, degree, basis):
    act = _random_poly(4, degree, rc, basis)
    z = torch.cat([torch.linspace(-1e4, 1e4, 2001, dtype=DT), torch.linspace(-50, 50, 100001, dtype=DT)])
    observed = act.derivative(z.unsqueeze(1).expand(-1, 4)).abs().max(dim=0).values  # [4]
    bound = act.max_slope()
    assert bound.shape == (4,) and not bound.requires_grad
    assert torch.all(observed <= bound + 1e-9)
    if rc == "linear":  # σ' = p' on the densely sampled interval: the bound is attained
        torch.testing.assert_close(observed, bound, rtol=1e-6, atol=0)


def test_max_slope_raw_polynomial_is_infinite():
    assert torch.isinf(PolynomialActivation(3, degree=3, range_control="none").max_slope()).all()
    assert torch.isfinite(PolynomialActivation(3, degree=1, range_control="none").max_slope()).all()


@pytest.mark.parametrize("basis", BASES)
@pytest.mark.parametrize("degree", DEGREES)
@pytest.mark.parametrize("rc", RANGE_CONTROLS)
def test_bases_compute_the_same_function_for_equivalent_coefficients(basis, degree, rc):
    """θ_b = M_b⁻¹ M_legendre θ_legendre gives the identical σ, σ', J and max_slope."""
    ref = _random_poly(4, degree, rc, "legendre")
    act = PolynomialActivation(4, degree=degree, range_control=rc, basis=basis, dtype=DT)
    with torch.no_grad():
        act.coefficients.copy_(torch.linalg.solve(act.basis_matrix, ref.basis_matrix @ ref.coefficients))
    torch.testing.assert_close(act.power_coefficients(), ref.power_coefficients(), rtol=1e-12, atol=1e-12)
    z = torch.cat([torch.linspace(-20, 20, 401, dtype=DT), torch.tensor([-3.0, 3.0], dtype=DT)])
    z = z.unsqueeze(1).expand(-1, 4)
    rn = torch.rand(4, dtype=DT)
    for x, y in zip(act.value_and_jacobian_sq(z, rn), ref.value_and_jacobian_sq(z, rn)):
        torch.testing.assert_close(x, y, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(act.derivative(z), ref.derivative(z), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(act.max_slope(), ref.max_slope(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("basis", BASES)
def test_init_is_the_same_function_in_every_basis_and_every_feature(basis):
    act = PolynomialActivation(6, degree=3, init="gelu", basis=basis, dtype=DT)
    assert torch.allclose(act.coefficients, act.coefficients[:, :1].expand(4, 6))
    ref = PolynomialActivation(6, degree=3, init="gelu", dtype=DT)
    z = torch.linspace(-12, 12, 121, dtype=DT).unsqueeze(1).expand(-1, 6)
    torch.testing.assert_close(act(z), ref(z), rtol=0, atol=1e-10)


@pytest.mark.parametrize("init", ["gelu", "silu"])
@pytest.mark.parametrize("degree", [3, 4, 5])
def test_gelu_silu_init_continues_with_the_asymptotic_slopes(init, degree):
    """Not a V: slope 0 on the far left and 1 on the far right (v0.1 had −0.41 on the left)."""
    act = PolynomialActivation(2, degree=degree, init=init, dtype=DT)
    z = torch.tensor([[-100.0, -1e4], [100.0, 1e4]], dtype=DT)
    torch.testing.assert_close(act.derivative(z), torch.tensor([[0.0, 0.0], [1.0, 1.0]], dtype=DT), rtol=0, atol=1e-9)
    ref = {"gelu": F.gelu, "silu": F.silu}[init]
    far = torch.tensor([[30.0, 1e3]], dtype=DT)  # on the right σ runs parallel to the target
    offset = act(far) - ref(far)
    torch.testing.assert_close(offset[0, 0], offset[0, 1])
    assert offset.abs().max() < 0.5


@pytest.mark.parametrize("basis", BASES)
@pytest.mark.parametrize("rc", ["linear", "none"])
def test_identity_init_is_exact(basis, rc):
    act = PolynomialActivation(3, degree=4, init="identity", basis=basis, range_control=rc, dtype=DT)
    z = 20 * torch.randn(5, 3, dtype=DT)
    torch.testing.assert_close(act(z), z, rtol=0, atol=1e-9)
    torch.testing.assert_close(act.derivative(z), torch.ones_like(z), rtol=0, atol=1e-10)


def test_tanh_init_is_bounded():
    act = PolynomialActivation(2, degree=3, init="tanh", dtype=DT)
    z = torch.linspace(-1e4, 1e4, 20001, dtype=DT).unsqueeze(1).expand(-1, 2)
    assert act(z).abs().max() < 1.25
    assert float(act.max_slope().max()) < 1.5


@pytest.mark.parametrize("rc", ["linear", "tanh"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_no_nan_or_inf_for_huge_inputs(rc, dtype):
    act = _random_poly(4, 5, rc, dtype=dtype)
    z = torch.tensor([[1e4, -1e4, 3e3, -7.5]], dtype=dtype).expand(2, 4).contiguous().requires_grad_(True)
    v, d = act.value_and_derivative(z)
    assert torch.isfinite(v).all() and torch.isfinite(d).all()
    h, J = act.value_and_jacobian_sq(z, torch.rand(4, dtype=dtype))
    (v.sum() + h.sum() + J.sum()).backward()
    assert torch.isfinite(z.grad).all() and torch.isfinite(act.coefficients.grad).all()


def test_deep_stack_stays_finite_with_range_control():
    torch.manual_seed(1)
    acts = [PolynomialActivation(16, degree=3) for _ in range(12)]
    lins = [torch.nn.Linear(16, 16) for _ in range(12)]
    x = 100 * torch.randn(8, 16)
    for lin, act in zip(lins, acts):
        x = act(lin(x))
    assert torch.isfinite(x).all()


def _with_coefficients(act, theta, method, *args):
    """``act.<method>(*args)`` with ``coefficients`` swapped for ``theta`` (a differentiable input)."""
    saved = act.coefficients
    try:
        del act.coefficients
        act.coefficients = theta
        return getattr(act, method)(*args)
    finally:
        del act.coefficients
        act.coefficients = saved


@pytest.mark.parametrize("basis", ["legendre", "power"])
def test_gradcheck_and_gradgradcheck_through_the_module(basis):
    act = _random_poly(3, 3, basis=basis, scale=0.2)
    z = (2.5 * torch.randn(4, 3, dtype=DT)).requires_grad_(True)
    rn = torch.rand(3, dtype=DT).requires_grad_(True)
    theta = act.coefficients.detach().clone().requires_grad_(True)

    def f(z, theta, rn):
        return _with_coefficients(act, theta, "value_and_jacobian_sq", z, rn)

    def g(z, theta):
        return _with_coefficients(act, theta, "forward", z)

    for fn, inputs in ((f, (z, theta, rn)), (g, (z, theta))):
        assert torch.autograd.gradcheck(fn, inputs)
        assert torch.autograd.gradgradcheck(fn, inputs)
    assert isinstance(act.coefficients, torch.nn.Parameter)


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        (dict(num_features=4, degree=0), r"degree must be an integer in 1\.\.12 .*got 0"),
        (dict(num_features=4, degree=2.0), r"degree must be an integer in 1\.\.12 .*got 2.0"),
        (dict(num_features=4, degree=13), r"degree must be an integer in 1\.\.12 .*got 13"),
        (dict(num_features=4, init="swish"), "unknown init 'swish': expected one of gelu, silu, tanh, identity"),
        (dict(num_features=0), "expected num_features to be a positive integer, got 0"),
        (dict(num_features=4, range_control="clip"), "unknown range_control 'clip': expected one of linear, tanh, none"),
        (dict(num_features=4, basis="hermite"), "unknown basis 'hermite': expected one of legendre, chebyshev, monomial, power"),
        (dict(num_features=4, bound=-1.0), "bound must be a positive finite number below 1e6, got -1.0"),
        (dict(num_features=4, bound=float("inf")), "bound must be a positive finite number below 1e6, got inf"),
    ],
)
def test_bad_arguments_raise_value_error(kwargs, fragment):
    with pytest.raises(ValueError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        PolynomialActivation(**kwargs)


@pytest.mark.parametrize("call", ["forward", "value_and_derivative", "derivative", "value_and_jacobian_sq"])
def test_feature_mismatch_names_expected_and_given(call):
    act = PolynomialActivation(4)
    args = (torch.randn(2, 5),) + ((torch.ones(5),) if call == "value_and_jacobian_sq" else ())
    with pytest.raises(ValueError, match=r"expected input with 4 features.*got shape \(2, 5\)"):
        getattr(act, call)(*args)
    with pytest.raises(ValueError, match=r"got shape \(\)"):
        act(torch.tensor(1.0))


def test_extra_repr_reset_and_deepcopy():
    act = PolynomialActivation(4, degree=2, init="tanh", basis="chebyshev")
    assert "degree=2" in repr(act) and "init='tanh'" in repr(act) and "basis='chebyshev'" in repr(act)
    before = act.coefficients.detach().clone()
    with torch.no_grad():
        act.coefficients.mul_(3)
    act.reset_parameters()
    assert torch.equal(act.coefficients, before)
    twin = copy.deepcopy(act)
    assert torch.equal(twin.basis_matrix, act.basis_matrix) and twin.basis_matrix is not act.basis_matrix


def test_parameter_groups_and_coefficient_parameters():
    net = ChainzRuleMLP(4, [8, 6], 2)
    coefs = coefficient_parameters(net)
    assert [c.shape for c in coefs] == [(4, 8), (4, 6)]
    groups = parameter_groups(net, 3e-3, coef_lr_scale=0.25, weight_decay=0.1)
    assert [len(g["params"]) for g in groups] == [6, 2]
    assert groups[0]["lr"] == 3e-3 and groups[1]["lr"] == pytest.approx(7.5e-4)
    assert all(g["weight_decay"] == 0.1 for g in groups)
    assert {id(p) for p in groups[1]["params"]} == {id(c) for c in coefs}
    assert {id(p) for g in groups for p in g["params"]} == {id(p) for p in net.parameters()}
    opt = torch.optim.AdamW(groups)  # usable as is
    assert len(opt.param_groups) == 2
    coefs[0].requires_grad_(False)  # frozen parameters are left out
    assert [len(g["params"]) for g in parameter_groups(net, 1e-3)] == [6, 1]
    from chainzrule import MLP

    assert len(parameter_groups(MLP(4, [8], 2), 1e-3, coef_lr_scale=2.0)) == 1  # no polynomial: one group
    for bad in (dict(lr=0.0), dict(lr=1e-3, coef_lr_scale=-1.0), dict(lr=float("nan"))):
        with pytest.raises(ValueError, match="lr and coef_lr_scale must be finite and > 0"):
            parameter_groups(net, **bad)


@settings(max_examples=25, deadline=None)
@given(
    batch=st.lists(st.integers(1, 4), min_size=0, max_size=2),
    F_=st.integers(1, 7),
    degree=st.integers(1, 5),
    rc=st.sampled_from(RANGE_CONTROLS),
    basis=st.sampled_from(BASES),
    init=st.sampled_from(INITS),
    scale=st.floats(0.1, 20.0),
    dim=st.sampled_from([None, -1]),
)
def test_property_shapes_and_derivative(batch, F_, degree, rc, basis, init, scale, dim):
    act = PolynomialActivation(F_, degree=degree, range_control=rc, basis=basis, init=init, dim=dim, dtype=DT)
    with torch.no_grad():
        act.coefficients.add_(0.3 * torch.randn_like(act.coefficients))
    z = scale * torch.randn(*batch, F_, dtype=DT, requires_grad=True)
    if dim is None and z.dim() > 2:  # the layout rule: more than 2 dims need an explicit dim
        with pytest.raises(ValueError, match="feature axis is ambiguous"):
            act.value_and_derivative(z)
        return
    v, d = act.value_and_derivative(z)
    assert v.shape == z.shape == d.shape
    (g,) = torch.autograd.grad(v.sum(), z)
    torch.testing.assert_close(g, d, rtol=1e-9, atol=1e-9)
    rn = torch.rand(F_, dtype=DT)
    h, J = act.value_and_jacobian_sq(z, rn)
    assert h.shape == z.shape and J.shape == z.shape[:-1]
    torch.testing.assert_close(J, (d * d) @ rn, rtol=1e-9, atol=1e-9)


def test_basis_matrix_follows_meta_loading_and_dtype_changes():
    """The basis matrix is a constant, not state: a model built on the meta device gets its real
    values from ``to_empty`` or ``load_state_dict(assign=True)``, and ``.double()`` after float32
    gives the float64 values (not float32's rounded up-cast)."""
    import chainzrule as cz

    torch.manual_seed(0)
    ref = cz.ChainzRuleMLP(6, [8], 3)
    sd, x = ref.state_dict(), torch.randn(5, 6)
    with torch.device("meta"):
        m1 = cz.ChainzRuleMLP(6, [8], 3)
        m2 = cz.ChainzRuleMLP(6, [8], 3)
    m1 = m1.to_empty(device="cpu")
    m1.load_state_dict(sd)
    m2.load_state_dict(sd, assign=True)
    for m in (m1, m2):
        assert torch.equal(m(x), ref(x))
    built64 = PolynomialActivation(4, dtype=torch.float64)
    cast64 = PolynomialActivation(4).double()
    assert torch.equal(cast64.basis_matrix, built64.basis_matrix)
    assert cast64.basis_matrix.dtype == torch.float64
    assert not torch.equal(cast64.basis_matrix.float().double(), built64.basis_matrix)  # it was not a cast


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64])
@pytest.mark.parametrize("range_control", ["linear", "tanh"])
def test_max_slope_bounds_the_computed_slope_in_its_dtype(dtype, range_control):
    """``max_slope()`` bounds every σ' the activation computes in its own dtype (the float64 bound
    widened by the evaluation's rounding error and rounded up), not only the exact σ'; NaN
    coefficients give NaN, not an exception."""
    torch.manual_seed(1)
    act = PolynomialActivation(256, degree=5, range_control=range_control, dtype=dtype)
    with torch.no_grad():
        act.coefficients.normal_()
    z = torch.linspace(-40, 40, 4001, dtype=dtype).unsqueeze(1).expand(-1, 256)  # [4001, 256]
    observed = act.derivative(z).detach().abs().amax(0)  # [256]
    bound = act.max_slope()
    assert bound.dtype == dtype and bool((observed <= bound).all())
    exact = CF.poly_max_slope(act.group_power_coefficients().detach().double(), act.bound, range_control)
    assert bool((bound.double() >= exact).all())
    with torch.no_grad():
        act.coefficients[0, 3] = float("nan")
    got = act.max_slope()
    assert torch.isnan(got[3]) and bool(torch.isfinite(got[:3]).all())
