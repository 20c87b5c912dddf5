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


@pytest.mark.parametrize("kwargs, message", [
    (dict(size="XL"), "Unknown MNIST-3 network size"),
    (dict(width=0), "width"),
    (dict(dropout=1.0), "dropout"),
    (dict(dropout=-0.1), "dropout"),
])
def test_mnist3_discriminator_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        networks.mnist3_discriminator(**kwargs)


def test_dcgan_generator_rejects_a_shape_it_cannot_reach():
    with pytest.raises(ValueError, match="image_shape"):
        networks.dcgan_generator(image_shape=(28, 28, 1))
