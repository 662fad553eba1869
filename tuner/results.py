"""Reading a run directory back: the trials table, the search space, the top configurations.

Layout of a run directory written by ``run_search``::

    run.yaml            the RunConfig and facts about the run (data source, textbook values, versions)
    search_space.json   KerasTuner's HyperParameters.get_config() of the searched space
    kt/                 the KerasTuner project (oracle.json, trial_*/trial.json, checkpoints)
    trial_log.jsonl     one line per finished trial: seconds, epochs trained, status
    trials.csv          the trials table below, rewritten after every trial
    top_configs/        rank_1.yaml .. rank_3.yaml, the best COMPLETED trials
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

PROJECT_NAME = "kt"
TRIAL_LOG = "trial_log.jsonl"
TRIALS_CSV = "trials.csv"
SPACE_FILE = "search_space.json"
TOP_DIR = "top_configs"

# Columns of the trials table before the hyperparameter columns.
META_COLUMNS = [
    "trial_id",
    "status",
    "score",
    "best_step",
    "epochs",
    "seconds",
    "bracket",
    "round",
    "is_textbook",
    "message",
]


def project_dir(run_dir: str | os.PathLike) -> Path:
    return Path(run_dir) / PROJECT_NAME


def read_trial_log(run_dir: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """trial_id -> the last line logged for it (a rerun trial replaces its earlier line)."""
    path = Path(run_dir) / TRIAL_LOG
    entries: dict[str, dict[str, Any]] = {}
    if not path.is_file():
        return entries
    for line in path.read_text().splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut short by a kill; that trial is rerun anyway
        entries[str(entry["trial_id"])] = entry
    return entries


def append_trial_log(run_dir: str | os.PathLike, entry: dict[str, Any]) -> None:
    with open(Path(run_dir) / TRIAL_LOG, "a") as handle:
        handle.write(json.dumps(entry) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def _load_trial_files(run_dir: Path) -> list[dict[str, Any]]:
    trials = []
    for path in sorted(project_dir(run_dir).glob("trial_*/trial.json")):
        try:
            trials.append(json.loads(path.read_text()))
        except (json.JSONDecodeError, OSError):
            continue  # written while killed; KerasTuner reruns such a trial
    return trials


def read_trial_values(run_dir: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """trial_id -> the trial's hyperparameter values as KerasTuner stored them (``tuner/*`` kept)."""
    return {
        str(trial["trial_id"]): trial.get("hyperparameters", {}).get("values", {})
        for trial in _load_trial_files(Path(run_dir))
    }


