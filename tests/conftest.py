"""Shared fixtures: tiny configs that train in well under a second."""

from __future__ import annotations

import pytest
import torch

from ganforge import config

TINY_1D = [
    "data.name=\"gaussian-1d\"", "data.n=2000", "model.z_dim=4", "model.g.hidden=[16]", "model.d.hidden=[16]",
    "train.batch_size=32", "train.steps=40", "train.log_every=10", "train.sample_every=20",
    "train.ckpt_every=20", "train.progress=\"none\"", "train.hist_samples=500",
]
TINY_MNIST = [
    "data.name=\"mnist-5k\"", "data.limit=300", "model.z_dim=8", "model.g.hidden=[16]", "model.d.hidden=[16]",
    "train.batch_size=20", "train.steps=30", "train.log_every=10", "train.sample_every=15",
    "train.ckpt_every=15", "train.progress=\"none\"", "train.num_samples=16",
]


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)
    yield


@pytest.fixture
def tiny_1d(tmp_path) -> config.Config:
    return config.apply_overrides(config.Config(), TINY_1D + [f"train.out=\"{tmp_path / 'run'}\""])


@pytest.fixture
def tiny_mnist(tmp_path) -> config.Config:
    return config.apply_overrides(config.Config(), TINY_MNIST + [f"train.out=\"{tmp_path / 'run'}\""])
