"""The checks every model gets, and the tiny models and data they run on.

After keras-hub's `TestCase` (`run_layer_test`, `run_serialization_test`,
`run_model_saving_test`): a model's test file builds its model and calls

- `run_fit_modes_test(model, fit_mode, x, ...)` under `@fit_modes`
  (`FIT_MODES`: eager, graph, jit): compiles in the mode, fits, checks the
  logs, the optimizer steps and that the networks moved;
- `run_serialization_test(model)`: `get_config` / `from_config` round trip;
- `run_saving_test(model, tmp_path, ...)`: `.keras` round trip, samples,
  config and every optimizer's state;
- `run_mirrored_matches_single_device_test(make_model, strategy, data, ...)`:
  the same steps on one device and on 2 replicas give the same variables
  (model and optimizers) and logs.

Each returns what it built, so the test adds the checks that are its own.
`GridBaselineTests` runs all four on a Table 1 baseline (a test class per
model subclasses it) and `bad_options_test` makes a test of rejected
options. The tiny models and data (`tiny_sig`, `two_clusters`,
`tiny_image_generator`, `images`, `grid_data`, ...) are shared by the test
files; `start_worker` / `wait_all` run `tests/_train_worker.py` in
subprocesses.
"""

import importlib.util
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from sig_keras import datasets
from sig_keras import distribute
from sig_keras import layers
from sig_keras.models import GAN
from sig_keras.models import SIG
from sig_keras.networks import mlp_generator

# === Fit modes ===

FIT_MODES = {
    "eager": dict(run_eagerly=True, jit_compile=False),
    "graph": dict(run_eagerly=False, jit_compile=False),
    "jit": dict(run_eagerly=False, jit_compile=True),
}
fit_modes = pytest.mark.parametrize("fit_mode", list(FIT_MODES))


EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")


