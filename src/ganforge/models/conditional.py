"""Label conditioning for both families (mlp, dcgan), one mode per run: the label codes and the conditional G.

Modes (model.conditional), and what each network sees:
  none        no labels (G and D ignore `y`)
  concat      Mirza & Osindero 2014: one-hot labels joined to z (G) and to the data (D): to the
              flattened input for an mlp D, as K constant channels for a dcgan D
  embed       as concat, with a learned K x K embedding instead of the one-hot code
  projection  Miyato & Koyama 2018: D(x, y) = out(h) + <embed(y), h>, h = D's features; G as in embed
  acgan       Odena et al. 2017: D gets no labels, and has a class head: its `aux` output (B, K) holds the
              class logits; G as in concat
All networks take labels as int64 (B,). D's side (the heads) is in discriminator.py.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

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


def code_width(kind: str, num_classes: int) -> int:
    """Width of a LabelCode of `kind`: K, or 0 for 'none'."""
    return 0 if kind == "none" else num_classes


class LabelCode(nn.Module):
    """Labels (B,) -> codes (B, width): 'onehot' (fixed), 'embed' (learned, K x K) or 'none' (width 0)."""

    def __init__(self, kind: str, num_classes: int):
        super().__init__()
        self.kind, self.num_classes = kind, num_classes
        self.width = code_width(kind, num_classes)
        self.embed = nn.Embedding(num_classes, num_classes) if kind == "embed" else None

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        if self.embed is not None:
            return self.embed(y)
        return F.one_hot(y, self.num_classes).float()


def require_labels(y: torch.Tensor | None, mode: str) -> None:
    """Raise a one-line ValueError when a labelled mode gets no labels."""
    if y is None:
        raise ValueError(f"labels y are required when model.conditional is '{mode}'")


# --------------------------------------------------------------------------------------------------
# Generator


class ConditionalGenerator(nn.Module):
    """(z (B, z_dim), y (B,)) -> samples (B, *out_shape): `base` (any G) fed [z, code(y)].

    `base` must take z_dim + code_width(G_CODE[mode], num_classes) inputs (build_generator makes it so).
    """

    def __init__(self, base: nn.Module, mode: str, num_classes: int):
        super().__init__()
        check_mode(mode, num_classes)
        self.mode, self.num_classes = mode, num_classes
        self.code = LabelCode(G_CODE[mode], num_classes)  # before base: the parameter order checkpoints keep
        self.base = base

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if self.code.width == 0:
            return self.base(z)
        require_labels(y, self.mode)
        return self.base(torch.cat([z, self.code(y)], 1))  # (B, z_dim + K) in
