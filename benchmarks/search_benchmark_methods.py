"""The methods of ``benchmarks/search_benchmark.py``, each run the way its user would run it.

Every method searches the same KerasTuner space (translated for those that do not know KerasTuner:
``kerastuner_translation``), on the same data, until it has trained the same number of epochs, and
starts from the space's default configuration (hpsearch does so by design; the others are given
it through their own means, named in each runner). Each runner returns the evaluations in the
order they ended, with the method's own incumbent after each one:

- hpsearch ``bohb``, ``hyperband``, ``bayesian``, ``random``: ``tuner.run_search``, as shipped
  (float32 for all methods alike); Hyperband's tuners for ``sweeps`` sweeps, the others until the
  budget is spent (a search is resumed with more trials until it is). ``bohb_gp``: ``bohb``
  with a Gaussian process instead of BOHB's kernel densities (``tuner.guided.
  ModelGuidedProposals.model``), the model ``bohb`` had before the densities measured ahead;
  ``bohb_early``: the densities started as TPE's, without waiting for more trials than
  dimensions, mixed with the uniform prior.
- ``kerastuner_hyperband``, ``kerastuner_bayesian``: stock ``keras_tuner.Hyperband`` and
  ``keras_tuner.BayesianOptimization`` on the same HyperModel, every argument at its default except
  the budget (max_epochs, factor, sweeps; max_trials = budget / max_epochs trials of max_epochs
  epochs); the first configuration they draw is the default one (``_start_from_default``).
- ``optuna_tpe_hyperband``: ``optuna`` TPE sampler with its ``HyperbandPruner`` (min 1, max
  ``max_epochs`` epochs, ``factor``), each trial reporting its validation score after every epoch;
  the default configuration is ``enqueue_trial``-ed first.
- ``smac_multifidelity``: SMAC3's ``MultiFidelityFacade`` (random forest + Hyperband over budgets
  1 ... ``max_epochs``), the default configuration first in its initial design; each budget trains
  a fresh model for that many epochs, as SMAC's examples do.
- ``dehb``: ``dehb.DEHB`` over the same fidelities; its first configuration is replaced by the
  default one.

A trial's score is its best epoch's validation score (KerasTuner's rule), for every method. Its
cost is the epochs it trained: a promoted Hyperband trial of KerasTuner or hpsearch continues its
parent's model and counts only the epochs it adds; SMAC3 and DEHB train each budget from scratch.
"""

from __future__ import annotations

import dataclasses
import gc
import math
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import keras_tuner as kt
import kerastuner_translation as translation
import numpy as np

HPSEARCH_METHODS = ("bohb", "bohb_gp", "bohb_early", "hyperband", "bayesian", "random")
# hpsearch's tuners with other proposal settings: method -> (tuner, ModelGuidedProposals' class
# attributes for the search). bohb_early: the densities start as TPE's, after 8 trials at a
# budget whatever the dimensions, each mixed with the uniform prior.
MODEL_VARIANTS = {
    "bohb_gp": ("bohb", {"model": "gp"}),
    "bohb_early": ("bohb", {"model": "kde", "wait_for_dimensions": False, "prior_weight": 1.0}),
}
METHODS = HPSEARCH_METHODS + (
    "kerastuner_hyperband",
    "kerastuner_bayesian",
    "optuna_tpe_hyperband",
    "smac_multifidelity",
    "dehb",
)
# The package each method needs beyond hpsearch's own (a method whose package is missing is skipped).
PACKAGES = {"optuna_tpe_hyperband": "optuna", "smac_multifidelity": "smac", "dehb": "dehb"}


