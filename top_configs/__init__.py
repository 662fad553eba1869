"""Top configurations: the YAML format of a search's best trials, reader, writer and rebuild."""

from top_configs.format import (
    FORMAT,
    TopConfig,
    TopConfigError,
    plain_value,
    read_top_config,
    strip_internal_keys,
    write_top_config,
)


def hyperparameters_for(config, hypermodel, source="configuration"):
    """See ``top_configs.space.hyperparameters_for`` (imported lazily: it needs KerasTuner)."""
    from top_configs.space import hyperparameters_for as rebuild

    return rebuild(config, hypermodel, source)


__all__ = [
    "FORMAT",
    "TopConfig",
    "TopConfigError",
    "hyperparameters_for",
    "plain_value",
    "read_top_config",
    "strip_internal_keys",
    "write_top_config",
]
