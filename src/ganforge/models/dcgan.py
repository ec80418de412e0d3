"""DCGAN-style conv generator and D trunk (Radford et al. 2016) for square images of any channel count.

Depth comes from the resolution: the side is halved while it stays even and >= 4, giving a base size
s0 in 4..7 and n up/down-sampling steps (28 -> 7, n=2; 32 -> 4, n=3; 64 -> 4, n=4). Width comes from
`cfg.channels`: the layer at size s0 * 2^i has max(channels // 2^i, 1) channels, so the widest layer
(at s0) has `channels`. `cfg.blocks` adds that many 3x3 stride-1 convs at every size (G and D), and
`cfg.fc` hidden linear layers between z and the convs (G) or after them (D), as in InfoGAN's MNIST nets.
"""

from __future__ import annotations

import torch
from torch import nn

from ganforge.config import NetConfig
from ganforge.models.layers import activation, maybe_spectral_norm, norm_1d, norm_2d


def conv_plan(shape: tuple[int, ...], who: str) -> tuple[int, int]:
    """(base size s0, number of stride-2 steps n) for images of `shape` (C, H, W)."""
    if len(shape) != 3 or shape[1] != shape[2]:
        raise ValueError(f"{who} 'dcgan': needs square images (C, H, W), got shape {tuple(shape)}")
    s0, n = shape[1], 0
    while s0 % 2 == 0 and s0 // 2 >= 4:
        s0, n = s0 // 2, n + 1
    if n == 0 or s0 > 7:
        raise ValueError(f"{who} 'dcgan': image side {shape[1]} does not halve to 4..7 (e.g. 28, 32, 64)")
    return s0, n


def widths(channels: int, n: int) -> list[int]:
    """Channels at sizes s0, 2 s0, ..., 2^(n-1) s0."""
    return [max(channels // 2**i, 1) for i in range(n)]


def same_size_convs(cfg: NetConfig, c: int, bias: bool = True, sn: bool = False) -> list[nn.Module]:
    """cfg.blocks x (Conv 3x3 stride 1, norm, activation) at `c` channels: depth that keeps the size."""
    layers: list[nn.Module] = []
    for _ in range(cfg.blocks):
        layers += [maybe_spectral_norm(nn.Conv2d(c, c, 3, 1, 1, bias=bias), sn), norm_2d(cfg.norm, c), activation(cfg)]
    return layers


def linear_stack(cfg: NetConfig, width: int, bias: bool = True) -> tuple[nn.Sequential, int]:
    """cfg.fc hidden linear layers (each + norm + activation) from `width` inputs; returns (stack, out width)."""
    layers: list[nn.Module] = []
    for f in cfg.fc:
        norm = norm_1d(cfg.norm, f) if cfg.norm in ("batch", "layer") else nn.Identity()
        layers += [maybe_spectral_norm(nn.Linear(width, f, bias=bias), cfg.spectral_norm), norm, activation(cfg)]
        width = f
    return nn.Sequential(*layers), width


class DCGANGenerator(nn.Module):
    """z (B, z_dim) -> images (B, C, H, W) in [-1, 1]: Linear to (channels, s0, s0), n ConvTranspose x2.

    Unconditional: `y` is accepted (every G takes `forward(z, y=None)`) and ignored. `tanh` is False only
    for data outside [-1, 1] (conv nets are for images, whose family always asks for the Tanh).
    """

    def __init__(self, cfg: NetConfig, z_dim: int, out_shape: tuple[int, ...], tanh: bool = True):
        super().__init__()
        self.z_dim, self.out_shape = z_dim, tuple(out_shape)
        s0, n = conv_plan(self.out_shape, "model.g.arch")
        w = widths(cfg.channels, n)
        bias = cfg.norm == "none"  # a norm's own shift makes the bias redundant
        self.s0, self.w0 = s0, w[0]
        sn = cfg.spectral_norm  # on every weight layer, as in SAGAN's G (Zhang et al. 2019)
        self.fc, width = linear_stack(cfg, z_dim, bias)  # empty unless cfg.fc (InfoGAN-style MNIST G: [1024])
        self.project = maybe_spectral_norm(nn.Linear(width, w[0] * s0 * s0, bias=bias), sn)
        layers: list[nn.Module] = [norm_2d(cfg.norm, w[0]), activation(cfg), *same_size_convs(cfg, w[0], bias, sn)]
        for i in range(1, n):
            up = maybe_spectral_norm(nn.ConvTranspose2d(w[i - 1], w[i], 4, 2, 1, bias=bias), sn)
            layers += [up, norm_2d(cfg.norm, w[i]), activation(cfg), *same_size_convs(cfg, w[i], bias, sn)]
        last = maybe_spectral_norm(nn.ConvTranspose2d(w[-1], out_shape[0], 4, 2, 1), sn)
        layers += [last, nn.Tanh() if tanh else nn.Identity()]
        self.body = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        h = self.project(self.fc(z)).view(z.shape[0], self.w0, self.s0, self.s0)  # (B, channels, s0, s0)
        return self.body(h)  # (B, C, H, W)


class DCGANTrunk(nn.Sequential):
    """D's conv stack: (x (B, C, H, W), label code (B, k) or None) -> features (B, channels * s0 * s0).

    n Conv 4x4 stride 2 (no norm on the first, as in DCGAN), each followed by the activation (LeakyReLU
    0.2 with D's default config), then cfg.fc linear layers; spectral norm on every conv when
    cfg.spectral_norm. A label code enters as k constant channels, so the first conv reads C + k channels.
    """

    def __init__(self, cfg: NetConfig, in_shape: tuple[int, ...], label_width: int = 0):
        s0, n = conv_plan(tuple(in_shape), "model.d.arch")
        w = widths(cfg.channels, n)[::-1]  # widest last
        layers: list[nn.Module] = []
        c_in = in_shape[0] + label_width
        for i, c in enumerate(w):
            layers += [maybe_spectral_norm(nn.Conv2d(c_in, c, 4, 2, 1), cfg.spectral_norm),
                       norm_2d(cfg.norm if i > 0 else "none", c), activation(cfg),
                       *same_size_convs(cfg, c, sn=cfg.spectral_norm)]
            c_in = c
        layers.append(nn.Flatten())  # (B, channels * s0 * s0)
        fc, width = linear_stack(cfg, w[-1] * s0 * s0, bias=cfg.norm == "none")
        super().__init__(*layers, *fc)
        self.width, self.label_width = width, label_width

    def forward(self, x: torch.Tensor, code: torch.Tensor | None = None) -> torch.Tensor:
        if code is not None:
            maps = code[:, :, None, None].expand(-1, -1, *x.shape[2:])  # (B, k, H, W)
            x = torch.cat([x, maps.to(x.dtype)], 1)  # (B, C + k, H, W)
        return super().forward(x)
