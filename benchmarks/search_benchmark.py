"""Search efficiency at equal epoch budgets: hpsearch against KerasTuner, Optuna, SMAC3 and DEHB.

One command runs every method on every space for several seeds, as HPO papers measure it:

    python benchmarks/search_benchmark.py --out ~/runs/search-benchmark      # hours; resumable
    python benchmarks/search_benchmark.py --short --spaces regression --out /tmp/sb   # a minute

Methods (``search_benchmark_methods``): hpsearch ``bohb``, ``hyperband``, ``bayesian``,
``random``; stock KerasTuner ``Hyperband`` and ``BayesianOptimization``; Optuna TPE with its
Hyperband pruner; SMAC3's multi-fidelity facade; DEHB. Every one searches the same KerasTuner
space (translated hyperparameter by hyperparameter, conditions included, for Optuna, SMAC3 and
DEHB), on the same data, starts from the space's default configuration, and stops when it has
trained the same number of epochs: ``sweeps`` times the epochs of one of hpsearch's Hyperband
sweeps (``max_epochs``, ``factor``).

Spaces (``SPACES``): ``mlp`` (hpsearch's MLP on a Fashion-MNIST subset), ``regression`` (a user's
``build_model(hp)`` on Friedman's regression problem #1, written to an .npz), ``cnn`` (hpsearch's
CNN on a smaller Fashion-MNIST subset, fewer seeds). The data subset is drawn with each seed.

The score that counts is the **test** score of the method's incumbent (the configuration it would
hand to a user), retrained from scratch on the training split for the epochs it had in the
search, the weights of its best validation epoch kept, scored once on the test split; beside it
``best_val``, the incumbent's validation score in the search. Both at several budget points.

Results: every (space, method, seed) is appended to ``OUT/results.jsonl`` as it finishes, and a
rerun skips those (so an interrupted run resumes; change a setting and its space starts afresh).
When every task is done, and with ``--report-only`` at any time, it writes
``docs/results/search-efficiency-{space}.csv`` (method, seed, budget_epochs, best_val,
incumbent_test, ...), ``docs/results/search-efficiency-{space}-summary.csv`` (mean, standard
error and mean rank per method and budget point), ``...-{space}-paired.csv`` (``bohb``'s lead
over each method within a seed: mean, standard error, wins) and
``docs/benchmarks/search-efficiency-{space}.png``.
Their first line is ``# command: ...``; read them with ``pd.read_csv(path, comment="#")``.

Benchmark-only packages: ``pip install -e '.[bench]'`` (optuna, smac, dehb's dependencies) and
``pip install --no-deps dehb`` (dehb 0.1.2 pins numpy<2, which it does not need; see
docs/benchmarks/search-efficiency.md). A method whose package is missing is skipped, and said so.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import os
import shlex
import sys
import time
import traceback
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

BENCHMARKS = Path(__file__).resolve().parent
REPOSITORY = BENCHMARKS.parent
if str(BENCHMARKS) not in sys.path:
    sys.path.insert(0, str(BENCHMARKS))

from search_benchmark_methods import METHODS, missing_package  # noqa: E402

REGRESSION_SPACE = f"{BENCHMARKS / 'search_benchmark_regression.py'}:build_model"
# Friedman #1's noise (standard deviation of the target's noise; the target's own is about 5).
REGRESSION_NOISE = 1.0
# The budget points, as fractions of the budget: one and two thirds of it (one and two of three
# sweeps) and all of it. The incumbent is retrained and tested at each.
BUDGET_FRACTIONS = (1 / 3, 2 / 3, 1.0)


@dataclasses.dataclass(frozen=True)
class SpaceSettings:
    """How one space is benchmarked; results are kept apart by these settings' fingerprint."""

    name: str
    examples: int  # training + validation examples drawn with each seed (10% validation)
    test_examples: int | None  # test examples (None: the whole test set)
    max_epochs: int  # Hyperband's largest budget, the longest trial of any method
    factor: int  # Hyperband's reduction factor
    sweeps: int  # budget: this many Hyperband sweeps' worth of epochs
    seeds: int  # seeds 0 .. seeds-1

    @property
    def objective(self) -> tuple[str, str]:
        return ("val_mse", "min") if self.name == "regression" else ("val_accuracy", "max")

    def fingerprint(self) -> str:
        # The count of seeds is left out: a seed's result does not depend on how many run.
        settings = {k: v for k, v in dataclasses.asdict(self).items() if k != "seeds"}
        text = json.dumps(settings, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def describe(self) -> str:
        from tuner import hyperband_schedule

        budget = hyperband_schedule(self.max_epochs, self.factor, self.sweeps)[1]
        data = {
            "mlp": "Fashion-MNIST",
            "cnn": "Fashion-MNIST",
            "regression": f"Friedman #1 (sklearn make_friedman1, noise {REGRESSION_NOISE})",
        }[self.name]
        test = "all test images" if self.test_examples is None else f"{self.test_examples} test"
        metric = "test MSE, lower is better" if self.name == "regression" else (
            "test accuracy, higher is better")
        return (f"{self.name}: {data}, {self.examples} training + validation examples per seed "
                f"(90/10), {test}; max_epochs {self.max_epochs}, factor {self.factor}, budget "
                f"{budget} epochs ({self.sweeps} Hyperband sweeps); seeds 0-{self.seeds - 1}; "
                f"{metric}")


# The full run, sized from its first results to take about 6 hours of 2 cores
# (docs/benchmarks/search-efficiency.md has the measurements): Hyperband of 6 epochs at most,
# factor 3 (10 trials, 36 epochs a sweep), 3 sweeps, so 108 epochs per search.
SPACES = {
    "mlp": SpaceSettings("mlp", examples=2000, test_examples=None, max_epochs=6, factor=3,
                         sweeps=3, seeds=10),
    "regression": SpaceSettings("regression", examples=1000, test_examples=2000, max_epochs=6,
                                factor=3, sweeps=3, seeds=10),
    # An epoch of the textbook CNN costs about 20 times the MLP's per image: fewer images, a
    # shorter Hyperband (3 epochs at most: 6 trials, 11 epochs a sweep) and 3 seeds.
    "cnn": SpaceSettings("cnn", examples=700, test_examples=1000, max_epochs=3, factor=3,
                         sweeps=3, seeds=3),
}
# --short: tiny data, one short sweep, 2 seeds (the test suite's run).
SHORT_SPACES = {
    "mlp": SpaceSettings("mlp", examples=300, test_examples=200, max_epochs=3, factor=3,
                         sweeps=1, seeds=2),
    "regression": SpaceSettings("regression", examples=200, test_examples=100, max_epochs=2,
                                factor=2, sweeps=1, seeds=2),
    "cnn": SpaceSettings("cnn", examples=200, test_examples=100, max_epochs=3, factor=3,
                         sweeps=1, seeds=2),
}

RESULTS_FILE = "results.jsonl"
# Tasks a worker process runs before it is replaced by a fresh one.
TASKS_PER_WORKER = 6
RUN_FILE = "run.json"
CSV_COLUMNS = ["method", "seed", "budget_epochs", "best_val", "incumbent_test", "incumbent_epochs",
               "incumbent_retrained_val", "evaluations"]


# --- one task: a method on a space for one seed ------------------------------------------------


def load_data(settings: SpaceSettings, seed: int, out: Path, data_dir: str | None):
    """The seed's train / validation / test splits of a space's data (the same for all methods)."""
    import datasets

    if settings.name == "regression":
        from datasets.user import load_user_data

        return load_user_data(regression_file(settings, out), seed=seed)
    return datasets.load("fashion_mnist", subset=settings.examples,
                         test_subset=settings.test_examples, seed=seed, data_dir=data_dir,
                         download=False)


def regression_file(settings: SpaceSettings, out: Path) -> Path:
    """Friedman #1 as a user's .npz (x_train, y_train, x_test, y_test), written once."""
    import numpy as np
    from sklearn.datasets import make_friedman1

    path = out / "data" / f"friedman1-{settings.examples}-{settings.test_examples}.npz"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        x, y = make_friedman1(n_samples=settings.examples + settings.test_examples,
                              noise=REGRESSION_NOISE, random_state=0)
        x, y = x.astype("float32"), y.astype("float32")
        part = path.with_name(f"{path.stem}.{os.getpid()}.part.npz")
        np.savez(part, x_train=x[:settings.examples], y_train=y[:settings.examples],
                 x_test=x[settings.examples:], y_test=y[settings.examples:])
        part.replace(path)
    return path


def use_threads(threads: int) -> None:
    """TensorFlow's thread pools for this process (before it runs anything)."""
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)


