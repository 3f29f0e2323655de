"""Input-validation edges found by an audit: bad input is refused up front with a ValueError
(ConfigError / DataError) naming what was expected and what was given, never a crash deep inside
(IndexError, ZeroDivisionError, AttributeError, TypeError) or a silent number.
"""

import json
import math
import re

import pytest
import torch

from chainzrule import functional as CF
from chainzrule.apgd import apgd_accuracy
from chainzrule.attacks import adversarial_accuracy, fgsm, pgd
from chainzrule.checkpoint import META, load_checkpoint, save_checkpoint
from chainzrule.cnn import CNN
from chainzrule.config import TrainConfig
from chainzrule.corruptions import corruption_accuracy
from chainzrule.diagnostics import jacobian_norms, layer_report, sensitivity_summary
from chainzrule.errors import ConfigError, DataError
from chainzrule.models import MLP, ChainzRuleMLP, count_parameters, match_width, num_parameters
from chainzrule.poly import coefficient_parameters, parameter_groups
from chainzrule.temperature import LogitTemperature, apply_temperature, temperature_of
from chainzrule.train import build_model

DT = torch.float64


def shown(v) -> str:
    """The regex of ``repr(v)``, as the messages show what was given."""
    return re.escape(repr(v))


# --------------------------------------------------------------------------------------------
# diagnostics: empty batches, the feature count on the whole input
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("report", [sensitivity_summary, layer_report])
def test_diagnostics_refuse_an_empty_batch(report):
    with pytest.raises(ConfigError, match=r"expected at least one example, got 0 \(inputs of shape \(0, 4\)\)"):
        report(ChainzRuleMLP(4, [8], 3), torch.randn(0, 4))


def test_jacobian_norms_of_an_empty_batch_stay_empty():
    assert jacobian_norms(MLP(4, [8], 3), torch.randn(0, 4)).shape == (0,)


@pytest.mark.parametrize("method", ["exact", "projection", "auto"])
@pytest.mark.parametrize("model", [MLP(4, [8], 3), ChainzRuleMLP(4, [8], 3), torch.nn.Linear(4, 2)])
def test_jacobian_norms_name_the_whole_input_shape(model, method):
    with pytest.raises(ValueError, match=r"expected 4 input features in the last dimension, got shape \(3, 5\)"):
        jacobian_norms(model, torch.randn(3, 5), method=method)
    with pytest.raises(ValueError, match=r"expected 4 input features .*got shape \(3, 5\)"):
        sensitivity_summary(model, torch.randn(3, 5))


def test_jacobian_norms_feature_check_keeps_valid_shapes():
    cnn = CNN((1, 6, 6), [2], [4], 3)
    flat = torch.rand(2, 36)
    torch.testing.assert_close(jacobian_norms(cnn, flat), jacobian_norms(cnn, flat.view(2, 1, 6, 6)))
    with pytest.raises(ConfigError, match=r"expected 36 input features .*\[N, 1, 6, 6\]\), got shape \(2, 35\)"):
        jacobian_norms(cnn, torch.rand(2, 35))
    lin = torch.nn.Linear(3, 2)  # extra per-example dims [N, T, in] are fine
    assert jacobian_norms(lin, torch.randn(2, 5, 3)).shape == (2,)


# --------------------------------------------------------------------------------------------
# logit temperature
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("tau", [0.0, -2.0, math.nan, math.inf, -math.inf, True, "2", None])
def test_apply_temperature_refuses_a_non_positive_or_non_finite_tau(tau):
    net = torch.nn.Sequential(torch.nn.Linear(3, 2))
    with pytest.raises(ConfigError, match=rf"expected a finite logit temperature tau > 0, got {shown(tau)}"):
        apply_temperature(net, tau)
    assert temperature_of(net) == 1.0 and not net._forward_hooks  # refused before any hook went on
    with pytest.raises(ConfigError, match="expected a finite logit temperature tau > 0"):
        LogitTemperature(tau)


def test_apply_temperature_keeps_valid_taus():
    net = apply_temperature(MLP(3, [4], 2), 0.5)
    assert temperature_of(net) == 0.5
    assert apply_temperature(MLP(3, [4], 2), 1) is not None  # an int τ = 1: unchanged


@pytest.mark.parametrize("value, message", [
    (0.0, r"logit_scale must be a finite number > 0, got 0.0"),
    (0, r"logit_scale must be a finite number > 0, got 0"),
    (-1.0, r"logit_scale must be a finite number > 0, got -1.0"),
    (math.nan, r"logit_scale must be a finite number > 0, got nan"),
])
def test_train_config_refuses_a_non_positive_logit_scale(value, message):
    """The config's temperature (``logit_scale``, 1 = none) must be > 0: 0 is refused too."""
    with pytest.raises(ConfigError, match=message):
        TrainConfig(logit_scale=value)


