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
    # Issue 13: the counts come from the IDX headers; nothing is loaded or split.
    assert result.output == (
        f"fashion_mnist: 60 train / 20 test images in {tiny_data_dir / 'fashion-mnist'}\n")
    result = CliRunner().invoke(main, ["data", "cifar10", "--data-dir", str(tmp_path)])
    assert result.exit_code == 1 and "cifar10: MISSING" in result.output


def test_a_mistyped_data_dir_is_a_usage_error_not_a_silent_fallback(tiny_data_dir, tmp_path,
                                                                     monkeypatch):
    # The data is elsewhere on the search path: a typo must not quietly read that copy.
    monkeypatch.setenv("HPSEARCH_DATA_DIR", str(tiny_data_dir))
    for arguments in (["data", "fashion_mnist"],
                      ["tune", "mlp", "--run-dir", str(tmp_path / "run")]):
        result = CliRunner().invoke(main, [*arguments, "--data-dir", str(tmp_path / "typo")])
        assert result.exit_code == 2, result.output
        assert "does not exist" in result.output and "typo" in result.output
    assert not (tmp_path / "run").exists()


def test_every_command_turns_user_errors_into_error_lines():
    for path, command in _commands(main):
        if isinstance(command, click.Group):
            continue
        assert getattr(command.callback, "shows_user_errors", False), (
            f"'hpsearch {' '.join(path)}' is not decorated with tuner.cli_errors.cli_errors"
        )


def test_a_library_bug_is_not_shown_as_a_user_error(monkeypatch, tmp_path):
    import tuner.export

    def broken(*args, **kwargs):
        raise ValueError("a bug")

    monkeypatch.setattr(tuner.export, "export_top_configs", broken)
    result = CliRunner().invoke(main, ["export", str(tmp_path), "--out", str(tmp_path / "o")])
    assert result.exit_code == 1 and isinstance(result.exception, ValueError)
    assert "Error: a bug" not in result.output
