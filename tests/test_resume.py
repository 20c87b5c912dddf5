"""Resume after SIGKILL, and stop on a non-finite loss, in real processes.

`tests/_train_worker.py` trains with `FaultTolerantBackup` and
`enable_determinism`. A run is SIGKILLed by its own callback right after
optimizer step 7 (epoch 2 of 3, 4 batches per epoch, checkpoint every 2
batches, so the last checkpoint is mid-epoch after step 6), restarted with the
same command line, and its final state (model weights, both optimizers, seed
generator) must equal bit for bit that of an uninterrupted run.
"""

import os
import signal
import time

import h5py
import keras
import numpy as np
import pytest

from sig_keras.callbacks import fault_tolerance
from tests import harness as h
from tests.harness import start_worker
from tests.harness import wait_all


def _checkpoint_position(path):
    with h5py.File(path, "r") as f:
        attrs = f[fault_tolerance._EXTRA_GROUP].attrs
        return int(attrs["epoch"]), int(attrs["batches_done"])


@pytest.mark.parametrize(
    "model",
    ["gan_si", "gan_si_perm", pytest.param("sig", marks=pytest.mark.large)],
)
def test_sigkill_mid_epoch_then_resume_equals_uninterrupted(model, tmp_path):
    common = ["--model", model, "--epochs", "3", "--batches", "4",
              "--save-freq", "2", "--seed", "5"]
    resumed_cmd = common + ["--backup-dir", str(tmp_path / "backup"),
                            "--out", str(tmp_path / "resumed.npz")]
    reference = start_worker(common + ["--backup-dir", str(tmp_path / "ref_backup"),
                                 "--out", str(tmp_path / "reference.npz")])
    killed = start_worker(resumed_cmd, {"SIG_TEST_KILL_AT_STEP": "7"})
    ref_out, killed_out = wait_all([reference, killed])
    assert reference.returncode == 0, ref_out[-4000:]
    assert killed.returncode == -signal.SIGKILL, killed_out[-4000:]
    assert "KILLING at step 7" in killed_out
    assert not os.path.exists(tmp_path / "resumed.npz")
    checkpoint = tmp_path / "backup" / "latest.weights.h5"
    # Mid-epoch: epoch index 1, 2 of its 4 batches done (step 6).
    assert _checkpoint_position(checkpoint) == (1, 2)
    assert not [f for f in os.listdir(tmp_path / "backup") if f.startswith(".tmp")]

    resumed = start_worker(resumed_cmd)
    (resumed_out,) = wait_all([resumed])
    assert resumed.returncode == 0, resumed_out[-4000:]
    assert "KILLING" not in resumed_out
    # The completed run deletes its checkpoint.
    assert not os.path.exists(checkpoint)

    ref = np.load(tmp_path / "reference.npz")
    res = np.load(tmp_path / "resumed.npz")
    assert ref.files == res.files
    assert any(k.startswith("d_optimizer/") for k in ref.files) == model.startswith("gan_si")
    seed_states = [k for k in ref.files if k.endswith("seed_generator_state")]
    assert len(seed_states) == (2 if model == "gan_si_perm" else 1), seed_states
    for key in ref.files:
        np.testing.assert_array_equal(ref[key], res[key], err_msg=key)


def test_nan_stops_run_and_keeps_last_good_checkpoint(tmp_path):
    import keras

    from tests import _train_worker

    backup = tmp_path / "backup"
    # 4 batches per epoch; a NaN data point in batch 6 = epoch 2, batch 2.
    proc = start_worker(["--model", "sig", "--epochs", "3", "--batches", "4",
                   "--nan-at-batch", "6", "--backup-dir", str(backup),
                   "--out", str(tmp_path / "final.npz")])
    (output,) = wait_all([proc])
    assert proc.returncode == 0, output[-4000:]
    assert "Non-finite training value (loss=nan) at epoch 2, batch 2: stopping " \
           "training" in output, output[-4000:]
    assert "kept the last good checkpoint" in output
    final = np.load(tmp_path / "final.npz")
    assert not np.all(np.isfinite(final["model/1/generator_dense_0/kernel"]))

    # The checkpoint of the end of epoch 1 survived and loads with finite weights.
    checkpoint = backup / "latest.weights.h5"
    assert _checkpoint_position(checkpoint) == (1, 0)
    model = _train_worker.build_model("sig", seed=5)
    model.build()
    model.optimizer.build(model.trainable_variables)
    before = [np.array(v.numpy()) for v in model.trainable_variables]
    model.load_weights(str(checkpoint))
    after = [np.array(v.numpy()) for v in model.trainable_variables]
    assert all(np.all(np.isfinite(v)) for v in after)
    assert any(not np.array_equal(a, b) for a, b in zip(before, after))
    assert int(keras.ops.convert_to_numpy(model.optimizer.iterations)) == 4


def test_non_finite_state_is_never_saved(tmp_path):
    """In-process: a NaN weight blocks the save; the old file stays intact."""
    from tests import _train_worker

    model = _train_worker.build_model("sig", seed=1)
    model.build()
    model.optimizer.build(model.trainable_variables)
    backup = fault_tolerance.FaultTolerantBackup(str(tmp_path), save_freq=1)
    backup.set_model(model)
    backup._save_model()
    path = tmp_path / "latest.weights.h5"
    good = path.read_bytes()
    kernel = model.generator.trainable_variables[0]
    kernel.assign(np.full(kernel.shape, np.nan, np.float32))
    backup._save_model()
    assert backup.non_finite is not None and kernel.path in backup.non_finite
    assert path.read_bytes() == good


