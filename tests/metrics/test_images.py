"""Image metrics from features: closed forms, torchmetrics as an independent implementation, hand cases."""

import math

import numpy as np
import pytest
import torch
from scipy import linalg
from torch import nn

from ganforge import metrics
from ganforge.data import mnist
from ganforge.metrics.images import _poly_mmd


def _random_cov(rng, d):
    a = rng.normal(size=(d, d))
    return a @ a.T / d + 0.1 * np.eye(d)


def test_frechet_distance_closed_form_diagonal():
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    v1, v2 = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 1.0])
    expect = 1 + 0 + 4 + np.sum((np.sqrt(v1) - np.sqrt(v2)) ** 2)  # |mu1 - mu2|^2 + sum (sqrt a - sqrt b)^2
    assert metrics.frechet_distance(mu1, np.diag(v1), mu2, np.diag(v2)) == pytest.approx(expect, rel=1e-12)
    assert expect == 11.0


def test_frechet_distance_matches_sqrtm_form():
    rng = np.random.default_rng(0)
    s1, s2 = _random_cov(rng, 6), _random_cov(rng, 6)
    mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
    ref = np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * linalg.sqrtm(s1 @ s2).real)
    assert metrics.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(ref, rel=1e-10)


def test_fid_of_samples_of_two_gaussians_approaches_closed_form():
    rng = np.random.default_rng(0)
    s1, s2 = _random_cov(rng, 4), _random_cov(rng, 4)
    mu1, mu2 = np.zeros(4), np.full(4, 0.5)
    a = rng.multivariate_normal(mu1, s1, 200_000)
    b = rng.multivariate_normal(mu2, s2, 200_000)
    assert metrics.fid(a, b) == pytest.approx(metrics.frechet_distance(mu1, s1, mu2, s2), rel=0.02)
    assert metrics.fid(a, a) == pytest.approx(0.0, abs=1e-9)


class _Identity(nn.Module):
    """A 'feature extractor' that passes features through, so torchmetrics sees our exact features."""

    def __init__(self, d):
        super().__init__()
        self.num_features = d

    def forward(self, x):
        return x


def test_fid_matches_torchmetrics():
    from torchmetrics.image.fid import FrechetInceptionDistance

    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(300, 8)), rng.normal(0.3, 1.5, size=(250, 8))
    tm = FrechetInceptionDistance(feature=_Identity(8))
    tm.update(torch.tensor(a, dtype=torch.float64), real=True)
    tm.update(torch.tensor(b, dtype=torch.float64), real=False)
    assert metrics.fid(a, b) == pytest.approx(tm.compute().item(), rel=1e-6)


@pytest.mark.filterwarnings("ignore:Metric `Kernel Inception Distance` will save")
def test_kid_matches_torchmetrics_and_poly_mmd():
    from torchmetrics.image.kid import KernelInceptionDistance, poly_mmd

    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(60, 5)), rng.normal(0.5, 1.0, size=(60, 5))
    ref = poly_mmd(torch.tensor(a), torch.tensor(b)).item()
    assert _poly_mmd(a, b) == pytest.approx(ref, rel=1e-12)
    # subsets of the whole set are the set itself: every subset gives the same MMD, std 0
    mean, std = metrics.kid(a, b, subsets=3, subset_size=60)
    assert mean == pytest.approx(ref, rel=1e-12) and std == pytest.approx(0.0, abs=1e-15)
    tm = KernelInceptionDistance(feature=_Identity(5), subsets=2, subset_size=60)
    tm.update(torch.tensor(a), real=True)
    tm.update(torch.tensor(b), real=False)
    assert mean == pytest.approx(tm.compute()[0].item(), rel=1e-6)


def test_kid_hand_case():
    # d = 1, k(x, y) = (x y + 1)^3; a = {0, 1}, b = {1, 2}
    k = lambda x, y: (x * y + 1) ** 3  # noqa: E731
    expect = (2 * k(0, 1) + 2 * k(1, 2)) / 2 - 2 * (k(0, 1) + k(0, 2) + k(1, 1) + k(1, 2)) / 4
    assert metrics.kid([[0.0], [1.0]], [[1.0], [2.0]], subsets=1, subset_size=2)[0] == pytest.approx(expect)


def test_kid_is_seeded_and_checks_subset_size():
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(100, 4)), rng.normal(size=(120, 4))
    assert metrics.kid(a, b, 10, 50, seed=7) == metrics.kid(a, b, 10, 50, seed=7)
    assert metrics.kid(a, b, 10, 50, seed=7) != metrics.kid(a, b, 10, 50, seed=8)
    msg = r"subset_size: must be between 2 and the smaller set's size \(100\), got 1000"
    with pytest.raises(ValueError, match=msg):
        metrics.kid(a, b)


# real: 0, 1, 3 (k=1 radii 1, 1, 2); fake: 0.5, 5.5 (k=1 radii 5, 5)
REAL, FAKE = np.array([[0.0], [1.0], [3.0]]), np.array([[0.5], [5.5]])


def test_precision_recall_hand_case():
    out = metrics.precision_recall(REAL, FAKE, k=1)
    assert out == {"precision": 0.5, "recall": 1.0}  # 5.5 is in no real ball; every real is within 5 of 0.5


