import math

import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy import special
from scipy import stats

from sig_keras.layers import NormalConditional
from sig_keras.losses import semi_implicit_log_likelihood
from sig_keras.metrics import SemiImplicitLikelihood

STD = 0.1
ANGLES = 2 * np.pi * np.arange(8) / 8
CENTERS = 2.0 * np.stack([np.cos(ANGLES), np.sin(ANGLES)], 1)


def _mixture_data(n, seed):
    rng = np.random.default_rng(seed)
    return (CENTERS[rng.integers(0, 8, n)] + STD * rng.normal(size=(n, 2))).astype(np.float32)


def _true_cross_entropy(x):
    """-mean log p_data(x): the exact mixture density, scipy."""
    log_p = stats.norm.logpdf(x[:, None, :].astype(np.float64), CENTERS[None], STD).sum(-1)
    return -np.mean(special.logsumexp(log_p, axis=1) - np.log(8))


def _centre_generator(seed):
    """fn(n) -> psi: true centres drawn uniformly (the model equals the data)."""
    rng = np.random.default_rng(seed)
    return lambda n: CENTERS[rng.integers(0, 8, n)].astype(np.float32)


def test_bound_approaches_true_cross_entropy_from_above():
    x = _mixture_data(4000, seed=0)
    truth = _true_cross_entropy(x)
    bounds = {}
    for k in (1, 10, 100, 1000, 10_000):
        metric = SemiImplicitLikelihood(_centre_generator(k), NormalConditional(STD),
                                        num_samples=k, chunk_size=1000)
        for batch in np.array_split(x, 4):
            metric.update_state(batch)
        bounds[k] = float(metric.result()["nll"])
    assert bounds[1] > bounds[10] > bounds[100] > bounds[1000] > bounds[10_000]
    assert all(value > truth - 1e-3 for value in bounds.values())
    assert bounds[10_000] - truth < 0.01
    np.testing.assert_allclose(
        float(metric.result()["bits_per_dim"]), bounds[10_000] / (2 * math.log(2)), rtol=1e-6)


def test_chunks_equal_the_one_shot_estimator():
    rng = np.random.default_rng(1)
    psi = rng.normal(size=(1000, 3)).astype(np.float32)
    x = rng.normal(size=(50, 3)).astype(np.float32)
    position = [0]

    def fixed_psi(n):  # hands out the rows of `psi` in order
        start = position[0]
        position[0] += n
        return psi[start:start + n]

    cond = NormalConditional(0.7)
    metric = SemiImplicitLikelihood(fixed_psi, cond, num_samples=1000, chunk_size=300)
    metric.update_state(x)  # chunks of 300, 300, 300, 100
    expected = -np.mean(semi_implicit_log_likelihood(x, psi, cond).numpy())
    np.testing.assert_allclose(float(metric.result()["nll"]), expected, rtol=1e-5)
    assert position[0] == 1000
    metric.reset_state()
    assert float(metric.count.numpy()) == 0
    assert float(cond.scale_value) == pytest.approx(0.7)  # the conditional is not state


def _sig_model():
    from sig_keras.models import SIG

    inputs = keras.Input((3,))
    generator = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    return SIG(generator, NormalConditional(0.5), latent_dim=3, num_samples=16, seed=0)


def test_model_with_sample_mixing_in_graph():
    model = _sig_model()
    x = np.random.default_rng(2).normal(size=(20, 2)).astype(np.float32)
    eager = SemiImplicitLikelihood(model, num_samples=500, chunk_size=200, seed=7)
    eager.update_state(x)
    graph = SemiImplicitLikelihood(model, num_samples=500, chunk_size=200, seed=7)
    tf.function(graph.update_state)(x)
    # An int seed: the same K draws, eager or in a graph.
    np.testing.assert_allclose(float(graph.result()["nll"]), float(eager.result()["nll"]),
                               rtol=1e-5)
    psi = np.concatenate([model.sample_mixing(n, seed=7 + c).numpy()
                          for c, n in enumerate((200, 200, 100))])
    expected = -np.mean(semi_implicit_log_likelihood(x, psi, model.conditional).numpy())
    np.testing.assert_allclose(float(eager.result()["nll"]), expected, rtol=1e-5)
    # seed=None: fresh draws from the model's SeedGenerator, also in a graph.
    fresh = SemiImplicitLikelihood(model, num_samples=100, chunk_size=50)
    tf.function(fresh.update_state)(x)
    assert np.isfinite(float(fresh.result()["nll"]))


# === Bad input ===


def test_generator_must_sample():
    with pytest.raises(ValueError, match="sample_mixing"):
        SemiImplicitLikelihood(generator=3, conditional="normal")


def test_conditional_required_for_a_plain_callable():
    with pytest.raises(ValueError, match="`conditional` is required"):
        SemiImplicitLikelihood(lambda n: np.zeros((n, 2), np.float32))


def test_psi_of_the_wrong_shape():
    metric = SemiImplicitLikelihood(lambda n: np.zeros((n, 3), np.float32), "normal",
                                    num_samples=10)
    with pytest.raises(ValueError, match="generator produces"):
        metric.update_state(np.zeros((4, 2), np.float32))
    wrong_count = SemiImplicitLikelihood(lambda n: np.zeros((5, 2), np.float32), "normal",
                                         num_samples=10)
    with pytest.raises(ValueError, match="for 10 draws"):
        wrong_count.update_state(np.zeros((4, 2), np.float32))


def test_nan_data():
    metric = SemiImplicitLikelihood(_centre_generator(0), NormalConditional(STD),
                                    num_samples=10)
    with pytest.raises(ValueError, match="non-finite"):
        metric.update_state(np.array([[np.nan, 0.0]], np.float32))
