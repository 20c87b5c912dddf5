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
    `t` is `model.optimizer.iterations`, read inside the compiled step
    (`NormalConditional.anneal`), so the scale follows every step, also with
    `steps_per_execution > 1`, and resumes correctly after a restore. When
    training ends the conditional keeps the scale of the last step.

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
        if cond is None or not hasattr(cond, "anneal"):
            raise ValueError(
                "ScaleAnnealing needs a NormalConditional: pass `conditional=` or "
                "use it with a model that has a `conditional` attribute."
            )
        return cond

    def on_train_begin(self, logs=None):
        # The schedule runs in the graph from the optimizer's step counter, so
        # it follows every step also with `steps_per_execution > 1`; the step
        # functions are traced again to read it.
        self._target().anneal(self.start, self.end, self.steps, self.model.optimizer.iterations)
        self.model.make_train_function(force=True)
        self.model.make_test_function(force=True)

    def on_train_end(self, logs=None):
        step = int(self.model.optimizer.iterations.numpy())
        target = self._target()
        target.anneal(None)
        target.set_scale(self.scale_at(step))
