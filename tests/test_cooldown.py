"""LinearCooldown: the learning rates (and GAN-SI's SIG weight) fall linearly
to zero over the last steps; the rates come back when training ends."""

import keras
import numpy as np
import pytest

from sig_keras.callbacks import LinearCooldown
from tests import harness as h


def _gan(sig_weight=0.0):
    return h.tiny_gan(sig_weight)


class _RecordRates(keras.callbacks.Callback):
    """The two optimizers' rates as each batch starts (after LinearCooldown's)."""

    def __init__(self):
        super().__init__()
        self.rates = []

    def on_train_batch_begin(self, batch, logs=None):
        self.rates.append([float(self.model.optimizer.learning_rate.numpy()),
                           float(self.model.d_optimizer.learning_rate.numpy())])


def test_factor_holds_then_decays_linearly():
    cooldown = LinearCooldown(10, 4)
    expected = [1, 1, 1, 1, 1, 1, 1, 0.75, 0.5, 0.25, 0, 0]
    np.testing.assert_allclose([cooldown.factor_at(t) for t in range(12)], expected)
    # The in-graph factor (the SIG weight's) is the same function.
    np.testing.assert_allclose([float(cooldown.factor_at(keras.ops.convert_to_tensor(t)))
                                for t in range(12)], expected)


def test_rates_follow_the_factor_and_come_back():
    model = _gan()
    model.compile(**h.two_optimizers(1e-2))
    record = _RecordRates()
    model.fit(h.images(32), batch_size=8, epochs=1, verbose=0, shuffle=False,
              callbacks=[LinearCooldown(4, 3), record])
    # Steps 0..3 of 4 with the last 3 decaying: factors 1, 1, 2/3, 1/3.
    np.testing.assert_allclose(record.rates, [[1e-2, 1e-2], [1e-2, 1e-2], [1e-2 * 2 / 3] * 2,
                                              [1e-2 / 3] * 2], rtol=1e-6)
    assert float(model.optimizer.learning_rate.numpy()) == pytest.approx(1e-2)
    assert float(model.d_optimizer.learning_rate.numpy()) == pytest.approx(1e-2)


def test_a_resumed_run_goes_on_at_its_step():
    # FaultTolerantBackup restores `iterations` (and the decayed rates) in
    # `on_train_begin`; the rates follow the restored step, from the
    # compiled base rate.
    model = h.compiled_at_step(_gan(), 1e-2, 2)
    record = _RecordRates()
    model.fit(h.images(16), batch_size=8, epochs=1, verbose=0, shuffle=False,
              callbacks=[LinearCooldown(4, 4), record])
    np.testing.assert_allclose(np.array(record.rates)[:, 0], [5e-3, 2.5e-3], rtol=1e-6)


@h.fit_modes
def test_sig_weight_follows_every_step(fit_mode):
    # A fixed weight of 1 over 4 steps in one epoch, all in the decay:
    # lambda = 1, 0.75, 0.5, 0.25, whose mean is the epoch's logged weight,
    # also with 4 steps per execution (jit mode), where the rates change per
    # execution but the SIG factor per step.
    model = _gan(sig_weight=1.0)
    h.compile_in_mode(model, fit_mode, **h.two_optimizers(1e-3))
    logs = model.fit(h.images(32), batch_size=8, epochs=1, verbose=0, shuffle=False,
                     callbacks=[LinearCooldown(4, 4, sig_weight=True)]).history
    assert logs["sig_weight"][-1] == pytest.approx(0.625, rel=1e-5)
    # After training the weight is the configured one again.
    logs = model.fit(h.images(8), batch_size=8, epochs=1, verbose=0).history
    assert logs["sig_weight"][-1] == pytest.approx(1.0)


def test_without_sig_weight_the_sig_term_is_untouched():
    model = _gan(sig_weight=1.0)
    model.compile(**h.two_optimizers(1e-3))
    logs = model.fit(h.images(32), batch_size=8, epochs=1, verbose=0, shuffle=False,
                     callbacks=[LinearCooldown(4, 4)]).history
    assert logs["sig_weight"][-1] == pytest.approx(1.0)


def test_sig_weight_needs_a_sig_term():
    model = _gan()
    model.compile(**h.two_optimizers(1e-3))
    with pytest.raises(ValueError, match="needs a GAN-SI"):
        model.fit(h.images(8), batch_size=8, verbose=0,
                  callbacks=[LinearCooldown(4, 4, sig_weight=True)])


def test_schedule_learning_rate_rejected():
    model = _gan()
    schedule = keras.optimizers.schedules.ExponentialDecay(1e-3, 10, 0.5)
    model.compile(g_optimizer=keras.optimizers.Adam(schedule),
                  d_optimizer=keras.optimizers.Adam(1e-3))
    with pytest.raises(ValueError, match="float learning rates"):
        model.fit(h.images(8), batch_size=8, verbose=0, callbacks=[LinearCooldown(4, 4)])


test_bad_options = h.bad_options_test(
    lambda **kw: LinearCooldown(**{"total_steps": 10, "cooldown_steps": 4, **kw}),
    ("total_steps", 0), ("cooldown_steps", 0), ("cooldown_steps", 11),
    ("cooldown_steps", 2.5), ("sig_weight", "yes"))


def test_config_round_trip():
    cooldown = LinearCooldown(10, 4, sig_weight=True)
    assert LinearCooldown(**cooldown.get_config()).get_config() == cooldown.get_config()
