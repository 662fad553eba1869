"""Errors of running searches that a user can act on (kept free of TensorFlow imports)."""


class RunLockedError(RuntimeError):
    """Another process is searching in the same run directory."""


class SearchError(RuntimeError):
    """The search could not run or stopped (e.g. too many consecutive failed trials)."""
