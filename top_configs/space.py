"""Turning an exported configuration back into KerasTuner hyperparameters for its search space."""

from __future__ import annotations

import os

import keras_tuner as kt

from top_configs.format import TopConfig, TopConfigError


def hyperparameters_for(
    config: TopConfig, hypermodel, source: str | os.PathLike = "configuration"
) -> kt.HyperParameters:
    """Hyperparameters with ``config``'s values, checked against ``hypermodel``'s search space.

    Every name must exist in the space, and every value must be of the right type and within the
    hyperparameter's range or choices. Names the configuration does not give take the space's
    default (the textbook value).

    Raises:
        TopConfigError: another search space, an unknown name, a wrong type or an out-of-range value.
    """
    if config.search_space != hypermodel.name:
        raise TopConfigError(
            f"{source} was exported from the '{config.search_space}' search space and cannot be "
            f"rebuilt with '{hypermodel.name}'. Use a configuration of the '{hypermodel.name}' space."
        )
    space = kt.HyperParameters()
    hypermodel.build(space)
    _explore_conditions(space, hypermodel)
    by_name = {hp.name: hp for hp in space.space}
    unknown = sorted(set(config.hyperparameters) - set(by_name))
    if unknown:
        raise TopConfigError(
            f"{source}: unknown hyperparameter(s) {', '.join(unknown)} for the "
            f"'{hypermodel.name}' search space. Known: {', '.join(sorted(by_name))}."
        )
    for name, value in config.hyperparameters.items():
        _check_value(by_name[name], value, source)
    hp = kt.HyperParameters()
    hp.values.update(config.hyperparameters)
    hypermodel.build(hp)  # registers the space; given values win over defaults
    return hp


def _explore_conditions(space: kt.HyperParameters, hypermodel) -> None:
    """Build with each conditional branch active once so every hyperparameter is known."""
    seen = set()
    pending = [condition for scope in space.inactive_scopes for condition in scope]
    while pending:
        condition = pending.pop()
        key = (condition.name, tuple(map(str, condition.values)))
        if key in seen:
            continue
        seen.add(key)
        trial = kt.HyperParameters()
        trial.values[condition.name] = condition.values[0]
        hypermodel.build(trial)
        space.merge(trial.space)
        pending.extend(c for scope in trial.inactive_scopes for c in scope)


def _check_value(hp, value, source) -> None:
    config = hp.get_config()
    name = hp.name
    kind = type(hp).__name__
    if kind == "Boolean":
        if not isinstance(value, bool):
            raise TopConfigError(
                f"{source}: hyperparameter '{name}' should be true or false, got {value!r}."
            )
        return
    if kind == "Choice" or kind == "Fixed":
        allowed = config.get("values") or [config.get("value")]
        if value not in allowed:
            raise TopConfigError(
                f"{source}: hyperparameter '{name}' is {value!r}; expected one of {allowed}."
            )
        return
    numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "Int" and not (isinstance(value, int) and not isinstance(value, bool)):
        raise TopConfigError(
            f"{source}: hyperparameter '{name}' should be an integer, got {value!r}."
        )
    if not numeric:
        raise TopConfigError(
            f"{source}: hyperparameter '{name}' should be a number, got {value!r}."
        )
    low, high = config["min_value"], config["max_value"]
    if not low <= value <= high:
        raise TopConfigError(
            f"{source}: hyperparameter '{name}' is {value}, outside its range [{low}, {high}]."
        )
