"""Base class of the feature-space metrics (FID, KID, precision/recall).

Feature extraction, input checks, the real/generated update protocol and
reference statistics shared by `FrechetDistance`, `KernelDistance` and
`PrecisionRecall`; each subclass keeps its own state.

Reference statistics (as clean-fid's precomputed statistics): the real data's
statistics are computed once, written with `metric.save_reference(path)` (a
`.npz` file) and read back with `reference_stats=path` in any later metric,
so evaluating many checkpoints does not recompute the real features. The
file holds `mu`, `sigma` and `num_samples` (FID; the keys clean-fid uses) or
`features` (KID, precision/recall; FID reads those too).

Distribution strategies: the metrics are meant to be updated outside replica
contexts (or on outputs all-gathered to one replica); they are not tested
under a strategy, and the growing feature buffers cannot be updated from
several replicas.
"""

import os

import keras
import numpy as np
import tensorflow as tf

from sig_keras.metrics import feature_extractors
from sig_keras.utils import validation

# Valid string values of `feature_extractor`.
_EXTRACTOR_NAMES = ("inception_v3", "identity")


def load_reference_statistics(reference):
    """A reference (path to a `.npz` file, or dict of arrays) -> dict of arrays."""
    if isinstance(reference, (str, os.PathLike)):
        if not os.path.exists(reference):
            raise ValueError(f"Reference statistics file {reference!r} does not exist.")
        with np.load(reference) as data:
            reference = {key: data[key] for key in data.files}
    if not isinstance(reference, dict):
        raise ValueError(
            "`reference_stats` must be a path to a .npz file or a dict of arrays; "
            f"got {type(reference).__name__}."
        )
    return {key: np.asarray(value) for key, value in reference.items()}


def save_reference_statistics(path, **arrays):
    """Writes arrays to a `.npz` file (atomically: temporary file, then rename)."""
    path = os.fspath(path)
    if not path.endswith(".npz"):
        path += ".npz"
    tmp = path + ".tmp.npz"
    np.savez(tmp, **arrays)
    os.replace(tmp, path)
    return path


def check_finite(features, role):
    """`ValueError` (eager) or a failing assertion (graph) on NaN/inf features."""
    if tf.executing_eagerly():
        if not bool(tf.reduce_all(tf.math.is_finite(features))):
            raise ValueError(
                f"The {role} features contain NaN or inf (check the images and "
                "the feature extractor)."
            )
        return features
    finite = tf.reduce_all(tf.math.is_finite(features))
    message = f"The {role} features contain NaN or inf."
    with tf.control_dependencies([tf.debugging.Assert(finite, [message])]):
        return tf.identity(features)


