"""Input checks of an audit: bad values are refused before any work, as a ConfigError (library)
or one ``chainzrule: error:`` line and exit status 2 (command line).

Fine-tuning spec numbers are type-checked, every contender is checked whatever the profile, the
polynomial degree and the device index are bounded, comma-separated flags refuse empty entries,
and a config file may not spell a key twice. In-process and on no data, so it stays fast."""

from __future__ import annotations

import re
import tomllib
from dataclasses import fields

import pytest

from chainzrule.cli import main
from chainzrule.cli_options import config_file_values
from chainzrule.config import DEGREE_LIMIT, TrainConfig
from chainzrule.errors import ConfigError
from chainzrule.fight.finetune_spec import INT_FIELDS, INT_TUPLE_FIELDS, load_finetune_spec, parse_finetune_spec
from chainzrule.finetune import FinetuneConfig
from conftest import REPO

TINY = ["--hidden", "8", "--epochs", "1", "--quiet"]
SPEC = {"finetune": {"seeds": 2, "reference": "cr", "baseline": "linear"},
        "base": {"epochs": 3, "batch_size": 32, "max_length": 64, "evals_per_epoch": 2},
        "contender": [{"name": "linear", "head": "linear"},
                      {"name": "cr", "head": "clm", "hidden": [8], "activation": "chainzrule", "dreg": 0.01}]}


def one_line_error(capsys, *args) -> str:
    """The one stderr line of ``chainzrule ARGS``, which must exit with status 2."""
    with pytest.raises(SystemExit) as e:
        main([str(a) for a in args])
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert e.value.code == 2 and len(lines) == 1 and lines[0].startswith("chainzrule: error: "), (e.value.code, err)
    assert "Traceback" not in err
    return lines[0]


@pytest.fixture
def no_data(monkeypatch):
    """Fail the test if the data is read: the checks under test must come first."""
    import chainzrule.train as train_mod

    monkeypatch.setattr(train_mod, "load_splits", lambda *a, **k: pytest.fail("data read before the check"))


def with_base(**changes) -> dict:
    return {**SPEC, "base": {**SPEC["base"], **changes}}


# ------------------------------------------------------------------------- 1. fine-tuning spec numbers
def test_the_integer_fields_checked_are_every_integer_field_of_finetune_config():
    ints = {f.name for f in fields(FinetuneConfig) if str(f.type).startswith("int")} - {"seed"}
    assert INT_FIELDS == ints == {"epochs", "batch_size", "max_length", "evals_per_epoch", "limit"}
    assert INT_TUPLE_FIELDS == {"hidden"}


@pytest.mark.parametrize("raw, message", [
    (with_base(batch_size=1e12), r"\[base\] batch_size must be an integer >= 1, got 1000000000000.0"),
    (with_base(batch_size=32.0), r"\[base\] batch_size must be an integer >= 1, got 32.0"),
    (with_base(batch_size=2**31), r"\[base\] batch_size must be an integer in 1..2147483647, got 2147483648"),
    (with_base(batch_size=0), r"\[base\] batch_size must be an integer >= 1, got 0"),
    (with_base(epochs=1.5), r"\[base\] epochs must be an integer >= 1, got 1.5"),
    (with_base(epochs=True), r"\[base\] epochs must be an integer >= 1, got True"),
    (with_base(max_length=64.0), r"\[base\] max_length must be an integer >= 1, got 64.0"),
    (with_base(evals_per_epoch=2.5), r"\[base\] evals_per_epoch must be an integer >= 1, got 2.5"),
    (with_base(limit=300.7), r"\[base\] limit must be an integer >= 2, got 300.7"),
    (with_base(limit=1), r"\[base\] limit must be an integer >= 2, got 1"),
    (with_base(dropout=True), r"\[base\] dropout must be a number, got True"),
    (with_base(head=1), r"\[base\] head must be a string, got 1"),
    (with_base(hidden=8), r"\[base\] hidden must be a list of integers >= 1 \(e.g. \[256\]\), got 8"),
    ({**SPEC, "contender": [SPEC["contender"][0], {**SPEC["contender"][1], "hidden": [8.5]}]},
     r"contender cr hidden\[0\] must be an integer >= 1, got 8.5"),
    ({**SPEC, "contender": [SPEC["contender"][0], {**SPEC["contender"][1], "hidden": [True]}]},
     r"contender cr hidden\[0\] must be an integer >= 1, got True"),
    ({**SPEC, "contender": [{**SPEC["contender"][0], "epochs": 2.0}, SPEC["contender"][1]]},
     r"contender linear epochs must be an integer >= 1, got 2.0"),
    ({**SPEC, "quick": {"base": {"epochs": 1.5}}}, r"\[quick\] base epochs must be an integer >= 1, got 1.5"),
])
@pytest.mark.parametrize("quick", [False, True])
def test_finetune_spec_refuses_non_integers_at_parse_time(raw, message, quick):
    with pytest.raises(ValueError, match=message):
        parse_finetune_spec(raw, quick=quick)


