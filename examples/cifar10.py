"""DCGAN, DCGAN-SI, WGAN-GP and WGAN-GP-SI on CIFAR-10 (Table 3 of Yin & Zhou).

Title: GAN-SI on CIFAR-10.
Description: trains the DCGAN networks (Radford et al.; no batch norm in the
WGAN-GP critic) with Adam, batch 64, then prints the inception score of
50,000 samples (10 splits) with Keras InceptionV3 (ImageNet weights,
downloaded on first use, before training starts) or with a classifier of your
own (`--classifier`). Scores from other Inception implementations are not
comparable. Saves a sample grid PNG and TensorBoard logs per model.

    python examples/cifar10.py --models dcgan,dcgan_si --steps 100000
    python examples/cifar10.py ... --backup-dir /tmp/cifar_backup
                                  # re-run the same command to resume

Resuming (`--backup-dir`): each model checkpoints with
`sig_keras.callbacks.FaultTolerantBackup` every `BACKUP_EVERY` steps; a killed
run re-run with the same command skips the finished models and continues the
interrupted one from its last checkpoint (the batches it had trained are read
and skipped). The directory is deleted when all models are done.
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
from sig_keras.metrics import InceptionScore  # noqa: E402
from sig_keras.models import GAN  # noqa: E402
from sig_keras.models import WGANGP  # noqa: E402

MODELS = ["dcgan", "dcgan_si", "wgan_gp", "wgan_gp_si"]
BACKUP_EVERY = 500  # steps between checkpoints under --backup-dir
SPLITS = 10  # inception score splits


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="GAN-SI on CIFAR-10.")
    p.add_argument("--models", default=",".join(MODELS), help=f"comma-separated, from {MODELS}")
    p.add_argument("--steps", type=int, default=100_000)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--samples", type=int, default=50_000,
                   help=f"generated samples for the inception score (>= {SPLITS})")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-dir", default=None, help="tfds data directory")
    p.add_argument("--classifier", default=None,
                   help="saved Keras classifier of [-1, 1] 32x32x3 images (probabilities "
                   "or logits) for the inception score; default: Keras InceptionV3 "
                   "with ImageNet weights (downloaded)")
    distribute.add_strategy_flag(p)
    p.add_argument("--out", default="runs/cifar10")
    p.add_argument("--backup-dir", default=None,
                   help="resume a killed run by re-running the same command: "
                   f"FaultTolerantBackup checkpoints every {BACKUP_EVERY} steps "
                   "(exact mid-epoch resume), finished models are not re-trained, "
                   "training stops on a NaN/inf loss (TerminateOnNonFinite). "
                   "Deleted when all models are done")
    p.add_argument("--deterministic", action="store_true",
                   help="bit-reproducible runs: sig_keras.distribute."
                   "enable_determinism(seed) per model (op determinism, slower)")
    args = p.parse_args(argv)
    args.names = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = sorted(set(args.names) - set(MODELS))
    if unknown or not args.names:
        p.error(f"unknown model(s) {unknown}; valid: {MODELS}")
    for flag in ("steps", "batch_size"):
        if getattr(args, flag) < 1:
            p.error(f"--{flag.replace('_', '-')} must be >= 1; got {getattr(args, flag)}")
    if args.samples < SPLITS:
        p.error(f"--samples must be >= {SPLITS} (inception score splits); got {args.samples}")
    if args.classifier is not None and not os.path.exists(args.classifier):
        p.error(f"--classifier {args.classifier} does not exist")
    if args.backup_dir and os.path.isfile(args.backup_dir):
        p.error(f"--backup-dir {args.backup_dir} is a file, not a directory")
    return args


def build_model(name, seed):
    sig_weight = "auto" if name.endswith("_si") else 0.0
    if name.startswith("dcgan"):
        model = GAN(sig_keras.models.dcgan_generator(128),
                    sig_keras.models.dcgan_discriminator(), 128,
                    sig_weight=sig_weight, seed=seed)
        model.compile(d_optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5),
                      g_optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5))
    else:
        model = WGANGP(sig_keras.models.dcgan_generator(128),
                       sig_keras.models.dcgan_critic(), 128,
                       sig_weight=sig_weight, seed=seed)
        model.compile(d_optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5, beta_2=0.9),
                      g_optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5, beta_2=0.9))
    return model


def train_and_score(args, name, data, strategy, metric):
    if args.deterministic:
        distribute.enable_determinism(args.seed)
    else:
        keras.utils.set_random_seed(args.seed)
    # === Model ===
    with strategy.scope():
        model = build_model(name, args.seed)
    run_dir = os.path.join(args.out, name)
    callbacks = [
        keras.callbacks.TensorBoard(run_dir, update_freq=100),
        ImageSummary(run_dir, every_n_steps=max(args.steps // 20, 1)),
    ]
    if args.backup_dir:
        distribute.build_optimizers(model, strategy)
        stop_on_nan = TerminateOnNonFinite()
        callbacks = [FaultTolerantBackup(os.path.join(args.backup_dir, name),
                                         save_freq=BACKUP_EVERY),
                     stop_on_nan] + callbacks
    # === Train ===
    model.fit(data, epochs=1, steps_per_epoch=args.steps, verbose=2, callbacks=callbacks)
    if args.backup_dir and stop_on_nan.message:
        raise SystemExit(f"{name}: {stop_on_nan.message}")
    save_image_grid(os.path.join(run_dir, "samples.png"), model.sample(64, seed=0))
    # === Inception score ===
    metric.reset_state()
    for start in range(0, args.samples, 500):
        metric.update_state(model.sample(min(500, args.samples - start), seed=start))
    result = metric.result()
    return float(result["inception_score"]), float(result["inception_score_std"])


def main(argv=None):
    args = parse_args(argv)
    strategy = distribute.get_strategy(args.strategy)
    if args.classifier:
        metric = InceptionScore(keras.saving.load_model(args.classifier), splits=SPLITS)
        scorer = f"classifier {args.classifier}"
    else:
        metric = InceptionScore(splits=SPLITS)
        metric.classifier  # loads (downloads) InceptionV3 now, not after training
        scorer = "Keras InceptionV3"
    data = sig_keras.datasets.cifar10("train", args.batch_size, seed=args.seed,
                                      data_dir=args.data_dir)
    scores = {}
    for name in args.names:
        # A model finished before an interruption is read back, not re-trained.
        finished = None
        if args.backup_dir:
            finished = os.path.join(
                args.backup_dir,
                f"{name}-result-worker{distribute.worker_index(strategy)}.json")
        if finished and os.path.exists(finished):
            with open(finished) as f:
                scores[name] = tuple(json.load(f))
        else:
            scores[name] = train_and_score(args, name, data, strategy, metric)
            if finished:
                with open(finished + ".tmp", "w") as f:
                    json.dump(scores[name], f)
                os.replace(finished + ".tmp", finished)
        print(name, scores[name], flush=True)

    print(f"\nCIFAR-10 inception score ({scorer}, {SPLITS} splits, {args.samples} samples)")
    for name, (mean, std) in scores.items():
        print(f"{name:12s} {mean:.2f} +- {std:.2f}")
    if args.backup_dir:
        shutil.rmtree(args.backup_dir, ignore_errors=True)  # all models are done
    return scores


if __name__ == "__main__":
    main()