# --------------------------------------------------------------------------------------------
# checkpoint metadata
# --------------------------------------------------------------------------------------------


@pytest.fixture
def checkpoint(tmp_path):
    cfg = TrainConfig(dataset="synthetic", hidden=(4,))
    save_checkpoint(tmp_path, build_model(cfg, 5, 3, "classification"), cfg, in_features=5, num_classes=3,
                    task="classification")
    return tmp_path, json.loads((tmp_path / META).read_text())


def test_checkpoint_metadata_must_be_a_json_object(checkpoint):
    folder, meta = checkpoint
    (folder / META).write_text(json.dumps([meta]))
    with pytest.raises(DataError, match=rf"{META}: .*expected a JSON object of checkpoint metadata, got a JSON array"):
        load_checkpoint(folder)


@pytest.mark.parametrize("version, shown", [("2", "'2'"), (2.0, "2.0"), (None, "None"), (True, "True")])
def test_checkpoint_format_version_must_be_an_integer(checkpoint, version, shown):
    folder, meta = checkpoint
    (folder / META).write_text(json.dumps({**meta, "format_version": version}))
    with pytest.raises(DataError, match=rf"{META}: .*expected an integer format_version, got {shown}"):
        load_checkpoint(folder)


@pytest.mark.parametrize("version", [0, -1])
def test_checkpoint_format_version_below_one_is_refused(checkpoint, version):
    folder, meta = checkpoint
    (folder / META).write_text(json.dumps({**meta, "format_version": version}))
    with pytest.raises(DataError, match=rf"expected format_version >= 1, got {version}"):
        load_checkpoint(folder)


def test_checkpoint_known_formats_still_load(checkpoint):
    folder, meta = checkpoint
    load_checkpoint(folder)
    del meta["format_version"]  # format 1 did not always write it
    (folder / META).write_text(json.dumps(meta))
    load_checkpoint(folder)
    (folder / META).write_text(json.dumps({**meta, "format_version": 3}))
    with pytest.raises(DataError, match="format 3 is newer"):
        load_checkpoint(folder)


# --------------------------------------------------------------------------------------------
# chainzrule.functional: bound, degree, coefficient and feature shapes
# --------------------------------------------------------------------------------------------

A = CF.basis_matrix("legendre", 3, 3.0) @ CF.fit_coefficients("gelu", 3, 3.0).unsqueeze(1).expand(4, 2)  # [4, 2]
Z = torch.randn(5, 2, dtype=DT)
RN = torch.ones(2, dtype=DT)


def _bound_calls(bound):
    return [
        lambda: CF.basis_matrix("legendre", 3, bound),
        lambda: CF.basis_matrix_np("chebyshev", 3, bound),
        lambda: CF.fit_coefficients("gelu", 3, bound),
        lambda: CF.poly_activation(Z, A, bound),
        lambda: CF.poly_activation(Z, A, bound, "tanh"),
        lambda: CF.poly_activation_and_slope(Z, A, bound),
        lambda: CF.poly_activation_and_jacobian_sq(Z, A, RN, bound),
        lambda: CF.poly_max_slope(A, bound),
    ]


@pytest.mark.parametrize("bound", [0.0, -1.0, math.nan, math.inf, True, "3"])
def test_functional_refuses_a_bad_working_interval(bound):
    for call in _bound_calls(bound):
        with pytest.raises(ValueError, match=rf"expected a finite working-interval bound > 0, got {shown(bound)}"):
            call()


def _coefficient_calls(a, z=Z):
    return [
        lambda: CF.horner(a, z),
        lambda: CF.poly_activation(z, a, 3.0),
        lambda: CF.poly_activation(z, a, 3.0, "tanh"),
        lambda: CF.poly_activation_and_slope(z, a, 3.0),
        lambda: CF.poly_activation_and_jacobian_sq(z, a, RN, 3.0),
    ]


@pytest.mark.parametrize("a", [A[:1], A[:, 0], A.unsqueeze(0)])
def test_functional_refuses_degree_zero_or_non_matrix_coefficients(a):
    for call in _coefficient_calls(a) + [lambda: CF.poly_max_slope(a, 3.0)]:
        with pytest.raises(ValueError, match=r"expected power coefficients a of shape \[D\+1, F\] with degree D >= 1, "
                                             f"got shape {re.escape(str(tuple(a.shape)))}"):
            call()


