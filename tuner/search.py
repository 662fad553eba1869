"""Running a search: KerasTuner with hpsearch's guarantees around it.

What KerasTuner alone does not give and this module adds: the textbook model as the first trial,
a run configuration that refuses a mismatched resume, a lock against a second process, atomic
state files (a kill never leaves an unreadable oracle), failed trials recorded instead of fatal,
progress with a time estimate, per-trial seconds and epochs, ``trials.csv`` and the top-3 YAML.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import gc
import json
import math
import os
import shutil
import time
from pathlib import Path
from typing import Any, Callable

import keras
import keras_tuner as kt
import pandas as pd

import datasets
import search_spaces
from search_spaces.precision import precision_policy
from top_configs import TopConfig, plain_value, strip_internal_keys, write_top_config
from tuner.config import (
    RunConfig,
    RunConfigError,
    describe_mismatch,
    hyperband_schedule,
    read_run_config,
    write_run_config,
)
from tuner.errors import RunLockedError, SearchError
from tuner.guided import ModelGuidedProposals
from tuner.results import (
    PROJECT_NAME,
    SPACE_FILE,
    TOP_DIR,
    TRIAL_LOG,
    TRIALS_CSV,
    append_trial_log,
    completed_ranking,
    project_dir,
    read_trial_log,
    read_trial_values,
    read_trials,
)

LOCK_FILE = ".lock"
TOP_K = 3


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

    @property
    def overhead(self) -> float:
        """Wall time over training time of this call: 1.0 means no time outside ``fit``."""
        if not self.training_seconds or not math.isfinite(self.training_seconds):
            return math.nan
        return self.wall_seconds / self.training_seconds


def _atomic_save_json(path: str, state: Any) -> None:
    temporary = f"{path}.tmp"
    with open(temporary, "w") as handle:
        handle.write(json.dumps(state))
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


class _HpsearchOracle:
    """Oracle mixin: the textbook (default) values first, state files written atomically, and a
    resume that never retrains a finished trial.

    KerasTuner 1.4.8's ``end_trial`` saves ``oracle.json`` *before* dropping the trial from
    ``ongoing_trials``, and ``reload`` sends every ongoing trial to the retry queue: so the last
    COMPLETED trial of a run was retrained on every resume. Saving again after ``end_trial`` and
    filtering the retry queue on reload fixes both new and older run directories.
    """

    def end_trial(self, trial):
        super().end_trial(trial)
        self.save()

    def reload(self):
        super().reload()
        finished = (kt.engine.trial.TrialStatus.COMPLETED, kt.engine.trial.TrialStatus.FAILED)
        self._retry_queue = [
            trial_id
            for trial_id in self._retry_queue
            if self.trials[trial_id].status not in finished
        ]

    def _random_values(self):
        defaults = kt.HyperParameters()
        for hp in self.hyperparameters.space:
            defaults.merge([hp])
            if defaults.is_active(hp):
                defaults.values[hp.name] = hp.default
        if self.hyperparameters.space and self._wants_textbook(defaults.values):
            return dict(defaults.values)
        return self._propose_values()

    def _propose_values(self):
        """A new configuration after the textbook one: KerasTuner's own (random) draw."""
        return super()._random_values()

    def _wants_textbook(self, textbook_values) -> bool:
        return not self._duplicate(textbook_values)

    def save(self):
        _atomic_save_json(self._get_oracle_fname(), self.get_state())

    def _save_trial(self, trial):
        _atomic_save_json(
            os.path.join(self._get_trial_dir(trial.trial_id), "trial.json"), trial.get_state()
        )


class _HyperbandOracle(_HpsearchOracle, kt.oracles.HyperbandOracle):
    """Hyperband's first trial (in its most aggressive bracket) trains the textbook model for a
    few epochs only; unless a promotion already took it to ``max_epochs``, the textbook model is
    also the first trial of the full-budget bracket, so best-vs-textbook compares equal budgets."""

    _in_full_budget_bracket = False

    def _random_trial(self, trial_id, bracket):
        self._in_full_budget_bracket = bracket["bracket_num"] == 0
        try:
            return super()._random_trial(trial_id, bracket)
        finally:
            self._in_full_budget_bracket = False

    def _wants_textbook(self, textbook_values) -> bool:
        if super()._wants_textbook(textbook_values):
            return True
        if not self._in_full_budget_bracket:
            return False
        return not any(
            strip_internal_keys(trial.hyperparameters.values) == textbook_values
            and trial.hyperparameters.values.get("tuner/epochs") == self.max_epochs
            for trial in self.trials.values()
        )


