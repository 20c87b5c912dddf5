"""The data a preset was trained on, and the metrics measured on its samples.

A preset's `metadata.json` names its data as a dict (`data_spec`):

- `{"toy": "grid", "kwargs": {"std": 0.1}}`: a toy of
  `sig_keras.datasets.get_toy` (the 25-Gaussian grid, the count targets).
- `{"images": "mnist_digits", ...}` and `{"images": "stacked_mnist", ...}`:
  image data; the extra keys say which digits (source, binarisation).

`measure(model, data, num_samples, seed)` draws `num_samples` samples with
`model.sample(num_samples, seed=seed)` (`sample_mean` for digit models that
have one: see `draw`) and returns the metrics for that kind of data:

- Gaussian grid (`sig_keras.metrics.ModeCoverage`, Table 1's protocol):
  `modes`, `high_quality`, `kl` on all samples, and `modes_2500`,
  `high_quality_2500`, `kl_2500` on the first 2,500 with a mode captured by
  one high-quality sample (the VEEGAN / PacGAN protocol).
- Counts: `tv`, the total-variation distance between the samples' empirical
  pmf and the target pmf, and the sample `mean` and `variance` (with the
  target's in `target_mean`, `target_variance`).
- MNIST digits: the `mnist_digit_classifier` preset labels each sample
  (scaled to its [-1, 1] input range): `digit_kl`, the KL of the label
  histogram from uniform over the 10 digits, `digits` (labels with at least
  1% of the samples) and `high_quality` (top probability above 0.9).
- Stacked MNIST (`sig_keras.metrics.StackedMNISTModes`, Table 2's protocol,
  the same classifier on each channel): `modes` (digit triples with at
  least one sample, of 1,000), `high_quality` (every channel's top
  probability above 0.7), `kl` (KL(generated || uniform) over the triples)
  and `inception_score`.

Sampling is seeded, so the same model, count and seed give the same
numbers; `measure_with_spread` adds the spread of each metric over other
sampling seeds (`spread_seeds`), against which a fresh seed is judged
(`within_spread`).
"""

import numpy as np

from sig_keras import datasets

# A fresh seed's metric is within the spread when it is within this many
# standard deviations of the spread seeds' mean (or within `SPREAD_ATOL` of
# it, for metrics that did not vary at all across those seeds).
SPREAD_STDS = 4.0
SPREAD_ATOL = 1e-6
# Seeds of the spread: the stored seed plus 1 .. NUM_SPREAD_SEEDS. Enough
# seeds for the standard deviation of the noisier 2,500-sample metrics.
NUM_SPREAD_SEEDS = 30
SMALL_PROTOCOL_SAMPLES = 2500
# Counts above this are pooled into the tail of the empirical pmf.
MAX_COUNT = 200


def data_kind(data):
    """`"grid"`, `"counts"` or `"digits"` for a data spec; ValueError otherwise."""
    if not isinstance(data, dict):
        raise ValueError(f"A preset's `data` must be a dict; got {data!r}.")
    if data.get("toy") in ("grid", "uneven_grid"):
        return "grid"
    if data.get("toy") in ("negative_binomial", "poisson_nb_mixture"):
        return "counts"
    if data.get("images") == "mnist_digits":
        return "digits"
    if data.get("images") == "stacked_mnist":
        return "stacked_mnist"
    raise ValueError(
        f"No evaluation for data {data!r}; known: toy 'grid', 'uneven_grid', "
        "'negative_binomial', 'poisson_nb_mixture' and images 'mnist_digits', "
        "'stacked_mnist'."
    )


def toy(data):
    """The `sig_keras.datasets` toy spec of a `{"toy": ...}` data dict."""
    return datasets.get_toy(data["toy"], **data.get("kwargs", {}))


def describe(data):
    """A short human description of a data spec (for tables)."""
    if "toy" in data:
        kwargs = ", ".join(f"{k}={v}" for k, v in sorted(data.get("kwargs", {}).items()))
        return f"{data['toy']}({kwargs})" if kwargs else data["toy"]
    if "images" in data:
        source = f"{data['images']}({data['source']})" if "source" in data else data["images"]
        if "holdout" in data:
            source += f", {data['holdout']} held out"
        return source
    return str(data)


# === Metrics ===


def _grid_metrics(samples, spec):
    from sig_keras.metrics import ModeCoverage

    samples = np.asarray(samples, np.float32).reshape(len(samples), -1)
    out = {}
    for suffix, x, share in (("", samples, 0.02),
                             ("_2500", samples[:SMALL_PROTOCOL_SAMPLES], 0.0)):
        metric = ModeCoverage(spec.centers, spec.std, spec.weights, capture_share=share)
        metric.update_state(x)
        out.update({f"{k}{suffix}": float(v) for k, v in metric.result().items()})
    return out


def count_metrics(samples, spec):
    """`tv`, `mean`, `variance` of integer samples against a count target."""
    counts = np.rint(np.asarray(samples, np.float64).ravel()).astype(np.int64)
    support = np.arange(MAX_COUNT + 1)
    empirical = np.bincount(np.clip(counts, 0, MAX_COUNT + 1),
                            minlength=MAX_COUNT + 2)[:MAX_COUNT + 1] / len(counts)
    target = spec.pmf(support)
    tv = 0.5 * (np.abs(empirical - target).sum()
                + abs((1.0 - empirical.sum()) - (1.0 - target.sum())))
    target_mean = float(np.sum(support * target))
    return {
        "tv": float(tv),
        "mean": float(counts.mean()),
        "variance": float(counts.var()),
        "target_mean": target_mean,
        "target_variance": float(np.sum((support - target_mean) ** 2 * target)),
    }


