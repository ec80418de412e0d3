"""Small building blocks shared by the networks."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ganforge.config import ConfigError, NetConfig

# name -> the hidden activation, built from the net's config (model.*.activation)
ACTIVATIONS: dict[str, Callable[[NetConfig], nn.Module]] = {
    "relu": lambda cfg: nn.ReLU(),
    "leaky_relu": lambda cfg: nn.LeakyReLU(cfg.leaky_slope),
    "elu": lambda cfg: nn.ELU(),
    "gelu": lambda cfg: nn.GELU(),
    "silu": lambda cfg: nn.SiLU(),
    "tanh": lambda cfg: nn.Tanh(),
}
# name -> normalisation of `width` features after a linear layer (mlp nets, dcgan's fc layers)
NORMS_1D: dict[str, Callable[[int], nn.Module]] = {
    "none": lambda width: nn.Identity(),
    "batch": nn.BatchNorm1d,
    "layer": nn.LayerNorm,
}
# name -> normalisation of `channels` feature maps after a conv layer (dcgan nets)
NORMS_2D: dict[str, Callable[[int], nn.Module]] = {
    "none": lambda channels: nn.Identity(),
    "batch": nn.BatchNorm2d,
    "instance": lambda channels: nn.InstanceNorm2d(channels, affine=True),
    "layer": lambda channels: nn.GroupNorm(1, channels),  # one group over (C, H, W)
}
INITS = ("default", "dcgan")  # weight initialisations of init_weights (model.*.init)


def activation(cfg: NetConfig) -> nn.Module:
    """The hidden activation named in the config."""
    if cfg.activation not in ACTIVATIONS:
        raise ConfigError(f"activation: {cfg.activation!r} is not one of {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[cfg.activation](cfg)


def norm_1d(kind: str, width: int) -> nn.Module:
    """Normalisation after a linear layer: none, batch or layer."""
    if kind not in NORMS_1D:
        extra = f" ({kind!r} applies to conv layers only)" if kind in NORMS_2D else ""
        raise ConfigError(f"norm: {kind!r} is not one of {', '.join(NORMS_1D)}{extra}")
    return NORMS_1D[kind](width)


def init_weights(module: nn.Module, kind: str) -> nn.Module:
    """Re-initialise `module`'s conv and linear weights as `kind` says; 'default' keeps PyTorch's init.

    dcgan (Radford et al. 2016): weights N(0, 0.02), biases 0, batch-norm gains N(1, 0.02). A spectrally
    normalised layer gets the same draw on its unnormalised weight.
    """
    if kind not in INITS:
        raise ConfigError(f"init: {kind!r} is not one of {', '.join(INITS)}")
    if kind == "default":
        return module
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
            sn = getattr(m, "parametrizations", None)
            weight = sn.weight.original if sn is not None and "weight" in sn else m.weight
            nn.init.normal_(weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)) and m.affine:
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)
    return module


def gumbel_noise(shape: torch.Size, like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Standard Gumbel noise -log(-log U) shaped `shape` like `like`, from `generator` (None: torch's global
    stream): the discrete heads of tables (CTGAN's Gumbel-softmax) and text (straight-through) share it."""
    u = torch.rand(shape, generator=generator, device=like.device, dtype=like.dtype)
    e = (-torch.log(u.clamp_min(1e-10))).clamp_min(1e-10)  # Exponential(1), never 0
    return -torch.log(e)


def maybe_spectral_norm(layer: nn.Module, on: bool) -> nn.Module:
    """Wrap a weight layer in spectral normalisation (Miyato et al. 2018) when `on`."""
    return nn.utils.parametrizations.spectral_norm(layer) if on else layer


def norm_2d(kind: str, channels: int) -> nn.Module:
    """Normalisation after a conv layer: none, batch, instance, or layer (one group over C, H, W)."""
    if kind not in NORMS_2D:
        raise ConfigError(f"norm: {kind!r} is not one of {', '.join(NORMS_2D)}")
    return NORMS_2D[kind](channels)


# --------------------------------------------------------------------------------------------------
# Minibatch layers for D: let it see statistics of the whole batch, which discourages mode collapse.


