"""Toy datasets: shapes, seeds, grid centres and weights, count pmfs, pipelines."""

import numpy as np
import pytest
import tensorflow as tf
from scipy import stats

from sig_keras import datasets


def test_grid_centres_and_weights():
    grid = datasets.gaussian_grid(std=0.1)
    expected = {(-4.0 + 2 * i, -4.0 + 2 * j) for i in range(5) for j in range(5)}
    assert {tuple(c) for c in grid.centers.tolist()} == expected
    assert grid.centers.shape == (25, 2)
    np.testing.assert_allclose(grid.weights, np.full(25, 1 / 25))
    assert grid.std == 0.1
    assert datasets.gaussian_grid().std == 0.05  # PacGAN's default


def test_grid_samples_shape_seed_and_spread():
    grid = datasets.gaussian_grid(std=0.05)
    x = grid.sample(2000, seed=3)
    assert x.shape == (2000, 2) and x.dtype == np.float32
    np.testing.assert_array_equal(x, grid.sample(2000, seed=3))
    assert not np.array_equal(x, grid.sample(2000, seed=4))
    # Every sample lies near a centre, with the component std.
    d = np.linalg.norm(x[:, None] - grid.centers[None], axis=-1)
    nearest = grid.centers[d.argmin(1)]
    assert np.std(x - nearest) == pytest.approx(0.05, rel=0.05)
    counts = np.bincount(d.argmin(1), minlength=25)
    assert counts.min() > 40  # 80 expected per mode


def test_uneven_grid_columns_two_to_one():
    grid = datasets.uneven_grid(std=0.1)
    column_x = grid.centers[:, 0]
    for x0, w in [(-4, 2), (-2, 1), (0, 2), (2, 1), (4, 2)]:
        np.testing.assert_allclose(grid.weights[column_x == x0], w / 40)
    assert grid.weights.sum() == pytest.approx(1.0)
    x = grid.sample(40_000, seed=0)
    column = np.rint((x[:, 0] + 4) / 2).astype(int)
    share = np.bincount(column, minlength=5) / len(x)
    np.testing.assert_allclose(share, [0.25, 0.125, 0.25, 0.125, 0.25], atol=0.01)


def test_gaussian_ring():
    ring = datasets.gaussian_ring(num_modes=8, radius=2.0, std=0.02)
    assert ring.centers.shape == (8, 2)
    np.testing.assert_allclose(np.linalg.norm(ring.centers, axis=1), 2.0)
    np.testing.assert_allclose(ring.weights, np.full(8, 1 / 8))
    x = ring.sample(500, seed=0)
    assert x.shape == (500, 2)
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 2.0, atol=0.1)


def test_noisy_ring():
    ring = datasets.noisy_ring(radius=3.0, std=0.1)
    x = ring.sample(5000, seed=1)
    assert x.shape == (5000, 2) and x.dtype == np.float32
    np.testing.assert_array_equal(x, ring.sample(5000, seed=1))
    r = np.linalg.norm(x, axis=1)
    assert r.mean() == pytest.approx(3.0, abs=0.01)
    assert r.std() == pytest.approx(0.1, rel=0.05)


def test_negative_binomial_pmf_and_samples():
    nb = datasets.negative_binomial(2.0, 0.5)
    k = np.arange(200)
    pmf = nb.pmf(k)
    assert pmf.sum() == pytest.approx(1.0, abs=1e-8)
    # TFP/paper convention, mean r p / (1 - p): scipy's p is 1 - probs.
    np.testing.assert_allclose(pmf, stats.nbinom.pmf(k, 2.0, 0.5), rtol=1e-10)
    x = nb.sample(20_000, seed=0)
    assert x.shape == (20_000, 1) and x.dtype == np.float32
    assert np.all(x == np.round(x)) and x.min() >= 0
    assert x.mean() == pytest.approx(2.0, abs=0.05)
    assert x.var() == pytest.approx(2.0 / 0.5, rel=0.05)  # r p / (1 - p)^2


def test_negative_binomial_convention_asymmetric():
    nb = datasets.negative_binomial(3.0, 0.8)
    k = np.arange(400)
    assert np.sum(k * nb.pmf(k)) == pytest.approx(3.0 * 0.8 / 0.2, rel=1e-6)
    assert nb.sample(20_000, seed=2).mean() == pytest.approx(12.0, rel=0.03)


