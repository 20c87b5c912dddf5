"""Trainable generative models (each with its own `train_step`) and networks."""

from sig_keras.models.generative_model import GenerativeModel
from sig_keras.models.networks import mlp
from sig_keras.models.networks import mlp_discriminator
from sig_keras.models.networks import mlp_encoder
from sig_keras.models.networks import mlp_generator
from sig_keras.models.sig import SIG
from sig_keras.models.unrolled_gan import UnrolledGAN
from sig_keras.models.vae import VAE
from sig_keras.models.veegan import VEEGAN
from sig_keras.models.dcgan_networks import dcgan_critic
from sig_keras.models.dcgan_networks import dcgan_discriminator
from sig_keras.models.dcgan_networks import dcgan_generator
from sig_keras.models.dcgan_networks import mnist3_discriminator
from sig_keras.models.dcgan_networks import mnist3_generator
from sig_keras.models.gan import GAN
from sig_keras.models.wgan_gp import WGANGP
