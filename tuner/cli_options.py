"""Options that several commands share, as reusable click decorators: ``tune`` and
``transfer`` (``--subset``, ``--data``, ``--precision``, tracking), ``worker`` and ``data``
(``--data-dir``), ``clock compare`` (``--init-from``, ``--polarity``). Kept apart from the commands
so that building one command imports no other's modules (``tune`` no clock module)."""

from __future__ import annotations

import re
from pathlib import Path

import click

from search_spaces.precision import PRECISIONS
from tuner.config import check_subset
from tuner.errors import UsageError


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


def mlflow_tracking_uri(mlflow_uri: str | None) -> str | None:
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


def init_from_options(command):
    """``--init-from RUN`` and ``--init-head LABEL``: a fine-tune (``clock compare``, ``tune``)."""
    command = click.option(
        "--init-head", default=None, metavar="LABEL",
        help="Which model of --init-from: a comparison row (multi_head, classification-72) or a "
             "trial id of a tune run (default: its best).")(command)
    return click.option(
        "--init-from", type=click.Path(exists=True, file_okay=False), default=None,
        metavar="RUN",
        help="Start from a trained clock model instead of random weights: a `clock compare` "
             "--out folder or a `tune clock` --run-dir. Its architecture is kept and its weights "
             "copied where they fit; the training hyperparameters stay free.")(command)


def polarity_option(command):
    """``--polarity``: how a training feeds its clock images (``clock compare``, ``tune``)."""
    return click.option(
        "--polarity", type=click.Choice(["auto", "as_is", "negated"]), default="auto",
        show_default=True,
        help="Clock images as they are, negated (255 - pixel), or auto: a fine-tune negates them "
             "when the --init-from model reads their negatives more confidently (a dark-faced "
             "clock with light hands, for a model of light faces), else as they are. The choice "
             "is kept with the model, and predict applies it.")(command)


def user_data_options(help_text: str):
    """``--data PATH`` and ``--target COLUMN``: a user's own data (``tune``, ``transfer``)."""

    def decorate(command):
        command = click.option("--target", default=None, metavar="COLUMN",
                               help="The label column of a --data .csv/.parquet table.")(command)
        return click.option("--data", "data_path", type=click.Path(exists=True, path_type=Path),
                            default=None, help=help_text)(command)

    return decorate
