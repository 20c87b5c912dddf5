"""Bit-reproducible runs: seeding and op determinism."""

import keras
import tensorflow as tf


def enable_determinism(seed):
    """Seeds Python, NumPy, TensorFlow and Keras and enables op determinism.

    Two runs with the same seed (same code, data, device layout and library
    versions) then give bit-identical weights. Op determinism is process-wide
    and cannot be turned off again; it disables `jit_compile="auto"` and
    makes a few ops that have no deterministic kernel raise instead.

    Args:
        seed: int. The seed.
    """
    seed = int(seed)
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


