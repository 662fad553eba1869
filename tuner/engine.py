"""hpsearch's KerasTuner engine: the tuners that train a search's trials, over the oracles of
``tuner.oracles``, and ``new_tuner``, which gives a run directory its tuner.

The tuners record failed and diverged trials, print progress lines with a time estimate, time
every trial, and keep a garbage collector off the heap that survives every trial. Every private
KerasTuner name used here or in ``tuner.oracles`` is listed in
``tests/test_kerastuner_internals.py``.
"""

from __future__ import annotations

import contextlib
import copy
import gc
import io
import json
import math
import os
import time
from pathlib import Path
from typing import Any, Callable

import keras
import keras_tuner as kt

from search_spaces.precision import reapply_policy
from top_configs import strip_internal_keys
from tuner import rundir
from tuner.config import InvalidSettingError, RunConfig, bayesian_initial_points, oracle_seed
from tuner.errors import CorruptRunError, last_error_line
from tuner.oracles import _BayesianOracle, _GuidedHyperbandOracle, _HyperbandOracle, _RandomOracle
from tuner.progress import format_duration, seconds_left
from tuner.results import append_trial_log, project_dir, read_trial_log
from tuner.rundir import PROJECT_NAME

# Trials in a row that may fail before the search stops (KerasTuner's default is 3).
MAX_CONSECUTIVE_FAILED_TRIALS = 5