def test_poisson_nb_mixture_pmf_and_samples():
    mix = datasets.poisson_nb_mixture()
    k = np.arange(500)
    pmf = mix.pmf(k)
    assert pmf.sum() == pytest.approx(1.0, abs=1e-6)
    expected = 0.5 * stats.poisson.pmf(k, 10.0) + 0.5 * stats.nbinom.pmf(k, 0.2, 0.1)
    np.testing.assert_allclose(pmf, expected, rtol=1e-8, atol=1e-300)
    mean = 0.5 * 10.0 + 0.5 * 0.2 * 0.9 / 0.1
    assert np.sum(k * pmf) == pytest.approx(mean, rel=1e-6)
    x = mix.sample(40_000, seed=0)
    assert x.mean() == pytest.approx(mean, rel=0.03)
    # Empirical pmf close to the exact one in total variation.
    empirical = np.bincount(x[:, 0].astype(int), minlength=500)[:500] / len(x)
    assert 0.5 * np.abs(empirical - pmf).sum() < 0.03


@pytest.mark.parametrize(
    "name, kwargs",
    [
        ("grid", {"std": 0.1}),
        ("uneven_grid", {}),
        ("ring_of_gaussians", {}),
        ("noisy_ring", {}),
        ("negative_binomial", {}),
        ("poisson_nb_mixture", {}),
    ],
)
def test_get_toy_and_make_dataset(name, kwargs):
    spec = datasets.get_toy(name, **kwargs)
    ds = datasets.make_dataset(spec, batch_size=16, num_examples=100, seed=0)
    assert ds.element_spec.shape[0] == 16  # drop_remainder: static batch
    first = next(iter(ds)).numpy()
    assert first.dtype == np.float32 and first.shape[0] == 16
    again = next(iter(datasets.make_dataset(spec, 16, num_examples=100, seed=0))).numpy()
    np.testing.assert_array_equal(first, again)


def test_make_dataset_drops_remainder_without_repeat():
    spec = datasets.gaussian_grid()
    ds = datasets.make_dataset(spec, batch_size=4, num_examples=10, repeat=False)
    batches = [b.numpy() for b in ds]
    assert [b.shape for b in batches] == [(4, 2), (4, 2)]
    assert tuple(ds.element_spec.shape) == (4, 2)
    # The pipeline holds the spec's draws, shuffled.
    data = spec.sample(10, seed=0)
    seen = np.concatenate(batches)
    assert all(any(np.array_equal(row, d) for d in data) for row in seen)


def test_make_dataset_repeats():
    ds = datasets.make_dataset(datasets.noisy_ring(), batch_size=4, num_examples=8)
    assert len(list(ds.take(5))) == 5
    assert isinstance(ds, tf.data.Dataset)


@pytest.mark.parametrize(
    "make",
    [
        lambda: datasets.gaussian_grid(std=0.0),
        lambda: datasets.gaussian_grid(std=-0.1),
        lambda: datasets.gaussian_grid(std=float("nan")),
        lambda: datasets.gaussian_grid(size=0),
        lambda: datasets.uneven_grid(std=0.0),
        lambda: datasets.gaussian_ring(std=0.0),
        lambda: datasets.gaussian_ring(num_modes=0),
        lambda: datasets.noisy_ring(std=-1.0),
        lambda: datasets.negative_binomial(0.0, 0.5),
        lambda: datasets.negative_binomial(2.0, 1.0),
        lambda: datasets.negative_binomial(2.0, 0.0),
        lambda: datasets.poisson_nb_mixture(rate=0.0),
        lambda: datasets.poisson_nb_mixture(total_count=-1.0),
        lambda: datasets.poisson_nb_mixture(probs=1.5),
        lambda: datasets.get_toy("swiss_roll"),
        lambda: datasets.make_dataset(datasets.gaussian_grid(), batch_size=0),
        lambda: datasets.make_dataset(datasets.gaussian_grid(), batch_size=8, num_examples=4),
    ],
)
def test_bad_arguments(make):
    with pytest.raises(ValueError):
        make()


def test_unknown_toy_lists_valid_names():
    with pytest.raises(ValueError, match="valid names.*grid"):
        datasets.get_toy("swiss_roll")
