"""The stability map: a learning-rate × DREG-λ grid over seeds, per contender.

Protocol (issue 7; the spec format is in :mod:`chainzrule.fight.stability_spec`):

- For every contender ``c``, learning rate ``η`` in ``lrs``, DREG strength ``λ`` in ``lambdas``
  and seed ``s < seeds(c)``, one run trains ``TrainConfig(base ∪ c, lr=η, dreg=λ, seed=s)`` for
  the full epoch budget and is evaluated on the test split. There is no tuning: the grid *is* the
  experiment, and every contender sees the same grid, data, seeds, batch order and schedule.
- Per run, from the gradient-norm trace ``G_1..G_T`` (global parameter-gradient norm of every
  step, before the optimizer step): ``max G``, ``median G``, their ratio, and the **unstable**
  flag — any non-finite ``G``, training loss or test accuracy, or ``max G > unstable_ratio ·
  median G`` (a spike far above the run's own typical scale; the ratio is scale-free, so it
  compares contenders whose gradients live on different scales). Also the test and validation
  accuracy, PGV (guide §3) and the training time.
- Per cell ``(c, η, λ)``: mean ± std (sample, ddof = 1) test accuracy over seeds, mean PGV, the
  largest ``max G`` of its seeds and the share of unstable seeds. Unstable runs stay in the
  accuracy mean (a failed run costs accuracy; hiding it would flatter the contender) and are
  counted on their own.

Every run is keyed by the hash of its config (:func:`chainzrule.fight.runner.run_key`) and stored
atomically as ``OUT/runs/<key>.json``; a finished run is never repeated, so an interrupted map
resumes where it stopped. Only when every run is done are the outputs written, each atomically:
``spec.json`` (the resolved spec and the command), ``stability.csv`` (one row per run),
``summary.csv`` (one row per cell), ``heatmap_{accuracy,pgv,grad_norm_max,unstable}.png`` and
``report.md`` — all of them or none (an interrupted write removes its part; a rerun writes them all).

>>> gradient_stability([1.0, 1.0, 2.0, 30.0], unstable_ratio=20.0)["grad_norm_ratio"]
20.0
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..data.cache import atomic_write_text
from ..errors import ConfigError
from ..train import build_model, check_devices, head_kind, load_data
from .executor import remove_stale_temps
from .runner import Executor, Task, member_bytes, write_results_csv
from .stability_spec import StabilitySpec

__all__ = ["gradient_stability", "plan_runs", "run_row", "summarize", "run_stability", "write_outputs", "remove_outputs"]

PHASE = "stability"


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def gradient_stability(norms: Sequence[float], unstable_ratio: float) -> dict[str, Any]:
    """Spike statistics of one run's gradient-norm trace.

    Parameters
    ----------
    norms : sequence of float, shape [T]
        Global parameter-gradient norm of every training step.
    unstable_ratio : float
        A run is unstable when ``max > unstable_ratio · median`` (strictly).

    Returns
    -------
    dict with ``grad_norm_max``, ``grad_norm_median`` (over the finite steps; None if there is
    none), ``grad_norm_ratio`` (max / median; ``inf`` if the median is 0 and the max is not),
    ``nonfinite_steps`` (count of NaN/inf steps) and ``unstable`` (non-finite step, no finite step,
    or ratio above the threshold).

    >>> gradient_stability([1.0, 1.0, 2.0, 30.0], 20.0)
    {'grad_norm_max': 30.0, 'grad_norm_median': 1.5, 'grad_norm_ratio': 20.0, 'nonfinite_steps': 0, 'unstable': False}
    >>> gradient_stability([1.0, float("nan"), 1.0], 20.0)["unstable"]
    True
    """
    arr = np.asarray(list(norms), dtype=np.float64)  # [T]
    finite = arr[np.isfinite(arr)]
    nonfinite = int(arr.size - finite.size)
    if finite.size == 0:
        return {"grad_norm_max": None, "grad_norm_median": None, "grad_norm_ratio": None,
                "nonfinite_steps": nonfinite, "unstable": True}
    g_max, g_med = float(finite.max()), float(np.median(finite))
    ratio = g_max / g_med if g_med > 0 else (math.inf if g_max > 0 else 1.0)
    return {"grad_norm_max": g_max, "grad_norm_median": g_med, "grad_norm_ratio": ratio,
            "nonfinite_steps": nonfinite, "unstable": bool(nonfinite > 0 or ratio > unstable_ratio)}


def plan_runs(spec: StabilitySpec) -> list[Task]:
    """Every (contender, lr, λ, seed) as a :class:`~chainzrule.fight.runner.Task`, seed-major, so an
    interrupted map has the whole grid at seed 0 before any cell gets its second seed."""
    n_seeds = max(c.seeds for c in spec.contenders)
    return [Task(PHASE, c.name, spec.config(c, lr, lam, s), True, s)
            for s in range(n_seeds) for c in spec.contenders if s < c.seeds
            for lr in spec.lrs for lam in spec.lambdas]


def run_row(rec: dict, label: str, unstable_ratio: float) -> dict[str, Any]:
    """Flatten one run record (``runs/<key>.json``) into a ``stability.csv`` row."""
    cfg, res = rec["config"], rec["result"]
    test_acc = (res.get("test") or {}).get("accuracy")
    losses = (res.get("history") or {}).get("train_loss") or []
    g = gradient_stability(rec.get("grad_norms") or [], unstable_ratio)
    broken = not _finite(test_acc) or any(not _finite(v) for v in losses)
    return {
        "contender": rec["contender"], "label": label, "lr": cfg["lr"], "lambda": cfg["dreg"], "seed": rec["seed"],
        "key": rec["key"], "model": cfg["model"], "activation": cfg["activation"] if cfg["model"] == "mlp" else None,
        "poly_basis": cfg.get("poly_basis") if cfg["model"] == "chainzrule" else None,
        "test_accuracy": test_acc, "val_accuracy": (res.get("val") or {}).get("accuracy"), "pgv": res.get("pgv"),
        **g, "unstable": bool(g["unstable"] or broken), "diverged": res.get("diverged"),
        "steps": res.get("steps"), "train_seconds": res.get("train_seconds"),
    }


def _mean(values: list) -> float | None:
    v = [x for x in values if _finite(x)]
    return float(np.mean(v)) if v else None


def _cell(rows: list[dict]) -> dict[str, Any]:
    """Aggregate the seeds of one (contender, lr, λ) cell."""
    acc = [r["test_accuracy"] for r in rows if _finite(r["test_accuracy"])]
    maxes = [r["grad_norm_max"] for r in rows if _finite(r["grad_norm_max"])]
    n_bad = sum(bool(r["unstable"]) for r in rows)
    first = rows[0]
    return {
        "contender": first["contender"], "label": first["label"], "lr": first["lr"], "lambda": first["lambda"],
        "seeds": len(rows), "accuracy_mean": _mean(acc),
        "accuracy_std": float(np.std(acc, ddof=1)) if len(acc) >= 2 else None,
        "val_accuracy_mean": _mean([r["val_accuracy"] for r in rows]), "pgv_mean": _mean([r["pgv"] for r in rows]),
        "grad_norm_max": max(maxes) if maxes else None,
        "grad_norm_ratio_max": max((r["grad_norm_ratio"] for r in rows if _finite(r["grad_norm_ratio"])), default=None),
        "unstable_runs": n_bad, "unstable_share": n_bad / len(rows),
        "train_seconds_mean": _mean([r["train_seconds"] for r in rows]),
    }


def summarize(rows: list[dict]) -> list[dict[str, Any]]:
    """One ``summary.csv`` row per (contender, lr, λ), in the order the cells first appear."""
    cells: dict[tuple, list[dict]] = {}
    for r in rows:
        cells.setdefault((r["contender"], r["lr"], r["lambda"]), []).append(r)
    return [_cell(v) for v in cells.values()]


def _preflight(spec: StabilitySpec) -> dict[str, Any]:
    """Load the data and build a tiny model per contender at its largest λ, so that a dataset,
    head or model problem surfaces before the first run; returns the data's shape."""
    data = load_data(spec.config(spec.contenders[0], spec.lrs[0], spec.lambdas[0], 0))
    for c in spec.contenders:
        cfg = spec.config(c, spec.lrs[0], max(spec.lambdas), 0)
        try:
            head_kind(cfg, data.task)
            build_model(cfg.replace(hidden=[2] * len(cfg.hidden)), data.in_features, data.num_classes, data.task)
        except ConfigError as e:
            raise ConfigError(f"contender {c.name}: {e}") from None
    return {"in_features": data.in_features, "num_classes": data.num_classes, "task": data.task,
            "member_bytes": member_bytes(data)}


