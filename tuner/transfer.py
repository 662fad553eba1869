"""Retraining exported configurations on another dataset (or the same one) and measuring them.

Each configuration is rebuilt from its YAML through its search space for the target's input shape
and classes, trained on the target's training split with early stopping on the target's
validation split (best weights restored), and evaluated once on the target's test set. Every row
(configuration x seed) is written to ``transfer.csv`` as soon as it is done, so an interrupted
transfer resumes where it stopped.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
import yaml

import datasets
import search_spaces
from search_spaces.precision import precision_policy
from top_configs import (
    TopConfig,
    TopConfigError,
    hyperparameters_for,
    read_top_config,
    write_top_config,
)
from tuner.config import RunConfigError, read_run_config
from tuner.results import TOP_DIR, read_trials
from tuner.search import format_duration, run_lock

TRANSFER_CSV = "transfer.csv"
TRANSFER_FILE = "transfer.yaml"
CLASSIFIER_SPACES = ("mlp", "cnn")
COLUMNS = [
    "config",
    "rank",
    "trial_id",
    "search_space",
    "source_dataset",
    "source_score",
    "dataset",
    "seed",
    "val_accuracy",
    "test_accuracy",
    "epochs",
    "params",
    "seconds_per_epoch",
]


@dataclasses.dataclass(frozen=True)
class TransferSettings:
    """How configurations are retrained; written to ``transfer.yaml`` and checked on resume."""

    dataset: str = "cifar10"  # target dataset
    seeds: int = 1  # trainings per configuration (seeds 0..seeds-1)
    epochs: int | None = None  # None: the largest epoch count among the configurations
    patience: int = 3  # early stopping on the target's validation accuracy
    subset: int | float | None = None  # training images of the target (None: all)
    include_textbook: bool = True  # add the textbook model of each family as a baseline row
    validation_fraction: float = 0.1
    precision: str = "float32"  # Keras dtype policy (see search_spaces.precision); not checked on resume


@dataclasses.dataclass
class TransferResult:
    """``rows``: one per configuration and seed; ``summary``: mean and std per configuration."""

    out_dir: Path
    rows: pd.DataFrame
    summary: pd.DataFrame
    new_rows: int


def collect_configs(sources: Sequence[str | os.PathLike]) -> list[tuple[str, TopConfig]]:
    """(name, config) pairs from tune run directories and/or YAML files, in the order given.

    Raises:
        TopConfigError: a source is neither a run directory with exported configurations nor a
            readable configuration file.
    """
    configs: list[tuple[str, TopConfig]] = []
    for source in sources:
        path = Path(source)
        if path.is_dir():
            files = sorted((path / TOP_DIR).glob("rank_*.yaml"))
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
            configs.append((path.stem, read_top_config(path)))
    for name, config in configs:
        if config.search_space not in CLASSIFIER_SPACES:
            raise TopConfigError(
                f"{name} is a '{config.search_space}' configuration; transfer retrains classifiers "
                f"({', '.join(CLASSIFIER_SPACES)}). Use `hpsearch clock compare` for clock models."
            )
        # Check names, types and ranges now, before any data is loaded or model trained. The
        # hyperparameters of a space do not depend on the input shape.
        hypermodel = search_spaces.get(config.search_space, input_shape=(32, 32, 3), num_classes=10)
        hyperparameters_for(config, hypermodel, source=name)
    return configs


def _textbook_config(space: str, hypermodel, source_dataset: str, source_score: float) -> TopConfig:
    return TopConfig(
        rank=0,
        search_space=space,
        dataset=source_dataset,
        objective="val_accuracy",
        direction="max",
        score=source_score,
        trial_id="",
        epochs=0,
        hyperparameters=hypermodel.textbook_values(),
    )


def _textbook_score(sources: Sequence[str | os.PathLike], space: str) -> float:
    """The textbook model's best validation score in a source run of that space (NaN if none)."""
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
        done = trials[trials["is_textbook"] & (trials["status"] == "COMPLETED")]
        if not done.empty:
            return float(done["score"].max())
    return math.nan


def _check_settings(out_dir: Path, settings: TransferSettings, sources: list[str]) -> None:
    path = out_dir / TRANSFER_FILE
    document = {"settings": dataclasses.asdict(settings), "sources": sources}
    if path.is_file():
        saved = yaml.safe_load(path.read_text()) or {}
        before = saved.get("settings", {})
        differences = [
            f"{key}: saved {before.get(key)!r}, now {value!r}"
            for key, value in dataclasses.asdict(settings).items()
            if key != "seeds" and before.get(key) != value
        ]
        if differences:
            raise RunConfigError(
                f"{out_dir} holds a transfer made with other settings:\n  - "
                + "\n  - ".join(differences)
                + "\nUse the same settings to resume, --overwrite to start again, or another --run-dir."
            )
    path.write_text(yaml.safe_dump(document, sort_keys=False))


