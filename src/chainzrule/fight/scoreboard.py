"""The scoreboard: every claim of every committed fight, one table, claim by claim.

Each fight folder judges its own spec's claims (:func:`.claims.claim_rows`); a fine-tune fight
judges "the head beats the standard head" (:func:`.finetune_report.verdict`). The scoreboard reads
the folders as they are (nothing is rerun or recomputed but the verdicts, by the same code as each
report) and lays the claims side by side: one row per *topic* (what a claim tests, whatever the
fight calls it: "at least as accurate as relu", "cuts PGV by ≥ 23.1% vs relu", …) and contender,
one column per folder. Stability maps have no claims and are listed as skipped.

Outputs (``chainzrule scoreboard results``): ``scoreboard.md`` (the matrix, then every claim with
its numbers), ``scoreboard.png`` (the matrix in colour) and ``scoreboard.csv`` (one row per claim
and folder), and optionally the matrix
written between ``<!-- scoreboard:begin -->`` and ``<!-- scoreboard:end -->`` in another file
(the README).

>>> topic({"kind": "noninferior", "metric": "test_accuracy", "baseline": "relu"})
'at least as accurate as relu'
>>> topic({"kind": "reduction", "metric": "pgv", "baseline": "relu", "claimed": "≥ 23.1% reduction"})
'cuts PGV by ≥ 23.1% vs relu'
>>> short_value("Δ +0.12 points [+0.02, +0.21] (90% CI)")
'+0.12 points'
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from ..data.cache import atomic_write_bytes, atomic_write_text
from ..errors import ConfigError
from .claims import PREVIEW, claim_rows
from .loading import folder_kind, load_fight, to_number

__all__ = ["topic", "short_value", "folder_claims", "fight_folders", "scoreboard_rows", "render_matrix",
           "render_figure", "render_scoreboard", "write_scoreboard", "BEGIN", "END"]

#: the markers of the block that ``--readme FILE`` rewrites
BEGIN, END = "<!-- scoreboard:begin -->", "<!-- scoreboard:end -->"

#: CSV columns, in order
COLUMNS = ["folder", "fight", "id", "topic", "contender", "baseline", "kind", "metric", "claimed", "ours",
           "ours_value", "verdict", "p_value", "text"]

_ATTACK = re.compile(r"^(fgsm|pgd|apgd)_")
_NAMES = {"pgv": "PGV", "jacobian_fro_mean": "mean ‖J‖_F", "test_mae": "ordinal MAE"}
_VERDICT_CELL = {"supported": "**supported**", "not supported": "**not supported**", "inconclusive": "inconclusive",
                 "not comparable": "not comparable", "not tested": "not tested"}


def topic(row: dict[str, Any]) -> str:
    """What a claim tests, in words that are the same in every fight (its row in the matrix)."""
    kind, metric, base = row.get("kind"), str(row.get("metric") or ""), row.get("baseline")
    if kind == "param_ratio":
        return "as accurate with fewer parameters (accuracy-matched ratio)"
    if kind == "finetune":
        return f"fine-tuned encoder: beats the standard head ({base})"
    if kind == "reduction":
        claimed = str(row.get("claimed") or "").replace(" reduction", "")
        return f"cuts {_NAMES.get(metric, metric)} by {claimed} vs {base}".replace("  ", " ")
    if kind == "noninferior":
        what = "accurate" if metric.endswith("accuracy") else f"good on {_NAMES.get(metric, metric)}"
        return f"at least as {what} as {base}"
    if kind == "compare":
        if metric == "test_accuracy":
            return f"more accurate than {base}"
        if metric == "jacobian_fro_mean":
            return f"less input-sensitive than {base} (mean ‖J‖_F)"
        if metric == "corruption_accuracy":
            return f"more accurate under corruptions than {base}"
        if _ATTACK.match(metric):
            return f"more accurate under attack than {base}"
        if metric == "test_mae":
            return f"lower ordinal MAE than {base}"
        return f"better {metric} than {base}"
    if kind == "level":
        if metric in ("test_accuracy", "accuracy"):
            return "reaches the papers' accuracy"
        if metric.endswith("accuracy"):
            return f"reaches the papers' {metric}"
        if metric.startswith("tau"):
            return f"gradient tail ratio in the papers' range ({metric})"
    return str(row.get("text") or row.get("id") or "?")


def short_value(ours: str) -> str:
    """The point estimate of a claims-table ``ours`` cell (its interval and notes dropped)."""
    text = str(ours or "—").split(" [", 1)[0].strip()
    return text[2:] if text.startswith("Δ ") else text


def _spec(folder: Path) -> dict[str, Any]:
    """``folder/spec.json`` as a dict; ConfigError naming the file when it is not a JSON object."""
    path = folder / "spec.json"
    try:
        spec = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise ConfigError(f"{path}: expected a readable JSON spec, got {type(e).__name__}: {e}") from None
    if not isinstance(spec, dict):
        raise ConfigError(f"{path}: expected a JSON object, got {type(spec).__name__}")
    return spec


def _finetune_claims(folder: Path, spec: dict[str, Any]) -> list[dict[str, Any]]:
    """The fine-tune fight's claim, one row per reference head (the rule of its report)."""
    from .finetune_changes import previous_summary_floats, read_csv_rows
    from .finetune_report import verdict

    summary = previous_summary_floats({"summary": read_csv_rows(folder / "summary.csv")})
    names = {s["contender"] for s in summary}
    gain = float(spec.get("claimed_gain", 0.0))
    rows = []
    for ref in [spec.get("reference"), *(spec.get("other_references") or [])]:
        if ref not in names:
            continue
        v, why = verdict(SimpleNamespace(reference=ref, claimed_gain=gain), summary, ref)
        s = next(s for s in summary if s["contender"] == ref)
        diff = s["diff_vs_baseline"]
        rows.append({"id": f"finetune-{ref}", "text": f"{s.get('label') or ref} beats the standard head when the "
                     f"encoder is fine-tuned (papers: {gain:+.2f} points)", "kind": "finetune", "contender": ref,
                     "baseline": spec.get("baseline"), "metric": "test_accuracy", "claimed": f"{gain:+.2f} points",
                     "ours": (f"Δ {diff:+.2f} points [{s['diff_ci_low']:+.2f}, {s['diff_ci_high']:+.2f}]"
                              if diff is not None else "—"),
                     "ours_value": diff, "verdict": v, "p_value": None, "note": why})
    return rows


