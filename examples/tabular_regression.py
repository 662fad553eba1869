"""A regression network over a table of numeric features, as a plain KerasTuner ``build_model(hp)``.

Data: a ``.csv`` (or ``.parquet``) file with ``NUM_FEATURES`` numeric feature columns and one
numeric target column, for example::

    rooms,area,age,distance,price
    3,72.5,14,2.1,251000
    ...

The feature columns are every column except the target, named with ``--target``; their names do
not matter, their number must be ``NUM_FEATURES``. The features are used as they are (no
normalisation layer), so give them similar scales. The model is compiled with
``metrics=["mae"]``, so hpsearch minimises ``val_mae``. Run it with:

    hpsearch tune examples/tabular_regression.py:build_model --data houses.csv --target price \
        --run-dir runs/houses
"""

import keras

NUM_FEATURES = 4


def build_model(hp):
    model = keras.Sequential([keras.Input((NUM_FEATURES,))])
    for layer in range(hp.Int("layers", min_value=1, max_value=2)):
        model.add(
            keras.layers.Dense(
                hp.Int(f"units_{layer}", min_value=8, max_value=64, step=8), activation="relu"
            )
        )
    model.add(keras.layers.Dense(1))
    model.compile(
        optimizer=keras.optimizers.Adam(
            learning_rate=hp.Float("learning_rate", min_value=1e-3, max_value=3e-2, sampling="log")
        ),
        loss="mse",
        metrics=["mae"],
    )
    return model
