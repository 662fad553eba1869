"""Per-hyperparameter analysis: which values the best trials used, a reasonable range, importance.

Everything here is pure: a trials table (``tuner.results.read_trials``) and a search space
(``tuner.results.read_search_space``) in, a DataFrame out. Conditional hyperparameters are NaN in
the trials table where inactive; those trials are left out of that hyperparameter's statistics
(never counted as zeros), and the tables say how many trials had it active.
"""
from __future__ import annotations

import math
from typing import Any, Iterable

import numpy as np
import pandas as pd

from tuner.results import completed_ranking, hyperparameter_columns

DEFAULT_TOP_K = 5
# Numeric values are grouped into equal-count bins of about this many trials (at most 10 bins) for
# the importance estimate: more bins follow the score's shape better, fewer trials per bin make
# the group means noisy.
TRIALS_PER_BIN = 6
MAX_IMPORTANCE_BINS = 10
# Fewer distinct values than this and an Int/ordered hyperparameter is grouped by value, not binned.
MAX_GROUPS_BY_VALUE = 8
# Fewer active trials than this, or fewer trials than groups plus this margin: importance is NaN.
MIN_IMPORTANCE_TRIALS = 6
MIN_SPARE_TRIALS = 3
# A suggested range reaches this share of the top trials' spread beyond them on each side.
RANGE_MARGIN = 0.1

RANGE_COLUMNS = ["hyperparameter", "type", "scale", "searched", "condition", "active_trials",
                 "top_trials", "top_values", "best_value", "suggested", "suggested_low",
                 "suggested_high", "importance"]


def ranked_configurations(trials: pd.DataFrame, direction: str) -> pd.DataFrame:
    """Completed trials with a finite score, best first, one row per distinct configuration.

    A Hyperband trial promoted to a later round repeats its parent's hyperparameters with a larger
    budget; only the configuration's best-scoring trial is kept so that it counts once.

    Args:
        trials: a trials table.
        direction: "max" or "min", the objective's direction.
    """
    _check_direction(direction)
    ranking = completed_ranking(trials, direction)
    names = hyperparameter_columns(ranking)
    if ranking.empty or not names:
        return ranking
    keys = ranking[names].astype(str)  # NaN (inactive) and values compare as text
    return ranking[~keys.duplicated(keep="first")]


def top_trials(trials: pd.DataFrame, direction: str, top_k: int = DEFAULT_TOP_K,
               top_fraction: float | None = None) -> pd.DataFrame:
    """The best configurations (see ``ranked_configurations``), best first.

    Args:
        trials: a trials table.
        direction: "max" or "min".
        top_k: how many configurations to keep (default 5).
        top_fraction: when given, keep this share of the configurations instead (at least one),
            e.g. 0.2 for the best fifth.
    """
    ranking = ranked_configurations(trials, direction)
    return ranking.head(top_count(len(ranking), top_k, top_fraction))


def top_count(completed: int, top_k: int = DEFAULT_TOP_K, top_fraction: float | None = None) -> int:
    """How many of ``completed`` configurations count as the top ones."""
    if top_fraction is not None:
        if not 0.0 < top_fraction <= 1.0:
            raise ValueError(f"top_fraction must be in (0, 1], got {top_fraction}.")
        return min(completed, max(1, math.ceil(top_fraction * completed)))
    if top_k < 1:
        raise ValueError(f"top_k must be at least 1, got {top_k}.")
    return min(completed, top_k)


def infer_search_space(trials: pd.DataFrame) -> list[dict[str, Any]]:
    """A search space guessed from the values in a trials table (for tables without
    ``search_space.json``): numbers become linear Floats over the values seen, the rest Choices."""
    specs = []
    for name in hyperparameter_columns(trials):
        values = trials[name].dropna()
        if values.map(lambda v: isinstance(v, (bool, np.bool_))).all() and len(values):
            specs.append({"name": name, "type": "Boolean", "conditions": []})
        elif len(values) and pd.api.types.is_numeric_dtype(pd.to_numeric(values, errors="coerce")) \
                and pd.to_numeric(values, errors="coerce").notna().all():
            numbers = pd.to_numeric(values)
            specs.append({"name": name, "type": "Float", "min_value": float(numbers.min()),
                          "max_value": float(numbers.max()), "step": None, "sampling": "linear",
                          "conditions": []})
        else:
            specs.append({"name": name, "type": "Choice", "values": list(pd.unique(values)),
                          "ordered": False, "conditions": []})
    return specs