def test_density_coverage_hand_case():
    out = metrics.density_coverage(REAL, FAKE, k=1)
    # 0.5 is in the balls of 0 and 1, 5.5 in none: density 2 / (1 * 2); 3's ball (radius 2) holds no fake
    assert out == {"density": 1.0, "coverage": pytest.approx(2 / 3, abs=1e-15)}


def test_identical_sets():
    x = torch.randn(200, 6, generator=torch.Generator().manual_seed(0))
    assert metrics.precision_recall(x, x, k=3) == {"precision": 1.0, "recall": 1.0}
    # closed balls: each ball holds its centre and its k nearest neighbours, so density is (k + 1) / k
    assert metrics.density_coverage(x, x, k=5) == {"density": pytest.approx(1.2, abs=1e-15), "coverage": 1.0}


def test_precision_recall_detect_missing_half():
    rng = np.random.default_rng(0)
    real = rng.normal(size=(400, 2))
    fake = real[real[:, 0] > 0] + 0.01 * rng.normal(size=(1, 2))  # only half of the real support
    out = metrics.precision_recall(real, fake)
    assert out["precision"] > 0.95 and out["recall"] < 0.6


def test_knn_k_checked():
    with pytest.raises(ValueError, match=r"k: must be between 1 and the number of samples - 1 \(2\), got 3"):
        metrics.precision_recall(REAL, FAKE, k=3)


def test_class_stats_hand_case():
    logits = np.eye(10)[[0, 0, 1, 1, 1, 2, 2, 2, 2, 2]]  # predictions 0,0,1,1,1,2,2,2,2,2
    out = metrics.class_stats(logits, labels=[0, 1, 1, 1, 1, 2, 2, 2, 2, 0])
    p = np.array([0.2, 0.3, 0.5])
    assert out["accuracy"] == 0.8
    assert out["kl"] == pytest.approx(float(np.sum(p * np.log(p * 10))), rel=1e-12)
    assert out["classes"] == 3
    assert out["hist"][:4] == [0.2, 0.3, 0.5, 0.0]
    skewed = metrics.class_stats(logits, data_hist=[0.2, 0.3, 0.5] + [0] * 7)
    assert skewed["accuracy"] is None and skewed["kl"] == pytest.approx(0.0, abs=1e-15)


def test_class_stats_threshold():
    logits = np.eye(10)[[0] * 995 + [1] * 5]  # class 1 gets 0.5% of the samples: not produced
    assert metrics.class_stats(logits)["classes"] == 1
    assert metrics.class_stats(logits, threshold=0.005)["classes"] == 2
    assert math.isfinite(metrics.class_stats(logits)["kl"])


def test_conditional_accuracy_hand_case():
    logits = np.eye(3)[[0, 0, 1, 2, 2, 0, 2, 2]]  # predictions 0,0,1,2,2,0,2,2
    labels = [0, 0, 1, 1, 1, 2, 2, 2]  # class 0: 2/2 read right, class 1: 1/3, class 2: 2/3
    out = metrics.conditional_accuracy(logits, torch.tensor(labels))
    assert out["per_class"] == pytest.approx([1.0, 1 / 3, 2 / 3], rel=1e-15)
    assert out["mean"] == pytest.approx(2 / 3, rel=1e-15) and out["min"] == pytest.approx(1 / 3, rel=1e-15)
    assert metrics.class_stats(logits, labels=labels)["accuracy"] == 5 / 8  # per sample, not per class


def test_conditional_accuracy_checks_labels():
    logits = np.eye(3)[[0, 1, 2, 0]]
    with pytest.raises(ValueError, match="labels: expected 4 labels, got 3"):
        metrics.conditional_accuracy(logits, [0, 1, 2])
    with pytest.raises(ValueError, match=r"labels: expected class indices in 0..2"):
        metrics.conditional_accuracy(logits, [0, 1, 3, 0])
    with pytest.raises(ValueError, match=r"labels: no sample requested as class 2 \(of 3\)"):
        metrics.conditional_accuracy(logits, [0, 1, 1, 0])


def test_conditional_accuracy_of_real_digits_with_the_shipped_classifier():
    ds = mnist.mnist_5k()
    pick = torch.arange(0, 5000, 10)  # 50 real digits of each class, from the classifier's training split
    x, y = ds.x[pick], ds.y[pick]  # (500, 1, 28, 28), (500,)
    logits = metrics.load_digit_classifier().logits(x)  # (500, 10); it reads every one of these right
    right = metrics.conditional_accuracy(logits, y)  # a generator that always draws the requested digit
    assert right == {"per_class": [1.0] * 10, "mean": 1.0, "min": 1.0}
    wrong = metrics.conditional_accuracy(logits, (y + 1) % 10)  # one that draws digit k - 1 when asked for k
    assert wrong == {"per_class": [0.0] * 10, "mean": 0.0, "min": 0.0}


def test_class_stats_confident_share():
    # top-class probabilities: softmax([3, 0]) = 0.953, softmax([1, 0]) = 0.731, softmax([50, 0]) = 1.0
    logits = np.array([[3.0, 0.0], [1.0, 0.0], [50.0, 0.0], [0.0, 1000.0]])
    assert metrics.class_stats(logits)["confident"] == 0.75
    assert metrics.class_stats(logits, sure=0.96)["confident"] == 0.5
