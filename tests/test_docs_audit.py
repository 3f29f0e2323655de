"""What a reader copies from the docs, and the files the project writes for them, resolve: the
Markdown links of the docs and of a fight's report point at files that exist (relative to the file
that holds the link, as every Markdown viewer reads them)."""

import re
from pathlib import Path

from test_fight_report import V2_CLAIMS, _rewrite, build_fight

from chainzrule.fight.report import write_report

ROOT = Path(__file__).resolve().parents[1]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def broken_links(md: Path) -> list[str]:
    """Relative link targets of ``md`` (outside code fences) that name no file or folder."""
    text = re.sub(r"```.*?```", "", md.read_text(), flags=re.S)
    out = []
    for target in LINK.findall(text):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue
        if not (md.parent / target.split("#")[0]).exists():
            out.append(target)
    return out


def test_the_docs_links_resolve():
    docs = [ROOT / "README.md", ROOT / "CHANGELOG.md", ROOT / "BENCHMARKS.md", *sorted((ROOT / "docs").glob("*.md")),
            ROOT / "results" / "README.md", ROOT / "results" / "FINDINGS.md", ROOT / "results" / "scoreboard.md"]
    docs += sorted(p for p in (ROOT / "results").glob("*/report.md"))  # each fight's report and its plots
    docs += sorted(p for p in (ROOT / "results").glob("*/previous/report.md"))  # archived: no plots kept
    bad = {str(p.relative_to(ROOT)): b for p in docs if (b := broken_links(p))}
    assert not bad, bad


def test_a_quick_reports_link_to_the_committed_run_resolves(tmp_path):
    """`chainzrule fight fights/X.toml --quick --out results/X-quick` (the README's command 1) points
    its previews at the committed full run: the link must resolve from results/X-quick/, where it
    read `results/X/report.md` (so results/X-quick/results/X/report.md, which does not exist)."""
    results = tmp_path / "results"
    quick = _rewrite(build_fight(results / "synthetic-quick"), claims=V2_CLAIMS, spec_update={"quick": True})
    report = write_report(quick)
    assert "`results/synthetic/report.md`" in report.read_text()
    assert broken_links(report) == []  # no full run beside it: named, not linked
    (results / "synthetic").mkdir()
    (results / "synthetic" / "report.md").write_text("# the full run\n")
    text = write_report(quick).read_text()
    assert "[`results/synthetic/report.md`](../synthetic/report.md)" in text
    assert broken_links(report) == []


def _columns(text: str) -> list[str]:
    """A documented column list ("a, b (what b is), c") as names, the parenthetical notes dropped."""
    text = " ".join(text.split())
    while re.search(r"\([^()]*\)", text):
        text = re.sub(r"\s*\([^()]*\)", "", text)
    return [c.strip().strip("`") for c in text.split(",") if c.strip()]


def _header(path: Path) -> list[str]:
    return path.read_text().split("\n", 1)[0].split(",")


def test_documented_columns_are_the_committed_files_columns():
    """docs/FIGHT_FORMAT.md names the columns of every CSV a reader loads; the committed files have
    exactly those, in that order (results.csv: then the attack columns, and `failed` where a run
    failed)."""
    doc = (ROOT / "docs" / "FIGHT_FORMAT.md").read_text()
    results = _columns(re.search(r"`results.csv` columns: (.*?), then the attack columns", doc, re.S).group(1))
    assert results[:3] == ["key", "phase", "contender"] and results[-1] == "patience", results
    for path in sorted((ROOT / "results").glob("*/results.csv")):
        if path.parent.name == "sst5-finetune":
            continue
        head = _header(path)
        assert head[:len(results)] == results, path
        assert all(re.fullmatch(r"(fgsm|pgd|apgd)_[\d.]+|failed", c) for c in head[len(results):]), path
    stability = _columns(re.search(r"`stability.csv` \(one row per run: (.*?)\), `summary.csv`", doc, re.S).group(1))
    cells = _columns(re.search(r"`summary.csv` \(one row per cell: (.*?)\), the four heatmaps", doc, re.S).group(1))
    for folder in ("stability-mnist", "stability-mnist-long"):
        assert _header(ROOT / "results" / folder / "stability.csv") == stability
        assert _header(ROOT / "results" / folder / "summary.csv") == cells
    finetune = _columns(re.search(r"`results.csv` \((contender, label, seed.*?)\); `summary.csv`", doc, re.S).group(1))
    assert _header(ROOT / "results" / "sst5-finetune" / "results.csv") == finetune
    tuning = _columns(re.search(r"`tuning.csv` \(with `head_lrs`: (.*?) — no test", doc, re.S).group(1))
    assert _header(ROOT / "results" / "sst5-finetune" / "tuning.csv") == tuning
    board = _columns(re.search(r"DIR/scoreboard.csv\s+one row per claim and folder: (.*?)\n```", doc, re.S).group(1))
    assert _header(ROOT / "results" / "scoreboard.csv") == board


