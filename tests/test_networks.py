"""The convolutional network builders of sig_keras.networks (shapes, options, errors)."""

import keras
import numpy as np
import pytest

from sig_keras import networks


def _conv_filters(model):
    return [layer.filters for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]


@pytest.mark.parametrize("size, filters", [("S", [4, 8, 16]), ("M", [8, 16, 32]),
                                           ("L", [8, 16, 32])])
def test_mnist3_networks_shapes(size, filters):
    g = networks.mnist3_generator(size)
    d = networks.mnist3_discriminator(size)
    x = g(np.zeros((2, 256), np.float32))
    assert x.shape == (2, 28, 28, 3)
    assert d(x).shape == (2, 1)
    assert _conv_filters(d) == filters


def test_mnist3_discriminator_width_dropout_and_batch_norm():
    d = networks.mnist3_discriminator("M", width=4, dropout=0.3)
    assert _conv_filters(d) == [32, 64, 128]
    rates = [layer.rate for layer in d.layers if isinstance(layer, keras.layers.Dropout)]
    assert rates == [0.3, 0.3, 0.3]
    with_bn = networks.mnist3_discriminator("M")
    without = networks.mnist3_discriminator("M", batch_norm=False)
    assert len(with_bn.layers) - len(without.layers) == 2  # after the 2nd and 3rd conv


def test_mnist3_discriminator_first_batch_norm():
    d = networks.mnist3_discriminator("M", first_batch_norm=True)
    kinds = [type(layer).__name__ for layer in d.layers]
    # Batch norm follows every convolution, the first included.
    assert kinds[1:4] == ["Conv2D", "SyncBatchNormalization", "LeakyReLU"]
    assert kinds.count("SyncBatchNormalization") == 3
    default = networks.mnist3_discriminator("M")
    assert [type(layer).__name__ for layer in default.layers][1:3] == ["Conv2D", "LeakyReLU"]


def _kernels(model):
    return [np.asarray(layer.kernel) for layer in model.layers if hasattr(layer, "kernel")]


def test_mnist3_networks_kernel_initializer():
    keras.utils.set_random_seed(0)
    normal = keras.initializers.RandomNormal(stddev=0.02)
    for model in (networks.mnist3_generator("M", kernel_initializer=normal),
                  networks.mnist3_discriminator("M", kernel_initializer=normal)):
        kernels = _kernels(model)
        assert len(kernels) == (5 if model.name == "generator" else 4)
        for kernel in kernels:
            assert abs(kernel.std() - 0.02) < 0.004 and abs(kernel.mean()) < 0.004
    # The default stays Keras' Glorot uniform: bounded by sqrt(6 / fan sum).
    first = _kernels(networks.mnist3_discriminator("M"))[0]  # [4, 4, 3, 8]
    limit = np.sqrt(6.0 / (4 * 4 * 3 + 4 * 4 * 8))
    assert np.abs(first).max() <= limit and first.std() > 0.5 * limit / np.sqrt(3)


def test_a_seeded_kernel_initializer_is_copied_per_layer():
    # One seeded instance shared by layers would give equal-shaped kernels
    # the same values; each layer gets its own copy, seeded alike.
    seeded = keras.initializers.RandomNormal(stddev=0.02, seed=3)
    d = networks.mnist3_discriminator("M", kernel_initializer=seeded)
    initializers = [layer.kernel_initializer for layer in d.layers if hasattr(layer, "kernel")]
    assert len({id(init) for init in initializers}) == len(initializers)
    assert all(init.seed == 3 for init in initializers)


@pytest.mark.parametrize("build", [networks.mnist3_generator, networks.mnist3_discriminator])
def test_mnist3_networks_reject_an_unknown_kernel_initializer(build):
    with pytest.raises(ValueError, match="`kernel_initializer` must be a Keras initializer"):
        build("M", kernel_initializer="gaussian_please")


def test_mnist3_discriminator_strides():
    d = networks.mnist3_discriminator("M", strides=(1, 2, 2))
    convs = [layer for layer in d.layers if isinstance(layer, keras.layers.Conv2D)]
    assert [c.strides for c in convs] == [(1, 1), (2, 2), (2, 2)]
    assert [c.output.shape[1] for c in convs] == [28, 14, 7]
    assert d(np.zeros((2, 28, 28, 3), np.float32)).shape == (2, 1)
    default = networks.mnist3_discriminator("M")
    assert [layer.strides for layer in default.layers
            if isinstance(layer, keras.layers.Conv2D)] == [(2, 2)] * 3


def test_a_stride_2_first_layer_misses_a_two_pixel_pattern_in_its_null_space():
    # The reason for `strides=(1, 2, 2)`: after a stride-2 first layer every
    # output position sees the same phase of a pattern that repeats every 2
    # pixels, so a pattern its filters map to zero changes nothing.
    d = networks.mnist3_discriminator("M", batch_norm=False)
    first = next(layer for layer in d.layers if isinstance(layer, keras.layers.Conv2D))
    kernel = np.asarray(first.kernel)  # [4, 4, 3, 8]
    # A 2x2x3 tile's response per filter: the kernel summed over each phase.
    phases = kernel.reshape(2, 2, 2, 2, 3, 8).sum(axis=(0, 2)).reshape(12, 8)
    tile = np.linalg.svd(phases.T)[2][-1].reshape(2, 2, 3)  # in the null space
    # "same" padding puts 1 pixel before the image: kernel row a reads row
    # 2 * o - 1 + a, whose phase is that of a + 1.
    pattern = np.roll(np.tile(tile, (14, 14, 1)), 1, axis=(0, 1)).astype(np.float32)[None]
    background = -np.ones((1, 28, 28, 3), np.float32)
    inner = keras.Model(d.inputs, first.output)
    seen = np.asarray(inner(background + 0.5 * pattern) - inner(background))[:, 1:-1, 1:-1]
    assert np.abs(seen).max() < 1e-4
    strided_1 = networks.mnist3_discriminator("M", batch_norm=False, strides=(1, 2, 2))
    first_1 = next(layer for layer in strided_1.layers
                   if isinstance(layer, keras.layers.Conv2D))
    first_1.kernel.assign(kernel)
    inner_1 = keras.Model(strided_1.inputs, first_1.output)
    seen_1 = np.asarray(inner_1(background + 0.5 * pattern) - inner_1(background))
    assert np.abs(seen_1[:, 2:-2, 2:-2]).max() > 1e-2


@pytest.mark.parametrize("kwargs, message", [
    (dict(size="XL"), "Unknown MNIST-3 network size"),
    (dict(strides=(1, 2)), "strides"),
    (dict(strides=(3, 2, 2)), "strides"),
    (dict(strides=(True, 2, 2)), "strides"),
    (dict(width=0), "width"),
    (dict(dropout=1.0), "dropout"),
    (dict(dropout=-0.1), "dropout"),
    (dict(batch_norm=False, first_batch_norm=True), "`first_batch_norm=True` needs"),
])
def test_mnist3_discriminator_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        networks.mnist3_discriminator(**kwargs)


def test_dcgan_generator_rejects_a_shape_it_cannot_reach():
    with pytest.raises(ValueError, match="image_shape"):
        networks.dcgan_generator(image_shape=(28, 28, 1))
