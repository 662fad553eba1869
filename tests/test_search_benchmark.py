"""benchmarks/search_benchmark.py in its short mode, on its tiny synthetic regression space.

Every method runs once (one seed; ``--short``'s 2 seeds take minutes on 2 shared cores); what
is checked is the shape of what the benchmark writes, never timings or who wins.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pandas as pd
import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import search_benchmark  # noqa: E402
from search_benchmark_methods import METHODS, PACKAGES  # noqa: E402

REQUIRED_COLUMNS = ["method", "seed", "budget_epochs", "best_val", "incumbent_test"]


@pytest.fixture(scope="module")
def short_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("search-benchmark")
    search_benchmark.main(["--short", "--spaces", "regression", "--seeds", "1", "--jobs", "1",
                           "--out", str(out)])
    return out


@pytest.mark.slow
@pytest.mark.parametrize("method", METHODS)
def test_every_method_has_a_row_per_budget_point(short_run, method):
    package = PACKAGES.get(method)
    if package and importlib.util.find_spec(package) is None:
        pytest.skip(f"{method} needs {package}, which is not installed (pip install -e '.[bench]')")
    path = short_run / "search-efficiency-regression.csv"
    with open(path) as handle:
        assert handle.readline().startswith("# command: python benchmarks/search_benchmark.py ")
    points = pd.read_csv(path, comment="#")
    assert list(points.columns[:5]) == REQUIRED_COLUMNS
    rows = points[points["method"] == method]
    settings = search_benchmark.SHORT_SPACES["regression"]
    from tuner import hyperband_schedule

    budget = hyperband_schedule(settings.max_epochs, settings.factor, settings.sweeps)[1]
    assert sorted(rows["budget_epochs"]) == search_benchmark.budget_points(budget)
    final = rows[rows["budget_epochs"] == budget]
    assert final["incumbent_test"].notna().all() and final["best_val"].notna().all()


@pytest.mark.slow
def test_summary_and_plot(short_run):
    summary = pd.read_csv(short_run / "search-efficiency-regression-summary.csv", comment="#")
    paired = pd.read_csv(short_run / "search-efficiency-regression-paired.csv", comment="#")
    assert {"bohb_lead", "bohb_lead_se", "seeds_paired"} <= set(paired.columns)
    for column in ("method", "budget_epochs", "incumbent_test", "incumbent_test_se",
                   "incumbent_test_mean_rank", "best_val", "best_val_mean_rank"):
        assert column in summary.columns
    ranks = summary.groupby("budget_epochs")["incumbent_test_mean_rank"]
    assert (ranks.min() >= 1).all()
    assert (short_run / "search-efficiency-regression.png").stat().st_size > 0


@pytest.mark.slow
def test_a_rerun_resumes_without_searching_again(short_run, capsys):
    records = (short_run / "results.jsonl").read_text().splitlines()
    search_benchmark.main(["--short", "--spaces", "regression", "--seeds", "1", "--jobs", "1",
                           "--out", str(short_run)])
    assert (short_run / "results.jsonl").read_text().splitlines() == records
    assert f"{len(records)} of {len(records)} tasks already done" in capsys.readouterr().out


def test_paired_table_leads_within_a_seed_signed_by_direction():
    # Seed 1's data is harder for both methods; bohb is ahead by 0.01 then 0.03 accuracy.
    points = pd.DataFrame({
        "method": ["bohb", "other", "bohb", "other", "other"],
        "seed": [0, 0, 1, 1, 2],
        "budget_epochs": [9, 9, 9, 9, 9],
        "incumbent_test": [0.81, 0.80, 0.63, 0.60, 0.70],
    })
    table = search_benchmark.paired_table(points, "max", ["bohb", "other"])
    row = table.iloc[0]
    assert (row["method"], row["seeds_paired"], row["bohb_wins"]) == ("other", 2, 2)
    assert row["bohb_lead"] == pytest.approx(0.02)
    assert row["bohb_lead_se"] == pytest.approx(0.01)
    assert row["bohb_lead_in_se"] == pytest.approx(2.0)
    # A lower-is-better score: bohb's smaller MSE is a positive lead.
    mse = points.assign(incumbent_test=[7.0, 8.0, 7.5, 7.0, 9.0])
    row = search_benchmark.paired_table(mse, "min", ["bohb", "other"]).iloc[0]
    assert row["bohb_lead"] == pytest.approx(0.25) and row["bohb_wins"] == 1
    assert search_benchmark.paired_table(points[points["method"] == "other"], "max",
                                         ["bohb", "other"]).empty
