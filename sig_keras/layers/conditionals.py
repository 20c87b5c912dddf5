"""Explicit conditionals `p(x | psi)` of a semi-implicit generator.

Each conditional is a Keras 3 layer that uses `tfp.distributions` as math and
returns tensors (never a `tfp.layers` distribution object). The generator
`T_phi` outputs the unconstrained parameters `psi`; positive parameters go
through a documented link (softplus).

Shapes used throughout:

- data `x`: `[N, *event_shape]`.
- parameters `psi`: `[K, *param_shape]` where for single-parameter families
  `param_shape == event_shape`, and for the Negative-Binomial the last axis is
  doubled (first half: total count, second half: logits).
- `pairwise_log_prob(x, psi)`: `[N, K]` with entry `log p(x_i | psi_k)`, the
  event dimensions summed out. It is `scores + row[:, None]` of
  `pairwise_log_prob_terms(x, psi)`, the split the estimator uses, so the
  two agree.

Normal (shared scale), Poisson and Bernoulli conditionals compute the pairwise
matrix with one matrix product; only the Negative-Binomial broadcasts over an
`N x K x D` tensor (its `lgamma(x + r)` term couples `x` and `psi`).
"""

import math

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from sig_keras.utils import validation

tfd = tfp.distributions

PACKAGE = "sig_keras"


def _flatten(t):
    """Flattens all but the leading axis: `[B, ...] -> [B, D]`, float32."""
    t = tf.cast(tf.convert_to_tensor(t), tf.float32)
    return tf.reshape(t, [tf.shape(t)[0], -1])


def _to_numpy(x):
    if isinstance(x, np.ndarray):
        return x
    if hasattr(x, "numpy"):
        return x.numpy()
    return np.asarray(x)


class Conditional(keras.layers.Layer):
    """Base class of the explicit conditionals `p(x | psi)`.

    Subclasses implement `_elementwise_distribution` (the distribution of
    each data dimension), `pairwise_log_prob_terms` (the `[N, K]` matrix the
    estimator uses, split into a `[N, K]` and an x-only `[N]` part), set
    `params_per_dim` when `psi` has more than one number per data dimension,
    and implement `support_requirements` where the family's support is restricted.
    """

    # Number of generator outputs per data dimension.
    params_per_dim = 1

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        # Conditionals are used through their methods, never called on a
        # symbolic input, and own all their weights once constructed: mark
        # them built, or Keras' symbolic build under a distribution strategy
        # calls the wrapping model on a data batch.
        self.built = True

    def params_size(self, event_shape):
        """Width of the generator output for data of shape `event_shape`."""
        if isinstance(event_shape, int):
            event_shape = (event_shape,)
        return self.params_per_dim * int(np.prod(event_shape))

    def param_shape(self, event_shape):
        """Shape of one `psi` for data of shape `event_shape`."""
        if isinstance(event_shape, int):
            event_shape = (event_shape,)
        event_shape = tuple(int(d) for d in event_shape)
        return event_shape[:-1] + (self.params_per_dim * event_shape[-1],)

    def event_shape_from_params(self, param_shape):
        param_shape = tuple(int(d) for d in param_shape)
        if param_shape[-1] % self.params_per_dim:
            raise ValueError(
                f"{type(self).__name__} needs a last parameter axis divisible "
                f"by {self.params_per_dim}; got parameter shape {param_shape}."
            )
        return param_shape[:-1] + (param_shape[-1] // self.params_per_dim,)

    def distribution(self, psi):
        """A TFP distribution with batch shape `[K]` and the data's event shape."""
        psi = tf.convert_to_tensor(psi, tf.float32)
        return tfd.Independent(
            self._elementwise_distribution(psi),
            reinterpreted_batch_ndims=len(psi.shape) - 1,
        )

    def _elementwise_distribution(self, psi):
        """The TFP distribution of every data dimension given float32 `psi`."""
        raise NotImplementedError(
            f"{type(self).__name__} must implement `_elementwise_distribution(psi)`."
        )

    def pairwise_log_prob_terms(self, x, psi):
        """`(scores [N, K], row [N])` with `log p(x_i | psi_k) = scores + row`.

        `row` holds the terms that depend on `x_i` alone; the estimator adds it
        after the `logsumexp` over `k`, so the `[N, K]` work is one matrix
        product and a bias. Families whose terms do not separate return all of
        it in `scores` and a zero `row`.
        """
        raise NotImplementedError(
            f"{type(self).__name__} must implement `pairwise_log_prob_terms(x, psi)`, "
            "returning `(scores [N, K], row [N])` with "
            "`log p(x_i | psi_k) = scores[i, k] + row[i]`."
        )

    def pairwise_log_prob(self, x, psi):
        """`[N, K]` matrix of `log p(x_i | psi_k)`: `scores + row[:, None]` of
        `pairwise_log_prob_terms`, the same terms the estimator sums."""
        scores, row = self.pairwise_log_prob_terms(x, psi)
        return scores + row[:, tf.newaxis]

    def mean(self, psi):
        """`E[x | psi]`, shaped like the data: the Normal's location, the
        Poisson's rate, the Bernoulli's probabilities `sigmoid(psi)`."""
        return self.distribution(psi).mean()

    def sample(self, psi, seed):
        """Draws one `x` per `psi`. `seed`: a stateless seed, int32 `[2]`."""
        return self.distribution(psi).sample(seed=tf.cast(seed, tf.int32))

    # === Validation ===

    def check_data(self, x, name="data"):
        """Raises `ValueError` if `x` is not in the support of the family.

        Host-side check on a concrete array: non-finite values, and the
        family's own support (counts, binary values).
        """
        x = _to_numpy(x)
        if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)
                or x.dtype == np.bool_):
            raise ValueError(
                f"{name} must be a numeric array; got dtype {x.dtype}."
            )
        xf = x.astype(np.float64)
        if not np.all(np.isfinite(xf)):
            n_nan = int(np.isnan(xf).sum())
            n_inf = int(np.isinf(xf).sum())
            raise ValueError(
                f"{name} contains non-finite values ({n_nan} NaN, {n_inf} inf); "
                "clean the data before training."
            )
        xt = tf.constant(xf)
        validation.assert_all(xt, self.support_requirements(xt), what=name)

    def data_requirements(self, x):
        """`[(requirement, bad)]`: what every batch `x` must meet (the data guard).

        Finite values, then the family's support (`support_requirements`);
        `bad` is a boolean tensor, True where `x` fails. Pure TensorFlow, so
        the models check every batch inside their training step with it.
        """
        x = tf.convert_to_tensor(x)
        if not x.dtype.is_floating:
            x = tf.cast(x, tf.float32)
        return [("finite values", tf.logical_not(tf.math.is_finite(x)))] + (
            self.support_requirements(x))

    def support_requirements(self, x):
        """The family's own requirements on finite data `x` (none by default)."""
        del x
        return []

    def check_shapes(self, x_shape, psi_shape):
        """Raises `ValueError` unless data and parameter shapes agree."""
        x_event = tuple(x_shape[1:])
        psi_param = tuple(psi_shape[1:])
        if None in x_event or None in psi_param:
            return
        expected = self.param_shape(x_event) if x_event else None
        if not x_event or tuple(expected) != psi_param:
            raise ValueError(
                f"{type(self).__name__}: data points of shape {x_event} need "
                f"generator outputs (psi) of shape {expected}, but the "
                f"generator produces {psi_param}."
            )


