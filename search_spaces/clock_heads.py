"""The four ways a clock model can represent the time (its head), and the auxiliary geometry output.

A ``ClockHead`` says how a label (hour, minute) becomes training targets, which output layers and
losses the model gets, and how its outputs become minutes after 12:00 again:

- ``classification``: ``n`` classes of ``720 / n`` minutes each (24, 72, 144, 360, 720, ...),
  softmax + cross-entropy, decoded to the centre of the predicted class;
- ``regression``: one linear output, the time in hours (3:00 -> 3.0, 5:30 -> 5.5), with a choice
  of loss, of which the circular ones measure the error around the dial (11.9 vs 0.1 is 0.2 h);
- ``multi_head``: an hour output and a minute output with their own losses and loss weights
  (hour: 12-way classification or sin/cos of the hour hand; minute: regression, sin/cos or 60-way
  classification); the minute sets the minutes and the hour output picks the hour;
- ``periodic``: sin / cos on the unit circle, of the total time (2 outputs) or of both hands
  (4 outputs), tanh to fit [-1, 1], decoded with atan2.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Sequence

import keras
import numpy as np

from search_spaces.clock_time import MINUTES_PER_DIAL, labels_to_minutes

HEADS = ("classification", "regression", "multi_head", "periodic")
CLASS_COUNTS = (24, 72, 144, 360, 720)
REGRESSION_LOSSES = ("mse", "mae", "huber", "circular_mse", "circular_mae")
PERIODIC_ENCODINGS = ("total", "hands")
HOUR_OUTPUTS = ("classification", "periodic")
MINUTE_OUTPUTS = ("regression", "periodic", "classification")
# The auxiliary output: sin and cos of the image-frame directions of the twelve o'clock mark, the
# hour hand and the minute hand, sin first (see ``search_spaces.clock_pipeline``).
GEOMETRY_OUTPUT = "geometry"
# A minute reading's error as the multi_head decode models it (``_likeliest_hour``): normal, with a
# standard deviation of one minute, the labels' unit. Not fitted: on three trained 150x150 models
# every value from 0.5 to 10 minutes read better than the hour's argmax, at 1 and 8 test rotations.
MINUTE_READING_SD = 1.0
# With the geometry output, a multi_head also reads both hands' directions from the 12 mark
# (``_hand_readings``). The hour: the softmax's log-probability less a normal penalty on the
# distance of h:minute from the geometry's hour hand, of this many minutes on the dial; the
# minute: the mean of the minute output's and the geometry's minute-hand directions. Chosen on
# 3,000 fresh rendered clocks (seed 303) of a 45-epoch 75x75 model (20-150 and 0, 0.5, 1 tried):
# 1.99 -> 1.56 minutes there, 2.05 -> 1.71 on its own held-out 20%, 8 test rotations
# (benchmarks/bench_clock_hour_decode.py, BENCHMARKS.md).
HAND_READING_SD = 40.0
GEOMETRY_MINUTE_WEIGHT = 0.5
# Averaged outputs keep the geometry as these rotation-free readings (``ClockHead.average``).
HANDS = "hands"


@dataclasses.dataclass(frozen=True)
class ClockHead:
    """One label representation: how (hour, minute) becomes targets and outputs become minutes.

    Attributes:
        kind: one of ``HEADS``.
        num_classes: classification only; must divide 720.
        loss: regression only; one of ``REGRESSION_LOSSES``.
        encoding: periodic only; ``"total"`` (sin/cos of the time) or ``"hands"`` (of both hands).
        hour_output, minute_output, minute_loss, hour_loss_weight, minute_loss_weight: multi_head.
    """

    kind: str
    num_classes: int = 720
    loss: str = "circular_mse"
    encoding: str = "hands"
    hour_output: str = "classification"
    minute_output: str = "regression"
    minute_loss: str = "circular_mse"
    hour_loss_weight: float = 1.0
    minute_loss_weight: float = 1.0

    def __post_init__(self):
        _check_choice("head", self.kind, HEADS)
        if self.kind == "classification":
            check_class_count(self.num_classes)
        if self.kind == "regression":
            _check_choice("regression loss", self.loss, REGRESSION_LOSSES)
        if self.kind == "periodic":
            _check_choice("periodic encoding", self.encoding, PERIODIC_ENCODINGS)
        if self.kind == "multi_head":
            _check_choice("hour output", self.hour_output, HOUR_OUTPUTS)
            _check_choice("minute output", self.minute_output, MINUTE_OUTPUTS)
            _check_choice("minute loss", self.minute_loss, REGRESSION_LOSSES)

    def to_dict(self) -> dict[str, Any]:
        """The head's fields as plain values (``ClockHead.from_dict`` reads them back)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "ClockHead":
        """The head written by ``to_dict``.

        Raises:
            ValueError: a field that ``ClockHead`` does not have, or an invalid value.
        """
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown or "kind" not in values:
            raise ValueError(f"Expected the fields of a clock head ({', '.join(sorted(known))}) "
                             f"with at least kind, got {sorted(values)}.")
        return cls(**values)

    def describe_outputs(self) -> str:
        """The output layer(s) in words, for tables."""
        if self.kind == "classification":
            width = MINUTES_PER_DIAL // self.num_classes
            return f"{self.num_classes}-way softmax ({width} min/class)"
        if self.kind == "regression":
            return "1 linear (hours, 0-12)"
        if self.kind == "periodic":
            return ("2 tanh (sin/cos of time)" if self.encoding == "total"
                    else "4 tanh (sin/cos of both hands)")
        hour = "12-way softmax" if self.hour_output == "classification" else "2 tanh sin/cos"
        minute = {"regression": "1 linear", "periodic": "2 tanh sin/cos",
                  "classification": "60-way softmax"}[self.minute_output]
        return f"hour: {hour}; minute: {minute}"

    def describe_loss(self) -> str:
        """The loss(es) in words, for tables."""
        if self.kind == "classification":
            return "cross-entropy"
        if self.kind == "regression":
            return self.loss
        if self.kind == "periodic":
            return "mse"
        hour = "cross-entropy" if self.hour_output == "classification" else "mse"
        minute = {"regression": self.minute_loss, "periodic": "mse",
                  "classification": "cross-entropy"}[self.minute_output]
        return (f"{self.hour_loss_weight:g} x {hour} (hour) + "
                f"{self.minute_loss_weight:g} x {minute} (minute)")

    def output_layers(self, features) -> Any:
        """The head's output tensor (or dict of tensors) on top of the backbone's features.

        Outputs are float32 even under a mixed-precision policy, so losses and decoded angles keep
        full precision.
        """
        if self.kind == "classification":
            return _output(features, self.num_classes, "time", "softmax")
        if self.kind == "regression":
            return _output(features, 1, "time")
        if self.kind == "periodic":
            return _output(features, 2 if self.encoding == "total" else 4, "time", "tanh")
        if self.hour_output == "classification":
            hour = _output(features, 12, "hour", "softmax")
        else:
            hour = _output(features, 2, "hour", "tanh")
        if self.minute_output == "regression":
            minute = _output(features, 1, "minute")
        elif self.minute_output == "periodic":
            minute = _output(features, 2, "minute", "tanh")
        else:
            minute = _output(features, 60, "minute", "softmax")
        return {"hour": hour, "minute": minute}

    def compile_arguments(self) -> dict[str, Any]:
        """``loss`` (and ``loss_weights``) for ``model.compile``."""
        if self.kind == "classification":
            return {"loss": "sparse_categorical_crossentropy"}
        if self.kind == "regression":
            return {"loss": _regression_loss(self.loss, period=12.0)}
        if self.kind == "periodic":
            return {"loss": "mse"}
        hour = "sparse_categorical_crossentropy" if self.hour_output == "classification" else "mse"
        minute = {"regression": _regression_loss(self.minute_loss, period=1.0),
                  "periodic": "mse",
                  "classification": "sparse_categorical_crossentropy"}[self.minute_output]
        return {"loss": {"hour": hour, "minute": minute},
                "loss_weights": {"hour": self.hour_loss_weight, "minute": self.minute_loss_weight}}

    def encode(self, labels) -> Any:
        """(N, 2) (hour, minute) -> the targets of this head's output(s) (float32 / int64)."""
        total = labels_to_minutes(labels)
        minute = total % 60
        if self.kind == "classification":
            return total // (MINUTES_PER_DIAL // self.num_classes)
        if self.kind == "regression":
            return (total / 60.0).astype(np.float32)[:, None]
        if self.kind == "periodic":
            parts = [_circle(total, MINUTES_PER_DIAL)]
            if self.encoding == "hands":
                parts.append(_circle(minute, 60))
            return np.concatenate(parts, axis=1)
        if self.hour_output == "classification":
            hour = total // 60
        else:
            hour = _circle(total, MINUTES_PER_DIAL)
        if self.minute_output == "regression":
            minute_target = (minute / 60.0).astype(np.float32)[:, None]
        elif self.minute_output == "periodic":
            minute_target = _circle(minute, 60)
        else:
            minute_target = minute
        return {"hour": hour, "minute": minute_target}

    def average(self, outputs: Sequence[Any]) -> Any:
        """The mean of several predictions of the same images (e.g. rotated copies), per output.

        Probabilities and sin/cos pairs are averaged as they are; linear outputs (hours,
        fractions of an hour) are averaged on their circle, so 11:50 and 0:10 average to 12:00,
        not to 6:00. The auxiliary geometry output is dropped, except that a multi_head keeps
        the hands' directions from the 12 mark it gives (under ``HANDS``; see ``decode``).
        """
        raw = list(outputs)
        outputs = [_time_outputs(output) for output in raw]
        if not outputs:
            raise ValueError("Nothing to average: expected at least one set of outputs.")
        if self.kind != "multi_head":
            period = 12.0 if self.kind == "regression" else None
            return _mean([np.asarray(output, dtype=np.float64) for output in outputs], period)
        hands = [_hand_readings(output) for output in raw]
        outputs = [_as_output_dict(output) for output in outputs]
        minute_period = 1.0 if self.minute_output == "regression" else None
        average = {
            "hour": _mean([np.asarray(o["hour"], dtype=np.float64) for o in outputs], None),
            "minute": _mean([np.asarray(o["minute"], dtype=np.float64) for o in outputs],
                            minute_period)}
        if all(reading is not None for reading in hands):
            # Directions from the 12 mark do not turn with the image: averaged as they are.
            average[HANDS] = np.mean(hands, axis=0)
        return average

    @property
    def has_confidence(self) -> bool:
        """Whether ``confidence`` can score a reading: the head has a softmax output."""
        return self.kind == "classification" or (
            self.kind == "multi_head" and "classification" in (self.hour_output, self.minute_output))

    def confidence(self, outputs) -> np.ndarray:
        """How sure the model is of each reading, in (0, 1]: the largest softmax probability
        (a multi_head's softmax outputs multiplied). Computed on averaged outputs too.

        Raises:
            ValueError: the head has no softmax output (regression, periodic, a multi_head of
                sin/cos and regression outputs); see ``has_confidence``.
        """
        if not self.has_confidence:
            raise ValueError(f"A {self.describe_outputs()} head has no softmax output to score "
                             "its readings with; confidence needs a classification or multi_head "
                             "head with a classification output.")
        outputs = _time_outputs(outputs)
        if self.kind == "classification":
            return np.max(np.asarray(outputs, dtype=np.float64), axis=-1)
        outputs = _as_output_dict(outputs)
        score = np.ones(len(np.asarray(outputs["hour"])))
        for name, kind in (("hour", self.hour_output), ("minute", self.minute_output)):
            if kind == "classification":
                score = score * np.max(np.asarray(outputs[name], dtype=np.float64), axis=-1)
        return score

    def decode(self, outputs) -> np.ndarray:
        """The model's outputs -> minutes after 12:00 in [0, 720), float64.

        Continuous heads are rounded to the nearest whole minute (the labels are whole minutes);
        classification gives the centre of the predicted class. A ``multi_head`` takes the minutes
        from its minute output and the hour that fits them best: the nearest to the hour hand's
        reading, or, from a 12-way hour softmax, the likeliest once the minute reading may be a
        little off (so 2:59 with the hour split between 2 and 3 reads 2:59, not 3:59). A
        multi_head with the auxiliary geometry output (trained on rendered clocks) also reads
        the hands' directions from the 12 mark there: with a 12-way hour softmax, the minute is
        the mean of both minute readings and the hour the softmax's likeliest once it is weighed
        against the geometry's hour hand (``HAND_READING_SD``). Other heads ignore the geometry.
        """
        hands = _hand_readings(outputs)
        outputs = _time_outputs(outputs)
        if self.kind == "classification":
            width = MINUTES_PER_DIAL // self.num_classes
            return np.argmax(np.asarray(outputs), axis=-1) * width + (width - 1) / 2.0
        if self.kind == "regression":
            hours = np.asarray(outputs, dtype=np.float64).reshape(-1)
            return np.round(hours * 60.0) % MINUTES_PER_DIAL
        if self.kind == "periodic":
            outputs = np.asarray(outputs, dtype=np.float64)
            total = _angle(outputs[:, 0:2], MINUTES_PER_DIAL)
            if self.encoding == "total":
                return np.round(total) % MINUTES_PER_DIAL
            return _combine(total, np.round(_angle(outputs[:, 2:4], 60)) % 60)
        outputs = _as_output_dict(outputs)
        minute = self.minute_reading(outputs["minute"])
        hour_output = np.asarray(outputs["hour"], dtype=np.float64)
        if self.hour_output == "classification" and hands is not None:
            minute = np.round(_angle((1.0 - GEOMETRY_MINUTE_WEIGHT) * _unit(_circle(minute, 60))
                                     + GEOMETRY_MINUTE_WEIGHT * _unit(hands[:, 2:4]), 60)) % 60
            return _hour_against_hand(hour_output, minute, _angle(hands[:, 0:2],
                                                                  MINUTES_PER_DIAL)) * 60.0 + minute
        minute = np.round(minute) % 60
        if self.hour_output == "classification":
            return _likeliest_hour(hour_output, minute) * 60.0 + minute
        return _combine(_angle(hour_output, MINUTES_PER_DIAL), minute)

    def minute_reading(self, minute_output) -> np.ndarray:
        """A multi_head's minute output -> minutes past the hour in [0, 60), not rounded."""
        minute_output = np.asarray(minute_output, dtype=np.float64)
        if self.minute_output == "regression":
            return minute_output.reshape(-1) * 60.0 % 60
        if self.minute_output == "periodic":
            return _angle(minute_output, 60)
        return np.argmax(minute_output, axis=-1).astype(np.float64)


