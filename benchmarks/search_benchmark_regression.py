"""The search benchmark's user-style space: a small regression network, as a plain
KerasTuner ``build_model(hp)`` that someone brings with their own table of numbers.

Data: ``benchmarks/search_benchmark.py`` writes Friedman's regression problem #1
(``sklearn.datasets.make_friedman1``: 10 features in [0, 1], 5 of them informative, with noise) to
an ``.npz``; the model is compiled with ``metrics=["mse"]``, so a search minimises ``val_mse``.

    hpsearch tune benchmarks/search_benchmark_regression.py:build_model --data friedman1.npz
"""

import keras

MAX_LAYERS = 3


def build_model(hp):
    num_layers = hp.Int("num_layers", 1, MAX_LAYERS, default=2)
    activation = hp.Choice("activation", ["relu", "tanh", "elu", "swish"], default="relu")
    use_dropout = hp.Boolean("use_dropout", default=False)
    with hp.conditional_scope("use_dropout", [True]):
        dropout = hp.Float("dropout", 0.05, 0.5, default=0.1)
    l2 = hp.Float("l2", 1e-7, 1e-2, sampling="log", default=1e-5)

    model = keras.Sequential([keras.Input((10,))])
    for index in range(MAX_LAYERS):
        with hp.conditional_scope("num_layers", list(range(index + 1, MAX_LAYERS + 1))):
            units = hp.Int(f"units_{index}", 8, 256, sampling="log", default=64)
        if index < num_layers:
            model.add(keras.layers.Dense(units, activation=activation,
                                         kernel_regularizer=keras.regularizers.L2(l2)))
            if use_dropout:
                model.add(keras.layers.Dropout(dropout))
    model.add(keras.layers.Dense(1))

    optimizer_name = hp.Choice("optimizer", ["adam", "sgd"], default="adam")
    learning_rate = hp.Float("learning_rate", 1e-4, 1e-1, sampling="log", default=1e-3)
    with hp.conditional_scope("optimizer", ["sgd"]):
        momentum = hp.Float("momentum", 0.0, 0.95, default=0.9)
    if optimizer_name == "sgd":
        optimizer = keras.optimizers.SGD(learning_rate=learning_rate, momentum=momentum)
    else:
        optimizer = keras.optimizers.Adam(learning_rate=learning_rate)
    model.compile(optimizer=optimizer, loss="mse", metrics=["mse"])
    return model
