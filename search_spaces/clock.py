"""The tell-the-time CNN: a tunable convolutional backbone and four ways to represent the time.

Heads (how the label (hour, minute) is represented at the output):

- ``classification``: ``n`` classes of ``720 / n`` minutes each (24, 72, 144, 360, 720, ...),
  softmax + cross-entropy, decoded to the centre of the predicted class;
- ``regression``: one linear output, the time in hours (3:00 -> 3.0, 5:30 -> 5.5), with a choice
  of loss, of which the circular ones measure the error around the dial (11.9 vs 0.1 is 0.2 h);
- ``multi_head``: an hour output and a minute output with their own losses and loss weights
  (hour: 12-way classification or sin/cos of the hour hand; minute: regression, sin/cos or 60-way
  classification); the minute sets the minutes and the hour output picks the hour;
- ``periodic``: sin / cos on the unit circle, of the total time (2 outputs) or of both hands
  (4 outputs), tanh to fit [-1, 1], decoded with atan2.

Every head is decoded to minutes after 12:00 (0-719) and scored the same way, by the common-sense
error ``min(|d|, 720 - |d|)``; its mean on the validation set is ``val_cse``, the objective.

>>> hypermodel = ClockHyperModel((75, 75, 1), head="periodic")
>>> model = hypermodel.build(keras_tuner.HyperParameters())
>>> hypermodel.fit(hp, model, x_train, y_train, validation_data=(x_val, y_val), epochs=10)
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from typing import Any, Sequence

import keras
import keras_tuner as kt
import numpy as np

from search_spaces._layers import (
    BATCH_NORM_MOMENTUM,
    activation_layer,
    choose_activation,
    choose_optimizer,
    schedule_callbacks,
)
from search_spaces.base import SearchSpace

MINUTES_PER_DIAL = 720
HEADS = ("classification", "regression", "multi_head", "periodic")
HEAD_CHOICES = HEADS + ("search",)
CLASS_COUNTS = (24, 72, 144, 360, 720)
REGRESSION_LOSSES = ("mse", "mae", "huber", "circular_mse", "circular_mae")
PERIODIC_ENCODINGS = ("total", "hands")
HOUR_OUTPUTS = ("classification", "periodic")
MINUTE_OUTPUTS = ("regression", "periodic", "classification")
MAX_BLOCKS = 5
# Every name build() may declare, for checking values fixed from outside (CLI --set).
HYPERPARAMETER_NAMES = (
    "head", "num_classes", "regression_loss", "periodic_encoding", "hour_output", "minute_output",
    "minute_loss", "minute_loss_weight", "conv_blocks", "filters", "kernel_size",
    "convs_per_block", "stem_stride", "batch_norm", "pooling", "readout", "dense_units", "dropout",
    "activation", "augment", "batch_size", "optimizer", "learning_rate", "momentum", "nesterov",
    "beta_1", "rho", "weight_decay", "geometry_weight", "lr_schedule",
)
# The auxiliary output: sin and cos of the image-frame directions of the twelve o'clock mark, the
# hour hand and the minute hand (renderer geometry columns 2-4), sin first.
GEOMETRY_OUTPUT = "geometry"
GEOMETRY_ANGLE_COLUMNS = slice(2, 5)
MAX_FILTERS = 256


def common_sense_error_minutes(true_minutes, predicted_minutes) -> np.ndarray:
    """Distance in minutes between two times on a 12-hour dial: ``min(|d|, 720 - |d|)``.

    Args:
        true_minutes, predicted_minutes: minutes after 12:00 (any real numbers; taken modulo 720),
            arrays of the same shape or broadcastable.

    Returns:
        float64 array in [0, 360]. 11:55 vs 0:05 is 10; 6:00 vs 0:00 is 360; 0:00 vs 11:59 is 1.
    """
    difference = np.abs(np.asarray(true_minutes, dtype=np.float64)
                        - np.asarray(predicted_minutes, dtype=np.float64)) % MINUTES_PER_DIAL
    return np.minimum(difference, MINUTES_PER_DIAL - difference)


def labels_to_minutes(labels) -> np.ndarray:
    """(N, 2) (hour 0-11, minute 0-59) -> (N,) minutes after 12:00."""
    labels = np.asarray(labels)
    if labels.ndim != 2 or labels.shape[1] != 2:
        raise ValueError(
            f"Expected clock labels of shape (N, 2) = (hour, minute), got {labels.shape}.")
    return (labels[:, 0].astype(np.int64) % 12) * 60 + labels[:, 1].astype(np.int64)


def error_summary(true_minutes, predicted_minutes) -> dict[str, float]:
    """Mean and median common-sense error, and the shares within 1 and 5 minutes."""
    errors = common_sense_error_minutes(true_minutes, predicted_minutes)
    if errors.size == 0:
        raise ValueError("Cannot summarize the error of an empty set of predictions.")
    return {"cse_mean": float(errors.mean()), "cse_median": float(np.median(errors)),
            "within_1min": float(np.mean(errors <= 1.0)),
            "within_5min": float(np.mean(errors <= 5.0))}


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
            _check_class_count(self.num_classes)
        if self.kind == "regression":
            _check_choice("regression loss", self.loss, REGRESSION_LOSSES)
        if self.kind == "periodic":
            _check_choice("periodic encoding", self.encoding, PERIODIC_ENCODINGS)
        if self.kind == "multi_head":
            _check_choice("hour output", self.hour_output, HOUR_OUTPUTS)
            _check_choice("minute output", self.minute_output, MINUTE_OUTPUTS)
            _check_choice("minute loss", self.minute_loss, REGRESSION_LOSSES)

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
        not to 6:00. The auxiliary geometry output is dropped.
        """
        outputs = [_time_outputs(output) for output in outputs]
        if not outputs:
            raise ValueError("Nothing to average: expected at least one set of outputs.")
        if self.kind != "multi_head":
            period = 12.0 if self.kind == "regression" else None
            return _mean([np.asarray(output, dtype=np.float64) for output in outputs], period)
        outputs = [_as_output_dict(output) for output in outputs]
        minute_period = 1.0 if self.minute_output == "regression" else None
        return {"hour": _mean([np.asarray(o["hour"], dtype=np.float64) for o in outputs], None),
                "minute": _mean([np.asarray(o["minute"], dtype=np.float64) for o in outputs],
                                minute_period)}

    def decode(self, outputs) -> np.ndarray:
        """The model's outputs -> minutes after 12:00 in [0, 720), float64.

        Continuous heads are rounded to the nearest whole minute (the labels are whole minutes);
        classification gives the centre of the predicted class. An auxiliary geometry output, if
        the model has one, is ignored.
        """
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
        minute_output = np.asarray(outputs["minute"], dtype=np.float64)
        if self.minute_output == "regression":
            minute = np.round(minute_output.reshape(-1) * 60.0) % 60
        elif self.minute_output == "periodic":
            minute = np.round(_angle(minute_output, 60)) % 60
        else:
            minute = np.argmax(minute_output, axis=-1).astype(np.float64)
        hour_output = np.asarray(outputs["hour"], dtype=np.float64)
        if self.hour_output == "classification":
            return np.argmax(hour_output, axis=-1) * 60.0 + minute
        return _combine(_angle(hour_output, MINUTES_PER_DIAL), minute)


