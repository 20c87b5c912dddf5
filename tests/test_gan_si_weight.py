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


def _combine(adv, sig, weight, norm_ema=None, **kwargs):
    combined, lam, ema = losses.combine_adversarial_and_sig_gradients(
        tf.constant(adv), tf.constant(sig), weight,
        norm_ema=None if norm_ema is None else tf.constant(norm_ema, tf.float32), **kwargs
    )
    ema = None if ema is None else np.asarray(ema)
    return combined.numpy(), float(lam), ema


@pytest.mark.parametrize("weight", [0.0, 0.25, 3.0])
def test_fixed_weight(weight):
    combined, lam, ema = _combine(ADV, SIG, weight, norm_ema=[0.7, 0.2])
    assert lam == np.float32(weight)
    np.testing.assert_allclose(combined, ADV + np.float32(weight) * SIG, rtol=1e-6, atol=1e-7)
    # The EMA state is not touched by a fixed weight.
    np.testing.assert_allclose(ema, [0.7, 0.2])
    assert _combine(ADV, SIG, weight)[2] is None


@pytest.mark.parametrize("scale", [1.0, 0.5])
def test_auto_first_step_is_the_ratio(scale):
    ratio = _norm(ADV) / _norm(SIG)
    combined, lam, ema = _combine(ADV, SIG, "auto", norm_ema=[0.0, 0.0], auto_scale=scale)
    np.testing.assert_allclose(ema, [_norm(ADV), _norm(SIG)], rtol=1e-5)
    np.testing.assert_allclose(lam, scale * ratio, rtol=1e-5)
    np.testing.assert_allclose(combined, ADV + scale * ratio * SIG, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("momentum", [0.99, 0.5, 0.0])
def test_auto_ema_update(momentum):
    previous = np.array([3.0, 0.5])
    norms = np.array([_norm(ADV), _norm(SIG)])
    expected = momentum * previous + (1.0 - momentum) * norms
    lam_expected = 2.0 * expected[0] / expected[1]
    combined, lam, ema = _combine(ADV, SIG, "auto", norm_ema=previous,
                                  auto_scale=2.0, auto_momentum=momentum)
    np.testing.assert_allclose(ema, expected, rtol=1e-5)
    np.testing.assert_allclose(lam, lam_expected, rtol=1e-5)
    np.testing.assert_allclose(combined, ADV + lam_expected * SIG, rtol=1e-5, atol=1e-6)


def test_auto_is_a_ratio_of_averages_robust_to_a_vanishing_sig_gradient():
    """One step whose SIG gradient almost vanishes moves lambda by about
    1 - momentum, where a per-step ratio would be 1e8 times the usual one."""
    steady = np.array([_norm(ADV), _norm(SIG)])
    _, lam_before, _ = _combine(ADV, SIG, "auto", norm_ema=steady)
    _, lam_after, _ = _combine(ADV, 1e-8 * SIG, "auto", norm_ema=steady, auto_momentum=0.99)
    assert lam_before == pytest.approx(steady[0] / steady[1], rel=1e-5)
    assert lam_after == pytest.approx(lam_before / 0.99, rel=1e-4)


def test_auto_with_a_variable_state_in_a_tf_function():
    state = tf.Variable([0.0, 0.0])

    @tf.function(jit_compile=True)
    def step(adv, sig):
        combined, lam, ema = losses.combine_adversarial_and_sig_gradients(
            adv, sig, "auto", norm_ema=state, auto_momentum=0.9
        )
        state.assign(ema)
        return combined, lam

    step(tf.constant(ADV), tf.constant(SIG))
    np.testing.assert_allclose(state.numpy(), [_norm(ADV), _norm(SIG)], rtol=1e-5)
    _, lam = step(tf.constant(ADV), tf.constant(2.0 * SIG))
    expected = [_norm(ADV), 0.9 * _norm(SIG) + 0.1 * 2.0 * _norm(SIG)]
    np.testing.assert_allclose(state.numpy(), expected, rtol=1e-5)
    np.testing.assert_allclose(lam.numpy(), expected[0] / expected[1], rtol=1e-5)


@pytest.mark.parametrize("previous", [[0.0, 0.0], [2.5, 1.0]])
def test_zero_sig_gradient_is_safe(previous):
    zero = np.zeros_like(SIG)
    combined, lam, ema = _combine(ADV, zero, "auto", norm_ema=previous)
    assert np.all(np.isfinite(combined)) and np.isfinite(lam) and np.all(np.isfinite(ema))
    # No SIG gradient to average: the state (and so lambda) stays where it was.
    np.testing.assert_allclose(ema, previous)
    expected = 0.0 if previous[1] == 0 else previous[0] / previous[1]
    assert lam == pytest.approx(expected)
    np.testing.assert_array_equal(combined, ADV)


def test_zero_adversarial_gradient_is_safe():
    zero = np.zeros_like(ADV)
    combined, lam, ema = _combine(zero, SIG, "auto", norm_ema=[0.0, 0.0])
    assert lam == 0.0
    np.testing.assert_allclose(ema, [0.0, _norm(SIG)], rtol=1e-6)
    np.testing.assert_array_equal(combined, zero)
    sig_norm = _norm(SIG)
    combined, lam, ema = _combine(zero, SIG, "auto", norm_ema=[4.0, sig_norm],
                                  auto_momentum=0.5)
    np.testing.assert_allclose(lam, 2.0 / sig_norm, rtol=1e-5)
    np.testing.assert_allclose(combined, 2.0 / sig_norm * SIG, rtol=1e-5)


def test_both_gradients_zero_is_safe():
    zero = np.zeros_like(ADV)
    for previous in ([0.0, 0.0], [1.5, 0.5]):
        combined, lam, ema = _combine(zero, zero, "auto", norm_ema=previous)
        assert np.all(combined == 0.0) and np.isfinite(lam)
        np.testing.assert_allclose(ema, previous)


def test_norms_are_over_the_global_batch(two_cpu_strategy):
    """On 2 replicas, each holding half the batch, lambda is the single-device one."""
    single = _combine(ADV, SIG, "auto", norm_ema=[0.0, 0.0])
    halves = {"adv": np.split(ADV, 2), "sig": np.split(SIG, 2)}

    def replica_values(context):
        i = context.replica_id_in_sync_group
        return tf.constant(halves["adv"][i]), tf.constant(halves["sig"][i])

    values = two_cpu_strategy.experimental_distribute_values_from_function(replica_values)

    @tf.function
    def run(values):
        def fn(adv, sig):
            combined, lam, ema = losses.combine_adversarial_and_sig_gradients(
                adv, sig, "auto", norm_ema=tf.zeros([2])
            )
            return combined, lam, ema

        return two_cpu_strategy.run(fn, args=values)

    combined, lam, ema = run(values)
    for replica_lam, replica_ema in zip(two_cpu_strategy.experimental_local_results(lam),
                                        two_cpu_strategy.experimental_local_results(ema)):
        np.testing.assert_allclose(float(replica_lam), single[1], rtol=1e-6)
        np.testing.assert_allclose(replica_ema.numpy(), single[2], rtol=1e-6)
    gathered = np.concatenate(
        [c.numpy() for c in two_cpu_strategy.experimental_local_results(combined)]
    )
    np.testing.assert_allclose(gathered, single[0], rtol=1e-6, atol=1e-7)


def test_bad_arguments():
    with pytest.raises(ValueError, match="'auto'"):
        _combine(ADV, SIG, "automatic")
    with pytest.raises(ValueError, match="non-negative"):
        _combine(ADV, SIG, -1.0)
    with pytest.raises(ValueError, match="norm_ema"):
        _combine(ADV, SIG, "auto")


@pytest.mark.parametrize("weight", [0.25, "auto"])
def test_weight_factor_scales_lambda_not_the_norm_averages(weight):
    plain, lam, ema = _combine(ADV, SIG, weight, norm_ema=[0.7, 0.2])
    combined, scaled, scaled_ema = _combine(ADV, SIG, weight, norm_ema=[0.7, 0.2],
                                            weight_factor=tf.constant(0.4))
    assert scaled == pytest.approx(0.4 * lam, rel=1e-6)
    np.testing.assert_allclose(combined, ADV + np.float32(scaled) * SIG, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(scaled_ema, ema)
    assert not np.allclose(combined, plain)
