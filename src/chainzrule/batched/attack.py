"""APGD of M stacked members at once: :func:`members_apgd_accuracy`.

A final run's robustness is dominated by APGD (CE + DLR, 100 steps each): in the Pima quick
fight, half of the batched wall time went to running it member by member, each step a forward
and backward of one tiny network. APGD treats every example on its own (its step size, momentum,
checkpoints and best point are per example), so the members' examples can be attacked as one
batch through the stacked forward ``logits_fn`` (``[M, N, D] → [M, N, C]``) with each member's
result the one :func:`chainzrule.apgd.apgd_accuracy` gives it alone: the same subsets, the same
random starts (seed ``seeds[m] + b`` for the member's batch ``b``), the same order of losses, and
the same refusal when the input gradient is zero for all of a member's examples (then that
member's entry is the :class:`~chainzrule.attacks.NoInputGradient`, the others go on). The
forward differs from the member's own module only in float rounding (stacked matmuls).

>>> import torch
>>> torch.manual_seed(0) and None
>>> nets = [torch.nn.Linear(4, 3) for _ in range(2)]
>>> W = torch.stack([n.weight for n in nets]).detach(); b = torch.stack([n.bias for n in nets]).detach()
>>> stacked = lambda X: torch.baddbmm(b[:, None, :], X, W.transpose(1, 2))   # [M, N, 3]
>>> xs = [torch.rand(20, 4), torch.rand(15, 4)]
>>> ys = [n(x).argmax(-1).detach() for n, x in zip(nets, xs)]
>>> from chainzrule.apgd import apgd_accuracy
>>> alone = [apgd_accuracy(n, lambda v, n=n: n(v).argmax(-1), x, y, 0.2, steps=10, input_range=None, seed=3)
...          for n, x, y in zip(nets, xs, ys)]
>>> members_apgd_accuracy(stacked, xs, ys, 0.2, steps=10, input_range=None, seeds=[3, 3]) == alone
True
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from ..apgd import LOSSES, _start_noise, apgd
from ..attacks import NoInputGradient

__all__ = ["members_apgd_accuracy"]


def members_apgd_accuracy(logits_fn: Callable[[Tensor], Tensor], xs: Sequence[Tensor], ys: Sequence[Tensor],
                          eps: float, steps: int = 100, input_range: Sequence[float] | None = (0.0, 1.0),
                          seeds: Sequence[int] | None = None, batch_size: int = 512,
                          losses: Sequence[str] = LOSSES) -> list[float | NoInputGradient]:
    """Per member ``m``: ``apgd_accuracy`` of its own network (row ``m`` of the stacked
    ``logits_fn``) on ``xs[m]`` ``[N_m, D]`` / ``ys[m]`` ``[N_m]`` with start seed ``seeds[m]``,
    argmax decisions (a linear head), or the NoInputGradient it raises alone."""
    M = len(xs)
    seeds = [0] * M if seeds is None else list(seeds)
    if not (len(ys) == len(seeds) == M):
        raise ValueError(f"expected one x, y and seed per member ({M}), got {len(ys)} y and {len(seeds)} seeds")
    robust = [0] * M
    failed: dict[int, NoInputGradient] = {}
    n_batches = max((len(x) + batch_size - 1) // batch_size for x in xs) if M else 0
    for b in range(n_batches):
        i = b * batch_size
        members = [m for m in range(M) if i < len(xs[m]) and m not in failed]
        if not members:
            continue
        parts = [(m, xs[m][i:i + batch_size], ys[m][i:i + batch_size]) for m in members]
        X = torch.cat([x for _, x, _ in parts])  # [R, D] every member's batch b, member after member
        Y = torch.cat([y for _, _, y in parts])  # [R]
        start = torch.cat([_start_noise(x, seeds[m] + b) for m, x, _ in parts])  # [R, D] as each has alone
        owner = torch.cat([torch.full((len(y),), m, dtype=torch.long) for m, _, y in parts])  # [R]
        pos = torch.cat([torch.arange(len(y)) for _, _, y in parts])  # [R] row within the member's batch
        width = max(len(y) for _, _, y in parts)

        def scores_at(rows: Tensor) -> Callable[[Tensor], Tensor]:
            """Scores ``[R', C]`` of the rows ``rows`` (indices into X) at the points given."""
            o, p = owner[rows].to(X.device), pos[rows].to(X.device)

            def scores(v: Tensor) -> Tensor:
                grid = v.new_zeros((M, width) + tuple(v.shape[1:]))  # [M, W, D] the stacked input
                grid = grid.index_put((o, p), v)
                return logits_fn(grid)[o, p]  # [R', C]
            return scores

        fooled = torch.zeros(len(Y), dtype=torch.bool, device=Y.device)  # [R]
        alive = torch.ones(len(Y), dtype=torch.bool, device=Y.device)  # [R] rows of members not refused
        for j, name in enumerate(losses):
            while True:  # the first loss checks each member's input gradient; a frozen one is dropped, the rest rerun
                left = (alive & ~fooled).nonzero().squeeze(1)  # [R'] not broken yet
                if len(left) == 0:
                    break
                sc = scores_at(left)
                try:
                    _, f = apgd(sc, lambda v, sc=sc: sc(v).argmax(-1), X[left], Y[left], eps, loss=name, steps=steps,
                                input_range=input_range, decide=lambda s: s.argmax(dim=-1), start=start[left],
                                require_gradient=j == 0, groups=owner[left])  # loss 0 sees each member's whole batch
                except NoInputGradient as e:
                    frozen = e.groups or _independent_of_input(sc, X[left], Y[left], owner[left], fooled, left, e)
                    for m, err in frozen.items():
                        failed[m] = err
                        alive &= owner.to(alive.device) != m
                    continue
                fooled[left] |= f.to(fooled.device)
                break
        for m in members:
            if m not in failed:
                robust[m] += int((~fooled[owner == m]).sum())
    return [failed[m] if m in failed else robust[m] / max(1, len(xs[m])) for m in range(M)]


def _independent_of_input(sc, X: Tensor, Y: Tensor, own: Tensor, fooled: Tensor, left: Tensor,
                          err: NoInputGradient) -> dict[int, NoInputGradient]:
    """The scores depend on no member's input: alone, a member whose examples are all
    misclassified returns before its gradient is taken (its rows are marked ``fooled``), every
    other member raises ``err``. Returns the latter, member → ``err``."""
    with torch.no_grad():
        wrong = (sc(X).argmax(-1) != Y).to(fooled.device)  # [R']
    out = {}
    for m in own.unique().tolist():
        mine = (own == m).to(fooled.device)
        if bool(wrong[mine].all()):
            fooled[left[mine]] = True
        else:
            out[m] = err
    return out
