"""Watching a search: TensorBoard's HParams data on every backend (tuner/hparams.py), `hpsearch
board`, MLflow (tuner/mlflow_tracking.py), a user's own callbacks and observers; the dashboard
itself in a real headless Chromium (marked slow)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import keras
import pytest
from click.testing import CliRunner

from tests.conftest import write_fashion_mnist
from tuner.config import RunConfig
from tuner.observers import TrialObserver
from tuner.search import run_search

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(tuner="random", max_epochs=2, subset=30)
# Written into each event file's name by the experiment (tuner.hparams.EXPERIMENT_SUFFIX).
EXPERIMENT_FILES = "*.hparams-experiment-*"


def _trials(run_dir: Path) -> dict[str, dict]:
    """trial_id -> trial.json, as KerasTuner wrote it."""
    return {json.loads(path.read_text())["trial_id"]: json.loads(path.read_text())
            for path in (run_dir / "kt").glob("trial_*/trial.json")}


def _values(trial: dict) -> dict:
    return {name: value for name, value in trial["hyperparameters"]["values"].items()
            if not name.startswith("tuner/")}


def read_hparams(logdir: Path) -> dict:
    """What TensorBoard's own reader (EventAccumulator) finds in a run's tensorboard/ folder:
    the experiment, and per trial folder its hparams, status, score and per-epoch scalars."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import metadata
    from tensorboard.util import tensor_util

    def load(folder: Path) -> EventAccumulator:
        accumulator = EventAccumulator(str(folder), size_guidance={"tensors": 0})
        accumulator.Reload()
        return accumulator

    def content(accumulator, tag):
        return accumulator.SummaryMetadata(tag).plugin_data.content

    root = load(logdir)
    found = {"experiment": None, "trials": {}}
    if metadata.EXPERIMENT_TAG in root.Tags()["tensors"]:
        found["experiment"] = metadata.parse_experiment_plugin_data(
            content(root, metadata.EXPERIMENT_TAG))
    for folder in sorted(path for path in logdir.iterdir() if path.is_dir()):
        session = load(folder)
        tags = session.Tags()["tensors"]
        trial = {"event_files": len(list(folder.glob("events.out.tfevents.*"))),
                 "hparams": None, "status": None, "score": None, "scalars": {}}
        if metadata.SESSION_START_INFO_TAG in tags:
            start = metadata.parse_session_start_info_plugin_data(
                content(session, metadata.SESSION_START_INFO_TAG))
            # Each value is a google.protobuf.Value: a number, a string or a bool.
            trial["hparams"] = {name: getattr(value, value.WhichOneof("kind"))
                                for name, value in start.hparams.items()}
        if metadata.SESSION_END_INFO_TAG in tags:
            end = metadata.parse_session_end_info_plugin_data(
                content(session, metadata.SESSION_END_INFO_TAG))
            trial["status"] = end.status
        if "score" in tags:
            last = session.Tensors("score")[-1]
            trial["score"] = float(tensor_util.make_ndarray(last.tensor_proto))
        for group in ("train", "validation"):
            if (folder / group).is_dir():
                scalars = load(folder / group)
                for tag in scalars.Tags()["tensors"]:
                    trial["scalars"][f"{group}/{tag}"] = [
                        (event.step, float(tensor_util.make_ndarray(event.tensor_proto)))
                        for event in scalars.Tensors(tag)]
        found["trials"][folder.name] = trial
    return found


def check_hparams_match_trials(run_dir: Path, epochs_written: bool = True) -> dict:
    """Every ended trial of ``run_dir`` is in its HParams data with its values, status, score."""
    from tensorboard.plugins.hparams import api_pb2

    found = read_hparams(run_dir / "tensorboard")
    experiment = found["experiment"]
    assert experiment is not None
    space = json.loads((run_dir / "search_space.json").read_text())
    assert sorted(info.name for info in experiment.hparam_infos) == sorted(
        entry["config"]["name"] for entry in space["space"])
    metric_names = [info.display_name for info in experiment.metric_infos]
    assert metric_names[:2] == ["score", "val_accuracy"]
    assert {"loss", "val_loss", "accuracy"} <= set(metric_names)
    trials = _trials(run_dir)
    assert set(found["trials"]) == set(trials)
    for trial_id, trial in trials.items():
        written = found["trials"][trial_id]
        expected = {name: (float(value) if isinstance(value, (int, float))
                           and not isinstance(value, bool) else value)
                    for name, value in _values(trial).items()}
        assert written["hparams"] == pytest.approx(expected), trial_id
        assert written["status"] == (api_pb2.STATUS_SUCCESS if trial["status"] == "COMPLETED"
                                     else api_pb2.STATUS_FAILURE)
        assert written["score"] == pytest.approx(trial["score"])
        assert "validation/epoch_accuracy" in written["scalars"]
        if epochs_written:
            best = trial["metrics"]["metrics"]["val_accuracy"]["observations"][-1]
            assert (best["step"], pytest.approx(best["value"][0])) in written[
                "scalars"]["validation/epoch_accuracy"]
    return found


