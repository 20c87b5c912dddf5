"""`ImageSummary`: a grid of generated samples in TensorBoard every N steps."""

import os

import keras
import numpy as np
import tensorflow as tf

from sig_keras.utils import validation
from sig_keras.utils.image_grid import image_grid


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
        self.every_n_steps = validation.check_int(every_n_steps, "every_n_steps", minimum=1)
        self.num_images = validation.check_int(num_images, "num_images", minimum=1)
        self.seed = validation.check_int(seed, "seed")
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
