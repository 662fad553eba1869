"""``hpsearch tune``: search a space on a dataset (one process, local workers, or the chief of
remote ones), and the closing table it prints."""

from __future__ import annotations

import math
import time
from pathlib import Path

import click

from datasets import available_datasets
from search_spaces.precision import describe_precision
from tuner.cli_errors import cli_errors, import_tensorflow
from tuner.cli_options import (
    SubsetType,
    data_dir_option,
    init_from_options,
    mlflow_tracking_uri,
    polarity_option,
    precision_option,
    seed_option,
    tracking_options,
    user_data_options,
)
from tuner.config import STRATEGIES, TUNERS, RunConfig, parse_assignments
from tuner.errors import SearchError, UsageError


@click.command(short_help="Search a space (mlp, cnn, clock or your own) on a dataset; resumable.")
@click.argument("space", metavar="SPACE")
@click.option(
    "--dataset",
    type=click.Choice(available_datasets()),
    default=None,
    help="Registered dataset to search on (default: clock for the clock space, else "
    "fashion_mnist).",
)
@user_data_options(
    "Your own data instead: an .npz (x_train, y_train; optional x_val/y_val, x_test/y_test), a "
    "folder of class sub-folders of pictures, or a .csv/.parquet with --target.")
@click.option("--space-arg", "space_args", multiple=True, metavar="KEY=VALUE",
              help="Constructor argument of a HyperModel class SPACE (repeatable).")
@click.option("--keep-models", type=click.IntRange(min=0), default=0, show_default=True,
              metavar="K",
              help="Keep the best K trials' trained models as RUN/models/rank_<n>.keras.")
@click.option("--accept-changed-space", is_flag=True,
              help="Resume even though the space's source file changed since the search began.")
@click.option(
    "--run-dir",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Directory of the run; an existing run there is resumed.",
)
@click.option(
    "--tuner",
    "tuner_name",
    type=click.Choice(TUNERS),
    default="bohb",
    show_default=True,
    help="Search algorithm: bohb (Hyperband with model-guided proposals), hyperband, "
    "bayesian, random.",
)
@click.option(
    "--max-trials",
    type=click.IntRange(min=1),
    default=None,
    help="Trials to run (bayesian/random: default 10; hyperband: a cap on its schedule).",
)
@click.option(
    "--max-epochs",
    type=click.IntRange(min=1),
    default=6,
    show_default=True,
    help="Hyperband's largest epoch budget; epochs of a bayesian/random trial.",
)
@click.option(
    "--factor",
    type=click.IntRange(min=2),
    default=3,
    show_default=True,
    help="Hyperband reduction factor.",
)
@click.option(
    "--hyperband-iterations",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Full Hyperband sweeps (raise it to extend a finished run).",
)
@click.option(
    "--executions-per-trial",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Trainings averaged per trial.",
)
@click.option(
    "--objective",
    default=None,
    help="Metric to optimize (default: the space's own, val_accuracy; val_cse for clock).",
)
@click.option(
    "--direction",
    type=click.Choice(["max", "min"]),
    default=None,
    help="Whether the objective is maximized or minimized (inferred when possible).",
)
@click.option(
    "--force-direction",
    is_flag=True,
    help="Accept a --direction that contradicts the objective (e.g. minimizing an accuracy).",
)
@click.option(
    "--subset",
    type=SubsetType(),
    default="10000",
    show_default=True,
    help="Training images used: a count (at least 10), a fraction in (0, 1] such as 0.1, or 'all' "
    "(clock: images of the whole set, split 80/10/10 afterwards; --data: default all).",
)
@click.option("--head", default=None, help="Clock space only: label representation.")
@click.option("--size", "image_size", type=click.Choice(["75", "150"]), default=None,
              help="Clock space only: image side in pixels (default: the --init-from model's, "
              "else 75).")
@init_from_options
@polarity_option
@click.option("--fix", "fixes", multiple=True, metavar="NAME=VALUE",
              help="Hold a hyperparameter at one value in every trial and search the rest, e.g. "
              "--fix optimizer=adamw --fix batch_norm=true (repeatable; part of the run's "
              "identity).")
