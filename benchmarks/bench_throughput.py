"""Fight throughput: runs per minute of one fight profile with the local process pool, with
batched training, and on a local Ray cluster of this machine, measured one right after the
other into temporary folders; then a projection (measured per-run cost × run count) of the
full Fair Fight v2 fights on 1, 8 and 64 machines.

    python benchmarks/bench_throughput.py [--spec fights/pima.toml] [--write BENCHMARKS.md]

``--write`` replaces the block between ``<!-- throughput:begin -->`` and
``<!-- throughput:end -->`` in that file (appending it if absent).
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
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
        epochs = sum(int(r["epochs"]) for r in rows)
        out.append({"mode": name, "runs": len(rows), "wall": wall, "rpm": 60 * len(rows) / wall,
                    "core_s_per_epoch": wall * jobs / epochs})
        print(f"{name}: {len(rows)} runs in {wall:.0f} s = {out[-1]['rpm']:.1f} runs/min", file=sys.stderr)
    return out


def v2_plan(spec_path: str) -> dict:
    """Run and epoch counts of the full spec, and of Fair Fight v2 (issue 11) on it: ≥ 30 trials
    per tuned contender at the full epoch budget, each scored on 2 seeds, repeated 5×5 stratified
    CV with tuning inside each of the 25 training folds (final runs: one per contender per fold,
    size and λ views as in the spec, per fold)."""
    from chainzrule.fight.runner import _count_after_tuning
    from chainzrule.fight.spec import load_spec

    s = load_spec(spec_path)
    tuned = sum(1 for c in s.contenders if c.tune)
    after = _count_after_tuning(s)
    full = {"runs": s.trials * tuned + after, "epochs": s.trials * tuned * s.tune_epochs + after * s.base["epochs"]}
    folds, trials, per_trial = 25, 30, 2
    after_fold = after / s.seeds  # final/size/λ views with one run per fold instead of `seeds`
    v2_runs = folds * (tuned * trials * per_trial + after_fold)
    return {"full": full, "v2": {"runs": int(v2_runs), "epochs": int(v2_runs * s.base["epochs"])},
            "tuned": tuned, "contenders": len(s.contenders)}


def table(spec: str, jobs: int, res: list[dict], plan: dict) -> str:
    base = res[0]
    lines = [f"Fight throughput, `{spec} --quick` ({base['runs']} runs), measured one after the other on this machine "
             f"({os.cpu_count()} cores, {platform.machine()}, `--jobs {jobs}`; "
             f"`python benchmarks/bench_throughput.py --spec {spec} --write BENCHMARKS.md`):", "",
             "| executor | runs | wall (s) | runs / min | vs local pool | core-s per run-epoch |",
             "|---|---:|---:|---:|---:|---:|"]
    for r in res:
        lines.append(f"| {r['mode']} | {r['runs']} | {r['wall']:.0f} | {r['rpm']:.1f} | {r['rpm'] / base['rpm']:.2f}× | "
                     f"{r['core_s_per_epoch']:.3f} |")
    best = min(res, key=lambda r: r["core_s_per_epoch"])
    lines += ["", f"Projection (per-run cost × run count; cost per run-epoch of the *{base['mode']}* and of the "
              f"*{best['mode']}* rows above, machines like this one, perfect scaling, no Ray overhead beyond the "
              f"measured one): {plan['contenders']} contenders ({plan['tuned']} tuned); v2 = issue 11's protocol: "
              "30 full-length trials per tuned contender × 2 seeds, repeated 5×5 CV with tuning inside each fold.", "",
              "| fight | runs | run-epochs | cost | 1 machine | 8 machines | 64 machines |", "|---|---:|---:|---|---:|---:|---:|"]
    for name, p in (("full spec (today)", plan["full"]), ("Fair Fight v2", plan["v2"])):
        for r in (base, best):
            core_s = p["epochs"] * r["core_s_per_epoch"]
            cells = [f"{core_s / (os.cpu_count() or 1) / m / 3600:.1f} h" for m in (1, 8, 64)]
            lines.append(f"| {name} | {p['runs']} | {p['epochs']} | {r['mode']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_block(path: Path, text: str) -> None:
    begin, end = "<!-- throughput:begin -->", "<!-- throughput:end -->"
    doc = path.read_text()
    block = f"{begin}\n{text}\n{end}"
    if begin in doc and end in doc:
        doc = doc[:doc.index(begin)] + block + doc[doc.index(end) + len(end):]
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
    text = table(a.spec, a.jobs, res, v2_plan(a.spec))
    print(text)
    if a.write:
        write_block(a.write, text)


if __name__ == "__main__":
    main()