def add_geometry_output(features, outputs, compile_arguments: dict[str, Any], weight: float):
    """A head's outputs and compile arguments, plus the auxiliary geometry output.

    Args:
        features: the backbone's feature tensor.
        outputs: ``ClockHead.output_layers(features)`` (a tensor or a dict of tensors).
        compile_arguments: ``ClockHead.compile_arguments()``.
        weight: the geometry loss's weight (``geometry_weight``).

    Returns:
        (outputs, compile arguments) as dicts keyed by output name: the head's outputs (a lone
        one named ``time``) and ``geometry``, 6 linear units (sin then cos of three directions),
        MSE.
    """
    outputs = dict(outputs) if isinstance(outputs, dict) else {"time": outputs}
    losses = compile_arguments["loss"]
    losses = dict(losses) if isinstance(losses, dict) else {"time": losses}
    weights = dict(compile_arguments.get("loss_weights") or {name: 1.0 for name in losses})
    outputs[GEOMETRY_OUTPUT] = _output(features, 6, GEOMETRY_OUTPUT)
    losses[GEOMETRY_OUTPUT] = "mse"
    weights[GEOMETRY_OUTPUT] = float(weight)
    return outputs, {"loss": losses, "loss_weights": weights}


def _output(features, units: int, name: str, activation: str | None = None):
    return keras.layers.Dense(units, activation=activation, name=name, dtype="float32")(features)


