"""A Dense network over 28x28 grayscale pictures, as a plain KerasTuner ``build_model(hp)``.

Data: an ``.npz`` file holding ``x_train`` (uint8 pixels, shape ``(N, 28, 28)``) and ``y_train``
(class numbers 0-9, e.g. Fashion-MNIST's); ``x_val``/``y_val`` and ``x_test``/``y_test`` are
optional. The model rescales the pixels itself.

Run it with:

    hpsearch tune examples/fashion_function.py:build_model --data fashion.npz --run-dir runs/fashion

It is ordinary KerasTuner code, so this works too:

    keras_tuner.RandomSearch(build_model, objective="val_accuracy", max_trials=10)
"""

import keras

NUM_CLASSES = 10


def build_model(hp):
    model = keras.Sequential(
        [
            keras.Input((28, 28)),
            keras.layers.Rescaling(1 / 255),
            keras.layers.Flatten(),
            keras.layers.Dense(
                hp.Int("units", min_value=16, max_value=128, step=16),
                activation=hp.Choice("activation", ["relu", "tanh"]),
            ),
            keras.layers.Dense(NUM_CLASSES, activation="softmax"),
        ]
    )
    learning_rate = hp.Float("learning_rate", min_value=1e-4, max_value=1e-2, sampling="log")
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model
