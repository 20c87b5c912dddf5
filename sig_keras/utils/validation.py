"""Argument validation shared by every constructor, metric, callback and example.

Python-side checks raise `ValueError` naming the argument and the value found,
before anything is built or trained:

- `check_int`: an integer (a Python or NumPy integer; not a bool, not 2.5
  or 2.0), optionally within `[minimum, maximum]`;
- `check_float`: a finite real number (not a bool, not NaN or inf),
  optionally within a range whose ends may be open;
- `check_choice`: one of a listed set of options;
- `check_writable_directory`: a directory that exists (or can be created) and
  that this process can write to;
- `check_num_elements`: a tensor shape within `MAX_ELEMENTS`, so that a size
  too large for memory is refused with the size named, not met by an
  out-of-memory or dimension error deep in TensorFlow;
- `data_array`: data handed to `fit` as an array of numbers (a Python list is
  converted; ragged and sparse tensors, ragged lists, strings and empty
  arrays are refused).

In-graph checks (`assert_all`, `assert_point_shape`) build the data guard of the models: in eager
mode they raise `ValueError`, inside a `tf.function` they are
`tf.debugging.Assert` ops (an `InvalidArgumentError` when they fail) that the
guarded tensor depends on, so nothing computed from it runs first.
"""

import math
import numbers
import os
import tempfile

import numpy as np
import tensorflow as tf

# Bounds of float32 training (float32 max is 3.4e38). The Normal conditional's
# pairwise matrix divides squared distances by 2 scale^2: with scales in
# [MIN_SCALE, MAX_SCALE] and data with |x| <= MAX_DATA_MAGNITUDE it stays
# finite ((2e12)^2 / 2e-12 = 2e36), so both are checked up front.
MIN_SCALE = 1e-6
MAX_SCALE = 1e6
MAX_DATA_MAGNITUDE = 1e12
# Loss weights (GAN-SI's lambda, the gradient penalty, KL and reconstruction
# weights) beyond this make float32 losses overflow on ordinary data.
MAX_WEIGHT = 1e6
# Largest tensor a model draws or produces in one call, in elements: 2^31 - 1,
# the largest size TensorFlow's int32-indexed kernels address (8 GiB of
# float32). `check_num_elements` refuses larger noise and sample draws.
MAX_ELEMENTS = 2**31 - 1


def check_int(value, name, minimum=None, maximum=None):
    """`value` as an `int`, or `ValueError` naming `name` and the requirement.

    Args:
        value: the argument. Python or NumPy integers pass; bools, floats
            (also integral ones such as `2.0`), strings and None do not.
        name: str. The argument's name, for the message.
        minimum, maximum: optional inclusive bounds.
    """
    if minimum == 1 and maximum is None:
        requirement = "a positive integer"
    elif minimum == 0 and maximum is None:
        requirement = "a non-negative integer"
    elif minimum is None and maximum is None:
        requirement = "an integer"
    else:
        low = "-inf" if minimum is None else minimum
        high = "inf" if maximum is None else maximum
        requirement = f"an integer in [{low}, {high}]"
    if (isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral)
            or (minimum is not None and value < minimum)
            or (maximum is not None and value > maximum)):
        raise ValueError(f"`{name}` must be {requirement}; got {value!r}.")
    return int(value)