class _TrackedTuner:
    """Tuner mixin: progress lines, per-trial timing and epoch counts, NaN losses fail a trial."""

    def _setup_tracking(
        self,
        run_dir: Path,
        config: RunConfig,
        progress: Callable[[str], None],
        on_trial_done: Callable[[], None],
        worker: str | None = None,
        on_trial_state: Callable[[dict], None] | None = None,
        workers_alive: Callable[[], int] | None = None,
        hooks=None,
        record: dict[str, Any] | None = None,
        observers=(),
    ):
        # ``worker``: this process's tuner id when it is a worker of a distributed search (its
        # oracle is then a client: only public calls travel, so no private oracle state is read).
        # ``hooks``, ``record``: the space's steps and what run.yaml recorded of its choices,
        # for what each trial writes beside its checkpoint.
        # ``observers``: ``tuner.observers.TrialObserver`` objects told of every trial trained here.
        self._worker = worker
        self._observers = list(observers)
        self._hooks = hooks
        self._record = dict(record or {})
        self._on_trial_state = on_trial_state or (lambda state: None)
        self._workers_alive = workers_alive or (lambda: 1)
        self._run_dir = run_dir
        self._config = config
        self._progress = progress
        self._on_trial_done = on_trial_done
        self._search_started = time.monotonic()
        self._trials_this_call = 0
        self._trial_started = 0.0
        self._trial_epochs = 0
        self._trial_build_seconds = 0.0
        self._trial_fit_seconds = 0.0
        self._trial_compute_dtype: str | None = None
        self.training_seconds = 0.0

    def save(self):
        # KerasTuner's Tuner.save, written atomically: a worker of a distributed search leaves
        # the oracle to the chief.
        if not self._is_worker():
            self.oracle.save()
        rundir.write_json(self._get_tuner_fname(), self.get_state())

    def on_trial_begin(self, trial):
        super().on_trial_begin(trial)
        self._trial_started = time.monotonic()
        self._trial_epochs = 0
        self._trial_build_seconds = 0.0
        self._trial_fit_seconds = 0.0
        self._trial_compute_dtype = None
        values = trial.hyperparameters.values
        if self._worker is None:
            position = len(self.oracle.trials)
        else:
            position = int(trial.trial_id) + 1 if str(trial.trial_id).isdigit() else 0
        self._on_trial_state({"state": "training", "trial_id": trial.trial_id,
                              "trial_started": time.time(), "epoch": 0})
        where = ""
        if "tuner/bracket" in values:
            where = (
                f" bracket {values['tuner/bracket']} round {values['tuner/round']}, "
                f"epochs {values['tuner/initial_epoch']}->{values['tuner/epochs']}"
            )
        best = self._best_score_text()
        shown = ", ".join(f"{k}={_short(v)}" for k, v in strip_internal_keys(values).items())
        who = f"{self._worker}: " if self._worker else ""
        self._progress(
            f"[{who}trial {position}/{self._config.trial_budget}]{where} | elapsed "
            f"{format_duration(time.monotonic() - self._search_started)}, left ~{self._eta_text(position)}"
            f" | best {best}\n    {shown}"
        )
        for observer in self._observers:
            observer.trial_begin(str(trial.trial_id), strip_internal_keys(values))

    def on_epoch_end(self, trial, model, epoch, logs=None):
        super().on_epoch_end(trial, model, epoch, logs=logs)
        self._trial_epochs += 1
        self._trial_compute_dtype = self._trial_compute_dtype or _compute_dtype(model)
        self._on_trial_state({"epoch": self._trial_epochs})
        logs = logs or {}
        objective = self.oracle.objective.name
        shown = " ".join(
            f"{k}={v:.4f}"
            for k, v in logs.items()
            if k in ("loss", "val_loss", objective) and isinstance(v, (int, float))
        )
        self._progress(f"    epoch {epoch + 1}: {shown}")
        numbers = {k: float(v) for k, v in logs.items() if isinstance(v, (int, float))}
        for observer in self._observers:
            observer.epoch_end(str(trial.trial_id), int(epoch), numbers)

    def _activate_all_conditions(self):
        """KerasTuner's discovery of the space's conditional hyperparameters, in fewer builds.

        KerasTuner builds the whole model once per conditional scope never yet active, setting
        one scope's conditions each time (29 builds of the MLP space, 11 of the CNN, 7 of the
        clock: about 3 s before a search, in the chief and in every worker). Here each build
        sets the conditions of every such scope that agrees with those already set for it
        (optimizer=sgd with regularization=l1, ...): 4 builds for each space, the same
        hyperparameters in the same order (``tests/test_kerastuner_internals.py``).
        """
        never_active, once_active = [], []
        hp = self.oracle.get_space()
        while True:
            self.hypermodel.build(hp)
            self.oracle.update_space(hp)
            for conditions in hp.active_scopes:
                if conditions not in once_active:
                    once_active.append(copy.deepcopy(conditions))
                if conditions in never_active:
                    never_active.remove(conditions)
            for conditions in hp.inactive_scopes:
                if conditions not in once_active and conditions not in never_active:
                    never_active.append(copy.deepcopy(conditions))
            if not never_active:
                return
            hp = self.oracle.get_space()
            chosen: dict[str, Any] = {}
            for conditions in never_active:
                wanted = {condition.name: condition.values[0] for condition in conditions}
                if all(chosen.get(name, value) == value for name, value in wanted.items()):
                    chosen.update(wanted)
            hp.values.update(chosen)
            hp.ensure_active_values()

    # Where a trial's time goes: building the model, inside fit, and the rest (checkpoints, oracle
    # and result files), logged per trial and summed into the search overhead.
    def _try_build(self, hp):
        started = time.monotonic()
        try:
            _freeze_survivors()
            return super()._try_build(hp)
        finally:
            self._trial_build_seconds += time.monotonic() - started

    def _build_hypermodel(self, hp):
        # KerasTuner's _try_build has just cleared the session, which resets Keras's dtype policy:
        # set --precision's again, for any hypermodel (hpsearch's spaces also do it themselves).
        reapply_policy()
        return super()._build_hypermodel(hp)

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
        self._write_model_card(trial)
        seconds = time.monotonic() - self._trial_started
        self._trials_this_call += 1
        append_trial_log(
            self._run_dir,
            {
                "trial_id": trial.trial_id,
                "status": trial.status,
                "seconds": round(seconds, 3),
                "build_seconds": round(self._trial_build_seconds, 3),
                "fit_seconds": round(self._trial_fit_seconds, 3),
                "epochs": self._trial_epochs,
                **({"compute_dtype": self._trial_compute_dtype}
                   if self._trial_compute_dtype else {}),
                "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
                **({"worker": self._worker} if self._worker else {}),
            },
        )
        self._on_trial_state({"state": "waiting", "trial_id": None, "epoch": None,
                              "trials_done": self._trials_this_call})
        score = "" if trial.score is None else f" {self.oracle.objective.name}={trial.score:.4f}"
        reason = ""
        if trial.status != "COMPLETED" and trial.message:
            reason = " (" + trial.message.strip().splitlines()[-1][:200] + ")"
        who = f" [{self._worker}]" if self._worker else ""
        self._progress(
            f"    ->{who} {trial.status}{score} in {seconds:.1f} s, "
            f"{self._trial_epochs} epochs{reason}"
        )
        values = strip_internal_keys(trial.hyperparameters.values)
        for observer in self._observers:
            observer.trial_end(str(trial.trial_id), str(trial.status),
                               None if trial.score is None else float(trial.score), values)
        self._on_trial_done()

    def _write_model_card(self, trial) -> None:
        hooks = getattr(self, "_hooks", None)
        if hooks is not None:
            hooks.write_trial_card(Path(self.get_trial_dir(trial.trial_id)), self.hypermodel,
                                   trial.hyperparameters, getattr(self, "_record", {}))

    def _best_score_text(self) -> str:
        best = [t for t in self.oracle.get_best_trials(1) if t.status == "COMPLETED"]
        return f"{best[0].score:.4f}" if best and best[0].score is not None else "-"

    def _eta_text(self, position: int) -> str:
        """Time left (``tuner.progress.seconds_left``), from the trials that ended so far."""
        ended = read_trial_log(self._run_dir).values()
        return format_duration(seconds_left(self._config, ended, self._workers_alive()))


