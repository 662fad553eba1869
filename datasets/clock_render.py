"""A rendered stand-in for the tell-the-time clock photographs.

Three styles of clock:

- ``"classic"`` (the default): the first renderer's one design (thick dark bezel, light face,
  Arabic numerals 1-12, 60 minute ticks, a short thick hour hand and a long thin minute hand);
  its sets are pixel-identical to those of earlier versions;
- ``"varied"``: every image draws its own clock design, so a model can learn what a clock is
  rather than one clock: round, square, rounded-square, octagonal or rimless cases of
  any bezel thickness, light, dark or coloured faces (plain, gradient, sunburst, concentric
  rings), Arabic or Roman numerals in one of several fonts, only 12-3-6-9, or none; minute ticks,
  hour bars, dots or no marks; hour and minute hands of five shapes (tapered, bar, arrow,
  outlined, lollipop) in any widths, lengths and colours; a seconds hand at a random angle (a
  distractor) half of the time; a brand name; drawn in colour and converted to gray, so colour
  contrast becomes whatever gray contrast it gives; then a drop shadow, uneven lighting and
  sometimes an object occluding part of the dial. Much harder to learn: the default CNN trained
  on it from scratch (75 px, 15 epochs) or from a classic-trained model (150 px, 2 epochs at
  5e-4) stayed at chance (BENCHMARKS.md), so it is not the default;
- ``"mixed"``: each image is a classic clock or a varied one, half and half (image ``i``'s
  first random draw decides), so that a model which reads the classic clock keeps a signal to
  learn from while it meets other designs.

Every style puts the clock on a wood-grain or carpet-stripe background, under a random perspective
tilt and in-plane rotation, with a specular glare, blur, noise and brightness / contrast
changes. Images are drawn at twice the output size with PIL
and reduced, so edges are anti-aliased. Image ``i`` depends only on ``(seed, i)``, so a dataset is
the same whatever the number of worker processes, and no two images share their random draws.

>>> from datasets.clock_render import render_dataset
>>> images, labels = render_dataset(count=720, size=75, seed=0)

Fonts: DejaVu's (Debian's ``fonts-dejavu-core``) where installed, else Pillow's built-in font, so
a varied set's pixels depend on the fonts of the machine that renders it.
"""
from __future__ import annotations

import functools
import math
import multiprocessing
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

BASE_SIZE = 150
SIZES = (75, 150)
# What ``render_clock(..., with_geometry=True)`` and ``geometry.npy`` hold per image: the dial
# centre as a fraction of the side (x right, y down), and the image-frame directions of the twelve
# o'clock mark and of the hour and minute hands, in radians clockwise from image-up, 0 to 2 pi.
GEOMETRY_COLUMNS = ("center_x", "center_y", "twelve_angle", "hour_angle", "minute_angle")
MINUTES_PER_DIAL = 720
# Drawing at twice the output size then averaging 2x2 blocks anti-aliases every edge cheaply.
SUPERSAMPLE = 2
# Face radius of the canonical (untransformed) drawing, in supersampled pixels.
_CANONICAL_FACE_RADIUS = 100.0
# Images per task sent to a worker process: large enough that pickling overhead is negligible.
_CHUNK = 200
STYLES = ("classic", "varied", "mixed")
DEFAULT_STYLE = "classic"
_FONT_DIRS = ("/usr/share/fonts/truetype/dejavu", "/usr/share/fonts/dejavu")
_FONT_FILES = ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSerif.ttf", "DejaVuSerif-Bold.ttf",
               "DejaVuSansMono.ttf", "DejaVuSansCondensed.ttf", "DejaVuSerifCondensed-Bold.ttf",
               "DejaVuSans-ExtraLight.ttf")
_ROMAN = ("XII", "I", "II", "III", "IIII", "V", "VI", "VII", "VIII", "IX", "X", "XI")
_BRANDS = ("QUARTZ", "ACME", "KIENZLE", "TIME", "OFFICE", "SWISS", "HELIOS", "NORD", "ZEIT",
           "MODERN", "1987", "RAIL")


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
    geometry = _geometry(forward, clock.size[0] / 2.0, hour, minute, side) if with_geometry else None
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


