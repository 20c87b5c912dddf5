"""Bad input meets a clear `ValueError` naming the argument or file, before
the first training step, and nothing already saved is lost.

One test per case: empty data, `sample_mixing`'s `n`, validation data,
a stream whose data width changes, corrupt / cut-short / wrong-class files,
sizes too large for memory, ragged tensors and Python lists, non-numeric
ModeCoverage centres and a classifier that outputs NaN.
"""

import argparse
import os

import h5py
import keras
import numpy as np
import pytest
import tensorflow as tf

from sig_keras import experiment
from sig_keras.callbacks import FaultTolerantBackup
from sig_keras.callbacks import fault_tolerance
from sig_keras.metrics import InceptionScore
from sig_keras.metrics import ModeCoverage
from sig_keras.utils import validation
from tests import _train_worker
from tests import harness as h

BATCH = 8


def _iterations(model):
    return int(keras.ops.convert_to_numpy(model.optimizer.iterations))


def _assert_untrained(model, before):
    assert _iterations(model) == 0
    for a, b in zip(before, h.weights(model)):
        np.testing.assert_array_equal(a, b)


class _NoBatches(keras.utils.PyDataset):
    def __len__(self):
        return 0

    def __getitem__(self, i):
        raise IndexError(i)


# === Empty data ===


@pytest.mark.parametrize("make_x, message", [
    (lambda: np.zeros((0, 2), np.float32), r"`x` is empty: it has no data points "
                                           r"\(shape \(0, 2\)\)"),
    (lambda: tf.zeros((0, 2)), r"`x` is empty"),
    (lambda: [], r"`x` is empty"),
    (lambda: h.batched(np.zeros((0, 2), np.float32), BATCH),
     r"dataset passed to `fit` as `x` is empty"),
    (lambda: h.batched(h.two_clusters(16), BATCH).filter(lambda x: False),
     r"dataset passed to `fit` as `x` is empty"),
    (lambda: _NoBatches(), r"PyDataset passed to `fit` as `x` is empty"),
], ids=["array", "tensor", "list", "dataset", "filtered_dataset", "py_dataset"])
def test_empty_data_is_an_error(make_x, message):
    model = h.tiny_sig()
    before = h.weights(model)
    with pytest.raises(ValueError, match=message):
        model.fit(make_x(), epochs=1, verbose=0)
    _assert_untrained(model, before)


# === sample_mixing checks n as sample does ===


@pytest.mark.parametrize("n", [0, -1, 2.5, "3", None])
def test_sample_mixing_checks_n_as_sample_does(n):
    model = h.tiny_sig()
    for draw in (model.sample, model.sample_mixing):
        with pytest.raises(ValueError, match=r"`n` must be a positive integer; got"):
            draw(n)
    with pytest.raises(ValueError, match=r"`seed` must be an integer"):
        model.sample_mixing(4, seed=1.5)
    assert model.sample_mixing(4, seed=3).shape == (4, 2)


# === Validation data is checked before training ===


def _nan_points(n=16):
    x = h.two_clusters(n)
    x[5, 1] = np.nan
    return x


@pytest.mark.parametrize("form", ["array", "x_tuple", "xy_tuple", "dataset", "list"])
def test_nan_in_validation_data_fails_before_training(form):
    bad = _nan_points()
    validation_data = {
        "array": bad,
        "x_tuple": (bad,),
        "xy_tuple": (bad, None),
        "dataset": h.batched(bad, BATCH),
        "list": bad.tolist(),
    }[form]
    model = h.tiny_sig()
    before = h.weights(model)
    with pytest.raises(ValueError, match=r"validation_data contains non-finite values \(1 NaN"):
        model.fit(h.two_clusters(32), validation_data=validation_data, batch_size=BATCH,
                  epochs=1, verbose=0)
    _assert_untrained(model, before)


@pytest.mark.parametrize("bad, message", [
    (np.zeros((16, 3), np.float32), r"validation_data points have shape \(3,\)"),
    (np.zeros((0, 2), np.float32), r"`validation_data` is empty"),
    (tf.ragged.constant([[1.0, 2.0], [3.0]]), r"`validation_data` is a RaggedTensor"),
], ids=["width", "empty", "ragged"])
def test_validation_data_of_wrong_shape_fails_before_training(bad, message):
    model = h.tiny_sig()
    with pytest.raises(ValueError, match=message):
        model.fit(h.two_clusters(32), validation_data=(bad,), batch_size=BATCH,
                  epochs=1, verbose=0)
    assert _iterations(model) == 0


