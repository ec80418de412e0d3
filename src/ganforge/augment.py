"""Input tricks for D: DiffAugment (Zhao et al. 2020) and instance noise with a linear decay.

DiffAugment must be applied to BOTH real and generated images, in the D step and in the G step, each
call drawing its own random parameters; every operation is differentiable w.r.t. the images, so G
learns through it. The operations follow the authors' reference code (data-efficient-gans).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

Tensor = torch.Tensor


def _per_sample(x: Tensor, g: torch.Generator | None) -> Tensor:
    """U[0, 1) of shape (B, 1, 1, 1), one draw per image."""
    return torch.rand(x.shape[0], 1, 1, 1, dtype=x.dtype, device=x.device, generator=g)


def brightness(x: Tensor, g: torch.Generator | None = None) -> Tensor:
    """Add a per-image offset in [-0.5, 0.5)."""
    return x + (_per_sample(x, g) - 0.5)


def saturation(x: Tensor, g: torch.Generator | None = None) -> Tensor:
    """Scale each pixel's deviation from its channel mean by a factor in [0, 2) (a no-op on 1 channel)."""
    mean = x.mean(1, keepdim=True)
    return (x - mean) * (_per_sample(x, g) * 2) + mean


def contrast(x: Tensor, g: torch.Generator | None = None) -> Tensor:
    """Scale the deviation from the image mean by a factor in [0.5, 1.5)."""
    mean = x.mean((1, 2, 3), keepdim=True)
    return (x - mean) * (_per_sample(x, g) + 0.5) + mean


def translation(x: Tensor, g: torch.Generator | None = None, ratio: float = 0.125) -> Tensor:
    """Shift each image by up to ratio * size pixels in each direction, filling with zeros."""
    b, _, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dy = torch.randint(-sh, sh + 1, (b, 1, 1), device=x.device, generator=g)
    dx = torch.randint(-sw, sw + 1, (b, 1, 1), device=x.device, generator=g)
    # output pixel (i, j) reads input (i + dy, j + dx); the 1-pixel zero border serves every outside read
    rows = (torch.arange(h, device=x.device).view(1, h, 1) + dy + 1).clamp(0, h + 1)  # (B, H, 1)
    cols = (torch.arange(w, device=x.device).view(1, 1, w) + dx + 1).clamp(0, w + 1)  # (B, 1, W)
    padded = F.pad(x, (1, 1, 1, 1))  # (B, C, H + 2, W + 2)
    batch = torch.arange(b, device=x.device).view(b, 1, 1)
    return padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2)  # (B, H, W, C) -> (B, C, H, W)


def cutout(x: Tensor, g: torch.Generator | None = None, ratio: float = 0.5) -> Tensor:
    """Zero one square of side ratio * size per image, centred anywhere (clipped at the border)."""
    b, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    cy = torch.randint(0, h + (1 - ch % 2), (b, 1, 1), device=x.device, generator=g)
    cx = torch.randint(0, w + (1 - cw % 2), (b, 1, 1), device=x.device, generator=g)
    rows = torch.arange(h, device=x.device).view(1, h, 1) - (cy - ch // 2)  # (B, H, 1): row within the square
    cols = torch.arange(w, device=x.device).view(1, 1, w) - (cx - cw // 2)  # (B, 1, W)
    inside = (rows >= 0) & (rows < ch) & (cols >= 0) & (cols < cw)  # (B, H, W)
    return x * (~inside).unsqueeze(1).to(x.dtype)


POLICIES: dict[str, list[Callable[[Tensor, torch.Generator | None], Tensor]]] = {
    "color": [brightness, saturation, contrast],
    "translation": [translation],
    "cutout": [cutout],
}


def parse_policy(policy: str) -> list[str]:
    """'color, translation' -> ['color', 'translation']; raises ValueError naming train.augment on a typo."""
    names = [p.strip() for p in policy.split(",") if p.strip()]
    for name in names:
        if name not in POLICIES:
            valid = ", ".join(POLICIES)
            raise ValueError(f"train.augment: unknown DiffAugment policy '{name}' (valid: {valid})")
    return names


def diff_augment(x: Tensor, policy: str = "color,translation,cutout",
                 generator: torch.Generator | None = None) -> Tensor:
    """Zhao et al. 2020 (DiffAugment): random differentiable transforms of images (B, C, H, W).

    Draws come from `generator` (the run's augment stream) or, when None, torch's global stream.
    """
    names = parse_policy(policy)
    if names and x.dim() != 4:
        raise ValueError(f"train.augment: DiffAugment needs images (B, C, H, W), got shape {tuple(x.shape)}")
    for name in names:
        for op in POLICIES[name]:
            x = op(x, generator)
    return x.contiguous()


def instance_noise(x: Tensor, std: float, generator: torch.Generator | None = None) -> Tensor:
    """Sønderby et al. 2017 / Arjovsky & Bottou 2017: x + N(0, std^2) noise (x itself when std is 0)."""
    if std <= 0:
        return x
    return x + std * torch.randn(x.shape, dtype=x.dtype, device=x.device, generator=generator)


def noise_std(step: int, start_std: float, decay_steps: int) -> float:
    """Instance-noise std decayed linearly from start_std at step 0 to 0 at decay_steps (constant if 0)."""
    if decay_steps <= 0:
        return start_std
    return start_std * max(0.0, 1.0 - step / decay_steps)
