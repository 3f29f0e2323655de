"""The configuration of one training run, as plain data.

A :class:`TrainConfig` is a frozen dataclass of JSON-able values; :meth:`TrainConfig.hash`
keys a run by its full content (the Fair Fight stores runs under that key), and
:meth:`TrainConfig.from_dict` validates a dict (from TOML, JSON or the command line), refusing
unknown keys and bad values with a message that names the expected and the given.

>>> cfg = TrainConfig(dataset="pima", model="mlp", hidden=(32,), epochs=2)
>>> TrainConfig.from_dict(cfg.to_dict()) == cfg
True
>>> len(cfg.hash())
16
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
import tomllib
from dataclasses import dataclass, fields
from decimal import Decimal
from pathlib import Path
from typing import Any

from .activations import STANDARD_ACTIVATIONS
from .data.text import FEATURIZERS
from .dreg import SCHEDULES as DREG_SCHEDULES
from .errors import ConfigError
from .optim import LR_SCHEDULES, OPTIMIZERS
from .ordinal import ORDINAL_KINDS
from .poly import BASES, DEGREE_LIMIT, INITS, RANGE_CONTROLS
from .regularizers import REGULARIZERS

# Choices defined where the thing lives (imported above); these are the training loop's own.
MODELS = ("chainzrule", "mlp", "kan", "cnn", "chainzrule-cnn", "logreg", "svm", "xgboost")
NEURAL_MODELS = ("chainzrule", "mlp", "kan", "cnn", "chainzrule-cnn")
#: Models with learnable polynomials (DREG on by default) and models DREG applies to.
CHAINZRULE_MODELS = ("chainzrule", "chainzrule-cnn")
DREG_MODELS = ("chainzrule", "mlp", "cnn", "chainzrule-cnn")
DEVICES_PREFIX = ("cpu", "cuda", "mps")
DTYPES = ("float32", "float64", "bfloat16")
# Derived from the library's registries.
ACTIVATIONS = tuple(STANDARD_ACTIVATIONS)
REGS = tuple(name for name in REGULARIZERS if name != "dreg")  # DREG has its own fields (dreg, dreg_schedule)
HEADS = ("auto", "linear", *ORDINAL_KINDS)
#: what a KAN sees first: raw inputs, or a LayerNorm over the features (MNIST pixels in [0, 1]
#: are not on the splines' [-1, 1] grid; a per-example LayerNorm puts them there)
INPUT_NORMS = ("none", "layernorm")
#: Adversarial attacks a run with ``robustness`` measures at each ``adv_eps``: results columns
#: ``<attack>_<eps>`` (apgd: APGD-CE and APGD-DLR, worst case per example; chainzrule.apgd).
ATTACKS = ("fgsm", "pgd", "apgd")
#: A results column holding an attack's accuracy: group 1 the attack, group 2 its eps.
ADV_COLUMN = re.compile(r"^(fgsm|pgd|apgd)_([0-9.eE+-]+)$")
FEATURIZERS_PREFIX = FEATURIZERS
POLY_BASES = BASES  # chainzrule.functional
POLY_INITS = INITS  # the functions a polynomial can start as

#: config fields that act on some models only, and those models (a value given for another model
#: would be recorded in result.json and do nothing: the command line and fight specs refuse it)
ACTS_ON = {"activation": ("mlp", "cnn"), "conv_channels": ("cnn", "chainzrule-cnn"),
           **{f: CHAINZRULE_MODELS for f in ("degree", "poly_init", "bound", "range_control", "poly_basis",
                                             "coef_lr_scale")},
           **{f: DREG_MODELS for f in ("dreg", "dreg_schedule", "dreg_final", "dreg_warmup")},
           **{f: NEURAL_MODELS for f in ("hidden", "logit_scale")},
           "lr": NEURAL_MODELS + ("xgboost",),  # XGBoost's learning_rate; logreg and svm have none
           "kan_grid": ("kan",), "svm_gamma": ("svm",),
           **{f: ("xgboost",) for f in ("xgb_trees", "xgb_depth", "xgb_min_child_weight", "xgb_subsample",
                                         "xgb_early_stopping")}}
#: fields that act only with one ``reg`` of a neural model (the classical models read reg_strength as 1/C
#: or their L2 weight whatever --reg says)
ACTS_WITH_REG = {"jr_projections": ("jr",), "reg_strength": tuple(r for r in REGS if r not in ("none", "sn"))}


def inert_setting(cfg: "TrainConfig", given: set[str], name=lambda field: field, quote=repr,
                  schedule_given: set[str] | None = None) -> str | None:
    """Why a field set in ``given`` would be recorded and do nothing for ``cfg``, or None: a field
    that acts on other models only (:data:`ACTS_ON`; a λ of 0 is fine anywhere), one that acts
    with another regularizer only (:data:`ACTS_WITH_REG`), or an inert λ-schedule field among
    ``schedule_given`` (default ``given``; :func:`inert_dreg_schedule`). ``name`` spells a field and
    ``quote`` a value as the caller's user wrote them (flags and bare words on the command line;
    TOML keys and quoted strings in a spec).

    >>> inert_setting(TrainConfig(model="mlp"), {"degree"})
    "degree acts on model(s) chainzrule, chainzrule-cnn only, got model 'mlp': it would be recorded and do nothing"
    >>> inert_setting(TrainConfig(model="chainzrule"), {"degree", "jr_projections"}, lambda f: "--" + f.replace("_", "-"), str)
    '--jr-projections acts with --reg jr only, got --reg none: it would be recorded and do nothing'
    """
    for field, models in ACTS_ON.items():
        if field in given and cfg.model not in models and not (field == "dreg" and not cfg.dreg):
            return (f"{name(field)} acts on model(s) {', '.join(models)} only, got {name('model')} "
                    f"{quote(cfg.model)}: it would be recorded and do nothing")
    for field, regs in ACTS_WITH_REG.items():
        if field in given and cfg.model in NEURAL_MODELS and cfg.reg not in regs:
            return (f"{name(field)} acts with {name('reg')} {' or '.join(regs)} only, got {name('reg')} "
                    f"{quote(cfg.reg)}: it would be recorded and do nothing")
    return inert_dreg_schedule(cfg, given if schedule_given is None else schedule_given, name)


def inert_dreg_schedule(cfg: "TrainConfig", given: set[str], name=lambda field: field) -> str | None:
    """Why a λ-schedule field set in ``given`` would be recorded and do nothing for ``cfg``
    (``dreg_warmup`` with a constant λ, a ``warmup`` schedule of no length, ``dreg_final`` without
    an anneal), or None. ``name`` spells a field as the caller's user wrote it (a flag, a TOML key).

    >>> inert_dreg_schedule(TrainConfig(model="chainzrule", dreg_warmup=0.3), {"dreg_warmup"})
    'dreg_warmup warms λ up before a schedule: expected dreg_schedule warmup, linear or cosine, got constant (which ignores it)'
    >>> inert_dreg_schedule(TrainConfig(model="chainzrule", dreg_schedule="cosine", dreg_final=1e-4), {"dreg_final"}) is None
    True
    """
    if "dreg_warmup" in given and cfg.dreg_warmup > 0 and cfg.dreg_schedule == "constant":
        return (f"{name('dreg_warmup')} warms λ up before a schedule: expected {name('dreg_schedule')} warmup, "
                "linear or cosine, got constant (which ignores it)")
    if "dreg_schedule" in given and cfg.dreg_schedule == "warmup" and cfg.dreg_warmup == 0:
        return (f"{name('dreg_schedule')} warmup with {name('dreg_warmup')} 0 is a constant λ: expected "
                f"{name('dreg_warmup')} in (0, 1), got 0")
    if "dreg_final" in given and cfg.dreg_schedule not in ("linear", "cosine"):
        return (f"{name('dreg_final')} is where an annealed λ ends: expected {name('dreg_schedule')} linear or "
                f"cosine, got {cfg.dreg_schedule}")
    return None


#: λ used for ``--model chainzrule`` when ``dreg`` is not given (guide §2: the measured default).
DEFAULT_CHAINZRULE_DREG = 3e-3
#: λ used for ``--model chainzrule-cnn`` when ``dreg`` is not given. A conv layer's ‖S‖_F² sums
#: over every output position (channels × height × width), so the same λ weighs ~H·W times more
#: than on a dense layer: measured on full MNIST (conv 8,16, hidden 64, 2 epochs, one seed),
#: λ = 3e-3 collapses the network to a constant (11.35% test, ‖J‖ = 0); 3e-4 97.02%; 1e-4 97.48%;
#: 3e-5 97.94% with mean ‖J_f‖_F 11.3 against 98.22% and 14.0 without DREG; the CNN fight tuned
#: λ ≈ 1e-6–1e-5 for accuracy. The default scales with the images' size: retune it for others.
DEFAULT_CHAINZRULE_CNN_DREG = 3e-5


def default_dreg(model: str) -> float:
    """λ of a run that does not set ``dreg``: the measured default for the ChainzRule models, 0 otherwise.

    >>> default_dreg("chainzrule"), default_dreg("chainzrule-cnn"), default_dreg("mlp")
    (0.003, 3e-05, 0.0)
    """
    return {"chainzrule": DEFAULT_CHAINZRULE_DREG, "chainzrule-cnn": DEFAULT_CHAINZRULE_CNN_DREG}.get(model, 0.0)
#: Seeds are in [0, 2**32): numpy and scikit-learn refuse anything else.
SEED_LIMIT = 2**32
#: Largest integer setting (widths, epochs, batch size, ...): any more is no run, only an overflow.
INT_LIMIT = 2**31 - 1
#: Largest float setting (lr, λ, bound, strengths, eps). float32 ends at 3.4e38, and training
#: multiplies these (Adam divides lr by a bias correction >= 0.1, λ scales a penalty), so 1e30
#: leaves room; every such value up to it was checked to train or diverge cleanly.
FLOAT_LIMIT = 1e30
#: Largest device index: torch keeps it in an int8 (``cuda:128`` wraps to ``cuda:-128``).
DEVICE_INDEX_LIMIT = 127
#: a device as TrainConfig takes it: cpu, cuda or mps, with an optional index written as torch reads it
#: (decimal digits, no sign, no leading zero)
DEVICE_RE = re.compile(rf"({'|'.join(DEVICES_PREFIX)})(?::(0|[1-9][0-9]*))?")


#: fields added after committed results were keyed, and the default at which they leave a content
#: key as it was (:meth:`TrainConfig.key_dict`)
KEY_NEUTRAL_DEFAULTS: dict[str, Any] = {"sn_gain": 1.0, "compile": False, "fused_optimizer": False}


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines one run (and nothing else: no paths to outputs)."""

    # data
    dataset: str = "mnist"
    data_dir: str | None = None
    target: str | None = None
    featurizer: str = "auto"
    limit: int | None = None
    val_fraction: float = 0.1
    # model
    model: str = "chainzrule"
    activation: str = "relu"
    hidden: tuple[int, ...] = (256, 256)
    conv_channels: tuple[int, ...] = (16, 32)  # cnn / chainzrule-cnn: 3x3 conv + 2x2 max-pool blocks before `hidden`
    degree: int = 3
    poly_init: str = "gelu"
    bound: float = 3.0
    range_control: str = "linear"
    poly_basis: str = "legendre"
    head: str = "auto"
    kan_grid: int = 5
    input_norm: str = "none"
    logit_scale: float = 1.0
    sn_gain: float = 1.0  # reg "sn": every hidden layer's linear map is sn_gain · W / σ(W) (its Lipschitz constant)
    # regularization
    dreg: float | None = None
    dreg_schedule: str = "constant"
    dreg_final: float = 0.0
    dreg_warmup: float = 0.0
    reg: str = "none"
    reg_strength: float = 0.0
    jr_projections: int = 1
    # classical baselines (svm: C = 1/reg_strength; xgboost: reg_lambda = reg_strength, eta = lr)
    svm_gamma: float | None = None
    xgb_trees: int = 200
    xgb_depth: int = 4
    xgb_min_child_weight: float = 1.0
    xgb_subsample: float = 1.0
    xgb_early_stopping: int = 0
    # resampling: repeated stratified k-fold over train+test (0 folds: the dataset's own split)
    cv_folds: int = 0
    cv_fold: int = 0
    cv_repeat: int = 0
    # optimisation
    optimizer: str = "adam"
    lr: float = 3e-3
    coef_lr_scale: float = 1.0
    lr_schedule: str = "onecycle"
    epochs: int = 10
    patience: int = 0
    batch_size: int = 128
    seed: int = 0
    device: str = "cpu"
    dtype: str = "float32"
    compile: bool = False  # train through torch.compile(model) (inductor): same run, fused elementwise work
    fused_optimizer: bool = False  # torch's fused Adam/AdamW/SGD kernel: same update, other rounding (1 ulp)
    # evaluation
    diag_examples: int = 1000
    robustness: bool = False
    adv_eps: tuple[float, ...] = (0.05, 0.1)
    pgd_steps: int = 10
    apgd_steps: int = 100
    corruption_examples: int = 1000

    def __post_init__(self) -> None:
        if isinstance(self.hidden, int):
            object.__setattr__(self, "hidden", (self.hidden,))
        object.__setattr__(self, "hidden", tuple(self.hidden))
        object.__setattr__(self, "conv_channels", tuple(self.conv_channels))
        object.__setattr__(self, "adv_eps", tuple(float(e) for e in self.adv_eps))
        _validate(self)

    # --- derived -----------------------------------------------------------------------------
    @property
    def dreg_lambda(self) -> float:
        """λ actually used: ``dreg`` if given, else the default for ChainzRule and 0 otherwise."""
        if self.dreg is not None:
            return float(self.dreg)
        return default_dreg(self.model)

    @property
    def uses_dreg(self) -> bool:
        """Whether λ is above 0 at some step: the starting λ, or an anneal's ``dreg_final``
        (``--dreg 0 --dreg-schedule linear --dreg-final 0.5`` ramps λ up from 0).

        >>> TrainConfig(model="mlp").uses_dreg, TrainConfig(model="mlp", dreg_schedule="linear", dreg_final=0.5).uses_dreg
        (False, True)
        """
        return self.dreg_lambda > 0 or (self.dreg_schedule in ("linear", "cosine") and self.dreg_final > 0)

    @property
    def is_neural(self) -> bool:
        return self.model in NEURAL_MODELS

    # --- serialisation -----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["hidden"] = list(self.hidden)
        d["conv_channels"] = list(self.conv_channels)
        d["adv_eps"] = list(self.adv_eps)
        return d

    def key_dict(self) -> dict[str, Any]:
        """:meth:`to_dict` without the fields of :data:`KEY_NEUTRAL_DEFAULTS` that hold their
        default, and with ``data_dir`` as None: what content keys (:meth:`hash`, a fight's run keys)
        hash, so a field added after results were committed leaves the keys of the runs that do not
        use it unchanged, and a run keeps its key when its data is read from another folder or
        machine (the dataset's name says what the data is; ``csv:PATH`` names its file).

        >>> "sn_gain" in TrainConfig().key_dict(), "sn_gain" in TrainConfig(reg="sn", sn_gain=4.0).key_dict()
        (False, True)
        >>> TrainConfig(data_dir="/data/sst5").hash() == TrainConfig(data_dir="../sst5").hash() == TrainConfig().hash()
        True
        """
        d = self.to_dict()
        for name, default in KEY_NEUTRAL_DEFAULTS.items():
            if d[name] == default:
                del d[name]
        d["data_dir"] = None  # where the data lives is not what the run is: the same run from any folder
        return d

    def hash(self) -> str:
        """16 hex digits of the sha256 of the canonical JSON of the config (:meth:`key_dict`)."""
        return content_hash(self.key_dict(), 16)

    def replace(self, **changes: Any) -> "TrainConfig":
        return TrainConfig.from_dict({**self.to_dict(), **changes})

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"unknown config key(s) {', '.join(unknown)}: expected some of {', '.join(sorted(known))}")
        clean = {}
        for f in fields(cls):
            if f.name in d:
                clean[f.name] = _coerce(f.name, f.type, d[f.name])
        return cls(**clean)


