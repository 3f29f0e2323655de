"""ConvHiddenLayer and exact conv DREG: the analytic ||S||_F² against torch.func.jacrev of the same
layer for every stride / padding / dilation / groups combination (Conv1d and Conv2d, float64), the
row norms of the conv operator entry by entry, every padding mode, gradcheck of the term w.r.t.
input and weight, the collector, and the errors."""

from __future__ import annotations

import itertools
import re

import numpy as np
import pytest
import torch

from chainzrule import ConvHiddenLayer, PolynomialActivation, dreg, functional as CF
from chainzrule.activations import GELU, ReLU, Tanh

DT = torch.float64

# (spatial_dims, stride, padding, dilation, groups): every combination; "same" only where torch
# allows it (stride 1).
MATRIX = [(n, s, p, d, g) for n, s, p, d, g in itertools.product((1, 2), (1, 2), (0, 1, "same"), (1, 2), (1, 2))
          if not (p == "same" and s != 1)]
SPATIAL = {1: (9,), 2: (7, 6)}  # non-square, so a swapped axis would show


def _poly(channels: int) -> PolynomialActivation:
    act = PolynomialActivation(channels, degree=3, dim=1, dtype=DT)
    with torch.no_grad():  # distinct polynomials per channel, not just the GELU fit
        act.coefficients.add_(0.3 * torch.randn_like(act.coefficients))
    return act


def _layer(n, stride=1, padding=0, dilation=1, groups=1, act="poly", padding_mode="zeros", kernel=3,
           c_in=2, c_out=4):
    activation = {"poly": lambda: _poly(c_out), "gelu": GELU, "relu": ReLU, "tanh": Tanh}[act]()
    return ConvHiddenLayer(c_in, c_out, kernel, activation, stride=stride, padding=padding, dilation=dilation,
                           groups=groups, padding_mode=padding_mode, spatial_dims=n, dtype=DT)


def _input(layer, batch=2, scale=2.0):
    # scale 2: pre-activations inside and outside the polynomial's working interval [-3, 3]
    return scale * torch.randn(batch, layer.in_channels, *SPATIAL[layer.spatial_dims], dtype=DT)


def _jacrev_sq(layer, x):
    """||∂ layer(x_n) / ∂ x_n||_F² per example, by torch.func.jacrev (the oracle)."""
    out = []
    for xn in x:
        jac = torch.func.jacrev(lambda v: layer(v.unsqueeze(0))[0])(xn)  # [C_out, *S', C_in, *S]
        out.append(jac.pow(2).sum())
    return torch.stack(out)


@pytest.mark.parametrize("act", ["poly", "gelu"])
@pytest.mark.parametrize("n,stride,padding,dilation,groups", MATRIX)
def test_conv_jacobian_sq_matches_jacrev(n, stride, padding, dilation, groups, act):
    layer = _layer(n, stride, padding, dilation, groups, act)
    x = _input(layer)
    h, jsq = layer(x, return_jacobian=True)
    assert jsq.shape == (2,)
    torch.testing.assert_close(jsq, _jacrev_sq(layer, x), rtol=1e-6, atol=1e-9)
    torch.testing.assert_close(h, layer(x), rtol=0, atol=1e-12)  # the DREG path computes the same σ


def _operator_row_norms(layer, x):
    """||row_{c,p}(C)||² from the conv operator's own Jacobian (no activation, no bias)."""
    conv = layer.conv
    jac = torch.func.jacrev(lambda v: conv(v.unsqueeze(0))[0])(x[0])  # [C_out, *S', C_in, *S]
    out_dims = conv.weight.dim() - 1
    return jac.pow(2).flatten(out_dims).sum(-1)  # [C_out, *S']


