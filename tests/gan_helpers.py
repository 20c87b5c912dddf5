"""Tiny networks and data shared by the GAN / WGAN-GP tests."""

import keras
import numpy as np

LATENT = 4
SHAPE = (8, 8, 1)


def tiny_generator(batch_norm=False):
    inputs = keras.Input((LATENT,))
    h = keras.layers.Dense(16, activation="relu")(inputs)
    if batch_norm:
        h = keras.layers.BatchNormalization(synchronized=True)(h)
    h = keras.layers.Dense(int(np.prod(SHAPE)), activation="tanh")(h)
    return keras.Model(inputs, keras.layers.Reshape(SHAPE)(h), name="generator")


def tiny_discriminator(batch_norm=False):
    inputs = keras.Input(SHAPE)
    h = keras.layers.Conv2D(4, 3, strides=2, padding="same")(inputs)
    if batch_norm:
        h = keras.layers.BatchNormalization(synchronized=True)(h)
    h = keras.layers.LeakyReLU(0.2)(h)
    h = keras.layers.Flatten()(h)
    return keras.Model(inputs, keras.layers.Dense(1)(h), name="discriminator")


def images(n=32, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(-1, 1, (n,) + SHAPE).astype("float32")
