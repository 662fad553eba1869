"""The search core's view of a space: resolve it, make its HyperModel for the data, check the
settings against it, infer its objective, and tell whether its source changed since a run began.

Nothing here knows a space by name: hpsearch's own spaces and a user's ``build_model(hp)`` go
through the same calls. A space class may declare, as class attributes, ``objective`` (a
``(metric, direction)`` pair it is searched for unless told otherwise) and ``required_dataset``
(the one registered dataset it trains on).
"""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path
from typing import Any

import keras_tuner as kt
import numpy as np

import datasets
import search_spaces
from search_spaces import Space, SpaceError
from top_configs.space import value_problem
from tuner import rundir
from tuner.config import InvalidSettingError, RunConfig, implied_direction
from tuner.errors import HpsearchError

# Input shape and classes a registered dataset's space is built with to check settings before any
# data is read; the metric names a model reports do not depend on them.
_PLACEHOLDER_DATA = {"fashion_mnist": ((28, 28, 1), 10), "cifar10": ((32, 32, 3), 10),
                     "clock": ((75, 75, 1), None)}


class SpaceChangedError(HpsearchError):
    """A resumed search whose space's source changed since its trials were run."""


def resolve_space(config_or_reference: RunConfig | Any) -> Space:
    """The space a run configuration (or a reference) names.

    Raises:
        InvalidSettingError: it cannot be resolved or imported (the message says why).
    """
    reference = getattr(config_or_reference, "space", config_or_reference)
    try:
        return search_spaces.resolve(reference)
    except SpaceError as error:
        raise InvalidSettingError(str(error)) from None


def resolve_recorded_space(config: RunConfig, document: dict[str, Any]) -> Space:
    """The space of a run from its ``run.yaml``: as its reference says, or, where a file
    reference was relative to another working directory (a worker started elsewhere), from the
    file run.yaml recorded.

    Raises:
        InvalidSettingError: neither resolves.
    """
    try:
        return resolve_space(config)
    except InvalidSettingError:
        recorded = (document.get("space") or {}).get("source_file")
        location, _, name = str(config.space).rpartition(":")
        if not (recorded and location.endswith(".py") and Path(recorded).is_file()):
            raise
        space = resolve_space(f"{recorded}:{name}")
        return dataclasses.replace(space, reference=config.space)


def is_registered_dataset(name: str) -> bool:
    return name in datasets.available_datasets()


def check_dataset(config: RunConfig, space: Space, given: bool = False) -> None:
    """The dataset is a registered name or a path to the user's data (or, ``given``, data handed
    over from Python under that name), and fits the space.

    Raises:
        InvalidSettingError: neither a known name nor an existing path; ``--target`` without a
            table; a space that trains on one dataset only given another.
    """
    registered = is_registered_dataset(config.dataset)
    if not registered and not given and not Path(config.dataset).exists():
        raise InvalidSettingError(
            f"Unknown dataset '{config.dataset}': neither one of "
            f"{', '.join(datasets.available_datasets())} nor an existing file or folder. Pass "
            "--dataset NAME, or --data PATH (an .npz, a folder of class sub-folders of pictures, "
            "or a .csv/.parquet with --target COLUMN).")
    if config.target and registered:
        raise InvalidSettingError(
            f"--target {config.target} names the label column of a table (--data file.csv); "
            f"{config.dataset} is a registered dataset with its own labels. Leave --target out.")
    required = space.attribute("required_dataset")
    if required and config.dataset != required:
        raise InvalidSettingError(
            f"The '{config.space}' search space cannot be trained on '{config.dataset}': it "
            f"trains on --dataset {required} only.")
    reserved = datasets.space_of(config.dataset) if registered else None
    if reserved and config.space != reserved:
        raise InvalidSettingError(
            f"The '{config.space}' search space cannot be trained on '{config.dataset}': its "
            f"labels are for the {reserved} space. Pass --dataset fashion_mnist or cifar10, or "
            "your own --data.")