class ClockHyperModel(SearchSpace):
    """CNN that reads the time from a clock image, with a fixed or searched head.

    Backbone: ``conv_blocks`` blocks (2-5) of ``convs_per_block`` convolutions (``kernel_size``)
    with optional batch normalization and a pooling layer; the first block has ``filters``
    filters and each next block doubles them (at most 256); an optional strided stem (stride 2
    from 64 pixels up, a stride-4 patch convolution from 128 up, by default); then flatten or global average pooling, one dense layer of
    ``dense_units`` with ``dropout``, and the head. Tuned as well: activation, optimizer and
    learning rate, batch size, training-time augmentation (rotation, brightness, contrast).

    The default point (stride-2 stem, 4 blocks from 32 filters, 3x3, batch norm with momentum
    0.9, max pooling, global average pooling, dense 256, no dropout, Adam 3e-4, batch 64,
    augmentation on) is a plain small CNN.

    Auxiliary geometry targets: a rendered set knows where the twelve o'clock mark and both
    hands point in each image (``Dataset.geometry_train``). With ``geometry=True`` the model gets
    a second, training-only output that regresses those three directions (sin / cos, MSE, weight
    ``geometry_weight``), and ``fit`` takes the geometry. Reading the time from a freely rotated
    clock needs the *difference* of two directions (a hand and the 12); without help, a network
    sees no first-order signal for either and sits at chance for a long time. The auxiliary
    output supervises each direction on its own. It changes nothing at inference: predictions
    decode from the time head alone.

    Args:
        input_shape: (H, W, 1).
        head: one of ``HEAD_CHOICES``; ``"search"`` makes the head a hyperparameter.
        num_classes: classes of the classification head (must divide 720; default 720). Ignored
            (must stay 720 or None) for the other fixed heads; the default of the searched one.
        geometry: the training data carries renderer geometry: declare ``geometry_weight``
            (0-2, default 1; 0 leaves the auxiliary output out). Default False.
        steps_per_execution: see ``SearchSpace``.

    Raises:
        ValueError: unknown head, or ``num_classes`` that does not divide 720 or is given for a
            head that has no classes.
    """

    name = "clock"
    objective = ("val_cse", "min")

    def __init__(self, input_shape: Sequence[int], head: str = "classification",
                 num_classes: int | None = 720, geometry: bool = False, **kwargs: Any):
        _check_choice("head", head, HEAD_CHOICES)
        if num_classes is None:
            num_classes = 720
        if head in ("regression", "multi_head", "periodic") and num_classes != 720:
            raise ValueError(
                f"num_classes={num_classes} only applies to the classification head; the {head} "
                f"head has no classes. Use head='classification' or leave num_classes out.")
        _check_class_count(num_classes)
        super().__init__(input_shape, int(num_classes), **kwargs)
        self.head = head
        self.geometry = bool(geometry)
        self._last_head: ClockHead | None = None

    def choose_head(self, hp: kt.HyperParameters) -> ClockHead:
        """Declare the head's hyperparameters on ``hp`` and return the head they give."""
        if self.head == "search":
            kind = hp.Choice("head", list(HEADS), default="classification")
        else:
            kind = self.head

        def scope(name):
            if self.head == "search":
                return hp.conditional_scope("head", [name])
            return contextlib.nullcontext()

        if kind == "classification":
            if self.head == "search":
                with scope("classification"):
                    counts = sorted(set(CLASS_COUNTS) | {self.num_classes})
                    classes = hp.Choice("num_classes", counts, default=self.num_classes)
                return ClockHead("classification", num_classes=classes)
            return ClockHead("classification", num_classes=self.num_classes)
        if kind == "regression":
            with scope("regression"):
                loss = hp.Choice("regression_loss", list(REGRESSION_LOSSES), default="circular_mse")
            return ClockHead("regression", loss=loss)
        if kind == "periodic":
            with scope("periodic"):
                encoding = hp.Choice("periodic_encoding", list(PERIODIC_ENCODINGS), default="hands")
            return ClockHead("periodic", encoding=encoding)
        with scope("multi_head"):
            hour_output = hp.Choice("hour_output", list(HOUR_OUTPUTS), default="classification")
            minute_output = hp.Choice("minute_output", list(MINUTE_OUTPUTS), default="regression")
            minute_loss = "circular_mse"
            if minute_output == "regression":
                with hp.conditional_scope("minute_output", ["regression"]):
                    minute_loss = hp.Choice("minute_loss", list(REGRESSION_LOSSES),
                                            default="circular_mse")
            # Only the ratio of the two weights matters, so the hour's stays 1.
            minute_weight = hp.Float("minute_loss_weight", 0.25, 4.0, sampling="log", default=1.0)
        return ClockHead("multi_head", hour_output=hour_output, minute_output=minute_output,
                         minute_loss=minute_loss, minute_loss_weight=minute_weight)

    def build(self, hp: kt.HyperParameters) -> keras.Model:
        head = self.choose_head(hp)
        conv_blocks = hp.Int("conv_blocks", 2, MAX_BLOCKS, default=4)
        filters = hp.Choice("filters", [16, 32, 48, 64], default=32)
        kernel_size = hp.Choice("kernel_size", [3, 5], default=3)
        convs_per_block = hp.Int("convs_per_block", 1, 2, default=1)
        # A strided stem makes large inputs cheap: stride 2 (a 3x3 convolution) takes 75 pixels to
        # 38, stride 4 (a 4x4 patch convolution, every pixel seen once) takes 150 to 38, so a
        # 150-pixel clock costs about what a 75-pixel one does. Tiny test images need none.
        side = self.input_shape[0]
        stem_stride = hp.Choice("stem_stride", [1, 2, 4],
                                default=4 if side >= 128 else 2 if side >= 64 else 1)
        batch_norm = hp.Boolean("batch_norm", default=True)
        pooling = hp.Choice("pooling", ["max", "average"], default="max")
        # Global average pooling: the last feature maps see the whole dial, so directions live in
        # the channels. On 6,000 rotated clocks it learned the hands' image-frame directions twice
        # as well as flatten in 6 epochs (validation MSE of sin/cos 0.27 against 0.62), which
        # memorized instead.
        readout = hp.Choice("readout", ["global_average", "flatten"], default="global_average")
        dense_units = hp.Choice("dense_units", [64, 128, 256, 512], default=256)
        # No dropout by default: on 3,000 rotated clocks, dropout 0.3 before the outputs sent every
        # head to its chance-level constant within 2 epochs (the direction targets are
        # regressions, and dropped features make them noise); without it they learn.
        dropout = hp.Float("dropout", 0.0, 0.5, step=0.1, default=0.0)
        activation = choose_activation(hp, default="relu")
        hp.Boolean("augment", default=True)
        geometry_weight = (hp.Float("geometry_weight", 0.0, 2.0, step=0.25, default=1.0)
                           if self.geometry else 0.0)
        self._declare_batch_size(hp, default=64)

        def conv(x, channels, strides=1):
            x = keras.layers.Conv2D(channels, kernel_size, strides=strides, padding="same",
                                    use_bias=not batch_norm)(x)
            if batch_norm:
                # Keras's default momentum 0.99 needs ~500 steps before the inference-time
                # statistics match the training ones; short runs then predict from wrong ones.
                x = keras.layers.BatchNormalization(momentum=BATCH_NORM_MOMENTUM)(x)
            return activation_layer(activation)(x)

        pool_layer = (keras.layers.MaxPooling2D if pooling == "max"
                      else keras.layers.AveragePooling2D)
        inputs = keras.Input(shape=self.input_shape)
        x = inputs
        if stem_stride == 2:
            x = conv(x, filters, strides=2)
        elif stem_stride == 4:
            x = keras.layers.Conv2D(filters, 4, strides=4, padding="same", use_bias=not batch_norm)(x)
            if batch_norm:
                x = keras.layers.BatchNormalization(momentum=BATCH_NORM_MOMENTUM)(x)
            x = activation_layer(activation)(x)
        for block in range(conv_blocks):
            channels = min(MAX_FILTERS, filters * 2 ** block)
            for _ in range(convs_per_block):
                x = conv(x, channels)
            # Pool only while the map is at least 2x2, so deep variants still fit small inputs.
            if min(x.shape[1:3]) >= 2:
                x = pool_layer(2)(x)
        if readout == "flatten":
            x = keras.layers.Flatten()(x)
        else:
            x = keras.layers.GlobalAveragePooling2D()(x)
        x = keras.layers.Dense(dense_units)(x)
        x = activation_layer(activation)(x)
        if dropout:
            x = keras.layers.Dropout(dropout)(x)
        outputs, compile_arguments = head.output_layers(x), head.compile_arguments()
        if geometry_weight > 0:
            outputs, compile_arguments = _add_geometry_output(x, outputs, compile_arguments,
                                                              geometry_weight)
        model = keras.Model(inputs, outputs, name=f"clock_{head.kind}")
        # 1e-3 saturated the tanh outputs and stalled the heads in short runs; 3e-4 trains them.
        optimizer = choose_optimizer(hp, default="adam", default_learning_rate=3e-4)
        model.compile(optimizer=optimizer, steps_per_execution=self.steps_per_execution,
                      **compile_arguments)
        # The decoder travels with the model, so predictions of any trial decode correctly.
        model.clock_head = head
        model.geometry_weight = geometry_weight
        self._last_head = head
        return model

    def head_for(self, hp: kt.HyperParameters | None = None) -> ClockHead:
        """The head of ``hp`` (default: of the last built model, else the default point's)."""
        if hp is not None:
            return self.choose_head(hp.copy())
        if self._last_head is not None:
            return self._last_head
        return self.choose_head(kt.HyperParameters())

    def encode_targets(self, y, hp: kt.HyperParameters | None = None) -> Any:
        """(N, 2) (hour, minute) -> the targets of the head (see ``head_for``)."""
        return self.head_for(hp).encode(y)

    def decode_minutes(self, model_outputs, hp: kt.HyperParameters | None = None) -> np.ndarray:
        """Model outputs -> minutes after 12:00 (see ``head_for`` for which head decodes)."""
        return self.head_for(hp).decode(model_outputs)

    def predict_minutes(self, model: keras.Model, x, batch_size: int = 256,
                        rotations: int = 1) -> np.ndarray:
        """Predicted minutes after 12:00 for images ``x``, decoded by the model's own head.

        ``rotations`` > 1 is test-time augmentation: every image is also read turned by
        360 / ``rotations`` degrees, twice that, and so on (a turned clock shows the same time),
        and the head's outputs are averaged over the copies (``ClockHead.average``) before
        decoding. It costs ``rotations`` predictions per image.
        """
        head = getattr(model, "clock_head", None) or self.head_for()
        return head.decode(head.average(self.rotated_outputs(model, x, rotations, batch_size)))

    @staticmethod
    def rotated_outputs(model: keras.Model, x, rotations: int = 1,
                        batch_size: int = 256) -> list[Any]:
        """The model's raw outputs for ``x`` turned by 0, 360 / ``rotations``, ... degrees."""
        if not isinstance(rotations, (int, np.integer)) or rotations < 1:
            raise ValueError(f"rotations must be a whole number >= 1 (1: no test-time "
                             f"augmentation), got {rotations!r}.")
        x = np.asarray(x, dtype=np.float32)
        outputs = []
        for turn in range(rotations):
            turned = x if turn == 0 else np.asarray(
                rotate_images(x, np.full(len(x), 2.0 * math.pi * turn / rotations, np.float32)))
            outputs.append(model.predict(turned, batch_size=batch_size, verbose=0))
        return outputs

    def fit(self, hp: kt.HyperParameters, model: keras.Model, x, y, validation_data=None,
            callbacks=None, geometry=None, **kwargs):
        """Train on raw (hour, minute) labels; report ``val_cse`` and friends every epoch.

        The labels are encoded for the model's head; training batches are shuffled and, when the
        ``augment`` hyperparameter is on, rotated by any angle and changed in brightness and
        contrast (the time stays true). ``geometry`` ((N, 5), ``Dataset.geometry_train``) is
        needed when the model has the auxiliary geometry output, and rotated with the images.
        Validation data is never augmented: it is predicted at the end of every epoch and decoded
        to minutes, giving ``val_cse`` (mean common-sense error), ``val_cse_median``,
        ``val_within_1min`` and ``val_within_5min`` in the logs and History.
        ``epochs`` / ``initial_epoch`` come from the caller (KerasTuner's Hyperband sets them).
        """
        head = getattr(model, "clock_head", None) or self.head_for(hp)
        batch_size = hp.get("batch_size") if "batch_size" in hp.values else 64
        augment = hp.get("augment") if "augment" in hp.values else True
        kwargs.pop("batch_size", None)
        kwargs.pop("shuffle", None)
        targets = head.encode(y)
        angles = None
        if getattr(model, "geometry_weight", 0.0) > 0:
            angles = _geometry_angles(geometry, len(x))
            targets = dict(targets) if isinstance(targets, dict) else {"time": targets}
        training = _training_dataset(np.asarray(x, dtype=np.float32), targets, batch_size,
                                     augment, angles)
        callbacks = list(callbacks or [])
        callbacks += schedule_callbacks(hp, kwargs.get("epochs", 1))
        if validation_data is not None:
            x_val, y_val = validation_data[0], validation_data[1]
            # First in the list, so KerasTuner's callbacks and History see val_cse.
            callbacks.insert(0, CommonSenseErrorCallback(x_val, y_val, head, batch_size=256))
        # The dataset is shuffled above; Keras's own shuffle does not apply to tf.data.
        return model.fit(training, callbacks=callbacks, shuffle=False, **kwargs)


