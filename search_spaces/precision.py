"""Keras dtype policies for training: float32, mixed bfloat16 / float16, or ``auto``.

``auto`` picks ``mixed_bfloat16`` where the hardware that trains computes bfloat16 natively (the
visible GPUs, all of compute capability 8.0 or later, as the NVIDIA driver reports them; without
a GPU, a CPU with AMX or AVX512-BF16, read from /proc/cpuinfo) and ``float32`` elsewhere: on CPUs
without those instructions bfloat16 is emulated and gains little.
Every space keeps its output layers in float32, so losses and metrics keep full precision.

``keras.backend.clear_session()``, which KerasTuner calls before every trial's build, resets Keras's
global policy to float32; a ``precision_policy`` block is therefore remembered here and set again
by ``reapply_policy()``, which every ``SearchSpace.build`` calls first.
"""

from __future__ import annotations

import contextlib
import functools
from pathlib import Path
from typing import Iterator

PRECISIONS = ("auto", "float32", "mixed_bfloat16", "mixed_float16")
# CPU flags (Linux /proc/cpuinfo names) of native bfloat16 arithmetic.
BFLOAT16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")
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
