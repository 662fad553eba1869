"""The scene around a drawn clock, and the camera: what the clock renderer
(``datasets.clock_render``) adds to a posed clock so that it reads like a photograph.

Every style gets a wood-grain or carpet-stripe background (``_background``), a specular glare on
the glass (``_add_glare``), then blur, contrast, brightness and sensor noise (``_photometric``);
the ``"varied"`` style also a drop shadow (``_cast_shadow``), uneven lighting (``_uneven_light``)
and sometimes an object occluding part of the dial (``_occlude``). Images here are float32 arrays
of the output size, 0 black to 1 white, until ``_photometric`` turns them into 8 bits.
"""
from __future__ import annotations

import functools
import math

import numpy as np
from PIL import Image, ImageFilter


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
