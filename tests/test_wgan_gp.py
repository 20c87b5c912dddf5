"""WGAN-GP (and WGAN-GP-SI): fit modes, 2 replicas, save/load, config, bad options."""

import keras
import pytest

from sig_keras.models import WGANGP
from tests import harness as h


def _wgan(sig_weight=0.0, critic_steps=2, **kwargs):
    return WGANGP(h.tiny_image_generator(), h.tiny_image_discriminator(), h.IMAGE_LATENT,
                  critic_steps=critic_steps, sig_weight=sig_weight, seed=2, **kwargs)


@h.fit_modes
@pytest.mark.parametrize("sig_weight", [0.0, "auto"])
def test_fit_modes(fit_mode, sig_weight):
    critic_steps = 1 if fit_mode == "jit" else 2  # keep the XLA compile short
    expected = {"d_loss", "g_loss", "gradient_penalty"}
    if sig_weight:
        expected |= {"sig_loss", "sig_weight"}
    # critic_steps critic updates per generator update.
    h.run_fit_modes_test(
        _wgan(sig_weight, critic_steps=critic_steps), fit_mode, h.images(16), batch_size=8,
        expected_logs=expected, moved=("discriminator", "generator"),
        iterations={"optimizer": 2, "d_optimizer": 2 * critic_steps},
    )


@pytest.mark.parametrize("sig_weight", [0.0, 1.0])
def test_fit_mirrored_strategy_equals_single_device(two_cpu_strategy, sig_weight):
    def make():
        return h.compiled(_wgan(sig_weight), d_optimizer=keras.optimizers.SGD(0.05),
                          g_optimizer=keras.optimizers.SGD(0.05))

    keras.utils.set_random_seed(0)
    h.run_mirrored_matches_single_device_test(
        make, two_cpu_strategy, h.batched(h.images(8), 8), logs_atol=1e-4)


def test_keras_round_trip(tmp_path):
    model = _wgan(0.5, gradient_penalty_weight=5.0)
    model.compile()
    model.fit(h.images(8), batch_size=8, verbose=0)
    loaded = h.run_saving_test(model, tmp_path, iterations={"optimizer": 1, "d_optimizer": 2},
                               num_samples=2, seed=1)
    assert isinstance(loaded, WGANGP)
    assert loaded.critic_steps == 2 and loaded.gradient_penalty_weight == 5.0


def test_config_round_trip():
    clone = h.run_serialization_test(_wgan(0.5, critic_steps=3, gradient_penalty_weight=5.0))
    assert clone.critic_steps == 3 and clone.gradient_penalty_weight == 5.0
    assert clone.sig_weight == 0.5


@pytest.mark.parametrize("steps", [0, -1])
def test_critic_steps_below_one(steps):
    with pytest.raises(ValueError, match="critic_steps"):
        _wgan(critic_steps=steps)


def test_negative_sig_weight():
    with pytest.raises(ValueError, match="sig_weight"):
        _wgan(sig_weight=-1.0)


def test_negative_penalty_weight():
    with pytest.raises(ValueError, match="gradient_penalty_weight"):
        _wgan(gradient_penalty_weight=-1.0)


def test_data_out_of_range():
    model = _wgan()
    model.compile()
    with pytest.raises(ValueError, match="data_range"):
        model.fit(h.images(8) + 1.5, batch_size=8, verbose=0)


def test_sig_term_per_channel_trains_and_round_trips():
    import numpy as np

    g_in = keras.Input((h.IMAGE_LATENT,))
    generator = keras.Model(g_in, keras.layers.Reshape((4, 4, 3))(
        keras.layers.Dense(48, activation="tanh")(g_in)))
    d_in = keras.Input((4, 4, 3))
    critic = keras.Model(d_in, keras.layers.Dense(1)(keras.layers.Flatten()(d_in)))
    model = WGANGP(generator, critic, h.IMAGE_LATENT, critic_steps=1, sig_weight="auto",
                   sig_per_channel=True, seed=0)
    assert WGANGP.from_config(model.get_config()).sig_per_channel is True
    model.compile()
    x = np.random.default_rng(0).uniform(-1, 1, (8, 4, 4, 3)).astype("float32")
    logs = model.fit(x, batch_size=8, verbose=0).history
    assert np.isfinite(logs["sig_loss"][-1]) and logs["sig_weight"][-1] > 0
