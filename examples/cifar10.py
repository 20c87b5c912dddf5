"""DCGAN, DCGAN-SI, WGAN-GP and WGAN-GP-SI on CIFAR-10 (Table 3 of Yin & Zhou).

Title: GAN-SI on CIFAR-10.
Description: trains the DCGAN networks (Radford et al.; no batch norm in the
WGAN-GP critic) with Adam, batch 64, then prints the inception score of
50,000 samples (10 splits) with Keras InceptionV3 (ImageNet weights,
downloaded on first use, before training starts) or with a classifier of your
own (`--classifier`). Beside it, on the first `--feature-samples` (10,000) of
the same samples against as many real CIFAR-10 training images: FID, KID
(100 subsets of up to 1000) and k-NN precision, recall, density and coverage
(k = 5), on InceptionV3's 2048-d pool features (the features
`sig_keras.metrics.inception_v3_features` gives; here taken from the
classifier the inception score runs, so each image goes through InceptionV3
once) or on the penultimate layer of `--classifier`. Scores from other
Inception implementations (or other feature extractors) are not comparable.
Saves a sample grid PNG and TensorBoard logs per model, and all scores in
`results.json`.

    python examples/cifar10.py --models dcgan,dcgan_si --steps 100000
    python examples/cifar10.py ... --backup-dir /tmp/cifar_backup
                                  # re-run the same command to resume
    python examples/cifar10.py ... --reference-stats cifar10_inception.npz
                                  # real features: computed and written at the
                                  # first run, read by later runs

Real features are computed once per process (before training), or read from
`--reference-stats`: a `.npz` of real `features` written by
`KernelDistance.save_reference` (the example writes it when the file does
not exist). It must come from the same feature extractor.

Resuming (`--backup-dir`, `sig_keras.experiment.Backup`): finished models are
read back, the interrupted one goes on from its last checkpoint (every
`BACKUP_EVERY` steps, mid-epoch).
"""

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import sig_keras  # noqa: E402
from sig_keras import distribute  # noqa: E402
from sig_keras import experiment  # noqa: E402
from sig_keras.callbacks import ImageSummary  # noqa: E402
from sig_keras.utils import save_image_grid  # noqa: E402
from sig_keras.metrics import InceptionScore  # noqa: E402
from sig_keras.metrics import KernelDistance  # noqa: E402
from sig_keras.metrics import feature_scores  # noqa: E402
from sig_keras.metrics.feature_metric import load_reference_statistics  # noqa: E402
from sig_keras.metrics.inception_score import to_probabilities  # noqa: E402
from sig_keras.models import GAN  # noqa: E402
from sig_keras.models import WGANGP  # noqa: E402

MODELS = ["dcgan", "dcgan_si", "wgan_gp", "wgan_gp_si"]
BACKUP_EVERY = 500  # steps between checkpoints under --backup-dir
SPLITS = 10  # inception score splits
K = 5  # neighbours of precision/recall/density/coverage
FEATURE_COLUMNS = ("fid", "kid", "kid_std", "precision", "recall", "density", "coverage")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="GAN-SI on CIFAR-10.")
    p.add_argument("--models", default=",".join(MODELS), help=f"comma-separated, from {MODELS}")
    experiment.add_steps_flag(p, default=100_000)
    p.add_argument("--batch-size", type=experiment.positive_int("--batch-size"), default=64)
    p.add_argument("--samples", type=experiment.int_flag("--samples", minimum=SPLITS),
                   default=50_000,
                   help=f"generated samples for the inception score (>= {SPLITS})")
    p.add_argument("--seed", type=experiment.seed_int("--seed"), default=0)
    p.add_argument("--data-dir", default=None, help="tfds data directory")
    p.add_argument("--classifier", default=None,
                   help="saved Keras classifier of [-1, 1] 32x32x3 images (probabilities "
                   "or logits) for the inception score; default: Keras InceptionV3 "
                   "with ImageNet weights (downloaded)")
    p.add_argument("--feature-samples", type=experiment.non_negative_int("--feature-samples"),
                   default=10_000,
                   help="real and generated samples (the first of --samples; at most "
                   "--samples) for FID, "
                   f"KID and precision/recall/density/coverage (k={K}) on InceptionV3 "
                   "pool features, or --classifier's penultimate layer; 0: skip them")
    p.add_argument("--reference-stats", default=None,
                   help="a .npz of real features (KernelDistance.save_reference): read "
                   "if it exists, else computed once and written there")
    experiment.add_output_dir_flag(p, "cifar10")
    experiment.add_run_flags(p, runs="models", save_freq=BACKUP_EVERY)
    args = p.parse_args(argv)
    args.names = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = sorted(set(args.names) - set(MODELS))
    if unknown or not args.names:
        p.error(f"unknown model(s) {unknown}; valid: {MODELS}")
    # Numeric flags were range-checked by their `type=` (exit code 2).
    if args.feature_samples != 0 and args.feature_samples < K + 1:
        p.error(f"--feature-samples must be 0 (off) or >= {K + 1} (k + 1 for k = {K}); "
                f"got {args.feature_samples}")
    if args.reference_stats is not None and args.feature_samples == 0:
        p.error("--reference-stats needs --feature-samples > 0")
    args.feature_samples = min(args.feature_samples, args.samples)
    if args.classifier is not None and not os.path.exists(args.classifier):
        p.error(f"--classifier {args.classifier} does not exist")
    experiment.check_backup_dir(p, args.backup_dir)
    return args


