"""The tell-the-time CNN: a tunable convolutional backbone and four ways to represent the time.

The pieces live in their own modules: ``clock_time`` (minutes on the dial, the common-sense
error), ``clock_heads`` (``ClockHead``: the four label representations, ``classification``,
``regression``, ``multi_head`` and ``periodic``, and the auxiliary geometry output),
``clock_pipeline`` (augmented training batches, geometry targets). This module puts them together
as a KerasTuner HyperModel; the names callers use are importable from here as well.

Every head is decoded to minutes after 12:00 (0-719) and scored the same way, by the common-sense
error ``min(|d|, 720 - |d|)``; its mean on the validation set is ``val_cse``, the objective.

>>> hypermodel = ClockHyperModel((75, 75, 1), head="periodic")
>>> model = hypermodel.build(keras_tuner.HyperParameters())
>>> hypermodel.fit(hp, model, x_train, y_train, validation_data=(x_val, y_val), epochs=10)
"""
from __future__ import annotations

import contextlib
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
from search_spaces.clock_heads import (
    CLASS_COUNTS,
    HEADS,
    HOUR_OUTPUTS,
    MINUTE_OUTPUTS,
    PERIODIC_ENCODINGS,
    REGRESSION_LOSSES,
    ClockHead,
    add_geometry_output,
    check_class_count,
)
from search_spaces.clock_init import InitialWeights, WeightCopyReport, copy_weights
from search_spaces.clock_pipeline import geometry_angles, rotate_images, training_dataset
from search_spaces.clock_time import common_sense_error_minutes, error_summary, labels_to_minutes

# The HyperModel, and the names of the pieces callers have always imported from here.
__all__ = [
    "CLASS_COUNTS", "HEADS", "HEAD_CHOICES", "HEAD_HYPERPARAMETERS", "HYPERPARAMETER_NAMES",
    "TRAINING_HYPERPARAMETERS", "ClockHead", "ClockHyperModel", "CommonSenseErrorCallback",
    "InitialWeights", "common_sense_error_minutes", "error_summary", "labels_to_minutes",
    "rotate_images",
]

HEAD_CHOICES = HEADS + ("search",)
MAX_BLOCKS = 5
# Every name build() may declare, for checking values fixed from outside (CLI --set).
HYPERPARAMETER_NAMES = (
    "head", "num_classes", "regression_loss", "periodic_encoding", "hour_output", "minute_output",
    "minute_loss", "minute_loss_weight", "conv_blocks", "filters", "kernel_size",
    "convs_per_block", "stem_stride", "batch_norm", "pooling", "readout", "dense_units", "dropout",
    "activation", "augment", "batch_size", "optimizer", "learning_rate", "momentum", "nesterov",
    "beta_1", "rho", "weight_decay", "geometry_weight", "lr_schedule",
)
# The hyperparameters of how a model is trained rather than of what it is: a fine-tune
# (``init_weights``) keeps the trained model's values of all the others and leaves these free.
TRAINING_HYPERPARAMETERS = (
    "learning_rate", "optimizer", "momentum", "nesterov", "beta_1", "rho", "weight_decay",
    "lr_schedule", "batch_size", "augment", "dropout", "geometry_weight",
)
# The ones that choose the head (``choose_head``).
HEAD_HYPERPARAMETERS = (
    "head", "num_classes", "regression_loss", "periodic_encoding", "hour_output", "minute_output",
    "minute_loss", "minute_loss_weight",
)
MAX_FILTERS = 256


