"""Tests for chainzrule.ordinal: heads, losses, predictions, metrics."""

import math
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import cohen_kappa_score

from chainzrule.errors import ConfigError, DataError
from chainzrule.ordinal import (
    ORDINAL_KINDS,
    CoralHead,
    CornHead,
    CumulativeLinkHead,
    class_log_probs,
    class_probs,
    coral_loss,
    corn_loss,
    cumulative_link_loss,
    make_ordinal_head,
    ordered_cutpoints,
    ordinal_loss,
    ordinal_metrics,
    ordinal_predict,
    quadratic_weighted_kappa,
)

# ----------------------------------------------------------------------------------------------
# cutpoints
# ----------------------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    first=st.floats(-1e4, 1e4),
    raw=st.lists(st.floats(-1e6, 1e3), min_size=0, max_size=20),
)
def test_cutpoints_strictly_increasing_float64(first, raw):
    theta = ordered_cutpoints(
        torch.tensor([first], dtype=torch.float64), torch.tensor(raw, dtype=torch.float64)
    )
    assert theta.shape == (len(raw) + 1,)
    assert torch.isfinite(theta).all()
    assert (theta.diff() > 0).all()
    # every gap is at least min_gap (up to rounding)
    assert (theta.diff() >= 1e-3 * (1 - 1e-6)).all()


@settings(max_examples=200, deadline=None)
@given(
    first=st.floats(-100, 100, width=32),
    raw=st.lists(st.floats(-(2.0**100), 5, width=32), min_size=0, max_size=12),
)
def test_cutpoints_strictly_increasing_float32(first, raw):
    theta = ordered_cutpoints(torch.tensor([first]), torch.tensor(raw, dtype=torch.float32))
    assert (theta.diff() > 0).all()


@settings(max_examples=50, deadline=None)
@given(
    k=st.integers(2, 10),
    first=st.floats(-50, 50),
    raw=st.floats(-1e3, 20),
)
def test_head_cutpoints_ordered_after_adversarial_assignment(k, first, raw):
    head = CumulativeLinkHead(3, k, dtype=torch.float64)
    with torch.no_grad():
        head.cutpoint_first.fill_(first)
        head.cutpoint_gaps_raw.fill_(raw)
        if k > 2:
            head.cutpoint_gaps_raw[0] = -raw  # mix signs
    assert head.cutpoints.shape == (k - 1,)
    assert (head.cutpoints.diff() > 0).all()


def test_cutpoints_reject_nonpositive_min_gap():
    with pytest.raises(ValueError, match="min_gap"):
        ordered_cutpoints(torch.zeros(1), torch.zeros(2), min_gap=0.0)
    with pytest.raises(ValueError, match="min_gap"):
        CumulativeLinkHead(2, 3, min_gap=-1.0)


# ----------------------------------------------------------------------------------------------
# heads: shapes, init, repr
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ORDINAL_KINDS)
@pytest.mark.parametrize("shape", [(7,), (2, 3), ()])
def test_head_shapes(kind, shape):
    head = make_ordinal_head(kind, 4, 5)
    h = torch.randn(*shape, 4)
    out = head(h)
    assert isinstance(out, torch.Tensor)
    assert out.shape == (*shape, 4)
    assert head.kind == kind
    assert ordinal_predict(out, kind).shape == shape


def test_factory_types_and_repr():
    assert isinstance(make_ordinal_head("clm", 2, 3), CumulativeLinkHead)
    assert isinstance(make_ordinal_head("coral", 2, 3), CoralHead)
    corn = make_ordinal_head("corn", 2, 3)
    assert isinstance(corn, CornHead) and isinstance(corn, torch.nn.Linear)
    assert corn.weight.shape == (2, 2) and corn.bias.shape == (2,)
    assert "num_classes=3" in repr(make_ordinal_head("clm", 2, 3))
    head = make_ordinal_head("clm", 2, 3, dtype=torch.float64)
    assert head.weight.dtype == torch.float64


