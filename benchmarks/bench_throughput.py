"""Fight throughput: runs per minute of one fight profile with the local process pool, with
batched training, and on a local Ray cluster of this machine, measured one right after the
other into temporary folders; then a projection (measured per-run cost × run count) of the
committed full fight on 1, 8 and 64 machines.

    python benchmarks/bench_throughput.py [--spec fights/pima.toml] [--write BENCHMARKS.md]

``--write`` replaces the spec's block between ``<!-- throughput:NAME:begin -->`` and
``<!-- throughput:NAME:end -->`` in that file (NAME: the fight's name; a new block goes after the
last throughput block, or at the end).
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODES = {
    "local pool": ["--no-batch"],
    "local pool + batching": ["--batch"],
    "Ray (local cluster) + batching": ["--batch", "--executor", "ray", "--ray-address", "local"],
}


def measure(spec: str, jobs: int, modes: list[str]) -> list[dict]:
    out = []
    for name in modes:
        with tempfile.TemporaryDirectory() as tmp:
            cmd = [sys.executable, "-m", "chainzrule", "fight", spec, "--quick", "--out", f"{tmp}/f", "--no-report",
                   "--jobs", str(jobs), *MODES[name]]
            t0 = time.perf_counter()
            res = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "TQDM_DISABLE": "1"})
            wall = time.perf_counter() - t0
            if res.returncode != 0:
                raise SystemExit(f"{name}: {' '.join(cmd)} failed: {res.stderr.strip().splitlines()[-1:]}")
            with open(f"{tmp}/f/results.csv") as f:
                rows = list(csv.DictReader(f))
        epochs = _run_epochs(rows)
        out.append({"mode": name, "runs": len(rows), "wall": wall, "rpm": 60 * len(rows) / wall,
                    "core_s_per_epoch": wall * jobs / epochs})
        print(f"{name}: {len(rows)} runs in {wall:.0f} s = {out[-1]['rpm']:.1f} runs/min", file=sys.stderr)
    return out


def _run_epochs(rows: list[dict]) -> int:
    """Epochs actually trained (early stopping included); a classical run counts as one."""
    return sum(int(float(r.get("epochs_run") or 0)) or 1 for r in rows)


def full_fight(spec_path: str) -> dict | None:
    """Runs and run-epochs of the committed full fight of ``spec_path`` (``results/<name>/results.csv``),
    the amount of work a projection scales; None if it is not committed."""
    from chainzrule.fight.spec import load_spec

    path = Path("results") / load_spec(spec_path).name / "results.csv"
    if not path.exists():
        return None
    with open(path) as f:
        rows = list(csv.DictReader(f))
    return {"path": str(path), "runs": len(rows), "epochs": _run_epochs(rows)}


def table(spec: str, jobs: int, res: list[dict], full: dict | None) -> str:
    base = res[0]
    lines = [f"Fight throughput, `{spec} --quick` ({base['runs']} runs), measured one after the other on this machine "
             f"({os.cpu_count()} cores, {platform.machine()}, `--jobs {jobs}`; "
             f"`python benchmarks/bench_throughput.py --spec {spec} --write BENCHMARKS.md`); a run-epoch is an epoch "
             "actually trained (early stopping included), a classical run counts as one:", "",
             "| executor | runs | wall (s) | runs / min | vs local pool | core-s per run-epoch |",
             "|---|---:|---:|---:|---:|---:|"]
    for r in res:
        lines.append(f"| {r['mode']} | {r['runs']} | {r['wall']:.0f} | {r['rpm']:.1f} | {r['rpm'] / base['rpm']:.2f}× | "
                     f"{r['core_s_per_epoch']:.3f} |")
    if full is None:
        return "\n".join(lines)
    best = min(res, key=lambda r: r["core_s_per_epoch"])
    lines += ["", f"Projection of the committed full fight (`{full['path']}`: {full['runs']} runs, {full['epochs']} "
              "run-epochs) at the quick profile's measured cost per run-epoch, machines like this one, perfect "
              "scaling (a full fight's batch groups are larger than the quick profile's — a resampled fight "
              "batches a tuning round across all its cells — so for batching this is indicative only):", "",
              "| cost | 1 machine | 8 machines | 64 machines |", "|---|---:|---:|---:|"]
    for r in [base] + ([best] if best is not base else []):
        core_s = full["epochs"] * r["core_s_per_epoch"]
        cells = [f"{core_s / (os.cpu_count() or 1) / m / 60:.1f} min" for m in (1, 8, 64)]
        lines.append(f"| {r['mode']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_block(path: Path, text: str, name: str) -> None:
    """Replace (or add) the throughput block of fight ``name`` in the markdown file ``path``."""
    begin, end = f"<!-- throughput:{name}:begin -->", f"<!-- throughput:{name}:end -->"
    doc = path.read_text()
    block = f"{begin}\n{text}\n{end}"
    if begin in doc and end in doc:
        doc = doc[:doc.index(begin)] + block + doc[doc.index(end) + len(end):]
    elif ends := list(re.finditer(r"<!-- throughput:[\w-]+:end -->", doc)):  # after the last block of another fight
        at = ends[-1].end()
        doc = doc[:at] + "\n\n" + block + doc[at:]
    else:
        doc = doc.rstrip("\n") + "\n\n## Fight throughput (issue 9)\n\n" + block + "\n"
    path.write_text(doc)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spec", default="fights/pima.toml")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--modes", nargs="*", default=list(MODES), choices=list(MODES))
    ap.add_argument("--write", type=Path, default=None)
    a = ap.parse_args()
    res = measure(a.spec, a.jobs, a.modes)
    text = table(a.spec, a.jobs, res, full_fight(a.spec))
    print(text)
    if a.write:
        from chainzrule.fight.spec import load_spec

        write_block(a.write, text, load_spec(a.spec).name)


if __name__ == "__main__":
    main()
