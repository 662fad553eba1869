"""``write_report`` and ``hpsearch report`` on a tiny real run, a transfer run and a clock
comparison."""
from __future__ import annotations

import base64
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
