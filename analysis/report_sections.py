"""The sections of a report, one or more per run directory: what each kind of run (a search, a
KerasTuner project, a transfer, a clock comparison) shows, read from its files into tables and
figures, and the comparison of several search runs.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from analysis import history as run_history
from analysis import plots
from analysis.ranges import range_table, ranked_configurations, top_count
from analysis.report_blocks import Block, Section, cell_text, slug
from tuner import rundir
from tuner.errors import HpsearchError, RunDirError
from tuner.results import read_search
from tuner.rundir import COMPARISON_CSV, TRANSFER_CSV, TRANSFER_SUMMARY
from tuner.rundir import TRANSFER_FILE as TRANSFER_YAML

PANEL_ROWS_PER_FIGURE = 2  # score-against-hyperparameter panels: two rows fill a landscape page


class ReportError(RunDirError, ValueError):
    """A directory cannot be reported on (not a run, unreadable files)."""


def sections_for_run(run_dir: Path, name: str, top_k: int, top_fraction: float | None):
    """The sections of one run directory (its search, transfer and/or clock comparison) and, for
    a search, its row of the runs' comparison (``run_history.run_summary``; None otherwise).

    Raises:
        ReportError: the directory is none of the accepted kinds, or a file in it is unreadable.
    """
    try:
        kinds = rundir.require_run(run_dir, (rundir.SEARCH, rundir.TRANSFER, rundir.COMPARISON,
                                             rundir.KERAS_TUNER), "report")
    except HpsearchError as error:
        raise ReportError(str(error)) from None
    is_search = rundir.SEARCH in kinds or rundir.KERAS_TUNER in kinds
    is_transfer = rundir.TRANSFER in kinds
    is_comparison = rundir.COMPARISON in kinds
    sections, summary = [], None
    if is_search:
        section, summary = _search_section(run_dir, name, top_k, top_fraction)
        sections.append(section)
    if is_transfer:
        sections.append(_transfer_section(run_dir, name))
    if is_comparison:
        sections.append(_clock_comparison_section(run_dir, name))
    return sections, summary


def _search_section(run_dir: Path, name: str, top_k: int, top_fraction: float | None):
    try:
        search = read_search(run_dir)
    except HpsearchError as error:
        raise ReportError(str(error)) from None
    document, trials, space = search.document, search.trials, search.space
    direction, objective = search.direction, search.objective
    summary = run_history.run_summary(name, search.settings | {"direction": direction,
                                                               "objective": objective}, trials)
    kind = "KerasTuner project" if search.kind == rundir.KERAS_TUNER else "Search run"
    section = Section(title=f"{kind}: {name}", anchor=slug(name),
                      summary=" ".join(filter(None, [_search_headline(summary, objective),
                                                     search.objective_note, search.space_note])))
    add = section.blocks.append

    settings = _settings_table(run_dir, search.settings, document)
    source = (run_dir / rundir.RUN_FILE if search.kind == rundir.SEARCH
              else run_dir / rundir.ORACLE_FILE)
    add(Block("table", f"{name}-config", "Run configuration", table=settings,
              caption=f"From {source}."))

    versus = run_history.best_vs_textbook(trials, direction, document.get("textbook_values"))
    add(Block("table", f"{name}-best_vs_textbook", "Best configuration against the textbook model",
              table=versus, caption="Best COMPLETED trial against the textbook model's best "
              "score. "
              "'difference' is best minus textbook; 'changed' marks a value that differs."))

    add(Block("table", f"{name}-top3", "Top-3 configurations",
              table=run_history.top_configurations(trials, direction, 3),
              caption="As exported to top_configs/rank_*.yaml; empty cells: inactive there."))

    history = run_history.optimization_history(trials, direction)
    add(Block("figure", f"{name}-history", "Optimization history",
              figure=plots.plot_history(history, objective, direction),
              caption="Each trial's score (grey), the textbook model (blue diamond) and the best "
              "score so far (red), against trials run and against epochs trained in all trials."))
    add(Block("table", f"{name}-history", "Optimization history (table)", table=history,
              display=history[["trial_number", "trial_id", "status", "score", "best_so_far",
                               "epochs", "cumulative_epochs", "seconds"]],
              caption="One row per trial in the order run."))

    ranking = ranked_configurations(trials, direction)
    top = ranking.head(top_count(len(ranking), top_k, top_fraction))
    ranges = range_table(trials, space, direction, top_k, top_fraction)
    shown = "best " + (f"{top_fraction:.0%}" if top_fraction is not None else str(top_k))
    add(Block("table", f"{name}-ranges", "Hyperparameter ranges", table=ranges,
              display=ranges.drop(columns=["suggested_low", "suggested_high"]),
              caption=f"Top trials: the {shown} of {len(ranking)} distinct completed "
              f"configurations ({len(top)} trials). 'suggested' covers the top trials' values on "
              "the hyperparameter's own scale; importance is the share of the score's variance "
              "the hyperparameter explains (ε², see analysis.ranges.importance) among the trials "
              "where it was active ('active_trials'); empty: too few trials to tell."
              + (f" {search.space_note}" if search.space_note else "")))
    add(Block("figure", f"{name}-importance", "Hyperparameter importance",
              figure=plots.plot_importance(ranges),
              caption="Share of the score's variance explained by each hyperparameter alone."))
    searched = [spec for spec in space if spec["type"] != "Fixed"] or None
    panels = plots.PANEL_COLUMNS * PANEL_ROWS_PER_FIGURE
    parts = [searched[start:start + panels] for start in range(0, len(searched), panels)] \
        if searched else [None]
    for number, part in enumerate(parts, start=1):
        suffix = f" ({number} of {len(parts)})" if len(parts) > 1 else ""
        add(Block("figure", f"{name}-scores_by_hyperparameter" + (f"-{number}" if suffix else ""),
                  "Score against each hyperparameter" + suffix,
                  figure=plots.plot_scores_by_hyperparameter(ranking, part, top["trial_id"],
                                                             objective, direction, space),
                  caption="Completed configurations where the hyperparameter was active; the "
                  "top trials in orange, the best in red."))
    add(Block("table", f"{name}-trials", "All trials", table=trials, csv_only=True))
    return section, summary


def _search_headline(summary: dict[str, Any], objective: str) -> str:
    best, textbook = summary["best_score"], summary["textbook_score"]
    text = (f"{summary['tuner']} search of the '{summary['space']}' space on {summary['dataset']}: "
            f"{summary['completed']} of {summary['trials']} trials completed, "
            f"{_cost(summary['epochs_trained'], summary['minutes'])}. ")
    if math.isfinite(best):
        text += f"Best {objective} {best:.4f} (trial {summary['best_trial']})"
        if math.isfinite(textbook):
            text += f" against the textbook model's {textbook:.4f} ({summary['improvement']:+.4f})"
        text += "."
    else:
        text += "No trial completed yet."
    return text


def _cost(epochs: float, minutes: float) -> str:
    epochs_text = f"{int(epochs)} epochs" if math.isfinite(epochs) else "unknown epochs"
    minutes_text = f"{minutes:.1f} min" if math.isfinite(minutes) else "unknown time"
    return f"{epochs_text} in {minutes_text}"


def _settings_table(run_dir: Path, config: dict[str, Any], document: dict[str, Any]
                    ) -> pd.DataFrame:
    rows = [(key, cell_text(value)) for key, value in config.items()]
    for key, value in (document.get("data") or {}).items():
        rows.append((f"data.{key}", cell_text(value)))
    for key, value in (document.get("versions") or {}).items():
        rows.append((f"versions.{key}", cell_text(value)))
    return pd.DataFrame(rows, columns=["setting", "value"])


def _transfer_section(run_dir: Path, name: str) -> Section:
    try:
        transfer = rundir.read_csv(run_dir / TRANSFER_CSV, "the rows of a transfer")
        meta = rundir.read_yaml(run_dir / TRANSFER_YAML, "the settings of a transfer") \
            if (run_dir / TRANSFER_YAML).is_file() else {}
        summary = run_history.transfer_summary(transfer)
        ensembles = _transfer_ensembles(run_dir)
    except (HpsearchError, ValueError) as error:
        raise ReportError(f"Cannot read the transfer run in {run_dir}: {error}") from None
    if ensembles is not None and not summary.empty:
        # Rows are grouped by configuration (config_id), never by name: two models can share one.
        key = ensembles.columns[0]
        if key in summary.columns:
            summary = summary.merge(ensembles, on=key, how="left")
    # transfer.yaml keeps the target in its settings; the source datasets are in the rows.
    settings = meta.get("settings") if isinstance(meta.get("settings"), dict) else {}
    source = str(_first(transfer, "source_dataset") or "source")
    target = str(settings.get("dataset") or _first(transfer, "dataset") or "target")
    seeds = int(summary["seeds"].max()) if len(summary) else 0
    section = Section(title=f"Transfer run: {name}", anchor=slug(name) + "-transfer",
                      summary=f"Configurations found on {source}, retrained on {target}; mean and "
                      f"standard deviation over {seeds} seed(s).")
    section.blocks.append(Block("table", f"{name}-transfer_summary", "Source against target",
                                table=summary, caption="One row per configuration: the search's "
                                "validation score on the source and the accuracies on the "
                                "target."))
    section.blocks.append(Block("figure", f"{name}-transfer", "Source against target",
                                figure=plots.plot_transfer(summary, source, target),
                                caption="Bars: mean over seeds; whiskers: standard deviation."))
    section.blocks.append(Block("table", f"{name}-transfer_runs", "Transfer trainings",
                                table=transfer, csv_only=True))
    return section


def _transfer_ensembles(run_dir: Path) -> pd.DataFrame | None:
    """The seeds-ensembled test accuracy per configuration from the transfer's ``summary.csv``
    (which ``run_transfer`` computes from ``predictions/``), keyed by its first column:
    ``config_id``, or ``config`` in files written before it; None when it has none."""
    path = run_dir / TRANSFER_SUMMARY
    if not path.is_file():
        return None
    saved = rundir.read_csv(path, "the summary of a transfer", dtype={"config": str,
                                                                       "config_id": str})
    scores = ["ensemble_seeds", "ensemble_test_accuracy"]
    key = "config_id" if "config_id" in saved.columns else "config"
    if not {key, *scores} <= set(saved.columns):
        return None
    saved = saved[[key] + scores].assign(**{column: pd.to_numeric(saved[column], errors="coerce")
                                            for column in scores})
    if not (saved["ensemble_seeds"] > 1).any():
        return None
    return saved.drop_duplicates(key, keep="last")


def _clock_comparison_section(run_dir: Path, name: str) -> Section:
    try:
        table = rundir.read_csv(run_dir / COMPARISON_CSV, "a clock comparison's table")
    except HpsearchError as error:
        raise ReportError(str(error)) from None
    section = Section(title=f"Clock label representations: {name}", anchor=slug(name) + "-clock",
                      summary="The clock comparison's table as written, and the mean common-sense "
                      "error per head (lower is better).")
    section.blocks.append(Block("table", f"{name}-comparison", "Comparison of heads", table=table))
    numeric = [column for column in table.columns if pd.api.types.is_numeric_dtype(table[column])]
    value = "cse_mean" if "cse_mean" in table.columns else (numeric[0] if numeric else None)
    if value is not None and not table.empty:
        labels = [column for column in ("head", "outputs", "loss") if column in table.columns]
        section.blocks.append(Block(
            "figure", f"{name}-comparison", f"{value} per head",
            figure=plots.plot_comparison(
                table, value, labels or None, title=f"{value} per label representation",
                xlabel="mean common-sense error, minutes (lower is better)"
                if value == "cse_mean" else value)))
    return section


def comparison_section(summaries: list[dict[str, Any]]) -> Section:
    """The section that compares search runs, from their ``sections_for_run`` summaries."""
    table = pd.DataFrame(summaries)
    section = Section(title="Runs compared", anchor="comparison",
                      summary="One row per search run: best configuration, textbook model, cost.")
    section.blocks.append(Block("table", "runs-comparison", "Runs compared", table=table,
                                caption="'improvement' is in the objective's better direction."))
    section.blocks.append(Block("figure", "runs-comparison", "Best against textbook per run",
                                figure=plots.plot_run_comparison(table)))
    return section


def _first(frame: pd.DataFrame, column: str):
    if column in frame.columns and frame[column].notna().any():
        return frame[column].dropna().iloc[0]
    return None
