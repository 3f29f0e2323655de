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

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from retrain_final_runs import differences  # noqa: E402  (the comparison the retrain reports)
sys.path.insert(0, str(Path(__file__).resolve().parent))
from cells import write_cells  # noqa: E402

from chainzrule.fight.executor import atomic_json, load_record  # noqa: E402


def apgd_names(result: dict) -> list[str]:
    return [k for k in (result.get("robustness") or {}) if k.startswith("apgd_")]


def update(folder: Path, retrained: Path) -> tuple[int, int, list[str]]:
    """(runs checked, APGD cells changed, keys left as they were) for ``folder``."""
    fixed: dict[str, dict] = {}
    left, changed, checked = [], 0, 0
    for f in sorted((folder / "runs").glob("*.json")):
        rec = load_record(f)
        if not apgd_names(rec["result"]):
            continue
        new_file = retrained / f.name
        if not new_file.exists():
            left.append(rec["key"])
            continue
        new = json.loads(new_file.read_text())["result"]
        other = [d for d in differences(rec["result"], new) if not d.startswith("robustness.apgd_")]
        if other:
            left.append(rec["key"])
            continue
        checked += 1
        rob = rec["result"]["robustness"]
        for name in apgd_names(rec["result"]):
            if rob[name] != new["robustness"][name]:
                rob[name] = new["robustness"][name]
                changed += 1
                fixed[rec["key"]] = rec
    for key, rec in fixed.items():
        atomic_json(folder / "runs" / f"{key}.json", rec)
    if fixed:
        write_cells(folder, fixed, lambda rec: apgd_names(rec["result"]))
    return checked, changed, left


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("--retrained", type=Path, required=True, help="run files from retrain_final_runs.py --keep")
    args = ap.parse_args()
    checked, changed, left = update(args.folder, args.retrained)
    print(f"{args.folder}: {checked} runs reproduced, {changed} APGD values changed; {len(left)} left as they were")
    for k in left:
        print(f"  {k}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