@dataclasses.dataclass
class Problem:
    """One search to run: a space, its data, its objective and the epoch budget."""

    space: str  # the benchmark's name of the space (mlp, regression, cnn)
    space_reference: str  # what hpsearch's RunConfig.space gets ("mlp", "file.py:build_model")
    data: Any  # a datasets.Dataset, the same for every method
    objective: str  # "val_accuracy" or "val_mse"
    direction: str  # "max" or "min"
    max_epochs: int  # Hyperband's largest budget; a trial of the other methods at most
    factor: int  # Hyperband's reduction factor
    sweeps: int  # the budget: this many of hpsearch's Hyperband sweeps' worth of epochs
    seed: int
    work_dir: Path  # scratch space of this search, removed afterwards

    @property
    def budget(self) -> int:
        from tuner import hyperband_schedule

        return hyperband_schedule(self.max_epochs, self.factor, self.sweeps)[1]

    @property
    def test_metric(self) -> str:
        return self.objective.removeprefix("val_")

    def hypermodel(self):
        import search_spaces

        return search_spaces.get(self.space_reference, input_shape=self.data.input_shape,
                                 num_classes=self.data.num_classes)

    def best(self, scores) -> float:
        """The best of some scores in this problem's direction (NaN when none is finite)."""
        finite = [float(s) for s in scores if s is not None and math.isfinite(float(s))]
        if not finite:
            return math.nan
        return max(finite) if self.direction == "max" else min(finite)

    def better(self, score: float, than: float) -> bool:
        if not math.isfinite(score):
            return False
        if not math.isfinite(than):
            return True
        return score > than if self.direction == "max" else score < than

    def cost(self, score: float) -> float:
        """What a minimizer is told: the error (1 - accuracy) or the MSE; a failure, the worst."""
        if not math.isfinite(score):
            return 1.0 if self.direction == "max" else 1e9
        return 1.0 - score if self.direction == "max" else min(score, 1e9)


@dataclasses.dataclass
class Evaluation:
    """One trained configuration, as the search ended it."""

    spent: int  # epochs the search had trained when this evaluation ended (itself included)
    score: float  # its best epoch's validation score (NaN: failed or no epoch)
    epochs: int  # epochs its model was trained for in all (a continued trial: with its parent's)
    values: dict  # its hyperparameter values, by KerasTuner name
    incumbent: int | None = None  # index of the method's incumbent after it (None: none yet)


def run_method(method: str, problem: Problem) -> list[Evaluation]:
    """Run one method on one problem until it has trained ``problem.budget`` epochs."""
    problem.work_dir.mkdir(parents=True, exist_ok=True)
    try:
        if method in HPSEARCH_METHODS:
            return _run_hpsearch(method, problem)
        runner = {
            "kerastuner_hyperband": _run_kerastuner_hyperband,
            "kerastuner_bayesian": _run_kerastuner_bayesian,
            "optuna_tpe_hyperband": _run_optuna,
            "smac_multifidelity": _run_smac,
            "dehb": _run_dehb,
        }[method]
        return runner(problem)
    finally:
        keras.backend.clear_session()
        gc.unfreeze()
        shutil.rmtree(problem.work_dir, ignore_errors=True)


def freeze_survivors() -> None:
    """Collect, then keep what survives out of later collections (``gc.freeze``), as hpsearch's
    engine does before every build: Keras's ``clear_session`` and KerasTuner run a full
    collection before every model, whose cost grows with the objects alive (TensorFlow keeps
    thousands per trained model), from 0.3 s per model to seconds over a search. Called just
    before a model is built, when the previous one is garbage, it freezes no model. Only the
    wall time changes; what is trained does not."""
    gc.collect()
    gc.freeze()


class _FreezingHyperModel(kt.HyperModel):
    """A HyperModel that calls ``freeze_survivors`` before each build (for the stock tuners)."""

    def __init__(self, hypermodel):
        super().__init__(name=hypermodel.name, tunable=hypermodel.tunable)
        self.hypermodel = hypermodel

    def declare_hyperparameters(self, hp):
        return self.hypermodel.declare_hyperparameters(hp)

    def build(self, hp):
        freeze_survivors()
        return self.hypermodel.build(hp)

    def fit(self, hp, model, *args, **kwargs):
        return self.hypermodel.fit(hp, model, *args, **kwargs)


def missing_package(method: str) -> str | None:
    """The package a method needs that is not installed (None: it can run)."""
    import importlib.util

    package = PACKAGES.get(method)
    if package and importlib.util.find_spec(package) is None:
        return package
    return None


# --- hpsearch and stock KerasTuner: trials read back from the tuner ---------------------------------


