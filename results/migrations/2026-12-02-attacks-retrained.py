"""One-off update of committed results (2026-12-02): every attack column from retrained models.

Two attack changes of 2026-12-02 left committed FGSM/PGD/APGD columns stale: FGSM/PGD now count an
example robust only if it is classified correctly clean *and* attacked (commit 9f026e5), and APGD
keeps its momentum through step-size restarts (3c9307c, the paper's Algorithm 1). The two
migrations beside this one each replace one of them and require the other to reproduce, so a folder
that has neither (``mnist-cnn/``) needs both replaced at once. This script takes run files retrained
at today's code by ``benchmarks/retrain_final_runs.py --keep DIR`` and, for every committed run
whose retrained record reproduces **every number that no attack computes exactly** (test and
validation metrics, selected epoch, steps, gradient statistics, ||J||_F, τ, corruption accuracies;
the Lipschitz bound to 1e-5), writes its FGSM, PGD and APGD values and its attack description
(which now names the rule) into its run file and results.csv. Runs not retrained, or whose model
does not reproduce bit for bit, are listed and left. Nothing else changes; running it again changes
nothing.

    python benchmarks/retrain_final_runs.py results/mnist-cnn --sample 40 --jobs 2 --keep /tmp/cnn
    python results/migrations/2026-12-02-attacks-retrained.py results/mnist-cnn --retrained /tmp/cnn
    chainzrule report results/mnist-cnn
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from from_retrained import main  # noqa: E402  (the check and the writing, shared by the migrations)


def attack_names(rec: dict) -> list[str]:
    return [k for k in (rec["result"].get("robustness") or {}) if k.startswith(("fgsm_", "pgd_", "apgd_"))]


if __name__ == "__main__":
    sys.exit(main(__doc__, attack_names, describe=True, what="attack"))
