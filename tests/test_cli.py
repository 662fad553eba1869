"""The command line as a whole: help texts, examples, exit codes."""

from __future__ import annotations

import subprocess
import sys

import click
from click.testing import CliRunner

from tuner.cli import main


def _commands(group: click.Group, prefix=()):
    for name, command in group.commands.items():
        yield prefix + (name,), command
        if isinstance(command, click.Group):
            yield from _commands(command, prefix + (name,))


def test_every_command_has_help_with_an_example():
    for path, command in _commands(main):
        result = CliRunner().invoke(main, [*path, "--help"])
        assert result.exit_code == 0, path
        assert "Example:" in result.output, f"'hpsearch {' '.join(path)} --help' shows no example"
        assert command.get_short_help_str(), path


def test_help_lists_the_commands_without_starting_tensorflow():
    code = (
        "import sys; from click.testing import CliRunner; from tuner.cli import main; "
        "out = CliRunner().invoke(main, ['--help']).output; "
        "print(out); print('TF' if 'tensorflow' in sys.modules else 'no TF')"
    )
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    for name in ("tune", "transfer", "report", "data"):
        assert f"  {name} " in output
    assert output.strip().endswith("no TF")


def test_unknown_command_is_a_usage_error():
    result = CliRunner().invoke(main, ["tunee"])
    assert result.exit_code == 2 and "No such command 'tunee'" in result.output


def test_data_command_reports_found_and_missing(tiny_data_dir, tmp_path):
    result = CliRunner().invoke(main, ["data", "fashion_mnist", "--data-dir", str(tiny_data_dir)])
    assert result.exit_code == 0
    assert result.output.startswith("fashion_mnist: 54 train / 6 validation / 20 test images")
    result = CliRunner().invoke(main, ["data", "cifar10", "--data-dir", str(tmp_path)])
    assert result.exit_code == 1 and "cifar10: MISSING" in result.output
