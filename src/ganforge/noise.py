"""G's input noise outside training: one draw per seed, BigGAN's truncation trick, and seed lists ("0-9,20").

The noise of seed s is `torch.randn(1, z_dim, generator=torch.Generator().manual_seed(s))`, as in
stylegan2-ada's generate.py, so a seed names the same sample whatever else is asked for.
"""

from __future__ import annotations

import re

import torch

from ganforge.config import ConfigError

_ITEM = re.compile(r"^(\d+)(?:-(\d+))?$")  # "7" or "0-99"


TRUNCATE_ROUNDS = 64  # rejection rounds before the coordinates still outside are drawn by inverse CDF


def truncate(z: torch.Tensor, psi: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """The truncation trick as BigGAN does it (Brock et al. 2019): redraw every coordinate with |z| > psi from
    N(0, 1), with `generator`, until it is inside, so z follows N(0, 1) truncated to [-psi, psi].

    After TRUNCATE_ROUNDS redraws, the coordinates still outside (at psi >= 0.5 about one in 10**19: never) are
    drawn from the truncated normal by inverse CDF, so a tiny psi takes no longer than a large one.
    """
    if not 0 < psi <= 1:
        raise ValueError(f"truncation must be in (0, 1], got {psi}")
    z = z.clone()
    outside = z.abs() > psi
    for _ in range(TRUNCATE_ROUNDS):
        if not outside.any():
            return z
        z[outside] = torch.randn(int(outside.sum()), generator=generator, dtype=z.dtype, device=z.device)
        outside = z.abs() > psi
    if outside.any():
        lo = torch.special.ndtr(torch.tensor(-psi, dtype=torch.float64))  # P(Z < -psi)
        u = torch.rand(int(outside.sum()), generator=generator, dtype=torch.float64, device=z.device)
        z[outside] = torch.special.ndtri(lo + (1 - 2 * lo) * u).clamp(-psi, psi).to(z.dtype)
    return z


def seed_noise(seed: int, z_dim: int, truncation: float | None = None) -> torch.Tensor:
    """The noise (1, z_dim) of one seed, truncated (with the seed's own generator) when `truncation` is set."""
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(1, z_dim, generator=gen)
    return z if truncation is None else truncate(z, truncation, gen)


def parse_seeds(text: str, flag: str = "--seeds") -> list[int]:
    """'1,5,9', '0-99' or '0-9,20' -> the seeds in that order; a bad item, a backward range or a repeat is an error."""
    seeds: list[int] = []
    for item in text.replace(" ", "").split(","):
        m = _ITEM.match(item)
        if not m:
            raise ConfigError(f"{flag}: '{item}' is not a seed or a range like 0-99 (seeds are integers >= 0)")
        lo, hi = int(m.group(1)), int(m.group(2) if m.group(2) is not None else m.group(1))
        if hi < lo:
            raise ConfigError(f"{flag}: the range '{item}' runs backwards (write {hi}-{lo})")
        if hi >= 2**63:
            raise ConfigError(f"{flag}: seeds must be below 2**63, got {hi}")
        seeds.extend(range(lo, hi + 1))
    seen: set[int] = set()
    for s in seeds:
        if s in seen:
            raise ConfigError(f"{flag}: seed {s} is listed twice")
        seen.add(s)
    return seeds
