"""Fight specs: the shipped specs parse; bad specs are refused before any run starts."""

import copy
import subprocess
import sys
import tomllib

import pytest

from chainzrule.fight.spec import load_spec, parse_spec

from conftest import REPO

FIGHTS = sorted((REPO / "fights").glob("*.toml"))
TINY = REPO / "tests" / "fixtures" / "tiny_fight.toml"


def _tiny() -> dict:
    return tomllib.loads(TINY.read_text())


@pytest.mark.parametrize("path", FIGHTS, ids=[p.stem for p in FIGHTS])
@pytest.mark.parametrize("quick", [False, True])
def test_shipped_specs_parse(path, quick):
    spec = load_spec(path, quick=quick)
    assert spec.contenders and spec.reference in {c.name for c in spec.contenders}
    assert spec.claims, "every shipped spec tests some of the papers' claims"
    if quick:
        full = load_spec(path)
        assert len(spec.contenders) <= len(full.contenders)
        assert spec.base.get("epochs", 10) <= full.base.get("epochs", 10)


def test_quick_profile_is_merged():
    raw = _tiny()
    raw["quick"] = {"seeds": 1, "base": {"epochs": 1}, "contenders": ["relu", "cr-dreg"]}
    spec = parse_spec(raw, quick=True)
    assert spec.seeds == 1 and spec.base["epochs"] == 1 and [c.name for c in spec.contenders] == ["relu", "cr-dreg"]
    assert spec.base["hidden"] == [16]  # untouched keys survive the merge


def test_dataset_override_reaches_every_contender():
    spec = parse_spec(_tiny(), dataset="csv:data.csv", target="label", data_dir="/tmp")
    cfg = spec.contender("relu").train_config(spec.base)
    assert (cfg.dataset, cfg.target, cfg.data_dir) == ("csv:data.csv", "label", "/tmp")


@pytest.mark.parametrize("mutate, message", [
    (lambda r: r["fight"].update(colour="red"), "[fight]: unknown key(s) colour"),
    (lambda r: r.update(extras={}), "spec: unknown key(s) extras"),
    (lambda r: r["base"].update(epochz=3), "[base]: unknown key(s) epochz"),
    (lambda r: r["contender"][0].update(modle="mlp"), "contender relu: unknown key(s) modle"),
    (lambda r: r["contender"][0].update(model="transformer"), "model 'transformer' is not known"),
    (lambda r: r["contender"][0].update(tune={"momentum": [0.1, 0.9, "linear"]}), "cannot tune 'momentum'"),
    (lambda r: r["contender"][0].update(tune={"lr": [1e-2, 1e-3, "log"]}), "low < high"),
    (lambda r: r["fight"].update(reference="gpt"), "reference 'gpt' is not a contender"),
    (lambda r: r["claim"][0].update(metric="f1"), "unknown metric 'f1'"),
    (lambda r: r["claim"][0].update(kind="vibes"), "unknown kind 'vibes'"),
    (lambda r: r["lambda_sweep"].update(contender="nobody"), "[lambda_sweep] contender 'nobody' is not a contender"),
    (lambda r: r.update(quick={"contenders": ["relu", "ghost"]}), "unknown contender(s) ghost"),
    (lambda r: r["contender"].append(copy.deepcopy(r["contender"][0])), "duplicate contender name(s): relu"),
    (lambda r: r["fight"].update(seeds=0), "seeds must be an integer >= 1, got 0"),
])
def test_bad_specs_are_refused_with_a_clear_message(mutate, message):
    raw = _tiny()
    mutate(raw)
    with pytest.raises(ValueError) as err:
        parse_spec(raw, quick="quick" in raw)
    assert message in str(err.value)


def test_cli_refuses_bad_spec_before_any_run(tmp_path):
    raw = TINY.read_text().replace('model = "kan"', 'model = "kan"\nwidth_multiplier = 2', 1)
    bad = tmp_path / "bad.toml"
    bad.write_text(raw)
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "chainzrule.cli", "fight", str(bad), "--out", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    lines = [l for l in proc.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and "unknown key(s) width_multiplier" in lines[0], proc.stderr
    assert not out.exists(), "nothing may be written before the spec is accepted"


def test_missing_and_malformed_spec_files(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        load_spec(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[fight\nname=")
    with pytest.raises(ValueError, match="not valid TOML"):
        load_spec(bad)
