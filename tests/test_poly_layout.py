"""PolynomialActivation's feature axis (``dim``) and shared coefficients (``groups``): the layout
rule (a [N, C, H, W] tensor with W == C is never silently treated per column), per-channel values
and derivatives against a per-channel reference, group sharing against repeated per-feature
coefficients, exact σ' and max_slope, and the fused conv term."""

from __future__ import annotations

import pytest
import torch

from chainzrule import HiddenLayer, PolynomialActivation, functional as CF, make_activation

DT = torch.float64


def _act(F, **kw):
    act = PolynomialActivation(F, degree=3, dtype=DT, **kw)
    with torch.no_grad():
        act.coefficients.add_(0.3 * torch.randn_like(act.coefficients))
    return act


def _reference(act, z, axis):
    """σ per channel by the plain-op reference, one channel at a time."""
    a = act.power_coefficients()  # [D+1, F]
    out = torch.empty_like(z)
    for c in range(z.shape[axis]):
        zc = z.select(axis, c).reshape(-1, 1)
        out.select(axis, c).copy_(CF.poly_activation_and_slope(zc, a[:, c:c + 1], act.bound)[0]
                                  .view(z.select(axis, c).shape))
    return out


def test_width_equal_to_channels_is_never_treated_per_column():
    C = 5
    x = 4 * torch.randn(2, C, 3, C, dtype=DT)  # [N, C, H, W] with W == C
    undeclared = _act(C)
    with pytest.raises(ValueError, match=r"got an input of shape \(2, 5, 3, 5\).*ambiguous.*dim=-1.*dim=1"):
        undeclared(x)
    for call in ("value_and_derivative", "derivative"):
        with pytest.raises(ValueError, match="ambiguous"):
            getattr(undeclared, call)(x)
    with pytest.raises(ValueError, match="ambiguous"):
        undeclared.value_and_jacobian_sq(x, torch.ones(C, 3, C, dtype=DT))
    with pytest.raises(ValueError, match="ambiguous"):  # rank 3 too: [N, C, L] with L == C
        undeclared(torch.randn(2, C, C, dtype=DT))
    per_channel = _act(C, dim=1)
    with torch.no_grad():
        per_channel.coefficients.copy_(undeclared.coefficients)
    torch.testing.assert_close(per_channel(x), _reference(per_channel, x, 1))
    per_column = _act(C, dim=-1)  # an explicit choice is honoured
    with torch.no_grad():
        per_column.coefficients.copy_(undeclared.coefficients)
    torch.testing.assert_close(per_column(x), _reference(per_column, x, 3))
    assert not torch.allclose(per_channel(x), per_column(x))


def test_undeclared_dim_keeps_the_features_last_behaviour_on_1d_and_2d():
    act = _act(4)
    z = 4 * torch.randn(6, 4, dtype=DT)
    torch.testing.assert_close(act(z), _reference(act, z, 1))
    torch.testing.assert_close(act(z[0]), act(z)[0])
    explicit = _act(4, dim=-1)
    with torch.no_grad():
        explicit.coefficients.copy_(act.coefficients)
    torch.testing.assert_close(explicit(z.view(2, 3, 4)), act(z).view(2, 3, 4))


@pytest.mark.parametrize("shape,dim", [((3, 4, 5, 2), 1), ((3, 6, 4), 1), ((3, 2, 4), -1), ((4, 3, 2), 0)])
def test_values_and_exact_derivative_along_any_axis(shape, dim):
    axis = dim % len(shape)
    act = _act(shape[axis], dim=dim)
    z = (4 * torch.randn(*shape, dtype=DT)).requires_grad_(True)
    h, slope = act.value_and_derivative(z)
    torch.testing.assert_close(h, _reference(act, z.detach(), axis))
    torch.testing.assert_close(act(z), h)  # the fused kernel and the plain ops agree
    (g,) = torch.autograd.grad(act(z).sum(), z)
    torch.testing.assert_close(g, slope)
    torch.testing.assert_close(act.derivative(z), slope)


