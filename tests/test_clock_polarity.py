"""The polarity of a fine-tune's images: chosen by the trained model, kept with the new model,
applied when it reads the time (``clock compare`` and ``tune clock`` with ``--init-from``)."""
from __future__ import annotations

import json
import shutil
import warnings

import keras
import numpy as np
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from datasets.clock import load_clock
from search_spaces.clock_heads import ClockHead
from search_spaces.clock_time import common_sense_error_minutes, labels_to_minutes
from tests.test_clock_init import clock_files, trained_run  # noqa: F401 (fixtures)
from tests.test_clock_models import _dark_is_sure_model, _pixels, tiny_clock_data
from tuner.cli import main
from tuner.clock_cli import clock_group
from tuner.clock_models import (POLARITY_SAMPLE, choose_polarity, load_init_source,
                                load_trained_model, read_model_card, read_times, with_polarity)
from tuner.config import InvalidSettingError, RunConfig, identity_defaults, read_run_config
from tuner.errors import UsageError
from tuner.clock_search import ClockSearchHooks, apply_polarity
from tuner.preparation import load_dataset


@pytest.fixture(autouse=True)
def _seeded(monkeypatch, tmp_path):
    keras.utils.set_random_seed(0)
    warnings.filterwarnings("ignore", message=".*currentThread.*", category=DeprecationWarning)
    monkeypatch.setenv("HPSEARCH_CACHE_DIR", str(tmp_path / "cache"))


def _filled(count: int, value: float) -> np.ndarray:
    return np.full((count, 8, 8, 1), value, np.float32)


def test_auto_negates_the_images_the_trained_model_is_surer_of_as_negatives():
    head = ClockHead("classification", num_classes=24)
    model = _dark_is_sure_model(sure_class=7)   # sure on dark images only
    light = choose_polarity(_filled(10, 0.9), "auto", model, head)
    assert (light.polarity, light.negated_share, light.images) == ("negated", 1.0, 10)
    assert light.describe() == ("negated (auto: the trained model was surer of the negative "
                                "for 100% of 10 training images)")
    dark = choose_polarity(_filled(10, 0.1), "auto", model, head)
    assert (dark.polarity, dark.negated_share) == ("as_is", 0.0)
    # A majority decides, read on a sample of at most POLARITY_SAMPLE images.
    mostly_dark = np.concatenate([_filled(180, 0.1), _filled(120, 0.9)])
    choice = choose_polarity(mostly_dark, "auto", model, head, seed=3)
    assert choice.polarity == "as_is" and choice.images == POLARITY_SAMPLE
    assert 0.3 < choice.negated_share < 0.5


def test_polarity_taken_as_asked_or_as_is_when_no_model_can_tell():
    images = _filled(4, 0.9)
    model = _dark_is_sure_model(sure_class=7)
    assert choose_polarity(images, "negated").describe() == "negated (as asked)"
    assert choose_polarity(images, "as_is", model, ClockHead("classification", 24)).polarity \
        == "as_is"
    alone = choose_polarity(images, "auto")
    assert alone.polarity == "as_is" and alone.reason == "no trained model to ask"
    unsure = choose_polarity(images, "auto", model, ClockHead("regression"))
    assert unsure.polarity == "as_is" and "has no softmax output to be sure with" in unsure.reason
    with pytest.raises(UsageError, match="one of as_is, negated or auto, got 'both'"):
        choose_polarity(images, "both")


def test_with_polarity_negates_every_split_and_keeps_a_shared_validation_set():
    data = tiny_clock_data(count=20, size=8)          # final split: validation is the test set
    assert data.x_val is data.x_test
    negative = with_polarity(data, "negated")
    np.testing.assert_allclose(negative.x_train, 1.0 - data.x_train)
    np.testing.assert_allclose(negative.x_test, 1.0 - data.x_test)
    assert negative.x_val is negative.x_test and negative.x_train.dtype == np.float32
    np.testing.assert_array_equal(negative.y_train, data.y_train)
    assert with_polarity(data, "as_is") is data
    # A distributed worker follows the chief's recorded choice.
    clock = RunConfig(space="clock", dataset="clock", subset=None)
    followed, choice = apply_polarity(clock, data, None, {"polarity": "negated",
                                                          "requested": "auto"})
    assert choice.polarity == "negated"
    np.testing.assert_allclose(followed.x_train, negative.x_train)
    # Other spaces never reach the clock's polarity: their hooks leave the data as it is.
    from tuner.spaces import SearchHooks

    assert SearchHooks().prepare_data(RunConfig(), data, None) == (data, {}, [])


def _held_out_pixels(clock_files):
    # The 75-pixel files split as `clock compare` splits them (final 80/20, seed 0).
    return load_clock(data_dir=str(clock_files), size=75, split="final", seed=0)


