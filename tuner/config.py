"""The configuration of one search run, written next to its results as ``run.yaml``."""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path
from typing import Any

import yaml

from search_spaces.precision import PRECISIONS

TUNERS = ("hyperband", "bohb", "bayesian", "random")
# Tuners that run Hyperband's brackets (bohb: with model-guided proposals, tuner/guided.py).
HYPERBAND_TUNERS = ("hyperband", "bohb")
RUN_FILE = "run.yaml"

# Settings that define what a run directory's trials mean. Resuming with any of them changed would
# make KerasTuner silently mis-rank or ignore them, so a mismatch is refused.
IDENTITY_FIELDS = (
    "space",
    "dataset",
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
)


class RunConfigError(ValueError):
    """A run configuration is invalid or does not match the run directory it is resumed in."""


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Everything that defines a search; the defaults finish in minutes for the MLP on 2 cores."""

    space: str = "mlp"  # search space (model family): mlp, cnn, clock
    dataset: str = "fashion_mnist"  # dataset registry name
    tuner: str = "hyperband"  # hyperband | bohb | bayesian | random
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
    subset: int | None = 10000  # training images used (stratified); None: all of them
    validation_fraction: float = 0.1  # held-out share of the training set, as the assignment asks
    steps_per_execution: int = 32  # batches per TF call; halves small-model epoch time on CPU
    head: str | None = None  # clock search space only: which label representation
    # Keras dtype policy; "auto": mixed_bfloat16 where the hardware has bfloat16 (AMX,
    # AVX512-BF16, GPUs of compute capability 8+), float32 elsewhere. Not part of a run's identity:
    # the resolved policy is recorded in run.yaml.
    precision: str = "float32"

    def __post_init__(self):
        if self.tuner not in TUNERS:
            raise RunConfigError(
                f"Unknown tuner '{self.tuner}'. Expected one of: {', '.join(TUNERS)}."
            )
        if self.direction not in (None, "max", "min"):
            raise RunConfigError(f"direction must be 'max' or 'min', got '{self.direction}'.")
        for name in (
            "max_epochs",
            "executions_per_trial",
            "hyperband_iterations",
            "steps_per_execution",
        ):
            if int(getattr(self, name)) < 1:
                raise RunConfigError(f"{name} must be at least 1, got {getattr(self, name)}.")
        if self.factor < 2:
            raise RunConfigError(f"factor must be at least 2, got {self.factor}.")
        if self.max_trials is not None and self.max_trials < 1:
            raise RunConfigError(f"max_trials must be at least 1, got {self.max_trials}.")
        if self.precision not in PRECISIONS:
            raise RunConfigError(
                f"Unknown precision '{self.precision}'. Expected one of: {', '.join(PRECISIONS)}."
            )
        if not 0.0 < self.validation_fraction < 1.0:
            raise RunConfigError(
                f"validation_fraction must be between 0 and 1, got {self.validation_fraction}."
            )

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
            raise RunConfigError(
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
    path = Path(run_dir) / RUN_FILE
    document = {"config": config.to_dict(), **(extra or {})}
    temporary = path.with_suffix(".yaml.tmp")
    temporary.write_text(yaml.safe_dump(document, sort_keys=False))
    os.replace(temporary, path)
    return path


def read_run_config(run_dir: str | os.PathLike) -> tuple[RunConfig, dict[str, Any]]:
    """Read ``run.yaml``; returns the config and the whole document.

    Raises:
        RunConfigError: the file is missing or not a run configuration.
    """
    path = Path(run_dir) / RUN_FILE
    if not path.is_file():
        raise RunConfigError(
            f"{run_dir} is not an hpsearch run directory: {RUN_FILE} is missing. "
            "Pass a directory written by `hpsearch tune`."
        )
    try:
        document = yaml.safe_load(path.read_text())
        return RunConfig.from_dict(document["config"]), document
    except (yaml.YAMLError, KeyError, TypeError) as error:
        raise RunConfigError(f"{path} is not a valid run configuration: {error}") from None


def describe_mismatch(saved: RunConfig, requested: RunConfig) -> list[str]:
    """Human-readable differences of the identity settings, e.g. "tuner: saved 'random', now 'bayesian'"."""
    differences = []
    for name in IDENTITY_FIELDS:
        before, after = getattr(saved, name), getattr(requested, name)
        if before != after:
            differences.append(
                f"{name}: run directory has {before!r}, this command asks for {after!r}"
            )
    return differences
