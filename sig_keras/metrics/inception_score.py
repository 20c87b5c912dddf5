"""Inception score (Salimans et al., 2016), streaming and from probabilities.

    IS = exp( E_x KL( p(y | x) || p(y) ) ),  p(y) = E_x p(y | x)

computed on `splits` disjoint parts of the samples; reported as the mean and
standard deviation over splits (Table 3 protocol: 10 splits). Per split `s`
with `n_s` samples the KL mean has sufficient statistics

    E_x KL = (1/n_s) sum_i sum_y p_iy log p_iy  -  sum_y pbar_y log pbar_y,
    pbar = (1/n_s) sum_i p_i,

so the streaming metric keeps, per split, the count, `sum_i p_i` and
`sum_i sum_y p_iy log p_iy`: fixed-size state whatever the number of samples.
Logs use `log(p + 1e-12)`.

Split assignment in the streaming metric: the running sample index `j` falls in
block `j // splits`; within each block the `splits` positions are sent to the
splits in a random order (a seeded integer hash, stateless). Split sizes differ by at
most one and splits are exchangeable: for i.i.d. generated samples this is
distributed like shuffling and cutting into equal parts.
`inception_score_from_probs` shuffles explicitly.

Scores from different Inception implementations are not comparable.
"""

import keras
import numpy as np
import tensorflow as tf

from sig_keras.utils import validation

_EPS = 1e-12


def _kl_mean_np(p):
    marginal = p.mean(axis=0)
    return np.mean(np.sum(p * (np.log(p + _EPS) - np.log(marginal + _EPS)), axis=1))


def inception_score_from_probs(probs, splits=10, seed=0, shuffle=True):
    """Inception score of precomputed class probabilities.

    Args:
        probs: array `[N, C]`, rows are probability vectors.
        splits: int. Number of parts. Defaults to 10.
        seed: int. Shuffle seed. Defaults to 0.
        shuffle: bool. Shuffle the rows before splitting. Defaults to True.

    Returns:
        `(mean, std)` over splits, floats.
    """
    probs = np.asarray(probs, np.float64)
    _check_probs_np(probs)
    splits = validation.check_int(splits, "splits", minimum=1)
    if probs.shape[0] < splits:
        raise ValueError(
            f"The inception score needs at least as many samples as splits; got "
            f"{probs.shape[0]} samples for {splits} splits."
        )
    if shuffle:
        probs = probs[np.random.default_rng(seed).permutation(probs.shape[0])]
    scores = [np.exp(_kl_mean_np(part)) for part in np.array_split(probs, splits)]
    return float(np.mean(scores)), float(np.std(scores))


def _check_probs_np(probs, tol=1e-3):
    if probs.ndim != 2 or probs.shape[1] < 2:
        raise ValueError(
            f"Class probabilities must have shape [N, C] with C >= 2; got {probs.shape}."
        )
    if not np.all(np.isfinite(probs)):
        raise ValueError("Class probabilities contain NaN or inf.")
    if np.any(probs < -tol) or np.any(probs > 1 + tol) or not np.allclose(
        probs.sum(axis=1), 1.0, atol=tol
    ):
        raise ValueError(
            "Rows are not probability vectors (values in [0, 1] summing to 1)."
        )


def to_probabilities(outputs, from_logits=None, tol=1e-3):
    """Classifier outputs `[N, C]` -> class probabilities `[N, C]`.

    `from_logits=None` detects: rows in [0, 1] summing to 1 are probabilities;
    outputs with any value outside [0, 1] are logits (softmax). Values all in
    [0, 1] whose rows do not sum to 1 (e.g. per-class sigmoids) are neither:
    `ValueError` in eager mode (an assertion error in a graph). `True`/`False`
    force the reading (False still checks). NaN or inf outputs are reported as
    such, whatever `from_logits`.
    """
    outputs = tf.cast(tf.convert_to_tensor(outputs), tf.float32)
    if outputs.shape.rank != 2 or (outputs.shape[1] is not None and outputs.shape[1] < 2):
        raise ValueError(
            "The classifier must return a [N, C] vector of class probabilities or "
            f"logits with C >= 2; got shape {outputs.shape}."
        )
    finite = tf.reduce_all(tf.math.is_finite(outputs))
    non_finite = ("The classifier outputs NaN or inf values: the classifier (or the "
                  "images given to it) produce non-finite numbers.")
    if tf.executing_eagerly():
        if not bool(finite):
            bad = int(tf.reduce_sum(tf.cast(~tf.math.is_finite(outputs), tf.int32)))
            raise ValueError(
                f"The classifier outputs NaN or inf values ({bad} of "
                f"{int(tf.size(outputs))}): the classifier (or the images given to "
                "it) produce non-finite numbers.")
    else:
        with tf.control_dependencies([tf.debugging.Assert(finite, [non_finite])]):
            outputs = tf.identity(outputs)
    if from_logits:
        return tf.nn.softmax(outputs, axis=-1)
    in_unit = tf.reduce_all((outputs >= -tol) & (outputs <= 1.0 + tol))
    sums_one = tf.reduce_all(tf.abs(tf.reduce_sum(outputs, axis=1) - 1.0) <= tol)
    is_prob = in_unit & sums_one
    valid = finite & (is_prob if from_logits is False else (is_prob | ~in_unit))
    message = (
        "The classifier's outputs are not a probability vector per example "
        "(values in [0, 1] summing to 1)"
        + (" nor logits" if from_logits is None else "")
        + ": use a softmax output, or pass from_logits=True for logits."
    )
    if tf.executing_eagerly():
        if not bool(valid):
            raise ValueError(message)
        return outputs if bool(is_prob) else tf.nn.softmax(outputs, axis=-1)
    with tf.control_dependencies([tf.debugging.Assert(valid, [message])]):
        return tf.cond(is_prob, lambda: tf.identity(outputs),
                       lambda: tf.nn.softmax(outputs, axis=-1))


