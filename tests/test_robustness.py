import math

import pytest
import torch
import torch.nn.functional as F

from chainzrule.errors import DataError
from chainzrule.robustness import (
    CORRUPTIONS,
    NoInputGradient,
    SEVERITY_PARAMS,
    adversarial_accuracy,
    corrupt,
    corruption_accuracy,
    fgsm,
    pgd,
)

RANDOM = ("gaussian_noise", "shot_noise", "impulse_noise", "translate", "rotate")


def smooth_images(n, shape, seed=0):
    """Image-like batch: low-resolution noise upsampled (smooth blobs), flattened, in [0, 1]."""
    c, h, w = shape
    g = torch.Generator().manual_seed(seed)
    small = torch.rand(n, c, max(2, h // 4), max(2, w // 4), generator=g)
    x = F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False)
    return x.reshape(n, -1)


@pytest.fixture(scope="module")
def mnist_like():
    return smooth_images(32, (1, 28, 28))


def test_corruption_list_is_fixed_and_ordered():
    assert CORRUPTIONS == (
        "gaussian_noise", "shot_noise", "impulse_noise", "gaussian_blur", "contrast",
        "brightness", "translate", "rotate", "pixelate",
    )
    assert all(len(SEVERITY_PARAMS[n]) == 5 for n in CORRUPTIONS)


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_each_corruption_changes_input_keeps_range_shape_dtype(name, mnist_like):
    for s in range(1, 6):
        out = corrupt(mnist_like, name, s, (1, 28, 28), seed=3)
        assert out.shape == mnist_like.shape and out.dtype == mnist_like.dtype
        assert out.min() >= 0 and out.max() <= 1
        assert (out - mnist_like).abs().mean() > 1e-3


@pytest.mark.parametrize("name", CORRUPTIONS)
@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 16, 16), (3, 32, 32)])
def test_severity_is_monotone(name, shape):
    x = smooth_images(32, shape, seed=1)
    diffs = [float((corrupt(x, name, s, shape, seed=5) - x).abs().mean()) for s in range(1, 6)]
    assert all(b >= a for a, b in zip(diffs, diffs[1:])), diffs
    assert diffs[-1] > diffs[0]


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_deterministic_given_seed(name, mnist_like):
    a = corrupt(mnist_like, name, 3, (1, 28, 28), seed=11)
    b = corrupt(mnist_like, name, 3, (1, 28, 28), seed=11)
    assert torch.equal(a, b)
    if name in RANDOM:
        assert not torch.equal(a, corrupt(mnist_like, name, 3, (1, 28, 28), seed=12))


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_input_range_is_respected_and_equivariant(name):
    u = smooth_images(8, (3, 16, 16), seed=2).double()
    x = 2 * u - 1  # same images in [-1, 1]
    out = corrupt(x, name, 4, (3, 16, 16), seed=7, input_range=(-1, 1))
    assert out.dtype == torch.float64
    assert out.min() >= -1 and out.max() <= 1
    ref = 2 * corrupt(u, name, 4, (3, 16, 16), seed=7) - 1
    torch.testing.assert_close(out, ref)


def test_leading_dims_and_two_dim_image_shape(mnist_like):
    x = mnist_like[:6].reshape(2, 3, 784)
    out = corrupt(x, "gaussian_blur", 2, (28, 28))
    assert out.shape == (2, 3, 784)
    torch.testing.assert_close(out.reshape(6, 784), corrupt(mnist_like[:6], "gaussian_blur", 2, (1, 28, 28)))


def test_blur_and_pixelate_keep_constant_images():
    x = torch.full((2, 3 * 10 * 10), 0.3)
    for name in ("gaussian_blur", "pixelate"):
        torch.testing.assert_close(corrupt(x, name, 5, (3, 10, 10)), x)


def test_rotate_and_translate_move_a_dot():
    x = torch.zeros(1, 1, 21, 21)
    x[0, 0, 10, 16] = 1.0  # a dot right of the centre
    for name in ("rotate", "translate"):
        out = corrupt(x.reshape(1, -1), name, 5, (1, 21, 21)).reshape(21, 21)
        assert out[10, 16] < 0.5  # moved away
        assert out.sum() > 0.5  # but still in the image