def _to_int(value: Any) -> int:
    """``value`` as an exact int: ints, integral floats and integral strings ("12", "1e3", "3.0").

    Never through ``float``: an int or a string above 2**53 keeps every digit. Bools, fractions
    and non-finite values raise TypeError.

    >>> _to_int("9007199254740993"), _to_int(4.0), _to_int("1e3")
    (9007199254740993, 4, 1000)
    """
    if isinstance(value, bool):
        raise TypeError("a bool is not an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not value.is_integer():
            raise TypeError("not integral")
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            d = Decimal(value.strip())  # InvalidOperation (an ArithmeticError) if not a number
            if not d.is_finite() or d.adjusted() > 30 or d != d.to_integral_value():
                raise TypeError("not integral") from None
            return int(d)
    raise TypeError(f"cannot read {type(value).__name__} as an integer")


def _to_float(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise TypeError("not a number")
    return float(value)  # OverflowError for ints beyond float range: caught by _coerce


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        if value.lower() in ("true", "1", "yes"):
            return True
        if value.lower() in ("false", "0", "no"):
            return False
    raise TypeError("not a bool")


def _items(value: Any) -> list:
    """The entries of a list value; a string is comma-separated, and an empty entry in it
    (``"64,,64"``, ``"8,"``) is refused rather than dropped (an empty string is no entries).

    >>> _items("64, 64"), _items("")
    (['64', '64'], [])
    >>> _items("8,")
    Traceback (most recent call last):
    ...
    TypeError: an empty entry
    """
    if isinstance(value, str):
        items = value.replace(" ", "").split(",")
        if items == [""]:
            return []
        if "" in items:
            raise TypeError("an empty entry")
        return items
    if isinstance(value, (int, float)):
        return [value]
    if not isinstance(value, (list, tuple)):
        raise TypeError("not a list")
    return list(value)


def content_hash(obj: Any, digits: int = 16) -> str:
    """The first ``digits`` hex digits of the sha256 of ``obj``'s canonical JSON (sorted keys, no
    spaces): the one content key for configs and runs.

    >>> content_hash({"b": 1, "a": [1.5, None]}, 12) == content_hash({"a": [1.5, None], "b": 1}, 12)
    True
    >>> content_hash({}, 8)
    '44136fa3'
    """
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:digits]


def _coerce(name: str, typ: Any, value: Any) -> Any:
    """Convert TOML/JSON/CLI values to the field's type exactly; refuse what cannot be converted."""
    t = str(typ)
    try:
        if value is None:
            if "None" in t:
                return None
            raise TypeError
        if t.startswith("tuple[int"):
            return tuple(_to_int(v) for v in _items(value))
        if t.startswith("tuple[float"):
            return tuple(_to_float(v) for v in _items(value))
        if t.startswith("int"):
            return _to_int(value)
        if t.startswith("float"):
            return _to_float(value)
        if t.startswith("bool"):
            return _to_bool(value)
        if t.startswith("str"):
            if not isinstance(value, str):
                raise TypeError
            return value
    except (TypeError, ValueError, OverflowError, ArithmeticError):
        pass
    else:
        return value
    if t.startswith("tuple[") and isinstance(value, str):
        what = "integers" if t.startswith("tuple[int") else "numbers"
        raise ConfigError(f"config key {name!r}: expected {t} (comma-separated {what}, no empty entry), got {value!r}")
    raise ConfigError(f"config key {name!r}: expected {t}, got {value!r}")


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"{name} {value!r} is not known: expected one of {', '.join(allowed)}")


