"""The clock training pipeline: shuffled, augmented batches and the auxiliary geometry targets.

Augmentation turns every training clock by any angle (a turned clock shows the same time) and
changes its brightness and contrast; the image-frame directions of the 12 and the hands, when the
data has them, turn with it and become the targets of the auxiliary geometry output.
"""
from __future__ import annotations

import math

import keras
import numpy as np

from search_spaces.clock_heads import GEOMETRY_OUTPUT

# The renderer's geometry columns of the twelve o'clock mark, the hour hand and the minute hand
# (datasets.clock_render.GEOMETRY_COLUMNS 2-4): radians clockwise from up in the image frame.
GEOMETRY_ANGLE_COLUMNS = slice(2, 5)


def training_dataset(x: np.ndarray, targets, batch_size: int, augment: bool,
                     angles: np.ndarray | None = None):
    """Shuffled, batched, optionally augmented training data (a ``tf.data.Dataset``).

    Args:
        x: float32 images (N, H, W, 1) in [0, 1].
        targets: the head's encoded targets (an array or a dict of arrays, one row per image).
        batch_size: images per batch.
        augment: rotate each batch by random angles and change its brightness and contrast.
        angles: optional, see below.

    With ``angles`` ((N, 3) image-frame directions, radians clockwise from up), the targets get a
    ``geometry`` entry: sin and cos of those directions, after the batch's rotation.
    """
    import tensorflow as tf  # The input pipeline is tf.data whatever the Keras backend.

    images = tf.constant(x)
    target_tensors = tf.nest.map_structure(tf.constant, targets)
    angle_tensor = None if angles is None else tf.constant(angles, dtype=tf.float32)
    count = len(x)
    dataset = tf.data.Dataset.range(count).shuffle(count, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size)

    def gather(index):
        batch_angles = (tf.zeros([tf.shape(index)[0], 3]) if angle_tensor is None
                        else tf.gather(angle_tensor, index))
        return (tf.gather(images, index),
                tf.nest.map_structure(lambda t: tf.gather(t, index), target_tensors), batch_angles)

    dataset = dataset.map(gather, num_parallel_calls=tf.data.AUTOTUNE)
    # Brightness / contrast as in lighting changes.
    photometric = [keras.layers.RandomBrightness(0.1, value_range=(0.0, 1.0)),
                   keras.layers.RandomContrast(0.2)]

    def finish(batch, batch_targets, batch_angles):
        if augment:
            # Any in-plane rotation: the rendered and real clocks are not always upright, and a
            # rotated clock shows the same time; the image-frame directions turn with it.
            rotation = tf.random.uniform([tf.shape(batch)[0]], 0.0, 2.0 * math.pi)
            batch = rotate_images(batch, rotation)
            batch_angles = batch_angles + rotation[:, None]
            for layer in photometric:
                batch = layer(batch, training=True)
            batch = tf.clip_by_value(batch, 0.0, 1.0)
        if angle_tensor is not None:
            batch_targets = dict(batch_targets)
            batch_targets[GEOMETRY_OUTPUT] = tf.concat([tf.sin(batch_angles),
                                                        tf.cos(batch_angles)], axis=1)
        return batch, batch_targets

    dataset = dataset.map(finish, num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.prefetch(tf.data.AUTOTUNE)


def rotate_images(images, angles):
    """Turn each image (N, H, W, C) clockwise by ``angles`` (N,) radians about its centre.

    Bilinear; pixels that come from outside the image repeat the nearest edge pixel (a
    reflection would add mirror-image clocks, which show other times).
    """
    import tensorflow as tf

    images = tf.convert_to_tensor(images, dtype=tf.float32)
    angles = tf.cast(tf.convert_to_tensor(angles), tf.float32)
    height = tf.cast(tf.shape(images)[1], tf.float32)
    width = tf.cast(tf.shape(images)[2], tf.float32)
    cx, cy = (width - 1.0) / 2.0, (height - 1.0) / 2.0
    cos, sin = tf.cos(angles), tf.sin(angles)
    zeros = tf.zeros_like(angles)
    # Output pixel (x, y) (y down) samples the input at the point turned back by the angle.
    transforms = tf.stack([cos, sin, cx - cos * cx - sin * cy,
                           -sin, cos, cy + sin * cx - cos * cy, zeros, zeros], axis=1)
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=images, transforms=transforms, output_shape=tf.shape(images)[1:3],
        fill_value=0.0, interpolation="BILINEAR", fill_mode="NEAREST")



def geometry_angles(geometry, count: int) -> np.ndarray:
    """The three image-frame directions (radians) of each training image from its geometry row.

    Args:
        geometry: ``Dataset.geometry_train``, (count, 5) renderer rows; None when the data has none.
        count: training images.

    Raises:
        ValueError: no geometry, or not one row of at least 5 values per image.
    """
    if geometry is None:
        raise ValueError(
            "This clock model has the auxiliary geometry output (geometry_weight > 0) but no "
            "geometry was given to fit. Pass geometry=data.geometry_train (rendered sets have it), "
            "or build the ClockHyperModel with geometry=False for data without it.")
    geometry = np.asarray(geometry, dtype=np.float32)
    if geometry.ndim != 2 or geometry.shape[0] != count or geometry.shape[1] < 5:
        raise ValueError(f"Expected geometry of shape ({count}, 5), one row per training image, "
                         f"got {geometry.shape}.")
    return geometry[:, GEOMETRY_ANGLE_COLUMNS]
