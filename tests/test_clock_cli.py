"""``hpsearch clock`` commands through click's CliRunner, and the comparison library behind them."""
from __future__ import annotations

import json
import re
import subprocess
import sys
import warnings

import click
import keras
import numpy as np
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from tests.conftest import write_clock_files
from tuner import clock as clock_tuner
from tuner.clock import ComparisonConfig, compare_heads
from tuner.config import parse_assignments
from tuner.clock_cli import clock_group

TINY_BACKBONE = ["--set", "conv_blocks=2", "--set", "filters=16", "--set", "dense_units=64"]


def _tiny_config(*assignments, **settings) -> ComparisonConfig:
    """A comparison of the small backbone (plus ``assignments``) for one-epoch tests."""
    return ComparisonConfig(**{"epochs": 1, **settings}, hyperparameters=parse_assignments(
        [*TINY_BACKBONE[1::2], *assignments]))


@pytest.fixture(autouse=True)
def _seeded(monkeypatch, tmp_path):
    keras.utils.set_random_seed(0)
    warnings.filterwarnings("ignore", message=".*currentThread.*", category=DeprecationWarning)
    monkeypatch.setenv("HPSEARCH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("HPSEARCH_DATA_DIR", raising=False)


@pytest.fixture
def clock_files(tmp_path):
    """40 images of 75x75 in the assignment's on-disk format."""
    return write_clock_files(tmp_path / "clock-data")


def _commands(group: click.Group):
    yield group
    for command in group.commands.values():
        yield from (_commands(command) if isinstance(command, click.Group) else [command])


def test_every_command_has_help_with_an_example():
    for command in _commands(clock_group):
        assert command.help and "Example:" in command.help, command.name
        assert any(line.strip().startswith("Example:") for line in command.help.splitlines())


def test_cli_heads_match_the_search_space_and_building_the_cli_skips_keras():
    from search_spaces.clock import HEADS
    from tuner import clock_cli

    assert clock_cli.HEADS == HEADS
    # A fresh interpreter is the point here: what importing the CLI module loads.
    code = ("import sys, tuner.clock_cli; "
            "print(any(m.split('.')[0] in ('keras', 'tensorflow') for m in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True).stdout.strip()
    assert loaded == "False"


def test_render_writes_the_files(tmp_path):
    out = tmp_path / "rendered"
    result = CliRunner().invoke(clock_group, ["render", "--count", "12", "--size", "75",
                                              "--processes", "1", "--out", str(out)],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "Rendered 12 clocks of 75x75" in result.output
    assert np.load(out / "images.npy").shape == (12, 75, 75)
    assert np.load(out / "labels.npy").shape == (12, 2)
    assert (out / "preview.png").is_file()


@pytest.mark.parametrize("arguments", [
    ["render", "--size", "64", "--out", "x"],
    ["render", "--count", "0", "--out", "x"],
    ["render", "--count", "5"],
    ["compare", "--head", "ordinal", "--out", "x"],
    ["compare", "--epochs", "0", "--out", "x"],
    ["compare", "--num-classes", "1000", "--out", "x"],
    ["compare", "--test-rotations", "0", "--out", "x"],
    ["compare", "--data-dir", "/nonexistent/clock", "--out", "x"],
])
def test_bad_options_exit_2(arguments):
    result = CliRunner().invoke(clock_group, arguments)
    assert result.exit_code == 2, result.output


def test_compare_trains_each_head_writes_the_table_and_resumes(tmp_path, clock_files, monkeypatch):
    out = tmp_path / "compare"
    arguments = ["compare", "--data-dir", str(clock_files), "--epochs", "1", "--head", "periodic",
                 "--head", "classification", "--num-classes", "24", *TINY_BACKBONE,
                 "--out", str(out)]
    result = CliRunner().invoke(clock_group, arguments, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "| classification-24 |" in result.output and "Best:" in result.output
    table = pd.read_csv(out / "comparison.csv")
    assert list(table["head"]) == ["periodic", "classification-24"]
    assert list(table.columns) == clock_tuner.TABLE_COLUMNS
    assert (table["test_images"] == 8).all() and (table["train_images"] == 32).all()
    assert table["cse_mean"].between(0, 360).all() and (table["parameters"] > 0).all()
    report = json.loads((out / "comparison.json").read_text())
    assert report["best"]["head"] in {"periodic", "classification-24"}
    assert yaml.safe_load((out / "config.yaml").read_text())["num_classes"] == [24]
    # Every held-out image's reading, and the trained model, which reads them again the same.
    predictions = pd.read_csv(out / "heads" / "periodic-predictions.csv")
    assert len(predictions) == 8
    assert predictions["error_minutes"].mean() == pytest.approx(table.loc[0, "cse_mean"])
    from datasets.clock import load_clock
    from search_spaces.clock_heads import ClockHead
    from search_spaces.clock_time import labels_to_minutes

    model = keras.models.load_model(out / "heads" / "periodic.keras", compile=False)
    data = load_clock(data_dir=clock_files, size=75, split="final")
    again = ClockHead("periodic").decode(model.predict(data.x_test, verbose=0))
    np.testing.assert_array_equal(again, predictions["predicted_hour"] * 60
                                  + predictions["predicted_minute"])
    np.testing.assert_array_equal(labels_to_minutes(data.y_test),
                                  predictions["true_hour"] * 60 + predictions["true_minute"])

    def no_training(*args, **kwargs):
        raise AssertionError("a finished head was trained again")

    monkeypatch.setattr(clock_tuner, "_run_head", no_training)
    again = CliRunner().invoke(clock_group, arguments, catch_exceptions=False)
    assert again.exit_code == 0
    pd.testing.assert_frame_equal(pd.read_csv(out / "comparison.csv"), table)


def test_compare_refuses_a_folder_of_another_configuration(tmp_path, clock_files):
    out = tmp_path / "compare"
    out.mkdir()
    (out / "config.yaml").write_text(yaml.safe_dump({**ComparisonConfig().to_dict(), "epochs": 99}))
    result = CliRunner().invoke(clock_group, ["compare", "--data-dir", str(clock_files),
                                              "--epochs", "1", "--out", str(out)])
    assert result.exit_code == 1
    # One message for every kind of run: each differing setting, saved and requested.
    assert result.output.startswith(
        f"Error: Run directory {out} was created with other settings, so its heads would not be "
        "comparable:\n")
    assert "  - epochs: run directory has 99, this command asks for 1\n" in result.output
    assert "  - data_dir: run directory has None, this command asks for " in result.output
    assert result.output.splitlines()[-1] == (
        "Use the same settings, another output folder, or delete it to start again.")


# Issue 13: settings that cannot work, found before any data is read, are usage errors (exit 2);
# what only the data can tell stays exit 1.
@pytest.mark.parametrize("arguments,message,exit_code", [
    (["--set", "geometry_weight=1"], "Error: geometry_weight was set, but this clock data has no "
                                     "geometry.npy", 1),
    (["--num-classes", "7"],
     "Error: num_classes must divide 720 (e.g. 24, 72, 144, 360, 720), got 7.", 2),
    (["--set", "filtres=16"], "Error: Unknown hyperparameter(s) filtres.", 2),
    (["--set", "filters"], "Error: Expected NAME=VALUE (e.g. learning_rate=0.001), got 'filters'.", 2),
])
def test_compare_library_errors_exit_1(tmp_path, clock_files, arguments, message, exit_code):
    result = CliRunner().invoke(clock_group, ["compare", "--data-dir", str(clock_files),
                                              *arguments, "--out", str(tmp_path / "o")])
    assert result.exit_code == exit_code
    assert result.output.splitlines()[-1].startswith(message)
    assert not (tmp_path / "o").exists() or exit_code == 1


def test_compare_with_missing_clock_files_exits_1(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = CliRunner().invoke(clock_group, ["compare", "--data-dir", str(empty),
                                              "--out", str(tmp_path / "o")])
    assert result.exit_code == 1
    assert "Error: Dataset 'clock' was not found." in result.output


def test_compare_heads_tunes_when_asked(tmp_path, clock_files):
    from datasets.clock import load_clock

    data = load_clock(data_dir=clock_files, size=75, split="tuning")
    config = _tiny_config(heads=("regression",), trials=2)
    table = compare_heads(config, tmp_path / "tuned", data=data)
    assert list(table["head"]) == ["regression"] and len(table) == 1
    assert len(list((tmp_path / "tuned" / "tuning" / "regression").glob("trial_*"))) == 2


def test_parse_assignments_reads_yaml_values():
    assert parse_assignments(["filters=32", "batch_norm=false", "learning_rate=0.01",
                              "optimizer=sgd"]) == {"filters": 32, "batch_norm": False,
                                                    "learning_rate": 0.01, "optimizer": "sgd"}


@pytest.fixture
def rendered_files(tmp_path):
    """40 rendered clocks, with the renderer's geometry.npy."""
    from datasets.clock_render import write_dataset

    return write_dataset(tmp_path / "rendered", count=40, size=75, seed=0,
                         processes=1)["images"].parent


def test_compare_on_rendered_data_trains_the_geometry_output_in_mixed_precision(
        tmp_path, rendered_files):
    from datasets.clock import load_clock

    data = load_clock(data_dir=rendered_files, size=75, split="final")
    assert data.geometry_train.shape == (32, 5)
    config = _tiny_config(heads=("periodic",), precision="mixed_bfloat16")
    lines = []
    table = compare_heads(config, tmp_path / "geometry", data=data, progress=lines.append)
    # The epoch's loss and its parts: the time head's and the geometry output's.
    assert re.search(r"^periodic  epoch 1/1  loss \d+\.\d{3} \(time \d+\.\d\d, geometry "
                     r"\d+\.\d\d\)  held-out ", lines[1]), lines
    assert table.loc[0, "loss"] == "mse + 1 x mse (auxiliary geometry)"
    assert 0.0 <= table.loc[0, "cse_mean"] <= 360.0
    history = json.loads((tmp_path / "geometry" / "heads" / "periodic.json").read_text())
    assert "geometry_loss" in history["history"]
    # The policy is the caller's again afterwards.
    assert keras.mixed_precision.global_policy().name == "float32"
    off = _tiny_config("geometry_weight=0", heads=("periodic",))
    table = compare_heads(off, tmp_path / "plain", data=data)
    assert table.loc[0, "loss"] == "mse"


def test_unknown_precision_is_refused():
    with pytest.raises(ValueError, match="Unknown precision 'half'"):
        ComparisonConfig(precision="half")


def test_compare_with_test_rotations_reports_both_readings(tmp_path, clock_files):
    from datasets.clock import load_clock

    data = load_clock(data_dir=clock_files, size=75, split="final")
    config = _tiny_config(heads=("periodic",), test_rotations=4)
    table = compare_heads(config, tmp_path / "tta", data=data)
    result = json.loads((tmp_path / "tta" / "heads" / "periodic.json").read_text())
    assert result["row"]["cse_mean"] == pytest.approx(table.loc[0, "cse_mean"])
    assert 0.0 <= result["without_test_rotations"]["cse_mean"] <= 360.0
    assert yaml.safe_load((tmp_path / "tta" / "config.yaml").read_text())["test_rotations"] == 4
    with pytest.raises(ValueError, match="test_rotations must be"):
        ComparisonConfig(test_rotations=0)


def test_folders_written_before_a_setting_existed_still_resume(tmp_path, clock_files):
    out = tmp_path / "old"
    out.mkdir()
    arguments = ["compare", "--data-dir", str(clock_files), "--epochs", "1", "--head", "periodic",
                 *TINY_BACKBONE, "--out", str(out)]
    config = _tiny_config(heads=("periodic",), data_dir=str(clock_files))
    older = {key: value for key, value in config.to_dict().items() if key != "test_rotations"}
    (out / "config.yaml").write_text(yaml.safe_dump(older))
    result = CliRunner().invoke(clock_group, arguments, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    refused = CliRunner().invoke(clock_group, [*arguments, "--test-rotations", "2"])
    assert refused.exit_code == 1
    assert "test_rotations: run directory has 1, this command asks for 2" in refused.output


def test_a_set_refused_for_its_contents_leaves_nothing_that_refuses_the_fixed_one(tmp_path,
                                                                                 clock_files):
    labels = np.load(clock_files / "labels.npy")
    hours_1_to_12 = labels.copy()
    hours_1_to_12[hours_1_to_12[:, 0] == 0, 0] = 12
    np.save(clock_files / "labels.npy", hours_1_to_12)
    out = tmp_path / "out"
    arguments = ["compare", "--data-dir", str(clock_files), "--epochs", "1", "--head", "periodic",
                 *TINY_BACKBONE, "--out", str(out)]
    refused = CliRunner().invoke(clock_group, arguments)
    assert refused.exit_code == 1 and "labels[:, 0] % 12" in refused.output, refused.output
    assert "Traceback" not in refused.output and not out.exists()
    fixed_files = write_clock_files(tmp_path / "fixed")  # the corrected set, in another folder
    arguments[arguments.index(str(clock_files))] = str(fixed_files)
    fixed = CliRunner().invoke(clock_group, arguments)
    assert fixed.exit_code == 0, fixed.output


def test_predict_reads_the_time_with_a_trained_head(tmp_path, clock_files):
    from PIL import Image

    from datasets.clock import load_clock

    out = tmp_path / "trained"
    trained = CliRunner().invoke(clock_group, [
        "compare", "--data-dir", str(clock_files), "--epochs", "1", "--head", "multi_head",
        "--head", "classification", "--num-classes", "72", *TINY_BACKBONE, "--out", str(out)])
    assert trained.exit_code == 0, trained.output
    data = load_clock(data_dir=clock_files, size=75, split="final")
    pixels = np.round(data.x_test[..., 0] * 255).astype(np.uint8)
    np.save(tmp_path / "held_out.npy", pixels)
    pictures = tmp_path / "pictures"
    pictures.mkdir()
    for index, image in enumerate(pixels):
        Image.fromarray(image).save(pictures / f"clock{index}.png")
    (pictures / "notes.txt").write_text("not a picture")  # skipped: not a picture suffix

    expected = pd.read_csv(out / "heads" / "classification-72-predictions.csv")
    expected_times = [f"{hour}:{minute:02d}" for hour, minute
                      in zip(expected["predicted_hour"], expected["predicted_minute"])]
    for source in (tmp_path / "held_out.npy", pictures):
        result = CliRunner().invoke(clock_group, [
            "predict", str(out), str(source), "--head", "classification-72",
            "--out", str(tmp_path / "times.csv")])
        assert result.exit_code == 0, result.output
        read = pd.read_csv(tmp_path / "times.csv")
        assert list(read["time"]) == expected_times
        assert len(read) == len(pixels)
    # --polarity auto: the library's reading of the images and their negatives.
    from tuner.clock_models import load_trained_model, read_times

    result = CliRunner().invoke(clock_group, [
        "predict", str(out), str(tmp_path / "held_out.npy"), "--head", "classification-72",
        "--polarity", "auto", "--out", str(tmp_path / "auto.csv")])
    assert result.exit_code == 0, result.output
    model = load_trained_model(out, "classification-72")
    minutes = read_times(model.model, pixels, head=model.head, polarity="auto")
    read = pd.read_csv(tmp_path / "auto.csv")
    np.testing.assert_array_equal(read["hour"] * 60 + read["minute"],
                                  np.round(minutes).astype(int) % 720)
    # Default head: the comparison's best row; test rotations are accepted.
    best = json.loads((out / "comparison.json").read_text())["best"]["head"]
    result = CliRunner().invoke(clock_group, ["predict", str(out), str(pictures),
                                              "--test-rotations", "4"])
    assert result.exit_code == 0 and f"with {best} from" in result.output


def test_predict_refuses_auto_polarity_without_a_softmax_head(tmp_path, clock_files):
    out = tmp_path / "trained"
    CliRunner().invoke(clock_group, ["compare", "--data-dir", str(clock_files), "--epochs", "1",
                                     "--head", "periodic", *TINY_BACKBONE, "--out", str(out)])
    np.save(tmp_path / "clocks.npy", np.full((2, 75, 75), 128, np.uint8))
    result = CliRunner().invoke(clock_group, ["predict", str(out), str(tmp_path / "clocks.npy"),
                                              "--polarity", "auto"])
    assert result.exit_code == 2
    assert "has no softmax output to tell which" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("make_input,message", [
    (lambda tmp: (tmp / "big.npy", np.zeros((2, 60, 60), np.uint8)),
     "expected shape (N, S, S) with S in 75, 150, got (2, 60, 60)"),
    (lambda tmp: (tmp / "broken.png", b"not a png"), "not a readable picture"),
    (lambda tmp: (tmp / "empty", None), "no pictures in this folder"),
])
def test_predict_refuses_what_it_cannot_read(tmp_path, clock_files, make_input, message):
    out = tmp_path / "trained"
    CliRunner().invoke(clock_group, ["compare", "--data-dir", str(clock_files), "--epochs", "1",
                                     "--head", "periodic", *TINY_BACKBONE, "--out", str(out)])
    path, content = make_input(tmp_path)
    if content is None:
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        np.save(path, content)
    result = CliRunner().invoke(clock_group, ["predict", str(out), str(path)])
    assert result.exit_code == 1 and message in result.output, result.output
    unknown = CliRunner().invoke(clock_group, ["predict", str(out), str(path), "--head", "ordinal"])
    assert unknown.exit_code == 1
    assert "has no trained head 'ordinal'; it has: periodic." in unknown.output


EPOCH_LINE = re.compile(r"^periodic  epoch (\d)/2  loss \d+\.\d{3}  held-out \d+\.\d min \(8 images, "
                        r"one read\)  \d+(\.\d)? s/epoch  elapsed \d+:\d\d:\d\d  left ~\d+:\d\d:\d\d$")


def test_compare_prints_a_line_per_epoch_unless_quiet(tmp_path, clock_files):
    arguments = ["compare", "--data-dir", str(clock_files), "--epochs", "2", "--head", "periodic",
                 *TINY_BACKBONE]
    result = CliRunner().invoke(clock_group, [*arguments, "--out", str(tmp_path / "loud")],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == ("periodic  training 2 epochs on 32 images; the held-out error per epoch "
                        "is monitoring only (nothing is chosen by it)")
    # The final split's validation set is the held-out set: its val_cse, at no extra cost.
    assert [EPOCH_LINE.match(line).group(1) for line in lines[1:3]] == ["1", "2"], lines
    assert lines[2].endswith("left ~0:00:00")
    assert re.match(r"^periodic  done: mean error \d+\.\d min on 8 held-out images, in \d+:\d\d:\d\d$",
                    lines[3])
    quiet = CliRunner().invoke(clock_group, [*arguments, "-q", "--out", str(tmp_path / "quiet")],
                               catch_exceptions=False)
    assert quiet.exit_code == 0 and quiet.output.startswith("| head |"), quiet.output
    again = CliRunner().invoke(clock_group, [*arguments, "--out", str(tmp_path / "loud")],
                               catch_exceptions=False)
    assert again.output.startswith(f"periodic  already trained in {tmp_path / 'loud'}: mean error ")


def test_held_out_monitor_reads_a_sample_and_stops_when_too_dear(tmp_path, clock_files,
                                                                 monkeypatch):
    from datasets.clock import load_clock

    data = load_clock(data_dir=clock_files, size=75, split="tuning")
    assert data.x_val is not data.x_test and len(data.x_test) == 4
    monkeypatch.setattr(clock_tuner, "MONITOR_IMAGES", 3)
    # A one-epoch read of 3 images costs more than a tenth of a 32-image epoch: allow any cost.
    monkeypatch.setattr(clock_tuner, "MONITOR_SHARE", 1e9)
    lines = []
    compare_heads(_tiny_config(heads=("periodic",), epochs=2), tmp_path / "sampled", data=data,
                  progress=lines.append)
    epochs = [line for line in lines if re.search(r"  epoch \d/2  ", line)]
    assert len(epochs) == 2 and all("held-out" in line and "(3 images, one read)" in line
                                    for line in epochs), lines
    monkeypatch.setattr(clock_tuner, "MONITOR_SHARE", 0.0)
    lines = []
    compare_heads(_tiny_config(heads=("periodic",), epochs=2), tmp_path / "dear", data=data,
                  progress=lines.append)
    epochs = [line for line in lines if re.search(r"  epoch \d/2  ", line)]
    assert re.search(r"\(3 images, one read; it took \d+\.\d s, over 0% of the epoch: not read "
                     r"again\)", epochs[0]), epochs
    assert "held-out" not in epochs[1]
