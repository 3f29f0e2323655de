"""The ``chainzrule`` command.

    chainzrule data fetch mnist|pima      download a dataset into the cache and verify it
    chainzrule data list                  what is known and what is cached
    chainzrule train  --dataset mnist --model chainzrule --out DIR
    chainzrule evaluate CHECKPOINT        re-measure a saved model
    chainzrule inspect CHECKPOINT         per-layer Jacobians, slope bounds, activation plot
    chainzrule fight  fights/mnist.toml --out DIR [--quick] [--jobs N]
    chainzrule report DIR                 statistics, claims table and plots of a fight
    chainzrule scoreboard [DIR ...]       every fight's claims side by side (default: results)
    chainzrule stability SPEC --out DIR   learning-rate x DREG-λ stability map [--quick] [--jobs N]
    chainzrule finetune SPEC --out DIR    heads on a sentence encoder fine-tuned end to end [--quick]

Bad input (a file, a flag, a config) prints one line on stderr and exits with status 2.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

import click

from . import __version__
from .cli_options import TRAIN_OPTIONS, execution_options, map_execution_options, train_config, train_options
from .errors import ChainzRuleError, ConfigError
from .signals import stop_on_signals

__all__ = ["cli", "main", "EXIT_USAGE", "TRAIN_OPTIONS"]

EXIT_USAGE = 2


def _fail(message: str) -> None:
    message = " ".join(message.split())  # one line: click's choice lists come with newlines and tabs
    click.echo(f"chainzrule: error: {message}", err=True)
    sys.exit(EXIT_USAGE)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(__version__, prog_name="chainzrule")
def cli() -> None:
    """ChainzRule: polynomial-activation networks with DREG, and the Fair Fight that tests them.

    Every command explains itself with --help. Results are JSON/CSV that pandas reads.
    """


# ------------------------------------------------------------------------------------------ data
@cli.group()
def data() -> None:
    """Fetch and list datasets (cache: $CHAINZRULE_CACHE, else $XDG_CACHE_HOME/chainzrule, else ~/.cache/chainzrule)."""


#: datasets that are read from the user's files, never downloaded: where they are looked for
_LOCAL_ONLY = {"sst5": "--data-dir DIR or $CHAINZRULE_SST5_DIR (train.txt, dev.txt, test.txt)",
               "yelp-full": "--data-dir DIR or $CHAINZRULE_YELP_DIR (train.csv, test.csv)"}


@data.command("fetch")
@click.argument("name", metavar="{mnist|pima}")
@click.option("--force", is_flag=True, help="Download again even if cached.")
def data_fetch(name: str, force: bool) -> None:
    """Download NAME into the cache and verify it (MNIST by sha256, Pima by counts). SST-5 and Yelp
    are not downloaded: commands read them from --data-dir or an environment variable."""
    from .data import fetch_dataset

    if name in _LOCAL_ONLY:
        raise ConfigError(f"{name} is not downloaded: give its files with {_LOCAL_ONLY[name]}")
    if name not in ("mnist", "pima"):
        raise ConfigError(f"unknown dataset {name!r} to fetch: expected mnist or pima")
    path = fetch_dataset(name, force=force)
    click.echo(f"{name}: {path}")


@data.command("list")
def data_list() -> None:
    """Known datasets, whether they are cached, and where."""
    from .data import list_datasets

    for d in list_datasets():
        state = "cached" if d.get("cached") else "not cached"
        click.echo(f"{d['name']:<11} {state:<11} {d.get('path') or '-'}  {d.get('description', '')}")


# ------------------------------------------------------------------------------------------ train
@cli.command()
@click.option("--config", "config_file", type=str, default=None, help="TOML file of TrainConfig fields, spelled as the flags without the dashes or in snake_case "
                   "(lr = 0.01, poly-init = \"tanh\" or poly_init = \"tanh\"): every option below but --out, --quiet "
                   "and --threads, plus keys no flag sets (kan_grid, input_norm, svm_gamma, xgb_*, cv_*, pgd_steps, "
                   "apgd_steps, corruption_examples: docs/FIGHT_FORMAT.md, \"Training config keys\"). Relative paths "
                   "resolve from the working directory, not the file's folder. Flags override the file.")
@train_options
@click.option("--robustness/--no-robustness", default=None, help="Also measure corruption accuracy (images) and FGSM, PGD and APGD (CE + DLR) accuracy. [default: off]")
@click.option("--out", "out", type=click.Path(file_okay=False), required=True, help="Folder for result.json, grad_norms.json and (neural models) the checkpoint.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.option("--threads", type=click.IntRange(1, 256), default=None,
              help="PyTorch CPU threads. [default: all cores; 1 is faster for small models on a busy machine]")
@click.pass_context
def train(ctx: click.Context, config_file, robustness, out, quiet, threads, **params) -> None:
    """Train one model and write OUT/result.json, OUT/grad_norms.json and, for a network, the checkpoint.

    The checkpoint (model.safetensors + model.json, what evaluate, inspect and export read) is
    written for the neural models only (chainzrule, mlp, kan, cnn, chainzrule-cnn); logreg, svm and
    xgboost write result.json and an empty grad_norms.json, no checkpoint.

    \b
    Examples:
      chainzrule train --dataset mnist --model chainzrule --out runs/cr
      chainzrule train --dataset mnist --model mlp --activation relu --out runs/relu
      chainzrule train --dataset csv:data.csv --target label --model chainzrule --hidden 64 --out runs/csv
      torchrun --nproc-per-node 2 -m chainzrule train --dataset mnist --out runs/cr-ddp

    Under torchrun every process trains its share of each global batch (DistributedDataParallel,
    gloo on CPU, NCCL on CUDA); rank 0 writes OUT.
    """
    from .checkpoint import save_checkpoint, write_json
    from .rundir import RUN_FILES, check_out_dir, staged_dir
    from .sizing import check_fits
    from .train import check_devices, load_splits, train as run_train
    from .train.distributed import torchrun_process_group

    if threads:
        import torch

        torch.set_num_threads(threads)
    cfg = train_config(ctx, config_file, params)
    if robustness is not None:
        cfg = cfg.replace(robustness=robustness)
    out_dir = check_out_dir(out, replace_only=RUN_FILES)  # before any data is read or step taken
    check_devices([cfg])  # this machine has the device asked for
    splits = load_splits(cfg, progress=not quiet)  # all input is checked before anything is written to --out
    check_fits(cfg, splits.in_features, splits.num_classes, splits.task)
    with torchrun_process_group(cfg) as rank:
        run = run_train(cfg, splits, progress=not quiet and rank == 0)
    if rank != 0:
        return  # one copy of the checkpoint and the result: rank 0's
    # dreg_lambda: the λ used (a config's dreg null means the model's default, which it names)
    result = {"config": cfg.to_dict(), "config_hash": cfg.hash(), "dreg_lambda": cfg.dreg_lambda, **run.result,
              "dataset": {"name": cfg.dataset, "train": len(splits.X_train), "val": len(splits.X_val),
                          "test": len(splits.X_test), "in_features": splits.in_features,
                          "num_classes": splits.num_classes, "task": splits.task}}
    stats = splits.meta.get("feature_mean"), splits.meta.get("feature_std")
    with staged_dir(out_dir) as tmp:  # the run's files appear together or not at all
        if run.model is not None:
            save_checkpoint(tmp, run.model, cfg, in_features=splits.in_features, num_classes=splits.num_classes,
                            task=splits.task, standardization=stats if stats[0] is not None else None,
                            extra={"feature_names": splits.meta.get("feature_names"),  # the export's inputs
                                   "classes": splits.meta.get("classes"),  # and what its outputs index
                                   "dreg_lambda": cfg.dreg_lambda})
        write_json(tmp / "grad_norms.json", run.grad_norms)
        write_json(tmp / "result.json", result)
    _print_summary(result)
    click.echo(f"wrote {out_dir / 'result.json'}")


def _print_summary(r: dict) -> None:
    t = r.get("test", {})
    parts = [f"test accuracy {t.get('accuracy', float('nan')):.4f}"]
    for k in ("mae", "off_by_one", "qwk"):
        if k in t:
            parts.append(f"{k} {t[k]:.4f}")
    parts.append(f"params {r.get('params')}")
    jf = r.get("jacobian_fro", {})
    if jf.get("mean") is not None:
        parts.append(f"||J||_F mean {jf['mean']:.3f} p99 {jf['p99']:.3f}")
    for k in ("tau_input", "tau_train", "pgv", "lipschitz_bound"):
        if r.get(k) is not None:
            parts.append(f"{k} {r[k]:.3g}")
    parts.append(f"{r.get('train_seconds', 0):.1f}s")
    if r.get("diverged"):  # said first, so a diverged run does not read as a result
        parts.insert(0, "DIVERGED (non-finite gradients or losses, or a final loss far above a uniform guess; try a smaller --lr)")
    click.echo(" | ".join(parts))


# ------------------------------------------------------------------------------------------ evaluate / inspect
@cli.command()
@click.argument("checkpoint", type=click.Path())
@click.option("--dataset", default=None, help="Evaluate on another dataset (same feature count). [default: the training one]")
@click.option("--data-dir", default=None, help="Folder with the dataset's files.")
@click.option("--target", default=None, help="Label column for csv:PATH.")
@click.option("--robustness/--no-robustness", default=False, show_default=True,
              help="Also measure corruption accuracy and FGSM, PGD and APGD (CE + DLR) accuracy.")
@click.option("--out", default=None, type=click.Path(dir_okay=False), help="Write the metrics to this JSON file.")
def evaluate(checkpoint, dataset, data_dir, target, robustness, out) -> None:
    """Re-measure a saved model on its test split: metrics, Jacobian norms, tau_input, Lipschitz bound."""
    from .checkpoint import checkpoint_data, checkpoint_splits, json_safe, load_checkpoint, require_finite, write_json
    from .rundir import check_out_file
    from .train import evaluate as run_evaluate

    if out:
        check_out_file(out, "--out")
    model, cfg, meta = load_checkpoint(checkpoint)
    require_finite(model, checkpoint)
    cfg = checkpoint_data(cfg, meta, dataset, data_dir, target).replace(robustness=robustness)
    splits = checkpoint_splits(cfg, meta)  # refuses data with other features or classes than the model's
    result = {"checkpoint": str(checkpoint), "dataset": cfg.dataset,
              **run_evaluate(model, cfg, splits, progress=robustness)}  # a bar over the attacks (stderr)
    if out:
        write_json(out, result)
    click.echo(json.dumps(json_safe(result), indent=2, default=str))


@cli.command()
@click.argument("checkpoint", type=click.Path())
@click.option("--dataset", default=None, help="Data for the per-layer Jacobian norms. [default: the training set's test split]")
@click.option("--data-dir", default=None, help="Folder with the dataset's files.")
@click.option("--target", default=None, help="Label column for csv:PATH.")
@click.option("--plot", "plot_path", default=None, type=click.Path(dir_okay=False),
              help="PNG of the learned activation shapes. [default: CHECKPOINT/activations.png]")
@click.option("--formulas", "show_formulas", is_flag=True,
              help="Print every learned polynomial as a formula of its pre-activation x (sympy-compatible) and stop.")
def inspect(checkpoint, dataset, data_dir, target, plot_path, show_formulas) -> None:
    """Per-layer Jacobian norms and slope bounds, the Lipschitz bound, and a plot of the activations.

    \b
    With --formulas: one line per polynomial neuron, `LAYER[i]: FORMULA`, e.g.
      hidden_layers.0.activation[3]: Piecewise((-0.25 + 0*(x + 3), x < -3), (0.498 + 0.5*x + 0.0833*x**2, x <= 3), ...)
    (paste into sympy.sympify to manipulate it).
    """
    from .checkpoint import checkpoint_data, checkpoint_splits, load_checkpoint, require_finite
    from .diagnostics import layer_report, lipschitz_bound
    from .layers import hidden_layers
    from .plots import plot_activations
    from .rundir import check_out_file
    from .train.evaluate import eval_subset, to_model

    if show_formulas:  # formulas print and stop: a plot or data option would be taken and do nothing
        ignored = [o for o, v in (("--plot", plot_path), ("--dataset", dataset), ("--data-dir", data_dir),
                                  ("--target", target)) if v is not None]
        if ignored:
            raise ConfigError(f"--formulas prints the polynomials and stops: expected no {', '.join(ignored)}, "
                              f"got {ignored[0]} (it would do nothing)")
    model, cfg, meta = load_checkpoint(checkpoint)
    require_finite(model, checkpoint)
    if not show_formulas:  # the plot is written last: refuse its path before the work
        folder = Path(checkpoint) if Path(checkpoint).is_dir() else Path(checkpoint).parent
        check_out_file(Path(plot_path) if plot_path else folder / "activations.png", "--plot")
    if show_formulas:
        from .export import formulas

        rows = formulas(model)
        if not rows:
            raise ConfigError(f"{checkpoint}: model {cfg.model!r} has no polynomial activations, so no formulas")
        for r in rows:
            click.echo(f"{r['layer']}[{r['neuron']}]: {r['formula']}")
        return
    cfg = checkpoint_data(cfg, meta, dataset, data_dir, target)
    splits = checkpoint_splits(cfg, meta)
    # the subset evaluate and result.json measure (seeded, stratified), not the first diag_examples
    x = to_model(model, splits.X_test[eval_subset(splits.y_test, cfg.diag_examples, cfg.seed)])
    click.echo(f"model: {cfg.model}  hidden: {list(cfg.hidden)}  params: {sum(p.numel() for p in model.parameters())}")
    rows = layer_report(model, x) if hidden_layers(model) else []  # a KAN has no such layer to report
    if rows:
        keys = list(rows[0])
        click.echo("  ".join(f"{k:>16}" for k in keys))
        for row in rows:
            click.echo("  ".join(f"{v:>16.4g}" if isinstance(v, float) else f"{str(v):>16}" for v in row.values()))
        click.echo(f"Lipschitz upper bound (input → logits, L2): {lipschitz_bound(model):.4g}")
    else:
        click.echo("no derivative-aware hidden layers (KAN or classical model): nothing per layer to report")
    folder = Path(checkpoint) if Path(checkpoint).is_dir() else Path(checkpoint).parent
    target_png = Path(plot_path) if plot_path else folder / "activations.png"
    if plot_activations(model, target_png):
        click.echo(f"wrote {target_png}")


@cli.command("export")
@click.argument("run", type=click.Path())
@click.option("--format", "fmt", type=click.Choice(["onnx", "pt2"]), required=True,
              help="onnx: RUN/model.onnx (dynamo exporter, checked with onnxruntime); pt2: RUN/model.pt2 (torch.export).")
def export_cmd(run, fmt) -> None:
    """Export a trained run (a folder written by `chainzrule train --out RUN`) for deployment.

    The exported graph is the eager model exactly, range control included; the batch dimension is
    dynamic. ONNX needs the extra: pip install 'chainzrule[onnx]'.

    \b
    Examples:
      chainzrule export runs/cr --format onnx
      chainzrule export runs/cr --format pt2
    """
    from .export import export_run
    from .rundir import check_out_dir

    if Path(run).is_dir():
        check_out_dir(run, option="RUN")
    path, check = export_run(run, fmt)
    note = "" if check is None else (f" (onnxruntime vs torch, inputs inside and outside [-R, R]: max |diff| "
                                     f"{check[0]:.2g} on outputs up to {check[1]:.3g})")
    click.echo(f"wrote {path}{note}")


# ------------------------------------------------------------------------------------------ fight / report
@cli.command()
@click.argument("spec", type=click.Path())
@click.option("--out", "out", required=True, type=click.Path(file_okay=False), help="Fight folder (spec.json, runs/, tuning.json, results.csv; unless --no-report, report.md, summary.csv, plots/).")
@click.option("--quick", is_flag=True, help="The spec's [quick] profile: small enough for CI.")
@click.option("--jobs", default=1, show_default=True, type=click.IntRange(1, 64), help="Runs in parallel (processes).")
@click.option("--dataset", default=None, help="Run the spec on another dataset (e.g. csv:PATH with --target).")
@click.option("--data-dir", default=None, help="Folder with the dataset's files.")
@click.option("--target", default=None, help="Label column for csv:PATH.")
@click.option("--seeds", default=None, type=click.IntRange(1, 100), help="Number of final seeds (overrides the spec).")
@execution_options
@click.option("--storage", default=None, metavar="URL",
              help="Also keep the Optuna studies in this database (sqlite:///PATH, postgresql://...), e.g. for optuna-dashboard. [default: the spec's storage, else none]")
@click.option("--no-report", is_flag=True, help="Skip writing report.md, summary.csv and plots/ at the end (`chainzrule report OUT` writes them later).")
def fight(spec, out, quick, jobs, dataset, data_dir, target, seeds, batch, executor, ray_address, storage,
          no_report) -> None:
    """Run a Fair Fight: tune every contender with the same budget, then final runs over seeds.

    Every run is keyed by the hash of its full config and written atomically to OUT/runs/, so a
    killed fight resumes where it stopped. Ends with OUT/results.csv, OUT/tuning.json and (unless
    --no-report) OUT/report.md, OUT/summary.csv and OUT/plots/.

    \b
    Example:
      chainzrule fight fights/mnist.toml --out results/mnist-quick --quick
    """
    from .fight.runner import run_fight
    from .fight.spec import load_spec

    s = load_spec(spec, quick=quick, dataset=dataset, data_dir=data_dir, target=target, seeds=seeds)
    s.command = " ".join(["chainzrule", "fight", spec, "--out", out] + (["--quick"] if quick else [])
                         + [f"--{k.replace('_', '-')} {v}" for k, v in (("jobs", jobs), ("dataset", dataset),
                            ("data_dir", data_dir), ("target", target), ("seeds", seeds), ("executor", executor),
                            ("ray_address", ray_address), ("storage", storage)) if v not in (None, 1)]
                         + ([] if batch is None else ["--batch" if batch else "--no-batch"]))
    run_fight(s, Path(out), jobs=jobs, batch=batch, executor=executor, ray_address=ray_address, storage=storage)
    if not no_report:
        from .fight.loading import load_fight
        from .fight.report import write_report
        from .fight.runner import remove_end_products

        try:
            loaded = load_fight(Path(out))
            path = write_report(loaded)
        except BaseException:  # stopped while writing: no results without their report (the resume writes both)
            remove_end_products(Path(out))
            raise
        click.echo(f"wrote {path}")
        _echo_tally(loaded)


@cli.command()
@click.argument("folder", type=click.Path(file_okay=False))
@click.option("--previous", type=click.Path(file_okay=False), default=None,
              help="A fight folder with the previous results of this fight: copied to FOLDER/previous/, and the "
                   "report gains a section on which verdicts changed and whether the verdict rules or the runs "
                   "changed them.")
def report(folder, previous) -> None:
    """Write FOLDER/report.md (tables, statistics, claims), FOLDER/summary.csv and the PNG plots from a fight's results.

    \b
    Example:
      chainzrule report results/pima --previous /tmp/pima-0.1
    """
    from .fight.analysis import load_fight
    from .fight.changes import copy_previous
    from .fight.report import write_report

    if previous is not None:
        load_fight(folder)  # refuse before copying anything
        copy_previous(previous, folder)
    loaded = load_fight(folder)  # read once: the report and the verdict line
    click.echo(f"wrote {write_report(loaded)}")
    _echo_tally(loaded)


def _echo_tally(fight) -> None:
    """The loaded fight's verdicts in one line, after its report (the claims table has the rest)."""
    from .fight.claims import claim_rows, verdict_tally

    click.echo(f"{verdict_tally(claim_rows(fight))} (report.md, \"Claims\")")


