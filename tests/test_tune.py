"""`hpsearch tune` and `run_search` on tiny data: every tuner, YAML export, resume, kill -9, lock."""

from __future__ import annotations

import gc
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

import search_spaces
from search_spaces.base import SearchSpace
from tests.conftest import write_fashion_mnist
from top_configs import read_top_config
from tuner.cli import main
from tuner.config import RunConfig
from tuner.rundir import run_lock
from tuner.search import run_search

REPO = Path(__file__).resolve().parents[1]


def tune(runner, run_dir, data_dir, *extra, expect=0):
    args = ["tune", "mlp", "--run-dir", str(run_dir), "--data-dir", str(data_dir),
            *"--subset all --max-epochs 2 --factor 2".split(), *extra]
    result = runner.invoke(main, args, catch_exceptions=expect != 0)
    assert result.exit_code == expect, result.output
    return result


@pytest.mark.parametrize("tuner_name", ["hyperband", "bohb", "bayesian", "random"])
def test_tune_runs_each_tuner_and_exports(tuner_name, tiny_data_dir, tmp_path):
    run_dir = tmp_path / "run"
    output = tune(
        CliRunner(), run_dir, tiny_data_dir, "--tuner", tuner_name, "--max-trials", "3"
    ).output
    for name in (
        "run.yaml",
        "trials.csv",
        "search_space.json",
        "trial_log.jsonl",
        "kt/oracle.json",
    ):
        assert (run_dir / name).is_file(), name
    trials = pd.read_csv(run_dir / "trials.csv", dtype={"trial_id": str})
    assert len(trials) == 3
    assert list(trials.columns[:5]) == ["trial_id", "status", "score", "best_step", "epochs"]
    assert {"learning_rate", "optimizer", "units_0", "seconds"} <= set(trials.columns)
    # The textbook model is the first trial, with its exact values.
    first = trials.iloc[0]
    assert bool(first["is_textbook"]) and first["optimizer"] == "sgd" and first["units_0"] == 300
    assert "[trial 1/3]" in output and "textbook" in output and "rank 1" in output
    # One YAML per distinct configuration: a promoted Hyperband trial shares its parent's values.
    assert len(list((run_dir / "top_configs").glob("rank_*.yaml"))) == min(3, _distinct_completed(trials))


def _hyperparameter_columns(trials: pd.DataFrame) -> list[str]:
    from tuner.results import META_COLUMNS

    return [c for c in trials.columns if c not in META_COLUMNS]


def _distinct_completed(trials: pd.DataFrame) -> int:
    done = trials[trials["status"] == "COMPLETED"]
    return len(done.drop_duplicates(subset=_hyperparameter_columns(trials)))


def test_top_config_yaml_is_plain_ranked_and_round_trips(tiny_data_dir, tmp_path):
    run_dir = tmp_path / "run"
    tune(CliRunner(), run_dir, tiny_data_dir, "--tuner", "hyperband")
    trials = pd.read_csv(run_dir / "trials.csv", dtype={"trial_id": str})
    best = trials[trials.status == "COMPLETED"].sort_values("score", ascending=False, kind="stable")
    # The best trial of each configuration (Hyperband's promotions repeat their parent's values).
    best = best.drop_duplicates(subset=_hyperparameter_columns(trials), keep="first")
    paths = sorted((run_dir / "top_configs").glob("rank_*.yaml"))
    assert [p.name for p in paths] == ["rank_1.yaml", "rank_2.yaml", "rank_3.yaml"]
    configs = [read_top_config(p) for p in paths]
    assert [c.rank for c in configs] == [1, 2, 3]
    assert [c.score for c in configs] == pytest.approx(best["score"].head(3).tolist())
    assert [c.trial_id for c in configs] == best["trial_id"].head(3).tolist()
    for path, config in zip(paths, configs):
        document = yaml.safe_load(path.read_text())
        assert not any(key.startswith("tuner/") for key in document["hyperparameters"])
        assert all(type(v) in (int, float, str, bool) for v in document["hyperparameters"].values())
        assert type(document["score"]) is float and type(document["epochs"]) is int
        assert document["search_space"] == "mlp" and document["direction"] == "max"
        assert document["objective"] == "val_accuracy" and document["dataset"] == "fashion_mnist"
        # Writing it back gives the same file.
        from top_configs import write_top_config

        copy = write_top_config(tmp_path / "copy.yaml", config)
        assert read_top_config(copy) == config and copy.read_text() == path.read_text()


