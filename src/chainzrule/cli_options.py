"""The options the ``chainzrule`` commands share: the training flags and the execution flags.

:data:`TRAIN_OPTIONS` is the one table of the training flags (``chainzrule train``): each row is
``(option, TrainConfig field, click type, help)``. :func:`train_options` adds them to a command,
:func:`train_config` reads them back over a config file, and :func:`execution_options` adds the
flags that choose how a fight's or a stability map's runs execute.

>>> [opt for opt, *_ in TRAIN_OPTIONS][:3]
['--dataset', '--data-dir', '--target']
"""

from __future__ import annotations

from pathlib import Path

import click
from click.core import ParameterSource

from .config import (ACTIVATIONS, CHAINZRULE_MODELS, DEGREE_LIMIT, DEVICE_INDEX_LIMIT, DREG_MODELS, DREG_SCHEDULES,
                     HEADS, LR_SCHEDULES, MODELS, NEURAL_MODELS, OPTIMIZERS, POLY_BASES, POLY_INITS, RANGE_CONTROLS, REGS,
                     TrainConfig, inert_setting, read_toml)
from .errors import ConfigError

__all__ = ["TRAIN_OPTIONS", "train_config", "train_options", "execution_options", "map_execution_options"]

#: The training flags: (option, TrainConfig field, click type, help).
TRAIN_OPTIONS = [
    ("--dataset", "dataset", str, "mnist, pima, sst5, yelp-full, csv:PATH or synthetic. [default: mnist]"),
    ("--data-dir", "data_dir", str, "Folder with the dataset's files (MNIST IDX files, SST-5 txt, Yelp csv)."),
    ("--target", "target", str, "Label column for --dataset csv:PATH."),
    ("--featurizer", "featurizer", str, "Text features: auto, encoder (all-MiniLM-L6-v2), hashed, hashed:DIMS. [default: auto]"),
    ("--limit", "limit", int, "Use only the first N examples of each file (quick runs): MNIST, SST-5 and Yelp "
                              "per split; csv/pima the first N rows, before the 80/20 split."),
    ("--val-fraction", "val_fraction", float, "Validation share carved from train (seeded). [default: 0.1]"),
    ("--model", "model", click.Choice(MODELS), "Network (chainzrule, mlp, kan; cnn and chainzrule-cnn for square images) or classical baseline. [default: chainzrule]"),
    ("--activation", "activation", click.Choice(ACTIVATIONS), "Activation of --model mlp or cnn. [default: relu]"),
    ("--hidden", "hidden", str, "Hidden widths, comma separated (after the conv blocks for the CNNs). [default: 256,256]"),
    ("--conv-channels", "conv_channels", str, "Channels of the CNNs' conv blocks (3x3 conv, activation, 2x2 max-pool), comma separated. [default: 16,32]"),
    ("--degree", "degree", int, f"Polynomial degree of the ChainzRule activation, 1..{DEGREE_LIMIT}. [default: 3]"),
    ("--poly-init", "poly_init", click.Choice(POLY_INITS), "Activation the polynomials start as. [default: gelu]"),
    ("--bound", "bound", float, "Working interval [-R, R] of the polynomials. [default: 3]"),
    ("--range-control", "range_control", click.Choice(RANGE_CONTROLS), "Polynomial outside [-R, R]: linear continuation, tanh squash, none. [default: linear]"),
    ("--poly-basis", "poly_basis", click.Choice(POLY_BASES), "Basis the polynomial's coefficients are trained in: legendre (orthogonal in t = u/R), chebyshev, monomial (powers of t = u/R), power (powers of u, the v0.1 engine). [default: legendre]"),
    ("--head", "head", click.Choice(HEADS), "Output head; ordinal tasks: clm (ordered logit), coral, corn. [default: auto]"),
    ("--dreg", "dreg", float, "DREG strength λ. [default: 3e-3 for chainzrule, 3e-5 for chainzrule-cnn (a conv layer's term sums over every position), 0 otherwise]"),
    ("--dreg-schedule", "dreg_schedule", click.Choice(DREG_SCHEDULES), "λ schedule over training steps. [default: constant]"),
    ("--dreg-final", "dreg_final", float, "λ the linear/cosine schedules anneal to (reached at the step after the last: "
                                          "the last step's λ is one step short of it). [default: 0]"),
    ("--dreg-warmup", "dreg_warmup", float, "Share of training spent warming λ up from 0 (schedules warmup, linear, "
                                            "cosine; int(share × steps) steps). [default: 0]"),
    ("--reg", "reg", click.Choice(REGS), "Competing regularizer: weight decay, input-gradient penalty, Jacobian projections, spectral norm. [default: none]"),
    ("--reg-strength", "reg_strength", float, "Strength of --reg (1/C for logreg/svm). [default: 0]"),
    ("--jr-projections", "jr_projections", int, "Random projections of --reg jr. [default: 1]"),
    ("--logit-scale", "logit_scale", float, "Logit temperature: the head's input times this (lets a Lipschitz-constrained network reach confident logits). [default: 1]"),
    ("--sn-gain", "sn_gain", float, "With --reg sn: each hidden layer's Lipschitz constant (its map is gain · W / σ(W)); tune it with --logit-scale for smooth activations. [default: 1]"),
    ("--optimizer", "optimizer", click.Choice(OPTIMIZERS), "Optimizer of a network: adam, adamw (with --reg wd: decoupled decay of the weight matrices), sgd (Nesterov momentum 0.9). [default: adam]"),
    ("--lr", "lr", float, "Peak learning rate. [default: 3e-3]"),
    ("--coef-lr-scale", "coef_lr_scale", float, "Learning rate of the polynomial coefficients as a multiple of --lr. [default: 1]"),
    ("--lr-schedule", "lr_schedule", click.Choice(LR_SCHEDULES), "Learning rate per step, over all --epochs: onecycle (warm up from --lr/25 to --lr over the first 30% of steps, then cosine-anneal to --lr/2.5e5), cosine (anneal from --lr to 0), constant (--lr throughout). [default: onecycle]"),
    ("--epochs", "epochs", int, "Passes over the training split; the LR and λ schedules span all of them, even when --patience stops earlier. [default: 10]"),
    ("--patience", "patience", int, "Early stopping: stop after N epochs without a better validation accuracy and keep the best epoch (0: run every epoch, keep the last). [default: 0]"),
    ("--batch-size", "batch_size", int, "Training examples per optimizer step (the last of an epoch may be smaller; under torchrun the global batch, shared among the processes). [default: 128]"),
    ("--seed", "seed", int, "Seeds initialisation, validation carve and batch order. [default: 0]"),
    ("--device", "device", str, f"cpu, cuda, cuda:N (N in 0..{DEVICE_INDEX_LIMIT}) or mps. [default: cpu]"),
    ("--dtype", "dtype", click.Choice(["float32", "float64", "bfloat16"]), "Parameter and input dtype. [default: float32]"),
    ("--compile/--no-compile", "compile", bool, "Train through torch.compile (inductor; on CPU it needs a C++ compiler): the first steps compile (~16 s for the MNIST MLP, ~2 s from torch's cache), then a ChainzRule + DREG step takes 0.73-0.80x its eager time (BENCHMARKS.md). Pays on runs of minutes. [default: off]"),
    ("--fused-optimizer/--no-fused-optimizer", "fused_optimizer", bool, "Use torch's fused Adam/AdamW/SGD kernel: the same update in one pass per parameter, rounded differently (about one float32 ulp per step, so not bit-identical to an unfused run). One thread: about 0.75x the training time of the MNIST ReLU MLP, 0.9x of ChainzRule + DREG, 0.8-0.9x on Pima (BENCHMARKS.md). [default: off]"),
    ("--diag-examples", "diag_examples", int, "Test examples used for Jacobian diagnostics. [default: 1000]"),
    ("--adv-eps", "adv_eps", str, "L-inf budgets for FGSM/PGD/APGD with --robustness, comma separated, in the units the model reads: standardized features for tables (unclipped), pixels in [0, 1] for images. [default: 0.05,0.1]"),
]


