"""Distribution strategies from a name or `TF_CONFIG`, and optimizer set-up for `fit`.

The package-level docstring (`sig_keras.distribute`) says how every model
stays equal to one device under these strategies.
"""

import json
import os

import keras
import tensorflow as tf

from sig_keras.distribute import host

STRATEGIES = ("default", "mirrored", "multiworker")

_TF_CONFIG_EXAMPLE = (
    '{"cluster": {"worker": ["host0:12345", "host1:12345"]}, '
    '"task": {"type": "worker", "index": 0}}'
)


# === Strategies ===


def parse_tf_config(tf_config=None):
    """Reads and validates a multi-worker `TF_CONFIG`.

    Args:
        tf_config: str, dict or None. The configuration; None reads the
            `TF_CONFIG` environment variable.

    Returns:
        The configuration as a dict.

    Raises:
        ValueError: if it is missing or malformed (the message shows a valid
            example).
    """
    if tf_config is None:
        tf_config = os.environ.get("TF_CONFIG")
        if not tf_config:
            raise ValueError(
                "The 'multiworker' strategy needs the TF_CONFIG environment "
                "variable, set differently on each worker, e.g. "
                f"TF_CONFIG='{_TF_CONFIG_EXAMPLE}' on worker 0."
            )
    if isinstance(tf_config, str):
        try:
            tf_config = json.loads(tf_config)
        except json.JSONDecodeError as e:
            raise ValueError(
                f"TF_CONFIG is not valid JSON ({e}); expected e.g. "
                f"{_TF_CONFIG_EXAMPLE}."
            ) from None
    if not isinstance(tf_config, dict):
        raise ValueError(
            f"TF_CONFIG must be a JSON object like {_TF_CONFIG_EXAMPLE}; got "
            f"{tf_config!r}."
        )
    cluster = tf_config.get("cluster")
    task = tf_config.get("task")
    if not isinstance(cluster, dict) or not isinstance(task, dict):
        raise ValueError(
            "TF_CONFIG needs a 'cluster' and a 'task' entry, like "
            f"{_TF_CONFIG_EXAMPLE}; got keys {sorted(tf_config)}."
        )
    task_type = task.get("type")
    if task_type not in ("worker", "chief"):
        raise ValueError(
            "TF_CONFIG task type must be 'worker' or 'chief' for "
            f"MultiWorkerMirroredStrategy; got {task_type!r}."
        )
    members = cluster.get(task_type)
    if not isinstance(members, list) or not members or not all(
        isinstance(m, str) and ":" in m for m in members
    ):
        raise ValueError(
            f"TF_CONFIG cluster[{task_type!r}] must be a non-empty list of "
            f"'host:port' strings; got {members!r}."
        )
    index = task.get("index")
    if not isinstance(index, int) or not 0 <= index < len(members):
        raise ValueError(
            f"TF_CONFIG task index must be an int in [0, {len(members)}); "
            f"got {index!r}."
        )
    return tf_config


# Free heap memory each glibc arena keeps when `get_strategy` sets the pad.
AUTO_MALLOC_TOP_PAD = 64 << 20


def get_strategy(name="default", devices=None, cross_device_ops=None,
                 malloc_top_pad="auto"):
    """Returns a `tf.distribute.Strategy` by name.

    Args:
        name: str. One of `"default"` (the current, usually no-op, strategy:
            one device), `"mirrored"` (`MirroredStrategy` over `devices`, by
            default every GPU, or every logical CPU when there is no GPU) or
            `"multiworker"` (`MultiWorkerMirroredStrategy`, configured by the
            `TF_CONFIG` environment variable). Defaults to `"default"`.
        devices: list of device names or None. Only for `"mirrored"`.
        cross_device_ops: `tf.distribute.CrossDeviceOps` or None. Only for
            `"mirrored"`. None picks TensorFlow's default (collective
            all-reduce, NCCL on GPUs) unless every device is a CPU, where
            `tf.distribute.ReductionToOneDevice()` is used: replicas on one
            host share memory, and the collective executor's per-call cost
            dominated small steps (`benchmarks/strategy_overhead.py
            --collective` measures it; figures in docs/benchmarks.md).
        malloc_top_pad: `"auto"`, None, int or False. Host memory tuning for
            several replicas on CPUs (`set_malloc_top_pad` says why).
            `"auto"` or None: when the strategy has several replicas and
            every local device is a CPU, keep `AUTO_MALLOC_TOP_PAD` (64 MiB)
            of free heap per glibc arena; on other C libraries, with GPUs,
            with one replica, or when the `MALLOC_TOP_PAD_` environment
            variable is set, leave malloc alone. An int > 0: that many bytes,
            for any "mirrored" or "multiworker" strategy (glibc only: a
            `RuntimeError` elsewhere, before the strategy is built). 0 or
            False: leave malloc alone. The setting is process-wide. Defaults
            to `"auto"`.

    Raises:
        ValueError: for an unknown name, a bad `malloc_top_pad`, or a
            missing/malformed `TF_CONFIG`.
        RuntimeError: for an int `malloc_top_pad` > 0 without glibc.
    """
    if name not in STRATEGIES:
        raise ValueError(
            f"Unknown strategy {name!r}; valid: {list(STRATEGIES)}."
        )
    for arg, value in (("devices", devices), ("cross_device_ops", cross_device_ops)):
        if value is not None and name != "mirrored":
            raise ValueError(f"`{arg}` only applies to 'mirrored'; got {name!r}.")
    if cross_device_ops is not None and not isinstance(
        cross_device_ops, tf.distribute.CrossDeviceOps
    ):
        raise ValueError(
            "`cross_device_ops` must be a tf.distribute.CrossDeviceOps, e.g. "
            "tf.distribute.ReductionToOneDevice() or "
            f"tf.distribute.NcclAllReduce(); got {cross_device_ops!r}."
        )
    auto_pad = _check_malloc_top_pad(malloc_top_pad)
    if name == "default":
        if not auto_pad and malloc_top_pad:
            raise ValueError(
                "`malloc_top_pad` only applies to 'mirrored' and 'multiworker'; "
                f"got {malloc_top_pad!r} with 'default'."
            )
        return tf.distribute.get_strategy()
    if name == "multiworker":
        parse_tf_config()
    if not auto_pad and malloc_top_pad:
        host.set_malloc_top_pad(malloc_top_pad)
    if name == "mirrored":
        if devices is None and not tf.config.list_logical_devices("GPU"):
            devices = [d.name for d in tf.config.list_logical_devices("CPU")]
        if cross_device_ops is None and devices and _all_cpus(devices):
            cross_device_ops = tf.distribute.ReductionToOneDevice()
        strategy = tf.distribute.MirroredStrategy(
            devices, cross_device_ops=cross_device_ops
        )
    else:
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
    if (auto_pad
            and strategy.num_replicas_in_sync > 1
            and _all_cpus(strategy.extended.worker_devices)
            and "MALLOC_TOP_PAD_" not in os.environ
            and host.has_glibc()):
        host.set_malloc_top_pad(AUTO_MALLOC_TOP_PAD)
    return strategy


