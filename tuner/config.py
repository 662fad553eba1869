"""The configuration of one search run, written next to its results as ``run.yaml``."""

from __future__ import annotations

import dataclasses
import math
import numbers
import os
import re
from pathlib import Path
from typing import Any

import yaml

from search_spaces.precision import PRECISIONS
from top_configs.format import yaml_scalar
from tuner import rundir
from tuner.errors import HpsearchError, UsageError
from tuner.rundir import RUN_FILE

TUNERS = ("hyperband", "bohb", "bayesian", "random")
# Training images of a quick search of a registered dataset when --subset is not given.
DEFAULT_SUBSET = 10000
# The clock space's image side when neither --size nor an --init-from model says otherwise.
DEFAULT_CLOCK_SIZE = 75
# The clock set's image sides (datasets.clock_render.SIZES, not imported: it is the clock's code).
CLOCK_SIZES = (75, 150)
# tf.distribute strategies a trial can train under (``RunConfig.strategy``).
STRATEGIES = ("mirrored",)
# Tuners that run Hyperband's brackets (bohb: with model-guided proposals, tuner/guided.py).
HYPERBAND_TUNERS = ("hyperband", "bohb")
# The smallest --subset count: one image per class of a 10-class set, and never fewer than it takes
# for the validation fraction to hold at least one image (see ``check_subset``).
MIN_SUBSET = 10

# Settings that define what a run directory's trials mean. Resuming with any of them changed would
# make KerasTuner silently mis-rank or ignore them, so a mismatch is refused.
IDENTITY_FIELDS = (
    "space",
    "space_args",
    "dataset",
    "target",
    "tuner",
    "objective",
    "direction",
    "seed",
    "subset",
    "validation_fraction",
    "executions_per_trial",
    "max_epochs",
    "factor",
    "hyperband_iterations",
    "head",
    "init_from",
    "init_head",
    "image_size",
    "polarity",
    "fixed",
)
# Clock space only: how the images are fed (tuner.clock_models.choose_polarity).
POLARITY_CHOICES = ("auto", "as_is", "negated")


class RunConfigError(HpsearchError, ValueError):
    """A run configuration is invalid or does not match the run directory it is resumed in."""


class InvalidSettingError(RunConfigError, UsageError):
    """A setting, or a combination of settings, that cannot work (exit code 2 on the CLI)."""

    exit_code = 2


def minimum_subset(validation_fraction: float) -> int:
    """The smallest subset count that leaves a non-empty training and validation split."""
    count = MIN_SUBSET
    while round(count * validation_fraction) < 1 or count - round(count * validation_fraction) < 1:
        count += 1
    return count


def check_subset(subset: Any, validation_fraction: float = 0.1) -> int | float | None:
    """The training images a run uses, checked and normalized.

    Accepted: None (all of them); a fraction in (0, 1] (1.0 means all and becomes None); a whole
    count of at least ``minimum_subset(validation_fraction)`` (10 for the default 0.1), so that
    the stratified validation split holds at least one image.

    Raises:
        InvalidSettingError: NaN, infinite, zero or negative, a fraction above 1 that is not a
            whole number, a count too small, or not a number at all.
    """
    if subset is None:
        return None
    if isinstance(subset, bool) or not isinstance(subset, numbers.Real):
        raise InvalidSettingError(
            f"subset must be a count like 6000, a fraction like 0.1 or all (None), got {subset!r}."
        )
    if not math.isfinite(subset) or subset <= 0:
        raise InvalidSettingError(
            f"subset must be a positive count or a fraction in (0, 1], got {subset!r}."
        )
    if isinstance(subset, numbers.Integral) or (subset > 1 and float(subset).is_integer()):
        count = int(subset)
        least = minimum_subset(validation_fraction)
        if count < least:
            raise InvalidSettingError(
                f"subset {count} is too small: at least {least} images are needed so that the "
                f"validation split ({validation_fraction:.0%}) holds one. Pass a larger count, a "
                "fraction like 0.1, or all."
            )
        return count
    if subset > 1:
        raise InvalidSettingError(
            f"subset {subset!r} is neither a whole count nor a fraction in (0, 1]."
        )
    return None if subset == 1 else float(subset)