#: the fields of a network's training loop: logreg, svm and xgboost (fit by scikit-learn/XGBoost) ignore them
TRAINING_LOOP_FIELDS = ("epochs", "batch_size", "patience", "optimizer", "lr_schedule", "dtype")


#: the flags that take a comma-separated list, and what its entries must be
LIST_FLAGS = {"hidden": "positive integers", "conv_channels": "positive integers", "adv_eps": "numbers >= 0"}


def config_file_values(config_file: str) -> dict:
    """The keys of a ``--config`` TOML file with dashes read as underscores (``poly-init`` is
    ``poly_init``); a key given in both spellings is refused, naming both.

    >>> import pathlib, tempfile
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "c.toml"
    >>> _ = f.write_text('poly-init = "tanh"\\nlr = 0.01\\n')
    >>> config_file_values(str(f))
    {'poly_init': 'tanh', 'lr': 0.01}
    """
    if not config_file.strip():
        raise ConfigError("--config: expected a TOML file, got an empty path")
    values: dict = {}
    spelled: dict[str, str] = {}
    for key, v in read_toml(config_file, "config file").items():
        name = key.replace("-", "_")
        if name in spelled:
            raise ConfigError(f"config file {config_file} sets {name} twice, as {spelled[name]!r} and {key!r}: "
                              f"expected one spelling of each key")
        spelled[name] = key
        values[name] = v
    return values


