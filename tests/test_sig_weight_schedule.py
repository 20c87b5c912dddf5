"""SigWeightSchedule: GAN-SI's SIG weight times a schedule of the step,
computed in the step; it multiplies LinearCooldown's factor."""

import keras
import numpy as np
import pytest

from sig_keras.callbacks import LinearCooldown
from sig_keras.callbacks import SigWeightSchedule
from tests import harness as h


def _gan(sig_weight=1.0):
    return h.tiny_gan(sig_weight)


def _linear(decay_steps):
    return keras.optimizers.schedules.PolynomialDecay(1.0, decay_steps, end_learning_rate=0.0)


class _RecordWeight(keras.callbacks.Callback):
    """The running mean of `sig_weight` after each batch, turned into the
    weight of each step."""

    def __init__(self):
        super().__init__()
        self.means = []

    def on_train_batch_end(self, batch, logs=None):
        self.means.append(float(logs["sig_weight"]))

    def per_step(self):
        totals = np.array(self.means) * np.arange(1, len(self.means) + 1)
        return np.diff(totals, prepend=0.0)


def test_linear_decay_factor():
    schedule = SigWeightSchedule(_linear(4))
    np.testing.assert_allclose([float(schedule.factor_at(t)) for t in range(6)],
                               [1, 0.75, 0.5, 0.25, 0, 0], atol=1e-7)


@h.fit_modes
def test_weight_follows_every_step(fit_mode):
    # A fixed weight of 1 decaying over 4 steps: lambda = 1, 0.75, 0.5, 0.25,
    # mean 0.625, also with 4 steps per execution (jit mode).
    model = _gan()
    h.compile_in_mode(model, fit_mode, **h.two_optimizers(1e-3))
    logs = model.fit(h.images(32), batch_size=8, epochs=1, verbose=0, shuffle=False,
                     callbacks=[SigWeightSchedule(_linear(4))]).history
    assert logs["sig_weight"][-1] == pytest.approx(0.625, rel=1e-5)
    # After training the weight is the configured one again.
    logs = model.fit(h.images(8), batch_size=8, epochs=1, verbose=0).history
    assert logs["sig_weight"][-1] == pytest.approx(1.0)


def test_a_resumed_run_goes_on_at_its_step():
    model = h.compiled_at_step(_gan(), 1e-3, 2)
    record = _RecordWeight()
    model.fit(h.images(16), batch_size=8, epochs=1, verbose=0, shuffle=False,
              callbacks=[SigWeightSchedule(_linear(4)), record])
    np.testing.assert_allclose(record.per_step(), [0.5, 0.25], rtol=1e-5)


def test_factors_multiply_with_the_cooldown():
    # Schedule 1, 0.75, 0.5, 0.25 times cool-down 1, 1, 2/3, 1/3.
    model = _gan()
    model.compile(**h.two_optimizers(1e-3))
    record = _RecordWeight()
    model.fit(h.images(32), batch_size=8, epochs=1, verbose=0, shuffle=False,
              callbacks=[SigWeightSchedule(_linear(4)), LinearCooldown(4, 3, sig_weight=True),
                         record])
    np.testing.assert_allclose(record.per_step(), [1, 0.75, 1 / 3, 1 / 12], rtol=1e-5)


def test_with_the_automatic_weight_it_scales_lambda_not_the_averages():
    # A zero schedule gives lambda 0 while the gradient-norm averages of the
    # step move exactly as without a schedule (one step: after it the
    # generators differ).
    norms = []
    for callbacks in ([], [SigWeightSchedule(lambda step: 0.0)]):
        model = _gan(sig_weight="auto")
        model.compile(**h.two_optimizers(1e-3))
        logs = model.fit(h.images(8), batch_size=8, epochs=1, verbose=0, shuffle=False,
                         callbacks=callbacks).history
        norms.append(model.auto_norms.numpy())
    assert logs["sig_weight"][-1] == 0.0
    np.testing.assert_allclose(norms[0], norms[1], rtol=1e-6)


def test_needs_a_sig_term():
    model = _gan(sig_weight=0.0)
    model.compile(**h.two_optimizers(1e-3))
    with pytest.raises(ValueError, match="SigWeightSchedule needs a GAN-SI"):
        model.fit(h.images(8), batch_size=8, verbose=0,
                  callbacks=[SigWeightSchedule(_linear(4))])


def test_schedule_must_be_callable():
    with pytest.raises(ValueError, match="`schedule` must be"):
        SigWeightSchedule(0.5)


def test_config_round_trip():
    schedule = SigWeightSchedule(_linear(10))
    restored = SigWeightSchedule.from_config(schedule.get_config())
    assert restored.get_config() == schedule.get_config()
    assert float(restored.factor_at(5)) == pytest.approx(0.5)


def test_a_plain_function_has_no_config():
    with pytest.raises(NotImplementedError, match="plain function"):
        SigWeightSchedule(lambda step: 1.0).get_config()


@pytest.mark.parametrize("factor, name, message", [
    (0.5, "schedule", "`factor` must be a function or None"),
    (lambda: 1.0, 3, "`name` must be a string"),
])
def test_set_sig_weight_factor_bad_input(factor, name, message):
    with pytest.raises(ValueError, match=message):
        _gan().set_sig_weight_factor(factor, name=name)