def _best_so_far(problem: Problem, evaluations: list[Evaluation]) -> list[Evaluation]:
    """Incumbent = the best-scored trial ended so far: how KerasTuner and hpsearch rank trials."""
    best = None
    for index, evaluation in enumerate(evaluations):
        if math.isfinite(evaluation.score) and (
                best is None or problem.better(evaluation.score, evaluations[best].score)):
            best = index
        evaluation.incumbent = best
    return evaluations


def _run_hpsearch(method: str, problem: Problem) -> list[Evaluation]:
    from tuner.guided import ModelGuidedProposals

    tuner, settings = MODEL_VARIANTS.get(method, (method, {}))
    shipped = {name: getattr(ModelGuidedProposals, name) for name in settings}
    for name, value in settings.items():
        setattr(ModelGuidedProposals, name, value)
    try:
        return _run_hpsearch_tuner(tuner, problem)
    finally:
        for name, value in shipped.items():
            setattr(ModelGuidedProposals, name, value)


def _run_hpsearch_tuner(method: str, problem: Problem) -> list[Evaluation]:
    from tuner import RunConfig, run_search
    from tuner.results import read_trial_values

    settings = dict(space=problem.space_reference, tuner=method, max_epochs=problem.max_epochs,
                    factor=problem.factor, seed=problem.seed, objective=problem.objective,
                    direction=problem.direction, precision="float32")
    run_dir = problem.work_dir / "run"
    if method in ("hyperband", "bohb"):
        config = RunConfig(**settings, hyperband_iterations=problem.sweeps)
        result = run_search(config, run_dir, data=problem.data, progress=None)
    else:
        # Trials stop early (patience 3), so how many fill the budget is not known beforehand:
        # the search is resumed with more trials until the budget is spent. The first call's
        # count (budget / max_epochs) is what hpsearch's bayesian sizes its random start by.
        max_trials = math.ceil(problem.budget / problem.max_epochs)
        while True:
            config = RunConfig(**settings, max_trials=max_trials)
            result = run_search(config, run_dir, data=problem.data, progress=None)
            spent = int(result.trials["epochs"].fillna(0).sum())
            if spent >= problem.budget:
                break
            max_trials = len(result.trials) + math.ceil((problem.budget - spent) / problem.max_epochs)
    values = read_trial_values(run_dir)
    evaluations, spent = [], 0
    for row in result.trials.itertuples():
        added = int(row.epochs) if _finite(row.epochs) else 0
        spent += added
        trial_values = values.get(str(row.trial_id), {})
        score = float(row.score) if row.status == "COMPLETED" and _finite(row.score) else math.nan
        evaluations.append(Evaluation(spent, score, int(trial_values.get("tuner/epochs", added)),
                                      _strip(trial_values)))
    return _best_so_far(problem, evaluations)


def _start_from_default(oracle, space: kt.HyperParameters) -> None:
    """Stock KerasTuner draws its first configuration at random; hpsearch and every other method
    here start from the space's default one. The one change made to the stock tuners: their
    oracle's first draw returns the defaults. ``Oracle._random_values`` is private KerasTuner
    1.4.8 API (hpsearch's own engine overrides the same method for the same purpose)."""
    draw = oracle._random_values
    first = [True]

    def first_the_default():
        if first[0]:
            first[0] = False
            return translation.default_values(space)
        return draw()

    oracle._random_values = first_the_default


def _kerastuner_evaluations(problem: Problem, tuner, counts_continued: bool) -> list[Evaluation]:
    evaluations, spent = [], 0
    for trial_id in sorted(tuner.oracle.trials):  # created, and so ended, in this order
        trial = tuner.oracle.trials[trial_id]
        values = dict(trial.hyperparameters.values)
        epochs = int(values.get("tuner/epochs", problem.max_epochs))
        added = epochs - int(values.get("tuner/initial_epoch", 0)) if counts_continued else epochs
        spent += added
        completed = trial.status == "COMPLETED" and trial.score is not None
        score = float(trial.score) if completed and _finite(trial.score) else math.nan
        evaluations.append(Evaluation(spent, score, epochs, _strip(values)))
    return _best_so_far(problem, evaluations)


