"""Loading Fashion-MNIST and CIFAR-10: hpsearch's readers vs Keras's own loaders, same files.

Keras's ``fashion_mnist.load_data()`` is pointed at a temporary KERAS_HOME holding copies of the
same files; for CIFAR-10, Keras's batch reader (what its ``load_data()`` runs after download) reads
the same batch files. Both sides read identical bytes. Usage:

    HPSEARCH_DATA_DIR=../shared/data:~/.cache/hpsearch python benchmarks/bench_dataset_loading.py
"""

from __future__ import annotations

import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def timed(function, repeats: int = 3) -> float:
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def main() -> None:
    from datasets import cifar10, fashion_mnist
    from datasets.splits import split_classification

    keras_home = Path(tempfile.mkdtemp())
    os.environ["KERAS_HOME"] = str(keras_home)
    import keras

    files, _ = fashion_mnist.locate(download=False)
    target = keras_home / "datasets" / "fashion-mnist"
    target.mkdir(parents=True)
    for path in files.values():
        shutil.copy(path, target / path.name)
    location, _ = cifar10.locate(download=False)

    def keras_cifar10():
        # Keras's load_data() insists on its archive; its per-batch reader is what it runs.
        from keras.src.datasets.cifar import load_batch

        parts = [load_batch(str(location / f"data_batch_{i}")) for i in range(1, 6)]
        test = load_batch(str(location / "test_batch"))
        return np.concatenate([p[0] for p in parts]).transpose(0, 2, 3, 1), test

    for name, ours_raw, theirs in (
        (
            "fashion_mnist",
            lambda: fashion_mnist._read_files.__wrapped__(tuple(sorted(files.items()))),
            keras.datasets.fashion_mnist.load_data,
        ),
        ("cifar10", lambda: cifar10._read.__wrapped__(location.resolve()), keras_cifar10),
    ):
        ours = timed(ours_raw)
        keras_time = timed(theirs)
        raw = ours_raw()
        split = timed(lambda: split_classification(name, raw), repeats=3)
        print(
            f"{name}: hpsearch read {ours:.2f} s, Keras {keras_time:.2f} s "
            f"(x{keras_time / ours:.2f}); split + scale to float32 {split:.2f} s; "
            f"total first load {ours + split:.2f} s; later loads in the process reuse the arrays"
        )
    shutil.rmtree(keras_home)


if __name__ == "__main__":
    main()
