"""One-off correction of committed results (2026-12-01): ``lipschitz_bound`` left out the logit temperature.

Until this date ``chainzrule.diagnostics.lipschitz_bound`` computed ``Π_l max|σ_l'|·||W_l||_2·||W_head||_2``
and ignored the temperature τ (``logit_scale``) that multiplies the head's input, so every run
with τ ≠ 1 (the spectral-norm contenders) reported a bound τ times too small (e.g. MNIST ReLU +
spectral norm: 1.006, while its mean ||J||_F was 15.7 — impossible for a true bound). The fixed
function returns ``τ · (the same product)``; the trained weights are unchanged, so this script
multiplies the stored value by the run's own τ, in each run file and in results.csv, and
changes nothing else. Run from the repository root, once; then ``chainzrule report results/X``.

    python results/migrations/2026-12-01-lipschitz-temperature.py results/mnist results/pima results/sst5
"""

import csv
import io
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from arguments import Parser, folder_with  # noqa: E402  (the command line the migrations share)


def fix(folder: Path) -> int:
    runs = folder / "runs"
    tau = {}
    for path in runs.glob("*.json"):
        record = json.loads(path.read_text())
        t = float(record.get("config", {}).get("logit_scale", 1.0))
        result = record.get("result") or {}
        if t != 1.0 and result.get("lipschitz_bound") is not None:
            tau[path.stem] = t
            result["lipschitz_bound"] = result["lipschitz_bound"] * t
            path.write_text(json.dumps(record, allow_nan=True))
    text = (folder / "results.csv").read_text()
    rows = list(csv.reader(io.StringIO(text)))
    col, key = rows[0].index("lipschitz_bound"), rows[0].index("key")
    fixed = 0
    for row in rows[1:]:
        if row[key] in tau and row[col] != "":
            row[col] = repr(float(row[col]) * tau[row[key]])
            fixed += 1
    missing = [r[key] for r in rows[1:] if r[col] != "" and r[key] not in tau and _tau_unknown(runs, r[key])]
    if missing:
        raise SystemExit(f"{folder}: {len(missing)} rows with a bound but no run file to read τ from: {missing[:3]}")
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    (folder / "results.csv").write_text(out.getvalue())
    return fixed


def _tau_unknown(runs: Path, key: str) -> bool:
    return not (runs / f"{key}.json").exists()


if __name__ == "__main__":
    ap = Parser(__doc__)
    ap.add_argument("folders", nargs="+", type=folder_with("results.csv", "runs"), help="fight folders to correct")
    for f in ap.parse_args().folders:
        print(f, fix(f), "rows corrected")
