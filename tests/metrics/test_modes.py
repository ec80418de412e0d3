"""mode_stats on constructed samples with known answers."""

import math

import numpy as np
import pytest
import torch

from ganforge import metrics
from ganforge.data import toy


def _ring():
    return toy.ring_8(n=10, std=0.02).modes  # (8, 2)


def test_three_of_eight_modes_even():
    centres = _ring()
    noise = 0.01 * torch.randn(300, 2, generator=torch.Generator().manual_seed(0))
    x = centres[[0, 3, 5]].repeat_interleave(100, 0) + noise  # (300, 2), within 3 std of the centres
    out = metrics.mode_stats(x, centres, 0.02)
    assert out["modes_covered"] == 3
    assert out["high_quality"] == 1.0
    assert out["kl"] == pytest.approx(math.log(8 / 3), rel=1e-12)
    assert out["counts"] == [100, 0, 0, 100, 0, 100, 0, 0]


def test_all_modes_even_gives_zero_kl():
    centres = _ring()
    out = metrics.mode_stats(centres.repeat(5, 1), centres, 0.02)
    assert out["modes_covered"] == 8 and out["kl"] == pytest.approx(0.0, abs=1e-15)


def test_low_quality_samples_and_threshold():
    centres = _ring().numpy()
    good = np.repeat(centres[:2], [990, 9], axis=0)  # mode 1 gets 9 of 1000 samples: 0.9% < 1%
    far = np.zeros((1, 2))  # the origin is 2 away from every centre: low quality
    x = np.concatenate([good, far])
    out = metrics.mode_stats(x, centres, 0.02)
    assert out["modes_covered"] == 1
    assert out["high_quality"] == pytest.approx(999 / 1000, abs=1e-15)
    p = np.array([990, 9]) / 999
    assert out["kl"] == pytest.approx(float(np.sum(p * np.log(8 * p))), rel=1e-12)
    assert metrics.mode_stats(x, centres, 0.02, threshold=0.005)["modes_covered"] == 2


def test_no_high_quality_sample_gives_nan_kl():
    out = metrics.mode_stats(np.zeros((10, 2)), _ring(), 0.02)
    assert out["modes_covered"] == 0 and out["high_quality"] == 0.0 and math.isnan(out["kl"])


def test_errors():
    with pytest.raises(ValueError, match="samples have dimension 1, centres 2"):
        metrics.mode_stats(np.zeros((3, 1)), _ring(), 0.02)
    with pytest.raises(ValueError, match="std: must be positive, got 0"):
        metrics.mode_stats(np.zeros((3, 2)), _ring(), 0)
