import numpy as np
import pytest
from scipy.spatial.distance import pdist

from sig_keras.metrics import diversity_ratio
from sig_keras.metrics import mean_pairwise_distance


def test_mean_pairwise_distance_matches_scipy():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(37, 4, 3)).astype(np.float32)
    assert mean_pairwise_distance(x) == pytest.approx(pdist(x.reshape(37, -1)).mean(), rel=1e-6)


def test_max_samples_keeps_the_first():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(50, 5))
    assert mean_pairwise_distance(x, max_samples=20) == pytest.approx(pdist(x[:20]).mean())


def test_ratio_is_zero_for_a_collapsed_set_and_one_for_the_same_set():
    rng = np.random.default_rng(2)
    real = rng.normal(size=(40, 6))
    collapsed = np.repeat(real[:1], 40, axis=0)
    assert diversity_ratio(collapsed, real) == 0.0
    assert diversity_ratio(real, real) == pytest.approx(1.0)
    assert diversity_ratio(2.0 * real, real) == pytest.approx(2.0)


def test_bad_inputs():
    with pytest.raises(ValueError, match="at least 2"):
        mean_pairwise_distance(np.zeros((1, 3)))
    with pytest.raises(ValueError, match="NaN"):
        mean_pairwise_distance(np.array([[0.0, np.nan], [1.0, 1.0]]))
    with pytest.raises(ValueError, match="event shape"):
        diversity_ratio(np.zeros((4, 3)), np.ones((4, 2)))
    with pytest.raises(ValueError, match="identical"):
        diversity_ratio(np.random.rand(4, 3), np.ones((4, 3)))
    with pytest.raises(ValueError, match="max_samples"):
        mean_pairwise_distance(np.zeros((4, 3)), max_samples=1)
