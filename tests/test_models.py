"""Models: shapes, exact parameter counts, width matching, validation."""

import pytest
import torch

from chainzrule import ChainzRuleMLP, MLP, count_parameters, match_width, num_parameters


@pytest.mark.parametrize("hidden", [7, [5], [16, 9], [3, 4, 5]])
@pytest.mark.parametrize("degree", [1, 3, 5])
def test_parameter_counts_are_exact(hidden, degree):
    cr = ChainzRuleMLP(11, hidden, 4, degree=degree)
    mlp = MLP(11, hidden, 4)
    assert count_parameters(cr) == num_parameters("chainzrule", 11, hidden, 4, degree=degree)
    assert count_parameters(mlp) == num_parameters("mlp", 11, hidden, 4)
    assert count_parameters(cr) - count_parameters(mlp) == (degree + 1) * sum([hidden] if isinstance(hidden, int) else hidden)


def test_known_count_mnist_shape():
    # 784·256+256 + 256·256+256 + 256·10+10
    assert num_parameters("mlp", 784, [256, 256], 10) == 200960 + 65792 + 2570


@pytest.mark.parametrize("target", [5_000, 50_000, 269_322, 1_000_000])
@pytest.mark.parametrize("kind", ["mlp", "chainzrule"])
@pytest.mark.parametrize("depth", [1, 2, 3])
def test_match_width_within_tolerance(target, kind, depth):
    w = match_width(target, 784, 10, depth, kind=kind)
    got = num_parameters(kind, 784, [w] * depth, 10)
    assert abs(got - target) / target <= 0.05
    # no other width is closer
    for other in (w - 1, w + 1):
        if other >= 1:
            assert abs(num_parameters(kind, 784, [other] * depth, 10) - target) >= abs(got - target)


def test_match_width_refuses_impossible_target():
    with pytest.raises(ValueError, match="within 5%"):
        match_width(100, 784, 10, 2)


def test_forward_shapes_and_tensor_output():
    x = torch.randn(3, 2, 6)
    for net in (MLP(6, [8, 8], 5, activation="gelu"), ChainzRuleMLP(6, [8, 8], 5)):
        out = net(x)
        assert isinstance(out, torch.Tensor) and out.shape == (3, 2, 5)
        assert net.features(x).shape == (3, 2, 8)


def test_defaults_for_tracking():
    assert all(l.track_jacobian for l in ChainzRuleMLP(4, [3], 2).hidden_layers)
    assert not any(l.track_jacobian for l in MLP(4, [3], 2).hidden_layers)


def test_custom_head_is_used():
    head = torch.nn.Linear(8, 1, bias=False)
    net = MLP(4, [8], 99, head=head)
    assert net.head is head and net(torch.randn(2, 4)).shape == (2, 1)


@pytest.mark.parametrize(
    "build, fragment",
    [
        (lambda: MLP(4, [8], 2, activation="swish"), "unknown activation 'swish'"),
        (lambda: MLP(4, [8], 2, activation="poly"), "use ChainzRuleMLP"),
        (lambda: ChainzRuleMLP(4, [8], 2, degree=0), "degree must be an integer >= 1, got 0"),
        (lambda: ChainzRuleMLP(4, [8], 2, init="relu6"), "unknown init 'relu6'"),
        (lambda: MLP(4, [], 2), "hidden must be"),
        (lambda: MLP(4, [8, 0], 2), "hidden must be"),
        (lambda: MLP(0, [8], 2), "in_features must be a positive integer, got 0"),
    ],
)
def test_bad_configuration_raises_value_error(build, fragment):
    with pytest.raises(ValueError, match=fragment):
        build()


def test_input_feature_mismatch():
    with pytest.raises(ValueError, match=r"expected 6 input features.*got shape \(2, 7\)"):
        ChainzRuleMLP(6, [4], 2)(torch.randn(2, 7))


def test_state_dict_round_trip():
    a, b = ChainzRuleMLP(5, [6, 6], 3), ChainzRuleMLP(5, [6, 6], 3)
    b.load_state_dict(a.state_dict())
    x = torch.randn(4, 5)
    torch.testing.assert_close(a(x), b(x))