def test_resume_with_larger_budget_runs_only_new_trials(tiny_data_dir, tmp_path):
    run_dir = tmp_path / "run"
    runner = CliRunner()
    tune(runner, run_dir, tiny_data_dir, "--tuner", "random", "--max-trials", "2")
    before = {p.parent.name: p.read_text() for p in (run_dir / "kt").glob("trial_*/trial.json")}
    output = tune(runner, run_dir, tiny_data_dir, "--tuner", "random", "--max-trials", "4").output
    assert "Resuming a random search" in output and "2 already run" in output
    # The heap frozen during the trials (tuner.search.frozen_survivors) is thawed afterwards, so
    # a notebook's later garbage is collected again.
    assert gc.get_freeze_count() == 0
    after = {p.parent.name: p.read_text() for p in (run_dir / "kt").glob("trial_*/trial.json")}
    assert len(after) == 4
    assert all(after[name] == text for name, text in before.items())
    log = [json.loads(line) for line in (run_dir / "trial_log.jsonl").read_text().splitlines()]
    assert sorted(entry["trial_id"] for entry in log) == sorted(
        after_name[6:] for after_name in after
    )
    # Once the budget is spent, running again trains nothing.
    output = tune(runner, run_dir, tiny_data_dir, "--tuner", "random", "--max-trials", "4").output
    assert "0 run now" in output


def test_resume_under_another_tuner_id_keeps_the_finished_trials(tiny_data_dir, tmp_path,
                                                                 monkeypatch):
    # KerasTuner reloads its oracle only from a project its own tuner id saved: a search resumed
    # by a chief or by workers (other ids than tuner0's) started again at trial 0, overwriting.
    run_dir = tmp_path / "run"
    runner = CliRunner()
    tune(runner, run_dir, tiny_data_dir, "--tuner", "random", "--max-trials", "2")
    before = {p.parent.name: p.read_text() for p in (run_dir / "kt").glob("trial_*/trial.json")}
    monkeypatch.setenv("KERASTUNER_TUNER_ID", "worker7")
    output = tune(runner, run_dir, tiny_data_dir, "--tuner", "random", "--max-trials", "3").output
    assert "2 already run" in output and "1 run now" in output
    after = {p.parent.name: p.read_text() for p in (run_dir / "kt").glob("trial_*/trial.json")}
    assert sorted(after) == ["trial_0", "trial_1", "trial_2"]
    assert all(after[name] == text for name, text in before.items())
    log = [json.loads(line)["trial_id"]
           for line in (run_dir / "trial_log.jsonl").read_text().splitlines()]
    assert sorted(log) == ["0", "1", "2"]


def test_mismatched_resume_is_refused_with_the_differences(tiny_data_dir, tmp_path):
    run_dir = tmp_path / "run"
    runner = CliRunner()
    tune(runner, run_dir, tiny_data_dir, "--tuner", "random", "--max-trials", "1")
    result = tune(
        runner,
        run_dir,
        tiny_data_dir,
        "--tuner",
        "bayesian",
        "--max-trials",
        "1",
        "--seed",
        "5",
        expect=1,
    )
    assert result.output.startswith(
        f"Error: Run directory {run_dir} was created with other settings, so resuming it would mix "
        "incomparable trials:\n"
        "  - tuner: run directory has 'random', this command asks for 'bayesian'\n"
        "  - seed: run directory has 0, this command asks for 5\n"
    )
    assert "--overwrite" in result.output
    # --overwrite starts again.
    output = tune(
        runner, run_dir, tiny_data_dir, "--tuner", "bayesian", "--max-trials", "1", "--overwrite"
    ).output
    assert "Starting a bayesian search" in output


