"""Shared plumbing of the package's generative models.

Everything here is about the model's *surface*, not its training rule (each
model's rule is its own `train_step`): the `SeedGenerator` made from the
`seed` argument and the noise drawn from it, compiling with one optimizer (and
restoring it from a `.keras` file), `sample`, validation of the data handed to
`fit`, sub-model (de)serialisation in one `get_config`/`from_config` (after
keras-hub's `Task`) and SavedModel export of a noise-to-samples serving
function. Models with a generator and a discriminator optimizer build on
`sig_keras.models.AdversarialModel`.
"""

import copy
import json
import os
import zipfile

import keras
import numpy as np
import tensorflow as tf

from sig_keras import distribute
from sig_keras.distribute import reduction
from sig_keras.utils import random as random_lib
from sig_keras.utils import validation


def _first_batch(x, argument="x"):
    """A concrete numpy batch from what the user handed to `fit` (checked by
    `validation.data_array`), or None for generators and `PyDataset`s."""
    if isinstance(x, tf.data.Dataset):
        if x.cardinality() == 0:
            raise ValueError(f"The dataset passed to `fit` as `{argument}` is empty.")
        for element in x.take(1):
            data, _, _ = keras.utils.unpack_x_y_sample_weight(element)
            return validation.data_array(data, f"the first batch of `{argument}`")
        raise ValueError(f"The dataset passed to `fit` as `{argument}` is empty.")
    if isinstance(x, keras.utils.PyDataset):
        if x.num_batches == 0:
            raise ValueError(f"The PyDataset passed to `fit` as `{argument}` is empty.")
        return None
    if isinstance(x, (np.ndarray, tf.Tensor, list, tf.RaggedTensor, tf.SparseTensor)) or (
            hasattr(x, "__array__")):
        return validation.data_array(x, argument)
    return None


def _data_spec_shape(x, argument="x"):
    if isinstance(x, tf.data.Dataset):
        spec = x.element_spec
        if isinstance(spec, (tuple, list)):
            spec = spec[0]
        if isinstance(spec, dict):
            raise ValueError(
                "Generative models take a dataset of data tensors (or (x, y) "
                f"tuples); got a dataset of dicts with keys {sorted(spec)}."
            )
        if isinstance(spec, (tf.RaggedTensorSpec, tf.SparseTensorSpec)):
            kind = "ragged" if isinstance(spec, tf.RaggedTensorSpec) else "sparse"
            raise ValueError(
                f"The dataset passed to `fit` as `{argument}` holds {kind} tensors; "
                "generative models take dense data with one shape per point. Pad "
                "the points to one shape (e.g. `dataset.map(lambda x: x.to_tensor())`)."
            )
        return tuple(spec.shape)
    return None


def _keras_file_class(path):
    """The class name of the model saved in the `.keras` file `path`."""
    try:
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json"))
        return str(config["class_name"])
    except (OSError, KeyError, TypeError, ValueError, zipfile.BadZipFile) as error:
        raise ValueError(
            f"{path} cannot be read as a .keras file ({type(error).__name__}: {error}): "
            "it is corrupt or cut short."
        ) from None


