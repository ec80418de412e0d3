"""Matplotlib pictures of low-dimensional samples: 1D histograms and 2D scatter plots."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: never open a window
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def save_histogram(values: np.ndarray, path: str | Path, mean: float | None = None, std: float | None = None,
                   title: str = "") -> Path:
    """Histogram of generated 1D values against the target N(mean, std^2) density and mean."""
    values = np.asarray(values, dtype=np.float64).ravel()
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    ax.hist(values, bins=100, density=True, alpha=0.6, color="tab:blue", label=f"generated (n={len(values)})")
    if mean is not None and std is not None:
        xs = np.linspace(mean - 4 * std, mean + 4 * std, 400)
        ax.plot(xs, np.exp(-0.5 * ((xs - mean) / std) ** 2) / (std * np.sqrt(2 * np.pi)), "k-",
                label=f"target N({mean:g}, {std:g}²)")
        ax.axvline(mean, color="k", ls="--", lw=1, label="target mean")
    ax.axvline(values.mean(), color="tab:red", ls="--", lw=1, label=f"generated mean {values.mean():.3f}")
    ax.set_title(title)
    ax.legend(fontsize=8)
    return _save(fig, path)


def save_scatter(points: np.ndarray, path: str | Path, real: np.ndarray | None = None,
                 centres: np.ndarray | None = None, title: str = "") -> Path:
    """Scatter plot of generated 2D points over real points (and known mode centres)."""
    points = np.asarray(points)
    fig, ax = plt.subplots(figsize=(5, 5), dpi=100)
    if real is not None:
        ax.scatter(real[:, 0], real[:, 1], s=2, c="tab:gray", alpha=0.3, label="real")
    ax.scatter(points[:, 0], points[:, 1], s=2, c="tab:blue", alpha=0.6, label="generated")
    if centres is not None:
        ax.scatter(centres[:, 0], centres[:, 1], s=30, marker="x", c="k", label="modes")
    ax.set_aspect("equal")
    ax.set_title(title)
    ax.legend(fontsize=8, loc="upper right")
    return _save(fig, path)


def _save(fig, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
