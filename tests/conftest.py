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


@pytest.fixture
def two_cpu_strategy():
    return tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])


@pytest.fixture(autouse=True)
def _clear_session():
    keras.utils.clear_session()
    yield
