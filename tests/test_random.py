"""`sig_keras.utils.random`: keras.random's numbers outside XLA, Philox under XLA."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from sig_keras.utils import random as random_lib


@pytest.mark.parametrize("mode", ["eager", "graph"])
@pytest.mark.parametrize("draw", ["normal", "uniform"])
def test_seed_generator_draws_equal_keras_random(mode, draw):
    ours_gen, keras_gen = keras.random.SeedGenerator(7), keras.random.SeedGenerator(7)
    ours_fn = getattr(random_lib, draw)
    keras_fn = getattr(keras.random, draw)

    def both():
        return ours_fn((64, 5), seed=ours_gen), keras_fn((64, 5), seed=keras_gen)

    if mode == "graph":
        both = tf.function(both)
    for _ in range(3):  # the generators advance alike
        ours, theirs = both()
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    np.testing.assert_array_equal(ours_gen.state.numpy(), keras_gen.state.numpy())


@pytest.mark.parametrize("seed", [0, 3, 2**31 - 1, 2**40 + 5, np.int64(11)])
def test_int_seeds_equal_keras_random(seed):
    # keras.random takes Python ints only; ours also NumPy integers.
    np.testing.assert_array_equal(random_lib.normal((16, 3), seed=seed).numpy(),
                                  keras.random.normal((16, 3), seed=int(seed)).numpy())
    np.testing.assert_array_equal(random_lib.uniform((16,), seed=seed).numpy(),
                                  keras.random.uniform((16,), seed=int(seed)).numpy())


def test_uniform_bounds():
    u = random_lib.uniform((1000,), seed=1, minval=-2.0, maxval=3.0).numpy()
    assert u.min() >= -2.0 and u.max() < 3.0


def test_xla_draws_are_standard_normal_and_advance():
    gen = keras.random.SeedGenerator(0)
    draw = tf.function(lambda: random_lib.normal((4096, 8), seed=gen), jit_compile=True)
    a, b = draw().numpy(), draw().numpy()
    assert not np.array_equal(a, b)
    for x in (a, b):
        assert np.all(np.isfinite(x))
        assert abs(x.mean()) < 0.02 and abs(x.std() - 1.0) < 0.02


def test_xla_draws_are_reproducible_from_a_seed():
    draw = tf.function(lambda: random_lib.normal((32, 4), seed=5), jit_compile=True)
    np.testing.assert_array_equal(draw().numpy(), draw().numpy())


@pytest.mark.parametrize("seed", [None, 1.5, "0", True])
def test_bad_seed(seed):
    with pytest.raises(ValueError, match="`seed` must be an int or a"):
        random_lib.normal((2, 2), seed=seed)
