"""SyncBatchNormalization: global-batch statistics in one all-reduce.

References: Keras' own batch norm on the whole global batch (one device) and
float64 numpy moments. Tolerance 1e-5 (float32 sums in another order).
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from sig_keras.layers import SyncBatchNormalization

RTOL, ATOL = 1e-5, 1e-5
SHAPE = (8, 4, 4, 3)  # global batch of images, 3 channels


def _data(seed=0, loc=0.0):
    rng = np.random.default_rng(seed)
    return (loc + rng.normal(size=SHAPE) * np.array([1.0, 2.0, 0.5])).astype(np.float32)


def _reference(x, steps=1):
    """Keras' batch norm on the global batch, one device: outputs, moving stats."""
    layer = keras.layers.BatchNormalization()
    for _ in range(steps):
        y = layer(x, training=True)
    return y.numpy(), layer.moving_mean.numpy(), layer.moving_variance.numpy()


def _run_distributed(strategy, x, layer_cls=SyncBatchNormalization, steps=1,
                     dynamic_batch=False, moving_mean=None):
    """Runs the layer on each replica's half of `x` (as `fit` does: a
    distributed dataset and a `tf.function` step); also returns the number of
    all-reduces per replica per call (the step is traced once, per replica)."""
    with strategy.scope():
        layer = layer_cls()
        layer.build(x.shape)
        if moving_mean is not None:
            layer.moving_mean.assign(moving_mean)
    # drop_remainder=False leaves the batch dimension unknown in the graph.
    dataset = tf.data.Dataset.from_tensor_slices(x).batch(
        len(x), drop_remainder=not dynamic_batch
    )
    calls = []

    def replica_fn(h):
        ctx = tf.distribute.get_replica_context()
        all_reduce = ctx.all_reduce

        def counting_all_reduce(*args, **kwargs):
            calls.append(1)
            return all_reduce(*args, **kwargs)

        ctx.all_reduce = counting_all_reduce
        try:
            assert (h.shape[0] is None) == dynamic_batch
            return layer(h, training=True)
        finally:
            del ctx.all_reduce

    @tf.function
    def step(iterator):
        return strategy.run(replica_fn, args=(next(iterator),))

    iterator = iter(strategy.experimental_distribute_dataset(dataset.repeat()))
    for _ in range(steps):
        out = step(iterator)
    y = np.concatenate([t.numpy() for t in strategy.experimental_local_results(out)])
    per_replica_calls = len(calls) / strategy.num_replicas_in_sync
    return y, layer.moving_mean.numpy(), layer.moving_variance.numpy(), per_replica_calls


@pytest.fixture(params=["two_cpu_strategy", "two_cpu_collective_strategy"],
                ids=["reduce_to_one", "collective"])
def strategy(request):
    return request.getfixturevalue(request.param)


def test_outside_a_strategy_equals_keras_batch_norm():
    x = _data()
    layer = SyncBatchNormalization()
    y = layer(x, training=True).numpy()
    y_ref, mean_ref, var_ref = _reference(x)
    np.testing.assert_allclose(y, y_ref, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(layer.moving_mean.numpy(), mean_ref, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(layer.moving_variance.numpy(), var_ref, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("dynamic_batch", [False, True], ids=["static", "dynamic"])
def test_two_replicas_equal_one_device_on_the_global_batch(strategy, dynamic_batch):
    x = _data()
    y, mean, var, calls = _run_distributed(strategy, x, steps=2,
                                           dynamic_batch=dynamic_batch)
    y_ref, mean_ref, var_ref = _reference(x, steps=2)
    np.testing.assert_allclose(y, y_ref, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(mean, mean_ref, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(var, var_ref, rtol=RTOL, atol=ATOL)
    # One all-reduce per call (traced once per input signature).
    assert calls == 1


def test_one_all_reduce_where_keras_issues_three(two_cpu_strategy):
    x = _data()
    *_, ours = _run_distributed(two_cpu_strategy, x)
    *_, keras_calls = _run_distributed(
        two_cpu_strategy, x,
        layer_cls=lambda: keras.layers.BatchNormalization(synchronized=True),
    )
    assert (ours, keras_calls) == (1, 3)


def test_variance_far_from_zero_matches_float64(two_cpu_strategy):
    # Data around 3000 with unit-scale spread: the sums are taken around the
    # moving mean, so the variance is not lost to cancellation.
    x = _data(loc=3000.0)
    expected_var = x.astype(np.float64).var(axis=(0, 1, 2))
    layer_moving_mean = x.astype(np.float64).mean(axis=(0, 1, 2)).round()
    y, _, _, _ = _run_distributed(two_cpu_strategy, x, moving_mean=layer_moving_mean)
    # Normalized output has (almost) unit variance per channel: eps = 1e-3.
    np.testing.assert_allclose(
        y.astype(np.float64).var(axis=(0, 1, 2)),
        expected_var / (expected_var + 1e-3), rtol=1e-4,
    )


def test_gradients_equal_one_device(strategy):
    x = _data()
    w = np.random.default_rng(1).normal(size=SHAPE).astype(np.float32)

    def loss_grad(layer, h, weights):
        with tf.GradientTape() as tape:
            tape.watch(h)
            loss = tf.reduce_sum(layer(h, training=True) * weights)
        return tape.gradient(loss, [h, layer.gamma, layer.beta])

    ref_layer = keras.layers.BatchNormalization()
    ref = [g.numpy() for g in loss_grad(ref_layer, tf.constant(x), tf.constant(w))]

    with strategy.scope():
        layer = SyncBatchNormalization()
        layer.build(x.shape)
    n = strategy.num_replicas_in_sync
    xs, ws = np.split(x, n), np.split(w, n)
    args = [
        strategy.experimental_distribute_values_from_function(
            lambda ctx, parts=parts: tf.constant(parts[ctx.replica_id_in_sync_group])
        )
        for parts in (xs, ws)
    ]
    out = strategy.run(tf.function(lambda h, v: loss_grad(layer, h, v)), args=args)
    dx = np.concatenate([t.numpy() for t in strategy.experimental_local_results(out[0])])
    # gamma/beta: each replica holds its share; the optimizer sums them.
    dgamma = sum(t.numpy() for t in strategy.experimental_local_results(out[1]))
    dbeta = sum(t.numpy() for t in strategy.experimental_local_results(out[2]))
    np.testing.assert_allclose(dx, ref[0], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(dgamma, ref[1], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(dbeta, ref[2], rtol=1e-4, atol=1e-4)


def test_config_round_trip():
    layer = SyncBatchNormalization(momentum=0.9, epsilon=1e-5)
    config = layer.get_config()
    assert "synchronized" not in config
    clone = SyncBatchNormalization.from_config(config)
    assert clone.synchronized and clone.momentum == 0.9 and clone.epsilon == 1e-5
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(layer)
    )
    assert isinstance(restored, SyncBatchNormalization)


def test_bad_option_synchronized_false():
    with pytest.raises(ValueError, match="always synchronized"):
        SyncBatchNormalization(synchronized=False)