@cli.command()
@click.argument("folders", nargs=-1, type=click.Path(file_okay=False))
@click.option("--out", "out", default=None, type=click.Path(file_okay=False),
              help="Folder for scoreboard.md, scoreboard.png and scoreboard.csv. [default: FOLDERS' only argument when it is a "
                   "folder of fights, else the current folder]")
@click.option("--readme", default=None, type=click.Path(dir_okay=False),
              help="Also write the claim-by-claim table between the lines <!-- scoreboard:begin --> and "
                   "<!-- scoreboard:end --> of this file.")
def scoreboard(folders, out, readme) -> None:
    """Lay every claim of the fight folders side by side: scoreboard.md, .png and .csv.

    FOLDERS are fight folders, or folders of them (each subfolder with a spec.json); default:
    results. One row per claim topic and contender, one column per folder, each cell that
    folder's verdict (the rule of its report) and our estimate. Nothing is retrained.

    \b
    Example:
      chainzrule scoreboard results --readme README.md
    """
    from .fight.scoreboard import write_scoreboard
    from .rundir import check_out_dir

    folders = list(folders) or ["results"]
    if out is None:
        out = folders[0] if len(folders) == 1 and not (Path(folders[0]) / "spec.json").is_file() else "."
    check_out_dir(out)
    command = "chainzrule scoreboard " + " ".join(folders) + (f" --readme {readme}" if readme else "")
    for path in write_scoreboard(folders, out, command, readme):
        click.echo(f"wrote {path}")


