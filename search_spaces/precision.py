"""Keras dtype policies for training: float32, mixed bfloat16 / float16, or ``auto``.

``auto`` picks ``mixed_bfloat16`` where the hardware that trains computes bfloat16 natively (the
visible GPUs, all of compute capability 8.0 or later, as the NVIDIA driver reports them; without
a GPU, a CPU with AMX or AVX512-BF16, read from /proc/cpuinfo) and ``float32`` elsewhere: on CPUs
without those instructions bfloat16 is emulated and gains little.
Every space keeps its output layers in float32, so losses and metrics keep full precision.
"""

from __future__ import annotations

import contextlib
import functools
from pathlib import Path
from typing import Iterator

PRECISIONS = ("auto", "float32", "mixed_bfloat16", "mixed_float16")
# CPU flags (Linux /proc/cpuinfo names) of native bfloat16 arithmetic.
BFLOAT16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


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


@functools.lru_cache(maxsize=1)
def _native_bfloat16() -> bool:
    from search_spaces.devices import visible_gpus

    gpus = visible_gpus()
    if gpus:  # training runs on the GPU: its arithmetic decides
        return all(gpu.has_bfloat16 for gpu in gpus)
    return bool(_cpu_flags() & set(BFLOAT16_CPU_FLAGS))


def _cpu_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> set[str]:
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.partition(":")[2].split())
    return set()


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
    try:
        yield resolved
    finally:
        keras.mixed_precision.set_global_policy(previous)
