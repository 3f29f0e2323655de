"""Tuning views of a Fair Fight: every tuned optimum against its search range
(:func:`tuning_edges`), whether an edge is a plateau or a rising trend (:func:`edge_bands`), and
the expected best validation score against the number of trials (:func:`expected_max_curves`,
Dodge et al. 2019). Tuning results come from ``tuning.json`` (per resampling cell where the fight
has cells), search spaces from ``spec.json``.

>>> _numeric_space([1e-4, 1e-1, "log"]), _numeric_space({"choices": ["a", "b"]})
((0.0001, 0.1, True), None)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .loading import Fight, to_number
from .stats import edge_of_range, expected_max_curve, range_position

__all__ = ["tuning_edges", "edge_bands", "expected_max_curves"]


def _numeric_space(space: Any) -> tuple[float, float, bool] | None:
    """``(low, high, log)`` of a ``[low, high, "log"|"linear"|"int"|"int-log"]`` tune entry (an
    "int-log" range is sampled on a log scale, so it is judged on one); None for choices."""
    if isinstance(space, (list, tuple)) and len(space) in (2, 3):
        lo, hi = to_number(space[0]), to_number(space[1])
        log = len(space) == 3 and str(space[2]).lower() in ("log", "int-log")
        if lo is not None and hi is not None and lo < hi and (not log or lo > 0):
            return lo, hi, log
    return None


def tuning_edges(fight: Fight, share: float = 0.1) -> list[dict[str, Any]]:
    """Every tuned optimum (``tuning.json`` best_params) against its search space (spec.json
    contenders' ``tune``): ``{"contender", "param", "value", "low", "high", "log", "position",
    "edge"}`` per numeric hyperparameter; ``edge`` from :func:`~.stats.edge_of_range` (outer
    ``share`` of the range, in log space for log ranges). Choices and values outside their range
    (a widened range not recorded in the spec) get ``position`` None and ``edge`` None."""
    out = []
    tuning = fight.tuning or {}
    for c in fight.spec_contenders:
        for cell, res in _tuning_cells(tuning.get(c["name"])):
            best = res.get("best_params") or {}
            for param, space in (c.get("tune") or {}).items():
                rng, v = _numeric_space(space), to_number(best.get(param))
                if rng is None or v is None:
                    continue
                lo, hi, log = rng
                inside = lo <= v <= hi
                out.append({"contender": c["name"], "param": param, "value": v, "low": lo, "high": hi, "log": log,
                            "cell": cell, "position": range_position(v, lo, hi, log) if inside else None,
                            "edge": edge_of_range(v, lo, hi, log, share) if inside else None})
    return out


def edge_bands(fight: Fight, contender: str, param: str, high: bool, share: float = 0.1) -> dict[str, Any]:
    """Is an optimum at the edge a rising trend or a plateau? The mean validation score of the
    contender's completed trials (all cells) whose ``param`` lies in the outer ``share`` of the
    range at the ``high`` (or low) end, and in the next ``2·share`` inward: ``{"outer", "n_outer",
    "next", "n_next"}`` (means None without trials there)."""
    space = next((c.get("tune") or {}).get(param) for c in fight.spec_contenders if c["name"] == contender)
    rng = _numeric_space(space)
    bands: dict[str, list[float]] = {"outer": [], "next": []}
    for _, res in _tuning_cells((fight.tuning or {}).get(contender)) if rng else []:
        for t in res.get("trials") or []:
            v, x = to_number((t or {}).get("value")), to_number(((t or {}).get("params") or {}).get(param))
            if v is None or x is None or not rng[0] <= x <= rng[1]:
                continue
            pos = range_position(x, *rng)
            pos = pos if high else 1 - pos  # distance from the other end, 0–1
            band = "outer" if pos >= 1 - share else "next" if pos >= 1 - 3 * share else None
            if band:
                bands[band].append(v)
    return {"outer": float(np.mean(bands["outer"])) if bands["outer"] else None, "n_outer": len(bands["outer"]),
            "next": float(np.mean(bands["next"])) if bands["next"] else None, "n_next": len(bands["next"])}


def _tuning_cells(entry: Any) -> list[tuple[str, dict]]:
    """``[(cell name, tuning result)]`` of one contender's tuning.json entry: its resampling cells
    ("cells"), or the one result at its top level ("" as the cell name)."""
    if not isinstance(entry, dict):
        return []
    by_cell = entry.get("cells")
    if isinstance(by_cell, dict) and by_cell:
        return [(str(k), v) for k, v in by_cell.items() if isinstance(v, dict)]
    return [("", entry)]


def expected_max_curves(fight: Fight) -> dict[str, dict[str, list]]:
    """Contender → :func:`~.stats.expected_max_curve` of its tuning trials' validation scores,
    ``k = 1 … n`` trials. Every trial spent budget, so a pruned trial counts too, scored by what it
    had shown when it was stopped: the best validation accuracy of its first seed (one seed, where a
    completed trial's value is the mean over its seeds); only trials without any finite score are
    left out. Under resampling: the mean curve over cells,
    up to the cell with the fewest scored trials."""
    out = {}
    for name, tn in (fight.tuning or {}).items():
        curves = []
        for _, res in _tuning_cells(tn):
            scores = [v for v in (_trial_score(t) for t in res.get("trials") or [] if isinstance(t, dict))
                      if v is not None]
            if scores:
                curves.append(expected_max_curve(scores))
        if curves:
            k = min(len(c["k"]) for c in curves)
            out[name] = {key: ([float(np.mean([c[key][i] for c in curves])) for i in range(k)] if key != "k"
                               else curves[0]["k"][:k]) for key in curves[0]}
    return out


def _trial_score(t: dict) -> float | None:
    """A trial's validation score: its value, or for a pruned trial the best of its first seed's curve."""
    v = to_number(t.get("val_accuracy"))
    if v is not None or t.get("state") != "pruned":
        return v
    curve = [c for c in (to_number(x) for x in t.get("curve") or []) if c is not None]
    return max(curve) if curve else to_number((t.get("seed_values") or [None])[0])
