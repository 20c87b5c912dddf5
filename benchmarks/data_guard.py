"""Benchmark: cost of the data guard (every batch checked inside the step).

Times one `train_step` (graph mode, no XLA) with `model.data_guard` on and
off, for the main job's SIG step (Table 1: batch 256, K = 1024, the 2 x 100
MLP, Normal conditional) and for the DCGAN-SI step at CIFAR-10 shapes (batch
64, 32x32x3, data_range (-1, 1)). Guarded and unguarded steps run in
alternating rounds so that machine load affects both alike; the report gives
the median ratio over rounds and its range (target: under 1.03), and the
time of the guard alone per batch against the unguarded step (on a shared
machine the step-time ratio can be noisier than the guard's cost).

    python benchmarks/data_guard.py --steps 20 --rounds 5
"""

import argparse
import time

import keras
import numpy as np
import tensorflow as tf

import machine  # benchmarks/machine.py (the script's directory is on sys.path)
from sig_keras import datasets
from sig_keras import distribute
from sig_keras.layers import NormalConditional
from sig_keras.models import GAN
from sig_keras.models import SIG
from sig_keras.networks import dcgan_discriminator
from sig_keras.networks import dcgan_generator
from sig_keras.networks import mlp_generator


def make_sig():
    model = SIG(mlp_generator(10, 2), NormalConditional(0.1), latent_dim=10,
                num_samples=1024, seed=0)
    batch = datasets.gaussian_grid(std=0.1).sample(256, seed=0).astype("float32")
    return model, batch, "loss"


def make_gan_si():
    model = GAN(dcgan_generator(128), dcgan_discriminator(), 128, sig_weight="auto",
                data_range=(-1.0, 1.0), seed=0)
    rng = np.random.default_rng(0)
    batch = rng.uniform(-1, 1, (64, 32, 32, 3)).astype("float32")
    return model, batch, "g_loss"


MODELS = {"sig": ("SIG toy step (batch 256, K 1024)", make_sig),
          "gan_si": ("DCGAN-SI step (CIFAR shapes, batch 64)", make_gan_si)}


def build(make, guard):
    keras.utils.set_random_seed(0)
    model, batch, key = make()
    model.compile(jit_compile=False)
    model.data_guard = guard
    distribute.build_optimizers(model)
    return tf.function(model.train_step), tf.constant(batch), key


def time_steps(step, batch, key, steps):
    start = time.perf_counter()
    for _ in range(steps):
        float(step(batch)[key])  # wait for the result
    return (time.perf_counter() - start) / steps


def time_guard(make, calls=200, rounds=3):
    """Time of the guard alone per batch: `data_batch` in a `tf.function`
    minus the same call without the checks, interleaved rounds, median."""
    keras.utils.set_random_seed(0)
    model, batch, _ = make()
    model.compile(jit_compile=False)
    model.build()
    batch = tf.constant(batch)
    guarded = tf.function(lambda x: tf.reduce_sum(model.data_batch(x)))
    bare = tf.function(lambda x: tf.reduce_sum(x))

    def per_call(fn):
        start = time.perf_counter()
        for _ in range(calls):
            float(fn(batch))
        return (time.perf_counter() - start) / calls

    per_call(guarded), per_call(bare)  # trace and warm up
    return float(np.median([per_call(guarded) - per_call(bare) for _ in range(rounds)]))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--models", default="sig,gan_si")
    args = parser.parse_args()
    print(f"device: {machine.describe()}; graph mode, no XLA")
    for name in args.models.split(","):
        label, make = MODELS[name]
        runs = {guard: build(make, guard) for guard in (True, False)}
        for guard in runs:
            time_steps(*runs[guard], 3)  # trace and warm up
        ratios, times = [], {True: [], False: []}
        for _ in range(args.rounds):
            for guard in (True, False):
                times[guard].append(time_steps(*runs[guard], args.steps))
            ratios.append(times[True][-1] / times[False][-1])
        on, off = np.median(times[True]), np.median(times[False])
        guard = time_guard(make)
        print(f"{label}: guarded {on * 1e3:.2f} ms/step, unguarded {off * 1e3:.2f} ms/step, "
              f"ratio median {np.median(ratios):.3f} (range {min(ratios):.3f}-"
              f"{max(ratios):.3f} over {args.rounds} rounds); the guard alone "
              f"{guard * 1e3:.3f} ms per batch ({guard / off:.2%} of the unguarded step)")


if __name__ == "__main__":
    main()