def check_subset_size(subset: int | float | None, data, dataset: str) -> None:
    """After loading: a count no larger than the training set, and non-empty splits.

    Raises:
        InvalidSettingError: the count is larger than the data (it would be silently capped and
            recorded as asked), or the splits came out empty.
    """
    if data.subset_drawn is None:
        available, which = len(data.x_train) + len(data.x_val), "training images"
    else:  # the clock set: a subset of all its images, split afterwards
        available, which = data.subset_drawn, "images (training and held-out together)"
    if isinstance(subset, int) and subset > available:
        raise InvalidSettingError(
            f"subset {subset} is more than the {available} {which} of {dataset}. Pass "
            f"--subset all, or a count up to {available}."
        )
    if len(data.x_train) == 0 or len(data.x_val) == 0:
        raise InvalidSettingError(
            f"subset {subset} of {dataset} leaves {len(data.x_train)} training and "
            f"{len(data.x_val)} validation images; both must be non-empty. Pass a larger subset."
        )


# Words in a metric's name that say which way is better.
_BETTER_HIGH = re.compile(r"acc|auc|precision|recall|within|iou|f1|r2")
_BETTER_LOW = re.compile(r"loss|error|mse|mae|cse|crossentropy|hinge|divergence|seconds")


def implied_direction(objective: str | None) -> str | None:
    """"max" for accuracies and the like, "min" for losses and errors, None when unclear."""
    if not objective:
        return None
    name = objective.lower()
    high, low = bool(_BETTER_HIGH.search(name)), bool(_BETTER_LOW.search(name))
    if high == low:
        return None
    return "max" if high else "min"


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Everything that defines a search; the defaults finish in minutes for the MLP on 2 cores."""

    # The search space: a registered name (mlp, cnn, clock, or an installed package's), or
    # path/to/file.py:NAME or package.module:NAME naming a build_model(hp) function, a
    # keras_tuner.HyperModel subclass or an instance (search_spaces.registry).
    space: str = "mlp"
    # A registered dataset (fashion_mnist, cifar10, clock) or the path of the user's data: an
    # .npz, a folder of class sub-folders of pictures, or a .csv/.parquet (with ``target``).
    dataset: str = "fashion_mnist"
    target: str | None = None  # the label column of a .csv/.parquet dataset
    # Constructor arguments of a HyperModel subclass (``tune --space-arg key=value``).
    space_args: dict = dataclasses.field(default_factory=dict)
    tuner: str = "bohb"  # bohb | hyperband | bayesian | random (bohb: best of them, BENCHMARKS.md)
    objective: str | None = None  # None: the space's own (val_accuracy; val_cse for clock)
    direction: str | None = None  # "max" | "min"; None: the space's own
    max_trials: int | None = (
        None  # cap on trials; None: 10 for bayesian/random, Hyperband's schedule
    )
    max_epochs: int = 6  # Hyperband's largest budget / epochs of a bayesian/random trial
    factor: int = 3  # Hyperband's reduction factor (keeps 1/factor each round)
    hyperband_iterations: int = 1  # full Hyperband sweeps
    executions_per_trial: int = 1  # trainings averaged per trial (noise reduction at a cost)
    early_stopping_patience: int = 3  # epochs without improvement (bayesian/random only)
    seed: int = 0  # seeds the split, subset, tuner and weight initialization
    # Training images (count or fraction, stratified); None: all. "default": 10,000 of a
    # registered dataset (a quick run), all of the user's own data.
    subset: int | float | str | None = "default"
    validation_fraction: float = 0.1  # held-out share of the training set, as the assignment asks
    steps_per_execution: int = 32  # batches per TF call; halves small-model epoch time on CPU
    head: str | None = None  # clock search space only: which label representation
    # Clock search space only: a fine-tune. Every trial starts from the trained model of this
    # `clock compare` folder or `tune clock` run (init_head: which one; None: its best), with its
    # architecture fixed; only the training hyperparameters are searched.
    init_from: str | None = None
    init_head: str | None = None
    # Clock search space only: the image side, 75 or 150 (None: the --init-from model's, else 75).
    image_size: int | None = None
    # Clock space only: the images as they are, negated (255 - pixel), or "auto": a fine-tune
    # negates them when its --init-from model reads the negatives more confidently.
    polarity: str = "auto"
    # Keras dtype policy; "auto": mixed_bfloat16 where the hardware has bfloat16 (GPUs of compute
    # capability 8+; CPUs with AMX or AVX512-BF16 where it was measured faster, see
    # search_spaces.precision), float32 elsewhere; the same validation accuracy
    # within seed noise on the MLP and CNN (BENCHMARKS.md). Not part of a run's identity: the
    # resolved policy is recorded in run.yaml, and each trial's compute dtype in trial_log.jsonl.
    precision: str = "auto"
    # Not part of a run's identity either (they change where and how a trial trains, not what it
    # means): TensorBoard logs of every trial in RUN/tensorboard/ with the HParams plugin, and a
    # tf.distribute strategy for each trial ("mirrored": across the GPUs of one host; None: none).
    tensorboard: bool = False
    strategy: str | None = None
    # Not part of a run's identity: an MLflow tracking URI ("default": MLflow's own store) that
    # gets one run per search and one child run per trial (tuner/mlflow_tracking.py); None: none.
    mlflow: str | None = None
    # Hyperparameters held at one value in every trial (``tune --fix NAME=VALUE``): the search
    # explores the rest of the space. Checked against the space by ``tuner.search.validate_search``.
    fixed: dict = dataclasses.field(default_factory=dict)
    # The best trials whose trained models are kept as RUN/models/rank_<n>.keras (0: none).
    # Not part of a run's identity: it changes what is kept, not what the trials mean.
    keep_models: int = 0
    # Not part of a run's identity either (where trials run, not what they mean): a process that
    # trains (the child process of a long `tune` search, each --workers worker) is replaced by a
    # fresh one after this many trials (0: never), since only the end of a process frees what
    # TensorFlow keeps of every model it trained (tuner/recycling.py). 100: a fresh process's
    # start then costs a few per cent of even the shortest trials measured, and a search of 100
    # trials or fewer never pays it (docs/benchmarks/2026-12-07-memory.md).
    recycle_after: int = 100
    # ... and after a trial that leaves it above this many MB resident (None: no limit).
    max_memory_mb: int | None = None

    def __post_init__(self):
        if self.tuner not in TUNERS:
            raise InvalidSettingError(
                f"Unknown tuner '{self.tuner}'. Expected one of: {', '.join(TUNERS)}."
            )
        if self.direction not in (None, "max", "min"):
            raise InvalidSettingError(f"direction must be 'max' or 'min', got '{self.direction}'.")
        for name in (
            "max_epochs",
            "executions_per_trial",
            "hyperband_iterations",
            "steps_per_execution",
        ):
            if int(getattr(self, name)) < 1:
                raise InvalidSettingError(f"{name} must be at least 1, got {getattr(self, name)}.")
        if self.factor < 2:
            raise InvalidSettingError(f"factor must be at least 2, got {self.factor}.")
        if self.max_trials is not None and self.max_trials < 1:
            raise InvalidSettingError(f"max_trials must be at least 1, got {self.max_trials}.")
        if self.precision not in PRECISIONS:
            raise InvalidSettingError(
                f"Unknown precision '{self.precision}'. Expected one of: {', '.join(PRECISIONS)}."
            )
        if self.strategy not in (None, *STRATEGIES):
            raise InvalidSettingError(
                f"Unknown strategy '{self.strategy}'. Expected one of: {', '.join(STRATEGIES)}."
            )
        if self.init_head is not None and self.init_from is None:
            raise InvalidSettingError(
                f"--init-head {self.init_head} names a model of the --init-from run, but no "
                "--init-from was given. Pass --init-from RUN too, or leave --init-head out."
            )
        if self.polarity not in POLARITY_CHOICES:
            raise InvalidSettingError(
                f"Unknown polarity {self.polarity!r}. Expected one of: "
                f"{', '.join(POLARITY_CHOICES)}.")
        if self.image_size is not None and self.image_size not in CLOCK_SIZES:
            raise InvalidSettingError(
                f"image_size must be one of {', '.join(map(str, CLOCK_SIZES))} (the clock set's "
                f"sides), got {self.image_size!r}."
            )
        if not 0.0 < self.validation_fraction < 1.0:
            raise InvalidSettingError(
                f"validation_fraction must be between 0 and 1, got {self.validation_fraction}."
            )
        if int(self.keep_models) < 0:
            raise InvalidSettingError(f"keep_models must be 0 or more, got {self.keep_models}.")
        if isinstance(self.recycle_after, bool) or not isinstance(self.recycle_after, int) \
                or self.recycle_after < 0:
            raise InvalidSettingError(
                f"recycle_after must be a whole number of trials, 0 or more (0: never), got "
                f"{self.recycle_after!r}.")
        if self.max_memory_mb is not None and (
                isinstance(self.max_memory_mb, bool) or not isinstance(self.max_memory_mb, int)
                or self.max_memory_mb < 1):
            raise InvalidSettingError(
                f"max_memory_mb must be a whole number of MB, at least 1 (None: no limit), got "
                f"{self.max_memory_mb!r}.")
        if not isinstance(self.space_args, dict) or not all(
                isinstance(name, str) and name for name in self.space_args):
            raise InvalidSettingError(
                f"space_args must map argument names to values, got {self.space_args!r}.")
        if not isinstance(self.fixed, dict) or not all(
                isinstance(name, str) and name for name in self.fixed):
            raise InvalidSettingError(
                f"fixed must map hyperparameter names to values, got {self.fixed!r}.")
        # Frozen: the normalized subset (1.0 -> None) is set past the dataclass's guard.
        if self.subset == "default":
            from datasets import available_datasets

            object.__setattr__(self, "subset", DEFAULT_SUBSET if self.dataset in
                               available_datasets() else None)
        object.__setattr__(self, "subset", check_subset(self.subset, self.validation_fraction))
        object.__setattr__(self, "fixed", dict(self.fixed))
        object.__setattr__(self, "space_args", dict(self.space_args))

    @property
    def uses_hyperband(self) -> bool:
        """Whether trials run in Hyperband's brackets (their budget is its schedule)."""
        return self.tuner in HYPERBAND_TUNERS

    @property
    def trial_budget(self) -> int:
        """Number of trials the search will run (Hyperband: its schedule, capped by max_trials)."""
        if self.uses_hyperband:
            scheduled = hyperband_schedule(self.max_epochs, self.factor, self.hyperband_iterations)[
                0
            ]
            return min(scheduled, self.max_trials) if self.max_trials else scheduled
        return self.max_trials or 10

    def identity(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in IDENTITY_FIELDS}

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "RunConfig":
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise InvalidSettingError(
                f"Unknown run settings {unknown}; expected some of {sorted(known)}."
            )
        return cls(**values)


