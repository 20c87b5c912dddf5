"""A schedule on GAN-SI's SIG weight over the training steps."""

import keras
import tensorflow as tf


def attach_sig_weight_factor(model, factor, name, owner):
    """Sets `factor` (a function of no arguments, read in the step) on the SIG
    weight of `model` under `name` and traces its step function again;
    `owner` names the caller in the error for a model without a SIG term."""
    setter = getattr(model, "set_sig_weight_factor", None)
    if setter is None or not model.uses_sig:
        raise ValueError(
            f"{owner} needs a GAN-SI (a model with a SIG term); "
            f"{type(model).__name__} has none."
        )
    setter(factor, name=name)
    # The step function reads the factor in the graph: trace it again.
    model.make_train_function(force=True)


def detach_sig_weight_factor(model, name):
    """Removes the factor `name` set by `attach_sig_weight_factor`."""
    model.set_sig_weight_factor(None, name=name)
    model.make_train_function(force=True)


@keras.saving.register_keras_serializable(package="sig_keras")
class SigWeightSchedule(keras.callbacks.Callback):
    """Scales GAN-SI's SIG weight lambda by `schedule(step)` at every step.

    `step` is the generator optimizer's `iterations` before the step, so a
    run restored from a checkpoint (`FaultTolerantBackup`) goes on at the
    right factor; the factor is computed inside the step function, so it
    follows every step with `steps_per_execution > 1` too. With the
    automatic weight (`sig_weight="auto"`) it multiplies the automatic
    weight; the gradient-norm averages that weight follows are unchanged.
    The `sig_weight` metric reports the scaled weight.

    The use it was built for: on Stacked MNIST with networks that do not
    collapse on their own, the SIG term spreads the generator over the
    modes in the first few thousand steps and pulls some samples toward
    averages of several digits later. A weight that falls to zero drops
    the averages: there, falling linearly over the first half of the run,
    it ended level with the GAN without a SIG term and well ahead of a
    constant weight (docs/gan_si.md).
    `keras.optimizers.schedules.PolynomialDecay(1.0, decay_steps, 0.0)` is a
    linear fall from 1 to 0 over `decay_steps`, then 0.

    It composes with `LinearCooldown(sig_weight=True)`: the two factors
    multiply.

    Args:
        schedule: a `keras.optimizers.schedules.LearningRateSchedule` (any
            of Keras' decays: the "learning rate" it returns is the factor)
            or a function of the step tensor returning a non-negative float
            scalar.

    Example:
    >>> decay = keras.optimizers.schedules.PolynomialDecay(1.0, 10_000, 0.0)
    >>> gan_si.fit(data, epochs=1, steps_per_epoch=20_000,
    ...            callbacks=[SigWeightSchedule(decay)])
    """

    def __init__(self, schedule):
        super().__init__()
        if not callable(schedule):
            raise ValueError(
                "`schedule` must be a keras.optimizers.schedules.LearningRateSchedule or a "
                f"function of the step; got {schedule!r}."
            )
        self.schedule = schedule

    def factor_at(self, step):
        """The factor on lambda at step `step`, a float32 tensor."""
        value = tf.cast(self.schedule(tf.cast(step, tf.int64)), tf.float32)
        return tf.maximum(value, 0.0)

    def on_train_begin(self, logs=None):
        iterations = self.model.optimizer.iterations
        attach_sig_weight_factor(self.model, lambda: self.factor_at(iterations), "schedule",
                                 "SigWeightSchedule")

    def on_train_end(self, logs=None):
        detach_sig_weight_factor(self.model, "schedule")

    def get_config(self):
        if not isinstance(self.schedule, keras.optimizers.schedules.LearningRateSchedule):
            raise NotImplementedError(
                "SigWeightSchedule with a plain function has no config; use a "
                "keras.optimizers.schedules.LearningRateSchedule to serialize it."
            )
        return {"schedule": keras.optimizers.schedules.serialize(self.schedule)}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["schedule"] = keras.optimizers.schedules.deserialize(config["schedule"])
        return cls(**config)
