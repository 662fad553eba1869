"""TensorBoard's HParams data of a search, written by hpsearch itself on every Keras backend.

Layout (as KerasTuner's own TensorBoard support writes it under TensorFlow, one level shorter)::

    RUN/tensorboard/                 the experiment: every hyperparameter's domain and the
                                     metrics, once per search
    RUN/tensorboard/<trial_id>/      the trial's session: its values at the start, its score
                                     (a scalar ``score``) and its status at the end
                      train/         per-epoch scalars ``epoch_loss``, ``epoch_accuracy``, ...
                      validation/    per-epoch scalars of the ``val_*`` logs, without the prefix

Every summary is made by the ``tensorboard`` package's own functions (``hparams_config_pb``,
``hparams_pb``, ``scalar_pb``, the plugin's metadata for a session's end) and framed by its
``RecordWriter``. The files are written through plain Python files rather than
``EventFileWriter``, which reaches the disk through ``tensorboard.compat.tf``: TensorFlow itself
whenever it is installed, an import of seconds and hundreds of megabytes in a JAX process.
Nothing here imports TensorFlow. Each event is flushed as it is written, so a TensorBoard
started on the run shows each trial while it trains.

``TensorBoardObserver`` writes a search's trials as they run (``--tensorboard``); a clock
comparison writes each head as it trains through ``TrialEvents``. ``tuner.hparams_files`` writes
the same from a run's files afterwards (``hpsearch board``), for what is not yet written.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import os
import shutil
import socket
import time
from pathlib import Path
from typing import Any, Iterable

from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2, summary_v2
from tensorboard.plugins.scalar.summary_v2 import scalar_pb
from tensorboard.summary.writer.record_writer import RecordWriter

from tuner.rundir import TENSORBOARD_DIR

__all__ = ["EventFile", "ObjectiveHistory", "TensorBoardObserver", "TrialEvents", "active_values",
           "experiment_summary", "tensorboard_dir", "write_experiment"]

TRAIN_GROUP = "train"
VALIDATION_GROUP = "validation"
# The scalar holding a trial's score (KerasTuner's: its best epoch's objective), in its session.
SCORE_TAG = "score"
# Keras's own prefix for the scalars of its TensorBoard callback (epoch_loss, ...).
EPOCH_PREFIX = "epoch_"
# The experiment's file name ends with a hash of its content, so a search resumed (in every
# process, by every worker) adds no second copy, and a changed space replaces the old one.
EXPERIMENT_SUFFIX = ".hparams-experiment-"
# A Discrete domain lists at most this many values; a longer stepped range is an interval.
MAX_DISCRETE_VALUES = 100

_STATUSES = {
    "COMPLETED": api_pb2.STATUS_SUCCESS,
    "FAILED": api_pb2.STATUS_FAILURE,
    "INVALID": api_pb2.STATUS_FAILURE,
    "STOPPED": api_pb2.STATUS_FAILURE,
    "RUNNING": api_pb2.STATUS_RUNNING,
}
_file_numbers = itertools.count()


def tensorboard_dir(run_dir: str | os.PathLike) -> Path:
    """Where a run's TensorBoard data lives: ``RUN/tensorboard/``."""
    return Path(run_dir) / TENSORBOARD_DIR


def transfer_trial_id(name: str, seed: int) -> str:
    """The trial id of one training of ``hpsearch transfer`` (a configuration and a seed), as
    its observers name it: its folder in ``RUN/tensorboard/``, its MLflow child run."""
    return f"{name.replace('/', '__')}-seed{seed}"


def metric_location(name: str) -> tuple[str, str]:
    """(group, tag) of a Keras log name, as Keras's TensorBoard callback writes it:
    ``val_accuracy`` -> ("validation", "epoch_accuracy"), ``loss`` -> ("train", "epoch_loss")."""
    if name.startswith("val_"):
        return VALIDATION_GROUP, EPOCH_PREFIX + name[len("val_"):]
    return TRAIN_GROUP, EPOCH_PREFIX + name


