"""Latent walks: a trained G's samples along a loop through the noise of some seeds, written as a GIF or an MP4.

A walk goes from each seed's noise (noise.seed_noise) to the next along a great circle (`slerp`) and from
the last back to the first, `frames` frames per segment, so the animation loops without a jump. A class
walk holds one z and steps through the classes of a conditional G. Each frame is the image itself for
image runs; for points runs it is the walk's point (moving dot, its whole path drawn faintly) over
2,000 samples of G.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from ganforge import noise
from ganforge.config import ConfigError
from ganforge.sampling import Sampler, generate
from ganforge.viz import animation

PARALLEL = 1e-6  # |sin(angle)| below this: a and b are (anti)parallel and slerp falls back to lerp
BACKGROUND = 2000  # samples drawn behind a points walk


def slerp(a: torch.Tensor, b: torch.Tensor, t: float | torch.Tensor) -> torch.Tensor:
    """Spherical interpolation from a (t = 0) to b (t = 1): sin((1-t)w)/sin(w) a + sin(tw)/sin(w) b, w = angle(a, b).

    a, b (..., D); t a float or a tensor broadcasting against (..., 1), e.g. (T, 1) -> (T, D). Unit vectors
    stay unit vectors; (anti)parallel or zero vectors, where the great circle is not defined, get lerp.
    Computed in float64 (nearly antiparallel pairs cancel), returned in a's dtype.
    """
    a64, b64 = a.double(), b.double()
    t = torch.as_tensor(t, dtype=torch.float64, device=a.device)
    cos = (a64 * b64).sum(-1, keepdim=True) / (a64.norm(dim=-1, keepdim=True) * b64.norm(dim=-1, keepdim=True))
    w = torch.arccos(cos.clamp(-1, 1))  # (..., 1); NaN for a zero vector
    sin = torch.sin(w)
    great_circle = sin.abs() > PARALLEL  # False for NaN too
    sin = torch.where(great_circle, sin, torch.ones_like(sin))
    arc = torch.sin((1 - t) * w) / sin * a64 + torch.sin(t * w) / sin * b64
    line = (1 - t) * a64 + t * b64
    return torch.where(great_circle, arc, line).to(a.dtype)


def latent_walk(z_points: torch.Tensor, frames: int) -> torch.Tensor:
    """A closed slerp loop through z_points (K, D), K >= 2: (K * frames, D), segment i's first frame is z_points[i]."""
    if z_points.dim() != 2 or len(z_points) < 2:
        raise ValueError(f"latent_walk needs at least 2 points (K, D), got shape {tuple(z_points.shape)}")
    if frames < 1:
        raise ValueError(f"latent_walk: frames must be at least 1, got {frames}")
    t = torch.arange(frames, dtype=torch.float64)[:, None] / frames  # (F, 1); t = 1 is the next segment's 0
    return torch.cat([slerp(a, b, t) for a, b in zip(z_points, z_points.roll(-1, 0), strict=True)])


