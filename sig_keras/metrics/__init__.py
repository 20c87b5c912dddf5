"""Evaluation metrics (Keras metrics)."""

from sig_keras.metrics.feature_extractors import inception_v3_features
from sig_keras.metrics.feature_extractors import mnist_classifier_features
from sig_keras.metrics.feature_metric import FeatureMetric
from sig_keras.metrics.feature_scores import feature_scores
from sig_keras.metrics.frechet_distance import FrechetDistance
from sig_keras.metrics.inception_score import InceptionScore
from sig_keras.metrics.inception_score import inception_score_from_probs
from sig_keras.metrics.kernel_distance import KernelDistance
from sig_keras.metrics.mode_coverage import ModeCoverage
from sig_keras.metrics.precision_recall import PrecisionRecall
from sig_keras.metrics.semi_implicit_likelihood import SemiImplicitLikelihood
from sig_keras.metrics.stacked_mnist_modes import StackedMNISTModes
from sig_keras.metrics.sample_diversity import diversity_ratio
from sig_keras.metrics.sample_diversity import mean_pairwise_distance
