"""Frechet distance between feature distributions (FID; Heusel et al., 2017).

    FID = ||mu_r - mu_g||^2 + Tr( S_r + S_g - 2 (S_r S_g)^{1/2} )

with `mu`, `S` the mean and sample covariance (divisor `N - 1`, as
pytorch-fid, clean-fid and TF-GAN) of the real and generated features.

Streaming: per set, the count, `sum_i g_i` and `sum_i g_i g_i^T` of the
shifted features `g_i = f_i - c` are accumulated in float64 (`d + d^2`
numbers: memory does not grow with the number of samples), with `c` a fixed
shift, the mean of the first batch (float32, kept in a variable); at
`result()`

    m = sum g / N,   mu = c + m,   S = (sum g g^T - N m m^T) / (N - 1)

(the covariance does not depend on the shift). Each batch's `g^T g` is a
float32 matmul (much faster on CPU than TensorFlow's float64 one)
added to the float64 sum. Shifting first is what keeps it accurate: `g` is
exact in float32 (a difference of nearby float32 numbers), small when the
features sit far from 0, so neither the products nor the final
`sum g g^T - N m m^T` cancel the way `E[f f^T] - mu mu^T` would (for
features of mean 1e3 and variance ~1 that float32 formula is off by ~4 in
`S`; the shifted one by 2e-7, as float64).

Matrix square root, in symmetric form: the eigenvalues of `S_r S_g` are those
of the symmetric positive semi-definite `M = B^T S_g B` for any `B` with
`S_r = B B^T`, so

    Tr (S_r S_g)^{1/2} = sum_j sqrt(lambda_j(M)).

`B` is the Cholesky factor of `S_r` when `S_r` is well conditioned (smallest
eigenvalue above 1e-10 times the largest), else `V diag(sqrt(max(w, 0)))`
from the eigendecomposition `S_r = V diag(w) V^T` (singular covariances,
e.g. fewer samples than dimensions). Everything stays real: there is no
imaginary part to discard (scipy's `sqrtm(S_r S_g)` of a non-symmetric
product returns round-off imaginary parts that pytorch-fid drops). Round-off
can leave eigenvalues of `M` (and of `S_r`) slightly negative: they are
clipped at 0 before the square root. The result is clipped at 0 too (two
draws of the same distribution can otherwise give -1e-12).
"""

import keras
import numpy as np
import tensorflow as tf

from sig_keras.metrics.feature_metric import FeatureMetric

# `S_r` counts as well conditioned (Cholesky) above this eigenvalue ratio.
_CHOLESKY_MIN_RATIO = 1e-10


def _symmetric_factor(sigma):
    """`B` with `sigma = B B^T` (float64), see the module docstring."""
    evals = tf.linalg.eigvalsh(sigma)
    well_conditioned = evals[0] > _CHOLESKY_MIN_RATIO * tf.maximum(evals[-1], 0.0)

    def from_eigh():
        w, v = tf.linalg.eigh(sigma)
        return v * tf.sqrt(tf.maximum(w, 0.0))[tf.newaxis, :]

    return tf.cond(well_conditioned, lambda: tf.linalg.cholesky(sigma), from_eigh)


def trace_sqrt_product(sigma1, sigma2):
    """`Tr (sigma1 sigma2)^{1/2}` for symmetric PSD matrices, in float64."""
    sigma1 = tf.cast(sigma1, tf.float64)
    sigma2 = tf.cast(sigma2, tf.float64)
    b = _symmetric_factor(sigma1)
    m = tf.matmul(b, tf.matmul(sigma2, b), transpose_a=True)
    m = 0.5 * (m + tf.transpose(m))
    return tf.reduce_sum(tf.sqrt(tf.maximum(tf.linalg.eigvalsh(m), 0.0)))