def folder_claims(folder: str | Path) -> tuple[str, list[dict[str, Any]] | None]:
    """``(the fight's name, its judged claims)`` for a fight or fine-tune folder; claims None for
    a stability map (no claims)."""
    folder = Path(folder)
    kind = folder_kind(folder)
    if kind == "stability":
        return folder.name, None
    if kind == "finetune":
        spec = _spec(folder)
        return spec.get("name") or folder.name, _finetune_claims(folder, spec)
    fight = load_fight(folder)
    return fight.get("name") or folder.name, claim_rows(fight)


def fight_folders(paths: list[str | Path]) -> list[Path]:
    """Every folder to read: a path with ``spec.json`` is one; any other folder stands for its
    immediate subfolders that have one (sorted by name). ConfigError for a missing path, when
    nothing is found, or for two folders of one name (the same folder twice included)."""
    out: list[Path] = []
    for p in map(Path, paths):
        if not p.is_dir():
            raise ConfigError(f"{p}: expected a fight folder or a folder of fight folders, got no such folder")
        if (p / "spec.json").is_file():
            out.append(p)
        else:
            out.extend(sorted(q for q in p.iterdir() if q.is_dir() and (q / "spec.json").is_file()))
    if not out:
        raise ConfigError(f"no fight folder (a folder with spec.json) in {', '.join(map(str, paths))}")
    seen: dict[str, Path] = {}
    for p in out:  # a column per folder name: the same folder twice, or two of one name, would merge
        other = seen.setdefault(p.name, p)
        if other is not p:
            same = other.resolve() == p.resolve()
            raise ConfigError(f"expected distinct fight folder names (one column each), got {other} and {p}"
                              + (", the same folder" if same else f", both named {p.name!r}: rename one"))
    return out


def scoreboard_rows(folders: list[Path]) -> tuple[list[dict[str, Any]], list[Path]]:
    """``(claim rows with folder, fight and topic added, the folders skipped for having no claims:
    stability maps, and fights whose spec has no [[claim]])``; ConfigError when no folder has one."""
    rows, skipped = [], []
    for folder in folders:
        fight, claims = folder_claims(folder)
        if not claims:
            skipped.append(folder)
            continue
        for c in claims:
            rows.append({**c, "folder": folder.name, "fight": fight, "topic": topic(c)})
    if not rows:
        raise ConfigError(f"no claims to lay side by side: expected fight folders whose spec has [[claim]] tables, "
                          f"got none in {', '.join(str(f) for f in folders)}")
    return rows, skipped


