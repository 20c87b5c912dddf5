"""Conditionals `p(x | psi)` against scipy.stats, and their Keras surface."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy import special
from scipy import stats

from sig_keras import layers
from sig_keras.layers import conditionals
from tests.references import case as _case
from tests.references import ref_bernoulli as _ref_bernoulli
from tests.references import ref_normal as _ref_normal
from tests.references import ref_poisson as _ref_poisson
from tests.references import rng_for as _rng
from tests.references import softplus as _softplus


NAMES = ["normal", "poisson", "negative_binomial", "bernoulli"]


@pytest.mark.parametrize("name", NAMES)
def test_pairwise_log_prob_matches_scipy(name):
    cond, x, psi, ref = _case(name)
    got = cond.pairwise_log_prob(x, psi)
    assert got.shape == (5, 4)
    assert got.dtype == tf.float32
    np.testing.assert_allclose(got.numpy(), ref, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("name", NAMES)
def test_distribution_log_prob_matches_scipy(name):
    cond, x, psi, ref = _case(name, n=4, k=4)
    dist = cond.distribution(psi)
    assert tuple(dist.batch_shape) == (4,)
    assert tuple(dist.event_shape) == (3,)
    # x_i under psi_i: the diagonal of the pairwise reference.
    got = dist.log_prob(x).numpy()
    np.testing.assert_allclose(got, np.diag(ref), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("name", NAMES)
def test_matrix_form_equals_broadcast_tfp_log_prob(name):
    cond, x, psi, _ = _case(name, n=6, k=5, d=4, seed=1)
    # [N, 1, D] against a distribution with batch [K]: the naive N x K x D way.
    naive = cond.distribution(psi).log_prob(x[:, None, :]).numpy()
    assert naive.shape == (6, 5)
    np.testing.assert_allclose(
        cond.pairwise_log_prob(x, psi).numpy(), naive, rtol=1e-5, atol=1e-4
    )


def test_normal_trainable_scale_matches_scipy_and_gets_gradient():
    cond = layers.NormalConditional(scale=0.3, trainable_scale=True)
    assert len(cond.trainable_weights) == 1
    np.testing.assert_allclose(cond.scale_value.numpy(), 0.3, rtol=1e-6)
    rng = _rng(2)
    x = rng.normal(size=(3, 2)).astype(np.float32)
    psi = rng.normal(size=(4, 2)).astype(np.float32)
    np.testing.assert_allclose(
        cond.pairwise_log_prob(x, psi).numpy(), _ref_normal(x, psi, 0.3),
        rtol=1e-5, atol=1e-4,
    )
    # The stored variable is rho with scale = softplus(rho) (the documented link).
    cond._rho.assign(0.25)
    scale = float(_softplus(0.25))
    np.testing.assert_allclose(cond.scale_value.numpy(), scale, rtol=1e-6)
    np.testing.assert_allclose(
        cond.pairwise_log_prob(x, psi).numpy(), _ref_normal(x, psi, scale),
        rtol=1e-5, atol=1e-4,
    )
    with tf.GradientTape() as tape:
        lp = tf.reduce_sum(cond.pairwise_log_prob(x, psi))
    (grad,) = tape.gradient(lp, cond.trainable_weights)
    assert grad is not None and np.isfinite(grad.numpy())
    assert abs(float(grad)) > 0


def test_normal_fixed_scale_is_not_trainable():
    cond = layers.NormalConditional(scale=0.1)
    assert cond.trainable_weights == []
    np.testing.assert_allclose(cond.scale_value.numpy(), 0.1, rtol=1e-6)


def test_links_are_softplus_and_sigmoid():
    psi = np.array([[-3.0, 0.0, 2.5]], np.float32)
    pois = layers.PoissonConditional(min_rate=0.0)
    np.testing.assert_allclose(
        pois.distribution(psi).distribution.rate.numpy(), _softplus(psi), rtol=1e-6
    )
    nb = layers.NegativeBinomialConditional(min_total_count=0.0)
    psi_nb = np.array([[-1.0, 2.0, 0.5, -0.5]], np.float32)
    inner = nb.distribution(psi_nb).distribution
    np.testing.assert_allclose(
        inner.total_count.numpy(), _softplus(psi_nb[:, :2]), rtol=1e-6
    )
    np.testing.assert_allclose(inner.logits.numpy(), psi_nb[:, 2:], rtol=1e-6)
    # Mean r p / (1 - p), p = sigmoid(logits).
    p = special.expit(psi_nb[:, 2:])
    np.testing.assert_allclose(
        inner.mean().numpy(), _softplus(psi_nb[:, :2]) * p / (1 - p), rtol=1e-5
    )
    bern = layers.BernoulliConditional()
    np.testing.assert_allclose(
        bern.distribution(psi).distribution.probs_parameter().numpy(),
        special.expit(psi), rtol=1e-6,
    )


def test_mean_matches_the_links():
    psi = np.array([[-3.0, 0.0, 2.5, 1.0]], np.float32)
    np.testing.assert_allclose(layers.NormalConditional(0.3).mean(psi).numpy(), psi)
    np.testing.assert_allclose(layers.BernoulliConditional().mean(psi).numpy(),
                               special.expit(psi), rtol=1e-6)
    np.testing.assert_allclose(layers.PoissonConditional(min_rate=0.0).mean(psi).numpy(),
                               _softplus(psi), rtol=1e-6)
    nb = layers.NegativeBinomialConditional(min_total_count=0.0).mean(psi).numpy()
    p = special.expit(psi[:, 2:])
    np.testing.assert_allclose(nb, _softplus(psi[:, :2]) * p / (1 - p), rtol=1e-5)
    images = np.zeros((2, 4, 4, 1), np.float32)
    assert layers.BernoulliConditional().mean(images).shape == (2, 4, 4, 1)


def test_normal_image_event_shape():
    cond = layers.NormalConditional(scale=0.5)
    rng = _rng(3)
    x = rng.normal(size=(3, 4, 4, 3)).astype(np.float32)
    psi = rng.normal(size=(2, 4, 4, 3)).astype(np.float32)
    assert cond.params_size((4, 4, 3)) == 48
    assert cond.param_shape((4, 4, 3)) == (4, 4, 3)
    got = cond.pairwise_log_prob(x, psi).numpy()
    assert got.shape == (3, 2)
    np.testing.assert_allclose(got, _ref_normal(x, psi, 0.5), rtol=1e-5, atol=1e-3)
    dist = cond.distribution(psi)
    assert tuple(dist.event_shape) == (4, 4, 3)
    np.testing.assert_allclose(
        dist.log_prob(x[:, None]).numpy(), got, rtol=1e-5, atol=1e-3
    )


def test_bernoulli_and_poisson_multi_dim_events():
    rng = _rng(4)
    x = rng.integers(0, 2, size=(3, 2, 3)).astype(np.float32)
    psi = rng.normal(size=(4, 2, 3)).astype(np.float32)
    bern = layers.BernoulliConditional()
    np.testing.assert_allclose(
        bern.pairwise_log_prob(x, psi).numpy(),
        _ref_bernoulli(x.reshape(3, -1), psi.reshape(4, -1)), rtol=1e-5, atol=1e-4,
    )
    counts = rng.poisson(2.0, size=(3, 2, 3)).astype(np.float32)
    pois = layers.PoissonConditional()
    np.testing.assert_allclose(
        pois.pairwise_log_prob(counts, psi).numpy(),
        _ref_poisson(counts.reshape(3, -1), psi.reshape(4, -1)), rtol=1e-5, atol=1e-4,
    )


def test_negative_binomial_multi_dim_event():
    rng = _rng(5)
    cond = layers.NegativeBinomialConditional()
    assert cond.param_shape((2, 3)) == (2, 6)
    x = rng.poisson(2.0, size=(3, 2, 3)).astype(np.float32)
    psi = rng.normal(size=(4, 2, 6)).astype(np.float32)
    got = cond.pairwise_log_prob(x, psi).numpy()
    # Per row of the event, the first half of the last axis is r, the second
    # half the logits.
    r = _softplus(psi[..., :3].astype(np.float64)) + 1e-4
    p = special.expit(psi[..., 3:].astype(np.float64))
    ref = stats.nbinom.logpmf(x[:, None], r[None], 1.0 - p[None]).sum((-1, -2))
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-4)
    dist = cond.distribution(psi)
    assert tuple(dist.event_shape) == (2, 3)
    np.testing.assert_allclose(dist.log_prob(x[:, None]).numpy(), got, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize(
    "cond, event, size, shape",
    [
        (layers.NormalConditional(), 2, 2, (2,)),
        (layers.NormalConditional(), (28, 28, 3), 28 * 28 * 3, (28, 28, 3)),
        (layers.PoissonConditional(), (1,), 1, (1,)),
        (layers.BernoulliConditional(), (28, 28, 1), 784, (28, 28, 1)),
        (layers.NegativeBinomialConditional(), 1, 2, (2,)),
        (layers.NegativeBinomialConditional(), (4, 5), 40, (4, 10)),
    ],
)
def test_params_size_and_param_shape(cond, event, size, shape):
    assert cond.params_size(event) == size
    assert cond.param_shape(event) == shape
    assert cond.event_shape_from_params(shape) == (
        (event,) if isinstance(event, int) else tuple(event)
    )


def test_event_shape_from_params_odd_width_for_nb():
    with pytest.raises(ValueError, match="divisible"):
        layers.NegativeBinomialConditional().event_shape_from_params((3,))


@pytest.mark.parametrize(
    "name, cls",
    [
        ("normal", layers.NormalConditional),
        ("Gaussian", layers.NormalConditional),
        ("poisson", layers.PoissonConditional),
        ("negative_binomial", layers.NegativeBinomialConditional),
        ("bernoulli", layers.BernoulliConditional),
    ],
)
def test_get_by_name(name, cls):
    assert type(layers.get(name)) is cls


def test_get_instance_and_config():
    cond = layers.PoissonConditional(min_rate=1e-3)
    assert layers.get(cond) is cond
    again = layers.get(keras.saving.serialize_keras_object(cond))
    assert isinstance(again, layers.PoissonConditional)
    assert again.min_rate == 1e-3


def test_get_unknown_name_lists_valid_ones():
    with pytest.raises(ValueError, match="valid names.*bernoulli"):
        layers.get("laplace")
    with pytest.raises(ValueError):
        layers.get(3.0)


@pytest.mark.parametrize(
    "cond, key, value",
    [
        (layers.NormalConditional(scale=0.3, trainable_scale=True), "scale", 0.3),
        (layers.PoissonConditional(min_rate=1e-3), "min_rate", 1e-3),
        (layers.NegativeBinomialConditional(min_total_count=1e-2), "min_total_count", 1e-2),
        (layers.BernoulliConditional(name="bern"), "name", "bern"),
    ],
)
def test_get_config_round_trip(cond, key, value):
    config = cond.get_config()
    assert config[key] == value
    again = type(cond).from_config(config)
    assert again.get_config() == config
    # Serialized through the registry too.
    again = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(cond))
    assert type(again) is type(cond)
    assert again.get_config() == config


def test_trainable_scale_in_config():
    config = layers.NormalConditional(scale=0.3, trainable_scale=True).get_config()
    assert config["trainable_scale"] is True
    again = layers.NormalConditional.from_config(config)
    assert len(again.trainable_weights) == 1


@pytest.mark.parametrize("scale", [0.0, -1.0, float("nan"), float("inf")])
def test_invalid_scale(scale):
    with pytest.raises(ValueError, match="scale"):
        layers.NormalConditional(scale=scale)


@pytest.mark.parametrize(
    "cond, bad, match",
    [
        (layers.NormalConditional(), [[0.0, np.nan]], "NaN"),
        (layers.NormalConditional(), [[0.0, np.inf]], "inf"),
        (layers.PoissonConditional(), [[1.0], [-1.0]], "negative"),
        (layers.PoissonConditional(), [[1.5]], "non-integer"),
        (layers.NegativeBinomialConditional(), [[2.5]], "non-integer"),
        (layers.NegativeBinomialConditional(), [[-2.0]], "negative"),
        (layers.BernoulliConditional(), [[0.0, 2.0]], "outside"),
        (layers.BernoulliConditional(), [[0.5]], "outside"),
    ],
)
def test_check_data_rejects(cond, bad, match):
    with pytest.raises(ValueError, match=match):
        cond.check_data(np.asarray(bad, np.float32))


@pytest.mark.parametrize(
    "cond, good",
    [
        (layers.NormalConditional(), [[-3.0, 2.0]]),
        (layers.PoissonConditional(), [[0], [7]]),
        (layers.NegativeBinomialConditional(), [[0.0], [12.0]]),
        (layers.BernoulliConditional(), [[0, 1], [1, 1]]),
    ],
)
def test_check_data_accepts(cond, good):
    cond.check_data(np.asarray(good))


def test_check_shapes():
    cond = layers.NegativeBinomialConditional()
    cond.check_shapes((5, 3), (4, 6))
    with pytest.raises(ValueError, match="shape"):
        cond.check_shapes((5, 3), (4, 3))
    with pytest.raises(ValueError, match="shape"):
        layers.NormalConditional().check_shapes((5, 2), (4, 3))


@pytest.mark.parametrize("name", ["normal", "poisson", "bernoulli"])
def test_sample_with_stateless_seed_is_reproducible(name):
    cond = conditionals.get(name)
    psi = np.zeros((6, 3), np.float32)
    a = cond.sample(psi, tf.constant([1, 2])).numpy()
    b = cond.sample(psi, tf.constant([1, 2])).numpy()
    c = cond.sample(psi, tf.constant([1, 3])).numpy()
    assert a.shape == (6, 3)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_pairwise_log_prob_works_under_jit():
    cond, x, psi, ref = _case("normal")
    fn = tf.function(cond.pairwise_log_prob, jit_compile=True)
    np.testing.assert_allclose(fn(x, psi).numpy(), ref, rtol=1e-5, atol=1e-4)