def _regression_loss(name: str, period: float):
    """A regression loss measured in turns of the dial (differences divided by ``period``).

    The unit keeps the loss on the scale of the other heads' losses and of the auxiliary
    geometry output's: in hours, the chance-level circular MSE of the 12-hour regression is about
    12, which swamped the geometry loss (chance 0.5) and kept the head at chance (BENCHMARKS.md).
    """
    base = {"mse": keras.losses.mean_squared_error, "mae": keras.losses.mean_absolute_error,
            "huber": lambda y_true, y_pred: keras.losses.huber(y_true, y_pred, delta=1.0 / 12.0),
            }.get(name)

    def regression_loss(y_true, y_pred):
        y_true = keras.ops.cast(y_true, y_pred.dtype) / period
        y_pred = y_pred / period
        if base is not None:
            return base(y_true, y_pred)
        difference = y_pred - y_true
        difference = difference - keras.ops.round(difference)
        if name == "circular_mse":
            return keras.ops.mean(keras.ops.square(difference), axis=-1)
        return keras.ops.mean(keras.ops.abs(difference), axis=-1)

    regression_loss.__name__ = name
    return regression_loss


def _mean(arrays: list[np.ndarray], period: float | None) -> np.ndarray:
    """Element-wise mean; on the circle of ``period`` when one is given."""
    if period is None:
        return np.mean(arrays, axis=0)
    angles = 2.0 * math.pi * np.stack(arrays) / period
    mean = np.arctan2(np.mean(np.sin(angles), axis=0), np.mean(np.cos(angles), axis=0))
    return (mean % (2.0 * math.pi)) / (2.0 * math.pi) * period