def _cell(row: dict[str, Any]) -> str:
    verdict = str(row["verdict"])
    cell = _VERDICT_CELL.get(verdict, verdict)
    value = short_value(row.get("ours", "—"))
    if value and value != "—":
        extra = f", claimed {row['claimed']}" if row.get("kind") == "level" else ""
        extra += f", {row['metric']}" if _ATTACK.match(str(row.get("metric") or "")) else ""
        cell += f" {value}" + (f" ({extra[2:]})" if extra else "")
    return cell


def _grid(rows: list[dict[str, Any]]) -> tuple[list[str], list[tuple[str, str]], dict[tuple, list[dict]]]:
    """``(folders, (topic, contender) keys, claim rows per (topic, contender, folder))``: keys in
    order of the topics' first appearance, then the contenders'."""
    folders = list(dict.fromkeys(r["folder"] for r in rows))
    topics = list(dict.fromkeys(r["topic"] for r in rows))
    names = list(dict.fromkeys(str(r.get("contender") or "") for r in rows))
    keys = sorted(dict.fromkeys((r["topic"], str(r.get("contender") or "")) for r in rows),
                  key=lambda k: (topics.index(k[0]), names.index(k[1])))
    cells: dict[tuple, list[dict]] = {}
    for r in rows:
        cells.setdefault((r["topic"], str(r.get("contender") or ""), r["folder"]), []).append(r)
    return folders, keys, cells


def render_matrix(rows: list[dict[str, Any]]) -> str:
    """The topic × folder table: one row per (topic, contender), cells the verdict and our point
    estimate ("—": the folder has no such claim)."""
    folders, keys, cells = _grid(rows)
    lines = ["| claim | contender | " + " | ".join(f"`{f}`" for f in folders) + " |",
             "|---|---|" + "---|" * len(folders)]
    for t, c in keys:
        row = ["; ".join(_cell(r) for r in cells.get((t, c, f), [])) or "—" for f in folders]
        lines.append(f"| {t} | {c} | " + " | ".join(row) + " |")
    return "\n".join(lines)


#: cell colours of the figure, by verdict (absent claims stay white)
_COLOURS = {"supported": "#81c784", "not supported": "#e57373", "inconclusive": "#fff59d",
            "not comparable": "#cfd8dc", "not tested": "#eeeeee", PREVIEW: "#bbdefb"}


def render_figure(rows: list[dict[str, Any]]) -> bytes:
    """scoreboard.png: the matrix as coloured cells (green supported, red not supported, yellow
    inconclusive, grey not comparable or not tested, white: no such claim), our estimate inside."""
    import matplotlib.patches as mpatches

    from ..plots import new_figure

    folders, keys, cells = _grid(rows)
    fig, ax = new_figure(figsize=(3.5 + 1.25 * len(folders), 1.2 + 0.34 * len(keys)))
    for i, key in enumerate(keys):
        for j, f in enumerate(folders):
            claims = cells.get((*key, f), [])
            verdict = claims[0]["verdict"] if len({c["verdict"] for c in claims}) == 1 else "inconclusive"
            colour = _COLOURS.get(verdict, "#eeeeee") if claims else "white"
            ax.add_patch(mpatches.Rectangle((j, i), 1, 1, facecolor=colour, edgecolor="white", lw=1.5))
            text = "; ".join(short_value(c.get("ours", "")).replace(" points", " pt") for c in claims)
            if claims and len(claims) > 1:
                text = f"{len(claims)} claims"
            ax.text(j + 0.5, i + 0.5, "" if text == "—" else text, ha="center", va="center", fontsize=7)
    ax.set_xlim(0, len(folders))
    ax.set_ylim(len(keys), 0)
    ax.set_xticks([j + 0.5 for j in range(len(folders))], folders, rotation=30, ha="left", fontsize=8)
    ax.xaxis.tick_top()
    ax.set_yticks([i + 0.5 for i in range(len(keys))], [f"{t} [{c}]" for t, c in keys], fontsize=8)
    ax.tick_params(length=0)
    for side in ax.spines.values():
        side.set_visible(False)
    shown = {r["verdict"] for r in rows}
    handles = [mpatches.Patch(facecolor=c, label=v) for v, c in _COLOURS.items() if v != PREVIEW or v in shown]
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.01), ncol=len(handles), fontsize=8,
              frameon=False)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    return buf.getvalue()


