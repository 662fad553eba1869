"""What a search found, trial by trial and overall, as DataFrames.

The optimization history (best score so far against trials and against epochs spent), the best
configuration against the textbook model, the top configurations, one summary row per run for
comparing runs, and the aggregate of a transfer run. All pure: tables in, tables out.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from analysis.ranges import _check_direction, ranked_configurations
from tuner.results import (completed_ranking, configuration_epochs, hyperparameter_column,
                           hyperparameter_columns, same_value)

HISTORY_COLUMNS = ["trial_number", "trial_id", "status", "score", "best_so_far", "is_new_best",
                   "epochs", "cumulative_epochs", "seconds", "cumulative_seconds", "bracket",
                   "round", "is_textbook"]
TRANSFER_SCORES = ["source_score", "val_accuracy", "test_accuracy"]


def optimization_history(trials: pd.DataFrame, direction: str) -> pd.DataFrame:
    """The search's progress: one row per trial in the order the trials were run.

    Columns: ``trial_number`` (1-based), ``trial_id``, ``status``, ``score`` (NaN unless
    COMPLETED), ``best_so_far`` (best COMPLETED score up to this trial, NaN before the first),
    ``is_new_best``, ``epochs`` (trained in this trial, NaN when unknown), ``cumulative_epochs``,
    ``seconds``, ``cumulative_seconds`` (the sums of the known ones so far; NaN until one is
    known: a plain KerasTuner project records neither), ``bracket``, ``round``, ``is_textbook``.
    Failed and running trials keep their row: they spent epochs.

    Args:
        trials: a trials table (``tuner.results.read_trials``), in creation order.
        direction: "max" or "min".
    """
    _check_direction(direction)
    if trials.empty:
        return pd.DataFrame(columns=HISTORY_COLUMNS)
    completed = (trials["status"] == "COMPLETED") & np.isfinite(trials["score"].astype(float))
    score = trials["score"].astype(float).where(completed)
    best = (score.cummax() if direction == "max" else score.cummin()).ffill()
    previous = best.shift(1)
    is_new_best = completed & (previous.isna() | (best != previous))
    epochs = pd.to_numeric(trials["epochs"], errors="coerce").astype(float)
    seconds = pd.to_numeric(trials["seconds"], errors="coerce").astype(float)
    return pd.DataFrame({
        "trial_number": np.arange(1, len(trials) + 1),
        "trial_id": trials["trial_id"].to_numpy(),
        "status": trials["status"].to_numpy(),
        "score": score.to_numpy(),
        "best_so_far": best.to_numpy(),
        "is_new_best": is_new_best.to_numpy(dtype=bool),
        "epochs": pd.array(epochs, dtype="Int64"),
        "cumulative_epochs": pd.array(_known_so_far(epochs), dtype="Int64"),
        "seconds": seconds.to_numpy(),
        "cumulative_seconds": _known_so_far(seconds).to_numpy(),
        "bracket": trials["bracket"].to_numpy() if "bracket" in trials else math.nan,
        "round": trials["round"].to_numpy() if "round" in trials else math.nan,
        "is_textbook": trials["is_textbook"].astype(bool).to_numpy()
        if "is_textbook" in trials else False,
    }, columns=HISTORY_COLUMNS)


def _known_so_far(values: pd.Series) -> pd.Series:
    return values.fillna(0).cumsum().where(values.notna().cummax())


def textbook_score(trials: pd.DataFrame, direction: str) -> float:
    """The textbook model's best COMPLETED score (NaN when it has none)."""
    _check_direction(direction)
    if "is_textbook" not in trials or trials.empty:
        return math.nan
    ranking = completed_ranking(trials[trials["is_textbook"].astype(bool)], direction)
    return float(ranking["score"].iloc[0]) if not ranking.empty else math.nan


