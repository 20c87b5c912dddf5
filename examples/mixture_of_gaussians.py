"""Table 1 and Figure 2: 25 Gaussians on a grid.

Title: SIG (and the paper's baselines) on the 25-Gaussian grid.
Description: trains each model on the grid with the same 2 x 100 ReLU
generator, draws 50,000 samples, and reports modes captured, high-quality
share and mode KL (`sig_keras.metrics.ModeCoverage`) as mean +- std over
seeds, with the wall time per seed. Column `heldout_nll` is the held-out SIG
bound L_K (Lemma 1, K = 10,000, `sig_keras.metrics.SemiImplicitLikelihood`)
in nats per example of 10,000 fresh grid points: the likelihood of held-out
data under each model's generated points smoothed by the grid's Gaussian
kernel (std = --std), an upper bound of the cross-entropy of the data with
that smoothed generator, to compare with the grid's own entropy stated in
the table's caption. Writes the table as CSV and Markdown, a scatter plot
(one panel per model beside the data) and TensorBoard logs.

    python examples/mixture_of_gaussians.py                  # SIG, std 0.1, 5 seeds
    python examples/mixture_of_gaussians.py --std 0.05       # PacGAN protocol
    python examples/mixture_of_gaussians.py --models gan,vae,veegan,unrolled_gan,sig
    python examples/mixture_of_gaussians.py --fast           # smoke run
    python examples/mixture_of_gaussians.py --toy uneven_grid --models sig,gan --seeds 3
                                          # Figure 3a: column masses, figure3a.md/png
    python examples/mixture_of_gaussians.py --backup-dir /tmp/mog_backup
                                          # re-run the same command to resume

Resuming (`--backup-dir`): each (model, seed) run checkpoints with
`sig_keras.callbacks.FaultTolerantBackup` at the end of each of its 10 epochs.
Training runs `STEPS_PER_EXECUTION` = 100 steps per call (for a step count
that is not a multiple of 1,000: a divisor of the steps per epoch, and fewer
epochs if the step count has no divisor up to 10; exactly `--steps` steps
either way), so checkpoints are at execution/epoch granularity: a killed run
re-does at most the epoch it was in (steps / 10 steps), and the resumed run
reads its data stream from the start, so it is equivalent to, not
bit-identical with, an uninterrupted run. A run whose loss becomes NaN or
infinite stops and the script exits with an error (code 1) before writing
any table or figure.
Finished (model, seed) runs are kept in the backup directory and not trained
again. The directory is deleted once the table and figure are written.
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import sig_keras  # noqa: E402
from sig_keras import datasets  # noqa: E402
from sig_keras import distribute  # noqa: E402
from sig_keras import experiment  # noqa: E402
from sig_keras import models  # noqa: E402
from sig_keras import networks  # noqa: E402
from sig_keras.utils import validation  # noqa: E402

LATENT_DIM = 10
DATA_DIM = 2

# Per-model defaults: (steps, batch size, learning rate); docs/results.md
# shows the Table 1 runs they give.
DEFAULTS = {
    "sig": dict(steps=24000, batch_size=256, lr=3e-3),
    "gan": dict(steps=16000, batch_size=256, lr=1e-3),
    "vae": dict(steps=64000, batch_size=256, lr=2e-3),  # see build_vae
    "veegan": dict(steps=36000, batch_size=500, lr=1e-3),  # see build_veegan
    "unrolled_gan": dict(steps=10000, batch_size=256, lr=1e-3),
}
# Steps run inside one tf.function call: small models are dominated by
# per-call overhead on the CPU.
STEPS_PER_EXECUTION = 100
# Epochs per run: a checkpoint and a progress line at each epoch end.
EPOCHS = 10

# VEEGAN / PacGAN grid protocol (std 0.05): 2,500 samples, a mode is captured
# with at least one high-quality sample. Reported for every run beside Table 1.
SMALL_PROTOCOL_SAMPLES = 2500

# Held-out SIG bound: K draws of psi, on --heldout-samples fresh grid points
# drawn with HELDOUT_SEED (training data uses the --seeds).
HELDOUT_K = 10_000
HELDOUT_SEED = 10_000

PAPER = {  # Table 1 of the paper (std 0.1 grid)
    "gan": ("4.0 +- 3.08", "0.36 +- 0.16", "2.87 +- 0.78"),
    "vae": ("25 +- 0", "0.83 +- 0.02", "0.32 +- 0.07"),
    "veegan": ("23.2 +- 0.84", "0.82 +- 0.03", "0.38 +- 0.08"),
    "unrolled_gan": ("6.2 +- 8.6", "0.42 +- 0.13", "1.97 +- 0.60"),
    "sig": ("25 +- 0", "0.91 +- 0.04", "0.14 +- 0.07"),
}


# === Models ===


def fit_schedule(steps, strategy):
    """`(epochs, steps_per_epoch, steps_per_execution)` that train exactly
    `steps` steps (`experiment.fit_schedule`): 10 epochs of
    `STEPS_PER_EXECUTION`-step calls for the default step counts (multiples
    of 1,000); fewer epochs or shorter calls when `steps` needs them. One
    step per call on several devices (see `compile_options`)."""
    one_device = strategy.num_replicas_in_sync == 1
    return experiment.fit_schedule(steps, epochs=EPOCHS,
                                   max_steps_per_execution=STEPS_PER_EXECUTION
                                   if one_device else 1)


def compile_options(args, strategy, steps):
    """`jit_compile` and `steps_per_execution` of every model's `compile`."""
    one_device = strategy.num_replicas_in_sync == 1
    return dict(
        # "auto" (the default) is Keras' choice: XLA on one GPU, not on CPU-only
        # hosts or under a distribution strategy. "true" forces it on one
        # device (the SIG step under XLA: benchmarks/xla_step.py); never with
        # collectives.
        jit_compile=("auto" if args.jit_compile == "auto" else
                     args.jit_compile == "true" and one_device
                     and not distribute.is_multi_worker(strategy)),
        # Keras 3.15 / TF 2.21 fail with steps_per_execution > 1 under
        # MirroredStrategy ("You must feed a value for placeholder tensor"),
        # even for a plain Sequential model: one step per call there.
        # At most STEPS_PER_EXECUTION, a divisor of the steps per epoch.
        steps_per_execution=fit_schedule(steps, strategy)[2],
    )


