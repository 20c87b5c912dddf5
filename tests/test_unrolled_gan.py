"""Unrolled GAN (Table 1 baseline): fit modes, 2 replicas, save/load, config,
zero unrolling equals the GAN update, the unrolled gradient against a
written-out reference, bad options."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from sig_keras.models import GAN
from sig_keras.models import UnrolledGAN
from sig_keras.networks import mlp_discriminator
from sig_keras.networks import mlp_generator
from tests import harness as h

LATENT = h.GRID_LATENT
DATA_DIM = h.GRID_DIM


def _unrolled(seed=1, unrolling_steps=1, **kwargs):
    return UnrolledGAN(
        mlp_generator(LATENT, DATA_DIM, h.GRID_HIDDEN),
        mlp_discriminator(DATA_DIM, h.GRID_HIDDEN),
        LATENT,
        seed=seed,
        unrolling_steps=unrolling_steps,
        **kwargs,
    )


class TestUnrolledGAN(h.GridBaselineTests):
    """Fit modes, save/load, 2 replicas, bad compile and data (tests/harness.py)."""

    build = staticmethod(_unrolled)
    optimizers = staticmethod(h.two_optimizers)


def test_config_round_trip():
    clone = h.run_serialization_test(_unrolled(unrolling_steps=3, unrolling_lr=0.5))
    assert clone.unrolling_steps == 3 and clone.unrolling_lr == 0.5


# === The unrolled update ===


def _clone(net):
    copy = keras.models.clone_model(net)
    copy.set_weights(net.get_weights())
    return copy


@pytest.mark.parametrize("fit_mode", ["eager", "graph"])
def test_unrolling_zero_equals_plain_gan_update(fit_mode):
    keras.utils.set_random_seed(0)
    gen = mlp_generator(LATENT, DATA_DIM, h.GRID_HIDDEN)
    disc = mlp_discriminator(DATA_DIM, h.GRID_HIDDEN)
    gan = GAN(_clone(gen), _clone(disc), LATENT, data_range=(-10.0, 10.0), seed=5)
    h.compile_in_mode(gan, fit_mode, **h.two_optimizers(1e-2))
    unrolled = UnrolledGAN(_clone(gen), _clone(disc), LATENT, unrolling_steps=0, seed=5)
    h.compile_in_mode(unrolled, fit_mode, **h.two_optimizers(1e-2))
    data = h.grid_data(32)
    gan.fit(data, batch_size=16, epochs=1, shuffle=False, verbose=0)
    unrolled.fit(data, batch_size=16, epochs=1, shuffle=False, verbose=0)
    for net in ("generator", "discriminator"):
        a = getattr(gan, net).get_weights()
        b = getattr(unrolled, net).get_weights()
        w0 = (gen if net == "generator" else disc).get_weights()
        assert any(np.abs(x - y).max() > 1e-4 for x, y in zip(a, w0)), net
        for x, y in zip(a, b):
            np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6, err_msg=net)


def _reference_unrolled_generator_grads(gen, disc, x, noise, k, lr):
    """Independent reference: the 1-hidden-layer ReLU discriminator written out."""
    g_vars = gen.trainable_variables
    theta0 = [tf.constant(w) for w in disc.get_weights()]  # W1, b1, W2, b2

    def d(theta, inputs):
        w1, b1, w2, b2 = theta
        return tf.matmul(tf.nn.relu(tf.matmul(inputs, w1) + b1), w2)[:, 0] + b2[0]

    with tf.GradientTape() as outer:
        fake = gen(noise, training=True)
        theta = theta0
        for _ in range(k):
            with tf.GradientTape() as inner:
                inner.watch(theta)
                loss = tf.reduce_mean(
                    tf.nn.softplus(-d(theta, x)) + tf.nn.softplus(d(theta, fake))
                )
            grads = inner.gradient(loss, theta)
            theta = [t - lr * g for t, g in zip(theta, grads)]
        g_loss = tf.reduce_mean(tf.nn.softplus(-d(theta, fake)))
    return g_loss, outer.gradient(g_loss, g_vars)


@pytest.mark.parametrize("k", [1, 3])
def test_unrolled_generator_gradient_matches_reference(k):
    keras.utils.set_random_seed(0)
    model = _unrolled(unrolling_steps=k, unrolling_lr=0.5)
    x = tf.constant(h.grid_data(16))
    noise = tf.random.stateless_normal((16, LATENT), seed=[1, 2])
    with tf.GradientTape() as tape:
        fake = model.generator(noise, training=True)
        loss = model.unrolled_generator_loss(x, fake)
    grads = tape.gradient(loss, model.generator.trainable_variables)
    ref_loss, ref_grads = _reference_unrolled_generator_grads(
        model.generator, model.discriminator, x, noise, k, 0.5
    )
    np.testing.assert_allclose(loss.numpy(), ref_loss.numpy(), rtol=1e-5)
    for g, r in zip(grads, ref_grads):
        np.testing.assert_allclose(g.numpy(), r.numpy(), rtol=1e-4, atol=1e-6)
    # The unrolling changes the gradient (the reference with k = 0 differs).
    _, plain = _reference_unrolled_generator_grads(
        model.generator, model.discriminator, x, noise, 0, 0.5
    )
    assert max(np.abs(g.numpy() - p.numpy()).max() for g, p in zip(grads, plain)) > 1e-5
    # The discriminator weights are not changed by the unrolling.
    for w, v in zip(model.discriminator.get_weights(), model.discriminator.weights):
        np.testing.assert_array_equal(w, v.numpy())


# === Bad input ===


test_bad_options_raise = h.bad_options_test(
    _unrolled, ("unrolling_steps", -1), ("unrolling_steps", 1.5), ("unrolling_lr", 0.0),
    ("generator_loss", "wasserstein"))


def test_bad_networks_raise():
    with pytest.raises(ValueError, match="discriminator"):
        UnrolledGAN(mlp_generator(LATENT, DATA_DIM, h.GRID_HIDDEN), "not a model", LATENT)