def seed_walk(sampler: Sampler, seeds: list[int], frames: int, label: int | None = None,
              truncation: float | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Noise (len(seeds) * frames, z_dim) looping through the seeds, and labels (all `label`) for conditional G."""
    z_dim = sampler.cfg.model.z_dim
    z = latent_walk(torch.cat([noise.seed_noise(s, z_dim, truncation) for s in seeds]), frames)
    return z, (None if label is None else torch.full((len(z),), label, dtype=torch.long))


def class_walk(sampler: Sampler, seed: int, frames: int,
               truncation: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One seed's noise held while the class steps 0, 1, ..., K-1: z (K * frames, z_dim), labels (K * frames,)."""
    k = sampler.num_classes
    z = noise.seed_noise(seed, sampler.cfg.model.z_dim, truncation).expand(k * frames, -1)  # (K * F, z_dim)
    return z, torch.arange(k).repeat_interleave(frames)


def check_out(out: Path) -> None:
    """--out must be a .gif, or a .mp4 when ffmpeg is found."""
    suffix = out.suffix.lower()
    if suffix not in (".gif", ".mp4"):
        raise ConfigError(f"--out: a walk is written as .gif or .mp4, got '{out.name}'")
    if suffix == ".mp4" and animation.ffmpeg_exe() is None:
        raise ConfigError(f"--out: {animation.NO_FFMPEG} ({out.with_suffix('.gif').name})")


def walk_frames(sampler: Sampler, z: torch.Tensor, y: torch.Tensor | None = None, title: str = "") -> list[Image.Image]:
    """G's samples along the walk z (F, z_dim) (labels y (F,) for conditional G), one picture each."""
    if sampler.family.name not in FRAMES:
        raise ConfigError(f"interpolate: no walk pictures for {sampler.family.name} data "
                          f"(only {' and '.join(FRAMES)})")
    if (y is None) != (sampler.cfg.model.conditional == "none"):
        raise ValueError("labels y are needed exactly when the generator is conditional")
    device = next(sampler.G.parameters()).device
    samples = generate(sampler.G, z.to(device), None if y is None else y.to(device)).cpu()  # (F, *data_shape)
    return FRAMES[sampler.family.name](sampler, samples, y, title)


def write_walk(sampler: Sampler, z: torch.Tensor, y: torch.Tensor | None, out: str | Path, fps: float = 20,
               title: str = "") -> Path:
    """Picture the walk z (F, z_dim) (labels y for conditional G) and write it to `out` (.gif, or .mp4 with ffmpeg)."""
    out = Path(out)
    check_out(out)
    if fps <= 0:
        raise ConfigError(f"--fps must be positive, got {fps}")
    try:
        return animation.write_frames(walk_frames(sampler, z, y, title), out, fps)
    except animation.GifTooSlow as e:
        raise ConfigError(f"--fps: {e}") from None


def _image_frames(sampler: Sampler, samples: torch.Tensor, y, title: str) -> list[Image.Image]:
    """Each sample (C, H, W) as a picture, enlarged (nearest) to about 256 pixels; gray stays gray (exact GIF)."""
    from ganforge.data.images_family import to_uint8

    h, w = samples.shape[-2:]
    scale = max(1, 256 // max(h, w))
    frames = []
    for arr in to_uint8(samples):  # (H, W, C)
        img = Image.fromarray(arr[:, :, 0] if arr.shape[2] == 1 else arr)
        frames.append(img.resize((w * scale, h * scale), Image.NEAREST) if scale > 1 else img)
    return frames


def _point_frames(sampler: Sampler, samples: torch.Tensor, y, title: str) -> list[Image.Image]:
    """The walk's point over 2,000 samples of G: 1D a red line over their histogram, else a red dot on the
    walk's faint path over their scatter (first two coordinates)."""
    one_class = y is not None and bool((y == y[0]).all())  # else every class (sample's default labels)
    labels = torch.full((BACKGROUND,), int(y[0])) if one_class else None
    background = sampler.sample(BACKGROUND, seed=0, y=labels).numpy()  # (2000, D)
    walk = samples.numpy()  # (F, D)
    picture, to_pixels, (top, bottom) = _background(background, walk, title)
    frames = []
    if walk.shape[1] == 1:
        for x in to_pixels(np.c_[walk[:, 0], np.zeros(len(walk))])[:, 0]:
            frame = picture.copy()
            ImageDraw.Draw(frame).line([(x, top), (x, bottom)], fill=(214, 39, 40), width=3)
            frames.append(frame)
        return frames
    path = [tuple(p) for p in to_pixels(walk[:, :2])]
    ImageDraw.Draw(picture).line(path + path[:1], fill=(240, 170, 170), width=1)
    for x, yy in path:
        frame = picture.copy()
        ImageDraw.Draw(frame).ellipse([x - 5, yy - 5, x + 5, yy + 5], fill=(214, 39, 40))
        frames.append(frame)
    return frames


def _background(background: np.ndarray, walk: np.ndarray, title: str) -> tuple[Image.Image, Callable, tuple]:
    """The samples' histogram (1D) or scatter as an RGB picture, data (N, 2) -> pixel (N, 2) coordinates, and the
    plot area's top and bottom rows."""
    from ganforge.viz import plots

    plt = plots.plt
    fig, ax = plt.subplots(figsize=(5, 5), dpi=80)
    if background.shape[1] == 1:
        ax.hist(background[:, 0], bins=100, density=True, color="tab:gray", alpha=0.6)
        ax.set_xlim(*_span(np.r_[background[:, 0], walk[:, 0]]))
    else:
        ax.scatter(background[:, 0], background[:, 1], s=2, c="tab:gray", alpha=0.4)
        ax.set_xlim(*_span(np.r_[background[:, 0], walk[:, 0]]))
        ax.set_ylim(*_span(np.r_[background[:, 1], walk[:, 1]]))
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.canvas.draw()
    picture = Image.fromarray(np.asarray(fig.canvas.buffer_rgba())[:, :, :3].copy())
    transform, height, box = ax.transData, picture.height, ax.get_window_extent()
    plt.close(fig)

    def to_pixels(points: np.ndarray) -> np.ndarray:
        xy = transform.transform(points)  # display coordinates: origin bottom left
        return np.c_[xy[:, 0], height - xy[:, 1]]

    return picture, to_pixels, (height - box.y1, height - box.y0)


def _span(values: np.ndarray) -> tuple[float, float]:
    lo, hi = float(values.min()), float(values.max())
    pad = 0.05 * (hi - lo) or 0.5
    return lo - pad, hi + pad


# family name -> (sampler, samples (F, *shape), labels, title) -> one picture per sample
FRAMES: dict[str, Callable] = {"images": _image_frames, "points": _point_frames}