class _HyperbandTuner(_TrackedTuner, kt.tuners.Hyperband):
    oracle_class: type = _HyperbandOracle

    def __init__(self, hypermodel, config: RunConfig, objective, hyperparameters=None, **kwargs):
        oracle = self.oracle_class(
            objective=objective,
            max_epochs=config.max_epochs,
            factor=config.factor,
            hyperband_iterations=config.hyperband_iterations,
            seed=oracle_seed(config.seed),
            max_consecutive_failed_trials=MAX_CONSECUTIVE_FAILED_TRIALS,
            hyperparameters=hyperparameters,
        )
        kt.Tuner.__init__(self, oracle=oracle, hypermodel=hypermodel, **kwargs)


class _TrialBudgetTuner(_TrackedTuner, kt.Tuner):
    """A tuner whose budget is a number of trials (Bayesian optimization, random search)."""

    oracle_class: type

    def __init__(self, hypermodel, config: RunConfig, objective, hyperparameters=None, **kwargs):
        oracle = self.oracle_class(
            objective=objective,
            max_trials=config.trial_budget,
            seed=oracle_seed(config.seed),
            max_consecutive_failed_trials=MAX_CONSECUTIVE_FAILED_TRIALS,
            hyperparameters=hyperparameters,
            **self._oracle_options(config),
        )
        super().__init__(oracle=oracle, hypermodel=hypermodel, **kwargs)

    def _oracle_options(self, config: RunConfig) -> dict[str, Any]:
        return {}


class _BayesianTuner(_TrialBudgetTuner):
    oracle_class = _BayesianOracle

    def _oracle_options(self, config: RunConfig) -> dict[str, Any]:
        return {"num_initial_points": bayesian_initial_points(config)}


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


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


class _StopOnNaN(keras.callbacks.Callback):
    """Stops training at the first batch whose loss is not finite (Keras's TerminateOnNaN, without
    its print: the failed trial's line says it)."""

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.model.stop_training = True


def distribution_strategy(config: RunConfig, gpus: int | None = None):
    """The tf.distribute strategy each trial trains under (None: none, the default).

    Args:
        config: ``config.strategy`` names it ("mirrored": across every GPU of this host).
        gpus: GPUs visible to this process (default: as the NVIDIA driver lists them).

    Raises:
        InvalidSettingError: "mirrored" with fewer than 2 GPUs visible. Refused rather than
            run on one device, so that a user who asked for several GPUs learns they are not
            there instead of timing a silent single-device run. Also refused on a Keras backend
            other than TensorFlow, which has no tf.distribute.
    """
    if config.strategy is None:
        return None
    from search_spaces.devices import keras_backend, visible_gpus

    backend = keras_backend()
    if backend != "tensorflow":
        raise InvalidSettingError(
            f"--strategy {config.strategy} trains with tf.distribute, which needs Keras's "
            f"TensorFlow backend; this process runs Keras on {backend!r} (KERAS_BACKEND). Leave "
            "--strategy out, or set KERAS_BACKEND=tensorflow.")
    import tensorflow as tf

    if gpus is None:
        gpus = len(visible_gpus())
    if gpus < 2:
        raise InvalidSettingError(
            f"--strategy {config.strategy} trains each trial across several GPUs of this host, "
            f"but {gpus} GPU(s) are visible (as nvidia-smi lists them, narrowed by "
            "CUDA_VISIBLE_DEVICES). Leave --strategy out on this machine, or check "
            "CUDA_VISIBLE_DEVICES and the GPU driver."
        )
    return tf.distribute.MirroredStrategy()


