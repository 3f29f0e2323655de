"""Audit of the map commands (``chainzrule stability``, ``chainzrule finetune``): a contender may not
bring its own data. Its cells would be drawn beside the others' in the heatmaps (stability) or its
runs paired with theirs by seed (finetune) while trained, validated and tested on other rows."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from chainzrule.cli import cli
from chainzrule.errors import ConfigError
from chainzrule.fight.finetune_spec import parse_finetune_spec
from chainzrule.fight.stability_spec import load_stability_spec, parse_stability_spec

STABILITY_TOML = """
[stability]
dataset = "synthetic"
lrs = [1e-2]
lambdas = [0.0]
seeds = 1
[base]
epochs = 1
hidden = [8]
[[contender]]
name = "cr"
model = "chainzrule"
[[contender]]
name = "relu"
model = "mlp"
{extra}
"""

FINETUNE_TOML = """
[finetune]
seeds = 1
reference = "cr"
baseline = "linear"
[base]
epochs = 1
limit = 64
[[contender]]
name = "linear"
[[contender]]
name = "cr"
hidden = [8]
activation = "chainzrule"
limit = 32
"""


@pytest.mark.parametrize("extra", ['limit = 100', 'val_fraction = 0.5', 'dataset = "pima"', 'target = "y"',
                                   'data_dir = "elsewhere"'])
def test_stability_contender_with_its_own_data_is_refused(extra):
    raw = {"stability": {"dataset": "synthetic", "lrs": [1e-2], "lambdas": [0.0], "seeds": 1},
           "base": {"epochs": 1, "hidden": [8]},
           "contender": [{"name": "cr", "model": "chainzrule"},
                         {"name": "relu", "model": "mlp", **dict([extra.replace('"', "").split(" = ")])}]}
    key = extra.split(" = ")[0]
    with pytest.raises(ConfigError, match=f"contender relu sets {key}: the data every contender shares"):
        parse_stability_spec(raw)
    raw["base"][key] = raw["contender"][1].pop(key)  # in [base] it is everyone's: not this check's business
    try:
        parse_stability_spec(raw)
    except ConfigError as e:
        assert "the data every contender shares" not in str(e)


def test_stability_cli_contender_data_is_one_line_exit_2(tmp_path):
    (tmp_path / "s.toml").write_text(STABILITY_TOML.format(extra="limit = 100\nval_fraction = 0.5"))
    res = CliRunner().invoke(cli, ["stability", str(tmp_path / "s.toml"), "--out", str(tmp_path / "out")])
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("chainzrule: error: contender relu sets limit, val_fraction"), lines
    assert not (tmp_path / "out").exists()


def test_finetune_contender_with_its_own_limit_is_refused(tmp_path):
    import tomllib

    raw = tomllib.loads(FINETUNE_TOML)
    with pytest.raises(ConfigError, match="contender cr sets limit"):
        parse_finetune_spec(raw)
    del raw["contender"][1]["limit"]
    assert parse_finetune_spec(raw).config(parse_finetune_spec(raw).contenders[1], 0).limit == 64
    (tmp_path / "f.toml").write_text(FINETUNE_TOML)
    res = CliRunner().invoke(cli, ["finetune", str(tmp_path / "f.toml"), "--out", str(tmp_path / "out"),
                                   "--data-dir", str(tmp_path)])
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("chainzrule: error: contender cr sets limit"), lines
    assert not (tmp_path / "out").exists()


def test_stability_quick_checks_the_full_profile_too(tmp_path):
    """A bad value that [quick] overrides is refused with --quick, as `fight --quick` refuses it."""
    toml = STABILITY_TOML.format(extra="[quick]\nlrs = [1e-2]\n")
    toml = toml.replace("lrs = [1e-2]\nlambdas", "lrs = [-1e-2]\nlambdas", 1)
    (tmp_path / "s.toml").write_text(toml)
    res = CliRunner().invoke(cli, ["stability", str(tmp_path / "s.toml"), "--out", str(tmp_path / "out"), "--quick"])
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert lines == ["chainzrule: error: [stability] lrs[0] must be a finite number > 0, got -0.01"], lines
    assert not (tmp_path / "out").exists()
    (tmp_path / "s.toml").write_text(toml.replace("lrs = [-1e-2]", "lrs = [3e-2]", 1))
    assert load_stability_spec(tmp_path / "s.toml", quick=True).lrs == [1e-2]