def _circle(value: np.ndarray, period: float) -> np.ndarray:
    angle = 2.0 * math.pi * np.asarray(value, dtype=np.float64) / period
    return np.stack([np.sin(angle), np.cos(angle)], axis=1).astype(np.float32)


def _angle(sin_cos: np.ndarray, period: float) -> np.ndarray:
    angle = np.arctan2(sin_cos[:, 0], sin_cos[:, 1]) % (2.0 * math.pi)
    return angle / (2.0 * math.pi) * period


def _combine(hour_hand_minutes: np.ndarray, minute: np.ndarray) -> np.ndarray:
    """Whole hours from the hour hand, minutes from the minute output.

    The hour is the one whose ``hour * 60 + minute`` lies nearest the hour hand's reading, so an
    hour hand just short of 3 with the minute at 58 reads 2:58, not 3:58.
    """
    hours = np.round((hour_hand_minutes - minute) / 60.0) % 12
    return (hours * 60.0 + minute) % MINUTES_PER_DIAL


def _likeliest_hour(hour_probabilities: np.ndarray, minute: np.ndarray) -> np.ndarray:
    """The hour h whose reading h:minute most likely lies within half an hour of the true time.

    The softmax gives the probabilities of the true time's hour class; the true time is h:minute
    plus a normal error of ``MINUTE_READING_SD`` minutes. Mid-hour that is the argmax. Near the
    hour the error may cross into the next or previous class, whose probability then counts for
    h: the hour hand of 2:59 sits on the 3, the softmax splits between 2 and 3, and its argmax
    read 3:59 (hour-off reads made about half the mean error of the trained 150x150 model). A
    class clearly ahead of its neighbours still reads as itself at every minute, since an error
    below zero is as likely as one above it and an error of zero keeps the class.
    """
    errors = np.arange(-30, 30)
    weights = np.exp(-0.5 * (errors / MINUTE_READING_SD) ** 2)
    weights = weights / weights.sum()
    true_minute = minute[:, None] + errors
    earlier = np.sum(weights * (true_minute < 0), axis=1, keepdims=True)
    later = np.sum(weights * (true_minute >= 60), axis=1, keepdims=True)
    score = ((1.0 - earlier - later) * hour_probabilities
             + earlier * np.roll(hour_probabilities, 1, axis=-1)
             + later * np.roll(hour_probabilities, -1, axis=-1))
    return np.argmax(score, axis=-1)


