"""Display formatting shared by the claims table and the markdown report: every number in its unit.

Fraction metrics (accuracies, fgsm_/pgd_ columns) are shown in %, differences of them in points;
p-values to four places; a summary as ``mean ± std [lo, hi]``; tables as markdown.
"""

from __future__ import annotations

import math
from typing import Any

from ..config import ADV_COLUMN

__all__ = ["is_fraction", "format_value", "format_with_unit", "format_margin", "metric_unit", "format_p",
           "format_summary", "md_table"]

#: Columns shown as percentages (they hold fractions in results.csv).
_FRACTION_METRICS = {"test_accuracy", "val_accuracy", "test_off_by_one", "corruption_accuracy"}


def is_fraction(metric: str) -> bool:
    return metric in _FRACTION_METRICS or bool(ADV_COLUMN.match(metric))


def format_value(metric: str, v: float | None, *, diff: bool = False) -> str:
    """One number of ``metric`` in its display unit (accuracies in %, diffs in points).

    >>> format_value("test_accuracy", 0.98304), format_value("train_seconds", 0.021432), format_value("train_seconds", 182.4)
    ('98.30', '0.0214', '182.4')
    """
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    if is_fraction(metric):
        return f"{100 * v:+.2f}" if diff else f"{100 * v:.2f}"
    if metric == "params":
        return f"{v:+,.0f}" if diff else f"{v:,.0f}"
    if metric in ("step_ms",):
        return f"{v:.2f}"
    if metric in ("train_seconds", "peak_memory_mb"):  # three significant digits below 100, so a
        # tabular run's 0.02 s (a batched member's share) does not print as 0.0
        return f"{v:.1f}" if abs(v) >= 100 else f"{v:#.3g}"
    if metric in ("test_mae", "test_qwk"):
        return f"{v:+.3f}" if diff else f"{v:.3f}"
    if v != 0 and not 1e-3 <= abs(v) < 1e5:
        return f"{v:+.3e}" if diff else f"{v:.3e}"
    return f"{v:+.3f}" if diff else f"{v:.3f}"


def format_with_unit(metric: str, v: float | None) -> str:
    """:func:`format_value` with the unit: ``96.38%`` for fraction metrics."""
    return format_value(metric, v) + ("%" if is_fraction(metric) and v is not None else "")


def format_margin(metric: str, margin: float) -> str:
    return f"{100 * margin:.2f} points" if is_fraction(metric) else format_value(metric, margin)


def metric_unit(metric: str) -> str:
    return " (%)" if is_fraction(metric) else ""


def format_p(p: float | None) -> str:
    if p is None or math.isnan(p):
        return "—"
    return "<0.0001" if p < 1e-4 else f"{p:.4f}"


def format_summary(metric: str, s: dict[str, Any] | None, ci: bool = False) -> str:
    """``mean ± std`` (``[lo, hi]`` with ``ci``); ``mean (n=1)`` for a single value."""
    if not s:
        return "—"
    if s["n"] < 2:
        return f"{format_value(metric, s['mean'])} (n=1)"
    out = f"{format_value(metric, s['mean'])} ± {format_value(metric, s['std'])}"
    if ci:
        out += f" [{format_value(metric, s['ci_low'])}, {format_value(metric, s['ci_high'])}]"
    return out


def md_table(header: list[str], rows: list[list[str]]) -> str:
    """A markdown table (``|`` and line breaks in cells escaped)."""

    def esc(x: Any) -> str:
        return str(x).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(esc(h) for h in header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(esc(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)
