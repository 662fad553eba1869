"""The spaces of examples/ searched on the user's own data (.npz, a folder of pictures, a CSV), as
a KerasTuner user runs them: `hpsearch tune FILE.py:NAME --data PATH`, then export, report,
transfer, resume, kill -9, parallel workers and the errors of a space that cannot be used."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from tests.conftest import tiny_images
from tuner.cli import main

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
FASHION = f"{EXAMPLES / 'fashion_function.py'}:build_model"
PICTURES = f"{EXAMPLES / 'pictures_hypermodel.py'}:PictureClassifier"
TABULAR = f"{EXAMPLES / 'tabular_regression.py'}:build_model"
SMALL_RANDOM = ["--tuner", "random", "--max-trials", "2", "--max-epochs", "2"]


def write_fashion_npz(path: Path, train: int = 60, test: int = 0, seed: int = 1) -> Path:
    """28x28 uint8 pictures of 10 classes (x_train, y_train; x_test, y_test when ``test``)."""
    x_train, y_train = tiny_images(train, (28, 28), seed=seed)
    arrays = {"x_train": x_train, "y_train": y_train}
    if test:
        arrays["x_test"], arrays["y_test"] = tiny_images(test, (28, 28), seed=seed + 1)
    np.savez(path, **arrays)
    return path


def write_picture_folder(directory: Path, per_class: int = 10) -> Path:
    """``directory/<class>/<n>.png``: 32x32 RGB pictures, brighter from class to class."""
    from PIL import Image

    rng = np.random.default_rng(3)
    for label, name in enumerate(("circles", "squares", "stripes")):
        (directory / name).mkdir(parents=True)
        for index in range(per_class):
            pixels = rng.integers(0, 60, size=(32, 32, 3)) + 80 * label
            Image.fromarray(pixels.astype(np.uint8), "RGB").save(directory / name / f"{index}.png")
    return directory


def write_prices_csv(path: Path, rows: int = 80) -> Path:
    """Four numeric feature columns and ``price``, a linear function of them plus noise."""
    rng = np.random.default_rng(4)
    features = rng.normal(size=(rows, 4))
    table = pd.DataFrame(features, columns=[f"feature_{i}" for i in range(1, 5)])
    table["price"] = 3.0 + features @ np.array([2.0, -1.0, 0.5, 0.0]) + rng.normal(0, 0.1, rows)
    table.to_csv(path, index=False)
    return path


def tune(space: str, data: Path, run_dir: Path, *extra: str, expect: int = 0):
    result = CliRunner().invoke(
        main, ["tune", space, "--data", str(data), "--run-dir", str(run_dir), *extra],
        catch_exceptions=expect != 0,
    )
    assert result.exit_code == expect, result.output
    return result


def trials_of(run_dir: Path) -> pd.DataFrame:
    return pd.read_csv(run_dir / "trials.csv", dtype={"trial_id": str})


def trial_scores(run_dir: Path) -> dict[str, tuple[str, float | None]]:
    """{trial id: (status, score)} as KerasTuner saved them in each trial.json."""
    states = [json.loads(p.read_text()) for p in (run_dir / "kt").glob("trial_*/trial.json")]
    return {state["trial_id"]: (state["status"], state["score"]) for state in states}


def logged_trials(run_dir: Path) -> list[str]:
    lines = (run_dir / "trial_log.jsonl").read_text().splitlines()
    return [json.loads(line)["trial_id"] for line in lines]


def run_settings(run_dir: Path) -> dict:
    return yaml.safe_load((run_dir / "run.yaml").read_text())["config"]


def assert_completed_with_finite_scores(run_dir: Path, count: int) -> pd.DataFrame:
    trials = trials_of(run_dir)
    assert len(trials) == count and set(trials["status"]) == {"COMPLETED"}, trials
    assert all(math.isfinite(score) for score in trials["score"]), trials["score"]
    return trials


def assert_rank_1_names(run_dir: Path, file_name: str, name: str, objective: str,
                        direction: str) -> dict:
    document = yaml.safe_load((run_dir / "top_configs" / "rank_1.yaml").read_text())
    assert file_name in document["search_space"] and name in document["search_space"], document
    assert (document["objective"], document["direction"]) == (objective, direction)
    return document


def _hyperparameter_columns(trials: pd.DataFrame) -> list[str]:
    from tuner.results import META_COLUMNS

    return [column for column in trials.columns if column not in META_COLUMNS]


@pytest.fixture(scope="module")
def fashion_data(tmp_path_factory) -> tuple[Path, Path]:
    """(training .npz without a validation split, another .npz with a test split)."""
    folder = tmp_path_factory.mktemp("fashion-data")
    return (write_fashion_npz(folder / "train.npz"),
            write_fashion_npz(folder / "other.npz", train=40, test=20, seed=7))


@pytest.fixture(scope="module")
def fashion_run(fashion_data, tmp_path_factory):
    """One search of the function example, keeping its best model; (run dir, output)."""
    base = tmp_path_factory.getbasetemp()
    with pytest.MonkeyPatch.context() as patch:  # the autouse environment, for a module fixture
        patch.setenv("HPSEARCH_NO_DOWNLOAD", "1")
        patch.setenv("KERAS_HOME", str(base / "keras-home"))
        patch.setenv("HPSEARCH_CACHE_DIR", str(base / "hpsearch-cache"))
        run_dir = tmp_path_factory.mktemp("fashion") / "run"
        output = tune(FASHION, fashion_data[0], run_dir, *SMALL_RANDOM, "--keep-models", "1").output
    return run_dir, output


def test_the_function_example_searches_an_npz(fashion_run):
    run_dir, output = fashion_run
    trials = assert_completed_with_finite_scores(run_dir, 2)
    assert {"units", "activation", "learning_rate"} <= set(trials.columns)
    assert trials["score"].between(0, 1).all()
    settings = run_settings(run_dir)
    assert (settings["objective"], settings["direction"]) == ("val_accuracy", "max")
    assert_rank_1_names(run_dir, "fashion_function.py", "build_model", "val_accuracy", "max")
    assert "2 trials (2 completed, 0 failed), 2 run now" in output
    # All 60 pictures (no --subset), 10% held out since the file has no validation split.
    assert "54 train / 6 validation / 0 test" in output


def test_the_function_example_runs_unchanged_in_plain_kerastuner(fashion_data, tmp_path,
                                                                  monkeypatch):
    import keras_tuner

    build_model = _load_example("fashion_function", monkeypatch).build_model
    with np.load(fashion_data[0]) as arrays:
        x, y = arrays["x_train"], arrays["y_train"]
    search = keras_tuner.RandomSearch(build_model, objective="val_accuracy", max_trials=1,
                                      directory=str(tmp_path), project_name="plain", seed=1)
    search.search(x, y, validation_split=0.2, epochs=1, verbose=0)
    assert search.oracle.get_best_trials(1)[0].status == "COMPLETED"


def test_the_kept_model_is_a_plain_keras_file_that_predicts(fashion_run, fashion_data):
    import keras

    run_dir, _ = fashion_run
    path = run_dir / "models" / "rank_1.keras"
    assert sorted(p.name for p in (run_dir / "models").glob("*.keras")) == [path.name]
    # Every class in it is Keras's own, so keras.saving.load_model needs no hpsearch import.
    with zipfile.ZipFile(path) as archive:
        config = json.loads(archive.read("config.json"))
    assert _modules_of(config) and all(m.startswith("keras") for m in _modules_of(config))
    model = keras.saving.load_model(path)
    with np.load(fashion_data[0]) as arrays:
        probabilities = model.predict(arrays["x_train"][:5], verbose=0)
    assert probabilities.shape == (5, 10)
    assert np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-4)


def _modules_of(config) -> set[str]:
    if isinstance(config, dict):
        found = {config["module"]} if isinstance(config.get("module"), str) else set()
        return found.union(*(_modules_of(value) for value in config.values()))
    if isinstance(config, list):
        return set().union(*(_modules_of(value) for value in config))
    return set()


def test_export_report_and_status_work_on_the_run(fashion_run, tmp_path):
    run_dir, _ = fashion_run
    runner = CliRunner()
    exported = runner.invoke(main, ["export", str(run_dir), "--top", "1", "--out",
                                    str(tmp_path / "best")], catch_exceptions=False)
    assert exported.exit_code == 0, exported.output
    document = yaml.safe_load((tmp_path / "best" / "rank_1.yaml").read_text())
    assert "fashion_function.py" in document["search_space"]
    report = runner.invoke(main, ["report", str(run_dir), "--out", str(tmp_path / "report")],
                           catch_exceptions=False)
    assert report.exit_code == 0, report.output
    assert (tmp_path / "report" / "report.html").is_file()
    status = runner.invoke(main, ["status", str(run_dir)], catch_exceptions=False)
    assert status.exit_code == 0 and "2/2 trials done" in status.output, status.output


def test_transfer_retrains_the_top_configurations_on_another_npz(fashion_run, fashion_data,
                                                                 tmp_path):
    run_dir, _ = fashion_run
    out = tmp_path / "transfer"
    result = CliRunner().invoke(
        main, ["transfer", str(run_dir), "--data", str(fashion_data[1]), "--run-dir", str(out),
               "--epochs", "1"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    rows = pd.read_csv(out / "transfer.csv")
    exported = sorted(path.stem for path in (run_dir / "top_configs").glob("rank_*.yaml"))
    assert sorted(rows["config"]) == exported and set(rows["dataset"]) == {str(fashion_data[1])}
    assert set(rows["objective"]) == {"val_accuracy"}
    # Measured once on other.npz's 20 test pictures.
    assert rows["test_accuracy"].between(0, 1).all() and rows["test_score"].notna().all()


def test_the_same_search_from_python_draws_the_same_trials(fashion_run, fashion_data, tmp_path):
    from tuner import RunConfig, run_search

    result = run_search(
        RunConfig(space=FASHION, dataset=str(fashion_data[0]), tuner="random", max_trials=2,
                  max_epochs=2, keep_models=1),
        tmp_path / "run", progress=None)
    from_cli = trials_of(fashion_run[0])
    columns = _hyperparameter_columns(from_cli)
    assert result.trials[columns].to_dict("records") == from_cli[columns].to_dict("records")
    models = result.best_models()
    assert len(models) == 1
    assert models[0].output_shape == (None, 10)


def test_a_space_and_data_defined_in_a_notebook(fashion_data, tmp_path, monkeypatch):
    import datasets.user
    from tuner import RunConfig, run_search

    build_model = _load_example("fashion_function", monkeypatch).build_model
    with np.load(fashion_data[0]) as arrays:
        data = datasets.user.from_arrays(arrays["x_train"], arrays["y_train"])
    result = run_search(RunConfig(tuner="random", max_trials=1, max_epochs=1), tmp_path / "run",
                        space=build_model, data=data, progress=None)
    assert len(result.trials) == 1 and result.trials["status"].tolist() == ["COMPLETED"]
    assert result.config.objective == "val_accuracy" and result.config.direction == "max"


def test_a_space_object_without_an_importable_name_is_used_as_given(fashion_data, tmp_path):
    # A notebook's builder made by a function of its own (or a lambda) has no module:name that
    # imports back to it; in-process, the object itself is what to search.
    import keras

    import datasets.user
    from tuner import RunConfig, run_search

    def with_classes(num_classes):
        def build_model(hp):
            model = keras.Sequential([keras.Input((28, 28)), keras.layers.Flatten(),
                                      keras.layers.Dense(num_classes, activation="softmax")])
            model.compile(optimizer=keras.optimizers.Adam(hp.Choice("learning_rate", [1e-3])),
                          loss="sparse_categorical_crossentropy", metrics=["accuracy"])
            return model
        return build_model

    with np.load(fashion_data[0]) as arrays:
        data = datasets.user.from_arrays(arrays["x_train"], arrays["y_train"])
    result = run_search(RunConfig(tuner="random", max_trials=1, max_epochs=1), tmp_path / "run",
                        space=with_classes(10), data=data, progress=None)
    assert result.trials["status"].tolist() == ["COMPLETED"]


def test_resuming_a_finished_search_runs_no_new_trial(fashion_run, fashion_data):
    run_dir, _ = fashion_run
    before = trial_scores(run_dir)
    output = tune(FASHION, fashion_data[0], run_dir, *SMALL_RANDOM, "--keep-models", "1").output
    assert "2 already run" in output and "0 run now" in output
    assert trial_scores(run_dir) == before
    assert sorted(logged_trials(run_dir)) == sorted(before)


def test_the_hypermodel_example_gets_its_shape_and_classes_from_a_picture_folder(tmp_path):
    import keras

    pictures = write_picture_folder(tmp_path / "pictures")
    run_dir = tmp_path / "run"
    tune(PICTURES, pictures, run_dir, "--space-arg", "base_filters=8", "--tuner", "hyperband",
         "--max-epochs", "2", "--keep-models", "1")
    trials = assert_completed_with_finite_scores(run_dir, 2)
    assert set(trials["batch_size"]) <= {16, 32}  # tuned in PictureClassifier.fit
    settings = run_settings(run_dir)
    assert (settings["objective"], settings["direction"]) == ("val_accuracy", "max")
    rank_1 = assert_rank_1_names(run_dir, "pictures_hypermodel.py", "PictureClassifier",
                                 "val_accuracy", "max")
    model = keras.saving.load_model(run_dir / "models" / "rank_1.keras")
    assert model.input_shape == (None, 32, 32, 3) and model.output_shape == (None, 3)
    first_conv = next(layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D))
    assert first_conv.filters == 8 * rank_1["hyperparameters"]["width"]  # --space-arg reached it


def test_the_regression_example_minimises_val_mae_on_a_csv(tmp_path):
    run_dir = tmp_path / "run"
    tune(TABULAR, write_prices_csv(tmp_path / "houses.csv"), run_dir, "--target", "price",
         *SMALL_RANDOM)
    trials = assert_completed_with_finite_scores(run_dir, 2)
    settings = run_settings(run_dir)
    assert (settings["objective"], settings["direction"]) == ("val_mae", "min")
    rank_1 = assert_rank_1_names(run_dir, "tabular_regression.py", "build_model", "val_mae", "min")
    assert rank_1["score"] == pytest.approx(trials["score"].min())


def test_a_changed_space_file_is_not_resumed(fashion_data, tmp_path):
    space_file = tmp_path / "my_space.py"
    shutil.copy(EXAMPLES / "fashion_function.py", space_file)
    run_dir = tmp_path / "run"
    arguments = ["--tuner", "random", "--max-trials", "1", "--max-epochs", "1"]
    tune(f"{space_file}:build_model", fashion_data[0], run_dir, *arguments)
    before = trial_scores(run_dir)
    source = space_file.read_text()
    assert "max_value=128" in source
    space_file.write_text(source.replace("max_value=128", "max_value=256"))
    result = CliRunner().invoke(main, ["tune", f"{space_file}:build_model", "--data",
                                       str(fashion_data[0]), "--run-dir", str(run_dir),
                                       *arguments, "--max-trials", "2"])
    assert result.exit_code in (1, 2), result.output
    error = next(line for line in result.output.splitlines() if line.startswith("Error:"))
    assert "my_space.py" in error and "units" in error and "Traceback" not in result.output, error
    assert trial_scores(run_dir) == before


_NOT_A_SPACE = """
import keras

