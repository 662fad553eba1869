"""The clock space's steps in a search (``tuner.spaces.SearchHooks``): a fine-tune's trained
model and fixed architecture, the image size, the input polarity, the geometry targets and each
trial's model card. The core reaches this module only through the clock space's ``search_hooks``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import keras_tuner as kt

import datasets
from datasets.clock_render import SIZES as CLOCK_SIZES
from tuner.clock_models import (TRIAL_CARD, InitSource, PolarityChoice, choose_polarity,
                                load_init_source, with_polarity, write_model_card)
from tuner.config import DEFAULT_CLOCK_SIZE, InvalidSettingError, RunConfig
from tuner.spaces import SearchHooks


@dataclasses.dataclass
class ClockState:
    """What the hooks of one clock search share: the fine-tune's trained model, if any."""

    source: InitSource | None = None


class ClockSearchHooks(SearchHooks):
    """The clock space's part of a search (see ``tuner.spaces.SearchHooks``)."""

    config_fields = ("head", "init_from", "init_head", "image_size", "polarity")
    transfer_refusal = ("transfer measures classifiers and spaces of your own; use `hpsearch "
                        "clock compare` for clock models.")

    def prepare(self, config: RunConfig) -> tuple[RunConfig, ClockState]:
        config, source = resolve_init_source(config)
        return config, ClockState(source)

    def identity_defaults(self, config: RunConfig) -> dict[str, Any]:
        # 75-pixel images (the only size a search read then); a fine-tune from before polarity
        # was chosen fed its images as they were (auto is that without one).
        return {"image_size": DEFAULT_CLOCK_SIZE,
                **({"polarity": "as_is"} if config.init_from else {})}

    def validation_variants(self, config: RunConfig) -> list[dict[str, Any]]:
        # Rendered clock sets carry geometry (an auxiliary output with metrics of its own).
        return [clock_facts(config, geometry, None) for geometry in (False, True)]

    def load_options(self, config: RunConfig) -> dict[str, Any]:
        return {"size": config.image_size} if config.image_size else {}

    def prepare_data(self, config: RunConfig, data, state: ClockState | None,
                     recorded: dict[str, Any] | None = None):
        if recorded is not None and "polarity" not in recorded:
            # A run.yaml from before the choice was recorded: its images were fed as they are.
            recorded = {"polarity": "as_is", "requested": config.polarity}
        data, choice = apply_polarity(config, data, state.source if state else None, recorded)
        lines = []
        source = state.source if state else None
        if source is not None or choice.polarity != "as_is":
            lines.append(f"Input polarity: {choice.describe()}")
        return data, {"input_polarity": choice.to_dict()}, lines

    def hypermodel_facts(self, config: RunConfig, data, state: ClockState | None) -> dict[str, Any]:
        source = state.source if state else None
        if config.init_from and source is None:
            source = load_init_source(config.init_from, config.init_head)
        if source is not None:
            source.check_input_shape(data.input_shape, "this search (its clock data)",
                                     fix=f"--size {source.input_shape[0]}")
        return clock_facts(config, data.geometry_train is not None, source)

    def fixed_values(self, config: RunConfig, state: ClockState | None) -> dict[str, Any]:
        source = state.source if state else None
        return dict(source.architecture(config.head or "classification")) if source else {}

    def run_record(self, config: RunConfig, hypermodel, state: ClockState | None,
                   fixed: kt.HyperParameters | None) -> tuple[dict[str, Any], list[str]]:
        source = state.source if state else None
        if source is None:
            return {}, []
        # Every trial has the same architecture and head, so the default point's copy (made when
        # the default values were read) says what each trial takes from the trained model.
        copied = hypermodel.last_initialization
        record = {"init_from": {**source.to_dict(), "fixed_hyperparameters": dict(fixed.values),
                                "initialization": copied.to_dict()}}
        line = (f"Fine-tuning {source.run} ({source.label}): its architecture is fixed "
                f"({len(fixed.values)} values); searching the training hyperparameters. "
                f"Each trial {copied.describe()}.")
        return record, [line]

    def fit_arguments(self, hypermodel, data) -> dict[str, Any]:
        if getattr(hypermodel, "geometry", False):
            return {"geometry": data.geometry_train}
        return {}

    def write_trial_card(self, trial_dir: Path, hypermodel, hp: kt.HyperParameters,
                         record: dict[str, Any]) -> None:
        # A trial's checkpoint holds weights only; a clock model also needs to say what its
        # head is (tuner/clock_models.py), which build() keeps only on the Python object.
        write_model_card(Path(trial_dir) / TRIAL_CARD, hypermodel, hp,
                         polarity_card(record.get("input_polarity")))