def _hash(x, seed):
    """A small integer hash (int64 in [0, 2^31)), for stateless random keys."""
    mask = tf.constant(0x7FFFFFFF, tf.int64)
    h = tf.bitwise.bitwise_and(x * 2654435761 + seed * 40503 + 12345, mask)
    h = tf.bitwise.bitwise_xor(h, tf.bitwise.right_shift(h, 13))
    h = tf.bitwise.bitwise_and(h * 1274126177, mask)
    return tf.bitwise.bitwise_xor(h, tf.bitwise.right_shift(h, 16))


def _block_permutation(block, position, splits, seed):
    """Split of the sample at `position` of `block`: a random permutation of
    `0..splits-1` per block, the same whatever batch the block falls in."""
    q = tf.range(splits, dtype=tf.int64)[None, :]  # [1, S]
    keys = _hash(block[:, None] * splits + q, seed)  # [N, S]
    own = _hash(block * splits + position, seed)[:, None]  # [N, 1]
    # Rank of the sample's key in its block (ties broken by position).
    smaller = (keys < own) | ((keys == own) & (q < position[:, None]))
    return tf.reduce_sum(tf.cast(smaller, tf.int64), axis=1)


def default_inception_classifier():
    """Keras InceptionV3 with ImageNet weights (downloads them on first use)."""
    return keras.applications.InceptionV3(weights="imagenet", include_top=True)


