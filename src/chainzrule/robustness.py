"""Robustness measurement: corruptions generated in code, and FGSM / PGD attacks.

Our stand-in for CIFAR-10-C (not reachable offline) and for the adversarial evaluation of the
papers (GUIDE §3, "Corruption accuracy" and "Adversarial accuracy"). Everything works on
*flattened* images ``x: [N, C*H*W]`` whose pixels lie in ``input_range = (lo, hi)`` (``(0, 1)``
by default); the image shape ``(C, H, W)`` (or ``(H, W)`` for one channel) is passed separately,
e.g. ``(1, 28, 28)`` for MNIST.

Corruptions
-----------
:data:`CORRUPTIONS` lists nine corruptions, each at severities 1..5. Every corruption is computed
on the pixels mapped to ``u = (x - lo) / (hi - lo)`` in [0, 1], with the parameters of
:data:`SEVERITY_PARAMS` below, then mapped back and clamped to ``[lo, hi]``.

=================  =====================================  ==================================
name               parameter (severity 1, 2, 3, 4, 5)     operation on ``u`` in [0, 1]
=================  =====================================  ==================================
gaussian_noise     std 0.04, 0.08, 0.12, 0.18, 0.26       ``u + std * N(0, 1)``
shot_noise         photons 250, 100, 50, 25, 12           ``Poisson(u * photons) / photons``
impulse_noise      fraction 0.02, 0.04, 0.07, 0.11, 0.16  that fraction of values set to 0 or
                                                          1 (salt and pepper, half each)
gaussian_blur      sigma 0.5, 0.75, 1.0, 1.25, 1.5 px     separable Gaussian, radius
                                                          ceil(3 sigma), replicate padding
contrast           factor 0.75, 0.5, 0.4, 0.3, 0.15       ``(u - m) * factor + m``, m the
                                                          per-image mean
brightness         shift 0.1, 0.2, 0.3, 0.4, 0.5          ``u + shift``
translate          fraction 0.04, 0.08, 0.12, 0.16, 0.20  shift by fraction * side, direction
                   of the side                            uniform at random per image; filled
                                                          with 0 (``lo``); bilinear
rotate             degrees 6, 12, 18, 24, 30              about the centre, sign random per
                                                          image; filled with 0; bilinear
pixelate           block 2, 3, 4, 5, 6 px                 average over k x k blocks (partial
                                                          blocks at the edge), each block
                                                          filled with its mean
=================  =====================================  ==================================

These values are ours (CIFAR-10-C's own tables are tuned to 32x32 natural images and are too
weak for MNIST-like digits). They were chosen so that the mean absolute change of an image grows
with severity for every corruption on 16x16 to 32x32 images, which ``tests/test_robustness.py``
checks; pixelate uses whole-pixel blocks because fractional rescaling (CIFAR-10-C's way) aliases
and is not monotone on small images. Randomness is drawn on the CPU from a ``torch.Generator``
seeded with ``seed``, so a corruption is the same on every device, and for Gaussian and impulse
noise the same seed at two severities reuses the same draws (common random numbers).

Attacks
-------
:func:`fgsm` and :func:`pgd` take a callable ``model_loss(x, y) -> scalar loss`` so that any head
(classification or ordinal) and any loss work; gradients are taken with
``torch.autograd.grad`` with respect to the *input only*, so the model's ``.grad`` fields,
``requires_grad`` flags and train/eval mode are never touched. ``eps`` is in the units of ``x``
(for ``(0, 1)`` pixels, ``8/255`` is the usual CIFAR L-infinity budget). :func:`adversarial_accuracy`
is the single entry point with a method switch.

``input_range`` bounds the adversarial examples. Its default ``(0, 1)`` is for images; data that
lies outside it is refused rather than silently clamped into it (a clamp far beyond ``eps``
would be no attack at all), so non-image data must state its range, or ``None`` for an
unbounded attack (only the ``eps`` ball). When the loss does not depend on the input — no
autograd path from ``x``, or an input gradient that is exactly zero for every example of a
batch — the attacks raise :class:`NoInputGradient`: an attack that cannot move any example would
otherwise report the clean accuracy as adversarial accuracy.

>>> import torch
>>> x = torch.rand(4, 1 * 8 * 8)
>>> corrupt(x, "rotate", 3, (1, 8, 8)).shape
torch.Size([4, 64])
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from chainzrule.errors import ChainzRuleError, ConfigError, DataError

__all__ = [
    "NoInputGradient",
    "CORRUPTIONS",
    "SEVERITY_PARAMS",
    "corrupt",
    "corruption_accuracy",
    "fgsm",
    "pgd",
    "adversarial_accuracy",
]

class NoInputGradient(ChainzRuleError):
    """The attacked loss does not depend on the input: no example can be moved, so no
    adversarial accuracy can be measured (the clean accuracy would be reported in its place)."""


#: Parameter of each corruption at severities 1..5 (see the module docstring for units).
SEVERITY_PARAMS: dict[str, tuple[float, ...]] = {
    "gaussian_noise": (0.04, 0.08, 0.12, 0.18, 0.26),  # noise std, in units of (hi - lo)
    "shot_noise": (250.0, 100.0, 50.0, 25.0, 12.0),  # photons at full intensity
    "impulse_noise": (0.02, 0.04, 0.07, 0.11, 0.16),  # fraction of values replaced
    "gaussian_blur": (0.5, 0.75, 1.0, 1.25, 1.5),  # kernel std in pixels
    "contrast": (0.75, 0.5, 0.4, 0.3, 0.15),  # contrast factor around the image mean
    "brightness": (0.1, 0.2, 0.3, 0.4, 0.5),  # additive shift, in units of (hi - lo)
    "translate": (0.04, 0.08, 0.12, 0.16, 0.20),  # shift as a fraction of the image side
    "rotate": (6.0, 12.0, 18.0, 24.0, 30.0),  # rotation angle in degrees
    "pixelate": (2, 3, 4, 5, 6),  # block side in pixels
}

#: The fixed, ordered set of corruption names.
CORRUPTIONS: tuple[str, ...] = tuple(SEVERITY_PARAMS)

SEVERITIES: tuple[int, ...] = (1, 2, 3, 4, 5)


# --------------------------------------------------------------------------------------------
# validation helpers
# --------------------------------------------------------------------------------------------


def _check_range(input_range: Sequence[float]) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in input_range)
    except (TypeError, ValueError):
        raise ConfigError(f"expected input_range (lo, hi), got {input_range!r}") from None
    if not hi > lo:
        raise ConfigError(f"expected input_range with lo < hi, got ({lo}, {hi})")
    return lo, hi


def _check_image_shape(image_shape: Sequence[int]) -> tuple[int, int, int]:
    shape = tuple(int(s) for s in image_shape)
    if len(shape) == 2:
        shape = (1, *shape)
    if len(shape) != 3 or any(s < 1 for s in shape):
        raise ConfigError(
            f"expected image_shape (C, H, W) or (H, W) of positive ints, got {tuple(image_shape)!r}"
        )
    return shape  # type: ignore[return-value]


def _check_name_severity(name: str, severity: int) -> None:
    if name not in SEVERITY_PARAMS:
        raise ConfigError(f"unknown corruption {name!r}; expected one of {', '.join(CORRUPTIONS)}")
    if isinstance(severity, bool) or not isinstance(severity, (int, float)) and not hasattr(
        severity, "__index__"
    ) or int(severity) != severity or not 1 <= int(severity) <= 5:
        raise ConfigError(f"expected severity in 1..5, got {severity!r}")


def _check_features(x: torch.Tensor, image_shape: tuple[int, int, int]) -> None:
    expected = math.prod(image_shape)
    got = x.shape[-1] if x.dim() >= 1 else 0
    if x.dim() < 1 or got != expected:
        raise DataError(
            f"expected {expected} input features (image_shape {image_shape}), got {got} "
            f"(x of shape {tuple(x.shape)})"
        )


# --------------------------------------------------------------------------------------------
# corruptions; each maps u: [N, C, H, W] in [0, 1] to the same shape (clamped afterwards)
# --------------------------------------------------------------------------------------------


def _randn(shape, like: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    return torch.randn(shape, generator=g, dtype=like.dtype).to(like.device)


def _rand(shape, like: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    return torch.rand(shape, generator=g, dtype=like.dtype).to(like.device)


def _gaussian_noise(u, p, g):
    return u + p * _randn(u.shape, u, g)  # [N, C, H, W]


def _shot_noise(u, p, g):
    rate = (u.clamp(0, 1) * p).cpu()  # [N, C, H, W] expected photon counts
    return torch.poisson(rate, generator=g).to(u.device) / p  # [N, C, H, W]


def _impulse_noise(u, p, g):
    r = _rand(u.shape, u, g)  # [N, C, H, W] uniform
    out = torch.where(r < p / 2, torch.zeros_like(u), u)  # pepper
    return torch.where((r >= p / 2) & (r < p), torch.ones_like(u), out)  # salt


def _gaussian_blur(u, p, g):
    n, c, h, w = u.shape
    radius = max(1, math.ceil(3 * p))
    t = torch.arange(-radius, radius + 1, dtype=u.dtype, device=u.device)  # [K]
    k = torch.exp(-0.5 * (t / p) ** 2)
    k = k / k.sum()  # [K], sums to 1
    kh = k.view(1, 1, -1, 1).expand(c, 1, -1, 1)  # [C, 1, K, 1] depthwise, along H
    kw = k.view(1, 1, 1, -1).expand(c, 1, 1, -1)  # [C, 1, 1, K] depthwise, along W
    v = F.pad(u, (0, 0, radius, radius), mode="replicate")  # [N, C, H+2r, W]
    v = F.conv2d(v, kh, groups=c)  # [N, C, H, W]
    v = F.pad(v, (radius, radius, 0, 0), mode="replicate")  # [N, C, H, W+2r]
    return F.conv2d(v, kw, groups=c)  # [N, C, H, W]


def _contrast(u, p, g):
    m = u.mean(dim=(1, 2, 3), keepdim=True)  # [N, 1, 1, 1]
    return (u - m) * p + m  # [N, C, H, W]


def _brightness(u, p, g):
    return u + p  # [N, C, H, W]


def _warp(u: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    # theta: [N, 2, 3] maps output normalized coords to input normalized coords; fill with 0
    grid = F.affine_grid(theta, list(u.shape), align_corners=False)  # [N, H, W, 2]
    return F.grid_sample(u, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _translate(u, p, g):
    n = u.shape[0]
    angle = 2 * math.pi * _rand((n,), u, g)  # [N] direction of the shift
    theta = torch.zeros(n, 2, 3, dtype=u.dtype, device=u.device)  # [N, 2, 3]
    theta[:, 0, 0] = 1.0
    theta[:, 1, 1] = 1.0
    # normalized coordinates span 2 per side; sampling at x - s moves the content by +s
    theta[:, 0, 2] = -2 * p * torch.cos(angle)
    theta[:, 1, 2] = -2 * p * torch.sin(angle)
    return _warp(u, theta)


def _rotate(u, p, g):
    n, _, h, w = u.shape
    sign = torch.where(_rand((n,), u, g) < 0.5, -1.0, 1.0).to(u.dtype)  # [N]
    a = sign * math.radians(p)  # [N] angle in radians
    cos, sin = torch.cos(a), torch.sin(a)
    theta = torch.zeros(n, 2, 3, dtype=u.dtype, device=u.device)  # [N, 2, 3]
    # a rotation in pixel space, written in normalized coordinates (aspect ratio h / w)
    theta[:, 0, 0] = cos
    theta[:, 0, 1] = -sin * h / w
    theta[:, 1, 0] = sin * w / h
    theta[:, 1, 1] = cos
    return _warp(u, theta)


def _pixelate(u, p, g):
    _, _, h, w = u.shape
    k = int(p)
    v = F.avg_pool2d(u, k, stride=k, ceil_mode=True)  # [N, C, ceil(H/k), ceil(W/k)] block means
    v = v.repeat_interleave(k, dim=2).repeat_interleave(k, dim=3)  # [N, C, >=H, >=W]
    return v[:, :, :h, :w]  # [N, C, H, W]


_OPS: dict[str, Callable[[torch.Tensor, float, torch.Generator], torch.Tensor]] = {
    "gaussian_noise": _gaussian_noise,
    "shot_noise": _shot_noise,
    "impulse_noise": _impulse_noise,
    "gaussian_blur": _gaussian_blur,
    "contrast": _contrast,
    "brightness": _brightness,
    "translate": _translate,
    "rotate": _rotate,
    "pixelate": _pixelate,
}


def corrupt(
    x: torch.Tensor,
    name: str,
    severity: int,
    image_shape: Sequence[int],
    seed: int = 0,
    input_range: Sequence[float] = (0.0, 1.0),
) -> torch.Tensor:
    """Apply corruption ``name`` at ``severity`` (1..5) to flattened images.

    ``x`` is ``[..., C*H*W]`` with pixels in ``input_range``; the result has the same shape,
    dtype and device, lies in ``input_range`` and is a deterministic function of ``seed``.
    Parameters per severity are in :data:`SEVERITY_PARAMS`.

    >>> import torch
    >>> x = torch.rand(2, 3 * 4 * 4, generator=torch.Generator().manual_seed(0))
    >>> y = corrupt(x, "gaussian_noise", 2, (3, 4, 4), seed=1)
    >>> y.shape, bool(y.min() >= 0 and y.max() <= 1)
    (torch.Size([2, 48]), True)
    >>> torch.equal(y, corrupt(x, "gaussian_noise", 2, (3, 4, 4), seed=1))
    True
    >>> corrupt(x, "fog", 1, (3, 4, 4))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    chainzrule.errors.ConfigError: unknown corruption 'fog'; expected one of gaussian_noise, ..., pixelate
    """
    _check_name_severity(name, severity)
    shape = _check_image_shape(image_shape)
    lo, hi = _check_range(input_range)
    x = torch.as_tensor(x)
    _check_features(x, shape)
    if not x.is_floating_point():
        raise DataError(f"expected a floating-point tensor, got dtype {x.dtype}")
    lead = x.shape[:-1]
    with torch.no_grad():
        u = (x.reshape(-1, *shape) - lo) / (hi - lo)  # [N, C, H, W] in [0, 1]
        g = torch.Generator().manual_seed(int(seed))
        v = _OPS[name](u, SEVERITY_PARAMS[name][int(severity) - 1], g)  # [N, C, H, W]
        out = (lo + v * (hi - lo)).clamp(lo, hi)
    return out.reshape(*lead, x.shape[-1]).to(x.dtype)


def _predict_indices(predict, x: torch.Tensor) -> torch.Tensor:
    pred = torch.as_tensor(predict(x))
    if pred.dim() != 1 or pred.shape[0] != x.shape[0]:
        raise ConfigError(
            f"expected predict to return class indices of shape [{x.shape[0]}], "
            f"got shape {list(pred.shape)}"
        )
    return pred


def _accuracy(predict, x: torch.Tensor, y: torch.Tensor, batch_size: int) -> float:
    correct = 0
    with torch.no_grad():
        for i in range(0, x.shape[0], batch_size):
            pred = _predict_indices(predict, x[i : i + batch_size])  # [B]
            correct += int((pred.to(y.device) == y[i : i + batch_size]).sum())
    return correct / max(1, x.shape[0])


def _check_xy(x, y) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = torch.as_tensor(x), torch.as_tensor(y)
    if y.dim() != 1 or x.dim() < 1 or y.shape[0] != x.shape[0]:
        raise DataError(
            f"expected labels y of shape [{x.shape[0] if x.dim() else '?'}], got shape {list(y.shape)}"
        )
    return x, y


def _check_batch_size(batch_size: int) -> int:
    if isinstance(batch_size, bool) or int(batch_size) != batch_size or batch_size < 1:
        raise ConfigError(f"expected batch_size >= 1, got {batch_size!r}")
    return int(batch_size)


def corruption_accuracy(
    predict: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
    image_shape: Sequence[int],
    corruptions: Sequence[str] = CORRUPTIONS,
    severities: Sequence[int] = SEVERITIES,
    seed: int = 0,
    batch_size: int = 1024,
    input_range: Sequence[float] = (0.0, 1.0),
) -> dict[str, float]:
    """Accuracy of ``predict`` on every corruption and severity ("mean corruption accuracy").

    ``predict`` maps a batch ``[B, C*H*W]`` to predicted class indices ``[B]`` (so ordinal
    and classification heads both work); it runs under ``torch.no_grad()``. Each corruption is
    applied to the whole of ``x`` at once (so results do not depend on ``batch_size``), then
    predictions are made in batches.

    Returns a flat, JSON-ready dict: ``"<name>/<severity>"`` → accuracy, ``"<name>"`` → its
    mean over the severities, ``"mean"`` → the mean over all (name, severity) pairs, and
    ``"clean"`` → accuracy on the uncorrupted ``x``.

    >>> import torch
    >>> x = torch.rand(8, 16, generator=torch.Generator().manual_seed(0))
    >>> y = (x.mean(1) > 0.5).long()
    >>> predict = lambda b: (b.mean(1) > 0.5).long()
    >>> r = corruption_accuracy(predict, x, y, (1, 4, 4), corruptions=("contrast",), severities=(1, 5))
    >>> sorted(r)
    ['clean', 'contrast', 'contrast/1', 'contrast/5', 'mean']
    >>> r["clean"]
    1.0
    """
    shape = _check_image_shape(image_shape)
    x, y = _check_xy(x, y)
    _check_features(x, shape)
    batch_size = _check_batch_size(batch_size)
    corruptions, severities = tuple(corruptions), tuple(severities)
    if not corruptions or not severities:
        raise ConfigError(
            f"expected at least one corruption and one severity, got {corruptions!r} and {severities!r}"
        )
    for name in corruptions:
        for s in severities:
            _check_name_severity(name, s)
    out: dict[str, float] = {"clean": _accuracy(predict, x, y, batch_size)}
    all_acc = []
    for name in corruptions:
        accs = []
        for s in severities:
            xc = corrupt(x, name, s, shape, seed=seed, input_range=input_range)
            acc = _accuracy(predict, xc, y, batch_size)
            out[f"{name}/{int(s)}"] = acc
            accs.append(acc)
        out[name] = sum(accs) / len(accs)
        all_acc.extend(accs)
    out["mean"] = sum(all_acc) / len(all_acc)
    return out


# --------------------------------------------------------------------------------------------
# adversarial attacks
# --------------------------------------------------------------------------------------------


def _input_grad(model_loss, x_adv: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Gradient of ``model_loss`` w.r.t. the input only (no parameter ``.grad`` is written)."""
    x_adv = x_adv.detach().requires_grad_(True)
    with torch.enable_grad():
        loss = model_loss(x_adv, y)
        if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
            shape = list(loss.shape) if isinstance(loss, torch.Tensor) else type(loss).__name__
            raise ConfigError(f"expected model_loss to return a scalar tensor, got {shape}")
        if not loss.requires_grad:
            raise ConfigError(
                "expected model_loss to be differentiable in its input, got a loss without grad"
            )
        (grad,) = torch.autograd.grad(loss.reshape(()), x_adv, allow_unused=True)
    if grad is None:
        raise NoInputGradient("the attacked loss does not depend on the input (autograd finds no path from x "
                              "to the loss): no adversarial example can be made")
    return grad.detach()


