"""Exporting a search's best configurations as top-config YAML files (no TensorFlow needed).

Works on an hpsearch search run and on a plain KerasTuner project alike (see ``tuner.rundir``).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

import pandas as pd

from top_configs import TopConfig, strip_internal_keys, write_top_config
from tuner import rundir
from tuner.errors import UsageError
from tuner.results import completed_ranking, read_search, read_trial_values

TOP_K = 3  # the top configurations a search exports to ``top_configs/``


def top_configs_of(trials: pd.DataFrame, hp_values: dict[str, dict[str, Any]], space: str,
                   dataset: str, objective: str, direction: str, head: str | None = None,
                   count: int = TOP_K, init_from: str | None = None) -> list[TopConfig]:
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
        best_step = row["best_step"]
        if pd.notna(best_step):
            epochs = int(stored.get("tuner/initial_epoch", 0)) + int(best_step) + 1
        else:
            epochs = int(row["epochs"] or 0)
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