@keras.saving.register_keras_serializable(package="sig_keras")
class InceptionScore(keras.metrics.Metric):
    """Streaming inception score: `update_state(images)`, `result()`.

    With the default classifier (Keras InceptionV3, ImageNet weights, loaded at
    the first update), images in `input_range` are mapped to [0, 255],
    resized to 299x299 (bilinear) and preprocessed with
    `keras.applications.inception_v3.preprocess_input`. A custom `classifier`
    receives the images as given and may return probabilities or logits
    (detected, or forced with `from_logits`).

    `result()` returns `{"inception_score": mean, "inception_score_std": std}`
    over `splits` splits (fewer samples than splits raise `ValueError`), and the
    two label entropies over all samples, in nats: `conditional_entropy`
    `E_x H(p(y|x))` (low: confident labels) and `marginal_entropy`
    `H(E_x p(y|x))` (high: diverse labels). With one split,
    `inception_score = exp(marginal_entropy - conditional_entropy)`.

    Args:
        classifier: Keras model or None. None: InceptionV3.
        splits: int. Defaults to 10.
        num_classes: int or None. Classes of the classifier; inferred from its
            `output_shape` (1000 for InceptionV3).
        from_logits: None (detect), True or False.
        input_range: pair. Range of the images (default classifier only).
            Defaults to (-1, 1).
        seed: int. Seed of the split assignment. Defaults to 0.

    Example:
    >>> metric = InceptionScore(classifier=my_cifar_classifier, splits=10)
    >>> metric.update_state(model.sample(10_000, seed=0))
    >>> metric.result()["inception_score"]
    """

    def __init__(self, classifier=None, splits=10, num_classes=None, from_logits=None,
                 input_range=(-1.0, 1.0), seed=0, name="inception_score", **kwargs):
        super().__init__(name=name, **kwargs)
        self.splits = validation.check_int(splits, "splits", minimum=1)
        self.from_logits = validation.check_choice(from_logits, "from_logits", (None, True, False))
        self.input_range = tuple(float(v) for v in input_range)
        self.seed = validation.check_int(seed, "seed")
        self._uses_default = classifier is None
        # Kept in a list so that the metric does not track the classifier's
        # weights as its own state.
        self._classifier = [classifier]
        if num_classes is None:
            if classifier is None:
                num_classes = 1000
            else:
                num_classes = classifier.output_shape[-1]
        if num_classes is None:
            raise ValueError("`num_classes` must be an integer >= 2; got None.")
        self.num_classes = validation.check_int(num_classes, "num_classes", minimum=2)
        # === State ===
        self.counts = self.add_variable(shape=(self.splits,), initializer="zeros",
                                        name="counts")
        self.sum_probs = self.add_variable(shape=(self.splits, self.num_classes),
                                           initializer="zeros", name="sum_probs")
        self.sum_plogp = self.add_variable(shape=(self.splits,), initializer="zeros",
                                           name="sum_plogp")

    @property
    def classifier(self):
        if self._classifier[0] is None:
            self._classifier[0] = default_inception_classifier()
        return self._classifier[0]

    def preprocess(self, images):
        """Images -> classifier inputs (resize and Inception preprocessing for
        the default classifier; identity otherwise)."""
        images = tf.cast(images, tf.float32)
        if not self._uses_default:
            return images
        low, high = self.input_range
        images = (images - low) / (high - low) * 255.0
        if images.shape[-1] == 1:
            images = tf.repeat(images, 3, axis=-1)
        images = tf.image.resize(images, (299, 299), method="bilinear")
        return keras.applications.inception_v3.preprocess_input(images)

    def update_state(self, images, sample_weight=None):
        """Classifies `images` and accumulates their class probabilities."""
        outputs = self.classifier(self.preprocess(images), training=False)
        self._accumulate(to_probabilities(outputs, self.from_logits))

    def update_state_from_probs(self, probs):
        """Accumulates precomputed class probabilities `[N, num_classes]`.

        Rows that are not probability vectors raise `ValueError` (eager) or
        fail an assertion (graph).
        """
        probs = self._check_shape(tf.cast(probs, tf.float32))
        self._accumulate(to_probabilities(probs, from_logits=False))

    def _check_shape(self, probs):
        if probs.shape.rank != 2 or probs.shape[-1] != self.num_classes:
            raise ValueError(
                f"Expected probabilities of shape [N, {self.num_classes}]; got {probs.shape}."
            )
        return probs

    def _accumulate(self, probs):
        probs = self._check_shape(probs)
        n = tf.shape(probs)[0]
        start = tf.cast(tf.reduce_sum(self.counts), tf.int64)
        index = start + tf.range(tf.cast(n, tf.int64), dtype=tf.int64)
        block = index // self.splits
        position = index % self.splits
        split = _block_permutation(block, position, self.splits, self.seed)
        one_hot = tf.one_hot(split, self.splits, dtype=tf.float32)  # [N, S]
        plogp = tf.reduce_sum(probs * tf.math.log(probs + _EPS), axis=1)  # [N]
        self.counts.assign_add(tf.reduce_sum(one_hot, axis=0))
        self.sum_probs.assign_add(tf.matmul(one_hot, probs, transpose_a=True))
        self.sum_plogp.assign_add(tf.linalg.matvec(one_hot, plogp, transpose_a=True))

    def result(self):
        total = tf.reduce_sum(self.counts)
        if tf.executing_eagerly() and float(total) < self.splits:
            raise ValueError(
                f"The inception score needs at least as many samples as splits; got "
                f"{int(total)} samples for {self.splits} splits."
            )
        counts = tf.maximum(self.counts, 1.0)
        marginal = self.sum_probs / counts[:, None]
        kl = self.sum_plogp / counts - tf.reduce_sum(
            marginal * tf.math.log(marginal + _EPS), axis=1)
        scores = tf.exp(kl)
        # Over all samples (no splits): E_x H(p(y|x)) and H(E_x p(y|x)).
        n = tf.maximum(total, 1.0)
        pooled = tf.reduce_sum(self.sum_probs, axis=0) / n
        return {
            "inception_score": tf.reduce_mean(scores),
            "inception_score_std": tf.math.reduce_std(scores),
            "conditional_entropy": -tf.reduce_sum(self.sum_plogp) / n,
            "marginal_entropy": -tf.reduce_sum(pooled * tf.math.log(pooled + _EPS)),
        }

    def get_config(self):
        if not self._uses_default:
            raise NotImplementedError(
                "An InceptionScore with a custom classifier is not serializable; "
                "rebuild it with the classifier."
            )
        config = super().get_config()
        config.update({"splits": self.splits, "from_logits": self.from_logits,
                       "input_range": list(self.input_range), "seed": self.seed})
        return config
