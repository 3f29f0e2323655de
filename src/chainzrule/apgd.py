"""APGD: the step-size-free PGD of AutoAttack (Croce & Hein, ICML 2020), L-infinity ball.

PGD with a fixed step and one start (:func:`chainzrule.attacks.pgd`) is known to overstate
robustness, most of all for models whose loss surface is flat or badly scaled — exactly the
smooth models a derivative penalty produces. APGD fixes the two weak points of PGD:

- **Step size**: it starts at ``2·eps`` and halves at checkpoints ``w_j`` of the iteration
  budget whenever fewer than ``rho = 75%`` of the steps since the last checkpoint increased the
  loss, or the step did not change and the best loss did not improve; after a halving it
  restarts from the best point found so far. Checkpoints are at ``p_j·steps`` with
  ``p_0 = 0, p_1 = 0.22, p_{j+1} = p_j + max(p_j − p_{j−1} − 0.03, 0.06)``.
- **Momentum**: ``x_{k+1} = P(x_k + 0.75·(z_{k+1} − x_k) + 0.25·(x_k − x_{k−1}))`` with
  ``z_{k+1} = P(x_k + η·sign(∇f(x_k)))``; a restart replaces ``x_k`` by the best point and keeps
  ``x_{k−1}``, so the momentum term carries over (Algorithm 1: ``x^(k+1) ← x_max``).

This is the paper's Algorithm 1, every iterate checked for misclassification. AutoAttack's code
(``autopgd_base.py``) differs from it in three details we do not copy: it halves when at most (not
fewer than) 75% of the steps increased the loss, it skips the "no improvement" condition at the
first checkpoint, and after a restart it compares the next loss with the discarded iterate's, not
the best point's. Measured on six MNIST MLP attacks (KAN, SiLU + input-gradient penalty, ReLU +
Jacobian regularization; ε 0.05 and 0.1): the three details change no accuracy; resetting the
momentum at a restart (what this module did until 2026-12-02) moved three of the six by 0.1–0.2
points, in both directions.

Two losses, as in AutoAttack's standard version: cross-entropy ("ce") and the Difference of
Logits Ratio ("dlr", ``−(z_y − max_{i≠y} z_i) / (z_π1 − z_π3)``), which is invariant to the
scale of the logits — a model with a small logit scale cannot hide behind a vanishing
cross-entropy gradient. DLR needs three classes or more; with two we use the unscaled margin
``−(z_y − z_other)`` (our choice; the ratio is undefined there). :func:`apgd_accuracy` counts
an example as robust only if no iterate of either attack misclassifies it (the per-example
worst case, AutoAttack's rule). Square and FAB, the other two AutoAttack members, are not
included.

Everything works on *class scores* ``scores(x) -> [N, K]`` and a separate ``predict(x) -> [N]``
that decides correctness, so any head works. Both losses read the scores' argmax as the decision
(the DLR margin is ``z_y − max_{i≠y} z_i``), so the scores must be ones whose argmax is the
prediction: logits, or for an ordinal head :func:`chainzrule.ordinal.decision_scores` (class
log-probabilities are that for a cumulative-link head, not for CORAL or CORN, which predict the
median class: on those the attack aimed at the mode and missed examples, measured 2026-12-03).
Randomness (the start point) comes from a CPU generator seeded with ``seed``.

>>> import torch
>>> torch.manual_seed(0) and None
>>> model = torch.nn.Linear(4, 3)
>>> x = torch.rand(64, 4); y = model(x).argmax(-1)
>>> clean = apgd_accuracy(model, lambda b: model(b).argmax(-1), x, y, eps=0.0)
>>> clean
1.0
>>> apgd_accuracy(model, lambda b: model(b).argmax(-1), x, y, eps=0.3, steps=20) < clean
True
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from chainzrule.attacks import (NoInputGradient, attack_range, check_attack, check_batched, frozen,
                                require_moving_gradient)
from chainzrule.errors import ConfigError, DataError, check_int
from chainzrule.robustness_base import check_batch_size, check_xy

__all__ = ["LOSSES", "dlr_loss", "apgd", "apgd_accuracy", "checkpoints", "start_noise"]

#: The losses APGD ascends, in the order :func:`apgd_accuracy` runs them.
LOSSES: tuple[str, ...] = ("ce", "dlr")

_RHO = 0.75  # fraction of loss-increasing steps below which the step size is halved
_ALPHA = 0.75  # momentum weight of the new point


def checkpoints(steps: int) -> list[int]:
    """The iterations at which APGD may halve its step size (Croce & Hein, §3.2).

    >>> checkpoints(100)
    [0, 22, 41, 57, 70, 80, 87, 93, 99]
    """
    p = [0.0, 0.22]
    while p[-1] < 1:
        p.append(p[-1] + max(p[-1] - p[-2] - 0.03, 0.06))
    return sorted({min(math.ceil(q * steps - 1e-9), steps - 1) for q in p if q <= 1} | {0})


def dlr_loss(scores: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-example Difference of Logits Ratio ``[N]`` (higher = closer to misclassified).

    ``−(z_y − max_{i≠y} z_i) / (z_π1 − z_π3 + 1e-12)`` for K ≥ 3 classes (π sorts the scores
    in decreasing order); ``−(z_y − max_{i≠y} z_i)`` for K = 2.

    >>> dlr_loss(torch.tensor([[3.0, 1.0, 0.0]]), torch.tensor([0]))
    tensor([-0.6667])
    >>> dlr_loss(torch.tensor([[3.0, 1.0]]), torch.tensor([1]))
    tensor([2.])
    """
    z_y = scores.gather(1, y[:, None]).squeeze(1)  # [N]
    other = scores.masked_fill(F.one_hot(y, scores.shape[1]).bool(), -math.inf)  # [N, K]
    margin = z_y - other.max(dim=1).values  # [N]
    if scores.shape[1] < 3:
        return -margin
    top = scores.sort(dim=1, descending=True).values  # [N, K]
    return -margin / (top[:, 0] - top[:, 2] + 1e-12)