def run_task(settings: SpaceSettings, method: str, seed: int, out: str,
             data_dir: str | None) -> dict:
    """Run one search and score its incumbents; the record appended to results.jsonl."""
    import logging
    import warnings

    from search_benchmark_methods import Problem, retrain_and_test, run_method

    # SMAC's random forest averages empty leaves while it has few observations; a continued
    # Hyperband trial of stock KerasTuner restores weights only (its warning says so every time);
    # TensorFlow warns of retracing with every new model.
    warnings.filterwarnings("ignore", "Mean of empty slice", RuntimeWarning)
    warnings.filterwarnings("ignore", "invalid value encountered", RuntimeWarning)
    warnings.filterwarnings("ignore", "Skipping variable loading for optimizer")
    # dehb 0.1.2 calls ConfigSpace 0.x names that ConfigSpace 1.x deprecates (and still serves).
    warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"dehb\.")
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    started, cpu_started = time.monotonic(), time.process_time()
    out = Path(out)
    data = load_data(settings, seed, out, data_dir)
    objective, direction = settings.objective
    problem = Problem(
        space=settings.name,
        space_reference=REGRESSION_SPACE if settings.name == "regression" else settings.name,
        data=data, objective=objective, direction=direction, max_epochs=settings.max_epochs,
        factor=settings.factor, sweeps=settings.sweeps, seed=seed,
        work_dir=out / "work" / f"{settings.name}-{method}-{seed}-{os.getpid()}",
    )
    evaluations = run_method(method, problem)
    searched = time.monotonic() - started
    budget = problem.budget
    retrained: dict[tuple[str, int], dict] = {}
    points = []
    for point in budget_points(budget):
        ended = [e for e in evaluations if e.spent <= point]
        incumbent = ended[-1].incumbent if ended else None
        row = dict(budget_epochs=point, best_val=math.nan, incumbent_test=math.nan,
                   incumbent_epochs=None, incumbent_retrained_val=math.nan,
                   evaluations=len(ended))
        if incumbent is not None:
            chosen = evaluations[incumbent]
            key = (json.dumps(chosen.values, sort_keys=True), chosen.epochs)
            if key not in retrained:
                retrained[key] = retrain_and_test(problem, chosen.values, chosen.epochs, seed)
            row.update(best_val=chosen.score, incumbent_test=retrained[key]["test"],
                       incumbent_epochs=chosen.epochs,
                       incumbent_retrained_val=retrained[key]["val"])
        points.append(row)
    final = evaluations[evaluations[-1].incumbent].values if (
        evaluations and evaluations[-1].incumbent is not None) else None
    return dict(
        space=settings.name, method=method, seed=seed, fingerprint=settings.fingerprint(),
        budget_epochs=budget, points=points,
        curve=[[e.spent, None if e.incumbent is None else evaluations[e.incumbent].score]
               for e in evaluations],
        epochs_trained=evaluations[-1].spent if evaluations else 0,
        incumbent_values=final, search_seconds=round(searched, 1),
        seconds=round(time.monotonic() - started, 1),
        # CPU seconds of the task's process, all its threads: what it costs on a free core.
        cpu_seconds=round(time.process_time() - cpu_started, 1), code=code_fingerprint(),
    )


