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
    problem = value_problem(hp, value)
    if problem:
        raise TopConfigError(f"{source}: hyperparameter '{hp.name}' is {value!r}; {problem}.")


def value_problem(parameter, value) -> str | None:
    """Why ``value`` cannot be KerasTuner hyperparameter ``parameter``'s value, as "expected ..."
    text; None when it can. One rule for every place a value comes from outside a search (a
    configuration file, ``--fix``): of the declared type (a whole number is not ``32.0``, a
    float choice takes an int) and within the choices or range."""
    kinds = kt.engine.hyperparameters
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(parameter, kinds.Boolean):
        return None if isinstance(value, bool) else "expected true or false"
    if isinstance(parameter, (kinds.Choice, kinds.Fixed)):
        allowed = (parameter.values if isinstance(parameter, kinds.Choice)
                   else [parameter.value])
        if any(value == option and (type(value) is type(option)
                                    or number and isinstance(option, float))
               for option in allowed):
            return None
        return f"expected one of {', '.join(map(str, allowed))}"
    if isinstance(parameter, (kinds.Int, kinds.Float)):
        whole = isinstance(parameter, kinds.Int)
        if not number or (whole and not isinstance(value, int)):
            return f"expected {'a whole number' if whole else 'a number'}"
        if not parameter.min_value <= value <= parameter.max_value:
            return f"expected a value from {parameter.min_value} to {parameter.max_value}"
    return None
