"""Plain KerasTuner projects (report, export, refused resume) and damaged trial files (named,
repaired without losing the good trials)."""

from __future__ import annotations

import html
import json
import shutil

import keras
import keras_tuner as kt
import numpy as np
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from top_configs import read_top_config
from tuner.cli import main
from tuner.config import RunConfig
from tuner.search import run_search


def _build(hp):
    model = keras.Sequential([
        keras.Input((4,)),
        keras.layers.Dense(hp.Int("units", 2, 16, step=2), activation="relu"),
        keras.layers.Dense(2, activation="softmax"),
    ])
    model.compile(optimizer=keras.optimizers.SGD(hp.Float("lr", 1e-3, 1e-1, sampling="log")),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


@pytest.fixture(scope="module")
def user_project(tmp_path_factory):
    """What a KerasTuner user's own code writes: my_dir/my_project."""
    directory = tmp_path_factory.mktemp("user") / "my_dir"
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("int64")
    tuner = kt.RandomSearch(_build, objective="val_accuracy", max_trials=4, seed=1,
                            directory=str(directory), project_name="my_project")
    tuner.search(x, y, validation_data=(x, y), epochs=2, verbose=0)
    return directory / "my_project"


def test_report_of_a_plain_keras_tuner_project(user_project, tmp_path):
    result = CliRunner().invoke(main, ["report", str(user_project), "--out", str(tmp_path / "r")],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    tables = tmp_path / "r" / "tables"
    trials = pd.read_csv(tables / "my_project-trials.csv", dtype={"trial_id": str})
    assert trials["trial_id"].tolist() == ["0", "1", "2", "3"]
    ranges = pd.read_csv(tables / "my_project-ranges.csv")
    assert set(ranges["hyperparameter"]) == {"units", "lr"}
    assert (tmp_path / "r" / "figures" / "my_project-importance.png").is_file()
    page = html.unescape((tmp_path / "r" / "report.html").read_text())
    assert "KerasTuner project: my_project" in page and "'val_accuracy' (max)" in page


def test_report_points_at_the_project_below_a_directory(user_project, tmp_path):
    result = CliRunner().invoke(main, ["report", str(user_project.parent), "--out",
                                       str(tmp_path / "r")])
    assert result.exit_code == 1
    assert f"It holds the KerasTuner project(s) {user_project}: pass that folder." in result.output


def test_export_top_configurations_of_a_plain_project(user_project, tmp_path):
    result = CliRunner().invoke(main, ["export", str(user_project), "--top", "3", "--out",
                                       str(tmp_path / "best")], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    configs = [read_top_config(tmp_path / "best" / f"rank_{rank}.yaml") for rank in (1, 2, 3)]
    scores = [json.loads((user_project / f"trial_{c.trial_id}" / "trial.json").read_text())["score"]
              for c in configs]
    assert [c.score for c in configs] == scores == sorted(scores, reverse=True)
    assert {c.objective for c in configs} == {"val_accuracy"}
    assert set(configs[0].hyperparameters) == {"units", "lr"}


def test_resuming_a_plain_project_with_tune_is_refused(user_project, tmp_path):
    copy = tmp_path / "my_project"
    shutil.copytree(user_project, copy)
    result = CliRunner().invoke(main, ["tune", "mlp", "--run-dir", str(copy)])
    assert result.exit_code == 1
    assert result.output.startswith(
        f"Error: {copy} holds a KerasTuner project written by your own code")
    assert "Resuming it needs your hypermodel" in result.output
    assert sorted(p.name for p in copy.iterdir()) == sorted(p.name for p in user_project.iterdir())


@pytest.fixture
def search_run(tiny_data_dir, tmp_path):
    run_dir = tmp_path / "run"
    run_search(RunConfig(space="mlp", tuner="random", max_trials=3, max_epochs=1, subset=None),
               run_dir, data_dir=tiny_data_dir, progress=None)
    return run_dir


def test_a_corrupt_trial_is_named_and_repaired_keeping_the_good_ones(search_run, tiny_data_dir,
                                                                     tmp_path):
    runner = CliRunner()
    broken = search_run / "kt" / "trial_1" / "trial.json"
    good = {p: p.read_text() for p in search_run.glob("kt/trial_*/trial.json") if p != broken}
    broken.write_text('{"trial_id": "1", garbage')
    report = runner.invoke(main, ["report", str(search_run), "--out", str(tmp_path / "r")])
    assert report.exit_code == 1 and f"{broken} (JSONDecodeError" in report.output
    assert f"hpsearch repair {search_run}" in report.output
    arguments = ["tune", "mlp", "--run-dir", str(search_run), "--data-dir", str(tiny_data_dir),
                 "--tuner", "random", "--max-epochs", "1", "--subset", "all"]
    refused = runner.invoke(main, [*arguments, "--max-trials", "4"])
    assert refused.exit_code == 1 and str(broken) in refused.output
    assert "Traceback" not in refused.output

    repaired = runner.invoke(main, ["repair", str(search_run)], catch_exceptions=False)
    assert repaired.exit_code == 0 and "Kept 2 readable trial(s)" in repaired.output
    assert len(list((search_run / "kt" / "set_aside").rglob("trial.json.*"))) == 1
    assert json.loads(broken.read_text())["status"] == "FAILED"
    resumed = runner.invoke(main, [*arguments, "--max-trials", "4"], catch_exceptions=False)
    assert resumed.exit_code == 0, resumed.output
    assert all(path.read_text() == text for path, text in good.items())
    trials = pd.read_csv(search_run / "trials.csv", dtype={"trial_id": str})
    assert trials["trial_id"].tolist() == ["0", "1", "2", "3"]
    assert trials["status"].tolist() == ["COMPLETED", "FAILED", "COMPLETED", "COMPLETED"]


@pytest.mark.parametrize("tuner", ["random", "bayesian"])
def test_a_corrupt_oracle_is_rebuilt_from_the_trials(tiny_data_dir, tmp_path, tuner):
    search_run = tmp_path / "run"
    run_search(RunConfig(space="mlp", tuner=tuner, max_trials=3, max_epochs=1, subset=None),
               search_run, data_dir=tiny_data_dir, progress=None)
    oracle = search_run / "kt" / "oracle.json"
    saved = json.loads(oracle.read_text())
    oracle.write_text("\x00\x01 not json")
    result = CliRunner().invoke(main, ["repair", str(search_run)], catch_exceptions=False)
    assert result.exit_code == 0 and "Rebuilt" in result.output
    rebuilt = json.loads(oracle.read_text())
    for key in ("start_order", "end_order", "tried_so_far", "id_to_hash"):
        assert rebuilt[key] == (sorted(saved[key]) if key == "tried_so_far" else saved[key]), key
    # The seed KerasTuner was handed, and what a Bayesian oracle's state needs besides.
    assert rebuilt["seed"] == saved["seed"] and rebuilt["seed_state"] > saved["seed_state"]
    for key in ("num_initial_points", "alpha", "beta"):
        assert rebuilt.get(key) == saved.get(key), key
    assert yaml.safe_load((search_run / "run.yaml").read_text())["config"]["tuner"] == tuner
    resumed = CliRunner().invoke(main, [
        "tune", "mlp", "--run-dir", str(search_run), "--data-dir", str(tiny_data_dir), "--tuner",
        tuner, "--max-epochs", "1", "--subset", "all", "--max-trials", "4"],
        catch_exceptions=False)
    assert resumed.exit_code == 0 and "3 already run" in resumed.output, resumed.output