def cosine(lr, steps):
    return keras.optimizers.schedules.CosineDecay(lr, steps, alpha=0.01)


def compile_annealed(model, args, steps, lr, strategy):
    """SIG and VAE: Adam with cosine decay; the Normal conditional's scale is
    annealed from 1.0 to its target over the first 30% of the steps.
    Returns `(model, callbacks)`."""
    model.compile(optimizer=keras.optimizers.Adam(cosine(lr, steps)),
                  **compile_options(args, strategy, steps))
    return model, [sig_keras.callbacks.ScaleAnnealing(
        start=1.0, end=args.conditional_scale, steps=max(1, int(0.3 * steps)))]


def compile_adversarial(model, args, steps, lr, strategy):
    """GAN, VEEGAN, Unrolled GAN: Adam(beta_1=0.5) with cosine decay for the
    generator and the discriminator. Returns `(model, callbacks)`."""
    model.compile(g_optimizer=keras.optimizers.Adam(cosine(lr, steps), beta_1=0.5),
                  d_optimizer=keras.optimizers.Adam(cosine(lr, steps), beta_1=0.5),
                  **compile_options(args, strategy, steps))
    return model, []


def build_sig(args, seed, steps, lr, strategy):
    generator = networks.mlp_generator(LATENT_DIM, DATA_DIM)
    model = models.SIG(generator,
                       sig_keras.layers.NormalConditional(scale=args.conditional_scale),
                       latent_dim=LATENT_DIM, num_samples=args.num_samples, seed=seed)
    return compile_annealed(model, args, steps, lr, strategy)


def build_gan(args, seed, steps, lr, strategy):
    model = models.GAN(networks.mlp_generator(LATENT_DIM, DATA_DIM),
                       networks.mlp_discriminator(DATA_DIM),
                       latent_dim=LATENT_DIM, data_range=None, seed=seed)
    return compile_adversarial(model, args, steps, lr, strategy)


