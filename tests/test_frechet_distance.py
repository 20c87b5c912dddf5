import keras
import numpy as np
import pytest
import scipy.linalg
import tensorflow as tf

from sig_keras.metrics import FrechetDistance
from sig_keras.metrics import mnist_classifier_features
from sig_keras.metrics.feature_extractors import inception_preprocess


def _scipy_fid(a, b):
    """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 sqrtm(S1 S2)), float64, scipy."""
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return np.sum((a.mean(0) - b.mean(0)) ** 2) + np.trace(s1 + s2 - 2.0 * covmean)


def _features(n, d, seed, shift=0.0, scale=1.0):
    mix = np.random.default_rng(123).normal(size=(d, d)) / np.sqrt(d)  # shared
    rng = np.random.default_rng(seed)
    return ((rng.normal(size=(n, d)) @ mix) * scale + shift + 3.0).astype(np.float32)


def _fid(**kwargs):
    kwargs.setdefault("num_features", 6)
    return FrechetDistance(feature_extractor="identity", **kwargs)


def test_matches_scipy_streamed_in_uneven_batches():
    real = _features(300, 6, 0)
    gen = _features(250, 6, 1, shift=0.3, scale=1.2)
    metric = _fid()
    # Real and generated fed separately, in batches of different sizes.
    for chunk in np.array_split(real, 4):
        metric.update_state(chunk, None)
    for chunk in np.array_split(gen, 3):
        metric.update_state(None, chunk)
    np.testing.assert_allclose(float(metric.result()), _scipy_fid(real, gen), rtol=1e-4)
    assert metric.result().dtype == tf.float32
    assert metric.real_sum.dtype == "float64"



