"""Image grids written with numpy and Pillow (no torchvision)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image


def make_grid(images: torch.Tensor, nrow: int = 0, padding: int = 2, pad_value: float = 1.0) -> np.ndarray:
    """Tile images (B, C, H, W) in [-1, 1] into one uint8 array (rows*H', cols*W', C).

    nrow is the number of images per row (0 = a square-ish grid); padding is in pixels,
    filled with `pad_value` (in [-1, 1]; 1 = white).
    """
    if images.dim() != 4:
        raise ValueError(f"make_grid expects (B, C, H, W) images, got shape {tuple(images.shape)}")
    b, c, h, w = images.shape
    ncol = nrow or math.ceil(math.sqrt(b))
    nrows = math.ceil(b / ncol)
    x = images.detach().float().cpu().clamp(-1, 1)
    grid = torch.full((c, nrows * (h + padding) + padding, ncol * (w + padding) + padding), pad_value)
    for i in range(b):
        r, col = divmod(i, ncol)
        top, left = padding + r * (h + padding), padding + col * (w + padding)
        grid[:, top : top + h, left : left + w] = x[i]
    pixels = ((grid + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)  # (C, H', W')
    return pixels.permute(1, 2, 0).numpy()  # (H', W', C)


def save_grid(images: torch.Tensor, path: str | Path, nrow: int = 0, scale: int = 1) -> Path:
    """Write images (B, C, H, W) in [-1, 1] as one PNG grid; `scale` enlarges each pixel."""
    arr = make_grid(images, nrow)
    img = Image.fromarray(arr[:, :, 0] if arr.shape[2] == 1 else arr)
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)
    return path
