"""Errors a user can act on (kept free of TensorFlow imports).

Every command line command shows an ``HpsearchError`` as one ``Error: ...`` line and exits with
its ``exit_code``: 2 for a usage error (a bad argument or a combination that cannot work, found
before anything ran), 1 for everything else. Anything else raised by the library is a bug and is
shown as one (see ``tuner.cli_errors``).
"""


class HpsearchError(Exception):
    """Base class of the errors a user can fix; ``exit_code`` is what the CLI exits with."""

    exit_code = 1


class UsageError(HpsearchError, ValueError):
    """An argument, or a combination of arguments, that cannot work; found before any work."""

    exit_code = 2


class RunDirError(HpsearchError):
    """A run directory cannot be used: not writable, below a file, not a run, or corrupt."""


class CorruptRunError(RunDirError):
    """A file of a run directory cannot be read; the message names it and the repair."""


class RunLockedError(RunDirError, RuntimeError):
    """Another process is working in the same run directory."""


class SearchError(HpsearchError, RuntimeError):
    """The search could not run or stopped (e.g. too many consecutive failed trials)."""


def last_error_line(text: str, limit: int = 300) -> str:
    """The last non-empty line of an error text such as a trial's traceback (what raised it and
    why), stripped and cut to ``limit`` characters; "" for an empty text."""
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return lines[-1][:limit] if lines else ""