def _validate(c: TrainConfig) -> None:
    _choice("model", c.model, MODELS)
    _choice("activation", c.activation, ACTIVATIONS)
    _choice("reg", c.reg, REGS)
    _choice("head", c.head, HEADS)
    _choice("optimizer", c.optimizer, OPTIMIZERS)
    _choice("lr_schedule", c.lr_schedule, LR_SCHEDULES)
    _choice("dreg_schedule", c.dreg_schedule, DREG_SCHEDULES)
    _choice("poly_init", c.poly_init, POLY_INITS)
    _choice("range_control", c.range_control, RANGE_CONTROLS)
    _choice("poly_basis", c.poly_basis, POLY_BASES)
    _choice("dtype", c.dtype, DTYPES)
    _choice("input_norm", c.input_norm, INPUT_NORMS)
    if c.input_norm != "none" and c.model != "kan":
        raise ConfigError(f"input_norm {c.input_norm!r} acts on KAN models only, got model {c.model!r}")
    m = DEVICE_RE.fullmatch(c.device)
    if not m or int(m.group(2) or 0) > DEVICE_INDEX_LIMIT:
        raise ConfigError(f"device {c.device!r} is not known: expected cpu, cuda, cuda:N (N in "
                          f"0..{DEVICE_INDEX_LIMIT}) or mps")
    if c.compile and (not c.is_neural or c.reg in ("igp", "jr")):
        raise ConfigError(f"compile traces a network's training step: expected a neural model ({', '.join(NEURAL_MODELS)}) "
                          f"without a double-backward penalty (reg igp or jr: torch.compile has no double backward), "
                          f"got model={c.model!r}, reg={c.reg!r}")
    if c.reg == "sn" and c.model in ("cnn", "chainzrule-cnn"):
        raise ConfigError(f"reg 'sn' normalizes dense layers only, so a CNN's conv layers would stay unconstrained: "
                          f"expected model chainzrule or mlp, got model={c.model!r}")
    if c.fused_optimizer and not c.is_neural:
        raise ConfigError(f"fused_optimizer sets a network's optimizer: expected a neural model "
                          f"({', '.join(NEURAL_MODELS)}), got model={c.model!r}")
    if c.featurizer.split(":")[0] not in FEATURIZERS_PREFIX:
        raise ConfigError(f"featurizer {c.featurizer!r} is not known: expected auto, encoder, hashed or hashed:DIMS")
    _validate_ints(c)
    _validate_floats(c)


