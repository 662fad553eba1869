"""The run-directory contract (``tuner.rundir``): kinds, lock, atomic writes, settings, readers."""

from __future__ import annotations

import json
import os

import pandas as pd
import pytest

from tuner import rundir
from tuner.errors import CorruptRunError, RunDirError, RunLockedError
from tuner.results import read_trials


def _trial(project, trial_id, score=0.5, status="COMPLETED"):
    folder = project / f"trial_{trial_id}"
    folder.mkdir(parents=True)
    state = {"trial_id": trial_id, "hyperparameters": {"space": [], "values": {"units": 8}},
             "metrics": {"metrics": {"val_accuracy": {"direction": "max", "observations": [
                 {"value": [score], "step": 0}]}}},
             "score": score, "best_step": 0, "status": status, "message": None}
    (folder / "trial.json").write_text(json.dumps(state))


def test_kinds_of_run_are_told_apart(tmp_path):
    search, project, transfer, empty = (tmp_path / name for name in ("s", "p", "t", "e"))
    for folder in (search, project, transfer, empty):
        folder.mkdir()
    (search / "run.yaml").write_text("config: {}\n")
    (search / "comparison.csv").write_text("head\n")
    _trial(project, "0")
    (transfer / "transfer.csv").write_text("config\n")
    assert rundir.run_kinds(search) == [rundir.SEARCH]
    assert rundir.run_kinds(project) == [rundir.KERAS_TUNER]
    assert rundir.run_kinds(transfer) == [rundir.TRANSFER]
    assert rundir.run_kinds(empty) == []
    assert rundir.keras_tuner_project(search) == search / "kt"
    assert rundir.keras_tuner_project(project) == project
    with pytest.raises(RunDirError, match="It holds the KerasTuner project"):
        rundir.require_run(tmp_path, (rundir.SEARCH, rundir.KERAS_TUNER), "report")


def test_trial_ids_are_ordered_as_numbers_after_a_run_is_extended(tmp_path):
    # KerasTuner pads ids to the width of max_trials: 6 trials, then extended to 14.
    run_dir = tmp_path / "run"
    ids = [str(i) for i in range(6)] + [f"{i:02d}" for i in range(6, 14)]
    for trial_id in reversed(ids):
        _trial(run_dir / "kt", trial_id)
    (run_dir / "run.yaml").write_text("config: {}\n")
    assert read_trials(run_dir)["trial_id"].tolist() == ids
    assert sorted(["10", "9", "06", "1"], key=rundir.trial_sort_key) == ["1", "06", "9", "10"]


def test_lock_refuses_a_second_holder_and_leaves_nothing_behind(tmp_path):
    run_dir = tmp_path / "new" / "run"
    with rundir.run_lock(run_dir):
        assert (run_dir / ".lock").is_file()
        with pytest.raises(RunLockedError, match="in use by another hpsearch process"):
            with rundir.run_lock(run_dir):
                pass
    # Nothing was written: the folders it created are gone with the lock file.
    assert not (tmp_path / "new").exists()
    with rundir.run_lock(run_dir):
        (run_dir / "kept.txt").write_text("x")
    assert (run_dir / "kept.txt").is_file() and not (run_dir / ".lock").exists()


def test_a_run_dir_below_a_regular_file_is_named(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(RunDirError, match=f"{tmp_path / 'file'} is a file, not a folder"):
        with rundir.run_lock(tmp_path / "file" / "run"):
            pass


def test_a_failed_write_names_the_file_and_keeps_the_old_content(tmp_path, monkeypatch):
    path = tmp_path / "table.csv"
    rundir.write_csv(path, pd.DataFrame({"a": [1]}))

    def refuse(*args):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(rundir.os, "replace", refuse)
    with pytest.raises(RunDirError, match=f"Cannot write {path}: Permission denied"):
        rundir.write_csv(path, pd.DataFrame({"a": [2]}))
    assert path.read_text() == "a\n1\n" and [p.name for p in tmp_path.iterdir()] == ["table.csv"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores the mode bits")
def test_an_unwritable_run_dir_is_named(tmp_path):
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(RunDirError, match=f"Cannot write {folder / '.lock'}"):
            with rundir.run_lock(folder):
                pass
    finally:
        folder.chmod(0o700)


def test_settings_mismatch_shows_saved_and_requested(tmp_path):
    path = tmp_path / "settings.yaml"
    fix = "Use the same settings."
    assert not rundir.write_or_check_settings(path, {"s": {"a": 1, "b": "x"}}, "s", "it breaks", fix)
    assert rundir.write_or_check_settings(path, {"s": {"a": 1, "b": "x"}}, "s", "it breaks", fix)
    with pytest.raises(rundir.SettingsMismatchError) as caught:
        rundir.write_or_check_settings(path, {"s": {"a": 2, "b": "x"}}, "s", "it breaks", fix)
    assert str(caught.value) == (
        f"Run directory {tmp_path} was created with other settings, so it breaks:\n"
        "  - a: run directory has 1, this command asks for 2\nUse the same settings.")
    # A setting added since counts as its default.
    assert rundir.check_settings(path, "s", {"a": 1, "b": "x", "c": 0}, "", "", defaults={"c": 0})


def test_readers_name_the_broken_file(tmp_path):
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(bytes(range(256)))
    with pytest.raises(CorruptRunError, match=f"{binary} is not a text file"):
        rundir.read_yaml(binary, "settings")
    project = tmp_path / "project"
    _trial(project, "0")
    _trial(project, "1")
    (project / "trial_1" / "trial.json").write_text("{garbage")
    with pytest.raises(CorruptRunError) as caught:
        rundir.read_trial_states(project, repair_hint="Run `hpsearch repair X`.")
    assert f"{project / 'trial_1' / 'trial.json'} (JSONDecodeError" in str(caught.value)
    assert str(caught.value).endswith("Run `hpsearch repair X`.")
