"""The MLP family: Geron, Hands-on ML 2nd ed., ch. 10 (Flatten -> 300 relu -> 100 relu -> softmax)."""

from __future__ import annotations

import keras
import keras_tuner as kt

from search_spaces._layers import (
    BATCH_NORM_MOMENTUM,
    activation_layer,
    augmentation,
    choose_activation,
    choose_initializer,
    choose_optimizer,
    choose_regularization,
    compile_classifier,
)
from search_spaces.base import SearchSpace, _require_classes

MAX_LAYERS = 4
TEXTBOOK_UNITS = (300, 100, 100, 100)


class MLPHyperModel(SearchSpace):
    """Multilayer perceptron; its default point is the textbook MLP trained with plain SGD.

    Tuned: number of hidden layers (1-4), units per layer (16-1024, log scale), activation, kernel
    initializer, optimizer (SGD, Adam, Nadam, RMSprop, AdamW with decoupled weight decay) with
    learning rate and its main parameters, learning-rate schedule (constant, cosine),
    regularization (none, L1, L2, dropout) with its strength, batch normalization, augmentation
    (random flips and shifts) and batch size.
    """

    name = "mlp"

    def __init__(self, input_shape, num_classes, **kwargs):
        super().__init__(input_shape, _require_classes("mlp", num_classes), **kwargs)

    def build(self, hp: kt.HyperParameters) -> keras.Model:
        num_layers = hp.Int("num_layers", 1, MAX_LAYERS, default=2)
        activation = choose_activation(hp, default="relu")
        initializer = choose_initializer(hp, default="glorot_uniform")
        regularizer, dropout_rate = choose_regularization(hp, default="none")
        batch_norm = hp.Boolean("batch_norm", default=False)
        augment = hp.Boolean("augment", default=False)
        self._declare_batch_size(hp, default=32)

        inputs = keras.Input(shape=self.input_shape)
        x = augmentation(inputs) if augment else inputs
        x = keras.layers.Flatten()(x)
        units_per_layer = []
        for index in range(MAX_LAYERS):
            with hp.conditional_scope("num_layers", list(range(index + 1, MAX_LAYERS + 1))):
                units_per_layer.append(
                    hp.Int(
                        f"units_{index}", 16, 1024, sampling="log", default=TEXTBOOK_UNITS[index]
                    )
                )
        for units in units_per_layer[:num_layers]:
            x = keras.layers.Dense(
                units,
                kernel_initializer=initializer,
                kernel_regularizer=regularizer,
                use_bias=not batch_norm,
            )(x)
            if batch_norm:
                x = keras.layers.BatchNormalization(momentum=BATCH_NORM_MOMENTUM)(x)
            x = activation_layer(activation)(x)
            if dropout_rate:
                x = keras.layers.Dropout(dropout_rate)(x)
        # float32 under a mixed-precision policy too: the loss needs full-precision probabilities.
        outputs = keras.layers.Dense(self.num_classes, activation="softmax", dtype="float32")(x)
        model = keras.Model(inputs, outputs, name="mlp")
        optimizer = choose_optimizer(hp, default="sgd", default_learning_rate=0.01)
        return compile_classifier(model, optimizer, self.steps_per_execution)
