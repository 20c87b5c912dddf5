"""WGAN-GP and WGAN-GP-SI, trained with `model.fit`."""

import keras
import tensorflow as tf

from sig_keras.distribute import reduction
from sig_keras.losses.adversarial import wasserstein_discriminator_loss
from sig_keras.losses.adversarial import wasserstein_generator_loss
from sig_keras.losses.adversarial import wasserstein_gradient_penalty
from sig_keras.models.adversarial_model import AdversarialModel
from sig_keras.utils import random as random_lib
from sig_keras.utils import validation


@keras.saving.register_keras_serializable(package="sig_keras")
class WGANGP(AdversarialModel):
    """WGAN with gradient penalty, and WGAN-GP-SI with `sig_weight > 0` or "auto".

    One training step on a real batch `x_1..x_N`:

    - `critic_steps` updates of the discriminator `f` (the paper's critic),
      each with fresh noise and the same real batch (the keras-io
      convention), on
      `L_D = mean f(psi) - mean f(x) + gradient_penalty_weight * mean (||grad f(x_hat)|| - 1)^2`,
      fakes `psi = G(eps)`, `x_hat = x + u (psi - x)`, `u ~ Uniform(0, 1)`.
    - One generator update on the fakes `psi_k = G(eps_k)` of the *last*
      discriminator update (Algorithm 1: the same `psi_k` for both players):
      `L_G = -mean f(psi) + lambda * L_hat_SIG(x, {psi_k})`.

    The discriminator must not use batch norm (the penalty is per example).
    See `GAN` for `sig_weight`, `conditional`, `data_range` and distribution.

    Reference: Gulrajani et al., "Improved training of Wasserstein GANs";
    Yin & Zhou, "Semi-Implicit Generative Model".

    Args:
        generator: `keras.Model`. Noise -> images in `data_range`.
        discriminator: `keras.Model`. Images -> one score per image (the
            paper's critic).
        latent_dim: int or None. Width of the noise. None reads it from the
            generator's input. Defaults to None.
        gradient_penalty_weight: float in [0, 1e6]. Defaults to 10.
        critic_steps: int >= 1. Discriminator updates per generator update,
            the paper's `n_critic`. Defaults to 5.
        sig_weight: float in [0, 1e6] or "auto". Defaults to 0 (plain WGAN-GP).
        conditional: SIG conditional or None (`NormalConditional(0.1)`).
        data_range: pair. Defaults to (-1, 1).
        auto_sig_scale, auto_weight_momentum, sig_num_samples, sig_per_channel, seed: see
            `GAN`.
        **kwargs: `keras.Model` arguments.

    Example:
    >>> model = WGANGP(sig_keras.networks.dcgan_generator(),
    ...                sig_keras.networks.dcgan_discriminator(batch_norm=False),
    ...                latent_dim=128, sig_weight="auto")
    >>> model.compile()  # Adam(1e-4, beta_1=0, beta_2=0.9) for both players
    >>> model.fit(sig_keras.datasets.cifar10("train", 64, seed=0), steps_per_epoch=1000)
    """

    def __init__(self, generator, discriminator, latent_dim=None, gradient_penalty_weight=10.0,
                 critic_steps=5, sig_weight=0.0, conditional=None,
                 data_range=(-1.0, 1.0), auto_sig_scale=1.0, auto_weight_momentum=0.99,
                 sig_num_samples=None, sig_per_channel=False, seed=None, **kwargs):
        super().__init__(generator, discriminator, latent_dim, data_range=data_range,
                         seed=seed, **kwargs)
        self._init_sig_term(sig_weight, conditional, auto_sig_scale, auto_weight_momentum,
                            sig_num_samples, sig_per_channel)
        # === Config ===
        self.gradient_penalty_weight = validation.check_float(
            gradient_penalty_weight, "gradient_penalty_weight", 0.0, validation.MAX_WEIGHT)
        self.critic_steps = validation.check_int(critic_steps, "critic_steps", minimum=1)
        # === Trackers ===
        self.gp_tracker = keras.metrics.Mean(name="gradient_penalty")

    @property
    def metrics(self):
        return super().metrics + [self.gp_tracker]

    @staticmethod
    def _default_d_optimizer():
        return keras.optimizers.Adam(1e-4, beta_1=0.0, beta_2=0.9)

    @staticmethod
    def _default_g_optimizer():
        return keras.optimizers.Adam(1e-4, beta_1=0.0, beta_2=0.9)

    # === Training ===

    def _interpolation_weights(self, x):
        """This replica's slice of `u ~ U(0, 1)` drawn for the global batch."""
        local_n = x.shape[0]
        if local_n is None:
            local_n = tf.shape(x)[0]
        global_n = local_n * reduction.num_replicas()
        return reduction.local_slice(
            random_lib.uniform((global_n,), seed=self.seed_generator)
        )

    _discriminator_loss = staticmethod(wasserstein_discriminator_loss)
    _generator_loss = staticmethod(wasserstein_generator_loss)

    def train_step(self, data):
        x = self._real_batch(data)
        d_vars = self.discriminator.trainable_variables
        for step in range(self.critic_steps):
            noise = self.draw_noise_like(x)
            if step == self.critic_steps - 1:
                # The last generated batch also feeds the generator update.
                with tf.GradientTape() as g_tape:
                    fake = self.generator(noise, training=True)
            else:
                fake = self.generator(noise, training=True)
            fake_input = tf.stop_gradient(fake)
            u = self._interpolation_weights(x)
            with tf.GradientTape() as d_tape:
                real_scores = self.discriminator(x, training=True)
                fake_scores = self.discriminator(fake_input, training=True)
                w_loss = reduction.replica_mean(
                    self._discriminator_loss(real_scores, fake_scores)
                )
                gp = reduction.replica_mean(
                    wasserstein_gradient_penalty(
                        self.discriminator, x, fake_input, interpolation_weights=u
                    )
                )
                d_loss = w_loss + self.gradient_penalty_weight * gp
            d_grads = d_tape.gradient(d_loss, d_vars)
            self.d_optimizer.apply_gradients(zip(d_grads, d_vars))
            self._report((self.d_loss_tracker, d_loss), (self.gp_tracker, gp))

        self._generator_step(x, g_tape, fake)
        return self.metric_logs()

    # === Config ===

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "gradient_penalty_weight": self.gradient_penalty_weight,
                "critic_steps": self.critic_steps,
            }
        )
        return config
