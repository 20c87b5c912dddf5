"""Noise for the training steps: `keras.random` draws on the Philox generator.

`keras.random.normal(shape, seed=seed_generator)` calls
`tf.random.stateless_normal` with the algorithm left to TensorFlow
("auto_select"). Outside XLA that is Philox on CPUs and GPUs. Inside an
XLA-compiled function (`jit_compile=True`, Keras' "auto" on GPUs) it becomes
XLA's default bit generator, which on CPUs is several times slower than
Philox and a large share of a small step such as SIG's
(`python benchmarks/xla_step.py --noise`; docs/benchmarks.md).

These functions take the same seeds as `keras.random` (an int, or a
`keras.random.SeedGenerator`, advanced by one draw) and turn them into the
same int32 stateless seed, then ask for Philox explicitly. Outside XLA the
numbers are bit-for-bit those of `keras.random.normal` / `uniform` (tests pin
it), so a seeded run gives the same numbers with either; under XLA they are
XLA's Philox stream, which differs from the non-XLA stream (so does XLA's
default generator).
"""

import keras
import numpy as np
import tensorflow as tf

# Keras casts int64 seeds to int32 with `floormod(seed, int32.max - 1)`.
_SEED_MODULUS = 2**31 - 2


def stateless_seed(seed):
    """The int32 `[2]` stateless seed `keras.random` derives from `seed`.

    Args:
        seed: int or `keras.random.SeedGenerator` (advanced by one draw).
    """
    if isinstance(seed, keras.random.SeedGenerator):
        seed = seed.next()
    elif isinstance(seed, (int, np.integer)) and not isinstance(seed, (bool, np.bool_)):
        seed = tf.constant([int(seed), 0], tf.int64)
    else:
        raise ValueError(
            "`seed` must be an int or a `keras.random.SeedGenerator`; "
            f"got {seed!r}."
        )
    seed = tf.convert_to_tensor(seed)
    if seed.dtype == tf.int32:
        return seed
    return tf.cast(tf.math.floormod(seed, _SEED_MODULUS), tf.int32)


def normal(shape, seed, dtype="float32"):
    """Standard Normal draws, `keras.random.normal(shape, seed=seed)` on Philox."""
    return tf.random.stateless_normal(shape, seed=stateless_seed(seed), dtype=dtype,
                                      alg="philox")


def uniform(shape, seed, minval=0.0, maxval=1.0, dtype="float32"):
    """Uniform draws in `[minval, maxval)`, `keras.random.uniform` on Philox."""
    return tf.random.stateless_uniform(
        shape, seed=stateless_seed(seed), minval=tf.cast(minval, dtype),
        maxval=tf.cast(maxval, dtype), dtype=dtype, alg="philox")
