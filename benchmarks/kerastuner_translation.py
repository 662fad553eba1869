"""A KerasTuner search space, translated for optimizers that do not know KerasTuner.

``HyperParameters.get_config()`` of a built space names every hyperparameter with its range,
choices, default and conditions; this module turns that into a ConfigSpace space (SMAC3, DEHB) or
Optuna ``suggest_*`` calls, hyperparameter by hyperparameter, conditions included, and turns the
values they propose back into a ``keras_tuner.HyperParameters`` that builds the same Keras model
through the same HyperModel. Benchmark-only: the library never imports it.

How each kind is translated (KerasTuner's own sampling in brackets):

- ``Int`` (uniform integer, or log-uniform) -> an integer, log-scaled where KerasTuner samples on a
  log scale; a linear ``Int`` with a step above 1 -> the ordinal list of its grid values;
- ``Float`` (uniform or log-uniform) -> a float, log-scaled the same way; a ``Float`` with a step
  -> the ordinal list of its grid values (KerasTuner draws from that grid);
- ``Choice`` -> categorical, or ordinal when KerasTuner marks it ``ordered`` (numbers);
- ``Boolean`` -> categorical of False and True; ``Fixed`` -> a constant;
- each ``Parent(name, values)`` condition -> ``InCondition`` (``EqualsCondition`` for one value),
  several on one hyperparameter -> their ``AndConjunction``.
"""

from __future__ import annotations

import math
from typing import Any

import keras_tuner as kt

_hyperparameters = kt.engine.hyperparameters
# The condition class KerasTuner 1.4 does not re-export; conditions of a space are of this kind.
from keras_tuner.src.engine import conditions as _conditions  # noqa: E402


def built_space(hypermodel, objective, directory: str) -> kt.HyperParameters:
    """Every hyperparameter of a HyperModel, conditions included, exactly as a KerasTuner tuner
    sees it: the space of a fresh tuner's oracle (KerasTuner builds the model again until every
    ``conditional_scope`` has been entered once). ``directory``: where that tuner may write."""
    tuner = kt.RandomSearch(hypermodel, objective=objective, max_trials=1, directory=directory,
                            project_name="space", overwrite=True)
    return tuner.oracle.get_space()


def is_active(hp, values: dict[str, Any]) -> bool:
    """Whether a hyperparameter is used given the values of those declared before it."""
    return all(condition.is_active(values) for condition in hp.conditions)


def default_values(space: kt.HyperParameters) -> dict[str, Any]:
    """The space's default configuration: each active hyperparameter at its KerasTuner default."""
    values: dict[str, Any] = {}
    for hp in space.space:
        if is_active(hp, values):
            values[hp.name] = hp.default
    return values


def hyperparameters_with(space: kt.HyperParameters, values: dict[str, Any]) -> kt.HyperParameters:
    """A ``HyperParameters`` holding ``values``: ``hypermodel.build(hp)`` then builds that model
    and ``hypermodel.fit(hp, ...)`` trains it with their batch size and schedule."""
    hp = space.copy()
    hp.values = {name: value for name, value in values.items() if not name.startswith("tuner/")}
    return hp


def _grid(hp) -> list[Any] | None:
    """The values a stepped linear Int or Float takes (None: not a grid)."""
    if hp.sampling == "log" or not hp.step:
        return None
    if isinstance(hp, _hyperparameters.Int):
        if hp.step == 1:
            return None
        return list(range(hp.min_value, hp.max_value + 1, hp.step))
    count = math.floor((hp.max_value - hp.min_value) / hp.step + 1e-9) + 1
    return [round(hp.min_value + index * hp.step, 10) for index in range(count)]


def _nearest(grid: list[Any], value: Any) -> Any:
    return min(grid, key=lambda item: abs(item - value))


def to_configspace(space: kt.HyperParameters, seed: int):
    """The space as a ``ConfigSpace.ConfigurationSpace`` (defaults and conditions kept)."""
    import ConfigSpace as cs

    configspace = cs.ConfigurationSpace(seed=seed)
    translated = {}
    for hp in space.space:
        if isinstance(hp, _hyperparameters.Fixed):
            item = cs.Constant(hp.name, hp.value)
        elif isinstance(hp, _hyperparameters.Boolean):
            item = cs.Categorical(hp.name, [False, True], default=bool(hp.default))
        elif isinstance(hp, _hyperparameters.Choice):
            if hp.ordered:
                item = cs.OrdinalHyperparameter(hp.name, list(hp.values), default_value=hp.default)
            else:
                item = cs.Categorical(hp.name, list(hp.values), default=hp.default)
        elif _grid(hp) is not None:
            grid = _grid(hp)
            item = cs.OrdinalHyperparameter(hp.name, grid, default_value=_nearest(grid, hp.default))
        elif isinstance(hp, _hyperparameters.Int):
            item = cs.Integer(hp.name, (hp.min_value, hp.max_value), log=hp.sampling == "log",
                              default=hp.default)
        elif isinstance(hp, _hyperparameters.Float):
            item = cs.Float(hp.name, (hp.min_value, hp.max_value), log=hp.sampling == "log",
                            default=hp.default)
        else:
            raise TypeError(f"No ConfigSpace translation for {type(hp).__name__} {hp.name!r}.")
        translated[hp.name] = item
    configspace.add(list(translated.values()))
    conditions = []
    for hp in space.space:
        clauses = []
        for condition in hp.conditions:
            if not isinstance(condition, _conditions.Parent):
                raise TypeError(
                    f"{hp.name!r} has a {type(condition).__name__} condition; only Parent "
                    "conditions (conditional_scope) are translated.")
            child, parent = translated[hp.name], translated[condition.name]
            values = list(condition.values)
            clauses.append(cs.EqualsCondition(child, parent, values[0]) if len(values) == 1
                           else cs.InCondition(child, parent, values))
        if len(clauses) == 1:
            conditions.append(clauses[0])
        elif clauses:
            conditions.append(cs.AndConjunction(*clauses))
    if conditions:
        configspace.add(conditions)
    return configspace


def from_configuration(space: kt.HyperParameters, configuration) -> dict[str, Any]:
    """KerasTuner values of a ConfigSpace configuration (numpy scalars made plain Python)."""
    given = dict(configuration)
    values: dict[str, Any] = {}
    for hp in space.space:
        if hp.name in given and is_active(hp, values):
            value = given[hp.name]
            values[hp.name] = value.item() if hasattr(value, "item") else value
    return values


def suggest_optuna(trial, space: kt.HyperParameters) -> dict[str, Any]:
    """Ask an Optuna trial for a value of each active hyperparameter, in declaration order."""
    values: dict[str, Any] = {}
    for hp in space.space:
        if not is_active(hp, values):
            continue
        name = hp.name
        if isinstance(hp, _hyperparameters.Fixed):
            values[name] = hp.value
        elif isinstance(hp, _hyperparameters.Boolean):
            values[name] = trial.suggest_categorical(name, [False, True])
        elif isinstance(hp, _hyperparameters.Choice):
            values[name] = trial.suggest_categorical(name, list(hp.values))
        elif isinstance(hp, _hyperparameters.Int):
            log = hp.sampling == "log"
            values[name] = trial.suggest_int(name, hp.min_value, hp.max_value,
                                             step=1 if log else (hp.step or 1), log=log)
        elif isinstance(hp, _hyperparameters.Float):
            log = hp.sampling == "log"
            values[name] = trial.suggest_float(name, hp.min_value, hp.max_value,
                                               step=None if log else hp.step, log=log)
        else:
            raise TypeError(f"No Optuna translation for {type(hp).__name__} {name!r}.")
    return values
