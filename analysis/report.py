"""The report of one or more runs: a self-contained HTML page, the same content as a PDF, every
table as CSV and every figure as PNG.

A report is first assembled as a list of sections made of blocks (a table or a figure with a
caption); the HTML and the PDF are two renderings of those same blocks, so they cannot disagree.

Accepted directories (``tuner.rundir`` tells them apart): a search run (``run.yaml``, written by
``run_search``), a KerasTuner project written by a user's own code (``oracle.json``,
``trial_*/trial.json``), a transfer run (``transfer.csv``, optionally ``transfer.yaml``), a clock
comparison (``comparison.csv`` without ``run.yaml``). With several search runs the report starts
with a comparison of them.
"""
from __future__ import annotations

import base64
import collections
import dataclasses
import datetime
import html
import io
import math
import os
import re
import textwrap
import unicodedata
from pathlib import Path
from typing import Any, Sequence

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import yaml  # noqa: E402
from matplotlib.backends.backend_pdf import PdfPages  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from analysis import history as run_history  # noqa: E402
from analysis import plots  # noqa: E402
from analysis.ranges import (DEFAULT_TOP_K, range_table, ranked_configurations,  # noqa: E402
                             top_count)
from tuner import rundir  # noqa: E402
from tuner.errors import HpsearchError, RunDirError  # noqa: E402
from tuner.results import read_search  # noqa: E402
from tuner.rundir import COMPARISON_CSV, TRANSFER_CSV, TRANSFER_SUMMARY  # noqa: E402
from tuner.rundir import TRANSFER_FILE as TRANSFER_YAML  # noqa: E402

HTML_NAME = "report.html"
PDF_NAME = "report.pdf"
PNG_DPI = 110           # sharp on screen, ~100-200 kB per figure: keeps a committed report light
PDF_PAGE = (11.69, 8.27)  # A4 landscape, inches: wide tables fit
PDF_FONT_SIZE = 7.0
PDF_LINE_CHARS = 190    # characters of 7 pt text across the page's usable width
PDF_COLUMN_CHARS = 46   # a column wider than this wraps
NO_ROWS = "(no rows)"
PANEL_ROWS_PER_FIGURE = 2  # score-against-hyperparameter panels: two rows fill a landscape page


class ReportError(RunDirError, ValueError):
    """A directory cannot be reported on (not a run, unreadable files)."""


@dataclasses.dataclass(frozen=True)
class ReportResult:
    """The files a report wrote.

    Attributes:
        html: the self-contained HTML page (images embedded).
        pdf: the same content as a PDF.
        tables: every table as CSV, in report order.
        figures: every figure as PNG, in report order.
    """

    html: Path
    pdf: Path
    tables: list[Path]
    figures: list[Path]


@dataclasses.dataclass
class _Block:
    kind: str                       # "table" or "figure"
    name: str                       # file stem
    title: str
    caption: str = ""
    table: pd.DataFrame | None = None
    display: pd.DataFrame | None = None  # what HTML/PDF show; the CSV keeps ``table`` complete
    figure: Figure | None = None
    csv_only: bool = False          # too long to read in a report: only linked, as CSV
    png: bytes = b""
    stem: str = ""                  # the file name, unique in the report (``_unique_names``)


@dataclasses.dataclass
class _Section:
    title: str
    anchor: str
    summary: str = ""
    blocks: list[_Block] = dataclasses.field(default_factory=list)


