"""Trained clock models on disk: what each one is, loading it back, reading the time with it.

Keras saves a model's layers and weights, not the Python attributes hpsearch sets on it (its
``ClockHead``, the geometry weight). So every saved clock model gets a small JSON file next to it,
its *model card* (``write_model_card``): the head's fields, the geometry weight, the input shape,
the hypermodel's fixed facts, every hyperparameter value and a format version.

- ``hpsearch clock compare``: ``heads/<label>.keras`` and ``heads/<label>.head.json``;
- ``hpsearch tune clock``: ``kt/trial_<id>/checkpoint.weights.h5`` (KerasTuner's checkpoint of the
  trial's best epoch, weights only) and ``kt/trial_<id>/head.json``.

Models saved before the cards existed load as before: a comparison head from its result file,
a search trial from the run's settings and the trial's values.

>>> trained = load_trained_model("runs/clock-75")          # the comparison's best head
>>> minutes = read_times(trained.model, pixels, rotations=8, head=trained.head)
"""
from __future__ import annotations

import dataclasses
import os
import warnings
from pathlib import Path
from typing import Any, NamedTuple

import keras
import keras_tuner as kt
import numpy as np

from datasets.splits import Dataset, scale_pixels
from search_spaces.clock import (HEAD_HYPERPARAMETERS, TRAINING_HYPERPARAMETERS, ClockHyperModel,
                                 InitialWeights)
from search_spaces.clock_heads import ClockHead
from tuner import rundir
from tuner.config import read_run_config
from tuner.errors import RunDirError, UsageError
from tuner.results import completed_ranking, project_dir, read_trial_values, read_trials
from tuner.spaces import fixed_hyperparameters  # noqa: F401 (callers import it from here too)

MODEL_CARD_FORMAT = "hpsearch-clock-model"
MODEL_CARD_VERSION = 1
COMPARISON_CARD_SUFFIX = ".head.json"   # heads/<label>.head.json next to heads/<label>.keras
TRIAL_CARD = "head.json"                # kt/trial_<id>/head.json next to KerasTuner's checkpoint
TRIAL_CHECKPOINT = rundir.TRIAL_CHECKPOINT
# How read_times takes the images: as they are, or also as negatives, keeping the surer reading.
POLARITIES = ("as_is", "auto", "negated")
# How a model takes its images (its model card's ``input_polarity``): as they are, or as their
# negatives (255 - pixel; 1 - x once scaled), e.g. a model fine-tuned on a dark-faced clock.
INPUT_POLARITIES = ("as_is", "negated")
# Training images a fine-tune's trained model reads, both ways, to choose their polarity.
POLARITY_SAMPLE = 256


class ClockRunError(RunDirError, ValueError):
    """A clock run folder (comparison or clock search) lacks what was asked of it: a finished
    comparison, a head, a trained model, the geometry an auxiliary output needs."""


# The name from before clock searches could be read too; kept for callers that catch it.
ComparisonRunError = ClockRunError


class TrainedClockModel(NamedTuple):
    """A trained clock model and what it is.

    Attributes:
        model: the Keras model (its ``clock_head`` attribute set, for ``read_times``).
        head: the ``ClockHead`` that decodes its outputs.
        label: the comparison row (``multi_head``, ``classification-72``) or ``trial <id>``.
        card: the model card (see the module docstring); rebuilt for models saved before cards.
        path: the file the weights came from.
    """

    model: keras.Model
    head: ClockHead
    label: str
    card: dict[str, Any]
    path: Path


def write_model_card(path: str | os.PathLike, hypermodel: ClockHyperModel,
                     hp: kt.HyperParameters, extra: dict[str, Any] | None = None) -> Path:
    """Write the model card of the model ``hypermodel.build(hp)`` gave (atomically).

    Args:
        path: the card's file, next to the saved model.
        hypermodel: the clock hypermodel that built the model.
        hp: the values it was built with.
        extra: more plain values to record (e.g. ``initialized_from``).

    Returns:
        ``path``.
    """
    card = {"format": MODEL_CARD_FORMAT, "version": MODEL_CARD_VERSION,
            **hypermodel.describe_model(hp), **(extra or {})}
    return rundir.write_json(path, card, indent=2)


