"""Evaluation metrics (Keras metrics)."""

from sig_keras.metrics.mode_coverage import ModeCoverage