def test_corrupt_errors(mnist_like):
    with pytest.raises(ValueError, match="unknown corruption 'fog'.*gaussian_noise"):
        corrupt(mnist_like, "fog", 1, (1, 28, 28))
    for bad in (0, 6, 2.5):
        with pytest.raises(ValueError, match=f"expected severity in 1..5, got {bad}"):
            corrupt(mnist_like, "contrast", bad, (1, 28, 28))
    with pytest.raises(ValueError, match="expected 785 input features.*got 784"):
        corrupt(mnist_like, "contrast", 1, (5, 157, 1))
    with pytest.raises(ValueError, match="expected 784 input features .*got 785"):
        corrupt(torch.rand(2, 785), "contrast", 1, (1, 28, 28))
    with pytest.raises(ValueError, match="image_shape"):
        corrupt(mnist_like, "contrast", 1, (784,))
    with pytest.raises(ValueError, match="input_range"):
        corrupt(mnist_like, "contrast", 1, (1, 28, 28), input_range=(1, 0))


# ----------------------------------------------------------------------------------------------
# corruption_accuracy
# ----------------------------------------------------------------------------------------------


def brightness_classifier(x):
    return (x.mean(1) > 0.5).long()


def test_corruption_accuracy_keys_and_means(mnist_like):
    y = brightness_classifier(mnist_like)
    r = corruption_accuracy(brightness_classifier, mnist_like, y, (1, 28, 28), batch_size=5)
    assert r["clean"] == 1.0
    pairs = [r[f"{n}/{s}"] for n in CORRUPTIONS for s in range(1, 6)]
    assert len(r) == len(pairs) + len(CORRUPTIONS) + 2
    assert all(0 <= a <= 1 for a in pairs)
    for n in CORRUPTIONS:
        assert r[n] == pytest.approx(sum(r[f"{n}/{s}"] for s in range(1, 6)) / 5)
    assert r["mean"] == pytest.approx(sum(pairs) / len(pairs))
    assert r["brightness/5"] < 1.0  # brightening pushes everything over 0.5
    r2 = corruption_accuracy(brightness_classifier, mnist_like, y, (1, 28, 28), batch_size=1024)
    assert r2 == r  # independent of the batch size


def test_corruption_accuracy_subset_and_no_grad(mnist_like):
    model = torch.nn.Linear(784, 3)
    seen = []

    def predict(x):
        seen.append(torch.is_grad_enabled())
        return model(x).argmax(-1)

    y = torch.zeros(32, dtype=torch.long)
    r = corruption_accuracy(predict, mnist_like, y, (1, 28, 28), corruptions=("rotate",), severities=(2,))
    assert set(r) == {"clean", "rotate", "rotate/2", "mean"}
    assert r["rotate"] == r["mean"] == r["rotate/2"]
    assert not any(seen)
    assert model.weight.grad is None


def test_corruption_accuracy_errors(mnist_like):
    y = torch.zeros(32, dtype=torch.long)
    with pytest.raises(ValueError, match="class indices of shape \\[32\\], got shape \\[32, 3\\]"):
        corruption_accuracy(lambda x: torch.zeros(x.shape[0], 3), mnist_like, y, (1, 28, 28))
    with pytest.raises(ValueError, match="severity"):
        corruption_accuracy(brightness_classifier, mnist_like, y, (1, 28, 28), severities=(1, 7))
    with pytest.raises(ValueError, match="unknown corruption"):
        corruption_accuracy(brightness_classifier, mnist_like, y, (1, 28, 28), corruptions=("snow",))
    with pytest.raises(ValueError, match="labels"):
        corruption_accuracy(brightness_classifier, mnist_like, y[:5], (1, 28, 28))
    with pytest.raises(ValueError, match="expected 784 input features"):
        corruption_accuracy(brightness_classifier, mnist_like[:, :700], y, (1, 28, 28))


# ----------------------------------------------------------------------------------------------
# attacks
# ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def linear_problem():
    """A linearly separable 2-class problem in [0, 1]^20 and a logistic model trained on it."""
    g = torch.Generator().manual_seed(0)
    d, n = 20, 512
    w_true = torch.randn(d, generator=g)
    x = torch.rand(n, d, generator=g)
    score = (x - 0.5) @ w_true
    keep = score.abs() > 0.3  # a margin
    x, y = x[keep], (score[keep] > 0).long()
    torch.manual_seed(0)
    model = torch.nn.Linear(d, 2)
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny ops: threads only contend on a shared CPU
    try:
        for _ in range(150):
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()
    finally:
        torch.set_num_threads(threads)
    model.zero_grad(set_to_none=True)
    model.eval()
    return model, x, y


def loss_and_predict(model):
    return (lambda xb, yb: F.cross_entropy(model(xb), yb)), (lambda xb: model(xb).argmax(-1))


def test_trained_model_is_accurate(linear_problem):
    model, x, y = linear_problem
    _, predict = loss_and_predict(model)
    assert (predict(x) == y).float().mean() > 0.97