def read_model_card(path: str | os.PathLike) -> dict[str, Any]:
    """A model card written by ``write_model_card``.

    Raises:
        ClockRunError: not a clock model card, or one of a newer format than this hpsearch reads.
        CorruptRunError: the file cannot be read as JSON.
    """
    card = rundir.read_json(path, "a clock model card")
    if not isinstance(card, dict) or card.get("format") != MODEL_CARD_FORMAT:
        raise ClockRunError(f"{path} is not a clock model card: expected format "
                            f"{MODEL_CARD_FORMAT!r}. Delete it to load the model the older way.")
    if int(card.get("version", 0)) > MODEL_CARD_VERSION:
        raise ClockRunError(f"{path} has model card version {card['version']}; this hpsearch "
                            f"reads up to {MODEL_CARD_VERSION}. Update hpsearch.")
    return card


def comparison_card_path(out_dir: str | os.PathLike, label: str) -> Path:
    """Where a comparison keeps the model card of its head ``label``."""
    return Path(out_dir) / rundir.HEADS_DIR / f"{label}{COMPARISON_CARD_SUFFIX}"


def load_trained_model(run: str | os.PathLike, head: str | None = None) -> TrainedClockModel:
    """A trained clock model from a comparison folder or a clock search run, ready to read times.

    Args:
        run: a folder ``hpsearch clock compare`` wrote, or a run directory of
            ``hpsearch tune clock``.
        head: which model: a comparison's row label (``multi_head``, ``classification-720``,
            ...) or a search's trial id; default the best (``comparison.json``'s best row, the
            search's best completed trial).

    Returns:
        A ``TrainedClockModel``.

    Raises:
        ClockRunError: ``run`` is not a clock run, or lacks the head, trial or model asked for.
    """
    run = Path(run)
    if (run / rundir.RUN_FILE).is_file():
        return _search_model(run, head)
    if not (run / rundir.HEADS_DIR).is_dir() and not (run / rundir.COMPARISON_JSON).is_file():
        raise ClockRunError(
            f"{run} is not a clock run: expected a folder written by `hpsearch clock compare` "
            f"({rundir.COMPARISON_JSON} and {rundir.HEADS_DIR}/) or a run directory of "
            f"`hpsearch tune clock` ({rundir.RUN_FILE}). Pass one of those.")
    return _comparison_model(run, head)


def read_times(model: keras.Model, images, rotations: int = 1,
               head: ClockHead | None = None, polarity: str | None = None) -> np.ndarray:
    """Minutes after 12:00 read by a trained clock model from uint8 (N, S, S) images.

    Args:
        model: a trained clock model.
        images: uint8 images of the model's input size.
        rotations: > 1 averages that many evenly turned reads of each image (see
            ``ClockHyperModel.predict_minutes``); default 1.
        head: the head that decodes the outputs; default the model's ``clock_head`` (set by
            ``build`` and by ``load_trained_model``).
        polarity: default the model's own (``input_polarity``, set by ``load_trained_model``
            from the model card: ``"negated"`` for a model fine-tuned on negatives, else
            ``"as_is"``). ``"as_is"`` reads the images as they are; ``"auto"`` also reads
            their negatives (255 - pixels) and keeps, per image, the reading the model is surer
            of (``ClockHead.confidence``): a model trained mostly on dark hands over light faces
            then reads light hands over dark faces as well. Twice the reads; needs a head with a
            softmax output (classification, or a multi_head with a classification output).
            ``"negated"`` reads only the negatives: for light hands on dark faces read by a
            model of dark hands on light faces, or a model fine-tuned on negated images.

    Raises:
        UsageError: images of another shape than the model reads; an unknown ``polarity``, or
            ``"auto"`` with a head that has no softmax output.
        ValueError: no head given and none attached to the model.
    """
    head = head or getattr(model, "clock_head", None)
    if head is None:
        raise ValueError("This model has no clock head attached: pass head= (the head of "
                         "load_trained_model's result).")
    if polarity is None:
        polarity = getattr(model, "input_polarity", "as_is")
    if polarity not in POLARITIES:
        raise UsageError(f"Expected polarity to be one of {', '.join(POLARITIES)}, got "
                         f"{polarity!r}.")
    if polarity == "auto" and not head.has_confidence:
        raise UsageError(f"polarity 'auto' keeps the more confident of two readings, and this "
                         f"model's head ({head.describe_outputs()}) has no softmax output to tell "
                         f"which: use a classification or multi_head model, or polarity 'as_is'.")
    images = np.asarray(images)
    side = model.input_shape[1]
    if images.ndim != 3 or images.shape[1:] != (side, side):
        raise UsageError(f"Expected images of shape (N, {side}, {side}) for this model, got "
                         f"{images.shape}.")
    def averaged_outputs(pixels):
        return head.average(ClockHyperModel.rotated_outputs(model, scale_pixels(pixels)[..., None],
                                                            rotations))

    negative = None if polarity == "as_is" else averaged_outputs(255 - images.astype(np.uint8))
    if polarity == "negated":
        return head.decode(negative)
    outputs = averaged_outputs(images)
    if polarity == "as_is":
        return head.decode(outputs)
    return np.where(head.confidence(negative) > head.confidence(outputs),
                    head.decode(negative), head.decode(outputs))