def test_features_far_from_zero_keep_float64_accuracy():
    # Mean 1e3, spread ~1: a float32 E[f f^T] - mu mu^T cancels ~1e6 against
    # ~1e6 and loses the covariance; the shifted float32 products do not.
    d = 16
    real = _features(3000, d, 30, shift=1e3)
    gen = _features(2000, d, 31, shift=1e3 + 0.3, scale=1.2)
    metric = _fid(num_features=d)
    for chunk in np.array_split(real, 5):
        metric.update_state(chunk, None)
    # Later batches drift away from the first batch's mean (the shift).
    gen = gen + np.linspace(0.0, 0.5, len(gen), dtype=np.float32)[:, None]
    for chunk in np.array_split(gen, 4):
        metric.update_state(None, chunk)
    np.testing.assert_allclose(float(metric.result()), _scipy_fid(real, gen), rtol=1e-4)
    mu, sigma = (t.numpy() for t in metric.real_moments())
    real64 = real.astype(np.float64)
    np.testing.assert_allclose(mu, real64.mean(0), rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(sigma, np.cov(real64, rowvar=False), rtol=0, atol=1e-5)
    # The test has the power to see cancellation: the naive float32 moments
    # are off by far more than the tolerance.
    mu32 = real.mean(0, dtype=np.float32)
    naive = (real.T @ real) / np.float32(len(real)) - np.outer(mu32, mu32)
    assert np.max(np.abs(naive - np.cov(real64, rowvar=False))) > 1e-2


def test_singular_covariance_uses_eigendecomposition():
    # n < d: both covariances singular (no Cholesky); reference from the
    # eigenvalues of S1 S2.
    real, gen = _features(5, 8, 2), _features(6, 8, 3, shift=1.0)
    metric = _fid(num_features=8)
    metric.update_state(real, gen)
    s1 = np.cov(real.astype(np.float64), rowvar=False)
    s2 = np.cov(gen.astype(np.float64), rowvar=False)
    trace_sqrt = np.sum(np.sqrt(np.clip(np.linalg.eigvals(s1 @ s2).real, 0.0, None)))
    ref = (np.sum((real.mean(0) - gen.mean(0)) ** 2) + np.trace(s1) + np.trace(s2)
           - 2.0 * trace_sqrt)
    np.testing.assert_allclose(float(metric.result()), ref, rtol=1e-4)


def test_two_draws_of_the_same_gaussian_fall_toward_zero():
    values = []
    for n in (100, 1000, 10_000):
        metric = _fid(num_features=4)
        metric.update_state(_features(n, 4, 10 + n), _features(n, 4, 20 + n))
        values.append(float(metric.result()))
    assert values[0] > values[1] > values[2] >= 0.0
    assert values[2] < 0.01


def test_identical_sets_give_zero_not_negative():
    x = _features(50, 6, 4)
    metric = _fid()
    metric.update_state(x, x)
    value = float(metric.result())
    assert 0.0 <= value < 1e-6


def test_graph_update_and_result_match_eager():
    real, gen = _features(40, 6, 5), _features(30, 6, 6, shift=0.5)
    eager = _fid()
    eager.update_state(real, gen)
    graph = _fid()
    step = tf.function(lambda r, g: (graph.update_state(r, g), graph.result())[1])
    np.testing.assert_allclose(float(step(real, gen)), float(eager.result()), rtol=1e-6)


def test_reset_state_zeroes():
    metric = _fid()
    metric.update_state(_features(10, 6, 7), _features(10, 6, 8))
    metric.reset_state()
    assert all(np.all(v.numpy() == 0) for v in metric.variables)


def test_reference_statistics_round_trip(tmp_path):
    real, gen = _features(200, 6, 9), _features(150, 6, 10, shift=0.2)
    source = _fid()
    source.update_state(real, None)
    path = source.save_reference(tmp_path / "real_stats")
    with np.load(path) as data:
        assert sorted(data.files) == ["mu", "num_samples", "sigma"]
    metric = _fid(reference_stats=path)
    metric.update_state(None, gen[:70])
    metric.update_state(None, gen[70:])
    np.testing.assert_allclose(float(metric.result()), _scipy_fid(real, gen), rtol=1e-4)
    # Evaluating another checkpoint: reset keeps the reference.
    metric.reset_state()
    metric.update_state(None, real)
    assert float(metric.result()) < 1e-6
    # A clean-fid style dict of mu and sigma works too.
    stats = {"mu": real.astype(np.float64).mean(0),
             "sigma": np.cov(real.astype(np.float64), rowvar=False)}
    again = _fid(reference_stats=stats)
    again.update_state(None, gen)
    np.testing.assert_allclose(float(again.result()), _scipy_fid(real, gen), rtol=1e-4)


def test_config_round_trip():
    metric = _fid(name="fid_toy")
    clone = FrechetDistance.from_config(metric.get_config())
    assert clone.num_features == 6 and clone.feature_extractor == "identity"
    assert clone.name == "fid_toy"


# === Feature extractors ===


def test_keras_model_extractor_infers_width():
    inputs = keras.Input((5,))
    extractor = keras.Model(inputs, keras.layers.Dense(3)(inputs))
    metric = FrechetDistance(feature_extractor=extractor)
    assert metric.num_features == 3
    x = np.random.default_rng(0).normal(size=(20, 5)).astype(np.float32)
    y = x + 1.0
    metric.update_state(x, y)
    fx, fy = extractor(x).numpy(), extractor(y).numpy()
    np.testing.assert_allclose(float(metric.result()), _scipy_fid(fx, fy), rtol=1e-4)


def test_mnist_classifier_features_concatenate_channels():
    inputs = keras.Input((28, 28, 1))
    h = keras.layers.Flatten()(inputs)
    h = keras.layers.Dense(4, activation="relu", name="features")(h)
    clf = keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(h))
    extract = mnist_classifier_features(clf)
    assert extract.num_features == 12
    images = np.random.default_rng(1).uniform(-1, 1, (2, 28, 28, 3)).astype(np.float32)
    features = extract(images).numpy()
    penultimate = keras.Model(clf.inputs, clf.get_layer("features").output)
    expected = np.concatenate(
        [penultimate(images[..., c:c + 1]).numpy() for c in range(3)], axis=1)
    np.testing.assert_allclose(features, expected, rtol=1e-5, atol=1e-6)
    assert FrechetDistance(feature_extractor=extract).num_features == 12