def placeholder_facts(config: RunConfig) -> tuple[tuple[int, ...], int | None]:
    """The input shape and classes of ``config``'s data, read cheaply (file headers at most)."""
    if is_registered_dataset(config.dataset):
        return _PLACEHOLDER_DATA.get(config.dataset, ((28, 28, 1), 10))
    from datasets.user import peek_user_data

    facts = peek_user_data(config.dataset, config.target)
    return tuple(facts["input_shape"]), facts.get("num_classes")


def make_hypermodel(config: RunConfig, space: Space, input_shape, num_classes,
                    **space_facts: Any):
    """The HyperModel of ``space`` for data of that shape and classes, with the run's options.

    Raises:
        InvalidSettingError: options or facts the space refuses.
    """
    try:
        return space.make(dict(config.space_args), input_shape=input_shape,
                          num_classes=num_classes,
                          steps_per_execution=config.steps_per_execution, **space_facts)
    except (SpaceError, ValueError) as error:
        raise InvalidSettingError(f"Invalid settings for the '{config.space}' search space: "
                                  f"{error}") from None


def default_values(hypermodel, fixed: kt.HyperParameters | None = None) -> dict[str, Any]:
    """The values of a search's first trial: the space's default point (hpsearch's spaces: the
    textbook model), with ``fixed`` values held."""
    hp = fixed.copy() if fixed is not None else kt.HyperParameters()
    hypermodel.build(hp)
    return dict(hp.values)


def build_default_model(config: RunConfig, hypermodel):
    """The default point's model, built once to check the space before any training.

    Raises:
        InvalidSettingError: building fails or gives something else than a compiled Keras model
            (the space and the cause are named).
    """
    import keras

    try:
        model = hypermodel.build(kt.HyperParameters())
    except Exception as error:  # the user's code: any failure is theirs to see, in one line
        raise InvalidSettingError(
            f"The '{config.space}' search space failed to build its default model: "
            f"{type(error).__name__}: {error}") from None
    if not isinstance(model, keras.Model):
        raise InvalidSettingError(
            f"The '{config.space}' search space returned a {type(model).__name__} from "
            "build(hp); expected a compiled keras.Model.")
    if getattr(model, "optimizer", None) is None:
        raise InvalidSettingError(
            f"The '{config.space}' search space returned a model that is not compiled: call "
            "model.compile(optimizer=..., loss=..., metrics=[...]) before returning it.")
    return model


def reported_metrics(hypermodel, model=None) -> list[str] | None:
    """The names in the training logs of the default point's model (``loss``, then its compiled
    metrics in order), from a symbolic build: nothing is trained. None when they cannot be told
    without training (KerasTuner will say whether the objective exists)."""
    import keras

    model = model if model is not None else hypermodel.build(kt.HyperParameters())
    if isinstance(model.input_shape, list) or any(d is None for d in model.input_shape[1:]):
        keras.backend.clear_session()
        return None
    outputs = model.outputs
    x = np.zeros((1, *model.input_shape[1:]), "float32")
    # A target's shape depends on the loss (sparse or not): try both per output.
    for sparse in itertools.product((False, True), repeat=len(outputs)):
        targets = [np.zeros((1,) if flat else (1, *output.shape[1:]), "float32")
                   for flat, output in zip(sparse, outputs)]
        y = targets[0] if len(targets) == 1 else dict(zip(model.output_names, targets))
        try:
            model._symbolic_build(data_batch=(x, y))
        except (ValueError, TypeError):
            model = hypermodel.build(kt.HyperParameters())
            continue
        names = list(model.get_metrics_result())
        extra = getattr(hypermodel, "callback_metric_names", None)
        if extra is not None:
            names += [name for name in extra(model) if name not in names]
        keras.backend.clear_session()
        return names
    keras.backend.clear_session()
    return None


def inferred_objective(space: Space, metrics: list[str] | None) -> tuple[str, str | None]:
    """The objective a search of ``space`` optimizes unless told: the space's declared one, else
    ``val_`` + the model's first compiled metric (``val_loss`` when it has none)."""
    declared = space.attribute("objective")
    if declared:
        return declared
    names = [name for name in (metrics or []) if name != "loss"]
    objective = f"val_{names[0]}" if names else "val_loss"
    return objective, implied_direction(objective)