def write_report(run_dirs: Sequence[str | os.PathLike], out_dir: str | os.PathLike,
                 top_k: int = DEFAULT_TOP_K, top_fraction: float | None = None,
                 title: str = "Hyperparameter search report") -> ReportResult:
    """Analyse runs and write the report files into ``out_dir``.

    Writes ``report.html``, ``report.pdf``, ``tables/*.csv`` and ``figures/*.png`` (file names start
    with the run's name). Per search run: configuration, best against textbook, top-3, optimization
    history, range table with importance, score against each hyperparameter. Per transfer run: the
    transfer table (mean and std over seeds) and a source-against-target chart. Per clock
    comparison: its table and a bar chart. Several search runs: a comparison first.

    Args:
        run_dirs: run directories (search, transfer or clock comparison), in report order.
        out_dir: where to write; created if missing, files of an earlier report are replaced.
        top_k: how many configurations count as the top ones (default 5).
        top_fraction: when given, this share of the configurations is the top instead.
        title: the report's title.

    Returns:
        A ReportResult with the paths written.

    Raises:
        ReportError: no directory given, a directory is none of the accepted kinds, or a file in
            it cannot be read.
    """
    if not run_dirs:
        raise ReportError("No run directory given: pass at least one directory written by "
                          "`hpsearch tune` (or a transfer or clock comparison output).")
    top_count(10, top_k, top_fraction)  # rejects a bad top_k/top_fraction before any work
    names = _run_names([Path(run_dir) for run_dir in run_dirs])
    sections, summaries = [], []
    for run_dir, name in zip(run_dirs, names):
        run_sections, summary = _run_sections(Path(run_dir), name, top_k, top_fraction)
        sections.extend(run_sections)
        if summary:
            summaries.append(summary)
    if len(summaries) > 1:
        sections.insert(0, _comparison_section(summaries))
    out_dir = Path(out_dir)
    try:
        return _write_files(sections, out_dir, title)
    finally:
        for section in sections:
            for block in section.blocks:
                if block.figure is not None:
                    plt.close(block.figure)


def _run_names(run_dirs: list[Path]) -> list[str]:
    """One name per run, used in titles, anchors and file names: the folder's name, with its
    parent's when two folders share a name, and a number when their slugs (file names) would
    still be the same ("a b" and "a-b" are both "a-b")."""
    resolved = [run_dir.resolve() for run_dir in run_dirs]
    counts = collections.Counter(path.name for path in resolved)
    wanted = [f"{path.parent.name}-{path.name}" if counts[path.name] > 1 else path.name or "run"
              for path in resolved]
    taken: set[str] = set()
    return [_claim(name, taken, key=lambda candidate: _slug(candidate).casefold())
            for name in wanted]


def _run_sections(run_dir: Path, name: str, top_k: int, top_fraction: float | None):
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
    section = _Section(title=f"{kind}: {name}", anchor=_slug(name),
                       summary=" ".join(filter(None, [_search_headline(summary, objective),
                                                      search.objective_note, search.space_note])))
    add = section.blocks.append

    settings = _settings_table(run_dir, search.settings, document)
    source = (run_dir / rundir.RUN_FILE if search.kind == rundir.SEARCH
              else run_dir / rundir.ORACLE_FILE)
    add(_Block("table", f"{name}-config", "Run configuration", table=settings,
               caption=f"From {source}."))

    versus = run_history.best_vs_textbook(trials, direction, document.get("textbook_values"))
    add(_Block("table", f"{name}-best_vs_textbook", "Best configuration against the textbook model",
               table=versus, caption="Best COMPLETED trial against the textbook model's best "
               "score. "
               "'difference' is best minus textbook; 'changed' marks a value that differs."))

    add(_Block("table", f"{name}-top3", "Top-3 configurations",
               table=run_history.top_configurations(trials, direction, 3),
               caption="As exported to top_configs/rank_*.yaml; empty cells: inactive there."))

    history = run_history.optimization_history(trials, direction)
    add(_Block("figure", f"{name}-history", "Optimization history",
               figure=plots.plot_history(history, objective, direction),
               caption="Each trial's score (grey), the textbook model (blue diamond) and the best "
               "score so far (red), against trials run and against epochs trained in all trials."))
    add(_Block("table", f"{name}-history", "Optimization history (table)", table=history,
               display=history[["trial_number", "trial_id", "status", "score", "best_so_far",
                                "epochs", "cumulative_epochs", "seconds"]],
               caption="One row per trial in the order run."))

    ranking = ranked_configurations(trials, direction)
    top = ranking.head(top_count(len(ranking), top_k, top_fraction))
    ranges = range_table(trials, space, direction, top_k, top_fraction)
    shown = "best " + (f"{top_fraction:.0%}" if top_fraction is not None else str(top_k))
    add(_Block("table", f"{name}-ranges", "Hyperparameter ranges", table=ranges,
               display=ranges.drop(columns=["suggested_low", "suggested_high"]),
               caption=f"Top trials: the {shown} of {len(ranking)} distinct completed "
               f"configurations ({len(top)} trials). 'suggested' covers the top trials' values on "
               "the hyperparameter's own scale; importance is the share of the score's variance "
               "the hyperparameter explains (ε², see analysis.ranges.importance) among the trials "
               "where it was active ('active_trials'); empty: too few trials to tell."
               + (f" {search.space_note}" if search.space_note else "")))
    add(_Block("figure", f"{name}-importance", "Hyperparameter importance",
               figure=plots.plot_importance(ranges),
               caption="Share of the score's variance explained by each hyperparameter alone."))
    searched = [spec for spec in space if spec["type"] != "Fixed"] or None
    panels = plots.PANEL_COLUMNS * PANEL_ROWS_PER_FIGURE
    parts = [searched[start:start + panels] for start in range(0, len(searched), panels)] \
        if searched else [None]
    for number, part in enumerate(parts, start=1):
        suffix = f" ({number} of {len(parts)})" if len(parts) > 1 else ""
        add(_Block("figure", f"{name}-scores_by_hyperparameter" + (f"-{number}" if suffix else ""),
                   "Score against each hyperparameter" + suffix,
                   figure=plots.plot_scores_by_hyperparameter(ranking, part, top["trial_id"],
                                                              objective, direction, space),
                   caption="Completed configurations where the hyperparameter was active; the "
                   "top trials in orange, the best in red."))
    add(_Block("table", f"{name}-trials", "All trials", table=trials, csv_only=True))
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
    rows = [(key, _text(value)) for key, value in config.items()]
    for key, value in (document.get("data") or {}).items():
        rows.append((f"data.{key}", _text(value)))
    for key, value in (document.get("versions") or {}).items():
        rows.append((f"versions.{key}", _text(value)))
    return pd.DataFrame(rows, columns=["setting", "value"])


