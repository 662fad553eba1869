"""The one place where errors become what a user sees, for every ``hpsearch`` command.

The project's own errors (``tuner.errors.HpsearchError`` and its kinds, ``datasets.DatasetError``)
and operating-system errors about a named file become one ``Error: ...`` line, exit code 2 for a
usage error and 1 otherwise. Anything else is a bug in hpsearch or a library: it is not dressed
up as the user's mistake, and its traceback is shown.
"""

from __future__ import annotations

import functools
import os
import sys

import click

from datasets.errors import DatasetError
from tuner.errors import HpsearchError

_verbose = os.environ.get("HPSEARCH_VERBOSE", "").strip().lower() in {"1", "true", "yes"}


class ShownError(click.ClickException):
    """``Error: <message>`` on stderr, with the error's own exit code."""

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code


def user_message(error: BaseException) -> tuple[str, int] | None:
    """(message, exit code) of an error a user can act on; None for a bug."""
    if isinstance(error, HpsearchError):
        return str(error), error.exit_code
    if isinstance(error, DatasetError):
        return str(error), 1
    if isinstance(error, OSError) and error.filename:
        return (f"Cannot use {error.filename}: {error.strerror or error}. Check the path, its "
                "permissions and the free disk space."), 1
    return None


def cli_errors(function):
    """Decorate a click command's function: user errors become ``Error:`` lines (see module)."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception as error:
            shown = user_message(error)
            if shown is None:
                raise
            raise ShownError(*shown) from None

    wrapper.shows_user_errors = True
    return wrapper


def set_verbose(verbose: bool) -> None:
    """``hpsearch --verbose``: show TensorFlow's start-up log and Keras's own output."""
    global _verbose
    _verbose = bool(verbose)


def import_tensorflow() -> None:
    """Import TensorFlow (and Keras) without its start-up log lines unless verbose.

    TensorFlow and absl write oneDNN, CUDA and "All log messages before absl::InitializeLog()"
    lines straight to file descriptor 2 while importing, whatever ``TF_CPP_MIN_LOG_LEVEL`` says, so
    the descriptor is pointed at a temporary file for the import; its content is shown when the
    import fails.
    """
    if "tensorflow" not in sys.modules:
        if _verbose:
            os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"
            import keras  # noqa: F401
        else:
            _import_quietly()
    if not _verbose:
        # KerasTuner prints every failed trial's whole traceback (its DEBUG flag, on by
        # default); the command prints the failure's last line, trials.csv (column message)
        # keeps the traceback.
        import keras_tuner.src.config

        keras_tuner.src.config.DEBUG = False


def _import_quietly() -> None:
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    import tempfile

    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import keras  # noqa: F401
            import keras_tuner  # noqa: F401
        except BaseException:
            os.dup2(saved, 2)
            captured.seek(0)
            sys.stderr.write(captured.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
