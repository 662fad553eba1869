"""`hpsearch transfer`: rebuild exported configurations on another dataset, resume, errors."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

import search_spaces
from top_configs import hyperparameters_for, read_top_config
from tuner.cli import main
from tuner.config import RunConfig
from tuner.search import run_search


@pytest.fixture(scope="module")
def tune_run(tiny_data_dir, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("tune") / "mlp"
    run_search(
        RunConfig(space="mlp", tuner="hyperband", max_epochs=2, factor=2, subset=None),
        run_dir,
        data_dir=tiny_data_dir,
        progress=None,
    )
    return run_dir


def transfer(*args, expect=0):
    result = CliRunner().invoke(main, ["transfer", *map(str, args)], catch_exceptions=expect != 0)
    assert result.exit_code == expect, result.output
    return result


def test_transfer_rebuilds_for_cifar10_shape_and_resumes(tune_run, tiny_data_dir, tmp_path):
    out = tmp_path / "transfer"
    output = transfer(tune_run, "--dataset", "cifar10", "--run-dir", out, "--data-dir",
                      tiny_data_dir, "--seeds", "1", "--epochs", "2").output
    ranked = [read_top_config(tune_run / "top_configs" / f"rank_{i}.yaml") for i in (1, 2, 3)]
    textbook = search_spaces.get("mlp", input_shape=(28, 28, 1), num_classes=10).textbook_values()
    # The textbook model gets its own row unless the search ranked it in the top 3 itself.
    names = [f"rank_{config.rank}" for config in ranked]
    textbook_name = next(
        (n for n, c in zip(names, ranked) if c.hyperparameters == textbook), "textbook"
    )
    if textbook_name == "textbook":
        names.append("textbook")
    rows = pd.read_csv(out / "transfer.csv", dtype={"trial_id": str})
    assert list(rows["config"].unique()) == names
    assert len(rows) == len(names) and sorted(rows["seed"].unique()) == [0]
    assert set(rows["dataset"]) == {"cifar10"} and set(rows["source_dataset"]) == {"fashion_mnist"}
    assert rows["test_accuracy"].between(0, 1).all() and rows["epochs"].between(1, 2).all()
    # Each configuration was rebuilt for 32x32x3 inputs: its parameter count is that model's.
    for name, config in zip(names, ranked):
        hypermodel = search_spaces.get("mlp", input_shape=(32, 32, 3), num_classes=10)
        expected = hypermodel.build(hyperparameters_for(config, hypermodel)).count_params()
        assert set(rows.loc[rows.config == name, "params"]) == {expected}
    assert set(rows.loc[rows.config == textbook_name, "params"]) == {
        3072 * 300 + 300 + 300 * 100 + 100 + 1010
    }
    # One line per epoch while a configuration trains, the last without a time left.
    epoch_lines = [line.strip() for line in output.splitlines() if line.strip().startswith("epoch ")]
    # (patience 3 > 2 epochs: every configuration trains both)
    assert [line.split()[1] for line in epoch_lines] == ["1/2", "2/2"] * len(names)
    assert all("val_accuracy" in line and "s/epoch" in line for line in epoch_lines)
    assert any(line.startswith("epoch 2/2") and "left" not in line for line in epoch_lines)

    output = transfer(tune_run, "--dataset", "cifar10", "--run-dir", out, "--data-dir",
                      tiny_data_dir, "--seeds", "2", "--epochs", "2").output
    assert f"{len(names)} already done, {len(names)} to run" in output and "±" in output
    rows = pd.read_csv(out / "transfer.csv")
    assert len(rows) == 2 * len(names) and sorted(rows["seed"].unique()) == [0, 1]
    summary = pd.read_csv(out / "summary.csv")
    assert summary["seeds"].tolist() == [2] * len(names)


def test_transfer_on_the_source_dataset_from_yaml_files(tune_run, tiny_data_dir, tmp_path):
    out = tmp_path / "same"
    transfer(tune_run / "top_configs" / "rank_1.yaml", "--dataset", "fashion_mnist",
             "--run-dir", out, "--data-dir", tiny_data_dir, "--no-textbook", "--epochs", "1")
    rows = pd.read_csv(out / "transfer.csv")
    assert rows["config"].tolist() == ["rank_1"] and rows["dataset"].tolist() == ["fashion_mnist"]


def test_files_of_the_same_name_from_two_runs_keep_apart(tune_run, tiny_data_dir, tmp_path):
    other = tmp_path / "other" / "top_configs"
    other.mkdir(parents=True)
    (other / "rank_1.yaml").write_text(
        (tune_run / "top_configs" / "rank_2.yaml").read_text().replace("rank: 2", "rank: 1"))
    out = tmp_path / "both"
    transfer(tune_run / "top_configs" / "rank_1.yaml", other / "rank_1.yaml", "--dataset",
             "fashion_mnist", "--run-dir", out, "--data-dir", tiny_data_dir, "--no-textbook",
             "--epochs", "1")
    rows = pd.read_csv(out / "transfer.csv")
    assert rows["config"].tolist() == [f"{tune_run.name}/rank_1", "other/rank_1"]
    assert rows["config_id"].nunique() == 2


def test_final_trains_on_training_and_validation_images_for_the_whole_budget(
    tune_run, tiny_data_dir, tmp_path
):
    import datasets

    data = datasets.load("fashion_mnist", data_dir=tiny_data_dir)
    out = tmp_path / "final"
    # patience 1 would stop a validated training early; --final has nothing to stop on.
    output = transfer(tune_run / "top_configs" / "rank_1.yaml", "--dataset", "fashion_mnist",
                      "--run-dir", out, "--data-dir", tiny_data_dir, "--no-textbook", "--final",
                      "--epochs", "3", "--patience", "1").output
    assert f"on all {len(data.y_train) + len(data.y_val)} training and validation images" in output
    epoch_lines = [line.strip() for line in output.splitlines() if line.strip().startswith("epoch ")]
    assert [line.split()[1] for line in epoch_lines] == ["1/3", "2/3", "3/3"]
    assert not any("val_accuracy" in line for line in epoch_lines)
    rows = pd.read_csv(out / "transfer.csv")
    assert rows["epochs"].tolist() == [3] and rows["val_accuracy"].isna().all()
    assert rows["test_accuracy"].between(0, 1).all()
    # The table shows no validation accuracy rather than "nan".
    table_line = next(line for line in output.splitlines() if line.startswith("rank_1 "))
    assert "nan" not in table_line and " - " in table_line
    # A validated transfer cannot resume a final one: their rows measure different things.
    result = transfer(tune_run / "top_configs" / "rank_1.yaml", "--dataset", "fashion_mnist",
                      "--run-dir", out, "--data-dir", tiny_data_dir, "--no-textbook",
                      "--epochs", "3", expect=1)
    assert "final: run directory has True, this command asks for False" in result.output


def test_changed_settings_are_refused(tune_run, tiny_data_dir, tmp_path):
    out = tmp_path / "transfer"
    transfer(tune_run / "top_configs" / "rank_1.yaml", "--run-dir", out, "--data-dir",
             tiny_data_dir, "--epochs", "1", "--no-textbook")
    result = transfer(tune_run / "top_configs" / "rank_1.yaml", "--run-dir", out, "--data-dir",
                      tiny_data_dir, "--epochs", "2", "--no-textbook", expect=1)
    # The message of every kind of run: each differing setting, saved and requested.
    assert "epochs: run directory has 1, this command asks for 2" in result.output


def _broken(tune_run, tmp_path, change):
    document = yaml.safe_load((tune_run / "top_configs" / "rank_1.yaml").read_text())
    change(document)
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda d: d.pop("epochs"), "is missing the field(s) epochs."),
        (
            lambda d: d["hyperparameters"].update(units_9=5),
            "unknown hyperparameter(s) units_9 for the 'mlp' search space",
        ),
        (
            lambda d: d["hyperparameters"].update(units_0="wide"),
            "hyperparameter 'units_0' is 'wide'; expected a whole number.",
        ),
        (
            lambda d: d["hyperparameters"].update(units_0=300.0),
            "hyperparameter 'units_0' is 300.0; expected a whole number.",
        ),
        (
            lambda d: d["hyperparameters"].update(batch_size=32.0),
            "hyperparameter 'batch_size' is 32.0; expected one of 16, 32, 64, 128, 256.",
        ),
        (
            lambda d: d["hyperparameters"].update(optimizer="adagrad"),
            "hyperparameter 'optimizer' is 'adagrad'; expected one of sgd, adam",
        ),
        (
            lambda d: d["hyperparameters"].update(learning_rate=5.0),
            "hyperparameter 'learning_rate' is 5.0; expected a value from 0.0001 to 0.3.",
        ),
        (
            lambda d: d["hyperparameters"].update(learning_rate="5e-3x"),
            "hyperparameter 'learning_rate' is '5e-3x'; expected a number.",
        ),
        (lambda d: d["hyperparameters"].update({5: 1}),
         "hyperparameter names should be text, got 5 (int)"),
        (lambda d: d.update(epochs=-3), "field 'epochs' should be 0 (the default) or more, got -3."),
        (lambda d: d.update(rank="first"), "field 'rank' should be int, got 'first' (str)."),
        (
            lambda d: d.update(search_space="clock"),
            "is a 'clock' configuration: transfer measures classifiers and spaces of your own; "
            "use `hpsearch clock compare` for clock models.",
        ),
        (
            lambda d: d.update(trial_id="../../x"),
            "field 'trial_id' should be letters, digits, '-' and '_'",
        ),
        (
            lambda d: d.update(search_space="gone.py:build_model"),
            "cannot be rebuilt: Space 'gone.py:build_model': file gone.py does not exist.",
        ),
    ],
)
def test_invalid_configuration_names_file_and_field(
    change, message, tune_run, tiny_data_dir, tmp_path
):
    path = _broken(tune_run, tmp_path, change)
    result = transfer(path, "--run-dir", tmp_path / "out", "--data-dir", tiny_data_dir,
                      "--epochs", "1", expect=1)
    assert result.output.startswith("Error: ") and message in result.output
    assert "broken" in result.output and "Traceback" not in result.output


def test_a_hand_written_exponent_is_read_as_the_number_it_spells(tune_run, tmp_path):
    # YAML 1.1 (PyYAML) reads 1e-3 without a decimal point as a string.
    path = _broken(tune_run, tmp_path, lambda d: d["hyperparameters"].update(learning_rate=0))
    path.write_text(path.read_text().replace("learning_rate: 0", "learning_rate: 1e-3"))
    assert read_top_config(path).hyperparameters["learning_rate"] == 0.001


def test_unreadable_yaml_and_missing_source(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("rank: [1, 2\n")
    result = transfer(path, "--run-dir", tmp_path / "out", expect=1)
    assert result.output.startswith(f"Error: {path} is not valid YAML:")
    result = transfer(tmp_path / "nope.yaml", "--run-dir", tmp_path / "out", expect=2)
    assert "does not exist" in result.output


def test_config_of_another_space_is_refused_by_rebuild(tune_run):
    config = read_top_config(tune_run / "top_configs" / "rank_1.yaml")
    cnn = search_spaces.get("cnn", input_shape=(32, 32, 3), num_classes=10)
    from top_configs import TopConfigError

    with pytest.raises(
        TopConfigError,
        match="exported from the 'mlp' search space and cannot be rebuilt with 'cnn'",
    ):
        hyperparameters_for(config, cnn)


def test_top_configuration_equal_to_the_textbook_model_is_not_trained_twice(
    tune_run, tiny_data_dir, tmp_path
):
    textbook = search_spaces.get("mlp", input_shape=(28, 28, 1), num_classes=10).textbook_values()
    path = _broken(tune_run, tmp_path, lambda d: d.update(hyperparameters=textbook))
    result = transfer(path, "--run-dir", tmp_path / "out", "--data-dir", tiny_data_dir,
                      "--epochs", "1")
    assert "broken is the textbook model itself: no separate textbook row." in result.output
    assert pd.read_csv(tmp_path / "out" / "transfer.csv")["config"].tolist() == ["broken"]


def test_a_changed_source_is_refused_instead_of_averaged(tune_run, tiny_data_dir, tmp_path):
    # Issue 13: a resumed search can rank another trial as rank_1; the transfer must not average
    # the old and the new model under the name "rank_1".
    import shutil

    source = tmp_path / "source"
    shutil.copytree(tune_run, source)
    out = tmp_path / "transfer"
    arguments = [source / "top_configs" / "rank_1.yaml", "--run-dir", out, "--data-dir",
                 tiny_data_dir, "--epochs", "1", "--no-textbook", "--dataset", "fashion_mnist"]
    transfer(*arguments)
    rows = pd.read_csv(out / "transfer.csv", dtype={"trial_id": str})
    first = read_top_config(source / "top_configs" / "rank_1.yaml")
    assert rows["config_id"].tolist() == [f"{first.trial_id}-" + rows["config_id"][0][-10:]]

    document = yaml.safe_load((source / "top_configs" / "rank_1.yaml").read_text())
    other = read_top_config(source / "top_configs" / "rank_2.yaml")
    document.update(trial_id=other.trial_id, hyperparameters=other.hyperparameters)
    (source / "top_configs" / "rank_1.yaml").write_text(yaml.safe_dump(document))
    result = transfer(*arguments, "--seeds", "2", expect=1)
    assert "made from other configurations under the same names" in result.output
    assert f"rank_1: run directory has configuration '{first.trial_id}-" in result.output
    assert len(pd.read_csv(out / "transfer.csv")) == 1


def test_one_seed_has_no_standard_deviation_anywhere(tmp_path):
    from analysis.history import transfer_summary
    from tuner.transfer import summarize

    rows = pd.DataFrame({"config": ["rank_1"], "config_id": ["3-abc"], "rank": [1],
                         "trial_id": ["3"], "search_space": ["mlp"], "source_score": [0.8],
                         "dataset": ["cifar10"], "seed": [0], "val_accuracy": [0.4],
                         "test_accuracy": [0.39], "epochs": [2], "params": [10],
                         "seconds_per_epoch": [1.0]})
    assert pd.isna(summarize(rows)["val_accuracy_std"][0])
    assert pd.isna(transfer_summary(rows)["val_accuracy_std"][0])


def test_textbook_score_follows_the_source_runs_direction(tmp_path):
    import json

    from tuner.config import write_run_config
    from tuner.transfer_configs import _textbook_score

    run_dir = tmp_path / "run"
    for trial_id, score in (("0", 0.5), ("1", 0.3)):  # the textbook model in two brackets
        folder = run_dir / "kt" / f"trial_{trial_id}"
        folder.mkdir(parents=True)
        (folder / "trial.json").write_text(json.dumps({
            "trial_id": trial_id, "hyperparameters": {"space": [], "values": {"units": 8}},
            "metrics": {"metrics": {}}, "score": score, "best_step": 0, "status": "COMPLETED",
            "message": None}))
    write_run_config(run_dir, RunConfig(objective="val_loss", direction="min"),
                     {"textbook_values": {"units": 8}})
    assert _textbook_score([run_dir], "mlp") == 0.3


def test_seeds_are_ensembled_from_their_saved_test_probabilities(tune_run, tiny_data_dir,
                                                                 tmp_path):
    import numpy as np

    import datasets

    labels = datasets.load("fashion_mnist", data_dir=tiny_data_dir).y_test
    out = tmp_path / "seeds"
    args = (tune_run / "top_configs" / "rank_1.yaml", "--dataset", "fashion_mnist", "--run-dir",
            out, "--data-dir", tiny_data_dir, "--no-textbook", "--epochs", "2")
    output = transfer(*args, "--seeds", "1").output
    header = next(line for line in output.splitlines() if line.startswith("config "))
    assert "ensemble" not in header  # one seed: nothing to ensemble, no column
    output = transfer(*args, "--seeds", "3").output
    rows = pd.read_csv(out / "transfer.csv", dtype={"config_id": str})
    files = [out / "predictions" / f"{r.config_id}_seed{r.seed}.npy" for r in rows.itertuples()]
    arrays = [np.load(path) for path in files]
    assert all(a.shape == (len(labels), 10) and a.dtype == np.float32 for a in arrays)
    assert np.allclose(arrays[0].sum(axis=1), 1, atol=1e-4)
    # Each row's test accuracy is its own file's; the ensemble is the mean of the three files.
    for row, probabilities in zip(rows.itertuples(), arrays):
        assert row.test_accuracy == pytest.approx(np.mean(probabilities.argmax(1) == labels))
    expected = np.mean(np.mean(arrays, axis=0).argmax(1) == labels)
    summary = pd.read_csv(out / "summary.csv")
    assert summary["ensemble_seeds"].tolist() == [3]
    assert summary["ensemble_test_accuracy"].tolist() == [pytest.approx(expected)]
    header, line = (next(line for line in output.splitlines() if line.startswith(start))
                    for start in ("config ", "rank_1 "))
    assert "ensemble" in header and f"{expected:.4f} (x3)" in line

    # A seed without its file (a row written before predictions were kept) is left out.
    files[2].unlink()
    transfer(*args, "--seeds", "3")
    two = np.mean(np.mean(arrays[:2], axis=0).argmax(1) == labels)
    summary = pd.read_csv(out / "summary.csv")
    assert summary["ensemble_seeds"].tolist() == [2]
    assert summary["ensemble_test_accuracy"].tolist() == [pytest.approx(two)]

    # A file that does not fit the test set is named, with what to do, and no traceback.
    np.save(files[1], np.zeros((3, 10), dtype=np.float32))
    result = transfer(*args, "--seeds", "3", expect=1)
    assert files[1].name in result.output and "Delete it" in result.output
    assert "Traceback" not in result.output