def resolve_objective(config: RunConfig, force_direction: bool = False,
                      metrics: list[str] | None = None, space: Space | None = None) -> RunConfig:
    """Fill in the objective and direction where the config leaves them open (``space``: the
    space object itself, when it was handed over rather than named).

    Raises:
        InvalidSettingError: the direction cannot be inferred, or contradicts the metric (an
            accuracy minimized, a loss maximized) and ``force_direction`` is False.
    """
    default_name, default_direction = inferred_objective(space or resolve_space(config), metrics)
    objective = config.objective or default_name
    implied = default_direction if objective == default_name else implied_direction(objective)
    direction = config.direction or implied
    if direction is None:
        raise InvalidSettingError(
            f"Cannot tell whether objective '{objective}' should be maximized or minimized; "
            "pass --direction max or --direction min."
        )
    if implied and direction != implied and not force_direction:
        better = "higher" if implied == "max" else "lower"
        raise InvalidSettingError(
            f"--direction {direction} would rank the trials by '{objective}' the wrong way round: "
            f"it is better when {better}, so the worst trials would be exported as the best. "
            f"Leave --direction out (it is inferred) or pass --direction {implied}; add "
            "--force-direction only if you really mean it."
        )
    return dataclasses.replace(config, objective=objective, direction=direction)


def check_fixed(config: RunConfig, hypermodel) -> None:
    """Every ``--fix`` name is a hyperparameter of the space and its value one the space allows.

    Raises:
        InvalidSettingError: an unknown name (the space's names are listed), a value outside the
            hyperparameter's choices or range, or a value the model cannot be built with.
    """
    hp = kt.HyperParameters()
    hypermodel.build(hp)
    declared: dict[str, list] = {}  # every declaration of each name (conditional scopes)
    for parameter in hp.space:
        declared.setdefault(parameter.name, []).append(parameter)
    unknown = sorted(set(config.fixed) - set(declared))
    if unknown:
        raise InvalidSettingError(
            f"--fix {', '.join(unknown)}: not a hyperparameter of the '{config.space}' space. "
            f"Its hyperparameters: {', '.join(sorted(declared))}.")
    for name, value in config.fixed.items():
        problem = value_problem(declared[name][-1], value)
        if problem:
            raise InvalidSettingError(f"--fix {name}={value}: {problem}.")
    try:
        hypermodel.build(fixed_hyperparameters(config.fixed))
    except (ValueError, TypeError, KeyError) as error:
        raise InvalidSettingError(f"The '{config.space}' space cannot build a model with "
                                  f"{_fixed_text(config.fixed)}: {error}") from None
    for name, value in config.fixed.items():
        unused = _unused_by(declared[name], config.fixed)
        if unused:
            raise InvalidSettingError(
                f"--fix {name}={value} would change nothing: {name} is used only when {unused}. "
                f"Leave it out, or fix {unused.split(' is ')[0]} to a value that uses it.")


def fixed_hyperparameters(values: dict[str, Any]) -> kt.HyperParameters:
    """``values`` as fixed KerasTuner hyperparameters (KerasTuner's ``tuner/*`` keys dropped):
    a search or a build that gets them uses these values whatever the space declares."""
    hp = kt.HyperParameters()
    for name, value in values.items():
        if not name.startswith("tuner/"):
            hp.Fixed(name, value)
    return hp


def _unused_by(declarations: list, fixed: dict[str, Any]) -> str | None:
    """When every declaration of a hyperparameter sits in a conditional scope that the other
    fixed values rule out: the first such condition as text ("optimizer is sgd"); else None."""
    ruled_out = []
    for parameter in declarations:
        blocking = [condition for condition in parameter.conditions
                    if condition.name in fixed and fixed[condition.name] not in condition.values]
        if not blocking:
            return None
        ruled_out.append(blocking[0])
    condition = ruled_out[0]
    return f"{condition.name} is {' or '.join(map(str, condition.values))}"


