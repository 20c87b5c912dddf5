import keras
import numpy as np
import pytest
import tensorflow as tf

from sig_keras.metrics import InceptionScore
from sig_keras.metrics import StackedMNISTModes
from sig_keras.metrics import inception_score_from_probs


def _kl_reference(p):
    m = p.mean(0)
    return np.exp(np.mean(np.sum(p * (np.log(p + 1e-12) - np.log(m + 1e-12)), 1)))


def test_one_hot_equally_used_classes_gives_c():
    probs = np.eye(4)[np.arange(40) % 4]
    mean, std = inception_score_from_probs(probs, splits=1)
    np.testing.assert_allclose(mean, 4.0, rtol=1e-6)
    # Unshuffled, each of 2 splits uses the 4 classes equally.
    mean, std = inception_score_from_probs(probs, splits=2, shuffle=False)
    np.testing.assert_allclose([mean, std], [4.0, 0.0], atol=1e-6)


def test_identical_rows_give_one():
    probs = np.tile([[0.2, 0.3, 0.5]], (20, 1))
    mean, _ = inception_score_from_probs(probs, splits=10)
    np.testing.assert_allclose(mean, 1.0, rtol=1e-6)


def test_matches_numpy_reference():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(30, 5))
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    mean, _ = inception_score_from_probs(probs, splits=1)
    np.testing.assert_allclose(mean, _kl_reference(probs), rtol=1e-6)


def _classifier(num_classes=4, activation="softmax"):
    inputs = keras.Input((3,))
    return keras.Model(inputs, keras.layers.Dense(num_classes, activation=activation)(inputs))


def test_metric_one_hot_classifier_gives_c():
    # Identity "classifier" on one-hot inputs: probabilities = inputs.
    inputs = keras.Input((4,))
    clf = keras.Model(inputs, keras.layers.Activation("linear")(inputs))
    metric = InceptionScore(classifier=clf, splits=1)
    x = np.eye(4, dtype="float32")[np.arange(32) % 4]
    metric.update_state(x[:13])
    metric.update_state(x[13:])
    np.testing.assert_allclose(metric.result()["inception_score"], 4.0, rtol=1e-5)
    metric.reset_state()
    assert float(metric.counts.numpy().sum()) == 0


def test_label_entropies_match_scipy():
    from scipy.stats import entropy

    inputs = keras.Input((5,))
    clf = keras.Model(inputs, keras.layers.Activation("linear")(inputs))
    metric = InceptionScore(classifier=clf, splits=3)
    probs = np.random.default_rng(0).dirichlet(np.full(5, 0.5), size=60).astype("float32")
    metric.update_state(probs[:25])
    metric.update_state(probs[25:])
    result = {k: float(v) for k, v in metric.result().items()}
    p = probs.astype(np.float64)
    np.testing.assert_allclose(result["conditional_entropy"], entropy(p, axis=1).mean(),
                               rtol=1e-5)
    np.testing.assert_allclose(result["marginal_entropy"], entropy(p.mean(0)), rtol=1e-5)
    # One split: IS = exp(marginal - conditional entropy).
    one = InceptionScore(classifier=clf, splits=1)
    one.update_state(probs)
    r1 = one.result()
    np.testing.assert_allclose(
        float(r1["inception_score"]),
        np.exp(float(r1["marginal_entropy"]) - float(r1["conditional_entropy"])), rtol=1e-5)


def test_label_entropies_of_confident_labels():
    # One-hot labels (zeros included: no NaN from log 0): conditional entropy
    # 0, marginal entropy that of the class histogram.
    inputs = keras.Input((4,))
    clf = keras.Model(inputs, keras.layers.Activation("linear")(inputs))
    metric = InceptionScore(classifier=clf, splits=1)
    metric.update_state(np.eye(4, dtype="float32")[[0, 0, 0, 1]])
    result = metric.result()
    np.testing.assert_allclose(float(result["conditional_entropy"]), 0.0, atol=1e-5)
    q = np.array([0.75, 0.25])
    np.testing.assert_allclose(float(result["marginal_entropy"]), -np.sum(q * np.log(q)),
                               rtol=1e-5)


def test_metric_splits_are_equal_sized_and_identical_rows_give_one():
    inputs = keras.Input((4,))
    clf = keras.Model(inputs, keras.layers.Activation("linear")(inputs))
    metric = InceptionScore(classifier=clf, splits=4)
    x = np.tile(np.array([[0.1, 0.2, 0.3, 0.4]], np.float32), (30, 1))
    for chunk in np.array_split(x, 4):  # batches of 8, 8, 7, 7
        metric.update_state(chunk)
    counts = metric.counts.numpy()
    assert counts.sum() == 30 and counts.max() - counts.min() <= 1
    result = metric.result()
    np.testing.assert_allclose(result["inception_score"], 1.0, atol=1e-5)
    np.testing.assert_allclose(result["inception_score_std"], 0.0, atol=1e-5)


