"""The scoreboard: every fight folder's claims side by side, each with its report's verdict."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
from test_fight_report import PGV, build_fight

from chainzrule.errors import ConfigError
from chainzrule.fight.claims import claim_rows
from chainzrule.fight.scoreboard import (BEGIN, END, fight_folders, render_figure, render_matrix, scoreboard_rows,
                                         topic, write_scoreboard)

ROOT = Path(__file__).resolve().parents[1]


def _finetune_folder(folder: Path, gain_ci=(0.5, 1.5, 2.5)) -> Path:
    """A fine-tune fight folder: the reference head's paired gain over the baseline is given."""
    folder.mkdir(parents=True)
    (folder / "spec.json").write_text(json.dumps({"name": "ft", "reference": "cr-dreg", "baseline": "linear",
                                                  "claimed_gain": 0.89, "other_references": []}))
    lo, mid, hi = gain_ci
    rows = [{"contender": "linear", "label": "Linear", "diff_vs_baseline": "", "diff_ci_low": "", "diff_ci_high": ""},
            {"contender": "cr-dreg", "label": "CR head", "diff_vs_baseline": mid, "diff_ci_low": lo, "diff_ci_high": hi}]
    with open(folder / "summary.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    (folder / "tuning.csv").write_text("contender,head_lr,chosen\n")
    (folder / "results.csv").write_text("contender,seed,test_accuracy\n")
    return folder


@pytest.fixture(scope="module")
def results_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("results")
    build_fight(root / "a-fight")
    _finetune_folder(root / "b-finetune")
    (root / "c-stability").mkdir()
    (root / "c-stability" / "spec.json").write_text("{}")
    (root / "c-stability" / "stability.csv").write_text("contender\n")
    (root / "in-progress").mkdir()  # no spec.json: not a fight folder, ignored
    return root


def test_rows_carry_each_folders_own_verdicts(results_dir):
    rows, skipped = scoreboard_rows(fight_folders([results_dir]))
    assert [p.name for p in skipped] == ["c-stability"]
    fight = [r for r in rows if r["folder"] == "a-fight"]
    assert [(r["id"], r["verdict"]) for r in fight] == [(r["id"], r["verdict"])
                                                        for r in claim_rows(results_dir / "a-fight")]
    ft = [r for r in rows if r["folder"] == "b-finetune"]
    assert len(ft) == 1 and ft[0]["verdict"] == "supported"  # the gain's interval [0.5, 2.5] lies above 0
    assert ft[0]["ours_value"] == pytest.approx(1.5)


def test_finetune_rule_below_the_claimed_gain(tmp_path):
    rows, _ = scoreboard_rows([_finetune_folder(tmp_path / "ft", gain_ci=(-3.0, -2.0, -1.0))])
    assert rows[0]["verdict"] == "not supported"  # the interval lies below +0.89


def test_matrix_has_one_row_per_topic_and_contender(results_dir):
    rows, _ = scoreboard_rows(fight_folders([results_dir]))
    table = render_matrix(rows).splitlines()
    assert table[0] == "| claim | contender | `a-fight` | `b-finetune` |"
    pgv = [line for line in table if line.startswith("| cuts PGV by ≥ 23.1% vs relu | cr-dreg |")]
    cut = sum(1 - a / b for a, b in zip(PGV["cr-dreg"], PGV["relu"])) / len(PGV["relu"])  # per-seed mean
    assert len(pgv) == 1 and f"**supported** {100 * cut:.1f}%" in pgv[0] and pgv[0].endswith("| — |")
    # three level claims on test accuracy of the same contender share a cell; corruption accuracy has its own row
    level = next(line for line in table if line.startswith("| reaches the papers' accuracy | cr-dreg |"))
    assert level.count("; ") == 2 and "**not supported**" in level and "inconclusive" in level
    assert any(line.startswith("| reaches the papers' corruption_accuracy | cr-dreg | not tested |") for line in table)
    assert len(table) == 2 + len({(r["topic"], r["contender"]) for r in rows})


def test_quick_profile_cells_are_previews(tmp_path):
    folder = build_fight(tmp_path / "quick")
    spec = json.loads((folder / "spec.json").read_text())
    (folder / "spec.json").write_text(json.dumps({**spec, "quick": True}))
    rows, _ = scoreboard_rows([folder])
    assert {r["verdict"] for r in rows} <= {"preview (quick profile)", "not tested"}
    assert "preview (quick profile) " in render_matrix(rows)
    assert render_figure(rows).startswith(b"\x89PNG")


def test_topics_name_what_is_tested():
    assert topic({"kind": "compare", "metric": "apgd_0.1", "baseline": "relu"}) == "more accurate under attack than relu"
    assert topic({"kind": "compare", "metric": "pgd_0.1", "baseline": "relu"}) == "more accurate under attack than relu"
    assert topic({"kind": "level", "metric": "tau_train"}) == "gradient tail ratio in the papers' range (tau_train)"
    assert topic({"kind": "param_ratio", "metric": "test_accuracy"}).startswith("as accurate with fewer parameters")
    assert topic({"kind": "level", "metric": "lipschitz_bound", "text": "bound below 10"}) == "bound below 10"


def test_command_writes_both_files_and_the_readme_block(results_dir, tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{BEGIN}\nold table\n{END}\noutro\n")
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "chainzrule", "scoreboard", str(results_dir), "--out", str(out),
                        "--readme", str(readme)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    md = (out / "scoreboard.md").read_text()
    assert md.startswith("# Scoreboard") and "`c-stability`" in md and "## Every claim" in md
    assert "![scoreboard](scoreboard.png)" in md
    assert (out / "scoreboard.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    with open(out / "scoreboard.csv", newline="") as f:
        got = list(csv.DictReader(f))
    assert len(got) == len(claim_rows(results_dir / "a-fight")) + 1
    assert {g["folder"] for g in got} == {"a-fight", "b-finetune"}
    text = readme.read_text()
    assert text.startswith(f"intro\n{BEGIN}\n| claim | contender |") and text.endswith(f"{END}\noutro\n")
    assert "old table" not in text


@pytest.mark.parametrize("case", ["no-folder", "no-markers"])
def test_bad_input_is_refused_before_anything_is_written(results_dir, tmp_path, case):
    out = tmp_path / "out"
    readme = tmp_path / "README.md"
    readme.write_text("no markers here\n")
    args = [str(tmp_path / "missing")] if case == "no-folder" else [str(results_dir), "--readme", str(readme)]
    r = subprocess.run([sys.executable, "-m", "chainzrule", "scoreboard", *args, "--out", str(out)],
                       capture_output=True, text=True)
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1 and "expected" in r.stderr
    assert not out.exists()
    assert readme.read_text() == "no markers here\n"


def test_unreadable_spec_is_refused(results_dir, tmp_path):
    bad = _finetune_folder(tmp_path / "ft")
    (bad / "spec.json").write_text("{not json")
    with pytest.raises(ConfigError, match=r"spec\.json"):
        write_scoreboard([bad], tmp_path / "out", "cmd")
    assert not (tmp_path / "out").exists()


def test_fights_without_claims_are_skipped_and_none_at_all_refused(results_dir, tmp_path):
    bare = build_fight(tmp_path / "bare")
    spec = json.loads((bare / "spec.json").read_text())
    (bare / "spec.json").write_text(json.dumps({**spec, "claims": []}))
    rows, skipped = scoreboard_rows([results_dir / "a-fight", bare])
    assert skipped == [bare] and {r["folder"] for r in rows} == {"a-fight"}
    with pytest.raises(ConfigError, match="no claims to lay side by side"):
        scoreboard_rows([bare])


def test_empty_folder_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="no fight folder"):
        write_scoreboard([tmp_path], tmp_path / "out", "cmd")


def committed_fight_folders() -> list[Path]:
    """The fight folders git tracks under results/ (``results/NAME/spec.json``), sorted by name as
    ``fight_folders`` sorts them: not a folder a reader made there, such as README command 1's
    ``results/mnist-quick``, which the committed scoreboard does not hold."""
    tracked = subprocess.run(["git", "ls-files", "results"], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.split()
    folders = sorted({ROOT / Path(f).parent for f in tracked if len(Path(f).parts) == 3 and f.endswith("/spec.json")})
    assert folders, "no committed fight folder found by git ls-files results"
    return folders


def test_committed_scoreboard_matches_the_committed_folders(tmp_path):
    """results/scoreboard.md and the README's block are what the command writes today from the
    committed folders."""
    folders = committed_fight_folders()
    write_scoreboard(folders, tmp_path, "chainzrule scoreboard results --readme README.md")
    assert (tmp_path / "scoreboard.md").read_text() == (ROOT / "results" / "scoreboard.md").read_text()
    assert (tmp_path / "scoreboard.csv").read_text() == (ROOT / "results" / "scoreboard.csv").read_text()
    rows, _ = scoreboard_rows(fight_folders(folders))
    readme = (ROOT / "README.md").read_text()
    assert f"{BEGIN}\n{render_matrix(rows)}\n{END}" in readme


def test_report_command_ends_with_the_verdict_tally(tmp_path):
    folder = build_fight(tmp_path / "f")
    r = subprocess.run([sys.executable, "-m", "chainzrule", "report", str(folder)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    # the hand-built claims of test_fight_report: 3 supported, 2 not supported, 3 inconclusive (the two legacy param ratios), 2 not tested
    assert r.stdout.splitlines()[-1] == ('claims: 3 supported, 2 not supported, 3 inconclusive, 2 not tested '
                                         '(report.md, "Claims")')
