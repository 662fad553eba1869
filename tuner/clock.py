"""Compare label representations for telling the time: every head, same backbone, budget and data.

>>> from tuner.clock import ComparisonConfig, compare_heads
>>> table = compare_heads(ComparisonConfig(size=75, epochs=10), out_dir="runs/clock-75")
>>> table[["head", "cse_mean", "cse_median"]]

Writes into ``out_dir``: ``config.yaml`` (the run configuration), ``heads/<head>.json`` (one result
per head, written when the head finishes, so an interrupted comparison resumes with the heads still
missing), ``heads/<head>.keras`` (the trained model; ``tuner.clock_models.load_trained_model``
reads it back with its head) and ``heads/<head>.head.json`` (its model card: what the head is),
``heads/<head>-predictions.csv`` (every held-out image: true and predicted time,
error in minutes), ``comparison.csv``, ``comparison.json`` and ``comparison.md`` (the table).
"""
from __future__ import annotations

import dataclasses
import math
import os
import statistics
import time
from pathlib import Path
from typing import Any, Callable, NamedTuple

import keras
import keras_tuner as kt
import numpy as np
import pandas as pd

from datasets.clock import load_clock
from search_spaces.clock import HEADS, HYPERPARAMETER_NAMES, ClockHyperModel
from search_spaces.clock_heads import GEOMETRY_OUTPUT
from search_spaces.clock_time import common_sense_error_minutes, error_summary, labels_to_minutes
from search_spaces.precision import PRECISIONS, precision_policy
from tuner import rundir
from tuner.clock_models import (INPUT_POLARITIES, ComparisonRunError, InitSource, PolarityChoice,
                                choose_polarity, comparison_card_path, fixed_hyperparameters,
                                load_init_source, with_polarity, write_model_card)
from tuner.errors import UsageError
from tuner.hparams import TrialEvents, comparison_values, end_comparison_head, tensorboard_dir
from tuner.progress import format_duration
from tuner.rundir import (COMPARISON_CSV, COMPARISON_FILE, COMPARISON_JSON, COMPARISON_MD,
                          HEADS_DIR, run_lock)
from tuner.config import oracle_seed

TABLE_COLUMNS = ["head", "outputs", "loss", "cse_mean", "cse_median", "within_1min",
                 "within_5min", "seconds_per_epoch", "parameters", "epochs", "train_images",
                 "test_images"]
# The held-out error shown per epoch (monitoring only): a fixed sample of at most this many
# images, read once per epoch, and only while a read costs at most this share of an epoch.
MONITOR_IMAGES = 500
MONITOR_SHARE = 0.1


