"""Label 1000 generated digits by their nearest mnist-5k digit (pixel L2) and print the class histogram.

Usage: OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/tuning/mnist_modes.py RUN [RUN ...] [--n 1000]
Also prints the mean nearest-neighbour distance (lower = closer to real digits) for comparison.
"""

from __future__ import annotations

import argparse

import torch

import ganforge
from ganforge.data.mnist import mnist_5k


def nearest_labels(samples: torch.Tensor, real: torch.Tensor,
                   labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Label and L2 distance of the nearest real image for each sample; both (n,)."""
    a, b = samples.flatten(1), real.flatten(1)  # (n, 784), (N, 784)
    d2 = (a * a).sum(1, keepdim=True) - 2 * a @ b.T + (b * b).sum(1)  # (n, N)
    dist, idx = d2.clamp_min(0).min(1)
    return labels[idx], dist.sqrt()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+")
    p.add_argument("--n", type=int, default=1000)
    args = p.parse_args()
    data = mnist_5k()
    for run in args.runs:
        x = ganforge.load(run).sample(args.n, seed=123)
        lab, dist = nearest_labels(x, data.x, data.y)
        hist = torch.bincount(lab, minlength=10).tolist()
        print(f"{run}: classes {hist}  min share {min(hist) / args.n:.3f}  mean NN dist {dist.mean():.2f}")


if __name__ == "__main__":
    main()
