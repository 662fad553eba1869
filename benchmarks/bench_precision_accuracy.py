"""Validation accuracy and epoch time of the MLP and CNN textbook models: float32 vs mixed_bfloat16.

The evidence behind ``--precision auto``: for each space and seed, the same model (the space's
default point), data and epochs are trained under both policies in one process, alternating.
Accuracy must agree within seed noise (the spread of float32 over seeds) before bfloat16 may be
picked automatically; the speed-up depends on the hardware (native bfloat16 on AMX /
AVX512-BF16 CPUs and recent GPUs, emulated elsewhere). Usage:

    HPSEARCH_DATA_DIR=../shared/data python benchmarks/bench_precision_accuracy.py \\
        [--spaces mlp cnn] [--images 10000] [--cnn-images 5000] [--epochs 5] [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import keras_tuner as kt  # noqa: E402

import datasets  # noqa: E402
import search_spaces  # noqa: E402
from search_spaces.precision import precision_policy  # noqa: E402

POLICIES = ("float32", "mixed_bfloat16")


def train(space: str, data, policy: str, seed: int, epochs: int) -> tuple[float, float]:
    """(best validation accuracy, seconds per epoch after the first)."""
    with precision_policy(policy):
        keras.backend.clear_session()
        keras.utils.set_random_seed(seed)
        hypermodel = search_spaces.get(
            space, input_shape=data.input_shape, num_classes=data.num_classes
        )
        hp = kt.HyperParameters()
        model = hypermodel.build(hp)
        times = []

        class Timer(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                self.started = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                times.append(time.perf_counter() - self.started)

        history = hypermodel.fit(
            hp, model, data.x_train, data.y_train, validation_data=(data.x_val, data.y_val),
            epochs=epochs, verbose=0, callbacks=[Timer()],
        )
    return max(history.history["val_accuracy"]), statistics.mean(times[1:] or times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spaces", nargs="+", default=["mlp", "cnn"])
    parser.add_argument("--images", type=int, default=10000)
    parser.add_argument("--cnn-images", type=int, default=5000)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    for space in args.spaces:
        images = args.cnn_images if space == "cnn" else args.images
        data = datasets.load("fashion_mnist", subset=images)
        results = {policy: [] for policy in POLICIES}
        for seed in args.seeds:
            for policy in POLICIES:
                results[policy].append(train(space, data, policy, seed, args.epochs))
        base_time = statistics.median(t for _, t in results["float32"])
        for policy in POLICIES:
            accuracies = [a for a, _ in results[policy]]
            seconds = statistics.median(t for _, t in results[policy])
            print(
                f"{space} {policy:15s} val_accuracy {statistics.mean(accuracies):.4f} "
                f"+- {statistics.stdev(accuracies) if len(accuracies) > 1 else 0:.4f} "
                f"(seeds {', '.join(f'{a:.4f}' for a in accuracies)}), {seconds:.2f} s/epoch "
                f"(x{base_time / seconds:.2f} vs float32); {len(data.x_train)} images, "
                f"{args.epochs} epochs",
                flush=True,
            )


if __name__ == "__main__":
    main()
