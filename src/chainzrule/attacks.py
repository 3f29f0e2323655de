"""Adversarial attacks: FGSM and PGD, with the input checks :mod:`chainzrule.apgd` shares.

The attack half of the robustness evaluation of the papers (GUIDE §3, "Adversarial accuracy";
the corruptions are in :mod:`chainzrule.corruptions`, the step-size-free APGD in
:mod:`chainzrule.apgd`). Inputs are batches ``x: [N, ...]`` (flattened images for the image
datasets) whose values lie in ``input_range = (lo, hi)`` (``(0, 1)`` by default).

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
autograd path from ``x``, or an input gradient that is exactly zero for every example attacked
(by :func:`adversarial_accuracy`: every example of the evaluated set, whatever the batch size) —
the attacks raise :class:`NoInputGradient`: an attack that cannot move any example would otherwise
report the clean accuracy as adversarial accuracy.

>>> import torch
>>> model = torch.nn.Linear(4, 2)
>>> loss = lambda xb, yb: torch.nn.functional.cross_entropy(model(xb), yb)
>>> fgsm(loss, torch.full((3, 4), 0.5), torch.zeros(3, dtype=torch.long), eps=0.1).shape
torch.Size([3, 4])
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

from chainzrule.errors import ChainzRuleError, ConfigError, DataError, check_int
from chainzrule.robustness_base import (check_batch_size, check_examples, check_inside, check_range, check_xy, cpu_rand,
                                        cpu_randn, predict_indices)

__all__ = ["NoInputGradient", "fgsm", "pgd", "adversarial_accuracy"]


class NoInputGradient(ChainzRuleError):
    """The attacked loss does not depend on the input: no example can be moved, so no
    adversarial accuracy can be measured (the clean accuracy would be reported in its place)."""


# --------------------------------------------------------------------------------------------
# input gradients and argument checks (the public ones are shared with apgd.py)
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


def frozen(n: int) -> NoInputGradient:
    """The error of an attack whose input gradient is exactly zero for all ``n`` examples it attacked."""
    return NoInputGradient(f"the input gradient of the attacked loss is exactly zero wherever it was taken, for the {n} "
                           "examples evaluated: the attack cannot move them, and their clean accuracy is no "
                           "adversarial accuracy")


def require_moving_gradient(grad: torch.Tensor) -> None:
    """NoInputGradient if the input gradient ``grad`` ``[N, ...]`` is zero for every example."""
    if not bool(grad.any()):
        raise frozen(grad.shape[0])


def attack_range(input_range: Sequence[float] | None, x: torch.Tensor) -> tuple[float, float]:
    """(lo, hi) of the attack box, (-inf, inf) for ``None``; DataError if ``x`` lies outside it."""
    if input_range is None:
        return -math.inf, math.inf
    lo, hi = check_range(input_range)
    check_inside(x, lo, hi, "your inputs (or input_range=None for an unbounded attack)")
    return lo, hi


def _per_example_norm(t: torch.Tensor) -> torch.Tensor:
    # [N, ...] -> [N, 1, ..., 1] L2 norm of each example
    return t.flatten(1).norm(dim=1).view(-1, *([1] * (t.dim() - 1)))


def check_attack(eps: float, norm: str) -> None:
    """ConfigError unless ``eps >= 0`` and ``norm`` is ``"linf"`` or ``"l2"``."""
    if not eps >= 0:
        raise ConfigError(f"expected eps >= 0, got {eps!r}")
    if norm not in ("linf", "l2"):
        raise ConfigError(f"expected norm 'linf' or 'l2', got {norm!r}")


def check_batched(x: torch.Tensor) -> torch.Tensor:
    """``x`` itself if it is a batch ``[N, features, ...]``; DataError otherwise."""
    if x.dim() < 2:
        raise DataError(f"expected a batch x of shape [N, features], got shape {list(x.shape)}")
    return x


# --------------------------------------------------------------------------------------------
# attacks
# --------------------------------------------------------------------------------------------


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
    _check_eps(eps, norm, input_range)
    x = check_examples(check_batched(torch.as_tensor(x))).detach()
    lo, hi = attack_range(input_range, x)
    x_adv, moved = _fgsm(model_loss, x, y, float(eps), lo, hi, norm)
    if not moved:
        raise frozen(x.shape[0])
    return x_adv


def _fgsm(model_loss, x, y, eps, lo, hi, norm) -> tuple[torch.Tensor, bool]:
    """FGSM's ``x_adv`` and whether the input gradient moved any example (True for ``eps = 0``)."""
    if eps == 0:
        return x.clone(), True
    grad = _input_grad(model_loss, x, y)  # [N, ...]
    if norm == "linf":
        step = eps * grad.sign()
    else:
        step = eps * grad / _per_example_norm(grad).clamp_min(1e-12)
    return (x + step).clamp(lo, hi).detach(), bool(grad.any())


