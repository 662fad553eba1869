"""The report of one or more runs: a self-contained HTML page, the same content as a PDF, every
table as CSV and every figure as PNG.

A report is first assembled as a list of sections made of blocks (a table or a figure with a
caption); the HTML and the PDF are two renderings of those same blocks, so they cannot disagree.

Accepted directories (``tuner.rundir`` tells them apart): a search run (``run.yaml``, written by
``run_search``), a KerasTuner project written by a user's own code (``oracle.json``,
``trial_*/trial.json``), a transfer run (``transfer.csv``, optionally ``transfer.yaml``), a clock
comparison (``comparison.csv`` without ``run.yaml``). With several search runs the report starts
with a comparison of them.

The sections are made in ``analysis.report_sections`` from blocks defined in
``analysis.report_blocks`` and drawn by ``analysis.report_render``; this module names the runs and
writes the files.
"""
from __future__ import annotations

import collections
import dataclasses
import datetime
import io
import os
from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402

from analysis.ranges import DEFAULT_TOP_K, top_count  # noqa: E402
from analysis.report_blocks import Section, slug  # noqa: E402
from analysis.report_render import PNG_DPI, html_page, write_pdf  # noqa: E402
from analysis.report_sections import ReportError, comparison_section, sections_for_run  # noqa: E402

HTML_NAME = "report.html"
PDF_NAME = "report.pdf"


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
        run_sections, summary = sections_for_run(Path(run_dir), name, top_k, top_fraction)
        sections.extend(run_sections)
        if summary:
            summaries.append(summary)
    if len(summaries) > 1:
        sections.insert(0, comparison_section(summaries))
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
    return [_claim(name, taken, key=lambda candidate: slug(candidate).casefold())
            for name in wanted]


def _write_files(sections: list[Section], out_dir: Path, title: str) -> ReportResult:
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
    html_path.write_text(html_page(sections, title, created), encoding="utf-8")
    pdf_path = out_dir / PDF_NAME
    write_pdf(sections, title, created, pdf_path)
    return ReportResult(html=html_path, pdf=pdf_path, tables=tables, figures=figures)


def _unique_names(sections: list[Section]) -> None:
    """Give every section a distinct anchor and every table and figure a distinct file stem, in
    report order (the runs' comparison comes first, so it keeps "runs-comparison")."""
    anchors: set[str] = set()
    stems: dict[str, set[str]] = {"table": set(), "figure": set()}
    for section in sections:
        section.anchor = _claim(slug(section.anchor), anchors)
        for block in section.blocks:
            block.stem = _claim(slug(block.name), stems[block.kind])


def _claim(name: str, taken: set[str], key=str.casefold) -> str:
    """``name``, or ``name-2``, ``name-3``... the first whose key is not taken yet (casefold by
    default: macOS and Windows file names ignore case); its key is then taken."""
    candidate, number = name, 1
    while key(candidate) in taken:
        number += 1
        candidate = f"{name}-{number}"
    taken.add(key(candidate))
    return candidate
