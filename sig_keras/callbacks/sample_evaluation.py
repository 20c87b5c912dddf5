"""Evaluate a metric on generated samples during training."""

import os

import keras
import numpy as np
import tensorflow as tf

from sig_keras.utils import validation


class SampleEvaluation(keras.callbacks.Callback):
    """Scores generated samples with a metric every `every_n_steps` steps.

    At step 0 (train begin, if `at_start`), at every multiple of
    `every_n_steps` of the model's optimizer `iterations` (generator steps for
    GANs) and at the end of training, the callback resets `metric`, feeds it
    `num_samples` samples drawn with fixed seeds (`model.sample(batch,
    seed=seed + i)`, so successive evaluations see the same noise), and
    records `metric.result()`: every scalar entry (a dict result gives one
    entry per key) goes to TensorBoard under `log_dir/eval` as
    `<prefix><key>`, and to `history`, a list of `(step, {key: float})`.
    With `steps_per_execution > 1` Keras calls batch callbacks once per
    execution; an evaluation then runs at the first call at or past each
    multiple, logged at the true step.

    A run resumed from a checkpoint (`FaultTolerantBackup` restores it before
    this callback's `on_train_begin`) reads the evaluations it had written
    to `log_dir` up to the restored step back into `history`, so `history`
    covers the whole run, not only the steps since the restart.

    Summaries are written from the callback, outside the (possibly jitted)
    train step. The metric is any Keras metric with `update_state(samples)`,
    e.g. `sig_keras.metrics.StackedMNISTModes` or `ModeCoverage`.

    Args:
        metric: `keras.metrics.Metric` taking generated samples.
        every_n_steps: int. Steps between evaluations. Defaults to 1000.
        num_samples: int. Generated samples per evaluation. Defaults to 10,000.
        log_dir: str or None. TensorBoard directory; None writes no summaries.
        batch_size: int. Samples drawn per `model.sample` call. Defaults to 1000.
        seed: int. First sampling seed. Defaults to 0.
        prefix: str. Prefix of the summary tags. Defaults to "eval_".
        at_start: bool. Also evaluate before the first step. Defaults to True.

    Example:
    >>> evaluation = SampleEvaluation(StackedMNISTModes(classifier), 500,
    ...                               num_samples=5000, log_dir="logs/run1")
    >>> model.fit(ds, steps_per_epoch=3000, callbacks=[evaluation])
    >>> steps, modes = zip(*[(s, r["modes"]) for s, r in evaluation.history])
    """

    def __init__(self, metric, every_n_steps=1000, num_samples=10_000, log_dir=None,
                 batch_size=1000, seed=0, prefix="eval_", at_start=True):
        super().__init__()
        if not isinstance(metric, keras.metrics.Metric):
            raise ValueError(
                f"`metric` must be a keras.metrics.Metric; got {type(metric).__name__}."
            )
        self.metric = metric
        self.every_n_steps = validation.check_int(every_n_steps, "every_n_steps", minimum=1)
        self.num_samples = validation.check_int(num_samples, "num_samples", minimum=1)
        self.batch_size = validation.check_int(batch_size, "batch_size", minimum=1)
        self.seed = validation.check_int(seed, "seed")
        self.log_dir = None if log_dir is None else validation.check_writable_directory(
            log_dir, "log_dir")
        self.prefix = str(prefix)
        self.at_start = bool(at_start)
        self.history = []
        self._writer = None
        self._last_step = None

    def _step(self):
        return int(np.asarray(self.model.optimizer.iterations.numpy()))

    def evaluate(self, step=None):
        """Evaluates now; returns `{key: float}` and records it at `step`."""
        step = self._step() if step is None else int(step)
        self.metric.reset_state()
        for i, start in enumerate(range(0, self.num_samples, self.batch_size)):
            n = min(self.batch_size, self.num_samples - start)
            self.metric.update_state(self.model.sample(n, seed=self.seed + i))
        result = self.metric.result()
        if not isinstance(result, dict):
            result = {self.metric.name: result}
        values = {}
        for key, value in result.items():
            value = np.asarray(keras.ops.convert_to_numpy(value))
            if value.size == 1:
                values[key] = float(value.reshape(()))
        self.history.append((step, values))
        self._last_step = step
        if self.log_dir is not None:
            if self._writer is None:
                self._writer = tf.summary.create_file_writer(
                    os.path.join(self.log_dir, "eval"))
            # Keras' TensorBoard callback installs a global `record_if` (every
            # `update_freq` steps) that would drop evaluations between them.
            with self._writer.as_default(), tf.summary.record_if(True):
                for key, value in values.items():
                    tf.summary.scalar(self.prefix + key, value, step=step)
            self._writer.flush()
        return values

    def on_train_begin(self, logs=None):
        step = self._step()
        if step > 0 and not self.history:
            self.history = self._written_history(step)
        if self.at_start and step == 0:
            self.evaluate(step)
        self._last_step = step

    def _written_history(self, last_step):
        """`(step, {key: float})` of the evaluations at steps <= `last_step`
        in `log_dir`'s summaries (the last one written at each step)."""
        if self.log_dir is None:
            return []
        found = {}
        for path in sorted(tf.io.gfile.glob(
                os.path.join(self.log_dir, "eval", "events.out.tfevents.*"))):
            for record in tf.data.TFRecordDataset(path):
                event = tf.compat.v1.Event.FromString(record.numpy())
                for value in event.summary.value:
                    if event.step > last_step or not value.tag.startswith(self.prefix):
                        continue
                    number = (tf.make_ndarray(value.tensor) if value.HasField("tensor")
                              else value.simple_value)
                    found.setdefault(int(event.step), {})[
                        value.tag[len(self.prefix):]] = float(np.asarray(number).reshape(()))
        return sorted(found.items())

    def on_train_batch_end(self, batch, logs=None):
        step = self._step()
        if step // self.every_n_steps > self._last_step // self.every_n_steps:
            self.evaluate(step)

    def on_train_end(self, logs=None):
        if self._step() != self._last_step:
            self.evaluate()
        if self._writer is not None:
            self._writer.close()
            self._writer = None