def _validate_ints(c: TrainConfig) -> None:
    if not c.hidden or any(not 1 <= w <= INT_LIMIT for w in c.hidden):
        raise ConfigError(f"hidden must be a list of widths in 1..{INT_LIMIT}, got {list(c.hidden)}")
    if not 0 <= c.seed < SEED_LIMIT:
        raise ConfigError(f"seed must be an integer in [0, 2**32) = 0..{SEED_LIMIT - 1}, got {c.seed}")
    if not c.conv_channels or any(not 1 <= w <= INT_LIMIT for w in c.conv_channels):
        raise ConfigError(f"conv_channels must be a list of channel counts in 1..{INT_LIMIT}, got {list(c.conv_channels)}")
    if not 1 <= c.degree <= DEGREE_LIMIT:
        raise ConfigError(f"expected degree in 1..{DEGREE_LIMIT} (the polynomial's degree), got {c.degree}")
    positive_ints = dict(epochs=c.epochs, batch_size=c.batch_size, kan_grid=c.kan_grid,
                         jr_projections=c.jr_projections, diag_examples=c.diag_examples, pgd_steps=c.pgd_steps,
                         apgd_steps=c.apgd_steps, corruption_examples=c.corruption_examples)
    if c.limit is not None:
        positive_ints["limit"] = c.limit
    for name, v in positive_ints.items():
        if not 1 <= v <= INT_LIMIT:
            raise ConfigError(f"{name} must be an integer in 1..{INT_LIMIT}, got {v}")
    if not 1 <= c.xgb_trees <= INT_LIMIT or not 1 <= c.xgb_depth <= 64 or not 0 <= c.xgb_early_stopping <= INT_LIMIT:
        raise ConfigError(f"xgb_trees must be in 1..{INT_LIMIT}, xgb_depth in 1..64, xgb_early_stopping in "
                          f"0..{INT_LIMIT} (0: off), got {c.xgb_trees}, {c.xgb_depth}, {c.xgb_early_stopping}")
    if c.cv_folds == 1 or not 0 <= c.cv_folds <= 1000:
        raise ConfigError(f"cv_folds must be 0 (the dataset's own split) or in 2..1000, got {c.cv_folds}")
    if not (0 <= c.cv_fold < max(c.cv_folds, 1)) or not 0 <= c.cv_repeat < SEED_LIMIT:
        raise ConfigError(f"cv_fold must be in 0..cv_folds-1 and cv_repeat in [0, 2**32), got cv_fold={c.cv_fold} "
                          f"(cv_folds={c.cv_folds}), cv_repeat={c.cv_repeat}")
    if not 0 <= c.patience <= INT_LIMIT:
        raise ConfigError(f"patience must be an integer in 0..{INT_LIMIT} (0: no early stopping), got {c.patience}")