def test_clm_matches_definition():
    head = CumulativeLinkHead(3, 4, dtype=torch.float64)
    h = torch.randn(5, 3, dtype=torch.float64)
    s = h @ head.weight[0]
    expected = head.cutpoints[None, :] - s[:, None]
    torch.testing.assert_close(head(h), expected)
    torch.testing.assert_close(head.score(h), s)
    # no bias parameter: the cutpoints absorb it
    names = {n for n, _ in head.named_parameters()}
    assert names == {"weight", "cutpoint_first", "cutpoint_gaps_raw"}


def test_two_class_heads():
    for kind in ORDINAL_KINDS:
        head = make_ordinal_head(kind, 3, 2)
        out = head(torch.randn(4, 3))
        assert out.shape == (4, 1)
        p = class_probs(out, kind)
        torch.testing.assert_close(p.sum(-1), torch.ones(4))
        loss = ordinal_loss(kind, out, torch.tensor([0, 1, 1, 0]))
        assert torch.isfinite(loss)


@pytest.mark.parametrize("kind", ORDINAL_KINDS)
def test_zero_features_uniform_init_for_clm_and_coral(kind):
    head = make_ordinal_head(kind, 3, 5)
    p = class_probs(head(torch.zeros(2, 3)), kind)
    if kind in ("clm", "coral"):
        torch.testing.assert_close(p, torch.full((2, 5), 0.2))


def test_bad_sizes():
    for kind in ORDINAL_KINDS:
        with pytest.raises(ValueError, match="expected num_classes to be an integer >= 2, got 1"):
            make_ordinal_head(kind, 3, 1)
        with pytest.raises(ValueError, match="expected in_features to be a positive integer, got 0"):
            make_ordinal_head(kind, 0, 3)


# ----------------------------------------------------------------------------------------------
# probabilities
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ORDINAL_KINDS)
@pytest.mark.parametrize("k", [2, 3, 5, 10])
def test_class_probs_are_distributions(kind, k):
    torch.manual_seed(k)
    head = make_ordinal_head(kind, 6, k, dtype=torch.float64)
    with torch.no_grad():
        for p in head.parameters():
            p.mul_(5.0)  # push to extreme scores
    h = torch.randn(200, 6, dtype=torch.float64) * 3
    p = class_probs(head(h), kind)
    assert p.shape == (200, k)
    assert (p >= 0).all()
    torch.testing.assert_close(p.sum(-1), torch.ones(200, dtype=torch.float64))
    lp = class_log_probs(head(h), kind)
    assert torch.isfinite(lp).all()


@settings(max_examples=100, deadline=None)
@given(
    s=st.floats(-200, 200),
    first=st.floats(-30, 30),
    raw=st.lists(st.floats(-30, 5), min_size=0, max_size=8),
)
def test_clm_probs_sum_to_one_extreme_scores(s, first, raw):
    theta = ordered_cutpoints(
        torch.tensor([first], dtype=torch.float64), torch.tensor(raw, dtype=torch.float64)
    )
    logits = (theta - s)[None]  # [1, K-1]
    p = class_probs(logits, "clm")
    assert (p >= 0).all()
    assert abs(p.sum().item() - 1.0) < 1e-9
    # matches the naive differences of cumulative probabilities
    cum = torch.cat([torch.zeros(1, 1, dtype=torch.float64), torch.sigmoid(logits), torch.ones(1, 1, dtype=torch.float64)], -1)
    torch.testing.assert_close(p, cum.diff(dim=-1), atol=1e-12, rtol=1e-6)


def test_clm_class_probs_hand_computed():
    logits = torch.tensor([[0.0, 2.0]], dtype=torch.float64)
    s2 = 1 / (1 + math.exp(-2))
    expected = torch.tensor([[0.5, s2 - 0.5, 1 - s2]], dtype=torch.float64)
    torch.testing.assert_close(class_probs(logits, "clm"), expected)


def test_coral_probs_monotone_fix():
    # non-monotone P(y>k): 0.5, 0.73 -> running minimum 0.5, 0.5
    p = class_probs(torch.tensor([[0.0, 1.0]]), "coral")
    torch.testing.assert_close(p, torch.tensor([[0.5, 0.0, 0.5]]))


