"""Mode coverage of a known Gaussian mixture (ring-8, grid-25), as in VEEGAN and PacGAN."""

from __future__ import annotations

import numpy as np

from ganforge.metrics._arrays import as_2d, sq_dists


def mode_stats(samples, centres, std: float, threshold: float = 0.01, radius: float = 3.0) -> dict:
    """Modes covered, fraction of high-quality samples, and KL of their mode histogram to uniform.

    Each sample is assigned to its nearest centre; it is high quality when within `radius` * std of
    it. A mode is covered when at least `threshold` (default 1%) of ALL samples are high-quality
    samples at it. kl = KL(p || uniform) = sum_m p_m log(M p_m), where p is the histogram of the
    high-quality samples over the M modes, with 0 log 0 = 0: empty modes add nothing, so samples
    spread evenly over k of M modes give log(M / k). kl is nan when no sample is high quality.
    Returns dict(modes_covered, high_quality, kl, counts) with counts the high-quality samples per mode.
    """
    x, c = as_2d(samples, "samples"), as_2d(centres, "centres")
    if x.shape[1] != c.shape[1]:
        raise ValueError(f"samples have dimension {x.shape[1]}, centres {c.shape[1]}")
    if std <= 0:
        raise ValueError(f"std: must be positive, got {std}")
    d2 = sq_dists(x, c)  # (N, M)
    nearest = d2.argmin(1)
    good = np.sqrt(d2[np.arange(len(x)), nearest]) <= radius * std
    counts = np.bincount(nearest[good], minlength=len(c))  # (M,)
    total = counts.sum()
    if total == 0:
        kl = float("nan")
    else:
        p = counts[counts > 0] / total
        kl = float(np.sum(p * np.log(len(c) * p)))
    return {"modes_covered": int((counts >= threshold * len(x)).sum()), "high_quality": float(good.mean()),
            "kl": kl, "counts": counts.tolist()}
