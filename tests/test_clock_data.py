"""The clock renderer and loader: determinism, hand angles, shapes, caching, splits, errors."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from datasets import clock as clock_data
from datasets import clock_render, clock_styles
from datasets.clock import load_clock, read_clock_files, split_clock
from datasets.errors import DatasetFormatError, DatasetNotFoundError


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HPSEARCH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("HPSEARCH_DATA_DIR", raising=False)


def _write(directory, images, labels):
    directory.mkdir(parents=True, exist_ok=True)
    np.save(directory / "images.npy", images)
    np.save(directory / "labels.npy", labels)
    return directory


def _valid_files(directory, count=20, size=75):
    labels = clock_render.time_labels(count)
    images = np.random.default_rng(0).integers(0, 256, (count, size, size), dtype=np.uint8)
    return _write(directory, images, labels)


# Renderer

def test_time_labels_are_sorted_and_balanced():
    labels = clock_render.time_labels(18000)
    total = labels[:, 0] * 60 + labels[:, 1]
    assert np.all(np.diff(total) >= 0)
    assert np.all(np.bincount(total, minlength=720) == 25)
    assert labels[:, 0].max() == 11 and labels[:, 1].max() == 59


def test_rendering_is_deterministic_and_independent_of_processes():
    labels = clock_render.time_labels(720)[::90]
    first = clock_render.render_images(labels, seed=3, size=75, processes=1)
    again = clock_render.render_images(labels, seed=3, size=75, processes=1)
    np.testing.assert_array_equal(first, again)
    part = clock_render.render_images(labels[4:], seed=3, size=75, processes=1, first_index=4)
    np.testing.assert_array_equal(first[4:], part)
    other = clock_render.render_images(labels, seed=4, size=75, processes=1)
    assert not np.array_equal(first, other)


@pytest.mark.parametrize("style", clock_render.STYLES)
def test_each_style_is_deterministic_and_the_styles_differ(style):
    labels = clock_render.time_labels(720)[::120]
    first = clock_render.render_images(labels, seed=2, size=75, processes=1, style=style)
    forked = clock_render.render_images(labels, seed=2, size=75, processes=2, style=style)
    np.testing.assert_array_equal(first, forked)
    other = "classic" if style != "classic" else "varied"
    assert not np.array_equal(
        first, clock_render.render_images(labels, seed=2, size=75, processes=1, style=other))


def test_unknown_style_is_refused():
    with pytest.raises(ValueError,
                       match="Unknown clock style 'fancy'. Expected one of: classic, varied, mixed"):
        clock_render.render_images(np.zeros((1, 2), dtype=int), style="fancy")
    with pytest.raises(ValueError, match="style must be one of"):
        load_clock(style="fancy")


def test_mixed_draws_each_image_classic_or_varied_by_its_first_draw():
    kinds = []
    for seed in range(12):
        mixed = clock_render.render_clock(3, 25, np.random.default_rng([9, seed]), size=48,
                                          style="mixed")
        rng = np.random.default_rng([9, seed])
        kind = "varied" if rng.random() < 0.5 else "classic"
        np.testing.assert_array_equal(
            mixed, clock_render.render_clock(3, 25, rng, size=48, style=kind))
        kinds.append(kind)
    assert set(kinds) == {"classic", "varied"}


@pytest.mark.parametrize("seed", range(8))
def test_varied_designs_put_the_minute_hand_where_the_time_says(seed):
    # Same design (same draws), two times 30 minutes apart: the pixels that change between the
    # two drawings, in a ring the hour hand never reaches, lie along the two minute hands.
    drawings = [np.asarray(clock_styles._draw_varied_clock(2, minute,
                                                           np.random.default_rng(seed))[0],
                           dtype=float) for minute in (10, 40)]
    changed = np.abs(drawings[0] - drawings[1]) > 30
    canvas = changed.shape[0]
    y, x = np.nonzero(changed)
    dx, dy = x + 0.5 - canvas / 2.0, y + 0.5 - canvas / 2.0
    face = clock_styles._CANONICAL_FACE_RADIUS
    ring = (np.hypot(dx, dy) > 0.64 * face) & (np.hypot(dx, dy) < 0.7 * face)
    assert ring.sum() > 0
    degrees = np.degrees(np.arctan2(dx[ring], -dy[ring])) % 360
    nearest = np.minimum(np.abs((degrees - 60 + 180) % 360 - 180),
                         np.abs((degrees - 240 + 180) % 360 - 180))
    assert np.all(nearest < 12), np.sort(degrees)


def test_images_are_not_near_duplicates():
    labels = np.zeros((6, 2), dtype=int)
    images = clock_render.render_images(labels, seed=0, size=75, processes=1).astype(float)
    for i in range(len(images)):
        for j in range(i + 1, len(images)):
            assert np.abs(images[i] - images[j]).mean() > 5.0


def test_render_shapes_and_75_is_150_halved():
    labels = clock_render.time_labels(720)[:3]
    big = clock_render.render_images(labels, seed=1, size=150, processes=1)
    small = clock_render.render_images(labels, seed=1, size=75, processes=1)
    assert big.shape == (3, 150, 150) and big.dtype == np.uint8
    assert small.shape == (3, 75, 75) and small.dtype == np.uint8
    np.testing.assert_array_equal(small, np.stack([np.asarray(Image.fromarray(image).reduce(2))
                                                   for image in big]))
    np.testing.assert_array_equal(small, clock_data._halve(big))


def _dark_angle(image, inner, outer, exclude=None):
    """Clockwise degrees from 12 of the darkest ray between two radii from the image centre."""
    centre = image.shape[0] / 2.0 - 0.5
    degrees = np.arange(0.0, 360.0, 0.5)
    theta = np.radians(degrees)
    rings = []
    for radius in np.linspace(inner, outer, 6):
        rows = np.round(centre - radius * np.cos(theta)).astype(int)
        cols = np.round(centre + radius * np.sin(theta)).astype(int)
        rings.append(255.0 - image[rows, cols].astype(float))
    # A hand is dark on every ring it crosses; a numeral's edge only on some.
    darkness = np.min(rings, axis=0)
    if exclude is not None:
        gap = np.abs((degrees - exclude + 180.0) % 360.0 - 180.0)
        darkness[gap < 25.0] = 0.0
    peak = degrees[np.argmax(darkness)]
    near = np.abs((degrees - peak + 180.0) % 360.0 - 180.0) < 12.0
    weights = np.where(near, darkness - darkness[near].min(), 0.0)
    offsets = (degrees - peak + 180.0) % 360.0 - 180.0
    return (peak + (weights * offsets).sum() / weights.sum()) % 360.0


@pytest.mark.parametrize("hour,minute", [(3, 0), (7, 20), (10, 45), (1, 30), (0, 50)])
def test_rendered_hands_point_at_the_label(hour, minute):
    image = clock_render.render_clock(hour, minute, np.random.default_rng(0), size=150, clean=True)
    face_radius = 0.42 * 150 / 1.14
    expected_hour, expected_minute = clock_styles.hand_angles(hour, minute)
    # Inside the numerals only the hands are dark; only the minute hand passes 0.5 R.
    measured_minute = _dark_angle(image, 0.52 * face_radius, 0.6 * face_radius)
    measured_hour = _dark_angle(image, 0.2 * face_radius, 0.42 * face_radius,
                                exclude=measured_minute)

    def gap(a, b):
        return abs((a - b + 180.0) % 360.0 - 180.0)

    assert gap(measured_minute, expected_minute) < 3.0
    assert gap(measured_hour, expected_hour) < 3.0


@pytest.mark.parametrize("hour,minute", [(3, 0), (7, 20), (0, 50)])
def test_geometry_of_an_upright_clock_is_its_hand_angles(hour, minute):
    _, geometry = clock_render.render_clock(hour, minute, np.random.default_rng(0), size=150,
                                            clean=True, with_geometry=True)
    expected = np.radians([0.0, *clock_styles.hand_angles(hour, minute)])
    np.testing.assert_allclose(geometry[:2], [0.5, 0.5], atol=1e-6)
    np.testing.assert_allclose(geometry[2:], expected, atol=1e-4)


def test_geometry_follows_the_pose_of_a_rendered_clock():
    image, geometry = clock_render.render_clock(4, 40, np.random.default_rng(5), size=150,
                                                with_geometry=True)
    assert image.shape == (150, 150) and geometry.shape == (len(clock_render.GEOMETRY_COLUMNS),)
    assert np.all((0.0 <= geometry[2:]) & (geometry[2:] < 2 * math.pi))
    # The dial centre is dark-ringed: the bezel lies around it, inside the image.
    assert np.all((0.15 < geometry[:2]) & (geometry[:2] < 0.85))
    # Same draws with or without geometry: the image does not change.
    again = clock_render.render_clock(4, 40, np.random.default_rng(5), size=150)
    np.testing.assert_array_equal(image, again)


def test_write_dataset_writes_files_and_preview(tmp_path):
    paths = clock_render.write_dataset(tmp_path / "set", count=24, size=75, seed=0, processes=1)
    images, labels = read_clock_files(tmp_path / "set")
    assert images.shape == (24, 75, 75) and labels.shape == (24, 2)
    assert Image.open(paths["preview"]).size[0] == 8 * 75
    assert not list((tmp_path / "set").glob("*.partial*"))
    geometry = np.load(paths["geometry"])
    assert geometry.shape == (24, 5) and geometry.dtype == np.float32
    _, _, direct = clock_render.render_dataset(count=24, size=75, seed=0, processes=1,
                                               with_geometry=True)
    np.testing.assert_array_equal(geometry, direct)


def test_geometry_follows_the_training_images_through_the_split(tmp_path):
    # Each image is filled with its own index, each geometry row holds that index too.
    count = 40
    images = np.repeat(np.arange(count, dtype=np.uint8), 75 * 75).reshape(count, 75, 75)
    geometry = np.repeat(np.arange(count, dtype=np.float32)[:, None], 5, axis=1)
    _write(tmp_path / "set", images, clock_render.time_labels(count))
    np.save(tmp_path / "set" / "geometry.npy", geometry)
    data = load_clock(data_dir=tmp_path / "set", size=75, split="final")
    indices = np.round(data.x_train[:, 0, 0, 0] * 255.0)
    np.testing.assert_array_equal(data.geometry_train[:, 0], indices)
    assert data.geometry_train.shape == (len(data.x_train), 5)
    assert load_clock(data_dir=_valid_files(tmp_path / "real"), size=75).geometry_train is None


def test_bad_geometry_file_is_rejected(tmp_path):
    directory = _valid_files(tmp_path / "set", count=20)
    np.save(directory / "geometry.npy", np.zeros((19, 5), np.float32))
    with pytest.raises(DatasetFormatError, match=r"geometry.*\(20, 5\)"):
        load_clock(data_dir=directory, size=75)
    np.save(directory / "geometry.npy", np.full((20, 5), np.nan, np.float32))
    with pytest.raises(DatasetFormatError, match="NaN"):
        load_clock(data_dir=directory, size=75)


def test_a_cached_set_without_geometry_is_rendered_again(tmp_path):
    first = load_clock(size=75, count=40, split="final")
    cached = tmp_path / "cache" / "clock-40-75-seed0"
    (cached / "geometry.npy").unlink()
    again = load_clock(size=75, count=40, split="final")
    np.testing.assert_array_equal(first.x_train, again.x_train)
    np.testing.assert_array_equal(first.geometry_train, again.geometry_train)
    assert (cached / "geometry.npy").is_file()


# Loader

def test_load_renders_once_then_reuses_the_cache(tmp_path, monkeypatch):
    first = load_clock(size=75, count=40, split="tuning")
    cached = tmp_path / "cache" / "clock-40-75-seed0"
    assert (cached / "images.npy").is_file() and (cached / "preview.png").is_file()

    def no_render(*args, **kwargs):
        raise AssertionError("rendered again instead of reading the cache")

    monkeypatch.setattr(clock_data, "write_dataset", no_render)
    second = load_clock(size=75, count=40, split="tuning")
    np.testing.assert_array_equal(first.x_train, second.x_train)
    assert first.x_train.dtype == np.float32 and first.x_train.shape[1:] == (75, 75, 1)
    assert 0.0 <= first.x_train.min() and first.x_train.max() <= 1.0
    assert first.y_train.shape[1] == 2 and first.num_classes is None
    assert first.class_names == () and first.input_shape == (75, 75, 1)


def test_tuning_and_final_splits(tmp_path):
    directory = _valid_files(tmp_path / "real", count=100)
    tuning = load_clock(data_dir=directory, size=75, split="tuning", seed=1)
    assert (len(tuning.x_train), len(tuning.x_val), len(tuning.x_test)) == (80, 10, 10)
    seen = [tuple(row) for part in (tuning.y_train, tuning.y_val, tuning.y_test) for row in part]
    assert len(seen) == 100
    final = load_clock(data_dir=directory, size=75, split="final", seed=1)
    assert (len(final.x_train), len(final.x_val)) == (80, 20)
    assert final.x_test is final.x_val
    np.testing.assert_array_equal(final.y_test, final.y_val)
    # Sorted files, shuffled split: the held-out set spans the dial, not its last hours.
    assert final.y_val[:, 0].min() < 3 and final.y_val[:, 0].max() > 8
    again = load_clock(data_dir=directory, size=75, split="final", seed=1)
    np.testing.assert_array_equal(again.y_train, final.y_train)
    small = load_clock(data_dir=directory, size=75, subset=50, test_subset=2)
    assert len(small.x_train) + len(small.x_val) + 5 == 50 and len(small.x_test) == 2


def test_real_files_in_a_size_subfolder_are_found_and_halved(tmp_path):
    labels = clock_render.time_labels(10)
    big = np.random.default_rng(1).integers(0, 256, (10, 150, 150), dtype=np.uint8)
    _write(tmp_path / "data" / "clock-150", big, labels)
    data = load_clock(data_dir=tmp_path / "data", size=75, split="final")
    assert data.input_shape == (75, 75, 1)
    with pytest.raises(DatasetNotFoundError):
        load_clock(data_dir=tmp_path / "elsewhere", size=75)
    images, _ = read_clock_files(tmp_path / "data" / "clock-150", size=75)
    np.testing.assert_array_equal(images, clock_data._halve(big))


def test_missing_data_dir_says_where_it_looked_and_how_to_fix(tmp_path):
    with pytest.raises(DatasetNotFoundError) as error:
        load_clock(data_dir=tmp_path / "nothing")
    message = str(error.value)
    assert str(tmp_path / "nothing" / "clock-75") in message
    assert "leave data_dir out" in message


_GRAY = np.full((4, 75, 75), 128, np.uint8)
_LABELS = np.array([[1, 2]] * 4)


@pytest.mark.parametrize("images,labels,expected", [
    (np.full((4, 75, 75), 0.5, np.float32), _LABELS, "(images * 255).round().astype(np.uint8)"),
    (np.full((4, 75, 75), 9, np.int64), _LABELS, "expected grayscale uint8 images"),
    (np.full((4, 75, 75, 3), 9, np.uint8), _LABELS, "got colour images (4, 75, 75, 3)"),
    (np.full((4, 64, 64), 9, np.uint8), _LABELS, "expected shape (N, S, S) with S in 75, 150"),
    (np.full((4, 75, 70), 9, np.uint8), _LABELS, "expected shape (N, S, S)"),
    (np.zeros((0, 75, 75), np.uint8), np.zeros((0, 2), np.int64), "holds no images"),
    # float images in [0, 1] cast to uint8 without scaling: every pixel 0 or 1.
    ((np.random.default_rng(0).random((4, 75, 75)) * 1.5).astype(np.uint8), _LABELS,
     "every pixel is 0 or 1"),
    (_GRAY, np.zeros((4, 3), np.int64), "expected shape (N, 2)"),
    (_GRAY, np.zeros(4, np.int64), "expected shape (N, 2)"),
    (_GRAY, _LABELS.astype(np.float32), "labels.round().astype(np.int64)"),
    (_GRAY, np.full((4, 2), np.nan, np.float32), "not whole numbers (or are NaN)"),
    (_GRAY, np.zeros((3, 2), np.int64), "one label per image"),
    (_GRAY, np.array([[12, 0]] * 4), "labels[:, 0] % 12"),
    (_GRAY, np.array([[1, 60]] * 4), "expected minutes in 0-59"),
    (_GRAY, np.array([[-1, 6]] * 4), "expected hours in 0-11, got values from -1 to -1."),
])
def test_bad_files_are_rejected_with_clear_errors(tmp_path, images, labels, expected):
    directory = _write(tmp_path / "bad", images, labels)
    with pytest.raises(DatasetFormatError) as error:
        read_clock_files(directory)
    assert expected in str(error.value)
    # A user's own files are never worth deleting; only the render cache says so.
    assert "delete" not in str(error.value).lower()


def test_an_npz_archive_saved_as_npy_is_named(tmp_path):
    directory = _valid_files(tmp_path / "set")
    with open(directory / "images.npy", "wb") as handle:
        np.savez(handle, images=_GRAY)
    with pytest.raises(DatasetFormatError, match=r"got an .npz archive \(np.savez\) of images"):
        read_clock_files(directory)


def test_errors_in_the_render_cache_say_that_deleting_renders_it_again(tmp_path):
    cache = clock_data.rendered_dir(4, 75, 0)
    _write(cache, _GRAY, np.array([[12, 0]] * 4))
    (cache / clock_data.GEOMETRY_FILE).parent.mkdir(parents=True, exist_ok=True)
    np.save(cache / clock_data.GEOMETRY_FILE, np.zeros((4, 5), np.float32))
    with pytest.raises(DatasetFormatError, match="delete the folder to have the set rendered"):
        load_clock(count=4)


def test_unreadable_or_too_small_files(tmp_path):
    directory = _valid_files(tmp_path / "corrupt")
    (directory / "images.npy").write_bytes(b"not numpy")
    with pytest.raises(DatasetFormatError, match="expected a NumPy .npy array file"):
        read_clock_files(directory)
    small = _valid_files(tmp_path / "small", size=75)
    with pytest.raises(DatasetFormatError, match="asked for 150x150"):
        read_clock_files(small, size=150)


# Images to read the time from (``hpsearch clock predict``)

def _gray_picture(size=80):
    return np.random.default_rng(1).integers(0, 256, (size, size)).astype(np.uint8)


def test_pictures_of_every_depth_read_as_their_8_bit_copy(tmp_path):
    from datasets.clock import read_clock_images

    gray = _gray_picture()
    Image.fromarray(gray).save(tmp_path / "8bit.png")
    Image.fromarray(gray.astype(np.uint16) * 257).save(tmp_path / "16bit.png")
    Image.fromarray(gray.astype(np.float32) / 255).save(tmp_path / "float.tif")
    Image.fromarray(gray.astype(np.int32)).save(tmp_path / "int32.tif")
    images, names = read_clock_images([tmp_path], 75)
    assert [Path(name).name for name in names] == ["16bit.png", "8bit.png", "float.tif",
                                                   "int32.tif"]
    for image in images:
        np.testing.assert_array_equal(image, images[1])
    assert images[1].std() > 50  # not a blank image


def test_transparent_pictures_are_laid_over_white(tmp_path):
    from datasets.clock import read_clock_images

    rgba = np.zeros((80, 80, 4), np.uint8)
    rgba[:40, :, :3], rgba[:40, :, 3] = 20, 255  # top half opaque dark, bottom transparent
    Image.fromarray(rgba).save(tmp_path / "clock.png")
    image = read_clock_images([tmp_path / "clock.png"], 75)[0][0]
    assert image[:30].max() <= 21 and image[-30:].min() == 255


def test_npy_images_single_or_in_folders_and_what_is_refused(tmp_path):
    from datasets.clock import read_clock_images

    folder = tmp_path / "arrays"
    folder.mkdir()
    pixels = _gray_picture(75)
    np.save(folder / "one.npy", pixels[..., None])  # a single (S, S, 1) image
    np.save(folder / "two.npy", np.stack([pixels, pixels]))
    images, names = read_clock_images([folder], 75)
    assert images.shape == (3, 75, 75) and names[0].endswith("one.npy[0]")
    np.save(tmp_path / "floats.npy", pixels.astype(np.float32) / 255)
    with pytest.raises(DatasetFormatError, match=r"\(images \* 255\).round\(\)"):
        read_clock_images([tmp_path / "floats.npy"], 75)
    np.save(tmp_path / "cast.npy", (pixels > 128).astype(np.uint8))
    with pytest.raises(DatasetFormatError, match="every pixel is 0 or 1"):
        read_clock_images([tmp_path / "cast.npy"], 75)
    np.savez(tmp_path / "archive.npz", x=pixels)
    (tmp_path / "archive.npz").rename(tmp_path / "archive.npy")
    with pytest.raises(DatasetFormatError, match="got an .npz archive"):
        read_clock_images([tmp_path / "archive.npy"], 75)


def test_a_picture_too_large_to_open_is_refused_without_a_traceback(tmp_path, monkeypatch):
    from datasets.clock import read_clock_images

    Image.fromarray(_gray_picture(200)).save(tmp_path / "huge.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 40,000 pixels: over twice the limit
    with pytest.raises(DatasetFormatError, match="huge.png: not a readable picture"):
        read_clock_images([tmp_path / "huge.png"], 75)


def test_a_set_too_small_to_split_is_refused(tmp_path):
    directory = _valid_files(tmp_path / "tiny", count=5)
    with pytest.raises(DatasetFormatError, match="5 images leave 5 training, 0 validation, 0 test"):
        load_clock(data_dir=directory, split="tuning")
    assert len(load_clock(data_dir=_valid_files(tmp_path / "six", count=6)).x_test) == 1


def test_locating_agrees_with_loading(tmp_path):
    images_only = tmp_path / "images_only"
    _valid_files(images_only)
    (images_only / "labels.npy").unlink()
    for call in (clock_data.locate_clock, load_clock):
        with pytest.raises(DatasetNotFoundError, match="holds images.npy but no labels.npy"):
            call(data_dir=images_only)
        with pytest.raises(DatasetNotFoundError, match="Places tried"):
            call(data_dir=tmp_path / "empty")
    assert clock_data.locate_clock(data_dir=_valid_files(tmp_path / "set")).startswith(
        "clock: found in")


def test_bad_options():
    with pytest.raises(ValueError, match="size must be one of"):
        load_clock(size=64)
    with pytest.raises(ValueError, match="split must be one of"):
        load_clock(split="test")
    labels = clock_render.time_labels(10)
    images = np.zeros((10, 75, 75), np.uint8)
    with pytest.raises(ValueError, match="validation_fraction"):
        split_clock(images, labels, "x", split="final", validation_fraction=1.5)


def test_hand_angles_place_the_hour_hand_between_hours():
    assert clock_styles.hand_angles(5, 30) == (165.0, 180.0)
    assert math.isclose(clock_styles.hand_angles(11, 59)[0], 359.5)
