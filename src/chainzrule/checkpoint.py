"""Checkpoints: weights in ``safetensors``, everything else in JSON. Never pickle.

A checkpoint is a folder with ``model.safetensors`` (the state dict) and ``model.json`` (the
:class:`~chainzrule.config.TrainConfig` and the data shape needed to rebuild the network).
Both files are written atomically (temporary file, then rename), so an interrupted save never
leaves a half-written checkpoint.

``model.json`` (format 2) also carries what is needed to feed the model as in training:
``data`` — the dataset with absolute paths (``csv:/abs/file.csv``, ``data_dir``), so that the
checkpoint evaluates from any working directory — and ``standardization`` — the per-feature
``mean``/``std`` fitted on the training rows (``null`` when the features were not
standardised). :func:`checkpoint_splits` applies those statistics rather than refitting them on
whatever data it is given. Format-1 checkpoints (without them) still load. A run that
``chainzrule train`` wrote also records ``feature_names`` (the model's inputs in order; a CSV's
categorical columns one-hot, ``column=value``; null when the data has none) and ``classes`` (the
label each output indexes), which an export (:func:`chainzrule.export.export_run`) needs.

>>> import tempfile, torch
>>> from chainzrule.config import TrainConfig
>>> from chainzrule.train import build_model
>>> cfg = TrainConfig(dataset="synthetic", hidden=(8,))
>>> net = build_model(cfg, 10, 3, "classification")
>>> d = tempfile.mkdtemp()
>>> _ = save_checkpoint(d, net, cfg, in_features=10, num_classes=3, task="classification")
>>> net2, cfg2, info = load_checkpoint(d)
>>> x = torch.randn(2, 10)
>>> torch.equal(net(x), net2(x)) and cfg2 == cfg
True
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path

from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
import torch
from torch import nn

from .config import TrainConfig
from .data.cache import atomic_write, atomic_write_text
from .data.base import TASKS
from .errors import ConfigError, DataError, check_int, is_int
from .sizing import check_fits
from .train.factory import build_model, make_run_regularizer

FORMAT_VERSION = 2  # 2: chainzrule 0.2 (coefficients in a basis, ``poly_basis``, data reference, standardization)
WEIGHTS, META = "model.safetensors", "model.json"


def _atomic(path: Path, write) -> None:
    atomic_write(path, write)  # the one writer: temp file, fsync, rename; mode 0644 under the umask


def json_safe(obj):
    """``obj`` with every non-finite float (NaN, ±inf: a diverged run) replaced by ``None``.

    >>> json_safe({"loss": float("nan"), "trace": [1.0, float("inf")], "n": 3})
    {'loss': None, 'trace': [1.0, None], 'n': 3}
    """
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if hasattr(obj, "item") and getattr(obj, "ndim", None) == 0:  # numpy / torch scalars
        return json_safe(obj.item())
    return obj


def write_json(path: str | Path, obj) -> Path:
    """Write ``obj`` as pretty, strict JSON (non-finite floats become ``null``), atomically."""
    text = json.dumps(json_safe(obj), indent=2, sort_keys=False, allow_nan=False, default=_json_default)
    return atomic_write_text(path, text + "\n")


def _json_default(o):
    if hasattr(o, "item"):
        return o.item()
    if isinstance(o, (set, tuple)):
        return list(o)
    raise TypeError(f"not JSON-serialisable: {type(o).__name__}")


def data_reference(cfg: TrainConfig) -> dict:
    """``cfg``'s data with absolute paths, resolved as :func:`~chainzrule.data.load_dataset` does.

    >>> data_reference(TrainConfig(dataset="csv:t.csv", target="y"))["dataset"] == "csv:" + os.path.abspath("t.csv")
    True
    """
    from .data import csv_reference

    data_dir = Path(cfg.data_dir).expanduser().absolute() if cfg.data_dir else None
    dataset = csv_reference(cfg.dataset, data_dir) if cfg.dataset[:4].lower() == "csv:" else cfg.dataset
    return {"dataset": dataset, "data_dir": str(data_dir) if data_dir else None, "target": cfg.target}


def save_checkpoint(folder: str | Path, model: nn.Module, cfg: TrainConfig, *, in_features: int,
                    num_classes: int, task: str, standardization: tuple | None = None,
                    extra: dict | None = None) -> Path:
    """Save ``model`` and how to rebuild and feed it into ``folder``; returns the folder.

    ``standardization`` is the ``(mean, std)`` the training features were standardised with
    (``Splits.meta["feature_mean"]``/``["feature_std"]``), or None if they were not.

    A checkpoint is rebuilt from ``cfg``, not from ``model``, so before anything is written the
    network ``cfg`` describes is built, given ``model``'s weights and run beside it on two inputs:
    a model that ``cfg`` does not describe (another basis, working interval or width, weights that
    do not fit) is refused with a ConfigError instead of being saved as one that loads different
    or not at all. So are sizes that are no integers >= 1 and a task outside ``TASKS``.
    """
    in_features, num_classes = check_int("in_features", in_features), check_int("num_classes", num_classes)
    if task not in TASKS:
        raise ConfigError(f"expected task to be one of {TASKS}, got {task!r}")
    state = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
    _check_describes(model, state, cfg, (in_features, num_classes, task))
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    _atomic(folder / WEIGHTS, lambda tmp: save_file(state, tmp, metadata={"format": "pt"}))
    stats = None
    if standardization is not None:
        mean, std = standardization
        stats = {"mean": [float(v) for v in mean], "std": [float(v) for v in std]}
    meta = {"format_version": FORMAT_VERSION, "config": cfg.to_dict(), "in_features": in_features,
            "num_classes": num_classes, "task": task, "data": data_reference(cfg), "standardization": stats,
            **(extra or {})}
    write_json(folder / META, meta)
    return folder


def _rebuild(cfg: TrainConfig, shape: tuple[int, int, str]) -> nn.Module:
    """The network ``cfg`` describes for ``(in_features, num_classes, task)``, in the run's dtype."""
    model = build_model(cfg, *shape)
    if cfg.reg == "sn":
        model = make_run_regularizer(cfg).prepare(model)  # the run's spectral norm, with its gain
    return model.to(dtype=getattr(torch, cfg.dtype))  # the run's dtype: its weights load unrounded