def _hour_against_hand(hour_probabilities: np.ndarray, minute: np.ndarray,
                       hour_hand_minutes: np.ndarray) -> np.ndarray:
    """The hour h maximising log p(h) - d^2 / (2 ``HAND_READING_SD``^2), with d the distance on
    the dial from h:minute to the geometry output's hour-hand reading."""
    candidates = np.arange(12)[None, :] * 60.0 + minute[:, None]
    distance = np.abs((candidates - hour_hand_minutes[:, None] + 360.0) % MINUTES_PER_DIAL - 360.0)
    score = (np.log(np.clip(hour_probabilities, 1e-12, None))
             - 0.5 * (distance / HAND_READING_SD) ** 2)
    return np.argmax(score, axis=-1)


def _hand_readings(outputs) -> np.ndarray | None:
    """(N, 4): sin and cos of the hour hand's, then the minute hand's direction from the 12
    mark, from a model's geometry output (or an average's ``HANDS``); None without either."""
    if not isinstance(outputs, dict):
        return None
    if HANDS in outputs:
        return np.asarray(outputs[HANDS], dtype=np.float64)
    if GEOMETRY_OUTPUT not in outputs:
        return None
    geometry = np.asarray(outputs[GEOMETRY_OUTPUT], dtype=np.float64)
    twelve, hour, minute = (np.arctan2(geometry[:, k], geometry[:, k + 3]) for k in range(3))
    return np.stack([np.sin(hour - twelve), np.cos(hour - twelve),
                     np.sin(minute - twelve), np.cos(minute - twelve)], axis=1)