def test_fixed_hyperparameters_hold_in_every_trial_and_are_part_of_the_run(tiny_data_dir,
                                                                           tmp_path):
    run_dir = tmp_path / "run"
    runner = CliRunner()
    fixes = ["--fix", "optimizer=adamw", "--fix", "batch_size=64", "--fix", "augment=false"]
    output = tune(runner, run_dir, tiny_data_dir, "--tuner", "random", "--max-trials", "3",
                  *fixes).output
    trials = pd.read_csv(run_dir / "trials.csv")
    assert len(trials) == 3
    assert set(trials["optimizer"]) == {"adamw"} and set(trials["batch_size"]) == {64}
    assert set(trials["augment"]) == {False}
    # The first trial is the space's default point with the fixed values, not the textbook.
    assert trials.loc[trials["is_textbook"], "learning_rate"].tolist() == [0.01]
    assert "\ndefault " in output and "\ntextbook " not in output
    assert read_top_config(run_dir / "top_configs" / "rank_1.yaml").hyperparameters[
        "optimizer"] == "adamw"
    # Another set of fixed values is another search: refused on resume.
    result = tune(runner, run_dir, tiny_data_dir, "--tuner", "random", "--max-trials", "3",
                  "--fix", "optimizer=adam", expect=1)
    assert "fixed: run directory has" in result.output and "--overwrite" in result.output


@pytest.mark.parametrize("tuner", ["random", "bayesian", "hyperband"])
def test_a_fixed_conditional_hyperparameter_holds_in_every_trial(tiny_data_dir, tmp_path, tuner):
    """beta_1 and dropout_rate are declared in conditional scopes (Adam's, dropout's): the
    search's draw for those declarations must not replace the fixed values."""
    run_dir = tmp_path / "run"
    fixes = ["--fix", "optimizer=adam", "--fix", "beta_1=0.95", "--fix", "regularization=dropout",
             "--fix", "dropout_rate=0.5", "--fix", "num_layers=2", "--fix", "units_1=50"]
    budget = ["--max-trials", "3"] if tuner != "hyperband" else []
    tune(CliRunner(), run_dir, tiny_data_dir, "--tuner", tuner, *budget, *fixes)
    trials = pd.read_csv(run_dir / "trials.csv")
    assert len(trials) >= 3
    assert set(trials["beta_1"]) == {0.95} and set(trials["dropout_rate"]) == {0.5}
    assert set(trials["units_1"]) == {50} and set(trials["optimizer"]) == {"adam"}
    rank_1 = read_top_config(run_dir / "top_configs" / "rank_1.yaml").hyperparameters
    assert (rank_1["beta_1"], rank_1["dropout_rate"], rank_1["units_1"]) == (0.95, 0.5, 50)


@pytest.mark.parametrize("fixes, expected", [
    (["optimizer=adam", "momentum=0.9"],
     "--fix momentum=0.9 would change nothing: momentum is used only when optimizer is sgd"),
    (["units_0=16", "units_0=17"], "units_0 is given twice (units_0=16 and units_0=17)"),
    (["units_0=300.0"], "--fix units_0=300.0: expected a whole number."),
    (["learning_rate=1e-9"], "--fix learning_rate=1e-09: expected a value from 0.0001 to 0.3."),
])
def test_a_fix_that_cannot_mean_what_it_says_is_refused(tmp_path, fixes, expected):
    (tmp_path / "data").mkdir()
    result = CliRunner().invoke(main, [
        "tune", "mlp", "--run-dir", str(tmp_path / "run"), "--data-dir", str(tmp_path / "data"),
        *[part for fix in fixes for part in ("--fix", fix)]])
    assert result.exit_code == 2, result.output
    assert expected in result.output and "Traceback" not in result.output
    assert not (tmp_path / "run").exists()


