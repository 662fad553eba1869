"""Reading a search back: the trials table, the search space, the top configurations.

Reads both a run directory written by ``run_search`` and a plain KerasTuner project written by a
user's own code (``oracle.json``, ``trial_*/trial.json``; see ``tuner.rundir``). Layout of a run
directory written by ``run_search``::

    run.yaml            the RunConfig and facts about the run (data source, textbook values, versions)
    search_space.json   KerasTuner's HyperParameters.get_config() of the searched space
    kt/                 the KerasTuner project (oracle.json, trial_*/trial.json, checkpoints)
    trial_log.jsonl     one line per finished trial: seconds, epochs trained, status
    trials.csv          the trials table below, rewritten after every trial
    top_configs/        rank_1.yaml .. rank_3.yaml, the best COMPLETED trials
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tuner import rundir
from tuner.errors import CorruptRunError
from tuner.rundir import PROJECT_NAME, SPACE_FILE, TOP_DIR, TRIAL_LOG, TRIALS_CSV  # noqa: F401

# Columns of the trials table before the hyperparameter columns.
META_COLUMNS = [
    "trial_id",
    "status",
    "score",
    "best_step",
    "epochs",
    "initial_epoch",
    "seconds",
    "worker",
    "bracket",
    "round",
    "is_textbook",
    "message",
]


# A hyperparameter named like a column above keeps its values under this prefix ("hp:epochs"):
# the trials table never loses either, and the name says which is which.
HYPERPARAMETER_PREFIX = "hp:"


def hyperparameter_column(name: str) -> str:
    """The trials table's column of the hyperparameter ``name``: the name itself, or
    ``hp:<name>`` for a name that is also a fixed column (``epochs``, ``score``, ``round``...)."""
    return f"{HYPERPARAMETER_PREFIX}{name}" if name in META_COLUMNS else name


def configuration_epochs(best_step: Any, initial_epoch: Any, epochs: Any) -> int | None:
    """The epochs a configuration trains for as exported to ``top_configs/rank_*.yaml``: up to its
    best epoch, counting those a promoted Hyperband trial inherited from its parent
    (``initial_epoch + best_step + 1``), else the epochs the trial trained; None when neither is
    known.

    Args:
        best_step: the trial's best epoch (0-based; NaN/None when unknown).
        initial_epoch: ``tuner/initial_epoch`` (Hyperband; NaN/None/0 otherwise).
        epochs: the epochs the trial trained (the trials table's ``epochs``).
    """
    if _known(best_step):
        return (int(initial_epoch) if _known(initial_epoch) else 0) + int(best_step) + 1
    return int(epochs) if _known(epochs) else None


def _known(value: Any) -> bool:
    return not (value is None or value is pd.NA
                or (isinstance(value, (float, np.floating)) and math.isnan(value)))


def project_dir(run_dir: str | os.PathLike) -> Path:
    """The KerasTuner project of a run: ``kt/`` of a search run, or a plain project itself."""
    return rundir.keras_tuner_project(run_dir) or Path(run_dir) / PROJECT_NAME


def read_trial_log(run_dir: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """trial_id -> the last line logged for it (a rerun trial replaces its earlier line)."""
    path = Path(run_dir) / TRIAL_LOG
    entries: dict[str, dict[str, Any]] = {}
    if not path.is_file():
        return entries
    for line in rundir.read_text(path, "the trial log").splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut short by a kill; that trial is rerun anyway
        entries[str(entry["trial_id"])] = entry
    return entries


def append_trial_log(run_dir: str | os.PathLike, entry: dict[str, Any]) -> None:
    rundir.append_line(Path(run_dir) / TRIAL_LOG, json.dumps(entry))


def _load_trial_files(run_dir: Path) -> list[dict[str, Any]]:
    # hpsearch writes trial files atomically: an unreadable one is damage, never dropped quietly.
    return rundir.read_trial_states(project_dir(run_dir), repair_hint=rundir.repair_hint(run_dir))


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
    added), ``initial_epoch`` (Hyperband: the epochs a promoted trial inherited, else NA),
    ``seconds`` (wall time of the trial, NaN if unknown), ``worker`` (the tuner id of the
    distributed worker that trained it, "" in a one-process search), ``bracket``/``round``
    (Hyperband, else NaN), ``is_textbook`` (the trial's values are the textbook model's),
    ``message`` (why it failed), then one column per hyperparameter (NaN where inactive), named
    by ``hyperparameter_column``: a hyperparameter called like one of the columns before it is
    ``hp:<name>``.

    Args:
        run_dir: a directory written by ``run_search``.
        textbook_values: the textbook model's values; default: read from ``run.yaml``.

    Raises:
        CorruptRunError: a trial file cannot be read, or its score or a numeric hyperparameter
            is not a number (the message names the file).
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
        _check_numbers(run_dir, trial, hyperparameters)
        columns = {hyperparameter_column(name): value for name, value in hyperparameters.items()}
        for name in columns:
            if name not in hp_names:
                hp_names.append(name)
        logged = log.get(trial_id, {})
        # Counted while training; else from Hyperband's schedule (a promoted trial adds only the
        # epochs between its parent's and its own budget).
        epochs = logged.get("epochs")
        if epochs is None and "tuner/epochs" in values:
            epochs = int(values["tuner/epochs"]) - int(values.get("tuner/initial_epoch", 0))
        rows.append(
            {
                "trial_id": trial_id,
                "status": trial.get("status", "UNKNOWN"),
                "score": _score(run_dir, trial),
                "best_step": trial.get("best_step"),
                "epochs": epochs,
                "initial_epoch": values.get("tuner/initial_epoch"),
                "seconds": logged.get("seconds", math.nan),
                # The tuner id of the worker that trained it ("" in a one-process search).
                "worker": logged.get("worker", ""),
                "bracket": values.get("tuner/bracket", math.nan),
                "round": values.get("tuner/round", math.nan),
                "is_textbook": bool(textbook_values)
                and _same_values(hyperparameters, textbook_values),
                "message": (
                    (trial.get("message") or "").strip().splitlines()[-1:][0]
                    if trial.get("message")
                    else ""
                ),
                **columns,
            }
        )
    frame = pd.DataFrame(rows, columns=META_COLUMNS + hp_names)
    if not frame.empty:
        # Numerically: KerasTuner pads ids to the budget's width, so "5" comes before "06".
        frame = frame.sort_values("trial_id", key=lambda ids: ids.map(rundir.trial_sort_key),
                                  kind="stable").reset_index(drop=True)
        for column in ("epochs", "initial_epoch", "bracket", "round"):
            frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("Int64")
        frame["seconds"] = pd.to_numeric(frame["seconds"], errors="coerce")
    return frame


def _trial_file(run_dir: Path, trial: dict[str, Any]) -> Path:
    return project_dir(run_dir) / f"{rundir.TRIAL_DIR_PREFIX}{trial['trial_id']}" / rundir.TRIAL_FILE


def _score(run_dir: Path, trial: dict[str, Any]) -> float:
    score = trial.get("score")
    if score is None:
        return math.nan
    if isinstance(score, (int, float)) and not isinstance(score, bool):
        return float(score)
    raise CorruptRunError(
        f"{_trial_file(run_dir, trial)}: 'score' should be a number (or null), got {score!r}. "
        "The file is damaged: correct the score, or move the trial's folder out of the project "
        "to leave it out.")


def _check_numbers(run_dir: Path, trial: dict[str, Any], values: dict[str, Any]) -> None:
    # Int and Float values feed numeric statistics: text there is damage, named at its file.
    for item in (trial.get("hyperparameters") or {}).get("space") or []:
        name = (item.get("config") or {}).get("name")
        value = values.get(name)
        if item.get("class_name") not in ("Int", "Float") or value is None:
            continue
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise CorruptRunError(
                f"{_trial_file(run_dir, trial)}: hyperparameter '{name}' ({item['class_name']}) "
                f"should hold a number, got {value!r}. The file is "
                "damaged: correct the value, or move the trial's folder out of the project to "
                "leave it out.")


def hyperparameter_columns(trials: pd.DataFrame) -> list[str]:
    """The hyperparameter columns of a trials table (everything after the fixed columns)."""
    return [column for column in trials.columns if column not in META_COLUMNS]


def _same_values(values: dict[str, Any], reference: dict[str, Any]) -> bool:
    return set(values) == set(reference) and all(
        same_value(value, reference[name]) for name, value in values.items())


def same_value(value: Any, other: Any) -> bool:
    """Whether two hyperparameter values are the same: numbers compared as numbers (to 1e-9
    relative, what a YAML or JSON round trip keeps), a missing value (None/NaN) equal only to
    another missing one, anything else with ``==``."""
    if not _known(value) or not _known(other):
        return not _known(value) and not _known(other)
    numbers = (int, float, np.integer, np.floating)
    if isinstance(value, numbers) and isinstance(other, numbers) \
            and not isinstance(value, (bool, np.bool_)) and not isinstance(other, (bool, np.bool_)):
        return bool(np.isclose(float(value), float(other), rtol=1e-9, atol=0))
    return bool(value == other)


def _textbook_values_from_run(run_dir: Path) -> dict[str, Any]:
    path = run_dir / rundir.RUN_FILE
    if not path.is_file():
        return {}
    return rundir.read_yaml(path, "an hpsearch run configuration").get("textbook_values") or {}


def read_search_space(run_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """The searched hyperparameters: a list of dicts with ``name``, ``type`` (Float, Int, Choice,
    Boolean, Fixed), ``min_value``/``max_value``/``step``/``sampling`` or ``values``, ``default`` and
    ``conditions`` (list of {"name": parent, "values": [...]} under which it is active). Names are
    the trials table's columns (``hyperparameter_column``).

    From ``search_space.json`` (a search run), else the project's ``oracle.json``, else the spaces
    saved with the trials (``trial_*/trial.json``); empty when none of them has one."""
    return _read_search_space(Path(run_dir))[0]


def _read_search_space(run_dir: Path) -> tuple[list[dict[str, Any]], str]:
    """(specs, note): the note says where the space came from when it is not the run's own."""
    path = run_dir / SPACE_FILE
    note = ""
    if path.is_file():
        items = rundir.read_json(path, "the searched space").get("space", [])
    else:
        # A plain KerasTuner project: the oracle keeps the space it grew while searching.
        oracle = rundir.read_oracle_state(project_dir(run_dir)) or {}
        items = (oracle.get("hyperparameters") or {}).get("space") or []
        if not items:
            items = _space_of_trials(_load_trial_files(run_dir))
            note = ("The searched space is the one saved with the trials (trial_*/trial.json): "
                    "the project has no oracle.json holding it." if items else
                    "No search space is saved (no search_space.json, oracle.json or trial "
                    "spaces): the 'searched' ranges are inferred from the values tried.")
    specs = []
    for item in items:
        spec = {"name": hyperparameter_column(item["config"]["name"]), "type": item["class_name"]}
        spec.update({k: v for k, v in item["config"].items() if k not in ("name", "conditions")})
        spec["conditions"] = [
            {"name": hyperparameter_column(c["config"]["name"]), "values": c["config"]["values"]}
            for c in item["config"].get("conditions", [])
        ]
        specs.append(spec)
    return specs, note


def _space_of_trials(states: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # Each trial saves the space as it stood when the trial was created; the oracle's grows as
    # new hyperparameters appear, so the union over the trials, in order, is the oracle's.
    items: dict[str, dict[str, Any]] = {}
    for state in states:
        for item in (state.get("hyperparameters") or {}).get("space") or []:
            name = (item.get("config") or {}).get("name")
            if name and name not in items and not name.startswith("tuner/"):
                items[name] = item
    return list(items.values())


def completed_ranking(trials: pd.DataFrame, direction: str) -> pd.DataFrame:
    """COMPLETED trials with a finite score, best first (ties: earlier trial first)."""
    done = trials[(trials["status"] == "COMPLETED") & np.isfinite(trials["score"].astype(float))]
    return done.sort_values("score", ascending=(direction == "min"), kind="stable")


def with_transfer_scores(rows: pd.DataFrame) -> pd.DataFrame:
    """``transfer.csv`` rows with their ``objective``, ``val_score`` and ``test_score``: rows
    written before those columns were classifiers' measured by accuracy."""
    rows = rows.copy()
    for column in ("objective", "val_score", "test_score"):
        if column not in rows.columns:
            rows[column] = math.nan
    unnamed = rows["objective"].isna() | (rows["objective"] == "")
    rows["objective"] = rows["objective"].astype(object).where(~unnamed, "val_accuracy")
    accuracy_rows = rows["objective"] == "val_accuracy"
    for score, accuracy in (("val_score", "val_accuracy"), ("test_score", "test_accuracy")):
        values = pd.to_numeric(rows[score], errors="coerce")
        rows[score] = values.where(~(accuracy_rows & values.isna()),
                                   pd.to_numeric(rows[accuracy], errors="coerce"))
    return rows


def summarize_transfer(rows: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation over seeds per transferred configuration of ``transfer.csv``.

    Rows are grouped by target dataset and configuration (``config_id``: trial id and hash of the
    values, so a name never averages two models; ``config`` in files written before it). The
    standard deviation of a single seed is NaN (undefined), everywhere it is shown.
    """
    if rows.empty:
        return pd.DataFrame()
    rows = with_transfer_scores(rows)
    key = "config_id" if "config_id" in rows.columns and rows["config_id"].notna().all() \
        else "config"
    grouped = rows.groupby(["dataset", key], sort=False)
    summary = grouped.agg(
        config=("config", "last"),
        rank=("rank", "first"),
        trial_id=("trial_id", "first"),
        search_space=("search_space", "first"),
        source_score=("source_score", "first"),
        seeds=("seed", "count"),
        val_accuracy_mean=("val_accuracy", "mean"),
        val_accuracy_std=("val_accuracy", "std"),
        test_accuracy_mean=("test_accuracy", "mean"),
        test_accuracy_std=("test_accuracy", "std"),
        objective=("objective", "first"),
        val_score_mean=("val_score", "mean"),
        val_score_std=("val_score", "std"),
        test_score_mean=("test_score", "mean"),
        test_score_std=("test_score", "std"),
        epochs_mean=("epochs", "mean"),
        params=("params", "first"),
        seconds_per_epoch=("seconds_per_epoch", "mean"),
    ).reset_index()
    columns = ["dataset", "config"] + (["config_id"] if key == "config_id" else [])
    return summary[columns + [c for c in summary.columns if c not in columns]]


@dataclasses.dataclass
class SearchRecord:
    """A search read back, from an hpsearch run directory or a plain KerasTuner project.

    Attributes:
        run_dir: the folder read.
        kind: ``rundir.SEARCH`` or ``rundir.KERAS_TUNER``.
        settings: what was searched (``space``, ``dataset``, ``tuner``, ``objective``,
            ``direction``...): ``run.yaml``'s config, or what the project's files tell.
        document: the whole ``run.yaml`` (empty for a KerasTuner project).
        trials: the trials table (``read_trials``).
        space: the searched hyperparameters (``read_search_space``).
        objective_note: how the objective was found when it had to be inferred, else "".
        space_note: where the search space came from when the project did not keep it (trial
            files, or inferred from the values tried), else "".
    """

    run_dir: Path
    kind: str
    settings: dict[str, Any]
    document: dict[str, Any]
    trials: pd.DataFrame
    space: list[dict[str, Any]]
    objective_note: str = ""
    space_note: str = ""

    @property
    def objective(self) -> str:
        return self.settings.get("objective") or "score"

    @property
    def direction(self) -> str:
        return self.settings.get("direction") or "max"


def read_search(run_dir: str | os.PathLike, command: str = "report") -> SearchRecord:
    """Read a search run or a plain KerasTuner project.

    For a KerasTuner project the objective and its direction are those of the metric whose
    value at each trial's best step is the trial's score (KerasTuner does not save them).

    Raises:
        RunDirError: neither kind of folder; ``CorruptRunError`` when a file cannot be read (it
            names the file and the repair).
    """
    from tuner.config import read_run_config

    run_dir = Path(run_dir)
    kinds = rundir.require_run(run_dir, (rundir.SEARCH, rundir.KERAS_TUNER), command)
    trials = read_trials(run_dir)
    space, space_note = _read_search_space(run_dir)
    if rundir.SEARCH in kinds:
        config, document = read_run_config(run_dir)
        return SearchRecord(run_dir, rundir.SEARCH, config.to_dict(), document, trials, space,
                            space_note=space_note)
    objective, direction, note = _infer_objective(rundir.read_trial_states(
        run_dir, repair_hint=rundir.repair_hint(run_dir)))
    oracle = rundir.read_oracle_state(run_dir) or {}
    settings = {
        "space": run_dir.name,
        "dataset": "unknown",
        "tuner": _tuner_kind(oracle),
        "objective": objective,
        "direction": direction,
        "project": str(run_dir),
    }
    return SearchRecord(run_dir, rundir.KERAS_TUNER, settings, {}, trials, space, note,
                        space_note)


def _tuner_kind(oracle: dict[str, Any]) -> str:
    if "brackets" in oracle:
        return "hyperband"
    return "KerasTuner"


def _infer_objective(states: list[dict[str, Any]]) -> tuple[str, str, str]:
    """(objective, direction, note) of a KerasTuner project from its trials' metrics."""
    votes: dict[tuple[str, str], int] = {}
    for state in states:
        score, best_step = state.get("score"), state.get("best_step")
        metrics = (state.get("metrics") or {}).get("metrics") or {}
        if score is None:
            continue
        for name, history in metrics.items():
            for observation in history.get("observations") or []:
                values = observation.get("value") or []
                if observation.get("step") == best_step and values and np.isclose(
                        float(np.mean(values)), float(score)):
                    key = (name, history.get("direction") or "max")
                    votes[key] = votes.get(key, 0) + 1
    if not votes:
        return "score", "max", ("KerasTuner does not save the objective and no metric matched "
                                "the trials' scores: higher scores are taken as better.")
    (name, direction), _ = max(votes.items(), key=lambda item: (item[1], item[0][0].startswith("val_")))
    if direction not in ("max", "min"):
        direction = "max"
    return name, direction, (f"KerasTuner does not save the objective: '{name}' ({direction}) is "
                             "the metric whose best-step value is each trial's score.")

