"""Trainable generative models (each with its own `train_step`) and networks."""

from sig_keras.models.generative_model import GenerativeModel
from sig_keras.models.networks import mlp
from sig_keras.models.networks import mlp_discriminator
from sig_keras.models.networks import mlp_encoder
from sig_keras.models.networks import mlp_generator
from sig_keras.models.sig import SIG
