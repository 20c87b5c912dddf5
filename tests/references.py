"""numpy/scipy references for the conditionals' `[N, K]` log-probabilities."""

import numpy as np
from scipy import special
from scipy import stats

from sig_keras import layers


def softplus(v):
    return np.logaddexp(0.0, v)


def rng_for(seed=0):
    return np.random.default_rng(seed)


# === numpy/scipy references: [N, K] matrices of log p(x_i | psi_k) ===


def ref_normal(x, psi, scale):
    x = x.reshape(len(x), -1).astype(np.float64)
    psi = psi.reshape(len(psi), -1).astype(np.float64)
    return stats.norm.logpdf(x[:, None, :], loc=psi[None], scale=scale).sum(-1)


def ref_poisson(x, psi, min_rate=1e-6):
    rate = softplus(psi.astype(np.float64)) + min_rate
    return stats.poisson.logpmf(x[:, None, :], rate[None]).sum(-1)


def ref_nb(x, psi, min_total_count=1e-4):
    psi = psi.astype(np.float64)
    d = psi.shape[-1] // 2
    r = softplus(psi[:, :d]) + min_total_count
    p_tfp = special.expit(psi[:, d:])  # TFP: mean r p / (1 - p)
    # scipy's nbinom(n, p) counts failures before n successes with success
    # probability p: TFP's probs is scipy's 1 - p.
    return stats.nbinom.logpmf(x[:, None, :], r[None], 1.0 - p_tfp[None]).sum(-1)


def ref_bernoulli(x, psi):
    p = special.expit(psi.astype(np.float64))
    return stats.bernoulli.logpmf(x[:, None, :], p[None]).sum(-1)


def case(name, n=5, k=4, d=3, seed=0):
    """(conditional, x [n, d], psi [k, param], reference [n, k])."""
    rng = rng_for(seed)
    if name == "normal":
        cond = layers.NormalConditional(scale=0.7)
        x = rng.normal(size=(n, d)).astype(np.float32)
        psi = rng.normal(size=(k, d)).astype(np.float32)
        return cond, x, psi, ref_normal(x, psi, 0.7)
    if name == "poisson":
        cond = layers.PoissonConditional()
        x = rng.poisson(3.0, size=(n, d)).astype(np.float32)
        psi = rng.normal(1.0, 1.0, size=(k, d)).astype(np.float32)
        return cond, x, psi, ref_poisson(x, psi)
    if name == "negative_binomial":
        cond = layers.NegativeBinomialConditional()
        x = rng.poisson(3.0, size=(n, d)).astype(np.float32)
        psi = rng.normal(size=(k, 2 * d)).astype(np.float32)
        return cond, x, psi, ref_nb(x, psi)
    if name == "bernoulli":
        cond = layers.BernoulliConditional()
        x = rng.integers(0, 2, size=(n, d)).astype(np.float32)
        psi = rng.normal(0.0, 2.0, size=(k, d)).astype(np.float32)
        return cond, x, psi, ref_bernoulli(x, psi)
    raise AssertionError(name)