def _require_moving_gradient(grad: torch.Tensor) -> None:
    if not bool(grad.any()):
        raise NoInputGradient(f"the input gradient of the attacked loss is exactly zero for all {grad.shape[0]} "
                              "examples of the batch: the attack cannot move them, and their clean accuracy "
                              "is no adversarial accuracy")


def _attack_range(input_range: Sequence[float] | None, x: torch.Tensor) -> tuple[float, float]:
    """(lo, hi) of the attack box, (-inf, inf) for ``None``; DataError if ``x`` lies outside it."""
    if input_range is None:
        return -math.inf, math.inf
    lo, hi = _check_range(input_range)
    if x.numel():
        tol = 1e-6 * (hi - lo)
        x_lo, x_hi = float(x.min()), float(x.max())
        if x_lo < lo - tol or x_hi > hi + tol:
            raise DataError(f"x lies in [{x_lo:.4g}, {x_hi:.4g}], outside input_range ({lo:g}, {hi:g}): pass the "
                            "valid range of your inputs as input_range, or input_range=None for an unbounded "
                            "attack (the default (0, 1) is for images with pixels in [0, 1])")
    return lo, hi


def _per_example_norm(t: torch.Tensor) -> torch.Tensor:
    # [N, ...] -> [N, 1, ..., 1] L2 norm of each example
    return t.flatten(1).norm(dim=1).view(-1, *([1] * (t.dim() - 1)))


