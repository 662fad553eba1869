"""Fine-tuning a trained clock model: ``--init-from RUN`` on ``clock compare`` and ``tune clock``."""
from __future__ import annotations

import dataclasses
import json
import warnings

import keras
import numpy as np
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from search_spaces.clock import ClockHyperModel
from search_spaces.clock_heads import ClockHead
from search_spaces.clock_init import layer_keys
from tuner.cli import main
from tuner.clock import ComparisonConfig, compare_heads
from tuner.clock_cli import clock_group
from tuner.clock_models import fixed_hyperparameters, load_init_source, load_trained_model
from tuner.config import InvalidSettingError, RunConfig, write_run_config
from tuner.rundir import SettingsMismatchError
from tuner.clock_search import resolve_init_source
from tuner.preparation import load_dataset
from tuner.search import _check_resume
from tests.conftest import write_clock_files
from tests.test_clock_models import TINY, tiny_clock_data
from top_configs import read_top_config

TINY_BACKBONE = [option for name, value in TINY.items() for option in ("--set", f"{name}={value}")]


@pytest.fixture(autouse=True)
def _seeded(monkeypatch, tmp_path):
    keras.utils.set_random_seed(0)
    warnings.filterwarnings("ignore", message=".*currentThread.*", category=DeprecationWarning)
    monkeypatch.setenv("HPSEARCH_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def clock_files(tmp_path_factory):
    """40 images of 75x75 in the assignment's on-disk format (no geometry.npy)."""
    return write_clock_files(tmp_path_factory.mktemp("clock-data"))


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, clock_files):
    """A one-epoch `clock compare` of the small multi_head model on the 75-pixel files."""
    keras.utils.set_random_seed(0)
    out = tmp_path_factory.mktemp("trained")
    result = CliRunner().invoke(clock_group, [
        "compare", "--data-dir", str(clock_files), "--epochs", "1", "--head", "multi_head",
        "--set", "minute_output=periodic", *TINY_BACKBONE, "-q", "--out", str(out)],
        catch_exceptions=False)
    assert result.exit_code == 0, result.output
    keras.backend.clear_session()
    return out


def test_a_new_model_starts_from_the_trained_weights_where_they_fit(trained_run):
    source = load_init_source(trained_run)
    assert source.head == ClockHead("multi_head", minute_output="periodic")
    trained = layer_keys(load_trained_model(trained_run).model)
    for head, expected_head in (("multi_head", True), ("periodic", False)):
        hypermodel = ClockHyperModel((75, 75, 1), head=head, init_weights=source.weights)
        model = hypermodel.build(fixed_hyperparameters(source.architecture(head)))
        report = hypermodel.last_initialization
        built = layer_keys(model)
        np.testing.assert_array_equal(built["Conv2D/0"].get_weights()[0],
                                      trained["Conv2D/0"].get_weights()[0])
        assert report.head_copied is expected_head and not report.geometry_copied
        backbone = sum(len(layer.weights) for key, layer in built.items()
                       if key not in ("time", "hour", "minute"))
        if expected_head:
            assert report.initialized_tensors == 0 and report.copied_tensors == len(model.weights)
        else:
            # Only the new head's output layer (kernel and bias) starts from random weights.
            assert report.initialized == ("time",) and report.initialized_tensors == 2
            assert report.copied_tensors == backbone
    # The architecture is the trained model's; the training values are left free.
    architecture = source.architecture("multi_head")
    assert architecture["filters"] == 16 and architecture["minute_output"] == "periodic"
    assert not {"learning_rate", "optimizer", "batch_size", "augment", "dropout"} & set(architecture)
    assert not {"minute_output", "head"} & set(source.architecture("periodic"))


def test_compare_init_from_copies_the_weights_before_training(tmp_path, trained_run, clock_files,
                                                              monkeypatch):
    before = {}
    original_fit = ClockHyperModel.fit

    def spy(self, hp, model, *args, **kwargs):
        before[model.name] = np.array(layer_keys(model)["Conv2D/0"].get_weights()[0])
        return original_fit(self, hp, model, *args, **kwargs)

    monkeypatch.setattr(ClockHyperModel, "fit", spy)
    out = tmp_path / "fine"
    # No --set: the small architecture comes from the trained run.
    result = CliRunner().invoke(clock_group, [
        "compare", "--init-from", str(trained_run), "--head", "multi_head", "--head", "periodic",
        "--data-dir", str(clock_files), "--epochs", "1", "--out", str(out)],
        catch_exceptions=False)
    assert result.exit_code == 0, result.output
    trained = layer_keys(load_trained_model(trained_run).model)["Conv2D/0"].get_weights()[0]
    for name in ("clock_multi_head", "clock_periodic"):
        np.testing.assert_array_equal(before[name], trained)
    source = f"{trained_run} (multi_head)"
    assert f"multi_head  initialized: copied 21 tensors (backbone, time head) from {source}, " \
           "0 freshly initialized" in result.output
    assert (f"periodic: copied 17 tensors (backbone) from {source}, 2 freshly initialized "
            "(time head)") in result.output.splitlines()
    table = pd.read_csv(out / "comparison.csv")
    source_table = pd.read_csv(trained_run / "comparison.csv")
    assert table.loc[0, "parameters"] == source_table.loc[0, "parameters"]
    assert yaml.safe_load((out / "config.yaml").read_text())["init_from"] == str(trained_run)
    periodic = json.loads((out / "heads" / "periodic.json").read_text())["initialization"]
    assert periodic["initialized"] == ["time"] and periodic["copied_tensors"] == 17
    assert periodic["run"] == str(trained_run) and periodic["label"] == "multi_head"
    summary = json.loads((out / "comparison.json").read_text())
    assert summary["initialization"]["multi_head"]["head_copied"] is True
    card = json.loads((out / "heads" / "periodic.head.json").read_text())
    assert card["initialized_from"]["initialized_tensors"] == 2


