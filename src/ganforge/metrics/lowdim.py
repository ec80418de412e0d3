"""Distances between low-dimensional sample sets (1D and 2D toy data): W1, KS, MMD, energy, moments.

Inputs are (N,) or (N, D) torch tensors or numpy arrays; computations are in float64.
"""

from __future__ import annotations

import numpy as np
from scipy import special, stats

from ganforge.metrics._arrays import as_1d_columns, as_2d, sq_dists, subsample


def w1(a, b) -> float:
    """Exact 1-Wasserstein distance, 1D (scipy); for D > 1 the mean of per-dimension W1, not the joint W1."""
    a, b = as_1d_columns(a, b)
    return float(np.mean([stats.wasserstein_distance(a[:, j], b[:, j]) for j in range(a.shape[1])]))


def w1_normal(samples, mean: float, std: float) -> float:
    """Exact W1 between the empirical distribution of 1D `samples` and N(mean, std^2).

    W1 = integral over u in (0, 1) of |F_n^-1(u) - Q(u)|: the empirical quantile is the i-th smallest
    sample on ((i-1)/n, i/n], and each piece integrates in closed form against the normal density.
    """
    x = as_2d(samples)
    if x.shape[1] != 1:
        raise ValueError(f"samples: w1_normal takes 1D samples, got dimension {x.shape[1]}")
    if std <= 0:
        raise ValueError(f"std: must be positive, got {std}")
    c = np.sort((x[:, 0] - mean) / std)  # standardised order statistics
    n = len(c)
    lo = special.ndtri(np.arange(n) / n)  # quantile at the left end of each piece (-inf for the first)
    hi = special.ndtri(np.arange(1, n + 1) / n)  # right end (+inf for the last)
    m = np.clip(c, lo, hi)

    def mass(a, b):  # integral of phi over [a, b]
        return special.ndtr(b) - special.ndtr(a)

    def first(a, b):  # integral of z * phi(z) over [a, b] = phi(a) - phi(b)
        return _phi(a) - _phi(b)

    # |c - z| integrated against phi: (c - z) below m = clip(c), (z - c) above it
    pieces = c * mass(lo, m) - first(lo, m) + first(m, hi) - c * mass(m, hi)
    return float(std * pieces.sum())


def _phi(z: np.ndarray) -> np.ndarray:
    """Standard normal density, 0 at +-inf."""
    return np.exp(-0.5 * np.square(z)) / np.sqrt(2 * np.pi)


def ks(a, b) -> float:
    """Two-sample Kolmogorov-Smirnov statistic (scipy); for D > 1 the mean of per-dimension statistics."""
    a, b = as_1d_columns(a, b)
    return float(np.mean([stats.ks_2samp(a[:, j], b[:, j]).statistic for j in range(a.shape[1])]))


def mmd_rbf(a, b, bandwidth: float | None = None, max_n: int = 2000, seed: int = 0) -> float:
    """Unbiased MMD^2 with the RBF kernel exp(-|x-y|^2 / (2 s^2)).

    s is the median pairwise distance of the pooled samples (median heuristic) unless given. Sets
    larger than `max_n` are subsampled (seeded) to keep the N^2 kernel matrices small.
    """
    a, b = as_1d_columns(a, b)
    rng = np.random.default_rng(seed)
    a, b = subsample(a, max_n, rng), subsample(b, max_n, rng)
    if len(a) < 2 or len(b) < 2:
        raise ValueError("mmd_rbf needs at least 2 samples in each set")
    d_aa, d_bb, d_ab = sq_dists(a, a), sq_dists(b, b), sq_dists(a, b)
    if bandwidth is None:
        upper_a, upper_b = d_aa[np.triu_indices(len(a), 1)], d_bb[np.triu_indices(len(b), 1)]
        pooled = np.concatenate([upper_a, upper_b, d_ab.ravel()])
        bandwidth = float(np.median(np.sqrt(pooled)))
    if bandwidth <= 0:
        raise ValueError("bandwidth: the median pairwise distance is 0 (all samples equal); pass a bandwidth")
    k_aa, k_bb, k_ab = (np.exp(-d / (2 * bandwidth**2)) for d in (d_aa, d_bb, d_ab))
    n, m = len(a), len(b)
    return float((k_aa.sum() - np.trace(k_aa)) / (n * (n - 1)) + (k_bb.sum() - np.trace(k_bb)) / (m * (m - 1))
                 - 2 * k_ab.mean())


def energy_distance(a, b, max_n: int = 2000, seed: int = 0) -> float:
    """Energy distance sqrt(2 E|X-Y| - E|X-X'| - E|Y-Y'|) of the empirical distributions, as scipy defines it.

    1D: scipy's exact O(N log N) form on all samples. D > 1: Euclidean norms, sets larger than `max_n`
    subsampled (seeded).
    """
    a, b = as_1d_columns(a, b)
    if a.shape[1] == 1:
        return float(stats.energy_distance(a[:, 0], b[:, 0]))
    rng = np.random.default_rng(seed)
    return _energy_pairwise(subsample(a, max_n, rng), subsample(b, max_n, rng))


def _energy_pairwise(a: np.ndarray, b: np.ndarray) -> float:
    """The V-statistic energy distance from all pairwise Euclidean distances."""
    e_ab = np.sqrt(sq_dists(a, b)).mean()
    e_aa, e_bb = np.sqrt(sq_dists(a, a)).mean(), np.sqrt(sq_dists(b, b)).mean()
    return float(np.sqrt(max(2 * e_ab - e_aa - e_bb, 0.0)))


def moments_error(a, b) -> dict[str, list[float]]:
    """Per-dimension |mean(a) - mean(b)| and |std(a) - std(b)| (std with ddof=1)."""
    a, b = as_1d_columns(a, b)
    return {"mean_error": np.abs(a.mean(0) - b.mean(0)).tolist(),
            "std_error": np.abs(a.std(0, ddof=1) - b.std(0, ddof=1)).tolist()}
