"""How the clock renderer's styles draw a clock: upright, on its own canvas, supersampled, before
``datasets.clock_render`` poses it in a scene.

- ``_draw_canonical_clock``: the ``"classic"`` design (thick dark bezel, light face, Arabic
  numerals 1-12, 60 minute ticks, a short thick hour hand and a long thin minute hand);
- ``_draw_varied_clock``: the ``"varied"`` style's random design, one per image: round, square,
  rounded-square, octagonal or rimless cases of any bezel thickness, light, dark or coloured
  faces (plain, gradient, sunburst, concentric rings), Arabic or Roman numerals in one of several
  fonts, only 12-3-6-9, or none; minute ticks, hour bars, dots or no marks; hour and minute hands
  of five shapes (tapered, bar, arrow, outlined, lollipop) in any widths, lengths and colours; a
  seconds hand at a random angle (a distractor) half of the time; a brand name; drawn in colour
  and converted to gray, so colour contrast becomes whatever gray contrast it gives.

Both put the dial, a circle of ``_CANONICAL_FACE_RADIUS``, at the canvas centre, and its hands
at ``hand_angles``: the renderer's geometry relies on both.

Fonts: DejaVu's (Debian's ``fonts-dejavu-core``) where installed, else Pillow's built-in font, so
a varied set's pixels depend on the fonts of the machine that renders it.
"""
from __future__ import annotations

import functools
import math
import os

import numpy as np
from PIL import Image, ImageDraw, ImageFont

# Face radius of the canonical (untransformed) drawing, in supersampled pixels.
_CANONICAL_FACE_RADIUS = 100.0
_FONT_DIRS = ("/usr/share/fonts/truetype/dejavu", "/usr/share/fonts/dejavu")
_FONT_FILES = ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSerif.ttf", "DejaVuSerif-Bold.ttf",
               "DejaVuSansMono.ttf", "DejaVuSansCondensed.ttf", "DejaVuSerifCondensed-Bold.ttf",
               "DejaVuSans-ExtraLight.ttf")
_ROMAN = ("XII", "I", "II", "III", "IIII", "V", "VI", "VII", "VIII", "IX", "X", "XI")
_BRANDS = ("QUARTZ", "ACME", "KIENZLE", "TIME", "OFFICE", "SWISS", "HELIOS", "NORD", "ZEIT",
           "MODERN", "1987", "RAIL")


def hand_angles(hour: int, minute: int) -> tuple[float, float]:
    """Clockwise angles from twelve o'clock, in degrees, of the (hour hand, minute hand)."""
    return 30.0 * ((hour % 12) + minute / 60.0), 6.0 * minute


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
