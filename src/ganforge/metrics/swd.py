"""Multi-scale sliced Wasserstein distance on Laplacian-pyramid patches (Karras et al. 2018, ProGAN).

Follows ProGAN's `metrics/sliced_wasserstein.py`: a Laplacian pyramid built with the 5x5 binomial
filter (as cv2.pyrDown/pyrUp, mirror borders) down to `min_res` pixels; at each level `patch` x `patch`
neighbourhoods at random positions, `descriptors_per_image` per image; each descriptor set normalised
by its OWN per-channel mean and std; then `repeats` x `directions` random unit directions, sorted
projections, mean absolute difference, x1e3, per level and averaged over levels. No pretrained network.

Because each set is normalised by its own statistics, a global per-channel brightness or contrast
change of a whole set (x -> a x + b) is invisible to it, as in the reference; shifts that clip at the
[-1, 1] range, blur, noise and missing modes are not.

Differences from the reference, none of which changes the quantity estimated: images of any side >= min_res
(levels halve rounding up; 28x28 has the one level 28 at min_res=16) and any channel count (the reference
takes power-of-two RGB); the random positions are shared by the
two sets (image i of each gets the same ones), so identical sets score exactly 0; all draws come from
one seeded torch.Generator. Like the reference it computes in float32 (a set's descriptors are
N * 128 x C * 49 numbers); the averages are accumulated in float64.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext

import numpy as np
import torch
import torch.nn.functional as F

_BINOMIAL = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0]) / 16  # outer(k, k) is the reference's 5x5 filter / 256
_PIXELS_PER_CHUNK = 1 << 23  # image values per batch through the pyramid, to bound memory


def _blur(x: torch.Tensor) -> torch.Tensor:
    """Separable 5x5 binomial filter with mirror borders (scipy 'mirror' == torch 'reflect'), same size."""
    n, c, h, w = x.shape
    k = _BINOMIAL.to(x)
    y = F.pad(x.reshape(n * c, 1, h, w), (2, 2, 2, 2), mode="reflect")  # (N*C, 1, H+4, W+4)
    y = F.conv2d(F.conv2d(y, k.view(1, 1, 1, 5)), k.view(1, 1, 5, 1))  # (N*C, 1, H, W)
    return y.reshape(n, c, h, w)


def _down(x: torch.Tensor) -> torch.Tensor:
    """cv2.pyrDown: blur, keep even rows and columns -> (N, C, ceil(H/2), ceil(W/2))."""
    return _blur(x)[:, :, ::2, ::2]


def _up(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """cv2.pyrUp to `size`: zeros between the samples, blur with 4x the filter -> (N, C, *size)."""
    z = x.new_zeros(x.shape[:2] + tuple(size))
    z[:, :, ::2, ::2] = x
    return 4 * _blur(z)


def level_sizes(side: int, min_res: int) -> list[int]:
    """Sides of the pyramid levels, finest first: halving (rounding up) while the side stays >= min_res."""
    sizes = [side]
    while (sizes[-1] + 1) // 2 >= min_res:
        sizes.append((sizes[-1] + 1) // 2)
    return sizes


def _pyramid_level(x: torch.Tensor, level: int, levels: int) -> torch.Tensor:
    """Level `level` of a `levels`-level Laplacian pyramid of x: band-pass G_l - up(G_l+1), the last G_l."""
    g = x
    for _ in range(level):
        g = _down(g)
    if level < levels - 1:
        g = g - _up(_down(g), g.shape[2:])
    return g


def _descriptors(x: torch.Tensor, level: int, levels: int, pos: torch.Tensor, patch: int) -> torch.Tensor:
    """Normalised neighbourhoods (N * K, C * patch^2) of one pyramid level at top-left corners pos (N, K, 2)."""
    n, c, side, _ = x.shape
    k = pos.shape[1]
    out = torch.empty(n, k, c, patch, patch)
    off = torch.arange(patch)
    chunk = max(1, _PIXELS_PER_CHUNK // (c * side * side))
    for i in range(0, n, chunk):
        lev = _pyramid_level(x[i : i + chunk], level, levels).permute(0, 2, 3, 1)  # (B, s, s, C)
        p = pos[i : i + chunk]
        ys = p[:, :, 0, None, None] + off[:, None]  # (B, K, patch, 1)
        xs = p[:, :, 1, None, None] + off[None, :]  # (B, K, 1, patch)
        img = torch.arange(len(p))[:, None, None, None]  # (B, 1, 1, 1)
        out[i : i + chunk] = lev[img, ys, xs].permute(0, 1, 4, 2, 3)  # (B, K, C, patch, patch)
    out = out.reshape(n * k, c, patch, patch)
    for ch in range(c):  # per channel over all descriptors and positions, std with ddof=0, as the reference
        var, mean = torch.var_mean(out[:, ch].double(), correction=0)
        std = var.sqrt().item()
        out[:, ch] -= mean.item()
        out[:, ch] /= std if std > 0 else 1.0  # a constant channel stays 0 rather than NaN
    return out.reshape(n * k, c * patch * patch)


def _sliced_w1_sum(a: torch.Tensor, b: torch.Tensor, dirs: torch.Tensor, pool: ThreadPoolExecutor | None,
                   chunk: int = 32) -> float:
    """Sum over directions (D, M) of sum_i |sorted(a.dir)_i - sorted(b.dir)_i| for a, b (N, D)."""
    total = 0.0
    for j in range(0, dirs.shape[1], chunk):
        d = dirs[:, j : j + chunk].T  # (m, D)
        pa = (d @ a.T).numpy()  # (m, N): one row per direction, contiguous for sorting
        pb = (d @ b.T).numpy()
        # numpy sorts several times faster than torch.sort on CPU, and releases the GIL: rows go to the pool
        rows = [*pa, *pb]
        if pool is None:
            for row in rows:
                row.sort()
        else:
            list(pool.map(np.ndarray.sort, rows))
        total += float(np.abs(pa - pb).sum(dtype=np.float64))
    return total


def _as_images(x, name: str) -> torch.Tensor:
    """Checked float32 CPU images (N, C, S, S) from a tensor or array."""
    x = torch.as_tensor(x).detach().cpu()
    if x.ndim != 4 or 0 in x.shape:
        raise ValueError(f"{name}: expected images (N, C, H, W), got shape {tuple(x.shape)}")
    if x.shape[2] != x.shape[3]:
        raise ValueError(f"{name}: swd needs square images, got {x.shape[2]}x{x.shape[3]}")
    x = x.float()
    if not torch.isfinite(x).all():
        raise ValueError(f"{name}: images contain NaN or infinite values")
    return x


def _random_draws(seed: int, n_real: int, n_fake: int, sizes: list[int], dim: int, descriptors_per_image: int,
                  patch: int, directions: int, repeats: int) -> dict:
    """Every random choice of one swd call, all seeded by `seed`: kept images, positions, directions.

    Returns {"real": indices or None, "fake": indices or None, "positions": [(n, K, 2) per level],
    "directions": [(repeats, dim, directions) per level]}; the larger set keeps a sorted random subset,
    drawn from its own generator so that measuring a set equals measuring the subset it was cut to.
    """
    n = min(n_real, n_fake)
    keep = {w: torch.randperm(m, generator=torch.Generator().manual_seed(seed))[:n].sort().values if m > n else None
            for w, m in (("real", n_real), ("fake", n_fake))}
    g = torch.Generator().manual_seed(seed)
    positions, dirs = [], []
    for s in sizes:
        positions.append(torch.randint(0, s - patch + 1, (n, descriptors_per_image, 2), generator=g))  # (y, x)
        d = torch.randn(repeats, dim, directions, generator=g, dtype=torch.float64)
        dirs.append((d / d.square().sum(1, keepdim=True).sqrt()).float())  # unit columns
    return keep | {"positions": positions, "directions": dirs}


def swd(real, fake, *, descriptors_per_image: int = 128, patch: int = 7, directions: int = 128, repeats: int = 4,
        min_res: int = 16, seed: int = 0) -> dict:
    """Multi-scale sliced Wasserstein distance x1e3 between image sets (Karras et al. 2018), per level and mean.

    real, fake: float (N, C, H, W) images in [-1, 1], square, same C x H x W, side >= min_res; torch or
    numpy. The larger set is subsampled (seeded) to the smaller's size. Deterministic for a seed.
    Returns {"swd": mean over levels, "swd_levels": per level finest first, "swd_resolutions": their sides}.
    """
    for arg, v in (("descriptors_per_image", descriptors_per_image), ("patch", patch), ("directions", directions),
                   ("repeats", repeats)):
        if not isinstance(v, int) or v < 1:
            raise ValueError(f"{arg}: must be a positive integer, got {v}")
    if not isinstance(min_res, int) or min_res < max(patch, 2):
        raise ValueError(f"min_res: must be an integer >= patch ({patch}) and >= 2, got {min_res}")
    a, b = _as_images(real, "real"), _as_images(fake, "fake")
    if a.shape[1:] != b.shape[1:]:
        raise ValueError(f"real and fake images differ in shape: {tuple(a.shape[1:])} and {tuple(b.shape[1:])}")
    c, side = a.shape[1], a.shape[2]
    if side < min_res:
        raise ValueError(f"images are {side}x{side}: swd needs a side of at least min_res={min_res}")

    sizes = level_sizes(side, min_res)
    draws = _random_draws(seed, len(a), len(b), sizes, c * patch * patch, descriptors_per_image, patch,
                          directions, repeats)
    a = a if draws["real"] is None else a[draws["real"]]
    b = b if draws["fake"] is None else b[draws["fake"]]
    threads = torch.get_num_threads()  # the sorts, which dominate, use as many threads as torch may
    per_level = []
    with ThreadPoolExecutor(threads) if threads > 1 else nullcontext() as pool:
        for lvl, (pos, dirs) in enumerate(zip(draws["positions"], draws["directions"], strict=True)):
            da = _descriptors(a, lvl, len(sizes), pos, patch)  # (n * K, C * patch^2)
            db = _descriptors(b, lvl, len(sizes), pos, patch)
            total = sum(_sliced_w1_sum(da, db, dirs[r], pool) for r in range(repeats))
            per_level.append(1e3 * total / (repeats * directions * len(da)))
    return {"swd": float(np.mean(per_level)), "swd_levels": per_level, "swd_resolutions": sizes}


__all__ = ["level_sizes", "swd"]
