"""Base of the models trained with a generator and a discriminator optimizer.

`GAN`, `WGANGP`, `UnrolledGAN` and `VEEGAN` keep their training rule in their
own `train_step`; this module holds what they share:

- the generator, the discriminator and `latent_dim`, and the `d_loss` and
  `g_loss` trackers;
- the two optimizers: `compile(d_optimizer=..., g_optimizer=...)`, saving and
  restoring both from a `.keras` file, and building both inside the model's
  strategy scope (`build_optimizers`, which `fit` calls first: under a
  distribution strategy, an optimizer kept as an attribute must be built
  before the first step, or it fails with "You must feed a value for
  placeholder tensor");
- data validation against `data_range` and the evaluation step;
- the GAN-SI generator step, for the models that take a SIG term (`GAN`,
  `WGANGP`).

GAN-SI generator step (Yin & Zhou, Algorithm 1): with `psi_k = G(eps_k)` the
*same* generated batch ("fakes") that the discriminator was just trained on,

    L_G = L_adv(D(psi)) + lambda * L_hat_SIG(x, {psi_k}),
    L_hat_SIG = -(1/N) sum_i [ logsumexp_k log p(x_i | psi_k) - log K ].

The gradient is taken in two stages: `g = dL_adv/dpsi + lambda dL_SIG/dpsi`
(one backward pass through D, one through the `N x K` likelihood matrix,
combined by `sig_keras.losses.combine_adversarial_and_sig_gradients`, which
also computes the automatic lambda), then one backward pass through G with
`output_gradients=g`. Without a SIG term the same path is taken without it,
so the extra cost of GAN-SI is the likelihood matrix alone.
"""

import math

import keras
import numpy as np
import tensorflow as tf

from sig_keras.distribute import reduction
from sig_keras.layers import conditionals as conditionals_lib
from sig_keras.losses.semi_implicit import check_per_channel_shapes
from sig_keras.losses.semi_implicit import check_sig_weight
from sig_keras.losses.semi_implicit import combine_adversarial_and_sig_gradients
from sig_keras.losses.semi_implicit import semi_implicit_loss
from sig_keras.models.generative_model import GenerativeModel
from sig_keras.utils import validation

# `keras.Model.compile` arguments restored by `compile_from_config`.
_RESTORED_COMPILE_ARGS = ("run_eagerly", "jit_compile", "steps_per_execution")

# Scale of the default Normal conditional `p(x | psi) = N(psi, s^2 I)` of the
# SIG term for images in [-1, 1] (the paper gives no value). 0.1 is the
# paper's toy value: a tenth of a pixel's half range.
DEFAULT_IMAGE_SCALE = 0.1


def _check_data_range(data_range):
    if data_range is None:  # unbounded generator output (toy data)
        return None
    try:
        low, high = (float(v) for v in data_range)
    except (TypeError, ValueError):
        raise ValueError(
            f"`data_range` must be a pair (low, high); got {data_range!r}."
        ) from None
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise ValueError(f"`data_range` must satisfy low < high; got {data_range!r}.")
    return (low, high)


