"""Checkpoints: weights in ``safetensors``, everything else in JSON. Never pickle.

A checkpoint is a folder with ``model.safetensors`` (the state dict) and ``model.json`` (the
:class:`~chainzrule.config.TrainConfig` and the data shape needed to rebuild the network).
Both files are written atomically (temporary file, then rename), so an interrupted save never
leaves a half-written checkpoint.

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
from pathlib import Path

from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from .config import TrainConfig
from .data.cache import atomic_write, atomic_write_text
from .errors import DataError
from .regularizers import make_regularizer
from .train import build_model

FORMAT_VERSION = 1
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


def save_checkpoint(folder: str | Path, model: nn.Module, cfg: TrainConfig, *, in_features: int,
                    num_classes: int, task: str, extra: dict | None = None) -> Path:
    """Save ``model`` and how to rebuild it into ``folder``; returns the folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
    _atomic(folder / WEIGHTS, lambda tmp: save_file(state, tmp, metadata={"format": "pt"}))
    meta = {"format_version": FORMAT_VERSION, "config": cfg.to_dict(), "in_features": in_features,
            "num_classes": num_classes, "task": task, **(extra or {})}
    write_json(folder / META, meta)
    return folder


def load_checkpoint(folder: str | Path) -> tuple[nn.Module, TrainConfig, dict]:
    """Rebuild the model saved in ``folder``: ``(model in eval mode, config, metadata)``."""
    folder = Path(folder)
    if folder.is_file():
        folder = folder.parent
    missing = [n for n in (WEIGHTS, META) if not (folder / n).is_file()]
    if missing:
        raise DataError(f"{folder} is not a chainzrule checkpoint: expected {WEIGHTS} and {META}, missing {', '.join(missing)}")
    try:
        meta = json.loads((folder / META).read_text())
        cfg = TrainConfig.from_dict(meta["config"])
        model = build_model(cfg, int(meta["in_features"]), int(meta["num_classes"]), meta["task"])
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise DataError(f"{folder / META}: unreadable checkpoint metadata ({e})") from None
    if cfg.reg == "sn":
        model = make_regularizer("sn").prepare(model)
    try:
        state = load_file(str(folder / WEIGHTS))
    except (SafetensorError, OSError) as e:
        raise DataError(f"{folder / WEIGHTS}: unreadable weights ({e})") from None
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise DataError(f"{folder / WEIGHTS}: weights do not match the model in {META}: {str(e).splitlines()[0]}") from None
    model.eval()
    return model, cfg, meta