def load_example(name):
    """Imports examples/<name>.py as a fresh module."""
    spec = importlib.util.spec_from_file_location(f"example_{name}",
                                                  os.path.join(EXAMPLES, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# Measures how much of 32 MB of freed small heap blocks glibc gives back to the
# system (`released()`, bytes), for the malloc top pad tests.
MALLOC_PROBE = """
import ctypes

libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = (ctypes.c_size_t,)
libc.free.argtypes = (ctypes.c_void_p,)

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096

def released(n=320, size=100 * 1024):
    # Heap blocks (below the 128 KiB mmap threshold), touched, then freed.
    blocks = [libc.malloc(size) for _ in range(n)]
    for b in blocks:
        ctypes.memset(b, 1, size)
    held = rss()
    for b in reversed(blocks):
        libc.free(b)
    return held - rss()
"""


def run_malloc_probes(setup, measure, env=None, attempts=3):
    """Runs `setup + MALLOC_PROBE + measure` in fresh processes (the pad is
    process-wide); `measure` prints two `released()` counts, without and with
    the pad. RSS is shared with the process's other threads (TensorFlow's
    pools), so one probe can be disturbed on a loaded machine: up to
    `attempts` probes, stopping at the first where the pad shows (over 24 MB
    given back without it, under 4 MB with it). Returns every probe's pair."""
    results = []
    for _ in range(attempts):
        out = subprocess.run(
            [sys.executable, "-c", setup + MALLOC_PROBE + measure], capture_output=True,
            text=True, timeout=300, check=True, env=env,
        ).stdout.split()
        without, with_pad = int(out[-2]), int(out[-1])
        results.append((without, with_pad))
        if without > 24e6 and with_pad < 4e6:
            break
    return results


def compiled(model, **compile_kwargs):
    """`model` after `model.compile(**compile_kwargs)`."""
    model.compile(**compile_kwargs)
    return model


def compile_in_mode(model, fit_mode, **compile_kwargs):
    """`model.compile(**compile_kwargs)` in one of `FIT_MODES`."""
    return compiled(model, **FIT_MODES[fit_mode], **compile_kwargs)


def weights(model):
    """Copies of `model.weights` (numpy)."""
    return [np.array(w.numpy()) for w in model.weights]


def assert_iterations(model, iterations):
    """Each optimizer took its steps: `{"optimizer": 2, "d_optimizer": 4}`,
    or an int for every optimizer of `model`; None checks nothing."""
    if isinstance(iterations, int):
        iterations = {attr: iterations for attr, _, _ in distribute.model_optimizers(model)}
    for attr, steps in (iterations or {}).items():
        assert int(getattr(model, attr).iterations.numpy()) == steps, attr


def run_fit_modes_test(model, fit_mode, x, *, batch_size, epochs=1,
                       compile_kwargs=None, expected_logs=None, iterations=None,
                       moved=("generator",)):
    """Compiles `model` in `fit_mode`, fits `x` and checks the result.

    Checks: the logged names are `expected_logs` (default: the names of
    `model.metrics`), every logged value is finite, the optimizers took
    `iterations` steps (see `assert_iterations`), the first trainable weight
    of every network in `moved` (attribute names) changed, and 10 samples
    have the data's shape and are finite. Returns the history dict.
    """
    compile_in_mode(model, fit_mode, **(compile_kwargs or {}))
    networks = [getattr(model, name) for name in moved]
    before = [np.array(net.trainable_weights[0].numpy()) for net in networks]
    logs = model.fit(x, batch_size=batch_size, epochs=epochs, verbose=0).history
    expected = {m.name for m in model.metrics} if expected_logs is None else expected_logs
    assert set(logs) == set(expected)
    for name, values in logs.items():
        assert len(values) == epochs and np.all(np.isfinite(values)), (name, values)
    assert_iterations(model, iterations)
    for name, net, w0 in zip(moved, networks, before):
        assert not np.allclose(w0, net.trainable_weights[0].numpy()), name
    samples = model.sample(10, seed=0).numpy()
    assert samples.shape == (10,) + tuple(np.shape(x)[1:]) and np.all(np.isfinite(samples))
    return logs


# === Configuration and saving ===


def _config_json(model):
    # json normalises tuples and lists (build configs come back as lists).
    return json.dumps(model.get_config(), sort_keys=True)


def run_serialization_test(model):
    """`from_config(get_config())` gives the same class and the same config."""
    clone = type(model).from_config(model.get_config())
    assert type(clone) is type(model)
    assert _config_json(clone) == _config_json(model)
    return clone


def run_saving_test(model, tmp_path, *, iterations, num_samples=16, seed=3):
    """`.keras` round trip of a fitted model with its optimizer state.

    Checks: the loaded model has the same class and config, comes back
    compiled, draws the same `sample(num_samples, seed)` (which differs from
    seed + 1's), and every optimizer has the same class, learning rate,
    built variables and values, and took `iterations` steps. Samples and
    optimizer values are compared exactly. Returns the loaded model.
    """
    path = str(tmp_path / f"{model.name}.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert type(loaded) is type(model)
    assert _config_json(loaded) == _config_json(model)
    assert loaded.compiled
    expected = model.sample(num_samples, seed=seed).numpy()
    np.testing.assert_array_equal(loaded.sample(num_samples, seed=seed).numpy(), expected)
    # Different seeds give different samples (the check above is not vacuous).
    assert np.abs(expected - model.sample(num_samples, seed=seed + 1).numpy()).max() > 0
    optimizers = distribute.model_optimizers(model)
    assert [attr for attr, _, _ in distribute.model_optimizers(loaded)] == [
        attr for attr, _, _ in optimizers
    ]
    for attr, original, _ in optimizers:
        restored = getattr(loaded, attr)
        assert type(restored) is type(original), attr
        assert restored.get_config()["learning_rate"] == (
            original.get_config()["learning_rate"]), attr
        assert original.built and restored.built, attr
        assert len(restored.variables) == len(original.variables), attr
        for a, b in zip(original.variables, restored.variables):
            np.testing.assert_array_equal(b.numpy(), a.numpy(), err_msg=f"{attr}/{a.path}")
    assert_iterations(loaded, iterations)
    return loaded


# === One device against 2 replicas ===


def training_state(model):
    """Every model variable (seed generators included), then every optimizer's."""
    values = [np.array(v.numpy()) for v in model.variables]
    for _, opt, _ in distribute.model_optimizers(model):
        values += [np.array(v.numpy()) for v in opt.variables]
    return values


def _fit_under(make_model, strategy, data, fit_kwargs, initial=None):
    with strategy.scope():
        model = make_model()
        distribute.build_optimizers(model, strategy)
    if initial is not None:
        for v, value in zip(model.variables, initial):
            v.assign(value)
    start = [np.array(v.numpy()) for v in model.variables]
    history = model.fit(data, verbose=0, shuffle=False, **fit_kwargs)
    return model, start, history.history


def run_mirrored_matches_single_device_test(
        make_model, strategy, data, *, fit_kwargs=None, rtol=1e-4, atol=1e-5,
        logs_rtol=1e-4, logs_atol=0.0, min_moved=0.0):
    """The same steps on one device and on `strategy`'s 2 replicas agree.

    `make_model()` returns a compiled model; it is called once outside and
    once inside `strategy.scope()`, and the second copy gets the first's
    initial variables (seed generator states included). Both fit `data`
    unshuffled with `fit_kwargs`. Checks: 2 replicas; every model and
    optimizer variable agrees to `rtol`/`atol`; some float variable moved
    (by more than `min_moved` in some weight); every log is finite and
    agrees to `logs_rtol`/`logs_atol`. Returns the two trained models.
    """
    fit_kwargs = fit_kwargs or {}
    single, start, h1 = _fit_under(make_model, tf.distribute.get_strategy(), data,
                                   fit_kwargs)
    mirrored, start2, h2 = _fit_under(make_model, strategy, data, fit_kwargs,
                                      initial=start)
    assert mirrored.distribute_strategy.num_replicas_in_sync == 2
    for a, b in zip(start, start2):
        np.testing.assert_array_equal(a, b)
    s1, s2 = training_state(single), training_state(mirrored)
    assert len(s1) == len(s2)
    moved = 0
    for a, b, a0 in zip(s1, s2, start + [None] * len(s1)):
        np.testing.assert_allclose(b, a, rtol=rtol, atol=atol)
        if a0 is not None and a.dtype.kind == "f" and not np.allclose(a, a0):
            moved += 1
    assert moved > 0, "training did not change the weights"
    initial = {id(v): a0 for v, a0 in zip(single.variables, start)}
    assert max(np.abs(w.numpy() - initial[id(w)]).max() for w in single.weights) > (
        min_moved)
    assert set(h1) == set(h2)
    for key in h1:
        assert np.all(np.isfinite(h2[key])), key
        np.testing.assert_allclose(h2[key], h1[key], rtol=logs_rtol, atol=logs_atol,
                                   err_msg=key)
    return single, mirrored


# === Worker processes (tests/_train_worker.py) ===

WORKER = os.path.join(os.path.dirname(__file__), "_train_worker.py")
WORKER_TIMEOUT_S = 240


def start_worker(args, env_extra=None):
    """Starts the training worker; `TF_CONFIG` only if `env_extra` sets it."""
    env = dict(os.environ)
    env.pop("TF_CONFIG", None)
    env.update(env_extra or {})
    return subprocess.Popen(
        [sys.executable, WORKER, *args], env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


def wait_all(procs, timeout=WORKER_TIMEOUT_S):
    """Waits for every process (bounded), kills stragglers, returns outputs."""
    outputs = []
    try:
        for p in procs:
            output, _ = p.communicate(timeout=timeout)
            outputs.append(output)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    return outputs


# === Tiny models and data ===

CLUSTER_CENTRES = np.array([[2.0, -1.0], [-2.0, 1.0]], np.float32)
SIG_LATENT = 3


def two_clusters(n=128, seed=0):
    """Two tight clusters at (2, -1) and (-2, 1), float32 `[n, 2]`."""
    rng = np.random.default_rng(seed)
    return (CLUSTER_CENTRES[rng.integers(0, 2, n)]
            + 0.2 * rng.normal(size=(n, 2))).astype(np.float32)


def tiny_sig(conditional=None, output_dim=2, num_samples=16, seed=1, lr=1e-2,
             gather_psi=True, **compile_kwargs):
    """A compiled SIG: one hidden layer of 16, `SIG_LATENT` noise dimensions,
    `NormalConditional(0.3)` unless given, Adam(`lr`)."""
    keras.utils.set_random_seed(0)
    conditional = layers.NormalConditional(0.3) if conditional is None else conditional
    generator = mlp_generator(SIG_LATENT, output_dim, hidden_units=(16,))
    model = SIG(generator, conditional, latent_dim=SIG_LATENT, num_samples=num_samples,
                seed=seed, gather_psi=gather_psi)
    model.compile(optimizer=keras.optimizers.Adam(lr), **compile_kwargs)
    return model


IMAGE_LATENT = 4
IMAGE_SHAPE = (8, 8, 1)


def tiny_image_generator(batch_norm=False):
    """`[n, IMAGE_LATENT]` noise -> `[n, 8, 8, 1]` images in [-1, 1]."""
    inputs = keras.Input((IMAGE_LATENT,))
    h = keras.layers.Dense(16, activation="relu")(inputs)
    if batch_norm:
        h = keras.layers.BatchNormalization(synchronized=True)(h)
    h = keras.layers.Dense(int(np.prod(IMAGE_SHAPE)), activation="tanh")(h)
    return keras.Model(inputs, keras.layers.Reshape(IMAGE_SHAPE)(h), name="generator")


def tiny_image_discriminator(batch_norm=False):
    """`[n, 8, 8, 1]` images -> one logit each."""
    inputs = keras.Input(IMAGE_SHAPE)
    h = keras.layers.Conv2D(4, 3, strides=2, padding="same")(inputs)
    if batch_norm:
        h = keras.layers.BatchNormalization(synchronized=True)(h)
    h = keras.layers.LeakyReLU(0.2)(h)
    h = keras.layers.Flatten()(h)
    return keras.Model(inputs, keras.layers.Dense(1)(h), name="discriminator")


def tiny_gan(sig_weight=0.0):
    """A GAN of the tiny image networks (a GAN-SI with a positive or "auto"
    `sig_weight`), built under seed 0."""
    keras.utils.set_random_seed(0)
    return GAN(tiny_image_generator(), tiny_image_discriminator(), IMAGE_LATENT,
               sig_weight=sig_weight, seed=1)


def compiled_at_step(model, lr, step):
    """`model` compiled with `two_optimizers(lr)` and its generator
    optimizer at `step`, as a run restored from a checkpoint starts."""
    model.compile(**two_optimizers(lr))
    model.build_optimizers()
    model.optimizer.iterations.assign(step)
    return model


def images(n=32, seed=0):
    """`n` uniform [-1, 1] images of `IMAGE_SHAPE`."""
    rng = np.random.default_rng(seed)
    return rng.uniform(-1, 1, (n,) + IMAGE_SHAPE).astype("float32")


def batched(x, batch_size):
    """`x` as a dataset of full batches, in order."""
    return tf.data.Dataset.from_tensor_slices(x).batch(batch_size, drop_remainder=True)


# Table 1's baselines on the 5 x 5 Gaussian grid (tests/test_vae.py,
# test_unrolled_gan.py, test_veegan.py).
GRID_HIDDEN = (16,)
GRID_LATENT = 2
GRID_DIM = 2


def grid_data(n=64, seed=0):
    """`n` points of the 5 x 5 grid of Gaussians (std 0.1)."""
    return datasets.gaussian_grid(std=0.1).sample(n, seed=seed)


def two_optimizers(lr):
    """Compile arguments: Adam(`lr`) for the generator and the discriminator."""
    return dict(g_optimizer=keras.optimizers.Adam(lr),
                d_optimizer=keras.optimizers.Adam(lr))


def bad_options_test(build, *options):
    """A test: `build(**{name: value})` raises a ValueError that names the
    option, for each `(name, bad value)` pair (one test each)."""

    @pytest.mark.parametrize("option, value", options,
                             ids=[f"{name}={value!r}" for name, value in options])
    def test(option, value):
        with pytest.raises(ValueError, match=option):
            build(**{option: value})

    return test


class GridBaselineTests:
    """The harness checks of a Table 1 baseline on `grid_data`.

    The model's test file subclasses it (`class TestVAE(h.GridBaselineTests)`)
    and sets `build` (`build(**options)` -> the uncompiled model) and
    `optimizers` (`optimizers(lr)` -> its compile arguments).
    """

    build = optimizers = None

    @fit_modes
    def test_fit_modes(self, fit_mode):
        keras.utils.set_random_seed(0)
        run_fit_modes_test(self.build(), fit_mode, grid_data(64), batch_size=16,
                           compile_kwargs=self.optimizers(1e-3), iterations=4)

    def test_save_reload_same_samples_and_optimizer_state(self, tmp_path):
        keras.utils.set_random_seed(0)
        model = compiled(self.build(), **self.optimizers(1e-3))
        model.fit(grid_data(32), batch_size=16, epochs=1, verbose=0)
        run_saving_test(model, tmp_path, iterations=2, num_samples=50)

    def test_two_replica_step_equals_single_device(self, two_cpu_strategy):
        """One step on a 2-replica MirroredStrategy equals the single-device step."""
        keras.utils.set_random_seed(0)
        run_mirrored_matches_single_device_test(
            lambda: compiled(self.build(), **self.optimizers(1e-2)), two_cpu_strategy,
            batched(grid_data(32), 16), fit_kwargs=dict(steps_per_epoch=2, epochs=1))

    def test_bad_compile_and_data_raise(self):
        """`compile(loss=...)` is rejected (with two optimizers, also one
        optimizer object for both, or `optimizer=` beside `g_optimizer=`);
        `fit` rejects the wrong width and NaN."""
        model = self.build()
        with pytest.raises(ValueError, match="loss"):
            model.compile(optimizer="adam", loss="mse")
        compile_kwargs = self.optimizers(1e-3)
        if "d_optimizer" in compile_kwargs:
            opt = keras.optimizers.Adam()
            with pytest.raises(ValueError, match="different"):
                model.compile(g_optimizer=opt, d_optimizer=opt)
            with pytest.raises(ValueError, match="not `optimizer=`"):
                model.compile(optimizer="adam", g_optimizer="adam")
        model.compile(**compile_kwargs)
        with pytest.raises(ValueError, match="shape"):
            model.fit(np.zeros((16, GRID_DIM + 1), np.float32), batch_size=8, verbose=0)
        bad = grid_data(16)
        bad[3, 0] = np.nan
        with pytest.raises(ValueError, match="NaN|non-finite"):
            model.fit(bad, batch_size=8, verbose=0)
