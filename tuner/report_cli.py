"""``hpsearch report``, ``export`` and ``repair``: short functions over the library."""
from __future__ import annotations

from pathlib import Path

import click

from tuner.cli_errors import cli_errors


@click.command(short_help="Write an HTML/PDF report of search, transfer or KerasTuner runs.")
@click.argument("run_dirs", nargs=-1, required=True,
                type=click.Path(exists=True, file_okay=False, dir_okay=True))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Directory for report.html, report.pdf, tables/*.csv and figures/*.png.")
@click.option("--top-k", type=click.IntRange(min=1), default=5, show_default=True,
              help="How many of the best configurations count as the top trials.")
@click.option("--top-fraction", type=click.FloatRange(0.0, 1.0, min_open=True), default=None,
              help="Count this share of the configurations as the top trials instead of --top-k.")
@cli_errors
def report(run_dirs, out_dir, top_k, top_fraction):
    """Write an HTML and PDF report (plus CSV tables and PNG figures) of search runs.

    RUN_DIR is a directory written by `hpsearch tune`, a transfer run, a clock comparison, or a
    KerasTuner project written by your own code (the folder holding oracle.json); several runs
    are also compared with each other.

    Example: hpsearch report runs/mlp runs/cnn --out reports/fashion
    """
    from analysis import write_report  # imports matplotlib: only when reporting

    result = write_report(list(run_dirs), out_dir, top_k=top_k, top_fraction=top_fraction)
    click.echo(f"Report: {result.html}")
    click.echo(f"PDF:    {result.pdf}")
    click.echo(f"{len(result.tables)} tables (CSV) and {len(result.figures)} figures (PNG) "
               f"in {out_dir}")


@click.command(short_help="Write the top configurations of a search or KerasTuner project.")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--top", "count", type=click.IntRange(min=1), default=3, show_default=True,
              help="How many of the best completed trials to export.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for rank_1.yaml, rank_2.yaml, ...")
@cli_errors
def export(run_dir, count, out_dir):
    """Write the best configurations of RUN_DIR as top-config YAML files (the format of
    top_configs/rank_*.yaml, readable by `hpsearch transfer`).

    RUN_DIR is a directory written by `hpsearch tune` or a KerasTuner project written by your own
    code (the folder holding oracle.json and trial_*/trial.json).

    Example: hpsearch export my_dir/my_project --top 3 --out best/
    """
    from tuner.export import export_top_configs

    paths = export_top_configs(run_dir, out_dir, count)
    if not paths:
        click.echo(f"No trial of {run_dir} completed: nothing exported.")
    for path in paths:
        click.echo(str(path))


@click.command(short_help="Set damaged KerasTuner files aside, keeping every good trial.")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@cli_errors
def repair(run_dir):
    """Repair RUN_DIR when a trial.json or oracle.json cannot be read.

    Each unreadable file is moved under kt/set_aside/ (kept, not deleted); an unreadable trial is
    recorded as FAILED so that no other trial takes its number, and an unreadable oracle.json is
    rebuilt from the trial files. Every readable trial is kept as it is; `hpsearch tune` then
    resumes the run.

    Example: hpsearch repair runs/mlp
    """
    from tuner.repair import repair_run

    result = repair_run(run_dir)
    if not result.set_aside:
        click.echo(f"Every file of {result.project} is readable: nothing to repair.")
        return
    for path in result.set_aside:
        click.echo(f"Set aside: {path}")
    if result.oracle_rebuilt:
        click.echo(f"Rebuilt {result.project / 'oracle.json'} from the trial files.")
    click.echo(f"Kept {len(result.good_trials)} readable trial(s). Resume with the same "
               "`hpsearch tune` command.")
