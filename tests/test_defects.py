"""The small defects of issue 38, each with the test that found it: transfer into a search's folder,
a diverged transfer row, an all-failed search run again, the chief's stray prints and its export
after every trial, a picture too large to decode."""

from __future__ import annotations

import json
import struct
import threading
import time
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

import search_spaces
from conftest import wait_for
from top_configs import TopConfig, write_top_config
from tuner.cli import main
from tuner.config import RunConfig, write_run_config


def _mlp_config(folder: Path, name: str = "rank_1") -> Path:
    """A configuration file of the mlp space (its textbook point), as `tune` exports them."""
    values = search_spaces.get("mlp", input_shape=(28, 28, 1), num_classes=10).textbook_values()
    folder.mkdir(parents=True, exist_ok=True)
    return write_top_config(folder / f"{name}.yaml", TopConfig(
        rank=1, search_space="mlp", dataset="fashion_mnist", objective="val_accuracy",
        direction="max", score=0.5, trial_id="0", epochs=1, hyperparameters=values))


def _invoke(*args, expect=0):
    result = CliRunner().invoke(main, [str(arg) for arg in args],
                                catch_exceptions=expect != 0)
    assert result.exit_code == expect, result.output
    return result


# ---------------------------------------------------------------- 1. transfer into a search
def test_transfer_into_a_search_directory_is_refused(tiny_data_dir, tmp_path):
    search = tmp_path / "search"
    search.mkdir()
    write_run_config(search, RunConfig(space="mlp"))  # run.yaml, as `hpsearch tune` writes it
    source = _mlp_config(tmp_path / "configs")
    result = _invoke("transfer", source, "--run-dir", search, "--data-dir", tiny_data_dir,
                     "--dataset", "fashion_mnist", "--epochs", "1", "--no-textbook", expect=1)
    assert result.output == (
        f"Error: {search} holds a search (run.yaml, written by `hpsearch tune`); a transfer "
        "written there would mix its files with that run's. Pass another --run-dir (a new "
        "folder, or one of a transfer).\n")
    # --overwrite deletes a transfer's files only: it does not make the folder one.
    again = _invoke("transfer", source, "--run-dir", search, "--overwrite", expect=1)
    assert again.output.startswith(f"Error: {search} holds a search (run.yaml")
    assert sorted(path.name for path in search.iterdir()) == ["run.yaml"]


# ---------------------------------------------------------------- 2. a diverged transfer row
@pytest.fixture
def diverging_mlp(monkeypatch):
    """The mlp space's training weighs every image by NaN: its loss is NaN from the first batch
    (NaN images would not do: ReLU turns NaN into 0)."""
    from search_spaces.base import SearchSpace
    from search_spaces.mlp import MLPHyperModel

    def poisoned_fit(self, hp, model, x, y, *args, **kwargs):
        weights = np.full(len(y), np.nan, np.float32)
        return SearchSpace.fit(self, hp, model, x, y, *args, sample_weight=weights, **kwargs)

    monkeypatch.setattr(MLPHyperModel, "fit", poisoned_fit)


@pytest.mark.parametrize("final", [False, True])
def test_a_diverged_transfer_row_says_so_in_its_line_and_in_the_table(
        final, diverging_mlp, tiny_data_dir, tmp_path):
    source = _mlp_config(tmp_path / "configs", "steep")
    out = tmp_path / "transfer"
    output = _invoke("transfer", source, "--run-dir", out, "--data-dir", tiny_data_dir,
                     "--dataset", "fashion_mnist", "--epochs", "2", "--no-textbook",
                     "--precision", "float32", *(["--final"] if final else [])).output
    lines = output.splitlines()
    measured = next(line for line in lines if "s/epoch" in line and "test_accuracy" in line)
    assert measured.endswith(" (diverged: its loss stopped being finite)"), output
    rows = pd.read_csv(out / "transfer.csv")
    assert rows["diverged"].tolist() == [True] and rows["test_accuracy"].isna().all()
    assert pd.read_csv(out / "summary.csv")["diverged_seeds"].tolist() == [1]
    header = next(line for line in lines if line.startswith("config "))
    row = next(line for line in lines if line.startswith("steep "))
    # The word where the scores would be, each cell ending under its column's title.
    test_end = header.index("target test accuracy") + len("target test accuracy")
    assert row[test_end - len("diverged"):test_end] == "diverged", f"{header}\n{row}"
    val_end = header.index("target val accuracy") + len("target val accuracy")
    assert row[val_end - len("diverged"):val_end] == "diverged", f"{header}\n{row}"
    assert len(row) == len(header) and "nan" not in row