def _fixed_text(fixed: dict[str, Any]) -> str:
    return " ".join(f"--fix {name}={value}" for name, value in fixed.items())


def space_record(space: Space) -> dict[str, Any]:
    """What ``run.yaml`` keeps of the space: its reference, kind, file and source hash."""
    return {"reference": space.reference, "kind": space.kind,
            "source_file": space.source_file, "source_hash": space.source_hash()}


def check_space_unchanged(run_dir: Path, space: Space, hypermodel,
                          accept_changed_space: bool = False) -> str | None:
    """Refuse to resume a search whose space's source changed since run.yaml recorded it.

    Returns:
        A warning line when the change is accepted, else None.

    Raises:
        SpaceChangedError: the source hash differs (the file and the hyperparameters whose
            declarations differ are named) and ``accept_changed_space`` is False.
    """
    path = Path(run_dir) / rundir.RUN_FILE
    if not path.is_file():
        return None
    saved = (rundir.read_yaml(path, "an hpsearch run configuration").get("space") or {})
    before, now = saved.get("source_hash"), space.source_hash()
    if not before or not now or before == now:
        return None
    differing = _changed_declarations(Path(run_dir), hypermodel)
    what = (f"these hyperparameters are declared differently: {', '.join(differing)}"
            if differing else "no hyperparameter's declaration differs; the model code does")
    message = (f"The source of space '{space.reference}' ({space.source_file}) changed since "
               f"this search began: {what}.")
    if accept_changed_space:
        return f"Warning: {message} Resuming anyway (--accept-changed-space)."
    raise SpaceChangedError(
        f"{message} Its finished trials were trained by the old code, so resuming would rank "
        "models of two versions together. Restore the file, use another --run-dir, or pass "
        "--accept-changed-space to resume anyway.")


def _changed_declarations(run_dir: Path, hypermodel) -> list[str]:
    space_file = run_dir / rundir.SPACE_FILE
    if not space_file.is_file():
        return []
    saved = {entry["config"]["name"]: entry
             for entry in rundir.read_json(space_file, "a search space").get("space", [])}
    hp = kt.HyperParameters()
    try:
        hypermodel.build(hp)
    except Exception:  # a space that no longer builds: its declarations cannot be compared
        return sorted(saved)
    current = {entry["config"]["name"]: entry for entry in hp.get_config()["space"]}
    names = sorted(set(saved) | set(current))
    return [name for name in names if _declaration(saved.get(name)) !=
            _declaration(current.get(name))]


def _declaration(entry: dict | None) -> Any:
    if entry is None:
        return None
    config = {key: value for key, value in entry["config"].items() if key != "conditions"}
    return entry["class_name"], sorted(config.items(), key=lambda item: item[0]).__repr__()