def _check_describes(model: nn.Module, state: dict, cfg: TrainConfig, shape: tuple[int, int, str]) -> None:
    """ConfigError unless ``cfg``'s network, given ``state``, computes what ``model`` computes."""
    check_fits(cfg, *shape)
    rebuilt = _rebuild(cfg, shape)
    try:
        rebuilt.load_state_dict(state)
    except RuntimeError as e:
        raise ConfigError(f"the model does not match the network its config describes (the checkpoint would not "
                          f"load): {_state_error(e)}") from None
    first = next(model.parameters(), None)
    device, dtype = (first.device, first.dtype) if first is not None else (torch.device("cpu"), _dtype_of(rebuilt))
    x = torch.randn(2, shape[0], generator=torch.Generator().manual_seed(0), dtype=torch.float64)  # [2, in]
    was_training = model.training
    model.eval()
    rebuilt.eval()
    try:
        with torch.no_grad():
            got, want = model(x.to(device=device, dtype=dtype)), rebuilt(x.to(dtype=_dtype_of(rebuilt)))
    finally:
        model.train(was_training)
    got, want = got.detach().double().cpu(), want.detach().double().cpu()
    if got.shape != want.shape or not torch.allclose(got, want, rtol=1e-4, atol=1e-5, equal_nan=True):
        diff = (got - want).abs().max().item() if got.shape == want.shape else f"shape {tuple(got.shape)}"
        raise ConfigError(f"the model does not match the network its config describes: the config's network with "
                          f"these weights computes other outputs (largest difference {diff}, expected 0; e.g. "
                          f"another poly_basis, bound, range_control or activation): save it with its own config")


def _state_error(e: RuntimeError) -> str:
    """The first specific line of torch's load_state_dict error (its first line only names the class).

    >>> _state_error(RuntimeError("Error(s) in loading state_dict for MLP:\\n\\tsize mismatch for w: 8 vs 16."))
    'size mismatch for w: 8 vs 16.'
    """
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    return lines[1] if len(lines) > 1 and lines[0].startswith("Error(s) in loading state_dict") else lines[0]


def _dtype_of(model: nn.Module) -> torch.dtype:
    """The dtype of ``model``'s first parameter (float32 for a model without any)."""
    return next((p.dtype for p in model.parameters()), torch.float32)