def build_vae(args, seed, steps, lr, strategy):
    # A 2-d latent (the decoder is the shared 2 x 100 generator on 2-d noise),
    # the decoder scale annealed like SIG's conditional (a fixed 0.1 decoder
    # from the start leaves prior samples between the modes), and the
    # importance-weighted bound with 8 draws (KL weight 1, the bound itself);
    # `num_importance_samples=1, kl_weight=3.0` trains on the ELBO instead.
    # Settings and steps: the sweep in docs/results.md ("Ablations").
    latent = 2
    model = models.VAE(
        networks.mlp_encoder(DATA_DIM, 2 * latent),
        networks.mlp_generator(latent, DATA_DIM),
        latent_dim=latent,
        conditional=sig_keras.layers.NormalConditional(scale=args.conditional_scale),
        num_importance_samples=8,
        seed=seed,
    )
    return compile_annealed(model, args, steps, lr, strategy)


def build_veegan(args, seed, steps, lr, strategy):
    # Settings, following the authors' 2-D notebook (VEEGAN_2D_RING.ipynb in
    # github akashgit/VEEGAN) unless noted:
    # - Gaussian reconstructor N(F(x), 1), the model's default.
    # - Discriminator 2 x 128 ReLU on concat(x, z), the notebook's width.
    # - Adam(1e-3, beta_1=0.5) for both networks, batch 500 (DEFAULTS).
    # - Reconstruction weight 3 (the notebook: 1, with its 254-d noise; here
    #   the 10-d noise every Table 1 model shares) and 36k steps (DEFAULTS;
    #   the notebook runs 100k): the sweeps in docs/results.md ("Ablations").
    model = models.VEEGAN(
        networks.mlp_generator(LATENT_DIM, DATA_DIM),
        networks.mlp_discriminator(DATA_DIM + LATENT_DIM, hidden_units=(128, 128)),
        networks.mlp_encoder(DATA_DIM, LATENT_DIM, name="reconstructor"),
        latent_dim=LATENT_DIM,
        reconstruction_weight=3.0,
        reconstructor_scale=1.0,
        seed=seed,
    )
    return compile_adversarial(model, args, steps, lr, strategy)


def build_unrolled_gan(args, seed, steps, lr, strategy):
    model = models.UnrolledGAN(networks.mlp_generator(LATENT_DIM, DATA_DIM),
                               networks.mlp_discriminator(DATA_DIM), latent_dim=LATENT_DIM,
                               unrolling_steps=5, unrolling_lr=0.1, seed=seed)
    return compile_adversarial(model, args, steps, lr, strategy)


# Table 1 order.
BUILDERS = {
    "gan": build_gan,
    "vae": build_vae,
    "veegan": build_veegan,
    "unrolled_gan": build_unrolled_gan,
    "sig": build_sig,
}


# === Held-out likelihood ===


def model_mixing(model):
    """`fn(n, seed) -> psi [n, 2]`: the points a model generates before any noise.

    SIG: `sample_mixing` (generator outputs); VAE: decoder means of prior
    noise; GAN, VEEGAN, Unrolled GAN: their samples (the generator on noise).
    """
    if hasattr(model, "sample_mixing"):
        return lambda n, seed: model.sample_mixing(n, seed=seed)
    if hasattr(model, "decoder"):
        return lambda n, seed: model.decoder(model.draw_noise(n, seed), training=False)
    return lambda n, seed: model.sample(n, seed=seed)


def grid_mixing(grid):
    """`fn(n, seed) -> psi`: the true centres, drawn with the mixture weights."""
    def draw(n, seed):
        idx = np.random.default_rng(seed).choice(len(grid.centers), size=n, p=grid.weights)
        return grid.centers[idx].astype(np.float32)
    return draw


