import keras
import numpy as np
import pytest
import tensorflow as tf

from sig_keras.models import WGANGP
from tests import gan_helpers as h

MODES = {
    "eager": dict(run_eagerly=True),
    "graph": dict(run_eagerly=False, jit_compile=False),
    "jit": dict(run_eagerly=False, jit_compile=True),
}


def _wgan(sig_weight=0.0, critic_steps=2, **kwargs):
    return WGANGP(h.tiny_generator(), h.tiny_discriminator(), h.LATENT,
                  critic_steps=critic_steps, sig_weight=sig_weight, seed=2, **kwargs)


@pytest.mark.parametrize("mode", sorted(MODES))
@pytest.mark.parametrize("sig_weight", [0.0, "auto"])
def test_fit_modes(mode, sig_weight):
    critic_steps = 1 if mode == "jit" else 2  # keep the XLA compile short
    model = _wgan(sig_weight, critic_steps=critic_steps)
    model.compile(**MODES[mode])
    logs = model.fit(h.images(16), batch_size=8, epochs=1, verbose=0).history
    expected = {"d_loss", "g_loss", "gradient_penalty"}
    if sig_weight:
        expected |= {"sig_loss", "sig_weight"}
    assert set(logs) == expected
    assert all(np.isfinite(v[-1]) for v in logs.values())
    # critic_steps critic updates per generator update.
    assert int(model.optimizer.iterations.numpy()) == 2
    assert int(model.d_optimizer.iterations.numpy()) == 2 * critic_steps


@pytest.mark.parametrize("sig_weight", [0.0, 1.0])
def test_fit_mirrored_strategy_equals_single_device(two_cpu_strategy, sig_weight):
    data = h.images(8)
    keras.utils.set_random_seed(0)
    single = _wgan(sig_weight)
    init = (single.generator.get_weights(), single.critic.get_weights())
    single.compile(d_optimizer=keras.optimizers.SGD(0.05), g_optimizer=keras.optimizers.SGD(0.05))
    single_logs = single.fit(data, batch_size=8, verbose=0, shuffle=False).history
    with two_cpu_strategy.scope():
        dist = _wgan(sig_weight)
        dist.generator.set_weights(init[0])
        dist.critic.set_weights(init[1])
        dist.compile(d_optimizer=keras.optimizers.SGD(0.05),
                     g_optimizer=keras.optimizers.SGD(0.05))
    ds = tf.data.Dataset.from_tensor_slices(data).batch(8, drop_remainder=True)
    dist_logs = dist.fit(ds, verbose=0).history
    for key in single_logs:
        np.testing.assert_allclose(dist_logs[key], single_logs[key], rtol=1e-4, atol=1e-4)
    for a, b in zip(single.critic.get_weights(), dist.critic.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    for a, b in zip(single.generator.get_weights(), dist.generator.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_keras_round_trip(tmp_path):
    model = _wgan(0.5, gradient_penalty_weight=5.0)
    model.compile()
    model.fit(h.images(8), batch_size=8, verbose=0)
    path = str(tmp_path / "wgan.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, WGANGP)
    assert loaded.critic_steps == 2 and loaded.gradient_penalty_weight == 5.0
    np.testing.assert_allclose(loaded.sample(2, seed=1), model.sample(2, seed=1), atol=1e-6)
    assert int(loaded.d_optimizer.iterations.numpy()) == 2
    for a, b in zip(model.d_optimizer.variables, loaded.d_optimizer.variables):
        np.testing.assert_allclose(a.numpy(), b.numpy())
    for a, b in zip(model.optimizer.variables, loaded.optimizer.variables):
        np.testing.assert_allclose(a.numpy(), b.numpy())


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
