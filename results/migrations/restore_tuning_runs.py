"""Restoring a committed fight folder's tuning run files, so that its fight command can extend it.

A committed fight folder keeps its final, width and λ run files (``runs/``) but not its tuning run
files: ``tuning.json`` keeps each trial's parameters, seeds, run keys, values and the first seed's
validation curve, and ``results.csv`` one row per tuning run. To add runs to such a folder (a spec
that gained width-sweep learning rates, a new λ) without retraining the rest, this writes every
tuning run's file as far as the fight reads it back:

- the config, rebuilt as tuning built it (:func:`chainzrule.fight.tuning.stored_tuning_runs`);
  its hash must be the stored key, or nothing is written;
- the result: the run's ``results.csv`` row turned back into the record fields that
  :func:`chainzrule.fight.runner.record_row` reads, so that row comes back byte-identical;
- the first seed's best-so-far validation curve, which the pruner read (``tuning.json``).

The fight then replays tuning from these files (the same trials, values and pruning decisions),
trains only what its spec adds and rewrites ``results.csv``; ``--check`` compares that file with
the committed one row by row (every committed row must come back identical) and lists the new rows.

    python results/migrations/restore_tuning_runs.py results/mnist --into /work/runs/mnist-ext
    chainzrule fight fights/mnist.toml --out /work/runs/mnist-ext --jobs 2
    python results/migrations/restore_tuning_runs.py results/mnist --check /work/runs/mnist-ext

>>> _value(""), _value("3"), _value("0.25"), _value("False"), _value("nan") != _value("nan")
(None, 3, 0.25, False, True)
"""

from __future__ import annotations

import csv
import json
import re
import shutil
import sys
from pathlib import Path

from chainzrule.config import ADV_COLUMN, TrainConfig
from chainzrule.fight.executor import atomic_json, run_key
from chainzrule.fight.runner import RESULT_COLUMNS, RESULT_TAIL_COLUMNS, record_row
from chainzrule.fight.tuning import stored_tuning_runs

sys.path.insert(0, str(Path(__file__).resolve().parent))
from arguments import Parser, folder_with  # noqa: E402  (the command line the migrations share)

_INT = re.compile(r"-?\d+")
#: results.csv column -> where record_row reads it in a run record's "result"
_RESULT_PATHS = {**RESULT_COLUMNS, **RESULT_TAIL_COLUMNS, "failed": ("failed",)}


def _value(cell: str):
    """A results.csv cell as the value write_results_csv wrote it from (ints, repr'd floats, bools, "")."""
    if cell == "":
        return None
    if cell in ("True", "False"):
        return cell == "True"
    if _INT.fullmatch(cell):
        return int(cell)
    try:
        return float(cell)
    except ValueError:
        return cell


def _result(row: dict[str, str]) -> dict:
    out: dict = {}
    for col, cell in row.items():
        path = _RESULT_PATHS.get(col) or (("robustness", col) if ADV_COLUMN.match(col) else None)
        v = _value(cell)
        if path is None or v is None:
            continue
        d = out
        for p in path[:-1]:
            d = d.setdefault(p, {})
        d[path[-1]] = v
    return out


def _read(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, newline="") as f:
        r = csv.DictReader(f)
        return list(r.fieldnames or []), list(r)


def restore(folder: Path, into: Path) -> int:
    """Copy ``folder/runs`` into ``into/runs`` and write every tuning run's file there; the count written."""
    spec, tuning = (json.loads((folder / n).read_text()) for n in ("spec.json", "tuning.json"))
    _, rows = _read(folder / "results.csv")
    by_key = {r["key"]: r for r in rows if r["phase"] == "tune"}
    curves = {t["keys"][0]: t["curve"] for entry in tuning.values()
              for res in (entry.get("cells") or {"": entry}).values() for t in res["trials"]}
    labels = {c["name"]: c.get("label", c["name"]) for c in spec["contenders"]}
    recs = []
    for run in stored_tuning_runs(spec, tuning):
        cfg: TrainConfig = run["config"]
        if run_key(cfg, False) != run["key"]:
            sys.exit(f"tuning run {run['key']} ({run['contender']}, trial {run['trial']}): its rebuilt config hashes "
                     f"to {run_key(cfg, False)}; the config schema changed since the fight, nothing written")
        row = by_key.get(run["key"])
        if row is None:
            sys.exit(f"tuning run {run['key']} of tuning.json has no row in results.csv; nothing written")
        result = _result(row)
        if run["key"] in curves:
            result["history"] = {"val_accuracy": curves[run["key"]]}
        rec = {"key": run["key"], "phase": "tune", "contender": run["contender"], "seed": run["seed"],
               "trial": run["trial"], "test": False, "config": cfg.to_dict(), "result": result,
               "data": {k: _value(row[k]) for k in ("n_train", "n_val", "n_test") if row.get(k)}}
        back = record_row({**rec, "trial_state": row["trial_state"]}, labels)
        got = {k: ("" if v is None else repr(v) if isinstance(v, float) else str(v)) for k, v in back.items()}
        diff = {k: (row.get(k, ""), got[k]) for k in got if got[k] != row.get(k, "")}
        if diff:
            sys.exit(f"tuning run {run['key']}: its row would not come back identical: {diff}; nothing written")
        recs.append(rec)
    if len(recs) != len(by_key):
        sys.exit(f"{len(by_key)} tuning rows in results.csv, {len(recs)} runs in tuning.json; nothing written")
    (into / "runs").mkdir(parents=True, exist_ok=True)
    for p in (folder / "runs").glob("*.json"):
        shutil.copy2(p, into / "runs" / p.name)
    for rec in recs:
        atomic_json(into / "runs" / f"{rec['key']}.json", rec)
    return len(recs)


def check(folder: Path, extended: Path) -> int:
    """0 when every row of ``folder``'s results.csv is in ``extended``'s identically; prints the new rows' count."""
    _, old = _read(folder / "results.csv")
    _, new = _read(extended / "results.csv")
    by_key = {r["key"]: r for r in new}
    missing = [r["key"] for r in old if r["key"] not in by_key]
    changed = [r["key"] for r in old if r["key"] in by_key
               and any(by_key[r["key"]].get(k, "") != v for k, v in r.items())]
    added = len(new) - (len(old) - len(missing))
    print(f"{len(old)} committed rows: {len(missing)} missing, {len(changed)} changed; {added} new rows "
          f"({', '.join(sorted({r['phase'] for r in new if r['key'] not in {o['key'] for o in old}})) or 'none'})")
    return 1 if missing or changed else 0


def main(argv: list[str] | None = None) -> int:
    ap = Parser(__doc__)
    ap.add_argument("folder", type=folder_with("spec.json", "tuning.json", "results.csv", "runs"),
                    help="a committed fight folder (spec.json, tuning.json, results.csv, runs/)")
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--into", type=Path, help="an empty or new folder to resume the fight in")
    g.add_argument("--check", type=folder_with("results.csv"), help="the resumed folder: compare its results.csv with the committed one")
    a = ap.parse_args(argv)
    if a.check:
        return check(a.folder, a.check)
    if a.into.exists() and (not a.into.is_dir() or any(a.into.iterdir())):
        ap.error(f"argument --into: expected an empty or new folder, got {str(a.into)!r} "
                 f"({'not empty' if a.into.is_dir() else 'a file'})")
    print(f"{restore(a.folder, a.into)} tuning run files restored into {a.into / 'runs'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