def heldout_nll(mixing, grid, heldout, seed=0, num_samples=HELDOUT_K, batch_size=2500):
    """Held-out SIG bound L_K (nats per example) of `heldout` under
    `N(x; psi, grid.std^2 I)` with `psi` from `mixing(n, seed)`.

    Each call of the metric's generator (one per chunk of 1,000 draws and
    held-out batch) uses the next seed, from `seed * 10^6`.
    """
    seeds = iter(range(int(seed) * 1_000_000, (int(seed) + 1) * 1_000_000))
    metric = sig_keras.metrics.SemiImplicitLikelihood(
        lambda n: mixing(n, next(seeds)),
        sig_keras.layers.NormalConditional(scale=grid.std),
        num_samples=num_samples,
    )
    for start in range(0, len(heldout), batch_size):
        metric.update_state(heldout[start:start + batch_size])
    return float(metric.result()["nll"])


def mixture_entropy(grid, x):
    """`-mean log p_data(x)` with the exact mixture density: the grid's
    entropy (its cross-entropy with itself), Monte Carlo over `x`."""
    x = np.asarray(x, np.float64)
    sq = np.sum((x[:, None, :] - grid.centers[None]) ** 2, axis=-1)
    d = x.shape[1]
    log_comp = (np.log(grid.weights)[None] - 0.5 * sq / grid.std**2
                - d * np.log(grid.std) - 0.5 * d * np.log(2 * np.pi))
    top = log_comp.max(axis=1, keepdims=True)
    log_p = top[:, 0] + np.log(np.sum(np.exp(log_comp - top), axis=1))
    return float(-np.mean(log_p))


def heldout_data(grid, args):
    return grid.sample(args.heldout_samples, seed=HELDOUT_SEED)


# === Training and evaluation ===


def run_one(name, args, grid, seed, strategy, backup):
    """Trains and evaluates one (model, seed) run: `(result, samples)`."""
    run = backup.run(os.path.join(name, f"seed{seed}"), label=f"{name} seed {seed}")
    finished = run.load()
    if finished is not None:
        samples = finished.pop("samples")
        return {k: float(v) for k, v in finished.items()}, samples
    experiment.set_seed(seed, args.deterministic)
    defaults = DEFAULTS[name]
    steps = args.steps or defaults["steps"]
    batch_size = args.batch_size or defaults["batch_size"]
    lr = args.lr or defaults["lr"]
    with strategy.scope():
        model, callbacks = BUILDERS[name](args, seed, steps, lr, strategy)
    dataset = datasets.make_dataset(grid, batch_size, seed=seed)
    log_dir = os.path.join(args.output_dir, "logs", name, f"seed{seed}")
    callbacks += [keras.callbacks.TensorBoard(log_dir, update_freq=100),
                  experiment.ProgressLogger(run.label)]  # a line per epoch
    # Exactly `steps` optimizer steps (Keras runs whole executions).
    epochs, steps_per_epoch, _ = fit_schedule(steps, strategy)
    start = time.perf_counter()
    # Under --backup-dir: a checkpoint at each epoch end (steps_per_execution
    # > 1: no mid-epoch resume).
    run.fit(model, dataset, steps_per_epoch=steps_per_epoch, epochs=epochs,
            callbacks=callbacks, shuffle=False, verbose=0)  # the pipeline shuffles
    wall = time.perf_counter() - start
    samples = model.sample(args.eval_samples, seed=seed).numpy()
    metric = sig_keras.metrics.ModeCoverage(grid.centers, grid.std, grid.weights)
    metric.update_state(samples)
    result = {k: float(v) for k, v in metric.result().items()}
    # VEEGAN / PacGAN protocol on the same run: the first 2,500 samples, a
    # mode captured with at least one high-quality sample.
    small = sig_keras.metrics.ModeCoverage(grid.centers, grid.std, grid.weights,
                                           capture_share=0.0)
    small.update_state(samples[:SMALL_PROTOCOL_SAMPLES])
    result.update({f"{k}_2500": float(v) for k, v in small.result().items()})
    # Figure 3a: the components' shares of the high-quality samples (as in the
    # KL) against the true weights, in total variation and per grid column.
    shares = metric.mode_counts.numpy() / max(float(metric.mode_counts.numpy().sum()), 1.0)
    result["tv"] = 0.5 * float(np.abs(shares - grid.weights).sum())
    result.update({f"column_{c + 1}": float(m) for c, m in enumerate(column_masses(shares))})
    result["wall_s"] = wall
    result["heldout_nll"] = heldout_nll(model_mixing(model), grid,
                                        heldout_data(grid, args), seed=seed)
    if args.save_preset and seed == 0:
        save_preset(model, name, args, steps, batch_size, lr, wall)
    run.save({"samples": samples, **result})
    return result, samples


