"""The semi-implicit estimator (Yin & Zhou, Lemma 1).

    L_K(phi) = - E_x E_{psi_1..psi_K} log( (1/K) sum_k p(x | psi_k) )
    H(p_data, p_phi) <= L_{K+1} <= L_K

Minibatch estimate with data `x_1..x_N` and generated `psi_1..psi_K`:

    L_hat = - (1/N) sum_i [ logsumexp_k log p(x_i | psi_k) - log K ]

This module is the only place the estimator is written. It also holds the
GAN-SI weighting of the SIG term against an adversarial generator loss
(`combine_adversarial_and_sig_gradients`).
"""


import keras
import tensorflow as tf

from sig_keras.distribute import reduction
from sig_keras.layers import conditionals as conditionals_lib
from sig_keras.utils import validation


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


def semi_implicit_loss(x, psi, conditional, psi_replicated=False, per_channel=False):
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
        per_channel: bool. The sum over the last axis `c` (an image's
            channels) of the loss of `x[..., c]` against `psi[..., c]`: the
            SIG bound of each channel's marginal, where every real channel is
            explained by the generated channels nearest to it in that channel
            alone (in Stacked MNIST, each channel's digit). Needs a
            conditional whose parameters have the data's shape (such as
            `NormalConditional`) and data with a channel axis. Defaults to
            False: the joint loss.

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
    if per_channel:
        check_per_channel_shapes(x.shape, conditional)
    if not psi_replicated:
        psi = reduction.gather_across_replicas(psi)
    if not per_channel:
        return -reduction.replica_mean(semi_implicit_log_likelihood(x, psi, conditional))
    # One [N, K] product per channel: the same FLOPs as the joint loss's one.
    per_example = tf.add_n([
        semi_implicit_log_likelihood(x[..., c], psi[..., c], conditional)
        for c in range(x.shape[-1])])
    return -reduction.replica_mean(per_example)


def check_per_channel_shapes(x_shape, conditional):
    """Raises `ValueError` unless `semi_implicit_loss(..., per_channel=True)`
    can slice data of shape `x_shape` (with the batch axis) and the
    conditional's parameters along the same last axis."""
    x_event = tuple(x_shape[1:])
    if len(x_event) < 2 or x_event[-1] is None:
        raise ValueError(f"`per_channel=True` needs data with a channel axis after at least "
                         f"one other event axis (e.g. [N, H, W, C]); got data of shape "
                         f"{tuple(x_shape)}.")
    if tuple(conditional.param_shape(x_event)) != x_event:
        raise ValueError(f"`per_channel=True` needs a conditional whose parameters have the "
                         f"data's shape; {type(conditional).__name__} takes "
                         f"{tuple(conditional.param_shape(x_event))} for data of shape "
                         f"{x_event}.")


def check_sig_weight(sig_weight):
    """Returns `sig_weight` ("auto" or a float >= 0), or raises `ValueError`."""
    if isinstance(sig_weight, str):
        if sig_weight != "auto":
            raise ValueError(
                f"Unknown `sig_weight` {sig_weight!r}; valid: 'auto' or a "
                "non-negative number."
            )
        return sig_weight
    try:
        return validation.check_float(sig_weight, "sig_weight", 0.0, validation.MAX_WEIGHT)
    except ValueError:
        raise ValueError(
            "`sig_weight` must be 'auto' or a non-negative number up to "
            f"{validation.MAX_WEIGHT:g}; got {sig_weight!r}."
        ) from None


def combine_adversarial_and_sig_gradients(adversarial_gradient, sig_gradient, sig_weight,
                                          norm_ema=None, auto_scale=1.0,
                                          auto_momentum=0.99, epsilon=1e-12, weight_factor=None):
    """GAN-SI generator gradient `g_adv + lambda g_SIG` with respect to the fakes.

    The gradient-level counterpart of TF-GAN's `combine_adversarial_loss`:
    both gradients are taken with respect to the generated batch `psi` (the
    generator's output), and the caller backpropagates the result through the
    generator once (Yin & Zhou, Algorithm 1:
    `L_G = L_adv(D(psi)) + lambda * L_hat_SIG(x, {psi_k})`).

    Weight:
    - a number: `lambda = sig_weight`;
    - "auto": the paper sets lambda "so that the GAN generator loss and the
      cross-entropy term are on the same scale". The scale that matters for
      training is that of the gradients, so

          lambda = auto_scale * EMA(||g_adv||) / (EMA(||g_SIG||) + epsilon),

      norms over the whole global batch (all-reduced across replicas), each
      EMA with momentum `auto_momentum` and started at the first step's norm
      (`norm_ema` of zeros means "no step yet"). The ratio of the two
      averages, not the average of per-step ratios: with a sharp conditional
      the SIG gradient lands on the few generated samples nearest to some
      data point, and a step where those get almost no weight has
      `||g_SIG||` near 0; a per-step ratio would then be astronomically large
      and an average of ratios would carry it for hundreds of steps. A step
      with `||g_SIG|| = 0` leaves both averages as they are.

    Pure function: the EMA state is passed in and returned (a model keeps it
    in a non-trainable variable). Nothing here is differentiated.

    Args:
        adversarial_gradient: `dL_adv/dpsi`, this replica's `[N, ...]`.
        sig_gradient: `dL_hat_SIG/dpsi`, same shape.
        sig_weight: "auto" or a float >= 0.
        norm_ema: float32 `[2]`, the EMAs of `||g_adv||` and `||g_SIG||` so
            far (zeros before the first step). Required with "auto";
            returned unchanged otherwise.
        auto_scale: float > 0. The "auto" multiplier. Defaults to 1.
        auto_momentum: float in [0, 1). EMA momentum. Defaults to 0.99.
        epsilon: float. Added to the EMA of `||g_SIG||`. Defaults to 1e-12.
        weight_factor: float32 scalar or None. Multiplies lambda (a schedule,
            e.g. `sig_keras.callbacks.LinearCooldown`'s); the "auto" weight's
            norm averages are unchanged by it. Defaults to None (1).

    Returns:
        `(combined_gradient, lambda, new_norm_ema)`; `lambda` is a float32
        scalar.
    """
    if sig_weight != "auto":
        lam = tf.constant(check_sig_weight(sig_weight), tf.float32)
        lam = _scaled(lam, weight_factor)
        return adversarial_gradient + lam * sig_gradient, lam, norm_ema
    if norm_ema is None:
        raise ValueError("`sig_weight='auto'` needs `norm_ema` (zeros before the first step).")
    norm_ema = tf.convert_to_tensor(norm_ema, tf.float32)
    norms = tf.stack(_global_norms(adversarial_gradient, sig_gradient))
    m = auto_momentum
    started = norm_ema[1] > 0
    ema = tf.where(started, m * norm_ema + (1.0 - m) * norms, norms)
    ema = tf.where(norms[1] > 0, ema, norm_ema)
    lam = tf.where(ema[1] > 0, auto_scale * ema[0] / (ema[1] + epsilon), 0.0)
    lam = _scaled(lam, weight_factor)
    return adversarial_gradient + lam * sig_gradient, lam, ema


def _scaled(lam, weight_factor):
    """`lam * weight_factor` (float32); `lam` when the factor is None."""
    return lam if weight_factor is None else lam * tf.cast(weight_factor, tf.float32)


def _global_norms(*tensors):
    """L2 norm of each tensor over all replicas, in one all-reduce."""
    local = tf.stack([tf.reduce_sum(tf.square(tf.cast(t, tf.float32))) for t in tensors])
    return tf.unstack(tf.sqrt(reduction.all_reduce_sum(local)))


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
