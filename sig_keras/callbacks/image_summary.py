"""Image grids of generated samples: a TensorBoard callback and PNG helpers."""

import math
import os

import keras
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


class ImageSummary(keras.callbacks.Callback):
    """Writes a grid of generated images to TensorBoard every `every_n_steps`.

    The noise is drawn once from `seed` (`model.draw_noise(num_images, seed)`),
    so successive grids show the same latent points. The step is the model's
    optimizer `iterations` (generator steps for GANs). Summaries are written
    from the callback, outside the (possibly jitted) train step.

    Args:
        log_dir: str. TensorBoard directory; images go to `log_dir/images`.
        every_n_steps: int. Defaults to 500.
        num_images: int. Defaults to 64.
        seed: int. Seed of the fixed noise. Defaults to 0.
        data_range: pair. Range of generated images. Defaults to (-1, 1).
        name: str. Summary tag. Defaults to "samples".

    Example:
    >>> model.fit(ds, steps_per_epoch=1000,
    ...           callbacks=[ImageSummary("logs/run1", every_n_steps=200)])
    """

    def __init__(self, log_dir, every_n_steps=500, num_images=64, seed=0,
                 data_range=(-1.0, 1.0), name="samples"):
        super().__init__()
        self.log_dir = str(log_dir)
        self.every_n_steps = int(every_n_steps)
        if self.every_n_steps < 1:
            raise ValueError(f"`every_n_steps` must be >= 1; got {every_n_steps}.")
        self.num_images = int(num_images)
        if self.num_images < 1:
            raise ValueError(f"`num_images` must be >= 1; got {num_images}.")
        self.seed = int(seed)
        self.data_range = tuple(float(v) for v in data_range)
        self.name = str(name)
        self._noise = None
        self._writer = None

    def _step(self):
        return int(np.asarray(self.model.optimizer.iterations.numpy()))

    def write(self, step=None):
        """Writes one grid now (at `step`, default the current step)."""
        if self._noise is None:
            self._noise = self.model.draw_noise(self.num_images, seed=self.seed)
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(os.path.join(self.log_dir, "images"))
        step = self._step() if step is None else int(step)
        images = keras.ops.convert_to_numpy(self.model.generator(self._noise, training=False))
        grid = image_grid(images, data_range=self.data_range)
        # Keras' TensorBoard callback installs a global `record_if` (every
        # `update_freq` steps) that would drop grids between them.
        with self._writer.as_default(), tf.summary.record_if(True):
            tf.summary.image(self.name, grid[None], step=step)
        self._writer.flush()

    def on_train_begin(self, logs=None):
        self._noise = self.model.draw_noise(self.num_images, seed=self.seed)

    def on_train_batch_end(self, batch, logs=None):
        step = self._step()
        if step % self.every_n_steps == 0:
            self.write(step)

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None