def _validate_floats(c: TrainConfig) -> None:
    """Finite, in range, and at most :data:`FLOAT_LIMIT` in size: values finite in float64 but
    beyond float32 (1e308) would train to NaN or overflow inside the optimizer."""
    finite_positive = dict(lr=c.lr, bound=c.bound, coef_lr_scale=c.coef_lr_scale, logit_scale=c.logit_scale,
                           xgb_subsample=c.xgb_subsample)
    if c.svm_gamma is not None:
        finite_positive["svm_gamma"] = c.svm_gamma
    finite_nonneg = dict(reg_strength=c.reg_strength, dreg_final=c.dreg_final, dreg_warmup=c.dreg_warmup,
                         sn_gain=c.sn_gain, xgb_min_child_weight=c.xgb_min_child_weight)
    if c.dreg is not None:
        finite_nonneg["dreg"] = c.dreg
    for i, e in enumerate(c.adv_eps):
        finite_nonneg[f"adv_eps[{i}]"] = e
    for name, v in [*finite_positive.items(), *finite_nonneg.items()]:
        positive = name in finite_positive
        if not math.isfinite(v) or v < 0 or (positive and v == 0):  # one message per field, whatever the value
            raise ConfigError(f"{name} must be a finite number {'>' if positive else '>='} 0, got {v}")
        if v > FLOAT_LIMIT:
            raise ConfigError(f"{name} must be at most {FLOAT_LIMIT:g} (larger values overflow float32 "
                              f"arithmetic in training), got {v:g}")
    if c.xgb_subsample > 1:
        raise ConfigError(f"xgb_subsample is a fraction of the rows: expected a number in (0, 1], got {c.xgb_subsample}")
    if c.sn_gain <= 0 or (c.sn_gain != 1.0 and (c.reg != "sn" or c.model not in DREG_MODELS)):
        raise ConfigError(f"sn_gain is the Lipschitz constant of a spectrally normalized hidden layer: expected "
                          f"a number > 0, and 1 unless reg is 'sn' on a model with hidden layers "
                          f"({', '.join(DREG_MODELS)}), got sn_gain={c.sn_gain} with reg={c.reg!r}, model={c.model!r}")
    if not 0.0 <= c.dreg_warmup < 1.0:
        raise ConfigError(f"dreg_warmup is a fraction of training in [0, 1), got {c.dreg_warmup}")
    if not 0.0 < c.val_fraction < 1.0:
        raise ConfigError(f"val_fraction must be in (0, 1), got {c.val_fraction}")


