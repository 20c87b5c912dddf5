"""Losses: the semi-implicit estimator and the cross-replica reductions."""

from sig_keras.losses.reduction import replica_mean
from sig_keras.losses.semi_implicit import SemiImplicitLoss
from sig_keras.losses.semi_implicit import semi_implicit_log_likelihood
from sig_keras.losses.semi_implicit import semi_implicit_loss