class _GuidedHyperbandOracle(ModelGuidedProposals, _HyperbandOracle):
    """Hyperband whose new configurations come from a Gaussian process (BOHB's idea)."""


class _BayesianOracle(_HpsearchOracle, kt.oracles.BayesianOptimizationOracle):
    pass


class _RandomOracle(_HpsearchOracle, kt.oracles.RandomSearchOracle):
    pass


class _TrackedTuner:
    """Tuner mixin: progress lines, per-trial timing and epoch counts, NaN losses fail a trial."""

    def _setup_tracking(
        self,
        run_dir: Path,
        config: RunConfig,
        progress: Callable[[str], None],
        on_trial_done: Callable[[], None],
    ):
        self._run_dir = run_dir
        self._config = config
        self._progress = progress
        self._on_trial_done = on_trial_done
        self._search_started = time.monotonic()
        self._trials_this_call = 0
        self._seconds_this_call = 0.0
        self._epochs_this_call = 0
        self._trial_started = 0.0
        self._trial_epochs = 0
        self._trial_build_seconds = 0.0
        self._trial_fit_seconds = 0.0
        self.training_seconds = 0.0
        self._epochs_before = sum(
            int(entry.get("epochs") or 0) for entry in read_trial_log(run_dir).values()
        )

    def save(self):
        _atomic_save_json(self._get_tuner_fname(), self.get_state())

    def on_trial_begin(self, trial):
        super().on_trial_begin(trial)
        self._trial_started = time.monotonic()
        self._trial_epochs = 0
        self._trial_build_seconds = 0.0
        self._trial_fit_seconds = 0.0
        values = trial.hyperparameters.values
        position = len(self.oracle.trials)
        where = ""
        if "tuner/bracket" in values:
            where = (
                f" bracket {values['tuner/bracket']} round {values['tuner/round']}, "
                f"epochs {values['tuner/initial_epoch']}->{values['tuner/epochs']}"
            )
        best = self._best_score_text()
        shown = ", ".join(f"{k}={_short(v)}" for k, v in strip_internal_keys(values).items())
        self._progress(
            f"[trial {position}/{self._config.trial_budget}]{where} | elapsed "
            f"{format_duration(time.monotonic() - self._search_started)}, left ~{self._eta_text(position)}"
            f" | best {best}\n    {shown}"
        )

    def on_epoch_end(self, trial, model, epoch, logs=None):
        super().on_epoch_end(trial, model, epoch, logs=logs)
        self._trial_epochs += 1
        logs = logs or {}
        objective = self.oracle.objective.name
        shown = " ".join(
            f"{k}={v:.4f}"
            for k, v in logs.items()
            if k in ("loss", "val_loss", objective) and isinstance(v, (int, float))
        )
        self._progress(f"    epoch {epoch + 1}: {shown}")

    # Where a trial's time goes: building the model, inside fit, and the rest (checkpoints, oracle
    # and result files), logged per trial and summed into the search overhead.
    def _try_build(self, hp):
        started = time.monotonic()
        try:
            return super()._try_build(hp)
        finally:
            self._trial_build_seconds += time.monotonic() - started

    def _build_and_fit_model(self, trial, *args, **kwargs):
        started = time.monotonic()
        build_before = self._trial_build_seconds
        try:
            return super()._build_and_fit_model(trial, *args, **kwargs)
        finally:
            fit = time.monotonic() - started - (self._trial_build_seconds - build_before)
            self._trial_fit_seconds += fit
            self.training_seconds += fit

    def run_trial(self, trial, *args, **kwargs):
        histories = super().run_trial(trial, *args, **kwargs)
        for history in histories if isinstance(histories, list) else [histories]:
            losses = getattr(history, "history", {}).get("loss", [])
            if any(not math.isfinite(loss) for loss in losses):
                raise kt.errors.FailedTrialError(
                    f"loss became {losses[-1]} (diverged); try a smaller learning rate"
                )
        return histories

    def on_trial_end(self, trial):
        super().on_trial_end(trial)
        seconds = time.monotonic() - self._trial_started
        self._trials_this_call += 1
        self._seconds_this_call += seconds
        self._epochs_this_call += self._trial_epochs
        append_trial_log(
            self._run_dir,
            {
                "trial_id": trial.trial_id,
                "status": trial.status,
                "seconds": round(seconds, 3),
                "build_seconds": round(self._trial_build_seconds, 3),
                "fit_seconds": round(self._trial_fit_seconds, 3),
                "epochs": self._trial_epochs,
                "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
            },
        )
        score = "" if trial.score is None else f" {self.oracle.objective.name}={trial.score:.4f}"
        reason = ""
        if trial.status != "COMPLETED" and trial.message:
            reason = " (" + trial.message.strip().splitlines()[-1][:200] + ")"
        self._progress(
            f"    -> {trial.status}{score} in {seconds:.1f} s, "
            f"{self._trial_epochs} epochs{reason}"
        )
        self._on_trial_done()

    def _best_score_text(self) -> str:
        best = [t for t in self.oracle.get_best_trials(1) if t.status == "COMPLETED"]
        return f"{best[0].score:.4f}" if best and best[0].score is not None else "-"

    def _eta_text(self, position: int) -> str:
        """Time left: Hyperband by epochs (its later trials train longer), others by trials."""
        if not self._trials_this_call:
            return "?"
        config = self._config
        if config.uses_hyperband and not config.max_trials and self._epochs_this_call:
            total_epochs = hyperband_schedule(
                config.max_epochs, config.factor, config.hyperband_iterations
            )[1]
            done = self._epochs_before + self._epochs_this_call
            per_epoch = self._seconds_this_call / self._epochs_this_call
            return format_duration(per_epoch * max(total_epochs - done, 0))
        remaining = max(config.trial_budget - position + 1, 0)
        per_trial = self._seconds_this_call / self._trials_this_call
        return format_duration(per_trial * remaining)


