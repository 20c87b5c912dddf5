import numpy as np
import pytest
import tensorflow as tf

from sig_keras.metrics import KernelDistance
from sig_keras.metrics import PrecisionRecall


def _numpy_kid(real, gen, real_idx, gen_idx):
    """Unbiased MMD^2, kernel (x.y / d + 1)^3, float64, mean and std over subsets."""
    d = real.shape[1]
    mmds = []
    for ri, gi in zip(real_idx, gen_idx):
        x, y = real[ri].astype(np.float64), gen[gi].astype(np.float64)
        m = len(ri)
        kxx, kyy, kxy = ((a @ b.T / d + 1.0) ** 3 for a, b in ((x, x), (y, y), (x, y)))
        mmds.append((kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1))
                    - 2.0 * kxy.sum() / m**2)
    return np.mean(mmds), np.std(mmds)


def _kid(**kwargs):
    kwargs.setdefault("num_features", 5)
    kwargs.setdefault("subsets", 6)
    kwargs.setdefault("subset_size", 20)
    return KernelDistance(feature_extractor="identity", **kwargs)


def _features(n, seed, shift=0.0):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, 5)) + shift).astype(np.float32)


def test_matches_numpy_unbiased_mmd_on_the_same_subsets():
    real, gen = _features(47, 0), _features(33, 1, shift=0.4)
    metric = _kid()
    for chunk in np.array_split(real, 5):  # many appends: the buffer grows
        metric.update_state(chunk, None)
    metric.update_state(None, gen)
    np.testing.assert_array_equal(metric.real_features.values().numpy(), real)
    real_idx, gen_idx = metric.subset_indices(47, 33)
    assert real_idx.shape == (6, 20)
    assert all(len(set(row)) == 20 for row in real_idx)  # without replacement
    assert not np.array_equal(real_idx[0], real_idx[1])
    result = metric.result()
    mean, std = _numpy_kid(real, gen, real_idx, gen_idx)
    np.testing.assert_allclose(float(result["kid"]), mean, rtol=1e-5)
    np.testing.assert_allclose(float(result["kid_std"]), std, rtol=1e-4)
    # Side-effect free: the same value again.
    assert float(metric.result()["kid"]) == float(result["kid"])


def test_full_subsets_equal_the_plain_unbiased_mmd():
    real, gen = _features(20, 2), _features(20, 3, shift=1.0)
    metric = _kid(subsets=1)
    metric.update_state(real, gen)
    everything = np.arange(20)[None]
    mean, _ = _numpy_kid(real, gen, everything, everything)
    np.testing.assert_allclose(float(metric.result()["kid"]), mean, rtol=1e-5)


def test_same_distribution_near_zero_different_positive():
    same = _kid(subsets=10, subset_size=200)
    same.update_state(_features(1000, 4), _features(1000, 5))
    other = _kid(subsets=10, subset_size=200)
    other.update_state(_features(1000, 4), _features(1000, 5, shift=0.5))
    assert abs(float(same.result()["kid"])) < 0.01
    assert float(other.result()["kid"]) > 0.1


def test_graph_matches_eager():
    real, gen = _features(30, 6), _features(25, 7, shift=0.3)
    eager = _kid()
    eager.update_state(real, gen)
    graph = _kid()
    update = tf.function(graph.update_state)
    update(real[:10], gen[:10])
    update(real[10:], gen[10:])
    result = tf.function(graph.result)()
    np.testing.assert_allclose(float(result["kid"]), float(eager.result()["kid"]), rtol=1e-6)


@pytest.mark.parametrize("graph", [False, True])
def test_capacity_allocates_once_and_gives_the_same_value(graph):
    real, gen = _features(47, 10), _features(33, 11, shift=0.4)
    plain = _kid()
    plain.update_state(real, gen)
    metric = _kid(capacity=40)
    update = tf.function(metric.update_state) if graph else metric.update_state
    for chunk in np.array_split(real[:40], 4):
        update(chunk, None)
    assert int(tf.shape(metric.real_features.data)[0]) == 40  # not grown
    update(real[40:], gen)  # past the capacity: grows
    assert int(tf.shape(metric.real_features.data)[0]) == 80
    np.testing.assert_array_equal(metric.real_features.values().numpy(), real)
    np.testing.assert_array_equal(metric.generated_features.values().numpy(), gen)
    assert float(metric.result()["kid"]) == pytest.approx(float(plain.result()["kid"]),
                                                          rel=1e-6)
    metric.reset_state()  # empties the buffers, keeps their allocation
    assert int(metric.real_features.count.numpy()) == 0
    assert int(tf.shape(metric.real_features.data)[0]) == 80
    update(real[:30], gen[:30])
    np.testing.assert_array_equal(metric.real_features.values().numpy(), real[:30])
    assert KernelDistance.from_config(metric.get_config()).capacity == 40


def test_reset_and_reference(tmp_path):
    real, gen = _features(30, 8), _features(30, 9, shift=0.2)
    source = _kid()
    source.update_state(real, None)
    path = source.save_reference(tmp_path / "real.npz")
    metric = _kid(reference_stats=path)
    metric.update_state(None, gen)
    direct = _kid()
    direct.update_state(real, gen)
    assert float(metric.result()["kid"]) == pytest.approx(float(direct.result()["kid"]),
                                                          rel=1e-6)
    metric.reset_state()  # keeps the reference, empties the generated buffer
    assert int(metric.generated_features.count.numpy()) == 0
    assert int(metric.real_features.count.numpy()) == 30
    direct.reset_state()
    assert int(direct.real_features.count.numpy()) == 0


def test_config_round_trip():
    clone = KernelDistance.from_config(_kid(seed=3).get_config())
    assert (clone.subsets, clone.subset_size, clone.seed) == (6, 20, 3)


# === Bad input ===


def test_fewer_samples_than_subset_size():
    metric = _kid()
    metric.update_state(_features(30, 0), _features(19, 1))
    with pytest.raises(ValueError, match="subset_size=20 generated samples; got 19"):
        metric.result()


# The checks of the feature buffers KID shares with precision/recall
# (`StoredFeatureMetric`) run for both.


@pytest.mark.parametrize("metric_class", [KernelDistance, PrecisionRecall],
                         ids=["kid", "precision_recall"])
def test_feature_widths_differ(metric_class):
    metric = metric_class(feature_extractor="identity", num_features=5)
    with pytest.raises(ValueError, match="width 5 but generated features have width 4"):
        metric.update_state_from_features(np.zeros((6, 5)), np.zeros((6, 4)))


@pytest.mark.parametrize("capacity", [0, -5, 2.5, True])
def test_bad_capacity(capacity):
    with pytest.raises(ValueError, match="`capacity` must be a positive integer or None"):
        _kid(capacity=capacity)
    with pytest.raises(ValueError, match="`capacity` must be a positive integer or None"):
        PrecisionRecall(feature_extractor="identity", num_features=4, capacity=capacity)


def test_nan_features():
    x = _features(4, 0)
    x[0, 0] = np.nan
    with pytest.raises(ValueError, match="real features contain NaN"):
        _kid().update_state(x, None)


def test_reference_without_features():
    with pytest.raises(ValueError, match="key 'features'"):
        _kid(reference_stats={"mu": np.zeros(5), "sigma": np.eye(5)})


def test_bad_arguments():
    with pytest.raises(ValueError, match="subset_size"):
        _kid(subset_size=1)
    with pytest.raises(ValueError, match="subsets"):
        _kid(subsets=0)