def _digit_metrics(samples, classifier):
    images = np.asarray(samples, np.float32).reshape(len(samples), 28, 28, 1)
    if images.min() >= 0.0:  # [0, 1] pixels (Bernoulli) -> the classifier's [-1, 1]
        images = 2.0 * images - 1.0
    probs = np.asarray(classifier.predict(images, batch_size=1000, verbose=0), np.float64)
    labels = probs.argmax(axis=1)
    q = np.bincount(labels, minlength=10) / len(labels)
    kl = float(np.sum(np.where(q > 0, q * np.log(np.maximum(q, 1e-300) * 10), 0.0)))
    return {
        "digit_kl": kl,
        "digits": float(np.sum(q >= 0.01)),
        "high_quality": float(np.mean(probs.max(axis=1) > 0.9)),
    }


def _stacked_mnist_metrics(samples, classifier):
    from sig_keras.metrics import StackedMNISTModes

    metric = StackedMNISTModes(classifier)
    images = np.asarray(samples, np.float32)
    for start in range(0, len(images), 1000):
        metric.update_state(images[start:start + 1000])
    result = metric.result()
    return {key: float(result[key])
            for key in ("modes", "high_quality", "kl", "inception_score")}


def metrics_of_samples(samples, data, classifier=None):
    """The metrics of `samples` for data spec `data` (see the module doc)."""
    kind = data_kind(data)
    if kind == "grid":
        return _grid_metrics(samples, toy(data))
    if kind == "counts":
        return count_metrics(samples, toy(data))
    if classifier is None:
        from sig_keras import presets

        classifier = presets.load("mnist_digit_classifier")
    if kind == "stacked_mnist":
        return _stacked_mnist_metrics(samples, classifier)
    return _digit_metrics(samples, classifier)


def draw(model, num_samples, seed, data=None):
    """`num_samples` samples of `model` drawn with `seed`, as a NumPy array:
    `model.sample`, except for digit data from a model with a `sample_mean`
    (SIG with the Bernoulli conditional), whose samples are the pixel
    probabilities `E[x | psi]` (`sample_mean`), the images digit models are
    shown and scored by."""
    if data is not None and data_kind(data) == "digits" and hasattr(model, "sample_mean"):
        return np.asarray(model.sample_mean(int(num_samples), seed=int(seed)))
    return np.asarray(model.sample(int(num_samples), seed=int(seed)))


def measure(model, data, num_samples, seed, classifier=None):
    """Metrics of `num_samples` samples of `model` drawn with `seed`."""
    return metrics_of_samples(draw(model, num_samples, seed, data), data, classifier)


def _mean_std(v):
    """Mean and std of one metric over seeds. A metric infinite on every seed
    (a KL with no high-quality sample) has that mean and std 0; one infinite
    on some seeds only has an infinite std (any fresh value is within)."""
    if np.all(np.isfinite(v)):
        return float(v.mean()), float(v.std())
    if np.all(v == v[0]):
        return float(v[0]), 0.0
    finite = v[np.isfinite(v)]
    return (float(finite.mean()) if finite.size else float("nan")), float("inf")


def measure_with_spread(model, data, num_samples, seed=0, spread_seeds=None,
                        classifier=None):
    """The `metrics` block of a preset's metadata.

    Returns `{"num_samples", "seed", "values", "spread"}`: `values` measured
    with `seed`; `spread` the per-metric `mean`, `std`, `min`, `max` over
    `spread_seeds` (default: `seed + 1 .. seed + NUM_SPREAD_SEEDS`) and the
    stored seed, with the rule a fresh seed is judged by.
    """
    if spread_seeds is None:
        spread_seeds = [int(seed) + i for i in range(1, NUM_SPREAD_SEEDS + 1)]
    values = measure(model, data, num_samples, seed, classifier)
    runs = [values] + [measure(model, data, num_samples, s, classifier)
                       for s in spread_seeds]
    spread = {}
    for key in values:
        v = np.array([r[key] for r in runs], np.float64)
        mean, std = _mean_std(v)
        spread[key] = {"mean": mean, "std": std, "min": float(v.min()), "max": float(v.max())}
    return {
        "num_samples": int(num_samples),
        "seed": int(seed),
        "values": values,
        "spread": {
            "seeds": [int(seed)] + [int(s) for s in spread_seeds],
            "rule": f"|value - mean| <= max({SPREAD_STDS:g} * std, {SPREAD_ATOL:g})",
            "metrics": spread,
        },
    }


def within_spread(key, value, spread):
    """Whether `value` of metric `key` lies within a stored `spread` block."""
    s = spread["metrics"][key]
    if not np.isfinite(s["std"]):  # seeds disagreed on whether the metric is finite
        return True
    if not np.isfinite(s["mean"]):
        return float(value) == s["mean"]
    return abs(float(value) - s["mean"]) <= max(SPREAD_STDS * s["std"], SPREAD_ATOL)
