"""MirroredStrategy equals one device; strategy names; determinism.

The equality tests run in-process on the 2 logical CPUs of conftest: the same
model is built on one device and under a 2-replica `MirroredStrategy`, given
the same initial variables (seed generator states included), and trained a
few steps on the same global batches. Tolerance: `rtol=1e-4, atol=1e-5` on
every variable (float32; the two runs differ only by summation order in the
all-reduce and the gathered likelihood matrix).
"""

import json
import sys

import numpy as np
import pytest
import tensorflow as tf

from sig_keras import distribute
from tests import harness as h
from tests._train_worker import build_model

STEPS, BATCH = 3, 32


def _data():
    rng = np.random.default_rng(0)
    x = rng.uniform(-0.9, 0.9, (STEPS * BATCH, 2)).astype(np.float32)
    return h.batched(x, BATCH)


@pytest.mark.parametrize(
    "strategy_fixture", ["two_cpu_strategy", "two_cpu_collective_strategy"],
    ids=["reduce_to_one", "collective"],
)
@pytest.mark.parametrize(
    "kind, gather_psi", [("sig", True), ("sig", False), ("gan_si", True)],
    ids=["sig", "sig_replicated_psi", "gan_si"],
)
def test_mirrored_equals_single_device(kind, gather_psi, strategy_fixture, request):
    h.run_mirrored_matches_single_device_test(
        lambda: build_model(kind, seed=3, gather_psi=gather_psi),
        request.getfixturevalue(strategy_fixture), _data(),
    )


def test_metric_logs_are_scalars_outside_multiworker(two_cpu_strategy):
    with two_cpu_strategy.scope():
        model = build_model("sig", seed=3)
    history = model.fit(_data(), epochs=1, verbose=0)
    assert np.ndim(history.history["loss"][0]) == 0


def test_get_strategy_names(monkeypatch):
    assert distribute.get_strategy("default") is tf.distribute.get_strategy()
    mirrored = distribute.get_strategy("mirrored")
    assert isinstance(mirrored, tf.distribute.MirroredStrategy)
    assert mirrored.num_replicas_in_sync == 2  # both logical CPUs
    # CPU-only replicas reduce on one device; an explicit choice is kept.
    assert isinstance(mirrored.extended._cross_device_ops,
                      tf.distribute.ReductionToOneDevice)
    explicit = tf.distribute.HierarchicalCopyAllReduce()
    chosen = distribute.get_strategy("mirrored", cross_device_ops=explicit)
    assert chosen.extended._cross_device_ops is explicit
    with pytest.raises(ValueError, match="`cross_device_ops` only applies"):
        distribute.get_strategy("default", cross_device_ops=explicit)
    with pytest.raises(ValueError, match=r"valid: \['default', 'mirrored', 'multiworker'\]"):
        distribute.get_strategy("tpu")
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ValueError, match="needs the TF_CONFIG"):
        distribute.get_strategy("multiworker")
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        distribute.get_strategy("multiworker")


def test_get_strategy_rejects_a_cross_device_ops_name():
    with pytest.raises(ValueError, match="must be a tf.distribute.CrossDeviceOps.*'nccl'"):
        distribute.get_strategy("mirrored", cross_device_ops="nccl")


_MALLOC_MEASURE = """
before = released()
distribute.set_malloc_top_pad(64 << 20)
after = released()
print(before, after)
"""


@pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="glibc's mallopt (Linux)"
)
def test_set_malloc_top_pad_keeps_freed_heap_mapped():
    # glibc gives back freed heap memory at once by default; with a 64 MiB
    # top pad, 32 MB freed stays mapped. In fresh processes
    # (`harness.run_malloc_probes`).
    results = h.run_malloc_probes("from sig_keras import distribute\n", _MALLOC_MEASURE)
    before, after = results[-1]
    if not (before > 24e6 and after < 4e6):
        pytest.fail(f"freed heap (bytes returned to the system) before and after "
                    f"the 64 MiB top pad, per probe: {results}")


@pytest.mark.parametrize("value", [-1, 2**31, 1.5, True, "64", None])
def test_set_malloc_top_pad_rejects_bad_sizes(value):
    with pytest.raises(ValueError, match=r"`num_bytes` must be an int in \[0, 2\*\*31\)"):
        distribute.set_malloc_top_pad(value)


def test_set_malloc_top_pad_needs_glibc(monkeypatch):
    monkeypatch.setattr(distribute.host.platform, "libc_ver", lambda: ("", ""))
    with pytest.raises(RuntimeError, match="needs glibc's mallopt"):
        distribute.set_malloc_top_pad(64 << 20)


@pytest.mark.parametrize(
    "config, match",
    [
        ({"cluster": {"worker": ["localhost:1"]}}, "'cluster' and a 'task'"),
        ({"cluster": {"worker": ["localhost"]}, "task": {"type": "worker", "index": 0}},
         "host:port"),
        ({"cluster": {"worker": ["localhost:1"]}, "task": {"type": "worker", "index": 1}},
         r"index must be an int in \[0, 1\)"),
        ({"cluster": {"worker": ["localhost:1"]}, "task": {"type": "ps", "index": 0}},
         "'worker' or 'chief'"),
    ],
)
def test_parse_tf_config_errors(config, match):
    with pytest.raises(ValueError, match=match):
        distribute.parse_tf_config(json.dumps(config))


def test_parse_tf_config_valid():
    config = {"cluster": {"worker": ["localhost:1", "localhost:2"]},
              "task": {"type": "worker", "index": 1}}
    assert distribute.parse_tf_config(json.dumps(config)) == config


def test_build_optimizers_builds_second_optimizer(two_cpu_strategy):
    with two_cpu_strategy.scope():
        model = build_model("gan_si", seed=3)
    distribute.build_optimizers(model)
    opts = {attr: (opt, variables) for attr, opt, variables in
            distribute.model_optimizers(model)}
    assert set(opts) == {"d_optimizer", "optimizer"}
    assert all(opt.built for opt, _ in opts.values())
    d_vars = {id(v) for v in model.discriminator.trainable_variables}
    assert {id(v) for v in opts["d_optimizer"][1]} == d_vars


def test_determinism_same_seed_same_weights(tmp_path):
    """Two processes, same seed: bit-identical model, optimizer and seed state."""
    outs = [str(tmp_path / f"run{i}.npz") for i in range(2)]
    procs = [h.start_worker(["--model", "sig", "--epochs", "1", "--seed", "7", "--out", out])
             for out in outs]
    for p, output in zip(procs, h.wait_all(procs, timeout=180)):
        assert p.returncode == 0, output[-3000:]
    a, b = (np.load(o) for o in outs)
    assert a.files == b.files and len(a.files) > 10
    for key in a.files:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
