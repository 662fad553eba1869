"""Raw arrays -> the train / validation / test splits a search sees.

The validation set is a seeded, stratified fraction of the training set; the test set is kept apart.
Pixels are scaled to float32 in [0, 1] here and nowhere else.
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True, eq=False)
class RawDataset:
    """A dataset as read from disk: uint8 images (N, H, W, C), integer labels, before any split."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...]
    source: str


@dataclasses.dataclass(frozen=True, eq=False)
class Dataset:
    """Train / validation / test arrays ready for ``model.fit``, with what describes them.

    Attributes:
        name: registry name, e.g. ``"fashion_mnist"``.
        x_train, y_train, x_val, y_val, x_test, y_test: float32 images in [0, 1] shaped
            (N, H, W, C) and labels (int class ids, or one row of targets per image for the clock).
        input_shape: (H, W, C) of one image.
        num_classes: number of classes, or None when the labels are not classes (clock).
        class_names: a name per class (empty when not a classification set).
        source: the directory or file the data was read from.
        description: how the splits were made (fractions, subset, seed).
        geometry_train: clock sets only, when the renderer wrote it: (N_train, 5) float32 where the
            dial and hands are in each training image (``datasets.clock_render.GEOMETRY_COLUMNS``),
            for auxiliary training targets; None otherwise. Held-out images never carry it.
        subset_drawn: for a set that draws its ``subset`` from all its images before splitting
            (the clock set), how many it drew: the count asked for, or all of them when it asked
            for more. None for the classification sets, which draw it from their training and
            validation images and keep the whole test set.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    input_shape: tuple[int, ...]
    num_classes: int | None
    class_names: tuple[str, ...]
    source: str
    description: str = ""
    geometry_train: np.ndarray | None = None
    subset_drawn: int | None = None

    def summary(self) -> str:
        """One line: name, split sizes, shape and source."""
        return (
            f"{self.name}: {len(self.x_train)} train / {len(self.x_val)} validation / "
            f"{len(self.x_test)} test images of shape {self.input_shape} from {self.source}"
        )


def scale_pixels(images: np.ndarray) -> np.ndarray:
    """uint8 [0, 255] -> float32 [0, 1]."""
    return images.astype(np.float32) / np.float32(255.0)


def stratified_split(
    labels: np.ndarray, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Split indices into (kept, held_out) with ``fraction`` of every class held out.

    ``round(fraction * len(labels))`` examples are held out in all, shared among the classes in
    proportion to their size (largest remainders get the leftover ones), so a balanced
    60,000-image set with fraction 0.1 gives exactly 54,000 / 6,000 with 600 per class, and a tiny
    set still gets the overall fraction right. Both index arrays are sorted.
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"fraction must be in [0, 1), got {fraction}.")
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    quotas = fraction * counts
    taken = np.floor(quotas).astype(np.int64)
    leftover = int(round(fraction * len(labels))) - int(taken.sum())
    if leftover > 0:
        # Largest remainder first; a seeded random tie-break keeps small sets unbiased.
        order = np.lexsort((rng.random(len(classes)), -(quotas - taken)))
        taken[order[:leftover]] += 1
    held_out = [
        rng.permutation(np.flatnonzero(labels == label))[:count]
        for label, count in zip(classes, taken)
    ]
    held = np.sort(np.concatenate(held_out)) if held_out else np.array([], dtype=np.int64)
    mask = np.ones(len(labels), dtype=bool)
    mask[held] = False
    return np.flatnonzero(mask), held


def stratified_subset(labels: np.ndarray, size: int | float | None, seed: int) -> np.ndarray:
    """Sorted indices of a seeded, class-balanced subset.

    Args:
        labels: class ids.
        size: a count (int >= 1) or a fraction in (0, 1]; None keeps everything.
        seed: random seed.
    """
    count = len(labels)
    if size is None:
        return np.arange(count)
    if isinstance(size, float) and not isinstance(size, bool) and size <= 1.0:
        if size <= 0:
            raise ValueError(f"subset fraction must be in (0, 1], got {size}.")
        fraction = size
    else:
        size = int(size)
        if size < 1:
            raise ValueError(
                f"subset must be a positive count or a fraction in (0, 1], got {size}."
            )
        if size >= count:
            return np.arange(count)
        fraction = size / count
    if fraction >= 1.0:
        return np.arange(count)
    # The subset is the "held out" part of a stratified split with that fraction.
    _, subset = stratified_split(labels, fraction, seed)
    return subset


def split_classification(
    name: str,
    raw: RawDataset,
    validation_fraction: float = 0.1,
    subset: int | float | None = None,
    test_subset: int | float | None = None,
    seed: int = 0,
) -> Dataset:
    """Make the search-ready splits of a classification set.

    Args:
        name: registry name.
        raw: the arrays read from disk.
        validation_fraction: share of the (possibly subsetted) training set held out for
            validation; 0.1 as the assignment asks.
        subset: optional size (count or fraction) of the training set to use before the split,
            stratified and seeded, for quick runs.
        test_subset: optional size of the test set to evaluate on (default: all of it).
        seed: seed of the subset and the split; the same seed gives the same split.
    """
    train_index = stratified_subset(raw.y_train, subset, seed)
    kept, held = stratified_split(raw.y_train[train_index], validation_fraction, seed + 1)
    train_index, val_index = train_index[kept], train_index[held]
    test_index = stratified_subset(raw.y_test, test_subset, seed + 2)
    parts = [f"validation {validation_fraction:.0%} of train (stratified, seed {seed})"]
    if subset is not None:
        parts.append(f"train subset {subset}")
    if test_subset is not None:
        parts.append(f"test subset {test_subset}")
    return Dataset(
        name=name,
        x_train=scale_pixels(raw.x_train[train_index]),
        y_train=raw.y_train[train_index].astype(np.int64),
        x_val=scale_pixels(raw.x_train[val_index]),
        y_val=raw.y_train[val_index].astype(np.int64),
        x_test=scale_pixels(raw.x_test[test_index]),
        y_test=raw.y_test[test_index].astype(np.int64),
        input_shape=tuple(int(d) for d in raw.x_train.shape[1:]),
        num_classes=len(raw.class_names),
        class_names=tuple(raw.class_names),
        source=raw.source,
        description="; ".join(parts),
    )
