"""Shared plumbing of the adversarial models (`GAN`, `WGANGP`) and GAN-SI.

Each model keeps its training rule in its own `train_step`; this module holds
what they share beyond the two optimizers (`TwoOptimizerModel`): data
validation for images and the GAN-SI generator update.

GAN-SI generator update (Yin & Zhou, Algorithm 1): with `psi_k = G(eps_k)` the
*same* generated batch that the discriminator was just trained on,

    L_G = L_adv(D(psi)) + lambda * L_hat_SIG(x, {psi_k}),
    L_hat_SIG = -(1/N) sum_i [ logsumexp_k log p(x_i | psi_k) - log K ].

The gradient is taken in two stages: `g_psi = dL_adv/dpsi + lambda dL_SIG/dpsi`
(one backward pass through D, one through the `N x K` likelihood matrix), then
one backward pass through G with `output_gradients=g_psi`. A plain GAN
(`lambda = 0`) takes the same path without the SIG term, so the extra cost of
GAN-SI is the likelihood matrix alone.

Automatic weight (`sig_weight="auto"`): the paper sets lambda "so that the GAN
generator loss and the cross-entropy term are on the same scale". The scale
that matters for training is that of the gradients, so "auto" sets

    lambda = auto_sig_scale * EMA( ||dL_adv/dpsi|| / ||dL_SIG/dpsi|| )

norms over the whole global batch (all-reduced across replicas), both terms
under `stop_gradient`, EMA with momentum `auto_weight_momentum` started at the
first step's ratio. The current lambda is logged as `sig_weight`.
"""

import math

import keras
import numpy as np
import tensorflow as tf

from sig_keras.layers import conditionals as conditionals_lib
from sig_keras.distribute import reduction
from sig_keras.losses.semi_implicit import semi_implicit_loss
from sig_keras.models.two_optimizer_model import TwoOptimizerModel

# Scale of the default Normal conditional `p(x | psi) = N(psi, s^2 I)` for
# images in [-1, 1] (the paper gives no value). 0.1 is the paper's toy value:
# a tenth of a pixel's half range.
DEFAULT_IMAGE_SCALE = 0.1


def _check_sig_weight(sig_weight):
    if isinstance(sig_weight, str):
        if sig_weight != "auto":
            raise ValueError(
                f"Unknown `sig_weight` {sig_weight!r}; valid: 'auto' or a "
                "non-negative number."
            )
        return sig_weight
    try:
        value = float(sig_weight)
    except (TypeError, ValueError):
        raise ValueError(
            f"`sig_weight` must be 'auto' or a non-negative number; got {sig_weight!r}."
        ) from None
    if not math.isfinite(value) or value < 0:
        raise ValueError(
            f"`sig_weight` must be 'auto' or a non-negative number; got {sig_weight}."
        )
    return value


def _check_data_range(data_range):
    if data_range is None:  # unbounded generator output (toy data)
        return None
    try:
        low, high = (float(v) for v in data_range)
    except (TypeError, ValueError):
        raise ValueError(
            f"`data_range` must be a pair (low, high); got {data_range!r}."
        ) from None
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise ValueError(f"`data_range` must satisfy low < high; got {data_range!r}.")
    return (low, high)


def _global_norms(*tensors):
    """L2 norm of each tensor over all replicas, in one all-reduce."""
    local = tf.stack([tf.reduce_sum(tf.square(tf.cast(t, tf.float32))) for t in tensors])
    return tf.unstack(tf.sqrt(reduction.all_reduce_sum(local)))