@dataclasses.dataclass(frozen=True)
class ComparisonConfig:
    """One comparison of heads; written to ``config.yaml`` next to the results."""

    size: int = 75                      # 75 or 150, the assignment's two image sizes
    split: str = "final"                # 80/20: final numbers on the held-out 20%
    heads: tuple[str, ...] = HEADS      # every representation the issue names
    num_classes: tuple[int, ...] = (720,)  # one classification row per class count
    epochs: int = 10                    # same budget for every head
    subset: int | None = None           # images used of the whole set, before the split; None = all
    trials: int = 0                     # 0: train each head's default point; n: random search n
    seed: int = 0                       # data split, weight initialization and search seed
    count: int = 18000                  # rendered set size when no real files are given
    style: str = "classic"              # rendered clocks: one design; "varied" learns far slower
    data_dir: str | None = None         # the assignment's files, else the rendered stand-in
    hyperparameters: dict = dataclasses.field(default_factory=dict)  # backbone values fixed for all
    steps_per_execution: int = 32       # as SearchSpace: per-step overhead dominates on CPU
    precision: str = "float32"          # Keras dtype policy, or auto (search_spaces.precision)
    test_rotations: int = 1             # test-time augmentation: rotated reads averaged; 1 = off
    init_from: str | None = None        # a trained clock run every head starts from; None: random
    init_head: str | None = None        # which of its models (row label, trial id); None: its best
    polarity: str = "auto"              # images as_is, negated, or auto (a fine-tune: the trained
                                        # model chooses; see clock_models.choose_polarity)

    def __post_init__(self):
        unknown = [head for head in self.heads if head not in HEADS]
        if unknown or not self.heads:
            raise UsageError(f"Unknown head(s) {unknown or '(none given)'}. Expected some of: "
                             f"{', '.join(HEADS)}.")
        for classes in self.num_classes:
            if classes < 2 or 720 % classes:
                raise UsageError(f"num_classes must divide 720 (e.g. 24, 72, 144, 360, 720), got "
                                 f"{classes}.")
        unknown = sorted(set(self.hyperparameters) - set(HYPERPARAMETER_NAMES))
        if unknown:
            raise UsageError(f"Unknown hyperparameter(s) {', '.join(unknown)}. Expected some of: "
                             f"{', '.join(HYPERPARAMETER_NAMES)}.")
        if self.precision not in PRECISIONS:
            raise UsageError(f"Unknown precision {self.precision!r}. Expected one of: "
                             f"{', '.join(PRECISIONS)}.")
        if not isinstance(self.test_rotations, int) or self.test_rotations < 1:
            raise UsageError(f"test_rotations must be a whole number >= 1 (1: no test-time "
                             f"augmentation), got {self.test_rotations!r}.")
        if self.polarity not in INPUT_POLARITIES + ("auto",):
            raise UsageError(f"Unknown polarity {self.polarity!r}. Expected one of: "
                             f"{', '.join(INPUT_POLARITIES + ('auto',))}.")
        if self.init_head is not None and self.init_from is None:
            raise UsageError(f"init_head {self.init_head!r} names a model of the init_from run, "
                             "but no init_from was given. Pass --init-from RUN too, or leave "
                             "--init-head out.")
        if self.epochs < 1 or self.trials < 0:
            raise UsageError(f"epochs must be >= 1 and trials >= 0, got {self.epochs} and "
                             f"{self.trials}.")

    def runs(self) -> list[tuple[str, str, int]]:
        """(row label, head, num_classes) of every row, in table order."""
        rows = []
        for head in self.heads:
            if head == "classification":
                rows += [(f"classification-{classes}", head, classes)
                         for classes in self.num_classes]
            else:
                rows.append((head, head, 720))
        return rows

    def to_dict(self) -> dict[str, Any]:
        values = dataclasses.asdict(self)
        values["heads"] = list(self.heads)
        values["num_classes"] = list(self.num_classes)
        return values


class EpochTimer(keras.callbacks.Callback):
    """Training seconds of every epoch: from its start to its last training step (so the
    validation predictions made at the end of the epoch are not counted)."""

    def __init__(self):
        super().__init__()
        self.seconds: list[float] = []
        self._start = self._last = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._start = self._last = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self._last = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(self._last - self._start)


