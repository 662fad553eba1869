"""Running searches: configuration, search, transfer, and the ``hpsearch`` command line.

>>> from tuner import RunConfig, run_search
>>> result = run_search(RunConfig(space="mlp", dataset="fashion_mnist", subset=6000), "runs/mlp")
"""
import os

import logging
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is first imported
# Keras retraces a function per new model; TensorFlow's warning about it is expected noise here.
logging.getLogger("tensorflow").setLevel(logging.ERROR)
# A promoted Hyperband trial restores weights only, not optimizer state; KerasTuner by design.
warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")

from tuner.config import RunConfig, RunConfigError, hyperband_schedule, read_run_config  # noqa: E402
from tuner.results import read_search_space, read_trials  # noqa: E402
from tuner.search import (RunLockedError, SearchError, SearchResult, export_results,  # noqa: E402
                          run_search)

__all__ = ["RunConfig", "RunConfigError", "RunLockedError", "SearchError", "SearchResult",
           "export_results", "hyperband_schedule", "read_run_config", "read_search_space",
           "read_trials", "run_search"]
