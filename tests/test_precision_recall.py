import numpy as np
import pytest
import tensorflow as tf
from scipy.spatial.distance import cdist

from sig_keras.metrics import PrecisionRecall


def _numpy_prdc(real, gen, k):
    """Direct k-NN computation on full distance matrices (float64)."""
    real, gen = real.astype(np.float64), gen.astype(np.float64)
    d_rr, d_gg, d_rg = cdist(real, real), cdist(gen, gen), cdist(real, gen)
    r_real = np.sort(d_rr, axis=1)[:, k]  # index 0 is the point itself
    r_gen = np.sort(d_gg, axis=1)[:, k]
    inside_real = d_rg <= r_real[:, None]  # [N, M]: gen j in ball of real i
    return {
        "precision": inside_real.any(axis=0).mean(),
        "recall": (d_rg <= r_gen[None, :]).any(axis=1).mean(),
        "density": inside_real.sum(axis=0).mean() / k,
        "coverage": (d_rg.min(axis=1) <= r_real).mean(),
    }


def _pr(**kwargs):
    kwargs.setdefault("num_features", 3)
    return PrecisionRecall(feature_extractor="identity", **kwargs)


def _mixture(n, centers, seed, std=0.05):
    rng = np.random.default_rng(seed)
    which = rng.integers(0, len(centers), n)
    return (centers[which] + std * rng.normal(size=(n, centers.shape[1]))).astype(np.float32)


def _real_and_generated(seed):
    """40 real and 30 generated standard normal features of width 3."""
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(40, 3)).astype(np.float32),
            rng.normal(size=(30, 3)).astype(np.float32))


def test_matches_numpy_knn_with_blocks():
    rng = np.random.default_rng(0)
    real = rng.normal(size=(83, 3)).astype(np.float32)
    gen = (rng.normal(size=(61, 3)) * 1.3 + 0.3).astype(np.float32)
    metric = _pr(k=4, block_size=7)  # blocks that do not divide N or M
    metric.update_state(real[:50], gen[:20])
    metric.update_state(real[50:], gen[20:])
    result = metric.result()
    reference = _numpy_prdc(real, gen, k=4)
    for key, value in reference.items():
        np.testing.assert_allclose(float(result[key]), value, rtol=1e-6, err_msg=key)
    assert float(result["precision"]) < 1 and float(result["recall"]) < 1


def test_generator_dropping_half_the_modes():
    angles = 2 * np.pi * np.arange(8) / 8
    centers = np.stack([np.cos(angles), np.sin(angles)], 1)
    real = _mixture(2000, centers, seed=1)
    gen = _mixture(2000, centers[::2], seed=2)  # 4 of the 8 modes
    metric = _pr(num_features=2, k=5, block_size=512)
    metric.update_state(real, gen)
    result = {k: float(v) for k, v in metric.result().items()}
    assert result["precision"] > 0.95
    assert abs(result["recall"] - 0.5) < 0.05
    assert abs(result["coverage"] - 0.5) < 0.05
    # All modes: everything near 1.
    full = _pr(num_features=2, k=5, block_size=512)
    full.update_state(real, _mixture(2000, centers, seed=3))
    assert all(float(v) > 0.9 for key, v in full.result().items() if key != "density")


def test_graph_matches_eager():
    real, gen = _real_and_generated(4)
    eager = _pr(block_size=16)
    eager.update_state(real, gen)
    graph = _pr(block_size=16)
    step = tf.function(lambda r, g: (graph.update_state(r, g), graph.result())[1])
    result = step(real, gen)
    for key, value in eager.result().items():
        np.testing.assert_allclose(float(result[key]), float(value), rtol=1e-6)


def test_capacity_gives_the_same_values():
    real, gen = _real_and_generated(5)
    plain = _pr(block_size=16)
    plain.update_state(real, gen)
    metric = _pr(block_size=16, capacity=40)
    metric.update_state(real[:20], gen[:20])
    metric.update_state(real[20:], gen[20:])
    assert int(tf.shape(metric.real_features.data)[0]) == 40
    for key, value in plain.result().items():
        assert float(metric.result()[key]) == float(value)
    assert metric.get_config()["capacity"] == 40


def test_reference_features(tmp_path):
    real, gen = _real_and_generated(5)
    source = _pr()
    source.update_state(real, None)
    metric = _pr(reference_stats=source.save_reference(tmp_path / "ref"))
    metric.update_state(None, gen)
    reference = _numpy_prdc(real, gen, k=5)
    np.testing.assert_allclose(float(metric.result()["recall"]), reference["recall"])


# === Bad input ===


def test_fewer_samples_than_k_plus_one():
    metric = _pr(k=5)
    metric.update_state(np.zeros((5, 3), np.float32), np.ones((10, 3), np.float32))
    with pytest.raises(ValueError, match="at least k \\+ 1 = 6 real samples; got 5"):
        metric.result()


def test_bad_k():
    with pytest.raises(ValueError, match="`k` must be a positive integer"):
        _pr(k=0)
