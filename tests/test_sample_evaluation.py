"""SampleEvaluation: evaluation steps, TensorBoard scalars, fixed noise, bad options."""

import glob

import keras
import numpy as np
import pytest
import tensorflow as tf

from sig_keras.callbacks import SampleEvaluation
from sig_keras.metrics import ModeCoverage
from tests import harness as h

CENTRES = h.CLUSTER_CENTRES
_model = h.tiny_sig


def _scalars(log_dir):
    """{tag: [(step, value)]} from the event files under `log_dir/eval`."""
    out = {}
    for path in glob.glob(f"{log_dir}/eval/events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(path):
            for v in event.summary.value:
                value = float(tf.make_ndarray(v.tensor)) if v.HasField("tensor") else v.simple_value
                out.setdefault(v.tag, []).append((event.step, value))
    return out


@pytest.mark.parametrize("steps_per_execution", [1, 3])
def test_evaluates_at_start_every_n_steps_and_end(tmp_path, steps_per_execution):
    model = _model()
    model.compile(optimizer=keras.optimizers.Adam(1e-2),
                  steps_per_execution=steps_per_execution)
    evaluation = SampleEvaluation(ModeCoverage(CENTRES, std=0.2), every_n_steps=4,
                                  num_samples=50, batch_size=20, log_dir=str(tmp_path))
    # Keras' TensorBoard callback gates summaries to every `update_freq` steps
    # with a global record_if; the evaluations at other steps must still be written.
    board = keras.callbacks.TensorBoard(str(tmp_path / "keras"), update_freq=5)
    model.fit(h.two_clusters(64), batch_size=8, epochs=1, steps_per_epoch=8, verbose=0,
              callbacks=[board, evaluation])
    steps = [s for s, _ in evaluation.history]
    expected = [0, 4, 8] if steps_per_execution == 1 else [0, 6, 8]  # once past each multiple
    assert steps == expected
    for _, values in evaluation.history:
        assert set(values) == {"modes", "high_quality", "kl"}
        assert 0 <= values["modes"] <= 2
    scalars = _scalars(tmp_path)
    assert sorted(scalars) == ["eval_high_quality", "eval_kl", "eval_modes"]
    assert [s for s, _ in scalars["eval_modes"]] == expected
    np.testing.assert_allclose([v for _, v in scalars["eval_modes"]],
                               [v["modes"] for _, v in evaluation.history])


def test_a_resumed_run_reads_its_earlier_evaluations_back(tmp_path):
    model = _model()
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    first = SampleEvaluation(ModeCoverage(CENTRES, std=0.2), every_n_steps=2,
                             num_samples=20, log_dir=str(tmp_path))
    model.fit(h.two_clusters(64), batch_size=8, epochs=1, steps_per_epoch=6, verbose=0,
              callbacks=[first])
    assert [s for s, _ in first.history] == [0, 2, 4, 6]
    # A restart from the checkpoint of step 4 (the evaluation at 6 is lost
    # with the process): a new callback reads 0, 2 and 4 back and goes on.
    model.optimizer.iterations.assign(4)
    second = SampleEvaluation(ModeCoverage(CENTRES, std=0.2), every_n_steps=2,
                              num_samples=20, log_dir=str(tmp_path))
    model.fit(h.two_clusters(64), batch_size=8, epochs=1, steps_per_epoch=4, verbose=0,
              callbacks=[second])
    assert [s for s, _ in second.history] == [0, 2, 4, 6, 8]
    for (step, values), (step0, values0) in zip(second.history[:3], first.history[:3]):
        assert step == step0 and values == pytest.approx(values0, rel=1e-6)


def test_same_noise_every_evaluation_and_matches_by_hand():
    model = _model()
    metric = ModeCoverage(CENTRES, std=0.2)
    evaluation = SampleEvaluation(metric, every_n_steps=100, num_samples=30, batch_size=20,
                                  seed=7)
    evaluation.set_model(model)
    first = evaluation.evaluate(step=0)
    second = evaluation.evaluate(step=0)
    assert first == second  # fixed seeds, no training in between
    by_hand = ModeCoverage(CENTRES, std=0.2)
    by_hand.update_state(model.sample(20, seed=7))
    by_hand.update_state(model.sample(10, seed=8))
    expected = {k: float(v) for k, v in by_hand.result().items()}
    assert first == pytest.approx(expected)


def test_scalar_metric_result_is_keyed_by_metric_name():
    model = _model()
    evaluation = SampleEvaluation(keras.metrics.Mean(name="mean_x"), num_samples=10)
    evaluation.set_model(model)
    values = evaluation.evaluate(step=0)
    assert list(values) == ["mean_x"]
    assert values["mean_x"] == pytest.approx(float(np.mean(model.sample(10, seed=0))))


@pytest.mark.parametrize("kwargs, message", [
    (dict(metric="modes"), "`metric` must be a keras.metrics.Metric"),
    (dict(every_n_steps=0), "`every_n_steps` must be a positive integer"),
    (dict(every_n_steps=2.5), "`every_n_steps` must be a positive integer"),
    (dict(num_samples=True), "`num_samples` must be a positive integer"),
    (dict(batch_size=-1), "`batch_size` must be a positive integer"),
    (dict(seed=1.5), "`seed` must be an integer"),
])
def test_bad_options(kwargs, message):
    kwargs.setdefault("metric", ModeCoverage(CENTRES, std=0.2))
    with pytest.raises(ValueError, match=message):
        SampleEvaluation(**kwargs)
