"""``write_report`` and ``hpsearch report`` on a tiny real run, a transfer run and a clock
comparison."""
from __future__ import annotations

import base64
import html
import json
import re
import shutil

import numpy as np
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner
from PIL import Image

from analysis import ReportError, write_report
from tuner import RunConfig, run_search
from tuner.report_cli import report


@pytest.fixture(scope="module")
def search_run(tiny_data_dir, tmp_path_factory):
    """A real two-trial random search on tiny Fashion-MNIST (runs once per module)."""
    run_dir = tmp_path_factory.mktemp("runs") / "mlp-random"
    run_search(RunConfig(space="mlp", tuner="random", max_trials=2, max_epochs=1, subset=None),
               run_dir, data_dir=tiny_data_dir, progress=None)
    return run_dir


@pytest.fixture
def transfer_run(tmp_path):
    run_dir = tmp_path / "transfer-cifar10"
    run_dir.mkdir()
    rows = []
    for config, rank, trial_id, source_score in (("rank_1", 1, "1", 0.4),
                                                 ("textbook", None, "0", 0.3)):
        for seed in (0, 1):
            rows.append({"config": config, "rank": rank, "trial_id": trial_id,
                         "search_space": "mlp",
                         "source_dataset": "fashion_mnist", "source_score": source_score,
                         "dataset": "cifar10", "seed": seed, "val_accuracy": 0.3 + 0.01 * seed,
                         "test_accuracy": 0.29 + 0.02 * seed, "epochs": 3, "params": 1000,
                         "seconds_per_epoch": 1.5})
    pd.DataFrame(rows).to_csv(run_dir / "transfer.csv", index=False)
    (run_dir / "transfer.yaml").write_text(yaml.safe_dump({"source": "runs/mlp",
                                                           "dataset": "cifar10"}))
    # run_transfer's summary.csv carries the seeds ensembled (from its predictions/ files).
    pd.DataFrame({"config": ["rank_1", "textbook"], "ensemble_seeds": [2, 2],
                  "ensemble_test_accuracy": [0.33, 0.31]}).to_csv(run_dir / "summary.csv",
                                                                   index=False)
    return run_dir


@pytest.fixture
def clock_comparison(tmp_path):
    run_dir = tmp_path / "clock-heads"
    run_dir.mkdir()
    pd.DataFrame({"head": ["classification", "regression", "periodic"], "outputs": [720, 1, 2],
                  "loss": ["crossentropy", "mse", "mse"], "cse_mean": [12.5, 40.0, 8.25],
                  "within_5": [0.4, 0.1, 0.5], "an_unknown_column": ["a", "b", "c"]}
                 ).to_csv(run_dir / "comparison.csv", index=False)
    return run_dir


def test_report_writes_every_file_and_each_figure_renders(search_run, transfer_run,
                                                          clock_comparison, tmp_path):
    second_run = tmp_path / "mlp-random-copy"
    shutil.copytree(search_run, second_run)
    out = tmp_path / "report"
    result = write_report([search_run, second_run, transfer_run, clock_comparison], out, top_k=1)

    stems = {path.stem for path in result.tables}
    for stem in ("runs-comparison", "mlp-random-config", "mlp-random-best_vs_textbook",
                 "mlp-random-top3", "mlp-random-history", "mlp-random-ranges", "mlp-random-trials",
                 "mlp-random-copy-ranges", "transfer-cifar10-transfer_summary",
                 "clock-heads-comparison"):
        assert stem in stems
    figures = {path.stem for path in result.figures}
    assert {"runs-comparison", "mlp-random-history", "mlp-random-importance",
            "transfer-cifar10-transfer", "clock-heads-comparison"} <= figures
    assert any(stem.startswith("mlp-random-scores_by_hyperparameter") for stem in figures)
    for path in result.figures:
        with Image.open(path) as image:
            assert image.format == "PNG" and min(image.size) > 200
            assert len(np.unique(np.asarray(image.convert("L")))) > 10  # something was drawn

    ranges = pd.read_csv(out / "tables" / "mlp-random-ranges.csv")
    assert "learning_rate" in set(ranges["hyperparameter"])
    assert {"suggested_low", "suggested_high", "importance", "active_trials"} <= set(ranges.columns)
    transfer = pd.read_csv(out / "tables" / "transfer-cifar10-transfer_summary.csv")
    assert list(transfer["config"]) == ["rank_1", "textbook"]
    assert list(transfer["ensemble_test_accuracy"]) == [0.33, 0.31]
    clock = pd.read_csv(out / "tables" / "clock-heads-comparison.csv")
    assert "an_unknown_column" in clock.columns

    page = result.html.read_text()
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(images) == len(result.figures)
    assert base64.b64decode(images[0])[:8] == b"\x89PNG\r\n\x1a\n"
    for heading in ("Run configuration", "Best configuration against the textbook model",
                    "Top-3 configurations", "Hyperparameter ranges", "Optimization history",
                    "Score against each hyperparameter", "Hyperparameter importance",
                    "Source against target", "Runs compared", "Comparison of heads"):
        assert heading in page
    pdf = result.pdf.read_bytes()
    assert pdf.startswith(b"%PDF") and len(re.findall(rb"/Type\s*/Page\b", pdf)) > 10


