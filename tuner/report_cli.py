"""The ``hpsearch report`` command: a short function over ``analysis.write_report``."""
from __future__ import annotations

import click


@click.command()
@click.argument("run_dirs", nargs=-1, required=True,
                type=click.Path(exists=True, file_okay=False, dir_okay=True))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Directory for report.html, report.pdf, tables/*.csv and figures/*.png.")
@click.option("--top-k", type=click.IntRange(min=1), default=5, show_default=True,
              help="How many of the best configurations count as the top trials.")
@click.option("--top-fraction", type=click.FloatRange(0.0, 1.0, min_open=True), default=None,
              help="Count this share of the configurations as the top trials instead of --top-k.")
def report(run_dirs, out_dir, top_k, top_fraction):
    """Write an HTML and PDF report (plus CSV tables and PNG figures) of search runs.

    RUN_DIR is a directory written by `hpsearch tune`, a transfer run or a clock comparison;
    several runs are also compared with each other.

    Example: hpsearch report runs/mlp runs/cnn --out reports/fashion
    """
    from analysis import ReportError, write_report  # imports matplotlib: only when reporting

    try:
        result = write_report(list(run_dirs), out_dir, top_k=top_k, top_fraction=top_fraction)
    except (ReportError, ValueError, OSError) as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"Report: {result.html}")
    click.echo(f"PDF:    {result.pdf}")
    click.echo(f"{len(result.tables)} tables (CSV) and {len(result.figures)} figures (PNG) "
               f"in {out_dir}")
