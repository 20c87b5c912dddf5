"""Held-out SIG bound L_K of data under a trained semi-implicit model.

Yin & Zhou, Lemma 1: for `K` draws `psi_k = T_phi(eps_k)`,

    L_K = - E_x E_{psi_1..psi_K} log( (1/K) sum_k p(x | psi_k) ),
    H(p_data, p_phi) <= L_{K+1} <= L_K,

so `L_K` is an upper bound on the cross-entropy (negative log-likelihood)
that tightens as `K` grows. This metric reports it on held-out data, per
example, with `K` large (10^4 and more) computed in chunks of `C` draws with
the package's estimator (`sig_keras.losses.semi_implicit_log_likelihood`,
which gives `logsumexp_k log p(x | psi_k) - log C` per chunk):

    logsumexp_{k <= K} log p(x | psi_k)
        = logsumexp_chunks( chunk value + log C_chunk ),

then `- log K`. Only one `[batch, C]` matrix of log-likelihoods exists at a
time. Each `update_state(x)` draws new `psi` (seed None), or the same `K`
draws for every batch (an int seed: reproducible, chunk `c` uses seed
`seed + c`); both give an unbiased estimate of `L_K`.

How the bound tightens with K, on the known case of the tests (2-D mixture
of 8 Gaussians with radius 2 and std 0.1; the generator outputs the true
centres, uniformly, with the true scale, so the model is the data
distribution and `H = E -log p_data(x)`; 4,000 held-out points in 4 batches,
`H` from the exact mixture density on the same points: 0.30922 nats;
`chunk_size=1000`, one run):

    ======= ============ ===========
    K       L_K (nats)   L_K - H
    ======= ============ ===========
    1       393.88       393.57
    10      22.512       22.203
    100     0.35333      0.0441
    1000    0.31269      0.0035
    10^4    0.30926      0.00004
    10^5    0.30904      -0.00018
    ======= ============ ===========

The bound holds in expectation over the draws of `psi`: one run can fall
below `H` by its Monte Carlo noise once the gap is that small (10^5 here).

`bits_per_dim` is `L_K / (D ln 2)` for `D` data dimensions, the density of
the data as given. For 8-bit images scaled to [0, 1] and modelled as
continuous, the bits per dimension of the 0..255 integers are
`bits_per_dim + 8`; for binary data (Bernoulli conditional) it is already
the discrete figure.
"""

import math

import keras
import numpy as np
import tensorflow as tf

from sig_keras.layers import conditionals as conditionals_lib
from sig_keras.losses import semi_implicit_log_likelihood
from sig_keras.utils import validation


