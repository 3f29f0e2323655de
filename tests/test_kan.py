import contextlib

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.interpolate import BSpline

from chainzrule.kan import KAN, KANLinear, kan_num_parameters, kan_width_for_params


@contextlib.contextmanager
def one_thread():
    """Tiny ops: threads only contend on a shared CPU."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


def n_params(module):
    return sum(p.numel() for p in module.parameters())


# ----------------------------------------------------------------------------------------------
# KANLinear
# ----------------------------------------------------------------------------------------------


def test_layer_shapes_and_parameters():
    layer = KANLinear(5, 3, grid_size=4, spline_order=2)
    assert layer.base_weight.shape == (3, 5)
    assert layer.spline_weight.shape == (3, 5, 6)
    assert layer.grid.shape == (5, 4 + 2 * 2 + 1)
    assert "grid" in dict(layer.named_buffers())
    for shape in [(7, 5), (2, 3, 5), (5,)]:
        assert layer(torch.randn(shape)).shape == (*shape[:-1], 3)
    assert n_params(layer) == 3 * 5 * (4 + 2 + 1)


def test_layer_leading_dims_match_flat():
    layer = KANLinear(4, 2)
    x = torch.randn(3, 6, 4)
    torch.testing.assert_close(layer(x).reshape(18, 2), layer(x.reshape(18, 4)))


def test_forward_is_the_sum_of_edge_functions():
    """y_i = sum_j base_w[i,j] silu(x_j) + sum_{j,k} c[i,j,k] B_k(x_j), written out with einsum."""
    layer = KANLinear(3, 2).double()
    x = torch.rand(6, 3, dtype=torch.float64) * 2 - 1
    bases = layer.b_splines(x)  # [6, 3, 8]
    ref = F.silu(x) @ layer.base_weight.T + torch.einsum("bjk,ijk->bi", bases, layer.spline_weight)
    torch.testing.assert_close(layer(x), ref)


def test_grid_is_the_arange_knots_on_the_default_device_meta_included():
    """The knots are computed on the CPU (the same values as ``arange(-K, G+K+1) * h + lo``) and
    moved to the default device; under ``torch.device("meta")`` (parameter counting) the grid is
    a meta tensor and the count equals the real model's."""
    layer = KANLinear(3, 2, grid_size=7, spline_order=3, grid_range=(-2.3, 1.1))
    h = (1.1 - -2.3) / 7
    expected = (torch.arange(-3, 7 + 3 + 1) * h + -2.3).expand(3, -1)
    assert torch.equal(layer.grid, expected)
    with torch.device("meta"):
        meta = KAN(4, [6, 5], 3, grid_size=5)
    assert all(b.is_meta for b in meta.buffers()) and all(p.is_meta for p in meta.parameters())
    real = KAN(4, [6, 5], 3, grid_size=5)
    assert sum(p.numel() for p in meta.parameters()) == sum(p.numel() for p in real.parameters())


@pytest.mark.parametrize("grid_size,spline_order", [(5, 3), (3, 1), (8, 2), (4, 0), (1, 3)])
def test_partition_of_unity_inside_grid_range(grid_size, spline_order):
    layer = KANLinear(2, 1, grid_size=grid_size, spline_order=spline_order, grid_range=(-2.0, 1.0)).double()
    x = torch.linspace(-2, 1, 301, dtype=torch.float64)[:-1].view(-1, 1).expand(-1, 2)
    bases = layer.b_splines(x)
    assert bases.shape == (300, 2, grid_size + spline_order)
    assert (bases >= -1e-12).all()
    torch.testing.assert_close(bases.sum(-1), torch.ones(300, 2, dtype=torch.float64))
    # vanish beyond the range widened by spline_order grid steps
    h = 3.0 / grid_size
    far = torch.tensor([[-2 - spline_order * h - 1e-3, 1 + spline_order * h + 1e-3]], dtype=torch.float64)
    assert layer.b_splines(far).abs().max() == 0


def test_bases_match_scipy():
    layer = KANLinear(1, 1, grid_size=5, spline_order=3).double()
    knots = layer.grid[0].numpy()
    x = np.linspace(-1, 0.999, 50)
    ours = layer.b_splines(torch.from_numpy(x).view(-1, 1))[:, 0].numpy()
    ref = BSpline.design_matrix(x, knots, 3).toarray()
    np.testing.assert_allclose(ours, ref, atol=1e-12)


def test_repr_and_reset_parameters():
    layer = KANLinear(3, 2, grid_size=4, grid_range=(-3, 3))
    assert "in_features=3, out_features=2, grid_size=4, spline_order=3, grid_range=(-3.0, 3.0)" in repr(layer)
    torch.manual_seed(1)
    layer.reset_parameters()
    a = [p.detach().clone() for p in layer.parameters()]
    torch.manual_seed(1)
    layer.reset_parameters()
    assert all(torch.equal(p, q) for p, q in zip(a, layer.parameters()))
    assert layer.spline_weight.abs().max() <= 0.1 / 3**0.5


