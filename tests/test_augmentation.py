"""RandomChannelPermutation: a permutation per image, in training only,
seeded, serializable, in graph and XLA; and the builder option that uses it."""

import itertools

import keras
import numpy as np
import pytest
import tensorflow as tf

from sig_keras import networks
from sig_keras.layers import RandomChannelPermutation


def _images(n=600, channels=3, seed=0):
    return np.random.default_rng(seed).random((n, 4, 5, channels)).astype(np.float32)


def _which_permutation(x, y):
    """For each image, the permutation p with y[i] = x[i][..., p], or None."""
    found = []
    for xi, yi in zip(x, y):
        match = [p for p in itertools.permutations(range(x.shape[-1]))
                 if np.array_equal(yi, xi[..., list(p)])]
        found.append(match[0] if match else None)
    return found


@pytest.mark.parametrize("mode", ["eager", "graph", "jit"])
def test_every_image_gets_a_uniform_permutation_of_its_channels(mode):
    x = _images()
    layer = RandomChannelPermutation(rate=1.0, seed=0)
    call = lambda v: layer(v, training=True)  # noqa: E731
    if mode != "eager":
        call = tf.function(call, jit_compile=mode == "jit")
    perms = _which_permutation(x, np.asarray(call(x)))
    assert None not in perms
    counts = np.array([perms.count(p) for p in itertools.permutations(range(3))])
    # 600 draws over 6 permutations: 100 each, binomial std about 9.
    assert counts.min() > 60 and counts.max() < 140


@pytest.mark.parametrize("mode", ["eager", "jit"])
def test_batchwise_gives_the_whole_batch_one_permutation(mode):
    x = _images(32)
    layer = RandomChannelPermutation(rate=1.0, batchwise=True, seed=0)
    call = lambda v: layer(v, training=True)  # noqa: E731
    if mode == "jit":
        call = tf.function(call, jit_compile=True)
    seen = set()
    for _ in range(40):
        perms = set(_which_permutation(x, np.asarray(call(x))))
        assert len(perms) == 1 and None not in perms
        seen |= perms
    assert len(seen) == 6  # every permutation turns up over the calls


def test_batchwise_rate_is_the_share_of_batches_permuted():
    x = _images(4)
    layer = RandomChannelPermutation(rate=0.5, batchwise=True, seed=2)
    unchanged = np.mean([np.array_equal(layer(x, training=True), x) for _ in range(600)])
    assert abs(unchanged - (0.5 + 0.5 / 6)) < 0.07


def test_rate_is_the_share_of_images_permuted():
    x = _images(3000)
    y = np.asarray(RandomChannelPermutation(rate=0.3, seed=1)(x, training=True))
    unchanged = np.mean([p == (0, 1, 2) for p in _which_permutation(x, y)])
    # Kept with probability 0.7, plus the identity among the permuted: 0.75.
    assert abs(unchanged - (0.7 + 0.3 / 6)) < 0.03


def test_inference_and_rate_zero_are_the_identity():
    x = _images(8)
    np.testing.assert_array_equal(RandomChannelPermutation(seed=0)(x), x)
    np.testing.assert_array_equal(RandomChannelPermutation(seed=0)(x, training=False), x)
    np.testing.assert_array_equal(RandomChannelPermutation(rate=0.0)(x, training=True), x)


def test_a_seed_repeats_the_draws_and_successive_calls_differ():
    x = _images(64)
    a, b = RandomChannelPermutation(1.0, seed=3), RandomChannelPermutation(1.0, seed=3)
    first = np.asarray(a(x, training=True))
    np.testing.assert_array_equal(first, b(x, training=True))
    assert not np.array_equal(first, a(x, training=True))


def test_config_round_trip():
    layer = RandomChannelPermutation(rate=0.25, batchwise=True, seed=7, name="perm")
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert isinstance(restored, RandomChannelPermutation)
    assert (restored.rate, restored.batchwise, restored.seed, restored.name) == (
        0.25, True, 7, "perm")


@pytest.mark.parametrize("rate", [-0.1, 1.5, float("nan")])
def test_bad_rate(rate):
    with pytest.raises(ValueError, match="rate"):
        RandomChannelPermutation(rate=rate)


def test_batchwise_must_be_a_bool():
    with pytest.raises(ValueError, match="batchwise"):
        RandomChannelPermutation(batchwise=1)


def test_mnist3_discriminator_channel_permutation():
    d = networks.mnist3_discriminator("M", channel_permutation=0.5, seed=0)
    perms = [layer for layer in d.layers if isinstance(layer, RandomChannelPermutation)]
    assert len(perms) == 1 and perms[0].rate == 0.5 and perms[0].seed == 0
    assert not perms[0].batchwise
    batchwise = networks.mnist3_discriminator("M", channel_permutation=1.0,
                                              channel_permutation_batchwise=True)
    assert batchwise.layers[1].batchwise and batchwise.layers[1].rate == 1.0
    assert isinstance(d.layers[1], RandomChannelPermutation)  # first, before any conv
    assert not any(isinstance(layer, RandomChannelPermutation)
                   for layer in networks.mnist3_discriminator("M").layers)
    # In inference the discriminator does not see the permutation.
    x = _images(4, seed=2).repeat(7, axis=1).repeat(6, axis=2)[:, :28, :28]
    plain = networks.mnist3_discriminator("M")
    plain.set_weights(d.get_weights())  # the seed state is not a weight
    np.testing.assert_allclose(d(x, training=False), plain(x, training=False), atol=1e-6)


@pytest.mark.parametrize("rate", [-0.5, 2.0])
def test_mnist3_discriminator_bad_channel_permutation(rate):
    with pytest.raises(ValueError, match="channel_permutation"):
        networks.mnist3_discriminator("M", channel_permutation=rate)
