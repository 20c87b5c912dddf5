"""VEEGAN (Srivastava et al., 2017): a reconstructor network and a joint discriminator."""

import keras
import tensorflow as tf

from sig_keras.losses import reduction
from sig_keras.models.two_optimizer_model import TwoOptimizerModel


def _flat(t):
    t = tf.cast(t, tf.float32)
    return tf.reshape(t, [tf.shape(t)[0], -1])


def _logits(t):
    t = tf.cast(t, tf.float32)
    return tf.reshape(t, [tf.shape(t)[0]])


@keras.saving.register_keras_serializable(package="sig_keras")
class VEEGAN(TwoOptimizerModel):
    """VEEGAN: generator `G`, reconstructor `F: x -> z`, joint discriminator `D(x, z)`.

    Implemented objective (Algorithm 1 of the paper, one noise draw per data
    point, simultaneous updates from the same batch):

        D: minimise  -mean[ log sigmoid(D(x, F(x))) + log(1 - sigmoid(D(G(z), z))) ]
        G, F: minimise
            mean[ -D(G(z), z) ] + reconstruction_weight * mean ||z - F(G(z))||^2

    `D` labels data pairs `(x, F(x))` as 1 and generated pairs `(G(z), z)` as
    0, so at its optimum its logit is `log p(x) F(z | x) / p0(z) G(x | z)` and
    `mean[-D(G(z), z)]` estimates `KL(q(x, z) || p(x, z))`, the paper's
    adversarial term (its logit with the opposite label convention). `F`
    receives only the reconstruction gradient (the adversarial term does not
    depend on it), as in Algorithm 1. The reconstruction distance is the
    squared L2 norm (a Gaussian reconstructor up to constants). The
    discriminator sees `concat([flatten(x), z], axis=-1)`, so its input width is
    `data_dim + latent_dim`.

    Reference: Srivastava, Valkov, Russell, Gutmann & Sutton, "VEEGAN:
    Reducing Mode Collapse in GANs using Implicit Variational Learning",
    NeurIPS 2017.

    Args:
        generator: `keras.Model`. Noise `[n, latent_dim]` -> samples.
        discriminator: `keras.Model`. `[n, data_dim + latent_dim]` -> one logit.
        encoder: `keras.Model`. The reconstructor `F`: samples -> `[n, latent_dim]`.
        latent_dim: int. Width of `z ~ N(0, I)`.
        reconstruction_weight: float. Weight (>= 0) of `||z - F(G(z))||^2`.
            Defaults to 1.
        seed: int or None. Seed of the model's `SeedGenerator`.

    Example:
    >>> gen = sig_keras.models.mlp_generator(noise_dim=2, output_dim=2)
    >>> disc = sig_keras.models.mlp_discriminator(2 + 2)
    >>> enc = sig_keras.models.mlp_encoder(2, 2)
    >>> model = VEEGAN(gen, disc, enc, latent_dim=2)
    >>> model.compile(g_optimizer=keras.optimizers.Adam(1e-3),
    ...               d_optimizer=keras.optimizers.Adam(1e-3))
    >>> model.fit(dataset, steps_per_epoch=100)
    >>> x = model.sample(1000, seed=0)
    """

    # Compile-config key of the generator optimizer (stable for saved files).
    _g_optimizer_config_key = "optimizer"

    def __init__(
        self,
        generator,
        discriminator,
        encoder,
        latent_dim,
        reconstruction_weight=1.0,
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        # === Config ===
        self.latent_dim = self._check_generator(generator, latent_dim)
        self.noise_dim = self.latent_dim
        self._check_network(discriminator, "discriminator")
        self._check_network(encoder, "encoder")
        self._check_widths(generator, discriminator, encoder, self.latent_dim)
        self.reconstruction_weight = float(reconstruction_weight)
        if not 0 <= self.reconstruction_weight < float("inf"):
            raise ValueError(
                "`reconstruction_weight` must be a finite number >= 0; got "
                f"{reconstruction_weight}."
            )
        self.seed = seed
        # === Layers ===
        self.generator = generator
        self.discriminator = discriminator
        self.encoder = encoder
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.d_optimizer = None  # set by `compile`
        # === Trackers ===
        self.d_loss_tracker = keras.metrics.Mean(name="d_loss")
        self.g_loss_tracker = keras.metrics.Mean(name="g_loss")
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
        return [self.d_loss_tracker, self.g_loss_tracker, self.reconstruction_tracker]

    # === Build ===

    def _generator_variables(self):
        """Generator and reconstructor: what `model.optimizer` updates."""
        return self.generator.trainable_weights + self.encoder.trainable_weights

    def _build_networks(self):
        if not self.encoder.built or not self.discriminator.built:
            x = self.generator(tf.zeros((1, self.noise_dim)))
            z = self.encoder(x)
            self.discriminator(tf.concat([_flat(x), _flat(z)], axis=-1))

    # === Training ===

    def _compute_losses(self, x, training):
        """Replica shares of the discriminator loss, `G`/`F` loss and reconstruction."""
        x = tf.cast(x, tf.float32)
        z = self.draw_noise_like(x)
        fake = self.generator(z, training=training)
        z_hat = self.encoder(x, training=training)
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
        reconstruction = tf.reduce_sum(tf.square(z - z_rec), axis=-1)
        d_loss = reduction.replica_mean(d_per_example)
        rec_loss = reduction.replica_mean(reconstruction)
        g_loss = reduction.replica_mean(-fake_logits) + self.reconstruction_weight * rec_loss
        return d_loss, g_loss, rec_loss

    def _update_trackers(self, d_loss, g_loss, rec_loss):
        self.d_loss_tracker.update_state(reduction.report_value(d_loss))
        self.g_loss_tracker.update_state(reduction.report_value(g_loss))
        self.reconstruction_tracker.update_state(reduction.report_value(rec_loss))

    def train_step(self, data):
        x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
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
        x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        self._update_trackers(*self._compute_losses(x, training=False))
        return self.metric_logs()

    # === Sampling ===

    def reconstruct(self, x, training=False):
        """`F(x)`: the reconstructor's noise for data `x`."""
        return self.encoder(x, training=training)

    # === Validation ===

    def check_data_shape(self, event_shape, name="data"):
        super().check_data_shape(event_shape, name)
        self._check_network_input(
            self.encoder, event_shape, "encoder (reconstructor)", name
        )

    # === Config ===

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "generator": keras.saving.serialize_keras_object(self.generator),
                "discriminator": keras.saving.serialize_keras_object(self.discriminator),
                "encoder": keras.saving.serialize_keras_object(self.encoder),
                "latent_dim": self.latent_dim,
                "reconstruction_weight": self.reconstruction_weight,
                "seed": self.seed,
            }
        )
        return config
