"""A user's own data (.npz, folders of pictures, CSV/parquet, arrays, tf.data) -> Dataset."""

from __future__ import annotations

import hashlib
import importlib.util

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from datasets.errors import DatasetError, DatasetFormatError, DatasetNotFoundError
from datasets.user import (
    arrays_fingerprint,
    data_fingerprint,
    from_arrays,
    from_tf_dataset,
    load_user_data,
    peek_user_data,
)

HAS_PYARROW = importlib.util.find_spec("pyarrow") is not None


def balanced_arrays(count=40, classes=4, shape=(4, 4, 1), seed=0):
    """uint8 pictures and int class ids, ``count // classes`` of each class."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, size=(count, *shape), dtype=np.uint8)
    y = np.arange(count) % classes
    return x, y


def write_picture(path, size=(5, 6), mode="RGB", seed=0):
    """A random picture of ``size`` (width, height) in Pillow ``mode``; returns its pixels."""
    rng = np.random.default_rng(seed)
    width, height = size
    path.parent.mkdir(parents=True, exist_ok=True)
    if mode == "L":
        pixels = rng.integers(0, 256, (height, width), dtype=np.uint8)
    else:
        pixels = rng.integers(0, 256, (height, width, len(mode)), dtype=np.uint8)
    Image.fromarray(pixels, mode=mode).save(path)
    return pixels


def write_picture_folder(root, classes=("cat", "dog"), per_class=5, size=(5, 6), mode="RGB"):
    for class_index, name in enumerate(classes):
        for index in range(per_class):
            write_picture(root / name / f"{index}.png", size, mode, seed=10 * class_index + index)
    return root


def write_table(path, rows=20):
    rng = np.random.default_rng(0)
    table = pd.DataFrame(
        {
            "height": rng.normal(size=rows),
            "count": np.arange(rows),
            "flag": np.arange(rows) % 2 == 0,
            "species": np.array(["setosa", "virginica", "versicolor", "setosa"] * rows)[:rows],
            "weight": np.linspace(1.0, 2.0, rows),
        }
    )
    table.to_csv(path, index=False)
    return table


# --- .npz -----------------------------------------------------------------------------------


def test_npz_keeps_values_and_holds_out_stratified_validation(tmp_path):
    x, y = balanced_arrays()
    path = tmp_path / "pets.npz"
    np.savez(path, x_train=x, y_train=y)
    data = load_user_data(path)
    assert (len(data.x_train), len(data.x_val), len(data.x_test)) == (36, 4, 0)
    assert data.x_train.dtype == np.float32 and data.y_train.dtype == np.int64
    # Not rescaled: uint8 values come back as the same numbers.
    assert data.x_train.max() > 1.0
    assert {row.tobytes() for row in np.concatenate([data.x_train, data.x_val])} == {
        row.astype(np.float32).tobytes() for row in x
    }
    # Balanced set, 10% held out: every class is in validation.
    assert sorted(data.y_val.tolist()) == [0, 1, 2, 3]
    assert data.x_test.shape == (0, 4, 4, 1) and data.y_test.shape == (0,)
    assert data.input_shape == (4, 4, 1) and data.num_classes == 4
    assert data.name == "pets" and data.source == str(path) and data.class_names == ()
    assert "10%" in data.description and "seed 0" in data.description
    assert data.subset_drawn is None


def test_npz_one_hot_labels_stay_one_hot(tmp_path):
    x, y = balanced_arrays(count=30, classes=3)
    one_hot = np.eye(3, dtype=np.float32)[y]
    path = tmp_path / "onehot.npz"
    np.savez(path, x_train=x.astype(np.float64) / 255.0, y_train=one_hot)
    data = load_user_data(path)
    assert data.x_train.dtype == np.float32 and data.x_train.max() <= 1.0
    assert data.y_train.dtype == np.float32 and data.y_train.shape[1:] == (3,)
    assert data.num_classes == 3
    # Stratified on argmax: 3 validation rows, one of each class.
    assert sorted(data.y_val.argmax(axis=1).tolist()) == [0, 1, 2]


def test_npz_float_targets_are_regression(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 3))
    y = rng.normal(size=50)
    path = tmp_path / "prices.npz"
    np.savez(path, x_train=x, y_train=y)
    data = load_user_data(path, validation_fraction=0.2)
    assert data.num_classes is None and data.y_train.dtype == np.float32
    assert (len(data.y_train), len(data.y_val)) == (40, 10)
    np.testing.assert_allclose(
        np.sort(np.concatenate([data.y_train, data.y_val])), np.sort(y.astype(np.float32))
    )
    assert "random" in data.description and data.input_shape == (3,)


def test_npz_validation_and_test_are_used_as_given(tmp_path):
    x, y = balanced_arrays()
    path = tmp_path / "split.npz"
    np.savez(path, x_train=x, y_train=y, x_val=x[:7], y_val=y[:7], x_test=x[:5], y_test=y[:5])
    data = load_user_data(path, validation_fraction=0.5)
    assert len(data.x_train) == 40
    np.testing.assert_array_equal(data.x_val, x[:7].astype(np.float32))
    np.testing.assert_array_equal(data.y_test, y[:5])
    assert "validation as given" in data.description and "test as given" in data.description


def test_split_is_seeded(tmp_path):
    x, y = balanced_arrays(count=80)
    path = tmp_path / "seeded.npz"
    np.savez(path, x_train=x, y_train=y)
    first, again = load_user_data(path, seed=3), load_user_data(path, seed=3)
    other = load_user_data(path, seed=4)
    np.testing.assert_array_equal(first.x_val, again.x_val)
    assert not np.array_equal(first.x_val, other.x_val)


@pytest.mark.parametrize(
    ("arrays", "match"),
    [
        ({"x": np.zeros((4, 2)), "y_train": np.zeros(4)}, r"no x_train.*found: x, y_train"),
        ({"x_train": np.zeros((4, 2)), "y_train": np.zeros(3)}, r"4 examples.*y_train has 3"),
        (
            {"x_train": np.zeros((4, 2)), "y_train": np.zeros(4), "x_val": np.zeros((2, 2))},
            r"x_val was given without y_val",
        ),
        (
            {"x_train": np.array([[1], [1, 2]], dtype=object), "y_train": np.zeros(2)},
            r"'x_train'.*object-dtype",
        ),
        (
            {
                "x_train": np.zeros((4, 2)),
                "y_train": np.zeros(4),
                "x_test": np.zeros((2, 3)),
                "y_test": np.zeros(2),
            },
            r"x_test examples have shape \(3,\) but x_train examples have \(2,\)",
        ),
        ({"x_train": np.zeros((4, 2)), "y_train": np.array([0, 1, -1, 2])}, r"negative"),
    ],
)
def test_npz_refusals(tmp_path, arrays, match):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(DatasetFormatError, match=match):
        load_user_data(path)


def test_unreadable_npz_is_named(tmp_path):
    path = tmp_path / "broken.npz"
    path.write_bytes(b"this is not a zip archive")
    with pytest.raises(DatasetFormatError, match=r"Cannot read '.*broken.npz' as an .npz archive"):
        load_user_data(path)


def test_target_is_for_tables_only(tmp_path):
    x, y = balanced_arrays()
    np.savez(tmp_path / "a.npz", x_train=x, y_train=y)
    with pytest.raises(ValueError, match=r"--target.*CSV/parquet"):
        load_user_data(tmp_path / "a.npz", target="label")
    with pytest.raises(ValueError, match=r"--target.*CSV/parquet"):
        load_user_data(write_picture_folder(tmp_path / "pics"), target="label")


# --- subset ---------------------------------------------------------------------------------


def test_subset_count_is_stratified_and_drawn_before_the_split(tmp_path):
    x, y = balanced_arrays(count=80)
    data = from_arrays(x, y, subset=40)
    assert len(data.y_train) + len(data.y_val) == 40
    assert np.bincount(np.concatenate([data.y_train, data.y_val])).tolist() == [10] * 4
    assert "subset 40" in data.description


def test_subset_fraction_larger_count_and_regression():
    x, y = balanced_arrays(count=80)
    assert len(from_arrays(x, y, subset=0.5, validation_fraction=0.0).y_train) == 40
    assert len(from_arrays(x, y, subset=1000, validation_fraction=0.0).y_train) == 80
    targets = np.linspace(0.0, 1.0, 80)
    regression = from_arrays(x, targets, subset=20)
    assert (len(regression.y_train), len(regression.y_val)) == (18, 2)


def test_numpy_scalar_subsets_are_counts_or_fractions():
    x, y = balanced_arrays(count=80)
    assert len(from_arrays(x, y, subset=np.float32(0.5), validation_fraction=0.0).y_train) == 40
    assert len(from_arrays(x, y, subset=np.int64(20), validation_fraction=0.0).y_train) == 20


@pytest.mark.parametrize("subset", [0, -3, 0.0, 1.5, "10", True])
def test_bad_subset_is_refused(subset):
    x, y = balanced_arrays()
    with pytest.raises(ValueError, match="subset must be a count"):
        from_arrays(x, y, subset=subset)


def test_bad_validation_fraction_is_refused():
    x, y = balanced_arrays()
    with pytest.raises(ValueError, match=r"validation_fraction must be in \[0, 1\)"):
        from_arrays(x, y, validation_fraction=1.0)


def test_too_few_examples_for_a_validation_set():
    x, y = balanced_arrays(count=4)
    with pytest.raises(DatasetFormatError, match="leaves no validation examples"):
        from_arrays(x, y, validation_fraction=0.1)


# --- folders of pictures --------------------------------------------------------------------


def test_picture_folder_classes_labels_and_pixels(tmp_path):
    root = write_picture_folder(tmp_path / "pets", classes=("cat", "dog", "bird"), per_class=4)
    pixels = write_picture(root / "dog" / "0.png", seed=99)
    (root / "dog" / "notes.txt").write_text("not a picture, ignored")
    data = load_user_data(root, validation_fraction=0.25, seed=0)
    assert data.class_names == ("bird", "cat", "dog") and data.num_classes == 3
    assert data.input_shape == (6, 5, 3) and data.x_train.dtype == np.float32
    assert (len(data.x_train), len(data.x_val)) == (9, 3)
    assert sorted(data.y_val.tolist()) == [0, 1, 2]
    everything = np.concatenate([data.x_train, data.x_val])
    # Pixels exactly as written, 0..255, not rescaled (what image_dataset_from_directory gives).
    assert any(np.array_equal(image, pixels.astype(np.float32)) for image in everything)
    assert data.name == "pets" and data.source == str(root)
    assert "RGB (3 channels)" in data.description


def test_grayscale_pictures_give_one_channel(tmp_path):
    root = write_picture_folder(tmp_path / "digits", mode="L")
    write_picture(root / "cat" / "bits.png", mode="L")
    Image.open(root / "cat" / "bits.png").convert("1").save(root / "cat" / "bits.png")
    assert Image.open(root / "cat" / "bits.png").mode == "1"
    data = load_user_data(root, validation_fraction=0.0)
    assert data.input_shape == (6, 5, 1) and data.x_train.shape == (11, 6, 5, 1)
    # A 1-bit picture reads as 0 or 255, like the 8-bit ones.
    bits = data.x_train[data.y_train == 0][-1]  # bits.png sorts after 0.png .. 4.png
    assert set(np.unique(bits).tolist()) <= {0.0, 255.0}
    assert "grayscale (1 channel)" in data.description
    assert peek_user_data(root)["input_shape"] == (6, 5, 1)


def test_sixteen_bit_grayscale_is_scaled_to_0_255(tmp_path):
    root = write_picture_folder(tmp_path / "scans", mode="L")
    Image.fromarray(np.full((6, 5), 65535, dtype=np.uint16)).save(root / "cat" / "deep.png")
    assert Image.open(root / "cat" / "deep.png").mode.startswith("I;16")
    data = load_user_data(root, validation_fraction=0.0)
    assert data.input_shape == (6, 5, 1) and data.x_train.max() == 255.0


def test_any_colour_picture_makes_the_set_rgb(tmp_path):
    root = write_picture_folder(tmp_path / "mixed", mode="L")
    rgba = write_picture(root / "dog" / "alpha.png", mode="RGBA", seed=5)
    data = load_user_data(root, validation_fraction=0.0)
    assert data.input_shape == (6, 5, 3)
    # RGBA -> RGB drops alpha; grayscale pictures are repeated over the 3 channels.
    assert any(np.array_equal(image, rgba[..., :3].astype(np.float32)) for image in data.x_train)
    gray = data.x_train[data.y_train == 0][0]
    np.testing.assert_array_equal(gray[..., 0], gray[..., 2])


def test_jpeg_pictures_are_read(tmp_path):
    root = tmp_path / "photos"
    for name in ("a", "b"):
        for index in range(3):
            write_picture(root / name / f"{index}.JPG", size=(8, 8), seed=index)
    data = load_user_data(root, validation_fraction=0.0)
    assert data.x_train.shape == (6, 8, 8, 3)


def test_mixed_sizes_are_resized_to_the_most_common(tmp_path):
    root = write_picture_folder(tmp_path / "sizes", size=(5, 6))
    write_picture(root / "cat" / "big.png", size=(10, 12))
    write_picture(root / "dog" / "wide.png", size=(9, 4))
    data = load_user_data(root, validation_fraction=0.0)
    assert data.x_train.shape == (12, 6, 5, 3)
    assert "resized 2 of 12 pictures" in data.description and "5x6" in data.description


def test_train_validation_and_test_folders_are_used(tmp_path):
    root = tmp_path / "split"
    write_picture_folder(root / "train", per_class=4)
    write_picture_folder(root / "val", per_class=2)
    write_picture_folder(root / "test", per_class=3)
    data = load_user_data(root)
    assert (len(data.x_train), len(data.x_val), len(data.x_test)) == (8, 4, 6)
    assert data.class_names == ("cat", "dog") and data.y_test.tolist() == [0, 0, 0, 1, 1, 1]
    assert "validation as given" in data.description
    assert peek_user_data(root)["examples"] == 18


def test_train_and_test_folders_without_validation_hold_out_from_train(tmp_path):
    root = tmp_path / "split"
    write_picture_folder(root / "train", per_class=5)
    write_picture_folder(root / "test", per_class=1)
    data = load_user_data(root, validation_fraction=0.2)
    assert (len(data.x_train), len(data.x_val), len(data.x_test)) == (8, 2, 2)


def test_picture_folder_refusals(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetFormatError, match="is empty"):
        load_user_data(empty)

    flat = tmp_path / "flat"
    write_picture(flat / "0.png")
    with pytest.raises(DatasetFormatError, match="no class sub-folders"):
        load_user_data(flat)

    one_class = write_picture_folder(tmp_path / "one", classes=("cat",))
    with pytest.raises(DatasetFormatError, match=r"1 class sub-folder \(cat\).*at least 2"):
        load_user_data(one_class)

    no_pictures = write_picture_folder(tmp_path / "nopics")
    (no_pictures / "fish").mkdir()
    (no_pictures / "fish" / "readme.txt").write_text("no pictures here")
    with pytest.raises(DatasetFormatError, match=r"class folder '.*fish' holds no pictures"):
        load_user_data(no_pictures)

    unknown = tmp_path / "unknown"
    write_picture_folder(unknown / "train")
    write_picture_folder(unknown / "test", classes=("cat", "cow"))
    with pytest.raises(DatasetFormatError, match="class folders that train does not: cow"):
        load_user_data(unknown)


@pytest.mark.parametrize("damage", ["not a picture", "truncated"])
def test_unreadable_picture_is_named(tmp_path, damage):
    root = write_picture_folder(tmp_path / "pets", size=(40, 40))
    bad = root / "dog" / "3.png"
    content = b"not a picture" if damage == "not a picture" else bad.read_bytes()[:200]
    bad.write_bytes(content)
    with pytest.raises(DatasetFormatError, match=r"Cannot read the picture '.*3\.png'"):
        load_user_data(root)


# --- tables ---------------------------------------------------------------------------------


def test_csv_with_text_target_gives_sorted_class_names(tmp_path):
    path = tmp_path / "iris.csv"
    table = write_table(path)
    data = load_user_data(path, target="species", validation_fraction=0.0)
    assert data.class_names == ("setosa", "versicolor", "virginica") and data.num_classes == 3
    assert data.x_train.dtype == np.float32 and data.x_train.shape == (20, 4)
    assert data.input_shape == (4,) and data.y_train.dtype == np.int64
    expected = table["species"].map({"setosa": 0, "versicolor": 1, "virginica": 2})
    np.testing.assert_array_equal(data.y_train, expected.to_numpy())
    assert data.x_test.shape == (0, 4)


@pytest.mark.parametrize(
    ("target", "dtype", "num_classes"), [("count", np.int64, 20), ("weight", np.float32, None)]
)
def test_csv_numeric_targets_stay_as_given(tmp_path, target, dtype, num_classes):
    path = tmp_path / "numbers.csv"
    table = write_table(path).drop(columns=["species"])
    table.to_csv(path, index=False)
    data = load_user_data(path, target=target, validation_fraction=0.0)
    assert data.y_train.dtype == dtype and data.num_classes == num_classes
    np.testing.assert_allclose(data.y_train, table[target].to_numpy().astype(dtype))
    assert peek_user_data(path, target) == {
        "kind": "table",
        "input_shape": (3,),
        "num_classes": num_classes,
        "examples": 20,
    }


def test_csv_refusals(tmp_path):
    path = tmp_path / "iris.csv"
    write_table(path)
    with pytest.raises(DatasetFormatError, match=r"needs --target.*height, count, flag, species"):
        load_user_data(path)
    with pytest.raises(DatasetFormatError, match=r"No column 'specie'.*Did you mean 'species'"):
        load_user_data(path, target="specie")
    with pytest.raises(DatasetFormatError, match=r"must be numeric.*'species'.*Encode.*drop"):
        load_user_data(path, target="weight")

    holes = tmp_path / "holes.csv"
    pd.DataFrame({"a": [1.0, None, 3.0, None], "b": [1, 2, 3, 4], "y": [0, 1, 0, None]}).to_csv(
        holes, index=False
    )
    with pytest.raises(DatasetFormatError, match=r"missing values: 'a' 2, 'y' 1"):
        load_user_data(holes, target="y")


@pytest.mark.skipif(not HAS_PYARROW, reason="parquet needs pyarrow, which is not installed")
def test_parquet_table(tmp_path):
    source = tmp_path / "iris.csv"
    write_table(source)
    path = tmp_path / "iris.parquet"
    pd.read_csv(source).to_parquet(path)
    data = load_user_data(path, target="species", validation_fraction=0.0)
    assert data.class_names == ("setosa", "versicolor", "virginica")
    assert data.x_train.shape == (20, 4) and data.name == "iris"
    assert peek_user_data(path, "species")["num_classes"] == 3


def test_parquet_without_engine_says_what_to_install(tmp_path, monkeypatch):
    def no_engine(*args, **kwargs):
        raise ImportError("Unable to find a usable engine; tried using: 'pyarrow', 'fastparquet'.")

    monkeypatch.setattr(pd, "read_parquet", no_engine)
    path = tmp_path / "table.parquet"
    path.write_bytes(b"PAR1")
    with pytest.raises(DatasetError, match="pip install pyarrow"):
        load_user_data(path, target="y")


# --- what the path is -----------------------------------------------------------------------


def test_missing_path_and_unknown_kind(tmp_path):
    with pytest.raises(DatasetNotFoundError, match=r"No data at.*\.npz file.*folder.*\.csv"):
        load_user_data(tmp_path / "nowhere.npz")
    other = tmp_path / "data.json"
    other.write_text("{}")
    with pytest.raises(DatasetFormatError, match=r"unknown kind of file '\.json'.*\.npz.*\.csv"):
        load_user_data(other)


def test_peek_reads_headers(tmp_path):
    x, y = balanced_arrays()
    path = tmp_path / "a.npz"
    np.savez_compressed(path, x_train=x, y_train=y, x_test=x[:6], y_test=y[:6])
    assert peek_user_data(path) == {
        "kind": "npz",
        "input_shape": (4, 4, 1),
        "num_classes": 4,
        "examples": 46,
    }
    root = write_picture_folder(tmp_path / "pets", classes=("a", "b", "c"), per_class=2)
    assert peek_user_data(root) == {
        "kind": "images",
        "input_shape": (6, 5, 3),
        "num_classes": 3,
        "examples": 6,
    }
    table = tmp_path / "t.csv"
    write_table(table)
    assert peek_user_data(table, "species")["num_classes"] == 3


# --- fingerprints ---------------------------------------------------------------------------


def test_file_fingerprint_is_its_sha256_and_follows_every_byte(tmp_path):
    x, y = balanced_arrays()
    path = tmp_path / "a.npz"
    np.savez(path, x_train=x, y_train=y)
    content = path.read_bytes()
    assert data_fingerprint(path) == hashlib.sha256(content).hexdigest()[:16]
    assert data_fingerprint(path) == data_fingerprint(path)
    changed = bytearray(content)
    changed[-100] ^= 1
    copy = tmp_path / "b.npz"
    copy.write_bytes(bytes(changed))
    assert data_fingerprint(copy) != data_fingerprint(path)


def test_folder_fingerprint_follows_bytes_and_names(tmp_path):
    root = write_picture_folder(tmp_path / "pets")
    before = data_fingerprint(root)
    assert data_fingerprint(str(root)) == before
    picture = root / "cat" / "2.png"
    content = bytearray(picture.read_bytes())
    content[-5] ^= 1
    picture.write_bytes(bytes(content))
    after = data_fingerprint(root)
    assert after != before
    picture.rename(root / "cat" / "9.png")
    assert data_fingerprint(root) != after
    with pytest.raises(DatasetNotFoundError):
        data_fingerprint(tmp_path / "nowhere")


def test_arrays_fingerprint_follows_values_shapes_and_dtypes():
    x, y = balanced_arrays()
    first = arrays_fingerprint(from_arrays(x, y))
    assert arrays_fingerprint(from_arrays(x.copy(), y.copy())) == first
    changed = x.copy()
    changed[0, 0, 0, 0] ^= 1
    assert arrays_fingerprint(from_arrays(changed, y)) != first
    assert arrays_fingerprint(from_arrays(x.reshape(40, 16), y)) != first
    assert len(first) == 16 and int(first, 16) >= 0


# --- from Python ----------------------------------------------------------------------------


def test_from_arrays_accepts_lists_and_text_labels():
    x = [[float(i), float(i % 3)] for i in range(30)]
    y = ["red", "green", "blue"] * 10
    data = from_arrays(x, y, x_test=x[:3], y_test=y[:3], name="colours")
    assert data.class_names == ("blue", "green", "red") and data.num_classes == 3
    assert data.y_test.tolist() == [2, 1, 0] and data.input_shape == (2,)
    assert data.name == "colours" and data.source == "arrays (Python)"
    assert sorted(data.y_val.tolist()) == [0, 1, 2]


@pytest.mark.parametrize(
    ("x", "y", "match"),
    [
        (np.zeros(10), np.zeros(10), r"at least 2 dimensions.*reshape\(-1, 1\)"),
        (np.array([["a", "b"]] * 10), np.zeros(10), r"must hold numbers.*<U1"),
        (np.full((10, 2), np.nan), np.zeros(10), r"20 NaN or infinite"),
        ([[1, 2], [3]], [0, 1], r"cannot be made into one array"),
    ],
)
def test_from_arrays_refusals(x, y, match):
    with pytest.raises(DatasetFormatError, match=match):
        from_arrays(x, y)


def test_from_arrays_label_kinds_must_agree():
    x, y = balanced_arrays()
    with pytest.raises(DatasetFormatError, match="y_val labels.*differ from y_train"):
        from_arrays(x, y, x_val=x[:4], y_val=y[:4].astype(np.float32))


@pytest.mark.parametrize("batch", [None, 7])
def test_from_tf_dataset_batched_or_not(batch):
    tf = pytest.importorskip("tensorflow")
    x, y = balanced_arrays()
    train = tf.data.Dataset.from_tensor_slices((x, y))
    test = tf.data.Dataset.from_tensor_slices((x[:5], y[:5]))
    if batch:
        train, test = train.batch(batch), test.batch(batch)
    data = from_tf_dataset(train, test=test, seed=1)
    expected = from_arrays(x, y, x_test=x[:5], y_test=y[:5], seed=1)
    np.testing.assert_array_equal(data.x_train, expected.x_train)
    np.testing.assert_array_equal(data.y_val, expected.y_val)
    np.testing.assert_array_equal(data.x_test, expected.x_test)
    assert data.name == "tf.data" and data.input_shape == (4, 4, 1) and data.num_classes == 4


def test_from_tf_dataset_with_a_known_batch_size_is_told_it_is_batched():
    tf = pytest.importorskip("tensorflow")
    x, y = balanced_arrays()
    train = tf.data.Dataset.from_tensor_slices((x, y)).batch(8, drop_remainder=True)
    data = from_tf_dataset(train, batched=True, validation_fraction=0.0)
    assert data.x_train.shape == (40, 4, 4, 1) and data.num_classes == 4


def test_from_tf_dataset_refusals():
    tf = pytest.importorskip("tensorflow")
    x, y = balanced_arrays()
    with pytest.raises(TypeError, match="expected a tf.data.Dataset.*from_arrays"):
        from_tf_dataset((x, y))
    with pytest.raises(DatasetFormatError, match=r"must yield \(x, y\) pairs"):
        from_tf_dataset(tf.data.Dataset.from_tensor_slices(x))
    with pytest.raises(DatasetFormatError, match="is empty"):
        from_tf_dataset(tf.data.Dataset.from_tensor_slices((x, y)).take(0))
    with pytest.raises(DatasetFormatError, match="repeats forever"):
        from_tf_dataset(tf.data.Dataset.from_tensor_slices((x, y)).repeat())
