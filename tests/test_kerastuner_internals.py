"""What hpsearch relies on inside KerasTuner: private names, Hyperband's schedule, worker saves.

setup.cfg pins keras-tuner to the tested minor version; these tests say what to look at when a
new version changes them.
"""

from __future__ import annotations

import json
import random
from unittest import mock

import keras_tuner as kt
import pytest

from tuner import engine as search
from tuner.config import hyperband_schedule

# Every private KerasTuner (and Keras) name hpsearch overrides, calls or reads, and where. The
# oracles (tuner/oracles.py) and the tuners (tuner/engine.py) hold most of them; the gRPC chief
# (tuner/chief.py) and worker (tuner/worker.py) wrap KerasTuner's servicer and client, which have
# no public API.
PRIVATE_NAMES = [
    (kt.Oracle, "_random_values", "tuner/oracles.py"),
    (kt.Oracle, "_save_trial", "tuner/oracles.py"),
    (kt.Oracle, "_duplicate", "tuner/oracles.py, tuner/guided.py"),
    (kt.Oracle, "_get_oracle_fname", "tuner/oracles.py"),
    (kt.Oracle, "_get_trial_dir", "tuner/oracles.py"),
    (kt.oracles.HyperbandOracle, "_random_trial", "tuner/oracles.py"),
    (kt.oracles.BayesianOptimizationOracle, "_vectorize_trials", "tuner/oracles.py"),
    (kt.oracles.BayesianOptimizationOracle, "_nonfixed_space", "tuner/oracles.py"),
    (kt.Tuner, "_get_tuner_fname", "tuner/engine.py"),
    (kt.Tuner, "_is_worker", "tuner/engine.py, tuner/worker.py"),
    (kt.Tuner, "_activate_all_conditions", "tuner/engine.py"),
    (kt.Tuner, "_try_build", "tuner/engine.py"),
    (kt.Tuner, "_build_hypermodel", "tuner/engine.py"),
    (kt.Tuner, "_build_and_fit_model", "tuner/engine.py"),
]
PRIVATE_MODULE_NAMES = [
    ("keras_tuner.src.engine.oracle", "synchronized", "tuner/oracles.py"),
    ("keras_tuner.src.distribute.oracle_chief", "OracleServicer", "tuner/chief.py"),
    ("keras_tuner.src.distribute.oracle_chief", "exit_chief", "tuner/chief.py"),
    ("keras_tuner.src.distribute.oracle_client", "OracleClient", "tuner/worker.py"),
    ("keras_tuner.src.distribute.oracle_client", "TIMEOUT", "tuner/worker.py"),
    ("keras_tuner.src", "protos", "tuner/chief.py, tuner/worker.py"),
    ("keras_tuner.src.config", "DEBUG", "tuner/cli_errors.py"),
]


@pytest.mark.parametrize("owner, name, where", PRIVATE_NAMES,
                         ids=lambda v: getattr(v, "__name__", v))
def test_private_keras_tuner_names_that_hpsearch_overrides_or_calls_exist(owner, name, where):
    assert callable(getattr(owner, name, None)), (
        f"KerasTuner {kt.__version__} has no {owner.__name__}.{name}: {where} overrides "
        f"or calls it. Adapt {where} to the new KerasTuner, or pin the tested version.")


@pytest.mark.parametrize("module, name, where", PRIVATE_MODULE_NAMES)
def test_private_keras_tuner_modules_that_hpsearch_imports_exist(module, name, where):
    import importlib

    assert hasattr(importlib.import_module(module), name), (
        f"KerasTuner {kt.__version__} has no {module}.{name}, which {where} uses.")


def test_private_attributes_that_hpsearch_reads_exist(tmp_path):
    from keras_tuner.src.distribute.oracle_client import OracleClient

    oracle = kt.oracles.RandomSearchOracle(objective=kt.Objective("score", "max"), max_trials=1,
                                           seed=1)
    oracle._set_project_dir(str(tmp_path), "p")
    # tuner/oracles.py and tuner/chief.py requeue a lost worker's trial; tuner/guided.py
    # seeds its coin from KerasTuner's count of random draws.
    assert isinstance(oracle._retry_queue, list) and isinstance(oracle._seed_state, int)
    # tuner/worker.py wraps the stub a client holds.
    assert "_oracle" in OracleClient.__init__.__code__.co_names


def test_the_symbolic_build_that_reads_a_models_metrics_exists():
    import keras

    # tuner/spaces.py reads a model's metric names from it without training.
    assert callable(getattr(keras.Model, "_symbolic_build", None))


