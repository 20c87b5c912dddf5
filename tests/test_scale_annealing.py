"""ScaleAnnealing: the schedule follows every step inside the compiled step."""

import numpy as np
import pytest

from sig_keras import callbacks
from sig_keras import layers
from tests import harness


def _train(steps_per_execution, steps=20):
    model = harness.tiny_sig(layers.NormalConditional(0.1),
                             steps_per_execution=steps_per_execution)
    anneal = callbacks.ScaleAnnealing(1.0, 0.1, steps=steps)
    model.fit(harness.batched(harness.two_clusters(16 * steps), 16), epochs=1,
              callbacks=[anneal], verbose=0)
    return model, anneal


def test_schedule_follows_every_step_with_steps_per_execution():
    one, anneal = _train(1)
    ten, _ = _train(10)
    # Same scale at every step: the same weights whether the steps run one
    # or ten per call (a per-call schedule would lag by up to nine steps).
    for a, b in zip(harness.weights(one), harness.weights(ten)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    # After training the conditional keeps the last step's scale, fixed.
    for model in (one, ten):
        assert model.conditional._annealing is None
        assert float(model.conditional.scale_value) == pytest.approx(anneal.scale_at(20), rel=1e-5)


def test_scale_at_is_geometric():
    anneal = callbacks.ScaleAnnealing(1.0, 0.01, steps=10)
    assert anneal.scale_at(0) == pytest.approx(1.0)
    assert anneal.scale_at(5) == pytest.approx(0.1)
    assert anneal.scale_at(10) == pytest.approx(0.01)
    assert anneal.scale_at(50) == pytest.approx(0.01)


def test_needs_a_normal_conditional():
    model = harness.tiny_sig(layers.PoissonConditional())
    with pytest.raises(ValueError, match="needs a NormalConditional"):
        model.fit(harness.batched(np.ones((32, 2), "float32"), 16), epochs=1,
                  callbacks=[callbacks.ScaleAnnealing()], verbose=0)
