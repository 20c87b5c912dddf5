"""What the library does for the user: `latent_dim` read from the generator,
optimizers built by `fit`, and the malloc top pad set by `get_strategy`.

Each default is checked for every model where it applies, beside the
explicit spelling it replaces (which keeps working).
"""

import os
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from sig_keras import distribute
from sig_keras.callbacks import FaultTolerantBackup
from sig_keras.distribute import host
from sig_keras.models import GAN
from sig_keras.models import SIG
from sig_keras.models import VAE
from sig_keras.models import VEEGAN
from sig_keras.models import WGANGP
from sig_keras.models import AdversarialModel
from sig_keras.models import UnrolledGAN
from sig_keras.networks import mlp_discriminator
from sig_keras.networks import mlp_encoder
from sig_keras.networks import mlp_generator
from tests import harness as h

LATENT = 3  # differs from the data width (2), so a swap would show
DIM = 2
HIDDEN = (8,)
BATCH = 16
STEPS = 2


def _generator():
    return mlp_generator(LATENT, DIM, HIDDEN)


def _unknown_width_generator():
    """A generator with no `keras.Input`: its input width is not known."""
    return keras.Sequential([keras.layers.Dense(8, activation="relu"),
                             keras.layers.Dense(DIM)], name="generator")


# `build(generator, **kwargs)` for each model; `latent_dim` is left out
# unless a test passes it.
BUILDERS = {
    "sig": lambda gen, **kw: SIG(gen, "normal", num_samples=8, seed=1, **kw),
    "gan": lambda gen, **kw: GAN(gen, mlp_discriminator(DIM, HIDDEN),
                                 data_range=None, seed=1, **kw),
    "wgan_gp": lambda gen, **kw: WGANGP(gen, mlp_discriminator(DIM, HIDDEN),
                                        critic_steps=1, data_range=None, seed=1, **kw),
    "unrolled_gan": lambda gen, **kw: UnrolledGAN(
        gen, mlp_discriminator(DIM, HIDDEN), unrolling_steps=1, seed=1, **kw),
    "veegan": lambda gen, **kw: VEEGAN(
        gen, mlp_discriminator(DIM + LATENT, HIDDEN), mlp_encoder(DIM, LATENT, HIDDEN),
        seed=1, **kw),
    "vae": lambda gen, **kw: VAE(mlp_encoder(DIM, 2 * LATENT, HIDDEN), gen, seed=1, **kw),
}
KINDS = list(BUILDERS)


def _compile(model):
    if isinstance(model, AdversarialModel):
        model.compile(**h.two_optimizers(1e-3))
    else:
        model.compile(optimizer=keras.optimizers.Adam(1e-3))
    return model


def _data():
    return h.batched(h.grid_data(BATCH * STEPS), BATCH)


# === latent_dim from the generator ===


@pytest.mark.parametrize("kind", KINDS)
def test_latent_dim_is_read_from_the_generator(kind):
    model = BUILDERS[kind](_generator())
    assert model.latent_dim == LATENT
    config = model.get_config()
    assert config["latent_dim"] == LATENT
    assert type(model).from_config(config).latent_dim == LATENT
    assert model.draw_noise(5, seed=0).shape == (5, LATENT)


@pytest.mark.parametrize("kind", KINDS)
def test_explicit_latent_dim_still_works(kind):
    assert BUILDERS[kind](_generator(), latent_dim=LATENT).latent_dim == LATENT
    # A generator without a known input width needs it, and takes it.
    model = BUILDERS[kind](_unknown_width_generator(), latent_dim=LATENT)
    assert model.latent_dim == LATENT


def test_positional_latent_dim_still_works():
    gen, disc = _generator(), mlp_discriminator(DIM, HIDDEN)
    assert GAN(gen, disc, LATENT, data_range=None).latent_dim == LATENT
    enc = mlp_encoder(DIM, 2 * LATENT, HIDDEN)
    assert VAE(enc, _generator(), LATENT).latent_dim == LATENT


