"""Corruptions generated in code: our stand-in for CIFAR-10-C (not reachable offline).

The corruption half of the robustness evaluation of the papers (GUIDE §3, "Corruption
accuracy"; the attacks are in :mod:`chainzrule.attacks`). Everything works on *flattened*
images ``x: [N, C*H*W]`` whose pixels lie in ``input_range = (lo, hi)`` (``(0, 1)`` by default);
the image shape ``(C, H, W)`` (or ``(H, W)`` for one channel) is passed separately, e.g.
``(1, 28, 28)`` for MNIST.

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

from chainzrule.errors import ConfigError, DataError
from chainzrule.robustness_base import (check_batch_size, check_inside, check_range, check_xy, cpu_rand, cpu_randn,
                                        predict_indices)

__all__ = ["CORRUPTIONS", "SEVERITY_PARAMS", "SEVERITIES", "corrupt", "corruption_accuracy"]

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

#: The severities, mildest first (the default of :func:`corruption_accuracy`).
SEVERITIES: tuple[int, ...] = (1, 2, 3, 4, 5)


# --------------------------------------------------------------------------------------------
# validation helpers
# --------------------------------------------------------------------------------------------


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


def _gaussian_noise(u, p, g):
    return u + p * cpu_randn(u.shape, u, g)  # [N, C, H, W]


def _shot_noise(u, p, g):
    rate = (u.clamp(0, 1) * p).cpu()  # [N, C, H, W] expected photon counts
    return torch.poisson(rate, generator=g).to(u.device) / p  # [N, C, H, W]


def _impulse_noise(u, p, g):
    r = cpu_rand(u.shape, u, g)  # [N, C, H, W] uniform
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
    angle = 2 * math.pi * cpu_rand((n,), u, g)  # [N] direction of the shift
    theta = torch.zeros(n, 2, 3, dtype=u.dtype, device=u.device)  # [N, 2, 3]
    theta[:, 0, 0] = 1.0
    theta[:, 1, 1] = 1.0
    # normalized coordinates span 2 per side; sampling at x - s moves the content by +s
    theta[:, 0, 2] = -2 * p * torch.cos(angle)
    theta[:, 1, 2] = -2 * p * torch.sin(angle)
    return _warp(u, theta)


def _rotate(u, p, g):
    n, _, h, w = u.shape
    sign = torch.where(cpu_rand((n,), u, g) < 0.5, -1.0, 1.0).to(u.dtype)  # [N]
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
    lo, hi = check_range(input_range)
    x = torch.as_tensor(x)
    _check_features(x, shape)
    if not x.is_floating_point():
        raise DataError(f"expected a floating-point tensor, got dtype {x.dtype}")
    check_inside(x, lo, hi, "the images")  # as the attacks: refused, not clamped into the range
    lead = x.shape[:-1]
    with torch.no_grad():
        u = (x.reshape(-1, *shape) - lo) / (hi - lo)  # [N, C, H, W] in [0, 1]
        g = torch.Generator().manual_seed(int(seed))
        v = _OPS[name](u, SEVERITY_PARAMS[name][int(severity) - 1], g)  # [N, C, H, W]
        out = (lo + v * (hi - lo)).clamp(lo, hi)
    return out.reshape(*lead, x.shape[-1]).to(x.dtype)


def _accuracy(predict, x: torch.Tensor, y: torch.Tensor, batch_size: int) -> float:
    correct = 0
    with torch.no_grad():
        for i in range(0, x.shape[0], batch_size):
            pred = predict_indices(predict, x[i : i + batch_size])  # [B]
            correct += int((pred.to(y.device) == y[i : i + batch_size]).sum())
    return correct / max(1, x.shape[0])


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
    ``"clean"`` → accuracy on the uncorrupted ``x``. An empty ``x`` is refused (DataError: an
    accuracy of no examples is undefined).

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
    x, y = check_xy(x, y)
    _check_features(x, shape)
    batch_size = check_batch_size(batch_size)
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

