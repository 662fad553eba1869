"""Every optimizer of the spaces trains with the values Bayesian optimization proposes."""

from __future__ import annotations

import keras
import keras_tuner as kt
import numpy as np
import pytest

from search_spaces._layers import OPTIMIZERS, choose_optimizer


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_numpy_float64_hyperparameters_train_a_step(name):
    # KerasTuner's Bayesian oracle hands out numpy float64 values (Nadam then failed its first
    # step: "Input 'y' of 'Mul' Op has type float32 that does not match type float64").
    hp = kt.HyperParameters()
    choose_optimizer(hp, default=name, default_learning_rate=1e-3)  # declares the space
    values = {"optimizer": name, "learning_rate": np.float64(2.2e-4), "momentum": np.float64(0.5),
              "beta_1": np.float64(0.93), "rho": np.float64(0.9),
              "weight_decay": np.float64(1e-2)}
    for key, value in values.items():
        if key in hp.values:
            hp.values[key] = value
    assert isinstance(hp.get("learning_rate"), np.float64)
    optimizer = choose_optimizer(hp, default=name, default_learning_rate=1e-3)

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    model.compile(optimizer=optimizer, loss="mse")
    before = model.layers[0].kernel.numpy().copy()
    model.fit(np.ones((8, 4), "float32"), np.zeros((8, 2), "float32"), epochs=1, verbose=0)
    assert not np.allclose(model.layers[0].kernel.numpy(), before)
    assert float(keras.ops.convert_to_numpy(optimizer.learning_rate)) == pytest.approx(2.2e-4)