@keras.saving.register_keras_serializable(package=PACKAGE)
class NormalConditional(Conditional):
    """Isotropic Normal conditional `x | psi ~ N(psi, scale^2 I)`.

    The location is `psi` itself (identity link). The scale is shared by all
    dimensions; with `trainable_scale=True` it is learned as
    `scale = softplus(rho)`, `rho` initialised so that `scale` starts at the
    given value.

    `pairwise_log_prob_terms` uses `||x - psi||^2 = ||x||^2 - 2 x.psi + ||psi||^2`,
    so the `[N, K]` matrix costs one `[N, D] x [D, K]` product:

        log N(x; psi, s^2 I) = -||x - psi||^2 / (2 s^2) - D log s - D/2 log 2pi

    Args:
        scale: float in [1e-6, 1e6]. Standard deviation of the conditional.
            Defaults to 0.1, the paper's toy value. Outside the range float32
            training overflows (`1 / scale^2`, or the squared distances).
        trainable_scale: bool. Learn the scale. Defaults to False.

    Example:
    >>> cond = NormalConditional(scale=0.1)
    >>> cond.pairwise_log_prob(tf.zeros([4, 2]), tf.zeros([3, 2])).shape
    TensorShape([4, 3])
    """

    def __init__(self, scale=0.1, trainable_scale=False, **kwargs):
        super().__init__(**kwargs)
        scale = validation.check_float(scale, "scale", validation.MIN_SCALE, validation.MAX_SCALE)
        # === Config ===
        self.scale = scale
        self.trainable_scale = bool(trainable_scale)
        # === Weights ===
        # Inverse softplus of the initial scale, computed stably.
        rho0 = scale + math.log(-math.expm1(-scale))
        self._rho = self.add_weight(
            name="scale_rho",
            shape=(),
            initializer=keras.initializers.Constant(rho0),
            trainable=self.trainable_scale,
        )
        # An in-graph annealing schedule (`anneal`), or None.
        object.__setattr__(self, "_annealing", None)

    @property
    def scale_value(self):
        """The scale as a tensor: the softplus of the stored variable, or, while
        an annealing schedule is set (`anneal`), the schedule at its step."""
        if self._annealing is None:
            return tf.nn.softplus(tf.cast(self._rho, tf.float32))
        log_start, log_end, steps, step = self._annealing
        frac = tf.minimum(1.0, tf.cast(step, tf.float32) / float(steps))
        return tf.exp((1.0 - frac) * log_start + frac * log_end)

    def set_scale(self, scale):
        """Sets the scale (e.g. the last value of an annealing schedule)."""
        scale = validation.check_float(scale, "scale", validation.MIN_SCALE, validation.MAX_SCALE)
        self._rho.assign(scale + math.log(-math.expm1(-scale)))

    def anneal(self, start, end=None, steps=None, step=None):
        """Makes the scale `start * (end / start) ** min(1, step / steps)`.

        `step` is an integer variable read wherever the scale is used (e.g.
        an optimizer's `iterations`), so the schedule follows every training
        step inside the compiled step function, also with
        `steps_per_execution > 1`. Functions traced before this call keep the
        fixed scale (`ScaleAnnealing` traces the step functions again).
        `anneal(None)` removes the schedule and keeps the stored scale; while
        a schedule is set, it replaces a trainable scale.
        """
        if start is None:
            object.__setattr__(self, "_annealing", None)
            return
        start = validation.check_float(start, "start", validation.MIN_SCALE, validation.MAX_SCALE)
        end = validation.check_float(end, "end", validation.MIN_SCALE, validation.MAX_SCALE)
        steps = validation.check_int(steps, "steps", minimum=1)
        object.__setattr__(self, "_annealing", (math.log(start), math.log(end), steps, step))

    def _elementwise_distribution(self, psi):
        return tfd.Normal(loc=psi, scale=self.scale_value)

    def support_requirements(self, x):
        # Squared distances of larger values overflow float32 (max 3.4e38).
        limit = validation.MAX_DATA_MAGNITUDE
        return [(f"magnitudes at most {limit:g} (squares of larger values overflow "
                 "float32)", tf.abs(x) > limit)]

    def pairwise_log_prob_terms(self, x, psi):
        # -||x - psi||^2 / (2 s^2) = (x.psi - ||psi||^2 / 2) / s^2
        #                            - ||x||^2 / (2 s^2)
        x = _flatten(x)
        psi = _flatten(psi)
        scale = self.scale_value
        inv_var = 1.0 / tf.square(scale)
        dim = tf.cast(tf.shape(x)[1], tf.float32)
        psi_sq = tf.reduce_sum(tf.square(psi), axis=1)  # [K]
        # The scaling is applied to the [N, K] product, not to x ([N, D]):
        # one pass over the inputs fewer (benchmarks/sig_loss.py).
        scores = tf.matmul(x, psi, transpose_b=True) - 0.5 * psi_sq[tf.newaxis, :]
        scores = inv_var * scores  # [N, K]
        row = (
            -0.5 * inv_var * tf.reduce_sum(tf.square(x), axis=1)
            - dim * tf.math.log(scale)
            - 0.5 * dim * math.log(2.0 * math.pi)
        )
        return scores, row

    def get_config(self):
        config = super().get_config()
        config.update({"scale": self.scale, "trainable_scale": self.trainable_scale})
        return config


