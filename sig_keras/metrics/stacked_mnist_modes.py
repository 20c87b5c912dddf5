"""Stacked MNIST (MNIST-3) mode metrics of Table 2.

A pretrained MNIST digit classifier labels each of the three channels of a
generated `[28, 28, 3]` image; the mode is the digit triple
`100 d_R + 10 d_G + d_B` (1000 modes).

- modes: triples with at least one generated sample (out of 1000).
- kl: `KL(generated || uniform) = sum_m q_m log(1000 q_m)`, `q` the histogram
  of the argmax triples of *all* samples (terms with `q_m = 0` are 0; no
  smoothing needed in this direction).
- high_quality: share of images whose three channels are all classified with
  maximum probability > 0.7 (`threshold`).
- inception_score: over the 1000 triples, with `p(y | x)` the product of the
  three channel distributions (independent channels), `splits` splits.
- conditional_entropy, marginal_entropy: Table 2's two entropy columns, in
  nats over the 1000 triples: `E_x H(p(y | x))` and `H(E_x p(y | x))` (see
  `InceptionScore`).
- digit_high_quality, digit_inception_score: the same two measures with each
  channel scored as one MNIST image (10 classes, the inception score between
  1 and 10). The paper's Table 2 does not say which reading it uses, but its
  inception scores (2.9 to 6.05) fit only this one: beside them it reports
  label entropies over the triples whose difference puts an inception score
  over triples in the hundreds (DCGAN-SI at size M: 9.75 and 1.65 bits, a
  score near 270). A triple is confident only if all three of its digits
  are, so `high_quality <= digit_high_quality`.

`examples/train_mnist_classifier.py` trains and saves a suitable classifier
(inputs `[28, 28, 1]` in [-1, 1], 10 softmax outputs).
"""

import keras
import tensorflow as tf

from sig_keras.metrics.inception_score import InceptionScore
from sig_keras.metrics.inception_score import to_probabilities
from sig_keras.utils import validation

NUM_MODES = 1000