def test_nan_in_validation_data_of_an_adversarial_model():
    model = _train_worker.build_model("gan_si", seed=1)  # data_range (-1, 1)
    with pytest.raises(ValueError, match="validation_data contains NaN or inf"):
        model.fit(0.3 * h.two_clusters(32), validation_data=0.3 * _nan_points(),
                  batch_size=BATCH, epochs=1, verbose=0)
    assert _iterations(model) == 0


# === The data guard checks each batch's shape ===


def _widening_stream(good_batches=3):
    """Batches of width 2, then one of width 3; the dataset's spec says
    `[None, None]`, so nothing is known before the step."""
    def gen():
        for i in range(good_batches):
            yield h.two_clusters(BATCH, seed=i)
        yield np.zeros((BATCH, 3), np.float32)

    return tf.data.Dataset.from_generator(
        gen, output_signature=tf.TensorSpec((None, None), tf.float32))


def test_stream_whose_width_changes_stops_naming_the_shapes():
    model = h.tiny_sig()
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=r"SIG training data has points of shape\] \[3\] \[but the "
                             r"model takes points of shape \[2\]\] \[at step\] \[3\]"):
        model.fit(_widening_stream(), epochs=1, verbose=0)
    assert _iterations(model) == 3  # the three good batches, not the bad one


def test_stream_whose_width_changes_in_eager_steps():
    model = h.tiny_sig(run_eagerly=True)
    with pytest.raises(ValueError, match=r"SIG training data has points of shape \(3,\) at "
                                         r"step 3, but the model takes points of shape \(2,\)"):
        model.fit(_widening_stream(), epochs=1, verbose=0)
    assert _iterations(model) == 3


def test_assert_point_shape_on_static_and_dynamic_shapes():
    x = tf.zeros((4, 2))
    assert validation.assert_point_shape(x, (2,)) is x
    with pytest.raises(ValueError, match=r"points of shape \(2,\), but the model takes "
                                         r"points of shape \(2, 1\)"):
        validation.assert_point_shape(x, (2, 1))
    check = tf.function(lambda t: validation.assert_point_shape(t, (2,), what="batch"),
                        input_signature=[tf.TensorSpec((None, None))])
    check(tf.zeros((4, 2)))
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"batch has points of shape\] "
                                                             r"\[3\]"):
        check(tf.zeros((4, 3)))


# === Corrupt, cut-short and wrong-class files ===


def _saved_checkpoint(model, directory):
    model.build()
    model.optimizer.build(model.trainable_variables)
    backup = FaultTolerantBackup(str(directory), delete_checkpoint=False)
    backup.set_model(model)
    backup._save_model()
    return directory / "latest.weights.h5"


def _fit_with_backup(model, directory):
    # Data in the GAN's data_range (-1, 1).
    model.fit(0.3 * h.two_clusters(32), batch_size=BATCH, epochs=1, verbose=0,
              callbacks=[FaultTolerantBackup(str(directory))])