def test_compare_init_from_without_head_fine_tunes_the_run_s_own_head(tmp_path, trained_run,
                                                                      clock_files):
    out = tmp_path / "own-head"
    result = CliRunner().invoke(clock_group, [
        "compare", "--init-from", str(trained_run), "--data-dir", str(clock_files), "--epochs",
        "1", "--quiet", "--out", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert list(pd.read_csv(out / "comparison.csv")["head"]) == ["multi_head"]
    assert "multi_head: copied 21 tensors (backbone, time head)" in result.output


def test_compare_init_from_on_data_with_geometry_builds_a_fresh_geometry_output(tmp_path,
                                                                                trained_run):
    data = tiny_clock_data(count=40, size=75, geometry=True)
    config = ComparisonConfig(heads=("multi_head",), epochs=1, init_from=str(trained_run))
    table = compare_heads(config, tmp_path / "geometry", data=data)
    report = table.attrs["initialization"]["multi_head"]
    assert report["head_copied"] and report["initialized"] == ["geometry"]
    assert report["initialized_tensors"] == 2


@pytest.mark.parametrize("arguments,exit_code,message", [
    (["--size", "150"], 2,
     "Error: --init-from {run} (multi_head) was trained on 75x75 images, but this comparison "
     "(--size 150) reads 150x150. Pass --size 75, or start from a run trained on 150-pixel "
     "images."),
    (["--init-head", "periodic"], 1,
     "Error: {run} has no trained head 'periodic'; it has: multi_head."),
])
def test_compare_init_from_refuses_what_cannot_fit(tmp_path, trained_run, clock_files, arguments,
                                                   exit_code, message):
    out = tmp_path / "refused"
    result = CliRunner().invoke(clock_group, [
        "compare", "--init-from", str(trained_run), "--data-dir", str(clock_files),
        "--epochs", "1", *arguments, "--out", str(out)])
    assert result.exit_code == exit_code, result.output
    assert result.output.splitlines()[-1] == message.format(run=trained_run)
    assert "Traceback" not in result.output and not out.exists()


def test_init_from_errors_about_the_run(tmp_path, clock_files):
    not_a_run = tmp_path / "photos"
    not_a_run.mkdir()
    arguments = ["compare", "--data-dir", str(clock_files), "--epochs", "1",
                 "--out", str(tmp_path / "o")]
    result = CliRunner().invoke(clock_group, [*arguments, "--init-from", str(not_a_run)])
    assert result.exit_code == 1
    assert result.output.splitlines()[-1] == (
        f"Error: {not_a_run} is not a clock run: expected a folder written by `hpsearch clock "
        "compare` (comparison.json and heads/) or a run directory of `hpsearch tune clock` "
        "(run.yaml). Pass one of those.")
    missing = CliRunner().invoke(clock_group, [*arguments, "--init-from", str(tmp_path / "no")])
    assert missing.exit_code == 2 and "'--init-from': Directory" in missing.output
    alone = CliRunner().invoke(clock_group, [*arguments, "--init-head", "multi_head"])
    assert alone.exit_code == 2
    assert alone.output.splitlines()[-1].startswith("Error: init_head 'multi_head' names a model")


def test_tune_clock_init_from_searches_the_training_hyperparameters_only(tmp_path, trained_run,
                                                                         clock_files):
    run = tmp_path / "tuned"
    result = CliRunner().invoke(main, [
        "tune", "clock", "--init-from", str(trained_run), "--data-dir", str(clock_files),
        "--tuner", "random", "--max-trials", "1", "--max-epochs", "1", "--subset", "all",
        "--run-dir", str(run)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    document = yaml.safe_load((run / "run.yaml").read_text())
    assert document["config"]["init_from"] == str(trained_run)
    assert document["config"]["head"] == "multi_head"    # the trained model's, without --head
    assert document["init_from"]["fixed_hyperparameters"]["filters"] == 16
    assert document["init_from"]["initialization"]["initialized_tensors"] == 0
    trials = pd.read_csv(run / "trials.csv")
    assert len(trials) == 1 and trials.loc[0, "status"] == "COMPLETED"
    # The first trial is the fine-tune's default point: Adam 3e-4, batch 64, augmentation on.
    assert bool(trials.loc[0, "is_textbook"])
    assert (trials.loc[0, "filters"], trials.loc[0, "conv_blocks"]) == (16, 2)
    assert trials.loc[0, "minute_output"] == "periodic" and trials.loc[0, "optimizer"] == "adam"
    space = json.loads((run / "search_space.json").read_text())
    kinds = {entry["config"]["name"]: entry["class_name"] for entry in space["space"]}
    assert kinds["filters"] == "Fixed" and kinds["learning_rate"] == "Float"
    top = yaml.safe_load((run / "top_configs" / "rank_1.yaml").read_text())
    assert top["init_from"] == str(trained_run) and top["epochs"] == 1
    assert read_top_config(run / "top_configs" / "rank_1.yaml").init_from == str(trained_run)
    assert (f"Fine-tuning {trained_run} (multi_head): its architecture is fixed (13 values); "
            f"searching the training hyperparameters. Each trial copied 21 tensors (backbone, "
            f"time head) from {trained_run} (multi_head), 0 freshly initialized.") in result.output
    assert (f"Fine-tune of {trained_run} (its architecture kept), rank 1: learning_rate 0.0003, "
            "optimizer adam, beta_1 0.9, lr_schedule constant, batch_size 64, augment True, "
            "dropout 0; 1 epoch (its best epoch).") in result.output
    # The search's best trial reads the time, and starts a further fine-tune.
    keras.backend.clear_session()
    assert load_init_source(run).head == ClockHead("multi_head", minute_output="periodic")


def test_tune_init_from_a_run_of_another_size_is_refused(tmp_path, clock_files):
    # A 32-pixel comparison: the search reads 75-pixel clocks.
    source = tmp_path / "small"
    compare_heads(ComparisonConfig(heads=("periodic",), epochs=1, hyperparameters=TINY),
                  source, data=tiny_clock_data())
    result = CliRunner().invoke(main, [
        "tune", "clock", "--init-from", str(source), "--data-dir", str(clock_files),
        "--tuner", "random", "--max-trials", "1", "--max-epochs", "1", "--subset", "all",
        "--run-dir", str(tmp_path / "tuned")])
    assert result.exit_code == 2, result.output
    assert result.output.splitlines()[-1] == (
        f"Error: --init-from {source} (periodic) was trained on 32x32 images, but a clock search "
        "reads 75 or 150-pixel clocks. Start from a run trained on one of those sizes.")
    assert not (tmp_path / "tuned" / "run.yaml").exists()


def test_tune_clock_size_must_match_the_init_from_model(tmp_path, trained_run, clock_files):
    result = CliRunner().invoke(main, [
        "tune", "clock", "--init-from", str(trained_run), "--size", "150", "--data-dir",
        str(clock_files), "--run-dir", str(tmp_path / "tuned")])
    assert result.exit_code == 2, result.output
    assert result.output.splitlines()[-1] == (
        f"Error: --init-from {trained_run} (multi_head) was trained on 75x75 images, but this "
        "search (--size 150) reads 150x150. Pass --size 75, or start from a run trained on "
        "150-pixel images.")
    assert not (tmp_path / "tuned" / "run.yaml").exists()


def test_tune_size_is_refused_outside_the_clock_space(tmp_path):
    result = CliRunner().invoke(main, ["tune", "mlp", "--size", "150",
                                       "--run-dir", str(tmp_path / "mlp")])
    assert result.exit_code == 2, result.output
    assert "--size only applies to the clock search space, not 'mlp'." in result.output


def test_a_clock_search_reads_the_size_it_is_given(tmp_path):
    write_clock_files(tmp_path / "clock-150", count=20, size=150)
    for size in (150, 75):
        config = RunConfig(space="clock", dataset="clock", image_size=size, subset=None)
        data = load_dataset(config, data_dir=tmp_path)
        assert data.input_shape == (size, size, 1)
    # The clock set's --subset counts all its images (split afterwards), not train + validation.
    data = load_dataset(RunConfig(space="clock", dataset="clock", subset=15), data_dir=tmp_path)
    assert len(data.x_train) + len(data.x_val) + len(data.x_test) == 15
    with pytest.raises(InvalidSettingError, match="subset 25 is more than the 20 images"):
        load_dataset(RunConfig(space="clock", dataset="clock", subset=25), data_dir=tmp_path)
    # Clock runs made before --size existed read 75-pixel clocks, and still resume as such.
    config, _ = resolve_init_source(RunConfig(space="clock", dataset="clock"))
    assert config.image_size == 75
    run = tmp_path / "run"
    run.mkdir()
    write_run_config(run, config, {})
    document = yaml.safe_load((run / "run.yaml").read_text())
    del document["config"]["image_size"]
    (run / "run.yaml").write_text(yaml.safe_dump(document))
    assert _check_resume(run, config, overwrite=False) is True
    with pytest.raises(SettingsMismatchError, match="image_size"):
        bigger = dataclasses.replace(config, image_size=150)
        _check_resume(run, bigger, overwrite=False)
