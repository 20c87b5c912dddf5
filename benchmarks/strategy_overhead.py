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

    python benchmarks/strategy_overhead.py [--steps 30] [--repeats 3] [--collective]

Models (realistic batch, small networks):
- SIG: the paper's toy generator (10 -> 100 -> 100 -> 2), K = 1000 psi
  samples, data batch 256, Normal conditional.
- DCGAN-SI: `dcgan_generator`/`dcgan_discriminator` at 16x16x3 with 8 base
  filters (synchronized batch norm), latent 64, batch 64, sig_weight="auto".

Other `--models` (diagnostics): `dcgan` (no SIG term), `dcgan_si_no_d_bn`
(no batch norm in the discriminator), `sig_batch1024`, `dcgan_si_32px`
(32x32x3, 32 base filters: CIFAR-10's shape). The strategy costs a roughly
fixed time per step (three all-reduces per synchronized batch-norm call, the
gradient all-reduce, the psi all-gather), so its share falls as the step
grows.

After a warm-up fit (tracing), the configurations alternate `repeats`
rounds of `steps` steps each; steps/s (timed from the first to the last batch
end of a round) is each one's best round (the machine is shared, so the best
is the least disturbed). Overhead = 1 - (2-replica steps/s) /
(1-replica steps/s).
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
from sig_keras.models import dcgan_discriminator  # noqa: E402
from sig_keras.models import dcgan_generator  # noqa: E402
from sig_keras.models import mlp_generator  # noqa: E402
from sig_keras.models.gan import GAN  # noqa: E402


class StepTimer(keras.callbacks.Callback):
    """Steps/s between the end of the first and of the last batch of a fit."""

    def on_train_begin(self, logs=None):
        self.times = []

    def on_train_batch_end(self, batch, logs=None):
        self.times.append(time.perf_counter())

    def steps_per_second(self):
        return (len(self.times) - 1) / (self.times[-1] - self.times[0])


def make_sig(batch=256):
    model = SIG(mlp_generator(10, 2), "normal", noise_dim=10, num_samples=1000, seed=0)
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
        return timer.steps_per_second()

    run()  # warm-up: tracing
    return run


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--models", default="sig,dcgan_si")
    parser.add_argument("--json", default=None, help="also write results here")
    parser.add_argument(
        "--collective", action="store_true",
        help="also time MirroredStrategy with TensorFlow's default collective "
        "all-reduce (what GPUs and multi-worker training use)",
    )
    args = parser.parse_args()

    devices = ["/cpu:0", "/cpu:1"]
    strategies = {
        "1 replica": tf.distribute.OneDeviceStrategy("/cpu:0"),
        # What `get_strategy("mirrored")` gives on CPUs: reduce to one device.
        "2 replicas": distribute.get_strategy("mirrored", devices=devices),
    }
    if args.collective:
        strategies["2 replicas, collective"] = tf.distribute.MirroredStrategy(
            devices
        )
    results = {}
    for name in args.models.split(","):
        runs = {label: setup(MODELS[name], strategy, args.steps)
                for label, strategy in strategies.items()}
        # Alternate the configurations, keep each one's best round: the
        # machine is shared, the best round is the least disturbed.
        rates = {label: [] for label in runs}
        for _ in range(args.repeats):
            for label, run in runs.items():
                rates[label].append(run())
        best = {label: max(r) for label, r in rates.items()}
        one = best["1 replica"]
        results[name] = {"steps_per_second": best, "rounds": rates,
                         "overhead_pct": {}}
        line = f"{name:14s} 1 replica {one:8.2f} steps/s"
        for label, rate in best.items():
            if label == "1 replica":
                continue
            overhead = 100.0 * (1.0 - rate / one)
            results[name]["overhead_pct"][label] = overhead
            line += f" | {label} {rate:8.2f} steps/s, overhead {overhead:5.1f}%"
        print(line, flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
