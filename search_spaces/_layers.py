"""Hyperparameters shared by every family: activation, initializer, optimizer, regularization.

Every hyperparameter's default is the textbook value, so the default point of a space is the
textbook model. Sub-parameters live in conditional scopes (momentum only for SGD, l2_factor only
with L2, ...) so that analysis never mistakes an inactive value for a tried one.
"""

from __future__ import annotations

import math

import keras
import keras_tuner as kt

ACTIVATIONS = ["relu", "elu", "selu", "tanh", "gelu", "swish", "leaky_relu"]
INITIALIZERS = [
    "glorot_uniform",
    "glorot_normal",
    "he_normal",
    "he_uniform",
    "lecun_normal",
    "lecun_uniform",
]
# adamw: Adam with decoupled weight decay (Loshchilov & Hutter), the usual choice for wide nets.
OPTIMIZERS = ["sgd", "adam", "nadam", "rmsprop", "adamw"]
# constant: the textbook's; cosine: falls from the learning rate to 0 over the epochs of a fit.
LR_SCHEDULES = ["constant", "cosine"]
REGULARIZATIONS = ["none", "l1", "l2", "dropout"]
BATCH_SIZES = [16, 32, 64, 128, 256]
# Keras's default 0.99 needs ~500 steps before the moving statistics match the batch statistics;
# a 2-epoch Hyperband trial on a subset has fewer, and would be judged on wrong statistics.
BATCH_NORM_MOMENTUM = 0.9


def choose_activation(hp: kt.HyperParameters, default: str = "relu") -> str:
    return hp.Choice("activation", ACTIVATIONS, default=default)


def choose_initializer(hp: kt.HyperParameters, default: str = "glorot_uniform") -> str:
    return hp.Choice("kernel_initializer", INITIALIZERS, default=default)


def choose_optimizer(
    hp: kt.HyperParameters, default: str, default_learning_rate: float
) -> keras.optimizers.Optimizer:
    """Optimizer, learning rate (log scale), the optimizer's own main parameters and the
    learning-rate schedule (``lr_schedule``, applied by ``SearchSpace.fit``)."""
    name = hp.Choice("optimizer", OPTIMIZERS, default=default)
    learning_rate = hp.Float(
        "learning_rate", 1e-4, 0.3, sampling="log", default=default_learning_rate
    )
    # Every sub-parameter is declared whatever the branch, inside its conditional scope, so
    # KerasTuner's space exploration sees all of them (an inactive one returns None).
    with hp.conditional_scope("optimizer", ["sgd"]):
        # Keras's SGD defaults: no momentum, no Nesterov (the textbook MLP uses plain "sgd").
        momentum = hp.Float("momentum", 0.0, 0.99, default=0.0)
        nesterov = hp.Boolean("nesterov", default=False)
    with hp.conditional_scope("optimizer", ["adam", "nadam", "adamw"]):
        beta_1 = hp.Float("beta_1", 0.8, 0.99, default=0.9)
    with hp.conditional_scope("optimizer", ["rmsprop"]):
        rho = hp.Float("rho", 0.8, 0.99, default=0.9)
    with hp.conditional_scope("optimizer", ["adamw"]):
        # Keras multiplies it by the learning rate: 1e-2..1e-1 is the usual (PyTorch's default
        # is 1e-2); below 1e-4 it does next to nothing at lr 1e-3.
        weight_decay = hp.Float("weight_decay", 1e-5, 0.3, sampling="log", default=1e-2)
    choose_lr_schedule(hp)
    # Bayesian optimization proposes numpy float64 values; Nadam multiplies its float32 state by
    # beta_1 as given, and TensorFlow refuses a float64 operand there (a failed trial). Plain
    # Python floats take the variables' dtype in every optimizer.
    learning_rate, momentum, beta_1, rho, weight_decay = (
        None if value is None else float(value)
        for value in (learning_rate, momentum, beta_1, rho, weight_decay)
    )
    if name == "sgd":
        return keras.optimizers.SGD(
            learning_rate=learning_rate, momentum=momentum, nesterov=nesterov
        )
    if name == "adam":
        return keras.optimizers.Adam(learning_rate=learning_rate, beta_1=beta_1)
    if name == "adamw":
        return keras.optimizers.AdamW(
            learning_rate=learning_rate, beta_1=beta_1, weight_decay=weight_decay
        )
    if name == "nadam":
        return keras.optimizers.Nadam(learning_rate=learning_rate, beta_1=beta_1)
    return keras.optimizers.RMSprop(learning_rate=learning_rate, rho=rho)


def choose_lr_schedule(hp: kt.HyperParameters, default: str = "constant") -> str:
    return hp.Choice("lr_schedule", LR_SCHEDULES, default=default)