def test_custom_base_activation():
    layer = KANLinear(2, 2, base_activation=torch.nn.Tanh)
    assert isinstance(layer.base_activation, torch.nn.Tanh)
    layer = KANLinear(2, 2, base_activation=torch.nn.GELU())
    assert isinstance(layer.base_activation, torch.nn.GELU)


def test_feature_mismatch_and_bad_config():
    with pytest.raises(ValueError, match="expected 4 input features, got 5"):
        KANLinear(4, 2)(torch.randn(3, 5))
    with pytest.raises(ValueError, match="expected 4 input features, got 3"):
        KAN(4, [8], 2)(torch.randn(3, 3))
    with pytest.raises(ValueError, match="expected grid_size to be a positive integer, got 0"):
        KANLinear(4, 2, grid_size=0)
    with pytest.raises(ValueError, match="spline_order >= 0"):
        KANLinear(4, 2, spline_order=-1)
    with pytest.raises(ValueError, match="grid_range"):
        KANLinear(4, 2, grid_range=(1, 1))
    with pytest.raises(ValueError, match="expected every hidden width to be a positive integer, got 0"):
        KAN(4, [8, 0], 2)
    with pytest.raises(ValueError, match="expected in_features to be a positive integer, got 4.5"):
        KAN(4.5, [8], 2)


# ----------------------------------------------------------------------------------------------
# KAN and parameter counting
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "in_f,hidden,out_f,g,k",
    [(784, [64], 10, 5, 3), (8, 16, 1, 3, 2), (10, [], 5, 5, 3), (20, [7, 9, 4], 3, 8, 1), (3, [2], 2, 1, 0)],
)
def test_parameter_count_closed_form(in_f, hidden, out_f, g, k):
    net = KAN(in_f, hidden, out_f, grid_size=g, spline_order=k)
    assert n_params(net) == kan_num_parameters(in_f, hidden, out_f, g, k)
    widths = [in_f, *([hidden] if isinstance(hidden, int) else hidden), out_f]
    assert len(net.layers) == len(widths) - 1
    assert net(torch.randn(4, in_f)).shape == (4, out_f)


@pytest.mark.parametrize(
    "target,in_f,out_f",
    [(50_000, 784, 10), (269_322, 784, 10), (1_000_000, 784, 10), (3_000, 8, 1), (40_000, 384, 5)],
)
@pytest.mark.parametrize("depth", [1, 2, 3])
def test_width_for_params_within_5_percent(target, in_f, out_f, depth):
    w = kan_width_for_params(target, in_f, out_f, depth=depth, grid_size=5, spline_order=3)
    count = kan_num_parameters(in_f, [w] * depth, out_f, 5, 3)
    assert abs(count - target) / target < 0.05
    # and no other width is closer
    best = min(range(1, 400), key=lambda v: abs(kan_num_parameters(in_f, [v] * depth, out_f, 5, 3) - target))
    assert abs(count - target) == abs(kan_num_parameters(in_f, [best] * depth, out_f, 5, 3) - target)


def test_width_for_params_small_target_and_errors():
    assert kan_width_for_params(1, 784, 10) == 1
    with pytest.raises(ValueError, match="expected depth to be a positive integer, got 0"):
        kan_width_for_params(1000, 10, 2, depth=0)


def test_learns_a_synthetic_regression():
    torch.manual_seed(0)
    x = torch.rand(256, 2) * 2 - 1
    y = torch.sin(torch.pi * x[:, :1]) + x[:, 1:] ** 2  # [256, 1]
    net = KAN(2, [8], 1, grid_size=5)
    opt = torch.optim.Adam(net.parameters(), lr=0.02)
    with one_thread():
        first = F.mse_loss(net(x), y).item()
        for _ in range(200):
            opt.zero_grad()
            loss = F.mse_loss(net(x), y)
            loss.backward()
            opt.step()
    assert loss.item() < first / 20
    assert loss.item() < 0.01


def test_learns_a_synthetic_classification():
    torch.manual_seed(0)
    x = torch.randn(400, 2)
    y = ((x ** 2).sum(1) > 1.4).long()  # a ring: not linearly separable
    net = KAN(2, 6, 2)
    opt = torch.optim.Adam(net.parameters(), lr=0.03)
    with one_thread():
        for _ in range(150):
            opt.zero_grad()
            F.cross_entropy(net(x), y).backward()
            opt.step()
    assert (net(x).argmax(1) == y).float().mean() > 0.95


def test_double_backward():
    torch.manual_seed(0)
    net = KAN(3, [5], 2).double()
    x = torch.rand(4, 3, dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(net(x).sum(), x, create_graph=True)
    assert g.shape == (4, 3) and g.requires_grad
    (g ** 2).sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())
    assert any(p.grad.abs().sum() > 0 for p in net.parameters())
    layer = KANLinear(2, 2, grid_size=3).double()
    xs = (torch.rand(3, 2, dtype=torch.float64) * 1.6 - 0.8).requires_grad_(True)
    assert torch.autograd.gradgradcheck(layer, (xs,))


def test_float32_default_and_float64():
    net = KAN(3, [4], 2)
    assert net(torch.randn(2, 3)).dtype == torch.float32
    assert net.double()(torch.randn(2, 3, dtype=torch.float64)).dtype == torch.float64
