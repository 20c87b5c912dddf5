"""Network builders (functional `keras.Model`s), apart from the trainable models.

- `mlp`, `mlp_generator`, `mlp_discriminator`, `mlp_encoder`: the toy MLPs
  (Table 1, Figure 1, count data).
- `dcgan_generator`, `dcgan_discriminator`, `dcgan_critic`: DCGAN for 32x32x3
  (CIFAR-10).
- `mnist3_generator`, `mnist3_discriminator`: the MNIST-3 networks of Stacked
  MNIST (Table 2).
- `mnist_generator`, `mnist_discriminator`: TensorFlow's DCGAN tutorial
  networks for single MNIST digits.
"""

from sig_keras.networks.dcgan import dcgan_critic
from sig_keras.networks.dcgan import dcgan_discriminator
from sig_keras.networks.dcgan import dcgan_generator
from sig_keras.networks.dcgan import mnist3_discriminator
from sig_keras.networks.dcgan import mnist3_generator
from sig_keras.networks.dcgan import mnist_discriminator
from sig_keras.networks.dcgan import mnist_generator
from sig_keras.networks.mlp import mlp
from sig_keras.networks.mlp import mlp_discriminator
from sig_keras.networks.mlp import mlp_encoder
from sig_keras.networks.mlp import mlp_generator