class MinibatchDiscrimination(nn.Module):
    """Salimans et al. 2016: append o(x_i)_b = sum_{j != i} exp(-||M_ib - M_jb||_1), M = x T, to features.

    (B, in_features) -> (B, in_features + out_features). T has out_features kernels of kernel_dims
    dimensions each. The sum leaves out j = i (the paper's sum includes it, adding the constant 1).
    """

    def __init__(self, in_features: int, out_features: int, kernel_dims: int):
        super().__init__()
        self.out_features, self.kernel_dims = out_features, kernel_dims
        self.T = nn.Parameter(torch.randn(in_features, out_features * kernel_dims) * in_features**-0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = (x @ self.T).view(x.shape[0], self.out_features, self.kernel_dims)  # (B, out, kdim)
        l1 = (m.unsqueeze(0) - m.unsqueeze(1)).abs().sum(3)  # (B, B, out): ||M_ib - M_jb||_1
        o = torch.exp(-l1).sum(1) - 1.0  # (B, out); exp(-0) = 1 is the j = i term
        return torch.cat([x, o], 1)


class MinibatchStdDev(nn.Module):
    """Karras et al. 2018: append the mean std-dev over groups of samples as one extra feature / channel.

    (B, F) -> (B, F + 1), (B, C, H, W) -> (B, C + 1, H, W). Samples i, i + B/G, i + 2B/G, ... form a
    group (G = min(group_size, B), as in StyleGAN); the std is sqrt(var + 1e-8), so identical samples
    give 1e-4, not exactly 0 (the epsilon keeps the gradient finite).
    """

    def __init__(self, group_size: int = 4):
        super().__init__()
        self.group_size = group_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        g = min(self.group_size, b)
        if b % g:
            raise ValueError(f"MinibatchStdDev: batch size {b} is not a multiple of group_size {g}")
        y = x.reshape(g, b // g, *x.shape[1:])  # (G, B/G, *s)
        std = (y.var(0, unbiased=False) + 1e-8).sqrt()  # (B/G, *s)
        s = std.flatten(1).mean(1)  # (B/G,)
        s = s.repeat(g).view(b, 1, *([1] * (x.dim() - 2)))  # (B, 1[, 1, 1]); sample i gets s[i % (B/G)]
        return torch.cat([x, s.expand(b, 1, *x.shape[2:])], 1)


MINIBATCH_KERNELS, MINIBATCH_KERNEL_DIMS = 32, 8  # minibatch discrimination: out_features, kernel_dims

# name -> (features -> (the minibatch layer on (B, features), its output width)) (model.d.minibatch)
MINIBATCH: dict[str, Callable[[int], tuple[nn.Module, int]]] = {
    "none": lambda f: (nn.Identity(), f),
    "discrimination": lambda f: (MinibatchDiscrimination(f, MINIBATCH_KERNELS, MINIBATCH_KERNEL_DIMS),
                                 f + MINIBATCH_KERNELS),
    "stddev": lambda f: (MinibatchStdDev(), f + 1),
}


def minibatch_layer(kind: str, features: int) -> tuple[nn.Module, int]:
    """The minibatch layer `kind` (none, discrimination, stddev) on (B, features), and its output width."""
    if kind not in MINIBATCH:
        raise ConfigError(f"model.d.minibatch: {kind!r} is not one of {', '.join(MINIBATCH)}")
    return MINIBATCH[kind](features)


# --------------------------------------------------------------------------------------------------
# PacGAN (Lin et al. 2018): D judges m samples at once.


def pack(x: torch.Tensor, m: int) -> torch.Tensor:
    """PacGAN: (B, s0, s1, ...) -> (B/m, m*s0, s1, ...), m consecutive samples stacked along dim 1.

    Sample i*m + k fills rows k*s0 .. (k+1)*s0 - 1 of pack i: channels for images, features for flat data.
    """
    if m == 1:
        return x
    if m < 1 or x.shape[0] % m:
        raise ValueError(f"model.pack: the batch ({x.shape[0]}) must be a multiple of pack ({m})")
    return x.reshape(x.shape[0] // m, m * x.shape[1], *x.shape[2:])  # (B/m, m*s0, s1, ...)


def packed_shape(shape: tuple[int, ...], m: int) -> tuple[int, ...]:
    """One D input's shape after `pack(x, m)`: build D with this as in_shape."""
    return (m * shape[0], *shape[1:])