@click.option("--overwrite", is_flag=True, help="Discard an existing run in --run-dir first.")
@click.option("--quiet", is_flag=True, help="Print only the final summary.")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Train N trials at once in N worker processes on this machine (a chief on "
              "127.0.0.1 serves them; CPU threads or GPUs are shared out).")
@click.option("--recycle-after", type=click.IntRange(min=0), default=RunConfig.recycle_after,
              show_default=True, metavar="N",
              help="Run at most N trials in one process, then go on in a fresh one, so that "
              "memory stays flat (only the end of a process frees what TensorFlow keeps of "
              "every model it trained); nothing is lost or trained again. Applies to each "
              "--workers worker, and to a search of more than N trials, which then runs in a "
              "child process of this one; a shorter search stays in this process. A fresh "
              "process costs its start (TensorFlow, the data: about 7 s on 2 CPU cores), about "
              "4% of 100 trials of the shortest kind (1-epoch MLPs). 0: never.")
@click.option("--max-memory", "max_memory_mb", type=click.IntRange(min=1), default=None,
              metavar="MB",
              help="Also go on in a fresh process after a trial that leaves the one that trained "
              "it above MB of resident memory (Linux; the search then always runs in child "
              "processes). Default: no limit.")
@click.option("--serve", "serve_address", default=None, metavar="HOST:PORT",
              help="Be the chief of a multi-machine search: serve the trials to "
              "`hpsearch worker HOST:PORT --run-dir DIR` processes; the run directory must be on "
              "storage they all share.")
@click.option("--allow-remote", is_flag=True,
              help="Let --serve listen on a non-loopback address. Calls need the run's token; "
              "add --tls-cert/--tls-key unless the network is trusted.")
@click.option("--tls-cert", type=click.Path(exists=True, dir_okay=False), default=None,
              help="With --serve: speak TLS with this PEM certificate (workers: --tls-ca).")
@click.option("--tls-key", type=click.Path(exists=True, dir_okay=False), default=None,
              help="With --serve: the PEM private key of --tls-cert.")
@click.option("--worker-timeout", type=click.FloatRange(min=1), default=120.0, show_default=True,
              help="Seconds without news from a worker after which its trial is given to another.")
@tracking_options
@click.option("--strategy", type=click.Choice(STRATEGIES), default=None,
              help="Train each trial across the GPUs of this host (needs at least 2 GPUs).")
