"""A live view of a search, running or finished, from its files alone (``hpsearch status``).

Every file read is written atomically by the search (trial files, heartbeats, the trial log), so
the view can be taken at any moment, by any process, while the chief and workers run.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from pathlib import Path
from typing import Any

from tuner import rundir
from tuner.config import read_run_config
from tuner.progress import format_duration, seconds_left
from tuner.results import read_trial_log

__all__ = ["SearchStatus", "format_status", "search_status"]

# A worker not seen for this long is shown as gone (its heartbeat is rewritten every 2 s).
STALE_SECONDS = 60.0


@dataclasses.dataclass
class SearchStatus:
    """Where a search stands.

    Attributes:
        run_dir: the run directory.
        budget: trials the search will run in all.
        completed, failed: finished trials by status.
        running: trials running now: dicts of trial_id, worker, seconds (so far), epoch.
        workers: one dict per worker of a distributed search: tuner_id, host, state, trial_id,
            seen (seconds since its last heartbeat), alive, lost (why a worker that did not
            finish is gone: its process exited, it lost its chief, or its heartbeat is stale;
            "" otherwise). A lost worker's trial is not among ``running``.
        best_trial, best_score: the best COMPLETED trial so far (None, NaN when none).
        objective, direction: what is optimized.
        seconds_per_trial: mean seconds of the finished trials (NaN when none).
        seconds_left: estimated time to the end of the budget (NaN when unknown).
        chief: the chief's address, when the search is distributed.
        active: an hpsearch process works in the run now (holds its lock, or a worker's
            heartbeat is fresh); a search that is neither finished nor active has stopped.
    """

    run_dir: Path
    budget: int
    completed: int
    failed: int
    running: list[dict[str, Any]]
    workers: list[dict[str, Any]]
    best_trial: str | None
    best_score: float
    objective: str
    direction: str
    seconds_per_trial: float
    seconds_left: float
    chief: str | None
    active: bool = True

    @property
    def finished(self) -> bool:
        return not self.running and self.completed + self.failed >= self.budget

    @property
    def stopped(self) -> bool:
        """Neither finished nor worked on: killed, or never resumed (a RUNNING trial there was
        interrupted and runs again on a resume)."""
        return not self.active and not self.finished


def search_status(run_dir: str | os.PathLike, now: float | None = None) -> SearchStatus:
    """Read a search run directory's state.

    Raises:
        RunConfigError / CorruptRunError: ``run_dir`` is not a search run or a file is unreadable.
    """
    from tuner.distributed import heartbeat_gone, read_heartbeats

    run_dir = Path(run_dir)
    now = time.time() if now is None else now
    config, _ = read_run_config(run_dir)
    states = rundir.read_trial_states(run_dir / rundir.PROJECT_NAME)
    log = read_trial_log(run_dir)
    beats = read_heartbeats(run_dir)
    by_trial = {str(b.get("trial_id")): b for b in beats.values()
                if b.get("state") == "training" and not heartbeat_gone(b, STALE_SECONDS, now)}
    completed = [s for s in states if s.get("status") == "COMPLETED"]
    failed = [s for s in states if s.get("status") in ("FAILED", "INVALID")]
    active = (rundir.lock_holder(run_dir) is not None
              or any(not heartbeat_gone(b, STALE_SECONDS, now) for b in beats.values()))
    running = []
    for state in states:
        if state.get("status") != "RUNNING" or not active:
            continue
        trial_id = str(state["trial_id"])
        beat = by_trial.get(trial_id)
        if beats and beat is None:
            continue  # RUNNING on disk but no live worker holds it: waiting to be run again
        running.append({
            "trial_id": trial_id,
            "worker": beat.get("tuner_id") if beat else "-",
            "seconds": now - float(beat["trial_started"]) if beat and beat.get("trial_started")
            else math.nan,
            "epoch": beat.get("epoch") if beat else None,
        })
    workers = []
    for tuner_id, beat in sorted(beats.items()):
        gone = heartbeat_gone(beat, STALE_SECONDS, now)
        workers.append({
            "tuner_id": tuner_id, "host": beat.get("host"), "state": beat.get("state"),
            "trial_id": beat.get("trial_id"), "seen": now - float(beat.get("updated") or 0),
            "alive": not gone, "trials_done": beat.get("trials_done", 0),
            "lost": gone if beat.get("state") != "done" else "",
        })
    best_trial, best_score = None, math.nan
    scored = [s for s in completed if s.get("score") is not None]
    if scored:
        pick = max if config.direction == "max" else min
        best = pick(scored, key=lambda s: float(s["score"]))
        best_trial, best_score = str(best["trial_id"]), float(best["score"])
    seconds = [float(e["seconds"]) for e in log.values() if e.get("seconds") is not None]
    per_trial = sum(seconds) / len(seconds) if seconds else math.nan
    parallel = max(sum(w["alive"] and w["state"] != "done" for w in workers), 1)
    left = seconds_left(config, log.values(), parallel)
    distributed = run_dir / rundir.DISTRIBUTED_FILE
    chief = None
    if distributed.is_file():
        chief = rundir.read_json(distributed, "the chief's address").get("address")
    return SearchStatus(run_dir, config.trial_budget, len(completed), len(failed), running,
                        workers, best_trial, best_score, config.objective or "",
                        config.direction or "", per_trial, left, chief, active)


def format_status(status: SearchStatus) -> str:
    """The status as a few lines of text (what ``hpsearch status`` prints)."""
    done = status.completed + status.failed
    state = ("finished" if status.finished else "stopped" if status.stopped
             else "running" if status.running else "waiting")
    lines = [
        f"{status.run_dir}: {state}. {done}/{status.budget} trials done ({status.completed} "
        f"completed, {status.failed} failed), {len(status.running)} running"
        + (f"; chief at {status.chief}" if status.chief else "") + ".",
    ]
    if status.stopped:
        lines.append("No hpsearch process works in it (interrupted, or not resumed yet): run "
                     "the same `hpsearch tune` command again to resume it.")
    if status.best_trial is not None:
        lines.append(f"Best so far: trial {status.best_trial}, {status.objective} = "
                     f"{status.best_score:.4f} ({status.direction})")
    if math.isfinite(status.seconds_per_trial):
        left = format_duration(status.seconds_left)
        lines.append(f"Time per trial: {status.seconds_per_trial:.1f} s; time left ~{left}")
    for trial in status.running:
        seconds = f", {trial['seconds']:.0f} s" if math.isfinite(trial["seconds"]) else ""
        epoch = f", epoch {trial['epoch']}" if trial.get("epoch") else ""
        lines.append(f"  running: trial {trial['trial_id']} on {trial['worker']}{seconds}{epoch}")
    for worker in status.workers:
        if worker.get("lost"):
            left = f", trial {worker['trial_id']} not finished" if worker["trial_id"] else ""
            doing = f"worker lost ({worker['lost']}){left}"
        else:
            doing = f"trial {worker['trial_id']}" if worker["trial_id"] else worker["state"]
        lines.append(f"  worker {worker['tuner_id']} on {worker['host']}: {doing}, "
                     f"{worker['trials_done']} trial(s) done, seen {worker['seen']:.0f} s ago")
    return "\n".join(lines)
