"""GAN (and GAN-SI): fit modes, 2 replicas, save/load, export, config, bad input."""

import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from sig_keras.layers import NormalConditional
from sig_keras.models import GAN
from tests import harness as h


def _gan(sig_weight=0.0, batch_norm=False, **kwargs):
    return GAN(h.tiny_image_generator(batch_norm), h.tiny_image_discriminator(batch_norm),
               h.IMAGE_LATENT, sig_weight=sig_weight, seed=1, **kwargs)


@h.fit_modes
@pytest.mark.parametrize("sig_weight", [0.0, "auto"])
def test_fit_modes(fit_mode, sig_weight):
    expected = {"d_loss", "g_loss"} | ({"sig_loss", "sig_weight"} if sig_weight else set())
    logs = h.run_fit_modes_test(
        _gan(sig_weight), fit_mode, h.images(16), batch_size=8, expected_logs=expected,
        iterations={"optimizer": 2, "d_optimizer": 2}, moved=("discriminator", "generator"),
    )
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
    with two_cpu_strategy.scope():
        model = _gan(sig_weight, batch_norm=True)
        model.compile()
    logs = model.fit(h.batched(h.images(16), 8), epochs=1, verbose=0).history
    assert all(np.isfinite(v[-1]) for v in logs.values())
    assert int(model.optimizer.iterations.numpy()) == 2


def test_mirrored_step_equals_single_device(two_cpu_strategy):
    def make():
        return h.compiled(_gan("auto"), d_optimizer=keras.optimizers.SGD(0.1),
                          g_optimizer=keras.optimizers.SGD(0.1))

    keras.utils.set_random_seed(0)
    h.run_mirrored_matches_single_device_test(
        make, two_cpu_strategy, h.batched(h.images(8), 8), logs_atol=1e-4)


def test_keras_round_trip_with_both_optimizers(tmp_path):
    model = _gan("auto", conditional=NormalConditional(0.3))
    model.compile(d_optimizer=keras.optimizers.Adam(1e-3),
                  g_optimizer=keras.optimizers.Adam(2e-3, beta_1=0.5))
    model.fit(h.images(16), batch_size=8, verbose=0)
    loaded = h.run_saving_test(model, tmp_path, iterations={"optimizer": 2, "d_optimizer": 2},
                               num_samples=4, seed=3)
    assert isinstance(loaded, GAN)
    assert loaded.sig_weight == "auto" and loaded.conditional.scale == 0.3
    np.testing.assert_allclose(loaded.auto_norms.numpy(), model.auto_norms.numpy())
    assert loaded.sig_num_samples is None
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
    clone = h.run_serialization_test(model)
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
        GAN(h.tiny_image_generator(), h.tiny_image_discriminator(), latent_dim=3)


# === sig_num_samples: K > N generated samples in the SIG term ===


@h.fit_modes
def test_fit_modes_with_more_sig_samples_than_the_batch(fit_mode):
    h.run_fit_modes_test(
        _gan("auto", sig_num_samples=24), fit_mode, h.images(16), batch_size=8,
        expected_logs={"d_loss", "g_loss", "sig_loss", "sig_weight"},
        iterations={"optimizer": 2, "d_optimizer": 2}, moved=("discriminator", "generator"),
    )


def test_extra_sig_samples_are_constants_and_scale_the_gradient():
    model = _gan(0.5, sig_num_samples=20)
    model.build()
    fake = model.generator(model.draw_noise(8, seed=0), training=True)
    extra, factor = model._extra_sig_samples(fake)
    assert tuple(extra.shape) == (12,) + tuple(fake.shape[1:])
    assert factor == pytest.approx(20 / 8)
    import tensorflow as tf

    with tf.GradientTape() as tape:
        extra, _ = model._extra_sig_samples(fake)
        total = tf.reduce_sum(extra)
    assert all(g is None for g in tape.gradient(total, model.generator.trainable_variables))
    # K equal to the batch: no extra pass.
    assert _gan(0.5, sig_num_samples=8)._extra_sig_samples(fake) == (None, 1.0)
    assert _gan(0.5)._extra_sig_samples(fake) == (None, 1.0)


def test_sig_gradient_with_extra_samples_is_the_exact_partial_derivative():
    """The batch's SIG gradient is dL_K/dpsi_k over the K samples (times K/N):
    the same partial derivatives as when all K are differentiated."""
    import tensorflow as tf

    from sig_keras.losses import semi_implicit_loss

    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(6, 5)), tf.float32)
    psi = tf.constant(rng.normal(size=(10, 5)), tf.float32)
    cond = NormalConditional(0.7)
    with tf.GradientTape() as tape:
        tape.watch(psi)
        full = tape.gradient(semi_implicit_loss(x, psi, cond), psi)
    batch = tf.Variable(psi[:4])
    with tf.GradientTape() as tape:
        loss = semi_implicit_loss(x, tf.concat([batch, tf.stop_gradient(psi[4:])], 0), cond)
    np.testing.assert_allclose(tape.gradient(loss, batch).numpy(), full[:4].numpy(), rtol=1e-5)