@precision_option
@seed_option
@data_dir_option
@cli_errors
def tune(
    space,
    dataset,
    data_path,
    target,
    space_args,
    keep_models,
    accept_changed_space,
    run_dir,
    tuner_name,
    max_trials,
    max_epochs,
    factor,
    hyperband_iterations,
    executions_per_trial,
    objective,
    direction,
    force_direction,
    subset,
    head,
    image_size,
    init_from,
    init_head,
    polarity,
    fixes,
    overwrite,
    quiet,
    workers,
    recycle_after,
    max_memory_mb,
    serve_address,
    allow_remote,
    tls_cert,
    tls_key,
    worker_timeout,
    tensorboard,
    mlflow_uri,
    strategy,
    precision,
    seed,
    data_dir,
):
    """Search SPACE on a dataset; resumes an existing --run-dir.

    SPACE is a registered name (mlp, cnn, clock, or one an installed package adds), or your own
    KerasTuner space as path/to/file.py:NAME or package.module:NAME, where NAME is a
    build_model(hp) function, a keras_tuner.HyperModel subclass or an instance. Its objective is
    val_ + its model's first compiled metric unless --objective says otherwise.

    Writes run.yaml, trials.csv, the KerasTuner project and top_configs/rank_{1,2,3}.yaml, and
    prints the top 3 next to the default model. The space's default point is always the first
    trial (for mlp and cnn: the textbook model; with --fix: the defaults with the fixed values).

    \b
    Example:
      hpsearch tune examples/fashion_function.py:build_model --data images.npz --run-dir runs/mine
      hpsearch tune examples/tabular_regression.py:build_model --data houses.csv --target price \\
          --run-dir runs/houses --keep-models 1
      hpsearch tune mlp --dataset fashion_mnist --run-dir runs/mlp --max-epochs 6 --subset 10000
      hpsearch tune cnn --tuner bayesian --max-trials 8 --max-epochs 3 --subset 3000 --run-dir runs/cnn
      hpsearch tune mlp --tuner random --max-trials 20 --workers 2 --run-dir runs/mlp-parallel
      hpsearch tune mlp --tuner random --max-trials 2000 --max-epochs 1 --max-memory 3000 \\
          --run-dir runs/mlp-long
      hpsearch tune mlp --subset all --max-epochs 27 --fix optimizer=adamw --fix batch_norm=true \\
          --fix lr_schedule=cosine --run-dir runs/mlp-modern
      hpsearch tune mlp --run-dir /shared/runs/mlp --serve 10.0.0.5:8000 --allow-remote
      hpsearch tune mlp --max-epochs 6 --run-dir runs/mlp --tensorboard --mlflow
      hpsearch tune clock --dataset clock --init-from runs/clock-75 --data-dir my_clocks/ \\
          --tuner bayesian --max-trials 6 --max-epochs 15 --run-dir runs/clock-finetune
      hpsearch tune clock --size 150 --subset all --max-epochs 9 --run-dir runs/clock-150-tune
    """
    started = time.monotonic()
    serve = None
    if workers and serve_address:
        raise UsageError("--workers and --serve cannot be combined: --workers starts its own "
                         "chief on this machine, --serve is the chief for workers elsewhere.")
    if allow_remote and not serve_address:
        raise UsageError("--allow-remote only applies with --serve HOST:PORT.")
    if (tls_cert or tls_key) and not serve_address:
        raise UsageError("--tls-cert and --tls-key only apply with --serve HOST:PORT.")
    if serve_address and not (_is_default("recycle_after") and max_memory_mb is None):
        raise UsageError("--recycle-after and --max-memory apply to processes this command "
                         "starts to train; with --serve the chief trains nothing, and the "
                         "workers you start with `hpsearch worker` run until the search ends.")
    if serve_address:
        from tuner.distributed import ServeSettings, parse_address

        host, port = parse_address(serve_address)
        serve = ServeSettings(host, port, allow_remote, worker_timeout, tls_cert, tls_key)
    if data_path is not None and dataset is not None:
        raise UsageError(f"--dataset {dataset} and --data {data_path} both name the data: pass "
                         "one of them.")
    if _is_default("subset"):
        subset = "default"  # 10,000 images of a registered dataset, all of yours
    mlflow_uri = mlflow_tracking_uri(mlflow_uri)
    config = RunConfig(
        space=space,
        dataset=str(data_path) if data_path is not None else dataset or default_dataset(space),
        target=target,
        space_args=parse_assignments(space_args),
        keep_models=keep_models,
        tuner=tuner_name,
        objective=objective,
        direction=direction,
        max_trials=max_trials,
        max_epochs=max_epochs,
        factor=factor,
        hyperband_iterations=hyperband_iterations,
        executions_per_trial=executions_per_trial,
        seed=seed,
        subset=subset,
        head=head,
        image_size=int(image_size) if image_size else None,
        init_from=init_from,
        init_head=init_head,
        polarity=polarity,
        precision=precision,
        tensorboard=tensorboard,
        mlflow=mlflow_uri,
        strategy=strategy,
        fixed=parse_assignments(fixes),
        recycle_after=recycle_after,
        max_memory_mb=max_memory_mb,
    )
    from tuner.recycling import replaces_processes

    # Where the trials run in child processes, this one trains nothing: it never imports
    # TensorFlow, so that its memory is not kept beside theirs.
    in_children = bool(workers) or (serve is None and replaces_processes(config))
    if not in_children:
        import_tensorflow()
    imports_seconds = time.monotonic() - started
    if workers:
        from tuner.parallel import run_parallel_search

        if accept_changed_space:
            raise UsageError("--accept-changed-space applies to a one-process search; resume "
                             "it once without --workers to accept the change.")
        result = run_parallel_search(
            config, run_dir, workers, data_dir=list(data_dir) or None, overwrite=overwrite,
            progress=None if quiet else click.echo, force_direction=force_direction,
            worker_timeout=worker_timeout,
        )
    elif in_children:
        from tuner.recycled_search import run_recycled_search

        result = run_recycled_search(
            config, run_dir, data_dir=list(data_dir) or None, overwrite=overwrite,
            progress=None if quiet else click.echo, force_direction=force_direction,
            accept_changed_space=accept_changed_space,
        )
    else:
        from tuner.search import run_search

        result = run_search(
            config,
            run_dir,
            data_dir=list(data_dir) or None,
            overwrite=overwrite,
            progress=None if quiet else click.echo,
            force_direction=force_direction,
            serve=serve,
            accept_changed_space=accept_changed_space,
        )
    click.echo(format_summary(result, imports_seconds))
    if result.failure:
        raise SearchError(result.failure)


