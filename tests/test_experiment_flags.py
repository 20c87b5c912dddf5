"""The command-line vocabulary of the examples (sig_keras.experiment flags)."""

import argparse
import json

import pytest

from sig_keras import experiment


def test_add_strategy_flag():
    parser = experiment.add_strategy_flag(argparse.ArgumentParser())
    assert parser.parse_args([]).strategy == "default"
    assert parser.parse_args(["--strategy", "mirrored"]).strategy == "mirrored"
    with pytest.raises(SystemExit):
        parser.parse_args(["--strategy", "tpu"])


def test_add_strategy_flag_rejects_multiworker_without_tf_config(monkeypatch, capsys):
    parser = experiment.add_strategy_flag(argparse.ArgumentParser())
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(SystemExit):
        parser.parse_args(["--strategy", "multiworker"])
    assert "argument --strategy: The 'multiworker' strategy needs the TF_CONFIG" in (
        capsys.readouterr().err
    )
    monkeypatch.setenv(
        "TF_CONFIG",
        json.dumps({"cluster": {"worker": ["localhost:1"]},
                    "task": {"type": "worker", "index": 0}}),
    )
    assert parser.parse_args(["--strategy", "multiworker"]).strategy == "multiworker"


def test_add_mnist_source_flags():
    parser = argparse.ArgumentParser()
    experiment.add_mnist_source_flags(parser)
    args = parser.parse_args([])
    assert (args.source, args.npz) == ("tfds", None)
    experiment.check_mnist_source_flags(parser, args)  # no error
    with pytest.raises(SystemExit):
        parser.parse_args(["--source", "kaggle"])


@pytest.mark.parametrize("argv, message", [
    (["--source", "npz"], "--source npz needs --npz PATH"),
    (["--npz", "x.npz"], "--npz is read only with --source npz"),
    (["--source", "npz", "--npz", "/nonexistent/mnist.npz"],
     "--npz /nonexistent/mnist.npz does not exist"),
])
def test_check_mnist_source_flags_names_the_problem(argv, message, capsys):
    parser = argparse.ArgumentParser()
    experiment.add_mnist_source_flags(parser)
    with pytest.raises(SystemExit) as exc:
        experiment.check_mnist_source_flags(parser, parser.parse_args(argv))
    assert exc.value.code == 2
    assert f"error: {message}\n" in capsys.readouterr().err


def test_mnist_source_flags_accept_an_existing_npz(tmp_path):
    path = tmp_path / "mnist.npz"
    path.write_bytes(b"")
    parser = argparse.ArgumentParser()
    experiment.add_mnist_source_flags(parser)
    args = parser.parse_args(["--source", "npz", "--npz", str(path)])
    experiment.check_mnist_source_flags(parser, args)  # no error
