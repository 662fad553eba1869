"""A search in MLflow: one parent run per search, one child run per trial (``tune --mlflow``).

MLflow is an optional extra (``pip install 'hpsearch[mlflow]'``); nothing else in hpsearch
imports it. Every process that trains trials (a one-process search, each worker of a parallel
one) writes its own trials through ``MlflowObserver``, with MLflow's own client
(``MlflowClient``) and without touching MLflow's global state (``mlflow.start_run``), so a
user's own MLflow runs in the same process are left alone.

A run is found again rather than created twice: the parent by the tag ``hpsearch.search_id``
(a random id kept in ``RUN/mlflow.json``, made by the first process under a file lock), each
child by that tag with ``hpsearch.trial_id``. A resumed search, or a worker joining late,
continues the same runs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import importlib.util
import json
import logging
import math
import os
import queue
import threading
import time
import uuid
import warnings
from pathlib import Path
from typing import Any, Iterator

from tuner import rundir
from tuner.config import InvalidSettingError
from tuner.errors import SearchError
from tuner.hparams import ObjectiveHistory, active_values

__all__ = ["INSTALL_HINT", "MlflowObserver", "check_mlflow_installed", "resolve_tracking_uri"]

INSTALL_HINT = "pip install 'hpsearch[mlflow]'"
# ``--mlflow`` without a URI: MLflow's own default store (MLFLOW_TRACKING_URI when set; else
# sqlite:///mlflow.db in the working directory with MLflow 3, ./mlruns with MLflow 2).
DEFAULT_URI = "default"
# The experiment every search goes into unless MLFLOW_EXPERIMENT_NAME names another.
DEFAULT_EXPERIMENT = "hpsearch"
# In the run directory: the search's id, by which its MLflow runs are found again.
MLFLOW_FILE = "mlflow.json"
_LOCK_FILE = ".mlflow.lock"

SEARCH_ID_TAG = "hpsearch.search_id"
TRIAL_ID_TAG = "hpsearch.trial_id"
RUN_DIR_TAG = "hpsearch.run_dir"
STATUS_TAG = "hpsearch.status"
KIND_TAG = "hpsearch.kind"  # "search" (hpsearch tune) or "transfer"
PARENT_TAG = "mlflow.parentRunId"  # MLflow's own: nests a child run under its parent
# The metric holding a trial's score (KerasTuner's: its best epoch's objective).
SCORE_METRIC = "score"
# Seconds a search's end waits for the store to take what is queued.
FLUSH_TIMEOUT = 120.0
# A trial's epochs are sent at most this often (and at its end): a call per epoch of a short
# epoch cost about 5% of a small search's CPU (benchmarks/bench_tracking_overhead.py).
METRICS_EVERY_SECONDS = 10.0


def check_mlflow_installed() -> None:
    """Raise unless MLflow can be imported.

    Raises:
        InvalidSettingError: MLflow is missing (names the extra to install).
    """
    if importlib.util.find_spec("mlflow") is None:
        raise InvalidSettingError(
            f"--mlflow needs MLflow, which is not installed. Install it with {INSTALL_HINT} "
            "(or pip install mlflow), or leave --mlflow out.")


def resolve_tracking_uri(uri: str | None = DEFAULT_URI) -> str:
    """The absolute tracking URI of ``uri``, the same from every working directory, so that
    every process of a search and a resume reach the same store.

    Args:
        uri: a tracking URI (``http://host:5000``, ``sqlite:///mlflow.db``, ``file:...``), a
            plain path (a ``.db`` file is an SQLite store, anything else a folder store), or
            ``"default"``/None: MLflow's own default (``mlflow.get_tracking_uri()``).

    Raises:
        InvalidSettingError: MLflow is missing.
    """
    check_mlflow_installed()
    if uri in (None, "", DEFAULT_URI):
        import mlflow

        uri = mlflow.get_tracking_uri()
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        return "sqlite:///" + str(Path(uri[len("sqlite:///"):]).resolve())
    if uri.startswith("file:") and not uri.startswith("file:/"):
        return Path(uri[len("file:"):]).resolve().as_uri()
    if "://" in uri or uri.startswith("file:") or uri.startswith("databricks"):
        return uri
    path = Path(uri).expanduser().resolve()
    return "sqlite:///" + str(path) if path.suffix == ".db" else path.as_uri()


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock between the processes of one machine (the workers of a search)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def search_id(run_dir: str | os.PathLike) -> str:
    """The search's id in ``RUN/mlflow.json``, made on first use (under a lock, so that the
    workers of one search agree on it)."""
    run_dir = Path(run_dir)
    path = run_dir / MLFLOW_FILE
    with _file_lock(run_dir / _LOCK_FILE):
        if path.is_file():
            known = rundir.read_json(path, "the search's MLflow id")
            if isinstance(known, dict) and known.get("search_id"):
                return str(known["search_id"])
        made = uuid.uuid4().hex
        rundir.write_json(path, {"search_id": made}, indent=2)
        return made


def _kind(settings) -> str:
    return "transfer" if type(settings).__name__ == "TransferSettings" else "search"


def _settings(settings) -> dict[str, Any]:
    """A RunConfig's or TransferSettings' fields, as the parent run's params."""
    if hasattr(settings, "to_dict"):
        return settings.to_dict()
    if dataclasses.is_dataclass(settings):
        return dataclasses.asdict(settings)
    return {}


