"""feature_scores: the three feature metrics in one call, same numbers, same errors."""

import numpy as np
import pytest

from sig_keras.metrics import FrechetDistance
from sig_keras.metrics import KernelDistance
from sig_keras.metrics import PrecisionRecall
from sig_keras.metrics import feature_scores


def _features(seed, n=60, d=4, shift=0.0):
    return (np.random.default_rng(seed).normal(size=(n, d)) + shift).astype(np.float32)


def test_equals_each_metric_run_alone():
    real, generated = _features(0), _features(1, n=50, shift=0.5)
    scores = feature_scores(real, generated, k=3, subsets=7, subset_size=40)
    assert sorted(scores) == ["coverage", "density", "fid", "kid", "kid_std", "precision",
                              "recall"]
    fid = FrechetDistance("identity", num_features=4)
    fid.update_state_from_features(real, generated)
    kid = KernelDistance("identity", num_features=4, subsets=7, subset_size=40)
    kid.update_state_from_features(real, generated)
    pr = PrecisionRecall("identity", num_features=4, k=3)
    pr.update_state_from_features(real, generated)
    expected = {"fid": float(fid.result())}
    expected.update({k: float(v) for k, v in kid.result().items()})
    expected.update({k: float(v) for k, v in pr.result().items()})
    assert scores == pytest.approx(expected, rel=1e-6)


def test_kid_subsets_shrink_to_the_smaller_set():
    scores = feature_scores(_features(0, n=30), _features(1, n=20), k=2, subsets=3)
    assert np.isfinite(scores["kid"])


@pytest.mark.parametrize("real, generated, message", [
    (_features(0, d=4), _features(1, d=5), "width"),
    (_features(0), np.full((60, 4), np.nan, np.float32), "NaN or inf"),
    (_features(0, n=3), _features(1, n=3), "k \\+ 1"),
])
def test_bad_features(real, generated, message):
    with pytest.raises(ValueError, match=message):
        feature_scores(real, generated, k=5)
