"""VEEGAN (Table 1 baseline): fit modes, 2 replicas, save/load, config, the
discriminator's data pairs, mode coverage on four modes, bad options."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from sig_keras import datasets
from sig_keras.metrics import ModeCoverage
from sig_keras.models import VEEGAN
from sig_keras.networks import mlp_discriminator
from sig_keras.networks import mlp_encoder
from sig_keras.networks import mlp_generator
from tests import harness as h

LATENT = h.GRID_LATENT
DATA_DIM = h.GRID_DIM


def _veegan(seed=1, **kwargs):
    return VEEGAN(
        mlp_generator(LATENT, DATA_DIM, h.GRID_HIDDEN),
        mlp_discriminator(DATA_DIM + LATENT, h.GRID_HIDDEN),
        mlp_encoder(DATA_DIM, LATENT, h.GRID_HIDDEN),
        LATENT,
        seed=seed,
        **kwargs,
    )


class TestVEEGAN(h.GridBaselineTests):
    """Fit modes, save/load, 2 replicas, bad compile and data (tests/harness.py)."""

    build = staticmethod(_veegan)
    optimizers = staticmethod(h.two_optimizers)


def test_config_round_trip():
    clone = h.run_serialization_test(
        _veegan(reconstruction_weight=2.0, reconstructor_scale=0.5))
    assert clone.reconstruction_weight == 2.0 and clone.reconstructor_scale == 0.5


def test_discriminator_sees_a_reconstructor_sample():
    """Data pairs use v ~ N(F(x), s^2 I), not F(x); the reconstruction is
    ||z - F(G(z))||^2 / (2 s^2)."""
    keras.utils.set_random_seed(0)
    model = _veegan(reconstructor_scale=0.5)
    x = tf.constant(h.grid_data(512))
    seen = []
    disc = model.discriminator
    model.discriminator = lambda inputs, training=None: (seen.append(inputs), disc(inputs))[1]
    try:
        _, _, rec = model._compute_losses(x, training=False)
    finally:
        model.discriminator = disc
    real_pairs = seen[0].numpy()
    np.testing.assert_allclose(real_pairs[:, :DATA_DIM], x.numpy())
    residual = real_pairs[:, DATA_DIM:] - model.encoder(x).numpy()
    assert abs(residual.std() - 0.5) < 0.05 and abs(residual.mean()) < 0.05
    assert np.isfinite(rec.numpy()) and rec.numpy() > 0


def _four_mode_veegan_modes(seed):
    """Modes (of 4, std 0.1, corners of a 4 x 4 square) after a short VEEGAN fit."""
    keras.utils.set_random_seed(seed)
    grid = datasets.gaussian_grid(std=0.1, size=2, spacing=4.0)
    latent = 4
    model = VEEGAN(
        mlp_generator(latent, DATA_DIM, (64, 64)),
        mlp_discriminator(DATA_DIM + latent, (64, 64)),
        mlp_encoder(DATA_DIM, latent, (64, 64)),
        latent,
        seed=seed,
    )
    model.compile(
        g_optimizer=keras.optimizers.Adam(2e-3, beta_1=0.5),
        d_optimizer=keras.optimizers.Adam(2e-3, beta_1=0.5),
        steps_per_execution=100,
    )
    model.fit(datasets.make_dataset(grid, 128, seed=seed), steps_per_epoch=1500,
              epochs=1, verbose=0)
    metric = ModeCoverage(grid.centers, grid.std, grid.weights, capture_share=0.05)
    metric.update_state(model.sample(4000, seed=seed).numpy())
    return metric.result()


@pytest.mark.parametrize("seed", [0, 1])
def test_covers_more_than_one_mode_of_four(seed):
    """Regression: with a deterministic reconstructor in the discriminator's data
    pairs, VEEGAN found at most one mode of the 25 grid (and of this toy)."""
    result = _four_mode_veegan_modes(seed)
    assert float(result["modes"]) >= 2, result


# === Bad input ===


test_bad_options_raise = h.bad_options_test(
    _veegan, ("reconstruction_weight", -1.0), ("reconstructor_scale", 0.0),
    ("reconstructor_scale", "wide"))


def test_bad_networks_raise():
    gen = mlp_generator(LATENT, DATA_DIM, h.GRID_HIDDEN)
    with pytest.raises(ValueError, match="data_dim \\+ latent_dim"):
        VEEGAN(gen, mlp_discriminator(DATA_DIM, h.GRID_HIDDEN), mlp_encoder(DATA_DIM, LATENT),
               LATENT)
    with pytest.raises(ValueError, match="reconstructor"):
        VEEGAN(gen, mlp_discriminator(DATA_DIM + LATENT), mlp_encoder(DATA_DIM, 3), LATENT)