NUM_CLASSES = 10


def build_model(hp):
    raise ValueError("this builder is broken on purpose")
"""


@pytest.mark.parametrize("space, expected_code, named", [
    ("{tmp}/missing.py:build_model", 2, "missing.py"),
    ("{examples}/fashion_function.py:build_modle", 2, "build_modle"),
    ("{tmp}/broken_space.py:NUM_CLASSES", 2, "NUM_CLASSES"),
    ("{tmp}/broken_space.py:build_model", (1, 2), "broken_space.py"),
], ids=["no such file", "no such name", "neither function nor HyperModel", "build raises"])
def test_a_space_that_cannot_be_used_is_an_error_line_and_trains_nothing(
        space, expected_code, named, fashion_data, tmp_path):
    (tmp_path / "broken_space.py").write_text(_NOT_A_SPACE)
    space = space.format(tmp=tmp_path, examples=EXAMPLES)
    run_dir = tmp_path / "run"
    result = CliRunner().invoke(main, ["tune", space, "--data", str(fashion_data[0]),
                                       "--run-dir", str(run_dir), *SMALL_RANDOM])
    codes = expected_code if isinstance(expected_code, tuple) else (expected_code,)
    assert result.exit_code in codes, result.output
    assert "Error:" in result.output and "Traceback" not in result.output, result.output
    error = result.output[result.output.index("Error:"):]
    assert named in error, result.output
    if named == "broken_space.py":
        assert "broken on purpose" in error
    assert not run_dir.exists()  # checked before anything is written, so nothing trained


@pytest.mark.slow
def test_resume_after_kill_minus_9_keeps_every_finished_trial(tmp_path):
    data = write_fashion_npz(tmp_path / "train.npz", train=4000)
    run_dir = tmp_path / "run"
    command = [sys.executable, "-m", "tuner.cli", "tune", FASHION, "--data", str(data),
               "--run-dir", str(run_dir),
               "--tuner", "random", "--max-trials", "2", "--max-epochs", "8", "--quiet"]
    env = {**os.environ, "HPSEARCH_NO_DOWNLOAD": "1"}
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and process.poll() is None:
            if _second_trial_running(run_dir):
                break
            time.sleep(0.05)
        time.sleep(0.5)  # inside the second trial (8 epochs of 3,600 pictures)
    finally:
        process.kill()
        process.wait()
    before = trial_scores(run_dir)
    assert "RUNNING" in {status for status, _ in before.values()}, (
        f"the kill did not land inside a trial: {before}")
    completed = {t: score for t, (status, score) in before.items() if status == "COMPLETED"}
    assert completed and set(completed) <= set(logged_trials(run_dir))

    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True,
                            timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    after = trial_scores(run_dir)
    assert {t: score for t, (_, score) in after.items() if t in completed} == completed
    trained = logged_trials(run_dir)
    assert all(trained.count(trial_id) == 1 for trial_id in completed)
    assert sorted(set(trained)) == sorted(after) and len(after) == 2
    assert_completed_with_finite_scores(run_dir, 2)


@pytest.mark.slow
def test_two_local_workers_run_every_trial_of_an_example_once(tmp_path):
    run_dir = tmp_path / "run"
    output = tune(TABULAR, write_prices_csv(tmp_path / "houses.csv"), run_dir, "--target",
                  "price", "--tuner", "random", "--max-trials", "3", "--max-epochs", "2",
                  "--workers", "2").output
    assert_completed_with_finite_scores(run_dir, 3)
    log = [json.loads(line) for line in (run_dir / "trial_log.jsonl").read_text().splitlines()]
    assert sorted(entry["trial_id"] for entry in log) == sorted(trial_scores(run_dir)), output
    assert {entry["worker"] for entry in log} <= {"worker0", "worker1"}, output
    assert run_settings(run_dir)["objective"] == "val_mae"


def _second_trial_running(run_dir: Path) -> bool:
    """Whether a trial runs after one has finished (files read while the search writes them)."""
    try:
        finished = logged_trials(run_dir)
        states = trial_scores(run_dir)
    except (OSError, ValueError):  # not there yet, or half-written
        return False
    return bool(finished) and any(status == "RUNNING" and trial_id not in finished
                                  for trial_id, (status, _) in states.items())


def _load_example(name: str, monkeypatch):
    """An example imported from its file as Python's documentation shows ("Importing a source
    file directly"), as a notebook would: examples/ is no package."""
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    return module
