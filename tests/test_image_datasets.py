import glob

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from sig_keras import datasets
from sig_keras.callbacks import ImageSummary
from sig_keras.callbacks.image_summary import image_grid
from sig_keras.callbacks.image_summary import save_image_grid
from sig_keras.models import GAN
from tests import gan_helpers as h


def test_stacked_mnist_on_mock_data():
    with tfds.testing.mock_data(num_examples=20):
        ds = datasets.stacked_mnist("train", batch_size=8, seed=0)
        images, labels = next(iter(ds))
    assert images.shape == (8, 28, 28, 3) and images.dtype == tf.float32
    assert ds.element_spec[0].shape[0] == 8  # drop_remainder: static batch
    x = images.numpy()
    assert x.min() >= -1.0 and x.max() <= 1.0
    y = labels.numpy()
    assert y.min() >= 0 and y.max() <= 999


def test_stacked_mnist_label_is_digit_triple():
    with tfds.testing.mock_data(num_examples=12):
        base = tfds.load("mnist", split="train", as_supervised=True)
        ds = datasets.stacked_mnist("train", batch_size=4, seed=3, repeat=False)
        lookup = {}
        for img, lab in base:
            lookup.setdefault(img.numpy().tobytes(), set()).add(int(lab))
        images, labels = next(iter(ds))
    for img, lab in zip(images.numpy(), labels.numpy()):
        digits = []
        for c in range(3):
            raw = np.round((img[..., c:c + 1] + 1.0) * 127.5).astype(np.uint8)
            digits.append(lookup[raw.tobytes()])
        assert any(100 * a + 10 * b + c == lab for a in digits[0] for b in digits[1]
                   for c in digits[2])


def test_stacked_mnist_one_pass_drops_remainder():
    with tfds.testing.mock_data(num_examples=10):
        ds = datasets.stacked_mnist("test", batch_size=4, seed=0, repeat=False)
        assert sum(1 for _ in ds) == 2


def test_cifar10_on_mock_data():
    with tfds.testing.mock_data(num_examples=10):
        ds = datasets.cifar10("train", batch_size=4, seed=0)
        images, labels = next(iter(ds))
    assert images.shape == (4, 32, 32, 3)
    assert images.numpy().min() >= -1.0 and images.numpy().max() <= 1.0
    assert labels.dtype == tf.int32


def test_bad_batch_size():
    with pytest.raises(ValueError, match="batch_size"):
        datasets.cifar10("train", batch_size=0)


def test_image_grid_layout():
    imgs = np.stack([np.full((2, 2, 1), v, np.float32) for v in (-1.0, 1.0, 0.0)])
    grid = image_grid(imgs, rows=2)
    assert grid.shape == (4, 4, 1)
    np.testing.assert_allclose(grid[0, 0, 0], 0.0)
    np.testing.assert_allclose(grid[0, 2, 0], 1.0)
    np.testing.assert_allclose(grid[2, 0, 0], 0.5)
    np.testing.assert_allclose(grid[2, 2, 0], 0.0)  # empty cell


def test_save_image_grid(tmp_path):
    path = save_image_grid(str(tmp_path / "grid.png"), h.images(4))
    decoded = tf.io.decode_png(tf.io.read_file(path))
    assert decoded.shape == (16, 16, 1)


def test_image_summary_callback_writes_events(tmp_path):
    model = GAN(h.tiny_generator(), h.tiny_discriminator(), h.LATENT, seed=0)
    model.compile()
    cb = ImageSummary(str(tmp_path), every_n_steps=2, num_images=4)
    model.fit(h.images(32), batch_size=8, verbose=0, callbacks=[cb])
    events = glob.glob(str(tmp_path / "images" / "events.*"))
    assert events
    tags = []
    for event in tf.compat.v1.train.summary_iterator(events[0]):
        for value in event.summary.value:
            tags.append((value.tag, event.step))
    assert [step for tag, step in tags if tag == "samples"] == [2, 4]


def test_image_summary_bad_every():
    with pytest.raises(ValueError, match="every_n_steps"):
        ImageSummary("/tmp/x", every_n_steps=0)
