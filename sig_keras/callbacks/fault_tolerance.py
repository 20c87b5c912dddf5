"""Fault tolerance: complete, atomic backups and a stop on non-finite losses.

`keras.callbacks.BackupAndRestore` (Keras 3.15) saves `model.save_weights`,
which holds the model's weights and every optimizer kept as an attribute
(`optimizer`, `d_optimizer`, ...), but:

- not the `SeedGenerator` states, so a resumed run draws different noise;
- it writes the weights file and then a JSON file in place: a kill while
  writing leaves a torn checkpoint;
- on restore it only uses the epoch, so with an integer `save_freq` a run
  killed mid-epoch repeats the epoch's first batches on top of mid-epoch
  weights;
- it saves whatever state the model is in, NaN weights included, and deletes
  its checkpoint when `fit` returns, also after a run stopped for a NaN loss.

`FaultTolerantBackup` fixes these. `TerminateOnNonFinite` stops the run with a
message naming the value, epoch and batch.
"""

import os
import shutil
import sys
import time

import h5py
import keras
import numpy as np

from sig_keras import distribute
from sig_keras.utils import validation

_EXTRA_GROUP = "sig_keras_fault_tolerance"


def seed_generators(model):
    """Every `keras.random.SeedGenerator` tracked by `model` or its layers."""
    found = []
    seen = set()
    for layer in model._flatten_layers(include_self=True, recursive=True):
        for sg in getattr(layer, "_seed_generators", []):
            if id(sg) not in seen:
                seen.add(id(sg))
                found.append(sg)
    return found


def _to_numpy(value):
    return np.asarray(keras.ops.convert_to_numpy(value))


def _non_finite_logs(logs):
    """`[(name, value)]` of the logs that are not all finite."""
    bad = []
    for name, value in (logs or {}).items():
        try:
            array = _to_numpy(value).astype(np.float64)
        except (TypeError, ValueError):
            continue
        if not np.all(np.isfinite(array)):
            bad.append((name, array.tolist() if array.ndim else float(array)))
    return bad


