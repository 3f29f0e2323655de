"""'Changes from the previous results': published → re-judged → now, and which step changed a verdict."""

import json

import pytest

from chainzrule.errors import ConfigError
from chainzrule.fight.analysis import load_fight
from chainzrule.fight.changes import claim_changes, contender_changes, copy_previous, parse_published_claims
from chainzrule.fight.report import write_report

from test_fight_report import ACC, _rewrite, build_fight

BEATS_RELU = [{"id": "beats-relu", "text": "CR+DREG beats ReLU", "kind": "compare", "contender": "cr-dreg",
               "baseline": "relu", "metric": "test_accuracy", "direction": "higher"},
              {"id": "acc-96", "text": "CR+DREG reaches 96.38%", "kind": "level", "contender": "cr-dreg",
               "metric": "test_accuracy", "claimed": 0.9638, "direction": "higher"}]


def _shift(delta):
    def update(r):
        if r["phase"] == "final" and r["contender"] == "cr-dreg":
            r = {**r, "test_accuracy": repr(float(r["test_accuracy"]) + delta)}
        return r
    return update


def test_parse_published_claims_handles_escaped_pipes():
    md = ("# r\n\n## Claims\n\ntext\n\n| id | claim | claimed | ours (95% CI) | verdict | p |\n|---|---|---|---|---|---|\n"
          "| s | mean \\|\\|J\\|\\|_F | x | 1.0 [0.9, 1.1] | **not supported** | 0.01 |\n\n## Plots\n| not | a | claim |\n")
    assert parse_published_claims(md) == {"s": {"ours": "1.0 [0.9, 1.1]", "verdict": "not supported"}}
    assert parse_published_claims("no claims here") == {}


def test_claim_changes_separate_rules_from_runs(tmp_path):
    # previous: cr-dreg 3 points worse (below ReLU), published under a claim set that lacked acc-96
    old = _rewrite(build_fight(tmp_path / "old"), claims=BEATS_RELU[:1], row_update=_shift(-0.03))
    write_report(old)
    new = _rewrite(build_fight(tmp_path / "new"), claims=BEATS_RELU)
    copy_previous(old, new)
    rows = {r["id"]: r for r in claim_changes(load_fight(new))}
    assert rows["beats-relu"]["published"] == "not supported"
    assert rows["beats-relu"]["rejudged"] == "not supported"  # today's rules, old runs: same verdict
    assert rows["beats-relu"]["now"] == "supported"
    assert rows["beats-relu"]["cause"] == "runs (engine + protocol)"
    assert rows["acc-96"]["published"] is None and rows["acc-96"]["cause"].startswith("new claim")
    acc = {r["contender"]: r for r in contender_changes(load_fight(new))}
    assert acc["cr-dreg"]["now"] - acc["cr-dreg"]["before"] == pytest.approx(0.03)
    assert acc["relu"]["now"] == pytest.approx(sum(ACC["relu"]) / 5)
    report = write_report(new).read_text()
    assert "## Changes from the previous results" in report
    assert "| beats-relu | not supported (" in report and "runs (engine + protocol)" in report


def test_rule_change_is_attributed_to_the_rules(tmp_path):
    old = build_fight(tmp_path / "old")
    write_report(old)
    new = build_fight(tmp_path / "new")
    copy_previous(old, new)
    # the published verdict differs from what today's rules give on the same runs: a rule change
    md = (new / "previous" / "report.md").read_text().replace("| **supported** |", "| **inconclusive** |", 1)
    (new / "previous" / "report.md").write_text(md)
    changed = [r for r in claim_changes(load_fight(new)) if r["cause"] != "unchanged"]
    assert changed and all(r["cause"] == "verdict rules" for r in changed)


def test_no_previous_means_no_section(tmp_path):
    new = build_fight(tmp_path / "new")
    assert claim_changes(load_fight(new)) == [] and contender_changes(load_fight(new)) == []
    assert "Changes from the previous" not in write_report(new).read_text()
    with pytest.raises(ConfigError, match="not a fight folder"):
        copy_previous(tmp_path / "nothing", new)
    assert json.loads((new / "spec.json").read_text())["claims"]


def test_cli_report_previous(tmp_path, capsys):
    from chainzrule.cli import main

    old, new = build_fight(tmp_path / "old"), build_fight(tmp_path / "new")
    write_report(old)
    with pytest.raises(SystemExit) as e:
        main(["report", str(new), "--previous", str(tmp_path / "missing")])
    assert e.value.code == 2 and "not a fight folder" in capsys.readouterr().err
    assert not (new / "previous").exists()
    with pytest.raises(SystemExit) as e:
        main(["report", str(new), "--previous", str(old)])
    assert e.value.code == 0
    assert sorted(p.name for p in (new / "previous").iterdir()) == ["report.md", "results.csv", "spec.json"]
    assert "## Changes from the previous results" in (new / "report.md").read_text()


def test_an_archived_report_shows_no_broken_or_current_plots(tmp_path):
    """previous/ keeps results.csv, spec.json and report.md, not plots/: the archived report's
    images would be broken (or, linked to the fight folder, show today's plots under the old
    numbers), so they become a line naming the figure."""
    old = build_fight(tmp_path / "old")
    report = write_report(old).read_text()
    assert "](plots/" in report  # the report has figures
    new = build_fight(tmp_path / "new")
    archived = (copy_previous(old, new) / "report.md").read_text()
    assert "![" not in archived and "*(figure not archived: " in archived
    assert parse_published_claims(archived) == parse_published_claims(report)
