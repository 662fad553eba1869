"""Drawing the analysis tables with seaborn; every function returns a matplotlib Figure.

The data comes from ``analysis.history`` and ``analysis.ranges``; nothing is computed here that a
test would need to check. Colours are the same in every figure: grey for ordinary trials, orange
for the top trials, red for the best one, blue for the textbook model.
"""
from __future__ import annotations

import math
from typing import Any, Iterable

import matplotlib

matplotlib.use("Agg")  # files only: the report must render without a display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from analysis.ranges import active_mask, infer_search_space  # noqa: E402

_PALETTE = sns.color_palette("colorblind")
COLORS = {
    "trial": "#9a9a9a",
    "top": _PALETTE[1],       # orange
    "best": "#b2182b",        # dark red: apart from the orange of the top trials
    "textbook": _PALETTE[0],  # blue
    "failed": "#444444",
    "bar": _PALETTE[0],
    "series": [_PALETTE[0], _PALETTE[2], _PALETTE[1], _PALETTE[4], _PALETTE[5]],
}
_GROUP_ORDER = ["other trials", "top trials", "best trial"]
_GROUP_COLORS = dict(zip(_GROUP_ORDER, [COLORS["trial"], COLORS["top"], COLORS["best"]]))
PANEL_COLUMNS = 4


def _theme() -> None:
    sns.set_theme(style="whitegrid", context="notebook", font_scale=0.9,
                  rc={"axes.titleweight": "bold", "figure.dpi": 100, "savefig.dpi": 110})


def score_label(objective: str, direction: str) -> str:
    """Axis label of a score, e.g. "val_accuracy (higher is better)"."""
    return f"{objective} ({'higher' if direction == 'max' else 'lower'} is better)"


def score_limits(scores: pd.Series, direction: str) -> tuple[float, float] | None:
    """Score axis limits that keep the good trials readable: a few diverged trials far below the
    rest (above, for "min") would otherwise squash them. None: no trial is that far off."""
    values = pd.to_numeric(scores, errors="coerce").dropna().to_numpy(dtype=float)
    if len(values) < 5:
        return None
    if direction == "min":
        values = -values
    good, typical, worst = values.max(), np.percentile(values, 10), values.min()
    core = max(good - typical, 1e-12)
    if typical - worst <= core:
        return None
    low, high = typical - 0.5 * core, good + 0.08 * core
    return (low, high) if direction == "max" else (-high, -low)


def _clip_scores(scores: pd.Series, limits) -> pd.Series:
    return scores if limits is None else scores.clip(limits[0], limits[1])


def plot_history(history: pd.DataFrame, objective: str, direction: str) -> Figure:
    """Best score so far against trials run and against epochs trained (two panels).

    Args:
        history: ``analysis.history.optimization_history``'s table.
        objective: the score's name, for the axis label.
        direction: "max" or "min".
    """
    _theme()
    figure, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True, layout="constrained")
    limits = score_limits(history["score"], direction)
    history = history.assign(score=_clip_scores(history["score"], limits),
                             # unknown epochs are NA in the table, NaN (not drawn) here
                             cumulative_epochs=pd.to_numeric(history["cumulative_epochs"])
                             .astype(float))
    for ax, x, xlabel in ((axes[0], "trial_number", "trials run"),
                          (axes[1], "cumulative_epochs", "epochs trained, all trials so far")):
        done = history[history["score"].notna()]
        ordinary = done[~done["is_textbook"].astype(bool)]
        ax.scatter(ordinary[x], ordinary["score"], s=22, color=COLORS["trial"], alpha=0.8,
                   label="trial score", zorder=2)
        textbook = done[done["is_textbook"].astype(bool)]
        ax.scatter(textbook[x], textbook["score"], s=60, marker="D", color=COLORS["textbook"],
                   label="textbook model", zorder=3)
        ax.step(history[x], history["best_so_far"], where="post", color=COLORS["best"],
                linewidth=2, label="best so far", zorder=4)
        failed = history[history["status"] != "COMPLETED"]
        if not failed.empty and done["score"].notna().any():
            # At the worst score seen, whichever way is better: never among the good trials.
            worst = done["score"].min() if direction == "max" else done["score"].max()
            ax.scatter(failed[x], [worst] * len(failed), marker="x", color=COLORS["failed"],
                       s=40, label="failed / unfinished", zorder=3)
        if history[x].isna().all() and not history.empty:
            ax.text(0.5, 0.5, "epochs trained unknown\n(not recorded by this project)",
                    ha="center", va="center", transform=ax.transAxes, color="#555555")
        ax.set_xlabel(xlabel)
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True, nbins=8))
    if limits is not None:
        margin = 0.03 * (limits[1] - limits[0])
        axes[0].set_ylim(limits[0] - margin, limits[1] + margin)
        figure.text(0.99, 0.002, "Scores beyond the axis are drawn at its edge.", fontsize=7,
                    ha="right", color="#555555")
    axes[0].set_ylabel(score_label(objective, direction))
    axes[0].set_title("Best score against trials")
    axes[1].set_title("Best score against epochs spent")
    axes[1].legend(loc="lower right" if direction == "max" else "upper right", fontsize=8)
    return figure