def test_finetune_spec_keeps_valid_values_as_given():
    spec = parse_finetune_spec(with_base(limit=200, dropout=0, dreg=0))
    assert spec.base == {**SPEC["base"], "limit": 200, "dropout": 0, "dreg": 0}  # stored as read, not converted
    assert spec.config(spec.contenders[1], 1).hidden == (8,)


def test_finetune_cli_refuses_a_float_batch_size_before_any_run(tmp_path, capsys):
    text = (REPO / "fights" / "sst5-finetune.toml").read_text().replace("batch_size = 32\n", "batch_size = 32.0\n")
    (tmp_path / "s.toml").write_text(text)
    line = one_line_error(capsys, "finetune", tmp_path / "s.toml", "--out", tmp_path / "o")
    assert line.endswith("[base] batch_size must be an integer >= 1, got 32.0")
    assert not (tmp_path / "o").exists()


# ------------------------------------------------------------- 2. every contender, whatever the profile
def test_quick_checks_the_contenders_it_leaves_out():
    raw = {**SPEC, "contender": [*SPEC["contender"], {"name": "clm", "head": "bogus"}],
           "quick": {"contenders": ["linear", "cr"], "seeds": 1}}
    for quick in (False, True):
        with pytest.raises(ValueError, match="contender clm: head must be one of linear, clm, got 'bogus'"):
            parse_finetune_spec(raw, quick=quick)
    raw["contender"][-1]["head"] = "clm"
    assert [c.name for c in parse_finetune_spec(raw, quick=True).contenders] == ["linear", "cr"]


def test_quick_cli_refuses_a_bad_head_outside_the_quick_list(tmp_path, capsys):
    text = (REPO / "fights" / "sst5-finetune.toml").read_text()
    text = text.replace('name = "clm"\nlabel = "Cumulative-link head"\nhead = "clm"', 'name = "clm"\nhead = "bogus"')
    assert 'head = "bogus"' in text
    (tmp_path / "s.toml").write_text(text)
    line = one_line_error(capsys, "finetune", tmp_path / "s.toml", "--out", tmp_path / "o", "--quick")
    assert "contender clm: head must be one of linear, clm, got 'bogus'" in line
    assert not (tmp_path / "o").exists()


# ----------------------------------------------------------------------------------- 3. degree bound
@pytest.mark.parametrize("degree", [0, DEGREE_LIMIT + 1, 40, 5000, 1_000_000])
def test_degree_outside_its_range_is_refused(degree):
    with pytest.raises(ValueError, match=rf"expected degree in 1..{DEGREE_LIMIT} .*got {degree}$"):
        TrainConfig(degree=degree)


@pytest.mark.parametrize("degree", [1, 3, 5, DEGREE_LIMIT])
def test_degrees_in_range_pass(degree):
    assert TrainConfig.from_dict({"degree": degree}).degree == degree


@pytest.mark.parametrize("degree", ["1000000", "5000", "40"])
def test_degree_flag_out_of_range_is_one_line_exit_2(capsys, tmp_path, no_data, degree):
    line = one_line_error(capsys, "train", "--dataset", "synthetic", *TINY, "--degree", degree, "--out", tmp_path / "o")
    assert line.endswith(f"got {degree}") and f"expected degree in 1..{DEGREE_LIMIT}" in line
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("path", sorted((REPO / "fights").glob("*.toml")), ids=lambda p: p.stem)
def test_every_shipped_spec_still_loads(path):
    from chainzrule.fight.spec import load_spec
    from chainzrule.fight.stability_spec import load_stability_spec

    raw = tomllib.loads(path.read_text())
    load = {"fight": load_spec, "stability": load_stability_spec, "finetune": load_finetune_spec}
    kind = next(k for k in load if k in raw)
    for quick in (False, True) if "quick" in raw else (False,):  # --quick needs a [quick] table
        load[kind](path, quick=quick)