def _check_attack(eps: float, norm: str) -> None:
    if not eps >= 0:
        raise ConfigError(f"expected eps >= 0, got {eps!r}")
    if norm not in ("linf", "l2"):
        raise ConfigError(f"expected norm 'linf' or 'l2', got {norm!r}")


def _batched(x: torch.Tensor) -> torch.Tensor:
    if x.dim() < 2:
        raise DataError(f"expected a batch x of shape [N, features], got shape {list(x.shape)}")
    return x


def fgsm(
    model_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    input_range: Sequence[float] | None = (0.0, 1.0),
    norm: str = "linf",
) -> torch.Tensor:
    """Fast gradient sign method: one step of size ``eps`` up the loss, clamped to range.

    ``norm="linf"`` steps ``eps * sign(grad)``; ``norm="l2"`` steps ``eps * grad / ||grad||``
    per example (the fast gradient method). Returns a detached tensor shaped like ``x``.

    >>> import torch
    >>> model = torch.nn.Linear(4, 3)
    >>> loss = lambda xb, yb: torch.nn.functional.cross_entropy(model(xb), yb)
    >>> x, y = torch.full((5, 4), 0.5), torch.zeros(5, dtype=torch.long)
    >>> x_adv = fgsm(loss, x, y, eps=0.1)
    >>> float((x_adv - x).abs().max()) <= 0.1 + 1e-6, model.weight.grad is None
    (True, True)
    """
    _check_attack(eps, norm)
    x = _batched(torch.as_tensor(x)).detach()
    lo, hi = _attack_range(input_range, x)
    if eps == 0:
        return x.clone()
    grad = _input_grad(model_loss, x, y)  # [N, ...]
    _require_moving_gradient(grad)
    if norm == "linf":
        step = eps * grad.sign()
    else:
        step = eps * grad / _per_example_norm(grad).clamp_min(1e-12)
    return (x + step).clamp(lo, hi).detach()


