"""SIG: fit (eager, graph, jit, 2 replicas), save/load, export, logs, bad input."""

import glob
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from sig_keras import layers
from sig_keras.models import SIG
from sig_keras.networks import mlp_generator
from tests import harness as h

LATENT_DIM = h.SIG_LATENT
_model = h.tiny_sig
_toy_data = h.two_clusters


# === Training ===


@h.fit_modes
def test_fit_decreases_loss(fit_mode):
    loss = h.run_fit_modes_test(
        _model(), fit_mode, _toy_data(), batch_size=32, epochs=6,
        compile_kwargs=dict(optimizer=keras.optimizers.Adam(1e-2)),
        iterations={"optimizer": 6 * 4},
    )["loss"]
    assert len(loss) == 6 and np.all(np.isfinite(loss))
    assert loss[-1] < loss[0] - 1.0, loss


def test_fit_on_dataset_and_trainable_scale_is_learned():
    cond = layers.NormalConditional(1.0, trainable_scale=True)
    model = _model(conditional=cond, lr=3e-2)
    ds = tf.data.Dataset.from_tensor_slices(_toy_data()).batch(32, drop_remainder=True)
    model.fit(ds.repeat(), steps_per_epoch=20, epochs=1, verbose=0)
    # The scale is a trained weight: it moves from its initial value.
    assert abs(float(cond.scale_value.numpy()) - 1.0) > 1e-2
    assert any(w is cond._rho for w in model.trainable_weights)


