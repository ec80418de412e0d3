"""Train 1D-Gaussian presets for several seeds and print the exact W1 to N(mean, std) per seed.

Usage: OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/tuning/gaussian_1d_seeds.py
       [--presets gaussian-1d-reference gaussian-1d] [--seeds 0 1 2 3 4] [--set train.steps=20000 ...]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
import torch
from scipy.stats import norm

import ganforge
from ganforge.config import apply_overrides, load_preset
from ganforge.train import train

N_SAMPLES = 100_000
SAMPLE_SEED = 123


def w1_to_normal(x: np.ndarray, mean: float, std: float) -> float:
    """W1 between the empirical law of x and N(mean, std^2): the integral of |F_n^-1(u) - Q(u)| du.

    On each interval (i/n, (i+1)/n) the empirical quantile is the constant x_(i); the normal
    quantile is evaluated at the midpoint (i+0.5)/n (error O(1/n), far below the figures of interest).
    """
    n = len(x)
    q = mean + std * norm.ppf((np.arange(n) + 0.5) / n)
    return float(np.abs(np.sort(x) - q).mean())


def run_seed(preset: str, seed: int, overrides: list[str]) -> tuple[float, float, float, float]:
    """Train `preset` with train.seed=seed; return (W1, sample mean, sample std, seconds)."""
    cfg = apply_overrides(load_preset(preset), [f"train.seed={seed}", 'train.progress="none"',
                                                "train.sample_every=0", "train.ckpt_every=0", *overrides])
    with tempfile.TemporaryDirectory() as tmp:
        cfg.train.out = tmp
        t0 = time.perf_counter()
        train(cfg)
        secs = time.perf_counter() - t0
        x = ganforge.load(tmp).sample(N_SAMPLES, seed=SAMPLE_SEED).flatten().numpy().astype(np.float64)
    return w1_to_normal(x, cfg.data.mean, cfg.data.std), float(x.mean()), float(x.std()), secs


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--presets", nargs="+", default=["gaussian-1d-reference", "gaussian-1d"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    p.add_argument("--set", nargs="*", default=[], help="config overrides key=value applied to every preset")
    args = p.parse_args()
    torch.set_num_threads(1)
    for preset in args.presets:
        w1s = []
        for seed in args.seeds:
            w1, mu, sd, secs = run_seed(preset, seed, args.set)
            w1s.append(w1)
            print(f"{preset:24s} seed {seed}: W1 {w1:.4f}  mean {mu:.3f}  std {sd:.3f}  ({secs:.1f} s)",
                  flush=True)
        print(f"{preset:24s} max W1 {max(w1s):.4f}  mean W1 {np.mean(w1s):.4f}  {' '.join(args.set)}",
              flush=True)


if __name__ == "__main__":
    main()
