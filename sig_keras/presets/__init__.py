"""Trained models that ship with sig_keras, and the preset format.

- `list_presets()`: `{name: metadata}` of the built-in presets.
- `load(name_or_directory)`: any preset's Keras model (the digit classifier
  `mnist_digit_classifier`, or a generative model).
- `sig_keras.models.GenerativeModel.from_preset(name_or_directory)` (and
  `SIG.from_preset`, `GAN.from_preset`, ...): a generative preset as its
  registered class, checked against the class asked for.
- `model.save_to_preset(directory, metadata=...)`: writes one.
- `save_trained(model, directory, data=..., command=..., ...)`: what the
  example scripts call (`--save-preset DIR`): measures the metrics on the
  model's samples (`evaluation.measure_with_spread`) and saves the preset
  with them, the data and the command.
- `remeasure(directory)`: measures a saved generative preset's metrics again
  (same sample count and seed) with the current `evaluation` code and
  rewrites its `metadata.json`; the weights are not touched.

Example:
>>> from sig_keras.models import GenerativeModel
>>> model = GenerativeModel.from_preset("sig_grid25")
>>> x = model.sample(50_000, seed=0)
"""

from sig_keras.presets import evaluation
from sig_keras.presets import preset_utils
from sig_keras.presets.preset_utils import builtin_names
from sig_keras.presets.preset_utils import command_line
from sig_keras.presets.preset_utils import list_presets
from sig_keras.presets.preset_utils import load
from sig_keras.presets.preset_utils import load_config
from sig_keras.presets.preset_utils import load_metadata
from sig_keras.presets.preset_utils import resolve
from sig_keras.presets.preset_utils import save_to_preset


def save_trained(model, directory, data, command, num_samples=50_000, seed=0,
                 training=None, classifier=None, **extra):
    """Measures `model`'s metrics and writes it as a preset with them.

    Args:
        model: a trained `GenerativeModel`.
        directory: str. The preset directory to write.
        data: dict. The data spec (`evaluation` module doc), e.g.
            `{"toy": "grid", "kwargs": {"std": 0.1}}`.
        command: str. The exact command that trained the model
            (`command_line(script, argv)`).
        num_samples: int. Samples per metric measurement. Defaults to 50,000.
        seed: int. The stored sampling seed. Defaults to 0.
        training: dict or None. Training settings to record (steps, ...).
        classifier: the digit classifier for image data (default: the
            `mnist_digit_classifier` preset).
        **extra: more metadata keys.
    Returns:
        The metadata written.
    """
    metadata = {"command": command, "data": data}
    if training:
        metadata["training"] = training
    metadata.update(extra)
    metadata["metrics"] = evaluation.measure_with_spread(
        model, data, num_samples, seed, classifier=classifier)
    save_to_preset(model, directory, metadata)
    return load_metadata(directory)


def remeasure(directory):
    """Re-measures the `metrics` block of the generative preset at `directory`
    (its stored sample count and seed, the current spread seeds) and rewrites
    `metadata.json` in place. Returns the new metadata."""
    import os

    from sig_keras import experiment
    from sig_keras.models import GenerativeModel

    directory = resolve(directory)
    metadata = load_metadata(directory)
    stored = metadata.get("metrics") or {}
    model = GenerativeModel.from_preset(directory)
    metadata["metrics"] = evaluation.measure_with_spread(
        model, metadata["data"], stored.get("num_samples", 50_000), stored.get("seed", 0))
    experiment.write_json(os.path.join(directory, preset_utils.METADATA_FILE), metadata,
                          indent=2)
    return metadata
