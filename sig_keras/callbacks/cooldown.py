"""A linear cool-down of the learning rates at the end of training."""

import keras
import tensorflow as tf

from sig_keras import distribute
from sig_keras.callbacks.sig_weight_schedule import attach_sig_weight_factor
from sig_keras.callbacks.sig_weight_schedule import detach_sig_weight_factor
from sig_keras.utils import validation


class LinearCooldown(keras.callbacks.Callback):
    """Holds the learning rates, then decays them linearly to zero over the
    last `cooldown_steps` of `total_steps`.

    At step `t` (the model's `optimizer.iterations` before the step: the
    generator's steps for the adversarial models) every optimizer of the
    model (`optimizer`, and `d_optimizer` for a GAN) trains with

        base_rate * min(1, (total_steps - t) / cooldown_steps),

    `base_rate` being its learning rate when `fit` starts. A GAN trained at a
    constant rate keeps circling its equilibrium: the samples at any step
    carry that step's noise (speckled strokes). Letting the rates fall to
    zero at the end settles the generator where the constant-rate phase has
    brought it, as a constant rate with a short linear decay does for other
    models (Hägele et al., 2024, "Scaling laws and compute-optimal training
    beyond fixed training durations").

    With `sig_weight=True` GAN-SI's SIG weight lambda is scaled by the same
    factor (`AdversarialModel.set_sig_weight_factor`; it multiplies a
    `SigWeightSchedule`'s), inside the step: the
    last steps then follow the adversarial term alone, which sharpens the
    images the SIG term had pulled toward averages of several data points.

    The rates are set before each call of the step function; with
    `steps_per_execution > 1` they change once per execution (the SIG factor
    follows every step). The step is read from the optimizer, so a run
    restored from a checkpoint (`FaultTolerantBackup`) goes on at the right
    rate. When training ends each optimizer gets its base rate back, so a
    saved model keeps the rates it was compiled with.

    Args:
        total_steps: int. The step at which the rates reach zero (the run's
            total steps).
        cooldown_steps: int in [1, total_steps]. Length of the decay.
        sig_weight: bool. Also decay the SIG weight of a GAN-SI. Defaults to
            False.

    Example:
    >>> model.fit(data, epochs=1, steps_per_epoch=20_000,
    ...           callbacks=[LinearCooldown(20_000, 4_000)])
    """

    def __init__(self, total_steps, cooldown_steps, sig_weight=False):
        super().__init__()
        self.total_steps = validation.check_int(total_steps, "total_steps", minimum=1)
        self.cooldown_steps = validation.check_int(
            cooldown_steps, "cooldown_steps", minimum=1, maximum=self.total_steps)
        if not isinstance(sig_weight, bool):
            raise ValueError(f"`sig_weight` must be True or False; got {sig_weight!r}.")
        self.sig_weight = sig_weight
        self._base_rates = None

    def factor_at(self, step):
        """The factor on the rates at step `step` (a number or a tensor)."""
        if isinstance(step, (int, float)):
            return min(1.0, max(0.0, (self.total_steps - step) / self.cooldown_steps))
        left = tf.cast(self.total_steps, tf.float32) - tf.cast(step, tf.float32)
        return tf.clip_by_value(left / float(self.cooldown_steps), 0.0, 1.0)

    def _optimizers(self):
        return [opt for _, opt, _ in distribute.model_optimizers(self.model)]

    def set_model(self, model):
        super().set_model(model)
        # The compiled rates, read before `on_train_begin`, where
        # `FaultTolerantBackup` restores a checkpoint (rates included).
        rates = []
        for opt in self._optimizers():
            if not isinstance(opt.learning_rate, keras.Variable):
                raise ValueError(
                    "LinearCooldown sets the optimizers' learning rates: compile the "
                    f"model with float learning rates, not a schedule ({type(opt).__name__} "
                    f"{opt.name!r})."
                )
            rates.append(float(keras.ops.convert_to_numpy(opt.learning_rate)))
        self._base_rates = rates

    def on_train_begin(self, logs=None):
        if not self.sig_weight:
            return
        iterations = self.model.optimizer.iterations
        attach_sig_weight_factor(self.model, lambda: self.factor_at(iterations), "cooldown",
                                 "LinearCooldown(sig_weight=True)")

    def on_train_batch_begin(self, batch, logs=None):
        factor = self.factor_at(int(keras.ops.convert_to_numpy(self.model.optimizer.iterations)))
        for opt, rate in zip(self._optimizers(), self._base_rates):
            opt.learning_rate.assign(rate * factor)

    def on_train_end(self, logs=None):
        for opt, rate in zip(self._optimizers(), self._base_rates):
            opt.learning_rate.assign(rate)
        if self.sig_weight:
            detach_sig_weight_factor(self.model, "cooldown")

    def get_config(self):
        return {"total_steps": self.total_steps, "cooldown_steps": self.cooldown_steps,
                "sig_weight": self.sig_weight}