def _fit_arguments(problem: Problem) -> dict:
    data = problem.data
    return dict(x=data.x_train, y=data.y_train, validation_data=(data.x_val, data.y_val), verbose=0)


def _run_kerastuner_hyperband(problem: Problem) -> list[Evaluation]:
    hypermodel = _FreezingHyperModel(problem.hypermodel())
    keras.utils.set_random_seed(problem.seed)
    tuner = kt.Hyperband(
        hypermodel,
        objective=kt.Objective(problem.objective, problem.direction),
        max_epochs=problem.max_epochs,
        factor=problem.factor,
        hyperband_iterations=problem.sweeps,
        seed=problem.seed + 1,  # KerasTuner reads 0 as "no seed"
        directory=str(problem.work_dir),
        project_name="kerastuner",
        overwrite=True,
    )
    _start_from_default(tuner.oracle, tuner.oracle.get_space())
    tuner.search(**_fit_arguments(problem))
    return _kerastuner_evaluations(problem, tuner, counts_continued=True)


def _run_kerastuner_bayesian(problem: Problem) -> list[Evaluation]:
    hypermodel = _FreezingHyperModel(problem.hypermodel())
    keras.utils.set_random_seed(problem.seed)
    tuner = kt.BayesianOptimization(
        hypermodel,
        objective=kt.Objective(problem.objective, problem.direction),
        max_trials=math.ceil(problem.budget / problem.max_epochs),
        seed=problem.seed + 1,
        directory=str(problem.work_dir),
        project_name="kerastuner",
        overwrite=True,
    )
    _start_from_default(tuner.oracle, tuner.oracle.get_space())
    tuner.search(epochs=problem.max_epochs, **_fit_arguments(problem))
    return _kerastuner_evaluations(problem, tuner, counts_continued=False)


# --- optimizers that ask for a configuration and a budget, and are told a score ---------------------


class _EpochScores(keras.callbacks.Callback):
    """Keeps each epoch's validation score; ``stop(epoch, score)`` may end training early."""

    def __init__(self, monitor: str, stop: Callable[[int, float], bool] | None = None):
        super().__init__()
        self.monitor, self.stop, self.scores = monitor, stop, []

    def on_epoch_end(self, epoch, logs=None):
        score = float((logs or {}).get(self.monitor, math.nan))
        self.scores.append(score)
        if self.stop is not None and self.stop(epoch, score):
            self.model.stop_training = True


def train_configuration(problem: Problem, hypermodel, space, values: dict, epochs: int, seed: int,
                        stop: Callable[[int, float], bool] | None = None) -> list[float]:
    """Build the configuration through the HyperModel and train it as KerasTuner would
    (``hypermodel.fit``: its batch size and schedule); each epoch's validation score.
    A configuration that fails to build or train has the scores it reached (maybe none)."""
    freeze_survivors()
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    callback = _EpochScores(problem.objective, stop)
    hp = translation.hyperparameters_with(space, values)
    try:
        model = hypermodel.build(hp)
        hypermodel.fit(hp, model, problem.data.x_train, problem.data.y_train,
                       validation_data=(problem.data.x_val, problem.data.y_val), epochs=epochs,
                       callbacks=[callback], verbose=0)
    except Exception as error:  # noqa: BLE001 (a failed trial is a result, as in KerasTuner)
        print(f"    a {problem.space} configuration failed: {type(error).__name__}: {error}",
              flush=True)
    return callback.scores


class _Searcher:
    """Shared state of the ask-and-tell runners: the space, the epochs spent, the evaluations."""

    def __init__(self, problem: Problem):
        self.problem = problem
        self.hypermodel = problem.hypermodel()
        self.space = translation.built_space(self.hypermodel, kt.Objective(
            problem.objective, problem.direction), str(problem.work_dir / "space"))
        self.spent = 0
        self.evaluations: list[Evaluation] = []

    @property
    def budget_left(self) -> int:
        return self.problem.budget - self.spent

    def train(self, values: dict, epochs: int,
              stop: Callable[[int, float], bool] | None = None) -> tuple[float, int]:
        """Train for ``epochs`` epochs, stopped early by ``stop`` or when the budget is spent (the
        model is built for ``epochs`` all the same: a cosine schedule keeps its length).
        Returns (score, epochs trained)."""
        counted = []

        def count_and_stop(epoch, score):
            counted.append(epoch)
            return (stop is not None and stop(epoch, score)) or len(counted) >= self.budget_left

        scores = train_configuration(self.problem, self.hypermodel, self.space, values, epochs,
                                     self.problem.seed * 1000 + len(self.evaluations),
                                     count_and_stop)
        self.spent += len(scores)
        return self.problem.best(scores), len(scores)

    def record(self, score: float, epochs: int, values: dict, incumbent: int | None) -> int:
        self.evaluations.append(Evaluation(self.spent, score, epochs, values, incumbent))
        return len(self.evaluations) - 1