def hand_angles(hour: int, minute: int) -> tuple[float, float]:
    """Clockwise angles from twelve o'clock, in degrees, of the (hour hand, minute hand)."""
    return 30.0 * ((hour % 12) + minute / 60.0), 6.0 * minute


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


@functools.lru_cache(maxsize=64)
def _font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)


def _polar(center: float, radius: float, degrees: float) -> tuple[float, float]:
    # Clockwise from twelve o'clock, image y pointing down.
    theta = math.radians(degrees)
    return center + radius * math.sin(theta), center - radius * math.cos(theta)


def _draw_canonical_clock(hour: int, minute: int, rng: np.random.Generator, clean: bool):
    """The upright clock on its own canvas: (image, mask, outer radius), all supersampled."""
    face = _CANONICAL_FACE_RADIUS
    bezel = face * (rng.uniform(0.10, 0.18) if not clean else 0.14)
    outer = face + bezel
    canvas = int(math.ceil(2 * outer)) + 8
    c = canvas / 2.0
    bezel_gray = int(rng.integers(10, 80))
    face_gray = int(rng.integers(200, 250))
    ink = int(rng.integers(0, 50))
    image = Image.new("L", (canvas, canvas), color=face_gray)
    mask = Image.new("L", (canvas, canvas), color=0)
    ImageDraw.Draw(mask).ellipse((c - outer, c - outer, c + outer, c + outer), fill=255)
    draw = ImageDraw.Draw(image)
    draw.ellipse((c - outer, c - outer, c + outer, c + outer), fill=bezel_gray)
    # A lighter rim line inside the bezel, as on moulded plastic clocks.
    rim = face + bezel * 0.35
    draw.ellipse((c - rim, c - rim, c + rim, c + rim), outline=min(255, bezel_gray + 50), width=2)
    draw.ellipse((c - face, c - face, c + face, c + face), fill=face_gray)

    for tick in range(60):
        major = tick % 5 == 0
        inner = face * (0.83 if major else 0.90)
        width = 5 if major else 2
        draw.line([_polar(c, inner, tick * 6), _polar(c, face * 0.97, tick * 6)], fill=ink,
                  width=width)
    font = _font(int(round(face * (rng.uniform(0.17, 0.22) if not clean else 0.2))))
    numeral_radius = face * 0.68
    for numeral in range(1, 13):
        draw.text(_polar(c, numeral_radius, numeral * 30), str(numeral), fill=ink, font=font,
                  anchor="mm")

    hour_degrees, minute_degrees = hand_angles(hour, minute)
    _draw_hand(draw, c, hour_degrees, length=face * 0.50, tail=face * 0.12,
               width=face * 0.085, fill=ink)
    _draw_hand(draw, c, minute_degrees, length=face * 0.86, tail=face * 0.15,
               width=face * 0.045, fill=ink)
    cap = face * 0.05
    draw.ellipse((c - cap, c - cap, c + cap, c + cap), fill=ink)
    return image, mask, outer


def _draw_hand(draw: ImageDraw.ImageDraw, center: float, degrees: float, length: float,
               tail: float, width: float, fill: int) -> None:
    theta = math.radians(degrees)
    along = np.array([math.sin(theta), -math.cos(theta)])
    across = np.array([along[1] * -1.0, along[0]])
    base = center - tail * along
    tip = center + length * along
    points = [base + across * width / 2, tip + across * width / 5,
              tip - across * width / 5, base - across * width / 2]
    draw.polygon([tuple(p) for p in points], fill=fill)


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


@functools.lru_cache(maxsize=4)
def _grid(side: int) -> tuple[np.ndarray, np.ndarray]:
    axis = (np.arange(side, dtype=np.float32) - side / 2.0) / (side / 2.0)
    return np.meshgrid(axis, axis)