def _read_rows(out_dir: Path) -> pd.DataFrame:
    path = out_dir / TRANSFER_CSV
    if not path.is_file():
        return pd.DataFrame(columns=COLUMNS)
    return pd.read_csv(
        path, dtype={"trial_id": str, "config": str}, keep_default_na=False, na_values=[""]
    )


def _write_rows(out_dir: Path, rows: pd.DataFrame) -> None:
    temporary = out_dir / (TRANSFER_CSV + ".tmp")
    rows.to_csv(temporary, index=False)
    os.replace(temporary, out_dir / TRANSFER_CSV)


def train_and_evaluate(
    config: TopConfig,
    data: datasets.Dataset,
    seed: int,
    epochs: int,
    patience: int = 3,
    source: str = "configuration",
) -> dict[str, Any]:
    """Rebuild ``config`` for ``data``, train with early stopping, evaluate once on the test set.

    Returns:
        val_accuracy (best epoch), test_accuracy, epochs (of the best epoch), params,
        seconds_per_epoch.
    """
    import keras

    hypermodel = search_spaces.get(
        config.search_space, input_shape=data.input_shape, num_classes=data.num_classes
    )
    hp = hyperparameters_for(config, hypermodel, source=source)
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    model = hypermodel.build(hp)
    stopper = keras.callbacks.EarlyStopping(
        monitor="val_accuracy", mode="max", patience=patience, restore_best_weights=True
    )
    started = time.monotonic()
    history = hypermodel.fit(
        hp,
        model,
        data.x_train,
        data.y_train,
        validation_data=(data.x_val, data.y_val),
        epochs=epochs,
        callbacks=[stopper],
        verbose=0,
    )
    seconds = time.monotonic() - started
    val_history = history.history.get("val_accuracy", [math.nan])
    ran = len(val_history)
    if not all(math.isfinite(loss) for loss in history.history.get("loss", [])):
        return {
            "val_accuracy": math.nan,
            "test_accuracy": math.nan,
            "epochs": ran,
            "params": int(model.count_params()),
            "seconds_per_epoch": seconds / max(ran, 1),
        }
    best_epoch = int(np.nanargmax(val_history))
    test = model.evaluate(data.x_test, data.y_test, verbose=0, return_dict=True)
    return {
        "val_accuracy": float(val_history[best_epoch]),
        "test_accuracy": float(test["accuracy"]),
        "epochs": best_epoch + 1,
        "params": int(model.count_params()),
        "seconds_per_epoch": seconds / max(ran, 1),
    }