def _upgrade_config(meta: dict) -> dict:
    """The config of a checkpoint in today's terms.

    Format 1 (chainzrule 0.1) stored polynomial coefficients of powers of u; 0.2 builds the same
    network, exactly, with ``poly_basis = "power"`` (the coefficients load unchanged). Newer
    formats than this code knows are refused, and so is a ``format_version`` that is no integer
    >= 1 (a missing one is format 1, which did not always write it).

    >>> _upgrade_config({"format_version": "2", "config": {}})
    Traceback (most recent call last):
    ...
    chainzrule.errors.DataError: expected an integer format_version, got '2'
    """
    if not isinstance(meta, dict):
        raise DataError(f"expected a JSON object of checkpoint metadata, got a JSON {_json_kind(meta)}")
    version = meta.get("format_version", 1)
    if not is_int(version):
        raise DataError(f"expected an integer format_version, got {version!r}")
    if version < 1:
        raise DataError(f"expected format_version >= 1, got {version}")
    if version > FORMAT_VERSION:
        raise DataError(f"checkpoint format {version!r} is newer than this chainzrule reads "
                        f"(expected <= {FORMAT_VERSION}): upgrade chainzrule")
    config = dict(meta["config"])
    if version == 1 and "poly_basis" not in config:
        config["poly_basis"] = "power"
    return config


def _json_kind(value) -> str:
    """The JSON name of a decoded value's type: ``array`` for a list, ``string`` for a str, ..."""
    kinds = ((bool, "boolean"), (list, "array"), (str, "string"), ((int, float), "number"), (type(None), "null"))
    return next((name for t, name in kinds if isinstance(value, t)), type(value).__name__)


def require_finite(model: nn.Module, where: str | Path) -> None:
    """DataError if any weight of ``model`` is NaN or infinite (a diverged run's checkpoint)."""
    bad = [name for name, p in model.named_parameters() if not bool(p.isfinite().all())]
    if bad:
        raise DataError(f"{where}: the weights hold NaN/inf (the training run diverged) in {', '.join(bad[:3])}"
                        f"{', ...' if len(bad) > 3 else ''}: refusing to report metrics of a broken model")


def load_checkpoint(folder: str | Path) -> tuple[nn.Module, TrainConfig, dict]:
    """Rebuild the model saved in ``folder``: ``(model in eval mode, config, metadata)``."""
    given = Path(folder)
    folder = given.parent if given.is_file() and given.name in (WEIGHTS, META) else given
    if not folder.is_dir():
        raise DataError(f"{given} is not a chainzrule checkpoint: expected a run folder (or its {META} or "
                        f"{WEIGHTS}), got {'a file' if given.exists() else 'no such path'}")
    missing = [n for n in (WEIGHTS, META) if not (folder / n).is_file()]
    if missing:
        raise DataError(f"{folder} is not a chainzrule checkpoint: expected {WEIGHTS} and {META}, missing {', '.join(missing)}")
    try:
        meta = json.loads((folder / META).read_text())
        cfg = TrainConfig.from_dict(_upgrade_config(meta))
        shape = check_int("in_features", meta["in_features"]), check_int("num_classes", meta["num_classes"]), meta["task"]
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError) as e:
        raise DataError(f"{folder / META}: unreadable checkpoint metadata ({e})") from None
    check_fits(cfg, *shape)  # a model.json asking for 10^14 parameters is refused, not allocated
    model = _rebuild(cfg, shape)
    try:
        state = load_file(str(folder / WEIGHTS))
    except (SafetensorError, OSError) as e:
        raise DataError(f"{folder / WEIGHTS}: unreadable weights ({e})") from None
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise DataError(f"{folder / WEIGHTS}: weights do not match the model in {META}: {_state_error(e)}") from None
    model.eval()
    return model, cfg, meta


def checkpoint_data(cfg: TrainConfig, meta: dict, dataset: str | None = None, data_dir: str | None = None,
                    target: str | None = None) -> TrainConfig:
    """``cfg`` pointed at the data to evaluate on: the checkpoint's own (absolute paths, so any
    working directory works) unless ``dataset`` names another one; ``data_dir``/``target``
    override either."""
    ref = dict(meta.get("data") or {})
    if dataset is not None:
        ref = {"dataset": dataset, "data_dir": None, "target": None}
    ref.update({k: v for k, v in (("data_dir", data_dir), ("target", target)) if v is not None})
    return cfg.replace(**ref) if ref else cfg


