"""Feature extractors for the sample-quality metrics (FID, KID, precision/recall).

A feature extractor is any callable mapping a batch of images `[n, ...]` to
features `[n, d]` (a Keras model, or a function). The metrics take one as
`feature_extractor=`; the builders here make the two standard ones:

- `inception_v3_features()`: Keras InceptionV3 with ImageNet weights, its
  2048-d global-average-pool features (Heusel et al., 2017, FID; Binkowski
  et al., 2018, KID). Images are mapped to [0, 255], grayscale repeated to 3
  channels, resized to 299x299 (bilinear) and preprocessed as Inception
  expects (`keras.applications.inception_v3.preprocess_input`: [-1, 1]).
  The weights download at the first call of the builder.
- `mnist_classifier_features(classifier)`: for Stacked MNIST, a digit
  classifier's penultimate activations applied to each channel, the
  channels' features concatenated (TF-GAN's `mnist_frechet_distance` idea,
  extended to the three channels of MNIST-3).

The builders return plain callables with a `num_features` attribute (the
width `d`, which the metrics read) and the underlying Keras model as `model`.

Scores computed with different feature extractors (or different Inception
ports: Keras, TF-GAN's graph, pytorch-fid's) are not comparable.
"""

import keras
import tensorflow as tf

INCEPTION_SIZE = 299
INCEPTION_FEATURES = 2048


def inception_preprocess(images, input_range=(-1.0, 1.0)):
    """Images in `input_range` -> InceptionV3 inputs `[n, 299, 299, 3]` in [-1, 1].

    Args:
        images: tensor `[n, H, W, C]`, `C` in {1, 3}.
        input_range: pair. Range of the pixel values. Defaults to (-1, 1).
    """
    images = tf.cast(images, tf.float32)
    if images.shape.rank != 4 or images.shape[-1] not in (1, 3):
        raise ValueError(
            "InceptionV3 features need images of shape [n, H, W, C] with C = 1 "
            f"or 3; got shape {images.shape}."
        )
    low, high = (float(v) for v in input_range)
    if not high > low:
        raise ValueError(f"`input_range` must be (low, high) with high > low; got {input_range}.")
    images = (images - low) / (high - low) * 255.0
    if images.shape[-1] == 1:
        images = tf.repeat(images, 3, axis=-1)
    images = tf.image.resize(images, (INCEPTION_SIZE, INCEPTION_SIZE), method="bilinear")
    return keras.applications.inception_v3.preprocess_input(images)


def inception_v3_features(input_range=(-1.0, 1.0), weights="imagenet"):
    """Keras InceptionV3 pool features `[n, 2048]` of images.

    Builds `keras.applications.InceptionV3(include_top=False, pooling="avg")`;
    with `weights="imagenet"` (the FID/KID standard) the weights download at
    this call (about 90 MB, cached in `~/.keras/models`).

    Args:
        input_range: pair. Range of the images' pixel values. Defaults to
            (-1, 1), the range of the package's image generators.
        weights: "imagenet", None (random, for tests) or a weights file.
            Defaults to "imagenet".

    Returns:
        A callable `images [n, H, W, C] -> features [n, 2048]`, with
        attributes `num_features` (2048) and `model`.

    Example:
    >>> extract = inception_v3_features()
    >>> extract(images).shape  # [n, 2048]
    """
    model = keras.applications.InceptionV3(
        include_top=False, pooling="avg", weights=weights,
        input_shape=(INCEPTION_SIZE, INCEPTION_SIZE, 3))
    input_range = tuple(float(v) for v in input_range)

    def extract(images):
        return model(inception_preprocess(images, input_range), training=False)

    extract.num_features = INCEPTION_FEATURES
    extract.model = model
    return extract


def mnist_classifier_features(classifier, layer=None):
    """Per-channel features of a digit classifier, concatenated (Stacked MNIST).

    Each channel of an `[n, H, W, C]` image goes through the classifier as a
    `[H, W, 1]` image; the features of the `C` channels are concatenated, so
    a penultimate layer of width `f` gives `[n, C * f]` features (384 for
    MNIST-3 with `examples/train_mnist_classifier.py`'s 128-unit layer).

    Args:
        classifier: functional `keras.Model` taking `[n, H, W, 1]` images.
        layer: str or None. Name of the layer whose output are the features.
            None: the input of the classifier's last layer (the penultimate
            activations). Defaults to None.

    Returns:
        A callable `images [n, H, W, C] -> features [n, C * f]`, with
        attributes `num_features` (`3 * f`, the width for MNIST-3) and
        `model` (the single-channel feature model).

    Example:
    >>> clf = keras.saving.load_model("mnist_classifier.keras")
    >>> metric = FrechetDistance(feature_extractor=mnist_classifier_features(clf))
    """
    if not isinstance(classifier, keras.Model) or not getattr(classifier, "inputs", None):
        raise ValueError(
            "`classifier` must be a built functional keras.Model (with `inputs`); "
            f"got {classifier!r}."
        )
    if layer is None:
        outputs = classifier.layers[-1].input
    else:
        names = [lay.name for lay in classifier.layers]
        if layer not in names:
            raise ValueError(f"The classifier has no layer {layer!r}; its layers: {names}.")
        outputs = classifier.get_layer(layer).output
    if isinstance(outputs, (list, tuple)) or len(outputs.shape) != 2:
        raise ValueError(
            "The feature layer must output one [n, f] tensor; got "
            f"{getattr(outputs, 'shape', outputs)}. Pass `layer=` naming a flat layer."
        )
    model = keras.Model(classifier.inputs, outputs, name="mnist_channel_features")
    width = int(outputs.shape[-1])

    def extract(images):
        images = tf.cast(images, tf.float32)
        if images.shape.rank != 4 or images.shape[-1] is None:
            raise ValueError(
                f"Stacked MNIST images must have shape [n, H, W, C]; got {images.shape}."
            )
        n = tf.shape(images)[0]
        channels = images.shape[-1]
        flat = tf.reshape(tf.transpose(images, [0, 3, 1, 2]),
                          [n * channels, images.shape[1], images.shape[2], 1])
        features = model(flat, training=False)  # [n * C, f], channel-minor
        return tf.reshape(features, [n, channels * width])

    extract.num_features = 3 * width
    extract.model = model
    return extract
