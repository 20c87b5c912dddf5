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
"""

import argparse
import os

import keras
import numpy as np
import tensorflow as tf

import sig_keras
from sig_keras import distribute
from sig_keras.callbacks import ImageSummary
from sig_keras.callbacks.image_summary import save_image_grid
from sig_keras.metrics import StackedMNISTModes
from sig_keras.models import GAN

parser = argparse.ArgumentParser(description="DCGAN vs DCGAN-SI on Stacked MNIST.")
parser.add_argument("--size", default="M", choices=["S", "M", "L"])
parser.add_argument("--seeds", default="0", help="comma-separated seeds")
parser.add_argument("--steps", type=int, default=3000)
parser.add_argument("--batch-size", type=int, default=64)
parser.add_argument("--samples", type=int, default=26_000)
parser.add_argument("--data-dir", default=None)
parser.add_argument("--classifier", default="mnist_classifier.keras")
parser.add_argument("--strategy", default="default",
                    choices=["default", "mirrored", "multiworker"])
parser.add_argument("--out", default="runs/stacked_mnist")
parser.add_argument("--sig-weight", default="auto",
                    help="'auto' or a number: the SIG weight of DCGAN-SI")
args = parser.parse_args()

strategy = distribute.get_strategy(args.strategy)
classifier = keras.saving.load_model(args.classifier)
sig_weight = args.sig_weight if args.sig_weight == "auto" else float(args.sig_weight)

rows = []
for seed in (int(s) for s in args.seeds.split(",")):
    for label, weight in (("DCGAN", 0.0), ("DCGAN-SI", sig_weight)):
        run_dir = os.path.join(args.out, f"{label}_{args.size}_seed{seed}")
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
        # === Train ===
        model.fit(data, epochs=1, steps_per_epoch=args.steps, verbose=2, callbacks=[
            keras.callbacks.TensorBoard(run_dir, update_freq=100),
            ImageSummary(run_dir, every_n_steps=max(args.steps // 10, 1)),
        ])
        # === Evaluate ===
        metric = StackedMNISTModes(classifier)
        for start in range(0, args.samples, 1000):
            metric.update_state(model.sample(min(1000, args.samples - start), seed=start))
        result = {k: float(v) for k, v in metric.result().items()}
        save_image_grid(os.path.join(run_dir, "samples.png"), model.sample(64, seed=0))
        rows.append((label, seed, result))
        print(label, seed, result)

print(f"\nStacked MNIST, size {args.size}, {args.steps} steps, {args.samples} samples")
print(f"{'model':10s} {'seed':>4s} {'IS':>6s} {'high q.':>8s} {'modes':>6s} {'KL':>6s}")
for label, seed, r in rows:
    print(f"{label:10s} {seed:4d} {r['inception_score']:6.2f} {r['high_quality']:8.3f} "
          f"{r['modes']:6.0f} {r['kl']:6.2f}")