def _run_optuna(problem: Problem) -> list[Evaluation]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    searcher = _Searcher(problem)
    study = optuna.create_study(
        direction="maximize" if problem.direction == "max" else "minimize",
        sampler=optuna.samplers.TPESampler(seed=problem.seed),
        pruner=optuna.pruners.HyperbandPruner(
            min_resource=1, max_resource=problem.max_epochs, reduction_factor=problem.factor),
    )
    study.enqueue_trial(translation.default_values(searcher.space))
    while searcher.budget_left > 0:
        trial = study.ask()
        values = translation.suggest_optuna(trial, searcher.space)
        pruned = []

        def report(epoch, score, trial=trial, pruned=pruned):
            # Optuna's resource is the epochs trained (1-based): its first rung is min_resource.
            # A diverged epoch reports the worst score (Optuna's pruners compare the values).
            worst = -1e9 if problem.direction == "max" else 1e9
            trial.report(score if math.isfinite(score) else worst, epoch + 1)
            if trial.should_prune():
                pruned.append(epoch)
            return bool(pruned)

        score, trained = searcher.train(values, problem.max_epochs, report)
        trial.set_user_attr("index", len(searcher.evaluations))
        if pruned or trained < problem.max_epochs:  # pruned, or cut short by the budget
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        elif math.isfinite(score):
            study.tell(trial, score)
        else:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
        completed = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,), deepcopy=False)
        incumbent = study.best_trial.user_attrs["index"] if completed else None
        searcher.record(score, trained, values, incumbent)
    return searcher.evaluations


def _run_smac(problem: Problem) -> list[Evaluation]:
    from smac import MultiFidelityFacade, Scenario
    from smac.initial_design import RandomInitialDesign
    from smac.runhistory.dataclasses import TrialValue

    class DefaultFirstDesign(RandomInitialDesign):
        """SMAC's random initial design with its additional (default) configuration put first."""

        def select_configurations(self):
            configs = super().select_configurations()
            return self._additional_configs + [c for c in configs
                                               if c not in self._additional_configs]

    searcher = _Searcher(problem)
    configspace = translation.to_configspace(searcher.space, problem.seed)
    # SMAC's budget is a number of trials: as many as hpsearch's Hyperband runs in the same budget
    # (its initial design is a quarter of them, its own default ratio).
    from tuner import hyperband_schedule

    n_trials = hyperband_schedule(problem.max_epochs, problem.factor, problem.sweeps)[0]
    scenario = Scenario(configspace, deterministic=True, n_trials=n_trials, min_budget=1,
                        max_budget=problem.max_epochs, seed=problem.seed,
                        output_directory=problem.work_dir / "smac", name="benchmark")
    design = DefaultFirstDesign(scenario, n_configs_per_hyperparameter=10, max_ratio=0.25,
                                additional_configs=[configspace.get_default_configuration()])
    facade = MultiFidelityFacade(
        scenario,
        target_function=_told_not_called,
        initial_design=design,
        intensifier=MultiFidelityFacade.get_intensifier(scenario, eta=problem.factor),
        overwrite=True,
        logging_level=40,
    )
    highest: dict[Any, int] = {}  # configuration -> index of its evaluation at its highest budget
    while searcher.budget_left > 0:
        info = facade.ask()
        values = translation.from_configuration(searcher.space, info.config)
        epochs = round(info.budget)
        score, trained = searcher.train(values, epochs)
        facade.tell(info, TrialValue(cost=problem.cost(score)))
        index = len(searcher.evaluations)
        previous = highest.get(info.config)
        if trained == epochs and math.isfinite(score) and (
                previous is None or searcher.evaluations[previous].epochs <= epochs):
            highest[info.config] = index
        current = facade.intensifier.get_incumbent()
        incumbent = highest.get(current) if current is not None else None
        searcher.record(score, trained, values, incumbent)
    return searcher.evaluations


