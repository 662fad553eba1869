"""A second, independent clock renderer: clocks drawn in a style the project's renderer never drew.

This module exists only for evaluation. Nothing in the project trains on its images; benchmarks use
them to measure how well a clock-reading model reads an unseen drawing style, zero-shot and after
fine-tuning on the project's own clocks. For that measurement to mean anything the two renderers
must not share code or design, so this file imports nothing from ``datasets/clock_render.py`` and
was written without looking at it. Its clocks differ on purpose: square, rounded-square, octagonal
and round cases with thin metal, wooden or plastic frames; light, dark and coloured faces; Roman
numerals, quarter numerals, radial numerals, dots, bars or a lone 12 marker; rounded baton, arrow,
spade, Breguet, lollipop and skeleton hands, counterweights, a red seconds hand at a random angle
as a distractor, brand text; set on gradient, brick, tile, plank or noise walls, at a random scale,
position, in-plane rotation (any angle) and perspective tilt (up to 40 degrees), with a drop
shadow, occasional partial occlusion, glare, blur, noise, JPEG artefacts and exposure changes.

Two levels. ``full`` (the default) is all of the above: a dial of dots or bars only, spun to any
angle, is hard to read even for a person, and at 75 pixels a double bar or a small "12" is a few
pixels. ``numbered`` keeps every case, frame, face, hand shape, wall, pose and degradation but
gives every dial numerals (Roman or Arabic, all twelve or the quarters) and leaves out the
distractors (red seconds hand, occluders): another design of the same kind of clock, whose time
a person reads at a glance.

``design0`` to ``design7`` are the ``numbered`` level with one design per set: the case, frame,
face, numerals, font and hands of design K are drawn once (the same for every seed and size), and
only the time, pose, wall and effects change from clock to clock, like a user's own photographs of
one clock model (the kind of set the assignment's images.npy is).

Output follows the assignment's file format: ``images`` uint8 (N, size, size) grayscale and
``labels`` int64 (N, 2) holding (hour 0-11, minute 0-59). Each image i draws its time and style
from ``np.random.default_rng([seed, i])`` (pixel noise from ``[seed, i, 1]``), so the output
depends only on (count, size, seed), not on the number of processes, and the same seed gives the
same clocks, poses and effects at every size. Usage:

    python benchmarks/clock_second_drawing.py --count 6000 --size 75 --seed 12345 --out DIR
    python benchmarks/clock_second_drawing.py --count 6000 --level numbered --out DIR

writes DIR/images.npy, DIR/labels.npy and DIR/preview.png (16 clocks with their times).
"""

from __future__ import annotations

import argparse
import io
import math
import multiprocessing
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageChops, ImageDraw, ImageFilter, ImageFont

_DEJAVU_DIR = Path("/usr/share/fonts/truetype/dejavu")
_FONT_FILES = {
    "sans": "DejaVuSans.ttf",
    "sans_bold": "DejaVuSans-Bold.ttf",
    "condensed": "DejaVuSansCondensed.ttf",
    "condensed_bold": "DejaVuSansCondensed-Bold.ttf",
    "serif": "DejaVuSerif.ttf",
    "serif_bold": "DejaVuSerif-Bold.ttf",
    "mono": "DejaVuSansMono.ttf",
    "mono_bold": "DejaVuSansMono-Bold.ttf",
}
_FONT_CACHE: dict[tuple[str, int], ImageFont.FreeTypeFont | ImageFont.ImageFont] = {}

# Everything is drawn at this multiple of the output size, then box-reduced (anti-aliasing). 4x
# looked the same after the bilinear warp and the reduction, at half the speed.
_SUPERSAMPLE = 2
_CHUNK = 50

_FACES = {
    "light": [(246, 242, 230), (252, 252, 250), (226, 236, 246), (232, 242, 226), (242, 228, 204),
              (250, 236, 170)],
    "dark": [(18, 24, 48), (14, 14, 16), (18, 58, 38), (84, 20, 30), (44, 46, 52), (28, 50, 92)],
    # Coloured faces kept clear of mid-gray, so black or white hands stand out after convert("L").
    "colour": [(235, 130, 40), (20, 120, 120), (190, 40, 40), (240, 200, 40), (120, 170, 220),
               (170, 140, 215)],
}
_DARK_INKS = [(14, 14, 14), (20, 28, 70), (30, 40, 110), (90, 20, 20), (40, 40, 40)]
_LIGHT_INKS = [(250, 250, 250), (240, 230, 200), (235, 200, 110), (200, 230, 240)]
_METALS = [(200, 200, 205), (205, 170, 85), (95, 95, 100), (185, 115, 75)]
_WOODS = [(125, 78, 42), (155, 105, 62), (88, 54, 30), (180, 140, 95)]
_PLASTICS = [(245, 245, 245), (25, 25, 25), (190, 35, 35), (35, 75, 160), (235, 190, 40)]
_OCCLUDER_COLOURS = [(60, 110, 50), (120, 120, 120), (220, 180, 150), (20, 20, 20), (200, 200, 210),
                     (140, 90, 50)]
_BRANDS = ["MERIDIAN", "KRONOS", "ACME", "HALDEN", "NORDIK", "VEGA", "LUMEN", "ORBIS", "TEMPO"]
_ROMAN = ["XII", "I", "II", "III", "IV", "V", "VI", "VII", "VIII", "IX", "X", "XI"]
_CASES = ["round", "square", "rounded", "octagon"]
_FRAMES = ["metal", "wood", "plastic", "none"]
_MARKERS = ["roman_full", "roman_quarters", "arabic_quarters", "arabic_radial", "dots", "bars",
            "minimal12"]
