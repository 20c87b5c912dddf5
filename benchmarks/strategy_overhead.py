"""Strategy overhead: steps/s of SIG and DCGAN-SI on 1 vs 2 replicas.

All configurations run on the same CPU cores: "1 replica" is the default
strategy on `/cpu:0`, "2 replicas" the `MirroredStrategy` that
`sig_keras.distribute.get_strategy("mirrored")` builds over two logical CPU
devices of the same processor (gradients reduced on one device), and, with
`--collective`, "2 replicas, collective" a `MirroredStrategy` with
TensorFlow's default collective all-reduce (the path GPUs and
`MultiWorkerMirroredStrategy` take). The work per step is the same global
batch, so the difference is the cost of the strategy itself (per-replica graph
copies, the all-reduce of the gradients, the all-gather of psi, the sync
batch-norm statistics), not a speed-up.

    python benchmarks/strategy_overhead.py [--steps 50] [--repeats 10] [--collective]
        [--malloc-top-pad-mib 64]  (0: glibc's malloc defaults)

Models (realistic batch, small networks):
- SIG: the paper's toy generator (10 -> 100 -> 100 -> 2), K = 1000 psi
  samples, data batch 256, Normal conditional; psi all-gathered.
- SIG, replicated psi: the same with `gather_psi=False` (every replica runs
  the generator on all K noise vectors; no psi collective).
- DCGAN-SI: `dcgan_generator`/`dcgan_discriminator` at 16x16x3 with 8 base
  filters (synchronized batch norm), latent 64, batch 64, sig_weight="auto".

Other `--models` (diagnostics): `dcgan` (no SIG term), `dcgan_si_no_d_bn`
(no batch norm in the discriminator), `sig_batch1024`, `dcgan_si_32px`
(32x32x3, 32 base filters: CIFAR-10's shape). The strategy costs a roughly
fixed time per step (one all-reduce per synchronized batch-norm call, the
gradient all-reduce, the psi all-gather), so its share falls as the step
grows.

Threads: by default each op runs on one thread and two ops run at once
(`--intra-op-threads 1 --inter-op-threads 2`). These steps are made of small
ops, for which splitting one op over both cores costs more than it gains
(one thread per op makes the 1-replica DCGAN-SI step faster on a 2-core
CPU), and with TensorFlow's default (one thread per core per op) two
replicas oversubscribe the cores, which the overhead figure would then
mostly measure. `--intra-op-threads 0 --inter-op-threads 0` restores
TensorFlow's defaults.

Host memory: glibc's malloc by default gives the free top of every arena
back to the kernel after each step, which several replicas (allocating from
several threads, hence several arenas) pay for in page faults every step. The
benchmark measures the setting `get_strategy` makes for several replicas on
CPUs: it calls `sig_keras.distribute.set_malloc_top_pad(64 MiB)` (the
`MALLOC_TOP_PAD_` setting) before any model is built. `--malloc-top-pad-mib 0` leaves glibc's
defaults alone (the toy SIG step's overhead is then about twice as large).

After a warm-up fit (tracing), the configurations alternate `repeats` rounds
of `steps` steps each; a step's time runs from one batch end to the next, and
each configuration's figure is its median step time over all rounds (the
machine is shared and its speed drifts; interleaved medians are robust to
both). Overhead = 1 - (1-replica median step time) / (2-replica median step
time), i.e. the share of 1-replica throughput lost.
"""

import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tensorflow as tf  # noqa: E402

_cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    _cpu, [tf.config.LogicalDeviceConfiguration()] * 2
)

import keras  # noqa: E402
import numpy as np  # noqa: E402

from sig_keras import distribute  # noqa: E402
from sig_keras.models import SIG  # noqa: E402
from sig_keras.networks import dcgan_discriminator  # noqa: E402
from sig_keras.networks import dcgan_generator  # noqa: E402
from sig_keras.networks import mlp_generator  # noqa: E402
from sig_keras.models.gan import GAN  # noqa: E402


class StepTimer(keras.callbacks.Callback):
    """Durations (s) of the steps of a fit, from one batch end to the next."""

    def on_train_begin(self, logs=None):
        self.times = []

    def on_train_batch_end(self, batch, logs=None):
        self.times.append(time.perf_counter())

    def durations(self):
        return np.diff(self.times)


def make_sig(batch=256, gather_psi=True):
    model = SIG(mlp_generator(10, 2), "normal", latent_dim=10, num_samples=1000,
                seed=0, gather_psi=gather_psi)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch * 8, 2)).astype(np.float32)
    return model, x, batch


def make_dcgan_si(sig_weight="auto", d_batch_norm=True, size=16, filters=8):
    shape = (size, size, 3)
    model = GAN(
        dcgan_generator(latent_dim=64, base_filters=filters, image_shape=shape),
        dcgan_discriminator(image_shape=shape, base_filters=filters,
                            batch_norm=d_batch_norm),
        latent_dim=64, sig_weight=sig_weight, seed=0,
    )
    model.compile(
        d_optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5),
        g_optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5),
    )
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (64 * 4,) + shape).astype(np.float32)
    return model, x, 64


