"""`pairwise_log_prob` and the estimator's `pairwise_log_prob_terms` agree;
a conditional without them fails with `NotImplementedError`, not a recursion."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from sig_keras import layers
from sig_keras.losses import semi_implicit_log_likelihood
from sig_keras.losses import semi_implicit_loss
from tests.references import case as _case

NAMES = ["normal", "poisson", "negative_binomial", "bernoulli"]


@pytest.mark.parametrize("name", NAMES)
def test_pairwise_log_prob_is_the_sum_of_the_terms(name):
    cond, x, psi, ref = _case(name, n=6, k=5)
    scores, row = cond.pairwise_log_prob_terms(x, psi)
    assert scores.shape == (6, 5) and row.shape == (6,)
    matrix = cond.pairwise_log_prob(x, psi).numpy()
    np.testing.assert_array_equal(matrix, (scores + row[:, None]).numpy())
    np.testing.assert_allclose(matrix, ref, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("name", NAMES)
def test_estimator_agrees_with_pairwise_log_prob(name):
    cond, x, psi, _ = _case(name, n=6, k=5, seed=2)
    matrix = cond.pairwise_log_prob(x, psi).numpy().astype(np.float64)
    expected = np.logaddexp.reduce(matrix, axis=1) - np.log(5.0)
    got = semi_implicit_log_likelihood(x, psi, cond).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-5)
    np.testing.assert_allclose(
        semi_implicit_loss(x, psi, cond).numpy(), -expected.mean(), rtol=1e-6, atol=1e-5
    )


def test_normal_agrees_at_the_density_maximum():
    """`x_i = psi_i`: the expansion's rounding is the same on both paths (the
    matrix is not clipped on one of them only)."""
    cond = layers.NormalConditional(scale=0.05)
    rng = np.random.default_rng(3)
    psi = rng.normal(3.0, 2.0, size=(8, 16)).astype(np.float32)
    x = psi.copy()
    matrix = cond.pairwise_log_prob(x, psi).numpy().astype(np.float64)
    expected = np.logaddexp.reduce(matrix, axis=1) - np.log(8.0)
    np.testing.assert_allclose(
        semi_implicit_log_likelihood(x, psi, cond).numpy(), expected, rtol=1e-6
    )


class _Incomplete(layers.Conditional):
    """Overrides neither `pairwise_log_prob` nor `pairwise_log_prob_terms`."""


class _TermsOnly(layers.Conditional):
    """A unit-scale Normal that implements only the required methods."""

    def _elementwise_distribution(self, psi):
        return tfp.distributions.Normal(loc=psi, scale=1.0)

    def pairwise_log_prob_terms(self, x, psi):
        x = tf.reshape(tf.cast(x, tf.float32), [tf.shape(x)[0], -1])
        psi = tf.reshape(tf.cast(psi, tf.float32), [tf.shape(psi)[0], -1])
        sq = tf.reduce_sum(tf.square(x[:, None, :] - psi[None, :, :]), axis=-1)
        dim = tf.cast(tf.shape(x)[1], tf.float32)
        return -0.5 * sq, tf.fill(tf.shape(x)[:1], -0.5 * dim * np.log(2.0 * np.pi))


def test_missing_methods_raise_not_implemented_naming_the_subclass():
    cond = _Incomplete()
    x = np.zeros((3, 2), np.float32)
    psi = np.zeros((4, 2), np.float32)
    for method in (cond.pairwise_log_prob, cond.pairwise_log_prob_terms):
        with pytest.raises(NotImplementedError, match="_Incomplete.*pairwise_log_prob_terms"):
            method(x, psi)
    with pytest.raises(NotImplementedError, match="_Incomplete.*_elementwise_distribution"):
        cond.distribution(psi)
    with pytest.raises(NotImplementedError, match="_Incomplete"):
        semi_implicit_loss(x, psi, cond)


def test_a_subclass_with_the_terms_alone_works_everywhere():
    cond = _TermsOnly()
    rng = np.random.default_rng(4)
    x = rng.normal(size=(5, 3)).astype(np.float32)
    psi = rng.normal(size=(4, 3)).astype(np.float32)
    diff = x[:, None, :].astype(np.float64) - psi[None].astype(np.float64)
    ref = (-0.5 * np.square(diff) - 0.5 * np.log(2.0 * np.pi)).sum(-1)
    np.testing.assert_allclose(cond.pairwise_log_prob(x, psi).numpy(), ref, rtol=1e-5)
    np.testing.assert_allclose(cond.distribution(psi).log_prob(x[:, None]).numpy(), ref,
                               rtol=1e-5)
    expected = -np.mean(np.logaddexp.reduce(ref, axis=1) - np.log(4.0))
    np.testing.assert_allclose(semi_implicit_loss(x, psi, cond).numpy(), expected, rtol=1e-5)
