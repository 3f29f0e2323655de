"""Models: shapes, exact parameter counts, width matching, validation."""

import pytest
import torch

from chainzrule import ChainzRuleMLP, HiddenLayer, MLP, count_parameters, match_width, num_parameters


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


@pytest.mark.parametrize("make", [lambda: ChainzRuleMLP(6, [8, 7], 5), lambda: MLP(6, [8, 7], 5, activation="gelu")],
                         ids=["cr", "mlp"])
def test_plain_forward_computes_no_jacobian_and_explicit_return_shapes(make, monkeypatch):
    net = make()
    x = torch.randn(3, 2, 6)
    calls = []
    original = HiddenLayer.forward_with_jacobian
    monkeypatch.setattr(HiddenLayer, "forward_with_jacobian", lambda self, x: calls.append(self) or original(self, x))
    logits = net(x)  # DREG is opt-in for every model: no Jacobian unless asked
    assert isinstance(logits, torch.Tensor) and calls == []
    out, jsq = net(x, return_jacobian=True)
    assert len(calls) == 2 and out.shape == (3, 2, 5) and jsq.shape == (3, 2, 2)
    torch.testing.assert_close(out, logits)
    assert (jsq > 0).all()
    with pytest.raises(ValueError, match=r"expected 6 input features.*got shape \(2, 7\)"):
        net(torch.randn(2, 7), return_jacobian=True)


def test_basis_option_reaches_every_activation():
    net = ChainzRuleMLP(4, [5, 6], 2, degree=4, basis="chebyshev", range_control="tanh", bound=2.0)
    assert net.poly_options == dict(degree=4, init="gelu", bound=2.0, range_control="tanh", basis="chebyshev")
    for layer in net.hidden_layers:
        act = layer.activation
        assert (act.basis, act.degree, act.range_control, act.bound) == ("chebyshev", 4, "tanh", 2.0)


def test_custom_head_is_used():
    head = torch.nn.Linear(8, 1, bias=False)
    net = MLP(4, [8], 99, head=head)
    assert net.head is head and net(torch.randn(2, 4)).shape == (2, 1)


@pytest.mark.parametrize(
    "build, fragment",
    [
        (lambda: MLP(4, [8], 2, activation="swish"), "unknown activation 'swish'"),
        (lambda: MLP(4, [8], 2, activation="poly"), "use ChainzRuleMLP"),
        (lambda: ChainzRuleMLP(4, [8], 2, degree=0), r"degree must be an integer in 1\.\.12 \(higher degrees lose float32 precision\), got 0"),
        (lambda: ChainzRuleMLP(4, [8], 2, init="relu6"), "unknown init 'relu6'"),
        (lambda: ChainzRuleMLP(4, [8], 2, basis="hermite"), "unknown basis 'hermite': expected one of legendre"),
        (lambda: ChainzRuleMLP(4, [8], 2, range_control="clip"), "unknown range_control 'clip'"),
        (lambda: MLP(4, [], 2), "hidden must be"),
        (lambda: ChainzRuleMLP(4, [8], 3, head=torch.nn.Linear(7, 3)),
         r"expected a head taking the last hidden width, 8 features, got Linear with in_features=7"),
        (lambda: MLP(4, [8], 3, head="linear"), r"expected head to be an nn.Module \(or None for nn.Linear\), got str"),
        (lambda: MLP(4, [8, 0], 2), "hidden must be"),
        (lambda: MLP(0, [8], 2), "expected in_features to be a positive integer, got 0"),
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


def test_numpy_scalars_and_bad_inputs_are_handled_before_work():
    """NumPy integers and floats are numbers (as Python's are), bools are not; a 0-d input, a
    wrong row-norm shape, a string step count and a zero-width CNN head are refused with a
    ConfigError (a ValueError) naming what was expected and what was given."""
    import numpy as np

    import chainzrule as cz
    from chainzrule.activations import GELU, ReLU
    from chainzrule.cnn import CNN
    from chainzrule.dreg import dreg_penalty, lambda_schedule
    from chainzrule.errors import ConfigError

    m = cz.ChainzRuleMLP(np.int64(10), np.int64(8), np.int64(3))
    assert m(torch.randn(2, 10)).shape == (2, 3) and type(m.in_features) is int
    assert [layer.out_features for layer in cz.ChainzRuleMLP(10, np.array([8, 4]), 3).hidden_layers] == [8, 4]
    act = cz.PolynomialActivation(np.int64(4), degree=np.int64(3), bound=np.float32(2.0))
    assert act.bound == 2.0 and type(act.degree) is int
    assert lambda_schedule("constant", np.float32(1e-3))(0) == pytest.approx(1e-3)
    cases = [
        (lambda: m(torch.tensor(1.0)), "expected 10 input features in the last dimension, got shape ()"),
        (lambda: cz.PolynomialActivation(4, bound=True), "bound must be a positive finite number"),
        (lambda: cz.ChainzRuleMLP(10, "8", 3), "hidden must be a positive int"),
        (lambda: lambda_schedule("constant", 1e-3, total_steps="10"), "got '10', 0"),
        (lambda: CNN((1, 8, 8), [4], [8], 0), "expected out_features to be a positive integer, got 0"),
        (lambda: GELU().value_and_jacobian_sq(torch.randn(2, 4), torch.ones(3)), r"shape \(4,\).*got \(3,\)"),
        (lambda: ReLU().value_and_jacobian_sq(torch.randn(2, 4), torch.ones(3)), r"shape \(4,\).*got \(3,\)"),
    ]
    for make, message in cases:
        with pytest.raises(ConfigError, match=message):
            make()
    empty = torch.ones(0, 2, requires_grad=True)
    assert dreg_penalty(empty).item() == 0.0 == dreg_penalty(empty, mask=torch.ones(0, dtype=torch.bool)).item()


def test_non_tensor_inputs_and_models_are_refused_by_name():
    """A list, a numpy array or a string where a tensor or a module belongs is a ConfigError naming
    the type (it was an AttributeError: "... has no attribute 'dim'")."""
    import numpy as np

    from chainzrule import hidden_layers
    from chainzrule.cnn import CNN
    from chainzrule.errors import ConfigError

    net = ChainzRuleMLP(4, [8], 3)
    for x in ([[0.0] * 4], np.zeros((2, 4))):
        for call in (lambda: net(x), lambda: net(x, return_jacobian=True), lambda: net.hidden_layers[0](x)):
            with pytest.raises(ConfigError, match=rf"expected a tensor \[\.\.\., 4\], got {type(x).__name__}"):
                call()
    with pytest.raises(ConfigError, match=r"expected a tensor \[N, 64\] or \[N, 1, 8, 8\], got ndarray"):
        CNN((1, 8, 8), [2], [4], 2)(np.zeros((2, 64)))
    for call in (lambda: count_parameters("net"), lambda: hidden_layers(3)):
        with pytest.raises(ConfigError, match=r"expected the model to be an nn.Module, got (str|int)"):
            call()
