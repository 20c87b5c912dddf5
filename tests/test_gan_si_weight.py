"""`combine_adversarial_and_sig_gradients`, the GAN-SI weight, against numpy."""

import numpy as np
import pytest
import tensorflow as tf

from sig_keras import losses

RNG = np.random.default_rng(0)
ADV = RNG.normal(size=(6, 3, 2)).astype(np.float32)
SIG = (0.01 * RNG.normal(size=(6, 3, 2))).astype(np.float32)


def _norm(a):
    return np.sqrt(np.sum(np.square(a.astype(np.float64))))


def _combine(adv, sig, weight, ratio_ema=None, **kwargs):
    combined, lam, ema = losses.combine_adversarial_and_sig_gradients(
        tf.constant(adv), tf.constant(sig), weight, ratio_ema=ratio_ema, **kwargs
    )
    ema = None if ema is None else float(ema)
    return combined.numpy(), float(lam), ema


@pytest.mark.parametrize("weight", [0.0, 0.25, 3.0])
def test_fixed_weight(weight):
    combined, lam, ema = _combine(ADV, SIG, weight, ratio_ema=0.7)
    assert lam == np.float32(weight)
    np.testing.assert_allclose(combined, ADV + np.float32(weight) * SIG, rtol=1e-6, atol=1e-7)
    # The EMA state is not touched by a fixed weight.
    assert ema == pytest.approx(0.7)
    assert _combine(ADV, SIG, weight)[2] is None


@pytest.mark.parametrize("scale", [1.0, 0.5])
def test_auto_first_step_is_the_ratio(scale):
    ratio = _norm(ADV) / _norm(SIG)
    combined, lam, ema = _combine(ADV, SIG, "auto", ratio_ema=0.0, auto_scale=scale)
    np.testing.assert_allclose(ema, ratio, rtol=1e-5)
    np.testing.assert_allclose(lam, scale * ratio, rtol=1e-5)
    np.testing.assert_allclose(combined, ADV + scale * ratio * SIG, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("momentum", [0.99, 0.5, 0.0])
def test_auto_ema_update(momentum):
    previous = 3.0
    ratio = _norm(ADV) / _norm(SIG)
    expected = momentum * previous + (1.0 - momentum) * ratio
    combined, lam, ema = _combine(ADV, SIG, "auto", ratio_ema=previous,
                                  auto_scale=2.0, auto_momentum=momentum)
    np.testing.assert_allclose(ema, expected, rtol=1e-5)
    np.testing.assert_allclose(lam, 2.0 * expected, rtol=1e-5)
    np.testing.assert_allclose(combined, ADV + 2.0 * expected * SIG, rtol=1e-5, atol=1e-6)


def test_auto_with_a_variable_state_in_a_tf_function():
    state = tf.Variable(0.0)

    @tf.function(jit_compile=True)
    def step(adv, sig):
        combined, lam, ema = losses.combine_adversarial_and_sig_gradients(
            adv, sig, "auto", ratio_ema=state, auto_momentum=0.9
        )
        state.assign(ema)
        return combined, lam

    ratio = _norm(ADV) / _norm(SIG)
    step(tf.constant(ADV), tf.constant(SIG))
    np.testing.assert_allclose(state.numpy(), ratio, rtol=1e-5)
    _, lam = step(tf.constant(ADV), tf.constant(2.0 * SIG))
    expected = 0.9 * ratio + 0.1 * ratio / 2.0
    np.testing.assert_allclose(state.numpy(), expected, rtol=1e-5)
    np.testing.assert_allclose(lam.numpy(), expected, rtol=1e-5)


@pytest.mark.parametrize("previous", [0.0, 2.5])
def test_zero_sig_gradient_is_safe(previous):
    zero = np.zeros_like(SIG)
    combined, lam, ema = _combine(ADV, zero, "auto", ratio_ema=previous)
    assert np.all(np.isfinite(combined)) and np.isfinite(lam) and np.isfinite(ema)
    # No ratio to average: the EMA (and so lambda) stays where it was.
    assert ema == pytest.approx(previous) and lam == pytest.approx(previous)
    np.testing.assert_array_equal(combined, ADV)


def test_zero_adversarial_gradient_is_safe():
    zero = np.zeros_like(ADV)
    combined, lam, ema = _combine(zero, SIG, "auto", ratio_ema=0.0)
    assert lam == 0.0 and ema == 0.0
    np.testing.assert_array_equal(combined, zero)
    combined, lam, ema = _combine(zero, SIG, "auto", ratio_ema=4.0, auto_momentum=0.5)
    np.testing.assert_allclose([lam, ema], [2.0, 2.0], rtol=1e-6)
    np.testing.assert_allclose(combined, 2.0 * SIG, rtol=1e-6)


def test_both_gradients_zero_is_safe():
    zero = np.zeros_like(ADV)
    for previous in (0.0, 1.5):
        combined, lam, ema = _combine(zero, zero, "auto", ratio_ema=previous)
        assert np.all(combined == 0.0) and np.isfinite(lam) and ema == pytest.approx(previous)


def test_norms_are_over_the_global_batch(two_cpu_strategy):
    """On 2 replicas, each holding half the batch, lambda is the single-device one."""
    single = _combine(ADV, SIG, "auto", ratio_ema=0.0)
    halves = {"adv": np.split(ADV, 2), "sig": np.split(SIG, 2)}

    def replica_values(context):
        i = context.replica_id_in_sync_group
        return tf.constant(halves["adv"][i]), tf.constant(halves["sig"][i])

    values = two_cpu_strategy.experimental_distribute_values_from_function(replica_values)

    @tf.function
    def run(values):
        def fn(adv, sig):
            combined, lam, ema = losses.combine_adversarial_and_sig_gradients(
                adv, sig, "auto", ratio_ema=0.0
            )
            return combined, lam, ema

        return two_cpu_strategy.run(fn, args=values)

    combined, lam, ema = run(values)
    for replica_lam, replica_ema in zip(two_cpu_strategy.experimental_local_results(lam),
                                        two_cpu_strategy.experimental_local_results(ema)):
        np.testing.assert_allclose(float(replica_lam), single[1], rtol=1e-6)
        np.testing.assert_allclose(float(replica_ema), single[2], rtol=1e-6)
    gathered = np.concatenate(
        [c.numpy() for c in two_cpu_strategy.experimental_local_results(combined)]
    )
    np.testing.assert_allclose(gathered, single[0], rtol=1e-6, atol=1e-7)


def test_bad_arguments():
    with pytest.raises(ValueError, match="'auto'"):
        _combine(ADV, SIG, "automatic")
    with pytest.raises(ValueError, match="non-negative"):
        _combine(ADV, SIG, -1.0)
    with pytest.raises(ValueError, match="ratio_ema"):
        _combine(ADV, SIG, "auto")
