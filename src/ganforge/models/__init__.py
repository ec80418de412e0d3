"""Networks, built from the config by plain registry lookup."""

from __future__ import annotations

from torch import nn

from ganforge.config import ModelConfig
from ganforge.models.mlp import MLPDiscriminator, MLPGenerator


def build_generator(cfg: ModelConfig, data_shape: tuple[int, ...], images: bool) -> nn.Module:
    """G for data of `data_shape`; `images` selects the Tanh output that maps into [-1, 1]."""
    if cfg.g.arch == "mlp":
        return MLPGenerator(cfg.g, cfg.z_dim, data_shape, tanh=images)
    raise NotImplementedError(f"model.g.arch '{cfg.g.arch}' is not available yet")


def build_discriminator(cfg: ModelConfig, data_shape: tuple[int, ...]) -> nn.Module:
    if cfg.d.arch == "mlp":
        return MLPDiscriminator(cfg.d, data_shape)
    raise NotImplementedError(f"model.d.arch '{cfg.d.arch}' is not available yet")


__all__ = ["MLPDiscriminator", "MLPGenerator", "build_discriminator", "build_generator"]