class GenerativeModel(keras.Model):
    """Base class: noise, sampling, data checks, sub-model config and export.

    Subclasses call `super().__init__(seed=seed, **kwargs)` (which makes
    `self.seed_generator`), set `self.generator` (noise -> outputs; a property
    where the network has another name) and `self.latent_dim` (from
    `_check_generator`, which reads it from the generator when not given), name their
    sub-models in `_sub_models`, add their own hyperparameters to
    `get_config`, and implement `train_step`.

    Args:
        seed: int or None. Seed of the model's `SeedGenerator`, from which
            every noise draw of training and of `sample(n)` comes.
        **kwargs: `keras.Model` arguments.
    """

    # What the model trains with, for the error raised on `compile(loss=...)`.
    _objective = "its own objective"

    # Attributes holding sub-models or layers: `get_config` serialises those
    # that are set and `from_config` deserialises them (keras-hub's `Task`).
    _sub_models = ("generator",)

    # True when a data point is drawn from `self.conditional` given the
    # generator's output (SIG, VAE); False when it is the generator's output.
    _samples_from_conditional = False

    def __init__(self, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.seed = None if seed is None else validation.check_int(seed, "seed")
        self.seed_generator = keras.random.SeedGenerator(self.seed)
        self._data_guard = True
        self._guard_point_shape = None  # set by `fit`: the shape of a data point

    # === Compile ===

    def _reject_loss(self, kwargs):
        if kwargs.get("loss") is not None:
            raise ValueError(
                f"{type(self).__name__} trains with {self._objective}; do not "
                "pass `loss` to `compile`."
            )

    def compile(self, optimizer="adam", **kwargs):
        """`keras.Model.compile` without `loss` (the model has its own)."""
        self._reject_loss(kwargs)
        super().compile(optimizer=optimizer, **kwargs)

    def compile_from_config(self, config):
        # Keras skips a custom `compile()` when loading a `.keras` file: compile
        # here and build the optimizer so its saved state is restored.
        config = keras.saving.deserialize_keras_object(config)
        self.compile(**config)
        if not self.built:
            self.build()
        self.optimizer.build(self.trainable_variables)

    # === Logs ===

    @staticmethod
    def _report(*trackers_and_shares):
        """Updates each `(Mean tracker, replica share)` with the share's global
        value (`reduction.report_value`)."""
        for tracker, share in trackers_and_shares:
            tracker.update_state(reduction.report_value(share))

    def metric_logs(self):
        """`{m.name: m.result()}` of `self.metrics`: what `train_step` returns.

        Under a multi-worker `MultiWorkerMirroredStrategy`, Keras 3 `fit`
        reduces step outputs with `strategy.reduce("MEAN", v, axis=0)`, which
        fails on scalars ("Invalid reduction dimension 0"): there each result
        is returned with shape `[1]` (reduced back to a scalar by `fit`).
        Elsewhere results are returned unchanged.
        """
        logs = {m.name: m.result() for m in self.metrics}
        strategy = tf.distribute.get_strategy()
        if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
            in_mode = getattr(strategy.extended, "_in_multi_worker_mode", None)
            if in_mode is None or in_mode():
                logs = {k: tf.reshape(v, [1]) for k, v in logs.items()}
        return logs

    # === Noise ===

    @staticmethod
    def _check_network(network, role):
        """Raises `ValueError` unless `network` is a Keras model or layer."""
        if not isinstance(network, (keras.Model, keras.layers.Layer)):
            raise ValueError(
                f"`{role}` must be a Keras model or layer; got {network!r}."
            )

    def _check_generator(self, generator, latent_dim, role="generator"):
        """The noise width: `latent_dim`, or the input width of `generator`
        (`role` names it in messages) when `latent_dim` is None.

        Raises `ValueError` when the two disagree, or when `latent_dim` is
        None and the network has no known input width (a subclassed model,
        a `Sequential` without `keras.Input`).
        """
        self._check_network(generator, role)
        inputs = getattr(generator, "inputs", None)
        width = inputs[0].shape[-1] if inputs else None
        if latent_dim is None:
            if width is None:
                raise ValueError(
                    f"The {role}'s input width is unknown (it has no "
                    "`keras.Input`), so the noise dimension cannot be read from "
                    "it; pass `latent_dim`."
                )
            return int(width)
        try:
            latent_dim = validation.check_int(latent_dim, "latent_dim", minimum=1)
        except ValueError as error:
            raise ValueError(f"{error} (the noise dimension)") from None
        if width is not None and width != latent_dim:
            raise ValueError(
                f"The {role} takes inputs of width {width}, but the "
                f"noise dimension is {latent_dim}."
            )
        return latent_dim

    def draw_noise(self, n, seed=None):
        """`[n, latent_dim]` standard Normal noise.

        `seed=None` advances the model's `SeedGenerator`; an int gives a
        stateless, reproducible draw. The numbers are `keras.random.normal`'s
        on the Philox generator, also under XLA (`utils/random.py`).
        """
        seed = self.seed_generator if seed is None else int(seed)
        return random_lib.normal((n, self.latent_dim), seed=seed)

    def draw_replica_noise(self, n):
        """This replica's slice of `n` global noise vectors.

        Every replica draws the same global noise from the mirrored
        `SeedGenerator` and keeps its contiguous slice, so that the gathered
        batch equals the single-device one whatever the replica count.
        """
        replicas = reduction.num_replicas()
        if n % replicas:
            raise ValueError(
                f"The number of generated samples per step ({n}) must be "
                f"divisible by the number of replicas ({replicas})."
            )
        return reduction.local_slice(self.draw_noise(n))

    def draw_noise_like(self, x):
        """This replica's slice of noise for the global batch of `x`.

        One noise vector per data point: the global batch has
        `x.shape[0] * num_replicas` rows. Every replica draws the global noise
        from the mirrored `SeedGenerator` and keeps its slice (see
        `draw_replica_noise`); a dynamic batch size is read with `tf.shape`.
        """
        local_n = x.shape[0]
        if local_n is not None:
            return self.draw_replica_noise(int(local_n) * reduction.num_replicas())
        global_n = tf.shape(x)[0] * reduction.num_replicas()
        return reduction.local_slice(self.draw_noise(global_n))

    def _conditional_seed(self, seed):
        if seed is None:
            return tf.cast(self.seed_generator.next(), tf.int32)
        return tf.constant([int(seed) % (2**31 - 1), 1], tf.int32)

    # === Sampling ===

    def _samples_from_noise(self, noise, seed):
        """Samples of `x` given noise and a stateless int32 `[2]` seed."""
        outputs = self.generator(noise, training=False)
        if self._samples_from_conditional:
            return self.conditional.sample(outputs, seed)
        return outputs

    def sample(self, n, seed=None):
        """Draws `n` samples of `x` from the model.

        Args:
            n: int. Number of samples. The noise `[n, latent_dim]` and the
                generator outputs must each have at most
                `sig_keras.utils.validation.MAX_ELEMENTS` (2^31 - 1) elements:
                draw more in batches.
            seed: int or None. An int gives the same samples every time (and
                after a save/load round trip); None advances the model's
                `SeedGenerator`.
        """
        n = self._check_draw_count(n, hint=" Draw the samples in batches.")
        if seed is not None:
            seed = validation.check_int(seed, "seed")
        noise = self.draw_noise(n, seed)
        return self._samples_from_noise(noise, self._conditional_seed(seed))

    def _check_draw_count(self, n, name="n", hint=""):
        """`n` as an int, or `ValueError` unless it is a positive integer whose
        noise `[n, latent_dim]` and generator outputs (when their shape is
        known) fit in `validation.MAX_ELEMENTS` elements each."""
        n = validation.check_int(n, name, minimum=1)
        validation.check_num_elements((n, self.latent_dim), name, "noise", hint)
        outputs = getattr(self.generator, "outputs", None)
        if outputs:
            validation.check_num_elements((n,) + tuple(outputs[0].shape[1:]), name,
                                          "generator outputs", hint)
        return n

    def call(self, noise, training=False):
        return self.generator(noise, training=training)

    def build(self, input_shape=None):
        if not self.generator.built:
            self.generator(tf.zeros((1, self.latent_dim)))
        self.built = True

    # === Data guard: every batch, inside the step ===

    @property
    def data_guard(self):
        """Whether every training and evaluation batch is checked in the step.

        On (the default), each step first checks its batch against
        `data_requirements` (finite values; counts, binary values or
        magnitudes for SIG and VAE conditionals; `data_range` for adversarial
        models) and stops `fit` / `evaluate` with an error naming the
        requirement, the offending value and the step, before any weight is
        updated. It also checks that the batch's points have the shape the
        model takes (read from the generator when `fit` starts), so a stream
        whose data width changes stops with both shapes named. This covers
        tensors, `tf.data` datasets, Python generators,
        `keras.utils.PyDataset` and `validation_data` alike. Set
        `model.data_guard = False` to skip it (its cost: docs/benchmarks.md).
        XLA does not run assertions: for a model compiled with
        `jit_compile=True`, `fit` runs the same checks on every element of a
        `tf.data` dataset in the input pipeline instead (the message then
        names no step), and arrays are checked whole before training; Python
        generators and `PyDataset`s are then checked on their first batch only.
        """
        return self._data_guard

    @data_guard.setter
    def data_guard(self, value):
        if not isinstance(value, (bool, np.bool_)):
            raise ValueError(f"`data_guard` must be True or False; got {value!r}.")
        self._data_guard = bool(value)
        # Steps are traced with or without the guard: trace them again.
        self.train_function = None
        self.test_function = None

    def data_requirements(self, x):
        """`[(requirement, bad)]` every batch `x` must meet; `bad` is a boolean
        tensor, True where `x` fails the requirement (in-graph)."""
        if self._samples_from_conditional:
            return self.conditional.data_requirements(x)
        x = tf.cast(x, tf.float32)
        return [("finite values", tf.logical_not(tf.math.is_finite(x)))]

    def data_batch(self, data):
        """The data `x` of what `fit` hands to a step, checked by the data guard."""
        x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        if not self._data_guard:
            return x
        what = f"{type(self).__name__} training data"
        if self._guard_point_shape is not None:
            x = validation.assert_point_shape(
                x, self._guard_point_shape, step=self.optimizer.iterations, what=what)
        return validation.assert_all(
            x, self.data_requirements(x), step=self.optimizer.iterations, what=what)

    def _point_shape(self):
        """Shape of one data point the model takes, from its generator's output."""
        out = self._output_shape()
        if self._samples_from_conditional:
            return self.conditional.event_shape_from_params(out)
        return out

    # === Data validation ===

    def check_data(self, x, name="data"):
        """Raises `ValueError` if concrete data `x` cannot be modelled."""
        if self._samples_from_conditional:
            self.conditional.check_data(x, name)
            return
        x = np.asarray(x)
        if not np.all(np.isfinite(x.astype(np.float64))):
            raise ValueError(f"{name} contains NaN or inf values.")

    def _output_shape(self):
        """Shape of one generator output (without the batch axis)."""
        out = self.generator(tf.zeros((1, self.latent_dim)), training=False)
        return tuple(out.shape[1:])

    def check_data_shape(self, event_shape, name="data"):
        """Raises `ValueError` if data points of `event_shape` do not fit."""
        if self._samples_from_conditional:
            self._check_conditional_output(event_shape, "generator", name)
            return
        out = self._output_shape()
        if tuple(event_shape) != out:
            raise ValueError(
                f"{name} points have shape {tuple(event_shape)} but the "
                f"generator produces shape {out}."
            )

    def _check_conditional_output(self, event_shape, role, name="data"):
        """Raises `ValueError` unless the network (`role`: generator, decoder)
        outputs the parameters `self.conditional` needs for `event_shape`."""
        out = self._output_shape()
        expected = self.conditional.param_shape(tuple(event_shape))
        if expected != out:
            raise ValueError(
                f"{name} points have shape {tuple(event_shape)}, so the "
                f"{type(self.conditional).__name__} needs {role} outputs of "
                f"shape {expected}; the {role} produces {out}."
            )

    @staticmethod
    def _check_network_input(network, event_shape, role, name="data"):
        """Raises `ValueError` if `network` (taking data points) has another
        input shape than `event_shape`; `role` names it in the message."""
        inputs = getattr(network, "inputs", None)
        if not inputs:
            return
        net_shape = tuple(inputs[0].shape[1:])
        if None not in net_shape and net_shape != tuple(event_shape):
            raise ValueError(
                f"{name} points have shape {tuple(event_shape)} but the "
                f"{role} takes inputs of shape {net_shape}."
            )

    def _check_fit_data(self, x, argument, name):
        """`x` after the checks `fit` runs on it before training (a Python list
        of numbers comes back as a float32 array); `argument` and `name` name
        it in messages."""
        spec_shape = _data_spec_shape(x, argument)
        if spec_shape is not None and len(spec_shape) > 1 and None not in spec_shape[1:]:
            self.check_data_shape(spec_shape[1:], name)
        batch = _first_batch(x, argument)
        if batch is not None:
            self.check_data_shape(batch.shape[1:], name)
            self.check_data(batch, name)
            if isinstance(x, list):
                return batch
        return x

    def _check_validation_data(self, data):
        """`validation_data` (an array, a dataset, or an `(x,)`, `(x, y)` or
        `(x, y, sample_weight)` tuple) after the checks of training data."""
        if isinstance(data, tuple) and data:
            x = self._check_fit_data(data[0], "validation_data", "validation_data")
            return (x,) + data[1:]
        return self._check_fit_data(data, "validation_data", "validation_data")

    def fit(self, x=None, y=None, **kwargs):
        """`keras.Model.fit`, after building the model and its optimizers and
        checking the data's shape and values.

        The data check runs first, before any training step, on `x` and on
        `validation_data`: on the whole array for arrays (a Python list of
        numbers is converted to a float32 array), on the first batch for
        `tf.data` datasets. Empty data, ragged or sparse tensors and
        non-numeric values raise `ValueError` naming the argument.

        The model is then built, in the model's strategy scope, and every
        optimizer (`sig_keras.distribute.build_optimizers`) once all of the
        model's layers have their variables: an optimizer kept as an
        attribute (a discriminator's) must exist before `fit` under a
        distribution strategy, and `FaultTolerantBackup` restores saved
        optimizer state into built optimizers. A network that only gets its
        variables on its first call on data (a subclassed VAE encoder) leaves
        the optimizers to be built at the first step.
        """
        x = self._check_fit_data(x, "x", "data")
        if kwargs.get("validation_data") is not None:
            kwargs["validation_data"] = self._check_validation_data(kwargs["validation_data"])
        # The model has no data-shaped `call`: build it from its generator, or
        # Keras' symbolic build under a strategy calls it on a data batch.
        with self.distribute_strategy.scope():
            if not self.built:
                self.build()
        if all(layer.built for layer in self._flatten_layers()):
            distribute.build_optimizers(self)
        point_shape = self._point_shape()
        if point_shape != self._guard_point_shape:
            # The steps check batches against this shape: trace them again.
            self._guard_point_shape = point_shape
            self.train_function = None
            self.test_function = None
        if isinstance(x, tf.data.Dataset):
            # A dataset brings its own order; Keras would warn that its
            # default `shuffle=True` is ignored.
            kwargs.setdefault("shuffle", False)
        if self._data_guard and getattr(self, "jit_compile", False) is True:
            x = self._guard_dataset(x, f"{type(self).__name__} training data")
            kwargs["validation_data"] = self._guard_dataset(
                kwargs.get("validation_data"), f"{type(self).__name__} validation data")
        return super().fit(x, y, **kwargs)

    def _guard_dataset(self, dataset, what):
        """`dataset` with the data guard run on every element in the input
        pipeline, for steps compiled with XLA (which drops the assertions
        inside the step). Other inputs are returned as they are."""
        if not isinstance(dataset, tf.data.Dataset):
            return dataset

        def check(*element):
            element = element[0] if len(element) == 1 else element
            data, y, sample_weight = keras.utils.unpack_x_y_sample_weight(element)
            data = validation.assert_point_shape(data, self._guard_point_shape, what=what)
            data = validation.assert_all(data, self.data_requirements(data), what=what)
            return keras.utils.pack_x_y_sample_weight(data, y, sample_weight)

        return dataset.map(check)

    # === Config ===

    def get_config(self):
        """The sub-models (serialised), `latent_dim` and `seed`; subclasses add
        their hyperparameters."""
        config = super().get_config()
        for name in self._sub_models:
            value = getattr(self, name, None)
            if value is not None:
                config[name] = keras.saving.serialize_keras_object(value)
        config.update({"latent_dim": self.latent_dim, "seed": self.seed})
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for name in cls._sub_models:
            if isinstance(config.get(name), dict):
                # Deserialising consumes the dict: leave the caller's intact.
                config[name] = keras.saving.deserialize_keras_object(
                    copy.deepcopy(config[name])
                )
        return cls(**config)

    # === Presets (sig_keras.presets) ===

    def save_to_preset(self, directory, metadata=None):
        """Writes the model as a preset directory: `config.json`,
        `model.weights.h5` and `metadata.json` (`sig_keras.presets`)."""
        from sig_keras.presets import preset_utils

        return preset_utils.save_to_preset(self, directory, metadata)

    @classmethod
    def from_preset(cls, name_or_directory):
        """The model of a built-in preset name or a preset directory, as its
        registered class; raises ValueError when that is not a `cls`."""
        from sig_keras.presets import preset_utils

        return preset_utils.load_generative(cls, name_or_directory)

    # === Export ===

    def save(self, filepath, overwrite=True, **kwargs):
        """`keras.Model.save`, written to a temporary file and renamed into place.

        Keras opens the target before serialising, so a save that fails (an
        unserialisable object, a full disk, a kill) would leave an existing
        good file empty; here the old file stays until the new one is
        complete (`os.replace` is atomic on one file system).
        """
        if not isinstance(filepath, (str, os.PathLike)):
            return super().save(filepath, overwrite=overwrite, **kwargs)
        filepath = os.fspath(filepath)
        if os.path.exists(filepath) and not overwrite:
            raise ValueError(f"{filepath} exists and `overwrite=False`.")
        directory, name = os.path.split(os.path.abspath(filepath))
        stem, ext = os.path.splitext(name)
        tmp = os.path.join(directory, f".{stem}.tmp-{os.getpid()}{ext}")
        try:
            super().save(tmp, overwrite=True, **kwargs)
            os.replace(tmp, filepath)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)

    def load_weights(self, filepath, skip_mismatch=False, **kwargs):
        """`keras.Model.load_weights`, with errors naming the file and the classes.

        A `.keras` file of another model class raises `ValueError` naming the
        file, the class it holds and this model's class, before any weight is
        assigned; a file that cannot be read or whose weights do not fit
        raises `ValueError` naming the file and this model's class.
        """
        path = os.fspath(filepath) if isinstance(filepath, (str, os.PathLike)) else None
        expected = type(self).__name__
        if path is not None and path.endswith(".keras") and os.path.isfile(path):
            found = _keras_file_class(path)
            if found != expected:
                raise ValueError(
                    f"{path} holds a {found} model, but this model is a {expected}: "
                    f"load it with `keras.saving.load_model({path!r})`."
                )
        try:
            return super().load_weights(filepath, skip_mismatch=skip_mismatch, **kwargs)
        except (OSError, KeyError, ValueError) as error:
            raise ValueError(
                f"The weights in {path or filepath!r} cannot be loaded into this "
                f"{expected}: {error}"
            ) from None

    def export(self, filepath, format="tf_saved_model", verbose=True, **kwargs):
        """Writes a SavedModel whose endpoints turn noise into samples.

        Endpoints (loadable with `tf.saved_model.load`, no sig_keras needed):
        - `serve(noise, seed)`: `noise` float32 `[n, latent_dim]`, `seed` int32
          `[2]` (stateless); returns samples of `x`.
        - `generate(noise)`: the generator output (for SIG, the mixing
          parameters psi).
        """
        if format != "tf_saved_model":
            raise ValueError(
                f"Unknown export format {format!r}; valid: ['tf_saved_model']."
            )
        if kwargs:
            raise ValueError(f"Unknown export options: {sorted(kwargs)}.")
        if not self.built:
            self.build()
        archive = keras.export.ExportArchive()
        archive.track(self)
        noise_spec = tf.TensorSpec([None, self.latent_dim], tf.float32, name="noise")
        seed_spec = tf.TensorSpec([2], tf.int32, name="seed")
        archive.add_endpoint(
            "serve",
            lambda noise, seed: self._samples_from_noise(noise, seed),
            input_signature=[noise_spec, seed_spec],
        )
        archive.add_endpoint(
            "generate",
            lambda noise: self.generator(noise, training=False),
            input_signature=[noise_spec],
        )
        archive.write_out(filepath, verbose=verbose)
