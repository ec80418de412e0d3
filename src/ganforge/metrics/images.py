"""Image quality from features: FID, KID, precision/recall, density/coverage, class statistics, conditional
accuracy.

Feature inputs are (N, F) tensors or arrays (e.g. from `features.DigitClassifier.features`); all
computations are in float64.
"""

from __future__ import annotations

import numpy as np

from ganforge.metrics._arrays import as_1d_columns, as_2d, sq_dists


def _mean_cov(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if len(x) < 2:
        raise ValueError("FID needs at least 2 samples in each set")
    return x.mean(0), np.cov(x, rowvar=False, ddof=1).reshape(x.shape[1], x.shape[1])


def _psd_sqrt(s: np.ndarray) -> np.ndarray:
    """Symmetric square root of a PSD matrix (eigenvalues clipped at 0)."""
    w, v = np.linalg.eigh(s)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """|mu1 - mu2|^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)) for two Gaussians.

    Tr (S1 S2)^(1/2) is computed as the sum of square roots of the eigenvalues of the symmetric PSD
    matrix S1^(1/2) S2 S1^(1/2) (same eigenvalues as S1 S2), which is stable where sqrtm is not.
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    s1, s2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    r = _psd_sqrt(s1)
    cross = np.sqrt(np.clip(np.linalg.eigvalsh(r @ s2 @ r), 0, None)).sum()
    return float(np.square(mu1 - mu2).sum() + np.trace(s1) + np.trace(s2) - 2 * cross)


def fid(feats_a, feats_b) -> float:
    """Frechet distance of Gaussians fit to two feature sets (covariances with ddof=1), Heusel et al. 2017."""
    a, b = as_1d_columns(feats_a, feats_b)
    return frechet_distance(*_mean_cov(a), *_mean_cov(b))


def _poly_mmd(a: np.ndarray, b: np.ndarray) -> float:
    """Unbiased MMD^2 with k(x, y) = (x.y / d + 1)^3, in the form of Binkowski et al.'s code."""
    d, m = a.shape[1], len(a)
    k_aa, k_bb, k_ab = ((x @ y.T / d + 1) ** 3 for x, y in ((a, a), (b, b), (a, b)))
    return float((k_aa.sum() - np.trace(k_aa) + k_bb.sum() - np.trace(k_bb)) / (m * (m - 1))
                 - 2 * k_ab.sum() / m**2)


def kid(feats_a, feats_b, subsets: int = 100, subset_size: int = 1000, seed: int = 0) -> tuple[float, float]:
    """Kernel Inception Distance (Binkowski et al. 2018): (mean, std) of unbiased polynomial MMD^2.

    Each of `subsets` draws takes `subset_size` rows of each set without replacement (numpy, `seed`);
    std is over the subsets with ddof=0, as torch-fidelity reports it.
    """
    a, b = as_1d_columns(feats_a, feats_b)
    if not 2 <= subset_size <= min(len(a), len(b)):
        raise ValueError(f"subset_size: must be between 2 and the smaller set's size "
                         f"({min(len(a), len(b))}), got {subset_size}")
    rng = np.random.default_rng(seed)
    vals = [_poly_mmd(a[rng.choice(len(a), subset_size, replace=False)],
                      b[rng.choice(len(b), subset_size, replace=False)]) for _ in range(subsets)]
    return float(np.mean(vals)), float(np.std(vals))


def _chunked_sq(a: np.ndarray, b: np.ndarray, fn, chunk: int = 1000) -> np.ndarray:
    """fn applied to each row-block of squared distances a x b, results concatenated along rows."""
    return np.concatenate([fn(sq_dists(a[i : i + chunk], b)) for i in range(0, len(a), chunk)])


def knn_radii(x: np.ndarray, k: int) -> np.ndarray:
    """Distance from each row of x to its k-th nearest OTHER row (itself excluded)."""
    if not 1 <= k < len(x):
        raise ValueError(f"k: must be between 1 and the number of samples - 1 ({len(x) - 1}), got {k}")
    # the k+1-th smallest distance in a row, the first being the row's distance to itself (0)
    return np.sqrt(_chunked_sq(x, x, lambda d: np.partition(d, k, axis=1)[:, k]))


def _within(points: np.ndarray, centres: np.ndarray, radii: np.ndarray, chunk: int = 1000) -> np.ndarray:
    """(P, C) bool: point p lies in the closed ball of centre c with radius radii[c].

    Distances come from dot products, whose rounding differs between d(p, c) and d(c, p); a margin of
    1e-12 (|p|^2 + |c|^2) keeps a ball's own k-th neighbour inside it, as the closed ball requires.
    """
    c2 = (centres * centres).sum(1)[None, :]  # (1, C)
    r2 = np.square(radii)[None, :] + 1e-12 * c2
    out = []
    for i in range(0, len(points), chunk):
        p = points[i : i + chunk]
        out.append(sq_dists(p, centres) <= r2 + 1e-12 * (p * p).sum(1)[:, None])
    return np.concatenate(out)  # (P, C)


def precision_recall(real, fake, k: int = 3) -> dict[str, float]:
    """Improved precision and recall (Kynkaanniemi et al. 2019) with k-NN balls as the manifolds.

    precision: fraction of fake samples inside some real sample's k-NN ball; recall: fraction of
    real samples inside some fake sample's k-NN ball.
    """
    r, f = as_1d_columns(real, fake)
    precision = _within(f, r, knn_radii(r, k)).any(1).mean()
    recall = _within(r, f, knn_radii(f, k)).any(1).mean()
    return {"precision": float(precision), "recall": float(recall)}


def density_coverage(real, fake, k: int = 5) -> dict[str, float]:
    """Density and coverage (Naeem et al. 2020) with real k-NN balls.

    density = (1 / kM) sum_j #{real balls containing fake j}; coverage = fraction of real balls that
    contain at least one fake sample. Identical sets without ties give density (k+1)/k, coverage 1.
    """
    r, f = as_1d_columns(real, fake)
    inside = _within(f, r, knn_radii(r, k))  # (M fake, N real)
    return {"density": float(inside.sum() / (k * len(f))), "coverage": float(inside.any(0).mean())}


def class_stats(pred_logits, labels=None, data_hist=None, threshold: float = 0.01, sure: float = 0.9) -> dict:
    """Class statistics of generated images from a classifier's logits (N, C).

    accuracy: fraction predicted as the requested `labels` (conditional generators; None otherwise).
    kl: KL(p_gen || p_data) of the predicted-class histogram to `data_hist` (uniform when None), 0 log 0 = 0.
    classes: number of classes that at least `threshold` (1%) of the samples are predicted as.
    confident: fraction of samples whose top class has softmax probability >= `sure` (clearly one digit).
    """
    logits = as_2d(pred_logits, "pred_logits")
    n, c = logits.shape
    pred = logits.argmax(1)
    hist = np.bincount(pred, minlength=c) / n
    q = np.full(c, 1.0 / c) if data_hist is None else as_2d(data_hist, "data_hist").ravel()
    if q.shape != (c,):
        raise ValueError(f"data_hist: expected {c} class frequencies, got {q.size}")
    q = q / q.sum()
    nz = hist > 0
    with np.errstate(divide="ignore"):
        kl = float(np.sum(hist[nz] * np.log(hist[nz] / q[nz])))
    accuracy = None
    if labels is not None:
        y = as_2d(labels, "labels").ravel()
        if len(y) != n:
            raise ValueError(f"labels: expected {n} labels, got {len(y)}")
        accuracy = float((pred == y).mean())
    z = logits - logits.max(1, keepdims=True)  # stable softmax: the top class's probability is 1 / sum exp(z)
    confident = float((1.0 / np.exp(z).sum(1) >= sure).mean())
    return {"accuracy": accuracy, "kl": kl, "classes": int((hist >= threshold).sum()), "hist": hist.tolist(),
            "confident": confident}


def conditional_accuracy(pred_logits, labels) -> dict:
    """Per class k, the fraction of the samples requested as k (`labels` (N,)) that a classifier reads as k.

    pred_logits: the classifier's logits (N, C) for the generated samples. Returns dict(per_class (C floats),
    mean (over classes, each class weighted alike), min); every class must have been requested at least once.
    """
    logits = as_2d(pred_logits, "pred_logits")
    n, c = logits.shape
    y = as_2d(labels, "labels").ravel()
    if len(y) != n:
        raise ValueError(f"labels: expected {n} labels, got {len(y)}")
    if np.any((y < 0) | (y >= c) | (y != np.round(y))):
        raise ValueError(f"labels: expected class indices in 0..{c - 1}")
    y = y.astype(np.int64)
    asked = np.bincount(y, minlength=c)  # (C,) samples requested per class
    if asked.min() == 0:
        raise ValueError(f"labels: no sample requested as class {int(asked.argmin())} (of {c})")
    right = np.bincount(y[logits.argmax(1) == y], minlength=c)  # (C,) of those, read as requested
    per_class = right / asked
    return {"per_class": per_class.tolist(), "mean": float(per_class.mean()), "min": float(per_class.min())}
