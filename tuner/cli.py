"""The ``hpsearch`` command line: thin click commands over the library."""

from __future__ import annotations

import math
import re
import sys
import time
from pathlib import Path

import click

import tuner  # noqa: F401 - sets TensorFlow's log level before anything imports it
from datasets import available_datasets
from search_spaces.precision import PRECISIONS, describe_precision
from tuner.cli_errors import cli_errors, import_tensorflow, set_verbose
from tuner.config import STRATEGIES, TUNERS, RunConfig, check_subset, parse_assignments
from tuner.errors import SearchError, UsageError
from tuner.cli_options import init_from_options, polarity_option, user_data_options
from tuner.report_cli import export, repair, report


class SubsetType(click.ParamType):
    """Training images: a whole count (``6000``; at least 10), a fraction in (0, 1] (``0.1``;
    ``1.0`` is all of them), or ``all``. Written with a decimal point or exponent, a number is a
    fraction; without, a count."""

    name = "subset"

    def convert(self, value, param, ctx):
        if value is None or isinstance(value, (int, float)):
            number = value
        else:
            text = str(value).strip().lower()
            if text in ("all", "none", "full"):
                return None
            try:
                number = int(text) if re.fullmatch(r"[+-]?\d+", text) else float(text)
            except ValueError:
                self.fail(
                    f"expected a count like 6000, a fraction like 0.1, or 'all'; got {value!r}.",
                    param,
                    ctx,
                )
        try:
            return check_subset(number)
        except UsageError as error:
            self.fail(str(error), param, ctx)


def data_dir_option(function):
    return click.option(
        "--data-dir",
        # Must exist: a mistyped folder would otherwise be skipped for $HPSEARCH_DATA_DIR's or
        # the system's copy without a word. A file is accepted: cifar-10-python.tar.gz.
        type=click.Path(exists=True, path_type=Path),
        multiple=True,
        help="Directory searched first for datasets (repeatable; for CIFAR-10 also its "
             "cifar-10-python.tar.gz). Also: $HPSEARCH_DATA_DIR.",
    )(function)


def precision_option(function):
    """``--precision``: the Keras dtype policy trials train under."""
    return click.option(
        "--precision",
        type=click.Choice(PRECISIONS),
        default="auto",
        show_default=True,
        help="Keras dtype policy: float32, mixed_bfloat16, mixed_float16, or auto "
        "(bfloat16 where the GPU supports it, or where the CPU has AMX/AVX512-BF16 and a "
        "timing of both, once per machine, finds bfloat16 faster; else float32; "
        "same accuracy within seed noise, BENCHMARKS.md). float32 reproduces results "
        "published before 2026-12-06.",
    )(function)


def tracking_options(function):
    """``--tensorboard`` and ``--mlflow [TRACKING_URI]``: watch the trials as they run."""
    function = click.option(
        "--mlflow", "mlflow_uri", is_flag=False, flag_value="default", default=None,
        metavar="[TRACKING_URI]",
        help="Track in MLflow: one run per search, one child run per trial (params, per-epoch "
        "metrics, status, score). Without a URI: MLflow's default store (MLFLOW_TRACKING_URI, "
        "else ./mlflow.db); give it last or as --mlflow=URI. Needs pip install "
        "'hpsearch[mlflow]'.",
    )(function)
    return click.option(
        "--tensorboard", is_flag=True,
        help="Write TensorBoard's HParams data of every trial, live, to RUN/tensorboard/ (any "
        "Keras backend); see it with `hpsearch board RUN`.",
    )(function)


def _tracking_uri(mlflow_uri: str | None) -> str | None:
    """The absolute MLflow URI of ``--mlflow`` (None: not asked); fails at once, before
    anything runs, when MLflow is not installed."""
    if mlflow_uri is None:
        return None
    from tuner.mlflow_tracking import resolve_tracking_uri

    return resolve_tracking_uri(mlflow_uri)


def seed_option(function):
    return click.option(
        "--seed",
        type=int,
        default=0,
        show_default=True,
        help="Seed of the split, subset, tuner and weights.",
    )(function)


class _LazyGroup(click.Group):
    """A command group whose named sub-groups are imported when first used (``clock``): the
    commands of one task do not load another's modules."""

    lazy = {"clock": "tuner.clock_cli:clock_group", "board": "tuner.board_cli:board"}

    def list_commands(self, ctx):
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx, name):
        if name in self.lazy and name not in self.commands:
            import importlib

            module, _, attribute = self.lazy[name].partition(":")
            self.add_command(getattr(importlib.import_module(module), attribute), name)
        return super().get_command(ctx, name)