def summarize(rows: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation (over seeds) of validation and test accuracy per configuration."""
    if rows.empty:
        return pd.DataFrame()
    grouped = rows.groupby(["dataset", "config"], sort=False)
    summary = grouped.agg(
        rank=("rank", "first"),
        trial_id=("trial_id", "first"),
        search_space=("search_space", "first"),
        source_score=("source_score", "first"),
        seeds=("seed", "count"),
        val_accuracy_mean=("val_accuracy", "mean"),
        val_accuracy_std=("val_accuracy", "std"),
        test_accuracy_mean=("test_accuracy", "mean"),
        test_accuracy_std=("test_accuracy", "std"),
        epochs_mean=("epochs", "mean"),
        params=("params", "first"),
        seconds_per_epoch=("seconds_per_epoch", "mean"),
    ).reset_index()
    return summary


def run_transfer(
    sources: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    settings: TransferSettings = TransferSettings(),
    data_dir=None,
    overwrite: bool = False,
    progress: Callable[[str], None] | None = print,
) -> TransferResult:
    """Retrain the configurations of ``sources`` on ``settings.dataset`` and write the results.

    Args:
        sources: tune run directories (their top_configs/rank_*.yaml) and/or YAML files.
        out_dir: where ``transfer.csv``, ``summary.csv``, ``transfer.yaml`` and ``configs/`` go.
        settings: target dataset, seeds, epochs, early-stopping patience, subset, baseline.
        data_dir: where to look for the target dataset first.
        overwrite: discard earlier results in ``out_dir``.
        progress: called with each progress line.

    Raises:
        TopConfigError: a source is unreadable, invalid, or from a non-classifier space.
        RunConfigError: ``out_dir`` holds a transfer made with other settings.
        datasets.DatasetError: the target dataset cannot be found or read.
    """
    progress = progress or (lambda line: None)
    out_dir = Path(out_dir)
    source_names = [str(s) for s in sources]
    configs = collect_configs(sources)
    with run_lock(out_dir):
        if overwrite:
            for name in (TRANSFER_CSV, TRANSFER_FILE, "summary.csv"):
                (out_dir / name).unlink(missing_ok=True)
        _check_settings(out_dir, settings, source_names)
        data = datasets.load(
            settings.dataset,
            data_dir=data_dir,
            subset=settings.subset,
            validation_fraction=settings.validation_fraction,
            seed=0,
        )
        progress(f"Data: {data.summary()}")
        if settings.include_textbook:
            for space in dict.fromkeys(config.search_space for _, config in configs):
                hypermodel = search_spaces.get(
                    space, input_shape=data.input_shape, num_classes=data.num_classes
                )
                name = (
                    "textbook"
                    if len({c.search_space for _, c in configs}) == 1
                    else f"textbook_{space}"
                )
                source_dataset = next(c.dataset for _, c in configs if c.search_space == space)
                textbook = _textbook_config(
                    space, hypermodel, source_dataset, _textbook_score(sources, space)
                )
                same = [
                    n
                    for n, c in configs
                    if c.search_space == space and c.hyperparameters == textbook.hyperparameters
                ]
                if same:
                    # Training the same configuration twice would only measure seed noise.
                    progress(f"{same[0]} is the textbook model itself: no separate textbook row.")
                else:
                    configs.append((name, textbook))
        epochs = settings.epochs or max([c.epochs for _, c in configs if c.epochs] or [10])
        (out_dir / "configs").mkdir(exist_ok=True)
        for name, config in configs:
            write_top_config(out_dir / "configs" / f"{name.replace('/', '__')}.yaml", config)
        records = _read_rows(out_dir).to_dict("records")
        done = {(str(r["config"]), int(r["seed"])) for r in records}
        todo = [
            (name, config, seed)
            for name, config in configs
            for seed in range(settings.seeds)
            if (name, seed) not in done
        ]
        progress(
            f"Retraining {len(configs)} configurations x {settings.seeds} seed(s) on "
            f"{settings.dataset} for up to {epochs} epochs (early stopping, patience "
            f"{settings.patience}); {len(done)} already done, {len(todo)} to run."
        )
        started = time.monotonic()
        for index, (name, config, seed) in enumerate(todo, start=1):
            progress(
                f"[{index}/{len(todo)}] {name} (seed {seed}) | elapsed "
                f"{format_duration(time.monotonic() - started)}"
            )
            with precision_policy(settings.precision):
                measured = train_and_evaluate(
                    config, data, seed, epochs, settings.patience, source=name
                )
            row = {
                "config": name,
                "rank": config.rank or None,
                "trial_id": config.trial_id,
                "search_space": config.search_space,
                "source_dataset": config.dataset,
                "source_score": config.score,
                "dataset": settings.dataset,
                "seed": seed,
                **measured,
            }
            records.append(row)
            _write_rows(out_dir, pd.DataFrame(records, columns=COLUMNS))
            progress(
                f"    val_accuracy {measured['val_accuracy']:.4f}, test_accuracy "
                f"{measured['test_accuracy']:.4f}, best epoch {measured['epochs']}, "
                f"{measured['seconds_per_epoch']:.1f} s/epoch"
            )
        rows = _read_rows(out_dir)
        summary = summarize(rows)
        summary.to_csv(out_dir / "summary.csv", index=False)
        return TransferResult(out_dir=out_dir, rows=rows, summary=summary, new_rows=len(todo))


def format_transfer_table(summary: pd.DataFrame) -> str:
    """The table ``hpsearch transfer`` prints: one line per configuration."""
    if summary.empty:
        return "No results."
    lines = [
        f"{'config':<22} {'source val':>10} {'target val':>16} {'target test':>16} "
        f"{'epochs':>6} {'params':>9} {'s/epoch':>8}"
    ]
    for row in summary.itertuples():

        def pm(mean, std):
            return f"{mean:.4f}" + (
                f" ± {std:.4f}" if isinstance(std, float) and math.isfinite(std) else ""
            )

        source = f"{row.source_score:.4f}" if math.isfinite(float(row.source_score)) else "-"
        lines.append(
            f"{row.config:<22} {source:>10} {pm(row.val_accuracy_mean, row.val_accuracy_std):>16} "
            f"{pm(row.test_accuracy_mean, row.test_accuracy_std):>16} "
            f"{row.epochs_mean:>6.1f} {int(row.params):>9,} {row.seconds_per_epoch:>8.1f}"
        )
    return "\n".join(lines)