def test_metric_matches_from_probs_with_one_split():
    clf = _classifier()
    x = np.random.default_rng(1).normal(size=(12, 3)).astype("float32")
    metric = InceptionScore(classifier=clf, splits=1)
    metric.update_state(x)
    probs = clf(x).numpy()
    np.testing.assert_allclose(metric.result()["inception_score"],
                               inception_score_from_probs(probs, splits=1)[0], rtol=1e-5)


def test_logits_detected():
    clf = _classifier(activation=None)
    x = np.random.default_rng(2).normal(size=(10, 3)).astype("float32") * 5
    metric = InceptionScore(classifier=clf, splits=1)
    metric.update_state(x)
    probs = tf.nn.softmax(clf(x)).numpy()
    np.testing.assert_allclose(metric.result()["inception_score"],
                               _kl_reference(probs), rtol=1e-5)


def test_metric_in_graph():
    clf = _classifier()
    metric = InceptionScore(classifier=clf, splits=2)
    x = np.random.default_rng(3).normal(size=(8, 3)).astype("float32")
    tf.function(metric.update_state)(tf.constant(x))
    assert float(metric.counts.numpy().sum()) == 8
    assert np.isfinite(metric.result()["inception_score"])


# === Bad input ===


def test_fewer_samples_than_splits():
    with pytest.raises(ValueError, match="at least as many samples as splits"):
        inception_score_from_probs(np.eye(3), splits=10)
    metric = InceptionScore(classifier=_classifier(), splits=10)
    metric.update_state(np.zeros((3, 3), np.float32))
    with pytest.raises(ValueError, match="at least as many samples as splits"):
        metric.result()


def test_sigmoid_outputs_are_not_probabilities():
    metric = InceptionScore(classifier=_classifier(activation="sigmoid"), splits=1)
    with pytest.raises(ValueError, match="probability vector"):
        metric.update_state(np.ones((4, 3), np.float32))


def test_probabilities_required_when_not_logits():
    metric = InceptionScore(classifier=_classifier(activation=None), splits=1,
                            from_logits=False)
    with pytest.raises(ValueError, match="probability vector"):
        metric.update_state(np.ones((4, 3), np.float32) * 3)


def test_bad_output_shape():
    inputs = keras.Input((3,))
    clf = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(inputs))
    with pytest.raises(ValueError, match="num_classes"):
        InceptionScore(classifier=clf)


def test_bad_probs_in_pure_function():
    with pytest.raises(ValueError, match="probability vectors"):
        inception_score_from_probs(np.full((10, 3), 0.5), splits=1)


# === Stacked MNIST modes ===


def _digit_oracle():
    """A 'classifier' reading the digit from the mean intensity of a channel:
    images of value (d / 10) give digit d with probability ~1."""
    inputs = keras.Input((28, 28, 1))
    mean = keras.layers.GlobalAveragePooling2D()(inputs)  # [n, 1]
    centers = np.arange(10, dtype="float32") / 10.0
    logits = keras.layers.Lambda(lambda m: -1000.0 * tf.square(m - centers))(mean)
    return keras.Model(inputs, keras.layers.Softmax()(logits))


def _stacked(triples):
    triples = np.asarray(triples)
    return np.broadcast_to((triples / 10.0)[:, None, None, :], (len(triples), 28, 28, 3)).astype(
        "float32")


def test_stacked_mnist_modes_hand_made():
    metric = StackedMNISTModes(_digit_oracle(), splits=1)
    triples = np.array([[1, 2, 3]] * 6 + [[0, 0, 0]] * 2)
    metric.update_state(_stacked(triples))
    result = {k: float(v) for k, v in metric.result().items()}
    assert result["modes"] == 2
    q = np.array([0.75, 0.25])
    np.testing.assert_allclose(result["kl"], np.sum(q * np.log(q * 1000)), rtol=1e-5)
    assert result["high_quality"] == 1.0
    # Confident labels: IS = exp(entropy of the mode histogram).
    np.testing.assert_allclose(result["inception_score"], np.exp(-np.sum(q * np.log(q))),
                               rtol=1e-3)
    # Table 2's entropy columns: ~0 conditional (the oracle leaves about
    # e^-10 on each neighbouring digit: ~1e-3 nats per channel), the
    # histogram's marginal.
    np.testing.assert_allclose(result["conditional_entropy"], 0.0, atol=1e-2)
    np.testing.assert_allclose(result["marginal_entropy"], -np.sum(q * np.log(q)), atol=1e-2)


