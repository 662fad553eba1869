"""The two renderings of a report's sections: a self-contained HTML page (figures embedded as PNG)
and an A4 landscape PDF, with every table's cells shown the same way in both.
"""
from __future__ import annotations

import base64
import html
import io
import math
import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.backends.backend_pdf import PdfPages  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from analysis.report_blocks import Block, Section, cell_text  # noqa: E402

PNG_DPI = 110           # sharp on screen, ~100-200 kB per figure: keeps a committed report light
PDF_PAGE = (11.69, 8.27)  # A4 landscape, inches: wide tables fit
PDF_FONT_SIZE = 7.0
PDF_LINE_CHARS = 190    # characters of 7 pt text across the page's usable width
PDF_COLUMN_CHARS = 46   # a column wider than this wraps
NO_ROWS = "(no rows)"


# ---------------------------------------------------------------- shown values
def _display(frame: pd.DataFrame) -> pd.DataFrame:
    """Every cell as short text: numbers to 4 significant digits, missing values empty."""
    return frame.astype(object).map(cell_text) if not frame.empty else frame.astype(object)


def _shown(block: Block) -> pd.DataFrame:
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


def html_page(sections: list[Section], title: str, created: str) -> str:
    """The report as one self-contained HTML page, figures embedded from their ``png`` bytes."""
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
def write_pdf(sections: list[Section], title: str, created: str, path: Path) -> None:
    """The report as a PDF at ``path``: a title page, then a page per figure and as many pages as
    each table needs (tables only linked as CSV are left out)."""
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


def _title_page(sections: list[Section], title: str, created: str) -> Figure:
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


def _figure_page(block: Block, heading: str, summary: str) -> Figure:
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


def _table_pages(block: Block, shown: pd.DataFrame, heading: str, summary: str) -> list[Figure]:
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