def test_report_of_an_unknown_directory_says_what_was_expected(tmp_path):
    with pytest.raises(ReportError, match="expected run.yaml"):
        write_report([tmp_path], tmp_path / "out")
    with pytest.raises(ReportError, match="No run directory given"):
        write_report([], tmp_path / "out")


def test_report_command_writes_the_report(clock_comparison, tmp_path):
    out = tmp_path / "cli-report"
    result = CliRunner().invoke(report, [str(clock_comparison), "--out", str(out),
                                         "--top-fraction", "0.5"], catch_exceptions=False)
    assert result.exit_code == 0
    assert f"Report: {out / 'report.html'}" in result.output
    assert (out / "report.pdf").is_file()


def test_report_command_errors(tmp_path):
    runner = CliRunner()
    missing = runner.invoke(report, [str(tmp_path / "nope"), "--out", str(tmp_path / "out")])
    assert missing.exit_code == 2 and "does not exist" in missing.output
    bad_option = runner.invoke(report, [str(tmp_path), "--out", str(tmp_path / "o"),
                                        "--top-k", "0"])
    assert bad_option.exit_code == 2
    not_a_run = runner.invoke(report, [str(tmp_path), "--out", str(tmp_path / "out")])
    assert not_a_run.exit_code == 1
    # Issue 13: a plain KerasTuner project is a run too, so the message lists it.
    assert not_a_run.output.splitlines()[0] == (
        f"Error: {tmp_path} is not a run directory for `hpsearch report`: expected run.yaml (a "
        "search), transfer.csv (a transfer run), comparison.csv (a clock comparison) or "
        "oracle.json (a KerasTuner project).")
    assert "Traceback" not in not_a_run.output


def test_report_command_help_has_an_example():
    help_text = CliRunner().invoke(report, ["--help"]).output
    assert any(line.strip().startswith("Example:") for line in help_text.splitlines())


def test_ensemble_accuracy_follows_the_configuration_not_its_name(tmp_path):
    # A resumed source search changed rank_1: two models called rank_1, told apart by config_id.
    run_dir = tmp_path / "transfer-resumed"
    run_dir.mkdir()
    rows = []
    for config_id, trial_id, accuracy in (("0007-aaaaaaaaaa", "0007", 0.41),
                                          ("0003-bbbbbbbbbb", "0003", 0.51)):
        for seed in (0, 1):
            rows.append({"config": "rank_1", "config_id": config_id, "rank": 1,
                         "trial_id": trial_id, "search_space": "mlp",
                         "source_dataset": "fashion_mnist", "source_score": 0.9,
                         "dataset": "cifar10", "seed": seed, "val_accuracy": accuracy,
                         "test_accuracy": accuracy, "epochs": 5, "params": 1000,
                         "seconds_per_epoch": 1.0})
    pd.DataFrame(rows).to_csv(run_dir / "transfer.csv", index=False)
    pd.DataFrame({"config": ["rank_1", "rank_1"],
                  "config_id": ["0007-aaaaaaaaaa", "0003-bbbbbbbbbb"],
                  "ensemble_seeds": [2, 2], "ensemble_test_accuracy": [0.44, 0.55]}
                 ).to_csv(run_dir / "summary.csv", index=False)
    write_report([run_dir], tmp_path / "out")
    table = pd.read_csv(tmp_path / "out" / "tables" / "transfer-resumed-transfer_summary.csv")
    accuracy_of = dict(zip(table["config_id"], table["ensemble_test_accuracy"]))
    assert accuracy_of == {"0007-aaaaaaaaaa": 0.44, "0003-bbbbbbbbbb": 0.55}
    assert dict(zip(table["config_id"], table["test_accuracy_mean"])) == {
        "0007-aaaaaaaaaa": 0.41, "0003-bbbbbbbbbb": 0.51}


