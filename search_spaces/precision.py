"""Keras dtype policies for training: float32, mixed bfloat16 / float16, or ``auto``.

``auto`` picks ``mixed_bfloat16`` where the hardware that trains computes bfloat16 natively and
faster: the visible GPUs, all of compute capability 8.0 or later, as the NVIDIA driver reports
them; without a GPU, a CPU with AMX or AVX512-BF16 (read from /proc/cpuinfo) on which a short
timing of training steps in both policies (``measure_bfloat16_speedup``: a convolution and a dense
layer, forward and backward, a few seconds once per machine, kept in the cache folder) shows
bfloat16 at least ``MIN_BFLOAT16_SPEEDUP`` times faster. ``float32`` elsewhere: on CPUs without
those instructions bfloat16 is emulated and gains little, and the flags alone do not promise a
gain (an Intel Xeon with AVX512-BF16 but no AMX trained the textbook CNN 1.3x slower in bfloat16,
BENCHMARKS.md).
Every space keeps its output layers in float32, so losses and metrics keep full precision.

``keras.backend.clear_session()``, which KerasTuner calls before every trial's build, resets Keras's
global policy to float32; a ``precision_policy`` block is therefore remembered here and set again
by ``reapply_policy()``, which every ``SearchSpace.build`` calls first.
"""

from __future__ import annotations

import contextlib
import functools
import json
import platform
import time
from pathlib import Path
from typing import Iterator

PRECISIONS = ("auto", "float32", "mixed_bfloat16", "mixed_float16")
# CPU flags (Linux /proc/cpuinfo names) of native bfloat16 arithmetic.
BFLOAT16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")
# ``auto`` takes bfloat16 on a CPU only when its training steps are at least this much faster.
MIN_BFLOAT16_SPEEDUP = 1.1
PROBE_FILE = "precision-probe.json"  # in the cache folder (datasets.sources.default_cache_root)
# Resolved policies of the open precision_policy blocks, innermost last.
_ACTIVE: list[str] = []


def resolve_precision(precision: str) -> str:
    """The Keras dtype policy that ``precision`` means on this machine (``auto`` resolved).

    Raises:
        ValueError: an unknown name.
    """
    if precision not in PRECISIONS:
        raise ValueError(
            f"Unknown precision {precision!r}. Expected one of: {', '.join(PRECISIONS)}."
        )
    if precision != "auto":
        return precision
    return "mixed_bfloat16" if _native_bfloat16() else "float32"


def describe_precision(precision: str, resolved: str | None = None) -> str:
    """The policy ``precision`` resolves to, and for ``auto`` why, e.g. ``"float32 (auto: bfloat16
    timed x0.66 against float32 on this CPU, x1.1 needed)"``. Given ``resolved`` (what a search
    recorded), nothing is resolved or timed again, and no deep-learning framework is imported."""
    if precision != "auto":
        return resolved or resolve_precision(precision)
    native, why = _auto_decision(measure=resolved is None)
    if resolved is None:
        resolved = "mixed_bfloat16" if native else "float32"
    return f"{resolved} (auto: {why})"


@functools.lru_cache(maxsize=1)
def _native_bfloat16() -> bool:
    return _auto_decision()[0]


def _auto_decision(measure: bool = True) -> tuple[bool, str]:
    """Whether ``auto`` trains in bfloat16 on this machine, and why in a few words. With
    ``measure`` False a CPU that was never timed is not timed now (the answer is then False)."""
    from search_spaces.devices import visible_gpus

    gpus = visible_gpus()
    if gpus:  # training runs on the GPU: its arithmetic decides
        if all(gpu.has_bfloat16 for gpu in gpus):
            return True, "every visible GPU computes bfloat16"
        return False, "a visible GPU has no bfloat16 units"
    if not _cpu_flags() & set(BFLOAT16_CPU_FLAGS):
        return False, "this CPU has neither AMX nor AVX512-BF16"
    speedup = cpu_bfloat16_speedup(measure=measure)
    if speedup is None:
        return False, "bfloat16 not yet timed against float32 on this CPU"
    return speedup >= MIN_BFLOAT16_SPEEDUP, (
        f"bfloat16 timed x{speedup:.2f} against float32 on this CPU, "
        f"x{MIN_BFLOAT16_SPEEDUP:g} needed")


def _cpu_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> set[str]:
    return set(_cpuinfo_field("flags", cpuinfo).split())


