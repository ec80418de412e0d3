"""Multilayer-perceptron generator and discriminator (the reference programs' networks)."""

from __future__ import annotations

import math

import torch
from torch import nn

from ganforge.config import ConfigError, NetConfig
from ganforge.models.layers import activation, maybe_spectral_norm, norm_1d


def mlp_stack(cfg: NetConfig, in_dim: int) -> tuple[nn.Sequential, int]:
    """Hidden layers: Linear -> norm -> activation -> dropout, for each width in cfg.hidden ([] = none)."""
    if any(h < 1 for h in cfg.hidden):
        raise ConfigError(f"hidden: every width must be positive, got {cfg.hidden}")
    if not 0 <= cfg.dropout < 1:
        raise ConfigError(f"dropout: must be in [0, 1), got {cfg.dropout}")
    layers: list[nn.Module] = []
    width = in_dim
    for h in cfg.hidden:
        layers.append(maybe_spectral_norm(nn.Linear(width, h), cfg.spectral_norm))
        layers.append(norm_1d(cfg.norm, h))
        layers.append(activation(cfg))
        if cfg.dropout > 0:
            layers.append(nn.Dropout(cfg.dropout))
        width = h
    return nn.Sequential(*layers), width


class MLPGenerator(nn.Module):
    """z (B, z_dim) -> samples (B, *out_shape); Tanh output for images, linear for toy data."""

    def __init__(self, cfg: NetConfig, z_dim: int, out_shape: tuple[int, ...], tanh: bool):
        super().__init__()
        self.z_dim, self.out_shape = z_dim, tuple(out_shape)
        self.body, width = mlp_stack(cfg, z_dim)
        self.out = nn.Linear(width, math.prod(out_shape))
        self.tanh = tanh

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.out(self.body(z))  # (B, prod(out_shape))
        if self.tanh:
            x = torch.tanh(x)
        return x.view(z.shape[0], *self.out_shape)


class MLPDiscriminator(nn.Module):
    """samples (B, *in_shape) -> logits (B,); sigmoid(logit) is the probability of 'real'."""

    def __init__(self, cfg: NetConfig, in_shape: tuple[int, ...]):
        super().__init__()
        self.body, width = mlp_stack(cfg, math.prod(in_shape))
        self.out = maybe_spectral_norm(nn.Linear(width, 1), cfg.spectral_norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.body(x.flatten(1))).squeeze(1)  # (B,)