def _is_default(parameter: str) -> bool:
    """Whether the running command's ``parameter`` took its default (was not given)."""
    from click.core import ParameterSource

    return click.get_current_context().get_parameter_source(parameter) == ParameterSource.DEFAULT


def default_dataset(space: str) -> str:
    """The registered dataset a space searches when none is named: the one reserved for it
    (``clock``), else fashion_mnist."""
    import datasets

    reserved = [name for name in datasets.available_datasets() if datasets.space_of(name) == space]
    return reserved[0] if reserved else "fashion_mnist"


def format_summary(result, imports_seconds: float = 0.0) -> str:
    """The closing table of ``tune``: the top 3 next to the textbook model, and the overhead
    (wall time of this call, ``imports_seconds`` of start-up included, over its training time)."""
    config = result.config
    trials = result.trials
    done = int((trials["status"] == "COMPLETED").sum()) if len(trials) else 0
    failed = int((trials["status"] == "FAILED").sum()) if len(trials) else 0
    seconds = float(trials["seconds"].sum()) if len(trials) else 0.0
    # --fix may move a space's first trial off its textbook model: the default point then.
    baseline = "default" if config.fixed else result.baseline_name
    lines = [
        "",
        f"{len(trials)} trials ({done} completed, {failed} failed), {result.new_trials} run now, "
        f"{seconds / 60:.1f} min of training in total. Run directory: {result.run_dir}",
    ]
    if result.new_trials and math.isfinite(result.overhead):
        wall = result.wall_seconds + imports_seconds
        lines.append(
            f"This call: {wall:.1f} s wall for {result.training_seconds:.1f} s inside fit "
            f"(overhead x{wall / result.training_seconds:.2f}), "
            f"precision {describe_precision(config.precision, result.precision)}."
        )
    lines += [
        f"{'':<10} {'trial':>6} {config.objective:>14} {'vs ' + baseline:>12} {'best epoch':>10}",
    ]
    textbook = result.textbook_score
    if math.isfinite(textbook):
        lines.append(f"{baseline:<10} {'':>6} {textbook:>14.4f} {'':>12} {'':>10}")
    for top in result.top_configs:
        delta = f"{top.score - textbook:+.4f}" if math.isfinite(textbook) else "-"
        lines.append(
            f"{'rank ' + str(top.rank):<10} {top.trial_id:>6} {top.score:>14.4f} "
            f"{delta:>12} {top.epochs:>10}"
        )
    if result.top_configs and config.init_from:
        lines.append(_fine_tune_line(config.init_from, result.top_configs[0]))
    if result.top_configs:
        lines.append(f"Top configurations: {result.run_dir / 'top_configs'}/rank_*.yaml")
    else:
        lines.append("No trial completed, so no configuration was exported.")
    return "\n".join(lines)


def _fine_tune_line(init_from: str, top) -> str:
    """What a fine-tune's search found: rank 1's training values and its best epoch count."""
    from search_spaces.clock import TRAINING_HYPERPARAMETERS

    values = ", ".join(f"{name} {_shown(top.hyperparameters[name])}"
                       for name in TRAINING_HYPERPARAMETERS if name in top.hyperparameters)
    epochs = f"{top.epochs} epoch" + ("s" if top.epochs != 1 else "")
    return (f"Fine-tune of {init_from} (its architecture kept), rank 1: {values}; "
            f"{epochs} (its best epoch).")


def _shown(value) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)
