
from sig_keras.models.generative_model import GenerativeModel
from sig_keras.models.sig import SIG
from sig_keras.models.unrolled_gan import UnrolledGAN
from sig_keras.models.vae import VAE
from sig_keras.models.veegan import VEEGAN
from sig_keras.models.gan import GAN
from sig_keras.models.wgan_gp import WGANGP