def test_sig_num_samples_round_trip_and_errors(tmp_path):
    model = _gan("auto", sig_num_samples=24)
    assert model.get_config()["sig_num_samples"] == 24
    assert GAN.from_config(model.get_config()).sig_num_samples == 24
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="sig_num_samples"):
            _gan("auto", sig_num_samples=bad)
    small = _gan("auto", sig_num_samples=4)
    small.compile()
    with pytest.raises(ValueError, match="sig_num_samples.*at least the global batch"):
        small.fit(h.images(8), batch_size=8, verbose=0)


def test_mirrored_step_with_extra_sig_samples_equals_single_device(two_cpu_strategy):
    def make():
        return h.compiled(_gan("auto", sig_num_samples=16),
                          d_optimizer=keras.optimizers.SGD(0.1),
                          g_optimizer=keras.optimizers.SGD(0.1))

    keras.utils.set_random_seed(0)
    h.run_mirrored_matches_single_device_test(
        make, two_cpu_strategy, h.batched(h.images(8), 8), logs_atol=1e-4)


# === R1 penalty ===


def _linear_gan(r1_weight):
    """A GAN whose discriminator is linear in the pixels, `D(x) = w . x + b`,
    so that the R1 penalty is `(gamma / 2) ||w||^2` for every real image."""
    inputs = keras.Input(h.IMAGE_SHAPE)
    logits = keras.layers.Dense(1)(keras.layers.Flatten()(inputs))
    disc = keras.Model(inputs, logits, name="discriminator")
    return GAN(h.tiny_image_generator(False), disc, h.IMAGE_LATENT, r1_weight=r1_weight,
               seed=1)


@h.fit_modes
def test_r1_penalty_adds_half_gamma_squared_input_gradient(fit_mode):
    d_losses, weights = [], None
    for gamma in (0.0, 3.0):
        keras.utils.set_random_seed(0)
        model = _linear_gan(gamma)
        if weights is None:
            weights = model.get_weights()
        model.set_weights(weights)
        h.compile_in_mode(model, fit_mode, d_optimizer=keras.optimizers.SGD(0.0),
                           g_optimizer=keras.optimizers.SGD(0.0))
        logs = model.fit(h.images(8), batch_size=8, epochs=1, verbose=0, shuffle=False)
        d_losses.append(logs.history["d_loss"][-1])
    w = model.discriminator.layers[-1].kernel.numpy()
    np.testing.assert_allclose(d_losses[1] - d_losses[0], 1.5 * np.sum(w**2), rtol=1e-4)


def test_r1_penalty_moves_the_discriminator_differently():
    results = []
    for gamma in (0.0, 10.0):
        keras.utils.set_random_seed(0)
        model = _gan(0.0, r1_weight=gamma)
        model.compile()
        model.fit(h.images(8), batch_size=8, epochs=1, verbose=0, shuffle=False)
        results.append(model.discriminator.get_weights())
    assert any(not np.allclose(a, b) for a, b in zip(*results))


def test_r1_weight_round_trip_and_errors():
    assert "r1_weight" not in _gan(0.0).get_config()
    model = _gan("auto", r1_weight=2.5)
    assert GAN.from_config(model.get_config()).r1_weight == 2.5
    for bad in (-1.0, float("nan"), "big"):
        with pytest.raises(ValueError, match="r1_weight"):
            _gan(0.0, r1_weight=bad)


# === Joint discriminator batch ===


@h.fit_modes
@pytest.mark.parametrize("sig_weight, r1_weight", [(0.0, 0.0), ("auto", 1.0)])
def test_fit_modes_with_a_joint_batch(fit_mode, sig_weight, r1_weight):
    expected = {"d_loss", "g_loss"} | ({"sig_loss", "sig_weight"} if sig_weight else set())
    h.run_fit_modes_test(
        _gan(sig_weight, batch_norm=True, joint_batch=True, r1_weight=r1_weight), fit_mode,
        h.images(16), batch_size=8, expected_logs=expected,
        iterations={"optimizer": 2, "d_optimizer": 2}, moved=("discriminator", "generator"))


