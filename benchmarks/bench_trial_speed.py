"""One training epoch inside an hpsearch trial against the plain Keras script a student writes.

The student's script (what ``model.fit(x, y, validation_split=0.1)`` costs):

    x = x_train_uint8 / 255.0                     # float64, converted to float32 every batch
    model.compile(optimizer=..., loss=..., metrics=["accuracy"])   # Keras defaults
    model.fit(x, y, validation_split=0.1, batch_size=32, epochs=E)

against the same model (the space's textbook point: same layers, optimizer, batch size 32) built
and trained by the search space as a trial does (float32 arrays, ``steps_per_execution`` 32,
validation on the held-out split every epoch), with and without XLA (``jit_compile``), and in
``mixed_bfloat16`` (``hpsearch+bf16``: what ``--precision auto`` picks on a CPU with AVX512_BF16 or
AMX where its timing finds bfloat16 faster; emulated elsewhere). Variants
run in one process, alternating, each for ``--epochs`` epochs; the first epoch (tracing) and the
mean of the others are reported separately, with the validation accuracy each reached, so the
speed-up is at equal accuracy.

Achieved FLOP/s: multiply-adds counted per layer (Dense: in x out; Conv2D: kh x kw x cin x cout
x output pixels), 2 FLOPs each; a training sample costs 3x its forward pass (forward, gradient
with respect to activations and to weights), a validation sample 1x. The peak is this CPU's
fp32 FMA rate: cores x clock (``cpu MHz`` of /proc/cpuinfo) x 32 FLOP/cycle (two 256-bit FMA
pipes, AVX2), an upper bound no framework reaches. On a GPU (any Keras backend; under JAX every
variant is compiled by XLA, so ``hpsearch+xla`` adds nothing there) it is the data sheet's dense
fp32 rate of the GPUs in ``GPU_PEAKS``, with their TF32 tensor-core rate beside it. Usage:

    HPSEARCH_DATA_DIR=../shared/data python benchmarks/bench_trial_speed.py [--images 12000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import keras_tuner as kt  # noqa: E402
import numpy as np  # noqa: E402

import datasets  # noqa: E402
import search_spaces  # noqa: E402
from search_spaces.precision import precision_policy  # noqa: E402

VARIANTS = ("script", "hpsearch", "hpsearch+xla", "hpsearch+bf16")
FLOP_PER_CYCLE = 32  # fp32, two 256-bit FMA units (AVX2): 2 x 8 lanes x 2 FLOPs


def forward_flops(model: keras.Model) -> int:
    """FLOPs of one sample's forward pass through the Dense and Conv2D layers (2 per multiply-add)."""
    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Dense):
            total += 2 * layer.kernel.shape[0] * layer.kernel.shape[1]
        elif isinstance(layer, keras.layers.Conv2D):
            kh, kw, cin, cout = layer.kernel.shape
            _, h, w, _ = layer.output.shape
            total += 2 * kh * kw * cin * cout * h * w
    return int(total)


# Dense peaks in FLOP/s (NVIDIA data sheets, SXM boards): fp32 on CUDA cores, TF32 on tensor cores.
GPU_PEAKS = {"H100": (67e12, 495e12), "H200": (67e12, 495e12), "A100": (19.5e12, 156e12)}


def device_and_peak() -> tuple[str, float]:
    """A line describing where training runs, and that device's fp32 peak in FLOP/s."""
    from search_spaces.devices import visible_gpus

    gpus = visible_gpus()
    if not gpus:
        peak = peak_flops()
        return (f"CPU: {os.cpu_count()} cores, peak fp32 {peak / 1e9:.0f} GFLOP/s "
                f"({FLOP_PER_CYCLE} FLOP/cycle/core)"), peak
    gpu = gpus[0]
    fp32, tf32 = next((peaks for name, peaks in GPU_PEAKS.items() if name in gpu.name), (0.0, 0.0))
    peaks = (f"peak fp32 {fp32 / 1e12:.1f} TFLOP/s, TF32 tensor cores {tf32 / 1e12:.0f} TFLOP/s"
             if fp32 else "peak not known for this GPU")
    return f"GPU: {gpu.name} (Keras backend {keras.backend.backend()}), {peaks}", fp32


