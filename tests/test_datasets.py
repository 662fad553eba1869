"""Dataset loaders on tiny files in the real formats, their errors, and (marked) the real data."""

from __future__ import annotations

import gzip
import pickle

import numpy as np
import pytest

import datasets
from datasets import fashion_mnist
from datasets.idx import write_idx
from datasets.splits import stratified_split, stratified_subset
from tests.conftest import REAL_DATA_DIRS, real_data_dir, write_cifar10, write_fashion_mnist


def test_fashion_mnist_loads_splits_and_scales(tiny_data_dir):
    data = datasets.load("fashion_mnist", data_dir=tiny_data_dir)
    assert (len(data.x_train), len(data.x_val), len(data.x_test)) == (54, 6, 20)
    assert data.x_train.dtype == np.float32 and data.x_train.shape[1:] == (28, 28, 1)
    assert 0.0 <= data.x_train.min() and data.x_train.max() <= 1.0
    assert data.input_shape == (28, 28, 1) and data.num_classes == 10
    assert data.class_names[0] == "T-shirt/top"
    assert data.source == str(tiny_data_dir / "fashion-mnist")
    # Stratified: the 6 validation images are 6 different classes out of 10 balanced ones.
    assert np.bincount(data.y_val, minlength=10).max() == 1


def test_cifar10_loads_from_batches_and_archive(tiny_data_dir, tmp_path):
    data = datasets.load("cifar10", data_dir=tiny_data_dir)
    assert (len(data.x_train), len(data.x_val), len(data.x_test)) == (45, 5, 20)
    assert data.input_shape == (32, 32, 3) and data.class_names[3] == "cat"
    import tarfile

    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as handle:
        handle.add(tiny_data_dir / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    from_archive = datasets.load("cifar10", data_dir=tmp_path)
    np.testing.assert_array_equal(from_archive.x_train, data.x_train)
    assert from_archive.source.endswith("cifar-10-python.tar.gz")


def test_cifar10_rows_are_channel_first(tmp_path):
    write_cifar10(tmp_path)
    with open(tmp_path / "cifar-10-batches-py" / "test_batch", "rb") as handle:
        batch = pickle.load(handle, encoding="bytes")
    data = datasets.load("cifar10", data_dir=tmp_path, validation_fraction=0.1)
    first = np.asarray(batch[b"data"][0], dtype=np.float32).reshape(3, 32, 32) / 255.0
    np.testing.assert_allclose(data.x_test[0], first.transpose(1, 2, 0))


def test_split_is_seeded_and_disjoint(tiny_data_dir):
    a = datasets.load("fashion_mnist", data_dir=tiny_data_dir, seed=3)
    b = datasets.load("fashion_mnist", data_dir=tiny_data_dir, seed=3)
    c = datasets.load("fashion_mnist", data_dir=tiny_data_dir, seed=4)
    np.testing.assert_array_equal(a.x_val, b.x_val)
    assert not np.array_equal(a.y_val, c.y_val) or not np.array_equal(a.x_val, c.x_val)
    train_rows = {row.tobytes() for row in a.x_train}
    assert not any(row.tobytes() in train_rows for row in a.x_val)


def test_stratified_helpers_count_exactly():
    labels = np.repeat(np.arange(10), 6000)
    kept, held = stratified_split(labels, 0.1, seed=0)
    assert (len(kept), len(held)) == (54000, 6000)
    assert np.bincount(labels[held]).tolist() == [600] * 10
    subset = stratified_subset(labels, 1000, seed=0)
    assert len(subset) == 1000 and np.bincount(labels[subset]).tolist() == [100] * 10
    assert len(stratified_subset(labels, 0.5, seed=0)) == 30000
    assert len(stratified_subset(labels, None, seed=0)) == 60000


def test_subset_option_is_stratified(tiny_data_dir):
    data = datasets.load("fashion_mnist", data_dir=tiny_data_dir, subset=30, test_subset=10)
    assert len(data.x_train) + len(data.x_val) == 30 and len(data.x_test) == 10
    assert (
        np.bincount(np.concatenate([data.y_train, data.y_val]), minlength=10).tolist() == [3] * 10
    )


def test_environment_variable_is_searched(tiny_data_dir, monkeypatch):
    monkeypatch.setenv("HPSEARCH_DATA_DIR", f"/nonexistent:{tiny_data_dir}")
    assert datasets.load("fashion_mnist").source == str(tiny_data_dir / "fashion-mnist")


def test_unknown_dataset_lists_valid_names():
    with pytest.raises(ValueError) as error:
        datasets.load("mnist")
    assert str(error.value) == (
        "Unknown dataset 'mnist'. Expected one of: "
        + ", ".join(datasets.available_datasets())
        + "."
    )


def test_missing_dataset_lists_every_place_tried(tmp_path, monkeypatch):
    monkeypatch.setattr(fashion_mnist, "DEBIAN_DIR", tmp_path / "debian")
    with pytest.raises(datasets.DatasetNotFoundError) as error:
        datasets.load("fashion_mnist", data_dir=tmp_path / "mine")
    message = str(error.value)
    assert (
        message.splitlines()[0] == "Dataset 'fashion_mnist' was not found. Places tried, in order:"
    )
    assert f"  - {tmp_path / 'mine'} (and its subfolders" in message
    assert f"  - {tmp_path / 'debian'} (Debian package dataset-fashion-mnist)" in message
    assert "keras-home/datasets/fashion-mnist (Keras cache)" in message
    assert "Keras download (turned off by HPSEARCH_NO_DOWNLOAD or download=False)" in message
    assert "apt-get install dataset-fashion-mnist" in message
    assert "--data-dir DIR" in message


def test_missing_cifar10_says_how_to_prepare_it(tmp_path):
    with pytest.raises(datasets.DatasetNotFoundError) as error:
        datasets.load("cifar10", data_dir=tmp_path)
    assert "prepare.py" in str(error.value)


def test_wrong_magic_number_names_the_file(tmp_path):
    write_fashion_mnist(tmp_path)
    labels = tmp_path / "train-labels-idx1-ubyte.gz"
    images = tmp_path / "train-images-idx3-ubyte.gz"
    labels.rename(tmp_path / "swap")
    images.rename(labels)
    (tmp_path / "swap").rename(images)
    with pytest.raises(datasets.DatasetFormatError) as error:
        datasets.load("fashion_mnist", data_dir=tmp_path)
    assert str(error.value) == (
        f"{tmp_path / 'train-images-idx3-ubyte.gz'} has magic number 2049, expected 2051 for an IDX "
        "images file. Check that the images and labels files are not swapped or from another dataset."
    )


def test_truncated_file_is_reported(tmp_path):
    write_fashion_mnist(tmp_path)
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    raw = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(raw[:-100]))
    with pytest.raises(datasets.DatasetFormatError) as error:
        datasets.load("fashion_mnist", data_dir=tmp_path)
    assert "the file is truncated or corrupt" in str(error.value)
    assert str(path) in str(error.value)


