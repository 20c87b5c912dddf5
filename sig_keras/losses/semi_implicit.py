"""The semi-implicit estimator (Yin & Zhou, Lemma 1).

    L_K(phi) = - E_x E_{psi_1..psi_K} log( (1/K) sum_k p(x | psi_k) )
    H(p_data, p_phi) <= L_{K+1} <= L_K

Minibatch estimate with data `x_1..x_N` and generated `psi_1..psi_K`:

    L_hat = - (1/N) sum_i [ logsumexp_k log p(x_i | psi_k) - log K ]

This module is the only place the estimator is written.
"""


import keras
import tensorflow as tf

from sig_keras.layers import conditionals as conditionals_lib
from sig_keras.distribute import reduction


def semi_implicit_log_likelihood(x, psi, conditional):
    """Per-example `logsumexp_k log p(x_i | psi_k) - log K`, shape `[N]`.

    No cross-replica communication: `psi` is used as given.
    """
    conditional = conditionals_lib.get(conditional)
    # log p(x_i | psi_k) = scores[i, k] + row[i]: the x-only terms leave the
    # logsumexp, so the [N, K] work is one matrix product and a bias.
    scores, row = conditional.pairwise_log_prob_terms(x, psi)
    num_samples = tf.cast(tf.shape(scores)[1], scores.dtype)
    return tf.reduce_logsumexp(scores, axis=1) + row - tf.math.log(num_samples)


def semi_implicit_loss(x, psi, conditional, psi_replicated=False):
    """The SIG loss `L_hat` on a batch, in log space, float32.

    Args:
        x: tensor `[N, *event_shape]`. Data (this replica's slice under a
            distribution strategy).
        psi: tensor `[K, *param_shape]`. Generated conditional parameters
            `psi_k = T_phi(eps_k)` (this replica's slice).
        conditional: a `sig_keras.layers.Conditional` (or its name).
        psi_replicated: bool. True when every replica already holds all `K`
            samples (the same on each replica, e.g. generated from the same
            noise): no all-gather is done, and each replica's gradient flows
            through its own copy of `psi`. Defaults to False.

    Returns:
        A float32 scalar. Outside a distribution strategy (or with one
        replica): `L_hat`. Inside a replica of a strategy with `R > 1`
        replicas: `psi` is all-gathered so every data point sees all `K`
        samples of the global batch, and the value returned is this replica's
        share `-(1/N_global) sum_{i in replica} [...]`, so that the sum over
        replicas of the values, and of their gradients, equals the
        single-device value and gradient on the whole batch (the convention of
        `tf.nn.compute_average_loss`).
    """
    conditional = conditionals_lib.get(conditional)
    x = tf.convert_to_tensor(x)
    psi = tf.convert_to_tensor(psi)
    conditional.check_shapes(x.shape, psi.shape)
    if not psi_replicated:
        psi = reduction.gather_across_replicas(psi)
    per_example = semi_implicit_log_likelihood(x, psi, conditional)
    return -reduction.replica_mean(per_example)


@keras.saving.register_keras_serializable(package="sig_keras")
class SemiImplicitLoss(keras.losses.Loss):
    """`keras.losses.Loss` wrapper: `y_true` is data, `y_pred` is psi.

    The batch of `y_pred` is the set of `K` generated parameters (it need not
    match the batch of `y_true`); the reduction is already the mean over data.

    Args:
        conditional: a `sig_keras.layers.Conditional` or its name.
    """

    def __init__(self, conditional="normal", name="semi_implicit_loss", **kwargs):
        kwargs.pop("reduction", None)
        super().__init__(name=name, reduction="none", **kwargs)
        self.conditional = conditionals_lib.get(conditional)

    def call(self, y_true, y_pred):
        return semi_implicit_loss(y_true, y_pred, self.conditional)

    def get_config(self):
        config = super().get_config()
        config.pop("reduction", None)
        config["conditional"] = keras.saving.serialize_keras_object(self.conditional)
        return config