def _told_not_called(config, seed: int = 0, budget: float = 0.0) -> float:
    raise NotImplementedError("The benchmark runs SMAC through ask and tell.")


def _run_dehb(problem: Problem) -> list[Evaluation]:
    from dehb import DEHB

    searcher = _Searcher(problem)
    configspace = translation.to_configspace(searcher.space, problem.seed)
    optimizer = DEHB(cs=configspace, dimensions=len(list(configspace.values())), min_fidelity=1,
                     max_fidelity=problem.max_epochs, eta=problem.factor, n_workers=1,
                     seed=problem.seed, output_path=str(problem.work_dir / "dehb"),
                     log_level="ERROR")
    incumbent = None
    while searcher.budget_left > 0:
        job = optimizer.ask()
        if not searcher.evaluations:
            # DEHB has no option to start from a given configuration: its first one is replaced by
            # the default, in the job and in DEHB's record of it (which tell() reads back).
            default = configspace.get_default_configuration()
            job["config"] = default
            optimizer.config_repository.configs[job["config_id"]].config = (
                optimizer.configspace_to_vector(default))
        values = translation.from_configuration(searcher.space, job["config"])
        epochs = round(job["fidelity"])
        score, trained = searcher.train(values, epochs)
        before = optimizer.inc_score
        optimizer.tell(job, {"fitness": problem.cost(score), "cost": trained})
        if optimizer.inc_score < before and math.isfinite(score):
            incumbent = len(searcher.evaluations)  # DEHB's incumbent is the one it was just told
        searcher.record(score, trained, values, incumbent)
    return searcher.evaluations


# --- the incumbent as it would be handed to a user -----------------------------------------------


class _BestWeights(keras.callbacks.Callback):
    def __init__(self, problem: Problem):
        super().__init__()
        self.problem, self.best, self.weights = problem, math.nan, None

    def on_epoch_end(self, epoch, logs=None):
        score = float((logs or {}).get(self.problem.objective, math.nan))
        if self.problem.better(score, self.best):
            self.best, self.weights = score, self.model.get_weights()

    def on_train_end(self, logs=None):
        if self.weights is not None:
            self.model.set_weights(self.weights)


def retrain_and_test(problem: Problem, values: dict, epochs: int, seed: int) -> dict[str, float]:
    """Retrain a configuration from scratch for ``epochs`` epochs on the training split, keep the
    weights of its best validation epoch (as KerasTuner's and hpsearch's best models are kept),
    and score it once on the test split. Returns ``{"val": ..., "test": ...}`` (NaN: failed)."""
    hypermodel = problem.hypermodel()
    space = translation.hyperparameters_with(kt.HyperParameters(), values)
    freeze_survivors()
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    best = _BestWeights(problem)
    try:
        model = hypermodel.build(space)
        hypermodel.fit(space, model, problem.data.x_train, problem.data.y_train,
                       validation_data=(problem.data.x_val, problem.data.y_val), epochs=epochs,
                       callbacks=[best], verbose=0)
        if best.weights is None:
            return {"val": math.nan, "test": math.nan}
        scores = model.evaluate(problem.data.x_test, problem.data.y_test, return_dict=True,
                                verbose=0)
        test = float(scores[problem.test_metric])
    except Exception as error:  # noqa: BLE001
        print(f"    retraining failed: {type(error).__name__}: {error}", flush=True)
        return {"val": math.nan, "test": math.nan}
    finally:
        keras.backend.clear_session()
    return {"val": best.best, "test": test if np.isfinite(test) else math.nan}


def _strip(values: dict) -> dict:
    return {name: value for name, value in values.items() if not name.startswith("tuner/")}


def _finite(value) -> bool:
    try:
        return value is not None and math.isfinite(float(value))
    except (TypeError, ValueError):
        return False
