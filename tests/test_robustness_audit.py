"""Robustness audit (2026-12-03): the attacks and corruptions checked against ground truths.

- APGD on every head against an exhaustive search: a two-input network, so the whole L∞ ball of
  each example can be gridded and its exact robust accuracy counted. The CORN head's APGD used to
  ascend its class log-probabilities, whose argmax (the mode) is not its prediction (the median):
  it missed examples the grid breaks (87.0% exact, 91.3% reported at ε = 0.1).
- The attack budget is in the units the model reads: standardized features for tables (no second
  standardization, no clipping), [0, 1] pixels clipped for images — checked against the exact
  robust accuracy of a linear two-class model, which FGSM, PGD and APGD all reach.
- Each corruption does what its name and severity say, measured (angles, shifts, noise moments,
  block means, the blur kernel), and the corrupted images are the same whoever is evaluated.
"""

import math

import numpy as np
import pytest
import torch
from torch import nn

from chainzrule.apgd import apgd_accuracy
from chainzrule.config import TrainConfig
from chainzrule.corruptions import SEVERITY_PARAMS, corrupt, corruption_accuracy
from chainzrule.data.base import Dataset
from chainzrule.data.splits import Splits, make_splits
from chainzrule.ordinal import ORDINAL_KINDS, class_log_probs, decision_scores, make_ordinal_head, ordinal_predict
from chainzrule.train.evaluate import robust_subset, robustness_metrics
from chainzrule.train.factory import predict

# --------------------------------------------------------------------------------------------
# ordinal heads: the decision the attack aims at is the one the accuracy counts
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ORDINAL_KINDS)
@pytest.mark.parametrize("k", [2, 3, 5, 7])
def test_decision_scores_argmax_is_the_prediction(kind, k):
    g = torch.Generator().manual_seed(k)
    logits = 4 * torch.randn(2000, k - 1, generator=g, dtype=torch.float64)  # CORAL's unordered ones included
    scores = decision_scores(logits, kind)
    assert scores.shape == (2000, k)
    assert torch.equal(scores.argmax(-1), ordinal_predict(logits, kind))


def _two_input_net(kind: str, seed: int) -> nn.Module:
    """A random 2 → 32 → 32 → head tanh network whose predictions spread over several classes."""
    torch.manual_seed(seed)
    head = nn.Linear(32, 5) if kind == "linear" else make_ordinal_head(kind, 32, 5)
    net = nn.Sequential(nn.Linear(2, 32), nn.Tanh(), nn.Linear(32, 32), nn.Tanh(), head)
    with torch.no_grad():
        head.weight.mul_({"linear": 6.0, "clm": 2.0, "coral": 6.0, "corn": 4.0}[kind])
        if kind == "corn":
            head.bias.add_(2.0)
    return net.eval()


def _grid_robust_accuracy(net, kind, x, y, eps, n=161) -> float:
    """Exact (up to the grid) L∞ robust accuracy: every point of a grid over each example's ball."""
    t = torch.linspace(-eps, eps, n)
    d = torch.stack(torch.meshgrid(t, t, indexing="ij"), -1).reshape(-1, 2)  # [n*n, 2]
    with torch.no_grad():
        return sum(bool((predict(kind, net(xi + d)) == yi).all()) for xi, yi in zip(x, y)) / len(y)


def _ordinal_splits(x: torch.Tensor, y: torch.Tensor) -> Splits:
    return Splits(x, y, x, y, x, y, num_classes=5, task="ordinal", meta={})


