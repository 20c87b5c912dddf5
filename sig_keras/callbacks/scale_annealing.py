"""Annealing of a Normal conditional's scale during SIG training."""

import math

import keras

from sig_keras.utils import validation


class ScaleAnnealing(keras.callbacks.Callback):
    """Anneals the scale of a `NormalConditional` from `start` to `end`.

    With a narrow conditional (the paper's 0.1) and a generator initialised
    near the origin, data far from every `psi_k` give vanishing responsibilities
    and training stalls. Starting wide and shrinking the scale geometrically,

        scale(t) = start * (end / start) ** min(1, t / steps),

    keeps every data point attached to some `psi_k` while the generator
    spreads out; from step `steps` on, the objective is the paper's. The step
    `t` is `model.optimizer.iterations`, so the schedule resumes correctly
    after `BackupAndRestore`.

    Args:
        start: float. Initial scale. Defaults to 1.0.
        end: float. Final scale (the conditional's target). Defaults to 0.1.
        steps: int. Length of the annealing phase in optimizer steps.
        conditional: the `NormalConditional` to anneal, or None for
            `model.conditional`.
    """

    def __init__(self, start=1.0, end=0.1, steps=1000, conditional=None):
        super().__init__()
        self.start = validation.check_float(
            start, "start", validation.MIN_SCALE, validation.MAX_SCALE)
        self.end = validation.check_float(end, "end", validation.MIN_SCALE, validation.MAX_SCALE)
        self.steps = validation.check_int(steps, "steps", minimum=1)
        self.conditional = conditional

    def scale_at(self, step):
        frac = min(1.0, max(0, step) / self.steps)
        return math.exp((1 - frac) * math.log(self.start) + frac * math.log(self.end))

    def _target(self):
        cond = self.conditional or getattr(self.model, "conditional", None)
        if cond is None or not hasattr(cond, "set_scale"):
            raise ValueError(
                "ScaleAnnealing needs a NormalConditional: pass `conditional=` or "
                "use it with a model that has a `conditional` attribute."
            )
        return cond

    def on_train_begin(self, logs=None):
        self._target()  # fail before the first step if misused

    def on_train_batch_begin(self, batch, logs=None):
        step = int(self.model.optimizer.iterations.numpy())
        if step <= self.steps:
            self._target().set_scale(self.scale_at(step))

    def on_train_end(self, logs=None):
        step = int(self.model.optimizer.iterations.numpy())
        self._target().set_scale(self.scale_at(step))
