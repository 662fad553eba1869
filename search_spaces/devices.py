"""The machine's GPUs and the Keras backend, found without importing a deep-learning framework.

Importing TensorFlow only to count GPUs costs seconds of CPU in every process that asks (the
``--workers`` launcher, ``--precision auto``), and a JAX or PyTorch install has no TensorFlow
at all. The NVIDIA driver answers the same questions: ``nvidia-smi`` lists the GPUs with their
compute capability, and ``CUDA_VISIBLE_DEVICES`` narrows them the way every framework reads it.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import shutil
import subprocess
import sys


@dataclasses.dataclass(frozen=True)
class Gpu:
    """One NVIDIA GPU as the driver lists it."""

    index: int  # the driver's index, one of the names CUDA_VISIBLE_DEVICES takes
    uuid: str  # "GPU-...", the other
    name: str
    compute_capability: tuple[int, int] | None  # (9, 0) for an H100; None where not reported

    @property
    def has_bfloat16(self) -> bool:
        """Native bfloat16 arithmetic: compute capability 8.0 (Ampere) or later."""
        return self.compute_capability is not None and self.compute_capability >= (8, 0)


def visible_gpus() -> list[Gpu]:
    """The GPUs this process may use: the driver's list, narrowed by ``CUDA_VISIBLE_DEVICES``.

    Empty where there is no NVIDIA driver, and where ``CUDA_VISIBLE_DEVICES`` is empty or ``-1``.
    """
    return _narrow(_driver_gpus(), os.environ.get("CUDA_VISIBLE_DEVICES"))


def keras_backend() -> str:
    """The Keras backend processes started from here will use ("tensorflow", "jax", "torch").

    Read the way Keras reads it (``KERAS_BACKEND``, else ``~/.keras/keras.json``) when Keras is
    not imported yet, so that a launcher learns it without importing the backend.
    """
    if "keras" in sys.modules:
        return sys.modules["keras"].backend.backend()
    if os.environ.get("KERAS_BACKEND"):
        return os.environ["KERAS_BACKEND"]
    config = os.path.join(os.environ.get("KERAS_HOME", os.path.expanduser("~/.keras")), "keras.json")
    try:
        with open(config) as file:
            return json.load(file).get("backend", "tensorflow")
    except (OSError, ValueError):
        return "tensorflow"


def shared_gpu_env(backend: str) -> dict[str, str]:
    """Environment that lets several processes train on one GPU: memory taken as needed.

    TensorFlow and JAX each take most of a GPU's memory when they start, so a second process on
    the same GPU would fail to allocate; these variables make them grow into it instead.
    """
    if backend == "jax":
        return {"XLA_PYTHON_CLIENT_PREALLOCATE": "false"}
    if backend == "tensorflow":
        return {"TF_FORCE_GPU_ALLOW_GROWTH": "true"}
    return {}


QUERY = "index,uuid,name,compute_cap"


def parse_nvidia_smi(text: str) -> list[Gpu]:
    """Rows of ``nvidia-smi --query-gpu=index,uuid,name,compute_cap --format=csv,noheader``."""
    gpus = []
    for line in text.splitlines():
        fields = [field.strip() for field in line.split(",")]
        if len(fields) < 4 or not fields[0].isdigit():
            continue
        major, _, minor = fields[-1].partition(".")
        capability = (int(major), int(minor)) if major.isdigit() and minor.isdigit() else None
        gpus.append(Gpu(int(fields[0]), fields[1], ", ".join(fields[2:-1]), capability))
    return gpus


@functools.lru_cache(maxsize=1)
def _driver_gpus() -> list[Gpu]:
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return []
    try:
        answer = subprocess.run(
            [smi, f"--query-gpu={QUERY}", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return []
    return parse_nvidia_smi(answer.stdout) if answer.returncode == 0 else []


def _narrow(gpus: list[Gpu], visible: str | None) -> list[Gpu]:
    if visible is None:
        return list(gpus)
    chosen = []
    for entry in visible.split(","):
        entry = entry.strip()
        # CUDA takes indices or (prefixes of) UUIDs and stops at the first entry it cannot match.
        match = [gpu for gpu in gpus if _names(entry, gpu)]
        if len(match) != 1 or match[0] in chosen:
            break
        chosen.append(match[0])
    return chosen


def _names(entry: str, gpu: Gpu) -> bool:
    if entry.isdigit():
        return int(entry) == gpu.index
    return bool(entry) and gpu.uuid.startswith(entry)
