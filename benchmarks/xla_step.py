"""Benchmark: a training step with XLA (`jit_compile=True`) against without.

Times the function `fit` runs (`model.train_function` on a dataset iterator,
`steps_per_execution` steps per call) for two copies of the same model, one
compiled with `jit_compile=False` (graph mode) and one with
`jit_compile=True` (XLA), in interleaved rounds in one process: every round
runs `--steps` calls of each, so that the load of a shared machine falls on
both alike. Reports each one's median time per training step and the median
and range over rounds of the per-round ratio XLA / graph (goal <= 1.0).

Models:
- `sig`: the main job's SIG step (Table 1: batch 256, K = 1024, the 2 x 100
  MLP on 10-d noise, Normal conditional).
- `gan_si_toy`: GAN-SI with the Table 1 networks (2 x 100 MLP generator,
  1 x 100 discriminator, batch 256, 2-D grid data, `sig_weight="auto"`,
  Normal conditional 0.1): the GAN-SI step without convolutions.
- `dcgan_si`: DCGAN-SI at CIFAR-10 shapes (batch 64, 32x32x3, the DCGAN
  networks, `sig_weight="auto"`).
- `dcgan`: plain DCGAN, the same networks without the SIG term (reference:
  how much of the XLA / graph ratio the convolutions alone make).
- `wgan_gp_si`: WGAN-GP-SI at the same shapes (5 critic steps per call).

`--noise` times the SIG step's noise draw (1024 x 10 normals from a
`SeedGenerator`) with `keras.random.normal` and with
`sig_keras.utils.random.normal`, in graph mode and under XLA.

`--bare` adds, for `sig`, the same step written as a bare `tf.function` loop
(graph and XLA), and the model's own `train_step` in a plain `tf.function`
loop (without Keras' `train_function` around it), and reports each, and
`fit`'s step, against the bare loop: what the model's step costs beyond the
math, and what Keras' per-call dispatch adds (amortised by
`steps_per_execution`).

    python benchmarks/xla_step.py --models sig --steps 30 --rounds 9 --bare
    python benchmarks/xla_step.py --models dcgan_si,wgan_gp_si --steps 3 --rounds 5
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import machine  # noqa: E402  (benchmarks/machine.py)
from sig_keras import datasets  # noqa: E402
from sig_keras import networks  # noqa: E402
from sig_keras.layers import NormalConditional  # noqa: E402
from sig_keras.models import GAN  # noqa: E402
from sig_keras.models import SIG  # noqa: E402
from sig_keras.losses import semi_implicit_loss  # noqa: E402
from sig_keras.models import WGANGP  # noqa: E402
from sig_keras.utils import random as random_lib  # noqa: E402


def make_sig():
    model = SIG(networks.mlp_generator(10, 2), NormalConditional(0.1), latent_dim=10,
                num_samples=1024, seed=0)
    data = datasets.gaussian_grid(std=0.1).sample(256 * 20, seed=0).astype("float32")
    return model, data, 256, "loss"


def _images(batch_size):
    rng = np.random.default_rng(0)
    return rng.uniform(-1, 1, (batch_size * 4, 32, 32, 3)).astype("float32")


def make_dcgan_si():
    model = GAN(networks.dcgan_generator(128), networks.dcgan_discriminator(), 128,
                sig_weight="auto", seed=0)
    return model, _images(64), 64, "g_loss"


def make_dcgan():
    model = GAN(networks.dcgan_generator(128), networks.dcgan_discriminator(), 128, seed=0)
    return model, _images(64), 64, "g_loss"


def make_gan_si_toy():
    model = GAN(networks.mlp_generator(10, 2), networks.mlp_discriminator(2), 10,
                sig_weight="auto", conditional=NormalConditional(0.1), data_range=None,
                seed=0)
    data = datasets.gaussian_grid(std=0.1).sample(256 * 20, seed=0).astype("float32")
    return model, data, 256, "g_loss"


def make_wgan_gp_si():
    model = WGANGP(networks.dcgan_generator(128), networks.dcgan_critic(), 128,
                   critic_steps=5, sig_weight="auto", seed=0)
    return model, _images(64), 64, "g_loss"


MODELS = {"sig": make_sig, "gan_si_toy": make_gan_si_toy, "dcgan_si": make_dcgan_si,
          "dcgan": make_dcgan, "wgan_gp_si": make_wgan_gp_si}


def batches(data, batch_size):
    """An endless iterator over full batches of `data`, in order."""
    return iter(tf.data.Dataset.from_tensor_slices(data).batch(
        batch_size, drop_remainder=True).repeat().prefetch(2))


def build(name, jit_compile, steps_per_execution):
    """`(call, output key)`: `call()` runs one `train_function` call."""
    keras.utils.set_random_seed(0)
    model, data, batch_size, key = MODELS[name]()
    model.compile(jit_compile=jit_compile, steps_per_execution=steps_per_execution)
    model.build()
    if hasattr(model, "build_optimizers"):  # adversarial models: two optimizers
        model.build_optimizers()
    else:
        model.optimizer.build(model.trainable_variables)
    model.make_train_function()
    iterator = batches(data, batch_size)
    return (lambda: model.train_function(iterator)), key


def build_bare_sig(jit_compile, steps_per_execution):
    """The SIG step written as a bare loop (a `tf.function` over the same
    networks, noise, loss and optimizer, no Keras `fit` machinery): the
    floor `fit`'s step is compared with."""
    keras.utils.set_random_seed(0)
    model, data, batch_size, _ = make_sig()
    model.build()
    generator, conditional = model.generator, model.conditional
    optimizer = keras.optimizers.Adam()
    optimizer.build(generator.trainable_variables)
    seed = keras.random.SeedGenerator(0)
    iterator = batches(data, batch_size)

    @tf.function(jit_compile=jit_compile)
    def step(x):
        with tf.GradientTape() as tape:
            psi = generator(random_lib.normal((model.num_samples, 10), seed=seed),
                            training=True)
            loss = semi_implicit_loss(x, psi, conditional)
        grads = tape.gradient(loss, generator.trainable_variables)
        optimizer.apply_gradients(zip(grads, generator.trainable_variables))
        return loss

    @tf.function
    def run():
        loss = tf.constant(0.0)
        for _ in tf.range(steps_per_execution):
            loss = step(next(iterator))
        return {"loss": loss}

    return run, "loss"


