"""Running searches: configuration, search, transfer, and the ``hpsearch`` command line.

>>> from tuner import RunConfig, run_search
>>> result = run_search(RunConfig(space="mlp", dataset="fashion_mnist", subset=6000), "runs/mlp")

Names are imported on first use, so ``hpsearch --help`` does not start TensorFlow.
"""

import importlib
import logging
import os
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is first imported
# Keras retraces a function per new model; TensorFlow's warning about it is expected noise here.
logging.getLogger("tensorflow").setLevel(logging.ERROR)
# A promoted Hyperband trial restores weights only, not optimizer state; KerasTuner by design.
warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")

_EXPORTS = {
    "HpsearchError": "tuner.errors",
    "InvalidSettingError": "tuner.config",
    "RunConfig": "tuner.config",
    "RunConfigError": "tuner.config",
    "RunDirError": "tuner.errors",
    "export_top_configs": "tuner.export",
    "read_search": "tuner.results",
    "repair_run": "tuner.repair",
    "validate_search": "tuner.preparation",
    "hyperband_schedule": "tuner.config",
    "read_run_config": "tuner.config",
    "read_search_space": "tuner.results",
    "read_trials": "tuner.results",
    "RunLockedError": "tuner.errors",
    "SearchError": "tuner.errors",
    "SearchResult": "tuner.export",
    "export_results": "tuner.export",
    "run_search": "tuner.search",
    "TransferResult": "tuner.transfer",
    "run_transfer": "tuner.transfer",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'tuner' has no attribute {name!r}")