def clock_facts(config: RunConfig, geometry: bool, source: InitSource | None) -> dict[str, Any]:
    """The clock space's constructor facts beyond the input shape: head, classes, geometry and a
    fine-tune's initial weights."""
    facts: dict[str, Any] = {"geometry": bool(geometry)}
    if config.head:
        facts["head"] = config.head
    if source is not None:
        facts["init_weights"] = source.weights
        if config.head == source.head.kind == "classification":
            facts["num_classes"] = source.head.num_classes
    return facts


def resolve_init_source(config: RunConfig) -> tuple[RunConfig, InitSource | None]:
    """The trained model a fine-tune starts from, and the config with its head and image size
    filled in.

    Without ``--head``, a fine-tune keeps the trained model's head (its kind; the head's own
    values are part of the fixed architecture, see ``InitSource.architecture``); without
    ``image_size``, it reads images of the trained model's size.

    Raises:
        ClockRunError: ``config.init_from`` is not a clock run or lacks ``config.init_head``.
        UsageError: the trained model reads images of another size than ``image_size``, or of a
            size the clock data does not come in (exit code 2 on the command line).
    """
    source = load_init_source(config.init_from, config.init_head) if config.init_from else None
    if source is not None and config.head is None:
        config = dataclasses.replace(config, head=source.head.kind)
    if source is not None and source.input_shape[0] not in CLOCK_SIZES:
        side = source.input_shape[0]
        raise InvalidSettingError(
            f"--init-from {source.run} ({source.label}) was trained on {side}x{side} images, but a "
            f"clock search reads {' or '.join(map(str, CLOCK_SIZES))}-pixel clocks. Start from a "
            "run trained on one of those sizes.")
    if source is not None and config.image_size is not None:
        size = config.image_size
        source.check_input_shape((size, size, 1), f"this search (--size {size})",
                                 fix=f"--size {source.input_shape[0]}")
    if config.image_size is None:
        size = source.input_shape[0] if source is not None else DEFAULT_CLOCK_SIZE
        config = dataclasses.replace(config, image_size=size)
    return config, source


def apply_polarity(config: RunConfig, data: datasets.Dataset, source: InitSource | None,
                   recorded: dict[str, Any] | None = None
                   ) -> tuple[datasets.Dataset, PolarityChoice]:
    """A clock run's data fed as ``config.polarity`` says (``clock_models.choose_polarity``:
    ``"auto"`` lets a fine-tune's trained model choose), and the choice.

    Args:
        recorded: the choice the chief recorded in ``run.yaml`` (``input_polarity``), which a
            worker of a distributed search follows instead of choosing again.
    """
    if recorded is not None:
        choice = PolarityChoice(**recorded)
    elif source is not None:
        choice = source.choose_polarity(data.x_train, config.polarity, config.seed)
    else:
        choice = choose_polarity(data.x_train, config.polarity)
    return with_polarity(data, choice.polarity), choice


def polarity_card(recorded: dict[str, Any] | None) -> dict[str, Any]:
    """What a trial's model card says of its input polarity (``apply_polarity``'s choice)."""
    if recorded is None:
        return {}
    return {"input_polarity": recorded["polarity"], "polarity_choice": recorded}
