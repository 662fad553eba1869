"""Trials in processes that are replaced before their memory grows (``tune --recycle-after N``,
``--max-memory MB``).

TensorFlow keeps part of every model a process trains, and only the end of the process frees it
(docs/benchmarks/2026-12-07-memory.md): a long search in one process grows without bound. So the
process that trains retires after ``RunConfig.recycle_after`` trials, or after a trial that leaves
it above ``RunConfig.max_memory_mb`` of resident memory, and a fresh one takes its place:

* the retiring process ends its trial first (saved in the run directory, or reported to the
  chief), then exits with ``RETIRED_EXIT_CODE``; nothing is lost, nothing is trained again;
* the process that started it starts a fresh one at once, which resumes the search: the launcher
  of ``--workers`` (``tuner.parallel.run_parallel_search``) a worker under the same id, and a
  one-process search (``tuner.recycled_search.run_recycled_search``) ``run_search`` in a new
  child, which reloads the run directory as any resume does;
* the fresh process stays quiet until its first trial (its set-up lines were said once) and goes
  on with the search's elapsed time, so the output reads as that of one process.

This module is the training process's side (``Retirement``) and the rule; it imports no
TensorFlow, so a launcher can read it.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

from tuner.observers import TrialObserver
from tuner.results import read_trial_log

__all__ = ["RETIRED_EXIT_CODE", "ProcessRetired", "Retirement", "replaces_processes",
           "resident_memory_mb"]

# Exit status of a process that retired: sysexits.h's EX_TEMPFAIL ("temporary failure, try
# again"): its launcher starts a fresh process in its place; it is not a crash.
RETIRED_EXIT_CODE = 75


class ProcessRetired(Exception):
    """This process ran its share of the search and should exit with ``RETIRED_EXIT_CODE``: its
    last trial is saved, and a fresh process goes on. Not an ``HpsearchError``: it is no failure,
    and no user is shown it."""


def resident_memory_mb() -> float | None:
    """This process's resident memory (``VmRSS`` in ``/proc/self/status``) in MB, or None where
    it cannot be read (not Linux)."""
    try:
        with open("/proc/self/status", encoding="utf-8", errors="replace") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def replaces_processes(config) -> bool:
    """Whether a search of ``config`` may replace the process that trains it: a memory limit is
    set, or its budget is more trials than one process runs. A search that cannot runs in the
    caller's own process, which saves a process start."""
    return config.max_memory_mb is not None or 0 < config.recycle_after < config.trial_budget


class Retirement(TrialObserver):
    """One training process's part in a search whose processes are replaced.

    Told of every trial (an observer), it counts them and reads the process's memory after each;
    ``after_trial``, called once the trial is saved and exported, raises ``ProcessRetired`` when
    the process is due: ``recycle_after`` trials run here, or more than ``max_memory_mb`` resident
    (unless the search has no trial left to run, or a fresh process would hold as much: one above
    the limit after its first trial goes on, with a warning). ``report`` is told, as dicts, of
    the process's first trial (``ready``), of every trial's memory (``trial``), and of its
    retirement (``retired``), each with ``at``, a ``time.monotonic()`` value (Linux's monotonic
    clock is shared by the processes of a machine).

    Args:
        config: the search's RunConfig (its ``recycle_after``, ``max_memory_mb`` and budget).
        run_dir: the run directory (its trial log says how many trials have ended).
        report: called with each event (default: nobody).
        search_started: the ``time.monotonic()`` at which the search's first process began:
            a replacement goes on with its elapsed time (default None: this is the first).
        show_set_up: pass on the progress lines written before the first trial (default True;
            a replacement's would repeat its predecessor's).
    """

    def __init__(self, config, run_dir, report: Callable[[dict[str, Any]], None] | None = None,
                 search_started: float | None = None, show_set_up: bool = True):
        self.recycle_after = int(config.recycle_after)
        self.max_memory_mb = config.max_memory_mb
        self.budget = config.trial_budget
        self.run_dir = Path(run_dir)
        self.report = report or (lambda event: None)
        self.search_started = search_started
        self.show_set_up = show_set_up
        self.trials = 0
        self._searching = False
        self._due: str | None = None
        self._memory_rule = self.max_memory_mb is not None
        self._progress: Callable[[str], None] = lambda line: None

    def progress(self, show: Callable[[str], None]) -> Callable[[str], None]:
        """``show``, silent before the first trial when the set-up lines are not to be shown."""
        self._progress = show

        def gated(line: str) -> None:
            if self._searching or self.show_set_up:
                show(line)

        return gated

    def attach(self, tuner) -> None:
        """Called with the process's tuner once it is set up: a replacement's progress lines go
        on with the elapsed time of the search's first process."""
        if self.search_started is None:
            self.search_started = tuner._search_started
        else:
            tuner._search_started = self.search_started

    def search_begin(self, run_dir, config, space) -> None:
        self._searching = True

    def trial_begin(self, trial_id, values) -> None:
        if not self.trials:
            self.report({"event": "ready", "at": time.monotonic(),
                         "search_started": self.search_started})

    def trial_end(self, trial_id, status, score, values) -> None:
        self.trials += 1
        memory = resident_memory_mb()
        self.report({"event": "trial", "at": time.monotonic(), "trial_id": trial_id,
                     "trials": self.trials, "rss_mb": memory})
        self._due = self._reason(memory)

    def _reason(self, memory: float | None) -> str | None:
        if self.recycle_after and self.trials >= self.recycle_after:
            return f"{self.trials} trials run"
        if not self._memory_rule or memory is None or memory <= self.max_memory_mb:
            return None
        if self.trials == 1:
            self._memory_rule = False
            if self.show_set_up:
                self._progress(
                    f"Warning: this process holds {memory:.0f} MB after its first trial, more "
                    f"than --max-memory {self.max_memory_mb} MB: a fresh process would too, so "
                    f"it is not replaced for its memory. Raise --max-memory above {memory:.0f}.")
            return None
        return f"{memory:.0f} MB resident, above {self.max_memory_mb} MB"

    def after_trial(self) -> None:
        """Raise ``ProcessRetired`` when the trial that just ended made this process due and
        the search has trials left (a fresh process would find none)."""
        if self._due is None or len(read_trial_log(self.run_dir)) >= self.budget:
            return
        self.report({"event": "retired", "at": time.monotonic(), "reason": self._due,
                     "trials": self.trials, "rss_mb": resident_memory_mb()})
        raise ProcessRetired(f"retired: {self._due}")
