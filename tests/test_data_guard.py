"""The data guard: every batch checked inside the step, whatever feeds `fit`.

A bad batch deep in a stream (not only the first, which `fit` checks on the
host) stops `fit` / `evaluate` with an error naming the requirement, the value
and the step, and no weight is touched.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from sig_keras import layers
from sig_keras.models import GAN
from tests import harness

BAD_BATCH = 9  # the tenth batch
BATCH = 8
NUM_BATCHES = 12


def _sig_data():
    return harness.two_clusters(BATCH * NUM_BATCHES)


def _gan_si():
    keras.utils.set_random_seed(0)
    model = GAN(harness.tiny_image_generator(), harness.tiny_image_discriminator(),
                latent_dim=harness.IMAGE_LATENT, sig_weight="auto", data_range=(-1.0, 1.0),
                seed=1)
    model.compile(**harness.two_optimizers(1e-3))
    return model


MODELS = {
    "sig": (harness.tiny_sig, _sig_data),
    "gan_si": (_gan_si, lambda: harness.images(BATCH * NUM_BATCHES)),
}


def _poison(x, batch=BAD_BATCH, value=np.nan):
    x = np.array(x, copy=True)
    x[batch * BATCH + 3].flat[1] = value
    return x


class _Batches(keras.utils.PyDataset):
    def __init__(self, x):
        super().__init__()
        self.x = x

    def __len__(self):
        return len(self.x) // BATCH

    def __getitem__(self, i):
        return self.x[i * BATCH:(i + 1) * BATCH]


def _generator(x):
    def gen():
        while True:
            for i in range(len(x) // BATCH):
                yield (x[i * BATCH:(i + 1) * BATCH],)
    return gen()


SOURCES = {
    "tf.data": lambda x: dict(x=harness.batched(x, BATCH)),
    "generator": lambda x: dict(x=_generator(x), steps_per_epoch=NUM_BATCHES),
    "PyDataset": lambda x: dict(x=_Batches(x), shuffle=False),
}


def _assert_finite_and_unchanged(model, before):
    after = harness.weights(model)
    for a, b in zip(before, after):
        assert np.all(np.isfinite(b))
    # The step that met the bad batch updated nothing: the weights are those
    # after the nine good steps, which differ from the initial ones.
    assert any(not np.array_equal(a, b) for a, b in zip(before, after))


@pytest.mark.parametrize("source", sorted(SOURCES))
@pytest.mark.parametrize("name", sorted(MODELS))
def test_nan_in_tenth_batch_stops_before_the_update(name, source):
    build, data = MODELS[name]
    model = build()
    x = _poison(data())
    before = harness.weights(model)
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=r"requirement of finite values: found.*nan.*at step.*9"):
        model.fit(**SOURCES[source](x), epochs=1, verbose=0)
    assert int(model.optimizer.iterations.numpy()) == BAD_BATCH
    _assert_finite_and_unchanged(model, before)


def test_negative_count_in_third_batch_of_poisson_sig():
    model = harness.tiny_sig(layers.PoissonConditional(), output_dim=2)
    x = np.random.default_rng(0).poisson(3.0, (BATCH * 6, 2)).astype("float32")
    x = _poison(x, batch=2, value=-1.0)
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=r"non-negative counts.*found.*-1.*at step.*2"):
        model.fit(harness.batched(x, BATCH), epochs=1, verbose=0)
    assert int(model.optimizer.iterations.numpy()) == 2


def test_unscaled_image_batch_in_gan_stream():
    model = _gan_si()
    x = harness.images(BATCH * 6)
    x[4 * BATCH:5 * BATCH] = (x[4 * BATCH:5 * BATCH] + 1.0) * 127.5  # [0, 255]
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"values in data_range=\(-1, 1\)"):
        model.fit(harness.batched(x, BATCH), epochs=1, verbose=0)
    assert int(model.optimizer.iterations.numpy()) == 4


@pytest.mark.parametrize("name", sorted(MODELS))
def test_validation_data_is_guarded(name):
    build, data = MODELS[name]
    model = build()
    x = data()
    bad = _poison(x[:BATCH * 3], batch=2)
    with pytest.raises(tf.errors.InvalidArgumentError, match="finite values"):
        model.fit(harness.batched(x, BATCH), validation_data=harness.batched(bad, BATCH),
                  epochs=1, verbose=0)


def test_eager_steps_raise_value_error():
    model = harness.tiny_sig(run_eagerly=True)
    x = _poison(_sig_data(), batch=3)
    with pytest.raises(ValueError, match="requirement of finite values at step 3: found nan"):
        model.fit(harness.batched(x, BATCH), epochs=1, verbose=0)


def test_guard_can_be_turned_off():
    model = harness.tiny_sig()
    model.fit(harness.batched(_sig_data(), BATCH), epochs=1, verbose=0)  # traced with the guard
    model.data_guard = False
    x = _poison(_sig_data(), batch=1)
    model.fit(harness.batched(x, BATCH), epochs=1, verbose=0)  # trains on: nobody checks
    assert not all(np.all(np.isfinite(w)) for w in harness.weights(model))
    with pytest.raises(ValueError, match="`data_guard` must be True or False"):
        model.data_guard = "no"


def _xla(name):
    """The model of `MODELS[name]`, compiled again with `jit_compile=True`."""
    if name == "sig":
        return harness.tiny_sig(jit_compile=True)
    model = GAN(harness.tiny_image_generator(), harness.tiny_image_discriminator(),
                latent_dim=harness.IMAGE_LATENT, sig_weight="auto", data_range=(-1.0, 1.0),
                seed=1)
    model.compile(jit_compile=True, **harness.two_optimizers(1e-3))
    return model


@pytest.mark.parametrize("name", sorted(MODELS))
def test_xla_steps_guard_tf_data_in_the_input_pipeline(name):
    # XLA drops the assertions inside the step; the dataset is checked instead.
    model = _xla(name)
    x = _poison(MODELS[name][1]())
    before = harness.weights(model)
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=r"training data violates its requirement of finite values: "
                             r"found.*nan"):
        model.fit(harness.batched(x, BATCH), epochs=1, verbose=0)
    assert int(model.optimizer.iterations.numpy()) == BAD_BATCH
    _assert_finite_and_unchanged(model, before)


def test_xla_steps_guard_tf_data_validation_data():
    model = _xla("sig")
    x = _sig_data()
    bad = _poison(x[:BATCH * 3], batch=2)
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match="validation data violates its requirement of finite values"):
        model.fit(harness.batched(x, BATCH), validation_data=harness.batched(bad, BATCH),
                  epochs=1, verbose=0)


def test_xla_steps_with_the_guard_off_leave_the_dataset_alone():
    model = _xla("sig")
    model.data_guard = False
    x = _poison(_sig_data(), batch=1)
    model.fit(harness.batched(x, BATCH), epochs=1, verbose=0)  # trains on: nobody checks
    assert not all(np.all(np.isfinite(w)) for w in harness.weights(model))
