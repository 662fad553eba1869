"""The README stays a short door: at most MAX_README_LINES lines, every relative link of it and of
the pages it leads to resolves, and its "your own model" commands and Python run as written."""

from __future__ import annotations

import ast
import difflib
import re
import shlex
import shutil
import traceback
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from tests.conftest import tiny_images

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
MAX_README_LINES = 260
LINKED_PAGES = [README, REPO / "BENCHMARKS.md", *sorted((REPO / "docs").rglob("*.md"))]

_FENCE = re.compile(r"^\s*(```|~~~)")
_LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
_INLINE_CODE = re.compile(r"`[^`]*`")


def _prose_lines(path: Path):
    """(line number, line) of a Markdown file outside fenced code blocks and inline code."""
    in_fence = False
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if _FENCE.match(line):
            in_fence = not in_fence
            continue
        if not in_fence:
            yield number, _INLINE_CODE.sub("", line)


def _heading_anchors(path: Path) -> set[str]:
    """The anchors GitHub gives the headings of a Markdown file (``#`` links to them)."""
    anchors: set[str] = set()
    seen: dict[str, int] = {}
    in_fence = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if _FENCE.match(line):
            in_fence = not in_fence
        heading = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if in_fence or not heading:
            continue
        slug = re.sub(r"[^\w\- ]", "", heading.group(1).lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        anchors.add(slug if count == 0 else f"{slug}-{count}")
    return anchors


def _relative_links(path: Path) -> list[tuple[int, str]]:
    return [(number, match.group(1)) for number, line in _prose_lines(path)
            for match in _LINK.finditer(line)
            if not re.match(r"[a-zA-Z][a-zA-Z0-9+.-]*:", match.group(1))]  # http:, mailto:


def _fenced_block_after(marker: str) -> str:
    """The body of the first fenced code block after the line ``marker`` in the README."""
    lines = README.read_text(encoding="utf-8").splitlines()
    assert marker in lines, f"README.md has no line {marker!r}"
    start = lines.index(marker) + 1
    while not _FENCE.match(lines[start]):
        assert not lines[start].strip(), f"text between {marker!r} and its code block"
        start += 1
    end = start + 1
    while not _FENCE.match(lines[end]):
        end += 1
    return "\n".join(lines[start + 1:end])


def _shell_commands(block: str) -> list[str]:
    """The commands of a shell block: backslash continuations joined, comments and blanks left
    out."""
    commands, current = [], ""
    for line in block.splitlines():
        current += line.rstrip()
        if current.endswith("\\"):
            current = current[:-1] + " "
            continue
        if current.strip() and not current.lstrip().startswith("#"):
            commands.append(current.strip())
        current = ""
    return commands


def test_the_readme_is_short():
    count = len(README.read_text(encoding="utf-8").splitlines())
    assert count <= MAX_README_LINES, (
        f"README.md has {count} lines; at most {MAX_README_LINES}: move details to docs/")


@pytest.mark.parametrize("page", LINKED_PAGES, ids=lambda page: str(page.relative_to(REPO)))
def test_every_relative_link_resolves(page):
    broken = []
    for number, link in _relative_links(page):
        target, _, anchor = link.partition("#")
        destination = (page.parent / target).resolve() if target else page
        if not destination.exists():
            broken.append(f"{page.name}:{number}: {link} (no such file)")
        elif not destination.resolve().is_relative_to(REPO):
            broken.append(f"{page.name}:{number}: {link} (outside the repository)")
        elif anchor and destination.suffix == ".md" and anchor not in _heading_anchors(destination):
            broken.append(f"{page.name}:{number}: {link} (no heading with that anchor)")
    assert not broken, "\n".join(broken)


def test_the_readme_shows_the_example_function_as_it_is():
    shown = _fenced_block_after("## Your own model")
    example = (REPO / "examples" / "fashion_function.py").read_text(encoding="utf-8")

    def build_model_of(source: str) -> str:
        functions = [node for node in ast.walk(ast.parse(source))
                     if isinstance(node, ast.FunctionDef) and node.name == "build_model"]
        assert len(functions) == 1, source
        functions[0].body = [statement for statement in functions[0].body  # docstring aside
                             if not (isinstance(statement, ast.Expr)
                                     and isinstance(statement.value, ast.Constant))]
        return ast.unparse(functions[0])  # formatting and comments aside

    in_readme, in_example = build_model_of(shown), build_model_of(example)
    difference = "\n".join(difflib.unified_diff(in_example.splitlines(), in_readme.splitlines(),
                                                "examples/fashion_function.py", "README.md",
                                                lineterm=""))
    assert in_readme == in_example, f"README.md shows another build_model:\n{difference}"


def _write_images(path: Path, seed: int) -> None:
    """28x28 uint8 pictures whose brightness tells their class (so a model learns), 60 for
    training and 20 for testing."""
    x_train, y_train = tiny_images(60, (28, 28), seed=seed)
    x_test, y_test = tiny_images(20, (28, 28), seed=seed + 1)
    np.savez(path, x_train=x_train, y_train=y_train.astype(np.int64),
             x_test=x_test, y_test=y_test.astype(np.int64))


def _run_hpsearch(command: str):
    from tuner.cli import main

    words = shlex.split(command)
    assert words[0] == "hpsearch", command
    arguments = words[1:]
    subcommand = main.get_command(None, arguments[0])
    assert subcommand is not None, f"no command {arguments[0]!r}: {command}"
    if any("--quiet" in parameter.opts for parameter in subcommand.params):
        arguments.append("--quiet")
    result = CliRunner().invoke(main, arguments)
    details = result.output
    if result.exc_info and result.exit_code != 0 and not isinstance(result.exception, SystemExit):
        details += "".join(traceback.format_exception(*result.exc_info))
    assert result.exit_code == 0, f"{command}\nexit code {result.exit_code}\n{details}"


@pytest.mark.slow
def test_the_own_model_commands_run_as_written(tmp_path, monkeypatch):
    import keras

    shutil.copytree(REPO / "examples", tmp_path / "examples")
    _write_images(tmp_path / "my_images.npz", seed=1)
    _write_images(tmp_path / "other_images.npz", seed=5)
    monkeypatch.chdir(tmp_path)

    commands = _shell_commands(_fenced_block_after("<!-- readme-test: own-model -->"))
    assert commands and all(command.startswith("hpsearch ") for command in commands), commands
    for command in commands:
        _run_hpsearch(command)
    assert (tmp_path / "runs" / "mine" / "models" / "rank_1.keras").is_file()
    assert (tmp_path / "runs" / "mine" / "report" / "report.html").is_file()

    namespace: dict = {}
    exec(_fenced_block_after("<!-- readme-test: own-model-python -->"), namespace)
    assert isinstance(namespace["model"], keras.Model), type(namespace["model"])