def test_a_fix_in_exponent_notation_is_a_number(tiny_data_dir, tmp_path):
    run_dir = tmp_path / "run"
    tune(CliRunner(), run_dir, tiny_data_dir, "--tuner", "random", "--max-trials", "1",
         "--fix", "learning_rate=2e-3")
    assert pd.read_csv(run_dir / "trials.csv")["learning_rate"].tolist() == [0.002]


def test_a_run_whose_settings_file_is_gone_is_not_resumed_with_any_settings(tiny_data_dir,
                                                                            tmp_path):
    run_dir = tmp_path / "run"
    tune(CliRunner(), run_dir, tiny_data_dir, "--tuner", "random", "--max-trials", "2")
    (run_dir / "run.yaml").unlink()
    trials = sorted(p.read_text() for p in run_dir.glob("kt/trial_*/trial.json"))
    result = tune(CliRunner(), run_dir, tiny_data_dir, "--tuner", "random", "--max-trials", "3",
                  "--max-epochs", "1", expect=1)
    assert f"{run_dir / 'run.yaml'} is missing, but {run_dir / 'kt'} holds" in result.output
    assert "Restore run.yaml" in result.output and "--overwrite" in result.output
    assert sorted(p.read_text() for p in run_dir.glob("kt/trial_*/trial.json")) == trials


def test_more_hyperband_iterations_extend_a_finished_search_and_fewer_are_refused(
        tiny_data_dir, tmp_path):
    run_dir = tmp_path / "run"
    tune(CliRunner(), run_dir, tiny_data_dir)
    first = pd.read_csv(run_dir / "trials.csv", dtype={"trial_id": str})
    extended = tune(CliRunner(), run_dir, tiny_data_dir, "--hyperband-iterations", "2").output
    after = pd.read_csv(run_dir / "trials.csv", dtype={"trial_id": str})
    assert len(after) == 2 * len(first) and f"{len(first)} already run" in extended
    kept = after.iloc[:len(first)]  # the first sweep's trials as they were
    assert kept["trial_id"].tolist() == first["trial_id"].tolist()
    assert kept["score"].tolist() == first["score"].tolist()
    refused = tune(CliRunner(), run_dir, tiny_data_dir, expect=1).output
    assert "hyperband_iterations: run directory has 2, this command asks for 1" in refused


@pytest.mark.parametrize("fix, expected", [
    ("optimiser=adam", "--fix optimiser: not a hyperparameter of the 'mlp' space. Its "
                       "hyperparameters: activation, augment, batch_norm, batch_size"),
    ("optimizer=lbfgs", "--fix optimizer=lbfgs: expected one of sgd, adam, nadam, rmsprop, adamw."),
    ("batch_size=100", "--fix batch_size=100: expected one of 16, 32, 64, 128, 256."),
    ("units_0=4096", "--fix units_0=4096: expected a value from 16 to 1024."),
    ("num_layers=2.5", "--fix num_layers=2.5: expected a whole number."),
    ("batch_norm=maybe", "--fix batch_norm=maybe: expected true or false."),
    ("learning_rate", "Expected NAME=VALUE (e.g. learning_rate=0.001), got 'learning_rate'."),
])
def test_a_bad_fix_exits_2_before_any_data_is_read(fix, expected, tmp_path):
    (tmp_path / "nowhere").mkdir()  # a folder without the data
    result = CliRunner().invoke(main, ["tune", "mlp", "--run-dir", str(tmp_path / "run"),
                                       "--data-dir", str(tmp_path / "nowhere"), "--fix", fix])
    assert result.exit_code == 2, result.output
    assert expected in result.output and "Traceback" not in result.output
    assert not (tmp_path / "run").exists()


