import numpy as np
import pytest
import tensorflow as tf
import keras

from sig_keras import losses


def _softplus(x):
    return np.logaddexp(0.0, x)


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


REAL = np.array([[1.5], [-0.3], [0.0], [4.0]], np.float32)
GEN = np.array([[-2.0], [0.7], [0.1], [-5.0]], np.float32)


def test_minimax_discriminator_loss_matches_numpy():
    expected = -np.log(_sigmoid(REAL[:, 0])) - np.log(1.0 - _sigmoid(GEN[:, 0]))
    got = losses.minimax_discriminator_loss(REAL, GEN).numpy()
    assert got.shape == (4,)
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_minimax_discriminator_loss_label_smoothing():
    s = 0.1
    p = _sigmoid(REAL[:, 0])
    expected = -(1 - s) * np.log(p) - s * np.log(1 - p) - np.log(1 - _sigmoid(GEN[:, 0]))
    got = losses.minimax_discriminator_loss(REAL, GEN, label_smoothing=s).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_generator_losses_match_numpy():
    np.testing.assert_allclose(
        losses.modified_generator_loss(GEN).numpy(),
        -np.log(_sigmoid(GEN[:, 0])), rtol=1e-5)
    np.testing.assert_allclose(
        losses.minimax_generator_loss(GEN).numpy(),
        np.log(1 - _sigmoid(GEN[:, 0])), rtol=1e-5)


def test_wasserstein_losses_match_numpy():
    np.testing.assert_allclose(
        losses.wasserstein_discriminator_loss(REAL, GEN).numpy(),
        GEN[:, 0] - REAL[:, 0], rtol=1e-6)
    np.testing.assert_allclose(
        losses.wasserstein_generator_loss(GEN).numpy(), -GEN[:, 0], rtol=1e-6)


def test_losses_average_non_batch_axes():
    logits = np.arange(12, dtype=np.float32).reshape(3, 2, 2) / 4 - 1
    expected = _softplus(-logits).reshape(3, -1).mean(axis=1)
    np.testing.assert_allclose(
        losses.modified_generator_loss(logits).numpy(), expected, rtol=1e-5)


def _linear_critic(w):
    inputs = keras.Input((w.shape[0],))
    layer = keras.layers.Dense(1, use_bias=False)
    model = keras.Model(inputs, layer(inputs))
    layer.set_weights([w[:, None]])
    return model


def test_gradient_penalty_of_linear_critic():
    w = np.array([3.0, -1.0, 0.5], np.float32)
    critic = _linear_critic(w)
    rng = np.random.default_rng(0)
    real = rng.normal(size=(5, 3)).astype("float32")
    fake = rng.normal(size=(5, 3)).astype("float32")
    gp = losses.wasserstein_gradient_penalty(critic, real, fake, seed=1).numpy()
    expected = (np.linalg.norm(w) - 1.0) ** 2
    assert gp.shape == (5,)
    np.testing.assert_allclose(gp, np.full(5, expected), rtol=1e-5)


def test_gradient_penalty_no_nan_at_zero_gradient():
    critic = _linear_critic(np.zeros(3, np.float32))
    real = np.ones((4, 3), np.float32)
    fake = -np.ones((4, 3), np.float32)
    with tf.GradientTape() as tape:
        gp = tf.reduce_mean(losses.wasserstein_gradient_penalty(critic, real, fake, seed=0))
    grads = tape.gradient(gp, critic.trainable_variables)
    np.testing.assert_allclose(gp.numpy(), 1.0, rtol=1e-4)
    assert all(np.all(np.isfinite(g.numpy())) for g in grads)


def test_gradient_penalty_interpolates_with_given_weights():
    # Quadratic critic f(x) = 0.5 ||x||^2: grad = x_hat, so the penalty tells
    # where x_hat lies.
    critic = lambda x, training=True: 0.5 * tf.reduce_sum(tf.square(x), axis=1)
    real = np.array([[0.0, 0.0], [2.0, 0.0]], np.float32)
    fake = np.array([[4.0, 0.0], [2.0, 4.0]], np.float32)
    u = np.array([0.25, 0.5], np.float32)
    gp = losses.wasserstein_gradient_penalty(critic, real, fake, interpolation_weights=u)
    x_hat = real + u[:, None] * (fake - real)
    expected = (np.linalg.norm(x_hat, axis=1) - 1) ** 2
    np.testing.assert_allclose(gp.numpy(), expected, rtol=1e-5)


def test_gradient_penalty_weights_in_unit_interval():
    critic = lambda x, training=True: 0.5 * tf.reduce_sum(tf.square(x), axis=1)
    real = np.zeros((256, 1), np.float32)
    fake = np.ones((256, 1), np.float32)
    gp = losses.wasserstein_gradient_penalty(critic, real, fake, seed=3,
                                             epsilon=0.0).numpy()
    u = 1.0 - np.sqrt(gp)  # |u - 1| with u in [0, 1]
    assert u.min() >= 0 and u.max() <= 1 and 0.35 < u.mean() < 0.65


def test_bad_label_smoothing():
    with pytest.raises(ValueError, match="label_smoothing"):
        losses.minimax_discriminator_loss(REAL, GEN, label_smoothing=1.0)
