"""Tables: generic CSV (csv:PATH) rules and errors, Pima (offline fixtures and once for real)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from chainzrule.data import load_dataset
from chainzrule.data import tabular as T
from chainzrule.data.tabular import load_csv, read_table, stratified_test_split
from chainzrule.errors import ConfigError, DataError


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CHAINZRULE_CACHE", str(tmp_path / "cache"))


def _csv(tmp_path, text: str, name="t.csv") -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def _rows(n=40):
    return "".join(f"{i},{i * 0.5},{'xyz'[i % 3]},{'ab'[i % 2]}\n" for i in range(n))


# ------------------------------------------------------------------ generic CSV: happy paths

def test_numeric_and_categorical_columns(tmp_path):
    p = _csv(tmp_path, "n,f,cat,label\n" + _rows())
    ds = load_dataset(f"csv:{p}", target="label")
    assert ds.name == f"csv:{p}" and ds.task == "classification" and ds.num_classes == 2
    assert ds.feature_names == ["n", "f", "cat=x", "cat=y", "cat=z"]
    assert ds.X_train.shape == (32, 5) and ds.X_test.shape == (8, 5)
    assert ds.X_train.dtype == np.float32 and ds.y_train.dtype == np.int64
    assert ds.meta["classes"] == ["a", "b"]
    assert ds.meta["column_kinds"] == {"n": "numeric", "f": "numeric", "cat": "categorical"}
    assert ds.meta["test_split"] == "stratified 80/20, seed 0"
    assert ds.meta["standardize"] is True
    # one-hot rows sum to 1; labels follow the sorted class order
    X = np.concatenate([ds.X_train, ds.X_test])
    y = np.concatenate([ds.y_train, ds.y_test])
    assert np.all(X[:, 2:].sum(1) == 1)
    np.testing.assert_array_equal(y[np.argsort(X[:, 0])], np.arange(40) % 2)
    np.testing.assert_allclose(X[:, 1], X[:, 0] * 0.5)


def test_split_is_fixed_and_stratified(tmp_path):
    p = _csv(tmp_path, "n,f,cat,label\n" + _rows(100))
    a, b = load_csv(p, "label"), load_csv(p, "label")
    np.testing.assert_array_equal(a.X_test, b.X_test)
    assert np.bincount(a.y_test).tolist() == [10, 10]
    assert set(a.X_train[:, 0]).isdisjoint(a.X_test[:, 0])


def test_numeric_target_sorted_numerically(tmp_path):
    p = _csv(tmp_path, "x,y\n" + "".join(f"{i},{[2, 10, 1][i % 3]}\n" for i in range(30)))
    ds = load_csv(p, "y")
    assert ds.meta["classes"] == ["1", "2", "10"] and ds.num_classes == 3


def test_categories_learned_from_train_only(tmp_path):
    # one row with a rare category: wherever it lands, test-only categories encode as zeros
    body = "".join(f"{i},{'c' if i else 'RARE'},{i % 2}\n" for i in range(40))
    ds = load_csv(_csv(tmp_path, "x,cat,y\n" + body), "y")
    in_train = "cat=RARE" in ds.feature_names
    assert (ds.meta["unseen_categories"] == {}) == in_train
    if not in_train:
        assert ds.meta["unseen_categories"] == {"cat": 1}
        assert (ds.X_test[:, 1:].sum(1) == 0).sum() == 1


@pytest.mark.parametrize("delim", [";", "\t"])
def test_other_delimiters_bom_quotes_blank_lines(tmp_path, delim):
    lines = ["a", "b", "y"]
    text = "\ufeff" + delim.join(lines) + "\n\n"
    text += "".join(delim.join([str(i), f'"q{i % 2}"', str(i % 2)]) + "\n" for i in range(20))
    ds = load_csv(_csv(tmp_path, text), "y")
    assert ds.feature_names == ["a", "b=q0", "b=q1"]


def test_limit_reads_first_rows(tmp_path):
    p = _csv(tmp_path, "x,y\n" + "".join(f"{i},{i % 2}\n" for i in range(20)) + "oops,1\n")
    ds = load_dataset(f"csv:{p}", target="y", limit=20)  # the bad row 21 is never read
    assert len(ds.X_train) + len(ds.X_test) == 20


def test_relative_path_under_data_dir(tmp_path):
    _csv(tmp_path, "x,y\n" + "".join(f"{i},{i % 2}\n" for i in range(10)), name="rel.csv")
    ds = load_dataset("csv:rel.csv", data_dir=tmp_path, target="y")
    assert ds.meta["source"] == str(tmp_path / "rel.csv")


def test_rare_class_falls_back_to_plain_split(tmp_path):
    p = _csv(tmp_path, "x,y\n" + "".join(f"{i},{'a' if i else 'b'}\n" for i in range(20)))
    ds = load_csv(p, "y")
    assert ds.meta["test_split"].startswith("random 80/20, seed 0 (not stratified")
    assert len(ds.X_test) == 4


def test_stratified_test_split_helper():
    y = np.array([0] * 50 + [1] * 30 + [2] * 20)
    tr, te, how = stratified_test_split(y)
    assert len(te) == 20 and np.bincount(y[te]).tolist() == [10, 6, 4]
    assert np.intersect1d(tr, te).size == 0 and how == "stratified 80/20, seed 0"
    with pytest.raises(DataError, match="at least 2 rows"):
        stratified_test_split(np.array([0]))


# ------------------------------------------------------------------ generic CSV: errors

def test_file_missing_or_folder(tmp_path):
    with pytest.raises(DataError, match=r"CSV file not found: .*nope\.csv"):
        load_dataset(f"csv:{tmp_path / 'nope.csv'}", target="y")
    with pytest.raises(DataError, match="expected a CSV file, got a folder"):
        load_dataset(f"csv:{tmp_path}", target="y")


@pytest.mark.parametrize("text", ["", "   \n\n"])
def test_empty_file(tmp_path, text):
    p = _csv(tmp_path, text)
    with pytest.raises(DataError, match=rf"{p} is empty: expected a header row"):
        load_csv(p, "y")


def test_header_only(tmp_path):
    with pytest.raises(DataError, match="has a header but no data rows"):
        load_csv(_csv(tmp_path, "x,y\n"), "y")


def test_missing_target_column_lists_columns(tmp_path):
    p = _csv(tmp_path, "age,bmi,outcome\n1,2,0\n")
    with pytest.raises(DataError, match=r"no target column 'label'; available columns: age, bmi, "
                                        r"outcome"):
        load_dataset(f"csv:{p}", target="label")


def test_target_not_given_is_config_error(tmp_path):
    p = _csv(tmp_path, "age,outcome\n1,0\n")
    with pytest.raises(ConfigError, match=r"needs a target column .* columns: age, outcome"):
        load_dataset(f"csv:{p}")


def test_empty_csv_spec():
    with pytest.raises(ConfigError, match="needs a file path after 'csv:'"):
        load_dataset("csv:", target="y")


def test_only_target_column(tmp_path):
    with pytest.raises(DataError, match="expected at least one feature column"):
        load_csv(_csv(tmp_path, "y\n0\n1\n"), "y")


def test_missing_feature_values_reported_per_column(tmp_path):
    body = "".join(f"{'' if i < 3 else i},{'NA' if i % 10 == 0 else 'u'},{'?' if i == 5 else i},"
                   f"{i % 2}\n" for i in range(20))
    with pytest.raises(DataError) as e:
        load_csv(_csv(tmp_path, "a,b,c,y\n" + body), "y")
    msg = str(e.value)
    assert "missing values in feature column(s) a (3), b (2), c (1)" in msg
    assert "expected every feature cell filled" in msg


def test_missing_target_values(tmp_path):
    with pytest.raises(DataError, match=r"target column 'y' has 2 missing value\(s\)"):
        load_csv(_csv(tmp_path, "x,y\n1,a\n2,\n3,nan\n4,b\n"), "y")


def test_numeric_column_with_garbage_names_column_line_value(tmp_path):
    body = "".join(f"{'12a' if i == 6 else i},{i % 2}\n" for i in range(20))
    with pytest.raises(DataError, match=r"t\.csv:8: column 'age' is numeric but has non-numeric "
                                        r"value '12a' \(1 such row\(s\)\)"):
        load_csv(_csv(tmp_path, "age,y\n" + body), "y")


def test_mostly_text_column_is_categorical(tmp_path):
    body = "".join(f"{'7' if i == 0 else 'red' if i % 2 else 'blue'},{i % 2}\n" for i in range(20))
    ds = load_csv(_csv(tmp_path, "color,y\n" + body), "y")
    assert ds.meta["column_kinds"] == {"color": "categorical"}


def test_non_finite_numbers(tmp_path):
    body = "".join(f"{'inf' if i == 2 else i},{i % 2}\n" for i in range(10))
    with pytest.raises(DataError, match=r":4: column 'x' has non-finite value 'inf'"):
        load_csv(_csv(tmp_path, "x,y\n" + body), "y")


def test_single_class_target(tmp_path):
    with pytest.raises(DataError, match=r"target column 'y' has a single class 'pos'; expected "
                                        r"at least 2"):
        load_csv(_csv(tmp_path, "x,y\n1,pos\n2,pos\n"), "y")


def test_ragged_row(tmp_path):
    with pytest.raises(DataError, match=r"t\.csv:3: expected 3 fields \(as in the header\), got 2"):
        load_csv(_csv(tmp_path, "a,b,y\n1,2,0\n1,0\n"), "y")


def test_bad_headers(tmp_path):
    with pytest.raises(DataError, match="duplicate column names in header: a"):
        load_csv(_csv(tmp_path, "a,a,y\n1,2,0\n"), "y")
    with pytest.raises(DataError, match="empty column name at position 2"):
        load_csv(_csv(tmp_path, "a,,y\n1,2,0\n"), "y")


def test_not_utf8(tmp_path):
    p = tmp_path / "t.csv"
    p.write_bytes(b"a,y\n\xff\xfe,1\n")
    with pytest.raises(DataError, match="expected UTF-8 text"):
        read_table(p)


def test_featurizer_rejected_for_csv(tmp_path):
    p = _csv(tmp_path, "x,y\n1,0\n2,1\n")
    with pytest.raises(ConfigError, match="featurizer applies to text datasets"):
        load_dataset(f"csv:{p}", target="y", featurizer="hashed")


# ------------------------------------------------------------------ Pima (offline)

def _fake_pima_csv(folder: Path, n=50) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    lines = [",".join(T.PIMA_COLUMNS)]
    for i in range(n):
        vals = [str(int(v)) for v in rng.integers(0, 100, 8)]
        vals[1] = "0" if i < 3 else vals[1]
        lines.append(",".join(vals + ["pos" if i % 3 == 0 else "neg"]))
    p = folder / "pima.csv"
    p.write_text("\n".join(lines) + "\n")
    return p


def test_pima_from_folder(tmp_path):
    _fake_pima_csv(tmp_path / "d")
    ds = load_dataset("pima", data_dir=tmp_path / "d")
    assert ds.name == "pima" and ds.in_features == 8 and ds.meta["classes"] == ["neg", "pos"]
    assert ds.meta["missing_values"]["glucose"] >= 3
    assert len(ds.X_train) == 40 and len(ds.X_test) == 10
    # parent folder with a pima/ subfolder, and target="diabetes" is accepted
    _fake_pima_csv(tmp_path / "root" / "pima")
    assert load_dataset("pima", data_dir=tmp_path / "root", target="diabetes").in_features == 8


def test_pima_folder_errors(tmp_path):
    with pytest.raises(DataError, match="Pima folder does not exist"):
        load_dataset("pima", data_dir=tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="holds neither pima.csv nor PimaIndiansDiabetes.rda"):
        load_dataset("pima", data_dir=tmp_path / "empty")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "pima.csv").write_text("a,b,diabetes\n1,2,pos\n3,4,neg\n5,6,pos\n7,8,neg\n9,1,pos\n")
    with pytest.raises(DataError, match="expected Pima columns"):
        load_dataset("pima", data_dir=bad)
    with pytest.raises(ConfigError, match="target= applies to csv:PATH datasets only"):
        load_dataset("pima", data_dir=bad, target="outcome")


def test_pima_bad_rda(tmp_path):
    (tmp_path / "PimaIndiansDiabetes.rda").write_bytes(b"not an R file")
    with pytest.raises(DataError, match="cannot read R data file"):
        load_dataset("pima", data_dir=tmp_path)


def test_pima_no_fetch_and_no_tools(monkeypatch):
    with pytest.raises(DataError, match=r"Pima is not in the cache .* fetch=False"):
        load_dataset("pima", fetch=False)
    monkeypatch.setattr(T.shutil, "which", lambda name: None)
    with pytest.raises(DataError, match="expected `apt-get` and `dpkg-deb`"):
        load_dataset("pima")


# ------------------------------------------------------------------ Pima (real, Debian archive)

@pytest.mark.skipif(shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None,
                    reason="needs apt-get and dpkg-deb (Debian/Ubuntu)")
def test_real_pima(tmp_path):
    folder = T.fetch_pima(force=True)  # apt-get download + dpkg-deb + rdata + sha256 check
    assert folder == tmp_path / "cache" / "pima"
    ds = load_dataset("pima", fetch=False)
    assert len(ds.X_train) + len(ds.X_test) == 768 and ds.in_features == 8
    assert (len(ds.X_train), len(ds.X_test)) == (614, 154)
    y = np.concatenate([ds.y_train, ds.y_test])
    assert np.bincount(y).tolist() == [500, 268]  # neg, pos
    assert np.bincount(ds.y_test).tolist() == [100, 54]
    assert ds.feature_names == T.PIMA_COLUMNS[:-1]
    assert ds.meta["missing_values"] == {"glucose": 5, "pressure": 35, "triceps": 227,
                                         "insulin": 374, "mass": 11}
    # the .rda kept in the cache loads through the user-folder route to the same arrays
    user = tmp_path / "user"
    user.mkdir()
    shutil.copy(folder / "PimaIndiansDiabetes.rda", user)
    ds2 = load_dataset("pima", data_dir=user)
    np.testing.assert_array_equal(ds.X_train, ds2.X_train)
    np.testing.assert_array_equal(ds.y_test, ds2.y_test)


def test_quoted_field_with_newline_and_line_numbers(tmp_path):
    text = 'x,note,y\n1,"two\nlines",a\n2,"\u2028odd sep",b\n' + "".join(
        f"{i},n,{'ab'[i % 2]}\n" for i in range(3, 12))
    ds = load_csv(_csv(tmp_path, text), "y")
    assert len(ds.y_train) + len(ds.y_test) == 11
    with pytest.raises(DataError, match=r"t\.csv:5: expected 3 fields"):
        load_csv(_csv(tmp_path, 'x,note,y\n1,"two\nlines",a\n2,ok,b\n3,bad\n'), "y")


def test_csv_audit_cases(tmp_path):
    """Values beyond float32's range are refused (they became inf/NaN features); numeric labels
    are classes by value ("1" and "1.0" one class, numeric order); a whitespace-only first line
    does not break the delimiter."""
    from chainzrule.data import load_dataset
    from chainzrule.errors import DataError

    big = tmp_path / "big.csv"
    big.write_text("a,y\n" + "".join(f"{'1e39' if i == 7 else i},{i % 2}\n" for i in range(40)))
    with pytest.raises(DataError, match=r"big.csv:9: column 'a' has value '1e39' beyond float32's range"):
        load_dataset(f"csv:{big}", target="y")
    labels = tmp_path / "labels.csv"
    labels.write_text("a,y\n" + "".join(f"{i},{['1', '1.0', '2', '10'][i % 4]}\n" for i in range(40)))
    ds = load_dataset(f"csv:{labels}", target="y")
    assert ds.num_classes == 3 and ds.meta["classes"] == ["1", "2", "10"]
    ws = tmp_path / "ws.csv"
    ws.write_text("  \na;y\n" + "".join(f"{i};{i % 2}\n" for i in range(20)))
    assert load_dataset(f"csv:{ws}", target="y").num_classes == 2


def test_a_damaged_cached_file_is_refused(tmp_path, monkeypatch):
    """A cached pima.csv (or MNIST file) that no longer has its pinned sha256 is refused with the
    fix, never loaded (a truncated pima.csv silently changed the fixed 614/154 split)."""
    from chainzrule.data import load_dataset
    from chainzrule.errors import DataError

    monkeypatch.setenv("CHAINZRULE_CACHE", str(tmp_path))
    (tmp_path / "pima").mkdir()
    (tmp_path / "pima" / "pima.csv").write_text("pregnant,diabetes\n1,neg\n2,pos\n")
    with pytest.raises(DataError, match=r"cached pima file .* is damaged .*chainzrule data fetch pima --force"):
        load_dataset("pima")
    mnist = tmp_path / "mnist"
    mnist.mkdir()
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                 "t10k-labels-idx1-ubyte"):
        (mnist / name).write_bytes(b"\x00" * 16)
    with pytest.raises(DataError, match="cached mnist file .* is damaged"):
        load_dataset("mnist")


def test_idx_header_overflow_and_float_labels_are_refused(tmp_path):
    import numpy as np

    from chainzrule.data.mnist import load_mnist, read_idx, write_idx
    from chainzrule.errors import DataError

    huge = tmp_path / "huge-idx3-ubyte"
    huge.write_bytes(bytes([0, 0, 8, 3]) + (1 << 22).to_bytes(4, "big") * 3 + bytes(10))
    with pytest.raises(DataError, match="truncated IDX file"):
        read_idx(huge)
    d = tmp_path / "m"
    d.mkdir()
    for split, n in (("train", 10), ("t10k", 5)):
        write_idx(d / f"{split}-images-idx3-ubyte", np.zeros((n, 28, 28), dtype=np.uint8))
        write_idx(d / f"{split}-labels-idx1-ubyte", (np.arange(n) % 10 + 0.7).astype(np.float32))
    with pytest.raises(DataError, match="expected integer labels"):
        load_mnist(d)


def test_cv_fold_zeroes_categories_its_training_rows_lack(tmp_path):
    # 'RARE' is in 2 of 40 rows; a fold whose training rows lack it encodes its test rows with no category
    from chainzrule.train.data import cv_dataset
    body = "".join(f"{i},{'RARE' if i in (1, 2) else 'ab'[i % 2]},{i % 2}\n" for i in range(40))
    ds = load_csv(_csv(tmp_path, "x,cat,y\n" + body), "y")
    assert ds.meta["onehot_columns"] == {"cat": [1, 2, 3]} and ds.feature_names[1:] == ["cat=RARE", "cat=a", "cat=b"]
    pooled = np.concatenate([ds.X_train, ds.X_test])
    row_of = {float(x): r for r, x in enumerate(pooled[:, 0])}  # x is the row number: unique
    zeroed = 0
    for repeat in range(5):
        for fold in range(5):
            cv = cv_dataset(ds, 5, fold, repeat)
            lacking = ~cv.X_train[:, 1:].any(0)  # categories no training row of this fold has
            for x in cv.X_test:
                want = pooled[row_of[float(x[0])]].copy()
                want[1:][lacking] = 0
                np.testing.assert_array_equal(x, want)  # the numeric column and every other category kept
            no_cat = int((cv.X_test[:, 1:].sum(1) == 0).sum())
            assert cv.meta["unseen_categories"] == ({"cat": no_cat} if no_cat else {})
            zeroed += no_cat
    assert zeroed > 0, "no fold put both RARE rows in test: the test checks nothing"
    # a numeric-only table (Pima) has no one-hot columns: its folds are the pooled rows as they are
    plain = load_csv(_csv(tmp_path, "x,z,y\n" + "".join(f"{i},{i * i},{i % 2}\n" for i in range(40))), "y")
    assert plain.meta["onehot_columns"] == {}
    from chainzrule.train.data import cv_fold_indices
    X, y = np.concatenate([plain.X_train, plain.X_test]), np.concatenate([plain.y_train, plain.y_test])
    tr, te = cv_fold_indices(y, 5, 0, 0)
    cv = cv_dataset(plain, 5, 0, 0)
    assert np.array_equal(cv.X_train, X[tr]) and np.array_equal(cv.X_test, X[te])


def test_validation_and_test_rows_zero_the_categories_the_carved_training_rows_lack(tmp_path):
    # 'RARE' is in 3 of 60 rows: over seeds, some carves leave it only in validation (or test) rows,
    # where the run's training never moved its weight, so it is zeroed there (before standardizing)
    from chainzrule.data.splits import make_splits
    body = "".join(f"{i},{'RARE' if i in (5, 6, 7) else 'ab'[i % 2]},{i % 2}\n" for i in range(60))
    ds = load_csv(_csv(tmp_path, "x,cat,y\n" + body), "y")
    assert ds.meta["onehot_columns"] == {"cat": [1, 2, 3]}
    rows = {float(x[0]): x for x in np.concatenate([ds.X_train, ds.X_test])}  # x is the row number
    seen_val_zeroed = 0
    for seed in range(40):
        s = make_splits(ds, val_fraction=0.2, seed=seed, standardization="none")
        X_tr, X_va, X_te = s.X_train.numpy(), s.X_val.numpy(), s.X_test.numpy()
        lacking = ~X_tr[:, 1:].any(0)  # categories no row that trains has
        for X, key in ((X_va, "unseen_categories_val"), (X_te, "unseen_categories")):
            for x in X:
                want = rows[float(x[0])].copy()
                want[1:][lacking] = 0
                np.testing.assert_array_equal(x, want)  # the numeric column and every other category kept
            n = int((X[:, 1:].sum(1) == 0).sum())
            assert s.meta[key] == ({"cat": n} if n else {})
        seen_val_zeroed += s.meta["unseen_categories_val"].get("cat", 0)
        assert ds.X_test[:, 1:].sum() == len(ds.X_test)  # the dataset's own arrays are untouched
    assert seen_val_zeroed > 0, "no carve put RARE only outside training: the test checks nothing"
    # standardized: a zeroed row reads as 'not this category' ((0 - mean) / std), like a row of another one
    s = make_splits(ds, val_fraction=0.2, seed=0)
    assert s.meta["standardize"] and "unseen_categories_val" in s.meta


def test_data_audit_cases(tmp_path):
    """A row of empty cells is refused, not dropped (as a row of NA is); the delimiter is sniffed
    outside quoted header names; Python's digit separators are no CSV number; a CV fold's
    test_split says it is one."""
    from chainzrule.train.data import cv_dataset

    rows = "".join(f"{i},{2 * i},{i % 2}\n" for i in range(20))
    with pytest.raises(DataError, match=r"t\.csv:3: every cell of this row is empty: expected values"):
        load_csv(_csv(tmp_path, "a,b,y\n1,2,0\n,,\n" + rows), "y")
    with pytest.raises(DataError, match=r"t\.csv:3: every cell of this row is empty"):
        load_csv(_csv(tmp_path, 'a,b,y\n1,2,0\n"",""\n' + rows), "y")
    assert read_table(_csv(tmp_path, "a;b\n1;2\n   \n3;4\n"))[1] == [["1", "2"], ["3", "4"]]  # blank lines skipped
    ds = load_csv(_csv(tmp_path, '"dose;mg;per;kg",age,y\n' + rows), "y")
    assert ds.feature_names == ["dose;mg;per;kg", "age"]
    with pytest.raises(DataError, match=r"column 'a' is numeric but has non-numeric value '1_0'"):
        load_csv(_csv(tmp_path, "a,y\n" + "".join(f"{v},{i % 2}\n" for i, v in enumerate(["1_0", "10", "3"] * 10))), "y")
    ds = load_csv(_csv(tmp_path, "a,y\n" + "".join(f"{i},{v}\n" for i, v in enumerate(["1_0", "10", "3"] * 10))), "y")
    assert ds.num_classes == 3 and "1_0" in ds.meta["classes"]  # a label, not the number 10
    cv = cv_dataset(load_csv(_csv(tmp_path, "a,b,y\n" + rows), "y"), 5, 2, 3)
    assert cv.meta["test_split"] == "fold 2 of repeat 3 of stratified 5-fold CV over all rows"


@pytest.mark.parametrize("cell, kind", [(lambda i: f"{20 + i * 0.7:.1f}", "numbers"), (lambda i: f"id{i}", "values")])
def test_a_target_with_most_rows_a_class_of_their_own_is_refused(tmp_path, cell, kind):
    """A measurement (age) or an id as --target was trained as one class per value (155 classes in
    200 rows: 0% test accuracy, no word); more classes than half the rows are refused."""
    rows = "".join(f"{i % 7},{cell(i)}\n" for i in range(40))
    p = tmp_path / "t.csv"
    p.write_text("x,y\n" + rows)
    with pytest.raises(DataError, match=f"target column 'y' has 40 distinct {kind} in 40 rows; expected class labels"):
        load_csv(p, target="y")
    p.write_text("x,y\n" + "".join(f"{i},{i % 20}\n" for i in range(40)))  # 20 classes of 2 rows: kept
    assert load_csv(p, target="y").num_classes == 20
