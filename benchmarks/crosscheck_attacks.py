"""Our FGSM, PGD and APGD against an independent implementation: torchattacks (a port of
AutoAttack's code), on a ReLU MLP and a ChainzRule MLP trained here on synthetic 4-class data.

torchattacks is no dependency of ours: install it beside the project without touching torch,
``pip install --no-deps --target /tmp/ta torchattacks``, then
``PYTHONPATH=/tmp/ta python benchmarks/crosscheck_attacks.py [--seeds 8]``.

torchattacks clips to [0, 1] and takes images, so each model is wrapped as ``model(lo + R·x')``
with one scale R for every feature (exact for L∞: ε' = ε / R); unbounded, the margin around the
data keeps its clip from binding; with the box (0, 1), R = 1 and the clip binds where ours does.
Settings as a fight's: L∞, PGD 10 steps of 2.5·ε/10 from a random start, APGD-CE + APGD-DLR of
100 steps and one restart each; an example counts if it is classified correctly clean and under
every attack. Prints one row per model and box: FGSM, PGD and APGD accuracy, ours / reference.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from torch import nn

from chainzrule import ChainzRuleMLP
from chainzrule.apgd import apgd_accuracy
from chainzrule.attacks import adversarial_accuracy


class Boxed(nn.Module):
    """``[N, 1, 1, D]`` in [0, 1] → ``model(lo + R·x)``: the image-shaped input torchattacks wants."""

    def __init__(self, model: nn.Module, lo: torch.Tensor, scale: float) -> None:
        super().__init__()
        self.model, self.lo, self.scale = model, lo, scale

    def forward(self, x4: torch.Tensor) -> torch.Tensor:
        return self.model(self.lo + self.scale * x4.flatten(1))  # [N, K]


def fit(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int = 60) -> nn.Module:
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(epochs):
        for i in range(0, len(x), 64):
            opt.zero_grad()
            F.cross_entropy(model(x[i:i + 64]), y[i:i + 64]).backward()
            opt.step()
    return model.eval()


def ours(model, x, y, eps, box, seed) -> tuple[float, float, float]:
    loss = lambda xb, yb: F.cross_entropy(model(xb), yb)  # noqa: E731
    pred = lambda xb: model(xb).argmax(-1)  # noqa: E731
    fgsm = adversarial_accuracy(loss, pred, x, y, eps, method="fgsm", input_range=box)
    pgd = adversarial_accuracy(loss, pred, x, y, eps, method="pgd", steps=10, input_range=box, seed=seed)
    ap = apgd_accuracy(model, pred, x, y, eps, steps=100, input_range=box, seed=seed, decide=lambda s: s.argmax(-1))
    return fgsm, pgd, ap


def reference(model, x, y, eps, box, seed) -> tuple[float, float, float]:
    import torchattacks

    if box is None:  # a margin of 2ε + 1 around the data: the [0, 1] clip never binds
        lo = x.min(0).values - (2 * eps + 1)
        scale = float((x.max(0).values + 2 * eps + 1 - lo).max())
    else:
        lo, scale = torch.full((x.shape[1],), float(box[0])), float(box[1] - box[0])
    wrapped = Boxed(model, lo, scale)
    x4 = ((x - lo) / scale).view(len(x), 1, 1, -1).clamp(0, 1)  # [N, 1, 1, D]
    e = eps / scale
    with torch.no_grad():
        clean = model(x).argmax(-1) == y  # [N]

    def acc(adv):
        with torch.no_grad():
            return float(((wrapped(adv).argmax(-1) == y) & clean).float().mean())

    fgsm = acc(torchattacks.FGSM(wrapped, eps=e)(x4, y))
    torch.manual_seed(seed)
    pgd = acc(torchattacks.PGD(wrapped, eps=e, alpha=2.5 * e / 10, steps=10, random_start=True)(x4, y))
    robust = clean.clone()
    for loss in ("ce", "dlr"):
        attack = torchattacks.APGD(wrapped, norm="Linf", eps=e, steps=100, n_restarts=1, loss=loss, seed=seed)
        robust &= attack.perturb(x4, y, cheap=True)[0].bool()
    return fgsm, pgd, float(robust.float().mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=8, help="attack seeds averaged per row (default 8)")
    parser.add_argument("--eps", type=float, default=0.1, help="L∞ budget (default 0.1)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    n, d, k = 1200, 10, 4
    centers = torch.rand(k, d, generator=g)
    y = torch.randint(0, k, (n,), generator=g)
    x = (centers[y] + 0.18 * torch.randn(n, d, generator=g)).clamp(0, 1)  # [N, D] in [0, 1]
    torch.manual_seed(0)
    relu = fit(nn.Sequential(nn.Linear(d, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, k)),
               x[:800], y[:800])
    torch.manual_seed(0)
    poly = fit(ChainzRuleMLP(d, [32, 32], k), x[:800], y[:800])
    xt, yt = x[800:], y[800:]
    print(f"| model | box | n | FGSM ours / ref | PGD ours / ref | APGD ours / ref (mean of {args.seeds} seeds) |")
    print("|---|---|---|---|---|---|")
    for name, model in (("ReLU MLP", relu), ("ChainzRule MLP", poly)):
        for box in (None, (0.0, 1.0)):
            a = torch.tensor([ours(model, xt, yt, args.eps, box, s) for s in range(args.seeds)]).mean(0)
            b = torch.tensor([reference(model, xt, yt, args.eps, box, s) for s in range(args.seeds)]).mean(0)
            cells = " | ".join(f"{100 * u:.2f} / {100 * v:.2f}" for u, v in zip(a.tolist(), b.tolist()))
            print(f"| {name} | {box or 'none'} | {len(yt)} | {cells} |", flush=True)


if __name__ == "__main__":
    main()
