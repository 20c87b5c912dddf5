"""Convolutional generators and discriminators of the image experiments.

MNIST-3 (Stacked MNIST, Table 2; Yin & Zhou, Appendix C), `z ~ N(0, I_256)`:

- Generator: dense to 4x4x64, then transposed convolutions (kernel 4) with
  `64*Kg, 32*Kg, 8*Kg` filters and a last transposed convolution to 3
  channels with tanh. The paper's strides do not reach 28x28; this project
  uses strides **(1 "valid", 2, 2, 1)**: 4x4 -> 7x7 (stride 1, valid padding:
  4 + 4 - 1 = 7) -> 14x14 -> 28x28 -> 28x28x3 (stride 1, same padding).
- Discriminator: convolutions (kernel 4, stride 2, same padding) with
  `8*Kd, 16*Kd, 32*Kd` filters: 28 -> 14 -> 7 -> 4, flatten, dense 1 (a
  logit).
- Sizes `(Kg, Kd)`: S = (1, 0.5), M = (1, 1), L = (2, 1).

DCGAN for 32x32x3 (Radford et al., 2016; CIFAR-10, Table 3), `z ~ N(0, I_128)`:

- Generator: dense to 4x4x(8*base) -> BN, ReLU -> transposed convolutions
  (kernel 5, stride 2) with 4*base, 2*base filters (BN, ReLU) -> 32x32x3 tanh.
- Discriminator: convolutions (kernel 5, stride 2) with base, 2*base, 4*base
  filters, LeakyReLU(0.2), batch norm on all but the first -> 4x4 -> flatten ->
  dense 1. `batch_norm=False` gives the WGAN-GP critic (no batch norm: the
  gradient penalty is per example).

Batch norm is `sig_keras.layers.SyncBatchNormalization` (Keras' synchronized
batch norm with one all-reduce per call) so that statistics are those of the
global batch under a distribution strategy. The toy MLPs are in
`sig_keras.networks` (`mlp_generator`, `mlp_discriminator`).
"""

import keras

from sig_keras.layers.augmentation import RandomChannelPermutation
from sig_keras.layers.normalization import SyncBatchNormalization
from sig_keras.utils import validation

_MNIST3_SIZES = {"S": (1.0, 0.5), "M": (1.0, 1.0), "L": (2.0, 1.0)}


def _size(size):
    key = str(size).upper()
    if key not in _MNIST3_SIZES:
        raise ValueError(
            f"Unknown MNIST-3 network size {size!r}; valid sizes: {sorted(_MNIST3_SIZES)}."
        )
    return _MNIST3_SIZES[key]


def _bn():
    return SyncBatchNormalization()


def _conv_discriminator(image_shape, filters, kernel_size, batch_norm, name, dropout=0.0,
                        strides=None, first_batch_norm=False,
                        kernel_initializer=None, augmentation=None):
    """Convolutions (stride 2 unless `strides` gives one per convolution) with
    LeakyReLU(0.2) (batch norm after all but the first when `batch_norm`, and
    after the first too when `first_batch_norm`; dropout after each when
    `dropout`), flatten, one logit. `kernel_initializer`: a function that
    returns each layer's initializer (`_initializer`); None: Keras' default.
    `augmentation`: a layer applied to the images first, or None."""
    init = kernel_initializer or _initializer("glorot_uniform")
    inputs = keras.Input(tuple(int(d) for d in image_shape), name="images")
    h = inputs if augmentation is None else augmentation(inputs)
    for i, width in enumerate(filters):
        stride = 2 if strides is None else strides[i]
        h = keras.layers.Conv2D(width, kernel_size, strides=stride, padding="same",
                                kernel_initializer=init())(h)
        if batch_norm and (i > 0 or first_batch_norm):
            h = _bn()(h)
        h = keras.layers.LeakyReLU(0.2)(h)
        if dropout:
            h = keras.layers.Dropout(dropout)(h)
    h = keras.layers.Flatten()(h)
    outputs = keras.layers.Dense(1, kernel_initializer=init())(h)
    return keras.Model(inputs, outputs, name=name)


