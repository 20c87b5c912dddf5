"""Augmentation for the discriminator's input, active in training only."""

import keras
import tensorflow as tf

from sig_keras.utils import validation


@keras.saving.register_keras_serializable(package="sig_keras")
class RandomChannelPermutation(keras.layers.Layer):
    """Permutes the channels of images by a random permutation, in training.

    In training (`training=True`) each image of the batch is, with
    probability `rate`, given a uniformly random permutation of its
    channels; the others pass unchanged. With `batchwise=True` one draw
    serves the whole batch: all its images get the same permutation (or
    none), so the batch keeps its statistics up to the order of the
    channels. In inference it is the identity.

    Use it only for data whose distribution does not change when the
    channels are permuted, such as Stacked MNIST, where each channel holds an
    independent digit. Put in front of a GAN's discriminator, it shows the
    discriminator every channel's content at every channel position, so the
    discriminator cannot look at one channel and ignore another: with
    Appendix C's 8-filter first layer, a discriminator that barely reads one
    channel lets the generator draw poor digits there (docs/gan_si.md). Real images
    stay samples of the data. With `rate < 1` the augmentation is invertible
    (the identity keeps weight `1 - rate`), so the generator cannot match
    the augmented data with a distribution other than the data's, such as
    one with the digits of each image sorted by channel; with `rate = 1` it
    could.

    A discriminator with batch norm that sees the generated batch alone
    (the DCGAN convention) tells a batch of near-copies from a varied one by
    its statistics, a signal against collapse. Permuting each image on its
    own makes copies of one image look varied to it: on Stacked MNIST with
    Appendix C's networks the generator then collapsed. `batchwise=True`
    keeps the batch statistics; there it trained without collapse, read
    every channel, and traded triples for confident ones (docs/gan_si.md).

    Under a distribution strategy every replica draws from the same seed
    state for its own slice of the batch, so a step differs from the
    one-device step on the global batch (the same permutation for image i
    of each replica's slice, where one device draws one per image).

    Args:
        rate: float in [0, 1]. Probability that an image is permuted.
            Defaults to 0.5.
        batchwise: bool. One permutation for the whole batch instead of
            one per image. Defaults to False.
        seed: int or None. Seed of the layer's `SeedGenerator`.

    Example:
    >>> d = keras.Sequential([RandomChannelPermutation(seed=0),
    ...                       sig_keras.networks.mnist3_discriminator("M")])
    """

    def __init__(self, rate=0.5, batchwise=False, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.rate = validation.check_float(rate, "rate", 0.0, 1.0)
        if not isinstance(batchwise, bool):
            raise ValueError(f"`batchwise` must be True or False; got {batchwise!r}.")
        self.batchwise = batchwise
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs, training=None):
        if not training or self.rate == 0.0:
            return inputs
        channels = inputs.shape[-1]
        batch = tf.shape(inputs)[0]
        draws = 1 if self.batchwise else batch
        # argsort of i.i.d. uniforms: a uniformly random permutation per draw.
        keys = keras.random.uniform((draws, channels), seed=self.seed_generator)
        perm = tf.argsort(keys, axis=-1, stable=True)
        if self.rate < 1.0:
            draw = keras.random.uniform((draws, 1), seed=self.seed_generator)
            perm = tf.where(draw < self.rate, perm, tf.range(channels)[None, :])
        if self.batchwise:
            return tf.gather(inputs, perm[0], axis=-1)
        return tf.gather(inputs, perm, axis=-1, batch_dims=1)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"rate": self.rate, "batchwise": self.batchwise, "seed": self.seed})
        return config
