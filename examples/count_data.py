"""Figure 1 (discrete toys): a Poisson SIG fitting count data.

Title: semi-implicit Poisson mixtures.
Description: `x ~ Poisson(psi)`, `psi = softplus(T(eps))` with a 2-hidden-layer
MLP of 10-d noise, trained with the semi-implicit loss on two targets:
Negative-Binomial(2, 0.5) (the mixing distribution learned should look like
the Gamma(2, 1) of the Poisson-Gamma construction of NB) and an equal mixture
of Poisson(10) and NB(0.2, 0.9). Prints the total-variation distance between
the model's probability mass function (exact given 20,000 draws of psi) and
the target's, and plots both pmfs and the learned mixing distribution.

    python examples/count_data.py
    python examples/count_data.py --steps 300        # smoke run
    python examples/count_data.py --backup-dir /tmp/counts_backup
                                        # re-run the same command to resume

Resuming (`--backup-dir`, `sig_keras.experiment.Backup`): finished targets
are read back, the interrupted one goes on from its last checkpoint (every
`BACKUP_EVERY` steps, mid-epoch).
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from scipy import special, stats  # noqa: E402

import sig_keras  # noqa: E402
from sig_keras import datasets  # noqa: E402
from sig_keras import distribute  # noqa: E402
from sig_keras import experiment  # noqa: E402

LATENT_DIM = 10
BACKUP_EVERY = 500  # steps between checkpoints under --backup-dir
EPOCHS = 5  # a progress line at each epoch end
TARGETS = {
    "negative_binomial": datasets.negative_binomial,
    "poisson_nb_mixture": datasets.poisson_nb_mixture,
}
# Preset names of --save-preset.
PRESET_NAMES = {"negative_binomial": "sig_counts_nb",
                "poisson_nb_mixture": "sig_counts_poisson_nb_mixture"}


def model_pmf(rates, k):
    """`p(k) = mean_j Poisson(k | rate_j)`: the SIG marginal given psi draws."""
    k = np.asarray(k, np.float64)[None, :]
    rates = np.asarray(rates, np.float64)[:, None]
    log_pmf = k * np.log(rates) - rates - special.gammaln(k + 1)
    return np.exp(log_pmf).mean(axis=0)


def total_variation(p, q):
    """TV over the listed support plus the remaining tail mass of each."""
    return 0.5 * (np.abs(p - q).sum() + abs((1 - p.sum()) - (1 - q.sum())))


def fit_target(name, args, strategy, run):
    """Trains the Poisson SIG on one target: `(rates of 20,000 psi draws, wall s)`."""
    experiment.set_seed(args.seed, args.deterministic)
    spec = TARGETS[name]()
    with strategy.scope():
        generator = sig_keras.networks.mlp_generator(LATENT_DIM, 1)
        model = sig_keras.models.SIG(
            generator,
            sig_keras.layers.PoissonConditional(),
            latent_dim=LATENT_DIM,
            num_samples=args.num_samples,
            seed=args.seed,
        )
        schedule = keras.optimizers.schedules.CosineDecay(args.lr, args.steps, alpha=0.05)
        model.compile(optimizer=keras.optimizers.Adam(schedule))
    dataset = datasets.make_dataset(spec, args.batch_size, seed=args.seed)
    log_dir = os.path.join(args.output_dir, "logs", name)
    callbacks = [keras.callbacks.TensorBoard(log_dir), experiment.ProgressLogger(name)]
    start = time.perf_counter()
    # Exactly --steps optimizer steps: EPOCHS epochs when divisible, fewer
    # otherwise (one step per execution). A NaN/inf loss stops the run and
    # exits (Run.fit): no figure from a diverged model.
    epochs, steps_per_epoch, _ = experiment.fit_schedule(args.steps, EPOCHS, 1)
    run.fit(model, dataset, save_freq=BACKUP_EVERY, steps_per_epoch=steps_per_epoch,
            epochs=epochs, verbose=0, shuffle=False, callbacks=callbacks)
    wall = time.perf_counter() - start
    if args.save_preset:
        save_preset(model, name, args, wall)
    psi = model.sample_mixing(20_000, seed=args.seed)
    return model.conditional.rate(psi).numpy().ravel(), wall


def save_preset(model, name, args, wall):
    """`--save-preset DIR`: the trained model as the preset `DIR/<PRESET_NAMES[name]>`,
    its metrics measured on 50,000 samples (`sig_keras.presets.save_trained`)."""
    directory = os.path.join(args.save_preset, PRESET_NAMES[name])
    sig_keras.presets.save_trained(
        model, directory, data={"toy": name, "kwargs": {}},
        command=sig_keras.presets.command_line("examples/count_data.py", args.argv),
        num_samples=50_000, seed=0,
        training={"steps": args.steps, "batch_size": args.batch_size, "lr": args.lr,
                  "num_samples": args.num_samples, "wall_s": round(wall, 1),
                  "seed": args.seed})
    print(f"wrote preset {directory}", flush=True)


def fit_or_restore(name, args, strategy, backup):
    """Learned rates and wall time; a target finished before an interruption
    of a --backup-dir run is read back, not re-trained."""
    run = backup.run(name)
    finished = run.load()
    if finished is not None:
        return finished["rates"], float(finished["wall"])
    rates, wall = fit_target(name, args, strategy, run)
    run.save({"rates": rates, "wall": wall})
    return rates, wall


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="Poisson SIG on count data (Figure 1).")
    p.add_argument("--targets", default="negative_binomial,poisson_nb_mixture")
    experiment.add_steps_flag(p, default=3000,
                              details=f"exactly: {EPOCHS} epochs when divisible")
    p.add_argument("--batch-size", type=experiment.positive_int("--batch-size"), default=256)
    p.add_argument("--num-samples", type=experiment.positive_int("--num-samples"),
                   default=1000)
    p.add_argument("--lr", type=experiment.positive_float("--lr", maximum=10.0), default=3e-3,
                   help="Adam learning rate in (0, 10]")
    p.add_argument("--seed", type=experiment.seed_int("--seed"), default=0)
    p.add_argument("--max-count", type=experiment.int_flag("--max-count", 0, 100_000),
                   default=60, help="largest count in the pmf comparison")
    experiment.add_output_dir_flag(p, "count_data")
    p.add_argument("--save-preset", default=None, metavar="DIR",
                   help="write each target's model as a preset DIR/sig_counts_nb, "
                   "DIR/sig_counts_poisson_nb_mixture (sig_keras.presets)")
    experiment.add_run_flags(p, runs="targets", save_freq=BACKUP_EVERY)
    args = p.parse_args(argv)
    args.argv = argv  # the command a preset records
    experiment.check_preset_dir(p, args.save_preset)
    args.names = [t.strip() for t in args.targets.split(",") if t.strip()]
    unknown = sorted(set(args.names) - set(TARGETS))
    if unknown or not args.names:
        p.error(f"unknown target(s) {unknown}; valid: {sorted(TARGETS)}")
    # Every numeric flag was range-checked by its `type=` (exit code 2).
    experiment.check_backup_dir(p, args.backup_dir)
    return args


def main(argv=None):
    args = parse_args(argv)
    names = args.names
    strategy = distribute.get_strategy(args.strategy)
    os.makedirs(args.output_dir, exist_ok=True)
    backup = experiment.Backup(args.backup_dir, strategy, suffix=".npz")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(names), figsize=(5 * len(names), 7), squeeze=False)
    results = {}
    for col, name in enumerate(names):
        rates, wall = fit_or_restore(name, args, strategy, backup)
        spec = TARGETS[name]()
        support = np.arange(0, args.max_count + 1)
        p_model = model_pmf(rates, support)
        p_true = spec.pmf(support)
        tv = total_variation(p_model, p_true)
        results[name] = tv
        print(f"{name}: total variation {tv:.4f} ({args.steps} steps, {wall:.1f} s, CPU)")
        ax = axes[0, col]
        ax.bar(support - 0.2, p_true, width=0.4, label="target")
        ax.bar(support + 0.2, p_model, width=0.4, label="SIG")
        ax.set_xlim(-1, 30)
        ax.set_title(f"{name}: pmf (TV {tv:.3f})")
        ax.legend()
        ax = axes[1, col]
        ax.hist(rates, bins=100, density=True, alpha=0.6, label="learned psi (rate)")
        if name == "negative_binomial":
            # NB(r, p) = Poisson(lambda), lambda ~ Gamma(r, scale p / (1 - p)).
            (_, r, prob), = spec.components
            grid = np.linspace(1e-3, np.percentile(rates, 99.5), 200)
            ax.plot(grid, stats.gamma(r, scale=prob / (1 - prob)).pdf(grid),
                    label="Gamma of the NB")
        ax.set_title(f"{name}: mixing distribution")
        ax.legend()
    fig.tight_layout()
    path = os.path.join(args.output_dir, "figure1_counts.png")
    fig.savefig(path, dpi=100)
    print(f"wrote {path}")
    backup.complete()  # all targets are done
    return results


if __name__ == "__main__":
    main()