#: The table that names a spec's kind, and the command that runs it.
SPEC_KINDS = {"fight": "fight", "stability": "stability", "finetune": "finetune"}


def check_spec_kind(raw: Any, command: str) -> None:
    """Refuse a spec written for another command, naming the command that runs it.

    >>> check_spec_kind({"finetune": {}, "contender": []}, "fight")
    Traceback (most recent call last):
    ...
    chainzrule.errors.ConfigError: this is a finetune spec (it has a [finetune] table): run it with `chainzrule finetune SPEC --out DIR`, not `chainzrule fight`
    """
    if not isinstance(raw, dict) or command in raw:
        return
    for table, other in SPEC_KINDS.items():
        if other != command and table in raw:
            raise ConfigError(f"this is a {other} spec (it has a [{table}] table): run it with "
                              f"`chainzrule {other} SPEC --out DIR`, not `chainzrule {command}`")


def read_toml(path: str | Path, what: str) -> dict:
    """The table of the TOML file ``path``; a missing, unreadable or invalid file is a
    :class:`~chainzrule.errors.ConfigError` that names it as ``what`` ("config file", "fight spec").
    """
    try:
        return tomllib.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(f"{what} {path} does not exist") from None
    except IsADirectoryError:
        raise ConfigError(f"{what} {path} is a folder, expected a TOML file") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{what} {path} is not valid TOML: {e}") from None
    except OSError as e:
        raise ConfigError(f"{what} {path} cannot be read: {e.strerror}") from None
