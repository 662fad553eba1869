"""A small convolutional network for a folder of pictures, as a ``keras_tuner.HyperModel``.

Data: a folder with one sub-folder of pictures per class, the layout of Keras's
``image_dataset_from_directory``::

    pictures/cats/001.png
    pictures/dogs/001.png
    pictures/owls/001.png

hpsearch passes ``input_shape`` and ``num_classes`` from the pictures it finds (pixels 0-255);
``base_filters`` is a fixed fact of the model family, set with ``--space-arg``. Run it with:

    hpsearch tune examples/pictures_hypermodel.py:PictureClassifier --data pictures/ \
        --space-arg base_filters=8 --run-dir runs/pictures

In plain KerasTuner:

    keras_tuner.Hyperband(PictureClassifier(input_shape=(32, 32, 3), num_classes=3),
                          objective="val_accuracy", max_epochs=10)
"""

import keras
import keras_tuner


class PictureClassifier(keras_tuner.HyperModel):
    def __init__(self, input_shape=(32, 32, 3), num_classes=3, base_filters=16):
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"num_classes must be at least 2, got {num_classes}.")
        self.input_shape = tuple(input_shape)
        self.num_classes = num_classes
        self.base_filters = base_filters

    def build(self, hp):
        filters = self.base_filters * hp.Choice("width", [1, 2])
        layers = [
            keras.Input(self.input_shape),
            keras.layers.Rescaling(1 / 255),
            keras.layers.Conv2D(filters, 3, padding="same", activation="relu"),
            keras.layers.MaxPooling2D(),
        ]
        if hp.Boolean("second_block"):
            layers += [
                keras.layers.Conv2D(2 * filters, 3, padding="same", activation="relu"),
                keras.layers.MaxPooling2D(),
            ]
        layers += [
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dropout(hp.Float("dropout", min_value=0.0, max_value=0.5, step=0.25)),
            keras.layers.Dense(self.num_classes, activation="softmax"),
        ]
        model = keras.Sequential(layers)
        model.compile(
            optimizer=keras.optimizers.Adam(
                learning_rate=hp.Choice("learning_rate", [1e-3, 3e-3, 1e-2])
            ),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
        return model

    def fit(self, hp, model, *args, **kwargs):
        # The tuner passes epochs (Hyperband its own budget): only the batch size is tuned here.
        return model.fit(*args, batch_size=hp.Choice("batch_size", [16, 32]), **kwargs)
