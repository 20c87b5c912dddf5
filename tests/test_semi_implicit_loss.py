"""The semi-implicit estimator: numpy reference, Lemma 1, replica contract."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy.special import logsumexp

from sig_keras import layers
from sig_keras import losses
from sig_keras.losses import semi_implicit_loss
from tests.references import case
from tests.references import ref_normal

NAMES = ["normal", "poisson", "negative_binomial", "bernoulli"]


def _reference_loss(pairwise):
    """`-(1/N) sum_i [logsumexp_k log p(x_i | psi_k) - log K]` in float64."""
    k = pairwise.shape[1]
    return -np.mean(logsumexp(pairwise, axis=1) - np.log(k))


@pytest.mark.parametrize("name", NAMES)
def test_estimator_matches_numpy_reference(name):
    cond, x, psi, ref = case(name, n=6, k=4)
    got = semi_implicit_loss(x, psi, cond)
    assert got.dtype == tf.float32
    assert got.shape == ()
    np.testing.assert_allclose(got.numpy(), _reference_loss(ref), rtol=1e-5)
    per_example = losses.semi_implicit_log_likelihood(x, psi, cond).numpy()
    assert per_example.shape == (6,)
    np.testing.assert_allclose(
        per_example, logsumexp(ref, axis=1) - np.log(4), rtol=1e-5, atol=1e-5
    )


def test_estimator_accepts_a_name_and_float64_inputs():
    _, x, psi, ref = case("normal", n=3, k=5)
    cond = layers.NormalConditional(scale=0.7)
    got = semi_implicit_loss(x.astype(np.float64), psi.astype(np.float64), cond)
    assert got.dtype == tf.float32
    np.testing.assert_allclose(got.numpy(), _reference_loss(ref), rtol=1e-5)
    # By name: the default Normal(0.1).
    got = semi_implicit_loss(x, psi, "normal")
    np.testing.assert_allclose(
        got.numpy(), _reference_loss(ref_normal(x, psi, 0.1)), rtol=1e-5
    )


def test_estimator_k_equals_one_is_minus_mean_log_prob():
    cond, x, psi, ref = case("poisson", n=5, k=1)
    np.testing.assert_allclose(
        semi_implicit_loss(x, psi, cond).numpy(), -ref[:, 0].mean(), rtol=1e-5
    )


def test_far_apart_data_stays_finite():
    """exp(log p) underflows to 0 in float32; the log-space estimate does not."""
    cond = layers.NormalConditional(scale=0.1)
    x = np.full((4, 2), 1000.0, np.float32)
    x[1] = -1000.0
    psi = np.array([[0.0, 0.0], [1.0, -1.0], [3.0, 2.0]], np.float32)
    with tf.GradientTape() as tape:
        psi_t = tf.constant(psi)
        tape.watch(psi_t)
        loss = semi_implicit_loss(x, psi_t, cond)
    grad = tape.gradient(loss, psi_t).numpy()
    assert np.isfinite(loss.numpy())
    assert np.all(np.isfinite(grad))
    np.testing.assert_allclose(
        loss.numpy(), _reference_loss(ref_normal(x, psi, 0.1)), rtol=1e-5
    )
    # Naively, exp of the log-probabilities is exactly zero here.
    assert np.all(np.exp(cond.pairwise_log_prob(x, psi).numpy()) == 0.0)


def test_shape_mismatch_raises():
    with pytest.raises(ValueError, match="shape"):
        semi_implicit_loss(np.zeros((3, 2)), np.zeros((4, 3)), "normal")
    with pytest.raises(ValueError, match="shape"):
        # NB needs twice the data width.
        semi_implicit_loss(np.zeros((3, 2)), np.zeros((4, 2)), "negative_binomial")


def test_unknown_conditional_raises():
    with pytest.raises(ValueError, match="Unknown conditional"):
        semi_implicit_loss(np.zeros((3, 2)), np.zeros((4, 2)), "cauchy")


def test_lemma1_estimate_falls_as_k_grows():
    """Lemma 1: E[L_K] >= E[L_{K+1}] for a fixed generator.

    Fixed mixing distribution psi ~ N(0, I_2), Normal(0.5) conditional, fixed
    data. Each K gets `reps` independent draws of psi; consecutive means must
    fall by more than 3 standard errors of their difference.
    """
    cond = layers.NormalConditional(scale=0.5)
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(0.0, 1.5, size=(64, 2)), tf.float32)
    reps = 100
    loss_fn = tf.function(lambda psi: semi_implicit_loss(x, psi, cond))
    means, sems = [], []
    for k in (1, 4, 16, 64):
        psi = rng.normal(size=(reps, k, 2)).astype(np.float32)
        values = np.array([loss_fn(psi[r]).numpy() for r in range(reps)])
        means.append(values.mean())
        sems.append(values.std(ddof=1) / np.sqrt(reps))
    for i in range(3):
        gap = means[i] - means[i + 1]
        se = np.hypot(sems[i], sems[i + 1])
        assert gap > 3 * se, (means, sems)
    # The bound approaches the cross-entropy from above: the exact marginal of
    # x is N(0, (1 + 0.25) I), so H = -E log N(x; 0, 1.25 I) on this data.
    exact = -np.mean(
        -0.5 * np.sum(x.numpy() ** 2, 1) / 1.25 - np.log(2 * np.pi * 1.25)
    )
    assert means[-1] > exact


# === The replica contract under a 2-replica MirroredStrategy ===


def _per_replica(strategy, parts):
    return strategy.experimental_distribute_values_from_function(
        lambda ctx: parts[ctx.replica_id_in_sync_group]
    )


def _local(strategy, values):
    return [t.numpy() for t in strategy.experimental_local_results(values)]


@pytest.mark.parametrize("name", NAMES)
def test_replica_contract_value_and_psi_gradient(two_cpu_strategy, name):
    """Sum over replicas of the values equals the single-device value.

    The gradient with respect to each replica's psi slice is that slice of the
    single-device gradient (the all-gather's gradient sums over replicas).
    """
    strategy = two_cpu_strategy
    cond, x, psi, _ = case(name, n=8, k=6, seed=3)

    psi_t = tf.constant(psi)
    with tf.GradientTape() as tape:
        tape.watch(psi_t)
        single = semi_implicit_loss(x, psi_t, cond)
    single_grad = tape.gradient(single, psi_t).numpy()

    x_parts = np.split(x, 2)
    psi_parts = np.split(psi, 2)

    def step(x_r, psi_r):
        with tf.GradientTape() as tape:
            tape.watch(psi_r)
            loss = semi_implicit_loss(x_r, psi_r, cond)
        return loss, tape.gradient(loss, psi_r)

    @tf.function
    def run(x_d, psi_d):
        return strategy.run(step, args=(x_d, psi_d))

    values, grads = run(_per_replica(strategy, x_parts), _per_replica(strategy, psi_parts))
    values = _local(strategy, values)
    grads = _local(strategy, grads)
    assert len(values) == 2
    # Each replica returns its share, not the whole value.
    assert not np.isclose(values[0], single.numpy(), rtol=1e-3)
    np.testing.assert_allclose(sum(values), single.numpy(), rtol=1e-5)
    np.testing.assert_allclose(np.concatenate(grads), single_grad, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["normal", "negative_binomial"])
def test_replica_contract_generator_weight_gradient(two_cpu_strategy, name):
    """Sum over replicas of the gradients w.r.t. a generator weight (what the
    optimizer applies) equals the single-device gradient."""
    strategy = two_cpu_strategy
    cond, x, psi, _ = case(name, n=8, k=6, seed=4)
    noise = np.random.default_rng(5).normal(size=(6, 3)).astype(np.float32)
    out_dim = psi.shape[1]

    def make_generator():
        keras.utils.set_random_seed(1)
        gen = keras.layers.Dense(out_dim)
        gen.build((None, 3))
        return gen

    gen = make_generator()
    with tf.GradientTape() as tape:
        single = semi_implicit_loss(x, gen(noise), cond)
    single_grads = [g.numpy() for g in tape.gradient(single, gen.trainable_weights)]

    with strategy.scope():
        gen_d = make_generator()
    for a, b in zip(gen_d.weights, gen.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())

    def step(x_r, noise_r):
        with tf.GradientTape() as tape:
            loss = semi_implicit_loss(x_r, gen_d(noise_r), cond)
        return [loss] + tape.gradient(loss, gen_d.trainable_weights)

    @tf.function
    def run(x_d, noise_d):
        return strategy.run(step, args=(x_d, noise_d))

    out = run(_per_replica(strategy, np.split(x, 2)), _per_replica(strategy, np.split(noise, 2)))
    np.testing.assert_allclose(sum(_local(strategy, out[0])), single.numpy(), rtol=1e-5)
    for got, want in zip(out[1:], single_grads):
        np.testing.assert_allclose(sum(_local(strategy, got)), want, rtol=1e-5, atol=1e-6)


def test_replica_contract_trainable_scale(two_cpu_strategy):
    """A conditional's own weight (the Normal's trainable scale) follows the same
    contract."""
    strategy = two_cpu_strategy
    _, x, psi, _ = case("normal", n=8, k=6, seed=6)
    cond = layers.NormalConditional(scale=0.7, trainable_scale=True)
    with tf.GradientTape() as tape:
        single = semi_implicit_loss(x, psi, cond)
    (single_grad,) = tape.gradient(single, cond.trainable_weights)

    with strategy.scope():
        cond_d = layers.NormalConditional(scale=0.7, trainable_scale=True)

    def step(x_r, psi_r):
        with tf.GradientTape() as tape:
            loss = semi_implicit_loss(x_r, psi_r, cond_d)
        return tape.gradient(loss, cond_d.trainable_weights)[0]

    @tf.function
    def run(x_d, psi_d):
        return strategy.run(step, args=(x_d, psi_d))

    grads = run(_per_replica(strategy, np.split(x, 2)), _per_replica(strategy, np.split(psi, 2)))
    np.testing.assert_allclose(sum(_local(strategy, grads)), single_grad.numpy(), rtol=1e-5)


def test_outside_strategy_scope_returns_plain_value(two_cpu_strategy):
    """In the strategy's cross-replica context (no `run`) the value is plain."""
    cond, x, psi, ref = case("bernoulli", n=4, k=4)
    with two_cpu_strategy.scope():
        got = semi_implicit_loss(x, psi, cond)
    np.testing.assert_allclose(got.numpy(), _reference_loss(ref), rtol=1e-5)