@pytest.mark.parametrize("kind, eps", [("linear", 0.1), ("clm", 0.1), ("coral", 0.1), ("corn", 0.1), ("corn", 0.3)])
def test_apgd_is_as_strong_as_an_exhaustive_search_on_every_head(kind, eps):
    net = _two_input_net(kind, seed=0)
    x = torch.randn(200, 2, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        y = predict(kind, net(x))
    assert len(y.unique()) >= 2
    cfg = TrainConfig(dataset="synthetic", head="auto" if kind == "linear" else kind, robustness=True,
                      adv_eps=(eps,), corruption_examples=len(y))
    r = robustness_metrics(net, kind, cfg, _ordinal_splits(x, y) if kind != "linear" else
                           Splits(x, y, x, y, x, y, num_classes=5, task="classification", meta={}))
    exact = _grid_robust_accuracy(net, kind, x, y, eps)
    assert r[f"apgd_{eps:g}"] <= exact + 1 / len(y)  # at most one example above the exhaustive search
    assert r[f"fgsm_{eps:g}"] >= exact - 1e-9 and r[f"pgd_{eps:g}"] >= exact - 1e-9  # nothing below the truth
    if kind == "corn":  # what the attack did before: APGD on the class log-probabilities (the mode, not the median)
        old = apgd_accuracy(lambda b: class_log_probs(net(b), kind), lambda b: predict(kind, net(b)), x, y, eps,
                            input_range=None, seed=cfg.seed)
        assert old >= exact + 0.03


# --------------------------------------------------------------------------------------------
# units and budgets: ε in the model's input units
# --------------------------------------------------------------------------------------------


def _linear_two_class(w: torch.Tensor, b: float) -> nn.Module:
    m = nn.Linear(len(w), 2)
    with torch.no_grad():
        m.weight.copy_(torch.stack([torch.zeros_like(w), w]))
        m.bias.copy_(torch.tensor([0.0, b]))
    return m.eval()


def _exact_linear(w, b, x, y, eps, lo=-math.inf, hi=math.inf) -> float:
    """Robust accuracy of the margin ±(w·x + b) over the L∞ ball of radius eps inside [lo, hi]:
    each coordinate moves by eps against its sign, clipped to the box (exact for a linear model)."""
    sign = torch.where(y == 1, 1.0, -1.0)[:, None]  # [N, 1] the direction that keeps y
    worst = (x - eps * sign * w.sign()).clamp(lo, hi)  # [N, D]
    margin = sign.squeeze(1) * (worst @ w + b)
    clean = sign.squeeze(1) * (x @ w + b) > 0
    return int((clean & (margin > 0)).sum()) / len(y)


def test_table_attacks_are_in_standardized_units_unclipped():
    rng = np.random.default_rng(0)
    scale = np.array([100.0, 0.3, 5.0, 30.0], np.float32)  # raw feature scales, as Pima's (glucose, pedigree, ...)
    X = (rng.normal(size=(600, 4)) * scale + 50).astype(np.float32)
    y = (X[:, 0] / 100 - X[:, 1] / 0.3 + 0.2 * rng.normal(size=600) > 0.5).astype(np.int64)
    splits = make_splits(Dataset("t", "classification", X[:400], y[:400], X[400:], y[400:], 2), seed=0)
    assert splits.meta["standardize"] and "input_range" not in splits.meta
    w, b = torch.tensor([1.0, -1.0, 0.3, 0.0]), -0.2
    model = _linear_two_class(w, b)
    cfg = TrainConfig(dataset="t", robustness=True, adv_eps=(0.1, 0.25), corruption_examples=1000)
    r = robustness_metrics(model, "linear", cfg, splits)
    assert r["attack"]["input_range"] == "unbounded" and "corruption_accuracy" not in r  # no images, no corruptions
    x, yy = robust_subset(model, cfg, splits)
    assert torch.equal(x, splits.X_test)  # the standardized test rows, as the model reads them
    for eps in (0.1, 0.25):
        exact = _exact_linear(w, b, x, yy, eps)
        assert 0.1 < exact < float((predict("linear", model(x)) == yy).float().mean())
        for method in ("fgsm", "pgd", "apgd"):
            assert r[f"{method}_{eps:g}"] == pytest.approx(exact, abs=1e-12), method


def test_pixel_attacks_are_in_raw_pixels_clipped_to_the_box():
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(300, 16, generator=g) > 0.5).float() * torch.rand(300, 16, generator=g)  # many pixels at 0
    w = torch.randn(16, generator=g)
    y = ((x @ w) > 0).long()
    ds = Dataset("px", "classification", x[:100].numpy(), y[:100].numpy(), x.numpy(), y.numpy(), 2,
                 meta={"image_shape": (1, 4, 4), "input_range": (0.0, 1.0), "standardize": False})
    splits = make_splits(ds, seed=0)
    assert torch.equal(splits.X_test, x)  # no standardization of pixels
    model = _linear_two_class(w, 0.0)
    cfg = TrainConfig(dataset="px", robustness=True, adv_eps=(0.1, 0.2), corruption_examples=1000)
    r = robustness_metrics(model, "linear", cfg, splits)
    assert r["attack"]["input_range"] == [0.0, 1.0]
    for eps in (0.1, 0.2):
        clipped, unclipped = _exact_linear(w, 0.0, x, y, eps, 0.0, 1.0), _exact_linear(w, 0.0, x, y, eps)
        assert clipped > unclipped  # the box binds: the clip is measurable
        for method in ("fgsm", "pgd", "apgd"):
            assert r[f"{method}_{eps:g}"] == pytest.approx(clipped, abs=1e-12), method


