"""Exporting a search's results: ``trials.csv``, the best configurations as top-config YAML files,
and the ``SearchResult`` a search call returns. No TensorFlow needed, so the ``--workers``
launcher, which trains nothing, never imports it.

Works on an hpsearch search run and on a plain KerasTuner project alike (see ``tuner.rundir``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import time
from pathlib import Path
from typing import Any

import pandas as pd

from top_configs import TopConfig, strip_internal_keys, write_top_config
from tuner import rundir
from tuner.config import RunConfig
from tuner.errors import UsageError, last_error_line
from tuner.rundir import TOP_DIR, TRIALS_CSV
from tuner.results import (
    completed_ranking,
    configuration_epochs,
    read_search,
    read_trial_values,
    read_trials,
)

TOP_K = 3  # the top configurations a search exports to ``top_configs/``


def top_configs_of(trials: pd.DataFrame, hp_values: dict[str, dict[str, Any]], space: str,
                   dataset: str, objective: str, direction: str, head: str | None = None,
                   count: int = TOP_K, init_from: str | None = None,
                   space_args: dict[str, Any] | None = None) -> list[TopConfig]:
    """The best ``count`` distinct configurations among the COMPLETED trials, as TopConfigs
    (``tuner/*`` keys stripped; epochs up to the best epoch, counting those a promoted Hyperband
    trial inherited from its parent). A Hyperband trial and the trials it was promoted from share
    their hyperparameters: only the best-scoring of them is exported. ``init_from``: the trained
    run a fine-tune's trials started from, recorded in each configuration."""
    top, seen = [], []
    for _, row in completed_ranking(trials, direction).iterrows():
        if len(top) == count:
            break
        stored = hp_values[row["trial_id"]]
        values = strip_internal_keys(stored)
        if values in seen:
            continue
        seen.append(values)
        epochs = configuration_epochs(row["best_step"], stored.get("tuner/initial_epoch"),
                                      row["epochs"]) or 0
        top.append(TopConfig(
            rank=len(top) + 1,
            search_space=space,
            dataset=dataset,
            objective=objective,
            direction=direction,
            score=float(row["score"]),
            trial_id=str(row["trial_id"]),
            epochs=epochs,
            hyperparameters=values,
            head=head,
            init_from=init_from,
            space_args=dict(space_args or {}),
        ))
    return top


def write_top_configs(top: list[TopConfig], out_dir: str | os.PathLike) -> list[Path]:
    """``rank_<n>.yaml`` per configuration in ``out_dir``. Every file is replaced atomically and
    stale ranks are removed only after the new ones exist, so a kill leaves complete files."""
    out_dir = Path(out_dir)
    rundir.make_dirs(out_dir, "output folder")
    paths = []
    for config in top:
        path = out_dir / f"rank_{config.rank}.yaml"
        try:
            paths.append(write_top_config(path, config))
        except OSError as error:
            raise rundir.RunDirError(f"Cannot write {path}: {error.strerror or error}.") from None
    for stale in out_dir.glob("rank_*.yaml"):
        if stale not in paths:
            with contextlib.suppress(OSError):
                stale.unlink()
    return paths


def export_top_configs(run_dir: str | os.PathLike, out_dir: str | os.PathLike,
                       count: int = TOP_K) -> list[Path]:
    """Write the best ``count`` configurations of a search run or KerasTuner project as YAML.

    A KerasTuner project's configurations name ``keras_tuner`` as their search space and
    ``unknown`` as their dataset (its files do not say), and the objective found by
    ``tuner.results.read_search``.

    Args:
        run_dir: a directory written by ``hpsearch tune``, or a KerasTuner project folder.
        out_dir: where ``rank_1.yaml``... go (created when missing).
        count: how many (default 3).

    Returns:
        The files written, best first (fewer than ``count`` when fewer trials completed).

    Raises:
        UsageError: ``count`` is below 1.
        RunDirError: ``run_dir`` is neither kind of folder, or a file in it cannot be read.
    """
    if count < 1:
        raise UsageError(f"--top must be at least 1, got {count}.")
    search = read_search(run_dir, command="export")
    settings = search.settings
    space = settings["space"] if search.kind == rundir.SEARCH else "keras_tuner"
    top = top_configs_of(search.trials, read_trial_values(run_dir), space,
                         settings.get("dataset") or "unknown", search.objective,
                         search.direction, settings.get("head"), count,
                         settings.get("init_from"))
    return write_top_configs(top, out_dir)


@dataclasses.dataclass
class SearchResult:
    """What a finished (or resumed) search returns.

    Attributes:
        run_dir: the run directory.
        config: the run configuration (objective and direction resolved).
        trials: the trials table (see ``tuner.results.read_trials``).
        top_configs: the exported best configurations, best first.
        textbook_score: the best score of the textbook model's trials (NaN if it did not finish).
        new_trials: trials run by this call (0 when the budget was already spent).
        wall_seconds: wall time of this call, from entry to return (data loading included).
        training_seconds: seconds this call spent inside ``fit`` (the trials' training).
        precision: the Keras dtype policy the trials trained under (``auto`` resolved).
    """

    run_dir: Path
    config: RunConfig
    trials: Any
    top_configs: list[TopConfig]
    textbook_score: float
    new_trials: int
    wall_seconds: float = math.nan
    training_seconds: float = math.nan
    precision: str = "float32"
    # What the search's first trial is called: "textbook" for hpsearch's classifiers, else
    # "default" (the space's default point).
    baseline_name: str = "default"

    def best_models(self, count: int | None = None) -> list:
        """The trained models of the best trials, best first: Keras models with the weights of
        the epoch each trial's score came from (``keep_models``'s files, else rebuilt from the
        trials' checkpoints; see ``tuner.models.load_best_models``)."""
        from tuner.models import load_best_models

        return load_best_models(self.run_dir, count)

    @property
    def overhead(self) -> float:
        """Wall time over training time of this call: 1.0 means no time outside ``fit``."""
        if not self.training_seconds or not math.isfinite(self.training_seconds):
            return math.nan
        return self.wall_seconds / self.training_seconds

    @property
    def failure(self) -> str | None:
        """Why the search has nothing to show: every trial of the run directory failed, and this
        says so with the first failure's last line; None when a trial completed or none ended.

        A call that ran nothing (the budget was spent before) reports it too: the run still has
        nothing to show, and running the same command again must not turn its failure into a
        success for a script that checks the exit code."""
        trials = self.trials
        if not len(trials) or (trials["status"] == "COMPLETED").any():
            return None
        failed = trials[trials["status"] == "FAILED"]
        if failed.empty:
            return None
        message = failed["message"].iloc[0] if "message" in failed else None
        last = last_error_line(message) if isinstance(message, str) else ""  # empty cell: NaN
        reason = f" Trial {failed['trial_id'].iloc[0]}: {last}" if last else ""
        return (f"Every trial failed ({len(failed)} of {len(trials)}), so nothing was exported."
                f"{reason} The full error of each trial is in trials.csv (column message); "
                "fix its cause and run the same command with --overwrite.")


def search_result(run_dir, config, trials, top, new_trials, started, training_seconds,
                  precision) -> SearchResult:
    """The SearchResult of a call that started at ``started`` (``time.monotonic()``); the
    textbook score is read from the trials table."""
    textbook_rows = trials[trials["is_textbook"] & (trials["status"] == "COMPLETED")]
    textbook_score = math.nan
    if not textbook_rows.empty:
        scores = textbook_rows["score"].astype(float)
        textbook_score = float(scores.max() if config.direction == "max" else scores.min())
    return SearchResult(
        run_dir=run_dir,
        config=config,
        trials=trials,
        top_configs=top,
        textbook_score=textbook_score,
        new_trials=new_trials,
        wall_seconds=time.monotonic() - started,
        training_seconds=training_seconds,
        precision=precision,
        baseline_name=_baseline_name(run_dir),
    )


def _baseline_name(run_dir) -> str:
    path = Path(run_dir) / rundir.RUN_FILE
    if not path.is_file():
        return "default"
    return str(rundir.read_yaml(path, "an hpsearch run configuration").get("baseline_name")
               or "default")


def export_results(
    run_dir: Path, config: RunConfig, textbook: dict[str, Any] | None = None
) -> tuple[Any, list[TopConfig]]:
    """Rewrite ``trials.csv`` and ``top_configs/rank_*.yaml`` from the run directory's trials.

    Each file is replaced atomically and the new ranks are written before stale ones are
    removed, so a kill at any moment leaves complete files.
    """
    trials = read_trials(run_dir, textbook)
    rundir.write_csv(run_dir / TRIALS_CSV, trials)
    top = top_configs_of(trials, read_trial_values(run_dir), config.space, config.dataset,
                         config.objective, config.direction, config.head, TOP_K,
                         config.init_from, config.space_args)
    write_top_configs(top, run_dir / TOP_DIR)
    return trials, top