def save_preset(model, name, args, steps, batch_size, lr, wall):
    """`--save-preset DIR`: seed 0's model as the preset `DIR/<model>_grid25`
    (`<model>_uneven_grid25` for `--toy uneven_grid`; `_std005` etc. for
    another --std), its metrics measured on --eval-samples samples
    (`sig_keras.presets.save_trained`)."""
    suffix = "" if args.std == 0.1 else "_std" + f"{args.std:g}".replace(".", "")
    toy = "grid25" if args.toy == "grid" else "uneven_grid25"
    directory = os.path.join(args.save_preset, f"{name}_{toy}{suffix}")
    sig_keras.presets.save_trained(
        model, directory, data={"toy": args.toy, "kwargs": {"std": args.std}},
        command=sig_keras.presets.command_line("examples/mixture_of_gaussians.py",
                                               args.argv),
        num_samples=args.eval_samples, seed=0,
        training={"steps": steps, "batch_size": batch_size, "lr": lr,
                  "wall_s": round(wall, 1), "seed": 0})
    print(f"wrote preset {directory}", flush=True)


def column_masses(shares):
    """Per-column sums of the `size x size` grid's component shares (the
    centres are listed column by column: index `column * size + row`)."""
    size = int(round(np.sqrt(len(shares))))
    return np.asarray(shares).reshape(size, size).sum(axis=1)


def format_columns(grid, csv_rows):
    """Figure 3a table: each run's column masses and TV, the truth, the mean TV."""
    size = int(round(np.sqrt(len(grid.weights))))
    header = ["model", "seed"] + [f"column {c + 1}" for c in range(size)] + ["TV"]
    rows = [["truth", ""] + [f"{m:.3f}" for m in column_masses(grid.weights)] + [""]]
    rows += [[r["model"], r["seed"]] + [f"{r[f'column_{c + 1}']:.3f}" for c in range(size)]
             + [f"{r['tv']:.4f}"] for r in csv_rows]
    for name in dict.fromkeys(r["model"] for r in csv_rows):
        tv = np.array([r["tv"] for r in csv_rows if r["model"] == name])
        rows.append([f"{name} (mean TV)", ""] + [""] * size + [f"{tv.mean():.4f} +- {tv.std():.4f}"])
    return "\n".join(experiment.markdown_table(header, rows)) + (
        "\n\nColumn masses: shares of the high-quality samples by grid column; TV: "
        "total variation between the components' shares and the true weights.\n")


def summarize(rows):
    out = {}
    for key in ("modes", "high_quality", "kl", "wall_s", "heldout_nll",
                "modes_2500", "high_quality_2500", "kl_2500"):
        values = np.array([r.get(key, np.nan) for r in rows])
        out[key] = (values.mean(), values.std())
    return out


