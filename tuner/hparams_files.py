"""TensorBoard's HParams data written from a run's own files, for what was not written live.

``hpsearch board`` calls these first, so that a run made without ``--tensorboard`` (or by an
earlier version, or a transfer or clock comparison that ran elsewhere) can be shown: each writes
only what ``RUN/tensorboard/`` lacks, and running it twice writes nothing new. The summaries
themselves are ``tuner.hparams``'s, as written live.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any

from tuner import rundir
from tuner.hparams import (EXPERIMENT_SUFFIX, TrialEvents, comparison_values, end_comparison_head,
                           experiment_summary, tensorboard_dir, transfer_trial_id,
                           write_experiment)
from tuner.rundir import ENDED_STATUSES, SPACE_FILE

__all__ = ["write_comparison_summaries", "write_run_summaries", "write_summaries",
           "write_transfer_summaries"]


def write_summaries(run_dir: str | os.PathLike) -> int:
    """Write what ``run_dir`` lacks, whichever kind of run it is (search, transfer, clock
    comparison); returns the number of trials (trainings, heads) written, 0 for another folder.

    Raises:
        RunDirError: a file of the run cannot be read (the message names it).
    """
    run_dir = Path(run_dir)
    kinds = rundir.run_kinds(run_dir)
    if rundir.SEARCH in kinds:
        return write_run_summaries(run_dir)
    if rundir.TRANSFER in kinds:
        return write_transfer_summaries(run_dir)
    if rundir.COMPARISON in kinds or (run_dir / rundir.HEADS_DIR).is_dir():  # or one running
        return write_comparison_summaries(run_dir)
    return 0


def write_run_summaries(run_dir: str | os.PathLike) -> int:
    """Write the HParams data of a search from its own files, for the trials not yet written.

    For a search run without ``--tensorboard``, or by an earlier version: the experiment from
    ``search_space.json``, and for each ended trial of ``kt/trial_*/trial.json`` its values,
    the metrics of its best epoch (KerasTuner keeps no other), its score and status, dated by
    ``trial_log.jsonl``. A trial that already has a folder in ``RUN/tensorboard/`` (written
    live, or by an earlier call) is left as it is, and so is an experiment already there;
    running it twice writes nothing new.

    Args:
        run_dir: a search run directory (``run.yaml``).

    Returns:
        The number of trials written.

    Raises:
        RunDirError: a file of the run cannot be read (the message names it).
    """
    from tuner.config import read_run_config
    from tuner.results import project_dir, read_trial_log

    run_dir = Path(run_dir)
    config, _ = read_run_config(run_dir)
    root = tensorboard_dir(run_dir)
    trials = rundir.read_trial_states(project_dir(run_dir),
                                      repair_hint=rundir.repair_hint(run_dir))
    ended = [trial for trial in trials if trial.get("status") in ENDED_STATUSES]
    space_path = run_dir / SPACE_FILE
    if space_path.is_file():
        space = rundir.read_json(space_path, "the search space")
    else:  # every trial carries the space as it stood then
        space = trials[-1].get("hyperparameters", {}) if trials else {}
    names = {name for trial in ended for name in _best_metrics(trial)}
    if names and not any(root.glob(f"*{EXPERIMENT_SUFFIX}*")):
        # One written live (--tensorboard) stays: TensorBoard keeps the first it reads.
        write_experiment(root, experiment_summary(space, names, config.objective))
    log = read_trial_log(run_dir)
    written = 0
    for trial in ended:
        trial_id = str(trial["trial_id"])
        folder = root / trial_id
        if folder.exists():
            continue
        entry = log.get(trial_id, {})
        ended_at = _timestamp(entry.get("finished"))
        started = ended_at - float(entry.get("seconds") or 0.0) if ended_at else None
        values = {name: value for name, value in
                  (trial.get("hyperparameters", {}).get("values") or {}).items()
                  if not name.startswith("tuner/")}
        events = TrialEvents(folder, values, started)
        for step, logs in _best_metrics_by_step(trial).items():
            events.epoch(step, logs, wall_time=ended_at)
        score = trial.get("score")
        events.end(str(trial["status"]), None if score is None else float(score), ended_at)
        written += 1
    return written


def write_transfer_summaries(run_dir: str | os.PathLike) -> int:
    """Write the HParams data of a transfer run from its files, for the trainings not yet
    written (as ``transfer --tensorboard`` writes them live: one session per configuration and
    seed, ``<configuration>-seed<n>``): each row of ``transfer.csv`` with its configuration's
    hyperparameters (``configs/``), ``configuration`` and ``seed``, its best epoch's validation
    score, its score (validation; test with ``--final``) and its status (FAILED: diverged).

    Returns:
        The number of trainings written.

    Raises:
        RunDirError: a file of the run cannot be read (the message names it).
    """
    from top_configs import read_top_config

    run_dir = Path(run_dir)
    rows = rundir.read_csv(run_dir / rundir.TRANSFER_CSV, "the rows of a transfer",
                           dtype={"config": str}, keep_default_na=False, na_values=[""])
    settings_path = run_dir / rundir.TRANSFER_FILE
    settings = (rundir.read_yaml(settings_path, "a transfer's settings").get("settings") or {}
                if settings_path.is_file() else {})
    final = bool(settings.get("final"))
    root = tensorboard_dir(run_dir)
    written = 0
    for row in rows.to_dict("records"):
        name, seed = str(row["config"]), int(row["seed"])
        folder = root / transfer_trial_id(name, seed)
        if folder.exists():
            continue
        config_path = run_dir / rundir.TRANSFER_CONFIGS / f"{name.replace('/', '__')}.yaml"
        values = dict(read_top_config(config_path).hyperparameters) if config_path.is_file() else {}
        values.update(configuration=name, seed=seed)
        events = TrialEvents(folder, values)
        objective = str(row.get("objective") or "val_accuracy")
        best = _number(row.get("val_score"))
        epochs = int(_number(row.get("epochs")) or 1)
        if best is not None and not final:
            events.epoch(epochs - 1, {objective: best})
        diverged = str(row.get("diverged")).lower() == "true"
        events.end("FAILED" if diverged else "COMPLETED",
                   _number(row.get("test_score" if final else "val_score")))
        written += 1
    return written


def write_comparison_summaries(run_dir: str | os.PathLike) -> int:
    """Write the HParams data of a clock comparison from its files, for the heads not yet
    written (as ``clock compare --tensorboard`` writes them live): for each finished head
    (``heads/<head>.json``) a session named after it with the head and its hyperparameters, its
    per-epoch training and validation metrics, and its held-out error in minutes as the score
    (lower is better; the median and the shares within 1 and 5 minutes beside it).

    Returns:
        The number of heads written.

    Raises:
        RunDirError: a head's result file cannot be read (the message names it).
    """
    run_dir = Path(run_dir)
    root = tensorboard_dir(run_dir)
    written = 0
    for path in sorted((run_dir / rundir.HEADS_DIR).glob("*.json")):
        label = path.name[:-len(".json")]
        if label.endswith(".head") or (root / label).exists():
            continue  # a model card (<head>.head.json), or a head already written
        result = rundir.read_json(path, "one head's result")
        ended = path.stat().st_mtime
        events = TrialEvents(root / label,
                             comparison_values(label, result.get("hyperparameters") or {}),
                             ended - sum(result.get("epoch_seconds") or []))
        history = result.get("history") or {}
        for epoch in range(max((len(values) for values in history.values()), default=0)):
            events.epoch(epoch, {name: values[epoch] for name, values in history.items()
                                 if epoch < len(values)}, wall_time=ended)
        end_comparison_head(events, result.get("row") or {}, ended)
        written += 1
    return written


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _best_metrics(trial: dict[str, Any]) -> dict[str, tuple[int, float]]:
    """name -> (step, value) of each metric KerasTuner kept for a trial (its best epoch's;
    the mean of the executions' values)."""
    found = {}
    metrics = ((trial.get("metrics") or {}).get("metrics") or {})
    for name, record in metrics.items():
        observations = record.get("observations") or []
        if observations:
            last = observations[-1]
            values = [float(v) for v in (last.get("value") or []) if v is not None]
            if values:
                found[name] = (int(last.get("step") or 0), sum(values) / len(values))
    return found


def _best_metrics_by_step(trial: dict[str, Any]) -> dict[int, dict[str, float]]:
    steps: dict[int, dict[str, float]] = {}
    for name, (step, value) in _best_metrics(trial).items():
        steps.setdefault(step, {})[name] = value
    return dict(sorted(steps.items()))


def _timestamp(text: str | None) -> float | None:
    if not text:
        return None
    try:
        return time.mktime(time.strptime(text, "%Y-%m-%dT%H:%M:%S"))
    except (TypeError, ValueError):
        return None