# ------------------------------------------------------------------------------------------ stability
@cli.command()
@click.argument("spec", type=click.Path())
@click.option("--out", "out", required=True, type=click.Path(file_okay=False),
              help="Map folder (runs/, stability.csv, summary.csv, heatmap_*.png, report.md).")
@click.option("--quick", is_flag=True, help="The spec's [quick] profile: a small grid for a smoke run.")
@click.option("--jobs", default=1, show_default=True, type=click.IntRange(1, 64), help="Runs in parallel (processes).")
@map_execution_options
def stability(spec, out, quick, jobs, batch, executor, ray_address) -> None:
    """Stability map: a learning-rate × DREG-λ grid over seeds per contender, as heatmaps.

    Every run is stored atomically in OUT/runs/, so an interrupted map resumes where it stopped.
    Ends with OUT/stability.csv, OUT/summary.csv, the heatmaps and OUT/report.md.

    \b
    Example:
      chainzrule stability fights/stability-mnist.toml --out results/stability-mnist --jobs 2
    """
    from .fight.stability import run_stability
    from .fight.stability_spec import load_stability_spec

    try:  # handled here too, so that the command keeps its one-line error when invoked directly
        s = load_stability_spec(spec, quick=quick)
        s.command = " ".join(["chainzrule", "stability", spec, "--out", out] + (["--quick"] if quick else [])
                             + ([f"--jobs {jobs}"] if jobs != 1 else [])
                             + ([] if batch is None else ["--batch" if batch else "--no-batch"])
                             + ([f"--executor {executor}"] if executor else [])
                             + ([f"--ray-address {ray_address}"] if ray_address else []))
        click.echo(f"wrote {run_stability(s, Path(out), jobs=jobs, batch=batch is not False, executor=executor or 'local', ray_address=ray_address)}")
    except ChainzRuleError as e:
        _fail(str(e).replace("\n", " "))