@click.group(cls=_LazyGroup,
             context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="hpsearch")
@click.option("--verbose", is_flag=True,
              help="Also show TensorFlow's start-up log (hidden by default). Also: HPSEARCH_VERBOSE=1.")
def main(verbose):
    """Hyperparameter search for the textbook Fashion-MNIST / CIFAR-10 networks and the
    tell-the-time clock CNN, on KerasTuner.

    \b
    Example:
      hpsearch tune mlp --dataset fashion_mnist --run-dir runs/mlp
      hpsearch transfer runs/mlp --dataset cifar10 --run-dir runs/mlp-cifar10
      hpsearch report runs/mlp runs/mlp-cifar10 --out report/
    """
    if verbose:
        set_verbose(True)


@main.command(short_help="Search a space (mlp, cnn, clock or your own) on a dataset; resumable.")
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
    mlflow_uri = _tracking_uri(mlflow_uri)
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
        from tuner.parallel import run_recycled_search

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


@main.command(short_help="Join a search served by `hpsearch tune --serve`; train its trials.")
@click.argument("address", metavar="HOST:PORT")
@click.option("--run-dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="The chief's run directory, on storage shared with it (as mounted here).")
@click.option("--id", "tuner_id", default=None,
              help="This worker's name (default worker-HOST-PID); the same name again takes back "
              "the trial it was running.")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="TensorFlow threads (default: TensorFlow's choice).")
@click.option("--connect-timeout", type=click.FloatRange(min=1), default=300.0, show_default=True,
              help="Seconds to wait for the chief to answer at all.")
@click.option("--call-timeout", type=click.FloatRange(min=1), default=600.0, show_default=True,
              help="Seconds to wait for any one answer of the chief.")
@click.option("--chief-timeout", type=click.FloatRange(min=1), default=30.0, show_default=True,
              help="Stop (exit code 1) once the chief has not answered for this many seconds.")
@click.option("--tls-ca", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Connect with TLS, trusting this PEM CA (a self-signed --tls-cert itself).")
@data_dir_option
@cli_errors
def worker(address, run_dir, tuner_id, threads, connect_timeout, call_timeout, chief_timeout,
           tls_ca, data_dir):
    """Train trials for the chief at ADDRESS until its budget is spent.

    The run's settings come from --run-dir, which must be the chief's run directory on shared
    storage (checked against the chief's run id).

    \b
    Example:
      hpsearch worker 10.0.0.5:8000 --run-dir /shared/runs/mlp
    """
    from tuner.distributed import run_worker

    trials = run_worker(address, run_dir, tuner_id, data_dir=list(data_dir) or None,
                        progress=click.echo, connect_timeout=connect_timeout,
                        call_timeout=call_timeout, threads=threads, chief_timeout=chief_timeout,
                        tls_ca=tls_ca)
    click.echo(f"{trials} trial(s) trained by this worker.")


@main.command(short_help="Show a search's progress: trials done, running, best, time left.")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--watch", type=click.FloatRange(min=1.0), default=None, metavar="SECONDS",
              help="Show it again every SECONDS until the search has finished or stopped "
                   "(Ctrl-C stops).")
@cli_errors
def status(run_dir, watch):
    """Where the search in RUN_DIR stands, read from its files (safe while it runs): trials
    done, running and failed, which worker runs what, the best so far and the time left.

    \b
    Example:
      hpsearch status runs/mlp-parallel
      hpsearch status runs/mlp-parallel --watch 10
    """
    from tuner.status import format_status, search_status

    while True:
        state = search_status(run_dir)
        click.echo(format_status(state))
        if watch is None or state.finished or state.stopped:
            return
        time.sleep(watch)
        click.echo("")