# ------------------------------------------------------------------------------------ 4. device index
@pytest.mark.parametrize("device", ["cuda:-1", "cuda:99999999999999999999", "cuda:128", "cuda:", "cuda:01",
                                    "cuda:+1", "cuda:1 ", "cuda:0x1", "gpu", "CUDA", "cuda:1:2"])
def test_a_malformed_device_is_refused(device):
    with pytest.raises(ValueError, match=rf"device {re.escape(repr(device))} is not known: expected cpu, cuda, cuda:N"):
        TrainConfig(device=device)


@pytest.mark.parametrize("device", ["cpu", "cuda", "cuda:0", "cuda:7", "cuda:127", "mps", "cpu:0", "mps:0"])
def test_devices_torch_reads_pass(device):
    import torch

    assert TrainConfig(device=device).device == device and torch.device(device).type == device.split(":")[0]


@pytest.mark.parametrize("device", ["cuda:-1", "cuda:99999999999999999999"])
def test_device_flag_with_a_bad_index_is_one_line_exit_2(capsys, tmp_path, no_data, device):
    line = one_line_error(capsys, "train", "--dataset", "synthetic", *TINY, "--device", device, "--out", tmp_path / "o")
    assert f"device {device!r} is not known" in line
    assert not (tmp_path / "o").exists()


# ------------------------------------------------------------------------- 5. comma-separated flags
@pytest.mark.parametrize("flag, value, what", [
    ("--hidden", "64,,64", "positive integers"), ("--hidden", "8,", "positive integers"),
    ("--hidden", ",8", "positive integers"), ("--conv-channels", "8,,16", "positive integers"),
    ("--adv-eps", "0.1,", "numbers >= 0"),
])
def test_an_empty_entry_in_a_list_flag_is_one_line_exit_2(capsys, tmp_path, no_data, flag, value, what):
    args = ["--model", "cnn"] if flag == "--conv-channels" else []
    line = one_line_error(capsys, "train", "--dataset", "synthetic", *TINY, *args, flag, value, "--out", tmp_path / "o")
    assert line == f"chainzrule: error: expected comma-separated {what} for {flag}, got {value!r}"


@pytest.mark.parametrize("key, value", [("hidden", "64,,64"), ("hidden", "8,"), ("conv_channels", ",16"),
                                        ("adv_eps", "0.1,,0.2")])
def test_an_empty_entry_in_a_list_value_is_refused(key, value):
    with pytest.raises(ValueError, match=rf"config key '{key}': expected tuple.*no empty entry\), got {re.escape(repr(value))}"):
        TrainConfig.from_dict({key: value})


def test_list_values_without_empty_entries_read_as_before():
    assert TrainConfig.from_dict({"hidden": "8, 4", "adv_eps": "0.05,0.1"}).hidden == (8, 4)
    assert TrainConfig.from_dict({"adv_eps": ""}).adv_eps == ()


# ---------------------------------------------------------------------- 6. a key spelled two ways
def test_a_config_file_key_in_both_spellings_is_refused(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text('poly-init = "tanh"\npoly_init = "gelu"\n')
    with pytest.raises(ValueError, match="sets poly_init twice, as 'poly-init' and 'poly_init'"):
        config_file_values(str(f))
    f.write_text('poly-init = "tanh"\ndreg_final = 0.5\n')
    assert config_file_values(str(f)) == {"poly_init": "tanh", "dreg_final": 0.5}


def test_a_config_file_key_in_both_spellings_is_one_line_exit_2(capsys, tmp_path, no_data):
    f = tmp_path / "c.toml"
    f.write_text('poly_init = "gelu"\nepochs = 1\npoly-init = "tanh"\n')
    line = one_line_error(capsys, "train", "--dataset", "synthetic", "--config", f, "--quiet", "--out", tmp_path / "o")
    assert "sets poly_init twice, as 'poly_init' and 'poly-init'" in line
    assert not (tmp_path / "o").exists()