def _transfer_section(run_dir: Path, name: str) -> _Section:
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
    section = _Section(title=f"Transfer run: {name}", anchor=_slug(name) + "-transfer",
                       summary=f"Configurations found on {source}, retrained on {target}; mean and "
                       f"standard deviation over {seeds} seed(s).")
    section.blocks.append(_Block("table", f"{name}-transfer_summary", "Source against target",
                                 table=summary, caption="One row per configuration: the search's "
                                 "validation score on the source and the accuracies on the "
                                 "target."))
    section.blocks.append(_Block("figure", f"{name}-transfer", "Source against target",
                                 figure=plots.plot_transfer(summary, source, target),
                                 caption="Bars: mean over seeds; whiskers: standard deviation."))
    section.blocks.append(_Block("table", f"{name}-transfer_runs", "Transfer trainings",
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


def _clock_comparison_section(run_dir: Path, name: str) -> _Section:
    try:
        table = rundir.read_csv(run_dir / COMPARISON_CSV, "a clock comparison's table")
    except HpsearchError as error:
        raise ReportError(str(error)) from None
    section = _Section(title=f"Clock label representations: {name}", anchor=_slug(name) + "-clock",
                       summary="The clock comparison's table as written, and the mean common-sense "
                       "error per head (lower is better).")
    section.blocks.append(_Block("table", f"{name}-comparison", "Comparison of heads", table=table))
    numeric = [column for column in table.columns if pd.api.types.is_numeric_dtype(table[column])]
    value = "cse_mean" if "cse_mean" in table.columns else (numeric[0] if numeric else None)
    if value is not None and not table.empty:
        labels = [column for column in ("head", "outputs", "loss") if column in table.columns]
        section.blocks.append(_Block(
            "figure", f"{name}-comparison", f"{value} per head",
            figure=plots.plot_comparison(
                table, value, labels or None, title=f"{value} per label representation",
                xlabel="mean common-sense error, minutes (lower is better)"
                if value == "cse_mean" else value)))
    return section


def _comparison_section(summaries: list[dict[str, Any]]) -> _Section:
    table = pd.DataFrame(summaries)
    section = _Section(title="Runs compared", anchor="comparison",
                       summary="One row per search run: best configuration, textbook model, cost.")
    section.blocks.append(_Block("table", "runs-comparison", "Runs compared", table=table,
                                 caption="'improvement' is in the objective's better direction."))
    section.blocks.append(_Block("figure", "runs-comparison", "Best against textbook per run",
                                 figure=plots.plot_run_comparison(table)))
    return section


def _first(frame: pd.DataFrame, column: str):
    if column in frame.columns and frame[column].notna().any():
        return frame[column].dropna().iloc[0]
    return None


def _write_files(sections: list[_Section], out_dir: Path, title: str) -> ReportResult:
    tables_dir, figures_dir = out_dir / "tables", out_dir / "figures"
    tables_dir.mkdir(parents=True, exist_ok=True)
    figures_dir.mkdir(parents=True, exist_ok=True)
    tables, figures = [], []
    _unique_names(sections)
    for section in sections:
        for block in section.blocks:
            if block.kind == "table":
                path = tables_dir / f"{block.stem}.csv"
                block.table.to_csv(path, index=False)
                tables.append(path)
            else:
                path = figures_dir / f"{block.stem}.png"
                buffer = io.BytesIO()
                block.figure.savefig(buffer, format="png", dpi=PNG_DPI)
                block.png = buffer.getvalue()
                path.write_bytes(block.png)
                figures.append(path)
    created = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    html_path = out_dir / HTML_NAME
    html_path.write_text(_html(sections, title, created), encoding="utf-8")
    pdf_path = out_dir / PDF_NAME
    _pdf(sections, title, created, pdf_path)
    return ReportResult(html=html_path, pdf=pdf_path, tables=tables, figures=figures)


# ---------------------------------------------------------------- shown values
def _display(frame: pd.DataFrame) -> pd.DataFrame:
    """Every cell as short text: numbers to 4 significant digits, missing values empty."""
    return frame.astype(object).map(_text) if not frame.empty else frame.astype(object)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        number = float(value)
        if math.isnan(number):
            return ""
        if number.is_integer() and abs(number) < 1e7:
            return str(int(number))
        return f"{number:.4g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(_text(item) for item in value)
    try:
        if pd.isna(value):
            return ""
    except (TypeError, ValueError):
        pass
    return str(value)


def _slug(name: str) -> str:
    # Accents dropped ("névé" -> "neve"), other non-ASCII letters become "-": file names and
    # links that work everywhere; ``_run_names`` and ``_unique_names`` keep them apart.
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", ascii_name).strip("-") or "run"


def _unique_names(sections: list[_Section]) -> None:
    """Give every section a distinct anchor and every table and figure a distinct file stem, in
    report order (the runs' comparison comes first, so it keeps "runs-comparison")."""
    anchors: set[str] = set()
    stems: dict[str, set[str]] = {"table": set(), "figure": set()}
    for section in sections:
        section.anchor = _claim(_slug(section.anchor), anchors)
        for block in section.blocks:
            block.stem = _claim(_slug(block.name), stems[block.kind])


def _claim(name: str, taken: set[str], key=str.casefold) -> str:
    """``name``, or ``name-2``, ``name-3``... the first whose key is not taken yet (casefold by
    default: macOS and Windows file names ignore case); its key is then taken."""
    candidate, number = name, 1
    while key(candidate) in taken:
        number += 1
        candidate = f"{name}-{number}"
    taken.add(key(candidate))
    return candidate


def _shown(block: _Block) -> pd.DataFrame:
    return _display(block.display if block.display is not None else block.table)


# ---------------------------------------------------------------- HTML
_CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; color: #222;
       max-width: 1200px; margin: 2em auto; padding: 0 1.5em; line-height: 1.45; }
h1 { border-bottom: 3px solid #0173b2; padding-bottom: .3em; }
h2 { margin-top: 2.2em; border-bottom: 1px solid #ccc; padding-bottom: .2em; color: #0173b2; }
h3 { margin-top: 1.6em; }
p.caption, p.meta { color: #555; font-size: .9em; margin: .3em 0 .8em; }
p.summary { background: #f3f7fb; border-left: 4px solid #0173b2; padding: .6em .9em; }
table.data { border-collapse: collapse; font-size: .82em; margin: .4em 0 1em; }
table.data th { background: #0173b2; color: white; text-align: left; padding: .35em .6em; }
table.data td { border-bottom: 1px solid #e3e3e3; padding: .3em .6em; vertical-align: top; }
table.data tr:nth-child(even) td { background: #f8f8f8; }
div.scroll { overflow-x: auto; }
img { max-width: 100%; height: auto; border: 1px solid #eee; }
nav ul { columns: 2; }
a.csv { font-size: .85em; }
"""


def _html(sections: list[_Section], title: str, created: str) -> str:
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
             f"<h1>{html.escape(title)}</h1>",
             f'<p class="meta">Written by hpsearch on {created}. Every table is also in tables/ as '
             "CSV and every figure in figures/ as PNG.</p>", "<nav><ul>"]
    parts += [f'<li><a href="#{section.anchor}">{html.escape(section.title)}</a></li>'
              for section in sections]
    parts.append("</ul></nav>")
    for section in sections:
        parts.append(f'<h2 id="{section.anchor}">{html.escape(section.title)}</h2>')
        if section.summary:
            parts.append(f'<p class="summary">{html.escape(section.summary)}</p>')
        for block in section.blocks:
            csv_link = f"tables/{block.stem}.csv"
            if block.kind == "table":
                if block.csv_only:
                    parts.append(f"<h3>{html.escape(block.title)}</h3><p class='caption'>"
                                 f"{len(block.table)} rows: see <a class='csv' href='{csv_link}'>"
                                 f"{csv_link}</a>.</p>")
                    continue
                parts.append(f"<h3>{html.escape(block.title)}</h3>")
                if block.caption:
                    parts.append(f'<p class="caption">{html.escape(block.caption)}</p>')
                parts.append('<div class="scroll">' + _shown(block).to_html(
                    index=False, classes="data", border=0, na_rep="") + "</div>")
                if block.table.empty:
                    parts.append(f'<p class="caption">{NO_ROWS}</p>')
            else:
                encoded = base64.b64encode(block.png).decode("ascii")
                parts.append(f"<h3>{html.escape(block.title)}</h3>")
                if block.caption:
                    parts.append(f'<p class="caption">{html.escape(block.caption)}</p>')
                parts.append(f'<img alt="{html.escape(block.title)}" '
                             f'src="data:image/png;base64,{encoded}">')
    parts.append("</body></html>")
    return "\n".join(parts)


# ---------------------------------------------------------------- PDF
def _pdf(sections: list[_Section], title: str, created: str, path: Path) -> None:
    with PdfPages(path) as pdf:
        pdf.savefig(_title_page(sections, title, created))
        for section in sections:
            first = True
            for block in (block for block in section.blocks if not block.csv_only):
                heading = section.title if first else ""
                summary = section.summary if first else ""
                first = False
                if block.kind == "figure":
                    pdf.savefig(_figure_page(block, heading, summary))
                    continue
                for page in _table_pages(block, _shown(block), heading, summary):
                    pdf.savefig(page)
        info = pdf.infodict()
        info["Title"] = title
        info["Creator"] = "hpsearch"


def _page(heading: str, summary: str, title: str, caption: str) -> tuple[Figure, float]:
    """A blank A4 page with the section heading, summary, block title and caption; returns the
    page and the top of the space left (figure fraction)."""
    page = Figure(figsize=PDF_PAGE)
    top = 0.95
    if heading:
        page.text(0.04, top, heading, fontsize=15, fontweight="bold", color="#0173b2", va="top")
        top -= 0.045
    if summary:
        page.text(0.04, top, textwrap.fill(summary, 150), fontsize=9, va="top", color="#333333")
        top -= 0.03 * (1 + len(summary) // 150)
    page.text(0.04, top, title, fontsize=12, fontweight="bold", va="top")
    top -= 0.035
    if caption:
        lines = textwrap.fill(caption, 165)
        page.text(0.04, top, lines, fontsize=8, va="top", color="#555555")
        top -= 0.022 * (lines.count("\n") + 1) + 0.01
    return page, top


def _title_page(sections: list[_Section], title: str, created: str) -> Figure:
    page = Figure(figsize=PDF_PAGE)
    page.text(0.06, 0.88, title, fontsize=24, fontweight="bold", color="#0173b2")
    page.text(0.06, 0.83, f"Written by hpsearch on {created}", fontsize=10, color="#555555")
    top = 0.74
    for section in sections:
        page.text(0.06, top, section.title, fontsize=12, fontweight="bold", va="top")
        wrapped = textwrap.fill(section.summary, 130)
        page.text(0.08, top - 0.035, wrapped, fontsize=9, va="top", color="#333333")
        top -= 0.06 + 0.025 * wrapped.count("\n")
        if top < 0.08:
            break
    return page


def _figure_page(block: _Block, heading: str, summary: str) -> Figure:
    page, top = _page(heading, summary, block.title, block.caption)
    image = plt.imread(io.BytesIO(block.png), format="png")
    height, width = image.shape[:2]
    # At most the figure's own size (fonts keep their size), shrunk to fit the space left.
    box_width = min(0.92, width / PNG_DPI / PDF_PAGE[0])
    box_height = box_width * (height / width) * (PDF_PAGE[0] / PDF_PAGE[1])
    if box_height > top - 0.03:
        box_width *= (top - 0.03) / box_height
        box_height = top - 0.03
    ax = page.add_axes([0.5 - box_width / 2, top - box_height - 0.01, box_width, box_height])
    ax.imshow(image, interpolation="antialiased")
    ax.axis("off")
    return page


def _table_pages(block: _Block, shown: pd.DataFrame, heading: str, summary: str) -> list[Figure]:
    columns = [str(column) for column in shown.columns] or [""]
    cells = shown.astype(str).to_numpy().tolist()
    if not cells:  # a search with no trial yet, a header-only CSV: say so under the header
        cells = [[NO_ROWS] + [""] * (len(columns) - 1)]
    natural = [max([len(column)] + [len(row[index]) for row in cells]) for index, column
               in enumerate(columns)]
    # Shrinking a column never splits a word (the longest word sets its least width).
    least = [min(PDF_COLUMN_CHARS, max([6, len(column.split("_")[0])] + [
        len(word) for row in cells for word in row[index].split()])) for index, column
        in enumerate(columns)]
    widths = [min(width, PDF_COLUMN_CHARS) for width in natural]
    total = sum(widths)
    if total > PDF_LINE_CHARS:
        spare = max(1, total - sum(least))
        excess = total - PDF_LINE_CHARS
        widths = [max(low, width - int(math.ceil(excess * (width - low) / spare)))
                  for width, low in zip(widths, least)]
    wrapped_header = [textwrap.fill(column.replace("_", " "), max(widths[i], 6))
                      for i, column in enumerate(columns)]
    wrapped = [[textwrap.fill(cell, widths[i], break_on_hyphens=False) if cell else ""
                for i, cell in enumerate(row)]
               for row in cells]
    line = PDF_FONT_SIZE * 1.45 / 72 / PDF_PAGE[1]  # one text line, figure fraction
    pages = []
    row_lines = [max(cell.count("\n") + 1 for cell in row) for row in wrapped]
    header_lines = max(cell.count("\n") + 1 for cell in wrapped_header)
    start = 0
    while start < len(wrapped):
        page, top = _page(heading if start == 0 else "", summary if start == 0 else "",
                          block.title + (" (continued)" if start else ""),
                          block.caption if start == 0 else "")
        available = top - 0.04
        used, end = (header_lines + 0.6) * line, start
        while end < len(wrapped) and used + (row_lines[end] + 0.6) * line <= available:
            used += (row_lines[end] + 0.6) * line
            end += 1
        end = max(end, start + 1)
        # Capitals and digits run wider than the average character PDF_LINE_CHARS assumes.
        fraction_width = min(0.92, 1.2 * (sum(widths) + 2 * len(widths)) / PDF_LINE_CHARS * 0.92)
        ax = page.add_axes([0.04, top - used - 0.005, fraction_width, used])
        ax.axis("off")
        table = ax.table(cellText=wrapped[start:end], colLabels=wrapped_header,
                         colWidths=[(width + 2) / (sum(widths) + 2 * len(widths))
                                    for width in widths], cellLoc="left",
                         loc="upper left", bbox=[0, 0, 1, 1])
        table.auto_set_font_size(False)
        table.set_fontsize(PDF_FONT_SIZE)
        for (row, _), cell in table.get_celld().items():
            lines = header_lines if row == 0 else row_lines[start + row - 1]
            cell.set_height((lines + 0.6) * line / used)
            cell.set_edgecolor("#dddddd")
            cell.PAD = 0.02
            if row == 0:
                cell.set_facecolor("#0173b2")
                cell.get_text().set_color("white")
                cell.get_text().set_fontweight("bold")
            elif row % 2 == 0:
                cell.set_facecolor("#f5f5f5")
        pages.append(page)
        start = end
    return pages