@keras.saving.register_keras_serializable(package="sig_keras")
class SemiImplicitLikelihood(keras.metrics.Metric):
    """Held-out SIG bound `L_K` in nats per example and bits per dimension.

    `update_state(x)` accumulates the per-example bound over data batches;
    `result()` returns `{"nll": L_K in nats per example, "bits_per_dim":
    L_K / (D ln 2)}`, float32 (accumulated in float64). The bound is above
    the model's true cross-entropy and tightens with `num_samples` (see the
    module docstring's table).

    Reference: Yin & Zhou, "Semi-Implicit Generative Model", Lemma 1.

    Args:
        generator: a model with `sample_mixing(n, seed)` (e.g.
            `sig_keras.models.SIG`) or a callable `fn(n) -> psi [n, ...]`
            drawing `n` mixing parameters.
        conditional: `sig_keras.layers.Conditional` or its name; for a model
            with a `conditional` attribute, None uses the model's. Defaults
            to None.
        num_samples: int. `K`. Defaults to 10,000.
        chunk_size: int. Draws of `psi` per chunk (memory: one
            `[batch, chunk_size]` matrix). Defaults to 1000.
        seed: int or None. None: fresh draws for every batch; an int: the
            same `K` draws for every batch. Defaults to None.

    Example:
    >>> metric = SemiImplicitLikelihood(model, num_samples=10_000)
    >>> for x in test_dataset:
    ...     metric.update_state(x)
    >>> metric.result()["nll"]
    """

    def __init__(self, generator, conditional=None, num_samples=10_000, chunk_size=1000,
                 seed=None, name="semi_implicit_likelihood", **kwargs):
        super().__init__(name=name, **kwargs)
        if not (hasattr(generator, "sample_mixing") or callable(generator)):
            raise ValueError(
                "`generator` must have a `sample_mixing(n, seed)` method or be a "
                f"callable fn(n) -> psi; got {generator!r}."
            )
        if conditional is None:
            conditional = getattr(generator, "conditional", None)
            if conditional is None:
                raise ValueError(
                    "`conditional` is required when the generator has no "
                    "`conditional` attribute."
                )
        self.num_samples = validation.check_int(num_samples, "num_samples", minimum=1)
        self.chunk_size = validation.check_int(chunk_size, "chunk_size", minimum=1)
        self.seed = None if seed is None else validation.check_int(seed, "seed")
        # Kept in a list so that the metric does not track the generator's
        # weights as its own state.
        self._generator = [generator]
        self.conditional = conditionals_lib.get(conditional)
        # === State ===
        self.nll_sum = self.add_variable(shape=(), initializer="zeros", dtype="float64",
                                         name="nll_sum")
        self.bits_per_dim_sum = self.add_variable(shape=(), initializer="zeros",
                                                  dtype="float64", name="bits_per_dim_sum")
        self.count = self.add_variable(shape=(), initializer="zeros", dtype="float64",
                                       name="count")

    @property
    def generator(self):
        return self._generator[0]

    def draw_mixing(self, n, chunk):
        """`n` draws of `psi` for chunk number `chunk`."""
        generator = self.generator
        if hasattr(generator, "sample_mixing"):
            seed = None if self.seed is None else self.seed + chunk
            return generator.sample_mixing(n, seed=seed)
        return generator(n)

    def _chunk_sizes(self):
        full, rest = divmod(self.num_samples, self.chunk_size)
        return [self.chunk_size] * full + ([rest] if rest else [])

    def log_likelihood_bound(self, x):
        """Per-example `log (1/K) sum_k p(x_i | psi_k)`, `[N]` float32 (-L_K terms)."""
        x = tf.convert_to_tensor(x)
        total = None
        for chunk, size in enumerate(self._chunk_sizes()):
            psi = tf.convert_to_tensor(self.draw_mixing(size, chunk))
            if psi.shape.rank is None or psi.shape[0] not in (None, size):
                raise ValueError(
                    f"The generator returned psi of shape {psi.shape} for {size} draws; "
                    f"expected [{size}, ...]."
                )
            if chunk == 0:
                self.conditional.check_shapes(x.shape, psi.shape)
            # The package's estimator: logsumexp_k log p(x | psi_k) - log C.
            value = semi_implicit_log_likelihood(x, psi, self.conditional) + math.log(size)
            total = value if total is None else tf.reduce_logsumexp(
                tf.stack([total, value]), axis=0)
        return total - math.log(self.num_samples)

    def update_state(self, x, sample_weight=None):
        if sample_weight is not None:
            raise ValueError("SemiImplicitLikelihood does not take `sample_weight`.")
        if tf.executing_eagerly():
            self.conditional.check_data(x, "held-out data")
        x = tf.convert_to_tensor(x)
        if x.shape.rank is None or x.shape.rank < 2 or None in x.shape[1:]:
            raise ValueError(
                f"Data must have shape [N, *event_shape] with a known event shape; got "
                f"{x.shape}."
            )
        dims = int(np.prod(x.shape[1:]))
        nll = -tf.cast(self.log_likelihood_bound(x), tf.float64)
        self.nll_sum.assign_add(tf.reduce_sum(nll))
        self.bits_per_dim_sum.assign_add(tf.reduce_sum(nll) / (dims * math.log(2.0)))
        self.count.assign_add(tf.cast(tf.shape(nll)[0], tf.float64))

    def result(self):
        count = tf.maximum(tf.convert_to_tensor(self.count), 1.0)
        return {
            "nll": tf.cast(self.nll_sum / count, tf.float32),
            "bits_per_dim": tf.cast(self.bits_per_dim_sum / count, tf.float32),
        }

    def get_config(self):
        raise NotImplementedError(
            "SemiImplicitLikelihood holds a generator and is not serializable; "
            "rebuild it with the model."
        )