def test_a_joint_batch_without_batch_norm_is_the_same_step():
    weights = []
    for joint in (False, True):
        keras.utils.set_random_seed(0)
        model = h.compiled(_gan("auto", r1_weight=1.0, joint_batch=joint),
                           d_optimizer=keras.optimizers.SGD(0.1),
                           g_optimizer=keras.optimizers.SGD(0.1))
        model.fit(h.images(16), batch_size=8, epochs=1, verbose=0, shuffle=False)
        weights.append(model.get_weights())
    for a, b in zip(*weights):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_a_joint_batch_lets_batch_norm_see_a_change_of_the_whole_generated_batch():
    # Called alone, the generated batch is standardized with its own
    # statistics, so doubling every generated image (every feature map of the
    # first convolution doubles, up to its bias) leaves the logits as they
    # were; with the real images in the same batch the change shows.
    real = h.images(8, seed=1)
    fake = h.images(8, seed=2)
    for joint in (False, True):
        keras.utils.set_random_seed(0)
        model = _gan(0.0, batch_norm=True, joint_batch=joint)
        model.build()
        once = np.asarray(model._discriminate(real, fake)[1])
        doubled = np.asarray(model._discriminate(real, 2.0 * fake)[1])
        assert np.allclose(once, doubled, atol=1e-2) != joint
        np.testing.assert_allclose(np.asarray(model._discriminate_fake(real, fake)), once,
                                   atol=1e-6)


def test_joint_batch_round_trip_and_errors():
    assert "joint_batch" not in _gan(0.0).get_config()
    assert GAN.from_config(_gan(0.0, joint_batch=True).get_config()).joint_batch is True
    for bad in (1, "yes", None):
        with pytest.raises(ValueError, match="joint_batch"):
            _gan(0.0, joint_batch=bad)


# === sig_per_channel: one SIG term per channel ===


def _rgb_gan(sig_weight="auto", **kwargs):
    """Tiny networks of [n, 4, 4, 3] images: a per-channel SIG term needs channels."""
    g_in = keras.Input((h.IMAGE_LATENT,))
    g = keras.layers.Dense(48, activation="tanh")(g_in)
    generator = keras.Model(g_in, keras.layers.Reshape((4, 4, 3))(g))
    d_in = keras.Input((4, 4, 3))
    d = keras.layers.Dense(1)(keras.layers.Flatten()(d_in))
    return GAN(generator, keras.Model(d_in, d), h.IMAGE_LATENT, sig_weight=sig_weight,
               seed=1, **kwargs)


def _rgb_images(n=16):
    return np.random.default_rng(0).uniform(-1, 1, (n, 4, 4, 3)).astype("float32")


@h.fit_modes
def test_fit_modes_with_a_sig_term_per_channel(fit_mode):
    h.run_fit_modes_test(
        _rgb_gan(sig_per_channel=True), fit_mode, _rgb_images(), batch_size=8,
        expected_logs={"d_loss", "g_loss", "sig_loss", "sig_weight"},
        iterations={"optimizer": 2, "d_optimizer": 2}, moved=("discriminator", "generator"))


def test_sig_per_channel_reaches_the_step():
    logs = {}
    for per_channel in (False, True):
        keras.utils.set_random_seed(0)
        model = _rgb_gan(0.5, sig_per_channel=per_channel)
        model.compile(d_optimizer=keras.optimizers.SGD(0.0),
                      g_optimizer=keras.optimizers.SGD(0.0))
        x = _rgb_images(8)
        logs[per_channel] = model.fit(x, batch_size=8, verbose=0).history["sig_loss"][-1]
    # Same data, noise and weights: only the SIG term's form differs.
    assert np.isfinite(logs[True]) and logs[True] != pytest.approx(logs[False], rel=1e-3)


def test_sig_per_channel_round_trip_and_errors(tmp_path):
    model = _rgb_gan(sig_per_channel=True)
    assert model.get_config()["sig_per_channel"] is True
    assert GAN.from_config(model.get_config()).sig_per_channel is True
    assert "sig_per_channel" not in _rgb_gan().get_config()  # older configs still load
    model.compile()
    model.fit(_rgb_images(8), batch_size=8, verbose=0)
    model.save(tmp_path / "gan.keras")
    assert keras.saving.load_model(tmp_path / "gan.keras").sig_per_channel is True
    for bad in (1, "yes", None):
        with pytest.raises(ValueError, match="`sig_per_channel` must be True or False"):
            _rgb_gan(sig_per_channel=bad)


def test_sig_per_channel_on_data_without_channels_fails_before_training():
    g_in = keras.Input((h.IMAGE_LATENT,))
    generator = keras.Model(g_in, keras.layers.Dense(6)(g_in))
    d_in = keras.Input((6,))
    model = GAN(generator, keras.Model(d_in, keras.layers.Dense(1)(d_in)), h.IMAGE_LATENT,
                sig_weight="auto", sig_per_channel=True, data_range=None, seed=0)
    model.compile()
    with pytest.raises(ValueError, match="needs data with a channel axis"):
        model.fit(np.zeros((8, 6), np.float32), batch_size=8, verbose=0)
    assert int(model.optimizer.iterations) == 0