def test_functional_refuses_a_feature_count_mismatch():
    z = torch.randn(5, 3, dtype=DT)
    for call in _coefficient_calls(A, z):
        with pytest.raises(ValueError, match=r"expected (z|u) of shape \[\.\.\., 2\] \(the coefficients' feature "
                                             r"count\), got shape \(5, 3\)"):
            call()


def test_functional_keeps_a_shared_coefficient_column_and_unbatched_inputs():
    a1 = A[:, :1]  # one column shared by every feature: broadcast, as before
    h = CF.poly_activation(Z, a1, 3.0)
    torch.testing.assert_close(h, CF.poly_activation(Z, a1.expand(4, 2), 3.0), rtol=0, atol=0)
    assert CF.poly_activation(Z[0], A, 3.0).shape == (2,)  # z [F]


@pytest.mark.parametrize("degree", [0, -1, 2.0, True, 13, 100])
def test_functional_refuses_a_degree_outside_1_to_12(degree):
    """Below 1 there is no slope to learn; above 12 float32 loses the polynomial (DEGREE_LIMIT)."""
    for call in (lambda: CF.fit_coefficients("gelu", degree, 3.0), lambda: CF.basis_matrix("legendre", degree, 3.0)):
        with pytest.raises(ValueError, match=rf"expected an integer degree in 1\.\.12, got {shown(degree)}"):
            call()


def test_functional_checks_leave_valid_results_unchanged():
    """The checked entry points give bit-identical numbers to the unchecked Horner they wrap."""
    from chainzrule.functional.basis import _horner

    c = Z.clamp(-3.0, 3.0)
    p, dp = _horner(A, c)
    h, s = CF.poly_activation_and_slope(Z, A, 3.0)
    assert torch.equal(s, dp) and torch.equal(h, torch.addcmul(p, dp, Z - c))
    assert torch.equal(CF.poly_activation(Z, A, 3.0), h)


# --------------------------------------------------------------------------------------------
# robustness: empty evaluation sets
# --------------------------------------------------------------------------------------------


def _attack_setup():
    model = torch.nn.Linear(4, 2)
    loss = lambda xb, yb: torch.nn.functional.cross_entropy(model(xb), yb)
    predict = lambda xb: model(xb).argmax(-1)
    return model, loss, predict, torch.rand(0, 4), torch.zeros(0, dtype=torch.long)


@pytest.mark.parametrize("measure", ["pgd", "fgsm", "adversarial_fgsm", "adversarial_pgd", "apgd", "corruption"])
def test_robustness_refuses_an_empty_set(measure):
    model, loss, predict, x, y = _attack_setup()
    call = {
        "pgd": lambda: pgd(loss, x, y, eps=0.1),
        "fgsm": lambda: fgsm(loss, x, y, eps=0.1),
        "adversarial_fgsm": lambda: adversarial_accuracy(loss, predict, x, y, eps=0.1),
        "adversarial_pgd": lambda: adversarial_accuracy(loss, predict, x, y, eps=0.0, method="pgd"),
        "apgd": lambda: apgd_accuracy(model, predict, x, y, eps=0.1, steps=5),
        "corruption": lambda: corruption_accuracy(predict, x, y, (1, 2, 2), corruptions=("contrast",)),
    }[measure]
    with pytest.raises(DataError, match=r"expected at least one example, got 0 \(x of shape \[0, 4\]\)"):
        call()


def test_robustness_of_one_example_still_measures():
    model, loss, predict, _, _ = _attack_setup()
    x = torch.rand(1, 4)
    y = predict(x)
    assert adversarial_accuracy(loss, predict, x, y, eps=0.0) == 1.0
    assert apgd_accuracy(model, predict, x, y, eps=0.0) == 1.0
    assert corruption_accuracy(predict, x, y, (1, 2, 2), corruptions=("contrast",))["clean"] == 1.0


# --------------------------------------------------------------------------------------------
# width matching and optimizer groups
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("target", [0, -5, 0.0, math.nan, math.inf, True, "100000"])
def test_match_width_refuses_a_non_positive_target(target):
    with pytest.raises(ConfigError, match=rf"expected target_params \(a parameter count\) > 0, got {shown(target)}"):
        match_width(target, 784, 10, depth=2)


@pytest.mark.parametrize("depth", [0, -1, 2.0, True, "2"])
def test_match_width_refuses_a_non_integer_depth(depth):
    with pytest.raises(ConfigError, match=rf"expected depth \(hidden layers\) to be a positive integer, got {shown(depth)}"):
        match_width(100_000, 784, 10, depth=depth)


