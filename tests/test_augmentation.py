"""RandomShift: the spaces' whole-pixel shift on backends other than TensorFlow."""

import keras
import numpy as np

from search_spaces._layers import RandomShift


def _dots(count: int) -> np.ndarray:
    images = np.zeros((count, 20, 30, 2), dtype=np.float32)
    images[:, 10, 15, 0] = 1.0  # one bright pixel in the middle of channel 0
    images[:, 10, 15, 1] = 2.0
    return images


def test_each_image_moves_by_whole_pixels_within_the_factor():
    layer = RandomShift(0.1, seed=3)
    shifted = keras.ops.convert_to_numpy(layer(_dots(200), training=True))
    moves = set()
    for image in shifted:
        (row,), (col,) = np.nonzero(image[:, :, 0])
        assert image[row, col, 0] == 1.0 and image[row, col, 1] == 2.0  # moved, not blurred
        assert image.sum() == 3.0
        moves.add((row - 10, col - 15))
    assert {dy for dy, _ in moves} == {-2, -1, 0, 1, 2}  # 10% of 20 rows
    assert {dx for _, dx in moves} == {-3, -2, -1, 0, 1, 2, 3}  # 10% of 30 columns


def test_pixels_shifted_out_are_dropped_and_zeros_come_in():
    images = np.ones((100, 10, 10, 1), dtype=np.float32)
    shifted = keras.ops.convert_to_numpy(RandomShift(0.2, seed=0)(images, training=True))
    assert shifted.min() == 0.0 and shifted.max() == 1.0
    assert set(np.unique(shifted.sum(axis=(1, 2, 3)))) <= {float(r * c) for r in (8, 9, 10)
                                                          for c in (8, 9, 10)}


def test_inference_and_saved_models_leave_images_as_they_are(tmp_path):
    images = _dots(4)
    layer = RandomShift(0.1, seed=1)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer(images)), images)
    inputs = keras.Input((20, 30, 2))
    model = keras.Model(inputs, keras.layers.Flatten()(RandomShift(0.1)(inputs)))
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    assert loaded.layers[1].get_config()["factor"] == 0.1
    np.testing.assert_array_equal(loaded.predict(images, verbose=0), images.reshape(4, -1))