def hyperband_schedule(max_epochs: int, factor: int, iterations: int = 1) -> tuple[int, int]:
    """(trials, trained epochs) of a full Hyperband run, with KerasTuner 1.4's bracket formulas.

    A promoted trial continues from its parent's checkpoint, so it trains only the epochs between
    its ``tuner/initial_epoch`` and ``tuner/epochs``.
    """
    brackets, epochs = 0, float(max_epochs)
    while epochs >= 1:
        epochs /= factor
        brackets += 1
    bracket0_end_size = math.ceil(1 + math.log(max_epochs, factor))
    trials = trained = 0
    for bracket in range(brackets):
        previous_epochs = 0
        for round_num in range(bracket + 1):
            size = math.ceil(bracket0_end_size / (bracket + 1) * factor ** (bracket - round_num))
            round_epochs = math.ceil(max_epochs / factor ** (bracket - round_num))
            trials += size
            trained += size * (round_epochs - previous_epochs)
            previous_epochs = round_epochs
    return trials * iterations, trained * iterations


def write_run_config(
    run_dir: str | os.PathLike, config: RunConfig, extra: dict | None = None
) -> Path:
    """Write ``run.yaml``: the config plus facts about the run (versions, data source)."""
    return rundir.write_yaml(Path(run_dir) / RUN_FILE, {"config": config.to_dict(), **(extra or {})})