def active_mask(trials: pd.DataFrame, spec: dict[str, Any],
                space: Iterable[dict[str, Any]] | None = None) -> pd.Series:
    """Where a hyperparameter was active: it has a value and every condition on it (and on its
    parents, recursively) holds."""
    by_name = {item["name"]: item for item in (space or [])}
    return _active_mask(trials, spec, by_name, depth=0)


def _active_mask(trials, spec, by_name, depth) -> pd.Series:
    name = spec["name"]
    if name not in trials.columns:
        return pd.Series(False, index=trials.index)
    mask = trials[name].notna()
    if depth > 20:  # a condition cycle cannot come from KerasTuner; stop, never recurse forever
        return mask
    for condition in spec.get("conditions") or []:
        parent = condition["name"]
        if parent not in trials.columns:
            continue
        allowed = condition["values"]
        mask &= trials[parent].map(lambda value: _is_in(value, allowed))
        if parent in by_name:
            mask &= _active_mask(trials, by_name[parent], by_name, depth + 1)
    return mask


def _is_in(value: Any, allowed: list[Any]) -> bool:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return False
    for candidate in allowed:
        if isinstance(value, (int, float, np.number)) and isinstance(candidate, (int, float)) \
                and not isinstance(candidate, bool):
            if float(value) == float(candidate):
                return True
        elif value == candidate:
            return True
    return False


def importance(scores: pd.Series, values: pd.Series, spec: dict[str, Any]) -> float:
    """Share of the score's variance explained by one hyperparameter, in [0, 1].

    Estimator: Kelley's epsilon-squared, the bias-corrected correlation ratio of a one-way
    analysis of variance, ``(SS_between - (k - 1) * MS_within) / SS_total`` clipped at 0, of the
    scores' ranks (so one diverged trial cannot decide the importance on its own), where the
    groups are the hyperparameter's values (Choice, Boolean, Int with few values) or equal-count
    bins of its values on its own scale (log or linear), one per 6 trials, 2 to 10 bins, that
    never split equal values (a value tried in most trials is one group). Unlike
    the raw correlation
    ratio it does not reward a hyperparameter for splitting few trials into many groups. It is a
    marginal share: interactions are not attributed, so importances need not sum to 1.

    Args:
        scores: the scores of the trials where the hyperparameter was active.
        values: its values in those trials (no NaN).
        spec: its search-space entry (``type``, ``sampling``).

    Returns:
        The importance, or NaN when there is too little to tell (fewer than 6 trials, one value,
        or fewer than 3 trials more than groups).
    """
    scores = pd.to_numeric(pd.Series(scores), errors="coerce").rank().to_numpy(dtype=float)
    groups = _importance_groups(pd.Series(values).reset_index(drop=True), spec)
    if groups is None or len(scores) < MIN_IMPORTANCE_TRIALS:
        return math.nan
    groups = pd.Series(groups).astype(str).to_numpy()
    labels = pd.unique(groups)
    count, group_count = len(scores), len(labels)
    if group_count < 2 or count - group_count < MIN_SPARE_TRIALS:
        return math.nan
    mean = scores.mean()
    total = float(((scores - mean) ** 2).sum())
    if total == 0.0:
        return 0.0
    between = sum(
        (groups == label).sum() * (scores[groups == label].mean() - mean) ** 2 for label in labels
    )
    within = total - between
    epsilon_squared = (between - (group_count - 1) * within / (count - group_count)) / total
    return float(min(max(epsilon_squared, 0.0), 1.0))