class AdversarialModel(TwoOptimizerModel):
    """Base of `GAN` and `WGANGP`: generator, discriminator, optional SIG term.

    Subclasses implement `train_step` and the defaults of their optimizers.
    """

    _objective = "its own adversarial loss"

    def __init__(self, generator, discriminator, latent_dim, sig_weight=0.0,
                 conditional=None, data_range=(-1.0, 1.0), auto_sig_scale=1.0,
                 auto_weight_momentum=0.99, seed=None, **kwargs):
        super().__init__(**kwargs)
        # === Config ===
        self.latent_dim = self._check_generator(generator, latent_dim)
        self._check_network(discriminator, "discriminator")
        self.sig_weight = _check_sig_weight(sig_weight)
        self.data_range = _check_data_range(data_range)
        self.auto_sig_scale = float(auto_sig_scale)
        if not math.isfinite(self.auto_sig_scale) or self.auto_sig_scale <= 0:
            raise ValueError(f"`auto_sig_scale` must be positive; got {auto_sig_scale}.")
        self.auto_weight_momentum = float(auto_weight_momentum)
        if not 0.0 <= self.auto_weight_momentum < 1.0:
            raise ValueError(
                f"`auto_weight_momentum` must be in [0, 1); got {auto_weight_momentum}."
            )
        self.seed = seed
        # === Layers ===
        self.generator = generator
        self.discriminator = discriminator
        if conditional is None:
            conditional = conditionals_lib.NormalConditional(scale=DEFAULT_IMAGE_SCALE)
        self.conditional = conditionals_lib.get(conditional)
        self.seed_generator = keras.random.SeedGenerator(seed)
        # === State ===
        # EMA of the gradient-norm ratio of the automatic SIG weight.
        self.auto_ratio = self.add_weight(
            name="auto_sig_ratio", shape=(), initializer="zeros", trainable=False,
            aggregation="only_first_replica",
        )
        # === Trackers ===
        self.d_loss_tracker = keras.metrics.Mean(name="d_loss")
        self.g_loss_tracker = keras.metrics.Mean(name="g_loss")
        self.sig_loss_tracker = keras.metrics.Mean(name="sig_loss")
        self.sig_weight_tracker = keras.metrics.Mean(name="sig_weight")
        self.d_optimizer = None

    @property
    def uses_sig(self):
        """True for GAN-SI (a positive or automatic SIG weight)."""
        return self.sig_weight == "auto" or self.sig_weight > 0

    @property
    def metrics(self):
        trackers = [self.d_loss_tracker, self.g_loss_tracker]
        if self.uses_sig:
            trackers += [self.sig_loss_tracker, self.sig_weight_tracker]
        return trackers

    # === Build ===

    def _generator_variables(self):
        return self.generator.trainable_variables + self.conditional.trainable_variables

    # === GAN-SI generator update ===

    def _generator_update(self, x, g_tape, psi, adversarial_loss_fn):
        """Applies one generator step on the generated batch `psi`.

        Args:
            x: this replica's real batch.
            g_tape: the tape that recorded `psi = G(eps)`.
            psi: the generated batch (this replica's slice).
            adversarial_loss_fn: `psi -> per-example generator loss [N]`.

        Returns:
            (adversarial share, SIG share or None, lambda or None).
        """
        gen_vars = self.generator.trainable_variables
        if not self.uses_sig:
            with tf.GradientTape() as tape:
                tape.watch(psi)
                adv = reduction.replica_mean(adversarial_loss_fn(psi))
            g_psi = tape.gradient(adv, psi)
            grads = g_tape.gradient(psi, gen_vars, output_gradients=g_psi)
            self.optimizer.apply_gradients(zip(grads, gen_vars))
            return adv, None, None

        cond_vars = self.conditional.trainable_variables
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(psi)
            adv = reduction.replica_mean(adversarial_loss_fn(psi))
            sig = semi_implicit_loss(x, psi, self.conditional)
        g_adv = tape.gradient(adv, psi)
        g_sig = tape.gradient(sig, psi)
        g_cond = tape.gradient(sig, cond_vars) if cond_vars else []
        del tape
        if self.sig_weight == "auto":
            adv_norm, sig_norm = _global_norms(g_adv, g_sig)
            ratio = adv_norm / (sig_norm + 1e-12)
            m = self.auto_weight_momentum
            ema = tf.where(
                self.auto_ratio > 0, m * self.auto_ratio + (1.0 - m) * ratio, ratio
            )
            self.auto_ratio.assign(ema)
            lam = self.auto_sig_scale * ema
        else:
            lam = tf.constant(self.sig_weight, tf.float32)
        g_psi = g_adv + lam * g_sig
        grads = g_tape.gradient(psi, gen_vars, output_gradients=g_psi)
        grads = list(grads) + [lam * g for g in g_cond]
        self.optimizer.apply_gradients(zip(grads, gen_vars + cond_vars))
        return adv, sig, lam

    def _track_generator(self, adv, sig, lam):
        self.g_loss_tracker.update_state(reduction.report_value(adv))
        if sig is not None:
            self.sig_loss_tracker.update_state(reduction.report_value(sig))
            self.sig_weight_tracker.update_state(lam)

    # === Validation ===

    def check_data(self, x, name="data"):
        """Images must be finite and inside `data_range` (the generator's range)."""
        x = np.asarray(x)
        if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
            raise ValueError(f"{name} must be numeric; got dtype {x.dtype}.")
        xf = x.astype(np.float64)
        if not np.all(np.isfinite(xf)):
            raise ValueError(f"{name} contains NaN or inf values.")
        if self.data_range is None:
            return
        low, high = self.data_range
        tol = 1e-5 * (high - low)
        if xf.min() < low - tol or xf.max() > high + tol:
            raise ValueError(
                f"{name} values span [{xf.min():g}, {xf.max():g}] but the generator "
                f"produces values in data_range={self.data_range}: rescale the "
                "data (e.g. x / 127.5 - 1 for uint8 images and a tanh generator)."
            )

    # === Config ===

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "generator": keras.saving.serialize_keras_object(self.generator),
                "discriminator": keras.saving.serialize_keras_object(self.discriminator),
                "latent_dim": self.latent_dim,
                "sig_weight": self.sig_weight,
                "conditional": keras.saving.serialize_keras_object(self.conditional),
                "data_range": None if self.data_range is None else list(self.data_range),
                "auto_sig_scale": self.auto_sig_scale,
                "auto_weight_momentum": self.auto_weight_momentum,
                "seed": self.seed,
            }
        )
        return config