# ---------------------------------------------------------------- hand-written KerasTuner projects
def _spec(class_name: str, name: str, **config) -> dict:
    """One entry of KerasTuner's HyperParameters.get_config()["space"]."""
    return {"class_name": class_name, "config": {"name": name, "default": None, "conditions": [],
                                                 **config}}


LR = _spec("Float", "lr", min_value=1e-5, max_value=0.1, step=None, sampling="log")
ACT = _spec("Choice", "act", values=["relu", "tanh"], ordered=False)


def write_project(path, space, trials, objective="val_accuracy", direction="max", oracle=True):
    """A KerasTuner project as KerasTuner writes it: oracle.json and trial_<id>/trial.json. Each
    trial: ``values``, ``score`` (None: no score), optional ``status``, ``best_step``."""
    path.mkdir(parents=True)
    if oracle:
        (path / "oracle.json").write_text(json.dumps(
            {"hyperparameters": {"space": space, "values": {}}, "ongoing_trials": {},
             "tried_so_far": [], "id_to_hash": {}, "seed": 0, "seed_state": 0}))
    for index, trial in enumerate(trials):
        trial_id = f"{index:02d}"
        score, best_step = trial.get("score"), trial.get("best_step", 0)
        metrics = {objective: {"direction": direction, "observations": [
            {"value": [score], "step": best_step}]}} if isinstance(score, float) else {}
        (path / f"trial_{trial_id}").mkdir()
        (path / f"trial_{trial_id}" / "trial.json").write_text(json.dumps({
            "trial_id": trial_id, "hyperparameters": {"space": space, "values": trial["values"]},
            "metrics": {"metrics": metrics}, "score": score, "best_step": best_step,
            "status": trial.get("status", "COMPLETED"), "message": None}))
    return path


def _tables(out) -> dict[str, pd.DataFrame]:
    return {path.stem: pd.read_csv(path, dtype=str, keep_default_na=False)
            for path in (out / "tables").glob("*.csv")}


def test_top3_and_best_against_textbook_show_the_epochs_the_exported_yaml_trains(tmp_path):
    from top_configs import read_top_config
    from tuner.export import export_top_configs

    # Hyperband: trial 01 is trial 00 promoted from 1 to 3 epochs; its best epoch is the third.
    hyperband = {"tuner/epochs": 1, "tuner/initial_epoch": 0, "tuner/bracket": 1,
                 "tuner/round": 0}
    promoted = {"tuner/epochs": 3, "tuner/initial_epoch": 1, "tuner/bracket": 1,
                "tuner/round": 1, "tuner/trial_id": "00"}
    project = write_project(tmp_path / "hb", [LR], [
        {"values": {"lr": 0.01, **hyperband}, "score": 0.6, "best_step": 0},
        {"values": {"lr": 0.01, **promoted}, "score": 0.8, "best_step": 1},
        {"values": {"lr": 0.001, **hyperband}, "score": 0.7, "best_step": 0}])
    exported = export_top_configs(project, tmp_path / "best", 2)
    yaml_epochs = [read_top_config(path).epochs for path in exported]
    assert yaml_epochs == [3, 1]
    write_report([project], tmp_path / "out")
    tables = _tables(tmp_path / "out")
    top = tables["hb-top3"].set_index("item")
    assert [int(top.loc["epochs", f"rank_{rank}"]) for rank in (1, 2)] == yaml_epochs
    assert tables["hb-best_vs_textbook"].set_index("item").loc["epochs", "best"] == "3"


