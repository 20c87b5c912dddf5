"""VAE: the variational auto-encoder baseline of Table 1 (Kingma & Welling)."""

import math

import keras
import tensorflow as tf

from sig_keras.distribute import reduction
from sig_keras.layers import conditionals as conditionals_lib
from sig_keras.models.generative_model import GenerativeModel
from sig_keras.utils import validation


def _normal_kl(mu, sigma):
    """`KL(N(mu, diag(sigma^2)) || N(0, I))` per example, `[n]` (analytic)."""
    return tf.reduce_sum(
        0.5 * (tf.square(mu) + tf.square(sigma) - 1.0) - tf.math.log(sigma), axis=-1
    )


@keras.saving.register_keras_serializable(package="sig_keras")
class VAE(GenerativeModel):
    """Variational auto-encoder with a Gaussian encoder, trained with `model.fit`.

    Model: `z ~ N(0, I)`, `psi = decoder(z)`, `x ~ p(x | psi)` with `p` a
    conditional from `sig_keras.layers` (the same explicit layer SIG uses).
    Inference: `q(z | x) = N(mu(x), diag(sigma(x)^2))`, where the encoder
    outputs `2 * latent_dim` values split as `[mu, rho]` and
    `sigma = softplus(rho) + min_scale` (pre-softplus scale, not a
    log-variance).

    Each training step minimises the negative ELBO (with `kl_weight = 1`),
    averaged over the batch:

        L = - E_q[log p(x | decoder(z))] + kl_weight * KL(q(z | x) || N(0, I))
        z = mu + sigma * eps,  eps ~ N(0, I)      (reparameterisation, 1 draw)
        KL = sum_j [ (mu_j^2 + sigma_j^2 - 1) / 2 - log sigma_j ]   (analytic)

    with `log p(x | psi)` from `conditional.distribution(psi).log_prob(x)`.
    `kl_weight != 1` is the beta-VAE objective (Higgins et al., 2017); a weight
    above 1 pulls the aggregate posterior towards the prior, so fewer prior
    draws land in the gaps between the regions the encoder uses (the decoder
    maps those gaps between modes). The logged `kl` is the unweighted KL and
    `loss` the weighted objective.

    With `num_importance_samples = k > 1` the step minimises instead the
    importance-weighted bound of Burda, Grosse & Salakhutdinov (IWAE), the
    same model and encoder with a tighter bound on `-log p(x)`:

        L_k = - log (1/k) sum_j w_j,   z_j = mu + sigma * eps_j  (k draws)
        log w_j = log p(x | decoder(z_j)) + kl_weight * (log p(z_j) - log q(z_j | x))

    (`kl_weight = 1`: the IWAE bound; `L_1` is the ELBO with a one-draw KL
    estimate, which is why `k = 1` keeps the analytic-KL step above). The
    ELBO charges every region of latent space the encoder leaves empty, and
    the decoder maps those regions between the data's modes; the
    importance-weighted bound lets `q` spread wider than the posterior, so
    fewer prior draws decode between modes (Table 1: high-quality share 0.78
    with the ELBO, above 0.9 with `k = 8`). The logged `loss` is `L_k`,
    `reconstruction` the mean of `-log p(x | decoder(z_j))` over the draws
    and `kl` the analytic KL.

    `sample(n)` draws `z` from the prior, decodes it and samples the
    conditional (so samples include the decoder noise).

    References: Kingma & Welling, "Auto-Encoding Variational Bayes", 2014;
    Burda, Grosse & Salakhutdinov, "Importance Weighted Autoencoders", 2016.

    Args:
        encoder: `keras.Model`. Maps data `[n, *event_shape]` to
            `[n, 2 * latent_dim]`: means, then pre-softplus scales.
        decoder: `keras.Model`. Maps `[n, latent_dim]` to conditional
            parameters `[n, *conditional.param_shape(event_shape)]`.
        latent_dim: int or None. Width of `z`. None reads it from the
            decoder's input. Defaults to None.
        conditional: `sig_keras.layers.Conditional` or its name. The decoder
            likelihood `p(x | psi)`. Defaults to `"normal"`: a
            `NormalConditional` with fixed scale 0.1 (the paper's toy value).
        min_scale: float. Added to the encoder's softplus scale so that
            `log sigma` stays finite. Defaults to 1e-4.
        kl_weight: float in (0, 1e6]. Weight of the KL term. Defaults to 1 (the
            ELBO).
        num_importance_samples: int >= 1. `k`: 1 trains on the ELBO, more on
            the importance-weighted bound `L_k` (k decoder passes per data
            point). Defaults to 1.
        seed: int or None. Seed of the model's `SeedGenerator`.

    Example:
    >>> enc = sig_keras.networks.mlp_encoder(2, 2 * 8)
    >>> dec = sig_keras.networks.mlp_generator(8, 2)
    >>> model = VAE(enc, dec, latent_dim=8)
    >>> model.compile(optimizer=keras.optimizers.Adam(1e-3))
    >>> model.fit(dataset, steps_per_epoch=100)
    >>> x = model.sample(1000, seed=0)
    """

    _objective = "the negative ELBO"
    _sub_models = ("encoder", "decoder", "conditional")
    _samples_from_conditional = True

    def __init__(
        self,
        encoder,
        decoder,
        latent_dim=None,
        conditional="normal",
        min_scale=1e-4,
        kl_weight=1.0,
        num_importance_samples=1,
        seed=None,
        **kwargs,
    ):
        super().__init__(seed=seed, **kwargs)
        # === Config ===
        self.latent_dim = self._check_generator(decoder, latent_dim, role="decoder")
        self._check_network(encoder, "encoder")
        outputs = getattr(encoder, "outputs", None)
        if outputs:
            width = outputs[0].shape[-1]
            if width is not None and width != 2 * self.latent_dim:
                raise ValueError(
                    f"The encoder must output 2 * latent_dim = {2 * self.latent_dim} "
                    f"values (means and pre-softplus scales); it outputs {width}."
                )
        self.min_scale = validation.check_float(min_scale, "min_scale", 0.0, validation.MAX_SCALE)
        self.kl_weight = validation.check_float(kl_weight, "kl_weight", 0.0, validation.MAX_WEIGHT,
                                                min_inclusive=False)
        self.num_importance_samples = validation.check_int(
            num_importance_samples, "num_importance_samples", minimum=1)
        # === Layers ===
        self.encoder = encoder
        self.decoder = decoder
        self.conditional = conditionals_lib.get(conditional)
        # === Trackers ===
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.reconstruction_tracker = keras.metrics.Mean(name="reconstruction")
        self.kl_tracker = keras.metrics.Mean(name="kl")

    @property
    def generator(self):
        """The decoder: what `GenerativeModel` maps noise through."""
        return self.decoder

    @property
    def metrics(self):
        return [self.loss_tracker, self.reconstruction_tracker, self.kl_tracker]

    # === Training ===

    def encode(self, x, training=False):
        """`(mu, sigma)` of `q(z | x)`, each `[n, latent_dim]`."""
        h = tf.cast(self.encoder(x, training=training), tf.float32)
        mu, rho = tf.split(h, 2, axis=-1)
        return mu, tf.nn.softplus(rho) + self.min_scale

    def _compute_losses(self, x, training):
        """Per-example reconstruction `-log p(x | psi)` and KL terms, `[n]` each."""
        x = tf.cast(x, tf.float32)
        mu, sigma = self.encode(x, training=training)
        eps = self.draw_noise_like(x)
        z = mu + sigma * eps
        psi = self.decoder(z, training=training)
        reconstruction = -self.conditional.distribution(psi).log_prob(x)
        return reconstruction, _normal_kl(mu, sigma)

    def _importance_weighted_losses(self, x, training):
        """Per-example `(L_k, reconstruction, kl)`, `[n]` each (see the class
        docstring). The `k` noise draws are `k` calls of `draw_noise_like`,
        so every replica uses its slice of the same global draws."""
        x = tf.cast(x, tf.float32)
        k = self.num_importance_samples
        mu, sigma = self.encode(x, training=training)
        eps = tf.stack([self.draw_noise_like(x) for _ in range(k)])  # [k, n, L]
        z = mu[tf.newaxis] + sigma[tf.newaxis] * eps
        psi = self.decoder(tf.reshape(z, [-1, self.latent_dim]), training=training)
        x_k = tf.tile(x, [k] + [1] * (len(x.shape) - 1))
        log_px = tf.reshape(self.conditional.distribution(psi).log_prob(x_k), [k, -1])
        # log p(z) - log q(z | x) for diagonal Normals (the 2 pi terms cancel).
        log_ratio = tf.reduce_sum(
            0.5 * tf.square(eps) - 0.5 * tf.square(z) + tf.math.log(sigma)[tf.newaxis], axis=-1)
        log_w = log_px + self.kl_weight * log_ratio
        objective = -(tf.reduce_logsumexp(log_w, axis=0) - math.log(k))
        return objective, -tf.reduce_mean(log_px, axis=0), _normal_kl(mu, sigma)

    def _objective_terms(self, x, training):
        """`(objective, reconstruction, kl)` per example for this model's `k`."""
        if self.num_importance_samples > 1:
            return self._importance_weighted_losses(x, training)
        reconstruction, kl = self._compute_losses(x, training)
        return reconstruction + self.kl_weight * kl, reconstruction, kl

    def _update_trackers(self, objective, reconstruction, kl):
        rec_share = reduction.replica_mean(reconstruction)
        kl_share = reduction.replica_mean(kl)
        self._report(
            (self.loss_tracker, reduction.replica_mean(objective)),
            (self.reconstruction_tracker, rec_share),
            (self.kl_tracker, kl_share),
        )

    def train_step(self, data):
        x = self.data_batch(data)
        with tf.GradientTape() as tape:
            objective, reconstruction, kl = self._objective_terms(x, training=True)
            loss = reduction.replica_mean(objective)
        grads = tape.gradient(loss, self.trainable_weights)
        self.optimizer.apply_gradients(zip(grads, self.trainable_weights))
        self._update_trackers(objective, reconstruction, kl)
        return self.metric_logs()

    def test_step(self, data):
        x = self.data_batch(data)
        self._update_trackers(*self._objective_terms(x, training=False))
        return self.metric_logs()

    # === Validation ===

    def check_data_shape(self, event_shape, name="data"):
        self._check_conditional_output(event_shape, "decoder", name)
        self._check_network_input(self.encoder, event_shape, "encoder", name)

    # === Config ===

    def get_config(self):
        config = super().get_config()
        config.update({"min_scale": self.min_scale, "kl_weight": self.kl_weight,
                       "num_importance_samples": self.num_importance_samples})
        return config