def test_corn_probs_hand_computed():
    logits = torch.tensor([[0.0, math.log(3.0)]])  # sigmoids 0.5, 0.75
    # P(y>0)=0.5, P(y>1)=0.375
    torch.testing.assert_close(class_probs(logits, "corn"), torch.tensor([[0.5, 0.125, 0.375]]))


# ----------------------------------------------------------------------------------------------
# losses
# ----------------------------------------------------------------------------------------------


def test_clm_loss_hand_computed():
    logits = torch.tensor([[0.0, 2.0], [0.0, 2.0], [0.0, 2.0]], dtype=torch.float64)
    y = torch.tensor([0, 1, 2])
    s2 = 1 / (1 + math.exp(-2))
    expected = -(math.log(0.5) + math.log(s2 - 0.5) + math.log(1 - s2)) / 3
    assert cumulative_link_loss(logits, y).item() == pytest.approx(expected, rel=1e-12)


def test_clm_loss_equals_cross_entropy_of_class_probs():
    torch.manual_seed(0)
    head = CumulativeLinkHead(4, 6, dtype=torch.float64)
    h = torch.randn(50, 4, dtype=torch.float64)
    y = torch.randint(0, 6, (50,))
    logits = head(h)
    naive = torch.nn.functional.nll_loss(torch.log(class_probs(logits, "clm")), y)
    torch.testing.assert_close(cumulative_link_loss(logits, y), naive)


def test_coral_loss_hand_computed():
    logits = torch.tensor([[1.0, -1.0]], dtype=torch.float64)
    # y = 1 -> levels [1, 0]: -log σ(1) - log(1 - σ(-1)) = 2 * softplus(-1)
    expected = 2 * math.log1p(math.exp(-1.0))
    assert coral_loss(logits, torch.tensor([1])).item() == pytest.approx(expected)


def test_corn_loss_hand_computed():
    logits = torch.tensor([[2.0, -1.0, 0.5], [0.3, 0.7, -2.0]], dtype=torch.float64)
    y = torch.tensor([0, 2])

    def bce(z, t):
        return math.log1p(math.exp(-z)) if t else math.log1p(math.exp(z))

    # y=0: only task 0 (target 0). y=2: tasks 0 (1), 1 (1), 2 (0).
    terms = [bce(2.0, 0), bce(0.3, 1), bce(0.7, 1), bce(-2.0, 0)]
    assert corn_loss(logits, y).item() == pytest.approx(sum(terms) / len(terms))


def test_corn_loss_matches_reference_loop():
    """The vectorized loss equals coral-pytorch's per-task loop, written out here."""
    torch.manual_seed(1)
    logits = torch.randn(40, 4, dtype=torch.float64)
    y = torch.randint(0, 5, (40,))
    total, count = 0.0, 0
    for task in range(4):
        sel = y > task - 1
        if sel.sum() == 0:
            continue
        z = logits[sel, task]
        t = (y[sel] > task).to(torch.float64)
        total = total - torch.sum(torch.nn.functional.logsigmoid(z) * t + (torch.nn.functional.logsigmoid(z) - z) * (1 - t))
        count += int(sel.sum())
    torch.testing.assert_close(corn_loss(logits, y), total / count)


@pytest.mark.parametrize("kind", ORDINAL_KINDS)
def test_loss_gradients_finite_extreme(kind):
    torch.manual_seed(2)
    head = make_ordinal_head(kind, 3, 5)
    with torch.no_grad():
        for p in head.parameters():
            p.mul_(100.0)
    h = torch.randn(64, 3) * 100
    y = torch.randint(0, 5, (64,))
    loss = ordinal_loss(kind, head(h), y)
    loss.backward()
    assert torch.isfinite(loss)
    for p in head.parameters():
        assert torch.isfinite(p.grad).all()


def test_clm_loss_finite_on_crossing_logits():
    # hand-made, non-ordered cumulative logits: probability floored, loss and gradient finite
    logits = torch.tensor([[1.0, 1.0, -3.0]], requires_grad=True)
    loss = cumulative_link_loss(logits, torch.tensor([1]))
    loss.backward()
    assert torch.isfinite(loss) and loss.item() > 20
    assert torch.isfinite(logits.grad).all()