def peak_flops() -> float:
    mhz = 0.0
    with open("/proc/cpuinfo") as handle:
        for line in handle:
            if line.startswith("cpu MHz"):
                mhz = float(line.split(":")[1])
                break
    return (os.cpu_count() or 1) * mhz * 1e6 * FLOP_PER_CYCLE


class EpochTimes(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self._started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._started)


def run_variant(variant: str, space: str, data, raw_x: np.ndarray, raw_y: np.ndarray, epochs: int):
    """(first epoch s, later epochs mean s, final val accuracy, forward FLOPs per sample)."""
    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    timer = EpochTimes()
    # The same model (the space's textbook point) for every variant; only the training differs.
    hypermodel = search_spaces.get(space, input_shape=data.input_shape, num_classes=data.num_classes)
    hp = kt.HyperParameters()
    model = hypermodel.build(hp)
    if variant == "script":
        # What the student writes: Keras's compile defaults (one step per call).
        model.compile(
            optimizer=model.optimizer.__class__.from_config(model.optimizer.get_config()),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
        history = model.fit(
            raw_x / 255.0,
            raw_y,
            validation_split=0.1,
            batch_size=32,
            epochs=epochs,
            verbose=0,
            callbacks=[timer],
        )
    else:
        if variant == "hpsearch+xla":
            model.compile(
                optimizer=model.optimizer,
                loss="sparse_categorical_crossentropy",
                metrics=["accuracy"],
                steps_per_execution=hypermodel.steps_per_execution,
                jit_compile=True,
            )
        history = hypermodel.fit(
            hp,
            model,
            data.x_train,
            data.y_train,
            validation_data=(data.x_val, data.y_val),
            epochs=epochs,
            verbose=0,
            callbacks=[timer],
        )
    later = timer.seconds[1:] or timer.seconds
    return (
        timer.seconds[0],
        statistics.mean(later),
        float(history.history["val_accuracy"][-1]),
        forward_flops(model),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spaces", nargs="+", default=["mlp", "cnn"])
    parser.add_argument("--images", type=int, default=12000, help="training + validation images")
    parser.add_argument("--cnn-images", type=int, default=6000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    args = parser.parse_args()
    device, peak = device_and_peak()
    print(device)
    for space in args.spaces:
        images = args.cnn_images if space == "cnn" else args.images
        data = datasets.load("fashion_mnist", subset=round(images * 0.9))
        # The student's arrays: the same images, uint8, training part first (validation_split
        # takes the last 10%).
        raw_x = np.round(np.concatenate([data.x_train, data.x_val]) * 255).astype(np.uint8)
        raw_y = np.concatenate([data.y_train, data.y_val])
        results = {variant: [] for variant in args.variants}
        for _ in range(args.repeats):
            for variant in args.variants:
                with precision_policy("mixed_bfloat16" if variant.endswith("bf16") else "float32"):
                    results[variant].append(
                        run_variant(variant, space, data, raw_x, raw_y, args.epochs)
                    )
        base = statistics.median(r[1] for r in results[args.variants[0]])
        for variant in args.variants:
            first = statistics.median(r[0] for r in results[variant])
            later = statistics.median(r[1] for r in results[variant])
            accuracy = statistics.median(r[2] for r in results[variant])
            flops = results[variant][0][3]
            per_epoch = flops * (3 * len(data.x_train) + len(data.x_val))
            print(
                f"{space:4s} {variant:13s} first epoch {first:6.2f} s, then {later:6.2f} s/epoch "
                f"(x{base / later:.2f} vs {args.variants[0]}), val_accuracy {accuracy:.4f}, "
                f"{per_epoch / later / 1e9:6.1f} GFLOP/s = "
                f"{100 * per_epoch / later / peak if peak else float('nan'):.1f}% "
                f"of peak ({flops / 1e6:.2f} MFLOP/sample forward)"
            )


if __name__ == "__main__":
    main()