def test_inception_preprocess_resizes_and_maps_range():
    images = np.stack([np.full((8, 8, 1), -1.0), np.full((8, 8, 1), 1.0)]).astype(np.float32)
    out = inception_preprocess(images, (-1.0, 1.0)).numpy()
    assert out.shape == (2, 299, 299, 3)
    np.testing.assert_allclose(out[0], -1.0, atol=1e-6)
    np.testing.assert_allclose(out[1], 1.0, atol=1e-6)
    out = inception_preprocess(np.full((1, 4, 4, 3), 255.0, np.float32), (0.0, 255.0)).numpy()
    np.testing.assert_allclose(out, 1.0, atol=1e-6)


def test_default_extractor_is_inception_without_building_it():
    # Building the default (and downloading its weights) waits for the
    # first update; the width is known up front.
    metric = FrechetDistance()
    assert metric.feature_extractor == "inception_v3" and metric.num_features == 2048
    assert metric._extractor[0] is None


@pytest.mark.large
def test_inception_v3_features_shape():
    from sig_keras.metrics import inception_v3_features

    extract = inception_v3_features(weights=None)  # random weights: no download
    features = extract(np.zeros((2, 32, 32, 3), np.float32))
    assert features.shape == (2, 2048)


# === Bad input ===


def test_feature_widths_differ():
    metric = _fid()
    with pytest.raises(ValueError, match="Real features have width 6 but generated .* 5"):
        metric.update_state_from_features(np.zeros((4, 6)), np.zeros((4, 5)))


def test_width_differs_from_num_features():
    with pytest.raises(ValueError, match="width 5.*num_features=6"):
        _fid().update_state(None, np.zeros((4, 5), np.float32))


def test_nan_features_eager():
    x = np.ones((4, 6), np.float32)
    x[1, 2] = np.nan
    with pytest.raises(ValueError, match="generated features contain NaN"):
        _fid().update_state(np.ones((4, 6), np.float32), x)


def test_nan_features_in_graph_fail_an_assertion():
    metric = _fid()
    x = np.full((4, 6), np.nan, np.float32)
    with pytest.raises(tf.errors.InvalidArgumentError, match="contain NaN"):
        tf.function(metric.update_state)(x, x)


def test_extractor_returning_wrong_rank():
    metric = FrechetDistance(feature_extractor=lambda x: tf.reshape(x, [-1, 2, 3]),
                             num_features=3)
    with pytest.raises(ValueError, match=r"feature extractor returned .* rank 2"):
        metric.update_state(np.zeros((4, 6), np.float32), None)


def test_too_few_samples():
    metric = _fid()
    metric.update_state(np.ones((5, 6), np.float32), np.ones((1, 6), np.float32))
    with pytest.raises(ValueError, match="at least 2 generated samples; got 1"):
        metric.result()


def test_real_data_with_reference_statistics():
    metric = _fid(reference_stats={"mu": np.zeros(6), "sigma": np.eye(6)})
    with pytest.raises(ValueError, match="reference statistics .* pass real=None"):
        metric.update_state(np.zeros((3, 6), np.float32), None)


def test_reference_of_wrong_width():
    with pytest.raises(ValueError, match=r"expected \(6,\) and \(6, 6\)"):
        _fid(reference_stats={"mu": np.zeros(4), "sigma": np.eye(4)})


def test_unknown_extractor_name_and_unknown_width():
    with pytest.raises(ValueError, match="valid names"):
        FrechetDistance(feature_extractor="inception")
    with pytest.raises(ValueError, match="pass `num_features`"):
        FrechetDistance(feature_extractor="identity")


def test_sample_weight_rejected():
    with pytest.raises(ValueError, match="sample_weight"):
        _fid().update_state(None, np.zeros((3, 6), np.float32), sample_weight=np.ones(3))


class _ShiftModel(keras.Model):
    """A 'generator' adding 1 to the data; FID tracked in `test_step`."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.fid = FrechetDistance(feature_extractor="identity", num_features=6)

    @property
    def metrics(self):
        return [self.fid]

    def test_step(self, data):
        self.fid.update_state(data, data + 1.0)
        return {"fid": self.fid.result()}


def test_inside_test_step_with_evaluate():
    x = _features(64, 6, 11)
    model = _ShiftModel()
    model.compile()
    logs = model.evaluate(x, batch_size=16, verbose=0, return_dict=True)
    # Identical covariances, means 1 apart in each of 6 dimensions.
    np.testing.assert_allclose(logs["fid"], 6.0, rtol=1e-4)
