"""Benchmark: FID and KID of `sig_keras.metrics` vs a direct numpy/scipy computation.

Features: synthetic Inception-like features (non-negative, correlated through
a shared factor), `N` real and `N` generated rows of width `D`, generated in
batches of `--batch` rows from a seeded numpy generator, the same for every
method.

- FID, ours: `FrechetDistance(feature_extractor="identity")`, fed the batches
  one at a time (`update_state`), then `result()` (float64 sums, symmetric
  square root by eigendecomposition). Only one batch of features exists at a
  time, so its memory does not depend on `N`.
- FID, numpy/scipy (pytorch-fid's computation): all features concatenated,
  `np.mean`, `np.cov` (float64), `scipy.linalg.sqrtm(S_r S_g)`, real part.
- KID, ours: `KernelDistance(feature_extractor="identity", capacity=N)` fed
  the batches, then `result()`. `kid_ours_growing` (not run by default):
  the same without `capacity`, buffers doubling as they fill.
- KID, numpy: all features concatenated, the unbiased MMD^2 with
  `(x.y / d + 1)^3` in float64 on the same subsets (`subset_indices`).

Each measurement runs in a fresh subprocess. Time: wall clock of the metric
work (updates and result, or the numpy/scipy calls), not of generating the
features. Peak memory: the process's peak resident set size (Linux VmHWM,
reset through /proc/self/clear_refs after the imports, before any feature
exists) minus its resident set size at that moment, so it counts everything
the computation holds from a stream of feature batches: the features kept
(numpy: all 2 N rows, 2 N D float32, 781 MiB at N = 50,000, D = 2048; KID's
buffers likewise), the state, temporaries and one batch being generated,
including TensorFlow's C++ allocations that tracemalloc cannot see.

    python benchmarks/fid_kid.py                       # N = 50,000, D = 2048
    python benchmarks/fid_kid.py --n 5000 --d 256 --subset-size 500
    python benchmarks/fid_kid.py --repeats 2 --json benchmarks/results/fid_kid_cpu2.json
"""

import argparse
import json
import os
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

import machine  # noqa: E402  (benchmarks/machine.py)

METHODS = ("fid_ours", "fid_numpy", "kid_ours", "kid_numpy", "kid_ours_growing")


# === Features ===


def feature_batches(n, d, batch, seed):
    """Yields `[b, d]` float32 batches: `|z + 0.5 c|`, z ~ N(0, I), c a shared factor."""
    rng = np.random.default_rng(seed)
    scale = np.linspace(0.5, 1.5, d, dtype=np.float32)
    for start in range(0, n, batch):
        b = min(batch, n - start)
        z = rng.standard_normal((b, d), dtype=np.float32)
        z += 0.5 * rng.standard_normal((b, 1), dtype=np.float32)
        yield np.abs(z) * scale


def real_batches(args):
    return feature_batches(args.n, args.d, args.batch, seed=1)


def generated_batches(args):
    # Another distribution: shifted and scaled.
    for f in feature_batches(args.n, args.d, args.batch, seed=2):
        yield 1.1 * f + 0.05


# === Memory ===


