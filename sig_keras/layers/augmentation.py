"""Augmentation for the discriminator's input, active in training only."""

import keras
import tensorflow as tf

from sig_keras.utils import validation


@keras.saving.register_keras_serializable(package="sig_keras")
class RandomChannelPermutation(keras.layers.Layer):
    """Permutes the channels of each image by its own random permutation.

    In training (`training=True`) each image of the batch is, with
    probability `rate`, given a uniformly random permutation of its
    channels; the others pass unchanged. In inference it is the identity.

    Use it only for data whose distribution does not change when the
    channels are permuted, such as Stacked MNIST, where each channel holds an
    independent digit. Put in front of a GAN's discriminator, it shows the
    discriminator every channel's content at every channel position, so the
    discriminator cannot look at one channel and ignore another: with
    Appendix C's 8-filter first layer, a discriminator that barely reads one
    channel lets the generator draw blobs there (docs/gan_si.md). Real images
    stay samples of the data. With `rate < 1` the augmentation is invertible
    (the identity keeps weight `1 - rate`), so the generator cannot match
    the augmented data with a distribution other than the data's, such as
    one with the digits of each image sorted by channel; with `rate = 1` it
    could.

    Args:
        rate: float in [0, 1]. Probability that an image is permuted.
            Defaults to 0.5.
        seed: int or None. Seed of the layer's `SeedGenerator`.

    Example:
    >>> d = keras.Sequential([RandomChannelPermutation(seed=0),
    ...                       sig_keras.networks.mnist3_discriminator("M")])
    """

    def __init__(self, rate=0.5, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.rate = validation.check_float(rate, "rate", 0.0, 1.0)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs, training=None):
        if not training or self.rate == 0.0:
            return inputs
        channels = inputs.shape[-1]
        batch = tf.shape(inputs)[0]
        # argsort of i.i.d. uniforms: a uniformly random permutation per image.
        keys = keras.random.uniform((batch, channels), seed=self.seed_generator)
        perm = tf.argsort(keys, axis=-1, stable=True)
        if self.rate < 1.0:
            draw = keras.random.uniform((batch, 1), seed=self.seed_generator)
            perm = tf.where(draw < self.rate, perm, tf.range(channels)[None, :])
        return tf.gather(inputs, perm, axis=-1, batch_dims=1)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"rate": self.rate, "seed": self.seed})
        return config