class _HyperbandTuner(_TrackedTuner, kt.tuners.Hyperband):
    oracle_class: type = _HyperbandOracle

    def __init__(self, hypermodel, config: RunConfig, objective, **kwargs):
        oracle = self.oracle_class(
            objective=objective,
            max_epochs=config.max_epochs,
            factor=config.factor,
            hyperband_iterations=config.hyperband_iterations,
            seed=config.seed,
            max_consecutive_failed_trials=5,
        )
        kt.Tuner.__init__(self, oracle=oracle, hypermodel=hypermodel, **kwargs)


class _TrialBudgetTuner(_TrackedTuner, kt.Tuner):
    """A tuner whose budget is a number of trials (Bayesian optimization, random search)."""

    oracle_class: type

    def __init__(self, hypermodel, config: RunConfig, objective, **kwargs):
        oracle = self.oracle_class(
            objective=objective,
            max_trials=config.trial_budget,
            seed=config.seed,
            max_consecutive_failed_trials=5,
        )
        super().__init__(oracle=oracle, hypermodel=hypermodel, **kwargs)


class _BayesianTuner(_TrialBudgetTuner):
    oracle_class = _BayesianOracle


class _RandomTuner(_TrialBudgetTuner):
    oracle_class = _RandomOracle


class _GuidedHyperbandTuner(_HyperbandTuner):
    oracle_class = _GuidedHyperbandOracle


_TUNER_CLASSES = {
    "hyperband": _HyperbandTuner,
    "bohb": _GuidedHyperbandTuner,
    "bayesian": _BayesianTuner,
    "random": _RandomTuner,
}


def format_duration(seconds: float) -> str:
    """Seconds as H:MM:SS."""
    seconds = int(round(seconds))
    return f"{seconds // 3600:d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


@contextlib.contextmanager
def run_lock(run_dir: Path):
    """Hold an exclusive lock on ``run_dir`` (released by the OS even on kill -9).

    Raises:
        RunLockedError: another process holds it.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / LOCK_FILE
    handle = open(path, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
        if error.errno not in (errno.EAGAIN, errno.EACCES):
            raise
        handle.seek(0)
        holder = handle.read().strip() or "unknown"
        handle.close()
        raise RunLockedError(
            f"Run directory {run_dir} is in use by another hpsearch process ({holder}). "
            "Wait for it to finish, stop it, or choose another --run-dir."
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()}, since {time.strftime('%Y-%m-%d %H:%M:%S')}")
    handle.flush()
    try:
        yield
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


def resolve_objective(config: RunConfig) -> RunConfig:
    """Fill in the space's own objective and direction where the config leaves them open."""
    default_name, default_direction = search_spaces.space_class(config.space).objective
    objective = config.objective or default_name
    direction = config.direction
    if direction is None:
        if objective == default_name:
            direction = default_direction
        elif "acc" in objective or "auc" in objective:
            direction = "max"
        elif "loss" in objective or "error" in objective or "cse" in objective:
            direction = "min"
        else:
            raise RunConfigError(
                f"Cannot tell whether objective '{objective}' should be maximized or minimized; "
                "pass --direction max or --direction min."
            )
    return dataclasses.replace(config, objective=objective, direction=direction)