class AdversarialModel(GenerativeModel):
    """A generator, a discriminator, their two optimizers and their losses.

    `model.optimizer` is the generator's (its `iterations` count generator
    steps, which TensorBoard and BackupAndRestore use); `model.d_optimizer`
    the discriminator's.

    Subclasses implement `train_step`, the per-example losses
    `_discriminator_loss(real_outputs, fake_outputs)` and
    `_generator_loss(fake_outputs)` (used by `test_step` and
    `_generator_step`; a `staticmethod` of a `sig_keras.losses` function
    will do), and override where needed:
    - `_generator_variables()` when `model.optimizer` updates more than the
      generator (a reconstructor);
    - `_build_networks()` and `_data_networks()` when the discriminator does
      not take generator outputs (or data points);
    - `_default_d_optimizer` / `_default_g_optimizer` (default "adam").
    GAN-SI models call `_init_sig_term(...)` in `__init__` and take their
    generator step with `_generator_step`.

    Args:
        generator: `keras.Model`. Noise `[n, latent_dim]` -> samples.
        discriminator: `keras.Model`. Samples -> one logit (score) each.
        latent_dim: int or None. Width of the noise. None reads it from the
            generator's input. Defaults to None.
        data_range: pair or None. Range of the data and of the generator
            output; `fit` rejects data outside it. None: unbounded.
        seed: int or None. Seed of the model's `SeedGenerator`.
        **kwargs: `keras.Model` arguments.
    """

    _objective = "its own adversarial loss"
    _sub_models = ("generator", "discriminator", "conditional")

    def __init__(self, generator, discriminator, latent_dim=None, data_range=None, seed=None,
                 **kwargs):
        super().__init__(seed=seed, **kwargs)
        # === Config ===
        self.latent_dim = self._check_generator(generator, latent_dim)
        self._check_network(discriminator, "discriminator")
        self.data_range = _check_data_range(data_range)
        # No SIG term unless `_init_sig_term` sets one.
        self.sig_weight = None
        self.sig_per_channel = False
        # === Layers ===
        self.generator = generator
        self.discriminator = discriminator
        self.conditional = None
        self.d_optimizer = None  # set by `compile`
        # === Trackers ===
        self.d_loss_tracker = keras.metrics.Mean(name="d_loss")
        self.g_loss_tracker = keras.metrics.Mean(name="g_loss")

    @property
    def metrics(self):
        trackers = [self.d_loss_tracker, self.g_loss_tracker]
        if self.uses_sig:
            trackers += [self.sig_loss_tracker, self.sig_weight_tracker]
        return trackers

    @staticmethod
    def _default_d_optimizer():
        return "adam"

    @staticmethod
    def _default_g_optimizer():
        return "adam"

    # === GAN-SI term ===

    def _init_sig_term(self, sig_weight, conditional, auto_sig_scale, auto_weight_momentum,
                       sig_num_samples=None, sig_per_channel=False):
        """Adds the SIG term `lambda * L_hat_SIG` to the generator loss.

        Args: `sig_weight` (lambda: a float >= 0 or "auto"), `conditional`
        (`p(x | psi)`; None: `NormalConditional(DEFAULT_IMAGE_SCALE)`),
        `auto_sig_scale` and `auto_weight_momentum` (the "auto" weight's
        multiplier and EMA momentum), `sig_num_samples` (K, None for the
        batch) and `sig_per_channel` (a SIG term per channel), documented on
        `GAN`. `get_config` then holds the six, so the model's constructor
        takes them by these names.
        """
        # === Config ===
        self.sig_weight = check_sig_weight(sig_weight)
        self.auto_sig_scale = validation.check_float(
            auto_sig_scale, "auto_sig_scale", 0.0, validation.MAX_WEIGHT, min_inclusive=False)
        self.auto_weight_momentum = validation.check_float(
            auto_weight_momentum, "auto_weight_momentum", 0.0, 1.0, max_inclusive=False)
        self.sig_num_samples = (None if sig_num_samples is None else validation.check_int(
            sig_num_samples, "sig_num_samples", minimum=1))
        if not isinstance(sig_per_channel, bool):
            raise ValueError(f"`sig_per_channel` must be True or False; got {sig_per_channel!r}.")
        self.sig_per_channel = sig_per_channel
        # === Layers ===
        if conditional is None:
            conditional = conditionals_lib.NormalConditional(scale=DEFAULT_IMAGE_SCALE)
        self.conditional = conditionals_lib.get(conditional)
        # === State ===
        # EMAs of the adversarial and SIG gradient norms of the automatic SIG
        # weight (zeros: no step yet).
        self.auto_norms = self.add_weight(
            name="auto_sig_norms", shape=(2,), initializer="zeros", trainable=False,
            aggregation="only_first_replica",
        )
        # In-graph factors on lambda by name (`set_sig_weight_factor`); not
        # variables, so checkpoints and presets keep their layout.
        object.__setattr__(self, "_sig_weight_factors", {})
        # === Trackers ===
        self.sig_loss_tracker = keras.metrics.Mean(name="sig_loss")
        self.sig_weight_tracker = keras.metrics.Mean(name="sig_weight")

    def set_sig_weight_factor(self, factor, name="factor"):
        """Scales lambda by `factor()`, a function returning a float32 scalar
        tensor read inside the step (e.g. from the optimizer's `iterations`);
        None removes the factor called `name`. Factors set under different
        names multiply (`sig_keras.callbacks.SigWeightSchedule` and
        `LinearCooldown` each set their own). Step functions traced before
        this call keep the weight they were traced with (those callbacks
        trace them again). With "auto" the factor multiplies the automatic
        weight; the gradient-norm averages it follows are unchanged.
        """
        if factor is not None and not callable(factor):
            raise ValueError(f"`factor` must be a function or None; got {factor!r}.")
        if not isinstance(name, str):
            raise ValueError(f"`name` must be a string; got {name!r}.")
        factors = dict(self._sig_weight_factors)
        if factor is None:
            factors.pop(name, None)
        else:
            factors[name] = factor
        object.__setattr__(self, "_sig_weight_factors", factors)

    def _sig_weight_factor(self):
        """The product of the factors on lambda, or None when there are none."""
        product = None
        for factor in self._sig_weight_factors.values():
            value = tf.cast(factor(), tf.float32)
            product = value if product is None else product * value
        return product

    @property
    def uses_sig(self):
        """True for GAN-SI (a positive or automatic SIG weight)."""
        return self.sig_weight is not None and (
            self.sig_weight == "auto" or self.sig_weight > 0
        )

    # === Compile ===

    def compile(self, d_optimizer=None, g_optimizer=None, **kwargs):
        """Configures the two optimizers.

        Args:
            d_optimizer: discriminator optimizer or its name. Defaults to the
                model's default (see the model's docstring).
            g_optimizer: generator optimizer or its name; it becomes
                `model.optimizer`. Defaults to the model's default.
            **kwargs: other `keras.Model.compile` arguments (`run_eagerly`,
                `jit_compile`, `steps_per_execution`). No `loss`/`optimizer`.
        """
        self._reject_loss(kwargs)
        if kwargs.get("optimizer") is not None:
            raise ValueError(
                f"{type(self).__name__} takes `g_optimizer=` and `d_optimizer=`, "
                "not `optimizer=`."
            )
        kwargs.pop("optimizer", None)
        if d_optimizer is None:
            d_optimizer = self._default_d_optimizer()
        if g_optimizer is None:
            g_optimizer = self._default_g_optimizer()
        g_optimizer = keras.optimizers.get(g_optimizer)
        d_optimizer = keras.optimizers.get(d_optimizer)
        if g_optimizer is d_optimizer:
            raise ValueError(
                "`d_optimizer` and `g_optimizer` must be different objects (each "
                "keeps its own slots)."
            )
        super().compile(optimizer=g_optimizer, **kwargs)
        self.d_optimizer = d_optimizer

    def get_compile_config(self):
        if not self.compiled:
            return {}
        config = dict(super().get_compile_config())
        config.pop("optimizer", None)
        config.pop("loss", None)
        config["g_optimizer"] = keras.saving.serialize_keras_object(self.optimizer)
        config["d_optimizer"] = keras.saving.serialize_keras_object(self.d_optimizer)
        return config

    def compile_from_config(self, config):
        config = dict(config)
        g_optimizer = keras.saving.deserialize_keras_object(config.pop("g_optimizer"))
        d_optimizer = keras.saving.deserialize_keras_object(config.pop("d_optimizer"))
        kwargs = {k: config[k] for k in _RESTORED_COMPILE_ARGS if k in config}
        self.compile(d_optimizer=d_optimizer, g_optimizer=g_optimizer, **kwargs)
        # Build the optimizers now, so that their saved state can be loaded.
        self.build_optimizers()

    # === Build ===

    def _generator_variables(self):
        """What `model.optimizer` updates: the generator (and the SIG term's
        conditional)."""
        variables = self.generator.trainable_variables
        if self.conditional is not None:
            variables = variables + self.conditional.trainable_variables
        return variables

    def optimizer_variables(self):
        """`{optimizer attribute: variables it updates}` (for
        `sig_keras.distribute.build_optimizers`)."""
        return {
            "optimizer": self._generator_variables(),
            "d_optimizer": self.discriminator.trainable_variables,
        }

    def _build_networks(self):
        """Builds the networks other than the generator."""
        if not self.discriminator.built:
            self.discriminator(tf.zeros((1,) + self._output_shape()))

    def build(self, input_shape=None):
        super().build(input_shape)
        self._build_networks()
        self.built = True

    def build_optimizers(self):
        """Builds the model and both optimizers in the model's strategy scope."""
        if getattr(self, "d_optimizer", None) is None:
            raise ValueError("Call `compile()` before training.")
        with self.distribute_strategy.scope():
            if not self.built:
                self.build()
            for attr, variables in self.optimizer_variables().items():
                optimizer = getattr(self, attr)
                if not optimizer.built:
                    optimizer.build(variables)

    # === Training ===

    def _real_batch(self, data):
        """The real batch `x` of what `fit` hands to a step (checked by the
        data guard), as float32."""
        return tf.cast(self.data_batch(data), tf.float32)

    def data_requirements(self, x):
        x = tf.cast(x, tf.float32)
        requirements = [("finite values", tf.logical_not(tf.math.is_finite(x)))]
        if self.data_range is not None:
            low, high = self.data_range
            tol = 1e-5 * (high - low)
            requirements.append((
                f"values in data_range=({low:g}, {high:g}) (rescale the data, e.g. "
                "x / 127.5 - 1 for uint8 images and a tanh generator)",
                tf.logical_or(x < low - tol, x > high + tol)))
        if self.uses_sig:
            requirements += self.conditional.support_requirements(x)
        return requirements

    def _discriminator_loss(self, real_outputs, fake_outputs):
        """Per-example discriminator loss `[N]` (evaluation)."""
        raise NotImplementedError

    def _generator_loss(self, fake_outputs):
        """Per-example adversarial generator loss `[N]`."""
        raise NotImplementedError

    def _discriminate_fake(self, x, fake):
        """The discriminator's outputs on `fake` in the generator step (`x`:
        the real batch, for subclasses that show the discriminator both)."""
        del x
        return self.discriminator(fake, training=True)

    def _generator_step(self, x, g_tape, fake):
        """One generator update on the generated batch `fake` (recorded by
        `g_tape`), with the SIG term when `uses_sig`; updates the trackers.

        Args:
            x: this replica's real batch.
            g_tape: the tape that recorded `fake = G(eps)`.
            fake: the generated batch (this replica's slice).
        """
        gen_vars = self.generator.trainable_variables
        with tf.GradientTape() as tape:
            tape.watch(fake)
            adv = reduction.replica_mean(
                self._generator_loss(self._discriminate_fake(x, fake))
            )
        g_fake = tape.gradient(adv, fake)
        if not self.uses_sig:
            grads = g_tape.gradient(fake, gen_vars, output_gradients=g_fake)
            self.optimizer.apply_gradients(zip(grads, gen_vars))
            self._report((self.g_loss_tracker, adv))
            return
        # A tape of its own (not a persistent one shared with D's pass): one
        # backward pass through the likelihood matrix for psi and the
        # conditional's weights together.
        cond_vars = self.conditional.trainable_variables
        extra, extra_scale = self._extra_sig_samples(fake)
        with tf.GradientTape() as sig_tape:
            sig_tape.watch(fake)
            psi = fake if extra is None else tf.concat([fake, extra], axis=0)
            sig = semi_implicit_loss(x, psi, self.conditional, per_channel=self.sig_per_channel)
        g_sig, g_cond = sig_tape.gradient(sig, (fake, cond_vars))
        if extra is not None:
            g_sig = extra_scale * g_sig
        g_fake, lam = self._combine_sig_gradient(g_fake, g_sig)
        grads = g_tape.gradient(fake, gen_vars, output_gradients=g_fake)
        grads = list(grads) + [lam * g for g in g_cond]
        self.optimizer.apply_gradients(zip(grads, gen_vars + cond_vars))
        self._report((self.g_loss_tracker, adv), (self.sig_loss_tracker, sig))
        self.sig_weight_tracker.update_state(lam)

    def _combine_sig_gradient(self, adversarial_gradient, sig_gradient):
        """`(g_adv + lambda g_SIG, lambda)`, updating the "auto" weight's state."""
        combined, lam, norms = combine_adversarial_and_sig_gradients(
            adversarial_gradient, sig_gradient, self.sig_weight, norm_ema=self.auto_norms,
            auto_scale=self.auto_sig_scale, auto_momentum=self.auto_weight_momentum,
            weight_factor=self._sig_weight_factor(),
        )
        if self.sig_weight == "auto":
            self.auto_norms.assign(norms)
        return combined, lam

    def _extra_sig_samples(self, fake):
        """This replica's slice of the `K - N` extra samples of the SIG term,
        and the factor `K / N` of its gradient; `(None, 1)` when K is the batch.

        With `sig_num_samples = K` larger than the global batch `N`, the SIG
        term sees `K` generated samples: the batch `fake` (differentiated) and
        `K - N` more drawn from the generator (training mode, like `fake`)
        and held constant. The `K` samples are exchangeable, so the gradient
        through the first `N` alone, times `K / N`, is an unbiased estimate of
        the gradient of `L_K` through all `K`, for the cost of one forward
        pass of the extra samples.
        """
        if self.sig_num_samples is None:
            return None, 1.0
        local_n = fake.shape[0]
        if local_n is None:
            raise ValueError(
                "`sig_num_samples` needs batches of a static size (batch the "
                "dataset with `drop_remainder=True`)."
            )
        global_n = int(local_n) * reduction.num_replicas()
        if self.sig_num_samples < global_n:
            raise ValueError(
                f"`sig_num_samples` ({self.sig_num_samples}) must be at least the "
                f"global batch size ({global_n})."
            )
        if self.sig_num_samples == global_n:
            return None, 1.0
        noise = self.draw_replica_noise(self.sig_num_samples - global_n)
        extra = tf.stop_gradient(self.generator(noise, training=True))
        return extra, self.sig_num_samples / global_n

    def test_step(self, data):
        x = self._real_batch(data)
        fake = self.generator(self.draw_noise_like(x), training=False)
        real_outputs = self.discriminator(x, training=False)
        fake_outputs = self.discriminator(fake, training=False)
        d_loss = reduction.replica_mean(self._discriminator_loss(real_outputs, fake_outputs))
        g_loss = reduction.replica_mean(self._generator_loss(fake_outputs))
        self._report((self.d_loss_tracker, d_loss), (self.g_loss_tracker, g_loss))
        return self.metric_logs()

    # === Validation ===

    def check_data(self, x, name="data"):
        """Data must be numeric, finite and inside `data_range` when set."""
        x = np.asarray(x)
        if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
            raise ValueError(f"{name} must be numeric; got dtype {x.dtype}.")
        xf = x.astype(np.float64)
        if not np.all(np.isfinite(xf)):
            raise ValueError(f"{name} contains NaN or inf values.")
        # The rest (data_range, the SIG conditional's support) is what the
        # data guard checks in every step, run here eagerly on the host.
        xt = tf.constant(xf, tf.float32)
        validation.assert_all(xt, self.data_requirements(xt), what=name)

    def _data_networks(self):
        """`{role: network}` of the networks that take data points, whose input
        shape `fit` checks against the data."""
        return {"discriminator": self.discriminator}

    def check_data_shape(self, event_shape, name="data"):
        super().check_data_shape(event_shape, name)
        for role, network in self._data_networks().items():
            self._check_network_input(network, event_shape, role, name)
        if self.uses_sig and self.sig_per_channel:
            check_per_channel_shapes((None,) + tuple(event_shape), self.conditional)

    # === Config ===

    def get_config(self):
        config = super().get_config()
        config["data_range"] = None if self.data_range is None else list(self.data_range)
        if self.sig_weight is not None:
            config.update(
                {
                    "sig_weight": self.sig_weight,
                    "auto_sig_scale": self.auto_sig_scale,
                    "auto_weight_momentum": self.auto_weight_momentum,
                }
            )
            # Only when set: a subclass written without `sig_num_samples`
            # keeps loading its configs.
            if self.sig_num_samples is not None:
                config["sig_num_samples"] = self.sig_num_samples
            if self.sig_per_channel:
                config["sig_per_channel"] = True
        return config