def test_count_conditional_fits():
    rng = np.random.default_rng(0)
    counts = rng.poisson(4.0, size=(64, 1)).astype(np.float32)
    model = _model(conditional=layers.NegativeBinomialConditional(), output_dim=2)
    history = model.fit(counts, batch_size=16, epochs=3, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    assert history.history["loss"][-1] < history.history["loss"][0]


def test_evaluate_reports_loss():
    model = _model()
    data = _toy_data(64)
    result = model.evaluate(data, batch_size=32, verbose=0, return_dict=True)
    assert np.isfinite(result["loss"])


@pytest.mark.parametrize("gather_psi", [True, False], ids=["gather", "replicated"])
def test_mirrored_fit_matches_single_device(two_cpu_strategy, gather_psi):
    """Same initial weights and seed: 2 replicas give the single-device
    weights and logged loss (to 1e-5), step after step, whether psi is
    gathered or generated whole on every replica."""
    _, mirrored = h.run_mirrored_matches_single_device_test(
        lambda: _model(num_samples=8, gather_psi=gather_psi), two_cpu_strategy,
        _toy_data(64), fit_kwargs=dict(batch_size=16, epochs=2),
        rtol=1e-5, atol=1e-5, logs_rtol=1e-5,
        min_moved=1e-3,  # the comparison is not between untouched weights
    )
    assert int(mirrored.optimizer.iterations.numpy()) == 8


def test_mirrored_fit_requires_divisible_num_samples(two_cpu_strategy):
    with two_cpu_strategy.scope():
        model = _model(num_samples=7)
    before = h.weights(model)
    with pytest.raises(ValueError, match="divisible"):
        model.fit(_toy_data(32), batch_size=16, epochs=1, verbose=0)
    for a, b in zip(before, h.weights(model)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("gather_psi", [True, False], ids=["gather", "replicated"])
def test_mirrored_gathers_psi_only_when_asked(two_cpu_strategy, monkeypatch, gather_psi):
    from sig_keras.distribute import reduction

    calls = []
    gather = reduction.gather_across_replicas

    def counting_gather(t):
        calls.append(t.shape)
        return gather(t)

    monkeypatch.setattr(reduction, "gather_across_replicas", counting_gather)
    with two_cpu_strategy.scope():
        # Replicated psi: every replica generates all K, so K need not split.
        model = _model(num_samples=8 if gather_psi else 7, gather_psi=gather_psi)
    history = model.fit(_toy_data(32), batch_size=16, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert bool(calls) == gather_psi


def test_tensorboard_callback_logs_loss(tmp_path):
    model = _model()
    history = model.fit(
        _toy_data(64), batch_size=32, epochs=2, verbose=0,
        callbacks=[keras.callbacks.TensorBoard(str(tmp_path), update_freq="epoch")],
    )
    files = glob.glob(os.path.join(str(tmp_path), "train", "events.out.tfevents.*"))
    assert files
    logged = {}
    for path in files:
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                if value.tag == "epoch_loss":
                    logged[event.step] = float(tf.make_ndarray(value.tensor))
    assert sorted(logged) == [0, 1]
    np.testing.assert_allclose(
        [logged[0], logged[1]], history.history["loss"], rtol=1e-6
    )


# === Sampling ===


def test_sample_and_sample_mixing_shapes_and_seeds():
    model = _model(conditional=layers.NegativeBinomialConditional(), output_dim=6)
    assert model.sample_mixing(5).shape == (5, 6)
    x = model.sample(7, seed=3).numpy()
    assert x.shape == (7, 3)
    assert np.all(x >= 0) and np.all(x == np.round(x))
    np.testing.assert_array_equal(model.sample(7, seed=3).numpy(), x)
    np.testing.assert_array_equal(
        model.sample_mixing(4, seed=1).numpy(), model.sample_mixing(4, seed=1).numpy()
    )
    # seed=None advances the model's SeedGenerator.
    assert not np.array_equal(model.sample_mixing(4).numpy(), model.sample_mixing(4).numpy())
    with pytest.raises(ValueError, match="positive"):
        model.sample(0)


def test_sample_mean_is_the_conditional_mean_of_sample_mixing():
    model = _model(conditional=layers.BernoulliConditional(), output_dim=6)
    np.testing.assert_allclose(model.sample_mean(5, seed=2).numpy(),
                               1.0 / (1.0 + np.exp(-model.sample_mixing(5, seed=2).numpy())),
                               rtol=1e-6)
    with pytest.raises(ValueError, match="positive"):
        model.sample_mean(0)


def test_normal_samples_are_psi_plus_scaled_noise():
    model = _model(conditional=layers.NormalConditional(1e-3))
    x = model.sample(200, seed=2).numpy()
    psi = model.generator(model.draw_noise(200, seed=2)).numpy()
    np.testing.assert_allclose(x, psi, atol=1e-2)
    assert 0 < np.std(x - psi) < 2e-3


# === Saving and export ===


def test_keras_save_load_round_trip(tmp_path):
    model = _model(conditional=layers.NormalConditional(0.5, trainable_scale=True))
    model.fit(_toy_data(64), batch_size=32, epochs=1, verbose=0)
    loaded = h.run_saving_test(model, tmp_path, iterations={"optimizer": 2}, seed=0)
    assert isinstance(loaded, SIG)
    np.testing.assert_array_equal(
        loaded.sample_mixing(16, seed=0).numpy(), model.sample_mixing(16, seed=0).numpy()
    )
    np.testing.assert_allclose(
        loaded.conditional.scale_value.numpy(), model.conditional.scale_value.numpy()
    )
    # The loaded model keeps training exactly as the original does. The noise
    # stream's state is not in the saved weights (as for any Keras
    # SeedGenerator): align it to compare the continued training.
    loaded.seed_generator.state.assign(model.seed_generator.state)
    h1 = model.fit(_toy_data(64), batch_size=32, epochs=1, shuffle=False, verbose=0)
    h2 = loaded.fit(_toy_data(64), batch_size=32, epochs=1, shuffle=False, verbose=0)
    np.testing.assert_allclose(h2.history["loss"], h1.history["loss"], rtol=1e-6)
    for a, b in zip(h.weights(model), h.weights(loaded)):
        np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-7)


_SERVE_SCRIPT = textwrap.dedent(
    """
    import os, sys
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    import numpy as np
    import tensorflow as tf
    inputs = np.load(sys.argv[2])
    loaded = tf.saved_model.load(sys.argv[1])
    x = loaded.serve(tf.constant(inputs["noise"]), tf.constant(inputs["seed"]))
    psi = loaded.generate(tf.constant(inputs["noise"]))
    np.savez(sys.argv[3], x=x.numpy(), psi=psi.numpy(),
             has_sig="sig_keras" in sys.modules)
    """
)


def test_failed_save_keeps_the_existing_file(tmp_path, monkeypatch):
    model = _model()
    model.fit(_toy_data(64), batch_size=32, epochs=1, verbose=0)
    path = tmp_path / "sig.keras"
    model.save(str(path))
    good = path.read_bytes()

    def broken_config():
        raise TypeError("cannot serialise this")

    monkeypatch.setattr(model, "get_config", broken_config)
    with pytest.raises(TypeError, match="cannot serialise this"):
        model.save(str(path))
    assert path.read_bytes() == good  # Keras alone leaves it empty
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sig.keras"]  # no temp file left
    assert isinstance(keras.saving.load_model(str(path)), SIG)
    with pytest.raises(ValueError, match="exists and `overwrite=False`"):
        model.save(str(path), overwrite=False)


def test_saved_model_export_loads_without_sig_keras(tmp_path):
    model = _model(conditional=layers.PoissonConditional(), output_dim=2)
    model.fit(np.ones((32, 2), np.float32), batch_size=16, epochs=1, verbose=0)
    export_dir = str(tmp_path / "exported")
    model.export(export_dir, verbose=False)

    noise = np.random.default_rng(0).normal(size=(9, LATENT_DIM)).astype(np.float32)
    seed = np.array([4, 5], np.int32)
    np.savez(tmp_path / "in.npz", noise=noise, seed=seed)
    script = tmp_path / "serve.py"
    script.write_text(_SERVE_SCRIPT)
    proc = subprocess.run(
        [sys.executable, str(script), export_dir, str(tmp_path / "in.npz"),
         str(tmp_path / "out.npz")],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "CUDA_VISIBLE_DEVICES": ""},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = np.load(tmp_path / "out.npz")
    assert not bool(out["has_sig"])

    psi = model.generator(noise, training=False).numpy()
    np.testing.assert_allclose(out["psi"], psi, rtol=1e-6, atol=1e-6)
    x = model._samples_from_noise(tf.constant(noise), tf.constant(seed)).numpy()
    assert out["x"].shape == (9, 2)
    np.testing.assert_array_equal(out["x"], x)


def test_export_rejects_unknown_format(tmp_path):
    with pytest.raises(ValueError, match="format"):
        _model().export(str(tmp_path / "m"), format="onnx")


# === Bad input: ValueError before training ===


def _as(data, form):
    if form == "numpy":
        return data
    return tf.data.Dataset.from_tensor_slices(data).batch(4)


def _assert_fit_rejects(model, data, match):
    before = h.weights(model)
    with pytest.raises(ValueError, match=match):
        model.fit(data, epochs=1, verbose=0)
    assert int(model.optimizer.iterations.numpy()) == 0
    for a, b in zip(before, h.weights(model)):
        np.testing.assert_array_equal(a, b)


FORMS = ["numpy", "dataset"]


@pytest.mark.parametrize("form", FORMS)
def test_bad_input_shape_mismatch(form):
    _assert_fit_rejects(_model(), _as(np.zeros((8, 3), np.float32), form), "shape")


@pytest.mark.parametrize("form", FORMS)
def test_bad_input_shape_mismatch_for_negative_binomial(form):
    # NB needs twice the data width from the generator: 2 outputs fit 1-d data.
    model = _model(conditional=layers.NegativeBinomialConditional(), output_dim=2)
    _assert_fit_rejects(model, _as(np.zeros((8, 2), np.float32), form), "shape")


@pytest.mark.parametrize("form", FORMS)
def test_bad_input_without_data_axis(form):
    _assert_fit_rejects(_model(), _as(np.zeros((8,), np.float32), form), "axis|shape")


@pytest.mark.parametrize("form", FORMS)
def test_bad_input_nan(form):
    data = _toy_data(8)
    data[0, 1] = np.nan
    _assert_fit_rejects(_model(), _as(data, form), "NaN")


@pytest.mark.parametrize("form", FORMS)
def test_bad_input_inf(form):
    data = _toy_data(8)
    data[2, 0] = -np.inf
    _assert_fit_rejects(_model(), _as(data, form), "inf")


@pytest.mark.parametrize("form", FORMS)
def test_bad_input_negative_counts_poisson(form):
    data = np.array([[1.0], [0.0], [-2.0], [3.0]] * 2, np.float32)
    model = _model(conditional=layers.PoissonConditional(), output_dim=1)
    _assert_fit_rejects(model, _as(data, form), "negative")


@pytest.mark.parametrize("form", FORMS)
def test_bad_input_non_integer_counts_nb(form):
    data = np.array([[1.0], [0.5], [2.0], [3.0]] * 2, np.float32)
    model = _model(conditional=layers.NegativeBinomialConditional(), output_dim=2)
    _assert_fit_rejects(model, _as(data, form), "non-integer")


@pytest.mark.parametrize("form", FORMS)
def test_bad_input_bernoulli_outside_01(form):
    data = np.array([[0.0, 1.0], [1.0, 2.0]] * 4, np.float32)
    model = _model(conditional=layers.BernoulliConditional())
    _assert_fit_rejects(model, _as(data, form), r"outside \{0, 1\}")


def test_bad_input_dataset_of_dicts():
    ds = tf.data.Dataset.from_tensor_slices({"x": np.zeros((8, 2), np.float32)}).batch(4)
    _assert_fit_rejects(_model(), ds, "dict")


def test_bad_input_empty_dataset():
    ds = tf.data.Dataset.from_tensor_slices(np.zeros((0, 2), np.float32)).batch(4)
    _assert_fit_rejects(_model(), ds, "empty")


def test_bad_option_unknown_conditional():
    with pytest.raises(ValueError, match="Unknown conditional.*valid names"):
        SIG(mlp_generator(LATENT_DIM, 2, (4,)), "laplace", latent_dim=LATENT_DIM)


@pytest.mark.parametrize("num_samples", [0, -3])
def test_bad_option_num_samples(num_samples):
    with pytest.raises(ValueError, match="num_samples"):
        SIG(mlp_generator(LATENT_DIM, 2, (4,)), "normal", latent_dim=LATENT_DIM,
            num_samples=num_samples)


def test_bad_option_latent_dim_mismatch():
    with pytest.raises(ValueError, match="noise dimension"):
        SIG(mlp_generator(LATENT_DIM, 2, (4,)), "normal", latent_dim=LATENT_DIM + 1)
    with pytest.raises(ValueError, match="noise dimension"):
        SIG(mlp_generator(LATENT_DIM, 2, (4,)), "normal", latent_dim=0)


@pytest.mark.parametrize("scale", [0.0, -0.1, float("nan")])
def test_bad_option_scale(scale):
    with pytest.raises(ValueError, match="scale"):
        SIG(mlp_generator(LATENT_DIM, 2, (4,)), layers.NormalConditional(scale),
            latent_dim=LATENT_DIM)


def test_bad_option_gather_psi():
    with pytest.raises(ValueError, match="gather_psi"):
        SIG(mlp_generator(LATENT_DIM, 2, (4,)), "normal", latent_dim=LATENT_DIM,
            gather_psi="yes")


def test_get_config_round_trips_gather_psi():
    model = _model(gather_psi=False)
    assert model.get_config()["gather_psi"] is False
    assert h.run_serialization_test(model).gather_psi is False


def test_bad_option_loss_in_compile():
    model = SIG(mlp_generator(LATENT_DIM, 2, (4,)), "normal", latent_dim=LATENT_DIM)
    with pytest.raises(ValueError, match="loss"):
        model.compile(optimizer="adam", loss="mse")


def test_bad_option_generator_type():
    with pytest.raises(ValueError, match="generator"):
        SIG("not a model", "normal", latent_dim=LATENT_DIM)