def plot_scores_by_hyperparameter(trials: pd.DataFrame, space: list[dict[str, Any]] | None,
                                  top_ids: Iterable[str], objective: str, direction: str,
                                  full_space: list[dict[str, Any]] | None = None) -> Figure:
    """Score against each hyperparameter's value, one panel each, top trials highlighted.

    Only trials where the hyperparameter was active are drawn; the panel title says how many.
    Log-sampled numbers get a log axis; choices are drawn as jittered strips.

    Args:
        trials: completed trials (e.g. ``analysis.ranges.ranked_configurations``), best first.
        space: the search space (``read_search_space``); None: inferred from the table.
        top_ids: trial ids of the top configurations (the first is not special: the best trial is
            the first row of ``trials``).
        objective, direction: for the axis label.
        full_space: the whole search space when ``space`` is a part of it (conditions on
            hyperparameters outside the part are then still checked); default: ``space``.
    """
    _theme()
    space = list(space) if space else infer_search_space(trials)
    full_space = list(full_space) if full_space else space
    space = [spec for spec in space if spec["type"] != "Fixed"]
    top_ids = {str(trial_id) for trial_id in top_ids}
    rows = max(1, math.ceil(len(space) / PANEL_COLUMNS))
    figure, axes = plt.subplots(rows, PANEL_COLUMNS, figsize=(13, 2.7 * rows + 0.5),
                                sharey=True, layout="constrained", squeeze=False)
    limits = score_limits(trials["score"], direction) if "score" in trials else None
    trials = trials.assign(score=_clip_scores(trials["score"], limits))
    best_id = str(trials["trial_id"].iloc[0]) if not trials.empty else None
    group = trials["trial_id"].astype(str).map(
        lambda trial_id: "best trial" if trial_id == best_id
        else "top trials" if trial_id in top_ids else "other trials")
    for ax, spec in zip(axes.flat, space):
        name = spec["name"]
        mask = active_mask(trials, spec, full_space) if name in trials \
            else pd.Series(False, index=trials.index)
        ax.set_title(f"{name} ({int(mask.sum())} trials)", fontsize=9)
        ax.set_xlabel("")
        if not mask.any():
            ax.text(0.5, 0.5, "never active", ha="center", va="center", transform=ax.transAxes,
                    color=COLORS["trial"])
            ax.set_xticks([])
            continue
        data = pd.DataFrame({"value": trials.loc[mask, name], "score": trials.loc[mask, "score"],
                             "group": group[mask]})
        data = data.sort_values("group", key=lambda g: g.map(_GROUP_ORDER.index))
        best = data[data["group"] == "best trial"]
        if spec["type"] in ("Int", "Float"):
            data["value"] = pd.to_numeric(data["value"]).astype(float)
            others = data[data["group"] != "best trial"]
            if not others.empty:
                sns.scatterplot(data=others, x="value", y="score", hue="group",
                                hue_order=_GROUP_ORDER, palette=_GROUP_COLORS, s=34, ax=ax,
                                legend=False, edgecolor="none")
            ax.scatter(pd.to_numeric(best["value"]).astype(float), best["score"], marker="*",
                       s=160, color=COLORS["best"], zorder=5, edgecolor="white", linewidth=0.5)
            _numeric_axis(ax, spec)
        else:
            data["value"] = data["value"].map(_label)
            seen = set(data["value"])
            order = [value for value in map(_label, spec.get("values") or [False, True])
                     if value in seen]
            # A value outside the saved choices (an edited trial file) still gets its place.
            order += sorted(seen - set(order))
            others = data[data["group"] != "best trial"]
            if not others.empty:
                sns.stripplot(data=others, x="value", y="score", hue="group",
                              hue_order=_GROUP_ORDER, palette=_GROUP_COLORS, order=order, size=5,
                              jitter=0.2, ax=ax, legend=False)
            ax.scatter([order.index(_label(value)) for value in best["value"]], best["score"],
                       marker="*", s=160, color=COLORS["best"], zorder=5, edgecolor="white",
                       linewidth=0.5)
            ax.set_xlim(-0.5, len(order) - 0.5)
            long_labels = sum(len(label) for label in order) > 22
            ax.tick_params(axis="x", labelrotation=35 if long_labels else 0, labelsize=8)
            if long_labels:
                for label in ax.get_xticklabels():
                    label.set_horizontalalignment("right")
        ax.set_xlabel("")
        ax.set_ylabel(score_label(objective, direction) if ax in axes[:, 0] else "")
    for ax in list(axes.flat)[len(space):]:
        ax.set_visible(False)
    if limits is not None:
        margin = 0.03 * (limits[1] - limits[0])
        axes[0, 0].set_ylim(limits[0] - margin, limits[1] + margin)
        figure.text(0.99, 0.002, "Scores beyond the axis are drawn at its edge.", fontsize=7,
                    ha="right", color="#555555")
    handles = [matplotlib.lines.Line2D([], [], marker="*" if label == "best trial" else "o",
                                       markersize=11 if label == "best trial" else 6,
                                       linestyle="", color=color, label=label)
               for label, color in _GROUP_COLORS.items()]
    figure.legend(handles=handles, loc="outside upper center", ncols=3, frameon=False)
    return figure


