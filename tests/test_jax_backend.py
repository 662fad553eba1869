"""Task 1 on Keras's JAX backend, in a process where TensorFlow cannot be imported.

A GPU machine may have JAX and no TensorFlow (hpsearch ran there this way); this checks that a
search, a transfer and the augmentation run without TensorFlow. Skipped where JAX is
not installed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import write_cifar10, write_fashion_mnist

pytest.importorskip("jax")
ROOT = Path(__file__).resolve().parents[1]


def _hpsearch(args: list[str], tmp_path: Path, data: Path) -> subprocess.CompletedProcess:
    blocker = tmp_path / "no_tensorflow"
    (blocker / "tensorflow").mkdir(parents=True, exist_ok=True)
    (blocker / "tensorflow" / "__init__.py").write_text(
        'raise ImportError("TensorFlow is blocked in this test")\n')
    # Its own KERAS_HOME: Keras writes the backend it starts with into a missing keras.json,
    # which the other tests' processes would then read.
    env = {**os.environ, "KERAS_BACKEND": "jax", "KERAS_HOME": str(tmp_path / "keras-home"),
           "HPSEARCH_DATA_DIR": str(data),
           "JAX_PLATFORMS": "cpu", "CUDA_VISIBLE_DEVICES": "",
           "PYTHONPATH": os.pathsep.join([str(blocker), str(ROOT)])}
    return subprocess.run([sys.executable, "-m", "tuner.cli", *args], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_search_and_transfer_on_jax_without_tensorflow(tmp_path):
    data = tmp_path / "data"
    write_fashion_mnist(data / "fashion-mnist", train=100, test=20)
    write_cifar10(data / "cifar10", per_batch=10, test=20)
    run = tmp_path / "run"
    first = _hpsearch(["tune", "mlp", "--run-dir", str(run), "--subset", "all", "--tuner", "random",
                       "--max-epochs", "1", "--max-trials", "1", "--quiet"], tmp_path, data)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "Traceback" not in first.stderr
    config = yaml.safe_load((run / "top_configs" / "rank_1.yaml").read_text())
    assert config["search_space"] == "mlp"
    # An augmented configuration, retrained on CIFAR-10's shape.
    config["hyperparameters"]["augment"] = True
    augmented = tmp_path / "augmented.yaml"
    augmented.write_text(yaml.safe_dump(config))
    transfer = _hpsearch(["transfer", str(augmented), "--dataset", "cifar10", "--no-textbook",
                          "--epochs", "1", "--run-dir", str(tmp_path / "t")], tmp_path, data)
    assert transfer.returncode == 0, transfer.stdout + transfer.stderr
    assert (tmp_path / "t" / "summary.csv").is_file()