def hparam_domains(space: dict[str, Any]) -> list[summary_v2.HParam]:
    """TensorBoard's ``HParam`` of every hyperparameter of a space, with its domain.

    Args:
        space: ``kt.HyperParameters.get_config()`` (``search_space.json``).

    Returns:
        One ``HParam`` per hyperparameter, in the space's order, with KerasTuner's own mapping
        (``keras_tuner``'s ``convert_hyperparams_to_hparams``): a Choice, a stepped Int or Float
        and a Boolean are discrete; an Int or Float without step is an interval.
    """
    return [summary_v2.HParam(entry["config"]["name"], _domain(entry))
            for entry in space.get("space", [])]


def _domain(entry: dict[str, Any]):
    kind, config = entry.get("class_name"), entry.get("config", {})
    if kind == "Choice":
        return _discrete(config.get("values") or [])
    if kind == "Boolean":
        return summary_v2.Discrete([True, False])
    if kind == "Fixed":
        return _discrete([config.get("value")])
    if kind in ("Int", "Float"):
        low, high, step = config.get("min_value"), config.get("max_value"), config.get("step")
        if kind == "Int" and step not in (None, 1):
            values = list(range(int(low), int(high) + 1, int(step)))
        elif kind == "Float" and step:
            count = int(math.floor((high - low) / step + 1e-7)) + 1
            values = [round(low + index * step, 12) for index in range(count)]
        else:
            values = None
        if values and len(values) <= MAX_DISCRETE_VALUES:
            return _discrete(values)
        if kind == "Int":
            return summary_v2.IntInterval(int(low), int(high))
        return summary_v2.RealInterval(float(low), float(high))
    return None  # a kind TensorBoard has no domain for: its values still show


def _discrete(values: list):
    """A Discrete domain of one type: numbers as floats when ints and floats are mixed, anything
    else as text (TensorBoard's domains hold one type)."""
    if not values:
        return None
    if all(isinstance(value, bool) for value in values):
        return summary_v2.Discrete(values)
    if all(isinstance(value, (int, float)) and not isinstance(value, bool) for value in values):
        kind = int if all(isinstance(value, int) for value in values) else float
        return summary_v2.Discrete([kind(value) for value in values])
    if all(isinstance(value, str) for value in values):
        return summary_v2.Discrete(values)
    return summary_v2.Discrete([str(value) for value in values])


def hparam_value(value: Any) -> bool | float | str:
    """A hyperparameter value as TensorBoard stores it (a bool, a number, or text)."""
    if isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, float)):
        return float(value)
    if hasattr(value, "item"):  # a numpy scalar
        return hparam_value(value.item())
    return str(value)


def experiment_summary(space: dict[str, Any], metric_names: Iterable[str], objective: str | None,
                       created: float | None = None) -> summary_pb2.Summary:
    """The HParams experiment of a search: every hyperparameter's domain, then its metrics
    (the trial's score first, then each Keras log name at its group and tag).

    Args:
        space: ``kt.HyperParameters.get_config()``.
        metric_names: Keras log names (``loss``, ``val_accuracy``, ...).
        objective: the search's objective, named in the score's description.
        created: seconds since the epoch (default: now).
    """
    metrics = [summary_v2.Metric(
        SCORE_TAG, group="", display_name="score",
        description=f"The trial's score: its best {objective or 'objective'} (KerasTuner's).")]
    for name in _ordered_metrics(metric_names, objective):
        group, tag = metric_location(name)
        metrics.append(summary_v2.Metric(
            tag, group=group, display_name=name,
            dataset_type=(summary_v2.Metric.VALIDATION if group == VALIDATION_GROUP
                          else summary_v2.Metric.TRAINING)))
    summary = summary_v2.hparams_config_pb(hparam_domains(space), metrics,
                                           time_created_secs=created or time.time())
    # The dashboard shows the first five hyperparameters that "differ" at first: the searched
    # ones, before those held at one value (Fixed, --fix).
    searched = {entry["config"]["name"] for entry in space.get("space", [])
                if entry.get("class_name") != "Fixed"}
    value = summary.value[0]
    data = plugin_data_pb2.HParamsPluginData.FromString(value.metadata.plugin_data.content)
    for info in data.experiment.hparam_infos:
        info.differs = info.name in searched
    value.metadata.CopyFrom(metadata.create_summary_metadata(data))
    return summary


