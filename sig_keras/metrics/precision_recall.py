"""Precision, recall (Kynkaanniemi et al., 2019), density, coverage (Naeem et al., 2020).

k-NN manifolds: each real feature `x_i` gets the radius `r_i`, the distance
to its k-th nearest other real feature; each generated `y_j` likewise gets
`s_j` among the generated features. With `B(c, r)` the closed ball,

    precision = (1/M) sum_j 1[ y_j in some B(x_i, r_i) ]
    recall    = (1/N) sum_i 1[ x_i in some B(y_j, s_j) ]
    density   = 1/(k M) sum_j sum_i 1[ y_j in B(x_i, r_i) ]
    coverage  = (1/N) sum_i 1[ the nearest y_j to x_i is in B(x_i, r_i) ]

Ties count as inside (`<=`, as Kynkaanniemi et al.'s code; Naeem et al.'s
`prdc` uses `<`, which differs only on exact ties). Precision and density
measure fidelity (density can exceed 1), recall and coverage diversity: a
generator that drops half the modes keeps precision near 1 and halves
recall and coverage.

Memory: all `N` real and `M` generated features are kept (a growing float32
buffer, as in `KernelDistance`); `result()` works on float64 copies of them
and computes squared distances (`||a||^2 - 2 a.b + ||b||^2`) one block of
`block_size` rows against one whole set at a time: `O((N + M) d)` plus one
`block_size x max(N, M)` block. The blocks run in `tf.while_loop`s, so the
result can be computed inside `tf.function` too.
"""

import keras
import tensorflow as tf

from sig_keras.metrics.feature_metric import StoredFeatureMetric
from sig_keras.utils import validation


def _squared_distances(a, b, a_sq, b_sq):
    """`[n_a, n_b]` squared Euclidean distances from float64 rows and their
    squared norms, clipped at 0."""
    sq = a_sq[:, tf.newaxis] - 2.0 * tf.matmul(a, b, transpose_b=True) + b_sq[tf.newaxis, :]
    return tf.maximum(sq, 0.0)


def _as_float64(features):
    features = tf.cast(features, tf.float64)
    return features, tf.reduce_sum(tf.square(features), axis=1)


def _blocks(n, block_size, body, init):
    """Runs `state = body(start, end, state)` over row blocks of `range(n)`."""
    block_size = tf.constant(block_size, tf.int32)

    def step(start, state):
        end = tf.minimum(start + block_size, n)
        return start + block_size, body(start, end, state)

    _, state = tf.while_loop(lambda start, _: start < n, step,
                             (tf.constant(0, tf.int32), init))
    return state


def knn_squared_radii(features, k, block_size=1024):
    """Squared distance of each row to its k-th nearest other row, `[n]` float64.

    The row itself is at distance 0, so this is the (k+1)-th smallest
    distance in its row of the pairwise matrix, computed block by block.
    """
    features, norms = _as_float64(features)
    n = tf.shape(features)[0]

    def body(start, end, radii):
        sq = _squared_distances(features[start:end], features, norms[start:end], norms)
        kth = -tf.math.top_k(-sq, k + 1, sorted=True).values[:, k]
        return radii.write(radii.size(), kth)

    radii = _blocks(n, block_size, body, tf.TensorArray(tf.float64, size=0, dynamic_size=True,
                                                        infer_shape=False))
    return tf.reshape(radii.concat(), [-1])