# ------------------------------------------------------------------------------------------ finetune
@cli.command()
@click.argument("spec", type=click.Path())
@click.option("--out", "out", required=True, type=click.Path(file_okay=False),
              help="Fight folder (runs/, results.csv, summary.csv, plots/, report.md).")
@click.option("--quick", is_flag=True, help="The spec's [quick] profile: few sentences, one seed, a smoke run.")
@click.option("--data-dir", default=None, type=click.Path(file_okay=False),
              help="Folder with train.txt, dev.txt, test.txt (default: the spec's, $CHAINZRULE_SST5_DIR, the cache).")
@click.option("--threads", default=None, type=click.IntRange(1, 256),
              help="Torch threads per run (default: every core, shared out among --jobs).")
@click.option("--jobs", default=1, show_default=True, type=click.IntRange(1, 64),
              help="Runs trained at once, each in its own process (on 2 cores, 2 one-thread runs are ~15% faster).")
def finetune(spec, out, quick, data_dir, threads, jobs) -> None:
    """Fine-tuned encoder fight: heads on a sentence encoder trained end to end, seeds paired.

    Every (head, seed) run fine-tunes all-MiniLM-L6-v2 with one recipe and restores the
    best-dev checkpoint before testing (needs `pip install chainzrule[text]`); with the spec's
    head_lrs (or a head's own list), each head first picks its learning rate on dev (seed 0 at
    every value). Each run is stored atomically in OUT/runs/, keyed by its config, so an
    interrupted fight resumes at the next run and a changed spec reruns only what changed. Ends
    with OUT/results.csv, OUT/summary.csv, OUT/tuning.csv, OUT/plots/dev_curves.png and
    OUT/report.md; with OUT/previous/summary.csv (the last results, kept by hand), the report
    says what changed from them.

    \b
    Example:
      chainzrule finetune fights/sst5-finetune.toml --out results/sst5-finetune --data-dir ../shared/data/sst5 --jobs 2
    """
    from .fight.finetune_fight import run_finetune_fight
    from .fight.finetune_spec import load_finetune_spec

    try:
        s = load_finetune_spec(spec, quick=quick)
        if data_dir is not None:
            s.data_dir = data_dir
        s.command = " ".join(["chainzrule", "finetune", spec, "--out", out] + (["--quick"] if quick else [])
                             + ([f"--data-dir {data_dir}"] if data_dir else []) + ([f"--jobs {jobs}"] if jobs > 1 else []))
        if threads:
            import torch

            torch.set_num_threads(threads)
        click.echo(f"wrote {run_finetune_fight(s, Path(out), jobs=jobs, threads=threads)}")  # SIGTERM: see main
    except ChainzRuleError as e:
        _fail(str(e).replace("\n", " "))