def _ordered_metrics(names: Iterable[str], objective: str | None) -> list[str]:
    """The objective first, then the validation metrics, then the rest, each alphabetically."""
    names = set(names) | ({objective} if objective else set())
    return sorted(names, key=lambda name: (name != objective, not name.startswith("val_"), name))


def session_start_summary(values: dict[str, Any],
                          started: float | None = None) -> summary_pb2.Summary:
    """A trial's session start: its hyperparameter values.

    The session's group name is left empty, so that TensorBoard names each trial's row after
    its folder: ``07`` for one run, ``mlp/07`` beside another run (a group name such as the
    trial id would merge the trials of the same id of several runs into one row).
    """
    summary = summary_v2.hparams_pb({name: hparam_value(value) for name, value in values.items()},
                                    start_time_secs=started or time.time())
    value = summary.value[0]
    data = plugin_data_pb2.HParamsPluginData.FromString(value.metadata.plugin_data.content)
    data.session_start_info.ClearField("group_name")
    value.metadata.CopyFrom(metadata.create_summary_metadata(data))
    return summary


def session_end_summary(status: str, ended: float | None = None) -> summary_pb2.Summary:
    """A trial's session end with its status: TensorBoard's ``session_end_pb`` (hparams v1
    summary API), which itself imports TensorFlow, made of the plugin's own metadata instead."""
    info = plugin_data_pb2.SessionEndInfo(status=_STATUSES.get(status, api_pb2.STATUS_UNKNOWN),
                                          end_time_secs=ended or time.time())
    summary = summary_pb2.Summary()
    summary.value.add(
        tag=metadata.SESSION_END_INFO_TAG,
        metadata=metadata.create_summary_metadata(
            plugin_data_pb2.HParamsPluginData(session_end_info=info)),
        tensor=metadata.NULL_TENSOR,
    )
    return summary


class EventFile:
    """One new TensorBoard event file in ``folder``, named as TensorFlow names them; every
    event is flushed as it is written.

    Args:
        folder: created when missing.
        suffix: appended to the file name (TensorBoard reads any name holding ``tfevents``).
    """

    def __init__(self, folder: str | os.PathLike, suffix: str = ""):
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / (f"events.out.tfevents.{int(time.time()):010d}."
                              f"{socket.gethostname()}.{os.getpid()}.{next(_file_numbers)}{suffix}")
        self._records = RecordWriter(open(self.path, "wb"))
        self._write(event_pb2.Event(wall_time=time.time(), file_version="brain.Event:2"))

    def add(self, summary: summary_pb2.Summary, step: int = 0,
            wall_time: float | None = None) -> None:
        """Append one summary at ``step`` and flush it to disk."""
        self._write(event_pb2.Event(wall_time=wall_time or time.time(), step=int(step),
                                    summary=summary))

    def _write(self, event: event_pb2.Event) -> None:
        self._records.write(event.SerializeToString())
        self._records.flush()

    def close(self) -> None:
        if not self._records.closed:
            self._records.close()


def write_experiment(root: str | os.PathLike, summary: summary_pb2.Summary) -> bool:
    """Write the experiment into ``root`` unless an identical one is there; an experiment
    that differs (a space changed on resume) is replaced. Returns whether it wrote one."""
    root = Path(root)
    experiment = plugin_data_pb2.HParamsPluginData.FromString(
        summary.value[0].metadata.plugin_data.content).experiment
    experiment.ClearField("time_created_secs")
    digest = hashlib.sha256(experiment.SerializeToString(deterministic=True)).hexdigest()[:16]
    existing = list(root.glob(f"*{EXPERIMENT_SUFFIX}*")) if root.is_dir() else []
    if any(path.name.endswith(EXPERIMENT_SUFFIX + digest) for path in existing):
        return False
    events = EventFile(root, EXPERIMENT_SUFFIX + digest)
    events.add(summary)
    events.close()
    for path in existing:
        path.unlink(missing_ok=True)
    return True


