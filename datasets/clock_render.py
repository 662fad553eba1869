"""A rendered stand-in for the tell-the-time clock photographs: the renderer's public API, and
the 3-D pose that puts a drawn clock into a scene.

Three styles of clock (their drawing: ``datasets.clock_styles``):

- ``"classic"`` (the default): the first renderer's one design (thick dark bezel, light face,
  Arabic numerals 1-12, 60 minute ticks, a short thick hour hand and a long thin minute hand);
  its sets are pixel-identical to those of earlier versions;
- ``"varied"``: every image draws its own clock design (case, bezel, face, numerals, marks and
  hands drawn at random, in colour, then converted to gray), so a model can learn what a clock is
  rather than one clock; then a drop shadow, uneven lighting and sometimes an object occluding
  part of the dial. Much harder to learn: the default CNN trained on it from scratch (75 px, 15
  epochs) or from a classic-trained model (150 px, 2 epochs at 5e-4) stayed at chance
  (BENCHMARKS.md), so it is not the default;
- ``"mixed"``: each image is a classic clock or a varied one, half and half (image ``i``'s
  first random draw decides), so that a model which reads the classic clock keeps a signal to
  learn from while it meets other designs.

Every style puts the clock on a wood-grain or carpet-stripe background, under a random perspective
tilt and in-plane rotation, with a specular glare, blur, noise and brightness / contrast
changes (``datasets.clock_scene``). Images are drawn at twice the output size with PIL
and reduced, so edges are anti-aliased. Image ``i`` depends only on ``(seed, i)``, so a dataset is
the same whatever the number of worker processes, and no two images share their random draws.

>>> from datasets.clock_render import render_dataset
>>> images, labels = render_dataset(count=720, size=75, seed=0)

A varied set's pixels depend on the fonts of the machine that renders it (see
``datasets.clock_styles``).
"""
from __future__ import annotations

import math
import multiprocessing
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from datasets.clock_scene import (
    _add_glare,
    _background,
    _cast_shadow,
    _occlude,
    _photometric,
    _uneven_light,
)
from datasets.clock_styles import (
    _CANONICAL_FACE_RADIUS,
    _draw_canonical_clock,
    _draw_varied_clock,
    _font,
    _polar,
    hand_angles,
)

BASE_SIZE = 150
SIZES = (75, 150)
# What ``render_clock(..., with_geometry=True)`` and ``geometry.npy`` hold per image: the dial
# centre as a fraction of the side (x right, y down), and the image-frame directions of the twelve
# o'clock mark and of the hour and minute hands, in radians clockwise from image-up, 0 to 2 pi.
GEOMETRY_COLUMNS = ("center_x", "center_y", "twelve_angle", "hour_angle", "minute_angle")
MINUTES_PER_DIAL = 720
# Drawing at twice the output size then averaging 2x2 blocks anti-aliases every edge cheaply.
SUPERSAMPLE = 2
# Images per task sent to a worker process: large enough that pickling overhead is negligible.
_CHUNK = 200
STYLES = ("classic", "varied", "mixed")
DEFAULT_STYLE = "classic"