class SearchHooks:
    """What a space adds to the core's steps of a search; every step does nothing by default.

    A space class names its hooks with a ``search_hooks = "module:Class"`` attribute (a string, so
    that ``search_spaces`` never imports the tuner); ``hooks_for`` imports them. The core calls them
    in this order: ``prepare`` (settings that need files, before any data), ``load_options`` (for
    the dataset's loader), ``prepare_data``, ``hypermodel_facts`` and ``fixed_values``,
    ``run_record`` (what ``run.yaml`` keeps), then per trial ``fit_arguments`` and
    ``write_trial_card``.
    """

    # RunConfig fields that only this space reads (another space given them refuses them).
    config_fields: tuple[str, ...] = ()
    # Why ``transfer`` does not retrain this space's models, and what to use instead (None: it
    # does).
    transfer_refusal: str | None = None

    def prepare(self, config: RunConfig) -> tuple[RunConfig, Any]:
        """The config with the space's own settings completed, and a state handed to the other
        hooks (None here)."""
        return config, None

    def identity_defaults(self, config: RunConfig) -> dict[str, Any]:
        """What this space's settings stood for in a ``run.yaml`` written before they existed
        (beyond each setting's default)."""
        return {}

    def validation_variants(self, config: RunConfig) -> list[dict[str, Any]]:
        """Extra construction facts the settings check builds the space with, once each (a space
        whose metrics depend on the data, e.g. an auxiliary output, lists each case)."""
        return [{}]

    def load_options(self, config: RunConfig) -> dict[str, Any]:
        """Options of the registered dataset's loader."""
        return {}

    def prepare_data(self, config: RunConfig, data, state: Any,
                     recorded: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any], list[str]]:
        """The data as the space's models take it, what ``run.yaml`` records of that choice
        (``recorded`` is that record, read back by a worker), and progress lines."""
        return data, {}, []

    def hypermodel_facts(self, config: RunConfig, data, state: Any) -> dict[str, Any]:
        """Extra constructor facts for the space (beyond input shape, classes and options)."""
        return {}

    def fixed_values(self, config: RunConfig, state: Any) -> dict[str, Any]:
        """Hyperparameters the space holds fixed for this search (``--fix`` values win)."""
        return {}

    def run_record(self, config: RunConfig, hypermodel, state: Any,
                   fixed: kt.HyperParameters | None) -> tuple[dict[str, Any], list[str]]:
        """More of ``run.yaml`` and progress lines, once the default point was built."""
        return {}, []

    def fit_arguments(self, hypermodel, data) -> dict[str, Any]:
        """More keyword arguments of every trial's ``fit``."""
        return {}

    def write_trial_card(self, trial_dir: Path, hypermodel, hp: kt.HyperParameters,
                         record: dict[str, Any]) -> None:
        """Write what a trial's checkpoint needs beside it to be used (``record``: what
        ``prepare_data`` recorded)."""


def hooks_for(space: Space) -> SearchHooks:
    """The space's ``SearchHooks`` (the plain ones when it names none)."""
    named = space.attribute("search_hooks")
    if not named:
        return SearchHooks()
    import importlib

    module, _, attribute = named.partition(":")
    return getattr(importlib.import_module(module), attribute)()


# RunConfig fields that belong to one space's hooks, with their command-line option.
_SPACE_FIELDS = {"head": "--head", "init_from": "--init-from", "init_head": "--init-head",
                 "image_size": "--size", "polarity": "--polarity"}
_FIELD_UNSET = {"polarity": "auto"}


def check_space_fields(config: RunConfig, hooks: SearchHooks) -> None:
    """Refuse a space's own setting given to another space.

    Raises:
        InvalidSettingError: e.g. ``--head`` for the MLP space.
    """
    for field, option in _SPACE_FIELDS.items():
        value = getattr(config, field)
        if value in (None, _FIELD_UNSET.get(field)) or field in hooks.config_fields:
            continue
        owners = [name for name in search_spaces.available_spaces()
                  if field in hooks_for(search_spaces.resolve(name)).config_fields]
        raise InvalidSettingError(
            f"{option} only applies to the {' or '.join(owners) or 'no'} search space, not "
            f"'{config.space}'.")


def data_fingerprint(config: RunConfig, data) -> str | None:
    """A hash of a user's data (its file or folder; arrays given from Python: their bytes);
    None for registered datasets, whose files hpsearch checks itself."""
    if is_registered_dataset(config.dataset):
        return None
    from datasets import user

    source = Path(str(data.source))
    return user.data_fingerprint(source) if source.exists() else user.arrays_fingerprint(data)


def check_data_unchanged(run_dir: Path, config: RunConfig, data) -> None:
    """Refuse to resume a search on a user's data that changed since its trials were run.

    Raises:
        rundir.SettingsMismatchError: the data's fingerprint differs from run.yaml's.
    """
    path = Path(run_dir) / rundir.RUN_FILE
    saved = (rundir.read_yaml(path, "an hpsearch run configuration").get("data") or {})
    before = saved.get("fingerprint")
    now = data_fingerprint(config, data)
    if before and now and before != now:
        raise rundir.SettingsMismatchError(
            f"The data {data.source} changed since this search began in {run_dir} (its content "
            "differs), so its finished trials were scored on other data and resuming would rank "
            "them with new ones. Restore the data, or use another --run-dir (or --overwrite).")
