"""One MNIST run for the engine choices of docs/engine.md (basis, init, coefficient learning rate).

Usage::

    python benchmarks/engine_choice.py NAME BASIS LAMBDA INIT COEF_LR_SCALE LR [SEED]

    NAME           a label for the output line
    BASIS          legendre | chebyshev | monomial | power
    LAMBDA         DREG strength (0 for none)
    INIT           new (chainzrule 0.2: whole-line fit) | old (0.1: least squares on [-R, R] only)
    COEF_LR_SCALE  learning rate of the coefficients as a multiple of LR
    LR             peak learning rate (Adam + one-cycle)

784-256-256-10, 4 epochs, batch 128, one CPU thread. Prints one JSON line and appends it to
``engine_choice.jsonl`` in the current folder. The table in docs/engine.md was made with e.g.::

    for b in legendre chebyshev monomial power; do
      for lam in 0 0.003; do python benchmarks/engine_choice.py $b$lam $b $lam new 1 0.01 0; done
    done
"""

import json
import sys
import time

import numpy as np
import torch

from chainzrule import functional as CF
from chainzrule.config import TrainConfig
from chainzrule.train import train


def interval_fit(init, degree, bound, basis="legendre", range_control="linear", **_):
    """chainzrule 0.1's init: least squares on value and slope over [-R, R] only, then θ = M⁻¹ a."""
    u = np.linspace(-bound, bound, 401)
    v, s = CF.target_activation(init, u)
    k = np.arange(degree + 1)
    V = u[:, None] ** k
    dV = np.zeros_like(V)
    dV[:, 1:] = k[1:] * u[:, None] ** (k[1:] - 1)
    a, *_ = np.linalg.lstsq(np.concatenate([V, dV]), np.concatenate([v, s]), rcond=None)
    return torch.from_numpy(np.linalg.solve(CF.basis_matrix(basis, degree, bound).numpy(), a))


def main(argv):
    if len(argv) not in (6, 7) or argv[0] in ("-h", "--help"):
        print(__doc__)
        sys.exit(0 if argv[:1] in (["-h"], ["--help"]) else 2)
    name, basis, lam, init, cls, lr = argv[0], argv[1], float(argv[2]), argv[3], float(argv[4]), float(argv[5])
    seed = int(argv[6]) if len(argv) > 6 else 0
    torch.set_num_threads(1)
    if init == "old":
        CF.fit_coefficients = interval_fit
    cfg = TrainConfig(dataset="mnist", model="chainzrule", hidden=(256, 256), epochs=4, batch_size=128, lr=lr,
                      dreg=lam, poly_basis=basis, coef_lr_scale=cls, seed=seed, diag_examples=500)
    t = time.time()
    r = train(cfg, progress=False).result
    out = {"name": name, "basis": basis, "lam": lam, "init": init, "coef_lr_scale": cls, "lr": lr, "seed": seed,
           "test_acc": r["test"]["accuracy"], "val_acc": r["val"]["accuracy"], "pgv": r["pgv"],
           "gmax": r["grad_norm_max"], "gmed": r["grad_norm_median"], "lip": r["lipschitz_bound"],
           "jac": r["jacobian_fro"]["mean"], "sec": time.time() - t}
    print(json.dumps(out), flush=True)
    with open("engine_choice.jsonl", "a") as f:
        f.write(json.dumps(out) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
