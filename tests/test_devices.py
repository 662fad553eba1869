"""GPU discovery from the NVIDIA driver, precision ``auto`` and the workers' device environment."""

import json
import os
import stat
import sys

import pytest

from search_spaces import devices, precision
from search_spaces.devices import Gpu, parse_nvidia_smi
from tuner.parallel import worker_device_env

SMI_ROWS = (
    "0, GPU-aaaa1111-0000, NVIDIA H100 80GB HBM3, 9.0\n"
    "1, GPU-bbbb2222-0000, Tesla T4, 7.5\n"
)


@pytest.fixture
def fake_smi(tmp_path, monkeypatch):
    """An ``nvidia-smi`` on PATH that prints ``rows`` (set by the test) for the GPU query."""
    script = tmp_path / "bin" / "nvidia-smi"
    script.parent.mkdir()

    def install(rows: str, exit_code: int = 0):
        (tmp_path / "rows.txt").write_text(rows)
        script.write_text(f"#!/bin/sh\ncat '{tmp_path / 'rows.txt'}'\nexit {exit_code}\n")
        script.chmod(script.stat().st_mode | stat.S_IXUSR)
        monkeypatch.setenv("PATH", f"{script.parent}{os.pathsep}{os.environ['PATH']}")
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
        devices._driver_gpus.cache_clear()
        precision._native_bfloat16.cache_clear()

    yield install
    devices._driver_gpus.cache_clear()
    precision._native_bfloat16.cache_clear()


def test_nvidia_smi_rows_are_parsed():
    gpus = parse_nvidia_smi(SMI_ROWS + "No devices were found\n\n")
    assert gpus == [Gpu(0, "GPU-aaaa1111-0000", "NVIDIA H100 80GB HBM3", (9, 0)),
                    Gpu(1, "GPU-bbbb2222-0000", "Tesla T4", (7, 5))]
    assert [gpu.has_bfloat16 for gpu in gpus] == [True, False]
    assert parse_nvidia_smi("0, GPU-x, Odd GPU, [N/A]\n")[0].compute_capability is None


@pytest.mark.parametrize("visible, expected", [
    (None, [0, 1]), ("1", [1]), ("1,0", [1, 0]), ("", []), ("-1", []), ("0,7,1", [0]),
    ("GPU-bbbb", [1]), ("GPU-bbbb,0", [1, 0]), ("0,0", [0]),
])
def test_cuda_visible_devices_narrows_the_driver_s_list(fake_smi, monkeypatch, visible, expected):
    fake_smi(SMI_ROWS)
    if visible is not None:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    assert [gpu.index for gpu in devices.visible_gpus()] == expected


def test_no_driver_means_no_gpu(fake_smi, monkeypatch):
    fake_smi(SMI_ROWS, exit_code=9)  # nvidia-smi present but failing (no driver loaded)
    assert devices.visible_gpus() == []
    monkeypatch.setenv("PATH", "/nonexistent")
    devices._driver_gpus.cache_clear()
    assert devices.visible_gpus() == []


def test_auto_precision_follows_the_gpu_that_trains(fake_smi, monkeypatch):
    fake_smi(SMI_ROWS)
    monkeypatch.setattr(precision, "_cpu_flags", lambda: {"avx2"})
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    assert precision.resolve_precision("auto") == "mixed_bfloat16"
    precision._native_bfloat16.cache_clear()
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")  # a T4 has no bfloat16 units
    assert precision.resolve_precision("auto") == "float32"
    precision._native_bfloat16.cache_clear()
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")  # mixed: the slower one decides
    assert precision.resolve_precision("auto") == "float32"
    precision._native_bfloat16.cache_clear()
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # no GPU: the CPU decides
    monkeypatch.setattr(precision, "_cpu_flags", lambda: {"avx2", "amx_bf16"})
    monkeypatch.setattr(precision, "cpu_bfloat16_speedup", lambda measure=True: 1.8)
    assert precision.resolve_precision("auto") == "mixed_bfloat16"


