"""What changed in a fine-tuned encoder fight from its previous committed results.

A fine-tune fight folder may keep its predecessor in ``previous/`` (``summary.csv``,
``results.csv`` and, with head-lr tuning, ``tuning.csv``, copied from the last commit). The
report then gains a section: per head, the previous and the new test accuracy, the chosen head
learning rate before and after, whether its final runs are the same runs (run files are keyed by
their config, so an unchanged run is reused, not retrained), and the claim's verdict before and
after. The verdict rule is the one of :func:`.finetune_report.verdict`, applied to both.

>>> rows = [{"contender": "a", "label": "A", "test_accuracy_mean": 40.0, "runs": 3}]
>>> prev = {"summary": [{"contender": "a", "test_accuracy_mean": "39.5", "runs": "3"}], "tuning": [],
...         "results": [], "verdict": "inconclusive"}
>>> [r for r in head_changes(rows, prev, [], [])][0]["previous"]
39.5
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from ..errors import DataError
from .changes import PREVIOUS
from .loading import to_number

__all__ = ["load_previous", "head_changes", "previous_summary_floats", "read_csv_rows"]


def read_csv_rows(path: Path) -> list[dict[str, str]]:
    """The rows of ``path`` ([] if there is no such file); DataError naming it if it is not CSV text."""
    if not path.is_file():
        return []
    try:
        with open(path, newline="", encoding="utf-8") as f:
            return list(csv.DictReader(f))
    except (UnicodeDecodeError, csv.Error) as e:
        raise DataError(f"{path} is not a readable CSV file (expected UTF-8 CSV text: {e})") from None


def load_previous(out: Path) -> dict[str, Any] | None:
    """``out/previous``'s summary, results and tuning rows (CSV strings), or None without a
    ``previous/summary.csv``."""
    folder = Path(out) / PREVIOUS
    summary = read_csv_rows(folder / "summary.csv")
    if not summary:
        return None
    return {"summary": summary, "results": read_csv_rows(folder / "results.csv"),
            "tuning": read_csv_rows(folder / "tuning.csv")}


def _chosen(tuning: list[dict], name: str) -> float | None:
    """The head lr chosen for ``name`` in tuning rows (read from CSV or made in this process)."""
    for t in tuning:
        if t["contender"] == name and str(t["chosen"]) in ("True", "true", "1"):
            return to_number(t["head_lr"])
    return None


def head_changes(summary: list[dict], previous: dict[str, Any], results: list[dict],
                 tuning: list[dict]) -> list[dict[str, Any]]:
    """Per head of ``summary`` (today's): previous / new mean test accuracy, chosen head lr before
    and after, and how many of today's final runs are previous final runs (same run key)."""
    prev = {s["contender"]: s for s in previous["summary"]}
    prev_keys = {r["key"] for r in previous["results"]}
    out = []
    for s in summary:
        name = s["contender"]
        p = prev.get(name)
        keys = [r["key"] for r in results if r["contender"] == name]
        out.append({"contender": name, "label": s["label"], "new": p is None,
                    "previous": to_number(p["test_accuracy_mean"]) if p else None,
                    "previous_runs": int(to_number(p["runs"]) or 0) if p else 0,
                    "now": s["test_accuracy_mean"], "runs": s["runs"],
                    "lr_before": _chosen(previous["tuning"], name), "lr_now": _chosen(tuning, name),
                    "same_runs": sum(k in prev_keys for k in keys)})
    return out


def previous_summary_floats(previous: dict[str, Any]) -> list[dict[str, Any]]:
    """The previous summary rows with their numeric fields as floats (for the verdict rule)."""
    keys = ("test_accuracy_mean", "diff_vs_baseline", "diff_ci_low", "diff_ci_high")
    return [{**s, **{k: to_number(s.get(k)) for k in keys}} for s in previous["summary"]]