@dataclasses.dataclass(frozen=True)
class InitSource:
    """A trained clock model new models start from (``--init-from RUN``): a fine-tune.

    Attributes:
        run: the comparison folder or clock search run it comes from.
        label: which of its models (row label or ``trial <id>``).
        card: its model card.
        weights: its trained weights.
        model: the trained model itself (for ``choose_polarity``); None when only the weights
            were kept.
    """

    run: Path
    label: str
    card: dict[str, Any]
    weights: InitialWeights
    model: keras.Model | None = dataclasses.field(default=None, repr=False, compare=False)

    @property
    def head(self) -> ClockHead:
        """The trained model's head."""
        return self.weights.head

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The trained model's input shape, (S, S, 1)."""
        return tuple(int(side) for side in self.card["input_shape"])

    def architecture(self, target_head: str) -> dict[str, Any]:
        """The trained model's hyperparameter values that say what it is, for a new model.

        Every value except the training ones (``TRAINING_HYPERPARAMETERS``: learning rate,
        optimizer and its parameters, schedule, batch size, augmentation, dropout, geometry
        weight), which stay free. The head's values are kept when the new hypermodel's head
        (``target_head``) is of the same kind; ``head`` and ``num_classes``, declared only by a
        searched head, are dropped for a fixed one; a searched head is searched again.

        Args:
            target_head: the new ``ClockHyperModel``'s ``head`` (a kind, or ``"search"``).
        """
        values = {name: value for name, value in self.card["hyperparameters"].items()
                  if not name.startswith("tuner/") and name not in TRAINING_HYPERPARAMETERS}
        if target_head == "search" or target_head != self.head.kind:
            dropped = set(HEAD_HYPERPARAMETERS)
        else:
            dropped = {"head", "num_classes"}
        return {name: value for name, value in values.items() if name not in dropped}

    def check_input_shape(self, input_shape, reader: str, fix: str | None = None) -> None:
        """Refuse data of another image size than the trained model reads.

        Args:
            input_shape: the new model's input shape.
            reader: what reads that data, for the message ("this comparison (--size 150)").
            fix: an option that would make it fit, if there is one ("--size 75").

        Raises:
            UsageError: the sizes differ (exit code 2 on the command line).
        """
        trained = self.input_shape
        wanted = tuple(int(side) for side in input_shape)
        if trained != wanted:
            instead = f"Pass {fix}, or start" if fix else "Start"
            raise UsageError(
                f"--init-from {self.run} ({self.label}) was trained on {trained[0]}x{trained[1]} "
                f"images, but {reader} reads {wanted[0]}x{wanted[1]}. {instead} from a run "
                f"trained on {wanted[0]}-pixel images.")

    def choose_polarity(self, x, requested: str = "auto", seed: int = 0) -> "PolarityChoice":
        """How a fine-tune should feed the trained model ``x`` (see ``choose_polarity``)."""
        return choose_polarity(x, requested, self.model, self.head, seed=seed)

    def to_dict(self) -> dict[str, Any]:
        """Where the weights come from, in plain values (for result files)."""
        return {"run": str(self.run), "label": self.label, "head": self.head.to_dict(),
                "input_shape": list(self.input_shape)}


def load_init_source(run: str | os.PathLike, label: str | None = None) -> InitSource:
    """The trained model of ``run`` that new models should start from.

    Args:
        run: a ``hpsearch clock compare`` folder or a ``hpsearch tune clock`` run directory.
        label: a comparison's row label or a search's trial id; default the best.

    Raises:
        ClockRunError: ``run`` is not a clock run or lacks the model asked for.
    """
    trained = load_trained_model(run, label)
    weights = InitialWeights.of_model(trained.model, trained.head, f"{run} ({trained.label})")
    return InitSource(Path(run), trained.label, trained.card, weights, trained.model)