def _background(side: int, rng: np.random.Generator) -> np.ndarray:
    """Wood grain or carpet stripes at a random angle, float32 in [0, 1]."""
    xx, yy = _grid(side)
    angle = rng.uniform(0.0, math.pi)
    along = xx * math.cos(angle) + yy * math.sin(angle)
    across = -xx * math.sin(angle) + yy * math.cos(angle)
    base = rng.uniform(0.25, 0.75)
    if rng.random() < 0.5:
        frequency = rng.uniform(3.0, 9.0)
        warp = rng.uniform(0.05, 0.4)
        phase = rng.uniform(0.0, 2 * math.pi, size=2)
        grain = np.sin(2 * math.pi * frequency * (across + warp * np.sin(along * rng.uniform(1, 4)
                                                                         + phase[0])) + phase[1])
        texture = base + rng.uniform(0.05, 0.2) * grain * grain * grain
        fine = rng.normal(0.0, 0.04, size=2 * side).astype(np.float32)
        index = np.clip(((across + 1.5) / 3.0 * 2 * side).astype(np.int32), 0, 2 * side - 1)
        texture = texture + fine[index]
    else:
        stripes = int(rng.integers(4, 16))
        levels = rng.uniform(-0.15, 0.15, size=stripes * 3).astype(np.float32)
        band = np.clip(((across + 1.5) / 3.0 * stripes * 3).astype(np.int32), 0, stripes * 3 - 1)
        pile = np.sin(2 * math.pi * rng.uniform(20, 45) * along) * rng.uniform(0.02, 0.06)
        texture = base + levels[band] + pile
    texture = texture + 0.03 * rng.standard_normal(size=texture.shape, dtype=np.float32)
    return np.clip(texture, 0.0, 1.0)


def _add_glare(image: np.ndarray, alpha: np.ndarray, center: np.ndarray, radius: float,
               rng: np.random.Generator) -> np.ndarray:
    """A soft elliptical specular highlight on the glass, lightening towards white."""
    side = image.shape[0]
    xx, yy = _grid(side)
    offset = radius * 0.7 * math.sqrt(rng.random())
    direction = rng.uniform(0.0, 2 * math.pi)
    cx = (center[0] + offset * math.cos(direction)) / (side / 2.0) - 1.0
    cy = (center[1] + offset * math.sin(direction)) / (side / 2.0) - 1.0
    angle = rng.uniform(0.0, math.pi)
    u = (xx - cx) * math.cos(angle) + (yy - cy) * math.sin(angle)
    v = -(xx - cx) * math.sin(angle) + (yy - cy) * math.cos(angle)
    width, height = rng.uniform(0.08, 0.3), rng.uniform(0.03, 0.12)
    strength = rng.uniform(0.2, 0.7)
    glare = strength * np.exp(-((u / width) ** 2 + (v / height) ** 2)) * alpha
    return image + glare * (1.0 - image)