def test_match_width_keeps_valid_targets():
    assert match_width(100_000, 784, 10, depth=2) == match_width(100_000.0, 784, 10, depth=2)


@pytest.mark.parametrize("bad", [dict(lr=True), dict(lr="0.1"), dict(lr=None), dict(lr=0.0), dict(lr=-1e-3),
                                 dict(lr=math.inf), dict(lr=1e-3, coef_lr_scale=True),
                                 dict(lr=1e-3, coef_lr_scale="2"), dict(lr=1e-3, coef_lr_scale=math.nan),
                                 dict(lr=1e-3, coef_lr_scale=0.0)])
def test_parameter_groups_refuse_a_bad_lr(bad):
    given = ", ".join(f"{k}={shown(v)}" for k, v in bad.items())  # what was given, in the message's order
    with pytest.raises(ConfigError, match=rf"lr and coef_lr_scale must be finite and > 0, got .*{given}"):
        parameter_groups(ChainzRuleMLP(4, [8], 2), **bad)


@pytest.mark.parametrize("call, message", [
    (lambda: num_parameters("mlp", -4, [8], 3), "expected in_features to be a positive integer, got -4"),
    (lambda: num_parameters("mlp", 4, [8], 0), "expected out_features to be a positive integer, got 0"),
    (lambda: num_parameters("mlp", 4, [8, -1], 3), "hidden must be a positive int or a non-empty list of them, got [8, -1]"),
    (lambda: num_parameters("chainzrule", 4, [8], 3, degree=-3), "expected an integer degree in 1..12, got -3"),
    (lambda: num_parameters("chainzrule", 4, [8], 3, degree=2.0), "expected an integer degree in 1..12, got 2.0"),
    (lambda: num_parameters("cnn", 4, [8], 3), "unknown model kind 'cnn': expected 'mlp' or 'chainzrule'"),
    (lambda: match_width(1000, -4, 3, 2), "expected in_features to be a positive integer, got -4"),
    (lambda: match_width(1000, 4, 3, 2, kind="chainzrule", degree=0), "expected an integer degree in 1..12, got 0"),
    (lambda: match_width(1000, 4, 3, 2, tolerance=-1), "expected tolerance (the relative miss allowed) a number >= 0, "
                                                        "got -1"),
    (lambda: match_width(1000, 4, 3, 2, tolerance=math.nan), "expected tolerance (the relative miss allowed) a "
                                                              "number >= 0, got nan"),
])
def test_parameter_counts_refuse_bad_sizes_degree_and_tolerance(call, message):
    """num_parameters("mlp", -4, [8], 3) returned 3, degree -3 returned 51, match_width(1000, -4, 3, 2) 31."""
    with pytest.raises(ConfigError, match=re.escape(message) + "$"):
        call()


def test_parameter_counts_keep_valid_sizes():
    assert num_parameters("mlp", 4, 8, 3) == 4 * 8 + 8 + 8 * 3 + 3
    assert num_parameters("mlp", 4, [8], 3, degree=-3) == num_parameters("mlp", 4, [8], 3)  # mlp: degree unused
    assert num_parameters("chainzrule", 4, [8], 3) == count_parameters(ChainzRuleMLP(4, [8], 3))
    assert match_width(1000, 4, 3, 2, tolerance=math.inf) == match_width(1000, 4, 3, 2)


@pytest.mark.parametrize("model, names", [(ChainzRuleMLP(4, [8], 2), ["weights", "coefficients"]),
                                          (MLP(4, [8], 2, activation="relu"), ["weights"])])
def test_parameter_groups_recipe_turns_decay_off_for_the_coefficients_only(model, names):
    """The docstring's recipe: with a ReLU MLP (one group) groups[-1] was every weight."""
    groups = parameter_groups(model, 3e-3, coef_lr_scale=0.3, weight_decay=1e-2)
    for g in groups:
        if g["name"] == "coefficients":
            g["weight_decay"] = 0.0
    opt = torch.optim.AdamW(groups)
    assert [g["name"] for g in opt.param_groups] == names
    coef = {id(p) for p in coefficient_parameters(model)}
    for g in opt.param_groups:
        assert g["weight_decay"] == (0.0 if all(id(p) in coef for p in g["params"]) else 1e-2)
    assert sum(len(g["params"]) for g in opt.param_groups) == len(list(model.parameters()))


