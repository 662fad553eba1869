"""What a report is made of: sections of blocks, each block a table or a figure with a caption,
and how a name and a cell are written (file-safe slugs, short cell text).

``analysis.report_sections`` makes the sections, ``analysis.report_render`` draws them as HTML and
PDF, ``analysis.report`` writes the files.
"""
from __future__ import annotations

import dataclasses
import math
import re
import unicodedata
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure


@dataclasses.dataclass
class Block:
    """One table or figure of a report, with its title and caption."""

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
class Section:
    """A part of a report (a run, or the runs' comparison): heading, summary and blocks."""

    title: str
    anchor: str
    summary: str = ""
    blocks: list[Block] = dataclasses.field(default_factory=list)


def cell_text(value: Any) -> str:
    """A value as a table cell shows it: numbers to 4 significant digits, booleans as yes/no,
    lists joined with commas, missing values empty."""
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
        return ", ".join(cell_text(item) for item in value)
    try:
        if pd.isna(value):
            return ""
    except (TypeError, ValueError):
        pass
    return str(value)


def slug(name: str) -> str:
    """``name`` as a file name and link anchor: ASCII letters, digits, ``_``, ``.`` and ``-``
    ("run" when nothing is left)."""
    # Accents dropped ("névé" -> "neve"), other non-ASCII letters become "-": file names and
    # links that work everywhere; analysis.report's ``_run_names`` and ``_unique_names`` keep
    # them apart.
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", ascii_name).strip("-") or "run"