class EpochProgress(keras.callbacks.Callback):
    """One progress line per training epoch of a head, through ``printer``::

        multi_head  epoch 3/36  loss 0.912 (hour 0.51, minute 0.20, geometry 0.40)  held-out 12.3 min
        (500 images, one read)  61 s/epoch  elapsed 3:05  left ~33:50

    The held-out error is monitoring only: nothing is chosen by it. When the validation data is
    the held-out set (the final split) it is the ``val_cse`` the epoch computed anyway; otherwise
    one read of a fixed sample of at most ``MONITOR_IMAGES`` held-out images, made only while a
    read costs at most ``MONITOR_SHARE`` of an epoch's training time.

    Args:
        label: the row label, padded to ``width``.
        epochs: epochs of this training.
        printer: called with each line (``click.echo``, ``print``).
        timer: the ``EpochTimer`` of the same fit, listed before this callback.
        head: the model's ``ClockHead``.
        held_out: (x, y) of the held-out set.
        validation_is_held_out: the fit's validation data is ``held_out`` itself, so its
            ``val_cse`` is the held-out error.
        width: column width of the label.
        seed: seed of the monitored sample.
    """

    def __init__(self, label: str, epochs: int, printer: Callable[[str], None],
                 timer: EpochTimer, head, held_out, validation_is_held_out: bool,
                 width: int = 0, seed: int = 0):
        super().__init__()
        self.label, self.epochs, self.printer, self.timer = label.ljust(width), epochs, printer, timer
        self.head = head
        self.validation_is_held_out = validation_is_held_out
        x, y = held_out
        self.held_out_count = len(x)
        if not validation_is_held_out and len(x) > MONITOR_IMAGES:
            keep = np.sort(np.random.default_rng(seed).choice(len(x), MONITOR_IMAGES,
                                                              replace=False))
            x, y = x[keep], y[keep]
        self.x, self.true_minutes = x, labels_to_minutes(y)
        self.reading = len(x) > 0
        self._started = 0.0

    def on_train_begin(self, logs=None):
        self._started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        done = epoch + 1
        parts = [f"{self.label}  epoch {done}/{self.epochs}"]
        if "loss" in logs:
            parts.append(f"loss {logs['loss']:.3f}" + _loss_parts(logs))
        parts += self._held_out(logs)
        epoch_seconds = self.timer.seconds[-1] if self.timer.seconds else math.nan
        elapsed = time.perf_counter() - self._started
        parts += [f"{_seconds(epoch_seconds)}/epoch", f"elapsed {format_duration(elapsed)}",
                  f"left ~{format_duration(elapsed / done * (self.epochs - done))}"]
        self.printer("  ".join(parts))

    def _held_out(self, logs) -> list[str]:
        if self.validation_is_held_out:
            if "val_cse" not in logs:
                return []
            return [f"held-out {logs['val_cse']:.1f} min ({self.held_out_count} images, one read)"]
        if not self.reading:
            return []
        started = time.perf_counter()
        outputs = self.model.predict(self.x, batch_size=256, verbose=0)
        error = common_sense_error_minutes(self.true_minutes, self.head.decode(outputs)).mean()
        cost = time.perf_counter() - started
        shown = f"held-out {error:.1f} min ({len(self.x)} images, one read"
        epoch_seconds = self.timer.seconds[-1] if self.timer.seconds else math.inf
        if cost > MONITOR_SHARE * epoch_seconds:
            self.reading = False
            shown += (f"; it took {_seconds(cost)}, over {MONITOR_SHARE:.0%} of the epoch: "
                      "not read again")
        return [shown + ")"]


