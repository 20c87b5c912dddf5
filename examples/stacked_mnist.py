"""DCGAN vs DCGAN-SI on Stacked MNIST (Table 2 of Yin & Zhou).

Title: GAN-SI on Stacked MNIST (MNIST-3).
Description: trains the Appendix C networks (size S, M or L) as DCGAN and as
DCGAN-SI (automatic SIG weight) with the same seed, then counts modes out of
1000 with a pretrained digit classifier (examples/train_mnist_classifier.py)
on 26,000 samples and prints the Table 2 columns: IS, high-quality share,
modes, KL(generated || uniform). Saves a sample grid PNG per run and
TensorBoard logs (losses and image grids).

    python examples/train_mnist_classifier.py --out mnist_classifier.keras
    python examples/stacked_mnist.py --size M --steps 3000 --seeds 0 \
        --classifier mnist_classifier.keras
    python examples/stacked_mnist.py ... --backup-dir /tmp/mnist3_backup
                                        # re-run the same command to resume

Resuming (`--backup-dir`): each run checkpoints with
`sig_keras.callbacks.FaultTolerantBackup` every `BACKUP_EVERY` steps; a killed
run re-run with the same command skips the finished runs and continues the
interrupted one from its last checkpoint (the batches it had trained are read
and skipped). The directory is deleted when all runs are done.
"""

import argparse
import json
import os
import shutil

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402

import sig_keras  # noqa: E402
from sig_keras import distribute  # noqa: E402
from sig_keras.callbacks import FaultTolerantBackup  # noqa: E402
from sig_keras.callbacks import ImageSummary  # noqa: E402
from sig_keras.callbacks import TerminateOnNonFinite  # noqa: E402
from sig_keras.callbacks.image_summary import save_image_grid  # noqa: E402
from sig_keras.metrics import StackedMNISTModes  # noqa: E402
from sig_keras.models import GAN  # noqa: E402

BACKUP_EVERY = 500  # steps between checkpoints under --backup-dir
SPLITS = 10  # inception score splits


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="DCGAN vs DCGAN-SI on Stacked MNIST.")
    p.add_argument("--size", default="M", choices=["S", "M", "L"])
    p.add_argument("--seeds", default="0", help="comma-separated seeds")
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--samples", type=int, default=26_000,
                   help=f"generated samples for the metrics (>= {SPLITS})")
    p.add_argument("--data-dir", default=None, help="tfds data directory")
    p.add_argument("--classifier", default="mnist_classifier.keras",
                   help="saved MNIST digit classifier (examples/train_mnist_classifier.py)")
    distribute.add_strategy_flag(p)
    p.add_argument("--out", default="runs/stacked_mnist")
    p.add_argument("--sig-weight", default="auto",
                   help="'auto' or a number: the SIG weight of DCGAN-SI")
    p.add_argument("--backup-dir", default=None,
                   help="resume a killed run by re-running the same command: "
                   f"FaultTolerantBackup checkpoints every {BACKUP_EVERY} steps "
                   "(exact mid-epoch resume), finished runs are not re-trained, "
                   "training stops on a NaN/inf loss (TerminateOnNonFinite). "
                   "Deleted when all runs are done")
    p.add_argument("--deterministic", action="store_true",
                   help="bit-reproducible runs: sig_keras.distribute."
                   "enable_determinism(seed) per run (op determinism, slower)")
    args = p.parse_args(argv)
    try:
        args.seed_list = [int(s) for s in args.seeds.split(",")]
    except ValueError:
        p.error(f"--seeds must be comma-separated integers; got {args.seeds!r}")
    if args.sig_weight != "auto":
        try:
            args.sig_weight = float(args.sig_weight)
        except ValueError:
            p.error(f"--sig-weight must be 'auto' or a number; got {args.sig_weight!r}")
    for flag in ("steps", "batch_size"):
        if getattr(args, flag) < 1:
            p.error(f"--{flag.replace('_', '-')} must be >= 1; got {getattr(args, flag)}")
    if args.samples < SPLITS:
        p.error(f"--samples must be >= {SPLITS} (inception score splits); got {args.samples}")
    if not os.path.exists(args.classifier):
        p.error(f"--classifier {args.classifier} does not exist; train one with "
                "examples/train_mnist_classifier.py")
    if args.backup_dir and os.path.isfile(args.backup_dir):
        p.error(f"--backup-dir {args.backup_dir} is a file, not a directory")
    return args