def _photometric(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Blur, contrast, brightness and sensor noise, then 8-bit."""
    radius = rng.uniform(0.0, 1.2)
    if radius > 0.3:
        pil = Image.fromarray(np.clip(image * 255.0 + 0.5, 0, 255).astype(np.uint8))
        image = np.asarray(pil.filter(ImageFilter.GaussianBlur(radius)), dtype=np.float32) / 255.0
    contrast = rng.uniform(0.6, 1.3)
    brightness = rng.uniform(-0.15, 0.15)
    image = (image - 0.5) * contrast + 0.5 + brightness
    image = image + rng.uniform(0.0, 0.04) * rng.standard_normal(size=image.shape, dtype=np.float32)
    return np.clip(image * 255.0 + 0.5, 0, 255).astype(np.uint8)


def _check_style(style: str) -> None:
    if style not in STYLES:
        raise ValueError(f"Unknown clock style {style!r}. Expected one of: {', '.join(STYLES)}.")


@functools.lru_cache(maxsize=1)
def _font_paths() -> tuple[str, ...]:
    found = []
    for name in _FONT_FILES:
        for directory in _FONT_DIRS:
            if os.path.isfile(os.path.join(directory, name)):
                found.append(os.path.join(directory, name))
                break
    return tuple(found)


@functools.lru_cache(maxsize=256)
def _truetype(choice: int, size: int) -> ImageFont.FreeTypeFont:
    """Font number ``choice`` of the installed ones (0 is always Pillow's built-in) at ``size``."""
    paths = _font_paths()
    if choice == 0 or not paths:
        return _font(size)
    return ImageFont.truetype(paths[(choice - 1) % len(paths)], size)


def _colour(rng: np.random.Generator, light: bool | None = None) -> tuple[int, int, int]:
    """A random colour; ``light`` True / False keeps its gray level high / low."""
    if light is None:
        return tuple(int(v) for v in rng.integers(0, 256, size=3))
    gray = rng.uniform(185, 255) if light else rng.uniform(0, 75)
    tint = rng.uniform(-25, 25, size=3)
    return tuple(int(np.clip(gray + t, 0, 255)) for t in tint)


def _luminance(colour) -> float:
    # What Image.convert("L") keeps of a colour (ITU-R 601-2).
    return 0.299 * colour[0] + 0.587 * colour[1] + 0.114 * colour[2]


def _readable(colour, against, rng: np.random.Generator) -> tuple[int, int, int]:
    """``colour`` if it stays distinguishable from ``against`` in gray, else a gray-contrasting one.

    Any two colours can turn into the same gray; hands and numerals a person could not read in a
    grayscale photo would only teach the model noise.
    """
    if abs(_luminance(colour) - _luminance(against)) >= 80:
        return colour
    return _colour(rng, light=_luminance(against) < 128)


def _mix(a, b, weight: float) -> tuple[int, int, int]:
    return tuple(int(round(x * (1.0 - weight) + y * weight)) for x, y in zip(a, b))


def _draw_varied_clock(hour: int, minute: int, rng: np.random.Generator):
    """One clock of a random design on its own canvas: (gray image, mask, extent), supersampled.

    The dial is a circle of ``_CANONICAL_FACE_RADIUS`` about the canvas centre (the geometry
    relies on it); everything around and on it is drawn at random. ``extent`` is the largest
    distance of the case from the centre.
    """
    face = _CANONICAL_FACE_RADIUS
    case = ("round", "round", "round", "square", "octagon", "rimless")[int(rng.integers(6))]
    bezel = face * (rng.uniform(0.015, 0.04) if case == "rimless" else rng.uniform(0.04, 0.24))
    outer = face + bezel
    extent = {"square": outer * math.sqrt(2.0), "octagon": outer / math.cos(math.pi / 8)}.get(
        case, outer)
    canvas = int(math.ceil(2 * extent)) + 8
    c = canvas / 2.0
    look = rng.random()
    if look < 0.6:
        face_colour = _colour(rng, light=True)
        ink = _colour(rng, light=False) if rng.random() < 0.8 else _colour(rng)
    elif look < 0.85:
        face_colour = _colour(rng, light=False)
        ink = _colour(rng, light=True)
    else:
        face_colour = _colour(rng)
        ink = _colour(rng, light=_luminance(face_colour) < 128)
    ink = _readable(ink, face_colour, rng)
    bezel_colour = _colour(rng)
    image = Image.new("RGB", (canvas, canvas), bezel_colour)
    mask = Image.new("L", (canvas, canvas), 0)
    draw, mask_draw = ImageDraw.Draw(image), ImageDraw.Draw(mask)
    box = (c - outer, c - outer, c + outer, c + outer)
    if case == "square":
        corner = outer * rng.uniform(0.0, 0.5)
        draw.rounded_rectangle(box, corner, fill=bezel_colour)
        mask_draw.rounded_rectangle(box, corner, fill=255)
    elif case == "octagon":
        points = [_polar(c, extent, 22.5 + 45 * k) for k in range(8)]
        draw.polygon(points, fill=bezel_colour)
        mask_draw.polygon(points, fill=255)
    else:
        mask_draw.ellipse(box, fill=255)
    if case != "rimless" and rng.random() < 0.6:
        rim = face + bezel * rng.uniform(0.2, 0.8)
        draw.ellipse((c - rim, c - rim, c + rim, c + rim), outline=_colour(rng),
                     width=int(rng.integers(1, 5)))
    _draw_face(draw, c, face, face_colour, rng)
    _draw_marks(draw, c, face, ink, rng)
    _draw_numerals(draw, c, face, ink, rng)

    hour_degrees, minute_degrees = hand_angles(hour, minute)
    shapes = ("tapered", "bar", "arrow", "outline", "lollipop")
    minute_shape = shapes[int(rng.integers(len(shapes)))]
    hour_shape = minute_shape if rng.random() < 0.7 else shapes[int(rng.integers(len(shapes)))]
    minute_length = face * rng.uniform(0.72, 0.96)
    hour_length = min(face * rng.uniform(0.38, 0.62), minute_length - face * 0.2)
    minute_width = face * rng.uniform(0.025, 0.07)
    hour_width = max(minute_width, face * rng.uniform(0.045, 0.12))
    hand_colour = ink if rng.random() < 0.75 else _readable(_colour(rng), face_colour, rng)
    shadow = _mix(face_colour, (0, 0, 0), 0.45) if rng.random() < 0.35 else None
    hands = [(hour_degrees, hour_length, face * rng.uniform(0.0, 0.2), hour_width, hour_shape),
             (minute_degrees, minute_length, face * rng.uniform(0.0, 0.22), minute_width,
              minute_shape)]
    if shadow is not None:
        offset = face * rng.uniform(0.015, 0.04)
        for degrees, length, tail, width, shape in hands:
            _draw_styled_hand(draw, c + offset, degrees, length, tail, width, shadow, shape)
    for degrees, length, tail, width, shape in hands:
        _draw_styled_hand(draw, c, degrees, length, tail, width, hand_colour, shape)
    cap_colour = hand_colour
    if rng.random() < 0.5:
        # A seconds hand at a random angle: a distractor the model must learn to ignore.
        cap_colour = (int(rng.integers(150, 256)), int(rng.integers(0, 80)),
                      int(rng.integers(0, 80))) if rng.random() < 0.6 else _colour(rng)
        seconds = rng.uniform(0.0, 360.0)
        _draw_styled_hand(draw, c, seconds, face * rng.uniform(0.78, 0.97), face * 0.22,
                          face * rng.uniform(0.008, 0.02), cap_colour, "bar")
        if rng.random() < 0.5:
            weight = face * rng.uniform(0.03, 0.05)
            x, y = _polar(c, face * 0.15, seconds + 180.0)
            draw.ellipse((x - weight, y - weight, x + weight, y + weight), fill=cap_colour)
    cap = face * rng.uniform(0.025, 0.08)
    draw.ellipse((c - cap, c - cap, c + cap, c + cap), fill=cap_colour)
    return image.convert("L"), mask, extent


def _draw_face(draw: ImageDraw.ImageDraw, c: float, face: float, colour, rng) -> None:
    draw.ellipse((c - face, c - face, c + face, c + face), fill=colour)
    texture = rng.random()
    if texture < 0.25:
        # Radial gradient: the rim darker or lighter than the centre.
        rim = _mix(colour, (0, 0, 0) if rng.random() < 0.6 else (255, 255, 255),
                   rng.uniform(0.1, 0.35))
        for step in range(12, 0, -1):
            radius = face * step / 12
            draw.ellipse((c - radius, c - radius, c + radius, c + radius),
                         fill=_mix(colour, rim, step / 12))
    elif texture < 0.4:
        # Sunburst: thin radial lines a shade off the face colour.
        line = _mix(colour, (0, 0, 0), rng.uniform(0.05, 0.15))
        count = int(rng.integers(48, 120))
        for k in range(count):
            draw.line([(c, c), _polar(c, face, k * 360.0 / count)], fill=line, width=1)
    elif texture < 0.55:
        ring = _mix(colour, (0, 0, 0), rng.uniform(0.1, 0.3))
        for radius in face * rng.uniform(0.2, 0.95, size=int(rng.integers(1, 4))):
            draw.ellipse((c - radius, c - radius, c + radius, c + radius), outline=ring,
                         width=int(rng.integers(1, 4)))


def _draw_marks(draw: ImageDraw.ImageDraw, c: float, face: float, ink, rng) -> None:
    kind = ("minutes", "minutes", "hours", "dots", "quarters", "none")[int(rng.integers(6))]
    outer = face * rng.uniform(0.9, 0.98)
    major, minor = face * rng.uniform(0.06, 0.16), face * rng.uniform(0.02, 0.06)
    major_width, minor_width = face * rng.uniform(0.015, 0.05), face * rng.uniform(0.006, 0.02)
    for tick in range(60):
        hourly = tick % 5 == 0
        if kind == "none" or (kind in ("hours", "dots") and not hourly) or (
                kind == "quarters" and tick % 15):
            continue
        if kind == "dots":
            radius = major_width * (1.5 if tick % 15 == 0 else 1.0)
            x, y = _polar(c, outer - radius, tick * 6)
            draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=ink)
            continue
        length, width = (major, major_width) if hourly else (minor, minor_width)
        draw.line([_polar(c, outer - length, tick * 6), _polar(c, outer, tick * 6)], fill=ink,
                  width=max(1, int(round(width))))


def _draw_numerals(draw: ImageDraw.ImageDraw, c: float, face: float, ink, rng) -> None:
    kind = ("arabic", "arabic", "roman", "quarters", "none", "none")[int(rng.integers(6))]
    if kind == "none":
        # Marks alone look the same turned by 30 degrees, and these clocks turn freely: without
        # numerals a real dial marks its 12 (a triangle or a double bar).
        top = face * rng.uniform(0.8, 0.95)
        size = face * rng.uniform(0.07, 0.13)
        if rng.random() < 0.5:
            draw.polygon([_polar(c, top, -size / face * 40), _polar(c, top, size / face * 40),
                          _polar(c, top - size * 1.6, 0.0)], fill=ink)
        else:
            for degrees in (-3.0, 3.0):
                draw.line([_polar(c, top - size * 1.5, degrees), _polar(c, top, degrees)],
                          fill=ink, width=max(2, int(round(size * 0.35))))
        return
    font = _truetype(int(rng.integers(len(_FONT_FILES) + 1)),
                     int(round(face * rng.uniform(0.12, 0.24) * (0.75 if kind == "roman" else 1))))
    radius = face * rng.uniform(0.58, 0.74)
    for number in range(12):
        if kind == "quarters" and number % 3:
            continue
        text = _ROMAN[number] if kind == "roman" else str(number or 12)
        draw.text(_polar(c, radius, number * 30), text, fill=ink, font=font, anchor="mm")
    if rng.random() < 0.4:
        brand = _BRANDS[int(rng.integers(len(_BRANDS)))]
        small = _truetype(int(rng.integers(len(_FONT_FILES) + 1)),
                          int(round(face * rng.uniform(0.06, 0.1))))
        draw.text((c, c + face * (0.3 if rng.random() < 0.5 else -0.3)), brand, fill=ink,
                  font=small, anchor="mm")


def _draw_styled_hand(draw: ImageDraw.ImageDraw, center: float, degrees: float, length: float,
                      tail: float, width: float, fill, shape: str) -> None:
    theta = math.radians(degrees)
    along = np.array([math.sin(theta), -math.cos(theta)])
    across = np.array([-along[1], along[0]])

    def at(distance, side):
        point = center + distance * along + side * across
        return float(point[0]), float(point[1])

    if shape == "tapered":
        _draw_hand(draw, center, degrees, length, tail, width, fill)
    elif shape == "bar":
        draw.polygon([at(-tail, width / 2), at(length, width / 2), at(length, -width / 2),
                      at(-tail, -width / 2)], fill=fill)
    elif shape == "arrow":
        shaft = width * 0.45
        neck = length * 0.78
        draw.polygon([at(-tail, shaft), at(neck, shaft), at(neck, width), at(length, 0),
                      at(neck, -width), at(neck, -shaft), at(-tail, -shaft)], fill=fill)
    elif shape == "outline":
        draw.polygon([at(-tail, width / 2), at(length * 0.85, width / 2), at(length, 0),
                      at(length * 0.85, -width / 2), at(-tail, -width / 2)], outline=fill,
                     width=max(2, int(round(width / 4))))
    else:  # lollipop: a thin stem with a disc near the tip
        stem = max(2.0, width * 0.4)
        draw.polygon([at(-tail, stem / 2), at(length, stem / 2), at(length, -stem / 2),
                      at(-tail, -stem / 2)], fill=fill)
        x, y = at(length * 0.8, 0)
        disc = width * 0.9
        draw.ellipse((x - disc, y - disc, x + disc, y + disc), fill=fill)


def _cast_shadow(background: np.ndarray, alpha: np.ndarray, rng) -> np.ndarray:
    """The clock's soft drop shadow on the wall, offset towards a random side."""
    if rng.random() < 0.4:
        return background
    side = alpha.shape[0]
    shift = (rng.uniform(-0.04, 0.04, size=2) * side).round().astype(int)
    blur = Image.fromarray((alpha * 255.0).astype(np.uint8)).filter(
        ImageFilter.GaussianBlur(rng.uniform(1.0, 0.03 * side + 1.0)))
    shadow = np.roll(np.asarray(blur, dtype=np.float32) / 255.0, tuple(shift), axis=(0, 1))
    return background * (1.0 - rng.uniform(0.2, 0.6) * shadow)


def _uneven_light(image: np.ndarray, rng) -> np.ndarray:
    """Light falling off across the scene, and sometimes a vignette."""
    xx, yy = _grid(image.shape[0])
    angle = rng.uniform(0.0, 2 * math.pi)
    image = image * (1.0 + rng.uniform(0.0, 0.35) * (xx * math.cos(angle) + yy * math.sin(angle)))
    if rng.random() < 0.3:
        image = image * (1.0 - rng.uniform(0.1, 0.4) * np.clip(xx * xx + yy * yy - 0.3, 0, None))
    return image


def _occlude(image: np.ndarray, center: np.ndarray, radius: float, rng) -> np.ndarray:
    """Sometimes an object (an ellipse or a bar) over part of the dial, never over its centre."""
    if rng.random() > 0.2:
        return image
    side = image.shape[0]
    xx, yy = _grid(side)
    scale = radius / (side / 2.0)
    direction = rng.uniform(0.0, 2 * math.pi)
    distance = scale * rng.uniform(0.75, 1.1)
    cx = center[0] / (side / 2.0) - 1.0 + distance * math.cos(direction)
    cy = center[1] / (side / 2.0) - 1.0 + distance * math.sin(direction)
    a, b = scale * rng.uniform(0.15, 0.35), scale * rng.uniform(0.1, 0.35)
    angle = rng.uniform(0.0, math.pi)
    u = (xx - cx) * math.cos(angle) + (yy - cy) * math.sin(angle)
    v = -(xx - cx) * math.sin(angle) + (yy - cy) * math.cos(angle)
    if rng.random() < 0.5:
        inside = (u / a) ** 2 + (v / b) ** 2 <= 1.0
    else:
        inside = (np.abs(u) <= a * 2.0) & (np.abs(v) <= b * 0.5)
    shade = rng.uniform(0.0, 1.0) + 0.05 * rng.standard_normal(size=image.shape).astype(np.float32)
    return np.where(inside, shade, image)