@pytest.mark.parametrize("method", ["fgsm", "pgd"])
def test_eps_zero_gives_clean_accuracy(linear_problem, method):
    model, x, y = linear_problem
    loss, predict = loss_and_predict(model)
    clean = (predict(x) == y).float().mean().item()
    acc = adversarial_accuracy(loss, predict, x, y, 0.0, method=method, batch_size=100)
    assert acc == pytest.approx(clean)


def test_pgd_at_least_as_strong_as_fgsm(linear_problem):
    model, x, y = linear_problem
    loss, predict = loss_and_predict(model)
    clean = (predict(x) == y).float().mean().item()
    a_fgsm = adversarial_accuracy(loss, predict, x, y, 0.05, method="fgsm")
    a_pgd = adversarial_accuracy(loss, predict, x, y, 0.05, method="pgd", steps=10)
    assert a_pgd <= a_fgsm + 0.02
    assert a_fgsm < clean - 0.1
    a_big = adversarial_accuracy(loss, predict, x, y, 0.2, method="pgd", steps=10)
    assert a_big <= a_pgd


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_perturbation_within_eps_and_range(linear_problem, norm):
    model, x, y = linear_problem
    loss, _ = loss_and_predict(model)
    eps = 0.07 if norm == "linf" else 0.5
    for x_adv in (
        fgsm(loss, x, y, eps, norm=norm),
        pgd(loss, x, y, eps, steps=7, norm=norm, seed=1),
        pgd(loss, x, y, eps, steps=3, step_size=1.0, norm=norm, random_start=False),
    ):
        delta = x_adv - x
        size = delta.abs().amax(1) if norm == "linf" else delta.norm(dim=1)
        assert size.max() <= eps + 1e-6
        assert x_adv.min() >= 0 and x_adv.max() <= 1
        assert not x_adv.requires_grad
        assert size.max() > 0.5 * eps  # it did move


def test_pgd_deterministic_given_seed(linear_problem):
    model, x, y = linear_problem
    loss, _ = loss_and_predict(model)
    a = pgd(loss, x, y, 0.05, steps=1, step_size=0.01, seed=3)
    assert torch.equal(a, pgd(loss, x, y, 0.05, steps=1, step_size=0.01, seed=3))
    assert not torch.equal(a, pgd(loss, x, y, 0.05, steps=1, step_size=0.01, seed=4))


@pytest.mark.parametrize("method", ["fgsm", "pgd"])
@pytest.mark.parametrize("training", [True, False])
def test_model_state_untouched(method, training):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Dropout(0.0), torch.nn.Linear(8, 3))
    model.train(training)
    model[0].bias.requires_grad_(False)
    loss, predict = loss_and_predict(model)
    x, y = torch.rand(10, 6), torch.randint(0, 3, (10,))
    adversarial_accuracy(loss, predict, x, y, 0.1, method=method, steps=3, batch_size=4)
    assert all(p.grad is None for p in model.parameters())
    assert all(m.training == training for m in model.modules())
    assert model[0].bias.requires_grad is False and model[0].weight.requires_grad is True


def test_works_with_an_ordinal_style_loss():
    torch.manual_seed(0)
    model = torch.nn.Linear(5, 1)
    loss = lambda xb, yb: F.mse_loss(model(xb).squeeze(-1), yb.float())
    predict = lambda xb: model(xb).squeeze(-1).round().clamp(0, 4).long()
    x, y = torch.rand(16, 5), torch.randint(0, 5, (16,))
    acc = adversarial_accuracy(loss, predict, x, y, 0.1, method="pgd", steps=3)
    assert 0.0 <= acc <= 1.0


def test_attack_errors(linear_problem):
    model, x, y = linear_problem
    loss, predict = loss_and_predict(model)
    with pytest.raises(ValueError, match="method 'fgsm' or 'pgd', got 'cw'"):
        adversarial_accuracy(loss, predict, x, y, 0.1, method="cw")
    with pytest.raises(ValueError, match="norm 'linf' or 'l2', got 'l1'"):
        pgd(loss, x, y, 0.1, norm="l1")
    with pytest.raises(ValueError, match="eps >= 0"):
        fgsm(loss, x, y, -0.1)
    with pytest.raises(ValueError, match="expected steps to be a positive integer, got 0"):
        pgd(loss, x, y, 0.1, steps=0)
    with pytest.raises(ValueError, match="scalar"):
        fgsm(lambda xb, yb: F.cross_entropy(model(xb), yb, reduction="none"), x, y, 0.1)

    def no_grad_loss(xb, yb):
        with torch.no_grad():
            return F.cross_entropy(model(xb), yb)

    with pytest.raises(ValueError, match="differentiable"):
        fgsm(no_grad_loss, x, y, 0.1)
    assert math.isfinite(adversarial_accuracy(loss, predict, x, y, 0.1))