MODELS = {
    "sig": make_sig,
    "sig_replicated_psi": lambda: make_sig(gather_psi=False),
    "dcgan_si": make_dcgan_si,
    # Diagnostics: where the DCGAN-SI overhead comes from.
    "dcgan": lambda: make_dcgan_si(sig_weight=0.0),
    "dcgan_si_no_d_bn": lambda: make_dcgan_si(d_batch_norm=False),
    # Larger steps: the strategy's cost per step is roughly fixed.
    "sig_batch1024": lambda: make_sig(batch=1024),
    "dcgan_si_32px": lambda: make_dcgan_si(size=32, filters=32),
}


def setup(make, strategy, steps):
    """The model and a `fit` closure timing `steps` steps, warmed up."""
    with strategy.scope():
        model, x, batch = make()
        distribute.build_optimizers(model, strategy)
    dataset = (
        tf.data.Dataset.from_tensor_slices(x)
        .batch(batch, drop_remainder=True)
        .repeat()
        .prefetch(2)
    )
    timer = StepTimer()

    def run():
        model.fit(dataset, epochs=1, steps_per_epoch=steps, callbacks=[timer],
                  verbose=0)
        return timer.durations()

    run()  # warm-up: tracing
    return run


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=50,
                        help="steps per round")
    parser.add_argument("--repeats", type=int, default=10,
                        help="rounds per configuration, interleaved")
    parser.add_argument("--models", default="sig,sig_replicated_psi,dcgan_si")
    parser.add_argument("--json", default=None, help="also write results here")
    parser.add_argument(
        "--collective", action="store_true",
        help="also time MirroredStrategy with TensorFlow's default collective "
        "all-reduce (what GPUs and multi-worker training use)",
    )
    parser.add_argument(
        "--intra-op-threads", type=int, default=1,
        help="threads per op (0: TensorFlow's default, one per core)",
    )
    parser.add_argument(
        "--inter-op-threads", type=int, default=2,
        help="ops run concurrently (0: TensorFlow's default, one per core)",
    )
    parser.add_argument(
        "--malloc-top-pad-mib", type=int, default=64,
        help="free memory (MiB) each glibc malloc arena keeps instead of "
        "returning it to the kernel (0: leave glibc's defaults alone)",
    )
    args = parser.parse_args()
    if not 0 <= args.malloc_top_pad_mib < 2048:
        parser.error("--malloc-top-pad-mib must be in [0, 2048) (a C int of bytes)")
    if args.malloc_top_pad_mib:
        distribute.set_malloc_top_pad(args.malloc_top_pad_mib << 20)
    # Before any op runs. See the module docstring for why one thread per op.
    tf.config.threading.set_intra_op_parallelism_threads(args.intra_op_threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.inter_op_threads)
    print(f"CPU: {os.cpu_count()} cores, intra-op threads "
          f"{args.intra_op_threads or 'default'}, inter-op threads "
          f"{args.inter_op_threads or 'default'}, malloc top pad "
          f"{f'{args.malloc_top_pad_mib} MiB' if args.malloc_top_pad_mib else 'glibc default'}",
          flush=True)

    devices = ["/cpu:0", "/cpu:1"]
    strategies = {
        "1 replica": tf.distribute.OneDeviceStrategy("/cpu:0"),
        # What `get_strategy("mirrored")` gives on CPUs: reduce to one device
        # (the malloc pad is the flag's, set above).
        "2 replicas": distribute.get_strategy("mirrored", devices=devices,
                                              malloc_top_pad=False),
    }
    if args.collective:
        strategies["2 replicas, collective"] = tf.distribute.MirroredStrategy(
            devices
        )
    results = {}
    for name in args.models.split(","):
        runs = {label: setup(MODELS[name], strategy, args.steps)
                for label, strategy in strategies.items()}
        # Alternate the configurations in short rounds and compare median
        # step times over all rounds: the machine is shared and its speed
        # drifts, a median of interleaved steps is robust to both.
        durations = {label: [] for label in runs}
        for _ in range(args.repeats):
            for label, run in runs.items():
                durations[label].extend(run())
        median_ms = {label: 1e3 * float(np.median(d)) for label, d in durations.items()}
        one = median_ms["1 replica"]
        results[name] = {
            "median_step_ms": median_ms,
            "steps_per_second": {k: 1e3 / v for k, v in median_ms.items()},
            "step_ms_quartiles": {
                k: [1e3 * float(q) for q in np.percentile(d, [25, 75])]
                for k, d in durations.items()
            },
            "overhead_pct": {},
        }
        line = f"{name:18s} 1 replica {1e3 / one:7.1f} steps/s ({one:5.2f} ms)"
        for label, ms in median_ms.items():
            if label == "1 replica":
                continue
            overhead = 100.0 * (1.0 - one / ms)
            results[name]["overhead_pct"][label] = overhead
            line += (f" | {label} {1e3 / ms:7.1f} steps/s ({ms:5.2f} ms), "
                     f"overhead {overhead:5.1f}%")
        print(line, flush=True)
    if args.json:
        settings = {
            "cpu_count": os.cpu_count(),
            "steps": args.steps,
            "repeats": args.repeats,
            "intra_op_threads": args.intra_op_threads,
            "inter_op_threads": args.inter_op_threads,
            "malloc_top_pad_mib": args.malloc_top_pad_mib,
        }
        with open(args.json, "w") as f:
            json.dump({"settings": settings, "models": results}, f, indent=2)


if __name__ == "__main__":
    main()