def compare_heads(config: ComparisonConfig, out_dir: str | os.PathLike, verbose: int = 0,
                  data=None, progress: Callable[[str], None] | None = None,
                  tensorboard: bool = False) -> pd.DataFrame:
    """Train (or tune) every head on the same data and budget; write and return the table.

    Args:
        config: what to compare.
        out_dir: results folder; heads already finished there with the same configuration are
            read back instead of trained again.
        verbose: Keras verbosity of the training runs (0 silent).
        data: a clock ``Dataset`` to use instead of loading one from ``config`` (notebooks, tests).
        progress: called with progress lines (``print``, ``click.echo``): one per head as it
            starts and ends, and one per epoch (see ``EpochProgress``). Default None: silent.
        tensorboard: write TensorBoard's HParams data of each head as it trains into
            ``out_dir/tensorboard/`` (one session per head: its hyperparameters, per-epoch
            metrics, and its mean error in minutes as the score); ``hpsearch board`` shows it.

    Returns:
        The comparison table, one row per head, columns ``TABLE_COLUMNS``. With
        ``config.init_from``, ``table.attrs["initialization"]`` holds, per row, what its model
        took from the trained one (``WeightCopyReport.to_dict()``; also in ``comparison.json``
        and each head's result file).

    The images are fed as ``config.polarity`` says: with ``"auto"`` (the default) a fine-tune
    negates them when its trained model reads their negatives more confidently
    (``clock_models.choose_polarity``: a dark-faced clock for a model of light faces); the
    choice is in ``comparison.json`` and in each model card, and ``read_times`` applies it.

    Raises:
        SettingsMismatchError: ``out_dir`` holds results of a different configuration.
        RunLockedError: another process works in ``out_dir``.
        DatasetError: the data cannot be loaded.
        ClockRunError: ``config.init_from`` is not a clock run or lacks ``config.init_head``.
        UsageError: ``config.init_from`` was trained on images of another size.
    """
    out = Path(out_dir)
    source = _init_source(config, data)
    with run_lock(out, "output folder"):
        # Checked before the data is loaded, written once it loaded: a set refused for its
        # contents leaves no settings behind to refuse the corrected command.
        _check_or_write_config(out, config, write=False)
        if data is None:
            data = load_clock(data_dir=config.data_dir, size=config.size, split=config.split,
                              seed=config.seed, subset=config.subset, count=config.count,
                              style=config.style)
        _check_or_write_config(out, config)
        choice = (source.choose_polarity(data.x_train, config.polarity, config.seed) if source
                  else choose_polarity(data.x_train, config.polarity))
        if progress is not None and (source is not None or choice.polarity != "as_is"):
            progress(f"Input polarity: {choice.describe()}")
        data = with_polarity(data, choice.polarity)
        rows, initialization = [], {}
        say = _Printer(progress, max(len(label) for label, _, _ in config.runs()))
        with precision_policy(config.precision):
            for label, head, classes in config.runs():
                path = out / HEADS_DIR / f"{label}.json"
                if path.is_file():
                    result = rundir.read_json(path, "one head's result")
                    say(label, f"already trained in {out}: mean error "
                               f"{result['row']['cse_mean']:.1f} min")
                else:
                    result = _run_head(config, data, label, head, classes, out, verbose, say,
                                       source, choice, tensorboard)
                    _write_json(path, result)
                rows.append(result["row"])
                initialization[label] = result.get("initialization")
        table = pd.DataFrame(rows, columns=TABLE_COLUMNS)
        rundir.write_csv(out / COMPARISON_CSV, table)
        best = table.loc[table["cse_mean"].idxmin()]
        summary = {"config": config.to_dict(), "data": data.summary(), "split": data.description,
                   "rows": table.to_dict(orient="records"),
                   "best": {"head": str(best["head"]), "cse_mean": float(best["cse_mean"])},
                   "input_polarity": choice.to_dict()}
        if source is not None:
            summary["init_from"] = source.to_dict()
            summary["initialization"] = initialization
            table.attrs["initialization"] = initialization
        _write_json(out / COMPARISON_JSON, summary)
        rundir.write_text(out / COMPARISON_MD, format_table(table) + "\n")
        return table


def format_table(table: pd.DataFrame) -> str:
    """The comparison as a Markdown table (errors in minutes, shares in %)."""
    lines = ["| head | outputs | loss | mean CSE (min) | median | within 1 min | within 5 min "
             "| s/epoch | parameters |", "|" + "---|" * 9]
    for row in table.itertuples(index=False):
        lines.append(f"| {row.head} | {row.outputs} | {row.loss} | {row.cse_mean:.1f} | "
                     f"{row.cse_median:.1f} | {row.within_1min:.1%} | {row.within_5min:.1%} | "
                     f"{row.seconds_per_epoch:.1f} | {row.parameters:,} |")
    return "\n".join(lines)


def _init_source(config: ComparisonConfig, data) -> InitSource | None:
    """The trained model every head starts from, checked against the images it will read."""
    if config.init_from is None:
        return None
    source = load_init_source(config.init_from, config.init_head)
    if data is not None:
        source.check_input_shape(data.input_shape, "this comparison (its data)")
    else:
        side = source.input_shape[0]
        source.check_input_shape((config.size, config.size, 1),
                                 f"this comparison (--size {config.size})",
                                 f"--size {side}" if side in (75, 150) else None)
    return source


