"""Adversarial losses: pure functions of discriminator logits -> scalar, and a registry by name.

Each entry pairs D's loss(real, fake) with G's loss(fake, real); `real`/`fake` are D's raw outputs
(logits, shape (B,)). Probability-based losses use softplus / BCE-with-logits, never log(sigmoid).
`smooth` is one-sided label smoothing: D's target for real data becomes 1 - smooth.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.nn.functional as F

Tensor = torch.Tensor


def bce_d(real: Tensor, fake: Tensor, smooth: float = 0.0) -> Tensor:
    """Goodfellow et al. 2014: BCE(D(x), 1 - smooth) + BCE(D(G(z)), 0)."""
    return F.binary_cross_entropy_with_logits(real, torch.full_like(real, 1.0 - smooth)) + F.softplus(fake).mean()


def nonsaturating_g(fake: Tensor, real: Tensor | None = None) -> Tensor:
    """Goodfellow et al. 2014, non-saturating: BCE(D(G(z)), 1) = softplus(-D(G(z)))."""
    return F.softplus(-fake).mean()


def minimax_g(fake: Tensor, real: Tensor | None = None) -> Tensor:
    """Goodfellow et al. 2014, the original minimax form: -BCE(D(G(z)), 0) = -softplus(D(G(z)))."""
    return -F.softplus(fake).mean()


def lsgan_d(real: Tensor, fake: Tensor, smooth: float = 0.0, a: float = 0.0, b: float = 1.0) -> Tensor:
    """Mao et al. 2017 (LSGAN): 1/2 (D(x) - b)^2 + 1/2 (D(G(z)) - a)^2."""
    return 0.5 * ((real - (b - smooth)) ** 2).mean() + 0.5 * ((fake - a) ** 2).mean()


def lsgan_g(fake: Tensor, real: Tensor | None = None, c: float = 1.0) -> Tensor:
    """Mao et al. 2017 (LSGAN): 1/2 (D(G(z)) - c)^2."""
    return 0.5 * ((fake - c) ** 2).mean()


def hinge_d(real: Tensor, fake: Tensor, smooth: float = 0.0) -> Tensor:
    """Lim & Ye 2017 / Miyato et al. 2018: relu(1 - D(x)) + relu(1 + D(G(z)))."""
    return F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()


def wgan_d(real: Tensor, fake: Tensor, smooth: float = 0.0) -> Tensor:
    """Arjovsky et al. 2017: critic loss D(G(z)) - D(x) (pair with a gradient penalty)."""
    return fake.mean() - real.mean()


def wgan_g(fake: Tensor, real: Tensor | None = None) -> Tensor:
    """Arjovsky et al. 2017: -D(G(z)); also the generator loss of the hinge GAN."""
    return -fake.mean()


def ragan_d(real: Tensor, fake: Tensor, smooth: float = 0.0) -> Tensor:
    """Jolicoeur-Martineau 2018 (RaGAN): BCE(D(x) - E D(G(z)), 1) + BCE(D(G(z)) - E D(x), 0)."""
    return bce_d(real - fake.mean(), fake - real.mean(), smooth)


def ragan_g(fake: Tensor, real: Tensor) -> Tensor:
    """Jolicoeur-Martineau 2018 (RaGAN): BCE(D(G(z)) - E D(x), 1) + BCE(D(x) - E D(G(z)), 0)."""
    return F.softplus(-(fake - real.mean())).mean() + F.softplus(real - fake.mean()).mean()


class GANLoss(NamedTuple):
    d: Callable[..., Tensor]  # (real_logits, fake_logits, smooth) -> scalar
    g: Callable[..., Tensor]  # (fake_logits, real_logits) -> scalar
    needs_real_for_g: bool  # G's loss also looks at D(x) (relativistic losses)
    probability: bool  # sigmoid(logit) is a probability of 'real' (for D(x) / D(G(z)) logging)


LOSSES: dict[str, GANLoss] = {
    "bce": GANLoss(bce_d, nonsaturating_g, False, True),
    "minimax": GANLoss(bce_d, minimax_g, False, True),
    "lsgan": GANLoss(lsgan_d, lsgan_g, False, False),
    "hinge": GANLoss(hinge_d, wgan_g, False, False),
    "wgan": GANLoss(wgan_d, wgan_g, False, False),
    "ragan": GANLoss(ragan_d, ragan_g, True, True),
}


def make_loss(cfg) -> GANLoss:
    """The registry entry named by a LossConfig, with its parameters (LSGAN's targets a, b, c) bound."""
    loss = LOSSES[cfg.name]
    if cfg.name == "lsgan":
        return loss._replace(d=functools.partial(lsgan_d, a=cfg.lsgan_a, b=cfg.lsgan_b),
                             g=functools.partial(lsgan_g, c=cfg.lsgan_c))
    return loss