class FeatureMetric(keras.metrics.Metric):
    """Metric on features of real and generated samples.

    `update_state(real, generated)` runs the feature extractor on either batch
    (either may be None, so real and generated data can be streamed
    separately) and accumulates; `update_state_from_features(real_features,
    generated_features)` takes precomputed `[n, d]` features.

    Bad input raises `ValueError`: features of another width than the other
    set's or than `num_features`, a feature extractor returning anything but
    rank 2, non-finite features (in a `tf.function` the finiteness check is a
    graph assertion: `InvalidArgumentError` when it runs), `sample_weight`,
    and real data given to a metric that holds reference statistics.

    Args:
        feature_extractor: None or "inception_v3" (InceptionV3 pool features,
            built, and its weights downloaded, at the first update),
            "identity" (inputs are features already), a Keras model or a
            callable mapping images to `[n, d]`.
        num_features: int or None. Feature width `d`; inferred from the
            extractor (its `num_features` attribute or Keras `output_shape`)
            when None.
        reference_stats: None, a `.npz` path or a dict written by
            `save_reference`: statistics of the real data, used instead of
            real updates.
        input_range: pair. Pixel range for the InceptionV3 extractor. Defaults
            to (-1, 1).
    """

    def __init__(self, feature_extractor=None, num_features=None, reference_stats=None,
                 input_range=(-1.0, 1.0), **kwargs):
        super().__init__(**kwargs)
        self.input_range = tuple(float(v) for v in input_range)
        # === Feature extractor ===
        if isinstance(feature_extractor, str):
            if feature_extractor not in _EXTRACTOR_NAMES:
                raise ValueError(
                    f"Unknown feature extractor {feature_extractor!r}; valid names: "
                    f"{list(_EXTRACTOR_NAMES)}, or pass a Keras model or callable."
                )
        elif feature_extractor is not None and not callable(feature_extractor):
            raise ValueError(
                "`feature_extractor` must be None, a name, a Keras model or a "
                f"callable; got {feature_extractor!r}."
            )
        self.feature_extractor = (
            "inception_v3" if feature_extractor is None else feature_extractor)
        # Kept in a list so that the metric does not track the extractor's
        # weights as its own state.
        self._extractor = [None]
        if num_features is None:
            num_features = self._infer_num_features()
        if num_features is None or int(num_features) < 1:
            raise ValueError(
                "Cannot infer the feature width from the feature extractor "
                f"{self.feature_extractor!r}: pass `num_features` (got {num_features})."
            )
        self.num_features = int(num_features)
        # === Reference statistics ===
        self.reference_stats = reference_stats
        self._reference = None
        if reference_stats is not None:
            self._reference = self._load_reference(load_reference_statistics(reference_stats))

    def _infer_num_features(self):
        extractor = self.feature_extractor
        if extractor == "inception_v3":
            return feature_extractors.INCEPTION_FEATURES
        if isinstance(extractor, str):
            return None
        width = getattr(extractor, "num_features", None)
        if width is None and isinstance(extractor, keras.Model):
            try:
                width = extractor.output_shape[-1]
            except (AttributeError, ValueError):
                width = None
        return width

    # === Features ===

    @property
    def extractor(self):
        """The feature callable (InceptionV3 is built at the first use)."""
        if self._extractor[0] is None:
            spec = self.feature_extractor
            if spec == "inception_v3":
                self._extractor[0] = feature_extractors.inception_v3_features(self.input_range)
            elif spec == "identity":
                self._extractor[0] = lambda x: x
            else:
                self._extractor[0] = spec
        return self._extractor[0]

    def extract_features(self, images, role="generated"):
        """Features `[n, num_features]` (float32) of a batch of images."""
        if isinstance(self.extractor, keras.Model):
            features = self.extractor(images, training=False)
        else:
            features = self.extractor(images)
        return self.check_features(features, role, source="The feature extractor returned")

    def check_features(self, features, role, source="Got"):
        """Checks rank, width and finiteness; returns float32 features."""
        features = tf.convert_to_tensor(features)
        if features.shape.rank != 2:
            raise ValueError(
                f"{source} {role} features of shape {features.shape}; features must "
                "have rank 2, [n, d] (flatten them, or pool spatial feature maps)."
            )
        width = features.shape[-1]
        if width is not None and width != self.num_features:
            raise ValueError(
                f"{source} {role} features of width {width}, but the metric expects "
                f"num_features={self.num_features}."
            )
        return check_finite(tf.cast(features, tf.float32), role)

    # === Updates ===

    def update_state(self, real=None, generated=None, sample_weight=None):
        """Extracts features of `real` and/or `generated` images and accumulates."""
        if sample_weight is not None:
            raise ValueError(f"{type(self).__name__} does not take `sample_weight`.")
        if real is not None and self._reference is not None:
            raise ValueError(
                f"This {type(self).__name__} uses reference statistics of the real "
                "data; pass real=None (only generated samples)."
            )
        real_features = None if real is None else self.extract_features(real, "real")
        generated_features = (
            None if generated is None else self.extract_features(generated, "generated"))
        self.update_state_from_features(real_features, generated_features)

    def update_state_from_features(self, real_features=None, generated_features=None):
        """Accumulates precomputed features `[n, num_features]` (either may be None)."""
        if real_features is not None and self._reference is not None:
            raise ValueError(
                f"This {type(self).__name__} uses reference statistics of the real "
                "data; pass real_features=None."
            )
        if real_features is not None and generated_features is not None:
            real_width = tf.convert_to_tensor(real_features).shape[-1]
            gen_width = tf.convert_to_tensor(generated_features).shape[-1]
            if real_width is not None and gen_width is not None and real_width != gen_width:
                raise ValueError(
                    f"Real features have width {real_width} but generated features "
                    f"have width {gen_width}; both must come from the same extractor."
                )
        if real_features is not None:
            self._accumulate(self.check_features(real_features, "real"), real=True)
        if generated_features is not None:
            self._accumulate(self.check_features(generated_features, "generated"), real=False)

    def _accumulate(self, features, real):
        raise NotImplementedError

    # === Reference statistics ===

    def _load_reference(self, arrays):
        """Validated reference arrays -> what the subclass keeps (constants)."""
        raise NotImplementedError

    def _reference_arrays(self):
        """The real data's statistics as a dict of numpy arrays."""
        raise NotImplementedError

    def save_reference(self, path):
        """Writes the real data's statistics to `path` (`.npz`); returns the path.

        Update the metric with real data only (`update_state(real=images)`),
        then save; pass the path as `reference_stats=` to later metrics.
        """
        return save_reference_statistics(path, **self._reference_arrays())

    def _reference_features(self, arrays):
        if "features" not in arrays:
            raise ValueError(
                f"{type(self).__name__} needs reference features (key 'features'); "
                f"the reference holds {sorted(arrays)}. Save it from a KernelDistance "
                "or PrecisionRecall metric."
            )
        features = np.asarray(arrays["features"], np.float32)
        if features.ndim != 2 or features.shape[1] != self.num_features:
            raise ValueError(
                f"Reference features have shape {features.shape}; expected "
                f"[n, {self.num_features}]."
            )
        if not np.all(np.isfinite(features)):
            raise ValueError("The reference features contain NaN or inf.")
        return features

    # === Config ===

    def get_config(self):
        extractor = self.feature_extractor
        if isinstance(extractor, keras.Model):
            extractor = keras.saving.serialize_keras_object(extractor)
        elif not isinstance(extractor, str):
            raise NotImplementedError(
                f"A {type(self).__name__} with a feature extractor that is not a "
                "Keras model is not serializable; rebuild it with the extractor."
            )
        reference = self.reference_stats
        if reference is not None and not isinstance(reference, (str, os.PathLike)):
            raise NotImplementedError(
                f"A {type(self).__name__} with in-memory reference statistics is not "
                "serializable; save them with `save_reference` and pass the path."
            )
        config = super().get_config()
        config.update({
            "feature_extractor": extractor,
            "num_features": self.num_features,
            "reference_stats": None if reference is None else os.fspath(reference),
            "input_range": list(self.input_range),
        })
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if isinstance(config.get("feature_extractor"), dict):
            config["feature_extractor"] = keras.saving.deserialize_keras_object(
                config["feature_extractor"])
        return cls(**config)


