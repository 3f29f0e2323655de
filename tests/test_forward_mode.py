"""Forward-mode differentiation through the hand-written kernels: ``torch.func.jvp``, ``jacfwd``,
``hessian`` and ``torch.autograd.forward_ad`` give what reverse mode (``jacrev``) gives, in float64,
for the activations, the DREG term, and with respect to inputs and parameters."""

from __future__ import annotations

import pytest
import torch
from torch.autograd import forward_ad
from torch.func import functional_call, hessian, jacfwd, jacrev, jvp

import chainzrule as cz
from chainzrule.cnn import CNN

TOL = 1e-12


def _model(degree, range_control, basis):
    torch.manual_seed(degree)
    m = cz.ChainzRuleMLP(4, [6, 5], 3, degree=degree, range_control=range_control, basis=basis).double()
    x = 3.0 * torch.randn(7, 4, dtype=torch.float64)  # many pre-activations outside [-R, R]
    return m, x


def _contract(jac, tangent, batch_dims):
    """Σ over the input dims of ``jac`` [*out, *in] times ``tangent`` [*in]."""
    return (jac * tangent).flatten(batch_dims).sum(-1)


@pytest.mark.parametrize("degree", [1, 2, 3, 5])
@pytest.mark.parametrize("range_control", ["linear", "none", "tanh"])
@pytest.mark.parametrize("basis", ["legendre", "power"])
def test_jvp_matches_jacrev(degree, range_control, basis):
    m, x = _model(degree, range_control, basis)
    v = torch.randn_like(x)
    params = dict(m.named_parameters())
    tp = {k: torch.randn_like(p) for k, p in params.items()}
    for kwargs, pick in (({}, lambda o: o), ({"return_jacobian": True}, lambda o: o[1])):
        f = lambda x: pick(m(x, **kwargs))  # noqa: E731
        out, t = jvp(f, (x,), (v,))
        jac = jacrev(f)(x)  # [*out, 7, 4]
        assert torch.equal(out, f(x))
        assert torch.allclose(t, _contract(jac, v, out.dim()), atol=TOL, rtol=0)
        g = lambda p: pick(functional_call(m, p, (x,), kwargs))  # noqa: E731
        _, tparam = jvp(g, (params,), (tp,))
        jp = jacrev(g)(params)
        ref = sum(_contract(jp[k], tp[k], out.dim()) for k in params)
        assert torch.allclose(tparam, ref, atol=TOL, rtol=0)


@pytest.mark.parametrize("range_control", ["linear", "none"])
def test_hessian_and_jacfwd(range_control):
    m, x = _model(3, range_control, "legendre")
    f = lambda xi: m(xi.unsqueeze(0)).sum()  # noqa: E731
    assert torch.allclose(hessian(f)(x[0]), jacrev(jacrev(f))(x[0]), atol=TOL, rtol=0)
    # the DREG term's Hessian too: it reaches σ'' (and σ''' through the slope)
    fj = lambda xi: m(xi.unsqueeze(0), return_jacobian=True)[1].sum()  # noqa: E731
    assert torch.allclose(hessian(fj)(x[0]), jacrev(jacrev(fj))(x[0]), atol=TOL, rtol=0)
    assert torch.allclose(jacfwd(m)(x), jacrev(m)(x), atol=TOL, rtol=0)


def test_dual_numbers_through_an_activation():
    act = cz.PolynomialActivation(5, degree=4).double()
    z = 4.0 * torch.randn(9, 5, dtype=torch.float64)
    v = torch.randn_like(z)
    with forward_ad.dual_level():
        out = forward_ad.unpack_dual(act(forward_ad.make_dual(z, v))).tangent
    assert torch.allclose(out, act.derivative(z) * v, atol=TOL, rtol=0)


def test_cnn_jvp():
    torch.manual_seed(0)
    m = CNN((1, 8, 8), [4, 8], [16], 3, activation="poly").double()
    x = torch.randn(2, 1, 8, 8, dtype=torch.float64)
    v = torch.randn_like(x)
    for f in (m, lambda x: m(x, return_jacobian=True)[1]):
        out, t = jvp(f, (x,), (v,))
        assert torch.allclose(t, _contract(jacrev(f)(x), v, out.dim()), atol=TOL, rtol=0)