def _initializer(identifier):
    """A function that returns a new `keras.initializers.get(identifier)` for
    each layer (one instance shared by several layers makes Keras warn and,
    when seeded, gives layers of one shape the same kernel); checks the
    identifier first, with an error that names the argument."""
    try:
        initializer = keras.initializers.get(identifier)
    except (ValueError, TypeError) as error:
        raise ValueError(f"`kernel_initializer` must be a Keras initializer or its name; "
                         f"got {identifier!r} ({error}).") from None
    if initializer is None:
        raise ValueError("`kernel_initializer` must be a Keras initializer or its name; "
                         "got None.")
    config = keras.initializers.serialize(initializer)
    return lambda: keras.initializers.deserialize(config)


def mnist3_generator(size="M", latent_dim=256, batch_norm=True,
                     kernel_initializer="glorot_uniform", name="generator"):
    """MNIST-3 generator of Appendix C: `[n, latent_dim]` -> `[n, 28, 28, 3]` in [-1, 1].

    Args:
        size: "S", "M" or "L". Sets `Kg` (1, 1, 2). Defaults to "M".
        latent_dim: int. Noise width. Defaults to 256.
        batch_norm: bool. Batch norm after each hidden layer. Defaults to True.
        kernel_initializer: a Keras initializer (or its name) for every
            kernel. Defaults to Keras' "glorot_uniform";
            `keras.initializers.RandomNormal(stddev=0.02)` is the DCGAN
            paper's (see `mnist3_discriminator` for what it changes).
    """
    kg, _ = _size(size)
    init = _initializer(kernel_initializer)
    inputs = keras.Input((int(latent_dim),), name="noise")
    h = keras.layers.Dense(4 * 4 * 64, use_bias=not batch_norm,
                           kernel_initializer=init())(inputs)
    if batch_norm:
        h = _bn()(h)
    h = keras.layers.ReLU()(h)
    h = keras.layers.Reshape((4, 4, 64))(h)
    for filters, stride, padding in (
        (int(64 * kg), 1, "valid"),  # 4 -> 7
        (int(32 * kg), 2, "same"),  # 7 -> 14
        (int(8 * kg), 2, "same"),  # 14 -> 28
    ):
        h = keras.layers.Conv2DTranspose(
            filters, 4, strides=stride, padding=padding, use_bias=not batch_norm,
            kernel_initializer=init(),
        )(h)
        if batch_norm:
            h = _bn()(h)
        h = keras.layers.ReLU()(h)
    outputs = keras.layers.Conv2DTranspose(3, 4, strides=1, padding="same", activation="tanh",
                                           kernel_initializer=init())(h)
    return keras.Model(inputs, outputs, name=name)


