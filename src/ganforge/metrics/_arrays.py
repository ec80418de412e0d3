"""Input handling shared by the metrics: torch tensors or numpy arrays -> float64 numpy (N, D)."""

from __future__ import annotations

import numpy as np
import torch


def as_2d(x, name: str = "samples") -> np.ndarray:
    """(N, ...) tensor or array -> float64 numpy (N, D), each example flattened."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().double().numpy()
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 0 or x.shape[0] == 0:
        raise ValueError(f"{name}: expected a non-empty (N, ...) array, got shape {x.shape}")
    return x.reshape(x.shape[0], -1)  # (N, D)


def as_1d_columns(a, b) -> tuple[np.ndarray, np.ndarray]:
    """Two sample sets as (N, D) and (M, D) with the same D."""
    a, b = as_2d(a, "a"), as_2d(b, "b")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"a and b have different dimensions: {a.shape[1]} and {b.shape[1]}")
    return a, b


def subsample(x: np.ndarray, max_n: int, rng: np.random.Generator) -> np.ndarray:
    """At most `max_n` rows of x, drawn without replacement (all of x when it is small enough)."""
    if max_n <= 0 or len(x) <= max_n:
        return x
    return x[np.sort(rng.choice(len(x), max_n, replace=False))]


def sq_dists(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances (N, M) between the rows of a (N, D) and b (M, D), clipped at 0."""
    d = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * (a @ b.T)
    return np.maximum(d, 0.0)
