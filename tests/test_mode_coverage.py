"""ModeCoverage: hand-computed values, the grid's own samples, KL direction."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from sig_keras import datasets
from sig_keras.metrics import ModeCoverage

TWO_CENTRES = np.array([[0.0, 0.0], [10.0, 0.0]])


def _result(metric):
    return {k: float(v) for k, v in metric.result().items()}


def test_hand_computed_four_samples():
    metric = ModeCoverage(TWO_CENTRES, std=1.0, threshold=3.0, capture_share=0.2)
    samples = np.array(
        [
            [0.5, 0.0],  # mode 0, distance 0.5: high quality
            [0.0, 3.0],  # mode 0, distance exactly 3 std: high quality
            [3.5, 0.0],  # nearest mode 0, distance 3.5: not high quality
            [10.0, 1.0],  # mode 1, distance 1: high quality
        ],
        np.float32,
    )
    metric.update_state(samples)
    got = _result(metric)
    assert got["high_quality"] == pytest.approx(0.75)
    # Captured: more than 0.2 * 4 = 0.8 high-quality samples -> both modes.
    assert got["modes"] == 2.0
    q = np.array([2 / 3, 1 / 3])
    assert got["kl"] == pytest.approx(np.sum(q * np.log(q / 0.5)), rel=1e-5)


def test_capture_is_strictly_more_than_the_share():
    metric = ModeCoverage(TWO_CENTRES, std=1.0, capture_share=0.25)
    # Mode 1 gets exactly 0.25 * 4 = 1 sample: not captured.
    metric.update_state(np.array([[0, 0], [0, 1], [1, 0], [10, 0]], np.float32))
    assert _result(metric)["modes"] == 1.0


def test_accumulates_over_batches():
    rng = np.random.default_rng(0)
    samples = np.concatenate(
        [rng.normal(size=(30, 2)), 10 + rng.normal(size=(10, 2)) * [1, 0] + [0, 0]]
    ).astype(np.float32)
    one = ModeCoverage(TWO_CENTRES, std=1.0)
    one.update_state(samples)
    many = ModeCoverage(TWO_CENTRES, std=1.0)
    for part in np.array_split(samples, 3):
        many.update_state(part)
    for key, value in _result(one).items():
        assert _result(many)[key] == pytest.approx(value, rel=1e-6)


def test_grid_own_samples_cover_all_modes():
    grid = datasets.gaussian_grid(std=0.1)
    metric = ModeCoverage(grid.centers, grid.std)
    metric.update_state(grid.sample(50_000, seed=0))
    got = _result(metric)
    assert got["modes"] == 25.0
    # In 2-d, P(|z| <= 3) = 1 - exp(-9 / 2) = 0.9889.
    assert got["high_quality"] == pytest.approx(1 - np.exp(-4.5), abs=3e-3)
    assert 0 <= got["kl"] < 5e-3


def test_collapsed_samples_give_log_m_over_k():
    grid = datasets.gaussian_grid(std=0.05)
    kept = [0, 6, 12, 18, 24]
    rng = np.random.default_rng(1)
    samples = np.repeat(grid.centers[kept], 200, axis=0) + 0.01 * rng.normal(size=(1000, 2))
    metric = ModeCoverage(grid.centers, grid.std)
    metric.update_state(samples.astype(np.float32))
    got = _result(metric)
    assert got["modes"] == 5.0
    assert got["high_quality"] == pytest.approx(1.0)
    assert got["kl"] == pytest.approx(np.log(25 / 5), rel=1e-5)


def test_kl_direction_is_generated_to_true():
    weights = np.array([0.95, 0.05])
    metric = ModeCoverage(TWO_CENTRES, std=1.0, weights=weights)
    metric.update_state(np.array([[0, 0], [0, 0], [10, 0], [10, 0]], np.float32))
    q = np.array([0.5, 0.5])
    forward = np.sum(q * np.log(q / weights))  # KL(generated || true)
    backward = np.sum(weights * np.log(weights / q))
    assert abs(forward - backward) > 0.2
    assert _result(metric)["kl"] == pytest.approx(forward, rel=1e-5)


def test_weights_are_normalised():
    metric = ModeCoverage(TWO_CENTRES, std=1.0, weights=[4.0, 1.0])
    np.testing.assert_allclose(metric.weights, [0.8, 0.2])


def test_no_high_quality_sample_gives_inf_kl():
    metric = ModeCoverage(TWO_CENTRES, std=1.0)
    metric.update_state(np.array([[5.0, 0.0], [0.0, 50.0]], np.float32))
    got = _result(metric)
    assert got["modes"] == 0.0
    assert got["high_quality"] == 0.0
    assert got["kl"] == np.inf


def test_reset_state():
    metric = ModeCoverage(TWO_CENTRES, std=1.0)
    metric.update_state(np.array([[0.0, 0.0], [10.0, 0.0]], np.float32))
    assert _result(metric)["modes"] == 2.0
    metric.reset_state()
    np.testing.assert_array_equal(metric.mode_counts.numpy(), [0.0, 0.0])
    assert float(metric.total.numpy()) == 0.0
    got = _result(metric)
    assert got["modes"] == 0.0 and got["high_quality"] == 0.0 and got["kl"] == np.inf
    metric.update_state(np.array([[10.0, 0.0]], np.float32))
    assert _result(metric)["high_quality"] == 1.0


def test_update_state_in_tf_function():
    metric = ModeCoverage(TWO_CENTRES, std=1.0, capture_share=0.0)
    update = tf.function(metric.update_state)
    update(tf.constant([[0.0, 0.0], [9.0, 0.5]]))
    update(tf.constant([[20.0, 0.0]]))
    got = _result(metric)
    assert got["modes"] == 2.0
    assert got["high_quality"] == pytest.approx(2 / 3)


def test_config_round_trip():
    metric = ModeCoverage(TWO_CENTRES, std=0.5, weights=[1, 3], threshold=2.0,
                          capture_share=0.1)
    again = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(metric))
    assert isinstance(again, ModeCoverage)
    assert again.get_config() == metric.get_config()
    np.testing.assert_allclose(again.weights, [0.25, 0.75])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(centers=[0.0, 1.0], std=1.0), "centers"),
        (dict(centers=np.zeros((0, 2)), std=1.0), "centers"),
        (dict(centers=[[0.0, np.nan]], std=1.0), "NaN"),
        (dict(centers=TWO_CENTRES, std=0.0), "std"),
        (dict(centers=TWO_CENTRES, std=-1.0), "std"),
        (dict(centers=TWO_CENTRES, std=float("nan")), "std"),
        (dict(centers=TWO_CENTRES, std=1.0, weights=[1.0]), "weights"),
        (dict(centers=TWO_CENTRES, std=1.0, weights=[1.0, 0.0]), "weights"),
        (dict(centers=TWO_CENTRES, std=1.0, weights=[1.0, -1.0]), "weights"),
        (dict(centers=TWO_CENTRES, std=1.0, threshold=0.0), "threshold"),
        (dict(centers=TWO_CENTRES, std=1.0, capture_share=1.0), "capture_share"),
        (dict(centers=TWO_CENTRES, std=1.0, capture_share=-0.1), "capture_share"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ModeCoverage(**kwargs)


def test_sample_weight_is_rejected():
    metric = ModeCoverage(TWO_CENTRES, std=1.0)
    with pytest.raises(ValueError, match="sample_weight"):
        metric.update_state(np.zeros((2, 2), np.float32), sample_weight=np.ones(2))


@pytest.mark.parametrize("samples, message", [
    (np.zeros((4, 3)), r"shape \[N, 2\]"),          # wrong width, not reshaped
    (np.zeros((2, 2, 2)), r"shape \[N, 2\]"),       # wrong rank
    (np.array([[0.0, np.nan]]), "NaN or inf"),
])
def test_rejects_samples_it_cannot_measure(samples, message):
    metric = ModeCoverage(TWO_CENTRES, std=1.0)
    with pytest.raises(ValueError, match=message):
        metric.update_state(samples)


def test_non_finite_samples_fail_in_graph():
    metric = ModeCoverage(TWO_CENTRES, std=1.0)
    with pytest.raises(tf.errors.InvalidArgumentError, match="NaN or inf"):
        tf.function(metric.update_state)(tf.constant([[0.0, np.inf]]))