def time_labels(count: int) -> np.ndarray:
    """(hour, minute) labels of a rendered set of ``count`` images, sorted by time.

    The 720 minutes of the dial are spread evenly: 18,000 images give 25 per minute label.
    """
    if count < 1:
        raise ValueError(f"count must be a positive number of images, got {count}.")
    total = (np.arange(count, dtype=np.int64) * MINUTES_PER_DIAL) // count
    return np.stack([total // 60, total % 60], axis=1)


def render_clock(hour: int, minute: int, rng: np.random.Generator, size: int = BASE_SIZE,
                 clean: bool = False, with_geometry: bool = False, style: str = DEFAULT_STYLE):
    """One clock image showing ``hour``:``minute``.

    Args:
        hour: 0-11 (0 is twelve o'clock).
        minute: 0-59.
        rng: the random draws of this image (scene, style, pose, photometric changes).
        size: output side in pixels.
        clean: a plain gray background, upright and untilted, centred, no glare / blur / noise;
            for measuring the hands in tests.
        with_geometry: also return where the dial and hands are in the image (see
            ``GEOMETRY_COLUMNS``).
        style: one of ``STYLES`` (default ``"classic"``); ``clean`` always draws the classic one.

    Returns:
        uint8 array (size, size); with ``with_geometry``, ``(image, geometry)`` where geometry is
        a float32 array of ``len(GEOMETRY_COLUMNS)`` values.
    """
    if not (0 <= hour < 12 and 0 <= minute < 60):
        raise ValueError(f"Expected hour in 0-11 and minute in 0-59, got {hour}:{minute:02d}.")
    _check_style(style)
    varied = not clean and (style == "varied" or (style == "mixed" and rng.random() < 0.5))
    side = size * SUPERSAMPLE
    if varied:
        clock, mask, outer_radius = _draw_varied_clock(hour, minute, rng)
    else:
        clock, mask, outer_radius = _draw_canonical_clock(hour, minute, rng, clean)
    coefficients, center, radius, forward = _pose(clock.size[0], outer_radius, side, rng,
                                                  clean=clean)
    geometry = (_geometry(forward, clock.size[0] / 2.0, hour, minute, side)
                if with_geometry else None)
    # One two-band transform is cheaper than two single-band ones.
    clock.putalpha(mask)
    clock, mask = clock.transform((side, side), Image.PERSPECTIVE, coefficients,
                                  Image.BILINEAR).split()
    # Premultiply and reduce in C; the background is smooth at this scale, so blending it at the
    # output size after the reduction gives the same image as blending before, at a quarter of
    # the cost.
    premultiplied = Image.composite(clock, Image.new("L", clock.size, 0), mask)
    premultiplied = np.asarray(premultiplied.reduce(SUPERSAMPLE), dtype=np.float32) / 255.0
    alpha = np.asarray(mask.reduce(SUPERSAMPLE), dtype=np.float32) / 255.0
    if clean:
        background = np.float32(0.5)
    else:
        background = _background(size, rng)
    if varied:
        background = _cast_shadow(background, alpha, rng)
    image = background * (1.0 - alpha) + premultiplied
    if varied:
        image = _occlude(_uneven_light(image, rng), center / SUPERSAMPLE,
                         radius / SUPERSAMPLE, rng)
    if clean:
        image = np.clip(image * 255.0 + 0.5, 0, 255).astype(np.uint8)
    else:
        image = _add_glare(image, alpha, center / SUPERSAMPLE, radius / SUPERSAMPLE, rng)
        image = _photometric(image, rng)
    return (image, geometry) if with_geometry else image


def render_images(labels: np.ndarray, seed: int = 0, size: int = BASE_SIZE,
                  processes: int | None = None, first_index: int = 0,
                  with_geometry: bool = False, style: str = DEFAULT_STYLE):
    """Render one image per (hour, minute) row of ``labels``.

    Args:
        labels: (N, 2) integer hour, minute.
        seed: dataset seed; image ``i`` draws from ``default_rng([seed, first_index + i])``.
        size: 75 or 150. 75 is rendered at 150 and halved, like the assignment's smaller set.
        processes: worker processes (default: up to 2, one per CPU core; 1 renders in-process).
        first_index: index of the first row, so parts of a set can be rendered separately.
        with_geometry: also return the (N, 5) float32 geometry (``GEOMETRY_COLUMNS``).
        style: one of ``STYLES`` (default ``"classic"``).

    Returns:
        uint8 array (N, size, size), or ``(images, geometry)`` with ``with_geometry``.
    """
    if size not in SIZES:
        raise ValueError(f"size must be one of {SIZES}, got {size}.")
    _check_style(style)
    labels = np.asarray(labels, dtype=np.int64).reshape(-1, 2)
    processes = processes or min(2, os.cpu_count() or 1)
    tasks = [(labels[start:start + _CHUNK], seed, size, first_index + start, style)
             for start in range(0, len(labels), _CHUNK)]
    if processes <= 1 or len(tasks) <= 1:
        parts = [_render_chunk(task) for task in tasks]
    else:
        # fork keeps start-up cheap; the workers only use numpy and PIL.
        context = multiprocessing.get_context("fork")
        with context.Pool(processes) as pool:
            parts = pool.map(_render_chunk, tasks, chunksize=1)
    if parts:
        images = np.concatenate([part[0] for part in parts])
        geometry = np.concatenate([part[1] for part in parts])
    else:
        images = np.zeros((0, size, size), dtype=np.uint8)
        geometry = np.zeros((0, len(GEOMETRY_COLUMNS)), dtype=np.float32)
    return (images, geometry) if with_geometry else images


def render_dataset(count: int = 18000, size: int = BASE_SIZE, seed: int = 0,
                   processes: int | None = None, with_geometry: bool = False,
                   style: str = DEFAULT_STYLE):
    """The rendered stand-in for the assignment's files: (images (N, S, S) uint8, labels (N, 2)),
    and with ``with_geometry`` the (N, 5) geometry as a third element."""
    labels = time_labels(count)
    rendered = render_images(labels, seed=seed, size=size, processes=processes,
                             with_geometry=with_geometry, style=style)
    if with_geometry:
        return rendered[0], labels, rendered[1]
    return rendered, labels


def write_dataset(out_dir: str | os.PathLike, count: int = 18000, size: int = BASE_SIZE,
                  seed: int = 0, processes: int | None = None,
                  style: str = DEFAULT_STYLE) -> dict[str, Path]:
    """Render a set and write ``images.npy``, ``labels.npy``, ``geometry.npy`` and ``preview.png``.

    ``geometry.npy`` is what the renderer knows and a photograph does not (``GEOMETRY_COLUMNS``);
    the clock search spaces can use it as auxiliary training targets. The arrays are written under
    temporary names and renamed, images last, so an interrupted run never leaves a half-written
    file that a later load would take for a finished one.

    Returns:
        {"images": path, "labels": path, "geometry": path, "preview": path}.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    images, labels, geometry = render_dataset(count=count, size=size, seed=seed,
                                              processes=processes, with_geometry=True,
                                              style=style)
    paths = {"images": out / "images.npy", "labels": out / "labels.npy",
             "geometry": out / "geometry.npy", "preview": out / "preview.png"}
    write_preview(images, labels, paths["preview"])
    for key, array in (("labels", labels), ("geometry", geometry), ("images", images)):
        temporary = paths[key].with_name(paths[key].name + ".partial.npy")
        np.save(temporary, array)
        os.replace(temporary, paths[key])
    return paths


def write_preview(images: np.ndarray, labels: np.ndarray, path: str | os.PathLike,
                  columns: int = 8, rows: int = 6) -> Path:
    """A contact sheet of evenly spaced images, each captioned with its time (h:mm, 12 for 0)."""
    count = min(len(images), columns * rows)
    if count == 0:
        raise ValueError("Cannot write a preview of an empty set of images.")
    picks = np.linspace(0, len(images) - 1, count).round().astype(int)
    side = images.shape[1]
    caption = 14
    sheet = Image.new("L", (columns * side, rows * (side + caption)), color=255)
    draw = ImageDraw.Draw(sheet)
    font = _font(11)
    for slot, index in enumerate(picks):
        left, top = (slot % columns) * side, (slot // columns) * (side + caption)
        sheet.paste(Image.fromarray(images[index]), (left, top))
        hour, minute = (int(v) for v in labels[index])
        draw.text((left + side // 2, top + side + caption // 2), f"{hour or 12}:{minute:02d}",
                  fill=0, font=font, anchor="mm")
    path = Path(path)
    sheet.save(path)
    return path


def _render_chunk(task) -> tuple[np.ndarray, np.ndarray]:
    labels, seed, size, first_index, style = task
    images = np.empty((len(labels), size, size), dtype=np.uint8)
    geometry = np.empty((len(labels), len(GEOMETRY_COLUMNS)), dtype=np.float32)
    for offset, (hour, minute) in enumerate(labels):
        rng = np.random.default_rng([seed, first_index + offset])
        image, geometry[offset] = render_clock(int(hour), int(minute), rng, size=BASE_SIZE,
                                               with_geometry=True, style=style)
        if size != BASE_SIZE:
            image = np.asarray(Image.fromarray(image).reduce(BASE_SIZE // size))
        images[offset] = image
    return images, geometry


def _pose(canvas: int, outer_radius: float, side: int, rng: np.random.Generator, clean: bool):
    """(PIL PERSPECTIVE coefficients, clock centre, clock radius), in supersampled output pixels.

    The coefficients map output pixels to canonical canvas pixels.
    The canonical clock is rotated in its plane, scaled, tilted in 3-D about an in-plane axis and
    projected through a pinhole camera, so the dial becomes an ellipse with perspective.
    """
    if clean:
        rotation, tilt, axis, radius_fraction = 0.0, 0.0, 0.0, 0.42
        center = np.array([side / 2.0, side / 2.0])
    else:
        rotation = rng.uniform(0.0, 2 * math.pi)
        tilt = math.radians(rng.uniform(0.0, 50.0))
        axis = rng.uniform(0.0, math.pi)
        radius_fraction = rng.uniform(0.30, 0.46)
        slack = side * (0.5 - radius_fraction * 0.85)
        center = side / 2.0 + rng.uniform(-slack, slack, size=2)
    scale = radius_fraction * side / outer_radius
    focal = side * (rng.uniform(1.2, 3.0) if not clean else 2.0)
    half = canvas / 2.0
    source = np.array([[0, 0], [canvas, 0], [canvas, canvas], [0, canvas]], dtype=np.float64)
    local = (source - half) * scale
    cos_r, sin_r = math.cos(rotation), math.sin(rotation)
    local = local @ np.array([[cos_r, sin_r], [-sin_r, cos_r]])
    points = np.concatenate([local, np.zeros((4, 1))], axis=1)
    axis_vector = np.array([math.cos(axis), math.sin(axis), 0.0])
    rotated = _rotate_about(points, axis_vector, tilt)
    depth = focal + rotated[:, 2]
    target = center + focal * rotated[:, :2] / depth[:, None]
    return (_homography(target, source), center, radius_fraction * side,
            _homography(source, target))


def _geometry(forward: tuple[float, ...], canvas_center: float, hour: int, minute: int,
              side: int) -> np.ndarray:
    """Image-frame geometry of a posed clock: see ``GEOMETRY_COLUMNS``.

    Canonical points (centre, the 12 mark, both hand tips) are mapped through the forward
    homography; angles are of the projected directions from the projected centre.
    """
    a, b, c, d, e, f, g, h = forward
    face = _CANONICAL_FACE_RADIUS
    hour_degrees, minute_degrees = hand_angles(hour, minute)
    canonical = [(canvas_center, canvas_center), _polar(canvas_center, face * 0.9, 0.0),
                 _polar(canvas_center, face * 0.5, hour_degrees),
                 _polar(canvas_center, face * 0.86, minute_degrees)]
    projected = []
    for x, y in canonical:
        w = g * x + h * y + 1.0
        projected.append(((a * x + b * y + c) / w, (d * x + e * y + f) / w))
    (cx, cy), *tips = projected
    # Clockwise from image-up, like the dial's own angles (image y points down).
    angles = [math.atan2(tx - cx, cy - ty) % (2 * math.pi) for tx, ty in tips]
    return np.array([cx / side, cy / side, *angles], dtype=np.float32)


def _rotate_about(points: np.ndarray, axis: np.ndarray, angle: float) -> np.ndarray:
    # Rodrigues' formula.
    cos_a, sin_a = math.cos(angle), math.sin(angle)
    return (points * cos_a + np.cross(axis, points) * sin_a
            + np.outer(points @ axis, axis) * (1 - cos_a))


def _homography(from_points: np.ndarray, to_points: np.ndarray) -> tuple[float, ...]:
    """The 8 coefficients (a..h) with to = ((a x + b y + c) / (g x + h y + 1), ...)."""
    rows, rhs = [], []
    for (x, y), (u, v) in zip(from_points, to_points):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y])
        rhs += [u, v]
    return tuple(np.linalg.solve(np.array(rows), np.array(rhs)).tolist())


def _check_style(style: str) -> None:
    if style not in STYLES:
        raise ValueError(f"Unknown clock style {style!r}. Expected one of: {', '.join(STYLES)}.")