def test_the_table_says_diverged_only_where_every_seed_diverged():
    from tuner.transfer import format_transfer_table

    summary = pd.DataFrame({
        "config": ["rank_1", "rank_2", "rank_3"], "source_score": [0.8, 0.7, 0.6],
        "seeds": [2, 2, 1], "diverged_seeds": [2, 1, 0], "objective": ["val_accuracy"] * 3,
        "val_score_mean": [np.nan, 0.5, np.nan], "val_score_std": [np.nan] * 3,
        "test_score_mean": [np.nan, 0.4, np.nan], "test_score_std": [np.nan] * 3,
        "epochs_mean": [1.0] * 3, "params": [10] * 3, "seconds_per_epoch": [0.1] * 3,
    })
    header, *rows = format_transfer_table(summary).splitlines()
    assert rows[0].split()[2:4] == ["diverged", "diverged"]
    assert rows[1].split()[2:4] == ["0.5000", "0.4000"]  # one seed of two: its mean is shown
    assert rows[2].split()[2:4] == ["-", "-"]  # missing for another reason (no split)
    assert {len(line) for line in rows} == {len(header)}


# ---------------------------------------------------------------- 3. an all-failed search again
def test_running_an_all_failed_search_again_still_exits_1(tiny_data_dir, tmp_path, monkeypatch):
    from search_spaces.mlp import MLPHyperModel

    def broken_fit(self, hp, model, *args, **kwargs):
        raise ValueError("the pipeline broke")

    monkeypatch.setattr(MLPHyperModel, "fit", broken_fit)
    run = tmp_path / "run"
    command = ["tune", "mlp", "--run-dir", run, "--data-dir", tiny_data_dir, "--subset", "all",
               "--tuner", "random", "--max-trials", "2", "--max-epochs", "1", "--quiet"]
    error = ("Error: Every trial failed (2 of 2), so nothing was exported. Trial 0: ValueError: "
             "the pipeline broke")
    first = _invoke(*command, expect=1)
    assert error in first.output
    again = _invoke(*command, expect=1)  # nothing new to run: the run has still failed
    assert "0 run now" in again.output and error in again.output
    assert again.output.splitlines()[-1] == first.output.splitlines()[-1]


def test_a_resumed_search_with_a_completed_trial_has_not_failed(tmp_path):
    from tuner.export import SearchResult

    def result(statuses):
        trials = pd.DataFrame({"trial_id": [str(i) for i in range(len(statuses))],
                               "status": statuses, "message": ["ValueError: broke"] * 2})
        return SearchResult(run_dir=tmp_path, config=RunConfig(), trials=trials,
                            top_configs=[], textbook_score=float("nan"), new_trials=0)

    assert result(["FAILED", "COMPLETED"]).failure is None
    assert result(["FAILED", "FAILED"]).failure.startswith(
        "Every trial failed (2 of 2), so nothing was exported. Trial 0: ValueError: broke")


# ---------------------------------------------------------------- 4 and 6. the chief
def _conditional_oracle(project: Path):
    """The chief's oracle of a two-trial random search over a space with conditional
    hyperparameters (a string and a whole-number condition)."""
    import keras_tuner as kt

    from tuner.oracles import _RandomOracle

    hp = kt.HyperParameters()
    hp.Choice("optimizer", ["sgd", "adam"], default="adam")
    with hp.conditional_scope("optimizer", ["adam"]):
        hp.Float("beta_1", 0.8, 0.99, default=0.9)
    hp.Int("layers", 1, 2, default=2)
    with hp.conditional_scope("layers", [2]):
        hp.Int("units_2", 8, 16, default=8)
    oracle = _RandomOracle(objective=kt.Objective("val_accuracy", "max"), max_trials=2, seed=1,
                           hyperparameters=hp)
    oracle._set_project_dir(str(project.parent), project.name)
    return oracle


