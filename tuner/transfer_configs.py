"""Which configurations a transfer retrains: read from tune run directories and YAML files,
checked against their search spaces before any data is loaded, keyed by what they are
(``config_id``), and joined by the textbook model of each space as a baseline.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path
from typing import Callable, Sequence

from top_configs import TopConfig, TopConfigError, hyperparameters_for, plain_value, read_top_config
from tuner import rundir
from tuner.config import InvalidSettingError, RunConfigError, read_run_config
from tuner.results import completed_ranking, read_trials
from tuner.rundir import TOP_DIR
from tuner.spaces import default_values, hooks_for, resolve_space


def config_id(config: TopConfig) -> str:
    """What a transfer row is keyed by: the trial id and a hash of the configuration itself, so
    that a source whose rank_2 changed (a resumed search) never averages two models."""
    values = {name: plain_value(value) for name, value in config.hyperparameters.items()}
    text = json.dumps([config.search_space, config.head, values], sort_keys=True, default=str)
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:10]
    return f"{config.trial_id or 'textbook'}-{digest}"


def collect_configs(sources: Sequence[str | os.PathLike]) -> list[tuple[str, TopConfig]]:
    """(name, config) pairs from tune run directories and/or YAML files, in the order given.

    Raises:
        TopConfigError: a source is neither a run directory with exported configurations nor a
            readable configuration file.
    """
    configs: list[tuple[str, TopConfig]] = []
    stems = [Path(source).stem for source in sources if not Path(source).is_dir()]
    for source in sources:
        path = Path(source)
        if path.is_dir():
            files = sorted((path / TOP_DIR).glob("rank_*.yaml"),
                       key=lambda file: rundir.trial_sort_key(file.stem[len("rank_"):]))
            if not files:
                raise TopConfigError(
                    f"{path} holds no {TOP_DIR}/rank_*.yaml: pass a run directory written by "
                    "`hpsearch tune` (with at least one completed trial) or YAML files."
                )
            prefix = f"{path.name}/" if len(sources) > 1 else ""
            configs += [
                (f"{prefix}rank_{read_top_config(f).rank}", read_top_config(f)) for f in files
            ]
        else:
            # Files of the same name from two folders (a/rank_1.yaml, b/rank_1.yaml) keep their
            # folder's name: every row and its ensemble stay apart.
            folder = path.parent.parent if path.parent.name == TOP_DIR else path.parent
            name = path.stem if stems.count(path.stem) == 1 else f"{folder.name}/{path.stem}"
            configs.append((name, read_top_config(path)))
    for name, config in configs:
        # Check names, types and ranges now, before any data is loaded or model trained. The
        # hyperparameters of a space do not depend on the input shape.
        hyperparameters_for(config, hypermodel_for(config, name, (32, 32, 3), 10), source=name)
    return configs


def hypermodel_for(config: TopConfig, name: str, input_shape, num_classes):
    """The HyperModel of a configuration's space for data of that shape and classes.

    Raises:
        TopConfigError: the space cannot be resolved, or it is one whose models transfer does
            not retrain (its hooks say where to go instead).
    """
    try:
        space = resolve_space(config.search_space)
    except InvalidSettingError as error:
        raise TopConfigError(f"{name} cannot be rebuilt: {error} Retrain it with the code that "
                             "defined it, or make that code importable again.") from None
    refusal = hooks_for(space).transfer_refusal
    if refusal:
        raise TopConfigError(f"{name} is a '{config.search_space}' configuration: {refusal}")
    try:
        return space.make(config.space_args, input_shape=input_shape, num_classes=num_classes)
    except ValueError as error:
        raise TopConfigError(f"{name} cannot be rebuilt for {input_shape}: {error}") from None


def _textbook_config(like: TopConfig, hypermodel, source_score: float) -> TopConfig:
    """The default point (hpsearch's classifiers: the textbook model) of ``like``'s space."""
    return TopConfig(
        rank=0,
        search_space=like.search_space,
        dataset=like.dataset,
        objective=like.objective,
        direction=like.direction,
        score=source_score,
        trial_id="",
        epochs=0,
        hyperparameters=default_values(hypermodel),
        space_args=dict(like.space_args),
    )


def _textbook_score(sources: Sequence[str | os.PathLike], space: str) -> float:
    """The textbook model's best score in a source run of that space, in that run's direction
    (NaN if none)."""
    for source in sources:
        path = Path(source)
        if not path.is_dir():
            continue
        try:
            config, _ = read_run_config(path)
        except RunConfigError:
            continue
        if config.space != space:
            continue
        trials = read_trials(path)
        ranking = completed_ranking(trials[trials["is_textbook"]], config.direction or "max")
        if not ranking.empty:
            return float(ranking["score"].iloc[0])
    return math.nan


def add_textbook_configs(configs: list[tuple[str, TopConfig]],
                         sources: Sequence[str | os.PathLike], input_shape, num_classes,
                         progress: Callable[[str], None]) -> None:
    """Append to ``configs`` the textbook model of each space they come from, named after the
    space's baseline, unless one of them is that model already (``progress`` says so)."""
    for space in dict.fromkeys(config.search_space for _, config in configs):
        like = next(c for _, c in configs if c.search_space == space)
        hypermodel = hypermodel_for(like, space, input_shape, num_classes)
        baseline = resolve_space(space).attribute("baseline_name", "default")
        name = (
            baseline
            if len({c.search_space for _, c in configs}) == 1
            else f"{baseline}_{space}"
        )
        textbook = _textbook_config(like, hypermodel, _textbook_score(sources, space))
        same = [
            n
            for n, c in configs
            if c.search_space == space and c.hyperparameters == textbook.hyperparameters
        ]
        if same:
            # Training the same configuration twice would only measure seed noise.
            progress(f"{same[0]} is the {baseline} model itself: no separate {baseline} "
                     "row.")
        else:
            configs.append((name, textbook))
