"""One-off re-keying of committed runs (2026-12-01): a run's key no longer depends on ``data_dir``.

A run's key is a hash of its full config (``chainzrule.fight.executor.run_key``). Until this date
that included ``data_dir``, the folder the data was read from, so the SST-5 fight's runs (made
with ``--data-dir /work/shared/data/sst5``) had keys that the documented command
(``--data-dir ../shared/data/sst5``), or any other machine, would never compute: rerunning it into
``results/sst5`` would have retrained every run. ``TrainConfig.key_dict`` now holds ``data_dir``
as None. This script gives every run of a fight folder its new key: the run files (name and
``key`` field), the ``key`` column of ``results.csv`` and the ``key``/``keys`` of every trial in
``tuning.json`` (tuning runs are not committed as files: their configs are rebuilt from
``spec.json`` and ``tuning.json`` and checked against the stored keys first). Nothing else
changes. ``previous/`` (an older protocol's runs) is left as it is. Run from the repository root,
once; then ``chainzrule report results/X`` regenerates the same report.

    python results/migrations/2026-12-01-data-dir-key.py results/sst5
"""

import csv
import io
import json
import sys
from pathlib import Path

from chainzrule.config import TrainConfig, content_hash
from chainzrule.fight.executor import run_key
from chainzrule.fight.tuning import stored_tuning_runs

sys.path.insert(0, str(Path(__file__).resolve().parent))
from arguments import Parser, folder_with  # noqa: E402  (the command line the migrations share)


def old_key(cfg: TrainConfig, test: bool) -> str:
    """The key before this date: ``run_key`` with ``data_dir`` as it was."""
    return content_hash({"config": {**cfg.key_dict(), "data_dir": cfg.data_dir}, "test": test}, 20)


def tuning_configs(folder: Path) -> dict[str, TrainConfig]:
    """Stored key → rebuilt config of every tuning run of ``folder``."""
    runs = stored_tuning_runs(json.loads((folder / "spec.json").read_text()),
                              json.loads((folder / "tuning.json").read_text()))
    return {r["key"]: r["config"] for r in runs}


def rekey(folder: Path) -> int:
    mapping = {}
    for key, cfg in tuning_configs(folder).items():
        if old_key(cfg, False) != key:
            raise SystemExit(f"{folder}: tuning run {key} does not rebuild to its stored key; nothing changed")
        mapping[key] = run_key(cfg, False)
    runs = folder / "runs"
    records = {}
    for path in sorted(runs.glob("*.json")):
        record = json.loads(path.read_text())
        cfg, test = TrainConfig.from_dict(record["config"]), bool(record.get("test", True))
        if old_key(cfg, test) != path.stem:
            raise SystemExit(f"{path}: not named by its config's key; nothing changed")
        mapping[path.stem] = run_key(cfg, test)
        records[path] = record
    if len(set(mapping.values())) != len(mapping):
        raise SystemExit(f"{folder}: two runs would share a new key; nothing changed")
    for path, record in records.items():  # every check passed: write
        record["key"] = mapping[path.stem]
        (runs / f"{record['key']}.json").write_text(json.dumps(record, allow_nan=True))
        if record["key"] != path.stem:
            path.unlink()
    table = folder / "results.csv"
    rows = list(csv.reader(io.StringIO(table.read_text())))
    col = rows[0].index("key")
    for row in rows[1:]:
        row[col] = mapping.get(row[col], row[col])
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    table.write_text(out.getvalue())
    text = (folder / "tuning.json").read_text()
    tuning = json.loads(text)
    for entry in tuning.values():
        for res in (entry.get("cells") or {"": entry}).values():
            for t in res.get("trials", []):
                t["keys"] = [mapping[k] for k in t["keys"]]
                t["key"] = mapping[t["key"]]
    (folder / "tuning.json").write_text(json.dumps(tuning, allow_nan=True))  # as atomic_json writes it
    return sum(1 for k, v in mapping.items() if k != v)


if __name__ == "__main__":
    ap = Parser(__doc__)
    ap.add_argument("folders", nargs="+", type=folder_with("spec.json", "tuning.json", "results.csv", "runs"),
                    help="fight folders to re-key")
    for arg in ap.parse_args().folders:
        print(f"{arg}: {rekey(arg)} run keys changed")