def _run_head(config: ComparisonConfig, data, label: str, head: str, classes: int, out: Path,
              verbose: int, say: _Printer, source: InitSource | None = None,
              polarity: PolarityChoice | None = None, tensorboard: bool = False
              ) -> dict[str, Any]:
    started = time.perf_counter()
    keras.utils.set_random_seed(config.seed)
    geometry = data.geometry_train
    if geometry is None and config.hyperparameters.get("geometry_weight"):
        raise ComparisonRunError(
            "geometry_weight was set, but this clock data has no geometry.npy (only rendered sets "
            "have it: the auxiliary output needs to know where the hands point). Leave "
            "geometry_weight out, or use the rendered set.")
    hypermodel = ClockHyperModel(data.input_shape, head=head,
                                 num_classes=classes if head == "classification" else None,
                                 geometry=geometry is not None,
                                 init_weights=None if source is None else source.weights,
                                 steps_per_execution=config.steps_per_execution)
    # A fine-tune has the trained model's architecture; --set values win over it.
    fixed = source.architecture(head) if source is not None else {}
    hp = fixed_hyperparameters({**fixed, **config.hyperparameters})
    if config.trials:
        say(label, f"tuning: {config.trials} random-search trials of {config.epochs} epochs")
        tuner = kt.RandomSearch(hypermodel, objective=kt.Objective("val_cse", "min"),
                                max_trials=config.trials, hyperparameters=hp,
                                directory=str(out / "tuning"), project_name=label,
                                seed=oracle_seed(config.seed), overwrite=False)
        tuner.search(data.x_train, data.y_train, validation_data=(data.x_val, data.y_val),
                     epochs=config.epochs, verbose=verbose, geometry=geometry)
        hp = tuner.get_best_hyperparameters(1)[0]
        keras.backend.clear_session()
        keras.utils.set_random_seed(config.seed)
    model = hypermodel.build(hp)
    clock_head = model.clock_head
    initialization = hypermodel.last_initialization
    if initialization is not None:
        say(label, f"initialized: {initialization.describe()}")
    timer = EpochTimer()
    callbacks = [timer, keras.callbacks.TerminateOnNaN()]
    board = _HeadSession(out, label, hp.values) if tensorboard else None
    if board is not None:
        callbacks.append(board)
    if say.printer is not None:
        epochs = f"{config.epochs} epoch" + ("s" if config.epochs > 1 else "")
        say(label, f"training {epochs} on {len(data.x_train)} images; the "
                   "held-out error per epoch is monitoring only (nothing is chosen by it)")
        callbacks.append(EpochProgress(
            label, config.epochs, say.printer, timer, clock_head, (data.x_test, data.y_test),
            validation_is_held_out=data.x_val is data.x_test, width=say.width, seed=config.seed))
    try:
        history = hypermodel.fit(hp, model, data.x_train, data.y_train,
                                 validation_data=(data.x_val, data.y_val), epochs=config.epochs,
                                 callbacks=callbacks, verbose=verbose, geometry=geometry)
    except BaseException:
        if board is not None:
            board.events.end("FAILED", None)
        raise
    reads = hypermodel.rotated_outputs(model, data.x_test, config.test_rotations)
    predicted = clock_head.decode(clock_head.average(reads))
    true = labels_to_minutes(data.y_test)
    summary = error_summary(true, predicted)
    _write_predictions(out / HEADS_DIR / f"{label}-predictions.csv", true, predicted)
    single_read = (error_summary(true, clock_head.decode(reads[0]))
                   if config.test_rotations > 1 else None)
    model.save(out / HEADS_DIR / f"{label}.keras")
    initialized = None
    if initialization is not None:
        initialized = {**source.to_dict(), **initialization.to_dict(),
                       "summary": initialization.describe()}
    polarity = polarity or PolarityChoice("as_is", "as_is")
    write_model_card(comparison_card_path(out, label), hypermodel, hp,
                     {"initialized_from": initialized, "input_polarity": polarity.polarity,
                      "polarity_choice": polarity.to_dict()})
    # The first epoch also traces the graphs; the median is the steady training speed.
    loss = clock_head.describe_loss()
    if model.geometry_weight:
        loss += f" + {model.geometry_weight:g} x mse (auxiliary geometry)"
    row = {"head": label, "outputs": clock_head.describe_outputs(), "loss": loss, **summary,
           "seconds_per_epoch": float(statistics.median(timer.seconds)),
           "parameters": int(model.count_params()), "epochs": config.epochs,
           "train_images": len(data.x_train), "test_images": len(data.x_test)}
    if board is not None:
        end_comparison_head(board.events, row)
    keras.backend.clear_session()
    reads_said = f", {config.test_rotations} rotations" if config.test_rotations > 1 else ""
    say(label, f"done: mean error {summary['cse_mean']:.1f} min on {len(data.x_test)} held-out "
               f"images{reads_said}, in {format_duration(time.perf_counter() - started)}")
    return {"row": row, "hyperparameters": _plain(hp.values),
            "history": {key: [float(v) for v in values] for key, values in history.history.items()},
            "epoch_seconds": timer.seconds, "without_test_rotations": single_read,
            "initialization": initialized, "input_polarity": polarity.to_dict()}