def test_a_hyperparameter_named_like_a_table_column_keeps_its_values(tmp_path):
    from top_configs import read_top_config
    from tuner.export import export_top_configs
    from tuner.report_cli import export

    space = [_spec("Int", "epochs", min_value=1, max_value=50, step=1, sampling="linear"),
             _spec("Float", "score", min_value=0.0, max_value=1.0, step=None, sampling="linear"),
             _spec("Int", "round", min_value=1, max_value=9, step=1, sampling="linear"), ACT]
    values = [(5, 0.1, 2, "relu", 0.7), (40, 0.9, 3, "tanh", 0.95), (20, 0.5, 4, "relu", 0.6)]
    project = write_project(tmp_path / "named", space, [
        {"values": {"epochs": e, "score": s, "round": r, "act": a}, "score": score}
        for e, s, r, a, score in values])
    result = CliRunner().invoke(report, [str(project), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    tables = _tables(tmp_path / "out")
    trials = tables["named-trials"]
    assert list(trials["hp:epochs"]) == ["5", "40", "20"]
    assert list(trials["hp:score"]) == ["0.1", "0.9", "0.5"]
    assert list(trials["score"]) == ["0.7", "0.95", "0.6"]
    assert list(tables["named-ranges"]["hyperparameter"]) == ["hp:epochs", "hp:score", "hp:round",
                                                               "act"]
    top = tables["named-top3"].set_index("item")
    assert (top.loc["epochs", "rank_1"], top.loc["hp:epochs", "rank_1"]) == ("1", "40")
    assert CliRunner().invoke(export, [str(project), "--out", str(tmp_path / "best")]).exit_code == 0
    best = read_top_config(export_top_configs(project, tmp_path / "best")[0])
    assert best.hyperparameters == {"epochs": 40, "score": 0.9, "round": 3, "act": "tanh"}
    assert (best.score, best.epochs) == (0.95, 1)


@pytest.mark.parametrize("values, score, expected", [
    ({"lr": "abc", "act": "relu"}, 0.9,
     "hyperparameter 'lr' (Float) should hold a number, got 'abc'."),
    ({"lr": 0.01, "act": "relu"}, "0.9x", "'score' should be a number (or null), got '0.9x'."),
])
def test_a_damaged_trial_file_is_named_not_a_traceback(tmp_path, values, score, expected):
    project = write_project(tmp_path / "damaged", [LR, ACT], [
        {"values": {"lr": 0.001, "act": "tanh"}, "score": 0.8},
        {"values": values, "score": score}])
    result = CliRunner().invoke(report, [str(project), "--out", str(tmp_path / "out")])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output.splitlines()[0] == (
        f"Error: {project / 'trial_01' / 'trial.json'}: {expected} The file is damaged: correct "
        "the " + ("value" if "hyperparameter" in expected else "score") + ", or move the trial's "
        "folder out of the project to leave it out.")


def test_a_choice_outside_the_saved_values_is_drawn(tmp_path):
    project = write_project(tmp_path / "edited", [ACT, LR], [
        {"values": {"act": act, "lr": lr}, "score": score}
        for act, lr, score in [("relu", 1e-3, 0.5), ("gelu", 1e-2, 0.9), ("tanh", 1e-4, 0.6)]])
    result = write_report([project], tmp_path / "out")
    assert any(path.stem == "edited-scores_by_hyperparameter" for path in result.figures)


def test_empty_tables_are_reported_as_having_no_rows(tmp_path):
    oracle_only = write_project(tmp_path / "started", [LR, ACT], [])
    clock = tmp_path / "clock-header-only"
    clock.mkdir()
    (clock / "comparison.csv").write_text("head,outputs,loss,cse_mean\n")
    transfer = tmp_path / "transfer-header-only"
    transfer.mkdir()
    (transfer / "transfer.csv").write_text(
        "config,config_id,rank,trial_id,search_space,source_dataset,source_score,dataset,seed,"
        "val_accuracy,test_accuracy,epochs,params,seconds_per_epoch\n")
    result = write_report([oracle_only, clock, transfer], tmp_path / "out")
    assert result.pdf.read_bytes().startswith(b"%PDF")
    page = result.html.read_text()
    assert "(no rows)" in page and "No trial completed yet." in page
    assert {"started-top3", "clock-header-only-comparison",
            "transfer-header-only-transfer_summary"} <= {path.stem for path in result.tables}


def test_runs_whose_names_slug_alike_get_their_own_files(search_run, clock_comparison, tmp_path):
    spaced, dashed = tmp_path / "a b", tmp_path / "a-b"
    shutil.copytree(search_run, spaced)
    shutil.copytree(search_run, dashed)
    (spaced / "trial_log.jsonl").write_text("")  # tell the copies apart by their epochs
    runs_clock = tmp_path / "runs"
    shutil.copytree(clock_comparison, runs_clock)
    out = tmp_path / "out"
    result = write_report([spaced, dashed, search_run, search_run, search_run, runs_clock], out)
    stems = [path.stem for path in result.tables]
    assert len(stems) == len(set(stems))
    assert {"a-b-config", "a-b-2-config", "runs-comparison", "runs-comparison-2"} <= set(stems)
    compared = pd.read_csv(out / "tables" / "runs-comparison.csv")
    assert list(compared["run"])[:2] == ["a b", "a-b-2"]
    assert list(compared["run"])[2:] == [f"{search_run.parent.name}-mlp-random",
                                         f"{search_run.parent.name}-mlp-random-2",
                                         f"{search_run.parent.name}-mlp-random-3"]
    # The copy without a trial log has no known cost: its row was not overwritten by the other.
    assert compared["epochs_trained"].isna().tolist()[:2] == [True, False]
    assert "cse_mean" in pd.read_csv(out / "tables" / "runs-comparison-2.csv").columns
    anchors = re.findall(r'<h2 id="([^"]+)"', result.html.read_text())
    assert len(anchors) == len(set(anchors))


def test_failed_trials_of_a_minimised_objective_are_drawn_at_the_worst_score():
    import matplotlib.pyplot as plt

    from analysis.history import optimization_history
    from analysis.plots import plot_history

    trials = pd.DataFrame({
        "trial_id": ["0", "1", "2", "3"], "status": ["COMPLETED", "FAILED", "COMPLETED",
                                                     "COMPLETED"],
        "score": [5.0, np.nan, 3.0, 8.0], "epochs": [1, 1, 1, 1], "seconds": [1.0] * 4,
        "is_textbook": [False] * 4})
    for direction, worst in (("min", 8.0), ("max", 3.0)):
        figure = plot_history(optimization_history(trials, direction), "val_cse", direction)
        failed = [collection for collection in figure.axes[0].collections
                  if collection.get_label() == "failed / unfinished"]
        assert [y for _, y in failed[0].get_offsets()] == [worst]
        plt.close(figure)


def test_a_plain_project_without_oracle_uses_the_space_its_trials_saved(tmp_path):
    project = write_project(tmp_path / "no-oracle", [LR, ACT], [
        {"values": {"lr": lr, "act": act}, "score": score}
        for lr, act, score in [(1e-3, "relu", 0.5), (2e-3, "tanh", 0.6), (4e-3, "relu", 0.7)]],
        oracle=False)
    result = write_report([project], tmp_path / "out")
    ranges = _tables(tmp_path / "out")["no-oracle-ranges"].set_index("hyperparameter")
    assert ranges.loc["lr", "searched"] == "1e-05 – 0.1, log"
    assert ranges.loc["lr", "scale"] == "log"
    page = html.unescape(result.html.read_text())
    assert "the searched space is the one saved with the trials" in page.lower()
    # KerasTuner records neither epochs nor time: unknown, never "0 epochs in 0.0 min".
    assert "unknown epochs in unknown time" in page and "0 epochs in 0.0 min" not in page