def mnist3_discriminator(size="M", batch_norm=True, width=1.0, dropout=0.0,
                         strides=(2, 2, 2), first_batch_norm=False,
                         kernel_initializer="glorot_uniform", channel_permutation=0.0,
                         channel_permutation_batchwise=False, seed=None,
                         name="discriminator"):
    """MNIST-3 discriminator of Appendix C: `[n, 28, 28, 3]` -> `[n, 1]` logits.

    Args:
        size: "S", "M" or "L". Sets `Kd` (0.5, 1, 1). Defaults to "M".
        batch_norm: bool. Batch norm on the 2nd and 3rd convolutions (DCGAN
            convention); use False for a WGAN-GP critic. Defaults to True.
        width: float > 0. Multiplier on the filters (8, 16, 32 at size M).
            Defaults to 1 (Appendix C). Appendix C's discriminator is what
            caps the sample quality at size M: it barely reads one of the
            three channels, and that channel holds the weakest digits; with
            `width=2` it reads all three, and DCGAN-SI's share of triples
            with all three digits confident rises from about 0.45 to about
            0.58 in 20,000 steps and to 0.66 in 40,000 (the recipe of
            docs/gan_si.md); with `width=3` or `4` to 0.61-0.66 in 20,000,
            where DCGAN, no longer collapsing, ends within the seeds'
            spread of it.
        dropout: float in [0, 1). Dropout rate after each convolution.
            Defaults to 0 (Appendix C).
        strides: three ints in {1, 2}. The convolutions' strides (Appendix C
            gives none). Defaults to (2, 2, 2): 28 -> 14 -> 7 -> 4. A first
            stride of 1 keeps the first layer's output at full resolution: a
            stride-2 first layer with few filters responds to a pattern that
            repeats every 2 pixels by one constant per filter, so patterns in
            the null space of its 8 filters pass unseen.
        first_batch_norm: bool. Batch norm after the first convolution too
            (needs `batch_norm`). Defaults to False (the DCGAN convention).
            The discriminator sees the real and the generated batch in
            separate calls, so each is standardized with its own statistics:
            a generator whose batch is nearly one image gets its small
            differences magnified, which is a signal against collapse; a
            shift of every pixel by one constant is removed by the same
            standardization, except at the borders (zero padding).
        kernel_initializer: a Keras initializer (or its name) for every
            kernel. Defaults to "glorot_uniform".
        channel_permutation: float in [0, 1]. With a positive rate, the
            images first pass through
            `sig_keras.layers.RandomChannelPermutation(rate, seed)`: in
            training, that share of the images (real and generated) gets a
            random permutation of its three channels. Stacked MNIST's
            distribution does not change under it, and the discriminator
            can no longer read one channel and ignore another.
            Defaults to 0 (none).
        channel_permutation_batchwise: bool. One permutation per batch
            instead of one per image (`RandomChannelPermutation(batchwise=)`),
            which keeps the batch statistics that `first_batch_norm` uses
            against collapse. Defaults to False.
        seed: int or None. Seed of the channel permutation.

    With `first_batch_norm=True` and `N(0, 0.02)` kernels in both networks
    (the training code that the Unrolled GAN and PacGAN Stacked MNIST
    experiments share) DCGAN at size M no longer draws one texture for
    every latent point; either change alone does not do it (docs/gan_si.md).
    """
    _, kd = _size(size)
    init = _initializer(kernel_initializer)
    if first_batch_norm and not batch_norm:
        raise ValueError("`first_batch_norm=True` needs `batch_norm=True`.")
    width = validation.check_float(width, "width", 0.0, 1e3, min_inclusive=False)
    dropout = validation.check_float(dropout, "dropout", 0.0, 1.0, max_inclusive=False)
    strides = tuple(strides) if isinstance(strides, (list, tuple)) else (strides,)
    if len(strides) != 3 or any(isinstance(s, bool) or s not in (1, 2) for s in strides):
        raise ValueError(f"`strides` must be three strides of 1 or 2; got {strides!r}.")
    filters = tuple(max(1, int(round(f * kd * width))) for f in (8, 16, 32))
    rate = validation.check_float(channel_permutation, "channel_permutation", 0.0, 1.0)
    augmentation = (RandomChannelPermutation(rate, batchwise=channel_permutation_batchwise,
                                             seed=seed) if rate else None)
    return _conv_discriminator((28, 28, 3), filters, 4, batch_norm, name, dropout,
                               strides=strides, first_batch_norm=bool(first_batch_norm),
                               kernel_initializer=init, augmentation=augmentation)


def dcgan_generator(latent_dim=128, base_filters=64, image_shape=(32, 32, 3),
                    name="generator"):
    """DCGAN generator (Radford et al.): noise -> `image_shape` in [-1, 1].

    `image_shape` must be `(4 * 2^k, 4 * 2^k, C)` with k >= 1; filters halve at
    each upsampling from `8 * base_filters` (k = 3 for 32x32: 512, 256, 128).

    Args:
        latent_dim: int. Defaults to 128.
        base_filters: int. Width multiplier. Defaults to 64.
        image_shape: tuple. Defaults to (32, 32, 3).
    """
    height, width, channels = (int(d) for d in image_shape)
    ups = 0
    side = height
    while side > 4 and side % 2 == 0:
        side //= 2
        ups += 1
    if height != width or side != 4 or ups < 1:
        raise ValueError(
            f"`image_shape` must be square with side 4 * 2^k (k >= 1); got {image_shape}."
        )
    filters = base_filters * 2 ** ups
    inputs = keras.Input((int(latent_dim),), name="noise")
    h = keras.layers.Dense(4 * 4 * filters, use_bias=False)(inputs)
    h = _bn()(h)
    h = keras.layers.ReLU()(h)
    h = keras.layers.Reshape((4, 4, filters))(h)
    for _ in range(ups - 1):
        filters //= 2
        h = keras.layers.Conv2DTranspose(filters, 5, strides=2, padding="same",
                                         use_bias=False)(h)
        h = _bn()(h)
        h = keras.layers.ReLU()(h)
    outputs = keras.layers.Conv2DTranspose(channels, 5, strides=2, padding="same",
                                           activation="tanh")(h)
    return keras.Model(inputs, outputs, name=name)


