"""The checks, encodings and splits that every kind of a user's data goes through.

Each reader (``user_npz``, ``user_pictures``, ``user_tables``, and ``from_arrays`` /
``from_tf_dataset`` in ``user``) hands over up to six arrays named as in ``_ARRAY_KEYS``;
``_dataset_from_parts`` checks them (pairs complete, shapes and lengths agreeing, numeric
features, labels as class ids, one-hot rows, float targets or text), encodes text labels, draws
the subset, holds out the validation split and makes the ``Dataset``. ``from_tf_dataset``'s
sets are read into arrays here too (``_materialize_tf_dataset``), TensorFlow imported only then.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from datasets.errors import DatasetFormatError
from datasets.splits import Dataset, stratified_split, stratified_subset

# The arrays a reader hands over, as an .npz archive names them.
_ARRAY_KEYS = ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test")


# --- tf.data --------------------------------------------------------------------------------


def _materialize_tf_dataset(
    dataset, part: str, batched: bool | None
) -> tuple[np.ndarray, np.ndarray]:
    # TensorFlow takes seconds to import: only users who hand over tf.data sets pay for it.
    import tensorflow as tf

    if not isinstance(dataset, tf.data.Dataset):
        raise TypeError(
            f"from_tf_dataset expected a tf.data.Dataset of (x, y) pairs for '{part}', got "
            f"{type(dataset).__name__}. For numpy arrays use datasets.user.from_arrays."
        )
    spec = dataset.element_spec
    if not isinstance(spec, tuple) or len(spec) != 2:
        raise DatasetFormatError(
            f"The {part} tf.data.Dataset must yield (x, y) pairs; its elements are {spec}. "
            "Map it to pairs, e.g. dataset.map(lambda features, label: (features, label))."
        )
    if dataset.cardinality() == tf.data.INFINITE_CARDINALITY:
        raise DatasetFormatError(
            f"The {part} tf.data.Dataset repeats forever, so it cannot be read into arrays. "
            "Pass it without .repeat()."
        )
    if batched is None:
        shape = spec[0].shape
        batched = shape.rank is not None and shape.rank > 0 and shape[0] is None
    xs, ys = [], []
    for x, y in dataset.as_numpy_iterator():
        xs.append(x)
        ys.append(y)
    if not xs:
        raise DatasetFormatError(f"The {part} tf.data.Dataset is empty.")
    try:
        if batched:
            return np.concatenate(xs), np.concatenate(ys)
        return np.stack(xs), np.stack(ys)
    except ValueError as error:
        raise DatasetFormatError(
            f"The {part} tf.data.Dataset's elements have different shapes ({error}). "
            "Resize or pad them to one shape (for batches, pass batched=True or False if the "
            "guess from the element spec was wrong)."
        ) from error


# --- Arrays -> checked arrays -> splits -----------------------------------------------------


def _as_array(value: Any, key: str) -> np.ndarray:
    try:
        return np.asarray(value)
    except ValueError as error:
        raise DatasetFormatError(
            f"'{key}' cannot be made into one array ({error}): every example must have the same "
            "shape. Resize or pad them first."
        ) from error


def _features(array: np.ndarray, key: str) -> np.ndarray:
    if array.dtype.kind in "biu":
        array = array.astype(np.float32)
    elif array.dtype.kind == "f":
        array = array.astype(np.float32, copy=False)
    elif array.dtype.kind == "O":
        raise DatasetFormatError(
            f"'{key}' is an object-dtype array (Python objects, mixed types or rows of different "
            "lengths). Give a numeric array, e.g. np.asarray(x, dtype=np.float32)."
        )
    else:
        raise DatasetFormatError(
            f"'{key}' must hold numbers (int, bool or float); it holds {array.dtype}. Encode the "
            "features as numbers first."
        )
    if array.ndim < 2:
        raise DatasetFormatError(
            f"'{key}' must have one row per example, shape (examples, ...) with at least 2 "
            f"dimensions; got shape {array.shape}. For one feature per example use "
            "x.reshape(-1, 1)."
        )
    # min and max carry any NaN or infinity through without a temporary the size of the array.
    if array.size and not (np.isfinite(array.min()) and np.isfinite(array.max())):
        raise DatasetFormatError(
            f"'{key}' holds {int(np.size(array) - np.isfinite(array).sum())} NaN or infinite "
            "values. Replace or drop them first."
        )
    return array


def _labels(array: np.ndarray, key: str) -> np.ndarray:
    if array.dtype.kind == "O" and all(isinstance(value, str) for value in array.ravel()):
        array = array.astype(str)
    kind = array.dtype.kind
    if kind in "US":
        if array.ndim != 1:
            raise DatasetFormatError(
                f"'{key}' holds text labels of shape {array.shape}; text labels must be one per "
                "example, shape (examples,)."
            )
        return array
    if kind in "biu":
        return array.astype(np.int64)
    if kind == "f":
        if not np.isfinite(array).all():
            raise DatasetFormatError(
                f"'{key}' holds NaN or infinite values. Replace or drop those examples first."
            )
        return array.astype(np.float32, copy=False)
    if kind == "O":
        raise DatasetFormatError(
            f"'{key}' is an object-dtype array (Python objects or mixed types). Give int class "
            "ids, one-hot rows, float targets or strings."
        )
    raise DatasetFormatError(
        f"'{key}' must hold int class ids, one-hot rows, float targets or strings; it holds "
        f"{array.dtype}."
    )


def _encode_string_labels(
    labels: dict[str, np.ndarray],
) -> tuple[dict[str, np.ndarray], tuple[str, ...]]:
    """Text labels of every split -> ids of their sorted distinct values (one mapping for all)."""
    text = [key for key, array in labels.items() if array.dtype.kind in "US"]
    if not text:
        return labels, ()
    if len(text) != len(labels):
        numeric = [key for key in labels if key not in text]
        raise DatasetFormatError(
            f"{', '.join(text)} hold text labels but {', '.join(numeric)} hold numbers; give "
            "every split labels of the same kind."
        )
    class_names = np.unique(np.concatenate([labels[key].astype(str) for key in text]))
    encoded = {
        key: np.searchsorted(class_names, array.astype(str)).astype(np.int64)
        for key, array in labels.items()
    }
    return encoded, tuple(str(name) for name in class_names)


def _is_one_hot(labels: np.ndarray) -> bool:
    return (
        labels.ndim == 2
        and labels.shape[1] >= 2
        and bool(np.isin(labels, (0, 1)).all())
        and bool((labels.sum(axis=1) == 1).all())
    )


def _class_ids(labels: np.ndarray) -> np.ndarray | None:
    """The class of every example, to stratify on; None when the labels are not classes."""
    if labels.dtype.kind == "i" and labels.ndim == 1:
        return labels
    if labels.dtype.kind == "i" and labels.ndim == 2 and labels.shape[1] == 1:
        return labels[:, 0]
    if _is_one_hot(labels):
        return labels.argmax(axis=1)
    return None


def _num_classes(labels: list[np.ndarray], class_names: tuple[str, ...]) -> int | None:
    if class_names:
        return len(class_names)
    train = labels[0]
    if _is_one_hot(train):
        return int(train.shape[1])
    if _class_ids(train) is None:
        return None
    return int(max(int(array.max()) for array in labels if array.size)) + 1


def _checked_subset(subset: float | None) -> float | None:
    """The subset as a Python int (a count) or float (a fraction), as ``stratified_subset``
    tells them apart; numpy scalars are welcome too."""
    if subset is None:
        return None
    is_count = isinstance(subset, (int, np.integer)) and not isinstance(subset, (bool, np.bool_))
    is_fraction = isinstance(subset, (float, np.floating))
    if is_count and subset >= 1:
        return int(subset)
    if is_fraction and 0.0 < subset <= 1.0:
        return float(subset)
    raise ValueError(
        f"subset must be a count (an int >= 1) or a fraction (a float in (0, 1]); got {subset!r}."
    )


def _check_validation_fraction(fraction: float) -> None:
    if not 0.0 <= fraction < 1.0:
        raise ValueError(
            f"validation_fraction must be in [0, 1), got {fraction!r}; 0.1 holds out a tenth of "
            "the training examples."
        )


def _random_subset(count: int, subset: float | None, seed: int) -> np.ndarray:
    if subset is None:
        return np.arange(count)
    size = round(subset * count) if isinstance(subset, float) else subset
    return np.sort(np.random.default_rng(seed).permutation(count)[: min(size, count)])


def _random_split(count: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    held = round(fraction * count)
    order = np.random.default_rng(seed).permutation(count)
    return np.sort(order[held:]), np.sort(order[:held])


def _checked_parts(
    parts: dict[str, Any],
) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], tuple[str, ...]]:
    """Split name -> (x, y), checked: pairs complete, lengths and shapes agree, labels encoded."""
    pairs: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for split in ("train", "val", "test"):
        x, y = parts.get(f"x_{split}"), parts.get(f"y_{split}")
        if x is None and y is None and split != "train":
            continue
        if x is None or y is None:
            given, absent = ("x", "y") if y is None else ("y", "x")
            raise DatasetFormatError(
                f"{given}_{split} was given without {absent}_{split}: give both or neither."
            )
        features = _features(_as_array(x, f"x_{split}"), f"x_{split}")
        labels = _labels(_as_array(y, f"y_{split}"), f"y_{split}")
        if len(features) != len(labels):
            raise DatasetFormatError(
                f"x_{split} has {len(features)} examples but y_{split} has {len(labels)}; "
                "give one label per example."
            )
        pairs[split] = (features, labels)
    encoded, class_names = _encode_string_labels({split: y for split, (_, y) in pairs.items()})
    pairs = {split: (x, encoded[split]) for split, (x, _) in pairs.items()}
    x_train, y_train = pairs["train"]
    for split, (x, y) in pairs.items():
        if x.shape[1:] != x_train.shape[1:]:
            raise DatasetFormatError(
                f"x_{split} examples have shape {x.shape[1:]} but x_train examples have "
                f"{x_train.shape[1:]}; every split must have the same shape."
            )
        if y.shape[1:] != y_train.shape[1:] or y.dtype.kind != y_train.dtype.kind:
            raise DatasetFormatError(
                f"y_{split} labels ({y.dtype}, shape {y.shape[1:]} each) differ from y_train "
                f"labels ({y_train.dtype}, shape {y_train.shape[1:]} each); give every split "
                "labels of the same kind."
            )
    if _class_ids(y_train) is not None and not _is_one_hot(y_train):
        negative = [split for split, (_, y) in pairs.items() if y.size and y.min() < 0]
        if negative:
            raise DatasetFormatError(
                f"Integer labels are class ids 0..K-1, but y_{negative[0]} holds negative "
                "values. Map the classes to 0..K-1, or give float labels for regression."
            )
    return pairs, class_names


def _dataset_from_parts(
    parts: dict[str, Any],
    *,
    name: str,
    source: str,
    validation_fraction: float,
    subset: float | None,
    seed: int,
    class_names: tuple[str, ...] = (),
    notes: Sequence[str] = (),
) -> Dataset:
    _check_validation_fraction(validation_fraction)
    subset = _checked_subset(subset)
    pairs, encoded_names = _checked_parts(parts)
    class_names = tuple(class_names) or encoded_names
    x_train, y_train = pairs["train"]
    classes = _class_ids(y_train)
    how = "stratified by class" if classes is not None else "random"
    description = list(notes)

    if classes is not None:
        train_index = stratified_subset(classes, subset, seed)
    else:
        train_index = _random_subset(len(y_train), subset, seed)
    if subset is not None:
        description.append(
            f"subset {subset}: {len(train_index)} of {len(y_train)} training examples "
            f"({how}, seed {seed})"
        )

    if "val" in pairs:
        x_val, y_val = pairs["val"]
        description.append(f"validation as given ({len(y_val)} examples)")
    else:
        if classes is not None:
            kept, held = stratified_split(classes[train_index], validation_fraction, seed + 1)
        else:
            kept, held = _random_split(len(train_index), validation_fraction, seed + 1)
        if validation_fraction > 0 and len(held) == 0:
            raise DatasetFormatError(
                f"Holding out {validation_fraction:.0%} of {len(train_index)} training examples "
                "leaves no validation examples. Give more examples, a larger "
                "validation_fraction, or a validation set."
            )
        x_val, y_val = x_train[train_index[held]], y_train[train_index[held]]
        train_index = train_index[kept]
        description.append(f"validation {validation_fraction:.0%} of train ({how}, seed {seed})")
    if len(train_index) == 0:
        raise DatasetFormatError(
            "No training examples are left after the subset and the validation split. Give "
            "more examples, a larger subset or a smaller validation_fraction."
        )

    if "test" in pairs:
        x_test, y_test = pairs["test"]
        description.append(f"test as given ({len(y_test)} examples)")
    else:
        x_test, y_test = x_train[:0], y_train[:0]
        description.append("no test set")

    labels = [y_train, y_val, y_test]
    return Dataset(
        name=name,
        x_train=x_train[train_index],
        y_train=y_train[train_index],
        x_val=x_val,
        y_val=y_val,
        x_test=x_test,
        y_test=y_test,
        input_shape=tuple(int(size) for size in x_train.shape[1:]),
        num_classes=_num_classes(labels, class_names),
        class_names=class_names,
        source=source,
        description="; ".join(description),
        subset_drawn=None,
    )