def run_stability(spec: StabilitySpec, out: Path, jobs: int = 1, progress: bool = True, batch: bool = True,
                  executor: str = "local", ray_address: str | None = None) -> Path:
    """Run (or resume) the map ``spec`` into ``out``; returns the path of ``report.md``. ``batch``:
    same-shaped runs trained as one stacked model; ``executor``: the local pool or Ray."""
    from ..rundir import check_out_dir, check_out_kind
    from .ray_executor import make_pool

    # before any work: not into another command's folder, nor --quick into a full run's
    check_out_kind(check_out_dir(out, subdirs=("runs", "plots")), "stability", quick=spec.quick)
    pool = make_pool(executor, ray_address)  # an unreachable cluster: one line, before any run
    try:
        if pool is None:  # runs on this machine: its devices
            check_devices(spec.config(c, spec.lrs[0], spec.lambdas[0], 0) for c in spec.contenders)
        data = _preflight(spec)
    except BaseException:
        if pool is not None:
            pool.shutdown()
        raise
    runs_dir = Path(out) / "runs"
    runs_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(runs_dir)
    tasks = plan_runs(spec)
    ex = Executor(runs_dir, jobs, len(tasks), progress, desc=PHASE, batch=batch, pool=pool,
                  member_bytes=data.pop("member_bytes"))
    ok = False
    try:
        records = ex.run(tasks)
        ok = True
    finally:
        ex.close(abort=not ok)
    labels = {c.name: c.label for c in spec.contenders}
    rows = [run_row(r, labels[r["contender"]], spec.unstable_ratio) for r in records]
    rows.sort(key=lambda r: ([c.name for c in spec.contenders].index(r["contender"]), r["lr"], r["lambda"], r["seed"]))
    return write_outputs(spec, Path(out), rows, data)