def test_every_private_keras_tuner_name_in_the_code_is_listed():
    import re
    from pathlib import Path

    listed = ({name for _, name, _ in PRIVATE_NAMES}
              | {name for _, name, _ in PRIVATE_MODULE_NAMES if name.startswith("_")}
              | {"_retry_queue", "_seed_state", "_oracle", "_symbolic_build", "_set_project_dir"})
    root = Path(__file__).resolve().parents[1]
    calls = re.compile(r"(?:super\(\)|oracle|tuner|model|kt\.[A-Za-z.]+)\.(_[a-z][a-z_]*)\b")
    found = set()
    for path in root.glob("*/*.py"):
        if path.parts[-2] in ("tuner", "search_spaces", "top_configs", "analysis", "datasets"):
            found |= set(calls.findall(path.read_text()))
    # hpsearch's own methods and attributes, reached through super() or a tuner.
    ours = {"_setup_tracking", "_trials_this_call", "_hooks", "_record", "_worker",
            "_wants_textbook", "_propose_values", "_search_started"}
    assert found - ours <= listed, f"private names used but not listed: {found - ours - listed}"


def test_oracle_state_keeps_the_retry_queue(tmp_path):
    oracle = kt.oracles.RandomSearchOracle(objective=kt.Objective("score", "max"), max_trials=1)
    oracle._set_project_dir(str(tmp_path), "p")
    assert isinstance(oracle._retry_queue, list)
    assert "retry_queue" in oracle.get_state(), "hpsearch filters the retry queue on reload"


@pytest.mark.parametrize("max_epochs, factor, iterations", [
    (2, 2, 1), (6, 3, 1), (10, 3, 1), (9, 3, 2), (27, 3, 1), (8, 2, 1),
])
def test_hyperband_schedule_matches_a_real_hyperband_oracle(tmp_path, max_epochs, factor,
                                                            iterations):
    oracle = kt.oracles.HyperbandOracle(objective=kt.Objective("score", "max"),
                                        max_epochs=max_epochs, factor=factor,
                                        hyperband_iterations=iterations, seed=1)
    hp = kt.HyperParameters()
    hp.Float("x", 0, 1)
    oracle.hyperparameters = hp
    oracle._set_project_dir(str(tmp_path), "p")
    scores = random.Random(0)
    trials = epochs = 0
    while True:
        trial = oracle.create_trial("tuner0")
        if trial.status == "STOPPED":
            break
        values = trial.hyperparameters.values
        trials += 1
        epochs += values["tuner/epochs"] - values["tuner/initial_epoch"]
        oracle.update_trial(trial.trial_id, {"score": scores.random()})
        trial.status = "COMPLETED"
        oracle.end_trial(trial)
    assert hyperband_schedule(max_epochs, factor, iterations) == (trials, epochs)


class _Tuner(search._TrackedTuner):
    def __init__(self, worker, path):
        self.oracle = mock.Mock()
        self._worker, self._path = worker, path

    def _is_worker(self):
        return self._worker

    def _get_tuner_fname(self):
        return str(self._path)

    def get_state(self):
        return {"tuner": "state"}


@pytest.mark.parametrize("worker", [False, True])
def test_tracked_tuner_save_keeps_the_worker_check(tmp_path, worker):
    tuner = _Tuner(worker, tmp_path / "tuner0.json")
    tuner.save()
    assert tuner.oracle.save.called is (not worker)  # KerasTuner's Tuner.save: chief only
    assert json.loads((tmp_path / "tuner0.json").read_text()) == {"tuner": "state"}


@pytest.mark.parametrize("space, options", [
    ("mlp", {"input_shape": (28, 28, 1), "num_classes": 10}),
    ("cnn", {"input_shape": (32, 32, 3), "num_classes": 10}),
    ("clock", {"input_shape": (75, 75, 1)}),
])
def test_conditions_are_found_in_fewer_builds_with_the_same_space(space, options):
    import search_spaces

    def discover(activate):
        hypermodel = search_spaces.get(space, **options)
        builds = []
        tuner = mock.Mock(oracle=kt.oracles.RandomSearchOracle(objective="val_loss", max_trials=1))
        tuner.hypermodel.build = lambda hp: builds.append(hp.copy()) or hypermodel.build(hp)
        activate(tuner)
        return [hp.get_config() for hp in tuner.oracle.get_space().space], len(builds)

    ours, our_builds = discover(search._TrackedTuner._activate_all_conditions)
    theirs, their_builds = discover(kt.Tuner._activate_all_conditions)
    assert ours == theirs  # every hyperparameter, its range, default and conditions, in order
    assert our_builds < their_builds
