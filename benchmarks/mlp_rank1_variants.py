"""One top configuration with the usual tricks added: does any of them lift its test accuracy?

Trains a ``top_configs/rank_*.yaml`` configuration of the MLP space as it is and with variants
that are not in the space: input dropout, label smoothing, other layer widths; each on the
54,000 training images with the 6,000 validation images watched, for a fixed number of epochs
(the configuration's schedule runs over them), then evaluated once on the 10,000 test images
with its last weights. One seed per variant: this tells whether a trick is worth a search, not
its exact size. Usage:

    python benchmarks/mlp_rank1_variants.py RUN/top_configs/rank_1.yaml --epochs 40 \\
        as_is input_dropout=0.2 label_smoothing=0.1 units_0=1024,units_1=512,units_2=256

Each variant is ``as_is`` or comma-separated NAME=VALUE pairs: ``input_dropout`` (a Dropout on
the input), ``label_smoothing`` (categorical cross-entropy with smoothed targets), ``mixup`` (each
training batch mixed with a shuffled copy of itself, images and one-hot labels alike, by weights
drawn from Beta(alpha, alpha); the value is alpha), ``distill`` (first trains that many teachers,
the configuration as it is with other seeds, and then the variant on their averaged probabilities
for the training images instead of the labels: distillation of an ensemble into one model of the
same size), ``flip`` (1: random horizontal flips of the training images), ``tta`` (1: the test
images read twice, as they are and flipped, and the two probabilities averaged; reported beside
the plain test accuracy), ``shift`` (random shifts of the training images by whole pixels, up to
this fraction of their height and width each way: the space's ``RandomShift``, e.g. 0.07 for 2
pixels of 28), ``ema`` (the optimizer keeps an exponential moving average of the
weights with this momentum, e.g. 0.999, and the model ends with the averaged weights) or any of
the configuration's hyperparameters.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import keras  # noqa: E402
import keras_tuner as kt  # noqa: E402
import numpy as np  # noqa: E402
import yaml  # noqa: E402

import datasets  # noqa: E402
from search_spaces._layers import RandomShift, schedule_callbacks  # noqa: E402
from search_spaces.mlp import MLPHyperModel  # noqa: E402

TRICKS = ("input_dropout", "label_smoothing", "mixup", "distill", "flip", "shift", "tta", "ema")


def parse_variant(text: str, values: dict) -> tuple[dict, dict]:
    """(hyperparameter values, tricks) of one variant given as ``as_is`` or NAME=VALUE,..."""
    values, tricks = dict(values), dict.fromkeys(TRICKS, 0.0)
    for pair in text.split(","):
        if pair == "as_is":
            continue
        name, _, raw = pair.partition("=")
        if name in TRICKS:
            tricks[name] = float(raw)
        elif name in values or name.startswith("units_"):
            old = values.get(name)
            values[name] = type(old)(raw) if old is not None else int(raw)
        else:
            raise SystemExit(f"Unknown variant setting {name!r}: expected one of {TRICKS} or a "
                             f"hyperparameter of the configuration ({', '.join(values)}).")
    return values, tricks


def mixup_batches(x: np.ndarray, y: np.ndarray, batch_size: int, alpha: float, seed: int):
    """Shuffled training batches, each mixed with a permutation of itself (mixup, Zhang et al. 2018)."""
    import tensorflow as tf

    def mix(images, labels):
        size = tf.shape(images)[0]
        first = tf.random.gamma([size], alpha, seed=seed)
        weight = first / (first + tf.random.gamma([size], alpha, seed=seed + 1))
        partner = tf.random.shuffle(tf.range(size), seed=seed)
        w = tf.reshape(weight, [-1] + [1] * (len(images.shape) - 1))
        images = w * images + (1 - w) * tf.gather(images, partner)
        w = tf.reshape(weight, [-1, 1])
        return images, w * labels + (1 - w) * tf.gather(labels, partner)

    batches = tf.data.Dataset.from_tensor_slices((x, y.astype("float32"))).shuffle(len(x), seed=seed)
    return batches.batch(batch_size).map(mix, num_parallel_calls=tf.data.AUTOTUNE).prefetch(2)


def train_variant(values: dict, tricks: dict, data, epochs: int, seed: int = 0) -> dict:
    targets = None
    if tricks["distill"]:
        teachers = [train_variant(values, dict.fromkeys(TRICKS, 0.0), data, epochs, seed + 1 + k)
                    for k in range(int(tricks["distill"]))]
        targets = np.mean([t["train_probabilities"] for t in teachers], axis=0)
        ensemble = np.mean([t["test_probabilities"] for t in teachers], axis=0)
        scores = ", ".join(f"{teacher['test_last']:.4f}" for teacher in teachers)
        print(f"  teachers: test {scores}; ensembled {np.mean(ensemble.argmax(1) == data.y_test):.4f}",
              flush=True)
    keras.utils.set_random_seed(seed)
    hp = kt.HyperParameters()
    for name, value in values.items():
        hp.Fixed(name, value)
    space = MLPHyperModel(data.x_train.shape[1:], data.num_classes)
    core = space.build(hp)
    inputs = keras.Input(data.x_train.shape[1:])
    x = keras.layers.Dropout(tricks["input_dropout"])(inputs) if tricks["input_dropout"] else inputs
    x = keras.layers.RandomFlip("horizontal", seed=seed)(x) if tricks["flip"] else x
    x = RandomShift(tricks["shift"], seed=seed)(x) if tricks["shift"] else x
    model = keras.Model(inputs, core(x))
    if tricks["ema"]:  # Keras averages the weights during fit and swaps them in at its end
        core.optimizer.use_ema, core.optimizer.ema_momentum = True, tricks["ema"]
    model.compile(optimizer=core.optimizer,
                  loss=keras.losses.CategoricalCrossentropy(label_smoothing=tricks["label_smoothing"]),
                  metrics=["accuracy"], steps_per_execution=space.steps_per_execution)
    one_hot = [keras.utils.to_categorical(y, data.num_classes)
               for y in (data.y_train, data.y_val, data.y_test)]
    if targets is not None:
        one_hot[0] = targets.astype("float32")
    started = time.perf_counter()
    if tricks["mixup"]:
        batches = mixup_batches(data.x_train, one_hot[0], hp.get("batch_size"), tricks["mixup"], seed)
        history = model.fit(batches, epochs=epochs, verbose=0, validation_data=(data.x_val, one_hot[1]),
                            callbacks=schedule_callbacks(hp, epochs)).history
    else:
        history = space.fit(hp, model, data.x_train, one_hot[0], epochs=epochs, verbose=0,
                            validation_data=(data.x_val, one_hot[1])).history
    test = model.evaluate(data.x_test, one_hot[2], verbose=0)[1]
    test_probabilities = model.predict(data.x_test, batch_size=1024, verbose=0)
    test_tta = None
    if tricks["tta"]:
        flipped = model.predict(np.flip(data.x_test, axis=2), batch_size=1024, verbose=0)
        test_tta = float(np.mean((test_probabilities + flipped).argmax(1) == data.y_test))
    return {"val_last": history["val_accuracy"][-1], "val_best": max(history["val_accuracy"]),
            "best_epoch": int(np.argmax(history["val_accuracy"])) + 1,
            "train_last": history["accuracy"][-1], "test_last": float(test), "test_tta": test_tta,
            "seconds": time.perf_counter() - started, "params": model.count_params(),
            "train_probabilities": model.predict(data.x_train, batch_size=1024, verbose=0),
            "test_probabilities": test_probabilities}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", help="a top_configs/rank_*.yaml of the MLP space")
    parser.add_argument("variants", nargs="+", help="as_is or NAME=VALUE,... (see above)")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    config = yaml.safe_load(Path(args.config).read_text())
    if config.get("search_space") != "mlp":
        raise SystemExit(f"Expected a configuration of the mlp space, got {config.get('search_space')!r}.")
    data = datasets.load(config.get("dataset", "fashion_mnist"), seed=0)
    for text in args.variants:
        values, tricks = parse_variant(text, config["hyperparameters"])
        result = train_variant(values, tricks, data, args.epochs, args.seed)
        print(f"{text}: validation {result['val_last']:.4f} last, {result['val_best']:.4f} best "
              f"(epoch {result['best_epoch']}); training {result['train_last']:.4f}; test "
              f"{result['test_last']:.4f}"
              + (f" ({result['test_tta']:.4f} with flip TTA)" if result["test_tta"] is not None else "")
              + f"; {result['params']:,} parameters, "
              f"{result['seconds']:.0f} s", flush=True)


if __name__ == "__main__":
    main()