@dataclasses.dataclass(frozen=True)
class PolarityChoice:
    """How a training feeds its images to the model: as they are or negated, and why.

    Attributes:
        polarity: ``"as_is"`` or ``"negated"`` (``INPUT_POLARITIES``).
        requested: what was asked: one of those, or ``"auto"``.
        negated_share: ``"auto"`` with a trained model: the share of the sampled training images
            whose negative it read more confidently than the image; None otherwise.
        images: the number of images sampled (0 when nothing was read).
        reason: why, in words, when ``"auto"`` could not ask a trained model.
    """

    polarity: str
    requested: str
    negated_share: float | None = None
    images: int = 0
    reason: str = ""

    def describe(self) -> str:
        """One line, e.g. ``negated (auto: the trained model was surer of the negative for 89%
        of 256 training images)``."""
        if self.negated_share is not None:
            return (f"{self.polarity} ({self.requested}: the trained model was surer of the "
                    f"negative for {self.negated_share:.0%} of {self.images} training images)")
        if self.reason:
            return f"{self.polarity} ({self.requested}: {self.reason})"
        return f"{self.polarity} (as asked)"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def choose_polarity(x, requested: str = "auto", model: keras.Model | None = None,
                    head: ClockHead | None = None, sample: int = POLARITY_SAMPLE,
                    seed: int = 0) -> PolarityChoice:
    """Whether a model should train on images ``x`` as they are or on their negatives.

    A model trained on dark hands over light faces keeps that bias through a fine-tune: on a
    dark-faced clock with light hands it stays at chance, and on the same images negated it
    learns (docs/results/clock-finetune.csv). With ``requested="auto"`` the trained model
    decides: it reads a sample of ``x`` as it is and negated, and the images are negated when
    it is surer of the negative (``ClockHead.confidence``) for more than half of them.

    Args:
        x: the training images, float in [0, 1], (N, S, S, 1) as a ``Dataset`` holds them.
        requested: ``"as_is"`` or ``"negated"`` (taken as they are), or ``"auto"``.
        model, head: the trained model a fine-tune starts from and its head; without them (or
            with a head that has no softmax output to be sure with) ``"auto"`` keeps the images
            as they are.
        sample: images read, at most (a seeded random sample when ``x`` has more).
        seed: seed of the sample.

    Raises:
        UsageError: ``requested`` is none of ``as_is``, ``negated``, ``auto``.
    """
    if requested in INPUT_POLARITIES:
        return PolarityChoice(requested, requested)
    if requested != "auto":
        raise UsageError(f"Expected polarity to be one of {', '.join(INPUT_POLARITIES)} or auto, "
                         f"got {requested!r}.")
    if model is None or head is None:
        return PolarityChoice("as_is", requested, reason="no trained model to ask")
    if not head.has_confidence:
        return PolarityChoice("as_is", requested, reason=(
            f"the trained model's head ({head.describe_outputs()}) has no softmax output to be "
            "sure with; pass negated for a dark-faced clock with light hands"))
    x = np.asarray(x)
    if len(x) > sample:
        x = x[np.sort(np.random.default_rng(seed).choice(len(x), sample, replace=False))]
    if len(x) == 0:
        return PolarityChoice("as_is", requested, reason="no training images to read")
    outputs = model.predict(x, batch_size=256, verbose=0)
    negative = model.predict(negated(x), batch_size=256, verbose=0)
    share = float(np.mean(head.confidence(negative) > head.confidence(outputs)))
    return PolarityChoice("negated" if share > 0.5 else "as_is", requested, share, len(x))


def negated(x: np.ndarray) -> np.ndarray:
    """The negatives of float images in [0, 1] (255 - pixel before scaling)."""
    return (1.0 - np.asarray(x)).astype(np.asarray(x).dtype, copy=False)


def with_polarity(data: Dataset, polarity: str) -> Dataset:
    """``data`` with every image negated for ``"negated"``; ``data`` itself for ``"as_is"``.
    A validation set that is the test set stays one array."""
    if polarity == "as_is":
        return data
    if polarity != "negated":
        raise UsageError(f"Expected an input polarity of {', '.join(INPUT_POLARITIES)}, got "
                         f"{polarity!r}.")
    x_test = negated(data.x_test)
    x_val = x_test if data.x_val is data.x_test else negated(data.x_val)
    return dataclasses.replace(data, x_train=negated(data.x_train), x_val=x_val, x_test=x_test)


def _comparison_model(out: Path, label: str | None) -> TrainedClockModel:
    heads = out / rundir.HEADS_DIR
    if label is None:
        summary = out / rundir.COMPARISON_JSON
        if not summary.is_file():
            raise ClockRunError(f"{out} holds no finished comparison (no {rundir.COMPARISON_JSON})."
                                f" Run hpsearch clock compare --out {out} first, or name a head.")
        label = rundir.read_json(summary, "a finished comparison")["best"]["head"]
    result_path, model_path = heads / f"{label}.json", heads / f"{label}.keras"
    if not result_path.is_file():
        raise ClockRunError(f"{out} has no trained head {label!r}; it has: "
                            f"{', '.join(_comparison_labels(heads)) or 'none'}.")
    if not model_path.is_file():
        raise ClockRunError(f"{model_path} is missing: this head was trained before hpsearch saved "
                            f"models. Train it again into a new folder.")
    model = keras.models.load_model(model_path, compile=False)
    card_path = comparison_card_path(out, label)
    if card_path.is_file():
        card = read_model_card(card_path)
    else:
        card = _comparison_card_from_result(result_path, label, model)
    return _trained(model, card, label, model_path)


