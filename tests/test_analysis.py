"""Range tables, importance and history on hand-made trial tables with known answers."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from analysis.history import (best_vs_textbook, optimization_history, run_summary,
                              top_configurations, transfer_summary)
from analysis.ranges import importance, range_table, ranked_configurations, top_trials

LEARNING_RATE = {"name": "learning_rate", "type": "Float", "min_value": 1e-4, "max_value": 0.3,
                 "step": None, "sampling": "log", "conditions": []}
ACTIVATION = {"name": "activation", "type": "Choice", "values": ["relu", "tanh", "elu"],
              "ordered": False, "conditions": []}
NUM_LAYERS = {"name": "num_layers", "type": "Int", "min_value": 1, "max_value": 3, "step": 1,
              "sampling": "linear", "conditions": []}
UNITS_1 = {"name": "units_1", "type": "Int", "min_value": 16, "max_value": 1024, "step": None,
           "sampling": "log", "conditions": [{"name": "num_layers", "values": [2, 3]}]}
BATCH_SIZE = {"name": "batch_size", "type": "Choice", "values": [16, 32, 64, 128, 256],
              "ordered": True, "conditions": []}


def trials_table(rows: list[dict]) -> pd.DataFrame:
    """A trials table like ``read_trials`` gives: meta columns, then hyperparameters."""
    base = {"status": "COMPLETED", "best_step": 0, "epochs": 1, "seconds": 1.0, "bracket": math.nan,
            "round": math.nan, "is_textbook": False, "message": ""}
    records = [{"trial_id": f"{index:02d}", **base, **row} for index, row in enumerate(rows)]
    frame = pd.DataFrame(records)
    meta = ["trial_id", "status", "score", "best_step", "epochs", "seconds", "bracket", "round",
            "is_textbook", "message"]
    return frame[meta + [column for column in frame.columns if column not in meta]]


def random_trials(count: int, score_of, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(count):
        layers = int(rng.integers(1, 4))
        values = {"learning_rate": float(10 ** rng.uniform(-4, math.log10(0.3))),
                  "activation": str(rng.choice(ACTIVATION["values"])),
                  "num_layers": layers,
                  "units_1": int(rng.integers(16, 1025)) if layers >= 2 else math.nan}
        rows.append({"score": score_of(values), **values})
    return trials_table(rows)


def test_a_score_that_depends_on_one_hyperparameter_gives_it_nearly_all_the_importance():
    trials = random_trials(80, lambda v: 0.9 - 0.05 * (math.log10(v["learning_rate"]) + 2) ** 2)
    table = range_table(trials, [LEARNING_RATE, ACTIVATION, NUM_LAYERS, UNITS_1], "max")
    shares = dict(zip(table["hyperparameter"], table["importance"]))
    assert shares["learning_rate"] > 0.85
    for other in ("activation", "num_layers", "units_1"):
        assert shares[other] < 0.1


def test_a_categorical_cause_is_found_and_the_direction_does_not_change_importance():
    scores = {"relu": 0.9, "tanh": 0.5, "elu": 0.7}
    trials = random_trials(60, lambda v: scores[v["activation"]])
    for direction in ("max", "min"):
        table = range_table(trials, [LEARNING_RATE, ACTIVATION], direction)
        shares = dict(zip(table["hyperparameter"], table["importance"]))
        assert shares["activation"] == pytest.approx(1.0)
        assert shares["learning_rate"] < 0.1
    best = range_table(trials, [ACTIVATION], "max", top_k=3).iloc[0]
    assert (best["best_value"], best["top_values"]) == ("relu", "relu ×3")
    assert best["suggested"] == "relu"
    worst = range_table(trials, [ACTIVATION], "min", top_k=3).iloc[0]
    assert worst["best_value"] == "tanh"


def test_importance_is_exactly_the_bias_corrected_variance_share():
    # A diverged trial (0.1) counts by its rank only: ranks 1..6.
    scores = pd.Series([0.1, 0.81, 0.82, 0.84, 0.85, 0.86])
    values = pd.Series(["a", "a", "a", "b", "b", "b"])
    # Ranks: SS_total 17.5, SS_between 13.5, SS_within 4: (13.5 - 1 * 4 / 4) / 17.5
    assert importance(scores, values, ACTIVATION) == pytest.approx(12.5 / 17.5)
    assert math.isnan(importance(scores.head(5), values.head(5), ACTIVATION))
    assert math.isnan(importance(scores, pd.Series(list("aabbcd")), ACTIVATION))
    assert importance(pd.Series([1.0] * 6), values, ACTIVATION) == 0.0


def test_suggested_range_covers_the_top_trials_on_the_log_scale():
    rates = [1e-3, 2e-3, 4e-3, 0.1, 0.2, 3e-4]
    trials = trials_table([{"score": score, "learning_rate": rate}
                           for score, rate in zip([0.90, 0.89, 0.88, 0.5, 0.4, 0.6], rates)])
    row = range_table(trials, [LEARNING_RATE], "max", top_k=3).iloc[0]
    # 10% of the top trials' log-spread (ln 4) beyond them, rounded outward to 2 digits.
    assert (row["suggested_low"], row["suggested_high"]) == (0.00087, 0.0046)
    assert row["suggested"] == "0.00087 – 0.0046, log"
    assert row["best_value"] == "0.001"
    assert row["scale"] == "log" and row["searched"] == "0.0001 – 0.3, log"
    low = range_table(trials, [LEARNING_RATE], "min", top_k=2).iloc[0]
    assert (low["suggested_low"], low["suggested_high"]) == (0.093, 0.22)


def test_suggested_range_stays_inside_the_searched_range_and_on_the_step_grid():
    dropout = {"name": "dropout_rate", "type": "Float", "min_value": 0.1, "max_value": 0.6,
               "step": 0.05, "sampling": "linear", "conditions": []}
    trials = trials_table([{"score": 0.9, "dropout_rate": 0.1}, {"score": 0.8, "dropout_rate": 0.3},
                           {"score": 0.1, "dropout_rate": 0.6}])
    row = range_table(trials, [dropout], "max", top_k=2).iloc[0]
    assert (row["suggested_low"], row["suggested_high"]) == (0.1, 0.35)
    assert row["searched"] == "0.1 – 0.6, step 0.05"


def test_ordered_choices_suggest_the_run_between_the_top_values():
    trials = trials_table([{"score": 0.9, "batch_size": 32}, {"score": 0.8, "batch_size": 128},
                           {"score": 0.1, "batch_size": 256}])
    row = range_table(trials, [BATCH_SIZE], "max", top_k=2).iloc[0]
    assert row["suggested"] == "32, 64, 128"
    assert row["scale"] == "ordered"


def test_conditional_hyperparameter_uses_only_the_trials_where_it_is_active():
    trials = trials_table([
        {"score": 0.95, "num_layers": 1, "units_1": math.nan},
        {"score": 0.90, "num_layers": 2, "units_1": 64},
        {"score": 0.85, "num_layers": 3, "units_1": 128},
        # A stale value where the condition does not hold must not count either.
        {"score": 0.80, "num_layers": 1, "units_1": 0},
        {"score": 0.20, "num_layers": 2, "units_1": 1000},
    ])
    table = range_table(trials, [NUM_LAYERS, UNITS_1], "max", top_k=4).set_index("hyperparameter")
    units = table.loc["units_1"]
    assert (units["active_trials"], units["top_trials"]) == (3, 2)
    assert units["best_value"] == "inactive"
    assert units["top_values"] == "64 – 128 (median 96)"
    assert units["condition"] == "num_layers in {2, 3}"
    assert 16 <= units["suggested_low"] <= 64 and 128 <= units["suggested_high"] <= 1024
    assert table.loc["num_layers", "active_trials"] == 5
    only_one_layer = trials[trials["num_layers"] == 1].assign(units_1=math.nan)
    row = range_table(only_one_layer, [NUM_LAYERS, UNITS_1], "max").iloc[1]
    assert (row["active_trials"], row["top_values"]) == (0, "inactive in all top trials")


def test_failed_running_and_repeated_hyperband_trials_are_handled():
    trials = trials_table([
        {"score": 0.5, "learning_rate": 0.01},
        {"score": math.nan, "status": "FAILED", "learning_rate": 0.3, "message": "diverged"},
        {"score": 0.7, "learning_rate": 0.01},  # the first configuration promoted
        {"score": math.nan, "status": "RUNNING", "learning_rate": 0.001},
        {"score": 0.6, "learning_rate": 0.002},
    ])
    ranking = ranked_configurations(trials, "max")
    assert list(ranking["trial_id"]) == ["02", "04"]
    assert list(top_trials(trials, "max", top_k=1)["trial_id"]) == ["02"]
    assert list(top_trials(trials, "max", top_fraction=1.0)["trial_id"]) == ["02", "04"]
    row = range_table(trials, [LEARNING_RATE], "max").iloc[0]
    assert row["active_trials"] == 2 and row["best_value"] == "0.01"
    with pytest.raises(ValueError, match="direction must be 'max' or 'min'"):
        range_table(trials, [LEARNING_RATE], "maximize")


def test_range_table_without_a_search_space_infers_one():
    trials = random_trials(12, lambda v: v["learning_rate"])
    table = range_table(trials, None, "max")
    assert list(table["hyperparameter"]) == ["learning_rate", "activation", "num_layers", "units_1"]
    assert list(table["type"]) == ["Float", "Choice", "Float", "Float"]


def test_optimization_history_carries_the_best_over_failed_trials():
    trials = trials_table([
        {"score": 0.3, "epochs": 2, "is_textbook": True},
        {"score": math.nan, "status": "FAILED", "epochs": 1},
        {"score": 0.2, "epochs": 3},
        {"score": 0.5, "epochs": 4, "seconds": math.nan},
    ])
    history = optimization_history(trials, "max")
    assert list(history["trial_number"]) == [1, 2, 3, 4]
    assert list(history["best_so_far"]) == [0.3, 0.3, 0.3, 0.5]
    assert list(history["is_new_best"]) == [True, False, False, True]
    assert list(history["cumulative_epochs"]) == [2, 3, 6, 10]
    assert list(history["cumulative_seconds"]) == [1.0, 2.0, 3.0, 3.0]
    lowest = optimization_history(trials, "min")
    assert list(lowest["best_so_far"]) == [0.3, 0.3, 0.2, 0.2]


def test_best_against_textbook_and_top_configurations():
    trials = trials_table([
        {"score": 0.80, "is_textbook": True, "optimizer": "sgd", "learning_rate": 0.01,
         "momentum": 0.0, "beta_1": math.nan},
        {"score": 0.88, "optimizer": "adam", "learning_rate": 0.001, "momentum": math.nan,
         "beta_1": 0.9},
        {"score": 0.85, "optimizer": "sgd", "learning_rate": 0.01, "momentum": 0.9,
         "beta_1": math.nan},
    ])
    table = best_vs_textbook(trials, "max").set_index("item")
    assert table.loc["score", "textbook"] == 0.80 and table.loc["score", "best"] == 0.88
    assert table.loc["difference", "best"] == pytest.approx(0.08)
    assert table.loc["trial_id", "best"] == "01"
    assert table.loc["optimizer", "changed"] and not table.loc["score", "changed"]
    assert (table.loc["momentum", "textbook"], table.loc["momentum", "best"]) == (0.0, "")
    assert (table.loc["beta_1", "textbook"], table.loc["beta_1", "best"]) == ("", 0.9)
    top = top_configurations(trials, "max").set_index("item")
    assert list(top.columns) == ["rank_1", "rank_2", "rank_3"]
    assert list(top.loc["trial_id"]) == ["01", "02", "00"]
    assert top.loc["momentum", "rank_1"] == ""


def test_transfer_summary_averages_seeds_per_configuration():
    transfer = pd.DataFrame({
        "config": ["textbook", "rank_1", "rank_1", "textbook", "rank_2", "rank_2"],
        "rank": [None, 1, 1, None, 2, 2],
        "source_score": [0.85, 0.89, 0.89, 0.85, 0.88, 0.88],
        "val_accuracy": [0.50, 0.60, 0.62, 0.54, 0.55, 0.57],
        "test_accuracy": [0.49, 0.59, 0.61, 0.53, 0.54, 0.58],
        "seconds_per_epoch": [2.0, 3.0, 5.0, 2.0, 1.0, 1.0],
    })
    summary = transfer_summary(transfer)
    assert list(summary["config"]) == ["rank_1", "rank_2", "textbook"]
    assert list(summary["seeds"]) == [2, 2, 2]
    assert summary.loc[0, "val_accuracy_mean"] == pytest.approx(0.61)
    assert summary.loc[0, "val_accuracy_std"] == pytest.approx(np.std([0.60, 0.62], ddof=1))
    assert summary.loc[0, "seconds_per_epoch"] == 4.0
    with pytest.raises(ValueError, match="needs a 'config' column"):
        transfer_summary(transfer.drop(columns="config"))


def test_equal_values_share_a_bin_so_a_hyperparameter_that_never_changed_is_not_important():
    momentum = {"name": "momentum", "type": "Float", "min_value": 0.0, "max_value": 0.99,
                "step": None, "sampling": "linear", "conditions": []}
    # Momentum 0.0 in eleven trials and 0.5 in one, scores unrelated to it. The table arrives
    # best first, so splitting the eleven zeros into two bins would split them by score.
    scores = pd.Series(np.linspace(0.9, 0.5, 12))
    values = pd.Series([0.0] * 3 + [0.5] + [0.0] * 8)
    assert importance(scores, values, momentum) == pytest.approx(0.0, abs=0.05)
    rates = 10 ** np.random.default_rng(1).uniform(-4, -1, 12)  # twelve configurations
    trials = trials_table([{"score": score, "momentum": value, "learning_rate": rate}
                           for score, value, rate in zip(scores, values, rates)])
    shares = range_table(trials, [momentum, LEARNING_RATE], "max")["importance"]
    assert shares.iloc[0] == pytest.approx(0.0, abs=0.05)
    # Distinct values are still cut into equal-count bins: best six against worst six.
    assert importance(scores, pd.Series(np.linspace(0.0, 0.9, 12)), momentum) > 0.6


def test_changed_compares_the_values_not_their_three_digit_text():
    trials = trials_table([
        {"score": 0.80, "is_textbook": True, "learning_rate": 0.01, "units": 64, "act": "relu"},
        {"score": 0.90, "learning_rate": 0.010004, "units": 64.0, "act": "relu"},
    ])
    table = best_vs_textbook(trials, "max").set_index("item")
    assert table.loc["learning_rate", "changed"]  # both show as "0.01"
    assert not table.loc["units", "changed"] and not table.loc["act", "changed"]
    written = best_vs_textbook(trials, "max", {"learning_rate": 0.01, "units": 64,
                                               "act": "relu"}).set_index("item")
    assert list(written["changed"].loc[["learning_rate", "units", "act"]]) == [True, False, False]


def test_unknown_epochs_and_time_stay_unknown_instead_of_zero():
    # A plain KerasTuner project records neither the epochs trained nor the time taken.
    trials = trials_table([{"score": 0.5, "epochs": math.nan, "seconds": math.nan},
                           {"score": 0.6, "epochs": math.nan, "seconds": math.nan}])
    history = optimization_history(trials, "max")
    assert history[["epochs", "cumulative_epochs", "cumulative_seconds"]].isna().all().all()
    summary = run_summary("project", {"direction": "max"}, trials)
    assert math.isnan(summary["epochs_trained"]) and math.isnan(summary["minutes"])
    known = run_summary("run", {"direction": "max"}, trials_table([{"score": 0.5, "epochs": 3,
                                                                    "seconds": 90.0}]))
    assert (known["epochs_trained"], known["minutes"]) == (3, 1.5)