def test_backup_restores_seed_and_optimizers_under_mirrored(two_cpu_strategy, tmp_path):
    """In-process, 2 replicas: a restored model continues like the original."""
    import tensorflow as tf

    from sig_keras import distribute
    from tests import _train_worker

    x = np.random.default_rng(0).uniform(-0.9, 0.9, (64, 2)).astype(np.float32)
    data = tf.data.Dataset.from_tensor_slices(x).batch(32, drop_remainder=True)

    def make():
        with two_cpu_strategy.scope():
            model = _train_worker.build_model("gan_si", seed=2)
            distribute.build_optimizers(model, two_cpu_strategy)
        return model

    backup = fault_tolerance.FaultTolerantBackup(
        str(tmp_path), save_freq=1, delete_checkpoint=False
    )
    original = make()
    original.fit(data, epochs=1, verbose=0, callbacks=[backup])
    restored = make()
    assert not np.array_equal(
        original.seed_generator.state.numpy(), restored.seed_generator.state.numpy()
    )
    loader = fault_tolerance.FaultTolerantBackup(str(tmp_path))
    loader.set_model(restored)
    loader.on_train_begin()
    assert restored._initial_epoch == 1
    for a, b in zip(original.variables, restored.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)
    for attr in ("optimizer", "d_optimizer"):
        for a, b in zip(getattr(original, attr).variables,
                        getattr(restored, attr).variables):
            np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)


def test_checkpoint_records_the_training_time(tmp_path):
    """A resumed run learns the earlier processes' time up to its checkpoint."""
    from sig_keras import distribute
    from tests import _train_worker

    x = np.random.default_rng(0).uniform(-0.9, 0.9, (64, 2)).astype(np.float32)
    first = _train_worker.build_model("gan_si", seed=2)
    backup = fault_tolerance.FaultTolerantBackup(
        str(tmp_path), save_freq=1, delete_checkpoint=False)
    start = time.perf_counter()
    first.fit(x, batch_size=32, epochs=1, verbose=0, shuffle=False, callbacks=[backup])
    elapsed = time.perf_counter() - start
    assert backup.restored_seconds == 0.0  # a fresh run
    second = _train_worker.build_model("gan_si", seed=2)
    distribute.build_optimizers(second)
    loader = fault_tolerance.FaultTolerantBackup(str(tmp_path))
    loader.set_model(second)
    loader.on_train_begin()
    assert 0.0 < loader.restored_seconds <= elapsed


# === Bad options fail before training ===


@pytest.mark.parametrize("save_freq", [0, -3, 2.5, True, "batch"])
def test_backup_rejects_bad_save_freq(tmp_path, save_freq):
    with pytest.raises(ValueError, match="`save_freq` must be 'epoch' or a positive number"):
        fault_tolerance.FaultTolerantBackup(str(tmp_path), save_freq=save_freq)


def test_backup_directory_that_is_a_file_fails_at_construction(tmp_path):
    path = tmp_path / "backup"
    path.write_text("not a directory")
    with pytest.raises(ValueError, match="exists and is not a directory"):
        fault_tolerance.FaultTolerantBackup(str(path))
    assert path.read_text() == "not a directory"  # nothing lost


def test_backup_directory_under_a_file_fails_at_construction(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ValueError, match="is not writable"):
        fault_tolerance.FaultTolerantBackup(str(blocker / "backup"))


@pytest.mark.parametrize("monitor", ["", 3])
def test_terminate_rejects_bad_monitor(monitor):
    with pytest.raises(ValueError, match="`monitor` must be a log name or None"):
        fault_tolerance.TerminateOnNonFinite(monitor=monitor)


def test_terminate_monitor_typo_fails_before_the_first_step():
    model = h.tiny_sig()
    before = [w.numpy().copy() for w in model.trainable_weights]
    with pytest.raises(ValueError, match=r"monitor='los'\) watches nothing.*'loss'"):
        model.fit(h.two_clusters(16), batch_size=8, epochs=1, verbose=0,
                  callbacks=[fault_tolerance.TerminateOnNonFinite(monitor="los")])
    for w, b in zip(model.trainable_weights, before):
        np.testing.assert_array_equal(w.numpy(), b)  # no step was taken
    model.fit(h.two_clusters(16), batch_size=8, epochs=1, verbose=0,
              callbacks=[fault_tolerance.TerminateOnNonFinite(monitor="loss")])


def test_terminate_monitor_typo_on_a_plain_keras_model():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    x = np.zeros((8, 2), np.float32)
    with pytest.raises(ValueError, match="watches nothing"):
        model.fit(x, x[:, :1], batch_size=4, verbose=0,
                  callbacks=[fault_tolerance.TerminateOnNonFinite(monitor="val_los")])


def test_terminate_on_non_finite_is_registered_and_round_trips():
    callback = fault_tolerance.TerminateOnNonFinite(monitor="loss", raise_error=True)
    assert keras.saving.get_registered_object(
        "sig_keras>TerminateOnNonFinite") is fault_tolerance.TerminateOnNonFinite
    restored = fault_tolerance.TerminateOnNonFinite(**callback.get_config())
    assert (restored.monitor, restored.raise_error) == ("loss", True)