@pytest.mark.parametrize("groups", [1, 2, 6])
def test_groups_share_coefficients_like_repeated_per_feature_ones(groups):
    F = 6
    shared = _act(F, dim=1, groups=groups)
    assert shared.coefficients.shape == (4, groups)
    full = PolynomialActivation(F, degree=3, dim=1, dtype=DT)
    with torch.no_grad():
        full.coefficients.copy_(shared.coefficients.repeat_interleave(F // groups, dim=1))
    z = 4 * torch.randn(3, F, 4, 2, dtype=DT)
    rn = torch.rand(F, 4, 2, dtype=DT)
    h_s, j_s = shared.value_and_jacobian_sq(z, rn)
    h_f, j_f = full.value_and_jacobian_sq(z, rn)
    torch.testing.assert_close(h_s, h_f)
    torch.testing.assert_close(j_s, j_f)
    (j_s.sum() + h_s.sum()).backward()
    (j_f.sum() + h_f.sum()).backward()
    # a shared coefficient's gradient is the sum of its features' gradients
    torch.testing.assert_close(shared.coefficients.grad,
                               full.coefficients.grad.view(4, groups, F // groups).sum(-1))
    torch.testing.assert_close(shared.max_slope(), full.max_slope())
    assert shared.max_slope().shape == (F,)


def test_channels_first_jacobian_term_matches_plain_ops_and_checks_row_norm_shape():
    act = _act(3, dim=1)
    z = (4 * torch.randn(2, 3, 5, 4, dtype=DT)).requires_grad_(True)
    rn = torch.rand(3, 5, 4, dtype=DT, requires_grad=True)
    h, jsq = act.value_and_jacobian_sq(z, rn)
    _, slope = act.value_and_derivative(z)
    assert jsq.shape == (2,)
    torch.testing.assert_close(jsq, CF.conv_layer_jacobian_sq(slope, rn))
    assert torch.autograd.gradcheck(lambda zz, r: act.value_and_jacobian_sq(zz, r)[1], (z[:1, :, :2, :2].detach()
                                    .clone().requires_grad_(True), rn[:, :2, :2].detach().clone().requires_grad_(True)))
    with pytest.raises(ValueError, match=r"expected row norms of shape \(3, 5, 4\) .* got \(3,\)"):
        act.value_and_jacobian_sq(z, torch.ones(3, dtype=DT))


def test_hidden_layer_feeds_an_undeclared_polynomial_token_inputs():
    layer = HiddenLayer(3, 4, make_activation("poly", 4)).double()
    x = torch.randn(2, 5, 3, dtype=DT)
    h, jsq = layer(x, return_jacobian=True)
    assert h.shape == (2, 5, 4) and jsq.shape == (2, 5)
    torch.testing.assert_close(h, layer(x))
    torch.testing.assert_close(h[1, 2], layer(x[1, 2]))
    torch.testing.assert_close(jsq[1, 2], layer(x[1, 2:3], return_jacobian=True)[1][0])
    with pytest.raises(ValueError, match=r"features last\): expected an activation with dim=None or dim=-1, got dim=1"):
        HiddenLayer(3, 4, make_activation("poly", 4, dim=1))


@pytest.mark.parametrize("kwargs,fragment", [
    (dict(groups=4), "groups must be None or a positive divisor of num_features=6, got 4"),
    (dict(groups=0), "groups must be None or a positive divisor of num_features=6, got 0"),
    (dict(groups=True), "groups must be None or a positive divisor"),
    (dict(dim="channels"), "dim must be None or an integer axis, got 'channels'"),
])
def test_bad_dim_and_groups_raise(kwargs, fragment):
    with pytest.raises(ValueError, match=fragment):
        PolynomialActivation(6, **kwargs)


def test_wrong_size_along_dim_names_expected_and_given():
    with pytest.raises(ValueError, match=r"expected input with 4 features in dimension 1, got shape \(2, 3, 4\)"):
        PolynomialActivation(4, dim=1)(torch.randn(2, 3, 4))
    with pytest.raises(ValueError, match=r"expected input with 4 features in dimension 1, got shape \(4,\)"):
        PolynomialActivation(4, dim=1)(torch.randn(4))


def test_repr_shows_dim_and_groups_only_when_set():
    assert "dim" not in repr(PolynomialActivation(4))
    assert repr(make_activation("poly", 4, dim=1, groups=2)).endswith("basis='legendre', dim=1, groups=2)")