@keras.saving.register_keras_serializable(package="sig_keras")
class StackedMNISTModes(keras.metrics.Metric):
    """Modes, KL to uniform, high-quality share and IS of MNIST-3 samples.

    `update_state(images)` takes `[N, 28, 28, 3]` images in the classifier's
    input range; `result()` returns a dict with keys `modes`, `kl`,
    `high_quality`, `inception_score`, `inception_score_std`,
    `conditional_entropy`, `marginal_entropy` (over the 1000 triples) and
    `digit_high_quality`, `digit_inception_score`,
    `digit_inception_score_std` (over the `3 N` single digits).

    Args:
        classifier: Keras model `[n, 28, 28, 1] -> [n, 10]` probabilities or
            logits, or None for the `mnist_digit_classifier` preset
            (`sig_keras.presets.load`). Defaults to None.
        threshold: float. High-quality threshold on each channel's maximum
            probability. Defaults to 0.7.
        splits: int. Splits of the inception score. Defaults to 10.
        from_logits: None (detect), True or False.

    Example:
    >>> clf = keras.saving.load_model("mnist_classifier.keras")
    >>> metric = StackedMNISTModes(clf)
    >>> metric.update_state(model.sample(26_000, seed=0))
    >>> metric.result()["modes"]
    """

    def __init__(self, classifier=None, threshold=0.7, splits=10, from_logits=None,
                 name="stacked_mnist_modes", **kwargs):
        super().__init__(name=name, **kwargs)
        if classifier is None:
            # The built-in digit classifier preset (examples/train_mnist_classifier.py).
            from sig_keras import presets

            classifier = presets.load("mnist_digit_classifier")
        self._classifier = [classifier]
        self.threshold = validation.check_float(threshold, "threshold", 0.0, 1.0,
                                                max_inclusive=False)
        self.from_logits = from_logits
        self.splits = validation.check_int(splits, "splits", minimum=1)
        # === State ===
        self.mode_counts = self.add_variable(shape=(NUM_MODES,), initializer="zeros",
                                             name="mode_counts")
        self.high_quality_count = self.add_variable(shape=(), initializer="zeros",
                                                    name="high_quality_count")
        self.digit_high_quality_count = self.add_variable(
            shape=(), initializer="zeros", name="digit_high_quality_count")
        self.total = self.add_variable(shape=(), initializer="zeros", name="total")
        self._inception = InceptionScore(classifier=classifier, splits=splits,
                                         num_classes=NUM_MODES, from_logits=from_logits)
        self._digit_inception = InceptionScore(classifier=classifier, splits=splits,
                                               num_classes=10, from_logits=from_logits,
                                               name="digit_inception_score")

    @property
    def classifier(self):
        return self._classifier[0]

    def channel_probabilities(self, images):
        """`[N, 28, 28, 3]` -> per-channel digit probabilities `[N, 3, 10]`."""
        images = tf.cast(images, tf.float32)
        if images.shape.rank != 4 or images.shape[-1] != 3:
            raise ValueError(
                f"Stacked MNIST images must have shape [N, H, W, 3]; got {images.shape}."
            )
        n = tf.shape(images)[0]
        channels = tf.transpose(images, [0, 3, 1, 2])  # [N, 3, H, W]
        flat = tf.reshape(channels, [n * 3, images.shape[1], images.shape[2], 1])
        probs = to_probabilities(self.classifier(flat, training=False), self.from_logits)
        if probs.shape[-1] != 10:
            raise ValueError(
                f"The digit classifier must have 10 outputs; got {probs.shape[-1]}."
            )
        return tf.reshape(probs, [n, 3, 10])

    def update_state(self, images, sample_weight=None):
        self._accumulate(self.channel_probabilities(images))

    def update_state_from_probs(self, probs):
        """Accumulates precomputed per-channel digit probabilities `[N, 3, 10]`
        (what `channel_probabilities` returns), for a caller that needs them
        too and should classify the images once.

        Rows that are not probability vectors raise `ValueError` (eager) or
        fail an assertion (graph), before any state changes.
        """
        probs = tf.cast(probs, tf.float32)
        if probs.shape.rank != 3 or tuple(probs.shape[1:]) != (3, 10):
            raise ValueError(
                f"Expected per-channel digit probabilities of shape [N, 3, 10]; "
                f"got {probs.shape}."
            )
        checked = to_probabilities(tf.reshape(probs, [-1, 10]), from_logits=False)
        self._accumulate(tf.reshape(checked, [-1, 3, 10]))

    def _accumulate(self, probs):
        digits = tf.argmax(probs, axis=-1, output_type=tf.int32)  # [N, 3]
        modes = 100 * digits[:, 0] + 10 * digits[:, 1] + digits[:, 2]
        self.mode_counts.assign_add(
            tf.reduce_sum(tf.one_hot(modes, NUM_MODES, dtype=tf.float32), axis=0))
        confident_digits = tf.reduce_max(probs, axis=-1) > self.threshold  # [N, 3]
        confident = tf.reduce_all(confident_digits, axis=1)
        self.high_quality_count.assign_add(tf.reduce_sum(tf.cast(confident, tf.float32)))
        self.digit_high_quality_count.assign_add(
            tf.reduce_sum(tf.cast(confident_digits, tf.float32)))
        self.total.assign_add(tf.cast(tf.shape(probs)[0], tf.float32))
        # p(triple | x) = p_R (x) p_G (x) p_B: outer product, [N, 1000].
        triple = (probs[:, 0, :, None, None] * probs[:, 1, None, :, None]
                  * probs[:, 2, None, None, :])
        self._inception.update_state_from_probs(tf.reshape(triple, [-1, NUM_MODES]))
        self._digit_inception.update_state_from_probs(tf.reshape(probs, [-1, 10]))

    def result(self):
        total = tf.maximum(self.total, 1.0)
        q = self.mode_counts / total
        kl = tf.reduce_sum(tf.where(q > 0, q * tf.math.log(q * NUM_MODES + 1e-30), 0.0))
        out = {
            "modes": tf.reduce_sum(tf.cast(self.mode_counts > 0, tf.float32)),
            "kl": kl,
            "high_quality": self.high_quality_count / total,
        }
        out.update(self._inception.result())
        digits = self._digit_inception.result()
        out.update(digit_high_quality=self.digit_high_quality_count / (3.0 * total),
                   digit_inception_score=digits["inception_score"],
                   digit_inception_score_std=digits["inception_score_std"])
        return out
