"""Benchmark: cost of the SIG term in one GAN training step (CIFAR-10 shapes).

Times one `train_step` (graph mode, no XLA) of DCGAN vs DCGAN-SI and WGAN-GP vs
WGAN-GP-SI with the same DCGAN networks, batch 64, 32x32x3 images, on the
current device (CPU here). Plain and SI steps are timed in interleaved
rounds in one process so that machine load affects both alike; reports each
one's median step time and the median and range over rounds of the
per-round ratio GAN-SI / GAN (goal <= 1.05).

    python benchmarks/gan_si_step.py --steps 10 --rounds 7
"""

import argparse
import time

import keras
import numpy as np
import tensorflow as tf

import machine  # benchmarks/machine.py (the script's directory is on sys.path)
from sig_keras.models import GAN
from sig_keras.models import WGANGP
from sig_keras.networks import dcgan_critic
from sig_keras.networks import dcgan_discriminator
from sig_keras.networks import dcgan_generator


def make(kind, sig_weight, latent_dim=128):
    keras.utils.set_random_seed(0)
    if kind == "dcgan":
        model = GAN(dcgan_generator(latent_dim), dcgan_discriminator(), latent_dim,
                    sig_weight=sig_weight, seed=0)
    else:
        model = WGANGP(dcgan_generator(latent_dim), dcgan_critic(), latent_dim,
                       critic_steps=5, sig_weight=sig_weight, seed=0)
    model.compile(jit_compile=False)
    model.build_optimizers()
    step = tf.function(model.train_step)
    return model, step


def time_steps(step, batch, steps):
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        out = step(batch)
        float(out["g_loss"])  # wait for the result
        times.append(time.perf_counter() - start)
    return times


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10, help="steps per round")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--models", default="dcgan,wgan_gp")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    batch = tf.constant(rng.uniform(-1, 1, (args.batch_size, 32, 32, 3)).astype("float32"))
    print(f"device: {machine.describe(tf.config.list_logical_devices()[0].device_type)}, "
          f"batch {args.batch_size}, 32x32x3, graph mode, {args.rounds} interleaved "
          f"rounds of {args.steps} steps")
    for kind in args.models.split(","):
        runs = {}
        for name, weight in (("plain", 0.0), ("si", "auto")):
            model, step = make(kind, weight)
            time_steps(step, batch, 2)  # trace + warm up
            runs[name] = (model, step, [])
        for _ in range(args.rounds):
            for name in ("plain", "si"):
                runs[name][2].append(float(np.median(
                    time_steps(runs[name][1], batch, args.steps))))
        plain, si = np.array(runs["plain"][2]), np.array(runs["si"][2])
        ratio = si / plain
        label = "DCGAN" if kind == "dcgan" else "WGAN-GP"
        print(f"{label:8s} plain {np.median(plain) * 1e3:8.1f} ms/step   {label}-SI "
              f"{np.median(si) * 1e3:8.1f} ms/step   ratio median {np.median(ratio):.3f} "
              f"(range {ratio.min():.3f}-{ratio.max():.3f}; goal <= 1.05)")

if __name__ == "__main__":
    main()
