"""One-off recomputation of committed results (2026-12-02): FGSM/PGD under AutoAttack's rule.

Until 2026-12-02 (commit 9f026e5) ``chainzrule.attacks.adversarial_accuracy`` counted an example
robust when its *attacked* input was classified correctly, even if the clean one was not, so the
``fgsm_<ε>``/``pgd_<ε>`` columns of every committed fight were too high by up to the attacked
subset's clean error (APGD's columns always required both). The run files hold no weights, so
this script **retrains every run that has those columns** from its stored config, exactly as the
fight did (one process per run, one thread each, as ``--jobs 2`` on two cores), and checks that
the retrained model is the stored one: every stored metric that does not depend on the attack rule
must come back equal — test and validation accuracy and loss, the selected epoch, the epochs and
steps run, the gradient statistics, ||J||_F, τ, the corruption accuracy and the APGD accuracies
(floats compared exactly; the Lipschitz bound to 1e-5 relative, as ``max_slope()`` now rounds up by
float32's rounding of σ'). Only then are the run's FGSM/PGD values and its attack description
(``robust``: "classified correctly clean and attacked") written into its run file and results.csv;
a run that does not reproduce is listed and left as it was, so the folder's README keeps saying so.
Nothing else in any file changes. Resumable: a run file whose attack description already names the
rule is skipped. Retrained records are kept in ``--cache`` by key, so runs shared between folders
(the addenda copy ``mnist/``'s reference runs) are trained once.

    python results/migrations/2026-12-02-attack-rule.py results/pima-tanh results/pima --jobs 2

Then ``chainzrule report results/X`` regenerates each report.
"""

from __future__ import annotations

import csv
import io
import json
import math
import sys
from concurrent.futures import as_completed
from pathlib import Path

from tqdm.auto import tqdm

from chainzrule.batched import eligible_groups, execute_group
from chainzrule.fight.executor import Task, atomic_json, load_record, process_pool

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from retrain_final_runs import relative_differences, task_of  # noqa: E402  (the same rebuild and tolerance)
sys.path.insert(0, str(Path(__file__).resolve().parent))
from arguments import Parser, folder_with  # noqa: E402  (the command line the migrations share)
from from_retrained import write_cells  # noqa: E402

RULE = "classified correctly clean and attacked"
#: result fields that must reproduce exactly (a dotted path into the run record's ``result``)
EXACT = ("test", "val", "selected_epoch", "epochs_run", "steps", "pgv", "grad_norm_max", "grad_norm_median",
         "jacobian_fro", "tau_input", "tau_train", "params", "diverged", "unstable",
         "robustness.corruption_accuracy")


def attacked(rec: dict) -> list[str]:
    """The fgsm_/pgd_ result names of ``rec`` (empty: the run was not attacked)."""
    rob = rec["result"].get("robustness") or {}
    return [k for k in rob if k.startswith(("fgsm_", "pgd_"))]


def done(rec: dict) -> bool:
    return ((rec["result"].get("robustness") or {}).get("attack") or {}).get("robust") == RULE


def _get(d: dict, path: str):
    for part in path.split("."):
        d = d.get(part) if isinstance(d, dict) else None
    return d


def _equal(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


def differences(old: dict, new: dict) -> list[str]:
    """What differs between the stored result ``old`` and the retrained ``new`` (rule-independent parts)."""
    out = [p for p in EXACT if not _equal(_get(old, p), _get(new, p))]
    for eps_name in (old.get("robustness") or {}):
        if eps_name.startswith("apgd_") and \
                not _equal(old["robustness"][eps_name], (new.get("robustness") or {}).get(eps_name)):
            out.append(f"robustness.{eps_name}")
    return out + relative_differences(old, new)


def retrain(tasks: list[Task], cache: str) -> None:
    """Train ``tasks`` again into ``cache/<key>.json`` (in a pool worker): one stacked model when
    there are several (``chainzrule.batched.execute_group``, as the fight's batched runs were), else alone."""
    execute_group(tasks, Path(cache))


def migrate(folder: Path, cache: Path, jobs: int, batch: bool) -> tuple[int, list[tuple[str, list[str]]]]:
    """Recompute ``folder``'s attacked runs; returns (runs updated, [(key, differing fields)])."""
    order = [r["key"] for r in csv.DictReader(io.StringIO((folder / "results.csv").read_text()))]
    files = [folder / "runs" / f"{k}.json" for k in order if (folder / "runs" / f"{k}.json").exists()]
    todo = {}
    for f in files:
        rec = load_record(f)
        if attacked(rec) and not done(rec):
            todo[rec["key"]] = (f, rec)
    cache.mkdir(parents=True, exist_ok=True)
    pending = [task_of(todo[k][1]) for k in todo if not (cache / f"{k}.json").exists()]
    if pending:  # the fight's grouping: same-shaped runs in order, split over the workers
        groups = eligible_groups(pending, max_size=math.ceil(len(pending) / jobs)) if batch else [[t] for t in pending]
        with process_pool(jobs, threads=1) as pool, \
                tqdm(total=len(pending), desc=folder.name, unit="run") as bar:
            futures = {pool.submit(retrain, g, str(cache)): len(g) for g in groups}
            for fut in as_completed(futures):
                fut.result()
                bar.update(futures[fut])
    fixed, failed = {}, []
    for k, (f, rec) in todo.items():
        new = json.loads((cache / f"{k}.json").read_text())
        diff = differences(rec["result"], new["result"])
        if diff:
            failed.append((k, diff))
            continue
        rob = rec["result"]["robustness"]
        for name in attacked(rec):
            rob[name] = new["result"]["robustness"][name]
        rob["attack"] = new["result"]["robustness"]["attack"]
        atomic_json(f, rec)
        fixed[k] = rec
    already = {rec["key"]: rec for rec in map(load_record, files) if done(rec)}
    write_cells(folder, already, attacked)
    return len(fixed), failed


def main() -> int:
    ap = Parser(__doc__)
    ap.add_argument("folders", nargs="+", type=folder_with("results.csv", "runs"), help="fight folders to recompute")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--cache", type=Path, default=Path("/tmp/chainzrule-attack-rule"))
    ap.add_argument("--batch", action="store_true", help="train same-shaped runs as one stacked model, "
                    "as the fight did for small networks (Pima)")
    args = ap.parse_args()
    bad = 0
    for folder in args.folders:
        n, failed = migrate(folder, args.cache, args.jobs, args.batch)
        print(f"{folder}: {n} runs updated, {len(failed)} did not reproduce", flush=True)
        for k, diff in failed:
            print(f"  {k}: {', '.join(diff)}")
        bad += len(failed)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
