"""Mode coverage, high-quality share and mode KL for Gaussian-mixture toys."""

import keras
import numpy as np
import tensorflow as tf

from sig_keras.utils import validation


def _numbers(value, name):
    """`value` as a float32 array, or `ValueError` naming `name` unless it
    holds only numbers (strings, None or ragged nesting are refused)."""
    try:
        array = np.asarray(value)
    except ValueError:
        array = None
    if array is None or array.dtype.kind not in "biuf":
        raise ValueError(
            f"`{name}` must be an array of numbers; got {value!r:.200}"
            + ("" if array is None else f" (dtype {array.dtype})") + "."
        )
    return array.astype(np.float32)


@keras.saving.register_keras_serializable(package="sig_keras")
class ModeCoverage(keras.metrics.Metric):
    """Modes captured, high-quality share and mode KL of generated samples.

    Protocol (Table 1; PacGAN, VEEGAN): each sample is assigned to its nearest
    centre; it is *high quality* if it lies within `threshold * std` of that
    centre. A mode is *captured* if it receives more than
    `capture_share * (number of samples)` high-quality samples: the paper's
    "more than 1000 of 50,000" is `capture_share=0.02`.

    The KL is `KL(generated || true) = sum_m q_m log(q_m / w_m)` over modes,
    where `q` is the histogram of the *high-quality* samples over modes
    (normalised to sum to one) and `w` the true mode weights. No smoothing is
    needed in this direction (`w_m > 0`; terms with `q_m = 0` are 0). With no
    high-quality sample at all the KL is undefined and reported as `+inf`.

    `update_state(samples)` accumulates counts over any number of batches;
    `result()` returns a dict `{"modes", "high_quality", "kl"}`.

    Args:
        centers: array `[M, D]`. Mode centres.
        std: float. Component standard deviation.
        weights: array `[M]` or None. True mode weights; uniform if None.
        threshold: float. High-quality radius in units of `std`. Defaults to 3.
        capture_share: float. A mode is captured with more than this share of
            all samples, high quality, in it. Defaults to 0.02.

    Example:
    >>> grid = sig_keras.datasets.gaussian_grid(std=0.1)
    >>> metric = ModeCoverage(grid.centers, grid.std)
    >>> metric.update_state(grid.sample(50_000))
    >>> metric.result()["modes"]  # 25.0
    """

    def __init__(self, centers, std, weights=None, threshold=3.0, capture_share=0.02,
                 name="mode_coverage", **kwargs):
        super().__init__(name=name, **kwargs)
        centers = _numbers(centers, "centers")
        if centers.ndim != 2 or centers.shape[0] < 1:
            raise ValueError(f"`centers` must have shape [M, D]; got {centers.shape}.")
        if not np.all(np.isfinite(centers)):
            raise ValueError("`centers` contains NaN or inf.")
        std = validation.check_float(std, "std", minimum=0.0, min_inclusive=False)
        num_modes = centers.shape[0]
        if weights is None:
            weights = np.full(num_modes, 1.0 / num_modes)
        weights = _numbers(weights, "weights").astype(np.float64)
        if weights.shape != (num_modes,) or np.any(weights <= 0) or not np.all(np.isfinite(weights)):
            raise ValueError(
                f"`weights` must be {num_modes} positive numbers (one per centre); "
                f"got {weights}."
            )
        threshold = validation.check_float(threshold, "threshold", minimum=0.0,
                                           min_inclusive=False)
        capture_share = validation.check_float(capture_share, "capture_share", 0.0, 1.0,
                                               max_inclusive=False)
        # === Config ===
        self.centers = centers
        self.std = std
        self.weights = weights / weights.sum()
        self.threshold = float(threshold)
        self.capture_share = float(capture_share)
        # === State ===
        self.mode_counts = self.add_variable(
            shape=(num_modes,), initializer="zeros", dtype="float32", name="mode_counts"
        )
        self.total = self.add_variable(shape=(), initializer="zeros", dtype="float32",
                                       name="total")

    def update_state(self, samples, sample_weight=None):
        if sample_weight is not None:
            raise ValueError("ModeCoverage does not take `sample_weight`.")
        samples = tf.cast(samples, tf.float32)
        width = self.centers.shape[1]
        if samples.shape.rank != 2 or samples.shape[-1] != width:
            raise ValueError(
                f"ModeCoverage takes samples of shape [N, {width}] (the centres' "
                f"width); got {samples.shape}."
            )
        finite = tf.reduce_all(tf.math.is_finite(samples))
        if tf.executing_eagerly():
            if not bool(finite):
                raise ValueError("ModeCoverage samples contain NaN or inf.")
        else:
            with tf.control_dependencies([tf.debugging.Assert(
                    finite, ["ModeCoverage samples contain NaN or inf."])]):
                samples = tf.identity(samples)
        centers = tf.constant(self.centers)
        # ||s - c||^2 = ||s||^2 - 2 s.c + ||c||^2: one matrix product.
        sq = (
            tf.reduce_sum(tf.square(samples), 1, keepdims=True)
            - 2.0 * tf.matmul(samples, centers, transpose_b=True)
            + tf.reduce_sum(tf.square(centers), 1)[tf.newaxis]
        )
        sq = tf.maximum(sq, 0.0)
        nearest = tf.argmin(sq, axis=1)
        radius_sq = (self.threshold * self.std) ** 2
        high_quality = tf.reduce_min(sq, axis=1) <= radius_sq
        counts = tf.math.bincount(
            tf.cast(tf.boolean_mask(nearest, high_quality), tf.int32),
            minlength=self.centers.shape[0],
            maxlength=self.centers.shape[0],
            dtype=tf.float32,
        )
        self.mode_counts.assign_add(counts)
        self.total.assign_add(tf.cast(tf.shape(samples)[0], tf.float32))

    def result(self):
        counts = tf.convert_to_tensor(self.mode_counts)
        total = tf.convert_to_tensor(self.total)
        num_high = tf.reduce_sum(counts)
        modes = tf.reduce_sum(tf.cast(counts > self.capture_share * total, tf.float32))
        high_quality = tf.math.divide_no_nan(num_high, total)
        q = tf.math.divide_no_nan(counts, num_high)
        w = tf.constant(self.weights, tf.float32)
        terms = tf.where(q > 0, q * (tf.math.log(tf.maximum(q, 1e-30)) - tf.math.log(w)), 0.0)
        kl = tf.where(num_high > 0, tf.reduce_sum(terms), np.inf)
        return {"modes": modes, "high_quality": high_quality, "kl": kl}

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "centers": self.centers.tolist(),
                "std": self.std,
                "weights": self.weights.tolist(),
                "threshold": self.threshold,
                "capture_share": self.capture_share,
            }
        )
        return config
