"""Protocol audit: every contender of a fight is trained, validated and tested on the same rows.

A contender that set its own data fields (``dataset``, ``limit``, ``val_fraction``, ...) was
accepted and trained on other rows — another test split, another validation carve, or another
dataset left in place by ``--dataset`` — while the report still paired its runs with the
reference's by seed. The spec now refuses those fields in a contender; [base] keeps them.
"""

import tomllib

import pytest

from chainzrule.errors import ConfigError
from chainzrule.fight.spec import DATA_KEYS, parse_spec

from conftest import REPO

TINY = REPO / "tests" / "fixtures" / "tiny_fight.toml"


def _tiny() -> dict:
    return tomllib.loads(TINY.read_text())


@pytest.mark.parametrize("key, value", [("dataset", "pima"), ("data_dir", "/tmp"), ("target", "label"),
                                        ("featurizer", "hashed"), ("limit", 300), ("val_fraction", 0.5)])
def test_a_contender_cannot_choose_its_own_rows(key, value):
    assert key in DATA_KEYS
    raw = _tiny()
    raw["contender"][1][key] = value  # cr-dreg
    with pytest.raises(ConfigError, match=f"contender 'cr-dreg' sets {key}: the data every contender shares"):
        parse_spec(raw)


def test_data_fields_in_base_reach_every_contender():
    raw = _tiny()
    raw["base"].update(val_fraction=0.25, limit=500)
    spec = parse_spec(raw, dataset="pima")
    cfgs = [c.train_config(spec.base) for c in spec.contenders]
    assert {(c.dataset, c.limit, c.val_fraction) for c in cfgs} == {("pima", 500, 0.25)}


def test_a_contender_cannot_choose_its_own_epoch_budget():
    """A contender's epochs overrode [fight] tune_epochs in its tuning runs (30 epochs against the
    others' 2, and the pruner told 2): an unequal tuning budget. The budget is [base]'s, for all."""
    raw = _tiny()
    raw["contender"][1]["epochs"] = 30
    with pytest.raises(ConfigError, match="contender 'cr-dreg' sets epochs: the epoch budget every contender shares"):
        parse_spec(raw)
