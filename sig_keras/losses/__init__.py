"""Losses: the semi-implicit estimator, its GAN-SI weighting and the adversarial losses."""

from sig_keras.distribute.reduction import replica_mean
from sig_keras.losses.semi_implicit import SemiImplicitLoss
from sig_keras.losses.semi_implicit import combine_adversarial_and_sig_gradients
from sig_keras.losses.semi_implicit import semi_implicit_log_likelihood
from sig_keras.losses.semi_implicit import semi_implicit_loss
from sig_keras.losses.adversarial import minimax_discriminator_loss
from sig_keras.losses.adversarial import minimax_generator_loss
from sig_keras.losses.adversarial import modified_generator_loss
from sig_keras.losses.adversarial import wasserstein_discriminator_loss
from sig_keras.losses.adversarial import wasserstein_generator_loss
from sig_keras.losses.adversarial import wasserstein_gradient_penalty
