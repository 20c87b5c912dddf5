"""Diversity of a sample set: mean pairwise distance against real data's.

A generator that draws one pattern for every latent point has generated
samples much closer to each other than real samples are, whatever a
classifier makes of them. The ratio

    diversity_ratio = mean_{i != j} ||g_i - g_j|| / mean_{i != j} ||r_i - r_j||

is about 1 for a generator that spreads like the data, and near 0 for a
collapsed one. Distances are Euclidean over all pixels (or features).
"""

import numpy as np

from sig_keras.utils import validation


def mean_pairwise_distance(samples, max_samples=1000):
    """Mean Euclidean distance between distinct samples.

    Args:
        samples: array `[n, ...]`, n >= 2. Flattened to `[n, D]`.
        max_samples: int >= 2. Only the first `max_samples` are used (the
            cost is quadratic). Defaults to 1000.

    Returns:
        A Python float.
    """
    max_samples = validation.check_int(max_samples, "max_samples", minimum=2)
    x = np.asarray(samples, dtype=np.float64)
    if x.ndim < 2 or x.shape[0] < 2:
        raise ValueError(
            f"`samples` must hold at least 2 samples `[n, ...]`; got shape {x.shape}.")
    x = x[:max_samples].reshape(min(len(x), max_samples), -1)
    if not np.all(np.isfinite(x)):
        raise ValueError("`samples` contains NaN or inf values.")
    sq = np.einsum("ij,ij->i", x, x)
    # ||a - b||^2 = ||a||^2 + ||b||^2 - 2 a.b, clipped at 0 against round-off
    # before the square root.
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * (x @ x.T), 0.0)
    n = len(x)
    return float(np.sqrt(d2)[~np.eye(n, dtype=bool)].mean())


def diversity_ratio(generated, real, max_samples=1000):
    """`mean_pairwise_distance(generated) / mean_pairwise_distance(real)`.

    Args:
        generated: array `[n, ...]` of generated samples.
        real: array `[m, ...]` of real samples, same event shape.
        max_samples: int. Samples of each set used. Defaults to 1000.

    Returns:
        A Python float, 0 for identical samples, about 1 when the generated
        samples are as spread as the real ones.
    """
    generated, real = np.asarray(generated), np.asarray(real)
    if generated.shape[1:] != real.shape[1:]:
        raise ValueError(
            f"`generated` and `real` must have the same event shape; got "
            f"{generated.shape[1:]} and {real.shape[1:]}.")
    real_distance = mean_pairwise_distance(real, max_samples)
    if real_distance == 0.0:
        raise ValueError("`real` samples are all identical: the ratio is undefined.")
    return mean_pairwise_distance(generated, max_samples) / real_distance