def code_fingerprint() -> str:
    """A hash of the library and benchmark sources a task ran with: the library is edited while a
    long run goes on, and each task imports it afresh."""
    digest = hashlib.sha256()
    for folder in ("tuner", "search_spaces", "datasets", "benchmarks"):
        for path in sorted((REPOSITORY / folder).glob("*.py")):
            if folder != "benchmarks" or path.name.startswith(("search_benchmark", "kerastuner_")):
                digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:12]


def budget_points(budget: int) -> list[int]:
    return sorted({max(1, round(fraction * budget)) for fraction in BUDGET_FRACTIONS})


# --- the run: tasks, resume, parallel workers --------------------------------------------------


def read_records(out: Path) -> list[dict]:
    path = out / RESULTS_FILE
    if not path.is_file():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line cut short by a kill: that task runs again
    return records


def append_record(out: Path, record: dict) -> None:
    with open(out / RESULTS_FILE, "a") as handle:
        handle.write(json.dumps(record) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def plan_tasks(spaces: dict[str, SpaceSettings], methods: list[str]):
    """(settings, method, seed), seed by seed so that complete seeds accumulate early, the spaces
    taking turns within a seed so that the first results time every space."""
    most = max(s.seeds for s in spaces.values())
    return [(settings, method, seed)
            for seed in range(most)
            for method in methods
            for settings in spaces.values() if seed < settings.seeds]


def run_tasks(tasks, out: Path, data_dir: str | None, jobs: int) -> None:
    done = {(r["space"], r["method"], r["seed"], r["fingerprint"]) for r in read_records(out)}
    todo = [t for t in tasks if (t[0].name, t[1], t[2], t[0].fingerprint()) not in done]
    print(f"{len(tasks) - len(todo)} of {len(tasks)} tasks already done; {len(todo)} to run "
          f"with {jobs} worker(s).", flush=True)
    seconds: dict[tuple[str, str], list[float]] = {}
    current = {(t[0].name, t[0].fingerprint()) for t in tasks}
    for record in read_records(out):
        if (record["space"], record["fingerprint"]) in current:
            seconds.setdefault((record["space"], record["method"]), []).append(record["seconds"])
    started, finished = time.monotonic(), 0

    def report(task, record):
        nonlocal finished
        finished += 1
        append_record(out, record)
        seconds.setdefault((record["space"], record["method"]), []).append(record["seconds"])
        last = record["points"][-1]
        left = estimate_left(todo[finished:] if jobs == 1 else pending, seconds) / jobs
        print(f"[{finished}/{len(todo)}] {record['space']} {record['method']} seed "
              f"{record['seed']}: incumbent test {last['incumbent_test']:.4f}, val "
              f"{last['best_val']:.4f} at {last['budget_epochs']} epochs; "
              f"{record['seconds']:.0f} s (search {record['search_seconds']:.0f} s); elapsed "
              f"{(time.monotonic() - started) / 3600:.2f} h, about {left / 3600:.1f} h left",
              flush=True)

    pending = list(todo)
    if jobs == 1:
        for task in todo:
            settings, method, seed = task
            try:
                report(task, run_task(settings, method, seed, str(out), data_dir))
            except Exception:  # noqa: BLE001 (one failed task must not stop the others)
                print(f"{settings.name} {method} seed {seed} failed:\n{traceback.format_exc()}",
                      flush=True)
        return
    import multiprocessing

    # Worker processes with one TensorFlow thread each (small models on 2 cores train more epochs
    # per second as 2 single-threaded processes), each replaced after a few tasks (KerasTuner's
    # memory grows over trials) but not after every one (importing TensorFlow takes seconds).
    # multiprocessing.Pool, not ProcessPoolExecutor: the latter's max_tasks_per_child stopped
    # starting new workers here (Python 3.11) once its first ones had retired.
    threads = max(1, (os.cpu_count() or 2) // jobs)
    context = multiprocessing.get_context("spawn")
    with context.Pool(jobs, initializer=use_threads, initargs=(threads,),
                      maxtasksperchild=TASKS_PER_WORKER) as pool:
        arguments = [(task, str(out), data_dir) for task in todo]
        for task, record, error in pool.imap_unordered(_run_task_safely, arguments):
            pending.remove(task)
            if error is None:
                report(task, record)
            else:
                print(f"{task[0].name} {task[1]} seed {task[2]} failed:\n{error}", flush=True)


def _run_task_safely(arguments) -> tuple[tuple, dict | None, str | None]:
    """``run_task`` in a worker: (task, record, None), or (task, None, the traceback)."""
    task, out, data_dir = arguments
    settings, method, seed = task
    try:
        return task, run_task(settings, method, seed, out, data_dir), None
    except Exception:  # noqa: BLE001 (one failed task must not stop the others)
        return task, None, traceback.format_exc()


def estimate_left(tasks, seconds: dict[tuple[str, str], list[float]]) -> float:
    """Seconds the tasks will take, from the mean of finished ones of the same space and method
    (else of the same space, else of all)."""
    def mean(values):
        return sum(values) / len(values) if values else math.nan

    every = [s for values in seconds.values() for s in values]
    total = 0.0
    for settings, method, _ in tasks:
        same = mean(seconds.get((settings.name, method), []))
        if not math.isfinite(same):
            same = mean([s for (space, _), v in seconds.items() if space == settings.name
                         for s in v])
        total += same if math.isfinite(same) else mean(every) if every else 0.0
    return total


# --- tables and plots ---------------------------------------------------------------------------


def points_table(records: list[dict]):
    """One row per method, seed and budget point (CSV_COLUMNS)."""
    import pandas as pd

    rows = [dict(method=r["method"], seed=r["seed"], **p) for r in records for p in r["points"]]
    table = pd.DataFrame(rows, columns=CSV_COLUMNS)
    return table.sort_values(["method", "seed", "budget_epochs"], kind="stable",
                             ignore_index=True)


def summary_table(points, direction: str, methods: list[str]):
    """Mean, standard error and mean rank over seeds per method and budget point.

    Ranks (1 = best, ties shared) compare the methods within a seed and budget point, over the
    seeds every one of ``methods`` has finished (none while a seed is incomplete); a method
    without an incumbent ranks last.
    """
    import numpy as np
    import pandas as pd

    ascending = direction == "min"
    complete = [seed for seed, group in points.groupby("seed")
                if set(methods) <= set(group["method"])]
    ranked = points[points["seed"].isin(complete)].copy()
    for column in ("incumbent_test", "best_val"):
        ranked[f"{column}_rank"] = ranked.groupby(["seed", "budget_epochs"])[column].rank(
            ascending=ascending, method="average", na_option="bottom")
    rows = []
    for (method, budget), group in points.groupby(["method", "budget_epochs"], sort=False):
        ranks = ranked[(ranked["method"] == method) & (ranked["budget_epochs"] == budget)]
        row = dict(method=method, budget_epochs=budget, seeds=int(group["seed"].nunique()),
                   seeds_ranked=len(ranks))
        # The per-seed columns' names hold their mean over seeds (the score tables are read by
        # name), beside its standard error and the mean rank over seeds.
        for column in ("incumbent_test", "best_val"):
            values = group[column].dropna()
            row[column] = values.mean() if len(values) else np.nan
            row[f"{column}_se"] = (values.std(ddof=1) / np.sqrt(len(values)) if len(values) > 1
                                   else np.nan)
            row[f"{column}_mean_rank"] = ranks[f"{column}_rank"].mean() if len(ranks) else np.nan
        rows.append(row)
    order = {method: index for index, method in enumerate(methods)}
    summary = pd.DataFrame(rows)
    if summary.empty:
        return summary
    summary["_order"] = summary["method"].map(order)
    return summary.sort_values(["budget_epochs", "_order"], ignore_index=True).drop(
        columns="_order")


def paired_table(points, direction: str, methods: list[str], reference: str = "bohb"):
    """The default tuner against each other method, seed by seed: every seed draws its own data
    and split, shared by all methods, so the difference within a seed leaves out how hard that
    seed's data is, which dominates the spread of the scores themselves.

    Per method and budget point, over the seeds both finished: the two mean test scores
    (``incumbent_test``, ``{reference}_incumbent_test``), ``{reference}_lead``, the mean of
    the reference's per-seed lead in test score (positive: the reference is better; accuracy
    points, or MSE the other method has more), its standard error, and the lead in standard
    errors; ``{reference}_wins`` counts the seeds it is ahead. Empty without the reference.
    """
    import numpy as np
    import pandas as pd

    lead, se = f"{reference}_lead", f"{reference}_lead_se"
    columns = ["method", "budget_epochs", "seeds_paired", "incumbent_test",
               f"{reference}_incumbent_test", lead, se, f"{lead}_in_se", f"{reference}_wins"]
    sign = 1.0 if direction == "max" else -1.0
    scores = points.pivot_table(index=["budget_epochs", "seed"], columns="method",
                                values="incumbent_test", aggfunc="first")
    rows = []
    if reference in scores.columns:
        for method in methods:
            if method == reference or method not in scores.columns:
                continue
            for budget, group in scores.groupby(level="budget_epochs"):
                both = group[[reference, method]].dropna()
                leads = sign * (both[reference] - both[method])
                mean = leads.mean() if len(leads) else np.nan
                error = leads.std(ddof=1) / np.sqrt(len(leads)) if len(leads) > 1 else np.nan
                rows.append({"method": method, "budget_epochs": budget,
                             "seeds_paired": len(leads), "incumbent_test": both[method].mean(),
                             f"{reference}_incumbent_test": both[reference].mean(),
                             lead: mean, se: error,
                             f"{lead}_in_se": mean / error if error else np.nan,
                             f"{reference}_wins": int((leads > 0).sum())})
    return pd.DataFrame(rows, columns=columns)


def validation_curves(records: list[dict], budget: int):
    """Per method: (epochs 1..budget, per-seed incumbent validation score at each epoch)."""
    import numpy as np

    curves = {}
    for record in records:
        per_epoch = np.full(budget, np.nan)
        for spent, score in record["curve"]:
            if score is not None and spent <= budget:
                per_epoch[spent - 1:] = score
        curves.setdefault(record["method"], []).append(per_epoch)
    return {method: np.array(rows) for method, rows in curves.items()}


def plot_space(settings: SpaceSettings, records: list[dict], summary, methods: list[str], path: Path):
    import matplotlib

    matplotlib.use("Agg")
    import textwrap
    import warnings

    import matplotlib.pyplot as plt
    import numpy as np

    budget = records[0]["budget_epochs"]
    curves = validation_curves(records, budget)
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.6))
    grid = np.arange(1, budget + 1)
    colors = {m: plt.cm.tab10(i % 10) for i, m in enumerate(methods)}
    for method in methods:
        if method not in curves:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # epochs before a first incumbent
            mean = np.nanmean(curves[method], axis=0)
        left.plot(grid, mean, label=f"{method} ({len(curves[method])})", color=colors[method])
        rows = summary[summary["method"] == method]
        right.errorbar(rows["budget_epochs"], rows["incumbent_test"], yerr=rows["incumbent_test_se"],
                       label=method, color=colors[method], marker="o", capsize=3)
    metric = "MSE" if settings.name == "regression" else "accuracy"
    left.set(xlabel="training epochs spent", ylabel=f"incumbent's validation {metric}",
             title="validation score of the incumbent (mean over seeds)")
    right.set(xlabel="training epochs spent", ylabel=f"incumbent retrained: test {metric}",
              title="test score of the incumbent (mean ± standard error)")
    if settings.name == "regression":
        left.set_yscale("log")
        right.set_yscale("log")
    left.legend(fontsize=7, loc="best")
    fig.suptitle("\n".join(textwrap.wrap(settings.describe(), 150)), fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(spaces: dict[str, SpaceSettings], methods: list[str], out: Path,
                 results_dir: Path, plots_dir: Path, command: str, skipped: dict[str, str]) -> list[Path]:
    """Write each space's CSV, summary CSV and plot from the records of the current settings."""
    records = read_records(out)
    written = []
    for settings in spaces.values():
        mine = [r for r in records if r["space"] == settings.name and r["method"] in methods
                and r["fingerprint"] == settings.fingerprint() and r["seed"] < settings.seeds]
        if not mine:
            continue
        points = points_table(mine)
        present = [m for m in methods if m in set(points["method"])]
        summary = summary_table(points, settings.objective[1], methods)
        header = [f"# command: {command}", f"# {settings.describe()}"]
        if skipped:
            header.append("# not run (package missing): " + "; ".join(
                f"{method} ({package})" for method, package in skipped.items()))
        seeds_done = points.groupby("method")["seed"].nunique()
        if int(seeds_done.min()) < settings.seeds or len(present) < len(methods):
            header.append(f"# partial: {len(mine)} of {settings.seeds * len(methods)} "
                          "(method, seed) searches finished")
        results_dir.mkdir(parents=True, exist_ok=True)
        paired = paired_table(points, settings.objective[1], methods)
        for name, table in ((f"search-efficiency-{settings.name}.csv", points),
                            (f"search-efficiency-{settings.name}-summary.csv", summary),
                            (f"search-efficiency-{settings.name}-paired.csv", paired)):
            path = results_dir / name
            with open(path, "w") as handle:
                handle.write("\n".join(header) + "\n")
                table.to_csv(handle, index=False, float_format="%.6g")
            written.append(path)
        plot = plots_dir / f"search-efficiency-{settings.name}.png"
        plot_space(settings, mine, summary, present, plot)
        written.append(plot)
    return written


# --- the command --------------------------------------------------------------------------------


def default_data_dir() -> str | None:
    if os.environ.get("HPSEARCH_DATA_DIR"):
        return os.environ["HPSEARCH_DATA_DIR"]
    shared = REPOSITORY.parent / "shared" / "data"
    return str(shared) if shared.is_dir() else None


def parse_arguments(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog="Example: python benchmarks/search_benchmark.py --out ~/runs/search-benchmark")
    parser.add_argument("--out", type=Path, default=Path.home() / "runs" / "search-benchmark",
                        help="run folder: results.jsonl, scratch space (default %(default)s)")
    parser.add_argument("--spaces", nargs="+", choices=list(SPACES), default=list(SPACES))
    parser.add_argument("--methods", nargs="+", choices=list(METHODS), default=list(METHODS))
    parser.add_argument("--seeds", type=int, default=None,
                        help="seeds per space (default: each space's own; 2 with --short)")
    parser.add_argument("--jobs", type=int, default=2,
                        help="searches run at once, each in its own process (default 2; 1 runs "
                             "them in this process)")
    parser.add_argument("--short", action="store_true",
                        help="tiny data, one short sweep, 2 seeds: a smoke test of minutes")
    parser.add_argument("--data-dir", default=default_data_dir(),
                        help="where Fashion-MNIST is (default $HPSEARCH_DATA_DIR or ../shared/data)")
    parser.add_argument("--results-dir", type=Path, default=None,
                        help="CSV folder (default docs/results; with --short: OUT)")
    parser.add_argument("--plots-dir", type=Path, default=None,
                        help="plot folder (default docs/benchmarks; with --short: OUT)")
    parser.add_argument("--report-only", action="store_true",
                        help="write the CSVs and plots from what OUT holds, run nothing")
    return parser.parse_args(argv)


def main(argv=None) -> list[Path]:
    args = parse_arguments(argv)
    out = args.out.expanduser().resolve()
    out.mkdir(parents=True, exist_ok=True)
    table = SHORT_SPACES if args.short else SPACES
    spaces = {name: table[name] for name in args.spaces}
    if args.seeds is not None:
        spaces = {name: dataclasses.replace(s, seeds=args.seeds) for name, s in spaces.items()}
    results_dir = args.results_dir or (out if args.short else REPOSITORY / "docs" / "results")
    plots_dir = args.plots_dir or (out if args.short else REPOSITORY / "docs" / "benchmarks")
    skipped = {m: missing_package(m) for m in args.methods if missing_package(m)}
    methods = [m for m in args.methods if m not in skipped]
    for method, package in skipped.items():
        print(f"Skipping {method}: the package {package!r} is not installed "
              "(pip install -e '.[bench]').", flush=True)
    run_file = out / RUN_FILE
    if args.report_only and run_file.is_file():
        command = json.loads(run_file.read_text())["command"]
    else:
        given = list(sys.argv[1:] if argv is None else argv)
        command = shlex.join(["python", "benchmarks/search_benchmark.py", *given])
    if not args.report_only:
        run_file.write_text(json.dumps(dict(command=command, spaces={
            name: dataclasses.asdict(s) for name, s in spaces.items()}, methods=methods,
            skipped=skipped), indent=2) + "\n")
        for settings in spaces.values():
            print(settings.describe(), flush=True)
        if "regression" in spaces:
            regression_file(spaces["regression"], out)  # once, before the workers read it
        tasks = plan_tasks(spaces, methods)
        run_tasks(tasks, out, args.data_dir, max(1, args.jobs))
        records = read_records(out)
        done = {(r["space"], r["method"], r["seed"], r["fingerprint"]) for r in records}
        if any((s.name, m, seed, s.fingerprint()) not in done for s, m, seed in tasks):
            print("Some searches failed (see above): rerun the same command to retry them. The "
                  "report so far: --report-only.", flush=True)
            results_dir, plots_dir = out / "report", out / "report"
    written = write_report(spaces, methods, out, results_dir, plots_dir, command, skipped)
    for path in written:
        print(f"Wrote {path}", flush=True)
    return written


if __name__ == "__main__":
    main()