def _tally(rows: list[dict[str, Any]]) -> str:
    lines = ["| folder | supported | not supported | inconclusive | not comparable | other |", "|---|---:|---:|---:|---:|---:|"]
    for f in dict.fromkeys(r["folder"] for r in rows):
        vs = [r["verdict"] for r in rows if r["folder"] == f]
        known = ("supported", "not supported", "inconclusive", "not comparable")
        lines.append(f"| `{f}` | " + " | ".join(str(vs.count(k)) for k in known)
                     + f" | {sum(v not in known for v in vs)} |")
    return "\n".join(lines)


def _md(text: Any) -> str:
    return str(text if text is not None else "").replace("|", "\\|")


def render_scoreboard(rows: list[dict[str, Any]], skipped: list[Path], command: str) -> str:
    """scoreboard.md: how it was made, the matrix, the tally, every claim with its numbers."""
    parts = ["# Scoreboard: the papers' claims across the committed fights", "",
             f"- **Command**: `{command}` (rewrites this file and `scoreboard.csv` from the folders as they are; "
             "no run is retrained)",
             "- **Cells**: each folder's own verdict (the rule of its report: `report.md`, \"Claims\") and our point "
             "estimate; the interval, the test and the p-value are in the table below and in each report. "
             "\"—\": the folder has no such claim.",
             "- **Rows**: what a claim tests, named the same in every fight; the contender is the network the "
             "claim is about (`cr-dreg`: ChainzRule + DREG; `cr-dreg-tanh`: the same started as tanh; "
             "`cr-dreg-r`: the same with its working interval R tuned).",
             ""]
    if skipped:
        parts += [f"- Skipped (no claims: stability maps, fights without [[claim]]): "
                  f"{', '.join(f'`{p.name}`' for p in skipped)}", ""]
    parts += ["## Claim by claim", "", "![scoreboard](scoreboard.png)", "", render_matrix(rows), "", "## Verdicts per folder", "", _tally(rows), "",
              "## Every claim", "",
              "| folder | id | claim | claimed | ours [CI] | verdict | p |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        parts.append(f"| `{r['folder']}` | {_md(r['id'])} | {_md(r['text'])} | {_md(r['claimed'])} | "
                     f"{_md(r.get('ours'))} | {_md(r['verdict'])} | {_md(r.get('p', '—'))} |")
    return "\n".join(parts) + "\n"


def _csv_text(rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in COLUMNS})
    return buf.getvalue()


def _with_block(text: str, block: str, where: Path) -> str:
    if text.count(BEGIN) != 1 or text.count(END) != 1 or text.index(BEGIN) > text.index(END):
        raise ConfigError(f"{where}: expected one {BEGIN} line followed by one {END} line, "
                          f"got {text.count(BEGIN)} and {text.count(END)}")
    head, rest = text.split(BEGIN, 1)
    return head + BEGIN + "\n" + block + "\n" + END + rest.split(END, 1)[1]


def write_scoreboard(paths: list[str | Path], out: str | Path, command: str,
                     readme: str | Path | None = None) -> list[Path]:
    """Write ``out/scoreboard.md``, ``out/scoreboard.png`` and ``out/scoreboard.csv`` (and the matrix
    into ``readme``'s marked block); everything is computed and checked before the first file is
    written."""
    rows, skipped = scoreboard_rows(fight_folders(paths))
    out = Path(out)
    texts = {out / "scoreboard.csv": _csv_text(rows), out / "scoreboard.md": render_scoreboard(rows, skipped, command)}
    if readme is not None:
        readme = Path(readme)
        if not readme.is_file():
            raise ConfigError(f"--readme {readme}: expected an existing file with the scoreboard markers, got no such file")
        texts[readme] = _with_block(readme.read_text(encoding="utf-8"), render_matrix(rows), readme)
    png = render_figure(rows)
    out.mkdir(parents=True, exist_ok=True)
    written = [atomic_write_bytes(out / "scoreboard.png", png)]
    return written + [atomic_write_text(path, text) for path, text in texts.items()]