def test_builds_freeze_the_heap_only_inside_a_search():
    from tuner.engine import _freeze_survivors, frozen_survivors

    _freeze_survivors()  # a tuner used on its own, outside run_search: nothing frozen
    assert gc.get_freeze_count() == 0
    with frozen_survivors():
        with frozen_survivors():
            _freeze_survivors()
        assert gc.get_freeze_count() > 0  # the outer search still runs
    assert gc.get_freeze_count() == 0


def test_second_process_on_the_same_run_dir_is_refused(tiny_data_dir, tmp_path):
    run_dir = tmp_path / "run"
    with run_lock(run_dir):
        result = tune(CliRunner(), run_dir, tiny_data_dir, expect=1)
    assert result.output.startswith(
        f"Error: Run directory {run_dir} is in use by another "
        f"hpsearch process (pid {os.getpid()}, since "
    )
    assert not (run_dir / "kt").exists()


def test_unknown_space_and_bad_options_exit_2(tmp_path):
    runner = CliRunner()
    result = runner.invoke(main, ["tune", "mpl", "--run-dir", str(tmp_path)])
    assert result.exit_code == 2 and result.output.startswith(
        "Error: Unknown search space 'mpl'. Expected one of: clock, cnn, mlp, or your own as "
        "path/to/file.py:NAME or package.module:NAME."), result.output
    result = runner.invoke(main, ["tune", "mlp", "--run-dir", str(tmp_path), "--subset", "lots"])
    assert result.exit_code == 2 and "expected a count like 6000" in result.output
    result = runner.invoke(main, ["tune", "mlp", "--run-dir", str(tmp_path), "--factor", "1"])
    assert result.exit_code == 2


def test_missing_dataset_exits_1_without_traceback(tmp_path, monkeypatch):
    from datasets import fashion_mnist

    monkeypatch.setattr(fashion_mnist, "DEBIAN_DIR", tmp_path / "none")
    (tmp_path / "empty").mkdir()
    result = CliRunner().invoke(
        main,
        ["tune", "mlp", "--run-dir", str(tmp_path / "run"), "--data-dir", str(tmp_path / "empty")],
    )
    assert result.exit_code == 1
    assert result.output.startswith("Error: Dataset 'fashion_mnist' was not found.")
    assert "Traceback" not in result.output


class _DivergingSpace(SearchSpace):
    """Its default point scales the inputs by NaN, so the loss is NaN from the first step."""

    name = "diverging"

    def build(self, hp):
        poisoned = hp.Boolean("poisoned", default=True)
        scale = float("nan") if poisoned else 1.0
        self._declare_batch_size(hp)
        model = keras.Sequential(
            [
                keras.Input(self.input_shape),
                keras.layers.Flatten(),
                keras.layers.Rescaling(scale),
                keras.layers.Dense(self.num_classes, activation="softmax"),
            ]
        )
        model.compile(
            optimizer=keras.optimizers.SGD(0.01),
            metrics=["accuracy"],
            loss="sparse_categorical_crossentropy",
        )
        return model


def test_diverging_trial_is_recorded_failed_and_search_goes_on(tiny_data_dir, tmp_path):
    search_spaces.register("diverging", _DivergingSpace)
    lines = []
    result = run_search(
        RunConfig(space="diverging", tuner="random", max_trials=2, max_epochs=2, subset=None),
        tmp_path / "run",
        data_dir=tiny_data_dir,
        progress=lines.append,
    )
    statuses = result.trials.set_index("trial_id")["status"].tolist()
    assert statuses == ["FAILED", "COMPLETED"]
    assert "diverged" in result.trials["message"].iloc[0]
    assert [c.hyperparameters["poisoned"] for c in result.top_configs] == [False]
    assert any("-> FAILED" in line for line in lines)