def format_table(summary, args, entropy=None):
    """Markdown tables; `entropy`: (grid entropy, L_K with the true centres)."""
    fmt = {"modes": "{:.1f} +- {:.2f}", "high_quality": "{:.3f} +- {:.3f}",
           "kl": "{:.3f} +- {:.3f}", "wall_s": "{:.1f} +- {:.1f}",
           "heldout_nll": "{:.3f} +- {:.3f}"}
    lines = experiment.markdown_table(
        ["model", "modes / 25", "high-quality share", "KL", "held-out NLL (nats)",
         "wall s / seed"],
        [[name] + [fmt[k].format(*s[k])
                   for k in ("modes", "high_quality", "kl", "heldout_nll", "wall_s")]
         for name, s in summary.items()])
    caption = (f"Held-out NLL: the SIG bound L_K (K = {HELDOUT_K}) in nats per example "
               f"of {args.heldout_samples} fresh grid points (seed {HELDOUT_SEED}), "
               f"psi = the model's generated points, Normal kernel of std {args.std}; "
               "an upper bound of the model's cross-entropy")
    if entropy is not None:
        caption += (f". The true cross-entropy (the grid's entropy, exact density on "
                    f"the same points) is {entropy[0]:.3f} nats; L_K with the true "
                    f"centres as psi: {entropy[1]:.3f}")
    lines += ["", caption + ".", "",
              f"VEEGAN / PacGAN protocol (grid std {args.std}; theirs is 0.05): "
              f"first {SMALL_PROTOCOL_SAMPLES} samples, a mode captured with at "
              "least one high-quality sample", ""]
    lines += experiment.markdown_table(
        ["model", "modes / 25", "high-quality share", "KL"],
        [[name] + [fmt[k].format(*s[k + "_2500"]) for k in ("modes", "high_quality", "kl")]
         for name, s in summary.items()])
    if args.std == 0.1 and args.toy == "grid":
        lines += [""] + experiment.markdown_table(
            ["(paper, std 0.1)", "modes / 25", "high-quality share", "KL", ""],
            [[name, *PAPER[name], ""] for name in summary])
    return "\n".join(lines)


def plot(grid, samples_by_model, path, n=5000):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("data", grid.sample(n, seed=123))] + [
        (name, s[:n]) for name, s in samples_by_model.items()
    ]
    fig, axes = plt.subplots(1, len(panels), figsize=(3 * len(panels), 3.2))
    axes = np.atleast_1d(axes)
    for ax, (name, pts) in zip(axes, panels):
        ax.scatter(pts[:, 0], pts[:, 1], s=1, alpha=0.3)
        ax.scatter(grid.centers[:, 0], grid.centers[:, 1], s=8, c="red", marker="x")
        ax.set_title(name)
        ax.set_xlim(-6, 6)
        ax.set_ylim(-6, 6)
        ax.set_aspect("equal")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", default="sig",
                   help=f"comma-separated, from {sorted(BUILDERS)}")
    scale = dict(minimum=validation.MIN_SCALE, maximum=validation.MAX_SCALE)
    p.add_argument("--std", type=experiment.float_flag("--std", **scale), default=0.1,
                   help="grid component std: 0.1 (paper) or 0.05 (PacGAN)")
    p.add_argument("--toy", choices=("grid", "uneven_grid"), default="grid",
                   help="grid: Table 1's 25 equal Gaussians; uneven_grid: Figure 3a, columns "
                   "1, 3, 5 hold twice the data of columns 2 and 4 (writes figure3a.md/png)")
    experiment.add_seeds_flag(p, default=5)
    experiment.add_steps_flag(
        p, default=None, details="default per model; exactly: 10 epochs of up to "
        "100-step calls when divisible, fewer epochs or shorter calls otherwise")
    p.add_argument("--batch-size", type=experiment.positive_int("--batch-size"), default=None)
    p.add_argument("--lr", type=experiment.positive_float("--lr", maximum=10.0), default=None,
                   help="Adam learning rate in (0, 10]; default per model")
    p.add_argument("--num-samples", type=experiment.positive_int("--num-samples"),
                   default=1024, help="SIG's K per step")
    p.add_argument("--conditional-scale", type=experiment.float_flag(
        "--conditional-scale", **scale), default=None,
                   help="SIG's Normal conditional scale; defaults to --std")
    p.add_argument("--eval-samples", type=experiment.positive_int("--eval-samples"),
                   default=50_000)
    p.add_argument("--heldout-samples", type=experiment.positive_int("--heldout-samples"),
                   default=10_000,
                   help="fresh grid points for the held-out NLL column")
    experiment.add_output_dir_flag(p, "mixture_of_gaussians")
    experiment.add_run_flags(
        p, runs="(model, seed) runs",
        save_freq_note="; 10 epochs per run, steps_per_execution=100")
    p.add_argument("--jit-compile", choices=("auto", "true", "false"), default="auto",
                   help="XLA for the train steps: 'auto' (default) is Keras' choice "
                   "(on for one GPU, off on CPU-only hosts and under distribution); "
                   "'true' forces it on one device")
    p.add_argument("--save-preset", default=None, metavar="DIR",
                   help="write seed 0's model of each model as a preset "
                   "DIR/<model>_grid25[_std<std>] (uneven_grid25 with --toy uneven_grid; "
                   "sig_keras.presets)")
    p.add_argument("--fast", action="store_true",
                   help="smoke run: 200 steps, one seed, 5,000 samples")
    args = p.parse_args(argv)
    args.argv = argv  # the command a preset records
    experiment.check_preset_dir(p, args.save_preset)
    names = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = sorted(set(names) - set(BUILDERS))
    if unknown or not names:
        p.error(f"unknown model(s) {unknown}; valid: {sorted(BUILDERS)}")
    args.model_names = names
    if args.conditional_scale is None:
        args.conditional_scale = args.std
    if HELDOUT_SEED in args.seeds:
        p.error(f"--seeds: seed {HELDOUT_SEED} draws the held-out points; use another")
    # Every numeric flag was range-checked by its `type=` (exit code 2).
    if args.fast:
        args.steps = args.steps or 200
        args.seeds = args.seeds[:1]
        args.eval_samples = min(args.eval_samples, 5000)
        args.heldout_samples = min(args.heldout_samples, 2000)
    experiment.check_backup_dir(p, args.backup_dir, run_settings(args))
    return args


