"""The rows of a transfer run (``transfer.csv``, one per configuration and seed) and what is made
of them: the summary per configuration and the table ``hpsearch transfer`` prints.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from tuner import rundir
from tuner.results import summarize_transfer
from tuner.rundir import TRANSFER_CSV

COLUMNS = [
    "config",
    "config_id",
    "rank",
    "trial_id",
    "search_space",
    "source_dataset",
    "source_score",
    "dataset",
    "seed",
    "val_accuracy",
    "test_accuracy",
    "epochs",
    "params",
    "seconds_per_epoch",
    # The configuration's objective (val_accuracy for classifiers), at its best epoch on the
    # target's validation split and on its test split; the accuracies above stay empty for a
    # space that reports none.
    "objective",
    "val_score",
    "test_score",
    # True when the training's loss stopped being finite (its scores are then NaN); empty in
    # rows written before it was recorded.
    "diverged",
]


def read_rows(out_dir: Path, known_ids: dict[str, str]) -> pd.DataFrame:
    """The rows of ``out_dir``'s ``transfer.csv`` in ``COLUMNS`` (none yet: no rows); rows written
    before they carried a ``config_id`` take theirs from ``known_ids`` (name -> config id)."""
    path = out_dir / TRANSFER_CSV
    if not path.is_file():
        return pd.DataFrame(columns=COLUMNS)
    rows = rundir.read_csv(path, "the rows of a transfer", dtype={"trial_id": str, "config": str,
                                                                  "config_id": str},
                           keep_default_na=False, na_values=[""])
    if "config_id" not in rows.columns:
        # Written before rows were keyed by configuration: the names meant what was recorded.
        rows.insert(1, "config_id", rows["config"].map(known_ids))
    return rows.reindex(columns=COLUMNS)


def diverged_seeds(rows: pd.DataFrame) -> pd.DataFrame:
    """How many seeds of each configuration diverged (their loss stopped being finite): one row
    per ``config_id`` with ``diverged_seeds`` (rows written before it was recorded count as not
    diverged)."""
    flags = rows["diverged"].astype(str).str.lower() == "true"
    counts = flags.groupby(rows["config_id"].astype(str), sort=False).sum().astype(int)
    return pd.DataFrame({"config_id": counts.index, "diverged_seeds": counts.to_numpy()})


def summarize(rows: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation (over seeds; NaN with one seed) of validation and test accuracy
    per configuration; see ``tuner.results.summarize_transfer``."""
    return summarize_transfer(rows)


def format_transfer_table(summary: pd.DataFrame) -> str:
    """The table ``hpsearch transfer`` prints: one line per configuration, its objective on the
    target's validation and test splits (accuracy for classifiers)."""
    if summary.empty:
        return "No results."
    ensembled = "ensemble_seeds" in summary.columns and (summary["ensemble_seeds"] > 1).any()
    objectives = list(dict.fromkeys(summary["objective"])) if "objective" in summary else []
    metric = objectives[0][len("val_"):] if len(objectives) == 1 else "score"
    lines = [
        f"{'config':<22} {'source val':>10} {'target val ' + metric:>20} "
        f"{'target test ' + metric:>20} "
        + (f"{'ensemble':>13} " if ensembled else "")
        + f"{'epochs':>6} {'params':>9} {'s/epoch':>8}"
    ]
    for row in summary.itertuples():
        # Every seed's loss stopped being finite: that is why its scores are missing.
        diverged = getattr(row, "diverged_seeds", 0) == row.seeds
        source = f"{row.source_score:.4f}" if math.isfinite(float(row.source_score)) else "-"
        lines.append(
            f"{row.config:<22} {source:>10} "
            f"{_score_cell(row.val_score_mean, row.val_score_std, diverged):>20} "
            f"{_score_cell(row.test_score_mean, row.test_score_std, diverged):>20} "
            + (f"{_ensemble_cell(row):>13} " if ensembled else "")
            + f"{row.epochs_mean:>6.1f} {int(row.params):>9,} {row.seconds_per_epoch:>8.1f}"
        )
    return "\n".join(lines)


def _score_cell(mean, std, diverged: bool) -> str:
    """``0.8123 ± 0.0100`` (no ± with one seed); a missing score is "diverged" when every seed
    diverged, else "-" (no validation split with --final, or no test split)."""
    if not math.isfinite(float(mean)):
        return "diverged" if diverged else "-"
    return f"{mean:.4f}" + (f" ± {std:.4f}" if isinstance(std, float) and math.isfinite(std)
                            else "")


def _ensemble_cell(row) -> str:
    """``0.9123 (x3)``: the test accuracy of the seeds ensembled, and how many there were."""
    if not (row.ensemble_seeds > 1 and math.isfinite(float(row.ensemble_test_accuracy))):
        return "-"
    return f"{row.ensemble_test_accuracy:.4f} (x{int(row.ensemble_seeds)})"

