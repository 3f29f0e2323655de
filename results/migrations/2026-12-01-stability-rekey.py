"""One-off re-keying of committed run files (2026-12-01): ``results/stability-mnist`` predates later config fields.

A run's file name is its key, a hash of its full config (``chainzrule.fight.executor.run_key``).
The stability map was run on 2026-11-30, before ``TrainConfig`` gained fields such as
``apgd_steps``, ``logit_scale``, ``input_norm``, the cross-validation cell and the XGBoost knobs;
each new field enters the key, so today's code computes other keys for the same configs and
``chainzrule stability fights/stability-mnist.toml --out results/stability-mnist`` would retrain
all 140 runs instead of reusing them (the fights' committed runs were checked: their keys still
match). The new fields hold their defaults in these runs, which is what the code of the day did
(no temperature, no input normalization, no CV cell; the rest act on other models or on
robustness, off in the map), so each record is renamed to the key of its stored config under
today's code, its ``key`` field and the ``key`` column of ``stability.csv`` updated, and nothing
else changed. Run from the repository root, once:

    python results/migrations/2026-12-01-stability-rekey.py results/stability-mnist
"""

import csv
import io
import json
import sys
from pathlib import Path

from chainzrule.config import TrainConfig
from chainzrule.fight.executor import run_key

sys.path.insert(0, str(Path(__file__).resolve().parent))
from arguments import Parser, folder_with  # noqa: E402  (the command line the migrations share)


def rekey(folder: Path) -> int:
    runs = folder / "runs"
    renamed = {}
    for path in sorted(runs.glob("*.json")):
        record = json.loads(path.read_text())
        new = run_key(TrainConfig.from_dict(record["config"]), bool(record.get("test", True)))
        if new == path.stem:
            continue
        if (runs / f"{new}.json").exists():
            raise SystemExit(f"{path}: its new key {new} is taken by another run file; nothing more renamed")
        renamed[path.stem] = new
        record["key"] = new
        (runs / f"{new}.json").write_text(json.dumps(record, allow_nan=True))
        path.unlink()
    table = folder / "stability.csv"
    rows = list(csv.reader(io.StringIO(table.read_text())))
    col = rows[0].index("key")
    for row in rows[1:]:
        row[col] = renamed.get(row[col], row[col])
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    table.write_text(out.getvalue())
    return len(renamed)


if __name__ == "__main__":
    ap = Parser(__doc__)
    ap.add_argument("folders", nargs="+", type=folder_with("stability.csv", "runs"), help="stability folders to re-key")
    for arg in ap.parse_args().folders:
        print(f"{arg}: {rekey(arg)} run files re-keyed")
