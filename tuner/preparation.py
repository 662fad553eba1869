"""The one preparation step of every process that runs a search's trials: a one-process search,
the chief of a parallel one, and each of its workers, local or remote.

``validate_search`` checks everything that can be checked without data (the space resolves,
imports and builds a compiled default model; the dataset exists and fits; the objective is one
of the model's metrics, inferred when not given). ``prepare_search`` then loads the data and makes
the HyperModel, through the space's hooks (``tuner.spaces.SearchHooks``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import keras_tuner as kt

import datasets
from datasets.splits import Dataset
from search_spaces import Space
from top_configs import plain_value
from tuner.config import InvalidSettingError, RunConfig, check_subset_size
from tuner.spaces import (SearchHooks, build_default_model, check_dataset, check_fixed,
                          check_space_fields, default_values, fixed_hyperparameters, hooks_for,
                          is_registered_dataset, make_hypermodel, placeholder_facts,
                          reported_metrics, resolve_objective, resolve_space)


@dataclasses.dataclass
class PreparedSearch:
    """What every process of a search needs before its first trial.

    Attributes:
        config: the run configuration, objective and space settings resolved.
        space: the resolved space; ``hooks``: its steps; ``state``: what its hooks share.
        data: the splits, as the space's models take them.
        hypermodel: the space's HyperModel for this data.
        fixed: the hyperparameters held fixed in every trial (None: none).
        default_values: the first trial's values (the space's default point with ``fixed``).
        record: what ``run.yaml`` keeps of the space's choices (polarity, a fine-tune's source).
        lines: progress lines about those choices.
    """

    config: RunConfig
    space: Space
    hooks: SearchHooks
    state: Any
    data: Dataset
    hypermodel: Any
    fixed: kt.HyperParameters | None
    default_values: dict[str, Any]
    record: dict[str, Any]
    lines: list[str]


def validate_search(config: RunConfig, force_direction: bool = False,
                    space: Space | None = None, data: Dataset | None = None) -> RunConfig:
    """Check everything about a search that can be checked without data; resolve the objective.

    The space must resolve and build a compiled model at its default point, the dataset must
    exist and fit the space, and the objective must be a metric the space's model reports
    (checked by building the default model once, symbolically: nothing is trained and nothing
    is read of the data beyond its shape).

    Args:
        space: the space itself when given from Python (default: resolved from ``config.space``).
        data: the data itself when given from Python (its shape and classes are used; default:
            ``config.dataset``'s, read cheaply).

    Raises:
        InvalidSettingError: what is wrong, what was expected and how to fix it.
    """
    space = space or resolve_space(config)
    hooks = hooks_for(space)
    check_space_fields(config, hooks)
    check_dataset(config, space, given=data is not None)
    shape, classes = ((data.input_shape, data.num_classes) if data is not None
                      else placeholder_facts(config))
    reported: list[str] | None = []
    for facts in hooks.validation_variants(config):
        hypermodel = make_hypermodel(config, space, shape, classes, **facts)
        model = build_default_model(config, hypermodel)
        if config.fixed:
            check_fixed(config, hypermodel)
        names = reported_metrics(hypermodel, model)
        if names is None:
            reported = None  # cannot tell without training: KerasTuner will say it
            break
        reported += [name for name in names if name not in reported]
    validation_names = None if reported is None else reported + [f"val_{n}" for n in reported]
    config = resolve_objective(config, force_direction, reported, space)
    if validation_names is not None and config.objective not in validation_names:
        raise InvalidSettingError(
            f"Objective '{config.objective}' is not a metric of the '{config.space}' space's "
            f"models; they report: {', '.join(sorted(validation_names))}. Pass one of those to "
            "--objective (validation metrics start with 'val_')."
        )
    return config


def load_dataset(config: RunConfig, data_dir=None, hooks: SearchHooks | None = None) -> Dataset:
    """The dataset of a run, split as the run configuration says (see ``load_data``).

    Raises:
        InvalidSettingError: ``subset`` asks for more examples than the dataset has, or leaves
            an empty training or validation split.
        datasets.DatasetError: the data cannot be found or read.
    """
    options = {}
    if is_registered_dataset(config.dataset):
        options = (hooks or hooks_for(resolve_space(config))).load_options(config)
    return load_data(config.dataset, config.target, data_dir, config.subset,
                     config.validation_fraction, config.seed, options)


def load_data(dataset: str, target: str | None = None, data_dir=None, subset=None,
              validation_fraction: float = 0.1, seed: int = 0,
              options: dict[str, Any] | None = None) -> Dataset:
    """A registered dataset by name, or the user's data at the path ``dataset`` (an .npz, a
    folder of class sub-folders of pictures, a .csv/.parquet with ``target``), split.

    Raises:
        InvalidSettingError: ``subset`` asks for more examples than the dataset has, or leaves
            an empty training or validation split.
        datasets.DatasetError: the data cannot be found or read.
    """
    if dataset in datasets.available_datasets():
        data = datasets.load(dataset, data_dir=data_dir, subset=subset, seed=seed,
                             validation_fraction=validation_fraction, **(options or {}))
    else:
        from datasets.user import load_user_data

        data = load_user_data(dataset, target, validation_fraction=validation_fraction,
                              subset=subset, seed=seed)
    check_subset_size(subset, data, dataset)
    return data


def prepare_search(config: RunConfig, data_dir=None, data: Dataset | None = None,
                   recorded: dict[str, Any] | None = None, space: Space | None = None,
                   state: Any = None, prepared_config: bool = False) -> PreparedSearch:
    """Load the data and make the HyperModel of a validated search.

    Args:
        config: validated by ``validate_search``.
        data_dir: where registered datasets are looked for first.
        data: the data already loaded (from Python); loaded from ``config`` when None.
        recorded: what the chief's ``run.yaml`` recorded of the space's choices; a worker passes
            it (``{}`` when there is none) to feed its data the same way.
        space: the space object given from Python (default: resolved from ``config.space``).
        state, prepared_config: a space state from an earlier ``hooks.prepare`` of this config.
    """
    space = space or resolve_space(config)
    hooks = hooks_for(space)
    if not prepared_config:
        config, state = hooks.prepare(config)
    if data is None:
        data = load_dataset(config, data_dir, hooks)
    data, record, lines = hooks.prepare_data(config, data, state, recorded)
    hypermodel = make_hypermodel(config, space, data.input_shape, data.num_classes,
                                 **hooks.hypermodel_facts(config, data, state))
    values = {**hooks.fixed_values(config, state), **config.fixed}
    fixed = fixed_hyperparameters(values) if values else None
    defaults = {k: plain_value(v) for k, v in default_values(hypermodel, fixed).items()}
    more, more_lines = hooks.run_record(config, hypermodel, state, fixed)
    return PreparedSearch(config=config, space=space, hooks=hooks, state=state, data=data,
                          hypermodel=hypermodel, fixed=fixed, default_values=defaults,
                          record={**record, **more}, lines=lines + more_lines)


def fit_arguments(prepared: PreparedSearch, callbacks: list) -> dict[str, Any]:
    """The arguments of ``tuner.search`` (data, epochs, callbacks) for a prepared search."""
    data, config = prepared.data, prepared.config
    return dict(
        x=data.x_train,
        y=data.y_train,
        validation_data=(data.x_val, data.y_val),
        epochs=config.max_epochs,
        callbacks=callbacks,
        verbose=0,
        **prepared.hooks.fit_arguments(prepared.hypermodel, data),
    )


def data_record(config: RunConfig, data: Dataset) -> dict[str, Any]:
    """What ``run.yaml`` keeps of the data: where it came from, its splits, and for a user's data
    a fingerprint of its content (a resume on changed data is refused)."""
    from tuner.spaces import data_fingerprint

    return {
        "fingerprint": data_fingerprint(config, data),
        "source": data.source,
        "description": data.description,
        "train": len(data.x_train),
        "validation": len(data.x_val),
        "test": len(data.x_test),
        "input_shape": list(data.input_shape),
        "num_classes": data.num_classes,
    }

