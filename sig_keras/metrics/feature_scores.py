"""All feature-space scores of two feature sets in one call."""

from sig_keras.metrics.frechet_distance import FrechetDistance
from sig_keras.metrics.kernel_distance import KernelDistance
from sig_keras.metrics.precision_recall import PrecisionRecall


def feature_scores(real_features, generated_features, k=5, subsets=100, subset_size=1000):
    """FID, KID and precision/recall/density/coverage of precomputed features.

    Runs `FrechetDistance`, `KernelDistance` (subsets of
    `min(subset_size, n_real, n_generated)` samples) and `PrecisionRecall` on
    the same `[n, d]` real and generated features, with buffers sized once.

    Args:
        real_features: `[n_real, d]` features of real data.
        generated_features: `[n_generated, d]` features of generated data.
        k: int. Neighbours of precision/recall. Defaults to 5.
        subsets: int. KID subsets. Defaults to 100.
        subset_size: int. Largest KID subset. Defaults to 1000.

    Returns:
        dict of floats: `fid`, `kid`, `kid_std`, `precision`, `recall`,
        `density`, `coverage`.

    Example:
    >>> scores = feature_scores(extractor(real_images), extractor(model.sample(10_000)))
    >>> scores["fid"], scores["recall"]
    """
    width = real_features.shape[-1]
    counts = (real_features.shape[0], generated_features.shape[0])
    metrics = (
        FrechetDistance("identity", num_features=width),
        KernelDistance("identity", num_features=width, subsets=subsets,
                       subset_size=min(subset_size, *counts), capacity=max(counts)),
        PrecisionRecall("identity", num_features=width, k=k, capacity=max(counts)),
    )
    scores = {}
    for metric in metrics:
        metric.update_state_from_features(real_features, generated_features)
        result = metric.result()
        if isinstance(result, dict):
            scores.update({key: float(value) for key, value in result.items()})
        else:
            scores["fid"] = float(result)
    return scores