#: What :func:`write_outputs` writes besides the heatmaps (``heatmap_<name>.png``): the map's
#: outputs, removed together when their writing is interrupted (runs/ stays: it is the map's state).
OUTPUTS = ("spec.json", "stability.csv", "summary.csv", "report.md")


def remove_outputs(out: Path) -> None:
    """Remove :data:`OUTPUTS` and the heatmaps from the map folder ``out``; its runs stay."""
    from .stability_figures import HEATMAPS

    for name in (*OUTPUTS, *(f"heatmap_{h.name}.png" for h in HEATMAPS)):
        try:
            (Path(out) / name).unlink(missing_ok=True)
        except OSError:
            pass  # cleaning up after a failure: never hide the failure itself


def write_outputs(spec: StabilitySpec, out: Path, rows: list[dict], data: dict | None = None) -> Path:
    """Write spec.json, stability.csv, summary.csv, the heatmaps and report.md, each atomically;
    returns report.md. All of them or none: a write that fails or is interrupted (Ctrl-C, SIGTERM)
    removes them all (:func:`remove_outputs`; runs/ stays) and re-raises, and a rerun, which reads
    the stored runs back, writes them all again."""
    from .stability_figures import plot_heatmaps
    from .stability_report import render_report

    if not spec.created:
        spec.created = time.strftime("%Y-%m-%d")
    try:
        atomic_write_text(out / "spec.json", json.dumps({**spec.to_dict(), "data": data or {}}, indent=1))
        write_results_csv(out / "stability.csv", rows)
        summary = summarize(rows)
        write_results_csv(out / "summary.csv", summary)
        figures = plot_heatmaps(spec, summary, out)
        return atomic_write_text(out / "report.md", render_report(spec, rows, summary, figures))
    except BaseException:
        remove_outputs(out)
        raise