def test_loss_multi_batch_dims():
    logits = torch.randn(2, 3, 4)
    y = torch.randint(0, 5, (2, 3))
    for kind in ORDINAL_KINDS:
        flat = ordinal_loss(kind, logits.reshape(6, 4), y.reshape(6))
        torch.testing.assert_close(ordinal_loss(kind, logits, y), flat)


# ----------------------------------------------------------------------------------------------
# errors
# ----------------------------------------------------------------------------------------------


def test_unknown_kind_message():
    for call in (
        lambda: make_ordinal_head("ordered", 2, 3),
        lambda: ordinal_loss("ordered", torch.zeros(1, 2), torch.tensor([0])),
        lambda: ordinal_predict(torch.zeros(1, 2), "ordered"),
        lambda: class_probs(torch.zeros(1, 2), "ordered"),
    ):
        with pytest.raises(ValueError) as exc:
            call()
        assert isinstance(exc.value, ConfigError)
        msg = str(exc.value)
        assert "'ordered'" in msg and "clm" in msg and "coral" in msg and "corn" in msg


@pytest.mark.parametrize("kind", ORDINAL_KINDS)
def test_labels_out_of_range(kind):
    logits = torch.zeros(3, 4)  # K = 5
    with pytest.raises(DataError, match=r"0\.\.4, got \[5\]"):
        ordinal_loss(kind, logits, torch.tensor([0, 5, 1]))
    with pytest.raises(ValueError, match=r"0\.\.4, got \[-1\]"):
        ordinal_loss(kind, logits, torch.tensor([0, -1, 1]))


def test_labels_shape_and_dtype():
    with pytest.raises(ValueError, match="shape"):
        coral_loss(torch.zeros(3, 4), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="integer"):
        corn_loss(torch.zeros(2, 4), torch.tensor([0.0, 1.0]))


# ----------------------------------------------------------------------------------------------
# prediction
# ----------------------------------------------------------------------------------------------


def test_predict_coral_hand_built():
    logits = torch.tensor([[-1.0, -2.0, -3.0], [1.0, 0.5, -0.1], [3.0, 2.0, 1.0], [0.0, 0.0, 0.0]])
    # sigma > 0.5 strictly: logit 0 does not count
    assert ordinal_predict(logits, "coral").tolist() == [0, 2, 3, 0]


def test_predict_corn_hand_built():
    logits = torch.tensor(
        [
            [-1.0, 5.0, 5.0],  # 0.27 -> 0
            [3.0, 0.0, 5.0],  # 0.95, 0.475 -> 1
            [4.0, 4.0, 4.0],  # 0.98, 0.964, 0.946 -> 3
            [5.0, 5.0, -5.0],  # 0.993, 0.987, 0.0066 -> 2
        ]
    )
    assert ordinal_predict(logits, "corn").tolist() == [0, 1, 3, 2]
    # differs from CORAL's count when a later sigmoid is > 0.5 after a failing one
    assert ordinal_predict(logits[:1], "coral").tolist() == [2]


def test_predict_clm_hand_built():
    # P(y<=k) = sigmoid(logit_k)
    logits = torch.tensor(
        [
            [5.0, 6.0, 7.0],  # P(y=0) ~ 0.993 -> 0
            [-5.0, 5.0, 6.0],  # P(y=1) ~ 0.99 -> 1
            [-5.0, -4.0, -3.0],  # P(y=3) ~ 0.95 -> 3
            [-0.5, 0.6, 3.0],  # probs 0.378, 0.268, 0.307, 0.047 -> 0
        ]
    )
    assert ordinal_predict(logits, "clm").tolist() == [0, 1, 3, 0]
    torch.testing.assert_close(ordinal_predict(logits, "clm"), class_probs(logits, "clm").argmax(-1))


