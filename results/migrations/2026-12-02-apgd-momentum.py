"""One-off update of committed results (2026-12-02): APGD accuracies after the momentum fix.

Until commit 3c9307c ``chainzrule.apgd.apgd`` reset the momentum of an example whose step size it
halved (the restart from the best point also set the previous iterate to it); the paper's
Algorithm 1 and AutoAttack's code keep it. That changes an ``apgd_<ε>`` value only where a restart
led to a different iterate that misclassifies. This script takes run files retrained at the fixed
code by ``benchmarks/retrain_final_runs.py --keep DIR`` and, for every committed run whose
retrained record reproduces **every other stored number exactly** (test and validation metrics,
selected epoch, steps, gradient statistics, ||J||_F, τ, corruption and FGSM/PGD accuracies; the
Lipschitz bound to 1e-5), writes its retrained APGD values into its run file and results.csv.
Runs that were not retrained, or whose model does not reproduce bit for bit, are listed and left.
Nothing else changes; running it again changes nothing.

    python benchmarks/retrain_final_runs.py results/pima --sample 1425 --batch --keep /tmp/apgd-pima
    python results/migrations/2026-12-02-apgd-momentum.py results/pima --retrained /tmp/apgd-pima
    chainzrule report results/pima
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from from_retrained import main  # noqa: E402  (the check and the writing, shared by the migrations)


def apgd_names(rec: dict) -> list[str]:
    return [k for k in (rec["result"].get("robustness") or {}) if k.startswith("apgd_")]


if __name__ == "__main__":
    sys.exit(main(__doc__, apgd_names, describe=False, what="APGD"))