class _EpochCounter(keras.callbacks.Callback):
    """A user's own callback. KerasTuner deep-copies the callbacks for every trial, so what it
    counts lives outside the instance."""

    epochs: list = []

    def on_epoch_end(self, epoch, logs=None):
        _EpochCounter.epochs.append(epoch)


def test_hparams_of_a_search_parse_back_with_tensorboard_s_reader(tiny_data_dir, tmp_path):
    run_dir = tmp_path / "run"
    _EpochCounter.epochs = []
    run_search(RunConfig(**TINY, max_trials=2, tensorboard=True), run_dir,
               data_dir=[tiny_data_dir], progress=None, callbacks=[_EpochCounter()])
    found = check_hparams_match_trials(run_dir)
    for trial_id, written in found["trials"].items():
        # One session per trial: Keras's TensorBoard callback (and KerasTuner's HParams
        # callback, which comes with it) is not added on top of hpsearch's own.
        assert written["event_files"] == 1
        assert [step for step, _ in written["scalars"]["train/epoch_loss"]] == list(
            range(len(written["scalars"]["train/epoch_loss"])))
    assert not list((run_dir / "tensorboard").rglob("execution0"))
    assert len(list((run_dir / "tensorboard").glob(EXPERIMENT_FILES))) == 1
    # The user's callback ran in every trial's fit.
    assert len(_EpochCounter.epochs) == sum(
        len(written["scalars"]["train/epoch_loss"]) for written in found["trials"].values())
    # A resumed search adds its trial and writes the experiment no second time.
    run_search(RunConfig(**TINY, max_trials=3, tensorboard=True), run_dir,
               data_dir=[tiny_data_dir], progress=None)
    assert len(check_hparams_match_trials(run_dir)["trials"]) == 3
    assert len(list((run_dir / "tensorboard").glob(EXPERIMENT_FILES))) == 1


def test_a_worker_s_trial_gets_its_best_epoch_as_score_and_executions_their_own_runs(tmp_path):
    """In a worker, the chief scores a trial (the engine passes no score): the observer takes
    the best epoch's objective, averaged over executions, as KerasTuner does."""
    from tensorboard.plugins.hparams import api_pb2

    from tuner.hparams import TensorBoardObserver

    space = {"space": [{"class_name": "Float", "config": {
        "name": "learning_rate", "min_value": 1e-4, "max_value": 0.3, "step": None,
        "sampling": "log", "default": 0.01, "conditions": []}}]}
    observer = TensorBoardObserver()
    observer.search_begin(tmp_path, RunConfig(objective="val_loss", direction="min"), space)
    observer.trial_begin("3", {"learning_rate": 0.05})
    for execution in ([2.0, 1.0, 1.5], [1.0, 0.8, 0.9]):  # executions_per_trial=2
        for epoch, loss in enumerate(execution):
            observer.epoch_end("3", epoch, {"loss": loss + 0.1, "val_loss": loss})
    observer.trial_end("3", "COMPLETED", None, {"learning_rate": 0.05})
    observer.search_end()
    found = read_hparams(tmp_path / "tensorboard")
    assert [info.name for info in found["experiment"].hparam_infos] == ["learning_rate"]
    assert found["experiment"].hparam_infos[0].domain_interval.max_value == pytest.approx(0.3)
    trial = found["trials"]["3"]
    assert trial["score"] == pytest.approx(0.9)  # epoch 1: (1.0 + 0.8) / 2
    assert trial["status"] == api_pb2.STATUS_SUCCESS
    assert [value for _, value in trial["scalars"]["validation/epoch_loss"]] == [2.0, 1.0, 1.5]
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    second = EventAccumulator(str(tmp_path / "tensorboard" / "3" / "execution1" / "validation"))
    second.Reload()
    assert len(second.Tensors("epoch_loss")) == 3


