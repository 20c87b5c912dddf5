"""Image grids of generated samples, as arrays and as PNG files."""

import math
import os

import numpy as np
import tensorflow as tf


def image_grid(images, rows=None, data_range=(-1.0, 1.0)):
    """`[N, H, W, C]` images in `data_range` -> one `[rows*H, cols*W, C]` grid in [0, 1].

    Missing cells (when `rows * cols > N`) are black. C must be 1 or 3.
    """
    images = np.asarray(images, np.float32)
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise ValueError(f"Images must have shape [N, H, W, 1 or 3]; got {images.shape}.")
    low, high = data_range
    images = np.clip((images - low) / (high - low), 0.0, 1.0)
    n, h, w, c = images.shape
    rows = int(rows) if rows else int(math.ceil(math.sqrt(n)))
    cols = int(math.ceil(n / rows))
    grid = np.zeros((rows * h, cols * w, c), np.float32)
    for i in range(n):
        r, col = divmod(i, cols)
        grid[r * h:(r + 1) * h, col * w:(col + 1) * w] = images[i]
    return grid


def save_image_grid(path, images, rows=None, data_range=(-1.0, 1.0)):
    """Writes `image_grid(images)` as a PNG file."""
    grid = image_grid(images, rows, data_range)
    png = tf.io.encode_png(tf.cast(tf.round(grid * 255.0), tf.uint8))
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    tf.io.write_file(path, png)
    return path