class TrialEvents:
    """The event files of one trial trained in this process: its session (``values`` at the
    start; its score, any ``results`` and its status at the end), train and validation scalars
    per epoch."""

    def __init__(self, folder: Path, values: dict[str, Any], started: float | None = None):
        # A trial that starts again (a resumed search reruns an interrupted one) replaces the
        # folder of its interrupted run.
        shutil.rmtree(folder, ignore_errors=True)
        self.folder = folder
        self.session = EventFile(folder)
        self.session.add(session_start_summary(values, started), wall_time=started)
        self._groups: dict[str, EventFile] = {}
        self._execution = 0
        self._last_epoch: int | None = None
        self.last_step = 0

    def epoch(self, epoch: int, logs: dict[str, float], wall_time: float | None = None) -> None:
        if self._last_epoch is not None and epoch <= self._last_epoch:
            # Another execution of the same trial (executions_per_trial > 1): its own runs,
            # as KerasTuner's execution<N> folders.
            self._execution += 1
        self._last_epoch = epoch
        self.last_step = max(self.last_step, epoch)
        for name, value in logs.items():
            if not isinstance(value, (int, float)) or not math.isfinite(value):
                continue
            group, tag = metric_location(name)
            if self._execution:
                group = f"execution{self._execution}/{group}"
            if group not in self._groups:
                self._groups[group] = EventFile(self.folder / group)
            self._groups[group].add(scalar_pb(tag, float(value)), step=epoch, wall_time=wall_time)

    def end(self, status: str, score: float | None, ended: float | None = None,
            results: dict[str, float] | None = None) -> None:
        """Close the session with its ``status`` and ``score``; ``results`` are more scalars of
        the session (a clock head's median error, ...), shown beside the score."""
        for tag, value in {**(results or {}), SCORE_TAG: score}.items():
            if isinstance(value, (int, float)) and math.isfinite(value):
                self.session.add(scalar_pb(tag, float(value)), step=self.last_step,
                                 wall_time=ended)
        self.session.add(session_end_summary(status, ended), wall_time=ended)
        self.close()

    def close(self) -> None:
        for events in (self.session, *self._groups.values()):
            events.close()


