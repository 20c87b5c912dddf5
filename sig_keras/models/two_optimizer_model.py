"""Base of the models trained with a generator and a discriminator optimizer.

`GAN`, `WGANGP` (through `AdversarialModel`), `UnrolledGAN` and `VEEGAN` keep
their training rule in their own `train_step`; this module holds what they
share about the two optimizers: `compile(d_optimizer=..., g_optimizer=...)`,
saving and restoring both from a `.keras` file, and building both inside the
model's strategy scope before `fit` (under a distribution strategy, an
optimizer kept as an attribute must be built before `fit`, or the first step
fails with "You must feed a value for placeholder tensor").
"""

import keras
import tensorflow as tf

from sig_keras.models.generative_model import GenerativeModel

# `keras.Model.compile` arguments restored by `compile_from_config`.
_RESTORED_COMPILE_ARGS = ("run_eagerly", "jit_compile", "steps_per_execution")


class TwoOptimizerModel(GenerativeModel):
    """A generative model with `model.optimizer` (generator) and `d_optimizer`.

    Subclasses set `self.discriminator` in `__init__` (and `self.d_optimizer =
    None`), implement `train_step`, and override:
    - `_generator_variables()` when `model.optimizer` updates more than the
      generator (a conditional, a reconstructor);
    - `_build_networks()` when the discriminator does not take generator
      outputs (or there are more networks to build);
    - `_default_d_optimizer` / `_default_g_optimizer` (default "adam").
    """

    # Key of the generator optimizer in the compile config. Kept per model so
    # that `.keras` files saved by earlier versions still load.
    _g_optimizer_config_key = "g_optimizer"

    @staticmethod
    def _default_d_optimizer():
        return "adam"

    @staticmethod
    def _default_g_optimizer():
        return "adam"

    # === Compile ===

    def compile(self, d_optimizer=None, g_optimizer=None, **kwargs):
        """Configures the two optimizers.

        Args:
            d_optimizer: discriminator (critic) optimizer or its name. Defaults
                to the model's default (see the model's docstring).
            g_optimizer: generator optimizer or its name; it becomes
                `model.optimizer` (its `iterations` count generator steps, which
                TensorBoard and BackupAndRestore use). Defaults to the model's
                default.
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
        config[self._g_optimizer_config_key] = keras.saving.serialize_keras_object(
            self.optimizer
        )
        config["d_optimizer"] = keras.saving.serialize_keras_object(self.d_optimizer)
        return config

    def compile_from_config(self, config):
        config = dict(config)
        g_optimizer = keras.saving.deserialize_keras_object(
            config.pop(self._g_optimizer_config_key)
        )
        d_optimizer = keras.saving.deserialize_keras_object(config.pop("d_optimizer"))
        kwargs = {k: config[k] for k in _RESTORED_COMPILE_ARGS if k in config}
        self.compile(d_optimizer=d_optimizer, g_optimizer=g_optimizer, **kwargs)
        # Build the optimizers now, so that their saved state can be loaded.
        self.build_optimizers()

    # === Build ===

    def _generator_variables(self):
        """What `model.optimizer` updates."""
        return self.generator.trainable_variables

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

    def fit(self, x=None, y=None, **kwargs):
        self.build_optimizers()
        return super().fit(x, y, **kwargs)
