"""Small building blocks shared by the networks."""

from __future__ import annotations

from torch import nn

from ganforge.config import NetConfig


def activation(cfg: NetConfig) -> nn.Module:
    """The hidden activation named in the config."""
    if cfg.activation == "leaky_relu":
        return nn.LeakyReLU(cfg.leaky_slope)
    return {"relu": nn.ReLU, "elu": nn.ELU, "gelu": nn.GELU, "silu": nn.SiLU, "tanh": nn.Tanh}[cfg.activation]()


def norm_1d(kind: str, width: int) -> nn.Module:
    """Normalisation after a linear layer: none, batch or layer."""
    return {"none": nn.Identity, "batch": nn.BatchNorm1d, "layer": nn.LayerNorm}[kind](width) if kind != "none" \
        else nn.Identity()


def maybe_spectral_norm(layer: nn.Module, on: bool) -> nn.Module:
    """Wrap a weight layer in spectral normalisation (Miyato et al. 2018) when `on`."""
    return nn.utils.parametrizations.spectral_norm(layer) if on else layer
