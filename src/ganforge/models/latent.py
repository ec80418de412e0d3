"""A mixture-of-Gaussians latent in front of any G (DeLiGAN, Gurumurthy et al. 2017; GM-GAN, Ben-Yosef &
Weinshall 2018), against the "bridges" a continuous G draws between separated modes.

G maps connected noise continuously, so between two modes it must place some samples on the path from one
to the other; how many depends on how steep G can make the step, and small MLPs trained for minutes leave
5-15% of the samples there (ring-8, grid-25). Noise drawn from K disjoint blobs lets G send each blob to a
mode with nothing in between: z ~ N(0, I) stays G's input (so sampling, checkpoints and fixed noise are
unchanged) and this layer turns it into z' = mu_c + std * z with the component c = floor(K * Phi(z_0))
uniform over 0..K-1. The K means are fixed N(0, I) draws (seed 0), a buffer saved with G.
"""

from __future__ import annotations

import torch
from torch import nn


class MixtureLatent(nn.Module):
    """z (B, z_dim) ~ N(0, I) -> mu_c + std * z (B, z_dim), with c = floor(K * Phi(z_0)) uniform over K."""

    def __init__(self, components: int, z_dim: int, std: float):
        super().__init__()
        self.components, self.std = components, std
        gen = torch.Generator().manual_seed(0)  # the means are part of the architecture, not of the run
        self.register_buffer("means", torch.randn(components, z_dim, generator=gen))  # (K, z_dim)

    def component(self, z: torch.Tensor) -> torch.Tensor:
        """Component index (B,) int64 of each noise vector, from its first coordinate's normal quantile."""
        return (torch.special.ndtr(z[:, 0].float()) * self.components).long().clamp_(0, self.components - 1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.means[self.component(z)].to(z.dtype) + self.std * z  # (B, z_dim)


class MixtureLatentGenerator(nn.Module):
    """Any G behind a MixtureLatent: forward(z, y) = G(latent(z), y)."""

    def __init__(self, G: nn.Module, latent: MixtureLatent):
        super().__init__()
        self.latent, self.G = latent, G

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.G(self.latent(z), y)
