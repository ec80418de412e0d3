"""Low-dimensional distances against hand computations, closed forms and scipy."""

import math

import numpy as np
import pytest
import torch
from scipy import integrate, stats

from ganforge import metrics
from ganforge.metrics.lowdim import _energy_pairwise


def test_w1_hand_values():
    assert metrics.w1([0.0, 1.0, 3.0], [1.0, 2.0, 4.0]) == pytest.approx(1.0, abs=1e-15)
    a, b = np.array([0.0, 0.0, 1.0]), torch.tensor([0.0, 1.0, 1.0])
    assert metrics.w1(a, b) == pytest.approx(1 / 3, abs=1e-15)


def test_w1_of_2d_is_mean_of_per_dimension_w1():
    a = np.array([[0.0, 0.0], [1.0, 0.0]])
    b = np.array([[0.0, 2.0], [1.0, 2.0]])  # x identical, y shifted by 2
    assert metrics.w1(a, b) == pytest.approx(1.0, abs=1e-15)


def test_w1_dimension_mismatch_message():
    with pytest.raises(ValueError, match="a and b have different dimensions: 1 and 2"):
        metrics.w1(np.zeros((3, 1)), np.zeros((3, 2)))


def _expected_abs_dev(c, mean, std):
    """E|c - X| for X ~ N(mean, std^2), the closed form."""
    d = (c - mean) / std
    return std * (2 * stats.norm.pdf(d) + d * (2 * stats.norm.cdf(d) - 1))


@pytest.mark.parametrize("c", [5.0, 3.7, 9.0])
def test_w1_normal_single_point_closed_form(c):
    assert metrics.w1_normal([c], 5.0, 2.0) == pytest.approx(_expected_abs_dev(c, 5.0, 2.0), rel=1e-12)


def test_w1_normal_against_numerical_integral_of_cdf_difference():
    x = np.array([4.1, 5.3, 5.35, 6.8, 2.0])
    f_n = lambda t: np.searchsorted(np.sort(x), t, side="right") / len(x)  # noqa: E731
    expect = integrate.quad(lambda t: abs(f_n(t) - stats.norm.cdf(t, 5, 1)), -10, 20, points=x, limit=200)[0]
    assert metrics.w1_normal(torch.tensor(x)[:, None], 5.0, 1.0) == pytest.approx(expect, rel=1e-7)


def test_w1_normal_matches_scipy_against_a_huge_normal_sample():
    rng = np.random.default_rng(0)
    x = rng.normal(5.3, 1.2, 2000)
    ref = stats.wasserstein_distance(x, stats.norm.ppf((np.arange(400_000) + 0.5) / 400_000, 5, 1))
    assert metrics.w1_normal(x, 5.0, 1.0) == pytest.approx(ref, abs=1e-4)


def test_w1_normal_of_true_samples_is_small():
    x = np.random.default_rng(1).normal(5, 1, 100_000)
    assert 0 < metrics.w1_normal(x, 5, 1) < 0.01


def test_w1_normal_errors():
    with pytest.raises(ValueError, match="std: must be positive, got 0"):
        metrics.w1_normal([1.0], 0.0, 0.0)
    with pytest.raises(ValueError, match="samples: w1_normal takes 1D samples, got dimension 2"):
        metrics.w1_normal(np.zeros((4, 2)), 0.0, 1.0)


def test_ks_hand_values():
    assert metrics.ks([1.0, 2.0, 3.0], [4.0, 5.0, 6.0]) == 1.0
    assert metrics.ks([1.0, 2.0, 3.0, 4.0], [3.5, 4.5, 5.0, 6.0]) == 0.75


def test_mmd_rbf_hand_value_with_fixed_bandwidth():
    e = math.exp
    expect = e(-0.5) + e(-2) - 2 * (1 + e(-2) + 2 * e(-0.5)) / 4
    assert metrics.mmd_rbf([[0.0], [1.0]], [[0.0], [2.0]], bandwidth=1.0) == pytest.approx(expect, rel=1e-14)


def test_mmd_rbf_median_heuristic_is_pooled_median_distance():
    a, b = np.array([[0.0], [1.0]]), np.array([[0.0], [3.0]])
    # pooled pairwise distances: aa 1; bb 3; ab 0, 3, 1, 2 -> median 1.5
    assert metrics.mmd_rbf(a, b) == metrics.mmd_rbf(a, b, bandwidth=1.5)


def test_mmd_rbf_separates_distributions():
    rng = np.random.default_rng(0)
    same = metrics.mmd_rbf(rng.normal(0, 1, (500, 2)), rng.normal(0, 1, (500, 2)))
    apart = metrics.mmd_rbf(rng.normal(0, 1, (500, 2)), rng.normal(1, 1, (500, 2)))
    assert abs(same) < 0.01 and apart > 0.1


def test_energy_distance_1d_is_scipy_and_pairwise_form_agrees():
    rng = np.random.default_rng(0)
    a, b = rng.normal(0, 1, (50, 1)), rng.normal(0.5, 2, (70, 1))
    assert metrics.energy_distance(a, b) == stats.energy_distance(a[:, 0], b[:, 0])
    assert _energy_pairwise(a, b) == pytest.approx(stats.energy_distance(a[:, 0], b[:, 0]), rel=1e-10)


def test_energy_distance_2d_hand_value():
    assert metrics.energy_distance([[0.0, 0.0]], [[3.0, 4.0]]) == pytest.approx(math.sqrt(10), rel=1e-15)


def test_moments_error_exact():
    out = metrics.moments_error([[1.0, 0.0], [3.0, 0.0]], [[2.0, 1.0], [2.0, 3.0]])
    assert out["mean_error"] == [0.0, 2.0]
    assert out["std_error"] == pytest.approx([math.sqrt(2), math.sqrt(2)], rel=1e-15)