def best_vs_textbook(trials: pd.DataFrame, direction: str,
                     textbook_values: dict[str, Any] | None = None) -> pd.DataFrame:
    """The best COMPLETED configuration next to the textbook model.

    Rows: ``score``, ``difference`` (best minus textbook, so positive is better for "max"),
    ``trial_id``, ``epochs`` (as exported to ``top_configs/``: see
    ``tuner.results.configuration_epochs``), then every hyperparameter either of them uses.
    Columns: ``item``, ``textbook``, ``best``, ``changed`` (the values differ, compared as values,
    not as shown). Missing values are empty strings.

    Args:
        trials: a trials table.
        direction: "max" or "min".
        textbook_values: the textbook hyperparameters (``run.yaml``'s ``textbook_values``); default:
            those of the textbook trial in the table.
    """
    ranking = ranked_configurations(trials, direction)
    names = hyperparameter_columns(trials)
    best = ranking.iloc[0] if not ranking.empty else None
    textbook_rows = completed_ranking(trials[trials["is_textbook"].astype(bool)], direction) \
        if "is_textbook" in trials else trials.iloc[0:0]
    if textbook_rows.empty and "is_textbook" in trials:
        textbook_rows = trials[trials["is_textbook"].astype(bool)]
    textbook = textbook_rows.iloc[0] if not textbook_rows.empty else None
    textbook_value = textbook_score(trials, direction)
    best_value = float(best["score"]) if best is not None else math.nan
    rows = [
        ("score", textbook_value, best_value),
        ("difference", "", best_value - textbook_value
         if math.isfinite(best_value) and math.isfinite(textbook_value) else math.nan),
        ("trial_id", _field(textbook, "trial_id"), _field(best, "trial_id")),
        ("epochs", _epochs(textbook), _epochs(best)),
    ]
    if textbook_values is None and textbook is not None:
        textbook_values = {name: textbook[name] for name in names if _present(textbook[name])}
    # run.yaml names hyperparameters as KerasTuner does; the table as read_trials does.
    textbook_values = {hyperparameter_column(name): value
                       for name, value in (textbook_values or {}).items()}
    for name in names + [name for name in textbook_values if name not in names]:
        before = textbook_values.get(name)
        after = best[name] if best is not None and name in best.index else None
        if not _present(before) and not _present(after):
            continue
        rows.append((name, before, after))
    table = pd.DataFrame(rows, columns=["item", "textbook", "best"])
    # Raw values: 0.01 against 0.010004 is a change even where both show as "0.01".
    table["changed"] = [
        item not in ("score", "difference", "trial_id", "epochs")
        and not same_value(_plain(before), _plain(after))
        for item, before, after in rows
    ]
    for column in ("textbook", "best"):
        table[column] = table[column].map(
            lambda value: _plain(value) if _present(value) else "").astype(object)
    return table


def top_configurations(trials: pd.DataFrame, direction: str, count: int = 3) -> pd.DataFrame:
    """The best ``count`` configurations (default 3, as exported to ``top_configs/``), one column
    each (``rank_1``...), with rows ``score``, ``trial_id``, ``epochs`` (the exported epochs:
    ``tuner.results.configuration_epochs``) and every hyperparameter (empty where inactive), plus
    an ``item`` column naming the rows."""
    ranking = ranked_configurations(trials, direction).head(count)
    names = [name for name in hyperparameter_columns(trials) if ranking[name].notna().any()]
    table = {"item": ["score", "trial_id", "epochs"] + names}
    for rank, (_, row) in enumerate(ranking.iterrows(), start=1):
        cells = {**row.to_dict(), "epochs": _epochs(row)}
        table[f"rank_{rank}"] = [
            _plain(cells[item]) if _present(cells[item]) else "" for item in table["item"]
        ]
    return pd.DataFrame(table).astype(object)