def _pgd(model_loss, x, y, eps, steps, step_size, lo, hi, norm, random_start, g):
    x = x.detach()
    delta = torch.zeros_like(x)  # [N, ...]
    if random_start and eps > 0:
        if norm == "linf":
            delta = (2 * _rand(x.shape, x, g) - 1) * eps
        else:
            d = _randn(x.shape, x, g)
            r = _rand((x.shape[0],), x, g).view(-1, *([1] * (x.dim() - 1)))  # [N, 1, ...]
            delta = d / _per_example_norm(d).clamp_min(1e-12) * eps * r
    x_adv = (x + delta).clamp(lo, hi)
    for step in range(steps):
        grad = _input_grad(model_loss, x_adv, y)  # [N, ...]
        if step == 0 and eps > 0:
            _require_moving_gradient(grad)
        if norm == "linf":
            x_adv = x_adv + step_size * grad.sign()
            delta = (x_adv - x).clamp(-eps, eps)  # project onto the L-inf ball
        else:
            x_adv = x_adv + step_size * grad / _per_example_norm(grad).clamp_min(1e-12)
            delta = x_adv - x
            delta = delta * (eps / _per_example_norm(delta).clamp_min(1e-12)).clamp(max=1.0)
        # clamping to the box never increases |delta| coordinate-wise, so the ball still holds
        x_adv = (x + delta).clamp(lo, hi).detach()
    return x_adv