def bayesian_initial_points(config: "RunConfig") -> int:
    """Random trials a Bayesian search draws before its Gaussian process takes over.

    KerasTuner's default, 3 x (number of hyperparameters), is ~70 for the MLP space, so a 10- or
    30-trial "bayesian" search was a random search (same seed, same trials:
    benchmarks/bench_search_efficiency.py). A third of the budget, at least 3, leaves the model
    two thirds. Saved in the oracle's state, so a resumed search keeps the value it started with.
    """
    return max(3, config.trial_budget // 3)


def oracle_seed(seed: int) -> int:
    """The seed handed to KerasTuner's oracle for ``--seed``.

    KerasTuner draws each hyperparameter value from ``random.Random(seed_state)`` and counts
    ``seed_state`` up by one per value, so the oracles of seeds s and s + 1 walk the same stream
    one value apart, and fall into step (the same configurations from then on) whenever a
    configuration draws one value fewer than another, which conditional hyperparameters do: two
    ``--seed`` values then ran largely one search. Seeds are set ``_SEED_STRIDE`` values apart,
    more than any search draws, and never 0, which KerasTuner reads as "no seed"
    (``seed or random.randint(...)``); the result stays below 2**32, as numpy's seeding requires.
    """
    return (int(seed) * _SEED_STRIDE) % (2**32 - 2) + 1


# Values between two neighbouring seeds' streams: a million draws is 50,000 trials of 20
# hyperparameters. Prime, so that wrapped seeds (above 4,294) spread over the whole range.
_SEED_STRIDE = 1_000_003


def read_run_config(run_dir: str | os.PathLike) -> tuple[RunConfig, dict[str, Any]]:
    """Read ``run.yaml``; returns the config and the whole document.

    Raises:
        RunConfigError: the file is missing or not a run configuration (the message names it).
    """
    path = Path(run_dir) / RUN_FILE
    if not path.is_file():
        raise RunConfigError(
            f"{run_dir} is not an hpsearch run directory: {RUN_FILE} is missing. "
            "Pass a directory written by `hpsearch tune`."
        )
    document = rundir.read_yaml(path, "an hpsearch run configuration")
    try:
        return RunConfig.from_dict(document["config"]), document
    except (KeyError, TypeError, RunConfigError) as error:
        raise RunConfigError(f"{path} is not a valid run configuration: {error}") from None


def parse_assignments(pairs) -> dict[str, Any]:
    """``["filters=32", "batch_norm=false"]`` -> ``{"filters": 32, "batch_norm": False}``: the
    NAME=VALUE pairs of ``tune --fix`` and ``clock compare --set``.

    Values are read as YAML scalars (numbers, booleans, strings; 1e-3 is a number).

    Raises:
        UsageError: a pair without '=' or without a name, or a name given twice.
    """
    values = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or not name.strip():
            raise UsageError(f"Expected NAME=VALUE (e.g. learning_rate=0.001), got {pair!r}.")
        name = name.strip()
        if name in values:
            raise UsageError(f"{name} is given twice ({name}={values[name]} and {pair}): give "
                             f"each name once.")
        values[name] = yaml_scalar(yaml.safe_load(text))
    return values


def identity_defaults(config: RunConfig) -> dict[str, Any]:
    """What a ``run.yaml`` written before a setting existed stands for: each setting's default
    (a space's own settings may say otherwise: ``SearchHooks.identity_defaults``)."""
    return RunConfig().identity()