def test_active_values_drop_what_the_conditions_rule_out():
    from tuner.hparams import active_values

    def parent(name, values):
        return [{"class_name": "Parent", "config": {"name": name, "values": values}}]

    space = {"space": [
        {"class_name": "Choice", "config": {"name": "optimizer", "conditions": []}},
        {"class_name": "Float", "config": {"name": "momentum", "conditions": parent(
            "optimizer", ["sgd"])}},
        {"class_name": "Boolean", "config": {"name": "nesterov", "conditions": parent(
            "momentum", [0.9])}},
    ]}
    assert active_values(space, {"optimizer": "adam", "momentum": 0.9, "nesterov": True,
                                 "mine": 1}) == {"optimizer": "adam", "mine": 1}
    assert active_values(space, {"optimizer": "sgd", "momentum": 0.9, "nesterov": True}) == {
        "optimizer": "sgd", "momentum": 0.9, "nesterov": True}


def _blocked_tensorflow_env(tmp_path: Path, data: Path) -> dict:
    """Keras on JAX in a process where TensorFlow cannot be imported (tests/test_jax_backend)."""
    blocker = tmp_path / "no_tensorflow"
    (blocker / "tensorflow").mkdir(parents=True, exist_ok=True)
    (blocker / "tensorflow" / "__init__.py").write_text(
        'raise ImportError("TensorFlow is blocked in this test")\n')
    return {**os.environ, "KERAS_BACKEND": "jax", "KERAS_HOME": str(tmp_path / "keras-home"),
            "HPSEARCH_DATA_DIR": str(data), "JAX_PLATFORMS": "cpu", "CUDA_VISIBLE_DEVICES": "",
            "PYTHONPATH": os.pathsep.join([str(blocker), str(ROOT)])}