def build_model(name, seed):
    sig_weight = "auto" if name.endswith("_si") else 0.0
    if name.startswith("dcgan"):
        model = GAN(sig_keras.networks.dcgan_generator(128),
                    sig_keras.networks.dcgan_discriminator(), 128,
                    sig_weight=sig_weight, seed=seed)
        model.compile(d_optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5),
                      g_optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5))
    else:
        model = WGANGP(sig_keras.networks.dcgan_generator(128),
                       sig_keras.networks.dcgan_critic(), 128,
                       sig_weight=sig_weight, seed=seed)
        model.compile(d_optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5, beta_2=0.9),
                      g_optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5, beta_2=0.9))
    return model


def scoring_model(metric):
    """The inception score's classifier with two outputs: `[features, outputs]`.

    Features: the input of the classifier's last layer with weights (for
    InceptionV3, the 2048-d `avg_pool` features of `inception_v3_features`;
    for a custom classifier, its penultimate layer), so one forward pass gives
    the inception score's class outputs and the feature metrics' features.
    """
    classifier = metric.classifier
    if not getattr(classifier, "inputs", None):
        raise ValueError(f"The classifier must be a built functional or Sequential "
                         f"keras.Model; got {classifier!r}.")
    last = len(classifier.layers) - 1
    while last > 0 and not classifier.layers[last].weights:
        last -= 1  # skip Activation/Softmax layers after the last Dense
    features = classifier.layers[last].input
    if isinstance(features, (list, tuple)) or len(features.shape) != 2:
        raise ValueError(
            "The classifier's penultimate layer must output [n, f] features; got "
            f"{getattr(features, 'shape', features)}.")
    return keras.Model(classifier.inputs, [features, classifier.outputs[0]],
                       name="features_and_outputs")


def score_batch(images, metric, model):
    """Features `[n, f]` (numpy) of `images`; updates the inception score."""
    features, outputs = model(metric.preprocess(images), training=False)
    metric.update_state_from_probs(to_probabilities(outputs, metric.from_logits))
    return keras.ops.convert_to_numpy(features)


def real_features(args, metric, model):
    """`[n, f]` features of `--feature-samples` real training images (fixed seed),
    or those of `--reference-stats` when it exists (written there otherwise)."""
    if args.reference_stats and os.path.exists(args.reference_stats):
        features = load_reference_statistics(args.reference_stats).get("features")
        width = model.outputs[0].shape[-1]
        if features is None or features.ndim != 2 or features.shape[1] != width:
            raise SystemExit(
                f"--reference-stats {args.reference_stats}: expected real 'features' of "
                f"width {width} (from the same feature extractor); got "
                f"{None if features is None else features.shape}")
        return features.astype(np.float32), f"{args.reference_stats}"
    batch = min(500, args.feature_samples)
    data = sig_keras.datasets.cifar10("train", batch, seed=12_345, data_dir=args.data_dir)
    feats, count = [], 0
    for images, _ in data:
        features, _ = model(metric.preprocess(images[: args.feature_samples - count]),
                            training=False)
        feats.append(keras.ops.convert_to_numpy(features))
        count += feats[-1].shape[0]
        if count >= args.feature_samples:
            break
    features = np.concatenate(feats, axis=0)
    if args.reference_stats:
        kid = KernelDistance("identity", num_features=features.shape[1])
        kid.update_state_from_features(real_features=features)
        kid.save_reference(args.reference_stats)
    return features, "CIFAR-10 train"