def _importance_groups(values: pd.Series, spec: dict[str, Any]):
    if values.empty or values.nunique() < 2:
        return None
    if spec["type"] in ("Choice", "Boolean", "Fixed") or _few_integers(spec):
        return values.astype(str)
    numbers = _on_scale(pd.to_numeric(values, errors="coerce").astype(float), spec)
    bins = max(2, min(MAX_IMPORTANCE_BINS, len(numbers) // TRIALS_PER_BIN))
    return _equal_count_bins(numbers, bins)


def _equal_count_bins(numbers: pd.Series, bins: int) -> pd.Series:
    # Equal values always share a bin: the rows arrive best first, so a tie split between bins
    # would be split by score and make a hyperparameter look important that never changed. Each
    # distinct value goes to the bin holding the middle of its run of ranks, so with few distinct
    # values this is grouping by value, and with all values distinct it is equal-count binning.
    counts = numbers.value_counts().sort_index()
    middles = counts.cumsum() - counts / 2
    bin_of_value = np.minimum((middles / len(numbers) * bins).astype(int), bins - 1)
    return numbers.map(bin_of_value)


def _few_integers(spec) -> bool:
    if spec["type"] != "Int" or spec.get("sampling") == "log" or "max_value" not in spec:
        return False
    step = spec.get("step") or 1
    return (spec["max_value"] - spec["min_value"]) / step + 1 <= MAX_GROUPS_BY_VALUE


def _on_scale(numbers, spec):
    if spec.get("sampling") == "log":
        return np.log(numbers.clip(lower=np.finfo(float).tiny))
    return numbers


def _from_scale(number: float, spec: dict[str, Any]) -> float:
    return float(np.exp(number)) if spec.get("sampling") == "log" else float(number)


def range_table(trials: pd.DataFrame, space: list[dict[str, Any]] | None, direction: str,
                top_k: int = DEFAULT_TOP_K, top_fraction: float | None = None) -> pd.DataFrame:
    """One row per hyperparameter: what was searched, what the top trials used, a suggested
    reasonable range and the importance.

    Columns: ``hyperparameter``, ``type``, ``scale`` (linear, log or categorical), ``searched``
    (range or choices), ``condition`` (when it is active), ``active_trials`` (ranked configurations
    where it was active), ``top_trials`` (top configurations where it was active), ``top_values``
    (their values), ``best_value`` (the best configuration's; "inactive" when it did not use it),
    ``suggested`` (text), ``suggested_low``/``suggested_high`` (numbers; NaN for choices),
    ``importance`` (see ``importance``).

    The suggested range covers the top configurations' values widened by 10% of their spread on
    the hyperparameter's own scale (log or linear), rounded outward and kept inside the searched
    range; for choices it is the choices the top configurations used, most used first (ordered
    choices: the run between the smallest and largest used).

    Args:
        trials: a trials table; failed and running trials are ignored, never an error.
        space: ``read_search_space``'s list; None: inferred from the table (``infer_search_space``).
        direction: "max" or "min".
        top_k: number of top configurations (default 5).
        top_fraction: when given, the share of configurations that are top instead of ``top_k``.
    """
    _check_direction(direction)
    space = list(space) if space else infer_search_space(trials)
    ranking = ranked_configurations(trials, direction)
    top = ranking.head(top_count(len(ranking), top_k, top_fraction))
    rows = []
    for spec in space:
        rows.append(_range_row(spec, space, ranking, top))
    return pd.DataFrame(rows, columns=RANGE_COLUMNS)


def _range_row(spec, space, ranking, top) -> dict[str, Any]:
    name, kind = spec["name"], spec["type"]
    row = {"hyperparameter": name, "type": kind, "scale": _scale(spec), "searched": _searched(spec),
           "condition": _condition_text(spec), "active_trials": 0, "top_trials": 0,
           "top_values": "", "best_value": "", "suggested": "", "suggested_low": math.nan,
           "suggested_high": math.nan, "importance": math.nan}
    if name not in ranking.columns or ranking.empty:
        row["best_value"] = "not tried"
        return row
    active = active_mask(ranking, spec, space)
    top_active = active.loc[top.index]
    row["active_trials"] = int(active.sum())
    row["top_trials"] = int(top_active.sum())
    best_index = ranking.index[0]
    row["best_value"] = _format_value(ranking.at[best_index, name]) if active.loc[best_index] \
        else "inactive"
    top_values = top.loc[top_active, name]
    if kind == "Fixed":
        row["suggested"] = _format_value(spec.get("value"))
    elif top_values.empty:
        row["top_values"] = "inactive in all top trials"
    elif _is_numeric(spec):
        numbers = pd.to_numeric(top_values).astype(float)
        if numbers.min() == numbers.max():
            row["top_values"] = _format_value(numbers.min())
        else:
            row["top_values"] = (f"{_format_value(numbers.min())} – {_format_value(numbers.max())}"
                                 f" (median {_format_value(numbers.median())})")
        low, high = _suggested_range(numbers, spec)
        row["suggested_low"], row["suggested_high"] = low, high
        row["suggested"] = f"{_format_value(low)} – {_format_value(high)}" + (
            ", log" if spec.get("sampling") == "log" else "")
    else:
        counts = top_values.map(_format_value).value_counts(sort=True)
        row["top_values"] = ", ".join(f"{value} ×{count}" for value, count in counts.items())
        row["suggested"] = ", ".join(_suggested_choices(top_values, spec, counts))
    scores = ranking.loc[active, "score"]
    row["importance"] = importance(scores, ranking.loc[active, name], spec) if kind != "Fixed" \
        else math.nan
    return row


def _is_numeric(spec) -> bool:
    return spec["type"] in ("Int", "Float")


def _scale(spec) -> str:
    if _is_numeric(spec):
        return spec.get("sampling") or "linear"
    if spec["type"] == "Fixed":
        return "fixed"
    if spec["type"] == "Choice" and spec.get("ordered"):
        return "ordered"
    return "categorical"


def _searched(spec) -> str:
    kind = spec["type"]
    if _is_numeric(spec):
        text = f"{_format_value(spec['min_value'])} – {_format_value(spec['max_value'])}"
        if spec.get("step") and not (kind == "Int" and spec["step"] == 1):
            text += f", step {_format_value(spec['step'])}"
        return text + (", log" if spec.get("sampling") == "log" else "")
    if kind == "Boolean":
        return "False, True"
    if kind == "Fixed":
        return f"fixed: {_format_value(spec.get('value'))}"
    return ", ".join(_format_value(value) for value in spec.get("values", []))


def _condition_text(spec) -> str:
    parts = []
    for condition in spec.get("conditions") or []:
        values = ", ".join(_format_value(value) for value in condition["values"])
        parts.append(f"{condition['name']} in {{{values}}}")
    return " and ".join(parts)


def _suggested_range(numbers: pd.Series, spec) -> tuple[float, float]:
    scaled = _on_scale(numbers, spec)
    low, high = float(scaled.min()), float(scaled.max())
    searched_low = spec.get("min_value", _from_scale(low, spec))
    searched_high = spec.get("max_value", _from_scale(high, spec))
    spread = high - low
    if spread == 0.0:
        bounds = _on_scale(pd.Series([float(searched_low), float(searched_high)]), spec)
        # One value: widen by a tenth of the searched span in all.
        spread = float(bounds.iloc[1] - bounds.iloc[0]) / 2
    low = _from_scale(low - RANGE_MARGIN * spread, spec)
    high = _from_scale(high + RANGE_MARGIN * spread, spec)
    low, high = _round_outward(low, high, spec)
    return max(low, float(searched_low)), min(high, float(searched_high))


def _round_outward(low: float, high: float, spec) -> tuple[float, float]:
    step = spec.get("step")
    if spec["type"] == "Int":
        step = step or 1
    if step and spec.get("sampling") != "log":
        origin = float(spec.get("min_value", 0.0))
        low = origin + math.floor(round((low - origin) / step, 9)) * step
        high = origin + math.ceil(round((high - origin) / step, 9)) * step
        return _tidy(low, spec), _tidy(high, spec)
    if spec["type"] == "Int":
        return float(math.floor(low)), float(math.ceil(high))
    return _round_significant(low, math.floor), _round_significant(high, math.ceil)


def _tidy(number: float, spec) -> float:
    return float(round(number)) if spec["type"] == "Int" else float(round(number, 10))


def _round_significant(number: float, rounding, digits: int = 2) -> float:
    if number == 0.0 or not math.isfinite(number):
        return number
    scale = 10 ** (math.floor(math.log10(abs(number))) - digits + 1)
    return float(round(rounding(round(number / scale, 9)) * scale, 12))


def _suggested_choices(top_values: pd.Series, spec, counts: pd.Series) -> list[str]:
    choices = spec.get("values") or []
    if spec["type"] == "Choice" and spec.get("ordered") and choices:
        positions = [i for i, choice in enumerate(choices)
                     if any(_is_in(value, [choice]) for value in top_values)]
        if positions:
            return [_format_value(choice) for choice in choices[min(positions):max(positions) + 1]]
    return list(counts.index)


def _format_value(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        number = float(value)
        if number.is_integer() and abs(number) < 1e6:
            return str(int(number))
        return f"{number:.3g}"
    return str(value)


def _check_direction(direction: str) -> None:
    if direction not in ("max", "min"):
        raise ValueError(f"direction must be 'max' or 'min', got {direction!r}.")
