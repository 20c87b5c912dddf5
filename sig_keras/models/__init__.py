"""Trainable generative models: two base layers and one file per model.

- `GenerativeModel`: seed, noise, sampling, data checks, config, export.
- `AdversarialModel(GenerativeModel)`: generator, discriminator, two
  optimizers, d/g losses and the GAN-SI generator step.
- `SIG`, `VAE` (on `GenerativeModel`); `GAN`, `WGANGP`, `UnrolledGAN`,
  `VEEGAN` (on `AdversarialModel`), each with its training rule in its own
  `train_step`.
"""

from sig_keras.models.generative_model import GenerativeModel
from sig_keras.models.adversarial_model import AdversarialModel
from sig_keras.models.sig import SIG
from sig_keras.models.unrolled_gan import UnrolledGAN
from sig_keras.models.vae import VAE
from sig_keras.models.veegan import VEEGAN
from sig_keras.models.gan import GAN
from sig_keras.models.wgan_gp import WGANGP