def dcgan_discriminator(image_shape=(32, 32, 3), base_filters=64, batch_norm=True,
                        name="discriminator"):
    """DCGAN discriminator (Radford et al.): images -> `[n, 1]` logits.

    Three stride-2 convolutions (base, 2 base, 4 base filters, kernel 5),
    LeakyReLU(0.2), batch norm on all but the first unless `batch_norm=False`
    (the WGAN-GP critic).
    """
    filters = tuple(base_filters * mult for mult in (1, 2, 4))
    return _conv_discriminator(image_shape, filters, 5, batch_norm, name)


def dcgan_critic(image_shape=(32, 32, 3), base_filters=64, name="critic"):
    """The WGAN-GP critic: `dcgan_discriminator` without batch norm."""
    return dcgan_discriminator(image_shape, base_filters, batch_norm=False, name=name)


def mnist_generator(latent_dim=100, channels=1, name="generator"):
    """The MNIST generator of TensorFlow's DCGAN tutorial: noise -> `[n, 28, 28, channels]`.

    Dense to 7x7x256 (batch norm, LeakyReLU), transposed convolutions with
    128 (stride 1), 64 (stride 2) filters, kernel 5, each with batch norm and
    LeakyReLU, and a last stride-2 transposed convolution to one channel with
    tanh. About eight times the filters of the MNIST-3 networks.

    Args:
        latent_dim: int. Noise width. Defaults to 100.
        channels: int >= 1. Output channels: 1 (the tutorial's digits) or 3
            (Stacked MNIST). Defaults to 1.
    """
    channels = validation.check_int(channels, "channels", minimum=1)
    inputs = keras.Input((int(latent_dim),), name="noise")
    h = keras.layers.Dense(7 * 7 * 256, use_bias=False)(inputs)
    h = _bn()(h)
    h = keras.layers.LeakyReLU(0.3)(h)
    h = keras.layers.Reshape((7, 7, 256))(h)
    for filters, stride in ((128, 1), (64, 2)):
        h = keras.layers.Conv2DTranspose(filters, 5, strides=stride, padding="same",
                                         use_bias=False)(h)
        h = _bn()(h)
        h = keras.layers.LeakyReLU(0.3)(h)
    outputs = keras.layers.Conv2DTranspose(channels, 5, strides=2, padding="same",
                                           use_bias=False, activation="tanh")(h)
    return keras.Model(inputs, outputs, name=name)


def mnist_discriminator(dropout=0.3, channels=1, name="discriminator"):
    """The MNIST discriminator of TensorFlow's DCGAN tutorial: `[n, 28, 28, channels]` -> logits.

    Convolutions with 64 and 128 filters (kernel 5, stride 2), each followed
    by LeakyReLU and dropout, flatten, dense 1.

    Args:
        dropout: float in [0, 1). Dropout rate after each convolution.
            Defaults to 0.3.
        channels: int >= 1. Input channels: 1 or 3 (Stacked MNIST).
            Defaults to 1.
    """
    channels = validation.check_int(channels, "channels", minimum=1)
    inputs = keras.Input((28, 28, channels), name="images")
    h = inputs
    for filters in (64, 128):
        h = keras.layers.Conv2D(filters, 5, strides=2, padding="same")(h)
        h = keras.layers.LeakyReLU(0.3)(h)
        h = keras.layers.Dropout(float(dropout))(h)
    h = keras.layers.Flatten()(h)
    outputs = keras.layers.Dense(1)(h)
    return keras.Model(inputs, outputs, name=name)