@pytest.mark.parametrize("kind", KINDS)
def test_latent_dim_that_disagrees_with_the_generator_is_an_error(kind):
    with pytest.raises(ValueError, match=f"inputs of width {LATENT}, but the noise "
                                         f"dimension is {LATENT + 1}"):
        BUILDERS[kind](_generator(), latent_dim=LATENT + 1)


@pytest.mark.parametrize("kind", KINDS)
def test_unknown_generator_width_without_latent_dim_is_an_error(kind):
    role = "decoder" if kind == "vae" else "generator"
    with pytest.raises(ValueError, match=f"The {role}'s input width is unknown.*"
                                         "pass `latent_dim`"):
        BUILDERS[kind](_unknown_width_generator())


# === Optimizers built by `fit` ===


def _optimizers_built(model):
    return {attr: opt.built for attr, opt, _ in distribute.model_optimizers(model)}


@pytest.mark.parametrize("kind", KINDS)
def test_fit_builds_the_optimizers_under_a_strategy(kind, two_cpu_strategy, tmp_path):
    """No `build_optimizers` call: `fit` builds them in scope; `.keras` round trip."""
    with two_cpu_strategy.scope():
        model = _compile(BUILDERS[kind](_generator()))
    assert not any(_optimizers_built(model).values())
    history = model.fit(_data(), epochs=1, verbose=0)
    built = _optimizers_built(model)
    assert built and all(built.values()), built
    assert all(np.all(np.isfinite(v)) for v in history.history.values())
    iterations = {attr: int(opt.iterations.numpy())
                  for attr, opt, _ in distribute.model_optimizers(model)}
    assert iterations["optimizer"] == STEPS and min(iterations.values()) > 0, iterations
    path = str(tmp_path / f"{kind}.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.latent_dim == LATENT
    np.testing.assert_array_equal(loaded.sample(8, seed=3).numpy(),
                                  model.sample(8, seed=3).numpy())


class _SubclassedEncoder(keras.Model):
    """An encoder whose variables exist only after its first call on data."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.hidden = keras.layers.Dense(8, activation="relu")
        self.out = keras.layers.Dense(2 * LATENT)

    def call(self, x):
        return self.out(self.hidden(x))


def test_fit_trains_a_network_that_builds_on_its_first_call():
    """Optimizers are built at the first step when a network cannot be
    built before it sees data."""
    model = VAE(_SubclassedEncoder(name="encoder"), _generator(), seed=1)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    model.fit(_data(), epochs=1, verbose=0)
    assert int(model.optimizer.iterations.numpy()) == STEPS
    assert model.encoder.built and len(model.optimizer.variables) > 1


@pytest.mark.parametrize("kind", ["sig", "gan"])
def test_explicit_build_optimizers_still_works(kind, two_cpu_strategy):
    with two_cpu_strategy.scope():
        model = _compile(BUILDERS[kind](_generator(), latent_dim=LATENT))
        distribute.build_optimizers(model)
    assert all(_optimizers_built(model).values())
    model.fit(_data(), epochs=1, verbose=0)
    h.assert_iterations(model, {"optimizer": STEPS})


@pytest.mark.parametrize("use_strategy", [False, True], ids=["one_device", "mirrored"])
@pytest.mark.parametrize("kind", ["sig", "gan"])
def test_fault_tolerant_backup_resumes_without_build_optimizers(
        kind, use_strategy, two_cpu_strategy, tmp_path):
    """A run stopped after epoch 1 resumes every optimizer's state."""
    strategy = two_cpu_strategy if use_strategy else tf.distribute.get_strategy()

    def make():
        with strategy.scope():
            return _compile(BUILDERS[kind](_generator()))

    first = make()
    first.fit(_data(), epochs=1, verbose=0, callbacks=[
        FaultTolerantBackup(str(tmp_path), delete_checkpoint=False)])
    resumed = make()
    history = resumed.fit(_data(), epochs=2, verbose=0, callbacks=[
        FaultTolerantBackup(str(tmp_path))])
    assert history.epoch == [1]  # epoch 0 came from the checkpoint
    for attr, opt, _ in distribute.model_optimizers(resumed):
        # The restored optimizer continued from the first run's step count.
        assert int(opt.iterations.numpy()) == 2 * int(
            getattr(first, attr).iterations.numpy()), attr


def test_fault_tolerant_backup_needs_a_built_plain_keras_model(tmp_path):
    class Unbuilt(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(1)

        def call(self, x):
            return self.dense(x)

    model = Unbuilt()
    model.compile(optimizer="sgd", loss="mse")
    x = np.zeros((4, 2), np.float32)
    with pytest.raises(ValueError, match=r"needs a built model.*model.build\(input_shape\)"):
        model.fit(x, x[:, :1], epochs=1, verbose=0,
                  callbacks=[FaultTolerantBackup(str(tmp_path))])


# === Malloc top pad set by `get_strategy` ===


@pytest.fixture
def pad_calls(monkeypatch):
    """The sizes `get_strategy` passes to `set_malloc_top_pad` (not applied)."""
    calls = []
    monkeypatch.setattr(host, "set_malloc_top_pad", calls.append)
    monkeypatch.delenv("MALLOC_TOP_PAD_", raising=False)
    return calls


def test_get_strategy_pads_malloc_for_several_cpu_replicas(pad_calls):
    strategy = distribute.get_strategy("mirrored")  # conftest's 2 logical CPUs
    assert strategy.num_replicas_in_sync == 2
    assert pad_calls == [distribute.strategy.AUTO_MALLOC_TOP_PAD] == [64 << 20]
    distribute.get_strategy("mirrored", malloc_top_pad=None)
    assert pad_calls == [64 << 20] * 2


@pytest.mark.parametrize("value", [0, False])
def test_get_strategy_malloc_top_pad_opt_out(pad_calls, value):
    distribute.get_strategy("mirrored", malloc_top_pad=value)
    assert pad_calls == []


def test_get_strategy_leaves_malloc_alone_when_not_needed(pad_calls, monkeypatch):
    distribute.get_strategy("default")
    distribute.get_strategy("mirrored", devices=["/cpu:0"])  # one replica
    monkeypatch.setenv("MALLOC_TOP_PAD_", "131072")  # the user's own setting
    distribute.get_strategy("mirrored")
    monkeypatch.delenv("MALLOC_TOP_PAD_")
    monkeypatch.setattr(host, "has_glibc", lambda: False)  # macOS, musl
    distribute.get_strategy("mirrored")
    assert pad_calls == []


def test_get_strategy_explicit_malloc_top_pad(pad_calls):
    distribute.get_strategy("mirrored", devices=["/cpu:0"], malloc_top_pad=1 << 20)
    assert pad_calls == [1 << 20]


@pytest.mark.parametrize("value", [-1, 2**31, 1.5, True, "64", "on"])
def test_get_strategy_rejects_bad_malloc_top_pad(pad_calls, value):
    with pytest.raises(ValueError, match="`malloc_top_pad` must be 'auto', None, False or"):
        distribute.get_strategy("mirrored", malloc_top_pad=value)
    assert pad_calls == []


def test_get_strategy_rejects_malloc_top_pad_for_the_default_strategy(pad_calls):
    with pytest.raises(ValueError, match="`malloc_top_pad` only applies to 'mirrored'"):
        distribute.get_strategy("default", malloc_top_pad=1 << 20)


_PAD_SETUP = """
import os
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from sig_keras import distribute
"""

_PAD_MEASURE = """
distribute.get_strategy("mirrored", malloc_top_pad=False)
opted_out = released()
distribute.get_strategy("mirrored")
padded = released()
print(opted_out, padded)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt (Linux)")
def test_get_strategy_pad_keeps_freed_heap_mapped():
    """In a fresh process (the pad is process-wide): after an opted-out
    strategy glibc returns 32 MB of freed heap; after a default one it keeps
    it (`harness.run_malloc_probes`)."""
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_TOP_PAD_"}
    results = h.run_malloc_probes(_PAD_SETUP, _PAD_MEASURE, env=env)
    opted_out, padded = results[-1]
    if not (opted_out > 24e6 and padded < 4e6):
        pytest.fail(f"freed heap returned to the system (bytes) after an opted-out "
                    f"and after a default 2-replica CPU strategy, per probe: {results}")
