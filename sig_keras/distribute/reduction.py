"""Cross-replica reductions used inside `train_step` (losses, noise, batch norm).

Convention (that of `tf.nn.compute_average_loss`): inside a replica of a
distribution strategy a loss returns this replica's *share* of the global-batch
mean, so that summing values and gradients over replicas (what the optimizer
does with gradients) gives the single-device value and gradient. Outside a
strategy, or with one replica, the share is the plain mean.
"""

import tensorflow as tf


def _replica_context():
    """The replica context when called inside `strategy.run` with R > 1."""
    if not tf.distribute.has_strategy():
        return None
    ctx = tf.distribute.get_replica_context()
    if ctx is None or ctx.num_replicas_in_sync == 1:
        return None
    return ctx


def num_replicas():
    """Number of replicas in sync (1 outside a strategy)."""
    ctx = _replica_context()
    return 1 if ctx is None else ctx.num_replicas_in_sync


def replica_mean(per_example):
    """This replica's share of the global mean of `per_example` (float32).

    `sum(per_example) / N_global`. With a static shape (batches with
    `drop_remainder=True`) every replica holds the same number of examples and
    `N_global = R * n` costs no communication; with a dynamic shape the count
    is all-reduced, so uneven last batches are weighted correctly.
    """
    per_example = tf.cast(per_example, tf.float32)
    total = tf.reduce_sum(per_example)
    if per_example.shape.is_fully_defined():
        count = float(per_example.shape.num_elements() * num_replicas())
        return total / count if count else tf.zeros_like(total)
    count = tf.cast(tf.size(per_example), tf.float32)
    return tf.math.divide_no_nan(total, all_reduce_sum(count))


def all_reduce_sum(tensors):
    """Sum of `tensors` (a tensor or a nest of tensors) over all replicas.

    Identity outside a strategy or with one replica. Differentiable: the
    gradient with respect to each replica's input is the all-reduced gradient.
    """
    ctx = _replica_context()
    if ctx is None:
        return tensors
    return ctx.all_reduce(tf.distribute.ReduceOp.SUM, tensors)


def gather_across_replicas(t):
    """All-gathers `t` along axis 0 (identity outside a strategy).

    The gradient flows back to each replica's slice: replica r receives the sum
    over all replicas of the gradient with respect to its slice.
    """
    ctx = _replica_context()
    if ctx is None:
        return t
    return ctx.all_gather(t, axis=0)


def local_slice(t):
    """This replica's contiguous slice of a global-batch tensor `t`.

    Used where every replica draws the same global noise (a mirrored
    `SeedGenerator`) and generates only its part, so that the gathered result
    equals the single-device one. `t.shape[0]` must be divisible by the number
    of replicas.
    """
    ctx = _replica_context()
    if ctx is None:
        return t
    n = ctx.num_replicas_in_sync
    size = tf.shape(t)[0] // n
    start = tf.cast(ctx.replica_id_in_sync_group, tf.int32) * size
    return t[start : start + size]


def report_value(share):
    """Turns a replica's share into the value to log.

    Keras averages train_step outputs over replicas; multiplying the share by
    the replica count makes that average the global value.
    """
    return share * tf.cast(num_replicas(), share.dtype)
