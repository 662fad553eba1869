"""The ``hpsearch`` command line: thin click commands over the library."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

import tuner  # noqa: F401 - sets TensorFlow's log level before anything imports it
from datasets import available_datasets
from tuner.cli_errors import cli_errors, import_tensorflow, set_verbose
from tuner.cli_options import (
    SubsetType,
    data_dir_option,
    mlflow_tracking_uri,
    precision_option,
    tracking_options,
    user_data_options,
)
from tuner.cli_tune import tune
from tuner.errors import UsageError
from tuner.report_cli import export, repair, report


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
    mlflow_uri = mlflow_tracking_uri(mlflow_uri)
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


main.add_command(tune)
main.add_command(report)
main.add_command(export)
main.add_command(repair)


if __name__ == "__main__":
    sys.exit(main())
