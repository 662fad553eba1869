"""Bad input gives one clear error before anything is read or trained, and leaves nothing behind
(issue 13: arguments, --subset, paths, NaN losses, start-up noise)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

import search_spaces
from tests.test_tune import _DivergingSpace
from tuner.cli import main
from tuner.config import InvalidSettingError, RunConfig, check_subset
from tuner.search import run_search
from tuner.spaces import resolve_objective

REPO = Path(__file__).resolve().parents[1]


def tune(tmp_path, *extra, data_dir=None):
    run_dir = tmp_path / "runs" / "run"
    if data_dir is None:  # an existing folder without the data
        data_dir = tmp_path / "no-data"
        data_dir.mkdir(exist_ok=True)
    args = ["tune", "mlp", "--run-dir", str(run_dir), "--data-dir", str(data_dir),
            "--max-epochs", "1", *extra]
    return CliRunner().invoke(main, args), run_dir


@pytest.mark.parametrize("extra, message", [
    (["--objective", "val_acc"], "Error: Objective 'val_acc' is not a metric of the 'mlp' space's "
     "models; they report: accuracy, loss, val_accuracy, val_loss."),
    (["--direction", "min"], "Error: --direction min would rank the trials by 'val_accuracy' the "
     "wrong way round"),
    (["--objective", "val_loss", "--direction", "max"], "Error: --direction max would rank"),
    (["--dataset", "clock"], "Error: The 'mlp' search space cannot be trained on 'clock'"),
    (["--head", "periodic"], "Error: --head only applies to the clock search space"),
])
def test_bad_arguments_exit_2_before_any_data_is_read(tmp_path, extra, message):
    # The data directory does not exist: reading data first would fail with another error.
    result, run_dir = tune(tmp_path, *extra)
    assert result.exit_code == 2, result.output
    assert result.output.startswith(message)
    assert "Traceback" not in result.output and not (tmp_path / "runs").exists()


def test_a_forced_direction_is_accepted_in_the_library():
    config = resolve_objective(RunConfig(direction="min"), force_direction=True)
    assert (config.objective, config.direction) == ("val_accuracy", "min")
    with pytest.raises(InvalidSettingError, match="Cannot tell whether objective 'score'"):
        resolve_objective(RunConfig(objective="score"))


def test_a_refused_command_leaves_no_run_dir_or_lock(tmp_path, monkeypatch):
    from datasets import fashion_mnist

    monkeypatch.setattr(fashion_mnist, "DEBIAN_DIR", tmp_path / "none")
    result, run_dir = tune(tmp_path)
    assert result.exit_code == 1 and "Dataset 'fashion_mnist' was not found" in result.output
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("text, expected", [
    ("all", None), ("1.0", None), ("1", "too small"), ("5", "too small"), ("10", 10),
    ("0.5", 0.5), ("6000", 6000), ("6e3", 6000), ("nan", "positive count"),
    ("inf", "positive count"), ("-3", "positive count"), ("0", "positive count"),
    ("2.5", "neither a whole count"), ("lots", "expected a count like 6000"),
])
def test_subset_semantics(tmp_path, text, expected):
    result = CliRunner().invoke(main, ["tune", "mlp", "--run-dir", str(tmp_path / "r"),
                                       "--subset", text, "--objective", "nope_loss"])
    if isinstance(expected, str):
        assert result.exit_code == 2 and expected in result.output, result.output
        assert "Invalid value for '--subset'" in result.output
    else:
        # Parsed: the command went on to the (bad) objective.
        assert result.exit_code == 2 and "Objective 'nope_loss'" in result.output, result.output
        assert check_subset(expected) == expected


def test_a_subset_larger_than_the_data_is_refused(tiny_data_dir, tmp_path):
    result, run_dir = tune(tmp_path, "--subset", "100000", data_dir=tiny_data_dir)
    assert result.exit_code == 2
    assert result.output.startswith("Error: subset 100000 is more than the 60 training images")
    assert not (tmp_path / "runs").exists()


def test_run_dir_below_a_regular_file_is_an_error_line(tiny_data_dir, tmp_path):
    (tmp_path / "file").write_text("x")
    result = CliRunner().invoke(main, ["tune", "mlp", "--run-dir", str(tmp_path / "file" / "run"),
                                       "--data-dir", str(tiny_data_dir)])
    assert result.exit_code == 1
    assert result.output.startswith(
        f"Error: Cannot use {tmp_path / 'file' / 'run'} as a run directory: {tmp_path / 'file'} "
        "is a file, not a folder.")


def test_a_binary_configuration_file_is_named(tmp_path):
    path = tmp_path / "model.yaml"
    path.write_bytes(bytes(range(256)) * 4)
    result = CliRunner().invoke(main, ["transfer", str(path), "--run-dir", str(tmp_path / "o")])
    assert result.exit_code == 1
    assert result.output.startswith(f"Error: {path} is not a text file")
    assert not (tmp_path / "o").exists()


def test_a_diverged_trial_stops_at_once_with_one_line(tiny_data_dir, tmp_path):
    search_spaces.register("diverging", _DivergingSpace)
    lines = []
    result = run_search(
        RunConfig(space="diverging", tuner="random", max_trials=2, max_epochs=4, subset=None),
        tmp_path / "run", data_dir=tiny_data_dir, progress=lines.append,
    )
    failed = result.trials[result.trials["status"] == "FAILED"]
    assert len(failed) == 1 and int(failed["epochs"].iloc[0]) == 1  # not 4
    failure = [line for line in lines if "-> FAILED" in line]
    assert len(failure) == 1 and "diverged" in failure[0] and "\n" not in failure[0]
    assert not any("Traceback" in line for line in lines)


@pytest.mark.slow
def test_the_real_command_prints_no_tensorflow_start_up_lines(tmp_path):
    env = {**os.environ, "HPSEARCH_NO_DOWNLOAD": "1"}
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    command = [sys.executable, "-m", "tuner.cli", "tune", "mlp", "--objective", "val_acc",
               "--run-dir", str(tmp_path / "run")]
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith("Error: Objective 'val_acc' is not a metric")
    for noise in ("absl", "oneDNN", "cuda", "I0000", "tensorflow"):
        assert noise not in result.stderr, result.stderr


class _FailingSpace(_DivergingSpace):
    """Every training fails (as a wrong metric name or a broken input pipeline would)."""

    name = "failing"

    def fit(self, hp, model, *args, **kwargs):
        raise ValueError("the pipeline broke")


def test_too_many_failures_stop_with_the_cause_and_no_trial_left_running(tiny_data_dir, tmp_path):
    from tuner.errors import SearchError

    search_spaces.register("failing", _FailingSpace)
    with pytest.raises(SearchError) as caught:
        run_search(RunConfig(space="failing", tuner="random", max_trials=8, max_epochs=1,
                             subset=None), tmp_path / "run", data_dir=tiny_data_dir,
                   progress=None)
    message = str(caught.value)
    assert message.startswith("The search stopped: 5 trials in a row failed.")
    assert "ValueError: the pipeline broke" in message and "Traceback" not in message
    trials = pd.read_csv(tmp_path / "run" / "trials.csv")
    assert trials["status"].tolist() == ["FAILED"] * 5


def test_a_search_whose_every_trial_failed_exits_1_with_the_cause(tiny_data_dir, tmp_path,
                                                                   monkeypatch):
    # Fewer failures than KerasTuner's limit of consecutive ones: the search "finishes", with
    # nothing to show. A script's `hpsearch tune ... && hpsearch transfer ...` must stop there.
    from search_spaces.mlp import MLPHyperModel

    monkeypatch.setattr(MLPHyperModel, "fit", _FailingSpace.fit)
    run = tmp_path / "run"
    result = CliRunner().invoke(main, ["tune", "mlp", "--run-dir", str(run), "--data-dir",
                                       str(tiny_data_dir), "--subset", "all", "--tuner", "random",
                                       "--max-trials", "2", "--max-epochs", "1", "--quiet"])
    assert result.exit_code == 1, result.output
    assert "No trial completed, so no configuration was exported." in result.output
    assert ("Error: Every trial failed (2 of 2), so nothing was exported. Trial 0: ValueError: "
            "the pipeline broke") in result.output
    assert "Traceback" not in result.output  # neither KerasTuner's per trial nor ours
    assert pd.read_csv(run / "trials.csv")["status"].tolist() == ["FAILED", "FAILED"]
    # Run again, the budget is spent: the run has still failed, whatever this call ran.
    again = CliRunner().invoke(main, ["tune", "mlp", "--run-dir", str(run), "--data-dir",
                                      str(tiny_data_dir), "--subset", "all", "--tuner", "random",
                                      "--max-trials", "2", "--max-epochs", "1", "--quiet"])
    assert again.exit_code == 1, again.output
    assert "0 run now" in again.output and "Error: Every trial failed (2 of 2)" in again.output
