"""The discriminator of every architecture: a family's feature trunk, a minibatch layer and the heads.

Every D answers `forward(x, y=None) -> (logits (B,), aux (B, K) or None)`: the adversarial logits, and
the class logits of AC-GAN's class head (None in the other modes). Labels enter as the mode says
(conditional.py): joined to the input as a code (concat, embed), projected onto the features
(projection), or not at all (none, acgan: `y` is ignored). One forward call gives both outputs, so a
DistributedDataParallel wrapper sees every parameter the losses use.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ganforge.config import NetConfig
from ganforge.models.conditional import D_CODE, LabelCode, check_mode, require_labels
from ganforge.models.layers import maybe_spectral_norm, minibatch_layer

# (cfg, in_shape, label width) -> a module (x, code) -> features (B, F) with attribute `width` = F
Trunk = Callable[[NetConfig, tuple[int, ...], int], nn.Module]


class Discriminator(nn.Module):
    """(x (B, *in_shape), y (B,) or None) -> (logits (B,), class logits (B, K) or None).

    `trunk` builds the family's feature layers (MLPTrunk, DCGANTrunk); cfg.minibatch adds a minibatch
    layer on the features; `mode` (model.conditional) chooses how labels enter and whether the AC-GAN
    class head exists. Weight names: code.*, body.*, minibatch.*, out.*, embed.* (projection), aux.* (acgan).
    """

    def __init__(self, trunk: Trunk, cfg: NetConfig, in_shape: tuple[int, ...], num_classes: int = 0,
                 mode: str = "none"):
        super().__init__()
        check_mode(mode, num_classes)
        self.mode = mode
        self.code = LabelCode(D_CODE[mode], num_classes)
        self.body = trunk(cfg, tuple(in_shape), self.code.width)
        self.minibatch, width = minibatch_layer(cfg.minibatch, self.body.width)
        sn = cfg.spectral_norm
        self.out = maybe_spectral_norm(nn.Linear(width, 1), sn)
        self.embed = maybe_spectral_norm(nn.Embedding(num_classes, width), sn) if mode == "projection" else None
        self.aux = maybe_spectral_norm(nn.Linear(width, num_classes), sn) if mode == "acgan" else None

    def features(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """D's last features h (B, F), before the heads."""
        code = None
        if self.code.width:
            require_labels(y, self.mode)
            code = self.code(y)  # (B, k)
        return self.minibatch(self.body(x, code))

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        h = self.features(x, y)
        logits = self.out(h).squeeze(1)  # (B,)
        if self.embed is not None:
            require_labels(y, self.mode)
            logits = logits + (self.embed(y) * h).sum(1)  # projection: + <embed(y), h>
        return logits, (self.aux(h) if self.aux is not None else None)