def test_the_chief_prints_no_stray_values_and_exports_after_each_trial(tmp_path, capsys):
    import grpc
    from keras_tuner.src import protos

    from tuner.distributed import ServeSettings, serve_oracle
    from tuner.worker import _WorkerCredentials

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    write_run_config(run_dir, RunConfig(space="mlp", tuner="random", max_trials=2))
    oracle = _conditional_oracle(run_dir / "kt")
    lines: list[str] = []

    def progress(line: str) -> None:  # as `hpsearch tune --serve` shows them: on stdout
        lines.append(line)
        print(line)

    serving = threading.Thread(
        target=serve_oracle, daemon=True,
        args=(oracle, run_dir, ServeSettings(worker_timeout=60.0), progress))
    serving.start()
    wait_for(lambda: lines, 30, "the chief serving")
    address = lines[0].split()[3].rstrip(";")
    service, trial_status = protos.get_service(), protos.get_proto().TrialStatus
    # As a worker calls: with the run's token, the chief's run id and its own id.
    served = json.loads((run_dir / "distributed.json").read_text())
    channel = grpc.intercept_channel(grpc.insecure_channel(address), _WorkerCredentials(
        (run_dir / "run_token").read_text().strip(), "worker0", served["run_id"]))
    stub = protos.get_service_grpc().OracleStub(channel)
    try:
        stub.GetSpace(service.GetSpaceRequest(), timeout=30)
        for number, score in enumerate((0.5, 0.7), start=1):
            trial = stub.CreateTrial(service.CreateTrialRequest(tuner_id="worker0"),
                                     timeout=30).trial
            stub.UpdateTrial(service.UpdateTrialRequest(
                trial_id=trial.trial_id, metrics={"val_accuracy": score}, step=0), timeout=30)
            ended = service.EndTrialRequest()
            ended.trial.CopyFrom(trial)
            ended.trial.status = trial_status.COMPLETED
            stub.EndTrial(ended, timeout=30)
            # Written by the chief while it still serves, as a local search does.
            wait_for(lambda rows=number: (run_dir / "trials.csv").is_file()
                      and len(pd.read_csv(run_dir / "trials.csv")) == rows, 10,
                      f"trials.csv with trial {number}")
            assert serving.is_alive()
            assert (run_dir / "top_configs" / "rank_1.yaml").is_file()
        stopped = stub.CreateTrial(service.CreateTrialRequest(tuner_id="worker0"), timeout=30)
        assert stopped.trial.status == trial_status.STOPPED
    finally:
        channel.close()
    serving.join(timeout=30)
    assert not serving.is_alive()
    trials = pd.read_csv(run_dir / "trials.csv")
    assert trials["status"].tolist() == ["COMPLETED", "COMPLETED"]
    assert sorted(trials["score"]) == [0.5, 0.7]
    # Every call above serialized the conditional hyperparameters, which KerasTuner follows
    # with a bare print of "adam" and 2: none reached stdout, the progress line did.
    assert capsys.readouterr().out.splitlines() == lines


# ---------------------------------------------------------------- 5. a picture too large
def _huge_png(path: Path, side: int = 13000) -> Path:
    """A black 1-bit PNG of side x side pixels: a few tens of KB on disk, 169 MB as 8-bit
    grayscale once decoded (written chunk by chunk, never held as an image)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    row = b"\x00" * (1 + (side + 7) // 8)  # filter byte, then 8 pixels a byte
    compressor = zlib.compressobj(9)
    pixels = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n"
                     + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0))
                     + chunk(b"IDAT", pixels) + chunk(b"IEND", b""))
    return path


@pytest.fixture
def nothing_decoded(monkeypatch):
    """Fails any decoding of a picture file's pixels (Pillow's ``ImageFile.load``)."""
    from PIL import ImageFile

    def load(self):
        raise RuntimeError(f"decoded {self.size[0]}x{self.size[1]} pixels")

    monkeypatch.setattr(ImageFile.ImageFile, "load", load)


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_clock_predict_refuses_a_huge_picture_before_decoding_it(tmp_path, nothing_decoded):
    from PIL import Image

    from datasets.clock import read_clock_images
    from datasets.errors import DatasetFormatError

    huge = _huge_png(tmp_path / "huge.png")
    assert huge.stat().st_size < 100_000
    with Image.open(huge) as picture:
        assert picture.size == (13000, 13000)
    started = time.monotonic()
    with pytest.raises(DatasetFormatError) as caught:
        read_clock_images([huge], size=75)
    assert time.monotonic() - started < 2
    assert str(caught.value) == (
        f"The picture '{huge}' is 13000x13000 pixels (169 million); pictures of up to 50 "
        "million pixels are read. Scale it down first.")
    # The same from a folder of pictures (clock predict photos/).
    with pytest.raises(DatasetFormatError, match="is 13000x13000 pixels"):
        read_clock_images([tmp_path], size=75)


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_a_huge_picture_in_a_users_folder_is_one_error_line(tmp_path, nothing_decoded):
    from PIL import Image

    folder = tmp_path / "pictures"
    huge = _huge_png(folder / "cats" / "huge.png")
    (folder / "dogs").mkdir()
    for index in range(2):
        Image.new("L", (8, 8), 40 * index).save(folder / "dogs" / f"dog{index}.png")
    started = time.monotonic()
    result = _invoke("tune", "mlp", "--data", folder, "--run-dir", tmp_path / "run",
                     "--max-epochs", "1", expect=1)
    assert time.monotonic() - started < 30  # TensorFlow's import; no decoding
    assert result.output == (
        f"Error: The picture '{huge}' is 13000x13000 pixels (169 million); pictures of up to 50 "
        "million pixels are read. Scale it down first.\n")