def train_and_evaluate(args, label, weight, seed, strategy, classifier):
    run_dir = os.path.join(args.out, f"{label}_{args.size}_seed{seed}")
    if args.deterministic:
        distribute.enable_determinism(seed)
    else:
        keras.utils.set_random_seed(seed)
    data = sig_keras.datasets.stacked_mnist(
        "train", args.batch_size, seed=seed, data_dir=args.data_dir)
    # === Model ===
    with strategy.scope():
        model = GAN(sig_keras.models.mnist3_generator(args.size),
                    sig_keras.models.mnist3_discriminator(args.size),
                    latent_dim=256, sig_weight=weight, seed=seed)
        model.compile(d_optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5),
                      g_optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5))
    callbacks = [
        keras.callbacks.TensorBoard(run_dir, update_freq=100),
        ImageSummary(run_dir, every_n_steps=max(args.steps // 10, 1)),
    ]
    if args.backup_dir:
        distribute.build_optimizers(model, strategy)
        backup_dir = os.path.join(args.backup_dir, os.path.basename(run_dir))
        stop_on_nan = TerminateOnNonFinite()
        callbacks = [FaultTolerantBackup(backup_dir, save_freq=BACKUP_EVERY),
                     stop_on_nan] + callbacks
    # === Train ===
    model.fit(data, epochs=1, steps_per_epoch=args.steps, verbose=2, callbacks=callbacks)
    if args.backup_dir and stop_on_nan.message:
        raise SystemExit(f"{label} seed {seed}: {stop_on_nan.message}")
    # === Evaluate ===
    metric = StackedMNISTModes(classifier, splits=SPLITS)
    for start in range(0, args.samples, 1000):
        metric.update_state(model.sample(min(1000, args.samples - start), seed=start))
    save_image_grid(os.path.join(run_dir, "samples.png"), model.sample(64, seed=0))
    return {k: float(v) for k, v in metric.result().items()}


def main(argv=None):
    args = parse_args(argv)
    strategy = distribute.get_strategy(args.strategy)
    classifier = keras.saving.load_model(args.classifier)
    rows = []
    for seed in args.seed_list:
        for label, weight in (("DCGAN", 0.0), ("DCGAN-SI", args.sig_weight)):
            # A run finished before an interruption is read back, not re-trained.
            finished = None
            if args.backup_dir:
                finished = os.path.join(
                    args.backup_dir, f"{label}_{args.size}_seed{seed}-result-worker"
                    f"{distribute.worker_index(strategy)}.json")
            if finished and os.path.exists(finished):
                with open(finished) as f:
                    result = json.load(f)
            else:
                result = train_and_evaluate(args, label, weight, seed, strategy, classifier)
                if finished:
                    with open(finished + ".tmp", "w") as f:
                        json.dump(result, f)
                    os.replace(finished + ".tmp", finished)
            rows.append((label, seed, result))
            print(label, seed, result, flush=True)

    print(f"\nStacked MNIST, size {args.size}, {args.steps} steps, {args.samples} samples")
    print(f"{'model':10s} {'seed':>4s} {'IS':>6s} {'high q.':>8s} {'modes':>6s} {'KL':>6s} "
          f"{'H(y|x)':>7s} {'H(y)':>6s}")
    for label, seed, r in rows:
        print(f"{label:10s} {seed:4d} {r['inception_score']:6.2f} {r['high_quality']:8.3f} "
              f"{r['modes']:6.0f} {r['kl']:6.2f} {r['conditional_entropy']:7.3f} "
              f"{r['marginal_entropy']:6.3f}")
    if args.backup_dir:
        shutil.rmtree(args.backup_dir, ignore_errors=True)  # all runs are done
    return rows


if __name__ == "__main__":
    main()