# --------------------------------------------------------------------------------------------
# corruptions do what their names say, measured on MNIST-shaped inputs
# --------------------------------------------------------------------------------------------

MNIST = (1, 28, 28)


def _blob(cx: float, cy: float) -> torch.Tensor:
    ys, xs = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
    return torch.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / 2.0).reshape(1, -1)


def _centroids(out: torch.Tensor) -> torch.Tensor:
    ys, xs = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
    img = out.reshape(-1, 28, 28)
    w = img.sum((1, 2))
    return torch.stack([(img * xs).sum((1, 2)) / w, (img * ys).sum((1, 2)) / w], 1)  # [N, 2] (x, y)


@pytest.mark.parametrize("severity", [1, 3, 5])
def test_rotate_turns_by_the_stated_angle_about_the_centre(severity):
    c = 13.5  # the centre of a 28-pixel side
    out = corrupt(_blob(c + 8, c).repeat(32, 1), "rotate", severity, MNIST, seed=0)
    xy = _centroids(out) - c
    angles = torch.rad2deg(torch.atan2(xy[:, 1], xy[:, 0]))
    torch.testing.assert_close(angles.abs(), torch.full((32,), SEVERITY_PARAMS["rotate"][severity - 1]),
                               atol=0.1, rtol=0)
    assert (angles > 0).any() and (angles < 0).any()  # the sign is random per image
    torch.testing.assert_close(xy.norm(dim=1), torch.full((32,), 8.0), atol=0.05, rtol=0)


@pytest.mark.parametrize("severity", [1, 5])
def test_translate_shifts_by_the_stated_fraction_of_the_side(severity):
    out = corrupt(_blob(13.5, 13.5).repeat(32, 1), "translate", severity, MNIST, seed=0)
    shift = (_centroids(out) - 13.5).norm(dim=1)
    torch.testing.assert_close(shift, torch.full((32,), SEVERITY_PARAMS["translate"][severity - 1] * 28),
                               atol=0.02, rtol=0)


