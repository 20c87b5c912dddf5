"""DCGAN, DCGAN-SI, WGAN-GP and WGAN-GP-SI on CIFAR-10 (Table 3 of Yin & Zhou).

Title: GAN-SI on CIFAR-10.
Description: trains the DCGAN networks (Radford et al.; no batch norm in the
WGAN-GP critic) with Adam, batch 64, then prints the inception score of
50,000 samples (10 splits) with Keras InceptionV3 (ImageNet weights,
downloaded on first use). Scores from other Inception implementations are not
comparable. Saves a sample grid PNG and TensorBoard logs per model.

    python examples/cifar10.py --models dcgan,dcgan_si --steps 100000
"""

import argparse
import os

import keras

import sig_keras
from sig_keras import distribute
from sig_keras.callbacks import ImageSummary
from sig_keras.callbacks.image_summary import save_image_grid
from sig_keras.metrics import InceptionScore
from sig_keras.models import GAN
from sig_keras.models import WGANGP

MODELS = ["dcgan", "dcgan_si", "wgan_gp", "wgan_gp_si"]
parser = argparse.ArgumentParser(description="GAN-SI on CIFAR-10.")
parser.add_argument("--models", default=",".join(MODELS))
parser.add_argument("--steps", type=int, default=100_000)
parser.add_argument("--batch-size", type=int, default=64)
parser.add_argument("--samples", type=int, default=50_000)
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--data-dir", default=None)
parser.add_argument("--strategy", default="default",
                    choices=["default", "mirrored", "multiworker"])
parser.add_argument("--out", default="runs/cifar10")
args = parser.parse_args()
names = args.models.split(",")
for name in names:
    if name not in MODELS:
        raise ValueError(f"Unknown model {name!r}; valid: {MODELS}.")

strategy = distribute.get_strategy(args.strategy)
data = sig_keras.datasets.cifar10("train", args.batch_size, seed=args.seed,
                                  data_dir=args.data_dir)
scores = {}
for name in names:
    keras.utils.set_random_seed(args.seed)
    sig_weight = "auto" if name.endswith("_si") else 0.0
    # === Model ===
    with strategy.scope():
        if name.startswith("dcgan"):
            model = GAN(sig_keras.models.dcgan_generator(128),
                        sig_keras.models.dcgan_discriminator(), 128,
                        sig_weight=sig_weight, seed=args.seed)
            model.compile(d_optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5),
                          g_optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5))
        else:
            model = WGANGP(sig_keras.models.dcgan_generator(128),
                           sig_keras.models.dcgan_critic(), 128,
                           sig_weight=sig_weight, seed=args.seed)
            model.compile(d_optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5, beta_2=0.9),
                          g_optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5, beta_2=0.9))
    # === Train ===
    run_dir = os.path.join(args.out, name)
    model.fit(data, epochs=1, steps_per_epoch=args.steps, verbose=2, callbacks=[
        keras.callbacks.TensorBoard(run_dir, update_freq=100),
        ImageSummary(run_dir, every_n_steps=max(args.steps // 20, 1)),
    ])
    save_image_grid(os.path.join(run_dir, "samples.png"), model.sample(64, seed=0))
    # === Inception score (default Keras InceptionV3) ===
    metric = InceptionScore(splits=10)
    for start in range(0, args.samples, 500):
        metric.update_state(model.sample(min(500, args.samples - start), seed=start))
    result = metric.result()
    scores[name] = (float(result["inception_score"]), float(result["inception_score_std"]))
    print(name, scores[name])

print("\nCIFAR-10 inception score (Keras InceptionV3, 10 splits)")
for name, (mean, std) in scores.items():
    print(f"{name:12s} {mean:.2f} +- {std:.2f}")
