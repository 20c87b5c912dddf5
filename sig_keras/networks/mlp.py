"""Builders for the small MLPs of the toy experiments (Table 1, Figure 1).

Table 1 shares one generator across every model: a 2-hidden-layer MLP with
100 ReLU units each. The GAN discriminator has one hidden layer of 100; the
VAE and VEEGAN encoders are 2 x 100 MLPs.
"""

import keras


def mlp(input_dim, output_dim, hidden_units=(100, 100), activation="relu",
        output_activation=None, name="mlp"):
    """A plain MLP `input_dim -> hidden_units -> output_dim` (functional)."""
    if int(input_dim) < 1 or int(output_dim) < 1:
        raise ValueError(
            f"`input_dim` and `output_dim` must be >= 1; got {input_dim}, {output_dim}."
        )
    inputs = keras.Input((int(input_dim),), name=f"{name}_input")
    h = inputs
    for i, units in enumerate(hidden_units):
        h = keras.layers.Dense(units, activation=activation, name=f"{name}_dense_{i}")(h)
    outputs = keras.layers.Dense(
        int(output_dim), activation=output_activation, name=f"{name}_out"
    )(h)
    return keras.Model(inputs, outputs, name=name)


def mlp_generator(latent_dim, output_dim, hidden_units=(100, 100), activation="relu",
                  name="generator"):
    """Toy generator `T_phi`: noise `[n, latent_dim]` -> `[n, output_dim]`.

    Defaults to the paper's 2 hidden layers of 100 ReLU units.
    """
    return mlp(latent_dim, output_dim, hidden_units, activation, name=name)


def mlp_discriminator(input_dim, hidden_units=(100,), activation="relu",
                      name="discriminator"):
    """Toy discriminator: `[n, input_dim]` -> one logit. One hidden layer of 100."""
    return mlp(input_dim, 1, hidden_units, activation, name=name)


def mlp_encoder(input_dim, output_dim, hidden_units=(100, 100), activation="relu",
                name="encoder"):
    """Toy encoder (VAE, VEEGAN): a 2 x 100 ReLU MLP."""
    return mlp(input_dim, output_dim, hidden_units, activation, name=name)
