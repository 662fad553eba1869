"""A long one-process ``hpsearch tune``: its trials in a child process that is replaced by a fresh
one whenever it retires (``tuner.recycling``), so that the memory TensorFlow keeps of each model
is given back. This process trains nothing and never imports TensorFlow.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any, Callable

from tuner.children import (
    _Child,
    _child_env,
    _result_of_children,
    _stopped_error,
    _trial_log_lines,
)
from tuner.recycling import RETIRED_EXIT_CODE


def run_recycled_search(
    config,
    run_dir: str | os.PathLike,
    data_dir=None,
    overwrite: bool = False,
    progress: Callable[[str], None] | None = print,
    force_direction: bool = False,
    accept_changed_space: bool = False,
    on_event: Callable[[str, dict[str, Any]], None] | None = None,
):
    """Run (or resume) a search as ``run_search`` does, its trials in a child process that is
    replaced by a fresh one whenever it retires (``config.recycle_after`` trials, or above
    ``config.max_memory_mb``; see ``tuner.recycling``): what ``hpsearch tune`` does when
    ``tuner.recycling.replaces_processes(config)``.

    Each child runs ``run_search``, which resumes what its predecessor saved: no trial is lost or
    trained again. The progress lines are those of one ``run_search`` (a replacement's set-up
    lines are left out, its elapsed time goes on). Ctrl-C or SIGTERM stops the child, which
    leaves the run directory as a kill does (resumable).

    Args:
        config, run_dir, data_dir, overwrite, progress, force_direction, accept_changed_space:
            as for ``run_search`` (a space, data or observers of this process cannot cross
            into a child: name them in ``config``).
        on_event: called with ("search", event) for each ``tuner.recycling.Retirement`` event
            of the children (their first trial, each trial's resident memory, retirement).

    Returns:
        A ``tuner.export.SearchResult``, as ``run_search``'s.

    Raises:
        As ``run_search`` (the child's error, with its exit code); SearchError when the child
        crashes.
    """
    started = time.monotonic()
    progress = progress or (lambda line: None)
    run_dir = Path(run_dir)
    log_before = len(_trial_log_lines(run_dir)) if not overwrite else 0
    env = _child_env()
    spec = {"role": "search", "config": config.to_dict(), "run_dir": str(run_dir),
            "data_dir": [str(d) for d in data_dir or []], "force_direction": force_direction,
            "accept_changed_space": accept_changed_space}
    clock: dict[str, float] = {}

    def event(name: str, fields: dict[str, Any]) -> None:
        if fields["event"] == "ready":
            clock.setdefault("search_started", fields["search_started"])
        if on_event is not None:
            on_event(name, fields)

    replacement = False
    with _stopping_on_sigterm():
        while True:
            child = _Child("search", {
                **spec, "overwrite": overwrite and not replacement, "replacement": replacement,
                "search_started": clock.get("search_started"),
            }, env, progress, prefixed=False, on_event=event).start()
            try:
                code = child.wait()
            finally:
                child.stop()
            if code != RETIRED_EXIT_CODE:
                break
            replacement = True
    if code != 0:
        raise _stopped_error(child, code, "search process")
    return _result_of_children(run_dir, log_before, started)


@contextlib.contextmanager
def _stopping_on_sigterm():
    """SIGTERM raises KeyboardInterrupt here, as Ctrl-C does, so that the child is stopped on
    the way out (SIGTERM's default would end this process alone; the kernel would then kill the
    child, see ``tuner.children._die_with_launcher``). Only the main thread can set a handler."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