_NUMBERED = ["roman_full", "roman_quarters", "arabic_quarters", "arabic_radial"]
# One clock design per set: ``design0`` .. ``design7`` each fix one numbered design (case, frame,
# face, numerals and font, hands) for every image of every seed, as a user's own photographs of
# one clock model would; time, pose, wall, shadow, glare and degradations still vary per image.
DESIGNS = tuple(f"design{k}" for k in range(8))
LEVELS = ("full", "numbered") + DESIGNS
_DESIGN_SEED = 7919  # the design of ``designK`` comes from default_rng([_DESIGN_SEED, K])
_HANDS = ["baton", "arrow", "spade", "skeleton", "lollipop", "breguet"]
_WALLS = ["gradient", "bricks", "tiles", "planks", "noise"]


@dataclass
class _Style:
    """Everything random about one clock's face; picked once per image by `_sample_style`."""

    tone: str  # of the face: light, dark or colour
    case: str
    frame: str
    frame_colour: tuple[int, int, int]
    frame_width: float  # fraction of the case radius
    face: tuple[int, int, int]
    ink: tuple[int, int, int]  # hands
    marker_ink: tuple[int, int, int]
    markers: str
    follow_case: bool  # markers sit on an inset copy of the case outline, not on a circle
    font: str
    # The marker style's second form: IIII for four (as on many real clocks); dots, not bars,
    # between quarter numerals; three dots at 12; a "12", not a triangle, as the lone marker.
    alternate: bool
    hands: str
    hour_length: float  # fractions of the face's inner radius
    minute_length: float
    hour_width: float
    minute_width: float
    counterweight: bool
    seconds: float | None  # seconds-hand angle in degrees, or None for no seconds hand
    seconds_colour: tuple[int, int, int]
    brand: str | None
    logo: bool
    track: bool  # thin ring inside the markers


def render_second_drawing(
    count: int, size: int = 75, seed: int = 12345, processes: int | None = None,
    level: str = "full",
) -> tuple[np.ndarray, np.ndarray]:
    """Render `count` clocks in this module's own style, with uniformly random times.

    Args:
        count: number of images.
        size: side of the square output images in pixels (75 or 150 in the benchmarks; any size
            from 16 works). Drawing happens at twice this size and is box-reduced.
        seed: base seed; image i uses ``np.random.default_rng([seed, i])`` for its time and style.
        processes: worker processes (fork); None means min(2, CPU count). The output does not
            depend on it.
        level: ``full`` (every marker style and distractor), ``numbered`` (numerals on every
            dial, no seconds hand or occluder) or ``design0`` .. ``design7`` (one numbered design
            for the whole set); see the module's docstring.

    Returns:
        (images, labels): uint8 array (count, size, size) of grayscale clocks and int64 array
        (count, 2) of (hour 0-11, minute 0-59), in image order.

    Raises:
        ValueError: if count is negative, size is below 16 or level is unknown.
    """
    if level not in LEVELS:
        raise ValueError(f"level must be one of {', '.join(LEVELS)}, got {level!r}")
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    if size < 16:
        raise ValueError(f"size must be >= 16, got {size}")
    if processes is None:
        processes = min(2, os.cpu_count() or 1)
    jobs = [(start, min(start + _CHUNK, count), size, seed, level)
            for start in range(0, count, _CHUNK)]
    use_pool = (
        processes > 1 and len(jobs) > 1 and "fork" in multiprocessing.get_all_start_methods()
    )
    if use_pool:
        with multiprocessing.get_context("fork").Pool(min(processes, len(jobs))) as pool:
            parts = pool.map(_render_chunk, jobs, chunksize=1)
    else:
        parts = [_render_chunk(job) for job in jobs]
    images = np.zeros((count, size, size), np.uint8)
    labels = np.zeros((count, 2), np.int64)
    for (start, stop, *_), (chunk_images, chunk_labels) in zip(jobs, parts):
        images[start:stop] = chunk_images
        labels[start:stop] = chunk_labels
    return images, labels


def cached_second_drawing(count: int, size: int = 75, seed: int = 12345,
                          cache_dir: str | Path | None = None,
                          level: str = "full") -> tuple[np.ndarray, np.ndarray]:
    """``render_second_drawing``, kept in ``cache_dir`` (default ``~/.cache/hpsearch/second-drawing``).

    Image i depends only on (seed, i), so the first ``count`` images of a larger cached set are
    the set itself; a smaller cached set is rendered again at the new count.
    """
    cache = Path(cache_dir or Path.home() / ".cache" / "hpsearch" / "second-drawing")
    path = cache / f"seed{seed}-{size}px{'' if level == 'full' else '-' + level}.npz"
    if path.is_file():
        with np.load(path) as stored:
            if len(stored["labels"]) >= count:
                return stored["images"][:count], stored["labels"][:count]
    images, labels = render_second_drawing(count, size=size, seed=seed, level=level)
    cache.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial.npz")
    np.savez(partial, images=images, labels=labels)
    os.replace(partial, path)
    return images, labels