@pytest.mark.parametrize("damage", ["garbage", "cut_short", "empty", "missing_seed"])
def test_corrupt_checkpoint_names_the_file_and_how_to_start_fresh(tmp_path, damage):
    path = _saved_checkpoint(_train_worker.build_model("sig", seed=1), tmp_path)
    data = path.read_bytes()
    if damage == "garbage":
        path.write_bytes(b"not an HDF5 file" * 64)
    elif damage == "cut_short":
        path.write_bytes(data[:len(data) // 2])
    elif damage == "empty":
        path.write_bytes(b"")
    else:
        with h5py.File(path, "a") as f:
            del f[fault_tolerance._EXTRA_GROUP]["seed_0"]
    damaged = path.read_bytes()
    model = _train_worker.build_model("sig", seed=1)
    with pytest.raises(ValueError) as info:
        _fit_with_backup(model, tmp_path)
    message = str(info.value)
    assert f"The checkpoint {path} cannot be read" in message
    assert "corrupt or cut short" in message
    assert f"Nothing was deleted. To start fresh, delete the directory {tmp_path}" in message
    assert path.read_bytes() == damaged  # nothing lost
    assert _iterations(model) == 0


def test_checkpoint_of_another_model_class_names_both_classes(tmp_path):
    path = _saved_checkpoint(_train_worker.build_model("sig", seed=1), tmp_path)
    saved = path.read_bytes()
    model = _train_worker.build_model("gan_si", seed=1)
    before = h.weights(model)
    with pytest.raises(ValueError, match=r"holds a SIG model, but the model being trained "
                                         r"is a GAN\. Nothing was deleted\. To start fresh, "
                                         r"delete the directory"):
        _fit_with_backup(model, tmp_path)
    assert path.read_bytes() == saved
    _assert_untrained(model, before)


def test_checkpoint_without_its_position_is_reported(tmp_path):
    path = _saved_checkpoint(_train_worker.build_model("sig", seed=1), tmp_path)
    with h5py.File(path, "a") as f:
        del f[fault_tolerance._EXTRA_GROUP].attrs["epoch"]
    with pytest.raises(ValueError, match=r"cannot be read as a FaultTolerantBackup checkpoint "
                                         r"of this SIG \(KeyError"):
        _fit_with_backup(_train_worker.build_model("sig", seed=1), tmp_path)
    assert path.exists()


def test_keras_file_of_another_class_names_both_classes(tmp_path):
    sig = _train_worker.build_model("sig", seed=1)
    sig.build()
    path = str(tmp_path / "sig.keras")
    sig.save(path)
    gan = _train_worker.build_model("gan_si", seed=1)
    gan.build()
    before = h.weights(gan)
    with pytest.raises(ValueError, match=r"sig\.keras holds a SIG model, but this model is "
                                         r"a GAN"):
        gan.load_weights(path)
    for a, b in zip(before, h.weights(gan)):
        np.testing.assert_array_equal(a, b)
    (tmp_path / "cut.keras").write_bytes(open(path, "rb").read()[:200])
    with pytest.raises(ValueError, match=r"cut\.keras cannot be read as a \.keras file"):
        gan.load_weights(str(tmp_path / "cut.keras"))
    other = _train_worker.build_model("sig", seed=2)
    other.build()
    other.load_weights(path)  # the same class loads
    for a, b in zip(h.weights(sig), h.weights(other)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("suffix", [".json", ".npz"])
def test_experiment_backup_with_a_corrupt_result_names_the_file(tmp_path, suffix):
    backup = experiment.Backup(str(tmp_path / "backup"), suffix=suffix)
    run = backup.run("sig_seed0", label="sig seed 0")
    run.save({"score": 1.0} if suffix == ".json" else {"score": np.ones(3)})
    with open(run.result_path, "rb") as f:
        data = f.read()
    with open(run.result_path, "wb") as f:
        f.write(data[:len(data) // 2])
    with pytest.raises(ValueError, match=r"sig seed 0: the saved result .*-result-worker0"
                                         r".* cannot be read .*corrupt or cut short\. Nothing "
                                         r"was deleted: delete"):
        run.load()
    assert os.path.getsize(run.result_path) == len(data) // 2


def test_experiment_backup_with_a_corrupt_settings_file_exits_with_the_path(tmp_path):
    directory = tmp_path / "backup"
    directory.mkdir()
    (directory / experiment.Backup.SETTINGS).write_text('{"steps": 1')
    parser = argparse.ArgumentParser()
    with pytest.raises(SystemExit) as info:
        experiment.check_backup_dir(parser, str(directory), {"steps": 1})
    assert info.value.code == 2
    assert (directory / experiment.Backup.SETTINGS).read_text() == '{"steps": 1'


def test_experiment_backup_directory_that_is_a_file(tmp_path):
    path = tmp_path / "backup"
    path.write_text("x")
    with pytest.raises(ValueError, match="`directory` .* exists and is not a directory"):
        experiment.Backup(str(path))
    assert path.read_text() == "x"


# === Sizes too large for memory ===


def test_sizes_too_large_for_memory_are_refused_with_the_size():
    limit = f"{validation.MAX_ELEMENTS:,}"
    with pytest.raises(ValueError, match=r"`num_samples` asks for noise of shape "
                                         r"\(100000000000, 3\): 300,000,000,000 elements "
                                         rf".*over the limit of {limit} elements"):
        h.tiny_sig(num_samples=10**11)
    model = h.tiny_sig()
    with pytest.raises(ValueError, match=r"`n` asks for noise of shape \(1000000000000, 3\)"
                                         r".*Draw the samples in batches"):
        model.sample(10**12)
    with pytest.raises(ValueError, match=r"`n` asks for noise of shape"):
        model.sample_mixing(10**12)
    # Wide outputs: the noise fits, the generated batch does not.
    with pytest.raises(ValueError, match=r"`n` asks for generator outputs of shape "
                                         r"\(100000000, 784\)"):
        _wide_sig().sample(10**8)


def _wide_sig():
    from sig_keras.models import SIG

    inputs = keras.Input((2,))
    generator = keras.Model(inputs, keras.layers.Dense(784)(inputs))
    return SIG(generator, "normal", latent_dim=2, num_samples=4)


# === Ragged tensors and Python lists ===


def test_python_list_of_numbers_is_converted_and_trains():
    model = h.tiny_sig()
    model.fit(h.two_clusters(16).tolist(), batch_size=BATCH, epochs=1, verbose=0,
              shuffle=False)
    assert _iterations(model) == 2


@pytest.mark.parametrize("x, message", [
    (tf.ragged.constant([[1.0, 2.0], [3.0]]), r"`x` is a RaggedTensor; .*`x\.to_tensor\(\)`"),
    (tf.sparse.from_dense(np.eye(2, dtype=np.float32)), r"`x` is a SparseTensor"),
    ([[1.0, 2.0], [3.0]], r"`x` is a ragged Python list"),
    ([["a", "b"], ["c", "d"]], r"`x` must be a list of numbers; got elements of dtype <U1"),
    ([1.0, 2.0], r"`x` must have a batch axis and at least one data axis; got shape \(2,\)"),
    (np.array([["a", "b"]]), r"`x` must hold numbers; got dtype <U1"),
], ids=["ragged", "sparse", "ragged_list", "strings", "flat_list", "string_array"])
def test_ragged_tensors_and_bad_lists_get_a_clear_message(x, message):
    model = h.tiny_sig()
    with pytest.raises(ValueError, match=message):
        model.fit(x, epochs=1, verbose=0)
    assert _iterations(model) == 0


def test_ragged_dataset_gets_a_clear_message():
    model = h.tiny_sig()
    ragged = tf.data.Dataset.from_tensor_slices(
        tf.ragged.constant([[1.0, 2.0], [3.0]])).batch(2)
    with pytest.raises(ValueError, match=r"dataset passed to `fit` as `x` holds ragged tensors"):
        model.fit(ragged, epochs=1, verbose=0)
    assert _iterations(model) == 0


# === Metrics ===


@pytest.mark.parametrize("centers", [[["a", "b"]], ["ab"], [[0.0, None]]])
def test_mode_coverage_centres_given_as_strings(centers):
    with pytest.raises(ValueError, match=r"`centers` must be an array of numbers; got"):
        ModeCoverage(centers, std=0.1)
    with pytest.raises(ValueError, match=r"`weights` must be an array of numbers"):
        ModeCoverage([[0.0, 0.0]], std=0.1, weights=["one"])


def test_classifier_that_outputs_nan_is_reported_as_nan():
    inputs = keras.Input((3,))
    outputs = keras.layers.Dense(4, activation="softmax")(inputs)
    classifier = keras.Model(inputs, outputs)
    kernel = classifier.layers[-1].kernel
    kernel.assign(np.full(kernel.shape, np.nan, np.float32))
    metric = InceptionScore(classifier=classifier, splits=1)
    with pytest.raises(ValueError, match=r"classifier outputs NaN or inf values "
                                         r"\(8 of 8\)"):
        metric.update_state(np.ones((2, 3), np.float32))
    update = tf.function(metric.update_state)
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=r"classifier outputs NaN or inf values"):
        update(tf.ones((2, 3)))
