"""The YAML format of an exported configuration, its reader, writer and validation.

One file per configuration (``rank_1.yaml``...)::

    format: hpsearch-top-config/1
    rank: 1
    search_space: mlp
    dataset: fashion_mnist
    objective: val_accuracy
    direction: max
    score: 0.8851
    trial_id: '0021'
    epochs: 6
    head: null                 # clock search space only
    init_from: runs/clock-75   # only for a fine-tune's search (clock): the run it started from
    hyperparameters:
      num_layers: 2
      units_0: 300
      ...

Values are plain Python types (int, float, str, bool), never numpy scalars, and KerasTuner's
internal ``tuner/*`` keys are not part of a configuration. Writing then reading gives back an equal
``TopConfig``.
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path
from typing import Any

import yaml

from tuner.errors import HpsearchError

FORMAT = "hpsearch-top-config/1"
_REQUIRED = {
    "rank": int,
    "search_space": str,
    "dataset": str,
    "objective": str,
    "direction": str,
    "score": float,
    "trial_id": str,
    "epochs": int,
    "hyperparameters": dict,
}


class TopConfigError(HpsearchError, ValueError):
    """A configuration file is unreadable, incomplete, or does not fit its search space."""


@dataclasses.dataclass(frozen=True)
class TopConfig:
    """One of the best configurations of a search, as exported to YAML."""

    rank: int
    search_space: str
    dataset: str
    objective: str
    direction: str
    score: float
    trial_id: str
    epochs: int
    hyperparameters: dict[str, Any]
    head: str | None = None
    # A fine-tune's search: the trained run its trials started from (written only when set).
    init_from: str | None = None
    # The constructor arguments of the space's HyperModel class (``--space-arg``; written only
    # when set): part of what rebuilds the model.
    space_args: dict[str, Any] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        document = {"format": FORMAT}
        document.update(dataclasses.asdict(self))
        if self.init_from is None:
            del document["init_from"]
        if not self.space_args:
            del document["space_args"]
        return document


def plain_value(value: Any) -> Any:
    """numpy scalars and other number types -> int / float / bool / str for YAML."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if hasattr(value, "item") and not isinstance(value, (list, dict)):
        value = value.item()
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    return value


def strip_internal_keys(values: dict[str, Any]) -> dict[str, Any]:
    """Drop KerasTuner's bookkeeping keys (``tuner/epochs``, ``tuner/trial_id``...)."""
    return {
        name: plain_value(value) for name, value in values.items() if not name.startswith("tuner/")
    }


def write_top_config(path: str | os.PathLike, config: TopConfig) -> Path:
    """Write one configuration as YAML (atomically) and return its path."""
    path = Path(path)
    document = config.to_dict()
    document["score"] = plain_value(document["score"])
    document["hyperparameters"] = strip_internal_keys(document["hyperparameters"])
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(yaml.safe_dump(document, sort_keys=False))
    os.replace(temporary, path)
    return path


_TRIAL_ID = re.compile(r"[A-Za-z0-9_-]*")
# A number in scientific notation without a decimal point: YAML 1.1 (PyYAML) reads "1e-3" as a
# string, where a user means the number.
_EXPONENT_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def yaml_scalar(value: Any) -> Any:
    """A scalar as PyYAML read it, with "1e-3"-like strings read as the floats they spell."""
    if isinstance(value, str) and _EXPONENT_NUMBER.fullmatch(value.strip()):
        return float(value)
    return value


def read_top_config(path: str | os.PathLike) -> TopConfig:
    """Read and check one configuration file.

    Raises:
        TopConfigError: the file is missing, not YAML, or a field is missing or of the wrong type;
            the message names the file and the field.
    """
    path = Path(path)
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise TopConfigError(
            f"{path} is not a text file: expected a top-configuration YAML file such as "
            "top_configs/rank_1.yaml."
        ) from None
    except OSError as error:
        raise TopConfigError(f"Cannot read {path}: {error.strerror or error}.") from None
    except yaml.YAMLError as error:
        raise TopConfigError(f"{path} is not valid YAML: {error}") from None
    if not isinstance(document, dict):
        raise TopConfigError(
            f"{path} should hold a mapping of configuration fields, found {type(document).__name__}."
        )
    if document.get("format", FORMAT) != FORMAT:
        raise TopConfigError(f"{path}: format is {document['format']!r}, expected {FORMAT!r}.")
    missing = [key for key in _REQUIRED if key not in document]
    if missing:
        raise TopConfigError(f"{path} is missing the field(s) {', '.join(missing)}.")
    fields = {}
    for key, expected in _REQUIRED.items():
        value = document[key]
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if expected is str and isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, expected) or isinstance(value, bool):
            raise TopConfigError(
                f"{path}: field '{key}' should be {expected.__name__}, got {value!r} "
                f"({type(value).__name__})."
            )
        fields[key] = value
    if fields["direction"] not in ("max", "min"):
        raise TopConfigError(
            f"{path}: field 'direction' should be 'max' or 'min', got {fields['direction']!r}."
        )
    optional = {}
    for key in ("head", "init_from"):
        value = optional[key] = document.get(key)
        if value is not None and not isinstance(value, str):
            raise TopConfigError(f"{path}: field '{key}' should be a string or null, got {value!r}.")
    space_args = document.get("space_args") or {}
    if not isinstance(space_args, dict) or not all(isinstance(k, str) for k in space_args):
        raise TopConfigError(f"{path}: field 'space_args' should map argument names to values, "
                             f"got {space_args!r}.")
    optional["space_args"] = space_args
    if not _TRIAL_ID.fullmatch(fields["trial_id"]):
        # It names files (predictions, models): a path in it would write outside the run.
        raise TopConfigError(
            f"{path}: field 'trial_id' should be letters, digits, '-' and '_' (a KerasTuner "
            f"trial id such as '0012'), got {fields['trial_id']!r}.")
    if fields["epochs"] < 0:
        raise TopConfigError(
            f"{path}: field 'epochs' should be 0 (the default) or more, got {fields['epochs']}."
        )
    hyperparameters = {}
    for name, value in fields["hyperparameters"].items():
        if not isinstance(name, str):
            raise TopConfigError(
                f"{path}: hyperparameter names should be text, got {name!r} "
                f"({type(name).__name__}) under 'hyperparameters'."
            )
        value = yaml_scalar(value)
        if not isinstance(value, (int, float, str, bool)):
            raise TopConfigError(
                f"{path}: hyperparameter '{name}' should be a number, string or boolean, got {value!r}."
            )
        hyperparameters[name] = value
    fields["hyperparameters"] = hyperparameters
    return TopConfig(**optional, **fields)
