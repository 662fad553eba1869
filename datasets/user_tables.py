"""A user's ``.csv`` or ``.parquet`` table -> arrays: numeric feature columns and a target
column of labels. pandas is imported only when a table is read."""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from datasets.errors import DatasetError, DatasetFormatError
from datasets.user_arrays import _ARRAY_KEYS, _num_classes

TABLE_EXTENSIONS = (".csv", ".parquet")


def _read_table_file(path: Path, columns: list[str] | None = None, header_only: bool = False):
    # pandas takes a while to import and only tables need it.
    import pandas as pd

    try:
        if path.suffix.lower() == ".csv":
            return pd.read_csv(path, usecols=columns, nrows=0 if header_only else None)
        return pd.read_parquet(path, columns=columns)
    except ImportError as error:
        raise DatasetError(
            f"Reading the parquet table '{path}' needs a parquet engine, and none is installed "
            f"({error}). Install one with `pip install pyarrow`, or save the table as CSV."
        ) from error
    except (OSError, ValueError, UnicodeDecodeError, pd.errors.ParserError) as error:
        raise DatasetFormatError(f"Cannot read the table '{path}' ({error}).") from error


def _check_target_column(path: Path, target: str | None, columns: Sequence[str]) -> str:
    listed = ", ".join(str(column) for column in columns)
    if target is None:
        raise DatasetFormatError(
            f"A table needs --target to name its label column; '{path}' has the columns: {listed}."
        )
    if target not in columns:
        close = difflib.get_close_matches(target, [str(column) for column in columns], n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise DatasetFormatError(
            f"No column '{target}' (--target) in '{path}'; its columns are: {listed}.{hint}"
        )
    if len(columns) < 2:
        raise DatasetFormatError(
            f"'{path}' has only the target column '{target}': there are no feature columns."
        )
    return target


def _encode_target(series) -> tuple[np.ndarray, tuple[str, ...]]:
    """Numeric targets as given; strings and categories -> ids of their sorted distinct values."""
    import pandas as pd

    if pd.api.types.is_bool_dtype(series.dtype):
        return series.to_numpy(dtype=np.int64), ()
    if pd.api.types.is_integer_dtype(series.dtype):
        return series.to_numpy(dtype=np.int64), ()
    if pd.api.types.is_float_dtype(series.dtype):
        return series.to_numpy(dtype=np.float32), ()
    distinct = list(pd.unique(series.to_numpy(dtype=object)))
    try:
        distinct.sort()
    except TypeError:
        # Mixed types (numbers and text) have no order of their own: order them as text.
        distinct.sort(key=str)
    ids = {value: index for index, value in enumerate(distinct)}
    labels = np.array([ids[value] for value in series.to_numpy(dtype=object)], dtype=np.int64)
    return labels, tuple(str(value) for value in distinct)


def _read_table(
    path: Path, target: str | None
) -> tuple[dict[str, np.ndarray | None], tuple[str, ...], list[str]]:
    import pandas as pd

    table = _read_table_file(path)
    target = _check_target_column(path, target, list(table.columns))
    features = [column for column in table.columns if column != target]
    not_numeric = [
        f"'{column}' ({table[column].dtype})"
        for column in features
        if not pd.api.types.is_numeric_dtype(table[column].dtype)
    ]
    if not_numeric:
        raise DatasetFormatError(
            f"Feature columns must be numeric; in '{path}' these are not: "
            f"{', '.join(not_numeric)}. Encode them as numbers (e.g. pandas.get_dummies for "
            "categories) or drop them."
        )
    missing = table.isna().sum()
    missing = missing[missing > 0]
    if len(missing):
        counts = ", ".join(f"'{column}' {int(count)}" for column, count in missing.items())
        raise DatasetFormatError(
            f"'{path}' has missing values: {counts}. Fill them (e.g. DataFrame.fillna) or drop "
            "those rows (DataFrame.dropna)."
        )
    labels, class_names = _encode_target(table[target])
    parts: dict[str, np.ndarray | None] = {key: None for key in _ARRAY_KEYS}
    parts["x_train"] = table[features].to_numpy(dtype=np.float32)
    parts["y_train"] = labels
    notes = [f"{len(features)} feature columns, target '{target}'"]
    return parts, class_names, notes


def _peek_table(path: Path, target: str | None) -> dict:
    # A CSV's header names the columns; parquet has no cheaper way here than reading the table.
    columns = list(_read_table_file(path, header_only=True).columns)
    target = _check_target_column(path, target, columns)
    labels, class_names = _encode_target(_read_table_file(path, columns=[target])[target])
    return {
        "kind": "table",
        "input_shape": (len(columns) - 1,),
        "num_classes": _num_classes([labels], class_names),
        "examples": len(labels),
    }
