"""Strategy overhead: steps/s of SIG and DCGAN-SI on 1 vs 2 replicas.

Both configurations run on the same CPU cores: "1 replica" is the default
strategy on `/cpu:0`, "2 replicas" a `MirroredStrategy` over two logical CPU
devices of the same processor. The work per step is the same global batch,
so the difference is the cost of the strategy itself (per-replica graph
copies, the all-reduce of the gradients, the all-gather of psi, the sync
batch-norm statistics), not a speed-up.

    python benchmarks/strategy_overhead.py [--steps 30] [--repeats 3]

Models (realistic batch, small networks):
- SIG: the paper's toy generator (10 -> 100 -> 100 -> 2), K = 1000 psi
  samples, data batch 256, Normal conditional.
- DCGAN-SI: `dcgan_generator`/`dcgan_discriminator` at 16x16x3 with 8 base
  filters (synchronized batch norm), latent 64, batch 64, sig_weight="auto".

Other `--models` (diagnostics): `dcgan` (no SIG term), `dcgan_si_no_d_bn`
(no batch norm in the discriminator), `sig_batch1024`, `dcgan_si_32px`
(32x32x3, 32 base filters). The strategy costs a roughly fixed time per step
(one collective per synchronized batch-norm call, the gradient all-reduce, the
psi all-gather), so its share falls as the step grows.

After a warm-up fit (tracing), the two configurations alternate `repeats`
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
    args = parser.parse_args()

    strategies = {
        "1 replica": tf.distribute.OneDeviceStrategy("/cpu:0"),
        "2 replicas": tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]),
    }
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
        one, two = max(rates["1 replica"]), max(rates["2 replicas"])
        results[name] = {"1 replica": one, "2 replicas": two,
                         "overhead_pct": 100.0 * (1.0 - two / one),
                         "rounds": rates}
        print(f"{name:10s} 1 replica {one:8.2f} steps/s   2 replicas {two:8.2f} "
              f"steps/s   overhead {results[name]['overhead_pct']:5.1f}%", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