@main.command(short_help="Retrain the top configurations on another dataset; test scores.")
@click.argument("sources", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option(
    "--dataset",
    type=click.Choice(["cifar10", "fashion_mnist"]),
    default=None,
    help="Target dataset (the source dataset gives test numbers there). Default: cifar10, "
    "unless --data is given.",
)
@user_data_options("Your own target data instead (as for `tune --data`).")
@click.option("--keep-models", is_flag=True,
              help="Keep each training's model as RUN/models/<config>_seed<n>.keras.")
@click.option(
    "--run-dir",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Output directory; an existing transfer there is resumed.",
)
@click.option(
    "--seeds",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Trainings per configuration (mean and std are reported).",
)
@click.option(
    "--epochs",
    type=click.IntRange(min=1),
    default=None,
    help="Epoch budget of every configuration (default: each its own, the textbook row the largest).",
)
@click.option(
    "--patience",
    type=click.IntRange(min=1),
    default=3,
    show_default=True,
    help="Early stopping patience on the target's validation accuracy.",
)
@click.option(
    "--subset",
    type=SubsetType(),
    default="all",
    show_default=True,
    help="Target training images: a count, a fraction, or 'all'.",
)
@click.option("--no-textbook", is_flag=True, help="Leave out the textbook baseline row.")
@click.option(
    "--final",
    is_flag=True,
    help="Final numbers: train on the training and validation images together for exactly the "
    "epoch budget (--epochs, or each configuration's best epoch of its search), no early stopping.",
)
@click.option("--overwrite", is_flag=True, help="Discard earlier results in --run-dir.")
@tracking_options
@precision_option
@data_dir_option
@cli_errors
def transfer(
    sources,
    dataset,
    data_path,
    target,
    keep_models,
    run_dir,
    seeds,
    epochs,
    patience,
    subset,
    no_textbook,
    final,
    overwrite,
    tensorboard,
    mlflow_uri,
    precision,
    data_dir,
):
    """Retrain SOURCES (tune run directories or top-config YAML files) on --dataset or --data.

    Each configuration is rebuilt for the target's input shape and classes, trained with early
    stopping on its objective on the target's validation split and evaluated once on its test
    set (--final:
    trained on training + validation images for a fixed epoch count instead). Writes
    transfer.csv (one row per configuration and seed), summary.csv (with two or more seeds, also
    the test accuracy of the seeds ensembled), predictions/ (test-set probabilities) and
    transfer.yaml.

    \b
    Example:
      hpsearch transfer runs/mlp --dataset cifar10 --run-dir runs/mlp-cifar10 --seeds 3
      hpsearch transfer runs/mlp/top_configs/rank_1.yaml --dataset fashion_mnist --run-dir runs/mlp-test
      hpsearch transfer runs/mlp/top_configs/rank_1.yaml --dataset fashion_mnist --final --epochs 40 \\
          --seeds 3 --run-dir runs/mlp-final
      hpsearch transfer runs/mine --data other.npz --run-dir runs/mine-other --keep-models
      hpsearch transfer runs/mlp --seeds 3 --run-dir runs/mlp-cifar10 --tensorboard --mlflow
    """
    if data_path is not None and dataset is not None:
        raise UsageError(f"--dataset {dataset} and --data {data_path} both name the target: pass "
                         "one of them.")
    mlflow_uri = _tracking_uri(mlflow_uri)
    import_tensorflow()
    from tuner.observers import tracking_observers
    from tuner.transfer import TransferSettings, format_transfer_table, run_transfer

    settings = TransferSettings(
        dataset=str(data_path) if data_path is not None else dataset or "cifar10",
        target=target,
        keep_models=keep_models,
        seeds=seeds,
        epochs=epochs,
        patience=patience,
        subset=subset,
        include_textbook=not no_textbook,
        precision=precision,
        final=final,
    )
    result = run_transfer(
        sources,
        run_dir,
        settings,
        data_dir=list(data_dir) or None,
        overwrite=overwrite,
        progress=click.echo,
        observers=tracking_observers(tensorboard, mlflow_uri),
    )
    click.echo("")
    click.echo(format_transfer_table(result.summary))
    click.echo(f"Results: {run_dir / 'transfer.csv'}, {run_dir / 'summary.csv'}")


@main.command(short_help="Show where each dataset is found, or how to provide it.")
@click.argument("names", nargs=-1, type=click.Choice(available_datasets()))
@data_dir_option
@cli_errors
def data(names, data_dir):
    """Look for datasets (default: fashion_mnist and cifar10) and print where each was found.

    Only the files' headers are read, not the images. Exits with code 1 when one is missing,
    after saying every place tried and how to fix it.

    \b
    Example:
      hpsearch data
      hpsearch data cifar10 --data-dir ~/datasets
    """
    import datasets
    from datasets.sources import downloads_allowed

    missing = 0
    for name in names or ("fashion_mnist", "cifar10"):
        try:
            try:
                found = datasets.locate(name, data_dir=list(data_dir) or None, download=False)
            except datasets.DatasetNotFoundError:
                if not downloads_allowed(None):
                    raise
                import_tensorflow()  # Keras downloads it
                found = datasets.locate(name, data_dir=list(data_dir) or None, download=None)
            click.echo(found)
        except datasets.DatasetError as error:
            missing += 1
            click.echo(f"{name}: MISSING\n{error}", err=True)
    if missing:
        raise click.exceptions.Exit(1)


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


main.add_command(report)
main.add_command(export)
main.add_command(repair)


if __name__ == "__main__":
    sys.exit(main())