def _param_value(value: Any) -> str:
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, sort_keys=True, default=str)
    return str(value)


def _quiet_mlflow_logs() -> None:
    # MLflow's store prints its database set-up ("Creating initial MLflow database tables...")
    # on first use: not a line of the search's progress.
    for name in ("mlflow.store.db.utils", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)


class MlflowObserver:
    """Writes a search and its trials to an MLflow tracking store as they run: a
    ``tuner.observers.TrialObserver`` (not subclassed: that module imports this one).

    The parent run (named after the run directory, in the experiment ``hpsearch`` or
    ``MLFLOW_EXPERIMENT_NAME``) holds the search's settings as params; each trial is a child
    run with its hyperparameters as params, its logs as per-epoch metrics (step = epoch), its
    ``score`` and the tag ``hpsearch.status``, and ends FINISHED (completed) or FAILED.

    The trials' events are written by a thread of the observer's own, in order, so that training
    never waits for the store; a trial's epochs go at most every ``METRICS_EVERY_SECONDS`` and at
    its end; ``search_end`` waits for what is queued. Errors of the store while
    trials run never fail a trial: the first one is reported as a warning and this process
    writes nothing more to MLflow (a server that stopped answering would otherwise hold the
    queue for MLflow's retries).

    Args:
        tracking_uri: see ``resolve_tracking_uri`` (default: MLflow's own default store).
        experiment: the MLflow experiment's name (default: MLFLOW_EXPERIMENT_NAME, else
            "hpsearch").
    """

    def __init__(self, tracking_uri: str | None = DEFAULT_URI, experiment: str | None = None):
        self.tracking_uri = resolve_tracking_uri(tracking_uri)
        self.experiment_name = (experiment or os.environ.get("MLFLOW_EXPERIMENT_NAME")
                                or DEFAULT_EXPERIMENT)
        self._client = None
        self._experiment_id: str | None = None
        self._search_id: str | None = None
        self.parent_run_id: str | None = None
        self._parent_running = False
        self._space: dict[str, Any] = {}
        self._children: dict[str, str] = {}  # trial id -> child run id (writer thread only)
        # Per trial: its metrics not yet sent, when they were last sent, its last epoch.
        self._unsent: dict[str, list] = {}
        self._sent_at: dict[str, float] = {}
        self._last_step: dict[str, int] = {}
        self._broken = False
        self._history = ObjectiveHistory()
        # The store is written by one thread of this observer's own, in order, so that no trial
        # waits for it (an SQLite commit or an HTTP call per epoch: ~25 ms each, measured).
        self._pending: queue.Queue | None = None
        self._writer: threading.Thread | None = None

    def search_begin(self, run_dir, config, space: dict[str, Any]) -> None:
        """Find or create the search's parent run.

        Raises:
            SearchError: the tracking store cannot be used (named, with MLflow's reason).
        """
        from mlflow.tracking import MlflowClient

        _quiet_mlflow_logs()
        self._history.search_begin(config)
        self._space = space
        run_dir = Path(run_dir).resolve()
        try:
            self._search_id = search_id(run_dir)
            # Under the run's lock: the workers of a search starting together would otherwise
            # race to set up a new SQLite store's tables (MLflow's migrations fail) and to
            # create the parent run.
            with _file_lock(run_dir / _LOCK_FILE):
                self._client = MlflowClient(tracking_uri=self.tracking_uri)
                self._experiment_id = self._find_or_create_experiment()
                parent = self._find_run({SEARCH_ID_TAG: self._search_id}, parent=True)
                created = parent is None
                if created:
                    parent = self._client.create_run(
                        self._experiment_id, run_name=run_dir.name,
                        tags={SEARCH_ID_TAG: self._search_id, RUN_DIR_TAG: str(run_dir),
                              KIND_TAG: _kind(config)})
                    self._log_params(parent.info.run_id, _settings(config))
            self.parent_run_id = parent.info.run_id
            # Ended by this process's end when it made the run or trains a trial.
            self._parent_running = created
        except Exception as error:  # MLflow's own exceptions, and the network's
            raise SearchError(
                f"Cannot use the MLflow tracking store {self.tracking_uri}: "
                f"{type(error).__name__}: {str(error).strip().splitlines()[0][:300]}. Check the "
                "URI given to --mlflow (a server must be running), or leave --mlflow out."
            ) from None

    def trial_begin(self, trial_id: str, values: dict[str, Any]) -> None:
        self._history.trial_begin(trial_id)
        self._unsent[trial_id], self._sent_at[trial_id] = [], time.monotonic()
        self._last_step[trial_id] = 0
        values = active_values(self._space, values)

        def begin():
            if not self._parent_running:  # a resumed search, or ended by another worker
                self._client.update_run(self.parent_run_id, status="RUNNING")
                self._parent_running = True
            child = self._find_run({SEARCH_ID_TAG: self._search_id, TRIAL_ID_TAG: trial_id})
            if child is None:
                child = self._client.create_run(
                    self._experiment_id, run_name=f"trial {trial_id}",
                    tags={PARENT_TAG: self.parent_run_id, SEARCH_ID_TAG: self._search_id,
                          TRIAL_ID_TAG: trial_id, STATUS_TAG: "RUNNING"})
            else:  # a resumed search reruns an interrupted trial: the same child run
                self._client.update_run(child.info.run_id, status="RUNNING")
                self._client.set_tag(child.info.run_id, STATUS_TAG, "RUNNING")
            self._children[trial_id] = child.info.run_id
            self._log_params(child.info.run_id, values)

        self._submit(begin)

    def epoch_end(self, trial_id: str, epoch: int, logs: dict[str, float]) -> None:
        from mlflow.entities import Metric

        self._history.epoch_end(trial_id, epoch, logs)
        now = int(time.time() * 1000)
        self._last_step[trial_id] = max(self._last_step.get(trial_id, 0), int(epoch))
        self._unsent.setdefault(trial_id, []).extend(
            Metric(name, float(value), now, int(epoch)) for name, value in logs.items()
            if isinstance(value, (int, float)) and math.isfinite(value))
        if time.monotonic() - self._sent_at.get(trial_id, 0.0) >= METRICS_EVERY_SECONDS:
            self._send(trial_id)

    def trial_end(self, trial_id: str, status: str, score: float | None,
                  values: dict[str, Any]) -> None:
        from mlflow.entities import Metric, RunTag

        score = self._history.score(trial_id, status, score)
        metrics = self._unsent.pop(trial_id, [])
        self._sent_at.pop(trial_id, None)
        if score is not None and math.isfinite(score):
            metrics.append(Metric(SCORE_METRIC, float(score), int(time.time() * 1000),
                                  self._last_step.pop(trial_id, 0)))

        def end():
            run_id = self._children.pop(trial_id, None)
            if run_id is None:
                return
            chunks = [metrics[start:start + 1000]  # MLflow takes 1000 metrics per batch
                      for start in range(0, len(metrics), 1000)] or [[]]
            for chunk in chunks[:-1]:
                self._client.log_batch(run_id, metrics=chunk)
            self._client.log_batch(run_id, metrics=chunks[-1], tags=[RunTag(STATUS_TAG, status)])
            self._client.set_terminated(run_id, "FINISHED" if status == "COMPLETED" else "FAILED")

        self._submit(end)

    def _send(self, trial_id: str) -> None:
        """Queue the trial's metrics not yet sent."""
        metrics, self._unsent[trial_id] = self._unsent.get(trial_id, []), []
        self._sent_at[trial_id] = time.monotonic()

        def send():
            run_id = self._children.get(trial_id)
            if run_id is not None and metrics:
                self._client.log_batch(run_id, metrics=metrics)

        self._submit(send)

    def search_end(self) -> None:
        """End the runs, after everything queued is written (waits up to
        ``FLUSH_TIMEOUT`` seconds for the store)."""
        for trial_id in list(self._unsent):  # stopped mid-trial: resumed later
            self._send(trial_id)
        self._unsent.clear()

        def end():
            for trial_id in list(self._children):
                self._client.set_terminated(self._children.pop(trial_id), "KILLED")
            if self._parent_running:  # this process trained trials: none runs here now
                self._client.set_terminated(self.parent_run_id, "FINISHED")
                self._parent_running = False

        self._submit(end)
        if self._writer is not None:
            self._pending.put(None)
            self._writer.join(FLUSH_TIMEOUT)
            if self._writer.is_alive():
                warnings.warn(f"MLflow ({self.tracking_uri}) did not take the search's last "
                              f"events within {FLUSH_TIMEOUT:.0f} s; they are not written.",
                              RuntimeWarning, stacklevel=2)
            self._writer = self._pending = None

    def _submit(self, call) -> None:
        if self._broken or self._client is None:
            return
        if self._writer is None:
            self._pending = queue.Queue()
            self._writer = threading.Thread(target=self._write, args=(self._pending,),
                                            name="hpsearch-mlflow", daemon=True)
            self._writer.start()
        self._pending.put(call)

    def _write(self, pending: queue.Queue) -> None:
        while True:
            call = pending.get()
            if call is None:
                return
            self._guard(call)

    def _guard(self, call) -> None:
        if self._broken or self._client is None:
            return
        try:
            call()
        except Exception as error:  # a tracking error must never fail the trial
            self._broken = True
            warnings.warn(
                f"MLflow tracking stopped in this process ({self.tracking_uri}): "
                f"{type(error).__name__}: {str(error).strip()[:300]}. The search goes on; its "
                "trials are in the run directory.", RuntimeWarning, stacklevel=2)

    def _find_or_create_experiment(self) -> str:
        experiment = self._client.get_experiment_by_name(self.experiment_name)
        if experiment is not None:
            return experiment.experiment_id
        try:
            return self._client.create_experiment(self.experiment_name)
        except Exception:  # another process created it first
            experiment = self._client.get_experiment_by_name(self.experiment_name)
            if experiment is None:
                raise
            return experiment.experiment_id

    def _find_run(self, tags: dict[str, str], parent: bool = False):
        conditions = [f"tags.`{name}` = '{value}'" for name, value in tags.items()]
        runs = self._client.search_runs(
            [self._experiment_id], filter_string=" and ".join(conditions), max_results=10,
            order_by=["attributes.start_time ASC"])
        if parent:
            runs = [run for run in runs if TRIAL_ID_TAG not in run.data.tags]
        return runs[0] if runs else None

    def _log_params(self, run_id: str, values: dict[str, Any]) -> None:
        from mlflow.entities import Param

        params = [Param(str(name), _param_value(value)[:6000]) for name, value in values.items()]
        for start in range(0, len(params), 100):  # MLflow takes at most 100 params per batch
            self._client.log_batch(run_id, params=params[start:start + 100])