class StoredFeatureMetric(FeatureMetric):
    """A `FeatureMetric` that keeps every feature (KID, precision/recall).

    Holds one `FeatureBuffer` per set; reference statistics are the real
    features themselves (`{"features": [n, d]}`), and `reset_state` keeps
    them. Subclasses implement `result()` from `real_features` and
    `generated_features`.

    Args:
        capacity: int or None. Samples per set to allocate room for up front
            (see `FeatureBuffer`). Defaults to None.
        Others as `FeatureMetric`.
    """

    def __init__(self, capacity=None, **kwargs):
        try:
            self.capacity = None if capacity is None else validation.check_int(
                capacity, "capacity", minimum=1)
        except ValueError:
            raise ValueError(
                f"`capacity` must be a positive integer or None; got {capacity!r}.") from None
        super().__init__(**kwargs)
        # === State ===
        self.real_features = FeatureBuffer(self.num_features, "real", self.capacity)
        self.generated_features = FeatureBuffer(self.num_features, "generated",
                                                self.capacity)
        if self._reference is not None:
            self.real_features.set(self._reference["features"])

    def _accumulate(self, features, real):
        (self.real_features if real else self.generated_features).append(features)

    def reset_state(self):
        if self._reference is None:
            self.real_features.reset()
        self.generated_features.reset()

    # === Reference statistics ===

    def _reference_arrays(self):
        return {"features": self.real_features.values().numpy()}

    def _load_reference(self, arrays):
        return {"features": self._reference_features(arrays)}

    # === Config ===

    def get_config(self):
        config = super().get_config()
        config["capacity"] = self.capacity
        return config