class CommonSenseErrorCallback(keras.callbacks.Callback):
    """Adds ``val_cse`` (mean), ``val_cse_median``, ``val_within_1min``, ``val_within_5min`` and
    ``val_seconds`` to the logs at the end of every epoch, from predictions on (x_val, y_val)."""

    def __init__(self, x_val, y_val, head: ClockHead, batch_size: int = 256, prefix: str = "val_"):
        super().__init__()
        self.x_val = x_val
        self.true_minutes = labels_to_minutes(y_val)
        self.head = head
        self.batch_size = batch_size
        self.prefix = prefix

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        start = time.perf_counter()
        outputs = self.model.predict(self.x_val, batch_size=self.batch_size, verbose=0)
        summary = error_summary(self.true_minutes, self.head.decode(outputs))
        logs[f"{self.prefix}cse"] = summary["cse_mean"]
        logs[f"{self.prefix}cse_median"] = summary["cse_median"]
        logs[f"{self.prefix}within_1min"] = summary["within_1min"]
        logs[f"{self.prefix}within_5min"] = summary["within_5min"]
        logs[f"{self.prefix}seconds"] = time.perf_counter() - start


def _training_dataset(x: np.ndarray, targets, batch_size: int, augment: bool,
                      angles: np.ndarray | None = None):
    """Shuffled, batched, optionally augmented training data.

    With ``angles`` ((N, 3) image-frame directions, radians clockwise from up), the targets get a
    ``geometry`` entry: sin and cos of those directions, after the batch's rotation.
    """
    import tensorflow as tf  # The input pipeline is tf.data whatever the Keras backend.

    images = tf.constant(x)
    target_tensors = tf.nest.map_structure(tf.constant, targets)
    angle_tensor = None if angles is None else tf.constant(angles, dtype=tf.float32)
    count = len(x)
    dataset = tf.data.Dataset.range(count).shuffle(count, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size)

    def gather(index):
        batch_angles = (tf.zeros([tf.shape(index)[0], 3]) if angle_tensor is None
                        else tf.gather(angle_tensor, index))
        return (tf.gather(images, index),
                tf.nest.map_structure(lambda t: tf.gather(t, index), target_tensors), batch_angles)

    dataset = dataset.map(gather, num_parallel_calls=tf.data.AUTOTUNE)
    # Brightness / contrast as in lighting changes.
    photometric = [keras.layers.RandomBrightness(0.1, value_range=(0.0, 1.0)),
                   keras.layers.RandomContrast(0.2)]

    def finish(batch, batch_targets, batch_angles):
        if augment:
            # Any in-plane rotation: the rendered and real clocks are not always upright, and a
            # rotated clock shows the same time; the image-frame directions turn with it.
            rotation = tf.random.uniform([tf.shape(batch)[0]], 0.0, 2.0 * math.pi)
            batch = rotate_images(batch, rotation)
            batch_angles = batch_angles + rotation[:, None]
            for layer in photometric:
                batch = layer(batch, training=True)
            batch = tf.clip_by_value(batch, 0.0, 1.0)
        if angle_tensor is not None:
            batch_targets = dict(batch_targets)
            batch_targets[GEOMETRY_OUTPUT] = tf.concat([tf.sin(batch_angles),
                                                        tf.cos(batch_angles)], axis=1)
        return batch, batch_targets

    dataset = dataset.map(finish, num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.prefetch(tf.data.AUTOTUNE)


def rotate_images(images, angles):
    """Turn each image (N, H, W, C) clockwise by ``angles`` (N,) radians about its centre.

    Bilinear; pixels that come from outside the image repeat the nearest edge pixel (a
    reflection would add mirror-image clocks, which show other times).
    """
    import tensorflow as tf

    images = tf.convert_to_tensor(images, dtype=tf.float32)
    angles = tf.cast(tf.convert_to_tensor(angles), tf.float32)
    height = tf.cast(tf.shape(images)[1], tf.float32)
    width = tf.cast(tf.shape(images)[2], tf.float32)
    cx, cy = (width - 1.0) / 2.0, (height - 1.0) / 2.0
    cos, sin = tf.cos(angles), tf.sin(angles)
    zeros = tf.zeros_like(angles)
    # Output pixel (x, y) (y down) samples the input at the point turned back by the angle.
    transforms = tf.stack([cos, sin, cx - cos * cx - sin * cy,
                           -sin, cos, cy + sin * cx - cos * cy, zeros, zeros], axis=1)
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=images, transforms=transforms, output_shape=tf.shape(images)[1:3],
        fill_value=0.0, interpolation="BILINEAR", fill_mode="NEAREST")