def _count_requirements(x, family):
    return [
        (f"non-negative counts (the {family} conditional models counts)", x < 0),
        (f"integer counts (the {family} conditional; no non-integer values)",
         tf.not_equal(x, tf.round(x))),
    ]


@keras.saving.register_keras_serializable(package=PACKAGE)
class PoissonConditional(Conditional):
    """Poisson conditional `x | psi ~ Poisson(softplus(psi))`, independent dims.

    Link: `rate = softplus(psi) + min_rate`. The pairwise matrix is one
    product: `log p(x | rate) = x . log(rate) - sum(rate) - sum(lgamma(x + 1))`.

    Args:
        min_rate: float in [0, 1e6]. Added to the rate so that `log(rate)`
            stays finite (with 0, generator outputs below about -88 give a
            zero float32 rate). Defaults to 1e-6.
    """

    def __init__(self, min_rate=1e-6, **kwargs):
        super().__init__(**kwargs)
        self.min_rate = validation.check_float(min_rate, "min_rate", 0.0, validation.MAX_SCALE)

    def rate(self, psi):
        return tf.nn.softplus(tf.cast(psi, tf.float32)) + self.min_rate

    def _elementwise_distribution(self, psi):
        return tfd.Poisson(rate=self.rate(psi))

    def pairwise_log_prob_terms(self, x, psi):
        x = _flatten(x)
        rate = self.rate(_flatten(psi))
        scores = (
            tf.matmul(x, tf.math.log(rate), transpose_b=True)
            - tf.reduce_sum(rate, axis=1)[tf.newaxis, :]
        )
        return scores, -tf.reduce_sum(tf.math.lgamma(x + 1.0), axis=1)

    def support_requirements(self, x):
        return _count_requirements(x, "Poisson")

    def get_config(self):
        config = super().get_config()
        config.update({"min_rate": self.min_rate})
        return config