@pytest.mark.slow
def test_resume_after_kill_minus_9_retrains_no_completed_trial(tmp_path):
    data_dir = write_fashion_mnist(tmp_path / "data", train=3000, test=20)
    run_dir = tmp_path / "run"
    command = [sys.executable, "-m", "tuner.cli", "tune", "mlp", "--run-dir", str(run_dir),
               "--data-dir", str(data_dir),
               *"--subset all --tuner random --max-trials 4 --max-epochs 8 --quiet".split()]
    env = {**os.environ, "HPSEARCH_NO_DOWNLOAD": "1"}
    process = subprocess.Popen(
        command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    log = run_dir / "trial_log.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (log.exists() and log.read_text().count("\n") >= 1):
        time.sleep(0.05)
    time.sleep(1.0)  # well inside the second trial (8 epochs of 2,700 images)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    finished_before = [json.loads(line)["trial_id"] for line in log.read_text().splitlines()]
    statuses = {
        json.loads(p.read_text())["trial_id"]: json.loads(p.read_text())["status"]
        for p in (run_dir / "kt").glob("trial_*/trial.json")
    }
    assert "RUNNING" in statuses.values(), f"the kill did not land inside a trial: {statuses}"
    completed_before = {t for t, s in statuses.items() if s == "COMPLETED"}
    assert completed_before and completed_before <= set(finished_before)

    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    trained = [json.loads(line)["trial_id"] for line in log.read_text().splitlines()]
    assert all(trained.count(trial_id) == 1 for trial_id in completed_before)
    final = pd.read_csv(run_dir / "trials.csv", dtype={"trial_id": str})
    assert len(final) == 4 and set(final["status"]) == {"COMPLETED"}
    # The interrupted trial ran in the resumed call, and is counted there.
    ended = len(completed_before)
    assert f"4 trials (4 completed, 0 failed), {4 - ended} run now" in result.stdout, result.stdout


def test_hyperband_trains_the_textbook_model_at_full_budget_when_not_promoted(
    tiny_data_dir, tmp_path
):
    # The textbook point of this space diverges, so it is never promoted from the first bracket;
    # it must still be trained in the full-budget bracket for a fair best-vs-textbook comparison.
    search_spaces.register("diverging", _DivergingSpace)
    result = run_search(
        RunConfig(space="diverging", tuner="hyperband", max_epochs=2, factor=2, subset=None),
        tmp_path / "run",
        data_dir=tiny_data_dir,
        progress=None,
    )
    textbook = result.trials[result.trials["is_textbook"]]
    assert textbook["trial_id"].iloc[0] == result.trials["trial_id"].iloc[0]
    assert sorted(textbook["bracket"].tolist()) == [0, 1]


@pytest.mark.parametrize("space", ["mlp", "cnn"])
def test_batch_norm_uses_fast_moving_statistics(space):
    # Short trials (a few hundred steps) must be evaluated with statistics close to training's.
    import keras_tuner as kt

    hp = kt.HyperParameters()
    hp.values["batch_norm"] = True
    model = search_spaces.get(space, input_shape=(28, 28, 1), num_classes=10).build(hp)
    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert norms and {layer.momentum for layer in norms} == {0.9}


def test_cnn_widths_stop_at_the_textbook_s_widest_layer():
    import keras_tuner as kt

    hp = kt.HyperParameters()
    hp.values.update(filters=128, conv_blocks=3)
    model = search_spaces.get("cnn", input_shape=(28, 28, 1), num_classes=10).build(hp)
    widths = [layer.filters for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert widths == [128, 256, 256, 256, 256, 256, 256]
    textbook = search_spaces.get("cnn", input_shape=(28, 28, 1), num_classes=10)
    widths = [layer.filters for layer in textbook.build(kt.HyperParameters()).layers
              if isinstance(layer, keras.layers.Conv2D)]
    assert widths == [64, 128, 128, 256, 256]


def test_bayesian_search_leaves_two_thirds_of_its_budget_to_the_model():
    # KerasTuner's default (3 x the number of hyperparameters, ~70 for the MLP space) made every
    # search of under 70 trials a random search.
    from tuner.config import RunConfig
    from tuner.engine import _BayesianTuner, _RandomTuner

    options = _BayesianTuner._oracle_options(None, RunConfig(tuner="bayesian", max_trials=30))
    assert options == {"num_initial_points": 10}
    assert _BayesianTuner._oracle_options(None, RunConfig(tuner="bayesian", max_trials=4)) == {
        "num_initial_points": 3
    }
    assert _RandomTuner._oracle_options(None, RunConfig(tuner="random")) == {}


def test_top_configs_are_distinct_configurations_not_one_trial_and_its_parents():
    # Hyperband: trial 3 was promoted from trial 1 (same values); both outscore trial 2.
    import pandas as pd

    from tuner.export import top_configs_of

    trials = pd.DataFrame({
        "trial_id": ["0", "1", "2", "3"],
        "status": ["COMPLETED"] * 4,
        "score": [0.70, 0.85, 0.80, 0.90],
        "best_step": [0, 2, 2, 5],
        "epochs": [3, 3, 3, 6],
    })
    a = {"units": 64, "optimizer": "adam"}
    values = {
        "0": {"units": 16, "optimizer": "sgd", "tuner/epochs": 3},
        "1": {**a, "tuner/epochs": 3, "tuner/initial_epoch": 0},
        "2": {"units": 32, "optimizer": "adam", "tuner/epochs": 3},
        "3": {**a, "tuner/epochs": 9, "tuner/initial_epoch": 3, "tuner/trial_id": "1"},
    }
    top = top_configs_of(trials, values, "mlp", "fashion_mnist", "val_accuracy", "max")
    assert [(t.rank, t.trial_id, t.epochs) for t in top] == [(1, "3", 9), (2, "2", 3), (3, "0", 1)]
    assert top[0].hyperparameters == a


def test_seed_zero_gives_the_same_trials_every_time():
    import keras_tuner as kt

    from tuner.config import oracle_seed
    from tuner.oracles import _RandomOracle

    hp = kt.HyperParameters()
    hp.Float("learning_rate", 1e-4, 1e-1, sampling="log")
    hp.Int("units", 16, 1024)

    def draws():
        oracle = _RandomOracle(objective=kt.Objective("val_accuracy", "max"), max_trials=5,
                               seed=oracle_seed(0), hyperparameters=hp.copy())
        return [oracle._propose_values() for _ in range(3)]

    assert draws() == draws()


def test_neighbouring_seeds_draw_different_searches():
    """KerasTuner steps its seed by one per value drawn: seeds one apart must not share trials."""
    import keras_tuner as kt

    from tuner.config import oracle_seed
    from tuner.oracles import _RandomOracle

    hp = kt.HyperParameters()
    hp.Choice("optimizer", ["adam", "sgd"])
    with hp.conditional_scope("optimizer", ["sgd"]):
        hp.Float("momentum", 0.0, 0.99)
    hp.Float("learning_rate", 1e-4, 1e-1, sampling="log")
    hp.Int("units", 16, 1024)

    def draws(seed):
        oracle = _RandomOracle(objective=kt.Objective("val_accuracy", "max"), max_trials=50,
                               seed=oracle_seed(seed), hyperparameters=hp.copy())
        return [oracle._propose_values()["learning_rate"] for _ in range(40)]

    searches = [set(draws(seed)) for seed in range(4)]
    for index, one in enumerate(searches):
        for other in searches[index + 1:]:
            assert not one & other
    assert 0 < oracle_seed(10**12) < 2**32


def test_status_tells_a_stopped_search_from_a_running_one(tiny_data_dir, tmp_path):
    """After a kill -9 a trial stays RUNNING on disk; only a held lock means it still runs."""
    from tuner import rundir

    run_dir = tmp_path / "run"
    tune(CliRunner(), run_dir, tiny_data_dir, "--tuner", "random", "--max-trials", "2")
    trial = run_dir / "kt" / "trial_1" / "trial.json"
    state = json.loads(trial.read_text())
    trial.write_text(json.dumps({**state, "status": "RUNNING"}))  # as a kill mid-trial leaves it
    stopped = CliRunner().invoke(main, ["status", str(run_dir), "--watch", "1"])
    assert stopped.exit_code == 0, stopped.output
    assert "stopped. 1/2 trials done (1 completed, 0 failed), 0 running" in stopped.output
    assert "run the same `hpsearch tune` command again to resume it" in stopped.output
    assert stopped.output.count("stopped.") == 1  # --watch ends: nothing will change
    with rundir.run_lock(run_dir):  # a live search holds the lock
        running = CliRunner().invoke(main, ["status", str(run_dir)])
    assert "running. 1/2 trials done (1 completed, 0 failed), 1 running" in running.output
    assert "running: trial 1 on -" in running.output


def test_hyperband_settings_do_not_make_other_tuners_mismatch(tiny_data_dir, tmp_path):
    run_dir = tmp_path / "run"
    tune(CliRunner(), run_dir, tiny_data_dir, "--tuner", "random", "--max-trials", "1")
    resumed = tune(CliRunner(), run_dir, tiny_data_dir, "--tuner", "random", "--max-trials", "2",
                   "--factor", "4", "--hyperband-iterations", "3").output
    assert "1 already run" in resumed and "1 run now" in resumed


def test_the_cnn_space_tunes_l1_and_l2_penalties_and_its_default_has_neither():
    import keras_tuner as kt

    space = search_spaces.get("cnn", input_shape=(28, 28, 1), num_classes=10)
    textbook = space.build(kt.HyperParameters())
    assert textbook.count_params() == 1_413_834  # the textbook CNN, no penalty anywhere
    assert all(getattr(layer, "kernel_regularizer", None) is None for layer in textbook.layers)
    for values, expected in (({"l1": True, "l1_factor": 1e-5}, (1e-5, 0.0)),
                             ({"l2": True, "l2_factor": 1e-4}, (0.0, 1e-4)),
                             ({"l1": True, "l1_factor": 1e-5, "l2": True, "l2_factor": 1e-4},
                              (1e-5, 1e-4))):
        hp = kt.HyperParameters()
        hp.values.update(values)
        model = space.build(hp)
        hidden = [layer for layer in model.layers
                  if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense))][:-1]
        penalties = {(round(float(layer.kernel_regularizer.l1), 8),
                      round(float(layer.kernel_regularizer.l2), 8)) for layer in hidden}
        assert penalties == {expected}, values