def _comparison_labels(heads: Path) -> list[str]:
    return sorted(path.stem for path in heads.glob("*.json")
                  if not path.name.endswith(COMPARISON_CARD_SUFFIX))


def _comparison_card_from_result(result_path: Path, label: str, model: keras.Model
                                 ) -> dict[str, Any]:
    # Heads saved before model cards: the row label names the head kind (and class count), the
    # result file holds the values, and the saved outputs say whether there is a geometry output.
    kind, _, classes = label.partition("-")
    values = rundir.read_json(result_path, "one head's result")["hyperparameters"]
    geometry = "geometry" in model.output_names
    hypermodel = ClockHyperModel(model.input_shape[1:], head=kind,
                                 num_classes=int(classes) if classes else None, geometry=geometry)
    return {"format": MODEL_CARD_FORMAT, "version": 0,
            **hypermodel.describe_model(fixed_hyperparameters(values))}


def _search_model(run: Path, trial_id: str | None) -> TrainedClockModel:
    config, document = read_run_config(run)
    if config.space != "clock":
        raise ClockRunError(f"{run} is a search of the '{config.space}' space, not a clock run: "
                            "expected a `hpsearch tune clock` run directory or a `hpsearch clock "
                            "compare` folder. Pass one of those.")
    project = project_dir(run)
    trials = read_trials(run)
    ranked = [str(row) for row in completed_ranking(trials, config.direction)["trial_id"]]
    with_checkpoint = [trial for trial in ranked
                       if (project / f"{rundir.TRIAL_DIR_PREFIX}{trial}" / TRIAL_CHECKPOINT).is_file()]
    if trial_id is None:
        if not with_checkpoint:
            raise ClockRunError(f"{run} has no completed trial with a saved model "
                                f"({TRIAL_CHECKPOINT}). Let the search finish a trial first.")
        trial_id = with_checkpoint[0]
    elif str(trial_id) not in with_checkpoint:
        raise ClockRunError(f"{run} has no completed trial {trial_id!r} with a saved model; it "
                            f"has: {', '.join(with_checkpoint) or 'none'}.")
    trial_dir = project / f"{rundir.TRIAL_DIR_PREFIX}{trial_id}"
    if (trial_dir / TRIAL_CARD).is_file():
        card = read_model_card(trial_dir / TRIAL_CARD)
    else:
        # Trials saved before model cards: the hypermodel as run_search built it.
        values = read_trial_values(run)[str(trial_id)]
        shape = (document.get("data") or {}).get("input_shape") or [75, 75, 1]
        hypermodel = ClockHyperModel(shape, head=config.head or "classification",
                                     geometry="geometry_weight" in values)
        card = {"format": MODEL_CARD_FORMAT, "version": 0,
                **hypermodel.describe_model(fixed_hyperparameters(values))}
    hypermodel, hp = ClockHyperModel.from_description(card)
    model = hypermodel.build(hp)
    with warnings.catch_warnings():
        # The checkpoint also holds the trial's optimizer state, which reading the time never uses.
        warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
        model.load_weights(trial_dir / TRIAL_CHECKPOINT)
    return _trained(model, card, f"trial {trial_id}", trial_dir / TRIAL_CHECKPOINT)


def _trained(model: keras.Model, card: dict[str, Any], label: str, path: Path
             ) -> TrainedClockModel:
    try:
        head = ClockHead.from_dict(card["head"])
    except (KeyError, TypeError, ValueError) as error:
        raise ClockRunError(f"The model card of {path} does not describe a clock head ({error}). "
                            "Delete it to load the model the older way.") from None
    model.clock_head = head
    model.geometry_weight = float(card.get("geometry_weight", 0.0))
    model.input_polarity = card.get("input_polarity", "as_is")
    if model.input_polarity not in INPUT_POLARITIES:
        raise ClockRunError(f"The model card of {path} says input_polarity "
                            f"{model.input_polarity!r}; expected one of "
                            f"{', '.join(INPUT_POLARITIES)}. Fix or delete the card.")
    return TrainedClockModel(model, head, label, card, path)