def check_same_names(where: str, what: str, got, expected) -> None:
    """ConfigError if the names ``got`` (``where``'s features or classes) differ from the
    checkpoint's ``expected`` ones, order included; nothing to compare when either is None (data
    without names, or a checkpoint that predates them).

    >>> check_same_names("dataset csv:b.csv", "features", ["bmi", "age"], ["age", "bmi"])
    Traceback (most recent call last):
    chainzrule.errors.ConfigError: dataset csv:b.csv has the features bmi, age, the model expects age, bmi (the same names in the same order)
    """
    if got is None or expected is None:
        return
    got, expected = [str(v) for v in got], [str(v) for v in expected]
    if got != expected:
        show = lambda names: ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")  # noqa: E731
        raise ConfigError(f"{where} has the {what} {show(got)}, the model expects {show(expected)} "
                          f"(the same names in the same order)")


def check_same_classes(where: str, got, expected) -> None:
    """ConfigError if ``where``'s class names ``got`` share a name with the checkpoint's
    ``expected`` ones but are not the same list: a shared label would be scored as another output,
    or a label the model never saw as one it did. Wholly different names (another spelling of the
    same levels, e.g. SST-5's and Yelp's five) are taken by position.

    >>> check_same_classes("dataset csv:b.csv", ["dog", "wolf"], ["cat", "dog"])
    Traceback (most recent call last):
    chainzrule.errors.ConfigError: dataset csv:b.csv has the classes dog, wolf, the model expects cat, dog (the same names in the same order)
    >>> check_same_classes("dataset yelp-full", ["1 star", "2 stars"], ["negative", "positive"])  # by position
    """
    if got is not None and expected is not None and {str(v) for v in got} & {str(v) for v in expected}:
        check_same_names(where, "classes", got, expected)


def checkpoint_splits(cfg: TrainConfig, meta: dict, progress: bool = True):
    """The splits of ``cfg``'s data (same seed, cross-validation fold and validation carve as in
    training), standardised with the statistics saved in the checkpoint, never refitted on the
    data at hand. A format-1 checkpoint has none: they are refitted on the training rows, with a
    warning. A cross-validation run evaluated on its own data gets its fold's test rows (not the
    dataset's own split, which holds its training rows); on other data, that data's split. Data
    the model does not fit is refused (ConfigError) before any split is made: another feature or
    class count, other feature names (:func:`check_same_names`), or class names shared with the
    model's at other outputs (:func:`check_same_classes`)."""
    from .data import dataset_identity
    from .data.splits import make_splits
    from .train.data import cv_dataset, load_data

    if "standardization" not in meta:
        print("chainzrule: warning: this checkpoint predates saved standardization statistics; "
              "refitting them on the training rows of the given data", file=sys.stderr)
        how = "fit"
    elif meta["standardization"] is None:
        how = "none"
    else:
        try:
            how = (meta["standardization"]["mean"], meta["standardization"]["std"])
        except (KeyError, TypeError):
            raise DataError(f"checkpoint standardization must hold mean and std lists, got "
                            f"{meta['standardization']!r}") from None
    ds = load_data(cfg, progress)
    if ds.in_features != meta.get("in_features", ds.in_features):
        raise ConfigError(f"dataset {cfg.dataset} has {ds.in_features} features, the model expects {meta['in_features']}")
    check_same_names(f"dataset {cfg.dataset}", "features", ds.feature_names, meta.get("feature_names"))
    if ds.num_classes != meta.get("num_classes", ds.num_classes):
        raise ConfigError(f"dataset {cfg.dataset} has {ds.num_classes} classes, the model predicts {meta['num_classes']}")
    check_same_classes(f"dataset {cfg.dataset}", ds.meta.get("classes"), meta.get("classes"))
    saved = meta.get("data") or {}
    own = saved.get("dataset") is None or (dataset_identity(saved["dataset"], saved.get("data_dir"))
                                           == dataset_identity(cfg.dataset, cfg.data_dir))
    if cfg.cv_folds and own:
        ds = cv_dataset(ds, cfg.cv_folds, cfg.cv_fold, cfg.cv_repeat)
    return make_splits(ds, val_fraction=cfg.val_fraction, seed=cfg.seed, standardization=how)