class ClockHyperModel(SearchSpace):
    """CNN that reads the time from a clock image, with a fixed or searched head.

    Backbone: ``conv_blocks`` blocks (2-5) of ``convs_per_block`` convolutions (``kernel_size``)
    with optional batch normalization and a pooling layer; the first block has ``filters``
    filters and each next block doubles them (at most 256); an optional strided stem (stride 2
    from 64 pixels up, a stride-4 patch convolution from 128 up, by default); then flatten or
    global average pooling, one dense layer of ``dense_units`` with ``dropout``, and the head.
    Tuned as well: activation, optimizer and learning rate, batch size, training-time
    augmentation (rotation, brightness, contrast).

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
        init_weights: trained weights every built model starts from (a fine-tune; see
            ``search_spaces.clock_init``), copied where they fit; ``last_initialization`` then
            reports what was copied. Default None: random initialization.
        steps_per_execution: see ``SearchSpace``.

    Raises:
        ValueError: unknown head, or ``num_classes`` that does not divide 720 or is given for a
            head that has no classes.
    """

    name = "clock"
    objective = ("val_cse", "min")
    # Its labels are (hour, minute) pairs of the clock set only.
    required_dataset = "clock"
    # The first trial is the space's default point, not a textbook model.
    baseline_name = "default"
    # The core's steps of a clock search: fine-tunes, input polarity, geometry, model cards.
    search_hooks = "tuner.clock_search:ClockSearchHooks"

    def __init__(self, input_shape: Sequence[int], head: str = "classification",
                 num_classes: int | None = 720, geometry: bool = False,
                 init_weights: InitialWeights | None = None, **kwargs: Any):
        if head not in HEAD_CHOICES:
            raise ValueError(
                f"Unknown head {head!r}. Expected one of: {', '.join(HEAD_CHOICES)}.")
        if num_classes is None:
            num_classes = 720
        if head in ("regression", "multi_head", "periodic") and num_classes != 720:
            raise ValueError(
                f"num_classes={num_classes} only applies to the classification head; the {head} "
                f"head has no classes. Use head='classification' or leave num_classes out.")
        check_class_count(num_classes)
        super().__init__(input_shape, int(num_classes), **kwargs)
        self.head = head
        self.geometry = bool(geometry)
        self.init_weights = init_weights
        self.last_initialization: WeightCopyReport | None = None
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
            outputs, compile_arguments = add_geometry_output(x, outputs, compile_arguments,
                                                              geometry_weight)
        model = keras.Model(inputs, outputs, name=f"clock_{head.kind}")
        # 1e-3 saturated the tanh outputs and stalled the heads in short runs; 3e-4 trains them.
        optimizer = choose_optimizer(hp, default="adam", default_learning_rate=3e-4)
        model.compile(optimizer=optimizer, steps_per_execution=self.steps_per_execution,
                      **compile_arguments)
        if self.init_weights is not None:
            self.last_initialization = copy_weights(self.init_weights, model, head)
        # The decoder travels with the model, so predictions of any trial decode correctly.
        model.clock_head = head
        model.geometry_weight = geometry_weight
        self._last_head = head
        return model

    def describe_model(self, hp: kt.HyperParameters) -> dict[str, Any]:
        """What the model ``build(hp)`` gives is, in plain values.

        Keras saves a model's layers and weights but not the attributes ``build`` sets on it
        (``clock_head``, ``geometry_weight``); this description, kept next to a saved model, is
        enough to decode its outputs and to build the same model again
        (``ClockHyperModel.from_description``).

        Args:
            hp: the values the model was built with.

        Returns:
            ``head`` (``ClockHead.to_dict()``), ``geometry_weight`` (0: no geometry output),
            ``input_shape``, ``space`` (this hypermodel's ``head``, ``num_classes`` and
            ``geometry``) and ``hyperparameters`` (every value of ``hp``).
        """
        values = {name: value.item() if isinstance(value, np.generic) else value
                  for name, value in hp.values.items()}
        geometry_weight = float(values.get("geometry_weight", 1.0)) if self.geometry else 0.0
        return {"head": self.head_for(hp).to_dict(), "geometry_weight": geometry_weight,
                "input_shape": list(self.input_shape),
                "space": {"head": self.head, "num_classes": self.num_classes,
                          "geometry": self.geometry},
                "hyperparameters": values}

    @classmethod
    def from_description(cls, description: dict[str, Any], **kwargs: Any
                         ) -> tuple["ClockHyperModel", kt.HyperParameters]:
        """The hypermodel and the (fixed) hyperparameters that build a described model again.

        Args:
            description: what ``describe_model`` returned.
            **kwargs: other constructor arguments (``steps_per_execution``).

        Raises:
            ValueError: the description lacks a field or holds an invalid value.
        """
        try:
            space, values = description["space"], description["hyperparameters"]
            hypermodel = cls(description["input_shape"], head=space["head"],
                             num_classes=space["num_classes"], geometry=space["geometry"],
                             **kwargs)
        except (KeyError, TypeError) as error:
            raise ValueError(f"Not a clock model description: missing or invalid {error}.") from None
        hp = kt.HyperParameters()
        for name, value in values.items():
            if not name.startswith("tuner/"):
                hp.Fixed(name, value)
        return hypermodel, hp

    def callback_metric_names(self, model: keras.Model) -> list[str]:
        """The metrics this space's ``fit`` adds through callbacks (the common-sense error), as
        they appear in the training logs (without ``val_``)."""
        head = getattr(model, "clock_head", None) or self.head_for(kt.HyperParameters())
        callback = CommonSenseErrorCallback(np.zeros((1, *model.input_shape[1:]), "float32"),
                                            np.zeros((1, 2), "int64"), head, prefix="")
        callback.set_model(model)
        logs: dict[str, Any] = {}
        callback.on_epoch_end(0, logs)
        return list(logs)

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
            angles = geometry_angles(geometry, len(x))
            targets = dict(targets) if isinstance(targets, dict) else {"time": targets}
        training = training_dataset(np.asarray(x, dtype=np.float32), targets, batch_size,
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