def _check_malloc_top_pad(value):
    """Whether `value` asks for the automatic pad; raises `ValueError` unless
    it is "auto", None, False or an int in [0, 2**31)."""
    if value is None or (isinstance(value, str) and value == "auto"):
        return True
    if value is False:
        return False
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**31:
        raise ValueError(
            "`malloc_top_pad` must be 'auto', None, False or an int number of "
            f"bytes in [0, 2**31) (e.g. 64 << 20); got {value!r}."
        )
    return False


def _all_cpus(devices):
    """Whether every device name in `devices` is a CPU."""
    return all(
        (tf.DeviceSpec.from_string(d).device_type or "").upper() == "CPU"
        for d in devices
    )


def is_multi_worker(strategy=None):
    """Whether `strategy` (default: the current one) spans several workers."""
    strategy = strategy or tf.distribute.get_strategy()
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return False
    in_mode = getattr(strategy.extended, "_in_multi_worker_mode", None)
    return bool(in_mode()) if in_mode is not None else True


def worker_index(strategy=None):
    """This worker's task index (0 outside multi-worker training)."""
    strategy = strategy or tf.distribute.get_strategy()
    if not is_multi_worker(strategy):
        return 0
    return int(strategy.cluster_resolver.task_id)


# === Optimizers ===


def model_optimizers(model):
    """`[(attribute_name, optimizer, variables)]` for every optimizer of `model`.

    A model with several optimizers (every `AdversarialModel`) says which
    variables each updates through `optimizer_variables()`, a dict
    `{attribute_name: variables}`; any other model has one `model.optimizer`
    that updates `model.trainable_variables`.
    """
    custom = getattr(model, "optimizer_variables", None)
    if callable(custom):
        found, seen = [], set()
        for attr, variables in custom().items():
            opt = getattr(model, attr)
            if id(opt) not in seen:
                seen.add(id(opt))
                found.append((attr, opt, list(variables)))
        return found
    opt = getattr(model, "optimizer", None)
    if isinstance(opt, keras.optimizers.Optimizer):
        return [("optimizer", opt, list(model.trainable_variables))]
    return []


def build_optimizers(model, strategy=None):
    """Builds `model` and all its optimizers inside the strategy scope.

    Optimizers kept as attributes (a discriminator optimizer) must exist
    before `fit` under a distribution strategy, and
    `keras.callbacks.BackupAndRestore` needs built optimizers to restore their
    state. The package's models call it at the start of their `fit`; call it
    yourself to build another model, or to read optimizer variables before
    training. Call after `compile`; idempotent.

    Args:
        model: a compiled `keras.Model`.
        strategy: the `tf.distribute.Strategy` the model was created under;
            defaults to the model's own.

    Returns:
        The model.
    """
    strategy = strategy or getattr(model, "distribute_strategy", None)
    strategy = strategy or tf.distribute.get_strategy()
    with strategy.scope():
        own = getattr(model, "build_optimizers", None)
        if callable(own):
            own()  # the model knows which variables each optimizer updates
        if not model.built:
            model.build()
        for _, opt, variables in model_optimizers(model):
            if not opt.built:
                opt.build(variables)
    return model
