"""VEEGAN (Srivastava et al., 2017): a reconstructor network and a joint discriminator."""

import keras
import tensorflow as tf

from sig_keras.distribute import reduction
from sig_keras.models.adversarial_model import AdversarialModel
from sig_keras.utils import validation


def _flat(t):
    t = tf.cast(t, tf.float32)
    return tf.reshape(t, [tf.shape(t)[0], -1])


def _logits(t):
    t = tf.cast(t, tf.float32)
    return tf.reshape(t, [tf.shape(t)[0]])


@keras.saving.register_keras_serializable(package="sig_keras")
class VEEGAN(AdversarialModel):
    """VEEGAN: generator `G`, Gaussian reconstructor `F(z | x)`, joint discriminator `D(x, z)`.

    Implemented objective (Algorithm 1 of the paper, one noise draw per data
    point, simultaneous updates from the same batch):

        v = F(x) + s * n,  n ~ N(0, I)           (a sample of F(z | x) = N(F(x), s^2 I))
        D: minimise  -mean[ log sigmoid(D(x, v)) + log(1 - sigmoid(D(G(z), z))) ]
        G, F: minimise
            mean[ -D(G(z), z) ]
            + reconstruction_weight * mean[ ||z - F(G(z))||^2 / (2 s^2) ]

    Every choice and where it comes from (the paper's Algorithm 1 and the
    authors' 2-D ring notebook, in their GitHub repository akashgit/VEEGAN):

    - Reconstructor: Gaussian, `F(z | x) = N(F(x), s^2 I)` with a fixed
      `s = reconstructor_scale`, 1 by default (the notebook's
      `Normal(loc=F(x), scale=1)`). The discriminator's data pairs use a
      *sample* `v ~ F(z | x)` (Algorithm 1: `v_i ~ F_gamma(x_i)`), not the mean.
      With the mean, `(x, F(x))` lies on a `data_dim`-dimensional surface of
      the joint space while `(G(z), z)` spans `latent_dim` dimensions: the
      discriminator separates the two from `z` alone and its gradient tells
      the generator nothing about the data (on the 25-Gaussian grid such a
      model finds under one mode).
    - Reconstruction distance: `d(z, x) = -log F(z | x)` up to its constant,
      `||z - F(G(z))||^2 / (2 s^2)`, weight `reconstruction_weight` (1 in the
      paper and the notebook, whose generator loss is
      `mean(logit) - mean(log F(z | G(z)))`).
    - Discriminator input: `concat([flatten(x), z], axis=-1)`, no scaling (the
      notebook joins `[z, x]`; the order does not matter to a dense layer).
    - Labels and signs: `D` labels data pairs 1 and generated pairs 0, so at
      its optimum its logit is `log p(x) F(z | x) / (p0(z) G(x | z))` and
      `mean[-D(G(z), z)]` estimates `KL(q(x, z) || p(x, z))`, the paper's
      adversarial term. The notebook uses the opposite labels and minimises
      `+mean(logit)`: the same objective.
    - `F` receives only the reconstruction gradient (the adversarial term does
      not depend on it), as in Algorithm 1 and the notebook.
    - Not here: the notebook feeds its generator one extra noise coordinate
      (`eps_dim = 1`) beside a 254-d `z`; any extra noise is part of `z` here.
      The latent width, network sizes, optimizers and step counts are the
      caller's (for Table 1: `examples/mixture_of_gaussians.py`, which
      documents where they come from).

    Reference: Srivastava, Valkov, Russell, Gutmann & Sutton, "VEEGAN:
    Reducing Mode Collapse in GANs using Implicit Variational Learning",
    NeurIPS 2017.

    Args:
        generator: `keras.Model`. Noise `[n, latent_dim]` -> samples.
        discriminator: `keras.Model`. `[n, data_dim + latent_dim]` -> one logit.
        encoder: `keras.Model`. The reconstructor's mean `F`: samples ->
            `[n, latent_dim]`.
        latent_dim: int or None. Width of `z ~ N(0, I)`. None reads it from
            the generator's input. Defaults to None.
        reconstruction_weight: float. Weight in [0, 1e6] of the reconstruction
            term `||z - F(G(z))||^2 / (2 s^2)`. Defaults to 1.
        reconstructor_scale: float. `s` in [1e-6, 1e6], the standard deviation of the
            Gaussian reconstructor. Defaults to 1 (the authors' value).
        seed: int or None. Seed of the model's `SeedGenerator`.
        **kwargs: `data_range` (see `AdversarialModel`; default None,
            unbounded) and `keras.Model` arguments.

    Example:
    >>> gen = sig_keras.networks.mlp_generator(latent_dim=2, output_dim=2)
    >>> disc = sig_keras.networks.mlp_discriminator(2 + 2)
    >>> enc = sig_keras.networks.mlp_encoder(2, 2)
    >>> model = VEEGAN(gen, disc, enc, latent_dim=2)
    >>> model.compile(g_optimizer=keras.optimizers.Adam(1e-3, beta_1=0.5),
    ...               d_optimizer=keras.optimizers.Adam(1e-3, beta_1=0.5))
    >>> model.fit(dataset, steps_per_epoch=100)
    >>> x = model.sample(1000, seed=0)
    """

    _sub_models = AdversarialModel._sub_models + ("encoder",)

    def __init__(
        self,
        generator,
        discriminator,
        encoder,
        latent_dim=None,
        reconstruction_weight=1.0,
        reconstructor_scale=1.0,
        seed=None,
        **kwargs,
    ):
        super().__init__(generator, discriminator, latent_dim, seed=seed, **kwargs)
        # === Config ===
        self._check_network(encoder, "encoder")
        self._check_widths(generator, discriminator, encoder, self.latent_dim)
        self.reconstruction_weight = validation.check_float(
            reconstruction_weight, "reconstruction_weight", 0.0, validation.MAX_WEIGHT)
        self.reconstructor_scale = validation.check_float(
            reconstructor_scale, "reconstructor_scale", validation.MIN_SCALE, validation.MAX_SCALE)
        # === Layers ===
        self.encoder = encoder
        # === Trackers ===
        self.reconstruction_tracker = keras.metrics.Mean(name="reconstruction")

    @staticmethod
    def _check_widths(generator, discriminator, encoder, latent_dim):
        """Static width checks where the networks have known input/output shapes."""

        def width(model, attr):
            tensors = getattr(model, attr, None)
            return tensors[0].shape[-1] if tensors else None

        enc_out = width(encoder, "outputs")
        if enc_out is not None and enc_out != latent_dim:
            raise ValueError(
                f"The encoder (reconstructor) must output latent_dim = {latent_dim} "
                f"values; it outputs {enc_out}."
            )
        gen_out = getattr(generator, "outputs", None)
        d_in = width(discriminator, "inputs")
        if gen_out and d_in is not None:
            shape = gen_out[0].shape[1:]
            if None not in shape:
                data_dim = 1
                for d in shape:
                    data_dim *= int(d)
                if d_in != data_dim + latent_dim:
                    raise ValueError(
                        "The discriminator sees (x, z) pairs and must take inputs "
                        f"of width data_dim + latent_dim = {data_dim} + {latent_dim} "
                        f"= {data_dim + latent_dim}; it takes {d_in}."
                    )

    @property
    def metrics(self):
        return super().metrics + [self.reconstruction_tracker]

    # === Build ===

    def _generator_variables(self):
        """Generator and reconstructor: what `model.optimizer` updates."""
        return self.generator.trainable_weights + self.encoder.trainable_weights

    def _build_networks(self):
        if not self.encoder.built or not self.discriminator.built:
            x = self.generator(tf.zeros((1, self.latent_dim)))
            z = self.encoder(x)
            self.discriminator(tf.concat([_flat(x), _flat(z)], axis=-1))

    # === Training ===

    def _compute_losses(self, x, training):
        """Replica shares of the discriminator loss, `G`/`F` loss and reconstruction."""
        x = tf.cast(x, tf.float32)
        z = self.draw_noise_like(x)
        fake = self.generator(z, training=training)
        # v ~ F(z | x) = N(F(x), s^2 I): the reconstructor's sample, not its mean.
        z_hat = _flat(self.encoder(x, training=training))
        z_hat = z_hat + self.reconstructor_scale * self.draw_noise_like(x)
        real_logits = _logits(
            self.discriminator(tf.concat([_flat(x), _flat(z_hat)], -1), training=training)
        )
        fake_logits = _logits(
            self.discriminator(tf.concat([_flat(fake), z], -1), training=training)
        )
        d_per_example = tf.nn.sigmoid_cross_entropy_with_logits(
            labels=tf.ones_like(real_logits), logits=real_logits
        ) + tf.nn.sigmoid_cross_entropy_with_logits(
            labels=tf.zeros_like(fake_logits), logits=fake_logits
        )
        z_rec = _flat(self.encoder(fake, training=training))
        # -log N(z; F(G(z)), s^2 I) up to its constant.
        reconstruction = tf.reduce_sum(tf.square(z - z_rec), axis=-1) / (
            2.0 * self.reconstructor_scale**2
        )
        d_loss = reduction.replica_mean(d_per_example)
        rec_loss = reduction.replica_mean(reconstruction)
        g_loss = reduction.replica_mean(-fake_logits) + self.reconstruction_weight * rec_loss
        return d_loss, g_loss, rec_loss

    def _update_trackers(self, d_loss, g_loss, rec_loss):
        self._report(
            (self.d_loss_tracker, d_loss),
            (self.g_loss_tracker, g_loss),
            (self.reconstruction_tracker, rec_loss),
        )

    def train_step(self, data):
        x = self._real_batch(data)
        d_vars = self.discriminator.trainable_weights
        g_vars = self._generator_variables()
        with tf.GradientTape() as d_tape, tf.GradientTape() as g_tape:
            d_loss, g_loss, rec_loss = self._compute_losses(x, training=True)
        d_grads = d_tape.gradient(d_loss, d_vars)
        g_grads = g_tape.gradient(g_loss, g_vars)
        self.d_optimizer.apply_gradients(zip(d_grads, d_vars))
        self.optimizer.apply_gradients(zip(g_grads, g_vars))
        self._update_trackers(d_loss, g_loss, rec_loss)
        return self.metric_logs()

    def test_step(self, data):
        x = self._real_batch(data)
        self._update_trackers(*self._compute_losses(x, training=False))
        return self.metric_logs()

    # === Validation ===

    def _data_networks(self):
        # The discriminator takes (x, z) pairs: only the encoder takes data.
        return {"encoder (reconstructor)": self.encoder}

    # === Config ===

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "reconstruction_weight": self.reconstruction_weight,
                "reconstructor_scale": self.reconstructor_scale,
            }
        )
        return config
