"""Test configuration.

Two logical CPU devices are created at import time, before any TensorFlow op
runs, so distribution tests can use a 2-replica MirroredStrategy on this CPU.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tensorflow as tf  # noqa: E402

_cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(
    _cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2
)

import keras  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(scope="session")
def two_cpu_strategy():
    """What `get_strategy("mirrored")` gives on this CPU (reduce to one device)."""
    from sig_keras import distribute

    return distribute.get_strategy("mirrored", devices=["/cpu:0", "/cpu:1"])


@pytest.fixture(scope="session")
def two_cpu_collective_strategy():
    """TensorFlow's default cross-device ops: collectives, as on GPUs/workers."""
    # One collective strategy per process: each new one restarts its
    # collective instance keys, and the runtime caches instance parameters
    # (shapes) by key, so a second strategy's all-gather of another shape
    # fails with "Shape mismatch in the collective instance".
    return tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])


@pytest.fixture(autouse=True)
def _clear_session():
    # free_memory=False skips a full gc.collect() per test (about 1 s each
    # once TensorFlow is loaded); names and global Keras state still reset.
    keras.utils.clear_session(free_memory=False)
    yield
