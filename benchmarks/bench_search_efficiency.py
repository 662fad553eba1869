"""Search efficiency on the MLP space: best validation accuracy found against training epochs spent.

Methods, each with the same budget of training epochs and the same data, for several seeds:

- hpsearch ``hyperband`` (``max_epochs`` 9, factor 3: 23 trials / 75 epochs per sweep) and
  ``bohb`` (the same brackets, new configurations proposed by a Gaussian process),
- hpsearch ``bayesian`` and ``random`` (trials of up to 9 epochs, early stopping patience 3),
- Optuna's TPE sampler with its Hyperband pruner (min 1, max 9 epochs, factor 3) over the same
  KerasTuner search space, translated hyperparameter by hyperparameter (conditions included).

A method's curve is the best validation accuracy of any trial finished so far against the
epochs trained so far (a pruned or early trial counts with its best epoch, as KerasTuner scores
a trial). Every method's first trial is its own; hpsearch's tuners start from the textbook
model, which is their design. The textbook MLP trained for 9 epochs on the same data is the bar;
"epochs to beat it" counts until the best score is half a point above it.
Optuna is a benchmark-only dependency (``pip install optuna``). Usage:

    HPSEARCH_DATA_DIR=../shared/data python benchmarks/bench_search_efficiency.py \\
        [--images 10000] [--budget 75] [--seeds 0 1 2] [--out docs/benchmarks]

Writes ``search-efficiency.csv`` (every curve point), ``search-efficiency-summary.csv`` and
``search-efficiency.png`` to ``--out``.
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import keras_tuner as kt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

import datasets  # noqa: E402
import search_spaces  # noqa: E402
from tuner.config import HYPERBAND_TUNERS, RunConfig, hyperband_schedule  # noqa: E402
from tuner.results import read_trial_log, read_trials  # noqa: E402
from tuner.search import run_search  # noqa: E402

MAX_EPOCHS = 9
FACTOR = 3
# "Beating" the textbook model: half a point above it, beyond the 0.1-point steps of a 1,000-image
# validation split and the seed noise of retraining the textbook model itself (hpsearch's
# tuners train it as their first trial).
BEAT_MARGIN = 0.005
METHODS = ("hyperband", "bohb", "bayesian", "random", "optuna_tpe_hyperband")


def hpsearch_curve(method: str, data, seed: int, budget: int) -> list[tuple[int, float]]:
    """(epochs spent, best score so far) after each trial of an hpsearch search."""
    if method in HYPERBAND_TUNERS:
        epochs_per_sweep = hyperband_schedule(MAX_EPOCHS, FACTOR)[1]
        extra = dict(hyperband_iterations=math.ceil(budget / epochs_per_sweep))
    else:
        # Early stopping ends most trials before MAX_EPOCHS; a few more trials than the budget
        # needs at full length, and the curve is cut at the budget.
        extra = dict(max_trials=math.ceil(1.4 * budget / MAX_EPOCHS))
    config = RunConfig(
        space="mlp",
        dataset="fashion_mnist",
        tuner=method,
        max_epochs=MAX_EPOCHS,
        factor=FACTOR,
        seed=seed,
        subset=len(data.x_train) + len(data.x_val),
        **extra,
    )
    with tempfile.TemporaryDirectory() as run_dir:
        run_search(config, run_dir, data=data, progress=None)
        log = read_trial_log(run_dir)
        scores = read_trials(run_dir).set_index("trial_id")["score"]
        order = list(log.values())  # in the order the trials finished
        curve, spent, best = [], 0, -math.inf
        for entry in order:
            spent += int(entry.get("epochs") or 0)
            score = scores.get(str(entry["trial_id"]), math.nan)
            if entry["status"] == "COMPLETED" and math.isfinite(score):
                best = max(best, float(score))
            curve.append((spent, best))
            if spent >= budget:
                break
    return curve


def optuna_curve(data, seed: int, budget: int) -> list[tuple[int, float]]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    hypermodel = search_spaces.get("mlp", input_shape=data.input_shape, num_classes=10)
    space = kt.HyperParameters()
    hypermodel.build(space)
    study = optuna.create_study(
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=optuna.pruners.HyperbandPruner(
            min_resource=1, max_resource=MAX_EPOCHS, reduction_factor=FACTOR
        ),
    )
    state = {"spent": 0, "best": -math.inf, "curve": []}

    class Report(keras.callbacks.Callback):
        def __init__(self, trial):
            super().__init__()
            self.trial, self.pruned, self.scores = trial, False, []

        def on_epoch_end(self, epoch, logs=None):
            state["spent"] += 1
            score = float(logs["val_accuracy"])
            self.scores.append(score)
            self.trial.report(score, epoch)
            if self.trial.should_prune() or state["spent"] >= budget:
                self.pruned = self.trial.should_prune()
                self.model.stop_training = True

    def objective(trial):
        values = {}
        for hp in space.space:
            if not all(condition.is_active(values) for condition in hp.conditions):
                continue
            values[hp.name] = _suggest(trial, hp)
        hp_values = kt.HyperParameters()
        hp_values.values.update(values)
        keras.backend.clear_session()
        keras.utils.set_random_seed(seed * 1000 + trial.number)
        model = hypermodel.build(hp_values)
        report = Report(trial)
        hypermodel.fit(
            hp_values,
            model,
            data.x_train,
            data.y_train,
            validation_data=(data.x_val, data.y_val),
            epochs=MAX_EPOCHS,
            callbacks=[report],
            verbose=0,
        )
        best = max(report.scores) if report.scores else math.nan
        if math.isfinite(best):
            state["best"] = max(state["best"], best)
        state["curve"].append((state["spent"], state["best"]))
        if report.pruned:
            raise optuna.TrialPruned()
        return best

    def stop_at_budget(study, trial):
        if state["spent"] >= budget:
            study.stop()

    study.optimize(objective, callbacks=[stop_at_budget], catch=(Exception,))
    return state["curve"]


def _suggest(trial, hp):
    name = hp.name
    if isinstance(hp, kt.engine.hyperparameters.Boolean):
        return trial.suggest_categorical(name, [False, True])
    if isinstance(hp, kt.engine.hyperparameters.Choice):
        return trial.suggest_categorical(name, list(hp.values))
    log = hp.sampling == "log"
    if isinstance(hp, kt.engine.hyperparameters.Int):
        step = None if log else (hp.step or 1)
        return trial.suggest_int(name, hp.min_value, hp.max_value, step=step or 1, log=log)
    step = None if log else hp.step
    return trial.suggest_float(name, hp.min_value, hp.max_value, step=step, log=log)


def textbook_score(data, seed: int) -> float:
    hypermodel = search_spaces.get("mlp", input_shape=data.input_shape, num_classes=10)
    hp = kt.HyperParameters()
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    model = hypermodel.build(hp)
    history = hypermodel.fit(
        hp,
        model,
        data.x_train,
        data.y_train,
        validation_data=(data.x_val, data.y_val),
        epochs=MAX_EPOCHS,
        verbose=0,
    )
    return float(max(history.history["val_accuracy"]))


def best_at(curve: list[tuple[int, float]], epochs: int) -> float:
    """Best score found within ``epochs`` epochs (NaN before the first finished trial)."""
    reached = [best for spent, best in curve if spent <= epochs and math.isfinite(best)]
    return max(reached) if reached else math.nan


def plot(points: pd.DataFrame, bars: dict[int, float], budget: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grid = np.arange(1, budget + 1)
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for method, group in points.groupby("method", sort=False):
        per_seed = np.array(
            [
                [best_at(list(zip(g["epochs"], g["best_so_far"])), e) for e in grid]
                for _, g in group.groupby("seed")
            ]
        )
        mean = np.nanmean(per_seed, axis=0)
        ax.plot(grid, mean, label=method)
        ax.fill_between(grid, np.nanmin(per_seed, axis=0), np.nanmax(per_seed, axis=0), alpha=0.2)
    ax.axhline(float(np.mean(list(bars.values()))), color="k", ls="--", lw=1,
               label=f"textbook MLP, {MAX_EPOCHS} epochs")
    ax.set_xlabel("training epochs spent")
    ax.set_ylabel("best validation accuracy so far")
    ax.set_ylim(bottom=max(0.6, ax.get_ylim()[0]))
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title("MLP space, Fashion-MNIST: mean over seeds, band = min-max")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=10000, help="training + validation images")
    parser.add_argument("--budget", type=int, default=75, help="training epochs per search")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    points_file = args.out / "search-efficiency.csv"
    # Every finished (method, seed) is saved at once, and a rerun skips it: the whole comparison
    # takes about an hour here.
    rows = pd.read_csv(points_file, comment="#").to_dict("records") if points_file.is_file() else []
    rows = [r for r in rows if (r["budget"], r["images"]) == (args.budget, args.images)]
    done = {(row["method"], int(row["seed"])) for row in rows}
    bars = {}
    for seed in args.seeds:
        data = datasets.load("fashion_mnist", subset=args.images, seed=seed)
        bars[seed] = textbook_score(data, seed)
        print(f"seed {seed}: {data.summary()}; textbook val_accuracy {bars[seed]:.4f}", flush=True)
        for method in args.methods:
            if (method, seed) in done:
                continue
            started = time.monotonic()
            if method == "optuna_tpe_hyperband":
                curve = optuna_curve(data, seed, args.budget)
            else:
                curve = hpsearch_curve(method, data, seed, args.budget)
            rows += [
                dict(method=method, seed=seed, epochs=spent, best_so_far=best,
                     budget=args.budget, images=args.images)
                for spent, best in curve
            ]
            pd.DataFrame(rows).to_csv(points_file, index=False)
            print(
                f"  {method:22s} best {best_at(curve, args.budget):.4f} within {args.budget} epochs"
                f" ({time.monotonic() - started:.0f} s)",
                flush=True,
            )
    points = pd.DataFrame(rows)
    points = points[points["seed"].isin(args.seeds) & points["method"].isin(args.methods)]
    summary = []
    for method, group in points.groupby("method", sort=False):
        finals, beats = [], []
        for seed, g in group.groupby("seed"):
            curve = list(zip(g["epochs"], g["best_so_far"]))
            finals.append(best_at(curve, args.budget))
            beat = [spent for spent, best in curve
                    if best >= bars[seed] + BEAT_MARGIN and spent <= args.budget]
            beats.append(min(beat) if beat else math.nan)
        summary.append(
            dict(
                method=method,
                seeds=len(finals),
                budget_epochs=args.budget,
                best_val_accuracy_mean=float(np.mean(finals)),
                best_val_accuracy_std=float(np.std(finals, ddof=1)) if len(finals) > 1 else math.nan,
                epochs_to_beat_textbook_mean=float(np.nanmean(beats)) if any(
                    math.isfinite(b) for b in beats) else math.nan,
                seeds_beating_textbook=int(sum(math.isfinite(b) for b in beats)),
                textbook_val_accuracy_mean=float(np.mean(list(bars.values()))),
            )
        )
    table = pd.DataFrame(summary)
    table.to_csv(args.out / "search-efficiency-summary.csv", index=False)
    plot(points, bars, args.budget, args.out / "search-efficiency.png")
    print(table.to_string(index=False))


if __name__ == "__main__":
    main()
