"""Synchronized batch normalization with one all-reduce per call."""

import keras
import tensorflow as tf

from sig_keras.distribute import reduction


@keras.saving.register_keras_serializable(package="sig_keras")
class SyncBatchNormalization(keras.layers.BatchNormalization):
    """`BatchNormalization(synchronized=True)` with one all-reduce per call.

    Under a distribution strategy the batch statistics are those of the global
    batch, as with Keras' synchronized batch norm, but the per-channel sum and
    sum of squares travel in a single all-reduce (Keras 3.15 issues three: sum,
    sum of squares and count). The count is static for static shapes; with a
    dynamic batch it joins the same all-reduce. Each collective is a fixed
    cost per step (a merge on CPUs, a kernel launch with NCCL, a network round
    trip across workers); a GAN step of the DCGAN (32x32) or MNIST-3 networks
    makes 9 or 10 batch-norm calls (the generator once, the discriminator
    three times).

    The sums are taken around the moving mean (a mirrored variable, the same
    on every replica): `var = E[(x - m)^2] - E[x - m]^2` does not lose the
    variance to cancellation once `m` tracks the data mean, where the plain
    `E[x^2] - E[x]^2` does for data far from zero.

    Outside a strategy, with one replica, with a mask or in inference, it is
    `keras.layers.BatchNormalization`. Takes the same arguments; `synchronized`
    is always True.

    Example:
    >>> h = SyncBatchNormalization()(keras.layers.Conv2D(64, 4)(inputs))
    """

    def __init__(self, **kwargs):
        if not kwargs.pop("synchronized", True):
            raise ValueError(
                "SyncBatchNormalization is always synchronized; use "
                "keras.layers.BatchNormalization for per-replica statistics."
            )
        super().__init__(synchronized=True, **kwargs)

    def _moments(self, inputs, mask):
        replicas = reduction.num_replicas()
        if mask is not None or replicas == 1:
            return super()._moments(inputs, mask)
        axes = self._reduction_axes
        shift = tf.stop_gradient(tf.cast(self.moving_mean, inputs.dtype))
        centered = inputs - shift
        sums = [
            tf.reduce_sum(centered, axis=axes),
            tf.reduce_sum(tf.square(centered), axis=axes),
        ]
        if inputs.shape.is_fully_defined():
            local_count = inputs.shape.num_elements() // sums[0].shape.num_elements()
            total, total_sq = tf.unstack(reduction.all_reduce_sum(tf.stack(sums)))
            count = tf.constant(float(local_count * replicas), inputs.dtype)
        else:
            local_count = tf.cast(tf.size(inputs) // tf.size(sums[0]), inputs.dtype)
            sums.append(tf.fill(tf.shape(sums[0]), local_count))
            total, total_sq, count = tf.unstack(reduction.all_reduce_sum(tf.stack(sums)))
        centered_mean = tf.math.divide_no_nan(total, count)
        variance = tf.maximum(
            tf.math.divide_no_nan(total_sq, count) - tf.square(centered_mean), 0.0
        )
        return shift + centered_mean, variance

    def get_config(self):
        config = super().get_config()
        config.pop("synchronized", None)
        return config
