"""Kernel (Inception) distance (KID; Binkowski et al., 2018).

The unbiased estimate of the squared MMD with the cubic polynomial kernel

    k(a, b) = (a . b / d + 1)^3,

on `m` real features `x` and `m` generated features `y`,

    MMD^2_u = 1/(m(m-1)) sum_{i != j} [k(x_i, x_j) + k(y_i, y_j)]
              - 2/m^2 sum_{i, j} k(x_i, y_j),

averaged over `subsets` random subsets of size `m = subset_size` drawn
without replacement from each set (torch-fidelity's and the paper's
protocol: 100 subsets of 1000). The standard deviation over subsets is
reported too (population, `ddof=0`, as torch-fidelity).

KID needs all features, not streaming sums: they are kept in a growing
float32 buffer (`tf.Variable` of dynamic shape), eagerly and in
`tf.function`: `n d` floats per set when `capacity=n` is given, else the
capacity doubles when full and the process keeps several times that (see
`FeatureBuffer`). Subsets are
drawn with stateless random numbers from `seed`, so `result()` has no side
effect and gives the same value on the same features; `subset_indices`
returns them. Dot products are float32 matrix products (the features'
precision); kernel values and sums are float64.
"""

import keras
import numpy as np
import tensorflow as tf

from sig_keras.metrics.feature_metric import StoredFeatureMetric
from sig_keras.utils import validation


def _offdiag_sum(k):
    return tf.reduce_sum(k) - tf.reduce_sum(tf.linalg.diag_part(k))


@tf.function(jit_compile=True, reduce_retracing=True)
def unbiased_mmd2(x, y):
    """Unbiased MMD^2 of two `[m, d]` float32 sets, kernel `(a.b / d + 1)^3`.

    Dot products in float32, kernel values and sums in float64. Compiled with
    XLA, which fuses the cast, the cube and the sums into one pass over each
    `m x m` kernel matrix instead of one pass per op.
    """
    d = tf.cast(tf.shape(x)[1], tf.float64)
    m = tf.cast(tf.shape(x)[0], tf.float64)

    def kernel(a, b):
        t = tf.cast(tf.matmul(a, b, transpose_b=True), tf.float64) / d + 1.0
        return t * t * t  # not `** 3`: tf.pow is much slower here

    return ((_offdiag_sum(kernel(x, x)) + _offdiag_sum(kernel(y, y))) / (m * (m - 1.0))
            - 2.0 * tf.reduce_sum(kernel(x, y)) / (m * m))


@keras.saving.register_keras_serializable(package="sig_keras")
class KernelDistance(StoredFeatureMetric):
    """Kernel (Inception) distance: `update_state(real, generated)`, `result()`.

    `result()` returns `{"kid": mean, "kid_std": std}` over subsets, float32.
    Fewer samples than `subset_size` in either set raise `ValueError` (eager
    mode; a failing assertion in a graph). Features are kept (see the module
    docstring): `reset_state()` empties the buffers. `save_reference(path)`
    writes the real `features`; `reference_stats=path` loads them.

    Reference: Binkowski et al., "Demystifying MMD GANs", ICLR 2018.

    Args:
        feature_extractor: None (InceptionV3 pool features), "identity", a
            Keras model or a callable `images -> [n, d]`.
        subsets: int. Number of random subsets. Defaults to 100.
        subset_size: int. Samples per subset and set. Defaults to 1000.
        seed: int. Seed of the subset draws. Defaults to 0.
        num_features: int or None. `d`; inferred from the extractor if None.
        reference_stats: None, or a `.npz` path / dict with real `features`.
        input_range: pair. Pixel range for the default extractor.
        capacity: int or None. Samples per set to allocate room for up
            front (see `FeatureBuffer`): with the number you will feed, the
            features take `capacity * d` floats per set; without it the
            buffers double as they fill, and the process keeps several
            times as much. Defaults to None.

    Example:
    >>> kid = KernelDistance(feature_extractor="identity", num_features=64,
    ...                      subsets=10, subset_size=100)
    >>> kid.update_state(real_features, generated_features)
    >>> kid.result()["kid"]
    """

    def __init__(self, feature_extractor=None, subsets=100, subset_size=1000, seed=0,
                 num_features=None, reference_stats=None, input_range=(-1.0, 1.0),
                 capacity=None, name="kernel_distance", **kwargs):
        self.subsets = validation.check_int(subsets, "subsets", minimum=1)
        self.subset_size = validation.check_int(subset_size, "subset_size", minimum=2)
        self.seed = validation.check_int(seed, "seed")
        super().__init__(feature_extractor=feature_extractor, num_features=num_features,
                         reference_stats=reference_stats, input_range=input_range,
                         capacity=capacity, name=name, **kwargs)

    def _check_counts(self, num_real, num_generated):
        if tf.executing_eagerly():
            for role, count in (("real", num_real), ("generated", num_generated)):
                if int(count) < self.subset_size:
                    raise ValueError(
                        f"KID needs at least subset_size={self.subset_size} {role} "
                        f"samples; got {int(count)}. Feed more samples or lower "
                        "`subset_size`."
                    )
            return []
        enough = (num_real >= self.subset_size) & (num_generated >= self.subset_size)
        return [tf.debugging.Assert(enough, [
            "KID needs at least subset_size samples per set; got", num_real, num_generated])]

    def _indices(self, n, subset, stream):
        """`subset_size` distinct indices of `range(n)` (stateless draw)."""
        keys = tf.random.stateless_uniform(
            [n], seed=tf.stack([tf.constant(self.seed, tf.int32), subset * 2 + stream]))
        return tf.math.top_k(keys, self.subset_size, sorted=False).indices

    def subset_indices(self, num_real, num_generated):
        """The index arrays `([subsets, m], [subsets, m])` that `result()` uses."""
        real = [self._indices(num_real, tf.constant(s), 0).numpy() for s in range(self.subsets)]
        gen = [self._indices(num_generated, tf.constant(s), 1).numpy()
               for s in range(self.subsets)]
        return np.stack(real), np.stack(gen)

    def _subset_mmd(self, num_real, num_generated, subset):
        # Rows gathered straight from the buffer variables: no copy of all features.
        x = tf.gather(self.real_features.data, self._indices(num_real, subset, 0))
        y = tf.gather(self.generated_features.data, self._indices(num_generated, subset, 1))
        return unbiased_mmd2(x, y)

    def result(self):
        num_real = tf.convert_to_tensor(self.real_features.count)
        num_generated = tf.convert_to_tensor(self.generated_features.count)
        checks = self._check_counts(num_real, num_generated)
        with tf.control_dependencies(checks):
            mmds = tf.map_fn(
                lambda s: self._subset_mmd(num_real, num_generated, s),
                tf.range(self.subsets, dtype=tf.int32),
                fn_output_signature=tf.float64, parallel_iterations=1)
        return {
            "kid": tf.cast(tf.reduce_mean(mmds), tf.float32),
            "kid_std": tf.cast(tf.math.reduce_std(mmds), tf.float32),
        }

    # === Config ===

    def get_config(self):
        config = super().get_config()
        config.update({"subsets": self.subsets, "subset_size": self.subset_size,
                       "seed": self.seed})
        return config