# ----------------------------------------------------------------------------------------------
# learning a toy 1-D ordinal problem
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ORDINAL_KINDS)
def test_heads_learn_bucketized_line(kind):
    torch.manual_seed(0)
    k = 5
    x = torch.rand(1000, 1) * 2 - 1  # [N, 1]
    edges = torch.tensor([-0.6, -0.2, 0.2, 0.6])
    y = torch.bucketize(x[:, 0], edges)  # [N] in 0..4
    head = make_ordinal_head(kind, 1, k)
    opt = torch.optim.Adam(head.parameters(), lr=0.1)
    for _ in range(300):
        opt.zero_grad()
        loss = ordinal_loss(kind, head(x), y)
        loss.backward()
        opt.step()
    x_test = torch.rand(1000, 1) * 2 - 1
    y_test = torch.bucketize(x_test[:, 0], edges)
    with torch.no_grad():
        pred = ordinal_predict(head(x_test), kind)
    acc = (pred == y_test).float().mean().item()
    assert acc > 0.9, f"{kind}: accuracy {acc:.3f}"


# ----------------------------------------------------------------------------------------------
# metrics
# ----------------------------------------------------------------------------------------------


def test_metrics_hand_computed():
    m = ordinal_metrics([0, 1, 2, 3, 4], [0, 2, 2, 1, 4], num_classes=5)
    assert m["accuracy"] == pytest.approx(0.6)
    assert m["mae"] == pytest.approx(0.6)  # errors 0,1,0,2,0
    assert m["off_by_one"] == pytest.approx(0.8)
    assert m["qwk"] == pytest.approx(14 / 19)  # 1 - (5/16) / (19/16), derived by hand
    assert set(m) == {"accuracy", "mae", "off_by_one", "qwk"}
    assert all(isinstance(v, float) for v in m.values())


def test_qwk_perfect_and_reversed():
    assert quadratic_weighted_kappa([0, 1, 2, 3], [0, 1, 2, 3], 4) == pytest.approx(1.0)
    assert quadratic_weighted_kappa([0, 0, 2, 2], [2, 2, 0, 0], 3) == pytest.approx(-1.0)


def test_qwk_undefined_is_nan():
    assert math.isnan(quadratic_weighted_kappa([1, 1, 1], [1, 1, 1], 3))


@settings(max_examples=100, deadline=None)
@given(
    k=st.integers(2, 8),
    data=st.data(),
)
def test_qwk_matches_sklearn(k, data):
    n = data.draw(st.integers(1, 60))
    t = data.draw(st.lists(st.integers(0, k - 1), min_size=n, max_size=n))
    p = data.draw(st.lists(st.integers(0, k - 1), min_size=n, max_size=n))
    ours = quadratic_weighted_kappa(t, p, k)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn warns where kappa is undefined
        ref = cohen_kappa_score(t, p, weights="quadratic", labels=list(range(k)))
    if math.isnan(ref):
        assert math.isnan(ours)
    else:
        assert ours == pytest.approx(ref, abs=1e-12)


def test_metrics_accept_tensors_and_arrays():
    t = torch.tensor([[0, 1], [2, 3]])
    p = np.array([0, 1, 3, 3])
    m = ordinal_metrics(t, p, 4)
    assert m["accuracy"] == pytest.approx(0.75)
    assert ordinal_metrics(np.array([0.0, 1.0]), [0, 1], 2)["accuracy"] == 1.0


def test_metrics_errors():
    with pytest.raises(ValueError, match=r"y_pred in 0\.\.2, got \[3\]"):
        ordinal_metrics([0, 1], [0, 3], 3)
    with pytest.raises(ValueError, match=r"y_true in 0\.\.2, got \[-1\]"):
        ordinal_metrics([-1, 1], [0, 1], 3)
    with pytest.raises(ValueError, match="equal length"):
        ordinal_metrics([0, 1], [0], 3)
    with pytest.raises(ValueError, match="at least one"):
        ordinal_metrics([], [], 3)
    with pytest.raises(ValueError, match="integer"):
        ordinal_metrics([0.5], [0], 3)
    with pytest.raises(ValueError, match="num_classes"):
        ordinal_metrics([0], [0], 1)
