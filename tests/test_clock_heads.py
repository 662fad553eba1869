"""The clock search space: common-sense error, head encode/decode, fit with val_cse, KerasTuner."""
from __future__ import annotations

import math
import warnings

import keras
import keras_tuner as kt
import numpy as np
import pytest

from search_spaces.clock import (CLASS_COUNTS, HEADS, ClockHead, ClockHyperModel,
                                 common_sense_error_minutes, error_summary, labels_to_minutes)
from tests.test_clock_data import _dark_angle

SHAPE = (32, 32, 1)


@pytest.fixture(autouse=True)
def _seeded():
    keras.utils.set_random_seed(0)
    warnings.filterwarnings("ignore", message=".*currentThread.*", category=DeprecationWarning)


@pytest.fixture(scope="module")
def tiny_data():
    rng = np.random.default_rng(0)
    x = rng.random((24, *SHAPE), dtype=np.float32)
    y = np.stack([rng.integers(0, 12, 24), rng.integers(0, 60, 24)], axis=1)
    return x[:16], y[:16], x[16:], y[16:]


def _all_labels():
    total = np.arange(720)
    return np.stack([total // 60, total % 60], axis=1)


# Common-sense error

@pytest.mark.parametrize("true,predicted,expected", [
    ((11, 55), (0, 5), 10), ((6, 0), (0, 0), 360), ((0, 0), (11, 59), 1), ((3, 0), (3, 0), 0),
    ((0, 5), (11, 55), 10), ((2, 30), (9, 0), 330),
])
def test_common_sense_error_hand_cases(true, predicted, expected):
    minutes = labels_to_minutes(np.array([true, predicted]))
    assert common_sense_error_minutes(minutes[0], minutes[1]) == expected


def test_common_sense_error_is_vectorized_and_symmetric():
    rng = np.random.default_rng(1)
    a, b = rng.integers(0, 720, 100), rng.integers(0, 720, 100)
    errors = common_sense_error_minutes(a, b)
    np.testing.assert_array_equal(errors, common_sense_error_minutes(b, a))
    assert errors.shape == (100,) and errors.max() <= 360 and errors.min() >= 0
    np.testing.assert_array_equal(common_sense_error_minutes(a, a + 720), np.zeros(100))


def test_error_summary():
    summary = error_summary([0, 0, 0, 0], [0, 1, 5, 700])
    assert summary == {"cse_mean": 6.5, "cse_median": 3.0, "within_1min": 0.5,
                       "within_5min": 0.75}


# Heads: encode then decode gives the time back

def _perfect_outputs(head, targets):
    """What a perfect model would output for the encoded targets."""
    def one_hot(labels, classes):
        return np.eye(classes, dtype=np.float32)[np.asarray(labels)]

    if head.kind == "classification":
        return one_hot(targets, head.num_classes)
    if head.kind == "multi_head":
        hour = (one_hot(targets["hour"], 12) if head.hour_output == "classification"
                else targets["hour"])
        minute = (one_hot(targets["minute"], 60) if head.minute_output == "classification"
                  else targets["minute"])
        return {"hour": hour, "minute": minute}
    return targets


HEAD_VARIANTS = [
    ClockHead("classification", num_classes=720), ClockHead("regression", loss="mse"),
    ClockHead("regression", loss="circular_mae"), ClockHead("periodic", encoding="total"),
    ClockHead("periodic", encoding="hands"),
    *[ClockHead("multi_head", hour_output=hour, minute_output=minute)
      for hour in ("classification", "periodic")
      for minute in ("regression", "periodic", "classification")],
]


@pytest.mark.parametrize("head", HEAD_VARIANTS, ids=lambda head: head.describe_outputs())
def test_encode_decode_round_trip_is_exact(head):
    labels = _all_labels()
    decoded = head.decode(_perfect_outputs(head, head.encode(labels)))
    np.testing.assert_array_equal(decoded, labels_to_minutes(labels))


@pytest.mark.parametrize("classes", CLASS_COUNTS)
def test_coarse_classes_decode_to_the_class_centre(classes):
    head = ClockHead("classification", num_classes=classes)
    labels = _all_labels()
    targets = head.encode(labels)
    assert targets.max() == classes - 1
    errors = common_sense_error_minutes(labels_to_minutes(labels),
                                        head.decode(_perfect_outputs(head, targets)))
    assert errors.max() <= (720 // classes) / 2.0


def test_regression_targets_are_hours():
    head = ClockHead("regression")
    np.testing.assert_allclose(head.encode(np.array([[3, 0], [5, 30]]))[:, 0], [3.0, 5.5])


def test_periodic_decoding_ignores_the_scale_of_the_outputs():
    labels = np.array([[11, 59], [0, 1], [2, 58], [3, 2]])
    for encoding in ("total", "hands"):
        head = ClockHead("periodic", encoding=encoding)
        outputs = head.encode(labels) * 0.7
        np.testing.assert_array_equal(head.decode(outputs), labels_to_minutes(labels))


def test_hands_encoding_takes_the_hour_from_the_hour_hand():
    # Hour hand reads 2:59.5 (just short of 3), minute says 58: 2:58, not 3:58.
    head = ClockHead("multi_head", hour_output="periodic", minute_output="classification")
    angle = 2 * math.pi * 179.5 / 720
    hour_hand = np.array([[math.sin(angle), math.cos(angle)]])
    minute = np.eye(60)[[58]]
    assert head.decode({"hour": hour_hand, "minute": minute})[0] == 178


def _read_with_hour_softmax(hour_probabilities: dict[int, float], minute: int) -> str:
    head = ClockHead("multi_head", hour_output="classification", minute_output="periodic")
    hour = np.zeros((1, 12))
    for index, probability in hour_probabilities.items():
        hour[0, index % 12] = probability
    minute_output = head.encode(np.array([[0, minute]]))["minute"]
    total = int(head.decode({"hour": hour, "minute": minute_output})[0])
    return f"{total // 60}:{total % 60:02d}"


@pytest.mark.parametrize("hour_probabilities,minute,expected", [
    # The hour hand of 2:58 or 2:59 sits on the 3, so the softmax splits between 2 and 3; its
    # argmax (3 here) read an hour off. Mid-hour the split is no evidence either way.
    ({2: 0.49, 3: 0.51}, 58, "2:58"), ({2: 0.49, 3: 0.51}, 59, "2:59"),
    ({2: 0.49, 3: 0.51}, 30, "3:30"),
    ({2: 0.51, 3: 0.49}, 1, "3:01"), ({2: 0.51, 3: 0.49}, 30, "2:30"),
    # 3:00 is in class 3, so 3:02 is three minutes from class 2 and 2:58 two minutes from class 3.
    ({2: 0.5, 3: 0.5}, 2, "3:02"), ({2: 0.5, 3: 0.5}, 58, "2:58"),
    ({11: 0.51, 0: 0.49}, 0, "0:00"), ({11: 0.49, 0: 0.51}, 59, "11:59"),
])
def test_hour_softmax_split_near_the_hour_takes_the_hour_the_minute_fits(
        hour_probabilities, minute, expected):
    assert _read_with_hour_softmax(hour_probabilities, minute) == expected


@pytest.mark.parametrize("neighbour", [-1, 1])
def test_a_confident_hour_class_reads_as_itself_at_every_minute(neighbour):
    for hour in range(12):
        for minute in range(60):
            read = _read_with_hour_softmax({hour: 0.8, hour + neighbour: 0.2}, minute)
            assert read == f"{hour}:{minute:02d}"


def test_circular_regression_loss_wraps_around_the_dial():
    loss = ClockHead("regression", loss="circular_mae").compile_arguments()["loss"]
    value = loss(np.array([[11.9]], np.float32), np.array([[0.1]], np.float32))
    # 0.2 hours apart, measured in turns of the 12-hour dial.
    assert float(np.asarray(value).mean()) == pytest.approx(0.2 / 12, abs=1e-6)


@pytest.mark.parametrize("name", ["mse", "mae", "huber", "circular_mse", "circular_mae"])
def test_regression_losses_are_in_dial_turns(name):
    # The same error in hours (12-hour dial) and in fractions of an hour (minute dial) costs the
    # same, and a chance-level guess costs about as much as the other heads' losses.
    hours = ClockHead("regression", loss=name).compile_arguments()["loss"]
    minutes = ClockHead("multi_head", minute_output="regression", minute_loss=name
                        ).compile_arguments()["loss"]["minute"]
    in_hours = float(np.mean(hours(np.array([[3.0]]), np.array([[4.5]]))))
    in_fractions = float(np.mean(minutes(np.array([[0.25]]), np.array([[0.375]]))))
    assert in_hours == pytest.approx(in_fractions, rel=1e-5)
    rng = np.random.default_rng(0)
    chance = float(np.mean(hours(rng.uniform(0, 12, (2000, 1)), rng.uniform(0, 12, (2000, 1)))))
    assert 0.005 < chance < 0.5


# The HyperModel

@pytest.mark.parametrize("kwargs,message", [
    ({"head": "ordinal"}, "Unknown head 'ordinal'"),
    ({"head": "classification", "num_classes": 7}, "num_classes must divide 720"),
    ({"head": "classification", "num_classes": 1}, "num_classes must divide 720"),
    ({"head": "regression", "num_classes": 24}, "only applies to the classification head"),
    ({"input_shape": (32, 32)}, "input_shape must be"),
])
def test_constructor_rejects_bad_combinations(kwargs, message):
    arguments = {"input_shape": SHAPE, **kwargs}
    with pytest.raises(ValueError, match=message):
        ClockHyperModel(**arguments)


def test_class_attributes_and_default_head():
    hypermodel = ClockHyperModel(SHAPE, num_classes=None)
    assert hypermodel.name == "clock" and hypermodel.objective == ("val_cse", "min")
    assert hypermodel.head_for().num_classes == 720
    targets = hypermodel.encode_targets(np.array([[1, 2]]))
    np.testing.assert_array_equal(targets, [62])


def test_searched_head_declares_conditional_hyperparameters():
    hypermodel = ClockHyperModel(SHAPE, head="search", num_classes=144)
    hp = kt.HyperParameters()
    hypermodel.build(hp)
    assert hp.values["head"] == "classification" and hp.values["num_classes"] == 144
    multi = kt.HyperParameters()
    multi.Fixed("head", "multi_head")
    model = hypermodel.build(multi)
    assert multi.values["hour_output"] == "classification" and "num_classes" not in multi.values
    assert set(model.output_names) == {"hour", "minute"}
    assert model.clock_head.kind == "multi_head"


@pytest.mark.parametrize("head", HEADS)
def test_fit_reports_val_cse_for_every_head(head, tiny_data):
    x, y, x_val, y_val = tiny_data
    hypermodel = ClockHyperModel(SHAPE, head=head,
                                 num_classes=720 if head == "classification" else None)
    hp = kt.HyperParameters()
    hp.Fixed("conv_blocks", 2)
    hp.Fixed("filters", 16)
    hp.Fixed("dense_units", 64)
    model = hypermodel.build(hp)
    history = hypermodel.fit(hp, model, x, y, validation_data=(x_val, y_val), epochs=1, verbose=0)
    logs = history.history
    for key in ("val_cse", "val_cse_median", "val_within_1min", "val_within_5min"):
        assert len(logs[key]) == 1
    predicted = hypermodel.predict_minutes(model, x_val)
    assert predicted.shape == (len(x_val),) and predicted.min() >= 0 and predicted.max() < 720
    expected = common_sense_error_minutes(labels_to_minutes(y_val), predicted).mean()
    assert history.history["val_cse"][0] == pytest.approx(expected)


def test_augmentation_only_touches_training_batches(tiny_data, monkeypatch):
    from search_spaces import clock as clock_space

    x, y, x_val, y_val = tiny_data
    seen = {}
    original = clock_space.training_dataset

    def spy(images, targets, batch_size, augment, angles=None):
        seen["augment"] = augment
        seen["count"] = len(images)
        return original(images, targets, batch_size, augment, angles)

    monkeypatch.setattr(clock_space, "training_dataset", spy)
    hypermodel = ClockHyperModel(SHAPE, head="periodic")
    hp = kt.HyperParameters()
    hp.Fixed("conv_blocks", 2)
    hp.Fixed("filters", 16)
    model = hypermodel.build(hp)
    hypermodel.fit(hp, model, x, y, validation_data=(x_val, y_val), epochs=1, verbose=0)
    assert seen == {"augment": True, "count": len(x)}
    # Validation predictions are deterministic: no augmentation at inference.
    np.testing.assert_array_equal(hypermodel.predict_minutes(model, x_val),
                                  hypermodel.predict_minutes(model, x_val))
    batch = next(iter(original(x, ClockHead("periodic").encode(y), 8, augment=True)))
    assert batch[0].shape == (8, *SHAPE) and float(np.min(batch[0])) >= 0.0


def test_random_search_scores_trials_by_val_cse(tiny_data, tmp_path):
    x, y, x_val, y_val = tiny_data
    hypermodel = ClockHyperModel(SHAPE, head="search")
    hp = kt.HyperParameters()
    hp.Fixed("conv_blocks", 2)
    hp.Fixed("filters", 16)
    hp.Fixed("dense_units", 64)
    hp.Fixed("convs_per_block", 1)
    tuner = kt.RandomSearch(hypermodel, objective=kt.Objective("val_cse", "min"), max_trials=2,
                            hyperparameters=hp, directory=str(tmp_path), project_name="clock",
                            seed=1)
    tuner.search(x, y, validation_data=(x_val, y_val), epochs=1, verbose=0)
    trials = [t for t in tuner.oracle.trials.values() if t.status == "COMPLETED"]
    assert len(trials) == 2
    for trial in trials:
        value = trial.metrics.get_last_value("val_cse")
        assert trial.score == pytest.approx(value) and 0.0 <= value <= 360.0


def test_short_training_gives_inference_statistics_that_match_training(tiny_data):
    # With Keras's default batch-norm momentum (0.99), 80 steps leave the moving statistics 45%
    # at their initial values, so a model that fits its training batch predicts garbage at
    # inference; the clock runs are short enough for that to decide the result.
    x, y, _, _ = tiny_data
    hypermodel = ClockHyperModel(SHAPE, head="periodic")
    hp = kt.HyperParameters()
    hp.Fixed("conv_blocks", 2)
    hp.Fixed("filters", 16)
    hp.Fixed("dense_units", 64)
    hp.Fixed("dropout", 0.0)
    hp.Fixed("augment", False)
    hp.Fixed("batch_size", len(x))
    # The tolerance below was set on this readout; global pooling amplifies the last steps' lag.
    hp.Fixed("readout", "flatten")
    model = hypermodel.build(hp)
    hypermodel.fit(hp, model, x, y, epochs=80, verbose=0)
    # One batch holds every image, so the batch statistics are those the moving ones estimate.
    training = np.asarray(model(x, training=True))
    inference = np.asarray(model(x, training=False))
    np.testing.assert_allclose(inference, training, atol=0.05)


# Auxiliary geometry output

def test_rotate_images_turns_clockwise_about_the_centre():
    from search_spaces.clock_pipeline import rotate_images

    image = np.random.default_rng(0).random((1, 9, 9, 1), dtype=np.float32)
    turned = np.asarray(rotate_images(image, [math.pi / 2]))
    np.testing.assert_allclose(turned[0, ..., 0], np.rot90(image[0, ..., 0], k=-1), atol=1e-5)
    np.testing.assert_allclose(np.asarray(rotate_images(image, [0.0])), image, atol=1e-6)


@pytest.mark.parametrize("head", HEADS)
def test_geometry_output_trains_and_is_ignored_at_inference(head, tiny_data):
    x, y, x_val, y_val = tiny_data
    geometry = np.random.default_rng(1).random((len(x), 5), dtype=np.float32) * 6.0
    hypermodel = ClockHyperModel(SHAPE, head=head, geometry=True)
    hp = kt.HyperParameters()
    hp.Fixed("conv_blocks", 2)
    hp.Fixed("filters", 16)
    model = hypermodel.build(hp)
    assert hp.get("geometry_weight") == 1.0 and model.geometry_weight == 1.0
    history = hypermodel.fit(hp, model, x, y, validation_data=(x_val, y_val), epochs=1,
                             verbose=0, geometry=geometry)
    assert "geometry_loss" in history.history and "val_cse" in history.history
    outputs = model.predict(x_val, verbose=0)
    assert outputs["geometry"].shape == (len(x_val), 6)
    minutes = hypermodel.predict_minutes(model, x_val)
    assert minutes.shape == (len(x_val),) and np.all((0 <= minutes) & (minutes < 720))
    with pytest.raises(ValueError, match="no geometry was given"):
        hypermodel.fit(hp, model, x, y, epochs=1, verbose=0)
    with pytest.raises(ValueError, match=r"shape \(16, 5\)"):
        hypermodel.fit(hp, model, x, y, epochs=1, verbose=0, geometry=geometry[:3])


def test_geometry_weight_zero_or_no_geometry_builds_the_plain_model():
    hp = kt.HyperParameters()
    hp.Fixed("geometry_weight", 0.0)
    model = ClockHyperModel(SHAPE, head="periodic", geometry=True).build(hp)
    assert model.geometry_weight == 0.0 and not isinstance(model.output, dict)
    hp = kt.HyperParameters()
    model = ClockHyperModel(SHAPE, head="periodic").build(hp)
    assert "geometry_weight" not in hp.values and model.geometry_weight == 0.0


def test_geometry_targets_turn_with_the_augmented_image():
    # A clean clock at 2:10 rotated by the pipeline: the target directions it is given must be
    # where the hands and the 12 now point, measured on the rotated image.
    from datasets import clock_render
    from search_spaces.clock_pipeline import training_dataset

    image, geometry = clock_render.render_clock(2, 10, np.random.default_rng(0), size=75,
                                                clean=True, with_geometry=True)
    x = np.repeat(image[None, ..., None].astype(np.float32) / 255.0, 8, axis=0)
    targets = {"time": np.zeros((8, 2), np.float32)}
    angles = np.repeat(geometry[None, 2:5], 8, axis=0)
    keras.utils.set_random_seed(3)
    batch, batch_targets = next(iter(training_dataset(x, targets, 8, True, angles)))
    sin_cos = np.asarray(batch_targets["geometry"])
    target_degrees = np.degrees(np.arctan2(sin_cos[:, :3], sin_cos[:, 3:])) % 360.0
    face_radius = 0.42 * 75 / 1.14
    for picture, degrees in zip(np.asarray(batch)[..., 0], target_degrees):
        measured = _dark_angle(picture * 255.0, 0.55 * face_radius, 0.65 * face_radius)
        assert _gap(measured, degrees[2]) < 6.0  # the minute hand
        assert _gap(degrees[0], degrees[2] - 60.0) < 1.0  # 10 minutes past: 60 degrees apart


def _gap(a, b):
    return abs((a - b + 180.0) % 360.0 - 180.0)


def test_cosine_schedule_lowers_the_learning_rate_each_epoch(tiny_data):
    x, y, _, _ = tiny_data
    rates = []

    class Record(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            rates.append(float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)))

    hypermodel = ClockHyperModel(SHAPE, head="periodic")
    hp = kt.HyperParameters()
    hp.Fixed("conv_blocks", 2)
    hp.Fixed("filters", 16)
    hp.Fixed("lr_schedule", "cosine")
    hp.Fixed("learning_rate", 1e-3)
    model = hypermodel.build(hp)
    hypermodel.fit(hp, model, x, y, epochs=4, verbose=0, callbacks=[Record()])
    expected = [1e-3 * 0.5 * (1 + math.cos(math.pi * epoch / 4)) for epoch in range(4)]
    np.testing.assert_allclose(rates, expected, rtol=1e-5)
    assert float(keras.ops.convert_to_numpy(model.optimizer.learning_rate)) == pytest.approx(1e-3)


@pytest.mark.parametrize("head", HEAD_VARIANTS, ids=lambda head: head.describe_outputs())
def test_average_of_agreeing_reads_decodes_to_the_same_time(head):
    labels = _all_labels()
    outputs = _perfect_outputs(head, head.encode(labels))
    averaged = head.average([outputs, outputs, outputs])
    np.testing.assert_array_equal(head.decode(averaged), labels_to_minutes(labels))


def test_average_of_linear_outputs_goes_round_the_dial():
    # 11:54 and 0:06 average to 12:00, not to 6:00; minute 57 and 3 to minute 0, not 30.
    regression = ClockHead("regression")
    assert regression.decode(regression.average([np.array([[11.9]]), np.array([[0.1]])]))[0] == 0
    head = ClockHead("multi_head", hour_output="classification", minute_output="regression")
    hour = np.eye(12)[[5]]
    reads = [{"hour": hour, "minute": np.array([[0.95]])},
             {"hour": hour, "minute": np.array([[0.05]])}]
    assert head.decode(head.average(reads))[0] == 300
    with pytest.raises(ValueError, match="at least one"):
        head.average([])


def test_rotated_reads_make_the_prediction_independent_of_quarter_turns():
    # Quarter turns of a square image are exact pixel permutations, so with 4 test rotations an
    # image and its quarter-turned copy are read from the same four copies.
    rng = np.random.default_rng(0)
    x = rng.random((6, 16, 16, 1)).astype(np.float32)
    turned = np.rot90(x, k=-1, axes=(1, 2)).copy()
    keras.utils.set_random_seed(0)
    inputs = keras.Input((16, 16, 1))
    model = keras.Model(inputs, keras.layers.Dense(1)(keras.layers.Flatten()(inputs)))
    model.clock_head = ClockHead("regression")
    hypermodel = ClockHyperModel((16, 16, 1), head="regression")
    once = common_sense_error_minutes(hypermodel.predict_minutes(model, x),
                                      hypermodel.predict_minutes(model, turned))
    assert once.mean() > 5  # the model itself is not rotation-invariant
    four = common_sense_error_minutes(hypermodel.predict_minutes(model, x, rotations=4),
                                      hypermodel.predict_minutes(model, turned, rotations=4))
    assert four.max() <= 1  # (rounding to whole minutes aside)
    with pytest.raises(ValueError, match="rotations must be"):
        hypermodel.predict_minutes(model, x, rotations=0)


# Module layout

def test_the_clock_modules_keep_the_old_names_and_the_data_flow():
    import ast
    import importlib
    from pathlib import Path

    from search_spaces import clock

    for name in clock.__all__:
        assert getattr(clock, name) is not None, name
    # Lower modules never import a later one: datasets -> search_spaces -> tuner, and within
    # the clock space time -> heads -> pipeline -> init -> clock.
    order = ["search_spaces.clock_time", "search_spaces.clock_heads",
             "search_spaces.clock_pipeline", "search_spaces.clock_init", "search_spaces.clock"]
    for position, module in enumerate(order):
        source = Path(importlib.import_module(module).__file__).read_text()
        imported = {node.module for node in ast.walk(ast.parse(source))
                    if isinstance(node, ast.ImportFrom) and node.module}
        assert not {name for name in imported if name.split(".")[0] in ("tuner", "analysis",
                                                                          "top_configs")}
        assert not imported & set(order[position + 1:]), module


def test_confidence_is_the_largest_softmax_probability():
    probabilities = np.array([[0.7, 0.1, 0.1, 0.1], [0.25, 0.25, 0.25, 0.25]])
    head = ClockHead("classification", num_classes=24)
    np.testing.assert_allclose(head.confidence(np.pad(probabilities, ((0, 0), (0, 20)))),
                               [0.7, 0.25])
    minute = np.array([[0.5, 0.5], [0.0, 1.0]])
    hour = np.zeros((2, 12))
    hour[0, 3], hour[0, 4], hour[1, 5] = 0.6, 0.4, 1.0
    multi = ClockHead("multi_head", hour_output="classification", minute_output="periodic")
    np.testing.assert_allclose(multi.confidence({"hour": hour, "minute": minute,
                                                 "geometry": np.zeros((2, 6))}), [0.6, 1.0])
    both = ClockHead("multi_head", hour_output="classification", minute_output="classification")
    minutes = np.full((2, 60), 0.5 / 59)
    minutes[:, 7] = 0.5
    np.testing.assert_allclose(both.confidence({"hour": hour, "minute": minutes}), [0.3, 0.5])


@pytest.mark.parametrize("head", [ClockHead("periodic"), ClockHead("regression"),
                                  ClockHead("multi_head", hour_output="periodic",
                                            minute_output="regression")])
def test_heads_without_a_softmax_have_no_confidence(head):
    assert not head.has_confidence
    with pytest.raises(ValueError, match="has no softmax output"):
        head.confidence(np.zeros((2, 4)))


def _geometry(twelve_degrees: float, hour_hand_minutes: float, minute_hand_minutes: float):
    """A geometry output row: sin then cos of the 12 mark's and both hands' image directions,
    for a dial turned ``twelve_degrees`` in the image."""
    twelve = math.radians(twelve_degrees)
    angles = np.array([twelve, twelve + 2 * math.pi * hour_hand_minutes / 720,
                       twelve + 2 * math.pi * minute_hand_minutes / 60])
    return np.concatenate([np.sin(angles), np.cos(angles)])[None, :]


def _read_with_geometry(hour_probabilities, minute, geometry):
    head = ClockHead("multi_head", hour_output="classification", minute_output="periodic")
    hour = np.zeros((1, 12))
    for index, probability in hour_probabilities.items():
        hour[0, index % 12] = probability
    outputs = {"hour": hour, "minute": head.encode(np.array([[0, minute]]))["minute"],
               "geometry": geometry}
    total = int(head.decode(outputs)[0])
    return f"{total // 60}:{total % 60:02d}"


@pytest.mark.parametrize("twelve_degrees", [0.0, 137.0])
def test_the_geometry_s_hour_hand_settles_a_split_hour_softmax(twelve_degrees):
    # Without the geometry a softmax 0.4 / 0.6 between 2 and 3 reads 58 minutes as 3:58; the
    # geometry's hour hand stands at 2:58, wherever the dial's 12 is in the image.
    split = {2: 0.4, 3: 0.6}
    assert _read_with_hour_softmax(split, 58) == "3:58"
    assert _read_with_geometry(split, 58, _geometry(twelve_degrees, 178, 58)) == "2:58"
    # A hand reading far from every candidate does not overrule a confident softmax.
    assert _read_with_geometry({5: 0.98, 6: 0.02}, 20, _geometry(twelve_degrees, 440, 20)) == "5:20"


def test_the_minute_is_the_mean_of_both_minute_readings():
    # Minute output 10, geometry minute hand at 12: 11.
    assert _read_with_geometry({4: 1.0}, 10, _geometry(30.0, 251, 12)) == "4:11"


def test_averaged_outputs_keep_the_hands_whatever_each_copy_s_rotation():
    head = ClockHead("multi_head", hour_output="classification", minute_output="periodic")
    minute = head.encode(np.array([[2, 58]]))["minute"]
    hour = np.eye(12)[[3]] * 0.6 + np.eye(12)[[2]] * 0.4
    copies = [{"hour": hour, "minute": minute, "geometry": _geometry(turn, 178, 58)}
              for turn in (0.0, 90.0, 180.0, 270.0)]  # the same clock read turned 4 ways
    averaged = head.average(copies)
    assert set(averaged) == {"hour", "minute", "hands"}
    assert int(head.decode(averaged)[0]) == 178
    # A head without a geometry output reads as before.
    plain = head.average([{"hour": hour, "minute": minute}])
    assert set(plain) == {"hour", "minute"} and int(head.decode(plain)[0]) == 238
