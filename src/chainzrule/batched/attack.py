"""APGD of M stacked members at once: :func:`members_apgd_accuracy`.

A final run's robustness is dominated by APGD (CE + DLR, 100 steps each): in the Pima quick
fight, half of the batched wall time went to running it member by member, each step a forward
and backward of one tiny network. APGD treats every example on its own (its step size, momentum,
checkpoints and best point are per example), so the members' examples can be attacked as one
batch through the stacked forward ``logits_fn`` (``[M, N, D] → [M, N, C]``) with each member's
result the one :func:`chainzrule.apgd.apgd_accuracy` gives it alone: the same subsets, the same
random starts (seed ``seeds[m] + b`` for the member's batch ``b``), the same order of losses, and
the same refusal when the input gradient is zero for all of a member's examples (decided on all
its batches; then that member's entry is the :class:`~chainzrule.attacks.NoInputGradient`, the
others go on). The
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

from ..apgd import LOSSES, start_noise, apgd
from ..attacks import NoInputGradient, check_attack, frozen

__all__ = ["members_apgd_accuracy", "members_apgd_table"]


def members_apgd_accuracy(logits_fn: Callable[[Tensor], Tensor], xs: Sequence[Tensor], ys: Sequence[Tensor],
                          eps: float, steps: int = 100, input_range: Sequence[float] | None = (0.0, 1.0),
                          seeds: Sequence[int] | None = None, batch_size: int = 512,
                          losses: Sequence[str] = LOSSES) -> list[float | NoInputGradient]:
    """Per member ``m``: ``apgd_accuracy`` of its own network (row ``m`` of the stacked
    ``logits_fn``) on ``xs[m]`` ``[N_m, D]`` / ``ys[m]`` ``[N_m]`` at ``eps`` with start seed
    ``seeds[m]``, argmax decisions (a linear head), or the NoInputGradient it raises alone
    (:func:`members_apgd_table` with one ε for everyone)."""
    table = members_apgd_table(logits_fn, xs, ys, [[eps]] * len(xs), steps=steps, input_range=input_range,
                               seeds=seeds, batch_size=batch_size, losses=losses)
    return [t[float(eps)] for t in table]


def members_apgd_table(logits_fn: Callable[[Tensor], Tensor], xs: Sequence[Tensor], ys: Sequence[Tensor],
                       eps_lists: Sequence[Sequence[float]], steps: int = 100,
                       input_range: Sequence[float] | None = (0.0, 1.0), seeds: Sequence[int] | None = None,
                       batch_size: int = 512, losses: Sequence[str] = LOSSES) -> list[dict[float, float | NoInputGradient]]:
    """Per member ``m``: ``{ε: apgd_accuracy of its own network at ε, or its NoInputGradient}``
    for every ε of ``eps_lists[m]`` — every (member, ε) pair attacked in one APGD run, each pair's
    rows with their own radius (ε = 0: the clean accuracy, as alone)."""
    M = len(xs)
    seeds = [0] * M if seeds is None else list(seeds)
    if not (len(ys) == len(seeds) == len(eps_lists) == M):
        raise ValueError(f"expected one x, y, seed and ε list per member ({M}), got {len(ys)} y, {len(seeds)} seeds "
                         f"and {len(eps_lists)} ε lists")
    units = [(m, float(e)) for m in range(M) for e in dict.fromkeys(float(v) for v in eps_lists[m])]  # (member, ε)
    for _, e in units:
        check_attack(e, "linf")
    robust = [0] * len(units)
    failed: dict[int, NoInputGradient] = {}  # units whose scores do not depend on the input
    checked: set[int] = set()  # units the first loss attacked in some batch (not all misclassified already)
    moved: set[int] = set()  # ... and whose start gradient was nonzero for some example there
    n_batches = max((len(x) + batch_size - 1) // batch_size for x in xs) if M else 0
    for b in range(n_batches):
        i = b * batch_size
        live = [u for u, (m, _) in enumerate(units) if i < len(xs[m]) and u not in failed]
        if not live:
            continue
        parts = [(u, xs[units[u][0]][i:i + batch_size], ys[units[u][0]][i:i + batch_size]) for u in live]
        X = torch.cat([x for _, x, _ in parts])  # [R, D] every unit's batch b, unit after unit
        Y = torch.cat([y for _, _, y in parts])  # [R]
        start = torch.cat([start_noise(x, seeds[units[u][0]] + b) for u, x, _ in parts])  # [R, D] as alone
        unit = torch.cat([torch.full((len(y),), u, dtype=torch.long) for u, _, y in parts])  # [R] the row's unit
        radius = torch.cat([torch.full((len(y),), units[u][1], dtype=X.dtype) for u, _, y in parts])  # [R]
        owner, pos, width = _slots(parts, units)

        def scores_at(rows: Tensor) -> Callable[[Tensor], Tensor]:
            """Scores ``[R', C]`` of the rows ``rows`` (indices into X) at the points given."""
            o, p = owner[rows].to(X.device), pos[rows].to(X.device)

            def scores(v: Tensor) -> Tensor:
                grid = v.new_zeros((M, width) + tuple(v.shape[1:]))  # [M, W, D] the stacked input
                grid = grid.index_put((o, p), v)
                return logits_fn(grid)[o, p]  # [R', C]
            return scores

        fooled = torch.zeros(len(Y), dtype=torch.bool, device=Y.device)  # [R]
        with torch.no_grad():  # ε = 0: apgd returns the clean decisions
            clean = radius == 0
            if bool(clean.any()):
                rows = clean.nonzero().squeeze(1)
                fooled[rows] = (scores_at(rows)(X[rows]).argmax(-1) != Y[rows]).to(fooled.device)
        alive = (~clean).to(Y.device)  # [R] rows attacked, of units not refused
        for j, name in enumerate(losses):
            while True:  # a unit whose scores ignore the input is dropped, the rest rerun
                left = (alive & ~fooled).nonzero().squeeze(1)  # [R'] not broken yet
                if len(left) == 0:
                    break
                sc = scores_at(left)
                seen = _recorder(unit[left], checked, moved) if j == 0 else None  # loss 0: each unit's whole batch
                try:
                    _, f = apgd(sc, lambda v, sc=sc: sc(v).argmax(-1), X[left], Y[left], radius[left], loss=name,
                                steps=steps, input_range=input_range, decide=lambda s: s.argmax(dim=-1),
                                start=start[left], require_gradient=False, start_gradient=seen)
                except NoInputGradient as e:
                    for u, err in _independent_of_input(sc, X[left], Y[left], unit[left], fooled, left, e).items():
                        failed[u] = err
                        alive &= unit.to(alive.device) != u
                    continue
                fooled[left] |= f.to(fooled.device)
                break
        for u in live:
            if u not in failed:
                robust[u] += int((~fooled[unit == u]).sum())
    for u in checked - moved - set(failed):  # frozen on every batch: the error it raises alone
        failed[u] = frozen(len(xs[units[u][0]]))
    out: list[dict] = [{} for _ in range(M)]
    for u, (m, e) in enumerate(units):
        out[m][e] = failed[u] if u in failed else robust[u] / max(1, len(xs[m]))
    return out


def _slots(parts: list, units: list[tuple[int, float]]) -> tuple[Tensor, Tensor, int]:
    """Where each row sits in the stacked input ``[M, W, D]``: its member ``[R]``, its position
    ``[R]`` (a member's units side by side) and the width ``W``."""
    used: dict[int, int] = {}
    owner, pos = [], []
    for u, _, y in parts:
        m = units[u][0]
        at = used.get(m, 0)
        owner.append(torch.full((len(y),), m, dtype=torch.long))
        pos.append(torch.arange(at, at + len(y)))
        used[m] = at + len(y)
    return torch.cat(owner), torch.cat(pos), max(used.values())


def _recorder(own: Tensor, checked: set[int], moved: set[int]) -> Callable[[Tensor, Tensor], None]:
    """apgd's ``start_gradient`` for rows of several units (``own`` ``[R']``: each row's): a unit
    whose rows are not all misclassified already is ``checked`` (alone, apgd takes its gradient),
    and ``moved`` if its start gradient is nonzero for one of them."""
    def seen(grad: Tensor, wrong: Tensor) -> None:
        for u in own.unique().tolist():
            mine = (own == u).to(wrong.device)  # [R']
            if not bool(wrong[mine].all()):
                checked.add(u)
                if bool(grad[mine.to(grad.device)].any()):
                    moved.add(u)
    return seen


def _independent_of_input(sc, X: Tensor, Y: Tensor, own: Tensor, fooled: Tensor, left: Tensor,
                          err: NoInputGradient) -> dict[int, NoInputGradient]:
    """The scores depend on no row's input: alone, a unit (``own`` ``[R']``: each row's) whose
    examples are all misclassified returns before its gradient is taken (its rows are marked
    ``fooled``), every other unit raises ``err``. Returns the latter, unit → ``err``."""
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