def _numeric_axis(ax, spec: dict[str, Any]) -> None:
    """The searched range as the x axis, on the hyperparameter's own scale."""
    low, high = spec.get("min_value"), spec.get("max_value")
    if spec.get("sampling") == "log":
        ax.set_xscale("log")
        if low and high and low > 0:
            ax.set_xlim(low / 1.25, high * 1.25)
        ax.xaxis.set_major_locator(matplotlib.ticker.LogLocator(numticks=5))
        return
    if low is not None and high is not None and high > low:
        pad = 0.04 * (high - low)
        ax.set_xlim(low - pad, high + pad)
    ax.xaxis.set_major_locator(
        matplotlib.ticker.MaxNLocator(nbins=5, integer=spec["type"] == "Int"))


def _label(value: Any) -> str:
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def plot_importance(ranges: pd.DataFrame) -> Figure:
    """Importance of each hyperparameter as horizontal bars, largest first.

    Args:
        ranges: ``analysis.ranges.range_table``'s table; hyperparameters with NaN importance (too
            few trials to tell) are listed at the bottom without a bar.
    """
    _theme()
    data = ranges[["hyperparameter", "importance"]].copy()
    data["known"] = data["importance"].notna()
    data = data.sort_values(["known", "importance"], ascending=[False, False], kind="stable")
    figure, ax = plt.subplots(figsize=(7, 0.28 * len(data) + 1.2), layout="constrained")
    sns.barplot(data=data.fillna({"importance": 0.0}), y="hyperparameter", x="importance",
                color=COLORS["bar"], ax=ax, orient="h")
    for position, (_, row) in enumerate(data.iterrows()):
        text = f"{row['importance']:.2f}" if row["known"] else "too few trials"
        ax.text((row["importance"] if row["known"] else 0.0) + 0.01, position, text,
                va="center", fontsize=8, color="#333333")
    ax.set_xlim(0, 1.1)
    ax.set_xlabel("importance: share of score variance explained (ε², 0–1)")
    ax.set_ylabel("")
    ax.set_title("Hyperparameter importance")
    return figure


