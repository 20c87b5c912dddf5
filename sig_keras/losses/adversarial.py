"""Adversarial losses, named the TF-GAN way (pure functions, any rank).

Discriminator (critic) outputs are *logits* (real numbers), shape `[N, ...]`.
Every function returns per-example values, shape `[N]` (non-batch axes are
averaged), so that a model reduces them with
`sig_keras.distribute.reduction.replica_mean` (each replica returns its share of
the global mean; see `reduction.py`).

With `D = sigmoid(logit)`:

    minimax_discriminator_loss:    -log D(x) - log(1 - D(G(eps)))
                                 = softplus(-l_real) + softplus(l_gen)
    modified_generator_loss:        -log D(G(eps)) = softplus(-l_gen)  (non-saturating)
    minimax_generator_loss:         log(1 - D(G(eps))) = -softplus(l_gen)

WGAN-GP (Gulrajani et al., 2017), with critic `f`:

    wasserstein_discriminator_loss: f(G(eps)) - f(x)
    wasserstein_generator_loss:     -f(G(eps))
    wasserstein_gradient_penalty:   (||grad f(x_hat)||_2 - 1)^2,
        x_hat = x + u (G(eps) - x),  u ~ Uniform(0, 1) per example.
"""

import keras
import tensorflow as tf

from sig_keras.utils import random as random_lib


def _per_example(t):
    """Mean over all but the leading axis: `[N, ...] -> [N]` (float32)."""
    t = tf.cast(tf.convert_to_tensor(t), tf.float32)
    if t.shape.rank is not None and t.shape.rank <= 1:
        return tf.reshape(t, [-1])
    return tf.reduce_mean(tf.reshape(t, [tf.shape(t)[0], -1]), axis=1)


def minimax_discriminator_loss(discriminator_real_outputs, discriminator_gen_outputs,
                               label_smoothing=0.0):
    """DCGAN discriminator loss `-log D(x) - log(1 - D(G(eps)))`, per example.

    Args:
        discriminator_real_outputs: logits on real data, `[N, ...]`.
        discriminator_gen_outputs: logits on generated data, `[N, ...]` (the
            same batch size: example `i` pairs real `i` with generated `i`).
        label_smoothing: float in [0, 1). One-sided smoothing of the real
            label (`1 - label_smoothing`). Defaults to 0.

    Returns:
        float32 `[N]`.
    """
    if not 0.0 <= float(label_smoothing) < 1.0:
        raise ValueError(f"`label_smoothing` must be in [0, 1); got {label_smoothing}.")
    real = tf.cast(discriminator_real_outputs, tf.float32)
    gen = tf.cast(discriminator_gen_outputs, tf.float32)
    s = float(label_smoothing)
    # -(1 - s) log sigmoid(r) - s log(1 - sigmoid(r)) = (1 - s) sp(-r) + s sp(r)
    real_term = (1.0 - s) * tf.nn.softplus(-real) + s * tf.nn.softplus(real)
    return _per_example(real_term) + _per_example(tf.nn.softplus(gen))


def modified_generator_loss(discriminator_gen_outputs):
    """Non-saturating generator loss `-log D(G(eps))`, per example, `[N]`."""
    gen = tf.cast(discriminator_gen_outputs, tf.float32)
    return _per_example(tf.nn.softplus(-gen))


def minimax_generator_loss(discriminator_gen_outputs):
    """Original (saturating) generator loss `log(1 - D(G(eps)))`, `[N]`."""
    gen = tf.cast(discriminator_gen_outputs, tf.float32)
    return _per_example(-tf.nn.softplus(gen))


def wasserstein_discriminator_loss(discriminator_real_outputs, discriminator_gen_outputs):
    """Critic loss `f(G(eps)) - f(x)`, per example, `[N]`."""
    return _per_example(discriminator_gen_outputs) - _per_example(
        discriminator_real_outputs
    )


def wasserstein_generator_loss(discriminator_gen_outputs):
    """Generator loss `-f(G(eps))`, per example, `[N]`."""
    return -_per_example(discriminator_gen_outputs)


def wasserstein_gradient_penalty(critic, real, fake, seed=None, interpolation_weights=None,
                                 epsilon=1e-10, target=1.0, training=True):
    """Gradient penalty `(||grad_x f(x_hat)|| - target)^2`, per example, `[N]`.

    `x_hat_i = real_i + u_i (fake_i - real_i)` with `u_i ~ Uniform(0, 1)`. The
    norm is `sqrt(sum(g^2) + epsilon)`: `tf.norm` has a NaN gradient at zero.
    Call it inside the critic's `GradientTape`: the penalty is differentiated
    again with respect to the critic's weights (double backprop). The critic
    must treat examples independently (no batch norm).

    Args:
        critic: callable (a Keras model): `[N, ...] -> [N, ...]` scores.
        real: `[N, ...]` real data.
        fake: `[N, ...]` generated data (gradients to the generator are not
            needed here: pass `stop_gradient` values).
        seed: int, `keras.random.SeedGenerator` or None. Seed of `u`.
        interpolation_weights: optional `[N]` values of `u` (then `seed` is
            unused). Models use it to draw `u` for the global batch and keep
            their replica's slice.
        epsilon: float. Added under the square root. Defaults to 1e-10.
        target: float. Target norm. Defaults to 1.
        training: bool. Passed to the critic. Defaults to True.
    """
    real = tf.cast(real, tf.float32)
    fake = tf.cast(fake, tf.float32)
    n = tf.shape(real)[0]
    if interpolation_weights is None:
        u = (keras.random.uniform((n,)) if seed is None
             else random_lib.uniform((n,), seed=seed))
    else:
        u = tf.cast(tf.reshape(interpolation_weights, [-1]), tf.float32)
    u = tf.reshape(u, tf.concat([[n], tf.ones([tf.rank(real) - 1], tf.int32)], 0))
    x_hat = real + u * (fake - real)
    with tf.GradientTape() as tape:
        tape.watch(x_hat)
        scores = critic(x_hat, training=training)
    grads = tape.gradient(scores, x_hat)
    grads = tf.reshape(grads, [n, -1])
    norm = tf.sqrt(tf.reduce_sum(tf.square(grads), axis=1) + epsilon)
    return tf.square(norm - target)