@pytest.mark.parametrize("n,stride,padding,dilation,groups", MATRIX)
def test_row_norms_of_the_conv_operator(n, stride, padding, dilation, groups):
    layer = _layer(n, stride, padding, dilation, groups)
    x = _input(layer, batch=1)
    torch.testing.assert_close(layer.row_norms_sq(x.shape[2:]), _operator_row_norms(layer, x), rtol=1e-10,
                               atol=1e-12)


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
@pytest.mark.parametrize("n,stride,padding,dilation", [(1, 1, 1, 1), (1, 2, 2, 2), (1, 1, "same", 2),
                                                        (2, 1, 1, 1), (2, 2, 1, 2), (2, 1, "same", 1)])
def test_other_padding_modes_are_exact(mode, n, stride, padding, dilation):
    # border pixels are read by several taps: their weights add before squaring (not Σ W²)
    layer = _layer(n, stride, padding, dilation, groups=2, padding_mode=mode)
    x = _input(layer)
    torch.testing.assert_close(layer.row_norms_sq(x.shape[2:]), _operator_row_norms(layer, x[:1]),
                               rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(layer(x, return_jacobian=True)[1], _jacrev_sq(layer, x), rtol=1e-6, atol=1e-9)


def test_circular_padding_that_wraps_onto_itself():
    # L = 2, kernel 3, padding 1: taps p-1 and p+1 read the same pixel, so a row is (w0+w2, w1)
    layer = _layer(1, padding=1, padding_mode="circular", c_in=1, c_out=1)
    x = torch.randn(1, 1, 2, dtype=DT)
    w = layer.conv.weight[0, 0]
    expected = ((w[0] + w[2]) ** 2 + w[1] ** 2).expand(2)
    torch.testing.assert_close(layer.row_norms_sq((2,))[0], expected)
    torch.testing.assert_close(layer.row_norms_sq((2,)), _operator_row_norms(layer, x))


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
def test_even_kernel_same_padding_is_asymmetric_like_torch():
    for mode in ("zeros", "reflect"):
        layer = _layer(2, padding="same", dilation=1, kernel=(2, 4), padding_mode=mode)
        x = _input(layer, batch=1)
        torch.testing.assert_close(layer.row_norms_sq(x.shape[2:]), _operator_row_norms(layer, x))


@pytest.mark.parametrize("act", ["poly", "gelu"])
def test_gradcheck_of_the_term_wrt_input_and_weight(act):
    layer = _layer(2, stride=2, padding=1, dilation=1, groups=2, act=act)
    x = _input(layer, batch=2, scale=1.5)[..., :5, :5].contiguous().requires_grad_(True)
    w = layer.conv.weight.detach().clone().requires_grad_(True)

    def term(xx, ww):
        return torch.func.functional_call(layer, {"conv.weight": ww}, (xx,), {"return_jacobian": True})[1]

    assert torch.autograd.gradcheck(term, (x, w), eps=1e-6, atol=1e-6)


def test_gradcheck_through_group_shared_coefficients():
    act = PolynomialActivation(4, degree=3, dim=1, groups=2, dtype=DT)
    layer = ConvHiddenLayer(2, 4, 3, act, padding=1, spatial_dims=1, dtype=DT)
    x = torch.randn(2, 2, 6, dtype=DT)
    theta = act.coefficients.detach().clone().requires_grad_(True)

    def term(th):
        return torch.func.functional_call(layer, {"activation.coefficients": th}, (x,),
                                          {"return_jacobian": True})[1]

    assert torch.autograd.gradcheck(term, (theta,), eps=1e-6, atol=1e-6)


def test_standard_activation_paths_agree():
    # ReLU goes through its fused mask path on [N, C·S']; the generic σ' path must give the same
    layer = _layer(2, padding=1, act="relu")
    x = _input(layer)
    h, jsq = layer(x, return_jacobian=True)
    z = layer.conv(x)
    slope = (z > 0).to(DT)
    torch.testing.assert_close(jsq, CF.conv_layer_jacobian_sq(slope, layer.row_norms_sq(x.shape[2:])))
    torch.testing.assert_close(h, torch.relu(z))


def test_collector_records_conv_terms_and_plain_forward_computes_nothing_extra():
    model = torch.nn.Sequential(_layer(2, padding=1), _layer(2, stride=2, c_in=4, c_out=4, act="gelu"))
    x = _input(model[0])
    with dreg.collect(model) as terms:
        h = model(x)
    assert sorted(terms.per_layer()) == ["0", "1"]
    _, j0 = model[0](x, return_jacobian=True)
    _, j1 = model[1](model[0](x), return_jacobian=True)
    torch.testing.assert_close(terms.penalty(), j0.mean() + j1.mean())
    assert h.shape == (2, 4, 3, 2)
    assert model[0](x).shape == (2, 4, 7, 6)  # outside a collector: just σ(conv(x))


def test_dreg_gradient_reaches_kernel_coefficients_and_input():
    layer = _layer(1, padding=1)
    x = _input(layer).requires_grad_(True)
    _, jsq = layer(x, return_jacobian=True)
    jsq.mean().backward()
    for t in (x.grad, layer.conv.weight.grad, layer.activation.coefficients.grad):
        assert t is not None and torch.isfinite(t).all() and t.abs().sum() > 0
    assert layer.conv.bias.grad is not None  # through σ'(z)


def test_max_slope_bounds_the_observed_slope():
    layer = _layer(2, padding=1)
    x = _input(layer, scale=4.0)
    assert (layer.derivative(x).abs().amax(dim=(0, 2, 3)) <= layer.max_slope() + 1e-9).all()


@pytest.mark.parametrize("make,fragment", [
    (lambda: ConvHiddenLayer(2, 4, 3, torch.nn.ReLU()), "activation must provide value_and_derivative"),
    (lambda: ConvHiddenLayer(2, 4, 3, PolynomialActivation(4)), "expected dim=1, got dim=None"),
    (lambda: ConvHiddenLayer(2, 4, 3, PolynomialActivation(4, dim=-1)), "expected dim=1, got dim=-1"),
    (lambda: ConvHiddenLayer(2, 4, 3, PolynomialActivation(5, dim=1)), "activation has 5 features, expected "
                                                                       "out_channels=4"),
    (lambda: ConvHiddenLayer(2, 4, 3, ReLU(), spatial_dims=3), "spatial_dims must be 1 (Conv1d) or 2"),
])
def test_bad_construction_raises_value_error(make, fragment):
    with pytest.raises(ValueError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        make()


GEOMETRY = "a positive integer or a tuple of 2 positive integers (spatial_dims=2)"
PADDING = "'valid', 'same', a non-negative integer or a tuple of 2 non-negative integers (spatial_dims=2)"


@pytest.mark.parametrize("kwargs, message", [
    # zero channels built zero-element weights (a torch UserWarning), -1 a RuntimeError
    (dict(in_channels=0), "expected in_channels to be a positive integer, got 0"),
    (dict(out_channels=-1), "expected out_channels to be a positive integer, got -1"),
    (dict(in_channels=2.0), "expected in_channels to be a positive integer, got 2.0"),
    (dict(groups=0), "expected groups to be a positive integer, got 0"),
    (dict(groups=3), "groups must divide in_channels and out_channels, got groups=3 and in_channels=2"),
    (dict(in_channels=6, groups=3), "groups must divide in_channels and out_channels, got groups=3 and out_channels=4"),
    # kernel 0 built, then failed in the forward; a 3-tuple built a 3-D kernel for a Conv2d
    (dict(kernel_size=0), f"kernel_size must be {GEOMETRY}, got 0"),
    (dict(kernel_size=(3, 0)), f"kernel_size must be {GEOMETRY}, got (3, 0)"),
    (dict(kernel_size=(3, 3, 3)), f"kernel_size must be {GEOMETRY}, got (3, 3, 3)"),
    (dict(kernel_size=3.0), f"kernel_size must be {GEOMETRY}, got 3.0"),
    (dict(stride=0), f"stride must be {GEOMETRY}, got 0"),
    (dict(stride=(1, -2)), f"stride must be {GEOMETRY}, got (1, -2)"),
    (dict(dilation=0), f"dilation must be {GEOMETRY}, got 0"),
    (dict(padding=-1), f"padding must be {PADDING}, got -1"),
    (dict(padding=(1,)), f"padding must be {PADDING}, got (1,)"),
    (dict(padding="full"), f"padding must be {PADDING}, got 'full'"),
    (dict(padding="same", stride=2), "padding 'same' needs stride 1 (a strided conv's output is smaller than its "
                                     "input), got stride=2"),
    (dict(padding_mode="mirror"), "padding_mode must be one of zeros, reflect, replicate, circular, got 'mirror'"),
])
def test_bad_geometry_is_refused_before_anything_is_built(kwargs, message):
    import warnings

    args = dict(in_channels=2, out_channels=4, kernel_size=3, activation=ReLU()) | kwargs
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # refused before torch builds (and warns about) a weight
        with pytest.raises(ValueError, match=re.escape(message) + "$"):
            ConvHiddenLayer(**args)


def test_valid_geometries_still_build_and_run():
    x1, x2 = torch.randn(2, 2, 9, dtype=DT), torch.randn(2, 2, 7, 6, dtype=DT)
    for kw, x in ((dict(kernel_size=(3,), padding="same", stride=(1,), spatial_dims=1), x1),
                  (dict(kernel_size=[3, 2], stride=(1, 2), padding=(0, 1), dilation=[1, 2]), x2),
                  (dict(kernel_size=1, padding="valid", groups=2), x2),
                  (dict(kernel_size=np.int64(3), padding=np.int64(1)), x2)):
        layer = ConvHiddenLayer(2, 4, activation=ReLU(), dtype=DT, **kw)
        h, jsq = layer(x, return_jacobian=True)
        assert h.shape[:2] == (2, 4) and jsq.shape == (2,)


def test_bad_input_shape_names_expected_and_given():
    layer = _layer(2)
    for bad in (torch.randn(2, 3, 7, 6, dtype=DT), torch.randn(2, 7, 6, dtype=DT)):
        with pytest.raises(ValueError, match=r"expected input \[N, C, H, W\] with C=2 \(batched\), got shape"):
            layer(bad, return_jacobian=True)


def test_functional_row_norms_doc_and_errors():
    w = torch.ones(1, 1, 3, dtype=DT)
    assert CF.conv_row_norms_sq(w, (4,), padding=1).tolist() == [[2.0, 3.0, 3.0, 2.0]]
    with pytest.raises(ValueError, match=r"got weight \(1, 1, 3\) and input shape \(4, 4\)"):
        CF.conv_row_norms_sq(w, (4, 4))
    with pytest.raises(ValueError, match="unknown padding_mode 'mirror'"):
        CF.conv_row_norms_sq(w, (4,), padding=1, padding_mode="mirror")
    with pytest.raises(ValueError, match=r"expected row norms of shape \(1, 3\), got \(3,\)"):
        CF.conv_layer_jacobian_sq(torch.ones(2, 1, 3), torch.ones(3))


def test_jit_trace_of_the_dreg_term_is_refused():
    """The row norms depend on the spatial size, which a trace would freeze: refused, never wrong."""
    import warnings

    layer = ConvHiddenLayer(2, 3, 3, PolynomialActivation(3, dim=1), padding=1)

    class WithJacobian(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, x):
            return self.m(x, return_jacobian=True)

    with warnings.catch_warnings(), pytest.raises(ValueError, match="torch.jit.trace, which would freeze"):
        warnings.simplefilter("ignore")
        torch.jit.trace(WithJacobian(layer), torch.randn(2, 2, 6, 6))
    with warnings.catch_warnings():  # without the term a trace is fine
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(layer, torch.randn(2, 2, 6, 6))
    x = torch.randn(2, 2, 4, 9)
    assert torch.allclose(traced(x), layer(x))