def plot_transfer(summary: pd.DataFrame, source: str, target: str) -> Figure:
    """Source validation score against target validation/test accuracy per configuration.

    Args:
        summary: ``analysis.history.transfer_summary``'s table (``*_mean``/``*_std`` columns).
        source, target: dataset names for the legend.
    """
    _theme()
    if summary.empty:
        figure, ax = plt.subplots(figsize=(6, 2.5), layout="constrained")
        ax.text(0.5, 0.5, "(no rows: no configuration was retrained yet)", ha="center",
                va="center", transform=ax.transAxes, color="#555555")
        ax.axis("off")
        ax.set_title(f"Transfer: {source} → {target}")
        return figure
    series = [(f"{column}_mean", f"{column}_std", label) for column, label in (
        ("source_score", f"search score on {source}"),
        ("val_accuracy", f"validation accuracy on {target}"),
        ("test_accuracy", f"test accuracy on {target}"))
        if f"{column}_mean" in summary.columns]
    figure, ax = plt.subplots(figsize=(max(6, 1.6 * len(summary) + 2), 4), layout="constrained")
    width = 0.8 / max(1, len(series))
    positions = np.arange(len(summary))
    for index, (mean, std, label) in enumerate(series):
        ax.bar(positions + (index - (len(series) - 1) / 2) * width, summary[mean], width,
               yerr=summary[std] if std in summary else None, capsize=3, label=label,
               color=COLORS["series"][index % len(COLORS["series"])])
    labels = summary["config"].astype(str) if "config" in summary else pd.Series(dtype=str)
    if labels.duplicated().any() and "config_id" in summary:
        labels = labels + "\n" + summary["config_id"].astype(str)  # two models, one name
    ax.set_xticks(positions, labels)
    ax.set_ylabel("accuracy (mean ± std over seeds)")
    low = min((summary[mean] - summary.get(std, 0)).min() for mean, std, _ in series) if series \
        else 0.0
    ax.set_ylim(max(0.0, math.floor(low * 20) / 20 - 0.05) if math.isfinite(low) else 0.0, 1.0)
    ax.set_title(f"Transfer: {source} → {target}")
    ax.legend(fontsize=8, loc="lower right")
    return figure


def plot_comparison(table: pd.DataFrame, value: str, label_columns: list[str] | None = None,
                    title: str = "", xlabel: str | None = None) -> Figure:
    """One horizontal bar per row of a comparison table.

    Args:
        table: any table with a numeric ``value`` column.
        value: the column drawn.
        label_columns: columns joined into each bar's label; default: the text columns.
        title: the figure title.
        xlabel: the value axis label; default: ``value``.
    """
    _theme()
    if label_columns is None:
        label_columns = [column for column in table.columns
                         if not pd.api.types.is_numeric_dtype(table[column])] or []
    labels = table[label_columns].astype(str).agg(" / ".join, axis=1) if label_columns \
        else pd.Series([str(index) for index in table.index], index=table.index)
    data = pd.DataFrame({"label": labels.to_numpy(),
                         "value": pd.to_numeric(table[value], errors="coerce").to_numpy()})
    figure, ax = plt.subplots(figsize=(7.5, 0.42 * len(data) + 1.4), layout="constrained")
    sns.barplot(data=data, y="label", x="value", color=COLORS["bar"], ax=ax, orient="h")
    for position, number in enumerate(data["value"]):
        if math.isfinite(number):
            ax.text(number, position, f" {number:.3g}", va="center", fontsize=8)
    ax.set_xlabel(xlabel or value)
    ax.set_ylabel("")
    ax.set_xlim(0, data["value"].max() * 1.15 if data["value"].notna().any() else 1)
    ax.set_title(title)
    return figure


def plot_run_comparison(summary: pd.DataFrame) -> Figure:
    """Best and textbook score per run, one panel per objective.

    Args:
        summary: rows of ``analysis.history.run_summary``.
    """
    _theme()
    objectives = list(dict.fromkeys(summary["objective"]))
    figure, axes = plt.subplots(1, len(objectives), figsize=(max(7.0, 5.5 * len(objectives)), 0.5
                                * len(summary) + 1.6), layout="constrained", squeeze=False)
    for ax, objective in zip(axes[0], objectives):
        part = summary[summary["objective"] == objective]
        data = part.melt(id_vars=["run"], value_vars=["textbook_score", "best_score"],
                         var_name="model", value_name="score")
        data["model"] = data["model"].map({"textbook_score": "textbook", "best_score": "best"})
        sns.barplot(data=data, y="run", x="score", hue="model", hue_order=["textbook", "best"],
                    palette={"textbook": COLORS["textbook"], "best": COLORS["best"]}, ax=ax,
                    orient="h")
        ax.set_xlabel(score_label(objective, part["direction"].iloc[0]))
        ax.set_ylabel("")
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    figure.suptitle("Best configuration against the textbook model")
    return figure