def test_auto_precision_on_a_cpu_takes_bfloat16_only_where_it_was_measured_faster(fake_smi,
                                                                                 monkeypatch):
    fake_smi("", exit_code=9)  # no GPU
    measured = []

    def speedup(value):
        def measure(measure=True):
            measured.append(value)
            return value
        return measure

    monkeypatch.setattr(precision, "_cpu_flags", lambda: {"avx2", "avx512_bf16"})
    monkeypatch.setattr(precision, "cpu_bfloat16_speedup", speedup(0.7))  # flags, but slower
    assert precision.resolve_precision("auto") == "float32"
    precision._native_bfloat16.cache_clear()
    monkeypatch.setattr(precision, "cpu_bfloat16_speedup", speedup(1.05))  # within the margin
    assert precision.resolve_precision("auto") == "float32"
    precision._native_bfloat16.cache_clear()
    monkeypatch.setattr(precision, "cpu_bfloat16_speedup", speedup(1.6))
    assert precision.resolve_precision("auto") == "mixed_bfloat16"
    precision._native_bfloat16.cache_clear()
    monkeypatch.setattr(precision, "_cpu_flags", lambda: {"avx2", "fma"})  # no native bfloat16:
    assert precision.resolve_precision("auto") == "float32"  # nothing to measure
    assert measured == [0.7, 1.05, 1.6]
    # The reason is printed with the policy; a recorded policy is explained without timing again.
    assert precision.describe_precision("auto") == "float32 (auto: this CPU has neither AMX nor AVX512-BF16)"
    assert precision.describe_precision("float32") == "float32"
    monkeypatch.setattr(precision, "_cpu_flags", lambda: {"avx512_bf16"})
    monkeypatch.setattr(precision, "cpu_bfloat16_speedup", lambda measure=True: 0.66)
    assert precision.describe_precision("auto", "float32") == (
        "float32 (auto: bfloat16 timed x0.66 against float32 on this CPU, x1.1 needed)")


def test_the_bfloat16_measurement_is_taken_once_per_machine_and_kept(tmp_path, monkeypatch):
    import keras

    speedup = precision.cpu_bfloat16_speedup(tmp_path)  # a real measurement on this CPU
    assert 0.05 < speedup < 20
    assert keras.mixed_precision.global_policy().name == "float32"  # left as it was
    kept = json.loads((tmp_path / precision.PROBE_FILE).read_text())
    [(key, entry)] = kept.items()
    assert keras.__version__ in key and entry["speedup"] == round(speedup, 3)

    def measure_again():
        raise AssertionError("measured again although the cache holds this CPU's figure")

    monkeypatch.setattr(precision, "measure_bfloat16_speedup", measure_again)
    assert precision.cpu_bfloat16_speedup(tmp_path) == round(speedup, 3)
    assert precision.cpu_bfloat16_speedup(tmp_path / "elsewhere", measure=False) is None
    (tmp_path / precision.PROBE_FILE).write_text('{"half written')  # another process mid-write
    monkeypatch.setattr(precision, "measure_bfloat16_speedup", lambda: 1.25)
    assert precision.cpu_bfloat16_speedup(tmp_path) == 1.25
    assert json.loads((tmp_path / precision.PROBE_FILE).read_text())[key]["speedup"] == 1.25


def test_workers_get_a_gpu_each_round_robin_and_share_memory_only_when_they_must():
    gpus = parse_nvidia_smi(SMI_ROWS)
    one_each = [worker_device_env(i, 2, gpus, 8, "jax") for i in range(2)]
    assert [env["CUDA_VISIBLE_DEVICES"] for env in one_each] == ["0", "1"]
    assert all("XLA_PYTHON_CLIENT_PREALLOCATE" not in env for env in one_each)
    shared = [worker_device_env(i, 3, gpus[:1], 8, "jax") for i in range(3)]
    assert {env["CUDA_VISIBLE_DEVICES"] for env in shared} == {"0"}
    assert all(env["XLA_PYTHON_CLIENT_PREALLOCATE"] == "false" for env in shared)
    assert worker_device_env(0, 2, gpus[:1], 8, "tensorflow")["TF_FORCE_GPU_ALLOW_GROWTH"] == "true"
    assert worker_device_env(1, 2, [], 4, "tensorflow") == {"OMP_NUM_THREADS": "4"}


def test_keras_backend_is_read_without_importing_keras(monkeypatch, tmp_path):
    monkeypatch.delitem(sys.modules, "keras", raising=False)  # as if keras were not imported yet
    monkeypatch.setenv("KERAS_BACKEND", "jax")
    assert devices.keras_backend() == "jax"
    monkeypatch.delenv("KERAS_BACKEND")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    assert devices.keras_backend() == "tensorflow"
    (tmp_path / "keras.json").write_text('{"backend": "torch"}')
    assert devices.keras_backend() == "torch"
