"""Toy distributions: 1D Gaussian, the 2D ring of 8 and grid of 25 Gaussians, two spirals."""

from __future__ import annotations

import math

import torch

from ganforge.data.base import Dataset
from ganforge.data.points import POINTS

DEFAULT_N = 100_000


def gaussian_1d(n: int = DEFAULT_N, mean: float = 5.0, std: float = 1.0, seed: int = 0) -> Dataset:
    """N(mean, std^2) samples, shape (n, 1)."""
    g = torch.Generator().manual_seed(seed)
    x = mean + std * torch.randn(n, 1, generator=g)
    return Dataset("gaussian-1d", x, family=POINTS)


def _mixture(name: str, centres: torch.Tensor, std: float, n: int, seed: int) -> Dataset:
    g = torch.Generator().manual_seed(seed)
    which = torch.randint(len(centres), (n,), generator=g)
    x = centres[which] + std * torch.randn(n, 2, generator=g)  # (n, 2)
    return Dataset(name, x, y=which, family=POINTS, num_classes=len(centres), modes=centres, mode_std=std)


def ring_8(n: int = DEFAULT_N, std: float = 0.02, radius: float = 2.0, seed: int = 0) -> Dataset:
    """8 Gaussians evenly spaced on a circle (Unrolled GAN / VEEGAN / PacGAN benchmark)."""
    angles = torch.arange(8, dtype=torch.float64) * (2 * math.pi / 8)
    centres = (radius * torch.stack([angles.cos(), angles.sin()], dim=1)).float()  # (8, 2)
    return _mixture("ring-8", centres, std, n, seed)


def grid_25(n: int = DEFAULT_N, std: float = 0.05, seed: int = 0) -> Dataset:
    """25 Gaussians centred on {-4, -2, 0, 2, 4}^2 (VEEGAN / PacGAN benchmark)."""
    ticks = torch.tensor([-4.0, -2.0, 0.0, 2.0, 4.0])
    centres = torch.cartesian_prod(ticks, ticks)  # (25, 2)
    return _mixture("grid-25", centres, std, n, seed)


def spirals(n: int = DEFAULT_N, noise: float = 0.05, seed: int = 0) -> Dataset:
    """Two interleaved spirals in [-1, 1]^2, labelled by arm."""
    g = torch.Generator().manual_seed(seed)
    t = torch.sqrt(torch.rand(n, generator=g)) * 3 * math.pi  # (n,)
    arm = torch.randint(2, (n,), generator=g)
    sign = 1 - 2 * arm.float()
    x = sign[:, None] * torch.stack([t * t.cos(), t * t.sin()], dim=1) / (3 * math.pi)  # (n, 2)
    x = x + noise * torch.randn(n, 2, generator=g)
    return Dataset("spirals", x, y=arm, family=POINTS, num_classes=2)