def train_and_score(args, run, name, data, strategy, metric, model_out, real):
    experiment.set_seed(args.seed, args.deterministic)
    # === Model ===
    with strategy.scope():
        model = build_model(name, args.seed)
    run_dir = os.path.join(args.output_dir, name)
    callbacks = [
        keras.callbacks.TensorBoard(run_dir, update_freq=100),
        ImageSummary(run_dir, every_n_steps=max(args.steps // 20, 1)),
        experiment.ProgressLogger(name, every_n_steps=max(args.steps // 20, 1)),
    ]
    # === Train ===
    run.fit(model, data, save_freq=BACKUP_EVERY, epochs=1, steps_per_epoch=args.steps,
            verbose=2, callbacks=callbacks)
    save_image_grid(os.path.join(run_dir, "samples.png"), model.sample(64, seed=0))
    # === Inception score and feature metrics, on the same samples ===
    metric.reset_state()
    generated = []
    num_features = args.feature_samples
    for start in range(0, args.samples, 500):
        features = score_batch(model.sample(min(500, args.samples - start), seed=start),
                               metric, model_out)
        if start < num_features:
            generated.append(features[: num_features - start])
    result = {k: float(v) for k, v in metric.result().items()}
    if real is not None:
        result.update(feature_scores(real, np.concatenate(generated, axis=0), k=K))
    return result


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
    model_out = scoring_model(metric)
    real, real_source = None, None
    if args.feature_samples:
        real, real_source = real_features(args, metric, model_out)  # once per process
    data = sig_keras.datasets.cifar10("train", args.batch_size, seed=args.seed,
                                      data_dir=args.data_dir)
    backup = experiment.Backup(args.backup_dir, strategy)
    results = {}
    for name in args.names:
        # A model finished before an interruption is read back, not re-trained.
        run = backup.run(name)
        results[name] = run.load()
        if isinstance(results[name], list):  # written before the feature metrics
            mean, std = results[name]
            results[name] = {"inception_score": mean, "inception_score_std": std,
                             **{k: float("nan") for k in FEATURE_COLUMNS}}
        if results[name] is None:
            results[name] = train_and_score(args, run, name, data, strategy, metric,
                                            model_out, real)
            run.save(results[name])
        print(name, {k: round(v, 4) for k, v in results[name].items()}, flush=True)
    scores = {name: (r["inception_score"], r["inception_score_std"])
              for name, r in results.items()}

    print(f"\nCIFAR-10 inception score ({scorer}, {SPLITS} splits, {args.samples} samples)")
    header = f"{'model':12s} {'IS':>12s}"
    if real is not None:
        features = "InceptionV3 pool" if not args.classifier else "classifier penultimate"
        print(f"FID, KID, precision/recall/density/coverage (k={K}): {features} features "
              f"of {args.feature_samples} generated vs {real.shape[0]} "
              f"real ({real_source}) samples")
        header += (f" {'FID':>8s} {'KID':>8s} {'KID std':>8s} {'prec.':>6s} {'recall':>6s} "
                   f"{'density':>7s} {'cover.':>6s}")
    print(header)
    for name, r in results.items():
        row = f"{name:12s} {r['inception_score']:.2f} +- {r['inception_score_std']:.2f}"
        if real is not None:
            row += (f" {r['fid']:8.2f} {r['kid']:8.4f} {r['kid_std']:8.4f} "
                    f"{r['precision']:6.3f} {r['recall']:6.3f} {r['density']:7.3f} "
                    f"{r['coverage']:6.3f}")
        print(row)
    experiment.write_json(os.path.join(args.output_dir, "results.json"),
                          [{"model": name, **r} for name, r in results.items()], indent=1)
    backup.complete()  # all models are done
    return scores


if __name__ == "__main__":
    main()