def run_summary(name: str, config: dict[str, Any], trials: pd.DataFrame) -> dict[str, Any]:
    """One row for the comparison of runs: what was searched, how long, the best and textbook.

    Args:
        name: how the run is called in the report.
        config: ``run.yaml``'s ``config`` mapping (needs ``direction``; uses ``space``, ``dataset``,
            ``tuner``, ``head``, ``objective`` when present).
        trials: the run's trials table.
    """
    direction = config.get("direction") or "max"
    ranking = ranked_configurations(trials, direction)
    best = float(ranking["score"].iloc[0]) if not ranking.empty else math.nan
    textbook = textbook_score(trials, direction)
    epochs = pd.to_numeric(trials.get("epochs", pd.Series(dtype=float)), errors="coerce")
    seconds = pd.to_numeric(trials.get("seconds", pd.Series(dtype=float)), errors="coerce")
    improvement = best - textbook if direction == "max" else textbook - best
    return {
        "run": name, "space": config.get("space"), "dataset": config.get("dataset"),
        "tuner": config.get("tuner"), "head": config.get("head") or "",
        "objective": config.get("objective"), "direction": direction,
        "trials": len(trials), "completed": int((trials["status"] == "COMPLETED").sum())
        if not trials.empty else 0,
        "best_score": best, "textbook_score": textbook,
        "improvement": improvement if math.isfinite(improvement) else math.nan,
        "best_trial": str(ranking["trial_id"].iloc[0]) if not ranking.empty else "",
        # NaN when no trial recorded it (a plain KerasTuner project), never a made-up 0.
        "epochs_trained": int(epochs.sum()) if epochs.notna().any() else math.nan,
        "minutes": float(seconds.sum(min_count=1)) / 60.0,
    }


def transfer_summary(transfer: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation over seeds per transferred configuration.

    Args:
        transfer: ``transfer.csv`` of a transfer run, one row per configuration and seed, with
            ``config`` and the score columns ``source_score``, ``val_accuracy``, ``test_accuracy``
            (those present are used) and optionally ``rank``, ``trial_id``, ``epochs``, ``params``,
            ``seconds_per_epoch``.

    Returns:
        One row per configuration in rank order (the textbook model last): ``config``, ``rank``,
        ``seeds``, ``config_id`` (when the table has it: two configurations can share a
        name), ``<score>_mean`` and ``<score>_std`` (NaN with one seed: undefined, as in
        ``summary.csv``) for each score, and the means of ``epochs``, ``params``,
        ``seconds_per_epoch`` when present. Rows are grouped by ``config_id`` (trial id and hash
        of the values) when the table has it, so one name never averages two models.

    Raises:
        ValueError: the ``config`` column is missing.
    """
    if "config" not in transfer.columns:
        raise ValueError(
            f"A transfer table needs a 'config' column; found columns {list(transfer.columns)}."
        )
    scores = [column for column in TRANSFER_SCORES if column in transfer.columns]
    extras = [column for column in ("epochs", "params", "seconds_per_epoch")
              if column in transfer.columns]
    rows = []
    key = "config_id" if "config_id" in transfer.columns and transfer["config_id"].notna().all() \
        else "config"
    for _, group in transfer.groupby(key, sort=False):
        rank = pd.to_numeric(group.get("rank", pd.Series(dtype=float)), errors="coerce").min()
        row = {"config": group["config"].iloc[-1]}
        if key == "config_id":
            row["config_id"] = str(group["config_id"].iloc[0])
        row.update(rank=rank, seeds=len(group))
        for column in scores:
            values = pd.to_numeric(group[column], errors="coerce")
            row[f"{column}_mean"] = values.mean()
            row[f"{column}_std"] = values.std(ddof=1) if values.count() > 1 else math.nan
        for column in extras:
            row[column] = pd.to_numeric(group[column], errors="coerce").mean()
        rows.append(row)
    summary = pd.DataFrame(rows)
    if summary.empty:
        return summary
    summary["_order"] = summary["rank"].fillna(np.inf)
    summary = summary.sort_values(["_order", "config"], kind="stable").drop(columns="_order")
    return summary.reset_index(drop=True)


def _epochs(row):
    if row is None:
        return None
    return configuration_epochs(row.get("best_step"), row.get("initial_epoch"), row.get("epochs"))


def _field(row, name):
    return row[name] if row is not None and name in row.index else None


def _present(value) -> bool:
    if value is None:
        return False
    try:
        return not pd.isna(value)
    except (TypeError, ValueError):
        return True


def _plain(value):
    if isinstance(value, np.generic):
        return value.item()
    return value