def _status_kib(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{key} not in /proc/self/status")


def reset_peak():
    """Resets VmHWM to the current RSS; returns the current RSS in KiB."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    return _status_kib("VmRSS")


# === Workers (one per subprocess) ===


def _numpy_kid(real, gen, real_idx, gen_idx):
    d = real.shape[1]
    mmds = []
    for ri, gi in zip(real_idx, gen_idx):
        x = real[ri].astype(np.float64)
        y = gen[gi].astype(np.float64)
        m = x.shape[0]
        kxx = (x @ x.T / d + 1.0) ** 3
        kyy = (y @ y.T / d + 1.0) ** 3
        kxy = (x @ y.T / d + 1.0) ** 3
        mmds.append((kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1))
                    - 2.0 * kxy.sum() / m**2)
    return float(np.mean(mmds)), float(np.std(mmds))


def worker(args):
    method = args.worker
    import scipy.linalg
    import tensorflow as tf

    from sig_keras.metrics import FrechetDistance
    from sig_keras.metrics import KernelDistance

    tf.constant(0.0) + 1.0  # start the runtime before measuring
    kid = None
    if method.startswith("kid"):
        kid = KernelDistance("identity", num_features=args.d, subsets=args.subsets,
                             subset_size=args.subset_size,
                             capacity=None if method == "kid_ours_growing" else args.n)
    if method == "kid_numpy":
        real_idx, gen_idx = kid.subset_indices(args.n, args.n)
    value = {}
    base = reset_peak()  # before any feature exists, for every method
    if "ours" in method:
        metric = kid if kid is not None else FrechetDistance("identity", num_features=args.d)
        seconds = 0.0
        for real, gen in zip(real_batches(args), generated_batches(args)):
            t = time.perf_counter()
            metric.update_state(real, gen)
            seconds += time.perf_counter() - t
        t = time.perf_counter()
        result = metric.result()
        if isinstance(result, dict):
            value = {k: float(v) for k, v in result.items()}
        else:
            value = {"fid": float(result)}
        seconds += time.perf_counter() - t
    else:
        real = np.concatenate(list(real_batches(args)))
        gen = np.concatenate(list(generated_batches(args)))
        start = time.perf_counter()
        if method == "fid_numpy":
            mu1, mu2 = real.mean(0, dtype=np.float64), gen.mean(0, dtype=np.float64)
            s1, s2 = np.cov(real, rowvar=False), np.cov(gen, rowvar=False)
            covmean = scipy.linalg.sqrtm(s1 @ s2)
            fid = np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(
                covmean.real)
            value = {"fid": float(fid), "sqrtm_max_imag": float(np.abs(covmean.imag).max())}
        else:
            mean, std = _numpy_kid(real, gen, real_idx, gen_idx)
            value = {"kid": mean, "kid_std": std}
        seconds = time.perf_counter() - start
    peak_mib = (_status_kib("VmHWM") - base) / 1024.0
    print(json.dumps({"method": method, "seconds": seconds, "peak_mib": peak_mib,
                      "value": value}))


# === Driver ===


def run_worker(args, method, n):
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", method, "--n", str(n),
           "--d", str(args.d), "--batch", str(args.batch), "--subsets", str(args.subsets),
           "--subset-size", str(args.subset_size)]
    env = dict(os.environ)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50_000, help="real and generated rows N")
    parser.add_argument("--d", type=int, default=2048, help="feature width D")
    parser.add_argument("--batch", type=int, default=5000, help="rows per update batch")
    parser.add_argument("--subsets", type=int, default=100, help="KID subsets")
    parser.add_argument("--subset-size", type=int, default=1000, help="KID subset size")
    parser.add_argument("--repeats", type=int, default=1, help="runs per method")
    parser.add_argument("--methods", default=",".join(METHODS[:4]),
                        help=f"comma-separated subset of {','.join(METHODS)}")
    parser.add_argument("--fid-memory-n", type=int, default=10_000,
                        help="also run fid_ours at this N to show memory independent "
                             "of N (0: skip)")
    parser.add_argument("--json", default=None, help="also write results here")
    parser.add_argument("--worker", choices=METHODS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    for flag in ("n", "d", "batch", "subsets", "subset_size", "repeats"):
        if getattr(args, flag) < 1:
            parser.error(f"--{flag.replace('_', '-')} must be >= 1")
    if args.worker:
        worker(args)
        return
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        parser.error(f"unknown methods {unknown}; valid: {list(METHODS)}")
    if args.subset_size > args.n:
        parser.error("--subset-size must be <= --n")

    runs = [(m, args.n) for m in methods]
    if args.fid_memory_n and "fid_ours" in methods and args.fid_memory_n != args.n:
        runs.append(("fid_ours", args.fid_memory_n))
    results = []
    for repeat in range(args.repeats):
        for method, n in runs:
            r = run_worker(args, method, n)
            r.update({"n": n, "repeat": repeat})
            results.append(r)
            print(f"  {method:9s} N={n:6d} repeat {repeat}: {r['seconds']:7.1f} s, "
                  f"{r['peak_mib']:7.0f} MiB, {r['value']}", file=sys.stderr)

    print(f"device: {machine.describe()}; N = {args.n} real + {args.n} generated, "
          f"D = {args.d}, batches of {args.batch}; KID {args.subsets} subsets of "
          f"{args.subset_size}; {args.repeats} run(s) each, min-max shown")
    print()
    print("| metric | method | N | time (s) | peak memory (MiB) | value |")
    print("|---|---|---|---|---|---|")
    for method, n in runs:
        rows = [r for r in results if r["method"] == method and r["n"] == n]
        secs = [r["seconds"] for r in rows]
        mems = [r["peak_mib"] for r in rows]
        key = "fid" if method.startswith("fid") else "kid"
        label = {"kid_ours_growing": "sig_keras, no capacity"}.get(
            method, "sig_keras" if "ours" in method else "numpy/scipy")
        print(f"| {key.upper()} | {label} | {n} | {min(secs):.1f}-{max(secs):.1f} | "
              f"{min(mems):.0f}-{max(mems):.0f} | {rows[0]['value'][key]:.6g} |")
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        settings = {k: getattr(args, k) for k in ("n", "d", "batch", "subsets", "subset_size",
                                                 "repeats", "fid_memory_n")}
        settings["device"] = machine.describe()
        settings["memory"] = ("peak RSS (VmHWM, reset after imports, before any feature "
                              "exists) minus RSS then")
        with open(args.json, "w") as f:
            json.dump({"settings": settings, "runs": results}, f, indent=2)


if __name__ == "__main__":
    main()