def write_preview(images: np.ndarray, labels: np.ndarray, path: str | Path, columns: int = 4) -> None:
    """Save a grid of clocks, each with its labelled time written under it, as a PNG.

    Args:
        images: uint8 array (N, S, S).
        labels: int array (N, 2) of (hour 0-11, minute 0-59); hour 0 is written as 12.
        path: PNG file to write.
        columns: clocks per row.
    """
    count, side = images.shape[0], images.shape[1]
    zoom = max(1, math.ceil(150 / side))
    tile = side * zoom
    strip = max(18, tile // 7)
    rows = math.ceil(count / columns)
    sheet = Image.new("L", (columns * (tile + 6), rows * (tile + strip + 6)), 255)
    draw = ImageDraw.Draw(sheet)
    font = _font("sans_bold", strip - 4)
    for k in range(count):
        x = (k % columns) * (tile + 6) + 3
        y = (k // columns) * (tile + strip + 6) + 3
        sheet.paste(Image.fromarray(images[k]).resize((tile, tile), Image.NEAREST), (x, y))
        hour, minute = int(labels[k, 0]), int(labels[k, 1])
        draw.text((x + tile / 2, y + tile + strip / 2), f"{hour or 12}:{minute:02d}", fill=0,
                  font=font, anchor="mm")
    sheet.save(path)


def main(argv: list[str] | None = None) -> None:
    """Command line: render clocks and write images.npy, labels.npy and preview.png to --out.

    Args:
        argv: arguments (default: sys.argv[1:]).
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=6000)
    parser.add_argument("--size", type=int, default=75)
    parser.add_argument("--seed", type=int, default=12345)
    parser.add_argument("--processes", type=int, default=None)
    parser.add_argument("--level", choices=LEVELS, default="full")
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    images, labels = render_second_drawing(args.count, args.size, args.seed, args.processes,
                                           args.level)
    seconds = time.perf_counter() - start
    args.out.mkdir(parents=True, exist_ok=True)
    np.save(args.out / "images.npy", images)
    np.save(args.out / "labels.npy", labels)
    write_preview(images[:16], labels[:16], args.out / "preview.png")
    print(f"{args.count} images of {args.size}x{args.size} in {seconds:.1f} s "
          f"({args.count / max(seconds, 1e-9):.0f} images/s) -> {args.out}")


# --------------------------------------------------------------------------------------------
# One image


def _render_chunk(job: tuple[int, int, int, int, str]) -> tuple[np.ndarray, np.ndarray]:
    start, stop, size, seed, level = job
    images = np.zeros((stop - start, size, size), np.uint8)
    labels = np.zeros((stop - start, 2), np.int64)
    for k, index in enumerate(range(start, stop)):
        images[k], labels[k] = _render_one(index, size, seed, level)[:2]
    return images, labels


def clock_attributes(index: int, seed: int = 12345, level: str = "full") -> dict:
    """The design and pose of clock ``index`` of a set, without drawing it.

    Replays the clock's random stream as far as its pose: time, face tone, case, frame, markers,
    hand shape, seconds hand, case radius (fraction of the image side, before the tilt) and tilt.
    The same for every output size.
    """
    rng = np.random.default_rng([seed, index])
    hour, minute = int(rng.integers(12)), int(rng.integers(60))
    style = _style_of(rng, level)
    radius_fraction = float(rng.uniform(0.30, 0.48))
    spin, tilt = float(rng.uniform(0, 360)), float(rng.uniform(0, 40))
    return {"hour": hour, "minute": minute, "tone": style.tone, "case": style.case,
            "frame": style.frame, "markers": style.markers, "hands": style.hands,
            "seconds_hand": style.seconds is not None, "radius_fraction": radius_fraction,
            "spin_degrees": spin, "tilt_degrees": tilt}


def _render_one(index: int, size: int, seed: int,
                level: str = "full") -> tuple[np.ndarray, tuple[int, int], _Style]:
    rng = np.random.default_rng([seed, index])
    grain = np.random.default_rng([seed, index, 1])  # per-pixel noise: its amount depends on size
    hour, minute = int(rng.integers(12)), int(rng.integers(60))
    scale = _SUPERSAMPLE
    side = size * scale
    style = _style_of(rng, level)

    radius = side * rng.uniform(0.30, 0.48)  # case radius in canvas pixels
    clock, half = _draw_clock(style, hour, minute, radius, scale)
    homography = _pose(rng, half, radius, side)

    scene = _wall(rng, grain, size, scale)
    layer, corner = _warp(clock, homography, side, style.frame_colour + (0,))
    alpha = Image.new("L", (side, side), 0)
    alpha.paste(layer.getchannel("A"), corner)
    _drop_shadow(rng, scene, alpha, radius)
    scene.paste(layer, corner, layer)
    hands = (30.0 * (hour + minute / 60.0), 6.0 * minute)
    if rng.random() < 0.25 and level == "full":
        _occlude(rng, scene, homography, half, radius, hands)
    if rng.random() < 0.4:
        _glare(rng, scene, alpha, homography, half, radius)
    gray = scene.convert("L").reduce(scale)
    return _degrade(rng, grain, gray), (hour, minute), style


def _style_of(rng: np.random.Generator, level: str) -> _Style:
    """The clock's design: drawn from the image's stream, or the set's one design (``designK``)."""
    if level in DESIGNS:
        return design_style(int(level[len("design"):]))
    return _sample_style(rng, level)


def design_style(design: int) -> _Style:
    """The one numbered design of level ``design<design>``: the same for every seed and size."""
    return _sample_style(np.random.default_rng([_DESIGN_SEED, design]), "numbered")


def _sample_style(rng: np.random.Generator, level: str = "full") -> _Style:
    tone = ["light", "dark", "colour"][rng.choice(3, p=[0.45, 0.3, 0.25])]
    face = _jitter(rng, _pick(rng, _FACES[tone]), 8)
    dark = _luma(face) > 125  # dark hands on this face
    inks = _DARK_INKS if dark else _LIGHT_INKS
    ink = _pick(rng, inks)
    if abs(_luma(ink) - _luma(face)) < 120:  # keep the hands well apart from the face in gray
        ink = (10, 10, 10) if dark else (250, 250, 250)
    marker_ink = ink if rng.random() < 0.7 else _pick(rng, inks)
    if abs(_luma(marker_ink) - _luma(face)) < 100:
        marker_ink = ink
    frame = _pick(rng, _FRAMES)
    frame_colour, frame_width = {
        "metal": (_pick(rng, _METALS), rng.uniform(0.04, 0.09)),
        "wood": (_pick(rng, _WOODS), rng.uniform(0.07, 0.13)),
        "plastic": (_pick(rng, _PLASTICS), rng.uniform(0.03, 0.06)),
        "none": (_shade(face, 0.75 if _luma(face) > 90 else 1.6), 0.012),
    }[frame]
    hands = _pick(rng, _HANDS)
    minute_length = rng.uniform(0.78, 0.9)
    wide = 1.5 if hands == "skeleton" else 1.0
    markers = _pick(rng, _MARKERS if level == "full" else _NUMBERED)
    font = {
        "roman_full": ["serif", "serif_bold", "sans", "condensed"],
        "roman_quarters": ["serif", "serif_bold", "sans_bold"],
        "arabic_quarters": ["sans_bold", "mono_bold", "condensed_bold", "serif_bold", "serif"],
        "arabic_radial": ["sans", "condensed", "serif", "condensed_bold"],
    }.get(markers, ["sans", "sans_bold", "serif"])
    seconds_colour = _jitter(rng, (215, 30, 30), 15)
    return _Style(
        tone=tone,
        case=_pick(rng, _CASES),
        frame=frame,
        frame_colour=_jitter(rng, frame_colour, 10),
        frame_width=frame_width,
        face=face,
        ink=ink,
        marker_ink=marker_ink,
        markers=markers,
        follow_case=bool(rng.random() < 0.6),
        font=_pick(rng, font),
        alternate=bool(rng.random() < 0.5),
        hands=hands,
        hour_length=minute_length * rng.uniform(0.5, 0.64),
        minute_length=minute_length,
        hour_width=rng.uniform(0.038, 0.058) * wide,
        minute_width=rng.uniform(0.024, 0.036) * wide,
        counterweight=bool(rng.random() < 0.35),
        seconds=(float(rng.uniform(0, 360)) if rng.random() < 0.5 and level == "full" else None),
        seconds_colour=seconds_colour,
        brand=_pick(rng, _BRANDS) if rng.random() < 0.5 else None,
        logo=bool(rng.random() < 0.3),
        track=bool(rng.random() < 0.3),
    )


# --------------------------------------------------------------------------------------------
# The upright clock, drawn at the size it will roughly have in the scene


def _draw_clock(style: _Style, hour: int, minute: int, radius: float,
                pixel: float) -> tuple[Image.Image, float]:
    """Draw the clock face-on in an RGBA image; returns (image, half its side).

    `pixel` is the size of one output pixel in drawing pixels: no stroke of a hand is drawn
    thinner than about one output pixel, so small outputs stay readable.
    """
    half = math.ceil(radius * 1.32) + 2
    image = Image.new("RGBA", (2 * half, 2 * half), style.frame_colour + (0,))
    draw = ImageDraw.Draw(image)
    centre = (half, half)
    outer = radius * {"round": 1.0, "square": 0.86, "rounded": 0.9, "octagon": 0.93}[style.case]
    inner = outer - style.frame_width * radius
    _draw_frame(draw, style, centre, outer, inner)
    _draw_shape(draw, style.case, centre, inner, style.face + (255,))
    if style.frame == "none":
        _draw_shape(draw, style.case, centre, inner, None, style.frame_colour + (255,),
                    max(1, round(0.012 * radius)))
    _draw_markers(image, draw, style, centre, inner)
    _draw_hands(draw, style, centre, inner, hour, minute, pixel)
    return image, float(half)


def _draw_frame(draw, style: _Style, centre, outer: float, inner: float) -> None:
    rings = 7
    for k in range(rings):
        level = outer - (outer - inner) * k / rings
        if style.frame == "metal":  # bevel: dark edge, bright crest, dark edge
            colour = _shade(style.frame_colour, 0.65 + 0.55 * math.sin(math.pi * (k + 0.5) / rings))
        elif style.frame == "wood":  # concentric grain
            colour = _shade(style.frame_colour, (0.8, 1.0, 0.9, 1.12, 0.85, 1.05, 0.92)[k])
        elif style.frame == "plastic":
            colour = _shade(style.frame_colour, 0.7 if k == 0 else 1.0)
        else:
            colour = style.frame_colour
        _draw_shape(draw, style.case, centre, level, colour + (255,))


def _draw_shape(draw, case: str, centre, size: float, fill, outline=None, width: int = 0) -> None:
    """Filled case outline: `size` is the circle radius, the square's half side, the octagon's inradius."""
    x, y = centre
    box = [x - size, y - size, x + size, y + size]
    if case == "round":
        draw.ellipse(box, fill=fill, outline=outline, width=width)
    elif case == "square":
        draw.rectangle(box, fill=fill, outline=outline, width=width)
    elif case == "rounded":
        draw.rounded_rectangle(box, radius=0.3 * size, fill=fill, outline=outline, width=width)
    else:
        vertex = size / math.cos(math.pi / 8)
        points = [(x + vertex * math.sin(math.pi / 8 + k * math.pi / 4),
                   y - vertex * math.cos(math.pi / 8 + k * math.pi / 4)) for k in range(8)]
        draw.polygon(points, fill=fill, outline=outline, width=width)


def _ring_radius(style: _Style, angle: float, radius: float) -> float:
    """Distance from the centre to the marker ring at `angle` (degrees clockwise from 12)."""
    if not style.follow_case or style.case == "round":
        return radius
    sector = {"square": 90.0, "rounded": 90.0, "octagon": 45.0}[style.case]
    off = math.radians((angle + sector / 2) % sector - sector / 2)
    reach = radius / math.cos(off)
    return min(reach, radius * 1.12) if style.case == "rounded" else reach


def _along(centre, angle: float, distance: float, across: float = 0.0) -> tuple[float, float]:
    """Point `distance` out along `angle` (degrees clockwise from 12) and `across` to its right."""
    a = math.radians(angle)
    return (centre[0] + distance * math.sin(a) + across * math.cos(a),
            centre[1] - distance * math.cos(a) + across * math.sin(a))


def _draw_markers(image: Image.Image, draw, style: _Style, centre, inner: float) -> None:
    ink = style.marker_ink + (255,)
    edge = inner * 0.93
    if style.track:
        track = inner * 0.95
        _draw_shape(draw, "round" if not style.follow_case else style.case, centre, track, None,
                    ink, max(1, round(0.01 * inner)))
        edge = inner * 0.88

    def numeral(text: str, angle: float, height: float, radial: bool = False) -> None:
        font = _font(style.font, height)
        left, top, right, bottom = font.getbbox(text, anchor="mm")
        extent = max(right - left, bottom - top) if not radial else bottom - top
        where = _along(centre, angle, _ring_radius(style, angle, edge) - 0.55 * extent)
        if radial:
            _rotated_text(image, where, text, font, ink, angle)
        else:
            draw.text(where, text, font=font, fill=ink, anchor="mm")

    def dot(angle: float, size: float) -> None:
        x, y = _along(centre, angle, _ring_radius(style, angle, edge) - size)
        draw.ellipse([x - size, y - size, x + size, y + size], fill=ink)

    def bar(angle: float, length: float, width: float, across: float = 0.0) -> None:
        reach = _ring_radius(style, angle, edge)
        corners = [_along(centre, angle, reach - length, across - width),
                   _along(centre, angle, reach, across - width),
                   _along(centre, angle, reach, across + width),
                   _along(centre, angle, reach - length, across + width)]
        draw.polygon(corners, fill=ink)

    kind = style.markers
    if kind == "roman_full":
        for h in range(12):
            text = "IIII" if (h == 4 and style.alternate) else _ROMAN[h]
            numeral(text, 30 * h, 0.16 * inner)
    elif kind in ("roman_quarters", "arabic_quarters"):
        labels = ["XII", "III", "VI", "IX"] if kind == "roman_quarters" else ["12", "3", "6", "9"]
        for q in range(4):
            numeral(labels[q], 90 * q, 0.22 * inner)
        for h in range(12):
            if h % 3:
                if style.alternate:
                    dot(30 * h, 0.03 * inner)
                else:
                    bar(30 * h, 0.09 * inner, 0.015 * inner)
    elif kind == "arabic_radial":
        for h in range(12):
            numeral(str(h or 12), 30 * h, 0.17 * inner, radial=True)
    elif kind == "dots":
        for h in range(12):
            dot(30 * h, (0.05 if h % 3 == 0 else 0.03) * inner)
        if style.alternate:  # two more dots flanking 12
            for side in (-1, 1):
                x, y = _along(centre, 0, edge - 0.05 * inner, side * 0.07 * inner)
                r = 0.035 * inner
                draw.ellipse([x - r, y - r, x + r, y + r], fill=ink)
    elif kind == "bars":
        for h in range(12):
            if h == 0:
                for side in (-1, 1):
                    bar(0, 0.16 * inner, 0.02 * inner, side * 0.035 * inner)
            else:
                bar(30 * h, (0.15 if h % 3 == 0 else 0.1) * inner,
                    (0.025 if h % 3 == 0 else 0.016) * inner)
    else:  # minimal12: the only marker is at 12
        if style.alternate:
            numeral("12", 0, 0.2 * inner)
        else:
            top = _ring_radius(style, 0, edge)
            draw.polygon([_along(centre, 0, top, -0.07 * inner), _along(centre, 0, top, 0.07 * inner),
                          _along(centre, 0, top - 0.14 * inner)], fill=ink)
    if style.brand:
        font = _font("sans_bold" if style.font.endswith("bold") else "sans", 0.085 * inner)
        draw.text((centre[0], centre[1] - 0.4 * inner), style.brand, font=font, fill=ink, anchor="mm")
    if style.logo:
        x, y = centre[0], centre[1] - (0.53 if style.brand else 0.42) * inner
        s = 0.05 * inner
        draw.polygon([(x - s, y + s * 0.6), (x - s, y - s * 0.5), (x - s / 2, y), (x, y - s * 0.8),
                      (x + s / 2, y), (x + s, y - s * 0.5), (x + s, y + s * 0.6)], fill=ink)


def _rotated_text(image: Image.Image, where, text: str, font, ink, angle: float) -> None:
    left, top, right, bottom = font.getbbox(text, anchor="mm")
    width, height = int(right - left) + 4, int(bottom - top) + 4
    mask = Image.new("L", (width, height), 0)
    ImageDraw.Draw(mask).text((width / 2, height / 2), text, font=font, fill=255, anchor="mm")
    mask = mask.rotate(-angle, resample=Image.BICUBIC, expand=True)
    corner = (round(where[0] - mask.width / 2), round(where[1] - mask.height / 2))
    image.paste(Image.new("RGBA", mask.size, ink), corner, mask)


def _draw_hands(draw, style: _Style, centre, inner: float, hour: int, minute: int, pixel: float) -> None:
    ink = style.ink + (255,)
    face = style.face + (255,)
    hour_angle = 30.0 * (hour + minute / 60.0)
    minute_angle = 6.0 * minute
    hour_style = "baton" if style.hands == "lollipop" else style.hands
    thin = 0.5 * pixel  # least half width of any stroke
    _hand(draw, hour_style, centre, hour_angle, style.hour_length * inner,
          max(style.hour_width * inner, 1.4 * thin), 0.08 * inner, ink, face, None, thin)
    weight = 0.05 * inner if style.counterweight else None
    tail = (0.2 if style.counterweight else 0.1) * inner
    _hand(draw, style.hands, centre, minute_angle, style.minute_length * inner,
          max(style.minute_width * inner, thin), tail, ink, face, weight, thin)
    if style.seconds is not None:
        red = style.seconds_colour + (255,)
        width = max(1, round(0.014 * inner), round(thin * 1.6))
        draw.line([_along(centre, style.seconds, -0.22 * inner),
                   _along(centre, style.seconds, 0.9 * inner)], fill=red, width=width)
        if style.counterweight:
            x, y = _along(centre, style.seconds, -0.18 * inner)
            r = 0.035 * inner
            draw.ellipse([x - r, y - r, x + r, y + r], fill=red)
    hub = max(style.hour_width * 1.4, 0.05) * inner
    x, y = centre
    draw.ellipse([x - hub, y - hub, x + hub, y + hub], fill=ink)
    dot = hub * 0.4
    cap = style.seconds_colour + (255,) if style.seconds is not None else face
    draw.ellipse([x - dot, y - dot, x + dot, y + dot], fill=cap)


def _hand(draw, kind: str, centre, angle: float, length: float, width: float, tail: float,
          ink, face, weight: float | None, thin: float) -> None:
    """One hand of `kind` pointing at `angle`; `width` is its half width; ends at `length`.

    `thin` is the least half width of a shaft or outline.
    """

    def place(points):
        return [_along(centre, angle, t, s) for t, s in points]

    def disk(t: float, r: float, fill) -> None:
        x, y = _along(centre, angle, t)
        draw.ellipse([x - r, y - r, x + r, y + r], fill=fill)

    if weight is not None:  # counterweight on the tail
        draw.polygon(place([(-tail, -width * 0.8), (0, -width * 0.8), (0, width * 0.8),
                            (-tail, width * 0.8)]), fill=ink)
        disk(-tail, weight, ink)
    if kind == "baton":  # rectangle with rounded ends
        body = length - width
        arc = [(body + width * math.sin(a), width * math.cos(a))
               for a in np.linspace(math.pi, 0, 9)]
        back = [(-tail - width * math.sin(a), -width * math.cos(a))
                for a in np.linspace(math.pi, 0, 9)]
        draw.polygon(place(arc[::-1] + back[::-1]), fill=ink)
    elif kind == "arrow":
        head, shaft = min(0.3 * length, 4.5 * width), max(width * 0.6, thin)
        draw.polygon(place([(-tail, -shaft), (length - head, -shaft), (length - head, -2.3 * width),
                            (length, 0), (length - head, 2.3 * width), (length - head, shaft),
                            (-tail, shaft)]), fill=ink)
    elif kind == "spade":
        start, shaft, wide = 0.62 * length, max(width * 0.55, thin), width * 2.4
        profile = []
        for u in np.linspace(0, 1, 12):
            across = max(shaft * (1 - u), wide * math.sin(math.pi * u) ** 0.8 * (1 - u) ** 0.45)
            profile.append((start + u * (length - start), across))
        draw.polygon(place([(-tail, -shaft)] + [(t, -s) for t, s in profile]
                           + [(t, s) for t, s in profile[::-1]] + [(-tail, shaft)]), fill=ink)
    elif kind == "skeleton":  # outlined lance, hollow
        tip = 2.6 * width
        outline = max(1, round(0.4 * width), round(1.6 * thin))
        draw.polygon(place([(-tail, -width), (length - tip, -width), (length, 0),
                            (length - tip, width), (-tail, width)]),
                     fill=face, outline=ink, width=outline)
        draw.polygon(place([(length - tip * 0.9, -width * 0.6), (length, 0),
                            (length - tip * 0.9, width * 0.6)]), fill=ink)
    elif kind == "lollipop":  # thin shaft, disc near the tip
        shaft = max(width * 0.6, thin)
        draw.polygon(place([(-tail, -shaft), (length, -shaft), (length, shaft), (-tail, shaft)]),
                     fill=ink)
        disk(0.8 * length, 2.2 * width, ink)
    else:  # breguet: shaft, hollow moon ring, short point
        ring_at, ring = 0.7 * length, 2.4 * width
        shaft = max(width * 0.8, thin)
        draw.polygon(place([(-tail, -shaft), (ring_at, -shaft), (ring_at, shaft), (-tail, shaft)]),
                     fill=ink)
        disk(ring_at, ring, ink)
        disk(ring_at, min(ring * 0.55, ring - 1.6 * thin), face)
        draw.polygon(place([(ring_at + ring * 0.8, -shaft * 1.3), (length, 0),
                            (ring_at + ring * 0.8, shaft * 1.3)]), fill=ink)


# --------------------------------------------------------------------------------------------
# Scene


def _pose(rng: np.random.Generator, half: float, radius: float, side: int) -> np.ndarray:
    """Homography from the upright clock image to the scene: spin, tilt in 3-D, place."""
    spin = math.radians(rng.uniform(0, 360))
    tilt = math.radians(rng.uniform(0, 40))
    axis = rng.uniform(0, math.pi)
    distance = rng.uniform(3.0, 8.0)  # camera distance in case radii
    to_unit = np.array([[1 / radius, 0, -half / radius], [0, 1 / radius, -half / radius], [0, 0, 1]])
    c, s = math.cos(spin), math.sin(spin)
    rotate = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
    k = np.array([math.cos(axis), math.sin(axis), 0.0])  # tilt about this in-plane axis (Rodrigues)
    cross = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    tilt3 = np.eye(3) + math.sin(tilt) * cross + (1 - math.cos(tilt)) * cross @ cross
    plane = np.column_stack([tilt3[:, 0], tilt3[:, 1], [0, 0, distance]])
    project = np.diag([distance, distance, 1.0]) @ plane
    unit = project @ rotate @ to_unit
    # Place: keep the projected case (nearly) inside the frame.
    ring = np.array([[half + radius * math.cos(a), half + radius * math.sin(a), 1]
                     for a in np.linspace(0, 2 * math.pi, 24, endpoint=False)]).T
    flat = unit @ ring
    xs, ys = radius * flat[0] / flat[2], radius * flat[1] / flat[2]
    slack = 0.03 * side
    cx = _uniform_or_middle(rng, -xs.min() - slack, side - xs.max() + slack)
    cy = _uniform_or_middle(rng, -ys.min() - slack, side - ys.max() + slack)
    place = np.array([[radius, 0, cx], [0, radius, cy], [0, 0, 1]])
    return place @ unit


def _uniform_or_middle(rng: np.random.Generator, low: float, high: float) -> float:
    return rng.uniform(low, high) if high > low else (low + high) / 2


def _warp(clock: Image.Image, homography: np.ndarray, side: int, fill) -> tuple[Image.Image, tuple[int, int]]:
    """Warp the upright clock into the scene; returns the warped piece and where it goes.

    Only the clock's bounding box inside the (side x side) scene is computed.
    """
    w, h = clock.size
    xs, ys = zip(*_map(homography, [(0, 0), (w, 0), (w, h), (0, h)]))
    x0, y0 = max(0, math.floor(min(xs))), max(0, math.floor(min(ys)))
    x1, y1 = min(side, math.ceil(max(xs))), min(side, math.ceil(max(ys)))
    shift = np.array([[1, 0, -x0], [0, 1, -y0], [0, 0, 1]])
    inverse = np.linalg.inv(shift @ homography)
    inverse /= inverse[2, 2]
    piece = clock.transform((max(1, x1 - x0), max(1, y1 - y0)), Image.PERSPECTIVE,
                            tuple(inverse.flatten()[:8]), resample=Image.BILINEAR, fillcolor=fill)
    return piece, (x0, y0)


def _map(homography: np.ndarray, points) -> list[tuple[float, float]]:
    pts = np.column_stack([np.asarray(points, float), np.ones(len(points))]).T
    out = homography @ pts
    return list(zip(out[0] / out[2], out[1] / out[2]))


_GRIDS: dict[int, tuple[np.ndarray, np.ndarray]] = {}


def _grid(side: int) -> tuple[np.ndarray, np.ndarray]:
    if side not in _GRIDS:
        y, x = np.mgrid[0:side, 0:side].astype(np.float32) / side
        _GRIDS[side] = (x, y)
    return _GRIDS[side]


def _wall(rng: np.random.Generator, grain: np.random.Generator, work: int, scale: int) -> Image.Image:
    """Background: painted gradient, bricks, tiles, planks or mottled noise, with uneven light.

    Computed at the output resolution `work` and pixel-repeated `scale` times: the canvas is
    box-reduced by `scale` at the end, which gives the wall back unchanged.
    """
    x, y = _grid(work)
    kind = _pick(rng, _WALLS)
    base = (rng.uniform(60, 230, 3) * 0.5 + rng.uniform(60, 230) * 0.5).astype(np.float32)
    if kind == "gradient":
        other = np.clip(base * rng.uniform(0.6, 1.3) + rng.normal(0, 15, 3), 0, 255).astype(np.float32)
        a = rng.uniform(0, 2 * math.pi)
        t = np.clip((x - 0.5) * math.cos(a) + (y - 0.5) * math.sin(a) + 0.5, 0, 1)
        wall = base + (other - base) * t[..., None]
        shade = None
    elif kind in ("bricks", "tiles"):
        if kind == "bricks":
            base = np.float32(_jitter(rng, _pick(rng, [(150, 70, 50), (170, 100, 70), (210, 205, 195),
                                                       (120, 120, 125)]), 15))
            rows = rng.uniform(7, 13)
            height, width, mortar = 1 / rows, rng.uniform(1.8, 2.6) / rows, rng.uniform(0.08, 0.15)
        else:
            rows = rng.uniform(3, 8)
            height = width = 1 / rows
            mortar = rng.uniform(0.03, 0.08)
        across = y / np.float32(height)
        row = across.astype(np.int32)
        along = (x + (row % 2) * np.float32(width / 2 if kind == "bricks" else 0)) / np.float32(width)
        table = rng.normal(1, 0.08, (32, 32)).astype(np.float32)
        if kind == "tiles" and rng.random() < 0.4:
            table = np.where(np.add.outer(np.arange(32), np.arange(32)) % 2 == 0, 1, 0.75).astype(np.float32)
        shade = table[row % 32, along.astype(np.int32) % 32]
        gap = (across % 1 < mortar) | (along % 1 < mortar * height / width)
        shade[gap] = rng.uniform(0.5, 1.4)
        wall = base
    elif kind == "planks":
        base = np.float32(_jitter(rng, _pick(rng, _WOODS), 20))
        u, v = (x, y) if rng.random() < 0.5 else (y, x)
        count = rng.uniform(3, 7)
        plank = (u * count).astype(np.int32)
        table = rng.normal(1, 0.1, 16).astype(np.float32)
        rings = u * (count * rng.uniform(4, 9)) + 2 * np.sin(6 * v + plank)
        figure = 1 + 0.08 * np.sin(2 * math.pi * rings)
        shade = table[plank % 16] * figure
        shade[(u * count) % 1 < 0.03] *= 0.6
        wall = base
    else:  # noise
        coarse = Image.fromarray(rng.integers(0, 256, (6, 6, 3), dtype=np.uint8))
        blotch = np.asarray(coarse.resize((work, work), Image.BICUBIC), np.float32)
        wall = base * 0.65 + blotch * 0.35
        shade = None
    # Uneven light (a slope and a soft spot) and sensor grain, folded into one factor.
    a = rng.uniform(0, 2 * math.pi)
    sx, sy = rng.uniform(0, 1, 2)
    light = (1 + rng.uniform(0, 0.35) * ((x - 0.5) * math.cos(a) + (y - 0.5) * math.sin(a))
             + rng.uniform(0, 0.3) * np.exp(-((x - sx) ** 2 + (y - sy) ** 2) / 0.12)
             + grain.standard_normal((work, work), dtype=np.float32) * 0.02)
    if shade is not None:
        light *= shade
    wall = np.clip(wall * light[..., None], 0, 255).astype(np.uint8)
    return Image.fromarray(wall, "RGB").resize((work * scale, work * scale), Image.NEAREST)


def _drop_shadow(rng: np.random.Generator, scene: Image.Image, alpha: Image.Image, radius: float) -> None:
    side = scene.width
    angle = rng.uniform(0, 2 * math.pi)
    reach = rng.uniform(0.02, 0.08) * radius * 2
    blur = rng.uniform(0.03, 0.1) * radius
    small = max(1, side // 4)
    shadow = Image.new("L", (side, side), 0)
    shadow.paste(alpha, (round(reach * math.cos(angle)), round(reach * math.sin(angle))))
    shadow = shadow.resize((small, small), Image.BILINEAR).filter(ImageFilter.GaussianBlur(blur / 4))
    strength = rng.uniform(0.25, 0.6)
    shadow = shadow.point(lambda v: v * strength).resize((side, side), Image.BILINEAR)
    scene.paste((0, 0, 0), (0, 0, side, side), shadow)


def _occlude(rng: np.random.Generator, scene: Image.Image, homography: np.ndarray, half: float,
             radius: float, hands: tuple[float, float]) -> None:
    """A bar or blob over the rim: < 15% of the face, away from the hub and from both hands."""
    bar = rng.random() < 0.5
    if bar:
        distance, thick = rng.uniform(0.6, 0.85), rng.uniform(0.07, 0.14)
        spread = math.degrees(math.acos(distance - thick / 2)) + 12
    else:
        size = rng.uniform(0.15, 0.3)
        distance = rng.uniform(max(0.75, size + 0.45), 1.1)
        spread = math.degrees(math.asin(min(1.0, size / distance))) + 12
    for _ in range(20):
        where = rng.uniform(0, 360)
        if all(abs((where - h + 180) % 360 - 180) > spread for h in hands):
            break
    else:
        return
    local = []
    if bar:
        for t, s in [(-1.7, -thick / 2), (1.7, -thick / 2), (1.7, thick / 2), (-1.7, thick / 2)]:
            local.append(_along((half, half), where, (distance + s) * radius, t * radius))
    else:
        cx, cy = _along((half, half), where, distance * radius)
        for a in np.linspace(0, 2 * math.pi, 20, endpoint=False):
            wobble = 1 + 0.15 * math.sin(3 * a + where)
            local.append((cx + size * radius * wobble * math.cos(a),
                          cy + size * radius * wobble * math.sin(a)))
    colour = _jitter(rng, _pick(rng, _OCCLUDER_COLOURS), 20)
    ImageDraw.Draw(scene).polygon(_map(homography, local), fill=colour)


def _glare(rng: np.random.Generator, scene: Image.Image, alpha: Image.Image, homography: np.ndarray,
           half: float, radius: float) -> None:
    """A soft white reflection on the clock's glass."""
    side = scene.width
    work = max(16, side // 4)
    x, y = _grid(work)
    (gx, gy), = _map(homography, [_along((half, half), rng.uniform(0, 360), rng.uniform(0, 0.7) * radius)])
    gx, gy, unit = gx / side, gy / side, radius / side
    a = rng.uniform(0, math.pi)
    along = ((x - gx) * math.cos(a) + (y - gy) * math.sin(a)) / (unit * rng.uniform(0.4, 1.0))
    across = (-(x - gx) * math.sin(a) + (y - gy) * math.cos(a)) / (unit * rng.uniform(0.1, 0.35))
    shine = np.exp(-(along ** 2 + across ** 2)) * (255 * rng.uniform(0.15, 0.4))
    shine = Image.fromarray(shine.astype(np.uint8)).resize((side, side), Image.BILINEAR)
    scene.paste((255, 255, 255), (0, 0, side, side), ImageChops.multiply(shine, alpha))


def _degrade(rng: np.random.Generator, grain: np.random.Generator, gray: Image.Image) -> np.ndarray:
    """Camera faults at the output size: blur, exposure, noise, JPEG."""
    size = gray.width
    if rng.random() < 0.3:
        gray = gray.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 0.6) * size / 75))
    pixels = np.asarray(gray, np.float32) / 255
    pixels = pixels ** rng.uniform(0.8, 1.25)
    mean = pixels.mean()
    pixels = (pixels - mean) * rng.uniform(0.75, 1.2) + mean + rng.uniform(-0.08, 0.08)
    if rng.random() < 0.6:
        pixels = pixels + grain.normal(0, rng.uniform(0.005, 0.03), pixels.shape)
    out = np.clip(pixels * 255 + 0.5, 0, 255).astype(np.uint8)
    if rng.random() < 0.4:
        buffer = io.BytesIO()
        Image.fromarray(out).save(buffer, "JPEG", quality=int(rng.integers(25, 80)))
        out = np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("L"))
    return out


# --------------------------------------------------------------------------------------------
# Small pieces


def _font(name: str, pixels: float):
    size = max(6, int(round(pixels / 2) * 2))
    key = (name, size)
    if key not in _FONT_CACHE:
        path = _DEJAVU_DIR / _FONT_FILES[name]
        _FONT_CACHE[key] = (ImageFont.truetype(str(path), size) if path.exists()
                            else ImageFont.load_default(size=size))
    return _FONT_CACHE[key]


def _pick(rng: np.random.Generator, options):
    return options[int(rng.integers(len(options)))]


def _luma(rgb) -> float:
    return (299 * rgb[0] + 587 * rgb[1] + 114 * rgb[2]) / 1000


def _shade(rgb, factor: float) -> tuple[int, int, int]:
    return tuple(int(min(255, max(0, round(c * factor)))) for c in rgb)


def _jitter(rng: np.random.Generator, rgb, amount: float) -> tuple[int, int, int]:
    return tuple(int(v) for v in np.clip(np.asarray(rgb) + rng.normal(0, amount, 3), 0, 255).round())


if __name__ == "__main__":
    main()
