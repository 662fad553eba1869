"""The independent second clock renderer (benchmarks/clock_second_drawing.py): format, determinism."""

from __future__ import annotations

import ast
import copy
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

SOURCE = Path(__file__).resolve().parents[1] / "benchmarks" / "clock_second_drawing.py"


@pytest.fixture(scope="module")
def drawing():
    spec = importlib.util.spec_from_file_location("clock_second_drawing", SOURCE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look the module up while it loads
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


def test_imports_nothing_from_the_project():
    tree = ast.parse(SOURCE.read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert not any(name and name.split(".")[0] in {"datasets", "tuner", "analysis"} for name in imported)


@pytest.mark.parametrize("size", [32, 75])
def test_shapes_dtypes_and_labels(drawing, size):
    images, labels = drawing.render_second_drawing(10, size=size, seed=3, processes=1)
    assert images.shape == (10, size, size) and images.dtype == np.uint8
    assert labels.shape == (10, 2) and labels.dtype == np.int64
    assert labels[:, 0].min() >= 0 and labels[:, 0].max() <= 11
    assert labels[:, 1].min() >= 0 and labels[:, 1].max() <= 59
    assert all(images[k].std() > 5 for k in range(10))  # something was drawn


def test_deterministic_per_image_whatever_the_count_and_processes(drawing):
    serial = drawing.render_second_drawing(12, size=32, seed=7, processes=1)
    pooled = drawing.render_second_drawing(60, size=32, seed=7, processes=2)
    np.testing.assert_array_equal(serial[0], pooled[0][:12])
    np.testing.assert_array_equal(serial[1], pooled[1][:12])
    other = drawing.render_second_drawing(12, size=32, seed=8, processes=1)
    assert not np.array_equal(serial[1], other[1])


def test_cli_writes_the_assignment_format(drawing, tmp_path):
    drawing.main(["--count", "16", "--size", "40", "--seed", "1", "--processes", "1", "--out", str(tmp_path)])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images.npy", "labels.npy", "preview.png"]
    assert np.load(tmp_path / "images.npy").shape == (16, 40, 40)
    assert np.load(tmp_path / "labels.npy").dtype == np.int64


def test_numbered_level_puts_numerals_on_every_dial_and_drops_the_distractors(drawing):
    full = [drawing._sample_style(np.random.default_rng([5, i])) for i in range(200)]
    numbered = [drawing._sample_style(np.random.default_rng([5, i]), "numbered") for i in range(200)]
    assert {style.markers for style in full} - set(drawing._NUMBERED)  # dots, bars, a lone 12
    assert {style.markers for style in numbered} == set(drawing._NUMBERED)
    assert any(style.seconds is not None for style in full)
    assert all(style.seconds is None for style in numbered)
    images, labels = drawing.render_second_drawing(6, size=32, seed=7, processes=1, level="numbered")
    assert images.shape == (6, 32, 32) and labels.shape == (6, 2)
    with pytest.raises(ValueError, match="level must be one of full, numbered"):
        drawing.render_second_drawing(1, size=32, level="easy")


@pytest.mark.parametrize("level", ["full", "numbered", "design1"])
def test_clock_attributes_replay_what_the_renderer_drew(drawing, monkeypatch, level):
    poses = []
    real_pose = drawing._pose

    def recording_pose(rng, half, radius, side):
        replay = copy.deepcopy(rng)
        poses.append((radius / side, float(replay.uniform(0, 360)), float(replay.uniform(0, 40))))
        return real_pose(rng, half, radius, side)

    monkeypatch.setattr(drawing, "_pose", recording_pose)
    for index in range(8):
        _, (hour, minute), style = drawing._render_one(index, 32, 9, level)
        attributes = drawing.clock_attributes(index, 9, level)
        assert (attributes["hour"], attributes["minute"]) == (hour, minute)
        assert attributes["tone"] == style.tone and attributes["markers"] == style.markers
        assert (attributes["case"], attributes["frame"], attributes["hands"]) == (
            style.case, style.frame, style.hands)
        assert attributes["seconds_hand"] == (style.seconds is not None)
        fraction, spin, tilt = poses[-1]
        assert attributes["radius_fraction"] == pytest.approx(fraction)
        assert (attributes["spin_degrees"], attributes["tilt_degrees"]) == (spin, tilt)
    tones = {drawing.clock_attributes(i, 9, level)["tone"] for i in range(60)}
    assert tones == ({"light", "dark", "colour"} if level in ("full", "numbered")
                     else {drawing.design_style(1).tone})


def test_a_design_level_draws_one_numbered_design_in_many_times_and_poses(drawing):
    design = drawing.design_style(0)
    assert design.markers in drawing._NUMBERED and design.seconds is None
    assert drawing.design_style(0) == design  # the same design every time it is asked for
    assert len({repr(drawing.design_style(k)) for k in range(len(drawing.DESIGNS))}) == len(
        drawing.DESIGNS)
    for seed in (3, 4):  # every seed (training clocks, scoring clocks) draws the same design
        styles = [drawing._render_one(i, 32, seed, "design0")[2] for i in range(6)]
        assert all(style == design for style in styles)
    attributes = [drawing.clock_attributes(i, 3, "design0") for i in range(40)]
    assert len({(a["hour"], a["minute"]) for a in attributes}) > 30
    assert len({round(a["spin_degrees"]) for a in attributes}) > 30
    images, labels = drawing.render_second_drawing(4, size=32, seed=3, processes=1, level="design0")
    assert len({image.tobytes() for image in images}) == 4 and labels.shape == (4, 2)