@pytest.mark.parametrize("field", ["lr", "bound", "coef_lr_scale", "svm_gamma"])
@pytest.mark.parametrize("value", [0.0, -1.0, math.nan, math.inf])
def test_a_positive_field_gives_one_message_whatever_the_bad_value(field, value):
    """--lr 0 said "must be > 0" and --lr -1 "must be a finite number >= 0": one message now."""
    with pytest.raises(ConfigError, match=rf"^{field} must be a finite number > 0, got {value}$"):
        TrainConfig(**{field: value})


# --------------------------------------------------------------------------------------------
# one positive-integer check (chainzrule.errors.check_int) for every size, count and step
# --------------------------------------------------------------------------------------------


def _positive_int_sites():
    """name in the message → a call giving that argument ``v`` (everything else valid)."""
    from chainzrule.data import load_dataset
    from chainzrule.export import export_model
    from chainzrule.kan import KANLinear
    from chainzrule.layers import HiddenLayer
    from chainzrule.ordinal import make_ordinal_head
    from chainzrule.poly import PolynomialActivation
    from chainzrule.regularizers import make_regularizer
    from chainzrule.robustness_base import check_batch_size
    from chainzrule.activations import make_activation

    net = MLP(4, [8], 3)
    x, y = torch.randn(6, 4), torch.arange(6) % 3
    loss = lambda xb, yb: torch.nn.functional.cross_entropy(net(xb), yb, reduction="none")  # noqa: E731
    return {
        "HiddenLayer out_features": ("out_features", lambda v: HiddenLayer(4, v, make_activation("relu"))),
        "PolynomialActivation": ("num_features", lambda v: PolynomialActivation(v)),
        "MLP": ("in_features", lambda v: MLP(v, [8], 3)),
        "CNN": ("out_features", lambda v: CNN((1, 8, 8), [4], [8], v)),
        "num_parameters": ("out_features", lambda v: num_parameters("mlp", 4, [8], v)),
        "match_width": ("depth (hidden layers)", lambda v: match_width(1000, 4, 3, v)),
        "KANLinear": ("grid_size", lambda v: KANLinear(4, 2, grid_size=v)),
        "ordinal head": ("in_features", lambda v: make_ordinal_head("clm", v, 5)),
        "jr": ("n_proj", lambda v: make_regularizer("jr", n_proj=v)),
        "sn": ("n_power_iterations", lambda v: make_regularizer("sn", n_power_iterations=v)),
        "jacobian_norms": ("batch_size", lambda v: jacobian_norms(net, x, batch_size=v)),
        "robustness batch_size": ("batch_size", check_batch_size),
        "pgd": ("steps", lambda v: pgd(loss, x, y, 0.1, steps=v)),
        "load_dataset": ("limit", lambda v: load_dataset("mnist", limit=v)),
        "save_checkpoint": ("num_classes", lambda v: save_checkpoint(
            "/nonexistent/ckpt", net, TrainConfig(model="mlp", hidden=(8,)), in_features=4, num_classes=v,
            task="classification")),
        "export_model": ("in_features", lambda v: export_model(net, v, "/nonexistent/m.onnx", "onnx")),
    }


SITES = _positive_int_sites()


@pytest.mark.parametrize(("site", "value"), [(site, value) for site in sorted(SITES)
                                             for value in (0, -2, True, 3.0, "3", None)
                                             if not (value is None and SITES[site][0] == "limit")])  # None: every example
def test_every_positive_integer_check_gives_one_message_and_refuses_bools_and_floats(site, value):
    """The check was written out at each of these (some took True or 3.0, some named no
    expectation, one said "an integer >= 1", another "a positive int"): one helper now."""
    name, call = SITES[site]
    tail = " or None" if name == "limit" else ""
    with pytest.raises(ConfigError, match=rf"^expected {re.escape(name)} to be a positive integer{tail}, got {shown(value)}$"):
        call(value)


def test_numpy_integers_pass_every_positive_integer_check(tmp_path):
    """NumPy integers are integers at every site (``limit`` alone refused them)."""
    import numpy as np

    from chainzrule.data import load_dataset
    from chainzrule.robustness_base import check_batch_size

    table = tmp_path / "t.csv"
    table.write_text("a,b,label\n" + "".join(f"{i},{i % 7},{i % 2}\n" for i in range(50)))
    ds = load_dataset(f"csv:{table}", target="label", limit=np.int64(20))
    assert len(ds.y_train) + len(ds.y_test) == 20
    assert check_batch_size(np.int32(8)) == 8 and type(check_batch_size(np.int32(8))) is int
    assert MLP(np.int64(4), [8], np.int64(3)).in_features == 4