def test_the_bayesian_oracle_learns_from_its_failed_trials():
    """A diverged trial enters the Gaussian process at the worst score seen, so that the oracle
    does not propose its neighbours again (KerasTuner leaves failed trials out)."""
    import keras_tuner as kt

    from tuner.oracles import _BayesianOracle

    hp = kt.HyperParameters()
    hp.Float("learning_rate", 1e-4, 1.0, sampling="log")
    oracle = _BayesianOracle(objective=kt.Objective("val_accuracy", "max"), max_trials=20,
                             seed=1, num_initial_points=2, hyperparameters=hp)
    for trial_id, (rate, status, score) in enumerate([(1e-3, "COMPLETED", 0.8),
                                                       (1e-2, "COMPLETED", 0.6),
                                                       (0.9, "FAILED", None)]):
        trial = kt.engine.trial.Trial(hp.copy(), trial_id=str(trial_id), status=status)
        trial.hyperparameters.values["learning_rate"] = rate
        trial.score = score
        oracle.trials[trial.trial_id] = trial
    x, y = oracle._vectorize_trials()
    # Minimized inside KerasTuner: -0.8 and -0.6 for the completed ones, then the failed one
    # (learning rate 0.9) at the worst of them.
    assert y.tolist() == [-0.8, -0.6, -0.6]
    assert x[2][0] == pytest.approx(hp.space[0].value_to_prob(0.9))