def _check_list_flag(opt: str, field: str, value) -> None:
    """ConfigError for a comma-separated flag with an empty entry (``--hidden 64,,64``, ``8,``),
    which would otherwise be dropped; the entries themselves are TrainConfig's to check."""
    if field in LIST_FLAGS and isinstance(value, str) and value.strip() and \
            any(not item.strip() for item in value.split(",")):
        raise ConfigError(f"expected comma-separated {LIST_FLAGS[field]} for {opt}, got {value!r}")


def train_config(ctx: click.Context, config_file: str | None, params: dict) -> TrainConfig:
    """Config file values, overridden by the flags given explicitly on the command line."""
    values = config_file_values(config_file) if config_file is not None else {}  # "" is a path too: refused
    given = set(values)
    for opt, field, _, _ in TRAIN_OPTIONS:
        if ctx.get_parameter_source(field) == ParameterSource.COMMANDLINE:
            _check_list_flag(opt, field, params[field])
            values[field] = params[field]
            given.add(field)
    cfg = TrainConfig.from_dict(values)
    _refuse_inert(cfg, given)
    return cfg


def _refuse_inert(cfg: TrainConfig, given: set[str]) -> None:
    """ConfigError for an option given (flag or config file) that ``cfg.model`` ignores; a λ of 0
    (no DREG) is fine with any model."""
    problem = inert_setting(cfg, given, lambda field: "--" + field.replace("_", "-"), str)
    if problem:
        raise ConfigError(problem)
    loop = [f for f in TRAINING_LOOP_FIELDS if f in given]
    if loop and cfg.model not in NEURAL_MODELS:
        raise ConfigError(f"--{loop[0].replace('_', '-')} acts on model(s) {', '.join(NEURAL_MODELS)} only (their "
                          f"training loop), got --model {cfg.model}: it would be recorded and do nothing")
    if cfg.dataset == "synthetic":  # built in code: no file, no column to name
        for field in ("target", "data_dir"):
            if field in given:
                raise ConfigError(f"--{field.replace('_', '-')} names where data is read, got it with --dataset "
                                  "synthetic, which is generated: it would be recorded and do nothing")
    if "data_dir" in given and cfg.data_dir and not Path(cfg.data_dir).expanduser().is_dir():
        raise ConfigError(f"--data-dir {cfg.data_dir} is not a directory")


def train_options(f):
    """Add every flag of :data:`TRAIN_OPTIONS` to the command ``f`` (default None: not given)."""
    for opt, field, typ, help_ in reversed(TRAIN_OPTIONS):
        f = click.option(opt, field, type=typ, default=None, help=help_)(f)
    return f


def execution_options(f, maps: bool = False):
    """--batch/--no-batch, --executor, --ray-address: how a fight's or (``maps``) a stability map's
    runs execute. A fight's spec may set each of them (``[fight]`` batch, executor, ray_address); a
    map's spec has no such keys, so its defaults are the flags' own."""
    spec = "" if maps else "the spec's, else "
    f = click.option("--ray-address", default=None, metavar="auto|local|HOST:PORT",
                     help="The Ray cluster for --executor ray: auto (a `ray start --head` on this machine), "
                          f"local (a private one), or HOST:PORT. [default: {spec}auto]")(f)
    f = click.option("--executor", type=click.Choice(["local", "ray"]), default=None,
                     help="Where runs execute: this machine's process pool, or a Ray cluster "
                          f"(extra chainzrule[ray]). [default: {spec}local]")(f)
    default = ("on" if maps else "the spec's batch; else on for fights whose reference network has at most 20,000 "
               "parameters (larger ones run slower batched)")
    return click.option("--batch/--no-batch", "batch", default=None,
                        help="Train same-shaped runs (seeds, per-run hyperparameters) as one stacked model. "
                             f"[default: {default}]")(f)


def map_execution_options(f):
    """:func:`execution_options` for ``chainzrule stability``."""
    return execution_options(f, maps=True)