# === The Loss class wrapper ===


def test_loss_class_matches_function_and_round_trips():
    cond, x, psi, ref = case("negative_binomial", n=5, k=3)
    loss = losses.SemiImplicitLoss(cond)
    got = loss(x, psi)
    np.testing.assert_allclose(got.numpy(), _reference_loss(ref), rtol=1e-5)
    config = loss.get_config()
    again = losses.SemiImplicitLoss.from_config(config)
    assert isinstance(again.conditional, layers.NegativeBinomialConditional)
    np.testing.assert_allclose(again(x, psi).numpy(), got.numpy(), rtol=1e-6)
    again = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(loss))
    np.testing.assert_allclose(again(x, psi).numpy(), got.numpy(), rtol=1e-6)


def test_loss_class_by_name():
    _, x, psi, _ = case("normal", n=3, k=4)
    loss = losses.SemiImplicitLoss("normal")
    np.testing.assert_allclose(
        loss(x, psi).numpy(), _reference_loss(ref_normal(x, psi, 0.1)), rtol=1e-5
    )
    with pytest.raises(ValueError, match="Unknown conditional"):
        losses.SemiImplicitLoss("student_t")


# === per_channel: one SIG term per channel ===


def _images(n, seed, shape=(3, 2, 3)):
    return np.random.default_rng(seed).normal(size=(n,) + shape).astype(np.float32)