def _exit_now(code: int) -> None:
    """Exit without the interpreter's exit hooks: after a signal the fight has already terminated
    its worker pool, and concurrent.futures' own exit hook would then write to the pool's closed
    wake-up pipe and print a traceback after our one-line message. Run files are written
    atomically, so there is nothing left to flush but the standard streams."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


#: the commands whose runs are stored one by one and resumed by the same command
_RESUMABLE = ("fight", "stability", "finetune")


def main(argv: list[str] | None = None) -> None:
    """Entry point: one line on stderr and exit status 2 for any bad input."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    args = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in args if not a.startswith("-")), "")
    after = ("finished runs are kept; run the same command to resume" if command in _RESUMABLE
             else "nothing was written; run the command again")
    try:
        with stop_on_signals():  # SIGTERM as Ctrl-C: every `finally` runs (pools, Ray, temporary files)
            rv = cli.main(args=args, prog_name="chainzrule", standalone_mode=False)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except click.exceptions.NoArgsIsHelpError as e:  # `chainzrule` or `chainzrule data` alone: the help, as --help
        click.echo(e.ctx.get_help())
        sys.exit(0)
    except click.exceptions.Abort as e:  # click turns KeyboardInterrupt (and the fight's Interrupted) into Abort
        signum = getattr(e.__cause__, "signum", signal.SIGINT)
        click.echo(f"chainzrule: interrupted by {signal.Signals(signum).name} ({after})", err=True)
        _exit_now(128 + signum)
    except click.ClickException as e:
        _fail(e.format_message().replace("\n", " "))
    except ChainzRuleError as e:
        _fail(str(e).replace("\n", " "))
    except OSError as e:  # a path the user gave that cannot be read or written: one line, not a traceback
        if e.filename is None:
            raise
        _fail(f"{e.filename}: {e.strerror or type(e).__name__}" + (f" ({e.filename2})" if e.filename2 else ""))
    except KeyboardInterrupt as e:  # a stop raised outside click (stop_on_signals' end, after a swallowed one)
        signum = getattr(e, "signum", signal.SIGINT)
        click.echo(f"chainzrule: interrupted by {signal.Signals(signum).name} ({after})", err=True)
        _exit_now(128 + signum)
    sys.exit(rv if isinstance(rv, int) else 0)


if __name__ == "__main__":  # pragma: no cover
    main()
