"""The CNN family: Geron, Hands-on ML 2nd ed., ch. 14 p. 447.

Conv 64 7x7 -> MaxPool 2 -> 2x Conv 128 3x3 -> MaxPool -> 2x Conv 256 3x3 -> MaxPool -> Flatten ->
Dense 128 -> Dropout .5 -> Dense 64 -> Dropout .5 -> softmax.
"""

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
    compile_classifier,
)
from search_spaces.base import SearchSpace, _require_classes

MAX_BLOCKS = 3
# Widest convolution, the textbook's: doubling 128 stem filters over 3 blocks would reach 1,024
# channels on 3x3 and 1x1 feature maps, 480 M multiply-adds per 28x28 image, 5.4 times the
# textbook's 89 M (capped: 243 M, 2.7 times).
MAX_CHANNELS = 256
TEXTBOOK_DENSE_UNITS = (128, 64)


class CNNHyperModel(SearchSpace):
    """Convolutional network; its default point is the textbook CNN trained with Nadam.

    Optional augmentation (random horizontal flips and shifts of up to 10%, training only), a stem
    convolution (``filters`` filters, ``first_kernel_size``) and max pooling, then ``conv_blocks``
    blocks of two 3x3 convolutions + max pooling, each doubling the filters up to 256 (the
    textbook's widest); a ``readout``
    (flatten, or global average pooling); then ``dense_layers`` (0-2) dense layers, each followed
    by dropout (with none, dropout before the output layer). Tuned as well: activation, kernel
    initializer, optimizer (AdamW with weight decay among them), learning rate and schedule, L1
    and L2 penalties (each none or a factor), batch normalization, batch size.
    """

    name = "cnn"

    def __init__(self, input_shape, num_classes, **kwargs):
        super().__init__(input_shape, _require_classes("cnn", num_classes), **kwargs)

    def build(self, hp: kt.HyperParameters) -> keras.Model:
        filters = hp.Choice("filters", [16, 32, 64, 96, 128], default=64)
        first_kernel_size = hp.Choice("first_kernel_size", [3, 5, 7], default=7)
        # The textbook uses 2 blocks; more than fit the image are pooled down to 1x1 no further.
        conv_blocks = hp.Int("conv_blocks", 1, MAX_BLOCKS, default=2)
        augment = hp.Boolean("augment", default=False)
        # Global average pooling: far fewer weights than flatten + dense, and shift invariance.
        readout = hp.Choice("readout", ["flatten", "global_average"], default="flatten")
        dense_layers = hp.Int("dense_layers", 0, 2, default=2)
        dropout = hp.Float("dropout", 0.0, 0.6, step=0.1, default=0.5)
        activation = choose_activation(hp, default="relu")
        initializer = choose_initializer(hp, default="glorot_uniform")
        # Weight penalties: L1, L2, both or none (with ``dropout`` 0, no regularization at all).
        use_l2 = hp.Boolean("l2", default=False)
        with hp.conditional_scope("l2", [True]):
            l2_factor = hp.Float("l2_factor", 1e-6, 1e-2, sampling="log", default=1e-4)
        use_l1 = hp.Boolean("l1", default=False)
        with hp.conditional_scope("l1", [True]):
            l1_factor = hp.Float("l1_factor", 1e-6, 1e-2, sampling="log", default=1e-5)
        regularizer = (keras.regularizers.L1L2(l1=l1_factor if use_l1 else 0.0,
                                               l2=l2_factor if use_l2 else 0.0)
                       if use_l1 or use_l2 else None)
        batch_norm = hp.Boolean("batch_norm", default=False)
        self._declare_batch_size(hp, default=32)

        def conv(x, channels, kernel_size):
            x = keras.layers.Conv2D(
                channels,
                kernel_size,
                padding="same",
                kernel_initializer=initializer,
                kernel_regularizer=regularizer,
                use_bias=not batch_norm,
            )(x)
            if batch_norm:
                x = keras.layers.BatchNormalization(momentum=BATCH_NORM_MOMENTUM)(x)
            return activation_layer(activation)(x)

        def pool(x):
            # Pool only while the feature map is at least 2x2, so deep variants fit small inputs.
            return keras.layers.MaxPooling2D(2)(x) if min(x.shape[1:3]) >= 2 else x

        inputs = keras.Input(shape=self.input_shape)
        x = inputs
        if augment:
            x = augmentation(x)
        x = pool(conv(x, filters, first_kernel_size))
        for block in range(conv_blocks):
            channels = min(filters * 2 ** (block + 1), MAX_CHANNELS)
            x = pool(conv(conv(x, channels, 3), channels, 3))
        if readout == "global_average":
            x = keras.layers.GlobalAveragePooling2D()(x)
        else:
            x = keras.layers.Flatten()(x)
        dense_units = []
        for index in range(len(TEXTBOOK_DENSE_UNITS)):
            with hp.conditional_scope("dense_layers", list(range(index + 1, 3))):
                dense_units.append(
                    hp.Int(
                        f"dense_units_{index}",
                        16,
                        512,
                        sampling="log",
                        default=TEXTBOOK_DENSE_UNITS[index],
                    )
                )
        for units in dense_units[:dense_layers]:
            x = keras.layers.Dense(
                units, kernel_initializer=initializer, kernel_regularizer=regularizer
            )(x)
            x = activation_layer(activation)(x)
            if dropout:
                x = keras.layers.Dropout(dropout)(x)
        if dropout and not dense_layers:
            x = keras.layers.Dropout(dropout)(x)
        # float32 under a mixed-precision policy too: the loss needs full-precision probabilities.
        outputs = keras.layers.Dense(self.num_classes, activation="softmax", dtype="float32")(x)
        model = keras.Model(inputs, outputs, name="cnn")
        optimizer = choose_optimizer(hp, default="nadam", default_learning_rate=1e-3)
        return compile_classifier(model, optimizer, self.steps_per_execution)
