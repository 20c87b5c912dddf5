"""Train the MNIST digit classifier used by the Stacked MNIST metrics.

Title: MNIST digit classifier for MNIST-3 mode counting.
Description: a small CNN on MNIST scaled to [-1, 1] (the range of the
generated channels), softmax outputs; saved as a `.keras` file for
`sig_keras.metrics.StackedMNISTModes`.

    python examples/train_mnist_classifier.py --out mnist_classifier.keras
"""

import argparse

import keras
import tensorflow as tf
import tensorflow_datasets as tfds

parser = argparse.ArgumentParser(description="Train the MNIST digit classifier.")
parser.add_argument("--out", default="mnist_classifier.keras")
parser.add_argument("--epochs", type=int, default=3)
parser.add_argument("--data-dir", default=None)
args = parser.parse_args()


def prepare(split):
    ds = tfds.load("mnist", split=split, as_supervised=True, data_dir=args.data_dir)
    ds = ds.map(lambda x, y: (tf.cast(x, tf.float32) / 127.5 - 1.0, y))
    return ds.shuffle(10_000, seed=0).batch(128).prefetch(tf.data.AUTOTUNE)


# === Model ===
inputs = keras.Input((28, 28, 1))
h = keras.layers.Conv2D(32, 3, activation="relu")(inputs)
h = keras.layers.MaxPooling2D()(h)
h = keras.layers.Conv2D(64, 3, activation="relu")(h)
h = keras.layers.MaxPooling2D()(h)
h = keras.layers.Flatten()(h)
h = keras.layers.Dropout(0.3)(h)
outputs = keras.layers.Dense(10, activation="softmax")(h)
classifier = keras.Model(inputs, outputs, name="mnist_classifier")
classifier.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])

# === Train and save ===
classifier.fit(prepare("train"), epochs=args.epochs, validation_data=prepare("test"))
print("test accuracy:", classifier.evaluate(prepare("test"), verbose=0)[1])
classifier.save(args.out)
print("saved", args.out)