@keras.saving.register_keras_serializable(package=PACKAGE)
class NegativeBinomialConditional(Conditional):
    """Negative-Binomial conditional, independent dims.

    `psi` has twice the data width on its last axis: the first half gives the
    total count `r = softplus(.) + min_total_count`, the second half the
    logits of the success probability `p = sigmoid(.)`. With TFP's (and the
    paper's) convention the mean is `r p / (1 - p)`.

    The pairwise matrix broadcasts to `[N, K, D]` (the `lgamma(x + r)` term
    couples data and parameters); use it on modest `D`.

    Args:
        min_total_count: float in [0, 1e6]. Lower bound added to `r`.
            Defaults to 1e-4.
    """

    params_per_dim = 2

    def __init__(self, min_total_count=1e-4, **kwargs):
        super().__init__(**kwargs)
        self.min_total_count = validation.check_float(
            min_total_count, "min_total_count", 0.0, validation.MAX_SCALE)

    def _split(self, psi):
        psi = tf.cast(psi, tf.float32)
        r_raw, logits = tf.split(psi, 2, axis=-1)
        return tf.nn.softplus(r_raw) + self.min_total_count, logits

    def _elementwise_distribution(self, psi):
        total_count, logits = self._split(psi)
        return tfd.NegativeBinomial(total_count=total_count, logits=logits)

    def pairwise_log_prob_terms(self, x, psi):
        # `lgamma(x + r)` couples x and psi: everything is in `scores`.
        x = _flatten(x)
        total_count, logits = self._split(psi)
        dist = tfd.NegativeBinomial(
            total_count=_flatten(total_count)[tf.newaxis],
            logits=_flatten(logits)[tf.newaxis],
        )
        scores = tf.reduce_sum(dist.log_prob(x[:, tf.newaxis, :]), axis=-1)
        return scores, tf.zeros(tf.shape(x)[:1], tf.float32)

    def support_requirements(self, x):
        return _count_requirements(x, "Negative-Binomial")

    def get_config(self):
        config = super().get_config()
        config.update({"min_total_count": self.min_total_count})
        return config


@keras.saving.register_keras_serializable(package=PACKAGE)
class BernoulliConditional(Conditional):
    """Bernoulli conditional `x | psi ~ Bernoulli(logits=psi)`, independent dims.

    Link: `psi` are logits, `p = sigmoid(psi)`. The pairwise matrix is one
    product: `log p(x | l) = x . l - sum(softplus(l))` for `x` in {0, 1}.
    """

    def _elementwise_distribution(self, psi):
        return tfd.Bernoulli(logits=psi, dtype=tf.float32)

    def pairwise_log_prob_terms(self, x, psi):
        x = _flatten(x)
        logits = _flatten(psi)
        scores = tf.matmul(x, logits, transpose_b=True) - tf.reduce_sum(
            tf.nn.softplus(logits), axis=1
        )[tf.newaxis, :]
        return scores, tf.zeros(tf.shape(x)[:1], tf.float32)

    def support_requirements(self, x):
        return [("binary values (none outside {0, 1}: binarize the data first)",
                 tf.logical_and(tf.not_equal(x, 0), tf.not_equal(x, 1)))]


_ALIASES = {
    "normal": NormalConditional,
    "gaussian": NormalConditional,
    "poisson": PoissonConditional,
    "negative_binomial": NegativeBinomialConditional,
    "bernoulli": BernoulliConditional,
}


def get(identifier):
    """Returns a conditional from a name, a config dict or an instance."""
    if isinstance(identifier, Conditional):
        return identifier
    if isinstance(identifier, dict):
        return keras.saving.deserialize_keras_object(identifier)
    if isinstance(identifier, str):
        key = identifier.lower()
        if key not in _ALIASES:
            raise ValueError(
                f"Unknown conditional {identifier!r}; valid names: "
                f"{sorted(_ALIASES)}."
            )
        return _ALIASES[key]()
    raise ValueError(
        "A conditional must be a `sig_keras.layers.Conditional`, a name or a "
        f"config dict; got {identifier!r}."
    )
