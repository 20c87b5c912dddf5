"""VAE (Table 1 baseline): fit modes, 2 replicas, save/load, config, the loss
by hand, sampling, bad options."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from sig_keras.models import VAE
from sig_keras.networks import mlp_encoder
from sig_keras.networks import mlp_generator
from tests import harness as h

LATENT = h.GRID_LATENT
DATA_DIM = h.GRID_DIM


def _vae(seed=1, **kwargs):
    return VAE(
        mlp_encoder(DATA_DIM, 2 * LATENT, h.GRID_HIDDEN),
        mlp_generator(LATENT, DATA_DIM, h.GRID_HIDDEN),
        LATENT,
        seed=seed,
        **kwargs,
    )


def _adam(lr):
    return dict(optimizer=keras.optimizers.Adam(lr))


class TestVAE(h.GridBaselineTests):
    """Fit modes, save/load, 2 replicas, bad compile and data (tests/harness.py)."""

    build = staticmethod(_vae)
    optimizers = staticmethod(_adam)


def test_config_round_trip():
    clone = h.run_serialization_test(_vae(kl_weight=0.5, min_scale=1e-3))
    assert clone.kl_weight == 0.5 and clone.min_scale == 1e-3


def test_loss_matches_hand_computation():
    keras.utils.set_random_seed(0)
    model = _vae()
    x = tf.constant(h.grid_data(8))
    mu, sigma = model.encode(x)
    encoded = model.encoder(x).numpy()
    np.testing.assert_allclose(mu.numpy(), encoded[:, :LATENT], rtol=1e-6)
    np.testing.assert_allclose(
        sigma.numpy(), np.log1p(np.exp(encoded[:, LATENT:])) + 1e-4, rtol=1e-5
    )
    reconstruction, kl = model._compute_losses(x, training=False)
    m, s = mu.numpy().astype(np.float64), sigma.numpy().astype(np.float64)
    kl_ref = np.sum(0.5 * (m**2 + s**2 - 1.0) - np.log(s), axis=1)
    np.testing.assert_allclose(kl.numpy(), kl_ref, rtol=1e-5, atol=1e-6)
    assert reconstruction.shape == (8,) and np.all(np.isfinite(reconstruction.numpy()))


def test_importance_weighted_bound_matches_numpy(monkeypatch):
    keras.utils.set_random_seed(0)
    k, kl_weight = 5, 0.7
    model = _vae(num_importance_samples=k, kl_weight=kl_weight)
    x = tf.constant(h.grid_data(6))
    eps = np.random.default_rng(3).normal(size=(k, 6, LATENT)).astype("float32")
    draws = iter(eps)
    monkeypatch.setattr(model, "draw_noise_like", lambda x: tf.constant(next(draws)))
    objective, reconstruction, kl = model._importance_weighted_losses(x, training=False)

    mu, sigma = (t.numpy().astype(np.float64) for t in model.encode(x))
    z = mu[None] + sigma[None] * eps
    means = model.decoder(z.reshape(-1, LATENT).astype("float32")).numpy().reshape(k, 6, -1)
    scale = model.conditional.scale_value.numpy()
    xs = x.numpy().astype(np.float64)
    log_px = np.sum(-0.5 * ((xs[None] - means) / scale) ** 2 - np.log(scale)
                    - 0.5 * np.log(2 * np.pi), axis=-1)
    log_pz = np.sum(-0.5 * z**2 - 0.5 * np.log(2 * np.pi), axis=-1)
    log_qz = np.sum(-0.5 * eps.astype(np.float64)**2 - np.log(sigma)[None]
                    - 0.5 * np.log(2 * np.pi), axis=-1)
    log_w = log_px + kl_weight * (log_pz - log_qz)
    bound = -(np.log(np.mean(np.exp(log_w - log_w.max(0)), axis=0)) + log_w.max(0))
    np.testing.assert_allclose(objective.numpy(), bound, rtol=1e-4)
    np.testing.assert_allclose(reconstruction.numpy(), -log_px.mean(0), rtol=1e-4)
    assert kl.shape == (6,)


def test_importance_weighted_bound_is_tighter_than_the_elbo():
    # E[L_k] <= E[L_1] (Burda et al., Theorem 1): averaged over many draws.
    keras.utils.set_random_seed(0)
    model = _vae(num_importance_samples=8)
    x = tf.constant(np.repeat(h.grid_data(4), 500, axis=0))
    reconstruction, kl = model._compute_losses(x, training=False)  # one draw
    iw, _, _ = model._importance_weighted_losses(x, training=False)
    assert float(tf.reduce_mean(iw)) < float(tf.reduce_mean(reconstruction + kl))


def test_importance_weighted_training_fits_and_round_trips():
    keras.utils.set_random_seed(0)
    model = _vae(num_importance_samples=4)
    model.compile(**_adam(1e-2))
    history = model.fit(h.batched(h.grid_data(64), 16), epochs=2, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    clone = h.run_serialization_test(model)
    assert clone.num_importance_samples == 4


def test_samples_include_conditional_noise():
    keras.utils.set_random_seed(0)
    model = _vae()
    noise = model.draw_noise(1000, seed=0)
    means = model.decoder(noise).numpy()
    samples = model.sample(1000, seed=0).numpy()
    # Same noise (same seed), so samples = decoder mean + N(0, 0.1^2) noise.
    residual = samples - means
    assert abs(residual.std() - 0.1) < 0.01


# === Bad input ===


test_bad_options_raise = h.bad_options_test(
    _vae, ("min_scale", -1.0), ("kl_weight", 0.0), ("kl_weight", "big"),
    ("conditional", "laplace"), ("num_importance_samples", 0),
    ("num_importance_samples", 2.5))


def test_bad_networks_raise():
    gen = mlp_generator(LATENT, DATA_DIM, h.GRID_HIDDEN)
    with pytest.raises(ValueError, match="2 \\* latent_dim"):
        VAE(mlp_encoder(DATA_DIM, LATENT, h.GRID_HIDDEN), gen, LATENT)
    with pytest.raises(ValueError, match="noise dimension"):
        VAE(mlp_encoder(DATA_DIM, 6, h.GRID_HIDDEN), gen, 3)