def active_values(space: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """``values`` without the hyperparameters whose conditions they do not meet (``momentum``
    when the optimizer is not sgd), as KerasTuner stores a trial's values. A worker's trial
    starts with values for its inactive hyperparameters too, which its chief then drops.

    Args:
        space: ``kt.HyperParameters.get_config()``, with each hyperparameter's conditions.
        values: name -> value; names the space does not know are kept.
    """
    conditions = {entry["config"]["name"]: entry["config"].get("conditions") or []
                  for entry in space.get("space", [])}

    def active(name: str, seen: tuple = ()) -> bool:
        for condition in conditions.get(name, []):
            if condition.get("class_name") != "Parent" or name in seen:
                continue
            parent, allowed = condition["config"]["name"], condition["config"].get("values", [])
            if parent not in values or values[parent] not in allowed:
                return False
            if not active(parent, seen + (name,)):
                return False
        return True

    return {name: value for name, value in values.items() if active(name)}


class ObjectiveHistory:
    """The objective at each epoch of the trials trained in this process, for a trial's score
    when the engine passes none: a worker's trials are scored by the chief, out of its reach.
    The score is KerasTuner's: the best epoch's value, executions averaged."""

    def __init__(self) -> None:
        self.objective: str | None = None
        self.direction: str | None = None
        self._epochs: dict[str, dict[int, list[float]]] = {}

    def search_begin(self, config) -> None:
        self.objective = getattr(config, "objective", None)
        self.direction = getattr(config, "direction", None)

    def trial_begin(self, trial_id: str) -> None:
        self._epochs[trial_id] = {}

    def epoch_end(self, trial_id: str, epoch: int, logs: dict[str, Any]) -> None:
        value = logs.get(self.objective) if self.objective else None
        if isinstance(value, (int, float)) and math.isfinite(value):
            self._epochs.setdefault(trial_id, {}).setdefault(epoch, []).append(float(value))

    def score(self, trial_id: str, status: str, score: float | None) -> float | None:
        """``score`` when given; else, for a completed trial, its best epoch's objective."""
        epochs = self._epochs.pop(trial_id, {})
        if score is not None or status != "COMPLETED" or not epochs:
            return score
        means = [sum(values) / len(values) for values in epochs.values()]
        return min(means) if self.direction == "min" else max(means)


class TensorBoardObserver:
    """Writes TensorBoard's HParams data of the trials trained in this process, as they run
    (``RunConfig.tensorboard``, ``tune --tensorboard``); see the module's docstring for where.
    A ``tuner.observers.TrialObserver`` (not subclassed: that module imports this one).

    Safe in every process of a search: each trial's folder is written by the process that
    trains it, and the experiment by whichever process gets there first (the same content).
    A trial that starts again (a resumed search reruns an interrupted one) replaces its folder.
    """

    def __init__(self) -> None:
        self._root: Path | None = None
        self._space: dict[str, Any] = {}
        self._objective: str | None = None
        self._experiment_written = False
        self._trials: dict[str, TrialEvents] = {}
        self._history = ObjectiveHistory()

    def search_begin(self, run_dir, config, space: dict[str, Any]) -> None:
        self._root = tensorboard_dir(run_dir)
        self._root.mkdir(parents=True, exist_ok=True)
        self._space = space
        self._objective = getattr(config, "objective", None)
        self._experiment_written = False
        self._history.search_begin(config)

    def trial_begin(self, trial_id: str, values: dict[str, Any]) -> None:
        if self._root is None:
            return
        self._trials[trial_id] = TrialEvents(self._root / str(trial_id),
                                             active_values(self._space, values))
        self._history.trial_begin(trial_id)

    def epoch_end(self, trial_id: str, epoch: int, logs: dict[str, float]) -> None:
        if not self._experiment_written:
            # The metrics are known at the first epoch: the experiment names each at once
            # (TensorBoard keeps the first experiment it reads until it restarts).
            self._write_experiment(logs)
        self._history.epoch_end(trial_id, epoch, logs)
        if trial_id in self._trials:
            self._trials[trial_id].epoch(epoch, logs)

    def trial_end(self, trial_id: str, status: str, score: float | None,
                  values: dict[str, Any]) -> None:
        if not self._experiment_written:
            self._write_experiment({})
        trial = self._trials.pop(trial_id, None)
        if trial is not None:
            trial.end(status, self._history.score(trial_id, status, score))

    def search_end(self) -> None:
        for trial in self._trials.values():
            trial.close()
        self._trials.clear()

    def _write_experiment(self, logs: dict[str, Any]) -> None:
        if self._root is None or not self._space.get("space"):
            # No space (a transfer's configurations): TensorBoard infers the experiment from
            # the sessions' values and scalars.
            self._experiment_written = True
            return
        names = set(logs) or {"loss", "val_loss"}
        write_experiment(self._root, experiment_summary(self._space, names, self._objective))
        self._experiment_written = True


# A clock comparison's sessions: one per head, its error in minutes as the score (lower is
# better) and these columns of its result row beside it.
COMPARISON_RESULTS = ("cse_median", "within_1min", "within_5min")


def comparison_values(label: str, hyperparameters: dict[str, Any]) -> dict[str, Any]:
    """A clock comparison head's session values: the head (its label, ``classification-720``)
    and the hyperparameters it trained with."""
    return {"head": label, **hyperparameters}


def end_comparison_head(events: TrialEvents, row: dict[str, Any],
                        ended: float | None = None) -> None:
    """Close a head's session: its mean error in minutes as the score, the other errors beside."""
    events.end("COMPLETED", row.get("cse_mean"), ended,
               {name: row[name] for name in COMPARISON_RESULTS if name in row})