def check_float(value, name, minimum=None, maximum=None, min_inclusive=True,
                max_inclusive=True):
    """`value` as a finite `float`, or `ValueError` naming `name`.

    Args:
        value: the argument. Python, NumPy and 0-d array reals pass; bools,
            strings, None, NaN and +-inf do not.
        name: str. The argument's name, for the message.
        minimum, maximum: optional bounds.
        min_inclusive, max_inclusive: bool. Whether each bound is allowed.
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        if not (isinstance(value, np.ndarray) and value.ndim == 0
                and np.issubdtype(value.dtype, np.number)):
            raise ValueError(
                f"`{name}` must be a real number; got {value!r} ({type(value).__name__})."
            )
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"`{name}` must be finite; got {value}.")
    _check_bounds(value, name, minimum, maximum, min_inclusive, max_inclusive)
    return value


def _check_bounds(value, name, minimum, maximum, min_inclusive, max_inclusive):
    low_ok = minimum is None or (value >= minimum if min_inclusive else value > minimum)
    high_ok = maximum is None or (value <= maximum if max_inclusive else value < maximum)
    if low_ok and high_ok:
        return
    low = "(-inf" if minimum is None else ("[" if min_inclusive else "(") + f"{minimum:g}"
    high = "inf)" if maximum is None else f"{maximum:g}" + ("]" if max_inclusive else ")")
    raise ValueError(f"`{name}` must be in {low}, {high}; got {value:g}.")


def check_choice(value, name, choices):
    """`value` if it is one of `choices`, else `ValueError` listing them."""
    if isinstance(value, str) and value in choices:
        return value
    if not isinstance(value, str) and any(value is c for c in choices):
        return value
    raise ValueError(f"`{name}` must be one of {list(choices)}; got {value!r}.")


def check_writable_directory(path, name="directory", create=True):
    """`path` if it is (or, with `create`, can be made) a writable directory.

    Raises `ValueError` when `path` is an existing file, cannot be created,
    or does not accept a new file (the check writes and deletes one). Remote
    paths (`gs://`, `s3://`, ...) are passed through unchecked.
    """
    path = os.fspath(path)
    if "://" in path:
        return path
    if os.path.exists(path) and not os.path.isdir(path):
        raise ValueError(f"`{name}` {path!r} exists and is not a directory.")
    try:
        if create:
            os.makedirs(path, exist_ok=True)
        elif not os.path.isdir(path):
            raise ValueError(f"`{name}` {path!r} does not exist.")
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write_check_"):
            pass
    except OSError as error:
        raise ValueError(f"`{name}` {path!r} is not writable: {error}") from None
    return path


def check_num_elements(shape, name, what="tensor", hint=""):
    """Raises `ValueError` if a tensor of `shape` has over `MAX_ELEMENTS` elements.

    Args:
        shape: sequence of ints (None entries, unknown sizes, are skipped).
        name: str. The argument that sets the size, for the message.
        what: str. What the tensor is ("noise", "samples").
        hint: str. What to do instead, appended to the message.
    """
    dims = [int(d) for d in shape if d is not None]
    count = math.prod(dims)
    if count > MAX_ELEMENTS:
        raise ValueError(
            f"`{name}` asks for {what} of shape {tuple(dims)}: {count:,} elements "
            f"({4 * count / 2**30:,.0f} GiB of float32), over the limit of "
            f"{MAX_ELEMENTS:,} elements a single tensor may have.{hint}"
        )


def data_array(x, name="x"):
    """Concrete data for `fit` as a numpy array of numbers, checked.

    A Python list (or nested lists) of numbers is converted to a float32
    array. Raises `ValueError` naming `name` for ragged or sparse tensors,
    ragged lists, non-numeric values (strings, objects) and arrays without
    data points (a first axis of size 0) or without values per point.
    """
    if isinstance(x, (tf.RaggedTensor, tf.SparseTensor)):
        raise ValueError(
            f"`{name}` is a {type(x).__name__}; generative models take dense data "
            "with one shape per point. Pad the points to one shape (e.g. "
            "`x.to_tensor()`), or pass a dense array."
        )
    if isinstance(x, list):
        try:
            array = np.asarray(x)
        except ValueError:
            raise ValueError(
                f"`{name}` is a ragged Python list (its points have different "
                "lengths); pass an array with one shape per point."
            ) from None
        if array.size and array.dtype.kind not in "biuf":
            raise ValueError(
                f"`{name}` must be a list of numbers; got elements of dtype "
                f"{array.dtype} (e.g. {array.flat[0]!r})."
            )
        x = array.astype(np.float32)
    array = np.asarray(x)
    if array.dtype.kind not in "biuf":
        raise ValueError(f"`{name}` must hold numbers; got dtype {array.dtype}.")
    if array.ndim and array.shape[0] == 0:
        raise ValueError(f"`{name}` is empty: it has no data points (shape {array.shape}).")
    if array.ndim < 2:
        raise ValueError(
            f"`{name}` must have a batch axis and at least one data axis; got "
            f"shape {array.shape}."
        )
    if array.size == 0:
        raise ValueError(f"`{name}` has data points without values (shape {array.shape}).")
    return array


def assert_point_shape(tensor, point_shape, step=None, what="data"):
    """Returns `tensor` after checking that its points (every axis but the
    first) have shape `point_shape` (the shape check of the data guard).

    A static mismatch raises `ValueError` at once (also while tracing a
    step); a shape known only at run time (a `tf.data` stream of
    `[None, None]` batches) is checked by a `tf.debugging.Assert` that the
    returned tensor depends on, whose message names both shapes and the step.
    """
    point_shape = tuple(int(d) for d in point_shape)
    static = tensor.shape
    if static.rank is not None:
        found = tuple(static[1:])
        if len(found) != len(point_shape) or any(
                f is not None and f != e for f, e in zip(found, point_shape)):
            where = ""
            if step is not None and tf.executing_eagerly():
                where = f" at step {int(step)}"
            shown = tuple("?" if d is None else d for d in found)
            raise ValueError(
                f"The {what} has points of shape {shown}{where}, but the model "
                f"takes points of shape {point_shape}."
            )
        if None not in found:
            return tensor
    found = tf.shape(tensor)[1:]
    ok = tf.cond(
        tf.equal(tf.size(found), len(point_shape)),
        lambda: tf.reduce_all(tf.equal(found, tf.constant(point_shape, tf.int32))),
        lambda: tf.constant(False))
    data = [f"The {what} has points of shape", found,
            f"but the model takes points of shape {list(point_shape)}"]
    if step is not None:
        data += ["at step", step]
    with tf.control_dependencies([tf.debugging.Assert(ok, data)]):
        return tf.identity(tensor)


def assert_all(tensor, checks, step=None, what="data"):
    """Returns `tensor` after checking `checks` on it (the data guard).

    Args:
        tensor: the tensor to guard.
        checks: list of `(requirement, bad)` pairs: `requirement` a str
            (e.g. "finite values"), `bad` a boolean tensor broadcastable to
            `tensor`'s shape, True where the requirement fails.
        step: optional int tensor (the training step), named in the message.
        what: str. What `tensor` is, for the message.

    In eager mode a failing check raises `ValueError`; in a graph it is a
    `tf.debugging.Assert` the returned tensor depends on (its message holds
    the requirement, the first offending value and the step). XLA does not
    run assertions, so a step compiled with `jit_compile=True` is not guarded.
    """
    if not checks:
        return tensor
    flat = tf.reshape(tensor, [-1])
    if tf.executing_eagerly():
        for requirement, bad in checks:
            bad = tf.reshape(tf.broadcast_to(bad, tf.shape(tensor)), [-1])
            if bool(tf.reduce_any(bad)):
                index = int(tf.argmax(tf.cast(bad, tf.int32)))
                where = "" if step is None else f" at step {int(step)}"
                raise ValueError(
                    f"The {what} violates its requirement of {requirement}{where}: "
                    f"found {flat[index].numpy().item()!r} ({int(tf.reduce_sum(tf.cast(bad, tf.int32)))} "
                    "offending values in this batch)."
                )
        return tensor
    # Fast path: one reduction per requirement and one `tf.cond`; the
    # offending value is looked up only when a requirement fails.
    flags = [tf.reduce_any(bad) for _, bad in checks]

    def fail():
        asserts = []
        for (requirement, bad), flag in zip(checks, flags):
            bad = tf.reshape(tf.broadcast_to(bad, tf.shape(tensor)), [-1])
            found = tf.gather(flat, tf.argmax(tf.cast(bad, tf.int32)))
            data = [f"The {what} violates its requirement of {requirement}: found", found]
            if step is not None:
                data += ["at step", step]
            asserts.append(tf.debugging.Assert(tf.logical_not(flag), data))
        with tf.control_dependencies(asserts):
            return tf.constant(False)

    ok = tf.cond(tf.reduce_any(tf.stack(flags)), fail, lambda: tf.constant(True))
    with tf.control_dependencies([ok]):
        return tf.identity(tensor)