def schedule_callbacks(hp: kt.HyperParameters, epochs: int) -> list[keras.callbacks.Callback]:
    """The callbacks that apply ``hp``'s learning-rate schedule to a fit of ``epochs`` epochs."""
    if "lr_schedule" in hp.values and hp.get("lr_schedule") == "cosine":
        return [CosineLearningRate(epochs)]
    return []


class CosineLearningRate(keras.callbacks.Callback):
    """Sets the learning rate of epoch ``e`` (of ``epochs``) to ``base * (1 + cos(pi e / epochs)) / 2``,
    where ``base`` is the optimizer's rate when training starts; restores ``base`` at the end.

    Per epoch, not per step, so that a Hyperband trial continued from ``initial_epoch`` follows
    the same curve as one trained in one go, and early stopping leaves a usable rate behind.
    """

    def __init__(self, epochs: int):
        super().__init__()
        self.epochs = max(1, int(epochs))
        self.base: float | None = None

    def on_train_begin(self, logs=None):
        self.base = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))

    def on_epoch_begin(self, epoch, logs=None):
        rate = self.base * 0.5 * (1.0 + math.cos(math.pi * min(epoch, self.epochs) / self.epochs))
        self.model.optimizer.learning_rate = rate

    def on_train_end(self, logs=None):
        self.model.optimizer.learning_rate = self.base


def choose_regularization(
    hp: kt.HyperParameters, choices=REGULARIZATIONS, default: str = "none"
) -> tuple[keras.regularizers.Regularizer | None, float]:
    """Weight penalty and dropout rate: (kernel_regularizer or None, dropout rate)."""
    kind = hp.Choice("regularization", list(choices), default=default)
    factors = {}
    for penalty in ("l1", "l2"):
        if penalty in choices:
            with hp.conditional_scope("regularization", [penalty]):
                factors[penalty] = hp.Float(
                    f"{penalty}_factor",
                    1e-6,
                    1e-2,
                    sampling="log",
                    default=1e-5 if penalty == "l1" else 1e-4,
                )
    dropout_rate = None
    if "dropout" in choices:
        with hp.conditional_scope("regularization", ["dropout"]):
            dropout_rate = hp.Float("dropout_rate", 0.1, 0.6, step=0.05, default=0.2)
    if kind == "l1":
        return keras.regularizers.L1(factors["l1"]), 0.0
    if kind == "l2":
        return keras.regularizers.L2(factors["l2"]), 0.0
    if kind == "dropout":
        return None, dropout_rate
    return None, 0.0


def augmentation(x):
    """Random horizontal flips and shifts of up to 10% (training only): labels of Fashion-MNIST
    and CIFAR-10 stay true under both.

    On TensorFlow the shift is Keras's ``RandomTranslation`` (sub-pixel, bilinear). Other
    backends shift by whole pixels (``RandomShift``): under JAX, ``RandomTranslation`` goes
    through ``map_coordinates`` and made an MLP epoch 54x slower (benchmarks/bench_augmentation.py).
    """
    x = keras.layers.RandomFlip("horizontal")(x)
    if keras.backend.backend() == "tensorflow":
        return keras.layers.RandomTranslation(0.1, 0.1, fill_mode="constant")(x)
    return RandomShift(0.1)(x)


@keras.saving.register_keras_serializable(package="hpsearch")
class RandomShift(keras.layers.Layer):
    """Shift each image by a random whole number of pixels, up to ``factor`` of its height and width
    each way, filling with zeros (training only).

    Built from two batched matrix products with one-hot shift matrices, so it compiles to dense
    arithmetic on every backend, with no gather or interpolation.
    """

    def __init__(self, factor: float, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.factor, self.seed = factor, seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, images, training=None):
        if not training:
            return images
        ops = keras.ops
        batch, height, width = ops.shape(images)[0], images.shape[1], images.shape[2]

        def shift_matrices(size: int):
            most = round(size * self.factor)
            shift = keras.random.randint((batch, 1, 1), -most, most + 1, seed=self.seed_generator)
            # matrix[b, i, j] = 1 where output pixel i takes input pixel j = i - shift[b]
            target = ops.arange(size)[None, :, None] - shift
            return ops.cast(ops.equal(target, ops.arange(size)[None, None, :]), images.dtype)

        images = ops.einsum("bij,bjkc->bikc", shift_matrices(height), images)
        return ops.einsum("bkl,bilc->bikc", shift_matrices(width), images)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "factor": self.factor, "seed": self.seed}


def activation_layer(name: str) -> keras.layers.Layer:
    if name == "leaky_relu":
        return keras.layers.LeakyReLU(negative_slope=0.2)
    return keras.layers.Activation(name)


def compile_classifier(
    model: keras.Model, optimizer: keras.optimizers.Optimizer, steps_per_execution: int
) -> keras.Model:
    model.compile(
        optimizer=optimizer,
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        steps_per_execution=steps_per_execution,
    )
    return model