def test_corrupt_gzip_is_reported(tmp_path):
    write_fashion_mnist(tmp_path)
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(datasets.DatasetFormatError) as error:
        datasets.load("fashion_mnist", data_dir=tmp_path)
    assert str(error.value).startswith(f"Cannot read {path}:")


def test_mismatched_counts_are_reported(tmp_path):
    write_fashion_mnist(tmp_path)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.zeros(7, dtype=np.uint8))
    with pytest.raises(datasets.DatasetFormatError) as error:
        datasets.load("fashion_mnist", data_dir=tmp_path)
    assert "holds 7 labels but" in str(error.value) and "do not belong together" in str(error.value)


def test_corrupt_cifar_batch_is_reported(tmp_path):
    write_cifar10(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").write_bytes(b"not a pickle")
    with pytest.raises(datasets.DatasetFormatError) as error:
        datasets.load("cifar10", data_dir=tmp_path)
    assert "data_batch_3 is not a readable CIFAR-10 python batch" in str(error.value)


def test_idx_files_are_read_by_content_not_by_name(tmp_path):
    """Gzipped files without .gz and plain files named .gz: both are read, and counted."""
    source = write_fashion_mnist(tmp_path / "source")
    renamed = tmp_path / "renamed"
    renamed.mkdir()
    for key, stem in fashion_mnist.FILES.items():
        packed = (source / f"{stem}.gz").read_bytes()
        if key.startswith("x"):  # gzip data under the plain name
            (renamed / stem).write_bytes(packed)
        else:  # plain data under the .gz name
            (renamed / f"{stem}.gz").write_bytes(gzip.decompress(packed))
    expected = datasets.load("fashion_mnist", data_dir=source)
    data = datasets.load("fashion_mnist", data_dir=renamed)
    np.testing.assert_array_equal(data.x_train, expected.x_train)
    np.testing.assert_array_equal(data.y_test, expected.y_test)
    assert datasets.locate("fashion_mnist", data_dir=renamed).startswith(
        "fashion_mnist: 60 train / 20 test images")


def test_locate_checks_the_headers_it_counts(tmp_path):
    write_fashion_mnist(tmp_path)
    labels = tmp_path / "train-labels-idx1-ubyte.gz"
    packed = bytearray(labels.read_bytes())
    packed[12:40] = bytes(byte ^ 0x5A for byte in packed[12:40])  # corrupt deflate data
    labels.write_bytes(bytes(packed))
    with pytest.raises(datasets.DatasetFormatError, match=f"Cannot read {labels}"):
        datasets.locate("fashion_mnist", data_dir=tmp_path)
    write_fashion_mnist(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(
        (tmp_path / "t10k-images-idx3-ubyte.gz").read_bytes())
    with pytest.raises(datasets.DatasetFormatError, match="magic number 2051, expected 2049"):
        datasets.locate("fashion_mnist", data_dir=tmp_path)


def test_a_clone_of_the_fashion_mnist_repository_is_found(tmp_path):
    write_fashion_mnist(tmp_path / "fashion-mnist" / "data" / "fashion")
    for data_dir in (tmp_path, tmp_path / "fashion-mnist"):
        data = datasets.load("fashion_mnist", data_dir=data_dir)
        assert len(data.x_test) == 20


def test_a_corrupt_cifar_archive_is_reported(tmp_path):
    import tarfile

    write_cifar10(tmp_path / "batches")
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as handle:
        handle.add(tmp_path / "batches" / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    packed = bytearray(archive.read_bytes())
    packed[12:200] = bytes(byte ^ 0x5A for byte in packed[12:200])  # corrupt deflate data
    archive.write_bytes(bytes(packed))
    with pytest.raises(datasets.DatasetFormatError) as error:
        datasets.load("cifar10", data_dir=archive)
    assert f"Cannot read archive {archive}" in str(error.value)
    assert "download cifar-10-python.tar.gz again" in str(error.value)


def test_not_found_names_incomplete_and_unreadable_copies(tmp_path):
    write_fashion_mnist(tmp_path / "fashion")
    (tmp_path / "fashion" / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(datasets.DatasetNotFoundError) as error:
        datasets.load("fashion_mnist", data_dir=tmp_path / "fashion")
    assert (f"{tmp_path / 'fashion'} holds only 3 of the 4 files: missing "
            "t10k-labels-idx1-ubyte.gz") in str(error.value)
    write_cifar10(tmp_path / "cifar")
    (tmp_path / "cifar" / "cifar-10-batches-py" / "data_batch_5").unlink()
    (tmp_path / "cifar" / "cifar-10-batches-bin").mkdir()
    with pytest.raises(datasets.DatasetNotFoundError) as error:
        datasets.load("cifar10", data_dir=tmp_path / "cifar")
    message = str(error.value)
    assert "holds only some of the batches: missing data_batch_5" in message
    assert "cifar-10-batches-bin is the binary version, which is not read" in message


@pytest.mark.slow
def test_fashion_mnist_is_found_where_a_keras_download_leaves_it(tmp_path, monkeypatch):
    source = write_fashion_mnist(tmp_path / "origin")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras-home"))
    monkeypatch.setattr(fashion_mnist, "_KERAS_ORIGIN", source.as_uri() + "/")
    monkeypatch.setattr(fashion_mnist, "DEBIAN_DIR", tmp_path / "no-debian")
    found, _ = fashion_mnist.locate(None, download=True)
    assert found["x_train"].parent == tmp_path / "keras-home" / "datasets" / "fashion-mnist"
    assert fashion_mnist.locate(None, download=False)[0] == found


@pytest.mark.slow
def test_cifar10_is_found_where_a_keras_download_leaves_it(tmp_path, monkeypatch):
    """Keras 3's get_file(untar=True) extracts the archive's own cifar-10-batches-py/ folder
    inside the one it names; the download and every later search find the batches there."""
    import tarfile

    from datasets import cifar10

    write_cifar10(tmp_path / "batches")
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as handle:
        handle.add(tmp_path / "batches" / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras-home"))
    monkeypatch.setattr(cifar10, "_KERAS_ORIGIN", archive.as_uri())
    cifar10.locate.__globals__["_read"].cache_clear()
    found, _ = cifar10.locate(None, download=True)
    assert (found / "data_batch_1").is_file()
    again, _ = cifar10.locate(None, download=False)
    assert again == found
    assert len(datasets.load("cifar10", download=False).x_test) == 20


@pytest.mark.integration
def test_real_fashion_mnist_and_cifar10():
    fashion_dir, cifar_dir = real_data_dir("fashion-mnist"), None
    for directory in REAL_DATA_DIRS:
        if (directory / "cifar-10-batches-py").exists() or (
            directory / "cifar10" / "cifar-10-batches-py"
        ).exists():
            cifar_dir = directory
    if fashion_dir is None or cifar_dir is None:
        pytest.skip("HPSEARCH_DATA_DIR does not hold the real Fashion-MNIST and CIFAR-10")
    for name, data_dir, sizes, shape in (
        ("fashion_mnist", fashion_dir, (54000, 6000, 10000), (28, 28, 1)),
        ("cifar10", cifar_dir, (45000, 5000, 10000), (32, 32, 3)),
    ):
        data = datasets.load(name, data_dir=data_dir)
        assert (len(data.x_train), len(data.x_val), len(data.x_test)) == sizes
        assert data.input_shape == shape and data.x_train.dtype == np.float32
        assert np.bincount(data.y_val).tolist() == [sizes[1] // 10] * 10
        assert np.bincount(data.y_test).tolist() == [1000] * 10
        sample = {row.tobytes() for row in data.x_train[::9]}
        assert not any(row.tobytes() in sample for row in data.x_val[:1000])
