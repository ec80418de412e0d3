"""Datasets by name: every loader returns one in-memory `Dataset`."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ganforge.data import mnist as _mnist
from ganforge.data import toy
from ganforge.data.base import Dataset, IndexSampler
from ganforge.data.mnist import DataUnavailable

# name -> function(DataConfig, seed) -> Dataset
DATASETS: dict[str, Callable] = {
    "gaussian-1d": lambda c, seed: toy.gaussian_1d(c.n or toy.DEFAULT_N, c.mean, c.std, seed),
    "ring-8": lambda c, seed: toy.ring_8(c.n or toy.DEFAULT_N, c.mode_std or 0.02, seed=seed),
    "grid-25": lambda c, seed: toy.grid_25(c.n or toy.DEFAULT_N, c.mode_std or 0.05, seed=seed),
    "spirals": lambda c, seed: toy.spirals(c.n or toy.DEFAULT_N, seed=seed),
    "mnist": lambda c, seed: _mnist.mnist(c.root),
    "mnist-5k": lambda c, seed: _mnist.mnist_5k(),
}


def load_dataset(cfg, seed: int = 0) -> Dataset:
    """Build the dataset named by `cfg.name` (a DataConfig); `limit` keeps a fixed random subset."""
    ds = DATASETS[cfg.name](cfg, seed)
    if 0 < cfg.limit < len(ds):  # random, not the first N: mnist-5k is sorted by label
        keep = torch.randperm(len(ds), generator=torch.Generator().manual_seed(0))[: cfg.limit]
        ds.x = ds.x[keep]
        ds.y = ds.y[keep] if ds.y is not None else None
    return ds


__all__ = ["DATASETS", "Dataset", "DataUnavailable", "IndexSampler", "load_dataset"]