def _pgd(model_loss, x, y, eps, steps, step_size, lo, hi, norm, random_start, g) -> tuple[torch.Tensor, bool]:
    """PGD's ``x_adv`` and whether the first step's input gradient moved any example (True for ``eps = 0``)."""
    x = x.detach()
    moved = True
    delta = torch.zeros_like(x)  # [N, ...]
    if random_start and eps > 0:
        if norm == "linf":
            delta = (2 * cpu_rand(x.shape, x, g) - 1) * eps
        else:
            d = cpu_randn(x.shape, x, g)
            r = cpu_rand((x.shape[0],), x, g).view(-1, *([1] * (x.dim() - 1)))  # [N, 1, ...]
            delta = d / _per_example_norm(d).clamp_min(1e-12) * eps * r
    x_adv = (x + delta).clamp(lo, hi)
    for step in range(steps):
        grad = _input_grad(model_loss, x_adv, y)  # [N, ...]
        if step == 0 and eps > 0:
            moved = bool(grad.any())
        if norm == "linf":
            x_adv = x_adv + step_size * grad.sign()
            delta = (x_adv - x).clamp(-eps, eps)  # project onto the L-inf ball
        else:
            x_adv = x_adv + step_size * grad / _per_example_norm(grad).clamp_min(1e-12)
            delta = x_adv - x
            delta = delta * (eps / _per_example_norm(delta).clamp_min(1e-12)).clamp(max=1.0)
        # clamping to the box never increases |delta| coordinate-wise, so the ball still holds
        x_adv = (x + delta).clamp(lo, hi).detach()
    return x_adv, moved


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
    step_size = _check_pgd(eps, norm, steps, step_size, input_range)
    x = check_examples(check_batched(torch.as_tensor(x)))
    lo, hi = attack_range(input_range, x)
    g = torch.Generator().manual_seed(int(seed))
    x_adv, moved = _pgd(model_loss, x, y, float(eps), int(steps), step_size, lo, hi, norm, random_start, g)
    if not moved:
        raise frozen(x.shape[0])
    return x_adv


def _check_eps(eps: float, norm: str, input_range: Sequence[float] | None) -> None:
    """:func:`check_attack`, and a finite ``eps`` when the inputs are unbounded."""
    check_attack(eps, norm)
    if input_range is None and not math.isfinite(eps):
        raise ConfigError(f"expected a finite eps for unbounded inputs (input_range=None), got {eps!r}")


def _check_pgd(eps: float, norm: str, steps: int, step_size: float | None,
               input_range: Sequence[float] | None) -> float:
    """ConfigError for a bad PGD setting; the step size (default ``2.5 * eps / steps``) otherwise."""
    _check_eps(eps, norm, input_range)
    check_int("steps", steps)
    step_size = 2.5 * eps / steps if step_size is None else float(step_size)
    if not (math.isfinite(step_size) and step_size >= 0):
        raise ConfigError(f"expected a finite step_size >= 0, got {step_size!r}")
    return step_size


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
    unbounded); :class:`NoInputGradient` if the loss does not depend on the input (no autograd
    path, or a gradient of exactly zero for every example of ``x``: decided on the whole set,
    so the result does not depend on ``batch_size``; a batch that is frozen among moving ones
    is attacked like any other: FGSM leaves its examples where they are, PGD keeps them at their
    random start). An example
    counts as robust only if it is classified correctly both clean and attacked (AutoAttack's
    rule, as :func:`~chainzrule.apgd.apgd_accuracy`): an attack that happens to push a
    misclassified example into its class does not make it robust. An empty ``x`` is refused
    (DataError: an accuracy of no examples is undefined), as :func:`pgd` refuses it.

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
    if method == "pgd":
        step_size = _check_pgd(eps, norm, steps, step_size, input_range)
    else:
        _check_eps(eps, norm, input_range)
    batch_size = check_batch_size(batch_size)
    x, y = check_xy(x, y)
    x = check_batched(x).detach()
    lo, hi = attack_range(input_range, x)
    correct, moved = 0, False
    for b, i in enumerate(range(0, x.shape[0], batch_size)):
        xb, yb = x[i : i + batch_size], y[i : i + batch_size]
        if method == "fgsm":
            xa, mv = _fgsm(model_loss, xb, yb, float(eps), lo, hi, norm)
        else:
            g = torch.Generator().manual_seed(int(seed + b))
            xa, mv = _pgd(model_loss, xb, yb, float(eps), int(steps), step_size, lo, hi, norm, True, g)
        moved |= mv
        with torch.no_grad():
            clean = predict_indices(predict, xb).to(yb.device) == yb  # [B]
            pred = predict_indices(predict, xa)
        correct += int(((pred.to(yb.device) == yb) & clean).sum())
    if x.shape[0] and not moved:
        raise frozen(x.shape[0])
    return correct / max(1, x.shape[0])
