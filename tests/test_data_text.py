"""Text: SST-5 and Yelp readers, featurizers, embedding cache; real SST-5 and the real encoder."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chainzrule.data import load_dataset, make_splits
from chainzrule.data import text as TX
from chainzrule.data.text import (featurize, hashed_features, parse_featurizer, read_sst5_file,
                                  read_yelp_csv)
from chainzrule.errors import ConfigError, DataError

from conftest import SST5 as REAL_SST5, needs_sst5  # noqa: E402


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CHAINZRULE_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("CHAINZRULE_SST5_DIR", raising=False)
    monkeypatch.delenv("CHAINZRULE_YELP_DIR", raising=False)


WORDS = ["good", "bad", "film", "plot", "dull", "great", "acting", "a", "the", "."]


def _sentence(i: int) -> str:
    return " ".join(WORDS[(i * k) % len(WORDS)] for k in range(1, 6))


@pytest.fixture
def sst5_dir(tmp_path):
    folder = tmp_path / "sst5"
    folder.mkdir()
    for name, n in (("train.txt", 30), ("dev.txt", 10), ("test.txt", 15)):
        (folder / name).write_text("".join(f"{i % 5} {_sentence(i)}\n" for i in range(n)))
    return folder


@pytest.fixture
def yelp_dir(tmp_path):
    folder = tmp_path / "yelp_review_full_csv"
    folder.mkdir()
    rows = ['"{}","{}"\n'.format(i % 5 + 1, f"Review {i}: {_sentence(i)}" +
                                 ('\\nSecond line with ""quotes"".' if i % 4 == 0 else ""))
            for i in range(25)]
    rows[3] = '"4","A real\nnewline inside quotes"\n'
    (folder / "train.csv").write_text("".join(rows))
    (folder / "test.csv").write_text("".join(rows[:10]))
    return folder


# ------------------------------------------------------------------ SST-5

def test_sst5_small_hashed(sst5_dir):
    ds = load_dataset("sst5", data_dir=sst5_dir, featurizer="hashed:256")
    assert ds.name == "sst5" and ds.task == "ordinal" and ds.num_classes == 5
    assert ds.X_train.shape == (30, 256) and ds.X_val.shape == (10, 256)
    assert ds.X_test.shape == (15, 256) and ds.X_train.dtype == np.float32
    np.testing.assert_array_equal(ds.y_train, np.arange(30) % 5)
    assert ds.meta["featurizer"] == "hashed:256" and ds.meta["standardize"] is False
    s = make_splits(ds)
    assert s.meta["val_source"] == "official" and len(s.X_val) == 10


def test_sst5_parent_folder_env_var_and_limit(sst5_dir, monkeypatch):
    ds = load_dataset("sst5", data_dir=sst5_dir.parent, featurizer="hashed", limit=4)
    assert ds.X_train.shape == (4, TX.HASHED_DIMS) and len(ds.y_val) == 4
    monkeypatch.setenv("CHAINZRULE_SST5_DIR", str(sst5_dir))
    assert load_dataset("sst5", featurizer="hashed").X_train.shape[0] == 30


def test_sst5_not_found_messages(tmp_path):
    with pytest.raises(DataError, match=r"SST-5 not found in .* pass data_dir= \(--data-dir\) .* "
                                        r"CHAINZRULE_SST5_DIR"):
        load_dataset("sst5", featurizer="hashed")
    with pytest.raises(DataError, match="SST-5 folder does not exist"):
        load_dataset("sst5", data_dir=tmp_path / "nope", featurizer="hashed")


def test_sst5_missing_file_listed(sst5_dir):
    (sst5_dir / "dev.txt").unlink()
    with pytest.raises(DataError, match=rf"SST-5 folder {sst5_dir} is missing dev.txt; expected "
                                        r"train.txt, dev.txt, test.txt"):
        load_dataset("sst5", data_dir=sst5_dir, featurizer="hashed")


@pytest.mark.parametrize("line", ["5 too high", "x not a label", "3", "3   ", "-1 negative",
                                  "2\ttab separated"])
def test_sst5_bad_line_names_file_and_line(sst5_dir, line):
    p = sst5_dir / "test.txt"
    p.write_text("1 fine .\n\n" + line + "\n")
    with pytest.raises(DataError, match=r"test\.txt:3: expected '<label 0-4> <sentence>'"):
        load_dataset("sst5", data_dir=sst5_dir, featurizer="hashed")


def test_sst5_empty_and_binary(sst5_dir):
    (sst5_dir / "dev.txt").write_text("\n")
    with pytest.raises(DataError, match=r"dev\.txt is empty"):
        read_sst5_file(sst5_dir / "dev.txt")
    (sst5_dir / "dev.txt").write_bytes(b"1 \xff\xfe\n")
    with pytest.raises(DataError, match="expected UTF-8"):
        read_sst5_file(sst5_dir / "dev.txt")


# ------------------------------------------------------------------ Yelp

def test_yelp_small(yelp_dir):
    texts, y = read_yelp_csv(yelp_dir / "train.csv")
    assert len(texts) == 25 and y.tolist() == [i % 5 for i in range(25)]
    assert texts[0].endswith('\nSecond line with "quotes".')  # \n unescaped, "" unquoted
    assert texts[3] == "A real\nnewline inside quotes"
    ds = load_dataset("yelp-full", data_dir=yelp_dir.parent, featurizer="hashed:128")
    assert ds.name == "yelp-full" and ds.task == "ordinal" and ds.num_classes == 5
    assert ds.X_train.shape == (25, 128) and ds.X_test.shape == (10, 128) and ds.X_val is None
    s = make_splits(ds, val_fraction=0.2)
    assert len(s.X_val) == 5 and s.meta["val_source"] == "carved"


def test_yelp_limit_stops_reading(yelp_dir):
    p = yelp_dir / "train.csv"
    p.write_text(p.read_text() + '"9","never read"\n')
    ds = load_dataset("yelp", data_dir=yelp_dir, featurizer="hashed", limit=25)
    assert len(ds.y_train) == 25 and len(ds.y_test) == 10


def test_yelp_header_row_skipped(tmp_path):
    p = tmp_path / "train.csv"
    p.write_text('label,text\n"2","ok"\n')
    assert read_yelp_csv(p)[1].tolist() == [1]


@pytest.mark.parametrize("label", ["0", "6", "x", "3.5"])
def test_yelp_label_out_of_range_file_line(tmp_path, label):
    p = tmp_path / "test.csv"
    # record 2 spans lines 2-3, so the bad record starts on line 4
    p.write_text(f'"1","a"\n"2","multi\nline"\n"{label}","bad"\n')
    with pytest.raises(DataError, match=rf"test\.csv:4: label must be 1\.\.5, got '{label}'"):
        read_yelp_csv(p)


def test_yelp_wrong_field_count_and_empty(tmp_path):
    p = tmp_path / "train.csv"
    p.write_text('"1","a"\n"2"\n')
    with pytest.raises(DataError, match=r"train\.csv:2: expected 2 fields"):
        read_yelp_csv(p)
    p.write_text("")
    with pytest.raises(DataError, match=r"train\.csv is empty"):
        read_yelp_csv(p)
    with pytest.raises(DataError, match="Yelp file not found"):
        read_yelp_csv(tmp_path / "nope.csv")


def test_yelp_missing_folder_and_file(tmp_path, yelp_dir):
    with pytest.raises(DataError, match=r"Yelp Review Full not found .* CHAINZRULE_YELP_DIR"):
        load_dataset("yelp-full", featurizer="hashed")
    (yelp_dir / "test.csv").unlink()
    with pytest.raises(DataError, match=r"is missing test\.csv"):
        load_dataset("yelp-full", data_dir=yelp_dir, featurizer="hashed")


# ------------------------------------------------------------------ featurizers

def test_parse_featurizer():
    assert parse_featurizer("hashed") == ("hashed", TX.HASHED_DIMS)
    assert parse_featurizer(" Hashed:64 ") == ("hashed", 64)
    for bad in ("hashed:0", "hashed:x", "hashed:-3"):
        with pytest.raises(ConfigError, match="expected hashed:DIMS with a positive integer"):
            parse_featurizer(bad)
    with pytest.raises(ConfigError, match="unknown featurizer 'bow'; expected one of auto"):
        parse_featurizer("bow")


def test_bad_featurizer_fails_before_reading(sst5_dir):
    (sst5_dir / "train.txt").write_text("9 bad\n")
    with pytest.raises(ConfigError, match="unknown featurizer"):
        load_dataset("sst5", data_dir=sst5_dir, featurizer="glove")


def test_encoder_unavailable(monkeypatch, sst5_dir):
    monkeypatch.setattr(TX, "encoder_available", lambda: False)
    with pytest.raises(ConfigError, match=r"pip install chainzrule\[text\]"):
        load_dataset("sst5", data_dir=sst5_dir, featurizer="encoder")
    with pytest.raises(ConfigError, match=r"pip install chainzrule\[text\]"):
        TX.encode_sentences(["x"])
    ds = load_dataset("sst5", data_dir=sst5_dir)  # auto -> hashed
    assert ds.meta["featurizer"] == f"hashed:{TX.HASHED_DIMS}"


def test_hashed_features_properties():
    X = hashed_features(["A good film .", "a GOOD film .", "", "plot"], dims=512)
    np.testing.assert_array_equal(X[0], X[1])
    assert not X[2].any() and np.isclose(np.linalg.norm(X[3]), 1.0)
    # bigrams matter: same words, different order -> different vectors
    Y = hashed_features(["good not bad", "bad not good"], dims=2**16)
    assert not np.array_equal(Y[0], Y[1])
    with pytest.raises(ConfigError):
        hashed_features(["x"], dims=0)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.text(max_size=40), max_size=5), st.integers(1, 300))
def test_hashed_features_any_text(texts, dims):
    X = hashed_features(texts, dims)
    assert X.shape == (len(texts), dims) and np.isfinite(X).all() and (X >= 0).all()
    norms = np.linalg.norm(X, axis=1)
    assert np.all(np.isclose(norms, 0) | np.isclose(norms, 1, atol=1e-5))
    np.testing.assert_array_equal(X, hashed_features(texts, dims))  # deterministic


def test_embedding_cache_key():
    k = TX.embedding_cache_key
    assert k(["a", "b"]) == k(["a", "b"])
    assert len({k(["a", "b"]), k(["b", "a"]), k(["ab"]), k(["a", "b", ""]), k([])}) == 5


def test_featurize_meta():
    X, meta = featurize(["x y"], "hashed:8")
    assert X.shape == (1, 8) and meta == {"featurizer": "hashed:8", "standardize": False}


# ------------------------------------------------------------------ real data

@needs_sst5
def test_real_sst5_hashed():
    ds = load_dataset("sst5", data_dir=REAL_SST5, featurizer="hashed")
    assert (len(ds.y_train), len(ds.y_val), len(ds.y_test)) == (8544, 1101, 2210)
    assert np.bincount(ds.y_train).tolist() == [1092, 2218, 1624, 2322, 1288]
    assert np.bincount(ds.y_val).tolist() == [139, 289, 229, 279, 165]
    assert np.bincount(ds.y_test).tolist() == [279, 633, 389, 510, 399]
    assert ds.X_train.shape == (8544, TX.HASHED_DIMS)
    assert np.allclose(np.linalg.norm(ds.X_test, axis=1), 1.0, atol=1e-5)


@needs_sst5
@pytest.mark.skipif(not TX.encoder_available(), reason="text extra not installed")
def test_real_encoder_and_cache(monkeypatch, tmp_path):
    texts, _ = read_sst5_file(REAL_SST5 / "train.txt", limit=64)
    E = TX.encode_sentences(texts, progress=False)
    assert E.shape == (64, 384) and E.dtype == np.float32
    assert np.allclose(np.linalg.norm(E, axis=1), 1.0, atol=1e-4)  # model ends in Normalize
    files = list((tmp_path / "cache" / "embeddings").glob("*.npy"))
    assert [f.name for f in files] == [TX.embedding_cache_key(texts) + ".npy"]
    assert not list((tmp_path / "cache" / "embeddings").glob(".*tmp"))
    # second call is a cache hit: the model must not be used
    monkeypatch.setattr(TX, "load_encoder", lambda *a: pytest.fail("encoder called on a hit"))
    np.testing.assert_array_equal(TX.encode_sentences(texts, progress=False), E)
    # order-sensitive cache; the similarity structure is meaningful
    sims = E @ E.T
    assert sims[np.triu_indices(64, 1)].max() < 0.999
    monkeypatch.undo()
    monkeypatch.setenv("CHAINZRULE_CACHE", str(tmp_path / "cache"))
    # end to end through load_dataset (4 sentences per split), official dev as X_val
    ds = load_dataset("sst5", data_dir=REAL_SST5, featurizer="encoder", limit=4)
    assert ds.X_train.shape == (4, 384) and ds.X_val.shape == (4, 384)
    np.testing.assert_allclose(ds.X_train, E[:4], atol=1e-5)
    assert ds.meta["featurizer"] == f"encoder:{TX.ENCODER_NAME}" and ds.meta["standardize"]


def test_hashed_features_are_log_counts_of_hashed_unigrams_and_bigrams():
    """Oracle: lower-cased TOKEN_PATTERN tokens, grams = tokens + space-joined bigrams, bucket =
    |MurmurHash3_32(gram)| mod dims, value = log1p(count), row L2-normalised."""
    import re

    from sklearn.utils import murmurhash3_32

    texts = ["A good, good film!", "It's not bad ... it's GOOD", "", "x"]
    dims = 64
    X = hashed_features(texts, dims)
    for row, text in zip(X, texts):
        toks = re.findall(TX.TOKEN_PATTERN, text.lower())
        grams = toks + [f"{a} {b}" for a, b in zip(toks, toks[1:])]
        expect = np.zeros(dims)
        for g in grams:
            expect[abs(murmurhash3_32(g, positive=False)) % dims] += 1
        expect = np.log1p(expect)
        if expect.any():
            expect /= np.linalg.norm(expect)
        np.testing.assert_allclose(row, expect, rtol=1e-6, atol=1e-7)
    assert hashed_features([], 8).shape == (0, 8)
    with pytest.raises(ConfigError, match="list of texts"):
        hashed_features("one string", 8)