# ----------------------------------------------------------------------------------------------
# issue 8: attacks that cannot attack say so; the input range is explicit
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["fgsm", "pgd"])
@pytest.mark.parametrize("how", ["disconnected", "zero-gradient"])
def test_loss_independent_of_the_input_raises_instead_of_reporting_clean_accuracy(linear_problem, method, how):
    model, x, y = linear_problem
    const = torch.zeros(1, x.shape[1])
    if how == "disconnected":  # autograd has no path from x to the loss
        loss = lambda xb, yb: F.cross_entropy(model(const.expand_as(xb)), yb)
        words = "does not depend on the input"
    else:  # a path, but a gradient of exactly zero everywhere
        loss = lambda xb, yb: F.cross_entropy(model(xb * 0.0), yb)
        words = f"for the {len(x)} examples evaluated"  # the whole set, not one batch of 100
    predict = lambda xb: model(xb).argmax(-1)
    with pytest.raises(NoInputGradient, match=words):
        adversarial_accuracy(loss, predict, x, y, 0.1, method=method, steps=2, batch_size=100)
    assert issubclass(NoInputGradient, ValueError)


def test_eps_zero_needs_no_gradient(linear_problem):
    model, x, y = linear_problem
    loss = lambda xb, yb: F.cross_entropy(model(xb * 0.0), yb)
    predict = lambda xb: model(xb).argmax(-1)
    clean = (predict(x) == y).float().mean().item()
    assert adversarial_accuracy(loss, predict, x, y, 0.0) == pytest.approx(clean)


@pytest.mark.parametrize("method", ["fgsm", "pgd"])
def test_inputs_outside_the_range_are_refused_not_clamped(linear_problem, method):
    model, x, y = linear_problem
    loss, predict = loss_and_predict(model)
    standardized = (x - x.mean(0)) / x.std(0)  # tabular-style features, far outside (0, 1)
    with pytest.raises(DataError, match=r"outside input_range \(0, 1\): pass the valid range"):
        adversarial_accuracy(loss, predict, standardized, y, 0.1, method=method, steps=2)


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_unbounded_attack_with_input_range_none(linear_problem, norm):
    model, x, y = linear_problem
    loss, predict = loss_and_predict(model)
    z = (x - 0.5) * 10  # outside any unit box
    for x_adv in (fgsm(loss, z, y, 0.5, input_range=None, norm=norm),
                  pgd(loss, z, y, 0.5, steps=3, input_range=None, norm=norm)):
        delta = x_adv - z
        size = delta.abs().amax(1) if norm == "linf" else delta.norm(dim=1)
        assert size.max() <= 0.5 + 1e-5 and size.max() > 0.25
    assert 0.0 <= adversarial_accuracy(loss, predict, z, y, 0.5, input_range=None) <= 1.0


def test_attack_audit_cases():
    """A clean-misclassified example never counts as robust (the attack may push it into its class;
    AutoAttack's rule); non-finite step sizes and an infinite ε on unbounded inputs are refused;
    corruptions refuse data outside their range instead of clamping it."""
    import math

    import torch.nn.functional as F

    from chainzrule.attacks import adversarial_accuracy, pgd
    from chainzrule.corruptions import corrupt
    from chainzrule.errors import ConfigError, DataError

    f = lambda v: torch.cat([torch.zeros_like(v), torch.sin(10 * v)], 1)  # noqa: E731
    pred = lambda v: f(v).argmax(-1)  # noqa: E731
    loss = lambda v, t: F.cross_entropy(f(v), t)  # noqa: E731
    x, y = torch.tensor([[0.1]]), torch.tensor([0])
    assert adversarial_accuracy(loss, pred, x, y, 0.0) == 0.0
    for method in ("fgsm", "pgd"):
        assert adversarial_accuracy(loss, pred, x, y, 0.3, method=method, steps=1) == 0.0
    with pytest.raises(ConfigError, match="finite step_size"):
        pgd(loss, x, y, 0.1, step_size=math.nan)
    with pytest.raises(ConfigError, match="finite eps for unbounded inputs"):
        pgd(loss, x, y, math.inf, input_range=None)
    with pytest.raises(DataError, match="outside input_range"):
        corrupt(torch.rand(2, 16) * 255, "gaussian_blur", 1, (1, 4, 4))