def pgd(
    model_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    steps: int = 10,
    step_size: float | None = None,
    input_range: Sequence[float] | None = (0.0, 1.0),
    norm: str = "linf",
    random_start: bool = True,
    seed: int = 0,
) -> torch.Tensor:
    """Projected gradient descent (Madry et al.) in the L-inf or L2 ball of radius ``eps``.

    Starts at a uniform random point of the ball (L-inf: uniform per coordinate; L2: uniform
    direction, radius ``eps * U(0, 1)``) when ``random_start``, drawn from a CPU generator
    seeded with ``seed``; then ``steps`` steps of size ``step_size`` (default
    ``2.5 * eps / steps``) along the gradient sign (L-inf) or the normalized gradient (L2),
    each followed by projection onto the ball and clamping to ``input_range``.

    >>> import torch
    >>> model = torch.nn.Linear(4, 3)
    >>> loss = lambda xb, yb: torch.nn.functional.cross_entropy(model(xb), yb)
    >>> x, y = torch.full((5, 4), 0.5), torch.zeros(5, dtype=torch.long)
    >>> x_adv = pgd(loss, x, y, eps=0.1, steps=5)
    >>> float((x_adv - x).abs().max()) <= 0.1 + 1e-6
    True
    >>> x2 = pgd(loss, x, y, eps=0.5, steps=5, norm="l2")
    >>> bool((x2 - x).norm(dim=1).max() <= 0.5 + 1e-6)
    True
    """
    _check_attack(eps, norm)
    if isinstance(steps, bool) or int(steps) != steps or steps < 1:
        raise ConfigError(f"expected steps >= 1, got {steps!r}")
    step_size = 2.5 * eps / steps if step_size is None else float(step_size)
    if step_size < 0:
        raise ConfigError(f"expected step_size >= 0, got {step_size!r}")
    x = _batched(torch.as_tensor(x))
    lo, hi = _attack_range(input_range, x)
    g = torch.Generator().manual_seed(int(seed))
    return _pgd(model_loss, x, y, float(eps), int(steps), step_size, lo, hi, norm, random_start, g)


