"""Distribution strategies, determinism and optimizer set-up for `fit`.

Every model of the package trains under `tf.distribute.MirroredStrategy` (one
machine, several devices) and `tf.distribute.MultiWorkerMirroredStrategy`
(several machines, each started with its own `TF_CONFIG`) with the same result
as one device on the same global batch:

- losses return each replica's share of the global-batch mean
  (`sig_keras.losses.reduction`), so the summed gradients equal the
  single-device gradient;
- the semi-implicit term all-gathers the generated `psi` (K x P floats), so
  every data point sees all `K` samples whatever the replica count;
- noise is drawn identically on every replica from the mirrored
  `SeedGenerator` and each replica keeps its slice.

Example:
>>> strategy = sig_keras.distribute.get_strategy("mirrored")
>>> with strategy.scope():
...     model = SIG(mlp_generator(10, 2), "normal", noise_dim=10)
...     model.compile(optimizer=keras.optimizers.Adam(1e-3))
...     sig_keras.distribute.build_optimizers(model)
>>> model.fit(dataset, epochs=10)
"""

import argparse
import ctypes
import json
import os
import platform

import keras
import tensorflow as tf

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


def get_strategy(name="default", devices=None, cross_device_ops=None):
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
            --collective`: 2-replica overhead of the toy SIG step 44% with
            collectives, 24% reducing to one device; 30% and 0% after
            `set_malloc_top_pad`, which CPU hosts should also call).

    Raises:
        ValueError: for an unknown name, or a missing/malformed `TF_CONFIG`.
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
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        if devices is None and not tf.config.list_logical_devices("GPU"):
            devices = [d.name for d in tf.config.list_logical_devices("CPU")]
        if cross_device_ops is None and devices and _all_cpus(devices):
            cross_device_ops = tf.distribute.ReductionToOneDevice()
        return tf.distribute.MirroredStrategy(
            devices, cross_device_ops=cross_device_ops
        )
    parse_tf_config()
    return tf.distribute.MultiWorkerMirroredStrategy()


def _all_cpus(devices):
    """Whether every device name in `devices` is a CPU."""
    return all(
        (tf.DeviceSpec.from_string(d).device_type or "").upper() == "CPU"
        for d in devices
    )


def _strategy_name(name):
    """argparse `type` of `--strategy`: 'multiworker' needs a valid TF_CONFIG."""
    if name == "multiworker":
        try:
            parse_tf_config()
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
    return name


def add_strategy_flag(parser, default="default"):
    """Adds `--strategy {default,mirrored,multiworker}` to an argparse parser.

    `--strategy multiworker` without a valid `TF_CONFIG` is a usage error
    (the message shows a valid one), raised while parsing, before any
    TensorFlow work. Use with `get_strategy(args.strategy)`, called before any
    other TensorFlow op (a `MultiWorkerMirroredStrategy` must be created
    first).
    """
    parser.add_argument(
        "--strategy", type=_strategy_name, choices=STRATEGIES, default=default,
        help="distribution strategy: one device, all local devices, or "
        "several machines configured by TF_CONFIG",
    )
    return parser


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


def is_chief(strategy=None):
    """Whether this process is the chief (worker 0) of its cluster."""
    return worker_index(strategy) == 0


# === Host memory ===

_M_TOP_PAD = -2  # glibc <malloc.h>


def set_malloc_top_pad(num_bytes=64 << 20):
    """Keeps `num_bytes` of free heap memory mapped in every glibc arena.

    Several replicas on one host allocate their tensors from several threads,
    so glibc's malloc serves them from per-thread arenas, and by default it
    gives the free top of each arena's heap back to the kernel after every
    step. The next step faults those pages back in, zero-filled, and the
    unmapping interrupts the other cores (TLB shoot-downs). On this project's
    2-core CPU that kernel work was most of the cost of a second replica on
    small steps (`benchmarks/strategy_overhead.py`; `perf` showed the
    process's kernel share fall from 24% to 10%). A top pad makes glibc keep
    that much free memory per arena instead. One device is barely affected;
    tensors on GPUs are not malloc'ed by glibc, but the host side of their
    steps is.

    Process-wide, like the `MALLOC_TOP_PAD_` environment variable it stands
    for (which only takes effect when set before the process starts); a later
    call replaces the value. Memory held: up to `num_bytes` per arena (glibc
    makes at most 8 per core).

    Args:
        num_bytes: int in [0, 2**31). Bytes of free memory each arena keeps.
            Defaults to 64 MiB; glibc's own default is 128 KiB (`128 << 10`
            restores it).

    Raises:
        ValueError: if `num_bytes` is not an int in [0, 2**31) (mallopt takes
            a C int).
        RuntimeError: if the C library is not glibc (macOS, musl), which has
            no such setting.
    """
    if (
        isinstance(num_bytes, bool)
        or not isinstance(num_bytes, int)
        or not 0 <= num_bytes < 2**31
    ):
        raise ValueError(
            "`num_bytes` must be an int in [0, 2**31) (e.g. 64 << 20); got "
            f"{num_bytes!r}."
        )
    libc_name, _ = platform.libc_ver()
    if libc_name != "glibc":
        raise RuntimeError(
            "set_malloc_top_pad needs glibc's mallopt; this platform's C "
            f"library is {libc_name or 'unknown'}. Its allocator has its own "
            "settings (or preload tcmalloc/jemalloc)."
        )
    mallopt = ctypes.CDLL(None).mallopt
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    if mallopt(_M_TOP_PAD, num_bytes) != 1:
        raise RuntimeError(f"glibc mallopt(M_TOP_PAD, {num_bytes}) failed.")


# === Determinism ===


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


# === Optimizers ===

# Prefixes of optimizer attributes -> the sub-model they update.
_OPTIMIZER_TARGETS = {
    "d": "discriminator",
    "discriminator": "discriminator",
    "critic": "discriminator",
    "g": "generator",
    "generator": "generator",
    "e": "encoder",
    "encoder": "encoder",
}


def model_optimizers(model):
    """`[(attribute_name, optimizer, variables)]` for every optimizer of `model`.

    `model.optimizer` updates `model.trainable_variables` unless it is the same
    object as a named optimizer (e.g. the GAN `g_optimizer`). An optimizer
    kept as an attribute `<prefix>_optimizer` updates the sub-model its prefix
    names (`d`/`discriminator`/`critic` -> `model.discriminator`, `g` ->
    `model.generator`, `e` -> `model.encoder`). A model can override this by
    defining `optimizer_variables()` returning `{attribute_name: variables}`.
    """
    found = []
    seen = set()
    custom = getattr(model, "optimizer_variables", None)
    if callable(custom):
        for attr, variables in custom().items():
            opt = getattr(model, attr)
            if id(opt) not in seen:
                seen.add(id(opt))
                found.append((attr, opt, list(variables)))
        return found
    for attr in sorted(vars(model)):
        if attr.startswith("_") or attr == "optimizer":
            continue
        opt = getattr(model, attr, None)
        if not isinstance(opt, keras.optimizers.Optimizer) or id(opt) in seen:
            continue
        prefix = attr[: -len("optimizer")].rstrip("_") if attr.endswith(
            "optimizer"
        ) else attr
        target = _OPTIMIZER_TARGETS.get(prefix)
        sub_model = getattr(model, target, None) if target else None
        if sub_model is None:
            raise ValueError(
                f"Cannot tell which variables the optimizer `{attr}` of "
                f"{type(model).__name__} updates; define "
                "`optimizer_variables()` on the model."
            )
        seen.add(id(opt))
        found.append((attr, opt, list(sub_model.trainable_variables)))
    opt = getattr(model, "optimizer", None)
    if isinstance(opt, keras.optimizers.Optimizer) and id(opt) not in seen:
        found.append(("optimizer", opt, list(model.trainable_variables)))
    return found


def build_optimizers(model, strategy=None):
    """Builds `model` and all its optimizers inside the strategy scope.

    Optimizers kept as attributes (a discriminator optimizer) must exist
    before `fit` under a distribution strategy, and
    `keras.callbacks.BackupAndRestore` needs built optimizers to restore their
    state. Call after `compile`; idempotent.

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
