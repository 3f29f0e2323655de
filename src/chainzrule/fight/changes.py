"""What changed from a fight's previous committed results, and which change caused it.

A rerun changes two things at once: the code that *produces* the numbers (engine, protocol,
baselines) and the code that *judges* them (verdict rules). To tell them apart every claim of
the new spec is read three ways:

1. **published** — the verdict in the previous ``report.md`` as it was committed;
2. **new rules, old runs** — today's verdict code and today's claims applied to the previous
   results.csv (the old runs re-judged);
3. **now** — today's rules on today's runs.

1 → 2 is the effect of the verdict rules, 2 → 3 the effect of the runs (engine and protocol).
A fight folder keeps its predecessor in ``previous/`` (``results.csv``, ``spec.json``,
``report.md`` copied from the last commit), and :mod:`.report` adds the section when it exists.

>>> parse_published_claims("## Claims\\n\\n| id | claim | claimed | ours | verdict |\\n|---|---|---|---|---|\\n"
...                        "| a | text | 1 | 2 | **supported** |\\n")
{'a': {'ours': '2', 'verdict': 'supported'}}
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from ..data.cache import atomic_write_text
from ..errors import ConfigError
from .analysis import summary_table
from .claims import claim_rows
from .loading import Fight, load_fight

__all__ = ["PREVIOUS", "parse_published_claims", "claim_changes", "contender_changes", "previous_fight"]

#: The sub-folder of a fight folder that holds the previous committed results.
PREVIOUS = "previous"


def parse_published_claims(report_md: str) -> dict[str, dict[str, str]]:
    """``{claim id: {"ours", "verdict"}}`` from the "## Claims" table of a committed report.md."""
    out: dict[str, dict[str, str]] = {}
    lines = report_md.splitlines()
    try:
        start = next(i for i, ln in enumerate(lines) if ln.strip() == "## Claims")
    except StopIteration:
        return out
    header: list[str] | None = None
    for ln in lines[start + 1:]:
        if ln.startswith("## "):
            break
        if not ln.startswith("|"):
            continue
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", ln.strip()[1:-1])]  # "\\|" is a pipe inside a cell
        if header is None:
            header = [re.split(r" [(\[]", c)[0] for c in cells]  # "ours (95% CI)", "ours [CI]" → "ours"
            continue
        if set("".join(cells)) <= set("-: "):
            continue
        row = dict(zip(header, cells))
        if "id" in row and "verdict" in row:
            out[row["id"]] = {"ours": row.get("ours", ""), "verdict": row["verdict"].strip("*")}
    return out


def previous_fight(fight: Fight) -> Fight | None:
    """The previous results of ``fight`` (its ``previous/`` folder), judged by ``fight``'s own
    claims; None if there is none."""
    folder = fight.folder / PREVIOUS
    if not (folder / "results.csv").is_file() or not (folder / "spec.json").is_file():
        return None
    old = load_fight(folder)
    old.spec = {**old.spec, "claims": fight.claims}  # today's claims on the old runs
    old.spec.pop("quick", None)
    return old


def _cause(published: str | None, rejudged: str, now: str) -> str:
    if published is None:
        return "new claim" if rejudged == now else "new claim; runs"
    parts = []
    if published != rejudged:
        parts.append("verdict rules")
    if rejudged != now:
        parts.append("runs (engine + protocol)")
    return " and ".join(parts) if parts else "unchanged"


def claim_changes(fight: Fight) -> list[dict[str, Any]]:
    """One row per claim of ``fight``: ``id, published, published_ours, rejudged, rejudged_ours,
    now, now_ours, cause`` (empty if there are no previous results)."""
    old = previous_fight(fight)
    if old is None:
        return []
    md = fight.folder / PREVIOUS / "report.md"
    published = parse_published_claims(md.read_text()) if md.is_file() else {}
    rejudged = {r["id"]: r for r in claim_rows(old)}
    out = []
    for r in claim_rows(fight):
        p, o = published.get(r["id"]), rejudged.get(r["id"], {})
        out.append({"id": r["id"], "published": p["verdict"] if p else None, "published_ours": p["ours"] if p else None,
                    "rejudged": o.get("verdict"), "rejudged_ours": o.get("ours"),
                    "now": r["verdict"], "now_ours": r["ours"],
                    "cause": _cause(p["verdict"] if p else None, o.get("verdict"), r["verdict"])})
    return out


def contender_changes(fight: Fight, metric: str | None = None) -> list[dict[str, Any]]:
    """Per contender in both: the mean of ``metric`` (default the primary) before and now, and
    the runs behind each (the old and new protocols differ in what a run is)."""
    old = previous_fight(fight)
    if old is None:
        return []
    metric = metric or fight.primary
    before = {r["contender"]: r for r in summary_table(old)}
    out = []
    for r in summary_table(fight):
        b = before.get(r["contender"])
        if b is None:
            continue
        out.append({"contender": r["contender"], "label": r.get("label", r["contender"]), "metric": metric,
                    "before": b.get(f"{metric}_mean"), "before_runs": b.get("runs"),
                    "now": r.get(f"{metric}_mean"), "now_runs": r.get("runs")})
    return out


def copy_previous(source: str | Path, fight_folder: str | Path) -> Path:
    """Copy ``results.csv``, ``spec.json`` and ``report.md`` of ``source`` into
    ``fight_folder/previous/`` (the other files of a fight are derived from these). ConfigError
    unless ``source`` is another folder of the same fight (its spec's ``name``)."""
    import shutil

    source, dest = Path(source), Path(fight_folder) / PREVIOUS
    if source.resolve() in (Path(fight_folder).resolve(), dest.resolve()):
        raise ConfigError(f"expected --previous to be another fight folder, got {source}, which is "
                          f"{'the fight folder itself' if source.resolve() == Path(fight_folder).resolve() else 'its previous/ folder'}")
    old = load_fight(source)  # refuses a folder that is not a fight
    now = load_fight(fight_folder)
    names = old.spec.get("name"), now.spec.get("name")
    if names[0] != names[1]:  # another fight's numbers would be reported as what changed in this one
        raise ConfigError(f"expected --previous to be an earlier run of fight {names[1]!r}, got {source}, the results "
                          f"of fight {names[0]!r}")
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("results.csv", "spec.json"):
        if (source / name).is_file():
            shutil.copy2(source / name, dest / name)
    if (source / "report.md").is_file():
        atomic_write_text(dest / "report.md", archived_report((source / "report.md").read_text()))
    json.loads((dest / "spec.json").read_text())
    return dest


def archived_report(markdown: str) -> str:
    """A report as kept in ``previous/``: its relative images (``plots/…``, not archived, and in
    the fight folder the current run's) become a line that names them, so a viewer shows no
    broken image and no plot of another run under the old numbers.

    >>> archived_report("![λ sweep](plots/lambda_sweep.png)")
    '*(figure not archived: λ sweep, `plots/lambda_sweep.png` of that run)*'
    """
    return _IMAGE.sub(lambda m: f"*(figure not archived: {m[1]}, `{m[2]}` of that run)*", markdown)


_IMAGE = re.compile(r"!\[([^\]]*)\]\((?![a-z]+:)([^)\s]+)\)")
