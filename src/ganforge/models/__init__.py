"""Networks, built from the config by plain registry lookup: `ARCHS[arch]` names how a family builds G and D.

The interface every network follows (the training loop, the penalties and DDP rely on nothing else):
  G: forward(z (B, z_dim), y (B,) or None) -> samples (B, *shape); unconditional G ignore y
  D: forward(x (B, *shape), y (B,) or None) -> (logits (B,), aux (B, K) or None); aux: AC-GAN's class logits
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import NamedTuple

from torch import nn

from ganforge.config import ModelConfig, NetConfig
from ganforge.models.conditional import G_CODE, ConditionalGenerator, check_mode, code_width
from ganforge.models.dcgan import DCGANGenerator, DCGANTrunk
from ganforge.models.discriminator import Discriminator, Trunk
from ganforge.models.latent import MixtureLatent, MixtureLatentGenerator
from ganforge.models.layers import init_weights, packed_shape
from ganforge.models.mlp import MLPGenerator, MLPTrunk


class Arch(NamedTuple):
    """One network family: its generator, and the feature trunk its Discriminator puts the heads on."""

    generator: Callable[[NetConfig, int, tuple[int, ...], bool], nn.Module]  # (cfg, z width, shape, tanh) -> G
    trunk: Trunk  # (cfg, in_shape, label width) -> (x, code) -> features (B, .width)


ARCHS: dict[str, Arch] = {
    "mlp": Arch(MLPGenerator, MLPTrunk),
    "dcgan": Arch(DCGANGenerator, DCGANTrunk),
}
# networks a data family builds itself from what it learned of the data (data/tables_family.py: tabular.py's
# CTGAN nets; data/text_family.py: text.py's residual conv nets and its LSTM G)
FAMILY_ARCHS = ("ctgan", "textcnn", "textrnn")
ARCH_NAMES = (*ARCHS, *FAMILY_ARCHS)  # every model.{g,d}.arch


def arch(name: str, who: str) -> Arch:
    """The registry entry `name`; a one-line ValueError naming the config field `who` for an unknown one."""
    if name not in ARCHS:
        raise ValueError(f"{who}: '{name}' is not one of {', '.join(ARCHS)}")
    return ARCHS[name]


def check_interface(module: nn.Module, who: str) -> None:
    """Raise a one-line TypeError when `module.forward` cannot be called as (input, y), as every G and D is."""
    try:
        inspect.signature(module.forward).bind(None, None)
    except TypeError:
        sig, x = inspect.signature(module.forward), "z" if who == "G" else "x"
        out = "samples" if who == "G" else "(logits, aux or None)"
        raise TypeError(f"{who}: {type(module).__name__}.forward{sig} must take ({x}, y=None) and return {out}, "
                        f"the interface of every ganforge {who} (see ganforge.models)") from None


def build_generator(cfg: ModelConfig, data_shape: tuple[int, ...], images: bool,
                    num_classes: int = 0) -> nn.Module:
    """G for data of `data_shape`; `images` selects the Tanh output that maps into [-1, 1]."""
    check_mode(cfg.conditional, num_classes)
    width = code_width(G_CODE[cfg.conditional], num_classes)  # the label code joined to z
    G = arch(cfg.g.arch, "model.g.arch").generator(cfg.g, cfg.z_dim + width, tuple(data_shape), images)
    if cfg.conditional != "none":
        G = ConditionalGenerator(G, cfg.conditional, num_classes)
    init_weights(G, cfg.g.init)
    if cfg.latent_components:
        return MixtureLatentGenerator(G, MixtureLatent(cfg.latent_components, cfg.z_dim, cfg.latent_std))
    return G


def build_discriminator(cfg: ModelConfig, data_shape: tuple[int, ...], num_classes: int = 0) -> nn.Module:
    """D for data of `data_shape` (packed by model.pack); labels, minibatch layer and heads as configured."""
    trunk = arch(cfg.d.arch, "model.d.arch").trunk
    D = Discriminator(trunk, cfg.d, packed_shape(data_shape, cfg.pack), num_classes, cfg.conditional)
    return init_weights(D, cfg.d.init)


__all__ = ["ARCHS", "ARCH_NAMES", "FAMILY_ARCHS", "Arch", "ConditionalGenerator", "DCGANGenerator", "DCGANTrunk",
           "Discriminator", "MLPGenerator",
           "MLPTrunk", "MixtureLatent", "MixtureLatentGenerator", "build_discriminator", "build_generator",
           "check_interface"]
