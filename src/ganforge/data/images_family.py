"""The images family: float NCHW in [-1, 1], any channel count: digits, and the user's own folders.

Pictured as a grid of the fixed noise (one row per class for conditional runs); measured with image
features (the shipped digit classifier for 28x28 gray digits, Inception when installed) and SWD,
which needs no network; written back as PNG files, a PNG grid or raw `.npy`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from ganforge.data.family import Family, _bad_suffix


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """Images (N, C, H, W) in [-1, 1] -> uint8 (N, H, W, C), the inverse of x / 127.5 - 1."""
    return ((x.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def save_pngs(x: torch.Tensor, folder: Path, names: list[str]) -> list[Path]:
    """One PNG per image (N, C, H, W) in [-1, 1], named names[i] + '.png' inside `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for arr, name in zip(to_uint8(x), names, strict=True):  # (H, W, C) each
        img = Image.fromarray(arr[:, :, 0] if arr.shape[2] == 1 else arr)
        paths.append(folder / f"{name}.png")
        img.save(paths[-1])
    return paths


class Images(Family):
    name = "images"
    tanh = True
    augmentable = True
    arches = ("mlp", "dcgan")
    sample_suffixes = (".png", ".npy", "a folder (one PNG per sample)")

    def picture(self, samples: torch.Tensor, path: Path, data, cfg, title: str, nrow: int = 0) -> Path:
        from ganforge import viz

        n = len(samples)
        nrow = nrow or (math.isqrt(n) if math.isqrt(n) ** 2 == n else 0)
        return viz.save_grid(samples, path, nrow=nrow, scale=2 if samples.shape[-1] <= 64 else 1)

    def default_metrics(self, inp: Any) -> list[str]:
        """fid, kid, pr, dc (+ classes for the digit classifier, + cond_acc when also conditional), then swd
        (sides >= 16); swd alone when no feature extractor can be had (Inception not installed)."""
        from ganforge.metrics import features as F

        swd = ["swd"] if inp.fake.shape[-1] >= 16 else []
        if inp.extractor is None:
            return swd
        digits = isinstance(inp.extractor, F.DigitClassifier)
        conditional = digits and inp.labels is not None and inp.num_classes == F.DIGIT_CLASSES
        return (["fid", "kid", "pr", "dc"] + (["classes"] if digits else []) + (["cond_acc"] if conditional else [])
                + swd)

    def write_samples(self, samples, out: Path, data_cfg=None, labels=None, nrow: int = 0, names=None) -> str:
        from ganforge import viz

        if out.suffix == ".png":
            viz.save_grid(samples, out, nrow=nrow, scale=2 if samples.shape[-1] <= 64 else 1)
            return f"a grid of {len(samples)} samples to {out}"
        if out.suffix == ".npy":
            return super().write_samples(samples, out, data_cfg, labels)
        if out.suffix:
            raise _bad_suffix(self, out)
        names = names or [f"{i:06d}" for i in range(len(samples))]
        save_pngs(samples, out, names)
        return f"{len(samples)} PNG files to {out}/"


IMAGES = Images()