def test_a_negated_fine_tune_keeps_its_polarity_and_reads_with_it(tmp_path, trained_run,
                                                                  clock_files):
    out = tmp_path / "negated"
    result = CliRunner().invoke(clock_group, [
        "compare", "--init-from", str(trained_run), "--data-dir", str(clock_files), "--epochs",
        "1", "--polarity", "negated", "--out", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "Input polarity: negated (as asked)" in result.output
    card = read_model_card(out / "heads" / "multi_head.head.json")
    assert card["input_polarity"] == "negated"
    assert card["polarity_choice"]["requested"] == "negated"
    assert json.loads((out / "comparison.json").read_text())["input_polarity"]["polarity"] \
        == "negated"
    keras.backend.clear_session()
    trained = load_trained_model(out)
    assert trained.model.input_polarity == "negated"
    # The held-out predictions were made on the negatives; read_times applies the same by default.
    data = _held_out_pixels(clock_files)
    pixels = _pixels(data.x_test)
    predictions = pd.read_csv(out / "heads" / "multi_head-predictions.csv")
    expected = predictions["predicted_hour"] * 60 + predictions["predicted_minute"]
    read = np.round(read_times(trained.model, pixels)).astype(int) % 720
    np.testing.assert_array_equal(read, expected)
    np.testing.assert_array_equal(read_times(trained.model, pixels),
                                  read_times(trained.model, 255 - pixels, polarity="as_is"))
    # So does `clock predict`.
    np.save(tmp_path / "held_out.npy", pixels)
    predicted = CliRunner().invoke(clock_group, [
        "predict", str(out), str(tmp_path / "held_out.npy"), "--out", str(tmp_path / "t.csv")],
        catch_exceptions=False)
    assert predicted.exit_code == 0, predicted.output
    times = pd.read_csv(tmp_path / "t.csv")
    np.testing.assert_array_equal(times["hour"] * 60 + times["minute"], expected)


def test_auto_fine_tune_records_the_trained_model_s_choice_and_old_folders_resume(
        tmp_path, trained_run, clock_files):
    out = tmp_path / "auto"
    arguments = ["compare", "--init-from", str(trained_run), "--data-dir", str(clock_files),
                 "--epochs", "1", "--out", str(out)]
    result = CliRunner().invoke(clock_group, arguments, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    data = _held_out_pixels(clock_files)
    expected = load_init_source(trained_run).choose_polarity(data.x_train, "auto")
    summary = json.loads((out / "comparison.json").read_text())
    assert summary["input_polarity"] == expected.to_dict()
    assert expected.images == len(data.x_train) and expected.negated_share is not None
    assert f"Input polarity: {expected.describe()}" in result.output
    assert read_model_card(out / "heads" / "multi_head.head.json")["input_polarity"] \
        == expected.polarity
    # A fine-tune folder from before --polarity fed its images as they were: it resumes as such.
    old = tmp_path / "old"
    shutil.copytree(out, old)
    config = yaml.safe_load((old / "config.yaml").read_text())
    del config["polarity"]
    (old / "config.yaml").write_text(yaml.safe_dump(config))
    refused = CliRunner().invoke(clock_group, arguments[:-1] + [str(old)])
    assert refused.exit_code == 1, refused.output
    assert "polarity" in refused.output and "--polarity as_is for a fine-tune" in refused.output
    resumed = CliRunner().invoke(clock_group, arguments[:-1] + [str(old), "--polarity", "as_is"],
                                 catch_exceptions=False)
    assert resumed.exit_code == 0, resumed.output
    assert "already trained in" in resumed.output
    # A comparison from scratch from before --polarity resumes with the default.
    scratch = tmp_path / "scratch"
    shutil.copytree(trained_run, scratch)
    config = yaml.safe_load((scratch / "config.yaml").read_text())
    del config["polarity"]
    (scratch / "config.yaml").write_text(yaml.safe_dump(config))
    again = CliRunner().invoke(clock_group, [
        "compare", "--data-dir", str(clock_files), "--epochs", "1", "--head", "multi_head",
        "--set", "minute_output=periodic", "--set", "conv_blocks=2", "--set", "filters=16",
        "--set", "dense_units=64", "--out", str(scratch)], catch_exceptions=False)
    assert again.exit_code == 0, again.output
    assert "already trained in" in again.output and "Input polarity" not in again.output


def test_tune_clock_fine_tune_trials_keep_their_polarity(tmp_path, trained_run, clock_files):
    run = tmp_path / "tuned"
    result = CliRunner().invoke(main, [
        "tune", "clock", "--init-from", str(trained_run), "--data-dir", str(clock_files),
        "--polarity", "negated", "--tuner", "random", "--max-trials", "1", "--max-epochs", "1",
        "--subset", "all", "--run-dir", str(run)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "Input polarity: negated (as asked)" in result.output
    config, document = read_run_config(run)
    assert config.polarity == "negated" and document["input_polarity"]["polarity"] == "negated"
    trials = pd.read_csv(run / "trials.csv")
    trial_id = str(trials.loc[0, "trial_id"])
    assert read_model_card(run / "kt" / f"trial_{trial_id}" / "head.json")["input_polarity"] \
        == "negated"
    keras.backend.clear_session()
    trained = load_trained_model(run)
    assert trained.model.input_polarity == "negated"
    # The trial's score is its best epoch's validation error, on the negatives.
    data = load_dataset(config, data_dir=str(clock_files))
    minutes = read_times(trained.model, _pixels(data.x_val))
    error = common_sense_error_minutes(labels_to_minutes(data.y_val), minutes).mean()
    assert error == pytest.approx(float(trials.loc[0, "score"]))
    # The polarity is part of the run's identity; old fine-tunes count as as_is.
    hooks = ClockSearchHooks()
    assert {**identity_defaults(config), **hooks.identity_defaults(config)}["polarity"] == "as_is"
    assert hooks.identity_defaults(RunConfig(space="clock", dataset="clock")) == {
        "image_size": 75}


def test_polarity_is_checked_and_only_for_the_clock_space(tmp_path):
    with pytest.raises(InvalidSettingError, match="Unknown polarity 'both'"):
        RunConfig(space="clock", dataset="clock", polarity="both")
    result = CliRunner().invoke(main, ["tune", "mlp", "--polarity", "negated",
                                       "--run-dir", str(tmp_path / "mlp")])
    assert result.exit_code == 2, result.output
    assert "--polarity only applies to the clock search space, not 'mlp'." in result.output
    from tuner.clock import ComparisonConfig

    with pytest.raises(UsageError, match="Unknown polarity 'dark'"):
        ComparisonConfig(polarity="dark")
