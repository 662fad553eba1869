"""The shape of the code: one registry for every space, no import cycle, data flowing one way, and
a core that knows no space (an MLP search never enters the clock's modules)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Data flows one way: a package never imports one later in this chain.
PACKAGES = ["datasets", "search_spaces", "tuner", "top_configs", "analysis"]


def _modules() -> dict[str, Path]:
    modules = {}
    for package in PACKAGES:
        for path in (ROOT / package).glob("*.py"):
            modules[package if path.stem == "__init__" else f"{package}.{path.stem}"] = path
    return modules


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """Every project module ``path`` imports, at its top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                name = f"{node.module}.{alias.name}"
                found.add(name if name in modules else node.module)
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
    return {name for name in found if name in modules}


def test_no_import_cycle_among_the_packages_modules():
    modules = _modules()
    graph = {name: _imports(path, modules) - {name} for name, path in modules.items()}
    cycles, state = [], {}

    def visit(name, stack):
        state[name] = "open"
        for other in graph[name]:
            if state.get(other) == "open":
                cycles.append(stack[stack.index(other):] + [other])
            elif other not in state:
                visit(other, stack + [other])
        state[name] = "done"

    for name in graph:
        if name not in state:
            visit(name, [name])
    assert not cycles, f"import cycles: {cycles}"


def test_datasets_and_search_spaces_never_import_the_tuner():
    modules = _modules()
    for name, path in modules.items():
        package = name.split(".")[0]
        if package in ("datasets", "search_spaces"):
            later = PACKAGES[PACKAGES.index(package) + 1:]
            imported = {other.split(".")[0] for other in _imports(path, modules)}
            assert not imported & set(later), f"{name} imports {imported & set(later)}"


def test_the_built_in_spaces_are_registered_by_entry_point_like_any_package_s():
    import search_spaces

    declared = {entry.name: entry.value for entry in entry_points(group="hpsearch.spaces")}
    assert declared["mlp"] == "search_spaces.mlp:MLPHyperModel"
    assert {"mlp", "cnn", "clock"} <= set(declared)
    assert set(declared) <= set(search_spaces.available_spaces())
    assert search_spaces.resolve("cnn").target.__name__ == "CNNHyperModel"


def test_the_config_s_clock_sizes_are_the_renderer_s():
    from datasets.clock_render import SIZES
    from tuner.config import CLOCK_SIZES

    assert tuple(CLOCK_SIZES) == tuple(SIZES)


@pytest.mark.slow
def test_an_mlp_search_enters_no_clock_module(tiny_data_dir, tmp_path):
    code = (
        "import json, sys\n"
        "from tuner.cli import main\n"
        "try:\n"
        f"    main(['tune', 'mlp', '--run-dir', {str(tmp_path / 'run')!r}, '--data-dir', "
        f"{str(tiny_data_dir)!r}, '--subset', '30', '--tuner', 'random', '--max-trials', '1', "
        "'--max-epochs', '1', '--quiet'])\n"
        "except SystemExit as end:\n"
        "    assert not end.code, end.code\n"
        "print(json.dumps(sorted(name for name in sys.modules if 'clock' in name)))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "run" / "trials.csv").is_file()
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