class FeatureBuffer:
    """Growing `[n, d]` float32 buffer in a dynamic-shape `tf.Variable`.

    Holds every feature appended (KID and precision/recall need them all):
    a `tf.Variable` of shape `[None, d]` plus a row count. Works eagerly and
    inside `tf.function`.

    Memory: give `capacity` (the rows you will append) and the buffer is
    allocated once, `capacity * d` floats, and written in place. Without it
    (or past it) the capacity doubles when full (amortised O(1) copies per
    row), and each growth allocates larger blocks than any freed before: on
    x86 TensorFlow's default oneDNN CPU allocator keeps freed blocks in its
    pool (they are not returned to the system, and a larger request cannot
    reuse them), so the process keeps several times the final capacity
    resident. `reset()` keeps the allocation (only the count goes to 0), so
    a refilled buffer does not grow again.

    Args:
        num_features: int. Width `d`.
        name: str. Prefix of the variables' names.
        capacity: int or None. Rows allocated up front. Defaults to None (0).
    """

    def __init__(self, num_features, name, capacity=None):
        self.num_features = int(num_features)
        self.capacity = None if capacity is None else int(capacity)
        if self.capacity is not None and self.capacity < 0:
            raise ValueError(f"`capacity` must be None or >= 0; got {capacity}.")
        self.data = tf.Variable(
            tf.zeros([self.capacity or 0, self.num_features], tf.float32), trainable=False,
            shape=tf.TensorShape([None, self.num_features]), name=f"{name}_buffer")
        self.count = tf.Variable(0, dtype=tf.int32, trainable=False, name=f"{name}_count")

    def append(self, features):
        """Appends `[n, d]` rows (cast to float32), doubling the capacity if full."""
        features = tf.cast(features, tf.float32)
        start = tf.identity(self.count)
        end = start + tf.shape(features)[0]
        capacity = tf.shape(self.data)[0]

        def grow():
            new_capacity = tf.maximum(end, 2 * capacity)
            self.data.assign(tf.concat(
                [self.data, tf.zeros([new_capacity - capacity, self.num_features],
                                     tf.float32)], 0))
            return tf.constant(True)

        grown = tf.cond(end > capacity, grow, lambda: tf.constant(False))
        with tf.control_dependencies([grown]):
            # In place; a strided-slice assign (`data[start:end].assign`)
            # copies the whole buffer (copy-on-write) from its second call on.
            self.data.scatter_update(tf.IndexedSlices(features, tf.range(start, end)))
        self.count.assign(end)

    def values(self):
        """The `[count, d]` rows written so far."""
        return self.data[: self.count]

    def set(self, features):
        features = tf.convert_to_tensor(features, tf.float32)
        self.data.assign(features)
        self.count.assign(tf.shape(features)[0])

    def reset(self):
        """Empties the buffer (count 0), keeping its allocation."""
        self.count.assign(0)
