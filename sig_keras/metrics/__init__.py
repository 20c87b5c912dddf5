"""Evaluation metrics (Keras metrics)."""

from sig_keras.metrics.mode_coverage import ModeCoverage
from sig_keras.metrics.inception_score import InceptionScore
from sig_keras.metrics.inception_score import inception_score_from_probs
from sig_keras.metrics.stacked_mnist_modes import StackedMNISTModes
