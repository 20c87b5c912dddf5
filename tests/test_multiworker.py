"""MultiWorkerMirroredStrategy: two worker processes on localhost.

Each test starts two `tests/_train_worker.py` processes with a `TF_CONFIG`
naming both (free ports from binding port 0), trains a few steps, and checks
that both workers end with identical variables (model, optimizers, seed
generator) and that these equal a single-process run on the same global
batches (tolerance `rtol=1e-4, atol=1e-5`: only summation order differs).
The workers also run `FaultTolerantBackup` (one checkpoint per worker).
Both processes are killed at the end whatever happens.
"""

import json
import socket

import numpy as np
import pytest

from tests.harness import start_worker
from tests.harness import wait_all


def _free_ports(n):
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("localhost", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _finish(procs):
    outputs = wait_all(procs)
    for p, output in zip(procs, outputs):
        assert p.returncode == 0, output[-4000:]
    return outputs


@pytest.mark.parametrize(
    "model",
    [
        "sig",
        # Same mechanism as SIG plus a second optimizer; three processes of
        # a GAN take longer, so large to keep the default run short.
        pytest.param("gan_si", marks=pytest.mark.large),
    ],
)
def test_two_workers_end_identical(model, tmp_path):
    common = ["--model", model, "--epochs", "1", "--batches", "3"]
    ports = _free_ports(2)
    cluster = {"worker": [f"localhost:{p}" for p in ports]}
    out = str(tmp_path / "mw")
    backup = tmp_path / "backup"
    procs = [
        start_worker(
            common + ["--strategy", "multiworker", "--out", out,
                      "--backup-dir", str(backup), "--save-freq", "1"],
            {"TF_CONFIG": json.dumps(
                {"cluster": cluster, "task": {"type": "worker", "index": i}}
            )},
        )
        for i in range(2)
    ]
    # The single-process reference runs alongside (it does not join the cluster).
    single = start_worker(common + ["--out", str(tmp_path / "single.npz")], {"TF_CONFIG": ""})
    _finish(procs + [single])
    # Each worker saved its own checkpoint every step (a failed save crashes
    # the run) and deleted it when training completed.
    assert not backup.exists() or not any(backup.iterdir())
    w0 = np.load(f"{out}.worker0.npz")
    w1 = np.load(f"{out}.worker1.npz")
    ref = np.load(str(tmp_path / "single.npz"))
    assert w0.files == w1.files == ref.files
    for key in w0.files:
        np.testing.assert_array_equal(w0[key], w1[key], err_msg=key)
        np.testing.assert_allclose(w0[key], ref[key], rtol=1e-4, atol=1e-5, err_msg=key)