def _check_resume(run_dir: Path, config: RunConfig, overwrite: bool) -> bool:
    """True when resuming an existing run; refuses a mismatch; wipes the run on overwrite."""
    exists = (run_dir / "run.yaml").is_file() or project_dir(run_dir).exists()
    if not exists:
        return False
    if overwrite:
        for name in (PROJECT_NAME, TOP_DIR):
            shutil.rmtree(run_dir / name, ignore_errors=True)
        for name in ("run.yaml", SPACE_FILE, TRIAL_LOG, TRIALS_CSV):
            (run_dir / name).unlink(missing_ok=True)
        return False
    saved, _ = read_run_config(run_dir)
    differences = describe_mismatch(saved, config)
    if differences:
        raise RunConfigError(
            f"Run directory {run_dir} was created with other settings, so resuming it would mix "
            "incomparable trials:\n  - "
            + "\n  - ".join(differences)
            + "\nUse the saved settings to resume, --overwrite to start again, or another --run-dir."
        )
    return True


def build_hypermodel(config: RunConfig, data: datasets.Dataset) -> search_spaces.SearchSpace:
    """The search space of ``config`` for ``data``'s input shape and classes."""
    if (config.space == "clock") != (config.dataset == "clock"):
        raise RunConfigError(
            f"The '{config.space}' search space cannot be trained on '{config.dataset}': the clock "
            "space needs --dataset clock and the classifiers (mlp, cnn) need fashion_mnist or cifar10."
        )
    options: dict[str, Any] = {
        "input_shape": data.input_shape,
        "steps_per_execution": config.steps_per_execution,
    }
    if config.space == "clock":
        if config.head:
            options["head"] = config.head
        if data.num_classes:
            options["num_classes"] = data.num_classes
        # Rendered sets carry the geometry for the auxiliary training output.
        options["geometry"] = data.geometry_train is not None
    else:
        if config.head:
            raise RunConfigError(
                f"--head only applies to the clock search space, not '{config.space}'."
            )
        options["num_classes"] = data.num_classes
    return search_spaces.get(config.space, **options)


def load_dataset(config: RunConfig, data_dir=None) -> datasets.Dataset:
    """The dataset of a run, split as the run configuration says."""
    return datasets.load(
        config.dataset,
        data_dir=data_dir,
        subset=config.subset,
        seed=config.seed,
        validation_fraction=config.validation_fraction,
    )