def read_trials(
    run_dir: str | os.PathLike, textbook_values: dict[str, Any] | None = None
) -> pd.DataFrame:
    """The trials of a run as a DataFrame, one row per trial in creation order.

    Columns: ``trial_id``, ``status`` (COMPLETED, FAILED, RUNNING, INVALID...), ``score`` (the
    objective at the best epoch; NaN when there is none), ``best_step`` (that epoch, 0-based),
    ``epochs`` (epochs trained in this trial; a promoted Hyperband trial counts only the epochs it
    added), ``seconds`` (wall time of the trial, NaN if unknown), ``bracket``/``round`` (Hyperband,
    else NaN), ``is_textbook`` (the trial's values are the textbook model's), ``message`` (why it
    failed), then one column per hyperparameter (NaN where inactive).

    Args:
        run_dir: a directory written by ``run_search``.
        textbook_values: the textbook model's values; default: read from ``run.yaml``.
    """
    run_dir = Path(run_dir)
    if textbook_values is None:
        textbook_values = _textbook_values_from_run(run_dir)
    log = read_trial_log(run_dir)
    rows, hp_names = [], []
    for trial in _load_trial_files(run_dir):
        trial_id = str(trial["trial_id"])
        values = trial.get("hyperparameters", {}).get("values", {})
        hyperparameters = {k: v for k, v in values.items() if not k.startswith("tuner/")}
        for name in hyperparameters:
            if name not in hp_names:
                hp_names.append(name)
        logged = log.get(trial_id, {})
        # Counted while training; else from Hyperband's schedule (a promoted trial adds only the
        # epochs between its parent's and its own budget).
        epochs = logged.get("epochs")
        if epochs is None and "tuner/epochs" in values:
            epochs = int(values["tuner/epochs"]) - int(values.get("tuner/initial_epoch", 0))
        score = trial.get("score")
        rows.append(
            {
                "trial_id": trial_id,
                "status": trial.get("status", "UNKNOWN"),
                "score": float(score) if score is not None else math.nan,
                "best_step": trial.get("best_step"),
                "epochs": epochs,
                "seconds": logged.get("seconds", math.nan),
                "bracket": values.get("tuner/bracket", math.nan),
                "round": values.get("tuner/round", math.nan),
                "is_textbook": bool(textbook_values)
                and _same_values(hyperparameters, textbook_values),
                "message": (
                    (trial.get("message") or "").strip().splitlines()[-1:][0]
                    if trial.get("message")
                    else ""
                ),
                **hyperparameters,
            }
        )
    frame = pd.DataFrame(rows, columns=META_COLUMNS + hp_names)
    if not frame.empty:
        frame = frame.sort_values("trial_id", kind="stable").reset_index(drop=True)
        frame["epochs"] = pd.to_numeric(frame["epochs"], errors="coerce").astype("Int64")
        frame["bracket"] = pd.to_numeric(frame["bracket"], errors="coerce").astype("Int64")
        frame["round"] = pd.to_numeric(frame["round"], errors="coerce").astype("Int64")
        frame["seconds"] = pd.to_numeric(frame["seconds"], errors="coerce")
    return frame


def hyperparameter_columns(trials: pd.DataFrame) -> list[str]:
    """The hyperparameter columns of a trials table (everything after the fixed columns)."""
    return [column for column in trials.columns if column not in META_COLUMNS]


def _same_values(values: dict[str, Any], reference: dict[str, Any]) -> bool:
    if set(values) != set(reference):
        return False
    for name, value in values.items():
        other = reference[name]
        if isinstance(value, float) or isinstance(other, float):
            if not np.isclose(float(value), float(other), rtol=1e-9, atol=0):
                return False
        elif value != other:
            return False
    return True


def _textbook_values_from_run(run_dir: Path) -> dict[str, Any]:
    import yaml

    path = run_dir / "run.yaml"
    if not path.is_file():
        return {}
    document = yaml.safe_load(path.read_text()) or {}
    return document.get("textbook_values") or {}


def read_search_space(run_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """The searched hyperparameters: a list of dicts with ``name``, ``type`` (Float, Int, Choice,
    Boolean, Fixed), ``min_value``/``max_value``/``step``/``sampling`` or ``values``, ``default`` and
    ``conditions`` (list of {"name": parent, "values": [...]} under which it is active)."""
    path = Path(run_dir) / SPACE_FILE
    if not path.is_file():
        return []
    config = json.loads(path.read_text())
    specs = []
    for item in config.get("space", []):
        spec = {"name": item["config"]["name"], "type": item["class_name"]}
        spec.update({k: v for k, v in item["config"].items() if k not in ("name", "conditions")})
        spec["conditions"] = [
            {"name": c["config"]["name"], "values": c["config"]["values"]}
            for c in item["config"].get("conditions", [])
        ]
        specs.append(spec)
    return specs


def completed_ranking(trials: pd.DataFrame, direction: str) -> pd.DataFrame:
    """COMPLETED trials with a finite score, best first (ties: earlier trial first)."""
    done = trials[(trials["status"] == "COMPLETED") & np.isfinite(trials["score"].astype(float))]
    return done.sort_values("score", ascending=(direction == "min"), kind="stable")
