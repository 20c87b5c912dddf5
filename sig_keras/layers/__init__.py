"""Explicit conditionals `p(x | psi)` (Keras 3 layers over TFP distributions),
synchronized batch norm and a discriminator augmentation."""

from sig_keras.layers.augmentation import RandomChannelPermutation
from sig_keras.layers.conditionals import BernoulliConditional
from sig_keras.layers.conditionals import Conditional
from sig_keras.layers.conditionals import NegativeBinomialConditional
from sig_keras.layers.conditionals import NormalConditional
from sig_keras.layers.conditionals import PoissonConditional
from sig_keras.layers.conditionals import get
from sig_keras.layers.normalization import SyncBatchNormalization
