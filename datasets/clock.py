"""The tell-the-time clock set: `images.npy` (N x S x S uint8), `labels.npy` (N x 2 hour, minute).

The assignment's files are looked for first; without them a rendered stand-in (see
``datasets.clock_render``) is made once and cached. The files are sorted by time, so every split is
a seeded shuffle:

- ``split="tuning"``: 80 / 10 / 10 train / validation / test, for searches;
- ``split="final"``: 80 / 20 train / held-out, for final numbers; the held-out 20% is both the
  validation and the test set (the same arrays), so a final model is scored on data it never saw.

>>> import datasets
>>> data = datasets.load("clock", size=75, split="final")
>>> data.x_train.shape, data.y_train[0]       # (14400, 75, 75, 1), array([hour, minute])
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from datasets.sources import CACHE_DIR_ENV, default_cache_root  # noqa: F401 (callers)
from datasets.clock_render import DEFAULT_STYLE, GEOMETRY_COLUMNS, SIZES, STYLES, write_dataset
from datasets.errors import DatasetFormatError, DatasetNotFoundError
from datasets.sources import explicit_data_dirs, format_not_found
from datasets.splits import Dataset, scale_pixels

IMAGES_FILE = "images.npy"
LABELS_FILE = "labels.npy"
# Written by the renderer only: where the dial and hands are (auxiliary training targets).
GEOMETRY_FILE = "geometry.npy"
SPLITS = ("tuning", "final")
# The assignment's fractions: 10% validation + 10% test for tuning, 20% held out for final numbers.
TUNING_VALIDATION_FRACTION = 0.1
TUNING_TEST_FRACTION = 0.1
FINAL_HELD_OUT_FRACTION = 0.2


def load_clock(data_dir=None, size: int = 75, split: str = "tuning", seed: int = 0,
               subset: int | float | None = None, count: int = 18000,
               cache_dir: str | os.PathLike | None = None, download: bool | None = None,
               validation_fraction: float | None = None, test_subset: int | float | None = None,
               render_seed: int = 0, style: str = DEFAULT_STYLE) -> Dataset:
    """Load the clock set with seeded, shuffled splits.

    Args:
        data_dir: directory (or list) holding the assignment's ``images.npy`` and ``labels.npy``,
            directly or in a ``clock-{size}/`` or ``clock/`` subfolder (for 75, ``clock-150/`` last,
            halved); ``$HPSEARCH_DATA_DIR`` is searched after it. Default None: only
            ``$HPSEARCH_DATA_DIR``, then the rendered set.
        size: image side, 75 or 150 (default 75). 150-pixel files are halved for ``size=75``.
        split: ``"tuning"`` (80/10/10 train/validation/test, default) or ``"final"`` (80/20, the
            held-out 20% is both validation and test).
        seed: seed of the shuffle, the subset and the split (default 0).
        subset: optional count or fraction of the whole set used before splitting (default all).
        count: images in the rendered set when no files are found (default 18,000 = 25 per minute).
        cache_dir: where rendered sets are kept (default ``$HPSEARCH_CACHE_DIR`` or
            ``~/.cache/hpsearch``); each set lives in its own folder (see ``rendered_dir``).
        download: accepted for a uniform loader signature and ignored (nothing is downloaded).
        validation_fraction: validation share for ``"tuning"`` (default 0.1) or held-out share for
            ``"final"`` (default 0.2).
        test_subset: optional count or fraction of the test set kept (default all).
        render_seed: seed of the rendered set (default 0).
        style: the rendered set's clocks, ``"classic"`` (the first renderer's one design, the
            default), ``"varied"`` (a new design per image) or ``"mixed"`` (half of each); see
            ``datasets.clock_render``.

    Returns:
        A Dataset with x float32 in [0, 1] shaped (N, size, size, 1), y int64 (N, 2) = (hour,
        minute), ``num_classes=None``, and ``geometry_train`` when the folder has the renderer's
        ``geometry.npy`` (rendered sets do; the assignment's photographs do not).

    Raises:
        ValueError: bad size, split or fractions.
        DatasetNotFoundError: ``data_dir`` was given but holds no clock files.
        DatasetFormatError: a file has the wrong shape, dtype or label range, or the set is too
            small for every part of the split to hold an image.
    """
    del download
    if size not in SIZES:
        raise ValueError(f"size must be one of {SIZES}, got {size}.")
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}.")
    if style not in STYLES:
        raise ValueError(f"style must be one of {STYLES}, got {style!r}.")
    images, labels, source, geometry = _find_or_render(data_dir, size, count, cache_dir,
                                                       render_seed, style)
    return split_clock(images, labels, source=source, split=split, seed=seed, subset=subset,
                       validation_fraction=validation_fraction, test_subset=test_subset,
                       geometry=geometry)


def read_clock_files(directory: str | os.PathLike, size: int | None = None,
                     rendered: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Read and validate ``images.npy`` and ``labels.npy`` from ``directory``.

    Args:
        directory: folder holding both files.
        size: wanted side (75 or 150); 150-pixel images are halved by 2x2 averaging for 75.
            None keeps the files' size.
        rendered: the folder is hpsearch's cache of a rendered set (its errors then say to delete
            it, which renders it again; a user's own files are never worth deleting).

    Returns:
        (images uint8 (N, S, S), labels int64 (N, 2)).

    Raises:
        DatasetNotFoundError: a file is missing.
        DatasetFormatError: unreadable file, no images, wrong shape / dtype / range, pixels that
            are all 0 or 1, or N differs.
    """
    directory = Path(directory)
    paths = {name: directory / name for name in (IMAGES_FILE, LABELS_FILE)}
    missing = [str(path) for path in paths.values() if not path.is_file()]
    if missing:
        raise DatasetNotFoundError(
            f"Clock file(s) not found: {', '.join(missing)}. A clock set is two files side by "
            f"side: {IMAGES_FILE} (N, S, S) uint8 and {LABELS_FILE} (N, 2) of (hour, minute).")
    again = (" Or delete the folder to have the set rendered again." if rendered else "")
    images = _read_npy(paths[IMAGES_FILE], again)
    labels = _read_npy(paths[LABELS_FILE], again)
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    check_clock_images(images, paths[IMAGES_FILE], SIZES, again)
    if labels.ndim != 2 or labels.shape[1] != 2:
        raise DatasetFormatError(
            f"{paths[LABELS_FILE]}: expected shape (N, 2) of (hour, minute), got {labels.shape}. "
            f"Save one (hour, minute) row per image, e.g. np.stack([hours, minutes], axis=1)."
            f"{again}")
    if not np.issubdtype(labels.dtype, np.integer):
        whole = (np.issubdtype(labels.dtype, np.floating) and np.isfinite(labels).all()
                 and (labels == np.round(labels)).all())
        raise DatasetFormatError(
            f"{paths[LABELS_FILE]}: expected integer labels, got dtype {labels.dtype}. "
            + ("Every value is a whole number: save labels.round().astype(np.int64)."
               if whole else "Some values are not whole numbers (or are NaN): labels are "
               "(hour 0-11, minute 0-59) integers.") + again)
    if len(labels) != len(images):
        raise DatasetFormatError(
            f"{directory}: expected one label per image, got {len(images)} images and "
            f"{len(labels)} labels. Save the two files from the same set, in the same order."
            f"{again}")
    labels = labels.astype(np.int64)
    for column, name, upper in ((0, "hour", 11), (1, "minute", 59)):
        values = labels[:, column]
        if values.min() < 0 or values.max() > upper:
            hint = (" If 12 o'clock is written 12 (hours 1-12) or the hours run 0-23, save "
                    "labels[:, 0] % 12." if column == 0 and values.min() >= 0 else "")
            raise DatasetFormatError(
                f"{paths[LABELS_FILE]}: expected {name}s in 0-{upper}, got values from "
                f"{values.min()} to {values.max()}.{hint}{again}")
    if size is not None and images.shape[1] != size:
        if images.shape[1] < size:
            raise DatasetFormatError(
                f"{directory}: asked for {size}x{size} images, the files hold "
                f"{images.shape[1]}x{images.shape[1]}. Load with size={images.shape[1]}, or "
                f"point data_dir at the {size}-pixel files.")
        images = _halve(images)
    return images, labels


def check_clock_images(images: np.ndarray, source, sides, again: str = "") -> None:
    """Refuse clock images that are not grayscale uint8 (N, S, S) with S in ``sides``, are none,
    or whose pixels are all 0 or 1 (floats in [0, 1] cast to uint8 without scaling).

    Raises:
        DatasetFormatError: naming ``source``, what was expected, what it holds and the fix.
    """
    shape = f"(N, S, S) with S in {', '.join(str(side) for side in sides)}"
    if images.dtype != np.uint8:
        if np.issubdtype(images.dtype, np.floating):
            fix = ("Save them as uint8: (images * 255).round().astype(np.uint8) if the pixels are "
                   "in [0, 1], images.round().clip(0, 255).astype(np.uint8) if they are in 0-255.")
        else:
            fix = "Save them as uint8 (images.clip(0, 255).astype(np.uint8) for 0-255 values)."
        raise DatasetFormatError(
            f"{source}: expected grayscale uint8 images (pixels 0-255), got dtype "
            f"{images.dtype}. {fix}{again}")
    if images.ndim == 4 and images.shape[-1] in (3, 4):
        raise DatasetFormatError(
            f"{source}: expected grayscale images {shape}, got colour images {images.shape}. "
            f"Convert them to grayscale first, e.g. images[..., :3].mean(axis=-1).round()"
            f".astype(np.uint8).{again}")
    if images.ndim != 3 or images.shape[1] != images.shape[2] or images.shape[1] not in sides:
        raise DatasetFormatError(
            f"{source}: expected shape {shape}, got {images.shape}. Resize the images to one of "
            f"those sides (or pass them as picture files to `hpsearch clock predict`, which "
            f"resizes).{again}")
    if len(images) == 0:
        raise DatasetFormatError(f"{source}: holds no images (shape {images.shape}).{again}")
    if images.max() <= 1:
        raise DatasetFormatError(
            f"{source}: every pixel is 0 or 1, so these are not 0-255 images: most likely "
            f"floats in [0, 1] cast to uint8. Save (float_images * 255).round().astype(np.uint8) "
            f"instead.{again}")


def read_clock_geometry(directory: str | os.PathLike, count: int) -> np.ndarray | None:
    """The renderer's ``geometry.npy`` in ``directory`` (float32 (count, 5)), or None if absent.

    Raises:
        DatasetFormatError: the file is unreadable, has the wrong shape or non-finite values.
    """
    path = Path(directory) / GEOMETRY_FILE
    if not path.is_file():
        return None
    geometry = _read_npy(path)
    expected = (count, len(GEOMETRY_COLUMNS))
    if geometry.shape != expected or not np.issubdtype(geometry.dtype, np.floating):
        raise DatasetFormatError(
            f"{path}: expected float geometry of shape {expected} ({', '.join(GEOMETRY_COLUMNS)} "
            f"per image), got {geometry.dtype} {geometry.shape}. Delete the file (it is only an "
            f"auxiliary training target) or render the set again.")
    if not np.isfinite(geometry).all():
        raise DatasetFormatError(f"{path}: holds NaN or infinite values. Delete it or render the "
                                 f"set again.")
    return geometry.astype(np.float32)


def split_clock(images: np.ndarray, labels: np.ndarray, source: str, split: str = "tuning",
                seed: int = 0, subset: int | float | None = None,
                validation_fraction: float | None = None,
                test_subset: int | float | None = None,
                geometry: np.ndarray | None = None) -> Dataset:
    """Shuffle (seeded) and split uint8 images and (hour, minute) labels; see ``load_clock``.

    ``geometry`` (one row per image, optional) follows the training images into
    ``Dataset.geometry_train``.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}.")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(images))
    order = order[:_count(subset, len(order), "subset")]
    total = len(order)
    if split == "tuning":
        validation = (TUNING_VALIDATION_FRACTION if validation_fraction is None
                      else validation_fraction)
        if not 0.0 < validation < 1.0 - TUNING_TEST_FRACTION:
            raise ValueError(f"validation_fraction must be in (0, 0.9) for the tuning split, got "
                             f"{validation}.")
        test_count = int(round(TUNING_TEST_FRACTION * total))
        val_count = int(round(validation * total))
        test_index = order[:test_count]
        val_index = order[test_count:test_count + val_count]
        train_index = order[test_count + val_count:]
        description = (f"tuning split: shuffled (seed {seed}), {validation:.0%} validation, "
                       f"{TUNING_TEST_FRACTION:.0%} test")
    else:
        held = FINAL_HELD_OUT_FRACTION if validation_fraction is None else validation_fraction
        if not 0.0 < held < 1.0:
            raise ValueError(
                f"validation_fraction must be in (0, 1) for the final split, got {held}.")
        held_count = int(round(held * total))
        val_index = test_index = order[:held_count]
        train_index = order[held_count:]
        description = (f"final split: shuffled (seed {seed}), {1 - held:.0%} train / {held:.0%} "
                       f"held out (validation and test are the same held-out images)")
    parts = {"training": train_index, "validation": val_index, "test": test_index}
    if not all(len(index) for index in parts.values()):
        drawn = f"{total} images (subset {subset} of {len(images)})" if subset else f"{total} images"
        raise DatasetFormatError(
            f"{source}: {drawn} leave "
            + ", ".join(f"{len(index)} {name}" for name, index in parts.items())
            + f" images in the {split} split; every part needs at least one. Use more images.")
    if test_subset is not None:
        test_index = test_index[:_count(test_subset, len(test_index), "test_subset")]
        description += f"; test subset {test_subset}"
    if subset is not None:
        description += f"; subset {subset} of {len(images)}"

    def pixels(index):
        return scale_pixels(images[np.sort(index)])[..., None]

    def targets(index):
        return labels[np.sort(index)].astype(np.int64)

    x_val = pixels(val_index)
    same = test_index is val_index
    return Dataset(
        name="clock",
        x_train=pixels(train_index), y_train=targets(train_index),
        x_val=x_val, y_val=targets(val_index),
        x_test=x_val if same else pixels(test_index),
        y_test=targets(val_index) if same else targets(test_index),
        input_shape=(int(images.shape[1]), int(images.shape[2]), 1),
        num_classes=None, class_names=(), source=source, description=description,
        geometry_train=None if geometry is None else geometry[np.sort(train_index)],
        subset_drawn=total,
    )


def rendered_dir(count: int, size: int, render_seed: int,
                 cache_dir: str | os.PathLike | None = None, style: str = DEFAULT_STYLE) -> Path:
    """The cache folder of one rendered set: ``<root>/clock-{count}-{size}-seed{render_seed}``,
    with ``-varied`` appended for the varied style (classic sets keep their earlier folders)."""
    suffix = "" if style == "classic" else f"-{style}"
    return default_cache_root(cache_dir) / f"clock-{count}-{size}-seed{render_seed}{suffix}"


def locate_clock(data_dir=None, size: int = 75, count: int = 18000, render_seed: int = 0,
                 style: str = DEFAULT_STYLE) -> str:
    """Where the clock set would be read from, without reading or rendering it.

    Raises:
        DatasetNotFoundError: as ``load_clock`` would: the folder it would read lacks one of the
            two files, or ``data_dir`` was given and holds no clock files.
    """
    found, tried = _find_files(data_dir, size)
    if found is not None:
        return f"clock: found in {found}"
    if data_dir is not None:
        raise DatasetNotFoundError(_not_found_message(tried))
    cache = rendered_dir(count, size, render_seed, style=style)
    if all((cache / name).is_file() for name in (IMAGES_FILE, LABELS_FILE, GEOMETRY_FILE)):
        return f"clock: rendered set in {cache}"
    return f"clock: not found; rendered into {cache} on first use"


def _find_files(data_dir, size: int) -> tuple[Path | None, list[str]]:
    """The first folder among the user's data directories with a clock file (checked to hold
    both), and the places tried before it."""
    tried = []
    for directory in explicit_data_dirs(data_dir):
        # Larger files are halved, so a 150-pixel folder also serves a 75-pixel request.
        larger = [directory / f"clock-{other}" for other in SIZES if other > size]
        for candidate in [directory / f"clock-{size}", directory / "clock", directory, *larger]:
            present = [name for name in (IMAGES_FILE, LABELS_FILE) if (candidate / name).is_file()]
            if len(present) == 2:
                return candidate, tried
            if present:
                absent = LABELS_FILE if present == [IMAGES_FILE] else IMAGES_FILE
                raise DatasetNotFoundError(
                    f"{candidate} holds {present[0]} but no {absent}: a clock set is both files "
                    f"side by side ({IMAGES_FILE} (N, S, S) uint8, {LABELS_FILE} (N, 2) of "
                    f"(hour, minute)). Add {absent}, or move {present[0]} away.")
            tried.append(f"{candidate}/{{{IMAGES_FILE},{LABELS_FILE}}}")
    return None, tried


def _not_found_message(tried: list[str]) -> str:
    return format_not_found("clock", tried, [
        "pass the folder that holds the assignment's images.npy and labels.npy as data_dir "
        "(or --data-dir)",
        "leave data_dir out to use the rendered stand-in (made once and cached)",
    ])


def _find_or_render(data_dir, size, count, cache_dir, render_seed, style=DEFAULT_STYLE):
    found, tried = _find_files(data_dir, size)
    if found is not None:
        images, labels = read_clock_files(found, size)
        return images, labels, str(found), read_clock_geometry(found, len(images))
    if data_dir is not None:
        raise DatasetNotFoundError(_not_found_message(tried))
    cache = rendered_dir(count, size, render_seed, cache_dir, style=style)
    # Sets cached before the renderer wrote geometry.npy are rendered again (the same images).
    if not all((cache / name).is_file() for name in (IMAGES_FILE, LABELS_FILE, GEOMETRY_FILE)):
        write_dataset(cache, count=count, size=size, seed=render_seed, style=style)
    images, labels = read_clock_files(cache, size, rendered=True)
    return (images, labels, f"{cache} (rendered, {style} style, seed {render_seed})",
            read_clock_geometry(cache, len(images)))


def _read_npy(path: Path, again: str = "") -> np.ndarray:
    """One array from a ``.npy`` file; ``again`` ends every error (how to get the file anew)."""
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise DatasetFormatError(
            f"{path}: expected a NumPy .npy array file, could not read it ({error}). Replace it "
            f"with the original file.{again}") from error
    if not isinstance(array, np.ndarray):
        array.close()
        raise DatasetFormatError(
            f"{path}: expected a NumPy .npy array file, got an .npz archive (np.savez) of "
            f"{', '.join(array.files) or 'nothing'}. Save the array itself with np.save.{again}")
    return array


def _halve(images: np.ndarray) -> np.ndarray:
    # Same 2x2 box average as PIL's Image.reduce(2), which the renderer uses for 75-pixel sets.
    n, side = images.shape[0], images.shape[1] // 2
    blocks = images[:, :side * 2, :side * 2].reshape(n, side, 2, side, 2).astype(np.uint16)
    return ((blocks.sum(axis=(2, 4)) + 2) // 4).astype(np.uint8)


def _count(size: int | float | None, total: int, name: str) -> int:
    if size is None:
        return total
    if isinstance(size, float) and size <= 1.0:
        if size <= 0:
            raise ValueError(f"{name} fraction must be in (0, 1], got {size}.")
        return max(1, int(round(size * total)))
    if int(size) < 1:
        raise ValueError(f"{name} must be a positive count or a fraction in (0, 1], got {size}.")
    return min(int(size), total)


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


def read_clock_images(paths, size: int) -> tuple[np.ndarray, list[str]]:
    """Clock images to read the time from: uint8 (N, size, size) and a name for each image.

    Args:
        paths: ``.npy`` files of (N, S, S), (N, S, S, 1), (S, S) or (S, S, 1) uint8 images
            (``images.npy`` of the assignment or of ``hpsearch clock render``), picture files
            (PNG, JPEG, ...), or folders of them, in any mix.
        size: the side the model reads. Pictures are made grayscale (transparency over white,
            16-bit and float pictures scaled to 8 bits) and square (centre crop) and resized to
            it; ``.npy`` images must be ``size`` or twice it (halved as the loader does).

    Raises:
        DatasetNotFoundError: a path does not exist, or a folder holds no pictures.
        DatasetFormatError: a file that is not an image of the expected shape.
    """
    images, names = [], []
    for path in (Path(item) for item in paths):
        if not path.exists():
            raise DatasetNotFoundError(f"{path}: no such file or folder.")
        files = (sorted(item for item in path.iterdir()
                        if item.suffix.lower() in IMAGE_SUFFIXES + (".npy",))
                 if path.is_dir() else [path])
        if not files:
            raise DatasetNotFoundError(
                f"{path}: no pictures in this folder (looked for "
                f"{', '.join(IMAGE_SUFFIXES + ('.npy',))}).")
        for file in files:
            if file.suffix.lower() == ".npy":
                array = _image_array(file, size)
                images.extend(array)
                names.extend(f"{file}[{index}]" for index in range(len(array)))
            else:
                images.append(_picture(file, size))
                names.append(str(file))
    if not images:
        raise DatasetNotFoundError("No images given: pass .npy files, pictures or folders.")
    return np.stack(images), names


def _image_array(path: Path, size: int) -> np.ndarray:
    """The uint8 (N, size, size) images of one ``.npy`` file (see ``read_clock_images``)."""
    array = _read_npy(path)
    if array.ndim == 3 and array.shape[-1] == 1 and array.shape[0] == array.shape[1]:
        array = array[..., 0]  # one (S, S, 1) image: no clock set has 1-pixel images
    array = array[None] if array.ndim == 2 else array
    array = array[..., 0] if array.ndim == 4 and array.shape[-1] == 1 else array
    check_clock_images(array, path, (size, 2 * size))
    return _halve(array) if array.shape[1] != size else array


def _picture(file: Path, size: int) -> np.ndarray:
    """One picture file as uint8 (size, size): grayscale, centre-cropped square, box-resized.
    A picture above ``datasets.user.MAX_PICTURE_PIXELS`` is refused from its header."""
    from PIL import Image, UnidentifiedImageError

    from datasets.user import check_picture_size

    try:
        with Image.open(file) as picture:
            check_picture_size(file, picture.size)  # before anything decodes it
            gray = _grayscale(picture)
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as error:
        raise DatasetFormatError(
            f"{file}: not a readable picture ({error}). Pass PNG / JPEG files, folders "
            f"of them, or .npy image arrays.") from error
    side = min(gray.size)
    left, top = (gray.width - side) // 2, (gray.height - side) // 2
    gray = gray.crop((left, top, left + side, top + side))
    return np.asarray(gray.resize((size, size), Image.BOX), dtype=np.uint8)


def _grayscale(picture):
    """An 8-bit grayscale copy of a PIL picture of any mode.

    PIL's own ``convert("L")`` clips 16-bit and 32-bit integer and float pictures to 255 (a blank
    white image) and drops transparency (transparent pixels turn black); here the full range of
    such a picture is scaled to 0-255 and transparency is laid over white.
    """
    from PIL import Image

    if picture.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        values = np.asarray(picture, dtype=np.float64)
        if picture.mode.startswith("I;16"):
            top = 65535.0
        else:  # the smallest usual full scale that holds every value, else the largest value
            highest = float(values.max()) if values.size else 0.0
            scales = (1.0, 255.0, 65535.0) if picture.mode == "F" else (255.0, 65535.0)
            top = next((scale for scale in scales if highest <= scale), highest)
        return Image.fromarray(np.clip(values / top * 255.0 + 0.5, 0, 255).astype(np.uint8))
    if picture.mode in ("RGBA", "LA", "PA") or "transparency" in picture.info:
        rgba = picture.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("L")
    return picture.convert("L")
