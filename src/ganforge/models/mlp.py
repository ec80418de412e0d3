"""Multilayer-perceptron generator and D trunk (the reference programs' networks)."""

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
    """z (B, z_dim) -> samples (B, *out_shape); Tanh output for images, linear for toy data.

    Unconditional: `y` is accepted (every G takes `forward(z, y=None)`) and ignored; ConditionalGenerator
    feeds labels in.
    """

    def __init__(self, cfg: NetConfig, z_dim: int, out_shape: tuple[int, ...], tanh: bool):
        super().__init__()
        self.z_dim, self.out_shape = z_dim, tuple(out_shape)
        self.body, width = mlp_stack(cfg, z_dim)
        self.out = nn.Linear(width, math.prod(out_shape))
        self.tanh = tanh

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        x = self.out(self.body(z))  # (B, prod(out_shape))
        if self.tanh:
            x = torch.tanh(x)
        return x.view(z.shape[0], *self.out_shape)


class MLPTrunk(nn.Sequential):
    """D's hidden layers for flat data: (x (B, *in_shape), label code (B, k) or None) -> features (B, width).

    The code is joined to the flattened sample, so the first layer has prod(in_shape) + label_width inputs.
    A Sequential of the layers themselves, so a D's weights are named body.0, body.1, ... (the names the
    reference MLP D always had).
    """

    def __init__(self, cfg: NetConfig, in_shape: tuple[int, ...], label_width: int = 0):
        stack, width = mlp_stack(cfg, math.prod(in_shape) + label_width)
        super().__init__(*stack)
        self.width, self.label_width = width, label_width

    def forward(self, x: torch.Tensor, code: torch.Tensor | None = None) -> torch.Tensor:
        x = x.flatten(1)  # (B, prod(in_shape))
        if code is not None:
            x = torch.cat([x, code.to(x.dtype)], 1)  # (B, prod(in_shape) + k)
        return super().forward(x)