def precision_recall_density_coverage(real, generated, k=5, block_size=1024):
    """The four measures of `[N, d]` real and `[M, d]` generated features.

    Returns a dict of float64 scalars. Needs at least `k + 1` rows per set
    (not checked here; `PrecisionRecall` checks).
    """
    real, real_sq = _as_float64(real)
    generated, gen_sq = _as_float64(generated)
    real_radii = knn_squared_radii(real, k, block_size)  # [N]
    gen_radii = knn_squared_radii(generated, k, block_size)  # [M]
    n = tf.shape(real)[0]
    m = tf.shape(generated)[0]

    def body(start, end, state):
        precise, dense, recalled, nearest = state
        sq = _squared_distances(generated[start:end], real, gen_sq[start:end],
                                real_sq)  # [b, N]
        in_real = sq <= real_radii[tf.newaxis, :]
        in_gen = sq <= gen_radii[start:end, tf.newaxis]
        return (
            precise + tf.reduce_sum(tf.cast(tf.reduce_any(in_real, axis=1), tf.float64)),
            dense + tf.reduce_sum(tf.cast(in_real, tf.float64)),
            recalled | tf.reduce_any(in_gen, axis=0),
            tf.minimum(nearest, tf.reduce_min(sq, axis=0)),
        )

    init = (tf.constant(0.0, tf.float64), tf.constant(0.0, tf.float64),
            tf.zeros([n], tf.bool), tf.fill([n], tf.constant(float("inf"), tf.float64)))
    precise, dense, recalled, nearest = _blocks(m, block_size, body, init)
    m_f = tf.cast(m, tf.float64)
    return {
        "precision": precise / m_f,
        "recall": tf.reduce_mean(tf.cast(recalled, tf.float64)),
        "density": dense / (float(k) * m_f),
        "coverage": tf.reduce_mean(tf.cast(nearest <= real_radii, tf.float64)),
    }


@keras.saving.register_keras_serializable(package="sig_keras")
class PrecisionRecall(StoredFeatureMetric):
    """k-NN precision, recall, density and coverage: `update_state(real, generated)`.

    `result()` returns `{"precision", "recall", "density", "coverage"}`,
    float32 (computed in float64). Fewer than `k + 1` samples in either set
    raise `ValueError` (eager mode; a failing assertion in a graph). Features
    are kept (see the module docstring); `reset_state()` empties the buffers.
    `save_reference(path)` writes the real `features`; `reference_stats=path`
    loads them.

    References: Kynkaanniemi et al., "Improved Precision and Recall Metric
    for Assessing Generative Models", NeurIPS 2019. Naeem et al., "Reliable
    Fidelity and Diversity Metrics for Generative Models", ICML 2020.

    Args:
        feature_extractor: None (InceptionV3 pool features), "identity", a
            Keras model or a callable `images -> [n, d]`.
        k: int. Neighbours defining the manifolds. Defaults to 5 (Naeem et
            al.; Kynkaanniemi et al. use 3).
        block_size: int. Rows per block of pairwise distances. Defaults to
            1024 (a `1024 x 50,000` float64 block is 400 MB).
        num_features, reference_stats, input_range, capacity: as for
            `KernelDistance` (the stored-features base both share).

    Example:
    >>> pr = PrecisionRecall(feature_extractor="identity", num_features=2, k=5)
    >>> pr.update_state(real_points, model.sample(5000, seed=0))
    >>> pr.result()["recall"]
    """

    def __init__(self, feature_extractor=None, k=5, block_size=1024, num_features=None,
                 reference_stats=None, input_range=(-1.0, 1.0), capacity=None,
                 name="precision_recall", **kwargs):
        self.k = validation.check_int(k, "k", minimum=1)
        self.block_size = validation.check_int(block_size, "block_size", minimum=1)
        super().__init__(feature_extractor=feature_extractor, num_features=num_features,
                         reference_stats=reference_stats, input_range=input_range,
                         capacity=capacity, name=name, **kwargs)

    def result(self):
        real = self.real_features.values()
        generated = self.generated_features.values()
        num_real, num_gen = tf.shape(real)[0], tf.shape(generated)[0]
        if tf.executing_eagerly():
            for role, count in (("real", num_real), ("generated", num_gen)):
                if int(count) < self.k + 1:
                    raise ValueError(
                        f"Precision/recall with k={self.k} needs at least k + 1 = "
                        f"{self.k + 1} {role} samples; got {int(count)}."
                    )
            checks = []
        else:
            checks = [tf.debugging.Assert(
                (num_real > self.k) & (num_gen > self.k),
                ["Precision/recall needs at least k + 1 samples per set; got",
                 num_real, num_gen])]
        with tf.control_dependencies(checks):
            values = precision_recall_density_coverage(real, generated, self.k,
                                                       self.block_size)
        return {key: tf.cast(value, tf.float32) for key, value in values.items()}

    # === Config ===

    def get_config(self):
        config = super().get_config()
        config.update({"k": self.k, "block_size": self.block_size})
        return config