class _HeadSession(keras.callbacks.Callback):
    """A head's TensorBoard session, written as it trains: its epochs' metrics here; its end
    (score and status) by ``_run_head`` once the held-out images are read."""

    def __init__(self, out: Path, label: str, values: dict[str, Any]):
        super().__init__()
        self.events = TrialEvents(tensorboard_dir(out) / label,
                                  comparison_values(label, _plain(values)))

    def on_epoch_end(self, epoch, logs=None):
        self.events.epoch(epoch, dict(logs or {}))


def _write_predictions(path: Path, true_minutes, predicted_minutes) -> None:
    true_minutes = np.asarray(true_minutes, dtype=np.int64)
    predicted = np.asarray(predicted_minutes, dtype=np.float64)
    whole = np.round(predicted).astype(np.int64) % 720
    table = pd.DataFrame({
        "true_hour": true_minutes // 60, "true_minute": true_minutes % 60,
        "predicted_hour": whole // 60, "predicted_minute": whole % 60,
        "error_minutes": common_sense_error_minutes(true_minutes, predicted)})
    path.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(path, index_label="test_index")


def _check_or_write_config(out: Path, config: ComparisonConfig, write: bool = True) -> None:
    """Refuse a folder written with other settings; then (``write``) record these."""
    # Settings added since the folder was written count as their defaults; but a fine-tune from
    # before polarity was chosen trained on its images as they were (auto is that without one).
    defaults = {**ComparisonConfig().to_dict(), "polarity": "as_is" if config.init_from else "auto"}
    path, settings = out / COMPARISON_FILE, config.to_dict()
    how = dict(consequence="its heads would not be comparable",
               fix="Use the same settings" + (" (--polarity as_is for a fine-tune written before "
                                              "--polarity existed)" if config.init_from else "")
               + ", another output folder, or delete it to start again.",
               defaults=defaults)
    if write:
        rundir.write_or_check_settings(path, settings, None, **how)
    else:
        rundir.check_settings(path, None, settings, **how)


def _write_json(path: Path, value: Any) -> None:
    rundir.make_dirs(path.parent, "folder")
    rundir.write_json(path, _plain(value), indent=2)


def _plain(value: Any) -> Any:
    # KerasTuner and pandas hand back numpy scalars, which JSON and YAML reject.
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


class _Printer(NamedTuple):
    """Progress lines of a comparison: ``printer`` (None: silent) and the label column's width."""

    printer: Callable[[str], None] | None
    width: int

    def __call__(self, label: str, text: str) -> None:
        if self.printer is not None:
            self.printer(f"{label.ljust(self.width)}  {text}")


def _loss_parts(logs: dict[str, Any]) -> str:
    names = [key[:-len("_loss")] for key in logs
             if key.endswith("_loss") and not key.startswith("val_")]
    # The time outputs first, in the head's order (hour before minute); the auxiliary one last.
    names.sort(key=lambda name: (name == GEOMETRY_OUTPUT, name))
    parts = [f"{name} {logs[name + '_loss']:.2f}" for name in names]
    return f" ({', '.join(parts)})" if parts else ""


def _seconds(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds >= 10 else f"{seconds:.1f} s"


