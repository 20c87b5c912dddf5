"""sig_keras: semi-implicit generative models (Yin & Zhou) in Keras 3."""

__version__ = "0.1.0"

from sig_keras import callbacks
from sig_keras import datasets
from sig_keras import distribute
from sig_keras import layers
from sig_keras import losses
from sig_keras import metrics
from sig_keras import models
from sig_keras import networks
from sig_keras import presets
from sig_keras import utils
