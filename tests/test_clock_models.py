"""Saved clock models: the model card next to each, loading them back (also without a card)."""
from __future__ import annotations

import shutil
import warnings

import keras
import numpy as np
import pandas as pd
import pytest

from datasets.clock import split_clock
from datasets.clock_render import time_labels
from search_spaces.clock_heads import ClockHead
from search_spaces.clock_time import common_sense_error_minutes, labels_to_minutes
from tuner.clock import ComparisonConfig, compare_heads
from tuner.clock_models import (MODEL_CARD_VERSION, ClockRunError, load_trained_model,
                                read_model_card, read_times)

TINY = {"conv_blocks": 2, "filters": 16, "dense_units": 64}


@pytest.fixture(autouse=True)
def _seeded():
    keras.utils.set_random_seed(0)
    warnings.filterwarnings("ignore", message=".*currentThread.*", category=DeprecationWarning)


def tiny_clock_data(count: int = 40, size: int = 32, split: str = "final",
                    geometry: bool = False):
    """``count`` random clocks of ``size`` pixels, split as the real loader splits them."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (count, size, size), dtype=np.uint8)
    rows = rng.random((count, 5)).astype(np.float32) * 6.0 if geometry else None
    return split_clock(images, time_labels(count), source="tiny", split=split, geometry=rows)


def _pixels(x: np.ndarray) -> np.ndarray:
    return np.round(x[..., 0] * 255.0).astype(np.uint8)


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    """A finished one-epoch comparison of the multi_head head on 32-pixel clocks with geometry."""
    keras.utils.set_random_seed(0)
    out = tmp_path_factory.mktemp("compared")
    data = tiny_clock_data(geometry=True)
    config = ComparisonConfig(heads=("multi_head",), epochs=1,
                              hyperparameters={**TINY, "minute_output": "periodic"})
    compare_heads(config, out, data=data)
    keras.backend.clear_session()
    return out, data


def test_compare_writes_a_model_card_and_loading_decodes_identically(compared):
    out, data = compared
    card = read_model_card(out / "heads" / "multi_head.head.json")
    assert card["version"] == MODEL_CARD_VERSION and card["input_shape"] == [32, 32, 1]
    assert card["head"]["kind"] == "multi_head" and card["head"]["minute_output"] == "periodic"
    assert card["geometry_weight"] == 1.0 and card["space"]["geometry"] is True
    assert card["hyperparameters"]["filters"] == 16
    # Loaded into new objects: the head comes from the card, not from the saved model.
    trained = load_trained_model(out)
    assert trained.label == "multi_head"
    assert trained.head == ClockHead("multi_head", minute_output="periodic")
    predictions = pd.read_csv(out / "heads" / "multi_head-predictions.csv")
    expected = predictions["predicted_hour"] * 60 + predictions["predicted_minute"]
    np.testing.assert_array_equal(read_times(trained.model, _pixels(data.x_test)), expected)


def test_models_saved_before_model_cards_still_load(compared, tmp_path):
    out, data = compared
    old = tmp_path / "old"
    shutil.copytree(out, old)
    (old / "heads" / "multi_head.head.json").unlink()
    trained = load_trained_model(old, "multi_head")
    assert trained.card["version"] == 0
    assert trained.head == load_trained_model(out).head
    np.testing.assert_array_equal(read_times(trained.model, _pixels(data.x_test)),
                                  read_times(load_trained_model(out).model, _pixels(data.x_test)))


def test_unknown_heads_and_folders_are_refused(compared, tmp_path):
    out, _ = compared
    with pytest.raises(ClockRunError, match="has no trained head 'periodic'; it has: multi_head."):
        load_trained_model(out, "periodic")
    with pytest.raises(ClockRunError, match="is not a clock run: expected a folder written by"):
        load_trained_model(tmp_path)


def test_tune_clock_trials_get_a_model_card_and_load_from_their_checkpoint(tmp_path):
    from tuner.config import RunConfig
    from tuner.search import run_search

    data = tiny_clock_data(split="tuning")
    run = tmp_path / "tuned"
    config = RunConfig(space="clock", dataset="clock", tuner="random", max_trials=1,
                       max_epochs=1, subset=None, head="periodic")
    result = run_search(config, run, data=data, progress=None)
    trial_id = str(result.trials["trial_id"].iloc[0])
    card = read_model_card(run / "kt" / f"trial_{trial_id}" / "head.json")
    assert card["head"] == ClockHead("periodic").to_dict() and card["space"]["head"] == "periodic"
    keras.backend.clear_session()
    trained = load_trained_model(run)
    assert trained.label == f"trial {trial_id}"
    # The checkpoint is of the best epoch, whose validation error is the trial's score.
    minutes = read_times(trained.model, _pixels(data.x_val))
    error = common_sense_error_minutes(labels_to_minutes(data.y_val), minutes).mean()
    assert error == pytest.approx(float(result.trials["score"].iloc[0]))
    (run / "kt" / f"trial_{trial_id}" / "head.json").unlink()
    older = load_trained_model(run)
    assert older.card["version"] == 0 and older.head == trained.head
    np.testing.assert_array_equal(read_times(older.model, _pixels(data.x_val)), minutes)


def _dark_is_sure_model(sure_class: int) -> keras.Model:
    """A 24-class clock model sure of ``sure_class`` on dark images; on light ones it leans to
    class 0, unsure."""
    inputs = keras.Input((8, 8, 1))
    brightness = keras.layers.GlobalAveragePooling2D()(inputs)
    logits = keras.layers.Dense(24)(brightness)
    model = keras.Model(inputs, keras.layers.Softmax()(logits))
    kernel, bias = np.zeros((1, 24), np.float32), np.zeros(24, np.float32)
    kernel[0, sure_class], bias[sure_class] = -20.0, 20.0  # logit 20 x (1 - mean brightness)
    kernel[0, 0] = 3.0  # logit 3 x mean brightness
    model.layers[2].set_weights([kernel, bias])
    return model


def test_auto_polarity_keeps_the_reading_the_model_is_surer_of():
    head = ClockHead("classification", num_classes=24)
    model = _dark_is_sure_model(sure_class=7)
    images = np.stack([np.full((8, 8), 230, np.uint8), np.full((8, 8), 20, np.uint8)])
    sure = 7 * 30 + 14.5  # the centre of class 7
    as_is = read_times(model, images, head=head)
    assert as_is[1] == sure and as_is[0] == 14.5  # light: class 0, at about 1 in 3
    np.testing.assert_array_equal(read_times(model, images, head=head, polarity="auto"),
                                  [sure, sure])
    np.testing.assert_array_equal(read_times(model, images, rotations=4, head=head,
                                             polarity="auto"), [sure, sure])
    np.testing.assert_array_equal(read_times(model, images, head=head, polarity="negated"),
                                  read_times(model, 255 - images, head=head))
    assert read_times(model, images, head=head, polarity="negated")[0] == sure  # light, negated


def test_auto_polarity_needs_a_softmax_head_and_polarity_is_checked():
    from tuner.errors import UsageError

    model = _dark_is_sure_model(sure_class=0)
    images = np.zeros((1, 8, 8), np.uint8)
    with pytest.raises(UsageError, match="has no softmax output to tell which"):
        read_times(model, images, head=ClockHead("regression"), polarity="auto")
    with pytest.raises(UsageError,
                       match="Expected polarity to be one of as_is, auto, negated, got 'both'"):
        read_times(model, images, head=ClockHead("classification", num_classes=24),
                   polarity="both")
