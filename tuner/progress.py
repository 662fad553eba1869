"""One home for how a search reports time: durations as text and the estimate of time left,
shared by the progress lines of ``tune``, ``hpsearch status`` and the other long commands."""

from __future__ import annotations

import math
from typing import Any, Iterable


def format_duration(seconds: float) -> str:
    """Seconds as H:MM:SS ("?" when unknown)."""
    if not math.isfinite(seconds):
        return "?"
    seconds = int(round(max(seconds, 0.0)))
    return f"{seconds // 3600:d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def seconds_left(config, ended: Iterable[dict[str, Any]], parallel: int = 1) -> float:
    """Time left of a search from the trials that ended (``trial_log.jsonl`` entries: their
    ``seconds`` and ``epochs``), NaN before the first one.

    Hyperband's later trials train longer than its first ones, so its time left is counted in
    epochs (the schedule's against those trained); the other tuners' in trials. ``parallel``
    trials run at once (live workers).
    """
    from tuner.config import hyperband_schedule

    ended = [entry for entry in ended if entry.get("seconds") is not None]
    if not ended:
        return math.nan
    seconds = sum(float(entry["seconds"]) for entry in ended)
    parallel = max(int(parallel), 1)
    epochs = sum(int(entry.get("epochs") or 0) for entry in ended)
    if config.uses_hyperband and not config.max_trials and epochs:
        total = hyperband_schedule(config.max_epochs, config.factor, config.hyperband_iterations)[1]
        return seconds / epochs * max(total - epochs, 0) / parallel
    remaining = max(config.trial_budget - len(ended), 0)
    return seconds / len(ended) * remaining / parallel