def _loss_fn(name: str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    if name == "ce":
        return lambda s, y: F.cross_entropy(s, y, reduction="none")
    if name == "dlr":
        return dlr_loss
    raise ConfigError(f"expected loss one of {', '.join(LOSSES)}, got {name!r}")


def _loss_and_grad(scores_fn, loss_fn, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Per-example loss ``[N]``, its input gradient ``[N, ...]`` and the scores ``[N, K]`` at ``x``
    (the model's ``.grad`` untouched)."""
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        scores = scores_fn(x)  # [N, K]
        loss = loss_fn(scores, y)  # [N]
        (grad,) = torch.autograd.grad(loss.sum(), x, allow_unused=True)
    if grad is None:
        raise NoInputGradient("the attacked scores do not depend on the input: no adversarial example can be made")
    return loss.detach(), grad.detach(), scores.detach()


def start_noise(x: torch.Tensor, seed: int) -> torch.Tensor:
    """APGD's random start direction ``[N, ...]`` in [-1, 1], from a CPU generator seeded with ``seed``."""
    g = torch.Generator().manual_seed(int(seed))
    return (2 * torch.rand(x.shape, generator=g, dtype=x.dtype) - 1).to(x.device)


# Over 60 lines on purpose: the loop is Croce & Hein's Algorithm 1 in one piece. Its state (iterate,
# previous iterate, best point and loss, per-example step, checkpoint counters) changes together at
# every step and every checkpoint; split into helpers it would have to be passed around whole.
def apgd(
    scores_fn: Callable[[torch.Tensor], torch.Tensor],
    predict: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float | torch.Tensor,
    loss: str = "ce",
    steps: int = 100,
    input_range: Sequence[float] | None = (0.0, 1.0),
    seed: int = 0,
    decide: Callable[[torch.Tensor], torch.Tensor] | None = None,
    start: torch.Tensor | None = None,
    require_gradient: bool = True,
    start_gradient: Callable[[torch.Tensor, torch.Tensor], None] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run APGD with ``loss`` on one batch; return ``(x_adv [N, ...], fooled [N] bool)``.

    ``x_adv`` is, per example, the first misclassified iterate if one was found (``fooled``),
    else the iterate of highest loss. ``input_range = None`` attacks in the ε-ball only.
    ``decide(scores) -> [N]``, when given, reads each iterate's predicted classes from the scores
    the loss step already computed (no second forward; it must agree with ``predict``);
    ``start`` (``[N, ...]`` in [-1, 1]) replaces the random start drawn from ``seed``. The
    attack stops once every example is fooled (nothing left to change in the result). A zero
    input gradient at the start for every example raises :class:`~chainzrule.attacks.NoInputGradient`
    unless ``require_gradient`` is False (a caller that decides on a larger set: it passes
    ``start_gradient``, called once with that gradient ``[N, ...]`` and the examples misclassified
    before the attack ``[N]`` — not called when apgd returns before taking a gradient: ``eps = 0``,
    no examples, or every example misclassified already). ``eps`` may be a tensor ``[N]`` of positive radii, one per example (each
    example's attack is the one it gets with its radius as a float).

    >>> import torch
    >>> model = torch.nn.Linear(2, 2)
    >>> x = torch.full((3, 2), 0.5); y = model(x).argmax(-1)
    >>> xa, fooled = apgd(model, lambda b: model(b).argmax(-1), x, y, eps=0.1, steps=10)
    >>> bool(((xa - x).abs() <= 0.1 + 1e-6).all()), fooled.dtype
    (True, torch.bool)
    """
    steps = check_int("steps", steps)
    loss_fn = _loss_fn(loss)
    x = check_batched(torch.as_tensor(x)).detach()
    y = torch.as_tensor(y)
    if y.dim() != 1 or y.shape[0] != x.shape[0]:
        raise DataError(f"expected labels y of shape [{x.shape[0]}], got shape {list(y.shape)}")
    lo, hi = attack_range(input_range, x)
    n, view = x.shape[0], (-1,) + (1,) * (x.dim() - 1)
    per_row = isinstance(eps, torch.Tensor)
    if per_row:
        if eps.shape != (n,) or not bool((eps > 0).all()):
            raise ConfigError(f"expected eps > 0 for each of the {n} examples, shape [{n}], got shape {list(eps.shape)}")
        eps_x = eps.to(dtype=x.dtype, device=x.device).view(view)  # [N, 1, ...] each example's radius
    else:
        check_attack(eps, "linf")
        eps_x = eps

    def project(v: torch.Tensor) -> torch.Tensor:
        return torch.minimum(torch.maximum(v, x - eps_x), x + eps_x).clamp(lo, hi)

    def misclassified(v: torch.Tensor, scores: torch.Tensor) -> bool:
        """Record the iterate ``v`` (its scores ``[N, K]``) as the found point of the examples it
        misclassifies first; True once every example is fooled (the result is final)."""
        with torch.no_grad():
            pred = predict(v) if decide is None else decide(scores)
            now = torch.as_tensor(pred).to(y.device) != y  # [N]
        x_found[now & ~fooled] = v[now & ~fooled]
        fooled.logical_or_(now)
        return bool(fooled.all())

    with torch.no_grad():
        fooled = torch.as_tensor(predict(x)).to(y.device) != y  # [N]
    x_found = x.clone()  # [N, ...] first misclassified point per example
    if (not per_row and eps == 0) or n == 0 or bool(fooled.all()):
        return x_found, fooled
    if start is None:
        start = start_noise(x, seed)
    elif start.shape != x.shape:
        raise DataError(f"expected start of shape {list(x.shape)}, got shape {list(start.shape)}")
    x_k = project(x + eps_x * start)
    f_k, grad, s_k = _loss_and_grad(scores_fn, loss_fn, x_k, y)
    if start_gradient is not None:
        start_gradient(grad, fooled.clone())  # a copy: fooled changes as the attack goes on
    if require_gradient:
        require_moving_gradient(grad)
    if misclassified(x_k, s_k):
        return x_found, fooled
    x_best, f_best, g_best = x_k.clone(), f_k.clone(), grad.clone()  # highest-loss point so far, per example
    eta = (2.0 * eps_x.reshape(n) if per_row else torch.full((n,), 2.0 * eps, dtype=x.dtype, device=x.device))  # [N] step
    x_prev = x_k.clone()
    marks = checkpoints(int(steps))
    increases = torch.zeros(n, device=x.device)  # [N] loss increases since the last checkpoint
    f_best_at_mark, eta_at_mark, last_mark = f_best.clone(), eta.clone(), 0
    for k in range(int(steps)):
        z = project(x_k + eta.view(view) * grad.sign())
        momentum = 1.0 if k == 0 else _ALPHA
        x_next = project(x_k + momentum * (z - x_k) + (1 - momentum) * (x_k - x_prev))
        f_next, grad_next, s_next = _loss_and_grad(scores_fn, loss_fn, x_next, y)
        if misclassified(x_next, s_next):  # every iterate is checked, a checkpoint's too (as AutoAttack)
            return x_found, fooled
        increases += (f_next > f_k).float()
        better = f_next > f_best
        x_best[better], f_best[better], g_best[better] = x_next[better], f_next[better], grad_next[better]
        x_prev, x_k, f_k, grad = x_k, x_next, f_next, grad_next
        if k + 1 in marks and k + 1 > last_mark:
            span = k + 1 - last_mark
            halve = (increases < _RHO * span) | ((eta == eta_at_mark) & (f_best == f_best_at_mark))
            eta = torch.where(halve, eta / 2, eta)
            if bool(halve.any()):  # restart the halved examples from their best point (and its gradient);
                # x_prev stays: the next step's momentum is x_best − x_prev, as x^(k+1) ← x_max in Algorithm 1
                x_k = torch.where(halve.view(view), x_best, x_k)
                f_k = torch.where(halve, f_best, f_k)
                grad = torch.where(halve.view(view), g_best, grad)
            increases.zero_()
            f_best_at_mark, eta_at_mark, last_mark = f_best.clone(), eta.clone(), k + 1
    return torch.where(fooled.view(view), x_found, x_best), fooled


def apgd_accuracy(
    scores_fn: Callable[[torch.Tensor], torch.Tensor],
    predict: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    steps: int = 100,
    losses: Sequence[str] = LOSSES,
    input_range: Sequence[float] | None = (0.0, 1.0),
    batch_size: int = 512,
    seed: int = 0,
    decide: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> float:
    """Accuracy under APGD with every loss in ``losses``, worst case per example.

    An example counts as robust when it is classified correctly and no iterate of any of the
    attacks misclassifies it. As in AutoAttack, each loss attacks only the examples the earlier
    ones left unbroken, from the same random start they would have had in the whole batch (the
    examples do not interact, so this is the full-batch result, computed once). Batch ``i`` uses
    start seed ``seed + i``; ``eps = 0`` gives the clean accuracy; ``decide``: see :func:`apgd`.
    :class:`~chainzrule.attacks.NoInputGradient` if the scores do not depend on the input, or
    if the first loss's input gradient at the start is exactly zero for every example of every
    batch it attacked: decided on the whole set, so the result does not depend on ``batch_size``.
    An empty ``x`` is refused (DataError: an accuracy of no examples is undefined).
    """
    losses = tuple(losses)
    for name in losses:
        _loss_fn(name)
    if not losses:
        raise ConfigError("expected at least one APGD loss, got none")
    batch_size = check_batch_size(batch_size)
    x, y = check_xy(x, y)
    robust, moved = 0, []  # moved: per batch the first loss attacked, did its start gradient move any example

    def seen(grad: torch.Tensor, _wrong: torch.Tensor) -> None:
        moved.append(bool(grad.any()))

    for b, i in enumerate(range(0, x.shape[0], batch_size)):
        xb, yb = x[i : i + batch_size], y[i : i + batch_size]
        fooled = torch.zeros(len(yb), dtype=torch.bool, device=yb.device)  # [B]
        start = start_noise(xb, seed + b)  # [B, ...] every loss starts each example here
        for j, name in enumerate(losses):
            left = (~fooled).nonzero().squeeze(1)  # [B'] not broken yet
            if len(left) == 0:
                break
            _, f = apgd(scores_fn, predict, xb[left], yb[left], eps, loss=name, steps=steps, input_range=input_range,
                        decide=decide, start=start[left], require_gradient=False,
                        start_gradient=seen if j == 0 else None)  # loss 0 saw the whole batch
            fooled[left] |= f.to(fooled.device)
        robust += int((~fooled).sum())
    if moved and not any(moved):
        raise frozen(x.shape[0])
    return robust / max(1, x.shape[0])