def test_the_committed_csvs_load_with_pandas_as_documented():
    """Every CSV the docs point at loads with `pd.read_csv(path, low_memory=False)` without a
    warning; numbers are numbers (a text column holds no numbers but the hex run keys and the
    `hidden` widths, `256-256` or `19`, as FIGHT_FORMAT says), and the
    only column of mixed objects is a results.csv's `unstable` (True/False, empty for classical
    models)."""
    import warnings

    import pandas as pd

    paths = sorted((ROOT / "results").glob("*/*.csv")) + [ROOT / "results" / "scoreboard.csv"]
    assert len(paths) >= 25
    for path in paths:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            frame = pd.read_csv(path, low_memory=False)
        assert len(frame) and len(frame.columns) > 5, path
        for column in frame.columns:
            values = frame[column].dropna()
            if frame[column].dtype.kind in "biuf" or values.empty or column == "key":  # hex run keys
                continue
            if column == "hidden":  # widths joined by "-", one layer a plain number (documented)
                assert values.astype(str).str.fullmatch(r"\d+(-\d+)*").all(), path
                continue
            if {type(v) for v in values} == {bool}:
                assert column == "unstable", (path, column)
                continue
            numeric = pd.to_numeric(values, errors="coerce")
            assert numeric.isna().all(), (path, column, values[numeric.notna()].head(3).tolist())


def _help(capsys, *args: str) -> str:
    import pytest

    from chainzrule.cli import main

    with pytest.raises(SystemExit):
        main([*args, "--help"])
    return " ".join(capsys.readouterr().out.split())


def test_the_help_examples_are_valid_commands(capsys):
    """Each `chainzrule SUB ...` example in a --help uses SUB's own flags and existing spec files."""
    subs = ["train", "evaluate", "inspect", "export", "fight", "report", "scoreboard", "stability", "finetune"]
    helps = {sub: _help(capsys, sub) for sub in subs}
    examples = 0
    for text in helps.values():
        for sub, rest in re.findall(r"chainzrule (\w+) ((?:[\w./:,=-]+ ?)*)", text):
            if sub not in helps or "Example" not in text:
                continue
            examples += 1
            flags = re.findall(r"(--[\w-]+)", rest)
            assert all(f in helps[sub] for f in flags), (sub, rest)
            for spec in re.findall(r"fights/[\w-]+\.toml", rest):
                assert (ROOT / spec).is_file(), spec
    assert examples >= 8


def test_a_maps_execution_defaults_are_its_own(capsys):
    """A stability spec has no batch/executor keys (refused as unknown), so `stability --help` gives
    the flags' own defaults; a fight's spec may set each, which its --help says."""
    stability = _help(capsys, "stability")
    assert "[default: on]" in stability and "the spec's" not in stability
    fight = _help(capsys, "fight")
    for default in ("[default: the spec's batch;", "[default: the spec's, else local]",
                    "[default: the spec's, else auto]", "[default: the spec's storage, else none]"):
        assert default in fight, default


def test_the_layouts_name_every_module_and_spec():
    """README's Layout names every top-level module and fight spec; DESIGN.md's module map every
    module (a reader looks for a file there first)."""
    readme = (ROOT / "README.md").read_text()
    layout = readme[readme.index("## Layout"):].split("```")[1]
    src = ROOT / "src" / "chainzrule"
    top = [p.name for p in src.glob("*.py") if p.name not in ("__init__.py", "__main__.py")]
    top += [p.name + "/" for p in src.iterdir() if p.is_dir() and not p.name.startswith("__")]
    assert [n for n in top if n not in layout] == []
    fights = re.search(r"fights/\s+the fight specs \(TOML\): (.*?)\nresults/", layout, re.S).group(1)
    assert sorted(n.strip() for n in fights.split(",")) == sorted(p.stem for p in (ROOT / "fights").glob("*.toml"))
    design = (ROOT / "docs" / "DESIGN.md").read_text().split("```")[1]
    named = set(re.findall(r"\b\w+\.py\b", design))
    stats = set(re.search(r"stats/ \((.*?)\)", design).group(1).replace(" ", "").split(","))
    missing = [str(p.relative_to(src)) for p in src.rglob("*.py")
               if p.name != "__init__.py" and p.name not in named and p.stem not in stats]
    assert missing == [], missing


def test_the_documented_fight_spec_parses_with_the_contenders_it_names():
    """FIGHT_FORMAT's [fight] excerpt defines one contender and says which others its sections
    name; with those added (plain ones), every key it documents is accepted, --quick included."""
    import tomllib

    from chainzrule.fight.spec import parse_spec

    text = (ROOT / "docs" / "FIGHT_FORMAT.md").read_text()
    block = next(b for b in re.findall(r"```toml\n(.*?)```", text, re.S) if "[fight]" in b)
    named = re.search(r"this\s+excerpt also needs (.*?),\s+# which", block, re.S).group(1)
    names = re.findall(r'"([\w-]+)"', named)
    assert names == ["cr", "cr-dreg", "gelu", "relu-wd"]
    raw = tomllib.loads(block)
    models = {"cr": {"model": "chainzrule"}, "cr-dreg": {"model": "chainzrule", "tune": {"dreg": [1e-4, 1e-2, "log"]}},
              "gelu": {"model": "mlp", "activation": "gelu"},
              "relu-wd": {"model": "mlp", "reg": "wd", "tune": {"reg_strength": [1e-6, 1e-3, "log"]}}}
    raw["contender"] += [{"name": n, **models[n]} for n in names]
    for quick in (False, True):
        assert parse_spec(raw, quick=quick).reference == "cr-dreg"
