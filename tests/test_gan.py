import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from sig_keras.layers import NormalConditional
from sig_keras.models import GAN
from tests import gan_helpers as h

MODES = {
    "eager": dict(run_eagerly=True),
    "graph": dict(run_eagerly=False, jit_compile=False),
    "jit": dict(run_eagerly=False, jit_compile=True),
}


def _gan(sig_weight=0.0, batch_norm=False, **kwargs):
    return GAN(h.tiny_generator(batch_norm), h.tiny_discriminator(batch_norm), h.LATENT,
               sig_weight=sig_weight, seed=1, **kwargs)


@pytest.mark.parametrize("mode", sorted(MODES))
@pytest.mark.parametrize("sig_weight", [0.0, "auto"])
def test_fit_modes(mode, sig_weight):
    model = _gan(sig_weight)
    model.compile(**MODES[mode])
    d_before = [w.numpy().copy() for w in model.discriminator.trainable_weights]
    g_before = [w.numpy().copy() for w in model.generator.trainable_weights]
    history = model.fit(h.images(16), batch_size=8, epochs=1, verbose=0)
    logs = history.history
    expected = {"d_loss", "g_loss"} | ({"sig_loss", "sig_weight"} if sig_weight else set())
    assert set(logs) == expected
    assert all(np.isfinite(v[-1]) for v in logs.values())
    assert int(model.optimizer.iterations.numpy()) == 2
    assert int(model.d_optimizer.iterations.numpy()) == 2
    assert not np.allclose(d_before[0], model.discriminator.trainable_weights[0].numpy())
    assert not np.allclose(g_before[0], model.generator.trainable_weights[0].numpy())
    if sig_weight == "auto":
        assert logs["sig_weight"][-1] > 0


def test_sig_term_changes_generator_update():
    data = h.images(8)
    results = []
    for sig_weight in (0.0, 0.5):
        keras.utils.set_random_seed(0)
        model = _gan(sig_weight)
        model.compile(run_eagerly=False)
        model.fit(data, batch_size=8, epochs=1, verbose=0, shuffle=False)
        results.append(model.generator.get_weights())
    # Same initial weights and noise: the discriminators agree, generators differ.
    assert any(not np.allclose(a, b) for a, b in zip(*results))


def test_fixed_sig_weight_logged():
    model = _gan(0.25)
    model.compile()
    logs = model.fit(h.images(8), batch_size=8, verbose=0).history
    np.testing.assert_allclose(logs["sig_weight"][-1], 0.25)


@pytest.mark.parametrize("sig_weight", [0.0])
def test_fit_mirrored_strategy(two_cpu_strategy, sig_weight):
    ds = tf.data.Dataset.from_tensor_slices(h.images(16)).batch(8, drop_remainder=True)
    with two_cpu_strategy.scope():
        model = _gan(sig_weight, batch_norm=True)
        model.compile()
    logs = model.fit(ds, epochs=1, verbose=0).history
    assert all(np.isfinite(v[-1]) for v in logs.values())
    assert int(model.optimizer.iterations.numpy()) == 2