def _unit(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


def _time_outputs(outputs):
    """Drop the auxiliary geometry output (and an average's ``HANDS``); a lone ``time`` output
    becomes the bare array."""
    if not isinstance(outputs, dict) or not {GEOMETRY_OUTPUT, HANDS} & set(outputs):
        return outputs
    outputs = {name: value for name, value in outputs.items()
               if name not in (GEOMETRY_OUTPUT, HANDS)}
    return outputs["time"] if set(outputs) == {"time"} else outputs


def _as_output_dict(outputs) -> dict[str, np.ndarray]:
    if isinstance(outputs, dict):
        return outputs
    hour, minute = outputs
    return {"hour": hour, "minute": minute}


def _check_choice(what: str, value, choices) -> None:
    if value not in choices:
        raise ValueError(
            f"Unknown {what} {value!r}. Expected one of: {', '.join(map(str, choices))}.")


def check_class_count(num_classes) -> None:
    """Raise ValueError unless ``num_classes`` is a whole number >= 2 that divides 720."""
    if (not isinstance(num_classes, (int, np.integer)) or num_classes < 2
            or MINUTES_PER_DIAL % int(num_classes)):
        raise ValueError(
            f"num_classes must divide 720 (the minutes on the dial) and be at least 2, e.g. "
            f"{', '.join(map(str, CLASS_COUNTS))}; got {num_classes!r}.")