def _fsync(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@keras.saving.register_keras_serializable(package="sig_keras")
class FaultTolerantBackup(keras.callbacks.BackupAndRestore):
    """`BackupAndRestore` that resumes a run exactly, written atomically.

    A checkpoint is one file, `backup_dir/latest.weights.h5`, holding the
    model's weights, every optimizer's state (the second optimizer of the
    GAN models included), every `SeedGenerator` state and the position
    (epoch, batches done in it). It is written to a temporary file, synced
    and moved into place with `os.replace`, so a kill at any moment leaves the
    previous or the new checkpoint, never a torn one.

    On restart with the same command, `fit` resumes at the saved position:
    with an integer `save_freq` mid-epoch, the batches already trained in the
    interrupted epoch are read from the data and skipped, not trained again.
    Resumed weights equal those of an uninterrupted run when the data order
    depends only on the epoch (a `tf.data` pipeline without unseeded
    shuffling, or arrays with `shuffle=False`) and `enable_determinism` is on.

    A checkpoint that cannot be restored (a corrupt or cut-short file, one
    written by another callback, or one of another model class, whose class
    the checkpoint records) raises `ValueError` at the start of `fit`, before
    the first step, naming the file, the model class it holds and the one
    being trained, and the directory to delete to start fresh. Nothing is
    deleted.

    The checkpoint also records the training time so far (`fit`'s wall time
    up to the save, over every process of the run); after a restore,
    `restored_seconds` holds it (0 for a fresh run), so a resumed run can
    report the time of the whole run: `restored_seconds` plus its own.

    A state is saved only if the step's logs and all variables are finite;
    after a non-finite value, nothing more is saved and the last good
    checkpoint is kept when `fit` returns (whatever `delete_checkpoint`).

    Under a multi-worker strategy every worker keeps its own copy in
    `backup_dir/worker-<index>` (the workers' states are identical), so no
    shared file system is needed.

    Args:
        backup_dir: str. Directory of the checkpoint, used by nothing else.
        save_freq: `"epoch"` or int. Save at each epoch end, or every
            `save_freq` batches (and at each epoch end). Defaults to `"epoch"`.
        delete_checkpoint: bool. Delete the checkpoint when `fit` completes
            normally. Defaults to True.

    Example:
    >>> backup = FaultTolerantBackup("/tmp/run1/backup", save_freq=100)
    >>> model.fit(dataset, epochs=20, callbacks=[backup, TerminateOnNonFinite()])
    """

    def __init__(self, backup_dir, save_freq="epoch", delete_checkpoint=True):
        if save_freq != "epoch":
            try:
                save_freq = validation.check_int(save_freq, "save_freq", minimum=1)
            except ValueError:
                raise ValueError(
                    "`save_freq` must be 'epoch' or a positive number of batches; "
                    f"got {save_freq!r}."
                ) from None
        validation.check_writable_directory(backup_dir, "backup_dir")
        super().__init__(
            backup_dir,
            save_freq=save_freq,
            double_checkpoint=False,
            delete_checkpoint=delete_checkpoint,
        )
        self._dir = backup_dir
        self._epoch = 0
        self._batches_done = 0
        self._skip = 0
        self._skip_epoch = None
        self._original_train_function = None
        self.non_finite = None
        self.restored_seconds = 0.0
        self._started = None

    @property
    def checkpoint_path(self):
        """Path of the checkpoint file (per worker under multi-worker)."""
        return os.path.join(self._dir, "latest.weights.h5")

    # === Restore ===

    def on_train_begin(self, logs=None):
        strategy = self.model.distribute_strategy
        if distribute.is_multi_worker(strategy):
            self._dir = os.path.join(
                self.backup_dir, f"worker-{distribute.worker_index(strategy)}"
            )
        self.non_finite = None
        self.restored_seconds = 0.0
        self._started = time.perf_counter()
        self._load_model()

    def _load_model(self):
        if not self.model.built:
            raise ValueError(
                "FaultTolerantBackup needs a built model. sig_keras models "
                "build themselves in `fit`; build any other model before `fit` "
                "(`model.build(input_shape)`, or call it on a batch)."
            )
        distribute.build_optimizers(self.model)
        path = self.checkpoint_path
        if not os.path.exists(path):
            return
        expected = type(self.model).__name__
        try:
            with h5py.File(path, "r") as f:
                if _EXTRA_GROUP not in f:
                    raise ValueError(
                        f"{path} was not written by FaultTolerantBackup; point "
                        "`backup_dir` at a directory used only by this callback. "
                        + self._start_fresh()
                    )
                group = f[_EXTRA_GROUP]
                found = group.attrs.get("model_class")
                found = None if found is None else str(found)
                epoch = int(group.attrs["epoch"])
                batches = int(group.attrs["batches_done"])
                seconds = float(group.attrs.get("train_seconds", 0.0))
                seeds = [group[f"seed_{i}"][()] for i in range(
                    int(group.attrs["num_seed_generators"])
                )]
        except (OSError, KeyError) as error:
            raise ValueError(
                f"The checkpoint {path} cannot be read as a FaultTolerantBackup "
                f"checkpoint of this {expected} ({type(error).__name__}: {error}): "
                f"the file is corrupt or cut short. {self._start_fresh()}"
            ) from None
        if found is not None and found != expected:
            raise ValueError(
                f"The checkpoint {path} holds a {found} model, but the model being "
                f"trained is a {expected}. {self._start_fresh()}"
            )
        written_by = f"a {found}" if found is not None else "a different model"
        generators = seed_generators(self.model)
        if len(generators) != len(seeds):
            raise ValueError(
                f"The checkpoint {path} holds {len(seeds)} SeedGenerator "
                f"states but this {expected} has {len(generators)}: it was written "
                f"by {written_by}. {self._start_fresh()}"
            )
        try:
            self.model.load_weights(path)
        except (ValueError, OSError, KeyError) as error:
            raise ValueError(
                f"The checkpoint {path} does not fit this {expected} (it was written "
                f"by {written_by}): {error} {self._start_fresh()}"
            ) from None
        for sg, state in zip(generators, seeds):
            sg.state.assign(state)
        self.model._initial_epoch = epoch
        self.restored_seconds = seconds
        self._skip = batches
        self._skip_epoch = epoch if batches else None
        if batches and getattr(self.model, "steps_per_execution", 1) != 1:
            raise ValueError(
                "Resuming in the middle of an epoch needs steps_per_execution=1; "
                "use save_freq='epoch' with steps_per_execution > 1."
            )

    def _start_fresh(self):
        """What to do about a checkpoint that cannot be restored."""
        return (
            "Nothing was deleted. To start fresh, delete the directory "
            f"{self.backup_dir} (or pass another `backup_dir`); to resume it, "
            "train the model that wrote it."
        )

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        self._batches_done = 0
        if self._skip and epoch == self._skip_epoch:
            self._batches_done = self._skip
            self._install_skipping(self._skip)
        self._skip = 0

    def _install_skipping(self, count):
        """Makes the next `count` training calls consume a batch and not train."""
        model = self.model
        original = model.train_function
        self._original_train_function = original
        remaining = [count]

        def skip_or_train(iterator):
            if remaining[0] > 0:
                next(iterator)
                remaining[0] -= 1
                if remaining[0] == 0:
                    model.train_function = original
                    self._original_train_function = None
                return {}
            return original(iterator)

        model.train_function = skip_or_train

    def _uninstall_skipping(self):
        if self._original_train_function is not None:
            self.model.train_function = self._original_train_function
            self._original_train_function = None

    # === Save ===

    def on_train_batch_end(self, batch, logs=None):
        if self._original_train_function is not None:
            self._last_batch_seen = batch
            return  # a skipped batch: the state is the restored one
        self._batches_done = batch + 1
        self._check_logs(logs, batch)
        if self.non_finite is None and self._should_save_on_batch(batch):
            self._save_model()

    def on_epoch_end(self, epoch, logs=None):
        self._uninstall_skipping()
        self._check_logs(logs, None)
        if self.non_finite is not None:
            return
        self._epoch = epoch + 1
        self._batches_done = 0
        self._batches_seen_since_last_saving = 0
        self._last_batch_seen = 0
        self._save_model()

    def _check_logs(self, logs, batch):
        bad = _non_finite_logs(logs)
        if bad and self.non_finite is None:
            where = f"epoch {self._epoch}" + ("" if batch is None else f", batch {batch}")
            self.non_finite = f"non-finite {bad} at {where}"

    def _state_is_finite(self):
        variables = list(self.model.variables)
        for _, opt, _ in distribute.model_optimizers(self.model):
            variables += list(opt.variables)
        for v in variables:
            if "float" in str(v.dtype) and not np.all(np.isfinite(_to_numpy(v))):
                self.non_finite = f"non-finite values in variable {v.path}"
                return False
        return True

    def _save_model(self):
        if self.non_finite is not None or not self._state_is_finite():
            return
        os.makedirs(self._dir, exist_ok=True)
        final = self.checkpoint_path
        tmp = os.path.join(self._dir, f".tmp-{os.getpid()}.weights.h5")
        try:
            self.model.save_weights(tmp, overwrite=True)
            generators = seed_generators(self.model)
            with h5py.File(tmp, "a") as f:
                group = f.create_group(_EXTRA_GROUP)
                group.attrs["model_class"] = type(self.model).__name__
                group.attrs["epoch"] = int(self._epoch)
                group.attrs["batches_done"] = int(self._batches_done)
                running = 0.0 if self._started is None else time.perf_counter() - self._started
                group.attrs["train_seconds"] = self.restored_seconds + running
                group.attrs["num_seed_generators"] = len(generators)
                for i, sg in enumerate(generators):
                    group.create_dataset(f"seed_{i}", data=_to_numpy(sg.state))
            _fsync(tmp)
            os.replace(tmp, final)
            _fsync(self._dir)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)

    def on_train_end(self, logs=None):
        self._uninstall_skipping()
        if self.non_finite is not None:
            print(
                f"FaultTolerantBackup: {self.non_finite}; kept the last good "
                f"checkpoint {self.checkpoint_path}.",
                file=sys.stderr,
                flush=True,
            )
            return
        if self.delete_checkpoint and os.path.exists(self._dir):
            shutil.rmtree(self._dir)
            if self._dir != self.backup_dir and os.path.isdir(self.backup_dir):
                try:
                    os.rmdir(self.backup_dir)
                except OSError:
                    pass  # other workers' copies are still there

    def get_config(self):
        return {
            "backup_dir": self.backup_dir,
            "save_freq": self.save_freq,
            "delete_checkpoint": self.delete_checkpoint,
        }