def test_mirrored_step_equals_single_device(two_cpu_strategy):
    data = h.images(8)
    keras.utils.set_random_seed(0)
    single = _gan("auto")
    init = (single.generator.get_weights(), single.discriminator.get_weights())
    single.compile(d_optimizer=keras.optimizers.SGD(0.1), g_optimizer=keras.optimizers.SGD(0.1))
    single_logs = single.fit(data, batch_size=8, verbose=0, shuffle=False).history
    with two_cpu_strategy.scope():
        dist = _gan("auto")
        dist.generator.set_weights(init[0])
        dist.discriminator.set_weights(init[1])
        dist.compile(d_optimizer=keras.optimizers.SGD(0.1),
                     g_optimizer=keras.optimizers.SGD(0.1))
    ds = tf.data.Dataset.from_tensor_slices(data).batch(8, drop_remainder=True)
    dist_logs = dist.fit(ds, verbose=0).history
    for key in single_logs:
        np.testing.assert_allclose(dist_logs[key], single_logs[key], rtol=1e-4, atol=1e-4)
    for a, b in zip(single.generator.get_weights(), dist.generator.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    for a, b in zip(single.discriminator.get_weights(), dist.discriminator.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_keras_round_trip_with_both_optimizers(tmp_path):
    model = _gan("auto", conditional=NormalConditional(0.3))
    model.compile(d_optimizer=keras.optimizers.Adam(1e-3),
                  g_optimizer=keras.optimizers.Adam(2e-3, beta_1=0.5))
    model.fit(h.images(16), batch_size=8, verbose=0)
    path = str(tmp_path / "gan.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, GAN)
    assert loaded.sig_weight == "auto" and loaded.conditional.scale == 0.3
    np.testing.assert_allclose(loaded.sample(4, seed=3), model.sample(4, seed=3), atol=1e-6)
    np.testing.assert_allclose(loaded.auto_ratio.numpy(), model.auto_ratio.numpy())
    for original, restored in ((model.optimizer, loaded.optimizer),
                               (model.d_optimizer, loaded.d_optimizer)):
        assert type(original) is type(restored)
        assert restored.get_config()["learning_rate"] == original.get_config()["learning_rate"]
        assert len(restored.variables) == len(original.variables)
        for a, b in zip(original.variables, restored.variables):
            np.testing.assert_allclose(a.numpy(), b.numpy())
    assert int(loaded.optimizer.iterations.numpy()) == 2
    # Training resumes.
    loaded.fit(h.images(8), batch_size=8, verbose=0)
    assert int(loaded.d_optimizer.iterations.numpy()) == 3


def test_saved_model_export_in_fresh_process(tmp_path):
    model = _gan(0.0)
    model.compile()
    model.fit(h.images(8), batch_size=8, verbose=0)
    path = str(tmp_path / "export")
    model.export(path, verbose=False)
    noise = model.draw_noise(3, seed=5).numpy()
    expected = model.generator(noise, training=False).numpy()
    np.save(tmp_path / "noise.npy", noise)
    script = textwrap.dedent(f"""
        import sys, numpy as np, tensorflow as tf
        loaded = tf.saved_model.load({path!r})
        noise = np.load({str(tmp_path / 'noise.npy')!r})
        out = loaded.generate(tf.constant(noise)).numpy()
        np.save({str(tmp_path / 'out.npy')!r}, out)
        assert "sig_keras" not in sys.modules
    """)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    subprocess.run([sys.executable, "-c", script], check=True, env=env, cwd=str(tmp_path))
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), expected, atol=1e-5)


def test_config_round_trip():
    model = _gan(0.7, label_smoothing=0.1, data_range=(0.0, 1.0))
    clone = GAN.from_config(model.get_config())
    assert clone.sig_weight == 0.7 and clone.label_smoothing == 0.1
    assert clone.data_range == (0.0, 1.0)


# === Bad input ===


def test_negative_sig_weight():
    with pytest.raises(ValueError, match="sig_weight"):
        _gan(-0.1)


def test_unknown_sig_weight_option():
    with pytest.raises(ValueError, match="'auto'"):
        _gan("automatic")


def test_data_out_of_range():
    model = _gan()
    model.compile()
    with pytest.raises(ValueError, match="data_range"):
        model.fit(h.images(8) * 3.0, batch_size=8, verbose=0)


def test_data_not_finite():
    model = _gan()
    model.compile()
    data = h.images(8)
    data[0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        model.fit(data, batch_size=8, verbose=0)


def test_data_wrong_shape():
    model = _gan()
    model.compile()
    with pytest.raises(ValueError, match="shape"):
        model.fit(np.zeros((8, 7, 7, 1), np.float32), batch_size=8, verbose=0)


def test_loss_argument_rejected():
    with pytest.raises(ValueError, match="loss"):
        _gan().compile(loss="mse")


def test_latent_dim_mismatch():
    with pytest.raises(ValueError, match="noise dimension"):
        GAN(h.tiny_generator(), h.tiny_discriminator(), latent_dim=3)