def new_tuner(config: RunConfig, hypermodel, run_dir: Path, trains: bool = True,
              hyperparameters: kt.HyperParameters | None = None) -> kt.Tuner:
    """hpsearch's tuner of ``config.tuner`` over the KerasTuner project of ``run_dir``
    (reloaded when present). In a worker of a distributed search (KerasTuner's environment
    variables set), its oracle is a client of the chief's. A tuner that ``trains`` nothing (a
    chief) gets no distribution strategy. ``hyperparameters``: values fixed for every trial
    (KerasTuner's ``hyperparameters=``; a fine-tune's architecture).

    Raises:
        CorruptRunError: the project cannot be reloaded (names the repair).
        InvalidSettingError: see ``distribution_strategy``.
    """
    objective = kt.Objective(config.objective, direction=config.direction)
    tuner_class = _TUNER_CLASSES[config.tuner]
    strategy = distribution_strategy(config) if trains else None
    # KerasTuner reloads the oracle only when this tuner id saved a file in the project before.
    # A chief never does, nor does a search resumed under another id (with --workers after a
    # one-process run, or back): their oracle started again from trial 0, over finished trials.
    tuner_id = os.environ.get("KERASTUNER_TUNER_ID", "tuner0")
    reloads = (project_dir(run_dir) / f"{tuner_id}.json").is_file()
    try:
        # KerasTuner prints "Reloading Tuner from ..." whatever the verbosity; the progress
        # line of run_search says it.
        with contextlib.redirect_stdout(io.StringIO()):
            tuner = tuner_class(
                hypermodel,
                config,
                objective,
                directory=str(run_dir),
                project_name=PROJECT_NAME,
                overwrite=False,
                executions_per_trial=config.executions_per_trial,
                distribution_strategy=strategy,
                hyperparameters=hyperparameters,
            )
        if (not reloads and not tuner._is_worker()
                and (project_dir(run_dir) / rundir.ORACLE_FILE).is_file()):
            tuner.oracle.reload()
        return tuner
    except (json.JSONDecodeError, KeyError, RuntimeError) as error:
        raise CorruptRunError(
            f"Cannot reload the KerasTuner project in {project_dir(run_dir)} "
            f"({type(error).__name__}: {error}). {rundir.repair_hint(run_dir)}"
        ) from None


@contextlib.contextmanager
def frozen_survivors():
    """Keep what survives a garbage collection out of later ones while trials run.

    KerasTuner runs a full collection before every trial's build and Keras's ``clear_session``
    another, and each costs time in proportion to the objects alive. Frozen (``gc.freeze``) at
    the start and again before every build (``_freeze_survivors``), the objects alive then are
    skipped by every later collection: the modules, the data and the tuner, and the TensorFlow
    graph objects that outlive every trained model (about 15,000 per trial with TensorFlow 2.21:
    the FuncGraphs of its train and test steps and of its variables' initializers, held by no
    Keras or hpsearch object). With one freeze at the start only, a build (those two
    collections, mostly) took 0.13 s at trial 1 and 2.84 s at trial 40 of a 40-trial search.
    The models of finished trials are garbage by the next build, so they are still collected.
    Everything is unfrozen on exit; outside this block the builds freeze nothing.

    The outermost block freezes without collecting first: a full collection then walks every
    object TensorFlow's import made (0.4-0.7 s), and garbage frozen with the survivors is only
    kept until the block ends, when the unfreeze hands it back to the collector. ``run_search``
    holds the block from its first check to its last export, so the collections inside its set-up
    (the objective check's ``clear_session``, the one after the trials) skip the heap too.
    """
    global _FREEZING
    _FREEZING += 1
    if _FREEZING == 1:
        gc.freeze()
    else:
        _freeze_survivors()
    try:
        yield
    finally:
        _FREEZING -= 1
        if not _FREEZING:
            gc.unfreeze()


# How many ``frozen_survivors`` blocks are open: a tuner used outside one never freezes the heap.
_FREEZING = 0


def _compute_dtype(model) -> str | None:
    """The dtype a trial's model computes in: that of its first layer with weights (its output
    layers stay float32 under every policy), as the trial log records it."""
    for layer in getattr(model, "layers", []):
        if layer.weights:
            return str(layer.compute_dtype)
    return None


def _freeze_survivors() -> None:
    if _FREEZING:
        gc.collect()
        gc.freeze()


def _stopped_message(error: RuntimeError) -> str:
    """KerasTuner's stop message carries the last trial's whole traceback: keep its last line."""
    lines = [line for line in str(error).strip().splitlines() if line.strip()]
    if not lines:
        return "The search stopped."
    first, last = lines[0], last_error_line(str(error))
    if "consecutive failures" in first:
        return (f"The search stopped: {MAX_CONSECUTIVE_FAILED_TRIALS} trials in a row failed. "
                f"The last one failed with: {last}. The failed trials are in "
                "trials.csv; fix the cause and run the same command again to resume.")
    return f"The search stopped: {first}" + (f" ({last})" if last != first.strip() else "")


def search_callbacks(config: RunConfig, run_dir: Path, extra=None) -> list:
    """The callbacks of every trial's ``fit``: a NaN stop, early stopping for the tuners that
    train whole trials, and the caller's own (``extra``)."""
    callbacks: list[keras.callbacks.Callback] = [_StopOnNaN()]
    if not config.uses_hyperband:
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor=config.objective,
                mode=config.direction,
                patience=config.early_stopping_patience,
            )
        )
    # --tensorboard adds no callback: hpsearch's observer (tuner/hparams.py) writes each trial's
    # session and per-epoch scalars on every backend. Keras's TensorBoard callback would make
    # KerasTuner add its HParams callback too under TensorFlow (a second session per trial),
    # and under JAX write every trial into one folder without hyperparameters.
    return callbacks + list(extra or [])
