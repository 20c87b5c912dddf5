"""Presets: a trained model in a directory, in the keras-hub layout.

A preset directory holds:

- `config.json`: the serialized model (`keras.saving.serialize_keras_object`)
  without its compile state;
- `model.weights.h5`: the model's weights (no optimizer state);
- `metadata.json`: the sig_keras, keras and tensorflow versions, the
  parameter count, the date, and what the caller adds: the command that
  trained it, the data, the metrics measured on its samples.

Built-in presets live in `sig_keras/presets/builtin/<name>/` (package data);
a name or a directory path is accepted wherever a preset is asked for.
"""

import copy
import datetime
import json
import os
import shlex
import shutil
import sys

import keras

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.weights.h5"
METADATA_FILE = "metadata.json"
PRESET_FILES = (CONFIG_FILE, WEIGHTS_FILE, METADATA_FILE)
BUILTIN_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "builtin")


# === Names and directories ===


def builtin_names():
    """Sorted names of the built-in presets."""
    if not os.path.isdir(BUILTIN_DIR):
        return []
    return sorted(name for name in os.listdir(BUILTIN_DIR)
                  if os.path.isfile(os.path.join(BUILTIN_DIR, name, METADATA_FILE)))


def resolve(name_or_directory):
    """The directory of a built-in preset name or of a preset path.

    Raises ValueError naming the problem (and the built-in names) for an
    unknown name, a missing directory, or a directory without every preset
    file.
    """
    if not isinstance(name_or_directory, (str, os.PathLike)):
        raise ValueError(
            f"A preset is a built-in name or a directory; got {name_or_directory!r}."
        )
    text = os.fspath(name_or_directory)
    builtin = os.path.join(BUILTIN_DIR, text)
    if text in builtin_names():
        directory = builtin
    elif os.path.isdir(text):
        directory = text
    elif os.sep in text or text.startswith("."):
        raise ValueError(f"Preset directory {text!r} does not exist.")
    else:
        raise ValueError(
            f"Unknown preset {text!r}; valid names: {', '.join(builtin_names())} "
            "(or a preset directory)."
        )
    missing = [f for f in PRESET_FILES if not os.path.isfile(os.path.join(directory, f))]
    if missing:
        raise ValueError(
            f"Preset directory {directory!r} is incomplete: missing {', '.join(missing)} "
            f"(a preset holds {', '.join(PRESET_FILES)})."
        )
    return directory


def _read_json(directory, filename):
    path = os.path.join(directory, filename)
    try:
        with open(path) as f:
            value = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"Preset file {path} is unreadable or corrupt: {e}") from None
    if not isinstance(value, dict):
        raise ValueError(f"Preset file {path} is corrupt: expected a JSON object.")
    return value


def load_metadata(name_or_directory):
    """The `metadata.json` dict of a preset."""
    return _read_json(resolve(name_or_directory), METADATA_FILE)


def load_config(name_or_directory):
    """The `config.json` dict of a preset."""
    return _read_json(resolve(name_or_directory), CONFIG_FILE)


def list_presets():
    """`{name: metadata}` of every built-in preset, sorted by name."""
    return {name: load_metadata(name) for name in builtin_names()}


# === Saving ===


def directory_error(directory):
    """Why presets cannot be written under `directory` (created if missing),
    or None when they can."""
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as e:
        return f"cannot create directory {directory!r}: {e.strerror or e}"
    if not os.access(directory, os.W_OK | os.X_OK):
        return f"directory {directory!r} is not writable"
    return None


def command_line(script, argv):
    """`python <script> <argv>` as one shell-quoted string: the command that a
    preset's metadata records. `script` is the path of the script relative to
    the repository (e.g. `examples/count_data.py`)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    return shlex.join(["python", script, *map(str, argv)])


def versions():
    import tensorflow as tf

    import sig_keras

    return {"sig_keras": sig_keras.__version__, "keras": keras.__version__,
            "tensorflow": tf.__version__}


def _strip_compile(config):
    config = copy.deepcopy(config)
    config.pop("compile_config", None)
    return config


def _fresh_copy(model):
    """A model deserialized from `model`'s config, holding its weights, never
    compiled: its `.weights.h5` has no optimizer state."""
    config = _strip_compile(keras.saving.serialize_keras_object(model))
    clone = keras.saving.deserialize_keras_object(copy.deepcopy(config))
    if not clone.built:
        clone.build()
    clone.set_weights(model.get_weights())
    return clone, config


def save_to_preset(model, directory, metadata=None):
    """Writes `model` as a preset directory (see the module doc).

    `metadata` (a JSON-serialisable dict) is merged over the generated keys
    (`versions`, `class_name`, `parameter_count`, `date`). The directory is
    written beside its final place and renamed in, so an interrupted save
    leaves no partial preset. Returns the directory.
    """
    if metadata is not None and not isinstance(metadata, dict):
        raise ValueError(f"`metadata` must be a dict or None; got {type(metadata).__name__}.")
    if not getattr(model, "built", False):
        model.build()
    directory = os.path.abspath(os.fspath(directory))
    parent = os.path.dirname(directory)
    os.makedirs(parent, exist_ok=True)
    clone, config = _fresh_copy(model)
    info = {
        "class_name": type(model).__name__,
        "versions": versions(),
        "parameter_count": int(model.count_params()),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    info.update(copy.deepcopy(metadata or {}))
    json.dumps(info)  # fails here, before any file is written, if not serialisable
    tmp = os.path.join(parent, f".{os.path.basename(directory)}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    try:
        with open(os.path.join(tmp, CONFIG_FILE), "w") as f:
            json.dump(config, f, indent=1)
        clone.save_weights(os.path.join(tmp, WEIGHTS_FILE))
        with open(os.path.join(tmp, METADATA_FILE), "w") as f:
            json.dump(info, f, indent=2)
        if os.path.isdir(directory):
            shutil.rmtree(directory)
        os.replace(tmp, directory)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return directory


# === Loading ===


def _deserialize(directory):
    config = _strip_compile(_read_json(directory, CONFIG_FILE))
    try:
        model = keras.saving.deserialize_keras_object(config)
    except Exception as e:  # a config Keras cannot rebuild: name the file
        raise ValueError(
            f"Preset file {os.path.join(directory, CONFIG_FILE)} does not describe a "
            f"model sig_keras can build: {type(e).__name__}: {e}"
        ) from None
    if not model.built:
        model.build()
    path = os.path.join(directory, WEIGHTS_FILE)
    try:
        model.load_weights(path)
    except Exception as e:  # h5py / Keras raise many types for a bad file
        raise ValueError(
            f"Preset file {path} is corrupt or does not match {CONFIG_FILE}: "
            f"{type(e).__name__}: {e}"
        ) from None
    return model


def load_generative(cls, name_or_directory):
    """`cls.from_preset`: the model of a preset, checked to be a `cls`."""
    directory = resolve(name_or_directory)
    config = _read_json(directory, CONFIG_FILE)
    held = config.get("class_name", "?")
    target = keras.saving.get_registered_object(config.get("registered_name") or "")
    if target is None or not (isinstance(target, type) and issubclass(target, cls)):
        raise ValueError(
            f"Preset {os.fspath(name_or_directory)!r} holds a {held}, not a "
            f"{cls.__name__}: load it with {held}.from_preset(...) or "
            "GenerativeModel.from_preset(...)."
        )
    return _deserialize(directory)


def load(name_or_directory):
    """The Keras model of any preset (a generative model or, e.g., the digit
    classifier), built and holding its weights."""
    return _deserialize(resolve(name_or_directory))
