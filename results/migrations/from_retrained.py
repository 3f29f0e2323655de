"""Replacing committed attack values with those of runs retrained at today's code (for the migrations here).

A committed run file holds no weights, so a changed evaluation is recomputed by retraining the run
(``benchmarks/retrain_final_runs.py --keep DIR``) and taking the new values only where the retrained
model is the committed one: every stored number outside the replaced columns must come back equal
(:func:`retrain_final_runs.differences`). :func:`replace` does that for a folder, :func:`write_cells`
puts the values into ``results.csv``; nothing else in any file changes, and a second run changes
nothing.

>>> import tempfile
>>> folder = Path(tempfile.mkdtemp())
>>> _ = (folder / "results.csv").write_text("key,apgd_0.1,test_accuracy\\nab,0.5,0.9\\ncd,0.4,0.8\\n")
>>> rec = {"key": "ab", "result": {"robustness": {"apgd_0.1": 0.25}}}
>>> write_cells(folder, {"ab": rec}, lambda r: ["apgd_0.1"])
>>> print((folder / "results.csv").read_text(), end="")
key,apgd_0.1,test_accuracy
ab,0.25,0.9
cd,0.4,0.8
"""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from retrain_final_runs import differences  # noqa: E402  (the comparison the retrain reports)

from arguments import Parser, folder_with  # noqa: E402  (the command line the migrations share)
from chainzrule.data.cache import atomic_write_text  # noqa: E402
from chainzrule.fight.executor import atomic_json, load_record  # noqa: E402

Names = Callable[[dict], list]  # a run record -> the robustness columns to replace


def write_cells(folder: Path, fixed: dict[str, dict], names: Names) -> None:
    """Write ``rec["result"]["robustness"][name]`` for each ``name in names(rec)`` of each record in
    ``fixed`` (key → run record) into its row of ``folder/results.csv`` (empty for None)."""
    path = folder / "results.csv"
    rows = list(csv.reader(io.StringIO(path.read_text())))
    head = rows[0]
    key = head.index("key")
    for r in rows[1:]:
        rec = fixed.get(r[key])
        for name in names(rec) if rec is not None else []:
            if name in head:
                v = rec["result"]["robustness"][name]
                r[head.index(name)] = "" if v is None else repr(float(v))
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    atomic_write_text(path, out.getvalue())


def replace(folder: Path, retrained: Path, names: Names, describe: bool) -> tuple[int, int, list[str]]:
    """Take ``names(rec)`` (and with ``describe`` the attack description) from ``retrained/<key>.json``
    for every run of ``folder`` that has such columns and whose retrained record reproduces every
    other stored number; returns (runs reproduced, cells changed, keys left as they were)."""
    fixed: dict[str, dict] = {}
    left, changed, checked = [], 0, 0
    for f in sorted((folder / "runs").glob("*.json")):
        rec = load_record(f)
        if not names(rec):
            continue
        new_file = retrained / f.name
        if not new_file.exists():
            left.append(rec["key"])
            continue
        new = json.loads(new_file.read_text())["result"]
        replaced = {f"robustness.{n}" for n in names(rec)}
        if [d for d in differences(rec["result"], new) if d not in replaced]:
            left.append(rec["key"])
            continue
        checked += 1
        rob = rec["result"]["robustness"]
        moved = [n for n in names(rec) if rob[n] != new["robustness"][n]]
        changed += len(moved)
        if moved or (describe and rob.get("attack") != new["robustness"]["attack"]):
            rob.update({n: new["robustness"][n] for n in moved})
            if describe:
                rob["attack"] = new["robustness"]["attack"]
            fixed[rec["key"]] = rec
    for key, rec in fixed.items():
        atomic_json(folder / "runs" / f"{key}.json", rec)
    if fixed:
        write_cells(folder, fixed, names)
    return checked, changed, left


def main(doc: str, names: Names, describe: bool, what: str) -> int:
    """The command line of a migration that replaces ``names`` from retrained runs."""
    ap = Parser(doc)
    ap.add_argument("folder", type=folder_with("results.csv", "runs"), help="a fight folder")
    ap.add_argument("--retrained", type=folder_with(), required=True, help="run files from retrain_final_runs.py --keep")
    args = ap.parse_args()
    checked, changed, left = replace(args.folder, args.retrained, names, describe)
    print(f"{args.folder}: {checked} runs reproduced, {changed} {what} values changed; {len(left)} left as they were")
    for k in left:
        print(f"  {k}")
    return 0
