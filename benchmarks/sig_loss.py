"""Benchmark: the semi-implicit loss (matrix-product Normal) vs naive broadcasting.

Times `sig_keras.losses.semi_implicit_loss` with a `NormalConditional` (the
`[N, K]` matrix of log-likelihoods from one `[N, D] x [D, K]` product,
`||x||^2 - 2 x.psi + ||psi||^2`) against the naive way: a broadcast
`tfd.Normal(loc=psi[None], scale).log_prob(x[:, None])` over an `[N, K, D]`
tensor, summed over `D`, then `logsumexp` over `K`. All run inside
`tf.function` (graph, no XLA), after a warm-up call. Data are image-like (`x`
uniform in [-1, 1], `psi = tanh(.)`), D = 32 * 32 * 3 by default (CIFAR-10).

Also times one bare `tf.matmul` of the same shapes (`[N, D] x [D, K]`), the
floor of the SIG term: the rest of its work (two squared norms, the scaling
of the `[N, K]` product, the `logsumexp`) should cost little beside it.
The three run in interleaved rounds in one process, so that the load of a
shared machine falls on all alike; ratios are taken per round.

Reports the SIG term / bare matmul ratio (goal <= 1.2), the speed-up over
the naive way (goal >= 10x), each as the median and range over rounds, and
the largest relative difference between the two losses and between the
`[N, K]` matrices (goal <= 1e-4), then a one-line summary.

With `--channels C` it also times the per-channel term
(`semi_implicit_loss(..., per_channel=True)` on the same numbers seen as
`[N, D / C, C]` images: C products of `[N, D / C] x [D / C, K]`, the same
FLOPs as the joint term's one) and reports its ratio to the joint term
(goal <= 1.2).

    python benchmarks/sig_loss.py                     # N = K = 256, D = 3072
    python benchmarks/sig_loss.py --rounds 30 --scale 0.1
    python benchmarks/sig_loss.py --rounds 30 --channels 3
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_probability as tfp  # noqa: E402

import machine  # noqa: E402  (benchmarks/machine.py)
from sig_keras.layers import NormalConditional  # noqa: E402
from sig_keras.losses import semi_implicit_loss  # noqa: E402

tfd = tfp.distributions


def naive_pairwise(x, psi, scale):
    """`[N, K]` log-likelihoods through an `[N, K, D]` broadcast TFP log_prob."""
    x = tf.reshape(x, [tf.shape(x)[0], -1])
    psi = tf.reshape(psi, [tf.shape(psi)[0], -1])
    return tf.reduce_sum(tfd.Normal(loc=psi[tf.newaxis], scale=scale).log_prob(
        x[:, tf.newaxis, :]), axis=-1)


def naive_loss(x, psi, scale):
    log_prob = naive_pairwise(x, psi, scale)
    k = tf.cast(tf.shape(log_prob)[1], tf.float32)
    return -tf.reduce_mean(tf.reduce_logsumexp(log_prob, axis=1) - tf.math.log(k))


def time_calls(fn, args, calls):
    """Mean seconds per call over `calls` back-to-back calls."""
    start = time.perf_counter()
    for _ in range(calls):
        out = fn(*args)
    out.numpy()  # wait for the result
    return (time.perf_counter() - start) / calls


def device_name():
    return machine.describe(tf.config.list_logical_devices()[0].device_type)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=256, help="data points N")
    parser.add_argument("--k", type=int, default=256, help="generated samples K")
    parser.add_argument("--d", type=int, default=3072, help="data dimension D")
    parser.add_argument("--scale", type=float, default=0.1, help="conditional std")
    parser.add_argument("--rounds", type=int, default=15, help="interleaved rounds")
    parser.add_argument("--calls", type=int, default=5, help="calls per round and method")
    parser.add_argument("--channels", type=int, default=None,
                        help="also time the per-channel term with D / C pixels of C channels")
    args = parser.parse_args()
    if args.channels is not None and (args.channels < 1 or args.d % args.channels):
        parser.error(f"--channels must be a positive divisor of --d ({args.d}); "
                     f"got {args.channels}")

    rng = np.random.default_rng(0)
    x = tf.constant(rng.uniform(-1, 1, (args.n, args.d)).astype(np.float32))
    psi = tf.constant(np.tanh(rng.normal(0, 1, (args.k, args.d))).astype(np.float32))
    cond = NormalConditional(scale=args.scale)

    methods = {
        "sig": tf.function(lambda x, psi: semi_implicit_loss(x, psi, cond)),
        "matmul": tf.function(lambda x, psi: tf.matmul(x, psi, transpose_b=True)),
        "naive": tf.function(lambda x, psi: naive_loss(x, psi, args.scale)),
    }
    if args.channels:
        shape = (-1, args.d // args.channels, args.channels)
        methods["per_channel"] = tf.function(lambda x, psi: semi_implicit_loss(
            tf.reshape(x, shape), tf.reshape(psi, shape), cond, per_channel=True))
        methods["per_channel"](x, psi).numpy()  # warm-up (trace)

    print(f"device: {device_name()}; TensorFlow {tf.__version__}, TFP {tfp.__version__}")
    print(f"N = {args.n}, K = {args.k}, D = {args.d}, scale = {args.scale}; "
          f"tf.function (no XLA), 1 warm-up, then {args.rounds} interleaved rounds of "
          f"{args.calls} calls per method")

    fast_val = methods["sig"](x, psi).numpy()  # warm-up (trace)
    slow_val = methods["naive"](x, psi).numpy()
    methods["matmul"](x, psi).numpy()
    times = {name: [] for name in methods}
    for _ in range(args.rounds):
        for name, fn in methods.items():
            times[name].append(time_calls(fn, (x, psi), args.calls))
    times = {name: np.array(t) for name, t in times.items()}
    per_matmul = times["sig"] / times["matmul"]
    speed_up = times["naive"] / times["sig"]

    # Agreement: the loss, and the [N, K] matrices (outside the timing).
    fast_mat = cond.pairwise_log_prob(x, psi).numpy()
    slow_mat = tf.function(lambda x, psi: naive_pairwise(x, psi, args.scale))(x, psi).numpy()
    loss_rel = abs(fast_val - slow_val) / abs(slow_val)
    mat_rel = float(np.max(np.abs(fast_mat - slow_mat) / np.abs(slow_mat)))

    def median_ms(name):
        return np.median(times[name]) * 1e3

    print(f"semi_implicit_loss (matrix product): {median_ms('sig'):9.2f} ms   loss {fast_val:.6e}")
    print(f"bare tf.matmul [N, D] x [D, K]:      {median_ms('matmul'):9.2f} ms")
    print(f"naive broadcast TFP log_prob:        {median_ms('naive'):9.2f} ms   loss {slow_val:.6e}")
    print(f"SIG term / bare matmul: median {np.median(per_matmul):.3f} "
          f"(range {per_matmul.min():.3f}-{per_matmul.max():.3f}; goal <= 1.2)")
    print(f"naive / SIG term: median {np.median(speed_up):.1f}x "
          f"(range {speed_up.min():.1f}-{speed_up.max():.1f}x; goal >= 10x)")
    print(f"largest relative difference: loss {loss_rel:.2e}, [N, K] matrix {mat_rel:.2e}")
    if args.channels:
        per_joint = times["per_channel"] / times["sig"]
        print(f"per-channel term ({args.channels} channels): {median_ms('per_channel'):9.2f} ms; "
              f"/ joint term: median {np.median(per_joint):.3f} (range "
              f"{per_joint.min():.3f}-{per_joint.max():.3f}; goal <= 1.2)")
    ok = (np.median(speed_up) >= 10 and np.median(per_matmul) <= 1.2
          and max(loss_rel, mat_rel) <= 1e-4)
    print(f"SUMMARY: {device_name().split(' (')[0]} N=K={args.n} D={args.d}: "
          f"{np.median(per_matmul):.2f}x one matmul (goal <= 1.2), "
          f"{np.median(speed_up):.1f}x faster than naive (goal >= 10x), max rel diff "
          f"{max(loss_rel, mat_rel):.1e} (goal <= 1e-4): {'PASS' if ok else 'FAIL'}")

if __name__ == "__main__":
    main()
