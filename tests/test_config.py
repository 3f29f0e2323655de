"""TrainConfig validation: values kept exact, refused when out of range (probe findings of issue 8)."""

import json
import re
from pathlib import Path

import pytest

from chainzrule.config import FLOAT_LIMIT, KEY_NEUTRAL_DEFAULTS, SEED_LIMIT, TrainConfig, content_hash
from chainzrule.errors import ConfigError


def cfg(**kw) -> TrainConfig:
    return TrainConfig.from_dict({"dataset": "synthetic", **kw})


@pytest.mark.parametrize("given, expected", [
    (2**53 + 1, 2**53 + 1),  # an int above 2**53 is not rounded through float
    ("9007199254740993", 9007199254740993),
    (" 12 ", 12), ("1e3", 1000), ("3.0", 3), (4.0, 4),
])
def test_integers_are_kept_exact(given, expected):
    from chainzrule.config import _coerce

    got = _coerce("limit", "int | None", given)
    assert got == expected and type(got) is int
    if expected <= 2**31 - 1:
        assert cfg(limit=given).limit == expected


@pytest.mark.parametrize("given", [2.5, "2.5", True, False, "ten", "nan", "inf", float("inf"), [3], "1e40"])
def test_non_integers_are_refused(given):
    with pytest.raises(ConfigError, match=r"config key 'epochs': expected int, got"):
        cfg(epochs=given)


def test_hidden_widths_exact_and_refused_when_fractional():
    assert cfg(hidden="8, 4").hidden == (8, 4)
    assert cfg(hidden=[8.0]).hidden == (8,)
    with pytest.raises(ConfigError, match="config key 'hidden'"):
        cfg(hidden=[8.5])
    with pytest.raises(ConfigError, match="config key 'hidden'"):
        cfg(hidden=[True])


@pytest.mark.parametrize("seed", [-1, SEED_LIMIT, 2**64, "4294967296"])
def test_seeds_outside_uint32_are_refused(seed):
    with pytest.raises(ConfigError, match=r"seed must be an integer in \[0, 2\*\*32\) = 0..4294967295, got"):
        cfg(seed=seed)


def test_seed_range_ends_are_accepted():
    assert cfg(seed=0).seed == 0 and cfg(seed=SEED_LIMIT - 1).seed == SEED_LIMIT - 1


@pytest.mark.parametrize("field", ["lr", "reg_strength", "bound", "dreg", "dreg_final", "coef_lr_scale"])
@pytest.mark.parametrize("value", [1e308, 3.4e38, 1e31])
def test_float32_overflowing_values_are_refused_naming_the_field(field, value):
    with pytest.raises(ConfigError, match=rf"^{field} must be at most 1e\+30 .*got {re.escape(format(value, 'g'))}$"):
        cfg(**{field: value})


def test_float_limit_itself_is_accepted_and_eps_too_large_refused():
    assert cfg(lr=FLOAT_LIMIT).lr == FLOAT_LIMIT
    with pytest.raises(ConfigError, match=r"adv_eps\[1\] must be at most"):
        cfg(adv_eps=[0.1, 1e300])
    with pytest.raises(ConfigError, match="config key 'lr'"):
        cfg(lr=10**400)  # an int too large for a float: a clean error, not OverflowError


@pytest.mark.parametrize("field, value", [("epochs", 2**31), ("batch_size", 2**40), ("hidden", [2**31])])
def test_integer_settings_beyond_int32_are_refused(field, value):
    with pytest.raises(ConfigError, match=r"in 1..2147483647"):
        cfg(**{field: value})


@pytest.mark.parametrize("value, expected", [(True, True), ("no", False), (1, True), (0, False)])
def test_bools(value, expected):
    assert cfg(robustness=value).robustness is expected


@pytest.mark.parametrize("value", [3, "maybe", 0.5])
def test_bools_refused(value):
    with pytest.raises(ConfigError, match="config key 'robustness': expected bool"):
        cfg(robustness=value)


@pytest.mark.parametrize("changes", [dict(sn_gain=2.0), dict(sn_gain=2.0, reg="wd"), dict(sn_gain=0.0, reg="sn"),
                                     dict(sn_gain=-1.0, reg="sn"), dict(sn_gain=2.0, reg="sn", model="kan")])
def test_sn_gain_is_refused_without_spectral_norm_on_hidden_layers_or_when_not_positive(changes):
    with pytest.raises(ValueError, match="sn_gain"):
        TrainConfig(**changes)


def test_sn_gain_enters_content_keys_only_when_set():
    base = TrainConfig(reg="sn")
    assert "sn_gain" not in base.key_dict() and base.to_dict()["sn_gain"] == 1.0
    assert base.hash() == content_hash({k: v for k, v in base.to_dict().items() if k not in KEY_NEUTRAL_DEFAULTS}, 16)
    assert TrainConfig(reg="sn", sn_gain=2.0).hash() != base.hash()
    assert TrainConfig(reg="sn", sn_gain=2.0).key_dict()["sn_gain"] == 2.0


def test_committed_run_files_keep_their_keys():
    """A field added to TrainConfig must not re-key the committed runs (a resumed fight or map would
    retrain all of them): in every committed folder each run file's name is the key of its config
    (every file; the stability map was re-keyed once, results/migrations/2026-12-01-stability-rekey.py)."""
    from chainzrule.fight import finetune_fight
    from chainzrule.fight.executor import run_key
    from chainzrule.finetune import FinetuneConfig

    results = Path(__file__).resolve().parents[1] / "results"
    folders = sorted(p.parent for p in results.glob("*/runs"))
    assert {f.name for f in folders} >= {"mnist", "pima", "sst5", "stability-mnist", "sst5-finetune"}
    for folder in folders:
        runs = sorted((folder / "runs").glob("*.json"))
        assert runs, folder
        for path in runs:  # every file (2,647 committed: ~2 s)
            record = json.loads(path.read_text())
            if "dataset" in record and "encoder" in record:  # a fine-tune run: its own config and key
                key = finetune_fight.run_key(FinetuneConfig(**record["config"]).to_dict(), record["dataset"])
                assert path.stem == key, path
                continue
            cfg = TrainConfig.from_dict(record["config"])
            assert path.stem in (run_key(cfg, True), run_key(cfg, False)), path


def test_committed_tuning_runs_rebuild_to_their_keys():
    """The tuning runs of committed fights are not kept as files: rebuilt from spec.json and
    tuning.json (``stored_tuning_runs``, as tuning built them), each has its stored key, so a
    rerun of the fight's command finds them the same runs (every 7th run of every fight)."""
    from chainzrule.fight.executor import run_key
    from chainzrule.fight.tuning import stored_tuning_runs

    results = Path(__file__).resolve().parents[1] / "results"
    fights = sorted(p.parent for p in results.glob("*/tuning.json"))
    assert {f.name for f in fights} >= {"mnist", "pima", "sst5"}
    for folder in fights:
        runs = stored_tuning_runs(json.loads((folder / "spec.json").read_text()),
                                  json.loads((folder / "tuning.json").read_text()))
        assert runs, folder
        for r in runs[::7]:
            assert run_key(r["config"], False) == r["key"], (folder.name, r["contender"], r["trial"])