"""Options that several commands share (``tune`` and ``clock compare``), as reusable click
decorators, kept apart so that building the ``tune`` command imports no clock module."""

from __future__ import annotations

from pathlib import Path

import click


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