def run_settings(args):
    """What a resumed run must share with the run that wrote the backup (the
    models may differ: each (model, seed) run is kept on its own)."""
    return experiment.run_settings(args, ignore=("output_dir", "model_names", "models",
                                                 "save_preset", "argv"))


def main(argv=None):
    args = parse_args(argv)
    strategy = distribute.get_strategy(args.strategy)
    grid = datasets.get_toy(args.toy, std=args.std)
    os.makedirs(args.output_dir, exist_ok=True)
    backup = experiment.Backup(args.backup_dir, strategy, suffix=".npz", per_run_folder=True,
                               settings=run_settings(args))
    summary, last_samples, csv_rows = {}, {}, []
    for name in args.model_names:
        rows = []
        for seed in args.seeds:
            result, samples = run_one(name, args, grid, seed, strategy, backup)
            print(f"{name} seed {seed}: modes {result['modes']:.0f}, high quality "
                  f"{result['high_quality']:.3f}, KL {result['kl']:.4f}, held-out NLL "
                  f"{result.get('heldout_nll', float('nan')):.3f}, "
                  f"{result['wall_s']:.1f} s", flush=True)
            rows.append(result)
            csv_rows.append({"model": name, "seed": seed, **result})
            last_samples[name] = samples
        summary[name] = summarize(rows)
    heldout = heldout_data(grid, args)
    entropy = (mixture_entropy(grid, heldout),
               heldout_nll(grid_mixing(grid), grid, heldout, seed=HELDOUT_SEED))
    table = format_table(summary, args, entropy)
    device = "CPU" if not tf.config.list_physical_devices("GPU") else "GPU"
    header = (f"25 Gaussians, std {args.std}, {args.eval_samples} samples, "
              f"{len(args.seeds)} seed(s), device {device} ({os.cpu_count()} cores)")
    print("\n" + header + "\n" + table)
    experiment.write_text(os.path.join(args.output_dir, "table1.md"),
                          header + "\n\n" + table + "\n")
    experiment.write_csv(os.path.join(args.output_dir, "table1.csv"), csv_rows)
    figure = "figure3a" if args.toy == "uneven_grid" else "figure2"
    plot(grid, last_samples, os.path.join(args.output_dir, f"{figure}.png"))
    if args.toy == "uneven_grid":
        columns = format_columns(grid, csv_rows)
        print("\n" + columns)
        experiment.write_text(os.path.join(args.output_dir, "figure3a.md"), columns)
    print(f"wrote {args.output_dir}/table1.md, table1.csv, {figure}.png and logs/")
    backup.complete()
    return summary


if __name__ == "__main__":
    main()
