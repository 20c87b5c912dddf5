"""`AdversarialModel`: what GAN, WGANGP, UnrolledGAN and VEEGAN share.

The GAN-SI generator step against a one-tape reference, the evaluation step,
one compile-config key for the generator optimizer, the SIG term only where a
model takes it, sub-model config, and a new model written on the base class.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from sig_keras import losses
from sig_keras.distribute import reduction
from sig_keras.layers import NormalConditional
from sig_keras.models import GAN
from sig_keras.models import WGANGP
from sig_keras.models import AdversarialModel
from sig_keras.models import GenerativeModel
from sig_keras.models import UnrolledGAN
from sig_keras.models import VEEGAN
from sig_keras.networks import mlp_discriminator
from sig_keras.networks import mlp_encoder
from sig_keras.networks import mlp_generator

LATENT = 2
DIM = 2
HIDDEN = (8,)


def _data(n=8, seed=0):
    return np.random.default_rng(seed).normal(size=(n, DIM)).astype(np.float32)


def _networks():
    return mlp_generator(LATENT, DIM, HIDDEN), mlp_discriminator(DIM, HIDDEN)


def _make(kind, **kwargs):
    gen, disc = _networks()
    if kind == "gan":
        return GAN(gen, disc, LATENT, data_range=None, seed=1, **kwargs)
    if kind == "wgan_gp":
        return WGANGP(gen, disc, LATENT, critic_steps=1, data_range=None, seed=1, **kwargs)
    if kind == "unrolled_gan":
        return UnrolledGAN(gen, disc, LATENT, unrolling_steps=1, seed=1, **kwargs)
    return VEEGAN(gen, mlp_discriminator(DIM + LATENT, HIDDEN), mlp_encoder(DIM, LATENT, HIDDEN),
                  LATENT, seed=1, **kwargs)


KINDS = ["gan", "wgan_gp", "unrolled_gan", "veegan"]


def _clone(net):
    copy = keras.models.clone_model(net)
    copy.set_weights(net.get_weights())
    return copy


# === The GAN-SI generator step ===


@pytest.mark.parametrize("sig_weight", [0.0, 0.5, "auto"])
@pytest.mark.parametrize("run_eagerly", [True, False], ids=["eager", "graph"])
def test_gan_step_equals_one_tape_reference(sig_weight, run_eagerly):
    """One fit step with SGD equals the step written out with one tape per player:
    D on `L_D`, then G (and nothing else) on `L_adv + lambda L_SIG` against the
    updated D, lambda fixed or the first-step gradient-norm ratio."""
    keras.utils.set_random_seed(0)
    lr = 0.1
    cond = NormalConditional(0.3)
    model = _make("gan", sig_weight=sig_weight, conditional=cond)
    gen0, disc0 = _clone(model.generator), _clone(model.discriminator)
    model.compile(d_optimizer=keras.optimizers.SGD(lr), g_optimizer=keras.optimizers.SGD(lr),
                  run_eagerly=run_eagerly)
    model.build_optimizers()
    state0 = model.seed_generator.state.numpy()
    x = _data()
    logs = model.fit(x, batch_size=8, epochs=1, shuffle=False, verbose=0).history
    model.seed_generator.state.assign(state0)
    noise = model.draw_noise(8)

    # Discriminator step.
    with tf.GradientTape() as tape:
        d_loss = tf.reduce_mean(losses.minimax_discriminator_loss(
            disc0(x, training=True), disc0(gen0(noise, training=True), training=True)))
    grads = tape.gradient(d_loss, disc0.trainable_variables)
    for v, g in zip(disc0.trainable_variables, grads):
        v.assign_sub(lr * g)
    # Generator step against the updated discriminator.
    with tf.GradientTape(persistent=True) as tape:
        fake = gen0(noise, training=True)
        adv = tf.reduce_mean(losses.modified_generator_loss(disc0(fake, training=True)))
        sig = losses.semi_implicit_loss(x, fake, cond)
    if sig_weight == "auto":
        g_adv, g_sig = tape.gradient(adv, fake), tape.gradient(sig, fake)
        lam = float(tf.norm(g_adv) / tf.norm(g_sig))
    else:
        lam = sig_weight
    g_vars = gen0.trainable_variables
    grads = [a + lam * b for a, b in zip(tape.gradient(adv, g_vars), tape.gradient(sig, g_vars))]
    for v, g in zip(g_vars, grads):
        v.assign_sub(lr * g)

    for a, b in zip(model.discriminator.get_weights(), disc0.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    for a, b in zip(model.generator.get_weights(), gen0.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(logs["d_loss"][-1], float(d_loss), rtol=1e-5)
    np.testing.assert_allclose(logs["g_loss"][-1], float(adv), rtol=1e-5)
    if sig_weight:
        np.testing.assert_allclose(logs["sig_weight"][-1], lam, rtol=1e-5)
        np.testing.assert_allclose(logs["sig_loss"][-1], float(sig), rtol=1e-5)
    if sig_weight == "auto":
        # First step: both norm averages start at this step's norms.
        np.testing.assert_allclose(
            model.auto_norms.numpy(),
            [float(tf.norm(g_adv)), float(tf.norm(g_sig))], rtol=1e-5)


@pytest.mark.parametrize("kind", ["gan", "wgan_gp", "unrolled_gan"])
def test_evaluate_reports_the_losses_on_one_draw(kind):
    keras.utils.set_random_seed(0)
    model = _make(kind)
    model.compile()
    model.build_optimizers()
    x = _data()
    state0 = model.seed_generator.state.numpy()
    logs = model.evaluate(x, batch_size=8, verbose=0, return_dict=True)
    model.seed_generator.state.assign(state0)
    fake = model.generator(model.draw_noise(8), training=False)
    real_out = model.discriminator(x, training=False)
    fake_out = model.discriminator(fake, training=False)
    if kind == "wgan_gp":
        d_ref = losses.wasserstein_discriminator_loss(real_out, fake_out)
        g_ref = losses.wasserstein_generator_loss(fake_out)
    else:
        d_ref = losses.minimax_discriminator_loss(real_out, fake_out)
        g_ref = losses.modified_generator_loss(fake_out)
    np.testing.assert_allclose(logs["d_loss"], float(tf.reduce_mean(d_ref)), rtol=1e-5)
    np.testing.assert_allclose(logs["g_loss"], float(tf.reduce_mean(g_ref)), rtol=1e-5)


# === The shared surface ===


@pytest.mark.parametrize("kind", KINDS)
def test_one_base_and_one_compile_config_key(kind):
    model = _make(kind)
    assert isinstance(model, AdversarialModel) and isinstance(model, GenerativeModel)
    model.compile(g_optimizer=keras.optimizers.Adam(1e-3), d_optimizer="sgd")
    config = model.get_compile_config()
    assert "g_optimizer" in config and "d_optimizer" in config
    assert "optimizer" not in config
    assert model.optimizer.get_config()["learning_rate"] == pytest.approx(1e-3)
    assert isinstance(model.d_optimizer, keras.optimizers.SGD)


@pytest.mark.parametrize("kind", KINDS)
def test_config_round_trip_rebuilds_the_sub_models(kind):
    model = _make(kind)
    config = model.get_config()
    assert config["seed"] == 1 and config["latent_dim"] == LATENT
    assert "critic" not in config
    clone = type(model).from_config(config)
    assert clone.get_config() == config
    for name in ("generator", "discriminator", "encoder"):
        if name in config:
            assert isinstance(getattr(clone, name), keras.Model)
            assert getattr(clone, name) is not getattr(model, name)


@pytest.mark.parametrize("kind", ["unrolled_gan", "veegan"])
def test_no_sig_term_where_the_model_takes_none(kind):
    model = _make(kind)
    assert model.sig_weight is None and model.conditional is None and not model.uses_sig
    config = model.get_config()
    assert not {"sig_weight", "conditional", "auto_sig_scale"} & set(config)
    with pytest.raises(ValueError, match="sig_weight"):
        _make(kind, sig_weight=0.5)


@pytest.mark.parametrize("kind", ["gan", "wgan_gp"])
def test_sig_term_where_the_model_takes_one(kind):
    model = _make(kind, sig_weight="auto", auto_sig_scale=2.0)
    config = model.get_config()
    assert config["sig_weight"] == "auto" and config["auto_sig_scale"] == 2.0
    assert isinstance(model.conditional, NormalConditional)
    assert {"sig_loss", "sig_weight"} <= {m.name for m in model.metrics}


def test_wgan_gp_takes_a_discriminator():
    gen, disc = _networks()
    model = WGANGP(gen, discriminator=disc, latent_dim=LATENT, critic_steps=3)
    assert model.discriminator is disc and model.critic_steps == 3
    assert not hasattr(model, "critic")


@pytest.mark.parametrize("kind", ["unrolled_gan", "veegan"])
def test_data_range_checked_when_given(kind):
    model = _make(kind, data_range=(-1.0, 1.0))
    model.compile()
    with pytest.raises(ValueError, match="data_range"):
        model.fit(3.0 + _data(8), batch_size=8, verbose=0)


def test_seed_argument_gives_the_sample_stream():
    a, b = _make("gan"), _make("gan")
    b.set_weights(a.get_weights())
    np.testing.assert_array_equal(a.sample(4).numpy(), b.sample(4).numpy())
    np.testing.assert_array_equal(a.sample(4).numpy(), b.sample(4).numpy())
    c = GAN(*_networks(), LATENT, data_range=None, seed=2)
    c.set_weights(a.get_weights())
    assert not np.array_equal(c.draw_noise(4).numpy(), a.draw_noise(4).numpy())


def test_build_optimizers_needs_compile():
    with pytest.raises(ValueError, match="compile"):
        _make("gan").build_optimizers()


def test_discriminator_input_checked_against_the_data():
    gen = mlp_generator(LATENT, DIM, HIDDEN)
    model = GAN(gen, mlp_discriminator(DIM + 1, HIDDEN), LATENT, data_range=None)
    model.compile()
    with pytest.raises(ValueError, match="discriminator takes inputs"):
        model.fit(_data(8), batch_size=8, verbose=0)


# === A new model on the base class ===


@keras.saving.register_keras_serializable(package="sig_keras_tests")
class LeastSquaresGAN(AdversarialModel):
    """LSGAN (Mao et al.) with an optional SIG term: the extension point."""

    def __init__(self, generator, discriminator, latent_dim, sig_weight=0.0, conditional=None,
                 auto_sig_scale=1.0, auto_weight_momentum=0.9, **kwargs):
        super().__init__(generator, discriminator, latent_dim, **kwargs)
        self._init_sig_term(sig_weight, conditional, auto_sig_scale, auto_weight_momentum)

    @staticmethod
    def _discriminator_loss(real_outputs, fake_outputs):
        return 0.5 * (tf.square(real_outputs[:, 0] - 1.0) + tf.square(fake_outputs[:, 0]))

    @staticmethod
    def _generator_loss(fake_outputs):
        return 0.5 * tf.square(fake_outputs[:, 0] - 1.0)

    def train_step(self, data):
        x = self._real_batch(data)
        with tf.GradientTape() as g_tape:
            fake = self.generator(self.draw_noise_like(x), training=True)
        with tf.GradientTape() as d_tape:
            outputs = [self.discriminator(t, training=True) for t in (x, tf.stop_gradient(fake))]
            d_loss = reduction.replica_mean(self._discriminator_loss(*outputs))
        d_vars = self.discriminator.trainable_variables
        self.d_optimizer.apply(d_tape.gradient(d_loss, d_vars), d_vars)
        self._report((self.d_loss_tracker, d_loss))
        self._generator_step(x, g_tape, fake)
        return self.metric_logs()


@pytest.mark.parametrize("sig_weight", [0.0, "auto"])
def test_a_new_model_on_the_base_trains_evaluates_and_saves(sig_weight, tmp_path):
    keras.utils.set_random_seed(0)
    model = LeastSquaresGAN(*_networks(), LATENT, sig_weight=sig_weight, seed=4)
    model.compile(g_optimizer=keras.optimizers.Adam(1e-2), d_optimizer=keras.optimizers.Adam(1e-2))
    g0 = model.generator.get_weights()
    logs = model.fit(_data(16), batch_size=8, epochs=1, verbose=0).history
    expected = {"d_loss", "g_loss"} | ({"sig_loss", "sig_weight"} if sig_weight else set())
    assert set(logs) == expected
    assert all(np.isfinite(v[-1]) for v in logs.values())
    assert any(not np.allclose(a, b) for a, b in zip(g0, model.generator.get_weights()))
    assert set(model.evaluate(_data(8), batch_size=8, verbose=0, return_dict=True)) == {
        "d_loss", "g_loss"} | ({"sig_loss", "sig_weight"} if sig_weight else set())
    path = str(tmp_path / "lsgan.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, LeastSquaresGAN) and loaded.sig_weight == model.sig_weight
    np.testing.assert_allclose(loaded.sample(3, seed=1), model.sample(3, seed=1), atol=1e-6)
    assert int(loaded.optimizer.iterations.numpy()) == 2
