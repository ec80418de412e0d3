"""Label conditioning for G and D of both families (mlp, dcgan), one mode per run.

Modes (model.conditional), and what each network sees:
  none        no labels (ConditionalDiscriminator then only adds the minibatch layer)
  concat      Mirza & Osindero 2014: one-hot labels joined to z (G) and to the data (D): to the
              flattened input for an mlp D, as K constant channels for a dcgan D
  embed       as concat, with a learned K x K embedding instead of the one-hot code
  projection  Miyato & Koyama 2018: D(x, y) = out(h) + <embed(y), h>, h = D's features; G as in embed
  acgan       Odena et al. 2017: D gets no labels, and has a class head: `D.forward_aux(x)` returns
              (adversarial logits (B,), class logits (B, K)); G as in concat
All networks take labels as int64 (B,); `forward(x, y)` returns logits (B,) in every mode.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ganforge.config import NetConfig
from ganforge.models.dcgan import DCGANGenerator, dcgan_trunk
from ganforge.models.layers import maybe_spectral_norm, minibatch_layer
from ganforge.models.mlp import MLPGenerator, mlp_stack

MODES = ("none", "concat", "embed", "projection", "acgan")
G_CODE = {"none": "none", "concat": "onehot", "embed": "embed", "projection": "embed", "acgan": "onehot"}
D_CODE = {"none": "none", "concat": "onehot", "embed": "embed", "projection": "none", "acgan": "none"}


def check_mode(mode: str, num_classes: int) -> None:
    """Raise a one-line ValueError for an unknown mode or a conditional mode on unlabelled data."""
    if mode not in MODES:
        raise ValueError(f"model.conditional: '{mode}' is not one of {', '.join(MODES)}")
    if mode != "none" and num_classes < 2:
        raise ValueError(f"model.conditional: '{mode}' needs labelled data (num_classes >= 2), "
                         f"got num_classes={num_classes}")


def sample_labels(n: int, num_classes: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """Labels for G, uniform over the classes: (n,) int64."""
    return torch.randint(num_classes, (n,), device=device)


def fixed_labels(n: int, num_classes: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """Labels 0, 1, ..., K-1, 0, 1, ... for sample pictures: (n,) int64."""
    return torch.arange(n, device=device) % num_classes


class LabelCode(nn.Module):
    """Labels (B,) -> codes (B, width): 'onehot' (fixed), 'embed' (learned, K x K) or 'none' (width 0)."""

    def __init__(self, kind: str, num_classes: int):
        super().__init__()
        self.kind, self.num_classes = kind, num_classes
        self.width = 0 if kind == "none" else num_classes
        self.embed = nn.Embedding(num_classes, num_classes) if kind == "embed" else None

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        if self.embed is not None:
            return self.embed(y)
        return F.one_hot(y, self.num_classes).float()


def _require(y: torch.Tensor | None, mode: str) -> None:
    if y is None:
        raise ValueError(f"labels y are required when model.conditional is '{mode}'")


# --------------------------------------------------------------------------------------------------
# Generator


def _mlp_g(cfg: NetConfig, z_in: int, out_shape: tuple[int, ...], images: bool) -> nn.Module:
    return MLPGenerator(cfg, z_in, out_shape, tanh=images)


def _dcgan_g(cfg: NetConfig, z_in: int, out_shape: tuple[int, ...], images: bool) -> nn.Module:
    return DCGANGenerator(cfg, z_in, out_shape)


GENERATORS = {"mlp": _mlp_g, "dcgan": _dcgan_g}  # (cfg, input width, out_shape, images) -> G


class ConditionalGenerator(nn.Module):
    """(z (B, z_dim), y (B,)) -> samples (B, *out_shape): the family's G fed [z, code(y)]."""

    def __init__(self, cfg: NetConfig, z_dim: int, out_shape: tuple[int, ...], images: bool, num_classes: int,
                 mode: str):
        super().__init__()
        check_mode(mode, num_classes)
        self.mode, self.z_dim, self.num_classes = mode, z_dim, num_classes
        self.code = LabelCode(G_CODE[mode], num_classes)
        self.base = GENERATORS[cfg.arch](cfg, z_dim + self.code.width, tuple(out_shape), images)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if self.code.width == 0:
            return self.base(z)
        _require(y, self.mode)
        return self.base(torch.cat([z, self.code(y)], 1))  # (B, z_dim + K) in


# --------------------------------------------------------------------------------------------------
# Discriminator


def mlp_trunk(cfg: NetConfig, in_shape: tuple[int, ...]) -> tuple[nn.Sequential, int]:
    """The mlp D's hidden layers: (B, *in_shape) -> features (B, width), and that width."""
    body, width = mlp_stack(cfg, math.prod(in_shape))
    return nn.Sequential(nn.Flatten(), body), width


TRUNKS = {"mlp": mlp_trunk, "dcgan": dcgan_trunk}  # (cfg, in_shape) -> (x -> features (B, F), F)


class ConditionalDiscriminator(nn.Module):
    """(x (B, *in_shape), y (B,)) -> logits (B,): the family's trunk, a minibatch layer, the mode's head."""

    def __init__(self, cfg: NetConfig, in_shape: tuple[int, ...], num_classes: int, mode: str,
                 minibatch: str = "none"):
        super().__init__()
        check_mode(mode, num_classes)
        self.mode = mode
        self.code = LabelCode(D_CODE[mode], num_classes)
        k = self.code.width
        # dcgan: labels as k constant channels; mlp: k extra features after flattening
        self.channels = cfg.arch == "dcgan"
        trunk_in = (in_shape[0] + k, *in_shape[1:]) if self.channels else (math.prod(in_shape) + k,)
        self.body, width = TRUNKS[cfg.arch](cfg, trunk_in)
        self.minibatch, width = minibatch_layer(minibatch, width)
        sn, projection, acgan = cfg.spectral_norm, mode == "projection", mode == "acgan"
        self.out = maybe_spectral_norm(nn.Linear(width, 1), sn)
        self.embed = maybe_spectral_norm(nn.Embedding(num_classes, width), sn) if projection else None
        self.aux = maybe_spectral_norm(nn.Linear(width, num_classes), sn) if acgan else None  # class head

    def features(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """D's last features h (B, F), before the heads."""
        if self.code.width:
            _require(y, self.mode)
            c = self.code(y)  # (B, k)
            if self.channels:
                c = c[:, :, None, None].expand(-1, -1, *x.shape[2:])  # (B, k, H, W)
                x = torch.cat([x, c.to(x.dtype)], 1)  # (B, C + k, H, W)
            else:
                x = torch.cat([x.flatten(1), c.to(x.dtype)], 1)  # (B, prod(s) + k)
        return self.minibatch(self.body(x))

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        h = self.features(x, y)
        logits = self.out(h).squeeze(1)  # (B,)
        if self.embed is not None:
            _require(y, self.mode)
            logits = logits + (self.embed(y) * h).sum(1)  # projection: + <embed(y), h>
        return logits

    def forward_aux(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """AC-GAN: (adversarial logits (B,), class logits (B, K)) from one pass of the trunk."""
        if self.aux is None:
            raise ValueError(f"forward_aux needs model.conditional = 'acgan', not '{self.mode}'")
        h = self.features(x)
        return self.out(h).squeeze(1), self.aux(h)
