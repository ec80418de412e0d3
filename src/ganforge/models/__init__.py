"""Networks, built from the config by plain registry lookup."""

from __future__ import annotations

from torch import nn

from ganforge.config import ModelConfig
from ganforge.models.conditional import ConditionalDiscriminator, ConditionalGenerator
from ganforge.models.dcgan import DCGANDiscriminator, DCGANGenerator
from ganforge.models.latent import MixtureLatent, MixtureLatentGenerator
from ganforge.models.layers import init_weights, packed_shape
from ganforge.models.mlp import MLPDiscriminator, MLPGenerator


def build_generator(cfg: ModelConfig, data_shape: tuple[int, ...], images: bool,
                    num_classes: int = 0) -> nn.Module:
    """G for data of `data_shape`; `images` selects the Tanh output that maps into [-1, 1]."""
    if cfg.conditional != "none":
        G = ConditionalGenerator(cfg.g, cfg.z_dim, data_shape, images, num_classes, cfg.conditional)
    elif cfg.g.arch == "dcgan":
        G = DCGANGenerator(cfg.g, cfg.z_dim, data_shape)
    else:
        G = MLPGenerator(cfg.g, cfg.z_dim, data_shape, tanh=images)
    init_weights(G, cfg.g.init)
    if cfg.latent_components:
        return MixtureLatentGenerator(G, MixtureLatent(cfg.latent_components, cfg.z_dim, cfg.latent_std))
    return G


def build_discriminator(cfg: ModelConfig, data_shape: tuple[int, ...], num_classes: int = 0) -> nn.Module:
    """D for data of `data_shape` (packed by model.pack); labels, minibatch layers and heads as configured."""
    shape = packed_shape(data_shape, cfg.pack)
    if cfg.conditional != "none" or cfg.d.minibatch != "none":
        D = ConditionalDiscriminator(cfg.d, shape, num_classes, cfg.conditional, cfg.d.minibatch)
    elif cfg.d.arch == "dcgan":
        D = DCGANDiscriminator(cfg.d, shape)
    else:
        D = MLPDiscriminator(cfg.d, shape)
    return init_weights(D, cfg.d.init)


__all__ = ["ConditionalDiscriminator", "ConditionalGenerator", "DCGANDiscriminator", "DCGANGenerator",
           "MLPDiscriminator", "MLPGenerator", "MixtureLatent", "MixtureLatentGenerator",
           "build_discriminator", "build_generator"]
