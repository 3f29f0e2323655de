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

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from retrain_final_runs import differences  # noqa: E402  (the comparison the retrain reports)
sys.path.insert(0, str(Path(__file__).resolve().parent))
from cells import write_cells  # noqa: E402

from chainzrule.fight.executor import atomic_json, load_record  # noqa: E402

ATTACKS = ("fgsm_", "pgd_", "apgd_")


def attack_names(rec: dict) -> list[str]:
    return [k for k in (rec["result"].get("robustness") or {}) if k.startswith(ATTACKS)]


def update(folder: Path, retrained: Path) -> tuple[int, int, list[str]]:
    """(runs reproduced, attack cells changed, keys left as they were) for ``folder``."""
    fixed: dict[str, dict] = {}
    left, changed, checked = [], 0, 0
    for f in sorted((folder / "runs").glob("*.json")):
        rec = load_record(f)
        if not attack_names(rec):
            continue
        new_file = retrained / f.name
        if not new_file.exists():
            left.append(rec["key"])
            continue
        new = json.loads(new_file.read_text())["result"]
        other = [d for d in differences(rec["result"], new) if not d.startswith(tuple(f"robustness.{a}" for a in ATTACKS))]
        if other:
            left.append(rec["key"])
            continue
        checked += 1
        rob = rec["result"]["robustness"]
        moved = [name for name in attack_names(rec) if rob[name] != new["robustness"][name]]
        changed += len(moved)
        if moved or rob.get("attack") != new["robustness"]["attack"]:
            rob.update({name: new["robustness"][name] for name in moved}, attack=new["robustness"]["attack"])
            fixed[rec["key"]] = rec
    for key, rec in fixed.items():
        atomic_json(folder / "runs" / f"{key}.json", rec)
    if fixed:
        write_cells(folder, fixed, attack_names)
    return checked, changed, left


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("--retrained", type=Path, required=True, help="run files from retrain_final_runs.py --keep")
    args = ap.parse_args()
    checked, changed, left = update(args.folder, args.retrained)
    print(f"{args.folder}: {checked} runs reproduced, {changed} attack values changed; {len(left)} left as they were")
    for k in left:
        print(f"  {k}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