@keras.saving.register_keras_serializable(package="sig_keras")
class TerminateOnNonFinite(keras.callbacks.Callback):
    """Stops training at the first NaN or infinite value in the step logs.

    The message names the value, the epoch and the batch, is printed to
    stderr and kept in `self.message`. Combine with `FaultTolerantBackup`,
    which never saves a non-finite state and keeps its last good checkpoint.

    Args:
        monitor: str or None. The log to watch; None watches every log
            (losses of both players of a GAN). Defaults to None.
        raise_error: bool. Raise `FloatingPointError` instead of stopping
            gracefully with `model.stop_training`. Defaults to False.
    """

    def __init__(self, monitor=None, raise_error=False):
        super().__init__()
        if monitor is not None and (not isinstance(monitor, str) or not monitor):
            raise ValueError(f"`monitor` must be a log name or None; got {monitor!r}.")
        self.monitor = monitor
        self.raise_error = bool(raise_error)
        self.message = None
        self._epoch = 0
        self._monitor_checked = False

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def _check_monitor(self, names):
        """`ValueError` when the monitored log is not among `names`."""
        self._monitor_checked = True
        if self.monitor is not None and self.monitor not in names:
            raise ValueError(
                f"TerminateOnNonFinite(monitor={self.monitor!r}) watches nothing: the "
                f"training logs are {sorted(names)}."
            )

    def on_train_begin(self, logs=None):
        # A sig_keras model logs exactly its trackers (`metric_logs`): check
        # before the first step. Other models expand compiled metrics into
        # their own names: checked against the first step's logs.
        if self.monitor is not None and hasattr(self.model, "metric_logs"):
            self._check_monitor([m.name for m in self.model.metrics])

    def on_train_batch_end(self, batch, logs=None):
        logs = logs or {}
        if self.monitor is not None and not self._monitor_checked and logs:
            self._check_monitor(list(logs))
        if self.monitor is not None:
            logs = {self.monitor: logs[self.monitor]} if self.monitor in logs else {}
        bad = _non_finite_logs(logs)
        if not bad:
            return
        values = ", ".join(f"{name}={value}" for name, value in bad)
        self.message = (
            f"Non-finite training value ({values}) at epoch {self._epoch + 1}, "
            f"batch {batch}: stopping training. The weights of this step are "
            "not saved; the last good checkpoint is kept."
        )
        print(self.message, file=sys.stderr, flush=True)
        if self.raise_error:
            raise FloatingPointError(self.message)
        self.model.stop_training = True

    def get_config(self):
        return {"monitor": self.monitor, "raise_error": self.raise_error}