def _cpuinfo_field(name: str, cpuinfo: str | Path = "/proc/cpuinfo") -> str:
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return ""
    for line in text.splitlines():
        if line.partition(":")[0].strip() == name:
            return line.partition(":")[2].strip()
    return ""


def cpu_bfloat16_speedup(cache_dir: str | Path | None = None, measure: bool = True) -> float | None:
    """How many times faster training steps run in ``mixed_bfloat16`` than in ``float32`` on this
    CPU: measured once by ``measure_bfloat16_speedup`` and kept in ``PROBE_FILE`` under the cache
    folder, one entry per CPU model, flags and Keras backend and version. With ``measure`` False,
    None when nothing is kept yet (and no framework is imported)."""
    from importlib.metadata import version

    from datasets.sources import default_cache_root
    from search_spaces.devices import keras_backend

    path = default_cache_root(cache_dir) / PROBE_FILE
    key = " | ".join((_cpuinfo_field("model name") or platform.processor() or "unknown CPU",
                      " ".join(sorted(_cpu_flags() & set(BFLOAT16_CPU_FLAGS))),
                      f"keras {version('keras')} on {keras_backend()}"))
    try:
        known = json.loads(path.read_text())
        if not isinstance(known, dict):
            known = {}
    except (OSError, ValueError):
        known = {}
    entry = known.get(key)
    if isinstance(entry, dict) and isinstance(entry.get("speedup"), (int, float)):
        return float(entry["speedup"])
    if not measure:
        return None
    speedup = measure_bfloat16_speedup()
    known[key] = {"speedup": round(speedup, 3), "measured": time.strftime("%Y-%m-%d %H:%M:%S")}
    try:  # a cache that cannot be written or is read half-written costs a new measurement
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(known, indent=1, sort_keys=True) + "\n")
    except OSError:
        pass
    return speedup


def measure_bfloat16_speedup(steps: int = 4, rounds: int = 3) -> float:
    """float32 seconds over mixed_bfloat16 seconds for the same training steps of a small model
    (a 3x3 convolution of 64 channels on 28x28 maps, as in the CNN spaces' first blocks, then a
    1024-unit dense layer, as in wide MLPs; batch 64), the faster of ``rounds`` alternating runs
    of ``steps`` steps each. Keras's global policy is left as it was."""
    import keras
    import numpy as np

    previous = keras.mixed_precision.global_policy()
    x = np.random.default_rng(0).normal(size=(64, 28, 28, 64)).astype("float32")
    y = np.zeros((64,), "int64")
    models = {}
    try:
        for name in ("float32", "mixed_bfloat16"):
            keras.mixed_precision.set_global_policy(name)
            inputs = keras.Input(x.shape[1:])
            h = keras.layers.Conv2D(64, 3, padding="same", activation="relu")(inputs)
            h = keras.layers.Dense(1024, activation="relu")(keras.layers.GlobalAveragePooling2D()(h))
            outputs = keras.layers.Dense(10, dtype="float32")(h)
            model = keras.Model(inputs, outputs)
            model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                          jit_compile=False)
            model.train_on_batch(x, y)  # traced here, not timed
            models[name] = model
    finally:
        keras.mixed_precision.set_global_policy(previous)
    best = dict.fromkeys(models, float("inf"))
    for _ in range(rounds):
        for name, model in models.items():
            started = time.perf_counter()
            for _ in range(steps):
                model.train_on_batch(x, y)
            best[name] = min(best[name], time.perf_counter() - started)
    return best["float32"] / best["mixed_bfloat16"]


@contextlib.contextmanager
def precision_policy(precision: str) -> Iterator[str]:
    """Train under ``precision`` inside the block (Keras's global policy), restoring the old one.

    Yields:
        The resolved policy name, e.g. ``"float32"`` for ``auto`` on a CPU without bfloat16.
    """
    import keras

    resolved = resolve_precision(precision)
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(resolved)
    _ACTIVE.append(resolved)
    try:
        yield resolved
    finally:
        _ACTIVE.pop()
        keras.mixed_precision.set_global_policy(previous)


def active_precision() -> str | None:
    """The policy of the innermost open ``precision_policy`` block, or None outside any."""
    return _ACTIVE[-1] if _ACTIVE else None


def reapply_policy() -> None:
    """Set the innermost open block's policy again if something (``clear_session``) reset it.

    Outside any block this does nothing: a policy the caller set with Keras directly is theirs.
    """
    if not _ACTIVE:
        return
    import keras

    if keras.mixed_precision.global_policy().name != _ACTIVE[-1]:
        keras.mixed_precision.set_global_policy(_ACTIVE[-1])