def run_search(
    config: RunConfig,
    run_dir: str | os.PathLike,
    data_dir=None,
    overwrite: bool = False,
    progress: Callable[[str], None] = print,
    data: datasets.Dataset | None = None,
) -> SearchResult:
    """Run (or resume) a search and export its results.

    Args:
        config: what to search and with which budget.
        run_dir: where everything is written; an existing run there is resumed.
        data_dir: where to look for the dataset first (see ``datasets.load``).
        overwrite: discard an existing run in ``run_dir`` and start again.
        progress: called with each progress line (``print`` by default; ``None`` for silence).
        data: an already loaded dataset (for notebooks); loaded from ``config`` when None.

    Returns:
        A SearchResult with the trials table and the exported top configurations.

    Raises:
        RunConfigError: invalid settings, or a resume with other settings.
        RunLockedError: another process is searching in ``run_dir``.
        SearchError: the search stopped, e.g. after too many consecutive failed trials.
        datasets.DatasetError: the dataset cannot be found or read.
    """
    started = time.monotonic()
    progress = progress or (lambda line: None)
    run_dir = Path(run_dir)
    config = resolve_objective(config)
    search_spaces.space_class(config.space)  # unknown space: fail before loading anything
    with run_lock(run_dir), precision_policy(config.precision) as precision:
        resuming = _check_resume(run_dir, config, overwrite)
        if data is None:
            data = load_dataset(config, data_dir)
        progress(f"Data: {data.summary()}")
        hypermodel = build_hypermodel(config, data)
        textbook = {k: plain_value(v) for k, v in hypermodel.textbook_values().items()}
        write_run_config(
            run_dir,
            config,
            {
                "precision": precision,
                "textbook_values": textbook,
                "data": {
                    "source": data.source,
                    "description": data.description,
                    "train": len(data.x_train),
                    "validation": len(data.x_val),
                    "test": len(data.x_test),
                    "input_shape": list(data.input_shape),
                },
                "versions": {
                    "tensorflow": _version("tensorflow"),
                    "keras": keras.__version__,
                    "keras_tuner": kt.__version__,
                },
            },
        )
        keras.utils.set_random_seed(config.seed)
        objective = kt.Objective(config.objective, direction=config.direction)
        tuner_class = _TUNER_CLASSES[config.tuner]
        try:
            tuner = tuner_class(
                hypermodel,
                config,
                objective,
                directory=str(run_dir),
                project_name=PROJECT_NAME,
                overwrite=False,
                executions_per_trial=config.executions_per_trial,
            )
        except (json.JSONDecodeError, KeyError, RuntimeError) as error:
            raise SearchError(
                f"Cannot reload the KerasTuner project in {project_dir(run_dir)} "
                f"({type(error).__name__}: {error}). Use --overwrite to start again."
            ) from None
        if config.uses_hyperband:
            # KerasTuner keeps the saved value on reload; a larger budget must reach the oracle.
            tuner.oracle.hyperband_iterations = config.hyperband_iterations
            tuner.oracle.max_trials = config.max_trials
        else:
            tuner.oracle.max_trials = config.trial_budget
        done_before = len(tuner.oracle.trials)
        progress(
            ("Resuming" if resuming else "Starting")
            + f" a {config.tuner} search of '{config.space}'"
            f" on {config.dataset} in {run_dir}: objective {config.objective} ({config.direction}),"
            f" budget {config.trial_budget} trials, {done_before} already run."
        )

        def export() -> None:
            export_results(run_dir, config, textbook)

        tuner._setup_tracking(run_dir, config, progress, export)
        (run_dir / SPACE_FILE).write_text(json.dumps(tuner.oracle.get_space().get_config()))
        callbacks = []
        if not config.uses_hyperband:
            callbacks.append(
                keras.callbacks.EarlyStopping(
                    monitor=config.objective,
                    mode=config.direction,
                    patience=config.early_stopping_patience,
                )
            )
        extra = {}
        if getattr(hypermodel, "geometry", False):
            extra["geometry"] = data.geometry_train
        # KerasTuner runs a full garbage collection before every trial, and Keras's clear_session
        # another: with TensorFlow's objects in the heap each took ~0.5 s, a second per trial.
        # Frozen, the objects alive now (modules, data, tuner) are skipped by every collection;
        # the models of finished trials are still collected.
        gc.collect()
        gc.freeze()
        try:
            tuner.search(
                data.x_train,
                data.y_train,
                validation_data=(data.x_val, data.y_val),
                epochs=config.max_epochs,
                callbacks=callbacks,
                verbose=0,
                **extra,
            )
        except RuntimeError as error:
            export()
            raise SearchError(f"The search stopped: {error}") from None
        finally:
            gc.unfreeze()
            keras.backend.clear_session()
        trials, top = export_results(run_dir, config, textbook)
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
            new_trials=len(tuner.oracle.trials) - done_before,
            wall_seconds=time.monotonic() - started,
            training_seconds=tuner.training_seconds,
            precision=precision,
        )


def export_results(
    run_dir: Path, config: RunConfig, textbook: dict[str, Any] | None = None
) -> tuple[Any, list[TopConfig]]:
    """Rewrite ``trials.csv`` and ``top_configs/rank_*.yaml`` from the run directory's trials."""
    trials = read_trials(run_dir, textbook)
    temporary = run_dir / (TRIALS_CSV + ".tmp")
    trials.to_csv(temporary, index=False)
    os.replace(temporary, run_dir / TRIALS_CSV)
    ranking = completed_ranking(trials, config.direction)
    top_dir = run_dir / TOP_DIR
    top_dir.mkdir(exist_ok=True)
    for stale in top_dir.glob("rank_*.yaml"):
        stale.unlink()
    hp_values = read_trial_values(run_dir)
    top = []
    for rank, (_, row) in enumerate(ranking.head(TOP_K).iterrows(), start=1):
        values = strip_internal_keys(hp_values[row["trial_id"]])
        # Epochs to retrain this configuration for: up to its best epoch, counting the epochs a
        # promoted Hyperband trial inherited from its parent.
        best_step = row["best_step"]
        if pd.notna(best_step):
            epochs = (
                int(hp_values[row["trial_id"]].get("tuner/initial_epoch", 0)) + int(best_step) + 1
            )
        else:
            epochs = int(row["epochs"] or 0)
        top_config = TopConfig(
            rank=rank,
            search_space=config.space,
            dataset=config.dataset,
            objective=config.objective,
            direction=config.direction,
            score=float(row["score"]),
            trial_id=str(row["trial_id"]),
            epochs=epochs,
            hyperparameters=values,
            head=config.head,
        )
        write_top_config(top_dir / f"rank_{rank}.yaml", top_config)
        top.append(top_config)
    return trials, top


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "unknown"