def frechet_distance_from_moments(mu1, sigma1, mu2, sigma2):
    """FID of two Gaussians given means and covariances (float64 tensor)."""
    mu1, sigma1, mu2, sigma2 = (tf.cast(t, tf.float64) for t in (mu1, sigma1, mu2, sigma2))
    fid = (tf.reduce_sum(tf.square(mu1 - mu2)) + tf.linalg.trace(sigma1)
           + tf.linalg.trace(sigma2) - 2.0 * trace_sqrt_product(sigma1, sigma2))
    return tf.maximum(fid, 0.0)


@keras.saving.register_keras_serializable(package="sig_keras")
class FrechetDistance(FeatureMetric):
    """Streaming Frechet (Inception) distance: `update_state(real, generated)`.

    Either argument may be None, so real and generated batches can be fed
    separately (e.g. real data once, then generated samples in `test_step`).
    `result()` is a float32 scalar (computed in float64); it needs at least 2
    real and 2 generated samples (`ValueError` in eager mode, NaN in a graph).
    Reliable FIDs need many more samples than feature dimensions (the
    standard is 50,000 for the 2048-d Inception features); with fewer, FID is
    biased upwards.

    Memory: `2 (d + d^2)` float64 state (64 MiB for d = 2048) whatever the
    number of samples. `save_reference(path)` writes the real data's `mu`,
    `sigma` and `num_samples` (clean-fid's keys); `reference_stats=path` loads
    them (or reference `features`), and then only generated data is fed.
    `reset_state()` zeroes the accumulated sums and the shifts; loaded
    reference statistics are constants and stay. The products are float32
    matmuls of shifted features added to float64 sums (module docstring).

    Reference: Heusel et al., "GANs Trained by a Two Time-Scale Update Rule
    Converge to a Local Nash Equilibrium", NeurIPS 2017.

    Args:
        feature_extractor: None (InceptionV3, 2048-d pool features; weights
            download at the first update), "identity" (inputs are features),
            a Keras model or a callable `images -> [n, d]` (see
            `sig_keras.metrics.feature_extractors`).
        num_features: int or None. `d`; inferred from the extractor if None.
        reference_stats: None, or a `.npz` path / dict from `save_reference`.
        input_range: pair. Pixel range for the default extractor. Defaults to
            (-1, 1).

    Example:
    >>> fid = FrechetDistance(feature_extractor="identity", num_features=2)
    >>> fid.update_state(real_points, model.sample(10_000, seed=0))
    >>> float(fid.result())
    """

    def __init__(self, feature_extractor=None, num_features=None, reference_stats=None,
                 input_range=(-1.0, 1.0), name="frechet_distance", **kwargs):
        super().__init__(feature_extractor=feature_extractor, num_features=num_features,
                         reference_stats=reference_stats, input_range=input_range,
                         name=name, **kwargs)
        d = self.num_features
        # === State ===
        self.real_count = self.add_variable(shape=(), initializer="zeros", dtype="float64",
                                            name="real_count")
        self.real_sum = self.add_variable(shape=(d,), initializer="zeros", dtype="float64",
                                          name="real_sum")
        self.real_outer = self.add_variable(shape=(d, d), initializer="zeros",
                                            dtype="float64", name="real_outer")
        self.generated_count = self.add_variable(shape=(), initializer="zeros",
                                                 dtype="float64", name="generated_count")
        self.generated_sum = self.add_variable(shape=(d,), initializer="zeros",
                                               dtype="float64", name="generated_sum")
        self.generated_outer = self.add_variable(shape=(d, d), initializer="zeros",
                                                 dtype="float64", name="generated_outer")
        # Shifts subtracted before the products: each set's first batch mean.
        self.real_shift = self.add_variable(shape=(d,), initializer="zeros", dtype="float32",
                                            name="real_shift")
        self.generated_shift = self.add_variable(shape=(d,), initializer="zeros",
                                                 dtype="float32", name="generated_shift")

    def _accumulate(self, features, real):
        f = tf.cast(features, tf.float32)
        count, total, outer, shift = (
            (self.real_count, self.real_sum, self.real_outer, self.real_shift) if real else
            (self.generated_count, self.generated_sum, self.generated_outer,
             self.generated_shift))
        # The first batch fixes the shift (its mean); later batches reuse it.
        new_shift = tf.where(count == 0.0, tf.reduce_mean(f, axis=0), shift)
        shift.assign(new_shift)
        g = f - new_shift
        count.assign_add(tf.cast(tf.shape(f)[0], tf.float64))
        total.assign_add(tf.reduce_sum(tf.cast(g, tf.float64), axis=0))
        outer.assign_add(tf.cast(tf.matmul(g, g, transpose_a=True), tf.float64))

    @staticmethod
    def _moments(count, total, outer, shift):
        count = tf.convert_to_tensor(count)
        m = total / tf.maximum(count, 1.0)
        sigma = (outer - count * m[:, tf.newaxis] * m[tf.newaxis, :]) / (count - 1.0)
        mu = tf.cast(tf.convert_to_tensor(shift), tf.float64) + m
        return mu, 0.5 * (sigma + tf.transpose(sigma))

    def real_moments(self):
        """`(mu, sigma)` of the real features (float64), from state or reference."""
        if self._reference is not None:
            return (tf.constant(self._reference["mu"]), tf.constant(self._reference["sigma"]))
        return self._moments(self.real_count, self.real_sum, self.real_outer,
                            self.real_shift)

    def generated_moments(self):
        """`(mu, sigma)` of the generated features (float64)."""
        return self._moments(self.generated_count, self.generated_sum,
                            self.generated_outer, self.generated_shift)

    def result(self):
        if tf.executing_eagerly():
            counts = {"generated": float(self.generated_count.numpy())}
            if self._reference is None:
                counts["real"] = float(self.real_count.numpy())
            for role, count in counts.items():
                if count < 2:
                    raise ValueError(
                        f"The Frechet distance needs at least 2 {role} samples; got "
                        f"{int(count)}."
                    )
        mu_r, sigma_r = self.real_moments()
        mu_g, sigma_g = self.generated_moments()
        return tf.cast(frechet_distance_from_moments(mu_r, sigma_r, mu_g, sigma_g), tf.float32)

    # === Reference statistics ===

    def _reference_arrays(self):
        if self._reference is not None:
            return dict(self._reference)
        count = float(self.real_count.numpy())
        if count < 2:
            raise ValueError(
                f"Reference statistics need at least 2 real samples; got {int(count)}. "
                "Update the metric with real data first."
            )
        mu, sigma = (t.numpy() for t in self.real_moments())
        return {"mu": mu, "sigma": sigma, "num_samples": np.array(count)}

    def _load_reference(self, arrays):
        d = self.num_features
        if "mu" in arrays and "sigma" in arrays:
            mu = np.asarray(arrays["mu"], np.float64)
            sigma = np.asarray(arrays["sigma"], np.float64)
        elif "features" in arrays:
            features = self._reference_features(arrays).astype(np.float64)
            if features.shape[0] < 2:
                raise ValueError("Reference features need at least 2 rows.")
            mu, sigma = features.mean(0), np.cov(features, rowvar=False)
        else:
            raise ValueError(
                "FrechetDistance reference statistics need keys 'mu' and 'sigma' (or "
                f"'features'); got {sorted(arrays)}."
            )
        if mu.shape != (d,) or sigma.shape != (d, d):
            raise ValueError(
                f"Reference statistics have mu {mu.shape} and sigma {sigma.shape}; "
                f"expected ({d},) and ({d}, {d}) for num_features={d}."
            )
        if not (np.all(np.isfinite(mu)) and np.all(np.isfinite(sigma))):
            raise ValueError("The reference statistics contain NaN or inf.")
        return {"mu": mu, "sigma": sigma,
                "num_samples": np.asarray(arrays.get("num_samples", np.nan), np.float64)}