def build_train_step(name, jit_compile, steps_per_execution):
    """The model's own `train_step` in a plain `tf.function` loop, without
    Keras' `train_function` (its per-call dispatch) around it."""
    keras.utils.set_random_seed(0)
    model, data, batch_size, key = MODELS[name]()
    model.compile(jit_compile=jit_compile)
    model.build()
    model.optimizer.build(model.trainable_variables)
    iterator = batches(data, batch_size)
    step = tf.function(model.train_step, jit_compile=jit_compile)

    @tf.function
    def run():
        logs = step(next(iterator))
        for _ in tf.range(steps_per_execution - 1):
            logs = step(next(iterator))
        return logs

    return run, key


def noise_timings(rounds, calls):
    """Median ms of drawing the SIG step's 1024 x 10 normals from a
    `SeedGenerator`: `keras.random.normal` and `sig_keras.utils.random.normal`
    (Philox), each in graph mode and under XLA."""
    draws = {}
    for label, draw in (("keras.random.normal", keras.random.normal),
                        ("utils.random.normal (Philox)", random_lib.normal)):
        for mode, jit in (("graph", False), ("XLA", True)):
            seed = keras.random.SeedGenerator(0)
            fn = tf.function(lambda draw=draw, seed=seed: {"x": draw((1024, 10), seed=seed)},
                             jit_compile=jit)
            time_calls(fn, "x", 2)
            draws[f"{label}, {mode}"] = (fn, [])
    for _ in range(rounds):
        for fn, times in draws.values():
            times.append(time_calls(fn, "x", calls))
    for label, (_, times) in draws.items():
        print(f"noise {label:36s} {np.median(times) * 1e3:7.3f} ms")


def time_calls(call, key, calls):
    start = time.perf_counter()
    for _ in range(calls):
        logs = call()
    np.asarray(logs[key])  # wait for the result
    return (time.perf_counter() - start) / calls


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="sig,dcgan_si,wgan_gp_si")
    parser.add_argument("--steps", type=int, default=10, help="calls per round")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps-per-execution", type=int, default=1)
    parser.add_argument("--noise", action="store_true",
                        help="also time the step's noise draw, keras.random vs Philox")
    parser.add_argument("--bare", action="store_true",
                        help="sig: also time the step as a bare tf.function loop")
    args = parser.parse_args()
    names = args.models.split(",")
    unknown = sorted(set(names) - set(MODELS))
    if unknown:
        parser.error(f"unknown --models {unknown}; valid: {sorted(MODELS)}")
    spe = args.steps_per_execution
    print(f"device: {machine.describe(tf.config.list_logical_devices()[0].device_type)}; "
          f"TensorFlow {tf.__version__}, Keras {keras.__version__}")
    print(f"{args.rounds} interleaved rounds of {args.steps} calls, "
          f"steps_per_execution {spe}")
    if args.noise:
        noise_timings(args.rounds, args.steps)
    for name in names:
        configs = [("graph", lambda: build(name, False, spe)),
                   ("xla", lambda: build(name, True, spe))]
        if name == "sig" and args.bare:
            configs += [("bare graph", lambda: build_bare_sig(False, spe)),
                        ("bare xla", lambda: build_bare_sig(True, spe)),
                        ("train_step graph", lambda: build_train_step(name, False, spe)),
                        ("train_step xla", lambda: build_train_step(name, True, spe))]
        runs = {}
        for label, make in configs:
            call, key = make()
            time_calls(call, key, 2)  # trace, compile, warm up
            runs[label] = (call, key, [])
        for _ in range(args.rounds):
            for label in runs:
                call, key, times = runs[label]
                times.append(time_calls(call, key, args.steps) / spe)
        times = {label: np.array(run[2]) for label, run in runs.items()}
        graph, xla = times["graph"], times["xla"]
        ratio = xla / graph
        print(f"{name:11s} graph {np.median(graph) * 1e3:8.2f} ms/step   "
              f"XLA {np.median(xla) * 1e3:8.2f} ms/step   XLA / graph median "
              f"{np.median(ratio):.3f} (range {ratio.min():.3f}-{ratio.max():.3f}, "
              f"goal <= 1.0)")
        for label in ("bare graph", "bare xla", "train_step graph", "train_step xla"):
            if label in times:
                mode = label.split()[1]
                bare = times[f"bare {mode}"]
                ratio = times[label] / bare
                fit_ratio = times[mode] / bare
                shown = ratio if label.startswith("train_step") else fit_ratio
                what = "/ bare" if label.startswith("train_step") else "fit / bare"
                print(f"{'':11s} {label}: {np.median(times[label]) * 1e3:.2f} ms/step; "
                      f"{what} median {np.median(shown):.3f} "
                      f"(range {shown.min():.3f}-{shown.max():.3f})")

if __name__ == "__main__":
    main()
