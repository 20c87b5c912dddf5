"""Unrolled GAN (Metz et al., 2017): the generator looks k discriminator steps ahead."""

import keras
import tensorflow as tf

from sig_keras.distribute import reduction
from sig_keras.losses.adversarial import minimax_discriminator_loss
from sig_keras.losses.adversarial import minimax_generator_loss
from sig_keras.losses.adversarial import modified_generator_loss
from sig_keras.models.adversarial_model import AdversarialModel
from sig_keras.utils import validation

_GENERATOR_LOSSES = ("non_saturating", "minimax")


@keras.saving.register_keras_serializable(package="sig_keras")
class UnrolledGAN(AdversarialModel):
    """GAN whose generator is trained against a k-step unrolled discriminator.

    Each training step (batch `x`, noise `z` drawn from the model's
    `SeedGenerator`, as many noise vectors as data points, one generator pass
    shared by both updates as in `sig_keras.models.GAN`):

    1. Discriminator step: `theta <- d_optimizer(grad_theta L_D(theta))` with
       the minimax loss `L_D = -mean[log D(x) + log(1 - D(G(z)))]`.
    2. Generator step on the same `G(z)`, from the *updated* `theta_0 = theta`:
       unroll `k` plain gradient-descent steps of the discriminator on the same
       batch `x` and fakes `G(z)`,

           theta_{i+1} = theta_i - unrolling_lr * grad_theta L_D(theta_i; x, G(z)),

       and update the generator with `grad_phi L_G(theta_k(phi), phi)`, the
       gradient flowing through the unrolled updates (second-order terms kept,
       nested `GradientTape`s and `discriminator.stateless_call`). The unrolled
       weights are never written back: the discriminator keeps `theta`.

    With `unrolling_steps=0` this is exactly the update of
    `sig_keras.models.GAN` with `sig_weight=0` (discriminator step, then a
    generator step on the same fakes against the updated discriminator). The
    unrolled steps use plain SGD (not the discriminator's optimizer), the
    usual simplification of Metz et al.'s unrolled Adam.
    Non-trainable discriminator state (batch-norm statistics) is held fixed
    during unrolling: use discriminators without batch norm.

    Under a distribution strategy the unrolled gradients are summed across
    replicas, so the unrolled weights equal the single-device ones.

    Reference: Metz, Poole, Pfau & Sohl-Dickstein, "Unrolled Generative
    Adversarial Networks", ICLR 2017.

    Args:
        generator: `keras.Model`. Noise `[n, latent_dim]` -> samples.
        discriminator: `keras.Model`. Samples -> one logit per sample.
        latent_dim: int or None. Width of the noise `z ~ N(0, I)`. None reads
            it from the generator's input. Defaults to None.
        unrolling_steps: int. `k >= 0`. Defaults to 5.
        unrolling_lr: float. Learning rate of the unrolled SGD steps (in (0, 1e6]).
            Defaults to 1e-2.
        generator_loss: str. `"non_saturating"` (`-log D(G(z))`) or
            `"minimax"` (`log(1 - D(G(z)))`). Defaults to `"non_saturating"`.
        seed: int or None. Seed of the model's `SeedGenerator`.
        **kwargs: `data_range` (see `AdversarialModel`; default None,
            unbounded) and `keras.Model` arguments.

    Example:
    >>> gen = sig_keras.networks.mlp_generator(latent_dim=2, output_dim=2)
    >>> disc = sig_keras.networks.mlp_discriminator(2)
    >>> model = UnrolledGAN(gen, disc, latent_dim=2, unrolling_steps=5)
    >>> model.compile(g_optimizer=keras.optimizers.Adam(1e-3),
    ...               d_optimizer=keras.optimizers.Adam(1e-4))
    >>> model.fit(dataset, steps_per_epoch=100)
    >>> x = model.sample(1000, seed=0)
    """

    def __init__(
        self,
        generator,
        discriminator,
        latent_dim=None,
        unrolling_steps=5,
        unrolling_lr=1e-2,
        generator_loss="non_saturating",
        seed=None,
        **kwargs,
    ):
        super().__init__(generator, discriminator, latent_dim, seed=seed, **kwargs)
        # === Config ===
        self.unrolling_steps = validation.check_int(unrolling_steps, "unrolling_steps", minimum=0)
        self.unrolling_lr = validation.check_float(
            unrolling_lr, "unrolling_lr", 0.0, validation.MAX_WEIGHT, min_inclusive=False)
        if generator_loss not in _GENERATOR_LOSSES:
            raise ValueError(
                f"Unknown `generator_loss` {generator_loss!r}; valid: "
                f"{list(_GENERATOR_LOSSES)}."
            )
        self.generator_loss = generator_loss

    # === Training ===

    _discriminator_loss = staticmethod(minimax_discriminator_loss)

    def _generator_loss(self, fake_outputs):
        if self.generator_loss == "minimax":
            return minimax_generator_loss(fake_outputs)
        return modified_generator_loss(fake_outputs)

    def _d_loss(self, real_logits, fake_logits):
        return reduction.replica_mean(self._discriminator_loss(real_logits, fake_logits))

    def _unrolled_discriminator_weights(self, x, fake):
        """`theta_k`: k SGD steps on `L_D` from the current weights, differentiable."""
        params = [tf.identity(v) for v in self.discriminator.trainable_variables]
        fixed = [tf.identity(v) for v in self.discriminator.non_trainable_variables]
        for _ in range(self.unrolling_steps):
            with tf.GradientTape() as tape:
                tape.watch(params)
                real_logits, _ = self.discriminator.stateless_call(
                    params, fixed, x, training=True
                )
                fake_logits, _ = self.discriminator.stateless_call(
                    params, fixed, fake, training=True
                )
                loss = self._d_loss(real_logits, fake_logits)
            grads = tape.gradient(loss, params)
            grads = [tf.zeros_like(p) if g is None else g for g, p in zip(grads, params)]
            grads = reduction.all_reduce_sum(grads)
            params = [p - self.unrolling_lr * g for p, g in zip(params, grads)]
        return params, fixed

    def unrolled_generator_loss(self, x, fake, training=True):
        """This replica's share of `L_G(D_{theta_k}(fake))`, `theta_k` unrolled on `(x, fake)`."""
        if self.unrolling_steps == 0:
            fake_logits = self.discriminator(fake, training=training)
        else:
            params, fixed = self._unrolled_discriminator_weights(x, fake)
            fake_logits, _ = self.discriminator.stateless_call(
                params, fixed, fake, training=training
            )
        return reduction.replica_mean(self._generator_loss(fake_logits))

    def train_step(self, data):
        x = self._real_batch(data)
        d_vars = self.discriminator.trainable_weights
        g_vars = self.generator.trainable_weights
        noise = self.draw_noise_like(x)
        with tf.GradientTape() as g_tape:
            fake = self.generator(noise, training=True)

        # 1. Discriminator step (on the fakes, no gradient to the generator).
        with tf.GradientTape() as d_tape:
            d_loss = self._d_loss(
                self.discriminator(x, training=True),
                self.discriminator(tf.stop_gradient(fake), training=True),
            )
        d_grads = d_tape.gradient(d_loss, d_vars)
        self.d_optimizer.apply_gradients(zip(d_grads, d_vars))

        # 2. Generator loss against the unrolled (updated) discriminator; the
        # same tape resumes recording, so gradients reach G through `fake`.
        with g_tape:
            g_loss = self.unrolled_generator_loss(x, fake, training=True)
        grads = g_tape.gradient(g_loss, g_vars)
        self.optimizer.apply_gradients(zip(grads, g_vars))

        self._report((self.d_loss_tracker, d_loss), (self.g_loss_tracker, g_loss))
        return self.metric_logs()

    # === Config ===

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "unrolling_steps": self.unrolling_steps,
                "unrolling_lr": self.unrolling_lr,
                "generator_loss": self.generator_loss,
            }
        )
        return config