def test_noise_contrast_brightness_pixelate_and_blur_match_their_parameters():
    half = torch.full((1000, 784), 0.5)
    for s in (1, 2, 3):  # below the clip (std ≤ 0.12 around 0.5)
        noise = corrupt(half, "gaussian_noise", s, MNIST, seed=1) - 0.5
        assert float(noise.std()) == pytest.approx(SEVERITY_PARAMS["gaussian_noise"][s - 1], rel=0.01)
    for s in (1, 3, 5):
        p = SEVERITY_PARAMS["shot_noise"][s - 1]
        shot = corrupt(half, "shot_noise", s, MNIST, seed=1)
        assert float(shot.mean()) == pytest.approx(0.5, abs=0.003)
        assert float(shot.var()) == pytest.approx(0.5 / p, rel=0.05)
        imp = corrupt(half, "impulse_noise", s, MNIST, seed=1)
        frac = SEVERITY_PARAMS["impulse_noise"][s - 1]
        assert float((imp == 1).float().mean()) == pytest.approx(frac / 2, rel=0.05)
        assert float((imp == 0).float().mean()) == pytest.approx(frac / 2, rel=0.05)
        ramp = 0.5 + torch.linspace(-0.2, 0.2, 784)[None]
        con = corrupt(ramp, "contrast", s, MNIST)
        torch.testing.assert_close(con - 0.5, (ramp - 0.5) * SEVERITY_PARAMS["contrast"][s - 1], atol=1e-6, rtol=0)
        bright = corrupt(torch.full((1, 784), 0.3), "brightness", s, MNIST)
        assert float(bright.min()) == float(bright.max()) == pytest.approx(min(1.0, 0.3 + 0.1 * s), abs=1e-6)
    assert float(corrupt(torch.full((1, 784), 0.3), "brightness", 5, MNIST).max()) == pytest.approx(0.8)
    assert float(corrupt(torch.full((1, 784), 0.7), "brightness", 5, MNIST).max()) == 1.0  # clipped, not wrapped
    r = torch.rand(2, 784, generator=torch.Generator().manual_seed(0))
    a = r.reshape(2, 28, 28)
    for s in (1, 2, 5):  # blocks of 2, 3, 6: partial blocks at the edge average their own pixels
        k = SEVERITY_PARAMS["pixelate"][s - 1]
        out = corrupt(r, "pixelate", s, MNIST).reshape(2, 28, 28)
        for i in range(0, 28, k):
            for j in range(0, 28, k):
                blk = out[:, i:i + k, j:j + k]
                torch.testing.assert_close(blk, a[:, i:i + k, j:j + k].mean((1, 2), keepdim=True).expand_as(blk))
    for s in (1, 5):  # a separable Gaussian of the stated sigma, replicate padding, radius ceil(3 sigma)
        sigma = SEVERITY_PARAMS["gaussian_blur"][s - 1]
        rad = math.ceil(3 * sigma)
        k = torch.exp(-0.5 * (torch.arange(-rad, rad + 1.0) / sigma) ** 2)
        k = k / k.sum()
        pad = nn.functional.pad(a[:, None], (rad, rad, rad, rad), mode="replicate")[:, 0]  # [2, 28+2r, 28+2r]
        win = pad.unfold(1, 2 * rad + 1, 1).unfold(2, 2 * rad + 1, 1)  # [2, 28, 28, K, K] each pixel's window
        ref = torch.einsum("nhwij,i,j->nhw", win, k, k)
        torch.testing.assert_close(corrupt(r, "gaussian_blur", s, MNIST), ref.reshape(2, 784), atol=1e-6, rtol=0)


def test_every_contender_sees_the_same_test_subset_and_corrupted_images():
    x = torch.rand(3000, 784, generator=torch.Generator().manual_seed(0))
    y = torch.arange(3000) % 10
    seen = {}

    def recorder(name):
        def pred(b):
            seen.setdefault(name, []).append(b.clone())
            return torch.zeros(len(b), dtype=torch.long) if name == "a" else (b.sum(1) > 392).long()
        return pred

    for name in ("a", "b"):
        corruption_accuracy(recorder(name), x[:40], y[:40], MNIST, corruptions=("gaussian_noise", "rotate"),
                            severities=(1, 5), seed=7)
    assert len(seen["a"]) == len(seen["b"]) == 5
    assert all(torch.equal(u, v) for u, v in zip(seen["a"], seen["b"]))  # same images, whatever the model
    splits = Splits(x, y, x, y, x, y, num_classes=10, task="classification", meta={})
    cfg = TrainConfig(dataset="mnist", seed=3, corruption_examples=1000)
    first, _ = robust_subset(nn.Linear(784, 10), cfg, splits)
    second, _ = robust_subset(nn.Sequential(nn.Linear(784, 5), nn.ReLU(), nn.Linear(5, 10)), cfg, splits)
    assert torch.equal(first, second) and len(first) == 1000  # the subset depends on the run seed alone