def adversarial_accuracy(
    model_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    predict: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    method: str = "fgsm",
    steps: int = 10,
    step_size: float | None = None,
    input_range: Sequence[float] | None = (0.0, 1.0),
    batch_size: int = 512,
    seed: int = 0,
    norm: str = "linf",
) -> float:
    """Accuracy of ``predict`` on adversarial examples made by ``method`` ("fgsm" or "pgd").

    ``model_loss(x, y)`` is the scalar loss the attack ascends; ``predict(x)`` returns class
    indices ``[B]`` and runs under ``torch.no_grad()``. Attacks run in batches of
    ``batch_size``; for PGD the random start of batch ``i`` uses seed ``seed + i``.
    ``eps = 0`` gives the clean accuracy. ``input_range`` is the box of valid inputs (``None``:
    unbounded); :class:`NoInputGradient` if the loss does not depend on the input.

    >>> import torch
    >>> torch.manual_seed(0) and None
    >>> model = torch.nn.Linear(4, 2)
    >>> loss = lambda xb, yb: torch.nn.functional.cross_entropy(model(xb), yb)
    >>> predict = lambda xb: model(xb).argmax(-1)
    >>> x = torch.rand(32, 4); y = predict(x)
    >>> adversarial_accuracy(loss, predict, x, y, eps=0.0)
    1.0
    >>> adversarial_accuracy(loss, predict, x, y, eps=0.3, method="pgd") < 1.0
    True
    """
    if method not in ("fgsm", "pgd"):
        raise ConfigError(f"expected method 'fgsm' or 'pgd', got {method!r}")
    _check_attack(eps, norm)
    batch_size = _check_batch_size(batch_size)
    x, y = _check_xy(x, y)
    x = _batched(x)
    correct = 0
    for b, i in enumerate(range(0, x.shape[0], batch_size)):
        xb, yb = x[i : i + batch_size], y[i : i + batch_size]
        if method == "fgsm":
            xa = fgsm(model_loss, xb, yb, eps, input_range=input_range, norm=norm)
        else:
            xa = pgd(model_loss, xb, yb, eps, steps=steps, step_size=step_size,
                     input_range=input_range, norm=norm, seed=seed + b)
        with torch.no_grad():
            pred = _predict_indices(predict, xa)
        correct += int((pred.to(yb.device) == yb).sum())
    return correct / max(1, x.shape[0])