@pytest.mark.slow
def test_hparams_under_jax_without_tensorflow(tmp_path):
    pytest.importorskip("jax", reason="JAX is not installed (pip install 'jax[cpu]')")
    data = tmp_path / "data"
    write_fashion_mnist(data / "fashion-mnist")
    run_dir = tmp_path / "run"
    done = subprocess.run(
        [sys.executable, "-m", "tuner.cli", "tune", "mlp", "--run-dir", str(run_dir), "--subset",
         "30", "--tuner", "random", "--max-trials", "2", "--max-epochs", "1", "--tensorboard",
         "--quiet"],
        env=_blocked_tensorflow_env(tmp_path, data), cwd=tmp_path, capture_output=True,
        text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    found = check_hparams_match_trials(run_dir)
    assert sorted(found["trials"]) == ["0", "1"]


def test_board_writes_a_run_searched_without_tensorboard_and_serves_it(tiny_data_dir, tmp_path):
    from tuner.hparams_files import write_run_summaries

    run_dir = tmp_path / "run"
    run_search(RunConfig(**TINY, max_trials=2), run_dir, data_dir=[tiny_data_dir], progress=None)
    assert not (run_dir / "tensorboard").exists()
    assert write_run_summaries(run_dir) == 2
    files = sorted(run_dir.rglob("events.out.tfevents.*"))
    assert write_run_summaries(run_dir) == 0  # idempotent: nothing written twice
    assert sorted(run_dir.rglob("events.out.tfevents.*")) == files
    check_hparams_match_trials(run_dir, epochs_written=False)
    shutil.rmtree(run_dir / "tensorboard")

    board = subprocess.Popen(
        [sys.executable, "-m", "tuner.cli", "board", str(run_dir)], cwd=ROOT,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = []
        for line in board.stdout:
            lines.append(line)
            if line.startswith("TensorBoard: "):
                break
        url = lines[-1].split()[1]
        assert url.startswith("http://127.0.0.1:") and url.endswith("/#hparams"), lines
        groups = _session_groups(url.split("#")[0])
        assert sorted(group["name"] for group in groups) == ["0", "1"]
        board.send_signal(signal.SIGINT)  # Ctrl-C
        # Both pipes drained while it stops: a full pipe would hold the process on a write.
        out, err = board.communicate(timeout=60)
        assert board.returncode == 0, err
        assert "Stopping TensorBoard" in out
    finally:
        if board.poll() is None:
            board.kill()
    check_hparams_match_trials(run_dir, epochs_written=False)
    with pytest.raises(OSError):
        urllib.request.urlopen(url, timeout=2)


def _session_groups(base_url: str) -> list[dict]:
    """The session groups the HParams plugin serves (what its table shows)."""
    request = urllib.request.Request(
        base_url + "data/plugin/hparams/session_groups",
        data=json.dumps({"experimentName": "", "startIndex": 0, "sliceSize": 1000, "colParams": [],
                         "allowedStatuses": ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE",
                                             "STATUS_RUNNING"]}).encode(),
        headers={"Content-Type": "application/json", "X-XSRF-Protected": "1"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.load(answer)["sessionGroups"]


def test_transfer_writes_a_session_and_a_child_run_per_configuration_and_seed(
        tiny_data_dir, tmp_path, monkeypatch):
    import pandas as pd
    from tensorboard.plugins.hparams import api_pb2

    from tuner.cli import main
    from tuner.hparams_files import write_transfer_summaries

    mlflow = pytest.importorskip("mlflow", reason="MLflow is an optional extra")
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    source = tmp_path / "run"
    run_search(RunConfig(**{**TINY, "max_epochs": 1}, max_trials=1), source,
               data_dir=[tiny_data_dir], progress=None)
    out, uri = tmp_path / "transfer", f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = CliRunner().invoke(main, [
        "transfer", str(source / "top_configs" / "rank_1.yaml"), "--dataset", "fashion_mnist",
        "--run-dir", str(out), "--data-dir", str(tiny_data_dir), "--epochs", "2", "--seeds", "2",
        "--tensorboard", f"--mlflow={uri}"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    rows = pd.read_csv(out / "transfer.csv")
    found = read_hparams(out / "tensorboard")["trials"]
    assert sorted(found) == ["rank_1-seed0", "rank_1-seed1"]
    for row in rows.itertuples():
        written = found[f"rank_1-seed{row.seed}"]
        assert written["hparams"]["configuration"] == "rank_1"
        assert written["hparams"]["seed"] == row.seed
        assert written["status"] == api_pb2.STATUS_SUCCESS
        assert written["score"] == pytest.approx(row.val_score)
    # The same from the run's files (`hpsearch board` on a transfer made without --tensorboard).
    shutil.rmtree(out / "tensorboard")
    assert write_transfer_summaries(out) == 2 and write_transfer_summaries(out) == 0
    rebuilt = read_hparams(out / "tensorboard")["trials"]
    assert {name: (trial["hparams"], trial["score"]) for name, trial in rebuilt.items()} == {
        name: (trial["hparams"], pytest.approx(trial["score"])) for name, trial in found.items()}
    client = mlflow.tracking.MlflowClient(tracking_uri=uri)
    runs = client.search_runs([client.get_experiment_by_name("hpsearch").experiment_id])
    parents = [run for run in runs if run.data.tags.get("hpsearch.kind") == "transfer"]
    assert len(parents) == 1 and parents[0].data.params["seeds"] == "2"
    children = sorted(run.data.tags["hpsearch.trial_id"] for run in runs
                      if run.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id)
    assert children == ["rank_1-seed0", "rank_1-seed1"]


def test_board_refuses_a_folder_that_is_not_a_run(tmp_path):
    from tuner.cli import main

    result = CliRunner().invoke(main, ["board", str(tmp_path)])
    assert result.exit_code == 1
    assert result.output.startswith(f"Error: {tmp_path} has nothing TensorBoard can show")


def test_user_observer_sees_every_trial_and_epoch(tiny_data_dir, tmp_path):
    events = []

    class Recorder(TrialObserver):
        def search_begin(self, run_dir, config, space):
            events.append(("search_begin", len(space["space"])))

        def trial_begin(self, trial_id, values):
            events.append(("trial_begin", trial_id))

        def epoch_end(self, trial_id, epoch, logs):
            events.append(("epoch_end", trial_id, epoch, "val_accuracy" in logs))

        def trial_end(self, trial_id, status, score, values):
            events.append(("trial_end", trial_id, status))

        def search_end(self):
            events.append(("search_end",))

    run_search(RunConfig(**{**TINY, "max_epochs": 1}, max_trials=1), tmp_path / "run",
               data_dir=[tiny_data_dir], progress=None, observers=[Recorder()])
    assert events[0][0] == "search_begin" and events[0][1] > 5
    assert events[1:] == [("trial_begin", "0"), ("epoch_end", "0", 0, True),
                          ("trial_end", "0", "COMPLETED"), ("search_end",)]


# MLflow --------------------------------------------------------------------------------------


def _mlflow_runs(uri: str):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("hpsearch")
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    parents = [run for run in runs if "hpsearch.trial_id" not in run.data.tags]
    children = [run for run in runs if "hpsearch.trial_id" in run.data.tags]
    return client, parents, children


def test_mlflow_parent_and_child_runs_and_a_resume_adds_no_duplicate(
        tiny_data_dir, tmp_path, monkeypatch):
    pytest.importorskip("mlflow", reason="MLflow is an optional extra: pip install "
                                         "'hpsearch[mlflow]'")
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run_dir = tmp_path / "run"
    run_search(RunConfig(**TINY, max_trials=2, mlflow=uri), run_dir, data_dir=[tiny_data_dir],
               progress=None)
    run_search(RunConfig(**TINY, max_trials=3, mlflow=uri), run_dir, data_dir=[tiny_data_dir],
               progress=None)
    client, parents, children = _mlflow_runs(uri)
    assert len(parents) == 1
    parent = parents[0]
    assert parent.info.run_name == "run" and parent.info.status == "FINISHED"
    assert parent.data.tags["hpsearch.run_dir"] == str(run_dir.resolve())
    assert parent.data.params["tuner"] == "random" and parent.data.params["max_epochs"] == "2"
    trials = _trials(run_dir)
    assert sorted(run.data.tags["hpsearch.trial_id"] for run in children) == sorted(trials)
    for run in children:
        trial = trials[run.data.tags["hpsearch.trial_id"]]
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert run.data.tags["hpsearch.status"] == trial["status"] == "COMPLETED"
        assert run.info.status == "FINISHED"
        assert run.data.params == {name: str(value) for name, value in _values(trial).items()}
        assert run.data.metrics["score"] == pytest.approx(trial["score"])
        history = client.get_metric_history(run.info.run_id, "val_loss")
        epochs = trial["metrics"]["metrics"]["val_loss"]["observations"][-1]["step"] + 1
        assert sorted(metric.step for metric in history)[:epochs] == list(range(epochs))
        assert len({metric.step for metric in history}) == len(history)


def test_an_mlflow_store_failing_mid_search_warns_once_and_fails_no_trial(tmp_path):
    pytest.importorskip("mlflow", reason="MLflow is an optional extra")
    from tuner.mlflow_tracking import MlflowObserver

    observer = MlflowObserver(f"sqlite:///{tmp_path / 'mlflow.db'}")
    observer.search_begin(tmp_path / "run", RunConfig(), {"space": []})
    calls = []

    def unreachable(*args, **kwargs):
        calls.append(args)
        raise ConnectionError("the tracking server stopped answering")

    observer._client.log_batch = unreachable
    with pytest.warns(RuntimeWarning, match="MLflow tracking stopped in this process") as caught:
        observer.trial_begin("0", {"learning_rate": 0.01})
        for epoch in range(3):
            observer.epoch_end("0", epoch, {"loss": 1.0})
        observer.trial_end("0", "COMPLETED", 0.5, {"learning_rate": 0.01})
        observer.search_end()
    assert len(calls) == 1 and len(caught) == 1  # nothing more is tried after the first error


@pytest.mark.slow
def test_two_workers_write_every_trial_once_to_tensorboard_and_mlflow(tiny_data_dir, tmp_path,
                                                                     monkeypatch):
    pytest.importorskip("mlflow", reason="MLflow is an optional extra")
    from tuner.cli import main

    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    # A new store: both workers set it up at once (a resume is tested in one process above).
    run_dir, uri = tmp_path / "run", f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = CliRunner().invoke(main, [
        "tune", "mlp", "--run-dir", str(run_dir), "--data-dir", str(tiny_data_dir), "--subset",
        "30", "--tuner", "random", "--max-trials", "4", "--max-epochs", "1", "--workers", "2",
        "--quiet", "--tensorboard", f"--mlflow={uri}"])
    assert result.exit_code == 0, result.output
    trials = _trials(run_dir)
    assert len(trials) == 4
    check_hparams_match_trials(run_dir)  # scored by the chief: the workers' observers compute it
    client, parents, children = _mlflow_runs(uri)
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert sorted(run.data.tags["hpsearch.trial_id"] for run in children) == sorted(trials)
    for run in children:
        assert run.data.metrics["score"] == pytest.approx(
            trials[run.data.tags["hpsearch.trial_id"]]["score"])


def test_mlflow_missing_is_named_with_the_extra_to_install(monkeypatch):
    import importlib.util

    from tuner.config import InvalidSettingError
    from tuner.mlflow_tracking import check_mlflow_installed

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *args: None if name == "mlflow" else real(name, *args))
    with pytest.raises(InvalidSettingError, match=r"pip install 'hpsearch\[mlflow\]'"):
        check_mlflow_installed()


def test_tune_mlflow_without_mlflow_stops_before_anything_runs(tiny_data_dir, tmp_path,
                                                               monkeypatch):
    import importlib.util

    from tuner.cli import main

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *args: None if name == "mlflow" else real(name, *args))
    result = CliRunner().invoke(main, ["tune", "mlp", "--run-dir", str(tmp_path / "run"),
                                       "--data-dir", str(tiny_data_dir), "--mlflow"])
    assert result.exit_code == 2
    assert result.output.splitlines() == [
        "Error: --mlflow needs MLflow, which is not installed. Install it with pip install "
        "'hpsearch[mlflow]' (or pip install mlflow), or leave --mlflow out."]
    assert not (tmp_path / "run").exists()


def test_tracking_uris_are_made_absolute(tmp_path, monkeypatch):
    pytest.importorskip("mlflow", reason="MLflow is an optional extra")
    from tuner.mlflow_tracking import resolve_tracking_uri

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///tracked.db")
    assert resolve_tracking_uri("default") == f"sqlite:///{tmp_path / 'tracked.db'}"
    assert resolve_tracking_uri("sqlite:///runs.db") == f"sqlite:///{tmp_path / 'runs.db'}"
    assert resolve_tracking_uri("store/mlflow.db") == f"sqlite:///{tmp_path / 'store/mlflow.db'}"
    assert resolve_tracking_uri("mlruns") == (tmp_path / "mlruns").as_uri()
    assert resolve_tracking_uri("http://mlflow.internal:5000") == "http://mlflow.internal:5000"


# The dashboard in a real browser -------------------------------------------------------------

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
# As root, Chromium needs --no-sandbox; the rest keep it off this machine's closed network.
CHROMIUM_FLAGS = ("--headless=new --no-sandbox --disable-gpu --disable-quic --no-first-run "
                  "--disable-background-networking --disable-component-update --disable-sync "
                  "--disable-dev-shm-usage --window-size=1600,1000").split()
_FIND = """
function find(node, name, out) {
  if (node.shadowRoot) find(node.shadowRoot, name, out);
  for (const child of node.children || []) {
    if (child.tagName && child.tagName.toLowerCase() === name) out.push(child);
    find(child, name, out);
  }
  return out;
}
"""
# Tick every hyperparameter of the query pane (the dashboard shows five at first), as a person
# would to see them all.
_SHOW_ALL_COLUMNS = _FIND + """
const pane = find(document, 'tf-hparams-query-pane', [])[0];
if (!pane) return -1;
let clicked = 0;
for (const box of find(pane, 'paper-checkbox', [])) {
  if (!box.checked) { box.click(); clicked++; }
}
return clicked;
"""
# The table view's grid as it is drawn: its header and body rows, cell by cell.
_READ_TABLE = _FIND + """
const view = find(document, 'tf-hparams-table-view', [])[0];
const grid = view ? find(view, 'vaadin-grid', [])[0] : null;
if (!grid) return null;
const rows = section => [...grid.shadowRoot.querySelectorAll(section + ' tr')]
  .filter(tr => !tr.hidden)
  .map(tr => [...tr.querySelectorAll('td, th')].map(cell => {
    const slot = cell.querySelector('slot');
    const content = slot ? slot.assignedElements()[0] : null;
    return content ? content.innerText.trim() : '';
  }));
return {header: rows('thead'), body: rows('tbody')};
"""


def _browser():
    if not (Path(CHROMIUM).is_file() and Path(CHROMEDRIVER).is_file()):
        pytest.skip(f"needs Debian's chromium and chromium-driver ({CHROMIUM}, {CHROMEDRIVER}): "
                    "apt-get install -y chromium chromium-driver")
    webdriver = pytest.importorskip(
        "selenium.webdriver", reason="needs selenium (pip install -e '.[test]')")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


def _dashboard_rows(driver, url: str, wanted: set[str], columns: set[str],
                    timeout: float = 90.0) -> dict:
    """Load the HParams dashboard (reload it when it is open), show every column, and return
    trial id -> {column: text} once the table lists ``wanted`` trials with their scores under
    ``columns`` (or what it shows at ``timeout``), reloading every 15 s meanwhile as a person
    would."""
    if driver.current_url.split("#")[0] == url.split("#")[0]:
        driver.refresh()  # get() of the same address with a #fragment would not reload
    else:
        driver.get(url)
    started = reloaded = time.monotonic()
    table = None
    while time.monotonic() - started < timeout:
        if time.monotonic() - reloaded > 15:
            driver.refresh()
            reloaded = time.monotonic()
        # Read only once no column was hidden: a click redraws the table later, and a table
        # read right after it may still lack the columns it showed.
        if driver.execute_script(_SHOW_ALL_COLUMNS) == 0:
            table = driver.execute_script(_READ_TABLE)
            if table and table["header"] and columns <= set(table["header"][0]):
                rows = {row[0]: dict(zip(table["header"][0], row)) for row in table["body"]
                        if row and row[0]}
                # A trial shows when it starts; its score once TensorBoard read its end.
                if wanted <= set(rows) and all(rows[name].get("score") for name in wanted):
                    return rows
        time.sleep(1)
    return {row[0]: dict(zip(table["header"][0], row)) for row in table["body"]} if table else {}


def _columns(trials: dict[str, dict]) -> set[str]:
    """The columns the dashboard must show for these trials: their hyperparameters and score."""
    return {"score"}.union(*(_values(trial) for trial in trials.values()))


def _shows(cell: str, value) -> bool:
    if isinstance(value, bool):
        return cell == str(value).lower()
    if isinstance(value, (int, float)):
        return float(cell) == pytest.approx(value, rel=1e-4, abs=1e-9)
    return cell == str(value)


def _check_row(row: dict, trial: dict) -> None:
    for name, value in _values(trial).items():
        assert _shows(row[name], value), (name, row[name], value)
    assert _shows(row["score"], trial["score"])


_GATE_SCRIPT = """
import sys, time
from pathlib import Path
from tuner.config import RunConfig
from tuner.observers import TrialObserver
from tuner.search import run_search

run_dir, data, gate, trials = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3]), int(sys.argv[4])

class Gate(TrialObserver):
    # Holds the search after a trial ended (hpsearch's own observers have written it) until the
    # test has looked: the search is still running meanwhile.
    def trial_end(self, trial_id, status, score, values):
        (gate.parent / f"ended-{trial_id}").touch()
        while gate.exists() is False:
            time.sleep(0.2)

config = RunConfig(tuner="random", max_epochs=1, subset=30, max_trials=trials, tensorboard=True)
run_search(config, run_dir, data_dir=[data], progress=None,
           observers=[Gate()] if gate.name != "none" else [])
"""


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["tensorflow", "jax"])
def test_dashboard_in_headless_chromium_shows_every_trial_live(backend, tiny_data_dir, tmp_path):
    driver = _browser()
    if backend == "jax":
        pytest.importorskip("jax", reason="JAX is not installed (pip install 'jax[cpu]')")
        env = _blocked_tensorflow_env(tmp_path, tiny_data_dir)
    else:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run_dir, script = tmp_path / "run", tmp_path / "search.py"
    script.write_text(_GATE_SCRIPT)

    def search(trials: int, gate: Path) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, str(script), str(run_dir), str(tiny_data_dir),
                                 str(gate), str(trials)], env=env, cwd=tmp_path,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    board = later = None
    try:
        first = search(2, tmp_path / "none")
        assert first.wait(300) == 0, first.stdout.read()
        board = subprocess.Popen([sys.executable, "-m", "tuner.cli", "board", str(run_dir)],
                                 cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                 text=True)
        url = next(line for line in board.stdout if line.startswith("TensorBoard: ")).split()[1]
        trials = _trials(run_dir)
        rows = _dashboard_rows(driver, url, {"0", "1"}, _columns(trials))
        assert set(rows) == set(trials) == {"0", "1"}, rows
        for trial_id, trial in trials.items():
            _check_row(rows[trial_id], trial)
        # A resumed search: its trial 2 ends while the search is held, still running.
        gate = tmp_path / "gate"
        later = search(3, gate)
        deadline = time.monotonic() + 300
        while not (tmp_path / "ended-2").exists():
            assert later.poll() is None and time.monotonic() < deadline, later.stdout.read()
            time.sleep(0.5)
        trials = _trials(run_dir)
        rows = _dashboard_rows(driver, url, {"0", "1", "2"}, _columns(trials))  # a reload
        assert later.poll() is None  # the search is still running
        driver.save_screenshot(str(tmp_path / f"dashboard-{backend}.png"))
        assert set(rows) == {"0", "1", "2"}, rows
        trials = _trials(run_dir)
        _check_row(rows["2"], trials["2"])
        gate.touch()
        assert later.wait(300) == 0, later.stdout.read()
    finally:
        driver.quit()
        if later is not None and later.poll() is None:
            later.kill()  # held at its gate when the test failed: never left behind
        if board is not None:
            board.send_signal(signal.SIGINT)
            try:
                board.wait(30)
            except subprocess.TimeoutExpired:
                board.kill()


def test_a_clock_comparison_writes_a_session_per_head_live_and_from_its_files(tmp_path):
    from click.testing import CliRunner as Runner
    from tensorboard.plugins.hparams import api_pb2

    from tests.conftest import write_clock_files
    from tuner.board_cli import board_logdirs
    from tuner.clock_cli import clock_group
    from tuner.hparams_files import write_summaries

    out = tmp_path / "compare"
    result = Runner().invoke(clock_group, [
        "compare", "--data-dir", str(write_clock_files(tmp_path / "clock-data")), "--epochs", "2",
        "--head", "periodic", "--head", "regression", "--set", "conv_blocks=2", "--set",
        "filters=16", "--set", "dense_units=64", "--tensorboard", "--quiet", "--out", str(out)],
        catch_exceptions=False)
    assert result.exit_code == 0, result.output
    heads = {head: json.loads((out / "heads" / f"{head}.json").read_text())
             for head in ("periodic", "regression")}
    live = read_hparams(out / "tensorboard")["trials"]
    assert sorted(live) == sorted(heads)
    for head, written in live.items():
        row = heads[head]["row"]
        assert written["hparams"]["head"] == head
        assert written["hparams"]["filters"] == 16 and written["hparams"]["conv_blocks"] == 2
        assert written["status"] == api_pb2.STATUS_SUCCESS
        assert written["score"] == pytest.approx(row["cse_mean"])
        assert [step for step, _ in written["scalars"]["train/epoch_loss"]] == [0, 1]
        assert [value for _, value in written["scalars"]["validation/epoch_cse"]] == (
            pytest.approx(heads[head]["history"]["val_cse"]))
    # `hpsearch board` on the same comparison made without --tensorboard writes the same.
    shutil.rmtree(out / "tensorboard")
    assert board_logdirs([out]) == {"compare": out / "tensorboard"}
    assert write_summaries(out) == 0  # board_logdirs wrote both heads; nothing twice
    rebuilt = read_hparams(out / "tensorboard")["trials"]
    assert {head: (trial["hparams"], trial["score"], trial["scalars"], trial["status"])
            for head, trial in rebuilt.items()} == {
        head: (trial["hparams"], trial["score"], trial["scalars"], trial["status"])
        for head, trial in live.items()}
