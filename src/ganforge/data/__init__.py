"""Datasets by name, and the data families they belong to (one module each; a registry line here)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ganforge.data import mnist as _mnist
from ganforge.data import toy
from ganforge.data.base import Dataset, IndexSampler
from ganforge.data.family import Family
from ganforge.data.images_family import IMAGES
from ganforge.data.mnist import DataUnavailable
from ganforge.data.points import POINTS
from ganforge.data.tables_family import TABLES
from ganforge.data.text_family import TEXT

# family name (saved in checkpoints) -> the family
FAMILIES: dict[str, Family] = {f.name: f for f in (POINTS, IMAGES, TABLES, TEXT)}


def _diamonds(c, seed: int, state: dict | None = None) -> Dataset:
    from ganforge.data.tables import load_diamonds
    from ganforge.data.tables_family import load_table_frame

    return load_table_frame(load_diamonds(), "diamonds", c, seed, state)


def _names(c, seed: int, state: dict | None = None) -> Dataset:
    from ganforge.data.text_family import load_names

    return load_names(c, seed, state)


# name -> function(DataConfig, seed[, family_state]) -> Dataset
DATASETS: dict[str, Callable] = {
    "gaussian-1d": lambda c, seed: toy.gaussian_1d(c.n or toy.DEFAULT_N, c.mean, c.std, seed),
    "ring-8": lambda c, seed: toy.ring_8(c.n or toy.DEFAULT_N, c.mode_std or 0.02, seed=seed),
    "grid-25": lambda c, seed: toy.grid_25(c.n or toy.DEFAULT_N, c.mode_std or 0.05, seed=seed),
    "spirals": lambda c, seed: toy.spirals(c.n or toy.DEFAULT_N, seed=seed),
    "mnist": lambda c, seed: _mnist.mnist(c.root),
    "mnist-5k": lambda c, seed: _mnist.mnist_5k(),
    "diamonds": _diamonds,  # ggplot2's 53,940 diamonds, shipped inside the pydataset package
    "names": _names,  # the 88,799 US census surnames, shipped inside the names package
}
NEEDS_STATE = ("diamonds", "names")  # datasets whose family learns something from the data (saved with the run)


def family_from_state(state: dict) -> Family:
    """The family a checkpoint's data belongs to."""
    name = state.get("family", "")
    if name not in FAMILIES:
        from ganforge.checkpoint import CheckpointError

        raise CheckpointError(f"the checkpoint's data family '{name}' is unknown to this ganforge "
                              f"(known: {', '.join(FAMILIES)})")
    return FAMILIES[name]


def load_dataset(cfg, seed: int = 0, state: dict | None = None) -> Dataset:
    """Build the dataset of `cfg` (a DataConfig): the user's `path`, else the built-in `name`.

    `limit` keeps a fixed random subset. `state` is a run's saved `family_state` (a table's transform, a
    vocabulary), reused instead of learned again.
    """
    from ganforge.data.user import load_path

    if cfg.path:
        ds = load_path(cfg, seed, state)
    else:
        ds = DATASETS[cfg.name](cfg, seed, state) if cfg.name in NEEDS_STATE else DATASETS[cfg.name](cfg, seed)
    if 0 < cfg.limit < len(ds):  # random, not the first N: mnist-5k is sorted by label
        keep = torch.randperm(len(ds), generator=torch.Generator().manual_seed(0))[: cfg.limit].sort().values
        ds.y = ds.y[keep] if ds.y is not None else None
        if ds.streamed:
            ds.u8 = ds.u8[keep.numpy()]
        else:
            ds.x = ds.x[keep]
        if ds.source:
            ds.source = ds.source | {"limit": cfg.limit}
    return ds


__all__ = ["DATASETS", "FAMILIES", "IMAGES", "POINTS", "TABLES", "TEXT", "DataUnavailable", "Dataset", "Family",
           "IndexSampler",
           "family_from_state", "load_dataset"]
