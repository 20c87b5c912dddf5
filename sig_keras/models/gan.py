"""GAN and GAN-SI (DCGAN objective), trained with `model.fit`."""

import keras
import tensorflow as tf

from sig_keras.distribute import reduction
from sig_keras.losses.adversarial import minimax_discriminator_loss
from sig_keras.losses.adversarial import modified_generator_loss
from sig_keras.models.adversarial_model import AdversarialModel
from sig_keras.models.adversarial_model import DEFAULT_IMAGE_SCALE
from sig_keras.utils import validation


@keras.saving.register_keras_serializable(package="sig_keras")
class GAN(AdversarialModel):
    """Non-saturating GAN (DCGAN), and GAN-SI with `sig_weight > 0` or "auto".

    One training step (Yin & Zhou, Algorithm 1), real batch `x_1..x_N`:

    1. `eps_1..eps_N ~ N(0, I)`, fakes `psi_k = G(eps_k)` (one generator pass).
    2. Discriminator step on
       `L_D = -(1/N) sum_i [log D(x_i) + log(1 - D(psi_i))]`.
    3. Generator step on the same `psi_k`:
       `L_G = -(1/N) sum_k log D(psi_k) + lambda * L_hat_SIG(x, {psi_k})`.

    `lambda = sig_weight`; `sig_weight=0` is the plain DCGAN. With
    `sig_weight="auto"` lambda follows the ratio of the gradient norms of the
    two generator terms with respect to the generated batch (see
    `sig_keras.losses.combine_adversarial_and_sig_gradients`). The SIG term
    uses `conditional`, by default `NormalConditional(scale=0.1)`,
    `p(x | psi) = N(x; psi, 0.1^2 I)`.

    On images the defaults (`auto_sig_scale=1`, K = N) are the measured
    choice: a larger scale or K covers modes sooner but pulls the generated
    images towards averages of digits (blurred samples), and a full weight
    held all run keeps that pull. The SIG term's gain is early, so on
    Stacked MNIST the weight falls to a tenth over the first 4,000 steps
    (`sig_keras.callbacks.SigWeightSchedule`) and to zero with the learning
    rates in a cool-down (`sig_keras.callbacks.LinearCooldown`); that
    recipe and its measurements are in docs/gan_si.md.

    Under a distribution strategy every replica draws the same global noise
    and keeps its slice, and the SIG term gathers all generated samples, so a
    step equals the single-device step on the same global batch.

    Reference: Yin & Zhou, "Semi-Implicit Generative Model"; Radford et al.,
    "Unsupervised representation learning with deep convolutional GANs".

    Args:
        generator: `keras.Model`. Noise `[n, latent_dim]` -> images in
            `data_range` (e.g. tanh output for [-1, 1]).
        discriminator: `keras.Model`. Images -> one logit per image.
        latent_dim: int or None. Width of the noise. None reads it from the
            generator's input. Defaults to None.
        sig_weight: float in [0, 1e6] or "auto" (larger weights overflow float32 losses). Weight lambda of the SIG term.
            Defaults to 0 (plain GAN).
        conditional: `sig_keras.layers.Conditional`, its name or None. The SIG
            conditional; None gives `NormalConditional(scale=0.1)`.
        data_range: pair. Range of the data and of the generator output;
            `fit` rejects data outside it. Defaults to (-1, 1).
        label_smoothing: float. One-sided label smoothing of the real label in
            the discriminator loss. Defaults to 0.
        r1_weight: float in [0, 1e6]. Weight gamma of the R1 penalty
            `(gamma / 2) ||grad_x D(x)||^2` on real data added to the
            discriminator loss (Mescheder et al., 2018): it keeps the
            discriminator's input gradient, the signal the generator follows,
            small on the data. Defaults to 0 (none).
        joint_batch: bool. Show the discriminator the real and the generated
            batch as one batch (concatenated; the logits are split again), in
            its step and in the generator's, instead of one call each. With
            batch norm in the discriminator, a call on the generated batch
            alone standardizes its features channel by channel with that
            batch's own statistics, so a difference from the real images
            that shifts or scales a feature map across the whole batch does
            not reach the logit; one batch gives both halves the same
            statistics. Without batch norm it is the same step. Defaults to
            False (one call each, the DCGAN convention).
        auto_sig_scale: float in (0, 1e6]. With "auto", lambda = auto_sig_scale * ratio.
            Defaults to 1.
        auto_weight_momentum: float. EMA momentum of the gradient norms of the
            "auto" weight. Defaults to 0.99.
        sig_num_samples: int or None. `K`, the generated samples the SIG term
            sees per step; at least the global batch size. None: the batch
            (`K = N`, Algorithm 1). With `K > N` the extra `K - N` samples
            are drawn without gradient and the batch's SIG gradient is scaled
            by `K / N`, an unbiased estimate of the gradient of the tighter
            bound `L_K` for one more generator forward pass (see
            `docs/gan_si.md`). Defaults to None.
        sig_per_channel: bool. The SIG term as the sum over the images'
            channels of each channel's SIG term
            (`semi_implicit_loss(..., per_channel=True)`): every real
            channel pulls the generated channel nearest to it in that
            channel, not the channel of the image nearest in all of them.
            For images whose channels are independent, as in Stacked MNIST,
            where a channel the discriminator barely reads otherwise gets
            only the pull of whole images. Defaults to False (the paper's
            joint term).
        seed: int or None. Seed of the model's `SeedGenerator`.

    Example:
    >>> g = sig_keras.networks.mnist3_generator("M")
    >>> d = sig_keras.networks.mnist3_discriminator("M")
    >>> model = GAN(g, d, latent_dim=256, sig_weight="auto")
    >>> model.compile(d_optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5),
    ...               g_optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5))
    >>> model.fit(sig_keras.datasets.stacked_mnist("train", 64, seed=0),
    ...           steps_per_epoch=1000)
    >>> images = model.sample(16, seed=0)
    """

    def __init__(self, generator, discriminator, latent_dim=None, sig_weight=0.0,
                 conditional=None, data_range=(-1.0, 1.0), label_smoothing=0.0,
                 auto_sig_scale=1.0, auto_weight_momentum=0.99, sig_num_samples=None,
                 r1_weight=0.0, joint_batch=False, sig_per_channel=False, seed=None, **kwargs):
        super().__init__(generator, discriminator, latent_dim, data_range=data_range,
                         seed=seed, **kwargs)
        self._init_sig_term(sig_weight, conditional, auto_sig_scale, auto_weight_momentum,
                            sig_num_samples, sig_per_channel)
        self.label_smoothing = validation.check_float(
            label_smoothing, "label_smoothing", 0.0, 1.0, max_inclusive=False)
        self.r1_weight = validation.check_float(r1_weight, "r1_weight", 0.0, 1e6)
        if not isinstance(joint_batch, bool):
            raise ValueError(f"`joint_batch` must be True or False; got {joint_batch!r}.")
        self.joint_batch = joint_batch

    @staticmethod
    def _default_d_optimizer():
        return keras.optimizers.Adam(2e-4, beta_1=0.5)

    @staticmethod
    def _default_g_optimizer():
        return keras.optimizers.Adam(2e-4, beta_1=0.5)

    # === Training ===

    _discriminator_loss = staticmethod(minimax_discriminator_loss)
    _generator_loss = staticmethod(modified_generator_loss)

    def train_step(self, data):
        x = self._real_batch(data)
        noise = self.draw_noise_like(x)
        with tf.GradientTape() as g_tape:
            fake = self.generator(noise, training=True)
        self._discriminator_step(x, fake)
        # Generator step on the same generated batch (Algorithm 1).
        self._generator_step(x, g_tape, fake)
        return self.metric_logs()

    def _discriminate(self, x, fake):
        """`(real logits, fake logits)` in training mode: one call on the
        concatenated batch with `joint_batch`, else one call each."""
        if not self.joint_batch:
            return (self.discriminator(x, training=True),
                    self.discriminator(fake, training=True))
        logits = self.discriminator(tf.concat([x, fake], axis=0), training=True)
        return logits[:tf.shape(x)[0]], logits[tf.shape(x)[0]:]

    def _discriminate_fake(self, x, fake):
        if not self.joint_batch:
            return super()._discriminate_fake(x, fake)
        return self._discriminate(x, fake)[1]

    def _discriminator_step(self, x, fake):
        """One discriminator update on real `x` and generated `fake` (label
        smoothing and the R1 penalty in training only); updates its tracker."""
        d_vars = self.discriminator.trainable_variables
        fake = tf.stop_gradient(fake)
        with tf.GradientTape() as d_tape:
            if self.r1_weight:
                with tf.GradientTape() as x_tape:
                    x_tape.watch(x)
                    real_logits, fake_logits = self._discriminate(x, fake)
                    real_sum = tf.reduce_sum(real_logits)
                grad_x = x_tape.gradient(real_sum, x)
                penalty = 0.5 * self.r1_weight * tf.reduce_sum(
                    tf.reshape(tf.square(grad_x), [tf.shape(x)[0], -1]), axis=1)
            else:
                real_logits, fake_logits = self._discriminate(x, fake)
                penalty = 0.0
            d_loss = reduction.replica_mean(
                minimax_discriminator_loss(real_logits, fake_logits, self.label_smoothing)
                + penalty
            )
        d_grads = d_tape.gradient(d_loss, d_vars)
        self.d_optimizer.apply_gradients(zip(d_grads, d_vars))
        self._report((self.d_loss_tracker, d_loss))

    # === Config ===

    def get_config(self):
        config = super().get_config()
        config["label_smoothing"] = self.label_smoothing
        if self.r1_weight:
            config["r1_weight"] = self.r1_weight
        if self.joint_batch:
            config["joint_batch"] = True
        return config


__all__ = ["GAN", "DEFAULT_IMAGE_SCALE"]