def _add_geometry_output(features, outputs, compile_arguments: dict[str, Any], weight: float):
    """The head's outputs and compile arguments, plus the auxiliary geometry output."""
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


def _geometry_angles(geometry, count: int) -> np.ndarray:
    if geometry is None:
        raise ValueError(
            "This clock model has the auxiliary geometry output (geometry_weight > 0) but no "
            "geometry was given to fit. Pass geometry=data.geometry_train (rendered sets have it), "
            "or build the ClockHyperModel with geometry=False for data without it.")
    geometry = np.asarray(geometry, dtype=np.float32)
    if geometry.ndim != 2 or geometry.shape[0] != count or geometry.shape[1] < 5:
        raise ValueError(f"Expected geometry of shape ({count}, 5), one row per training image, "
                         f"got {geometry.shape}.")
    return geometry[:, GEOMETRY_ANGLE_COLUMNS]


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


def _time_outputs(outputs):
    """Drop the auxiliary geometry output; a lone ``time`` output becomes the bare array."""
    if not isinstance(outputs, dict) or GEOMETRY_OUTPUT not in outputs:
        return outputs
    outputs = {name: value for name, value in outputs.items() if name != GEOMETRY_OUTPUT}
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


def _check_class_count(num_classes) -> None:
    if (not isinstance(num_classes, (int, np.integer)) or num_classes < 2
            or MINUTES_PER_DIAL % int(num_classes)):
        raise ValueError(
            f"num_classes must divide 720 (the minutes on the dial) and be at least 2, e.g. "
            f"{', '.join(map(str, CLASS_COUNTS))}; got {num_classes!r}.")