def test_stacked_mnist_digit_columns_match_numpy():
    # Channel values 0.05 sit between the oracle's digits 0 and 1 (p = 0.5
    # each): such a digit is not confident, and neither is its triple.
    values = np.array([[0.1, 0.2, 0.3], [0.05, 0.2, 0.3], [0.05, 0.05, 0.7], [0.4, 0.4, 0.4]])
    images = np.broadcast_to(values[:, None, None, :], (4, 28, 28, 3)).astype("float32")
    metric = StackedMNISTModes(_digit_oracle(), splits=1)
    metric.update_state(images)
    result = {k: float(v) for k, v in metric.result().items()}
    logits = -1000.0 * (values.reshape(-1, 1) - np.arange(10) / 10.0) ** 2
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)  # [12, 10], one row per digit
    confident = probs.max(axis=1) > 0.7
    assert result["digit_high_quality"] == pytest.approx(confident.mean())  # 9 of 12
    assert result["high_quality"] == pytest.approx(confident.reshape(4, 3).all(axis=1).mean())
    marginal = probs.mean(axis=0)
    kl = np.mean(np.sum(probs * (np.log(probs + 1e-16) - np.log(marginal)), axis=1))
    assert result["digit_inception_score"] == pytest.approx(np.exp(kl), rel=1e-4)
    assert result["digit_inception_score_std"] == 0.0


def test_stacked_mnist_digit_inception_score_is_at_most_ten():
    metric = StackedMNISTModes(_digit_oracle(), splits=1)
    triples = np.array([[i // 100, (i // 10) % 10, i % 10] for i in range(1000)])
    metric.update_state(_stacked(triples))
    result = metric.result()
    # Every digit equally often, each labelled almost surely (the oracle leaves
    # about e^-10 on each neighbour): IS just under its maximum of 10.
    assert 9.95 < float(result["digit_inception_score"]) <= 10.0
    assert float(result["digit_high_quality"]) == 1.0


def test_stacked_mnist_update_from_probs_matches_update_state():
    images = _stacked(np.array([[1, 2, 3], [4, 5, 6], [1, 2, 3], [7, 8, 9]]))
    from_images = StackedMNISTModes(_digit_oracle(), splits=1)
    from_images.update_state(images)
    from_probs = StackedMNISTModes(_digit_oracle(), splits=1)
    from_probs.update_state_from_probs(from_probs.channel_probabilities(images))
    expected = from_images.result()
    for key, value in from_probs.result().items():
        np.testing.assert_allclose(float(value), float(expected[key]), rtol=1e-6)


@pytest.mark.parametrize("probs, message", [
    (np.full((2, 10), 0.1), r"shape \[N, 3, 10\]; got \(2, 10\)"),
    (np.full((2, 3, 5), 0.2), r"shape \[N, 3, 10\]; got \(2, 3, 5\)"),
    (np.full((2, 3, 10), 0.5), "not a probability vector per example"),
])
def test_stacked_mnist_update_from_probs_bad_input(probs, message):
    metric = StackedMNISTModes(_digit_oracle(), splits=1)
    with pytest.raises(ValueError, match=message):
        metric.update_state_from_probs(probs)
    # Nothing was counted.
    assert float(metric.total) == 0 and float(tf.reduce_sum(metric.mode_counts)) == 0


def test_stacked_mnist_all_modes_uniform():
    metric = StackedMNISTModes(_digit_oracle(), splits=1)
    triples = np.array([[i // 100, (i // 10) % 10, i % 10] for i in range(1000)])
    metric.update_state(_stacked(triples))
    result = metric.result()
    assert float(result["modes"]) == 1000
    np.testing.assert_allclose(float(result["kl"]), 0.0, atol=1e-4)


def test_stacked_mnist_low_confidence():
    inputs = keras.Input((28, 28, 1))
    flat = keras.layers.Flatten()(inputs)
    uniform = keras.layers.Lambda(lambda t: tf.zeros([tf.shape(t)[0], 10]))(flat)
    metric = StackedMNISTModes(keras.Model(inputs, keras.layers.Softmax()(uniform)), splits=1)
    metric.update_state(np.zeros((4, 28, 28, 3), np.float32))
    assert float(metric.result()["high_quality"]) == 0.0


def test_stacked_mnist_wrong_channels():
    metric = StackedMNISTModes(_digit_oracle(), splits=1)
    with pytest.raises(ValueError, match="3"):
        metric.update_state(np.zeros((2, 28, 28, 1), np.float32))


@pytest.mark.parametrize("probs, message", [
    ([[1.2, -0.2], [0.5, 0.5]], "not a probability vector per example"),  # negative
    ([[0.3, 0.3], [0.5, 0.5]], "not a probability vector per example"),   # sum is not 1
    ([[np.nan, 1.0], [0.5, 0.5]], r"classifier outputs NaN or inf values \(1 of 4\)"),
])
def test_update_from_probs_rejects_non_probabilities(probs, message):
    metric = InceptionScore(classifier=_classifier(num_classes=2), splits=1, num_classes=2)
    with pytest.raises(ValueError, match=message):
        metric.update_state_from_probs(np.array(probs, np.float32))
    assert float(tf.reduce_sum(metric.counts)) == 0  # nothing accumulated


def test_update_from_probs_rejects_non_probabilities_in_graph():
    metric = InceptionScore(classifier=_classifier(num_classes=2), splits=1, num_classes=2)
    update = tf.function(metric.update_state_from_probs)
    with pytest.raises(tf.errors.InvalidArgumentError, match="not a probability vector"):
        update(tf.constant([[1.2, -0.2]]))