def test_per_channel_is_the_sum_of_each_channels_numpy_loss():
    x, psi = _images(6, 0), _images(5, 1)
    cond = layers.NormalConditional(scale=0.7)
    got = semi_implicit_loss(x, psi, cond, per_channel=True)
    assert got.dtype == tf.float32 and got.shape == ()
    want = sum(_reference_loss(ref_normal(x[..., c].reshape(6, -1), psi[..., c].reshape(5, -1),
                                          0.7)) for c in range(3))
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-5)
    # It is not the joint loss: the channels choose their own nearest samples.
    assert not np.isclose(got.numpy(), semi_implicit_loss(x, psi, cond).numpy(), rtol=1e-3)


def test_per_channel_gradient_is_each_channels_gradient():
    x, psi = _images(6, 2), tf.constant(_images(5, 3))
    cond = layers.NormalConditional(scale=0.7)
    with tf.GradientTape() as tape:
        tape.watch(psi)
        grad = tape.gradient(semi_implicit_loss(x, psi, cond, per_channel=True), psi)
    for c in range(3):
        channel = tf.constant(psi[..., c])
        with tf.GradientTape() as tape:
            tape.watch(channel)
            want = tape.gradient(semi_implicit_loss(x[..., c], channel, cond), channel)
        np.testing.assert_allclose(grad[..., c].numpy(), want.numpy(), rtol=1e-5, atol=1e-7)


def test_per_channel_with_one_channel_is_the_joint_loss():
    x, psi = _images(4, 4, (3, 3, 1)), _images(7, 5, (3, 3, 1))
    cond = layers.NormalConditional(scale=0.5)
    np.testing.assert_allclose(semi_implicit_loss(x, psi, cond, per_channel=True).numpy(),
                               semi_implicit_loss(x, psi, cond).numpy(), rtol=1e-6)


def test_per_channel_needs_a_channel_axis():
    cond, x, psi, _ = case("normal", n=4, k=3)
    with pytest.raises(ValueError, match="per_channel=True. needs data with a channel axis"):
        semi_implicit_loss(x, psi, cond, per_channel=True)


def test_per_channel_needs_parameters_of_the_datas_shape():
    cond = layers.NegativeBinomialConditional()
    x = np.ones((4, 2, 3), np.float32)
    psi = np.zeros((3, 2, 6), np.float32)
    with pytest.raises(ValueError, match="whose parameters have the data's shape"):
        semi_implicit_loss(x, psi, cond, per_channel=True)


def test_per_channel_replica_contract(two_cpu_strategy):
    strategy = two_cpu_strategy
    x, psi = _images(8, 6), _images(6, 7)
    cond = layers.NormalConditional(scale=0.7)
    single = semi_implicit_loss(x, psi, cond, per_channel=True).numpy()

    @tf.function
    def run(x_d, psi_d):
        return strategy.run(lambda a, b: semi_implicit_loss(a, b, cond, per_channel=True),
                            args=(x_d, psi_d))

    values = _local(strategy, run(_per_replica(strategy, np.split(x, 2)),
                                  _per_replica(strategy, np.split(psi, 2))))
    np.testing.assert_allclose(sum(values), single, rtol=1e-5)
