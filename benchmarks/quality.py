"""The README's quality table: train each preset at its stated budget on this machine, measure it with
`ganforge eval`'s own code, and print one Markdown row per preset (mean and spread over seeds).

    python benchmarks/quality.py                       # every row (about an hour on a 2-core CPU)
    python benchmarks/quality.py --only gaussian-1d ring-8 --seeds 0 1
    python benchmarks/quality.py --out runs/quality    # keep the run folders (grids, eval JSON)
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from ganforge import config, train
from ganforge.evaluate import evaluate


@dataclass
class Row:
    preset: str
    overrides: list[str]  # e.g. the offline dataset and the step budget
    metrics: list[str]  # passed to evaluate()
    show: list[str]  # values printed in the table
    n: int  # generated samples measured
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)


MNIST = ['data.name="mnist-5k"', "train.steps=10000"]
ROWS = [
    Row("gaussian-1d-reference", [], ["w1_normal"], ["w1_normal"], 100_000),
    Row("gaussian-1d", [], ["w1_normal"], ["w1_normal"], 100_000),
    Row("ring-8-plain", [], ["modes"], ["modes_covered", "high_quality", "mode_kl"], 2500),
    Row("ring-8", [], ["modes"], ["modes_covered", "high_quality", "mode_kl"], 2500),
    Row("grid-25-plain", [], ["modes"], ["modes_covered", "high_quality", "mode_kl"], 2500),
    Row("grid-25", [], ["modes"], ["modes_covered", "high_quality", "mode_kl"], 2500),
    Row("mnist-mlp-reference", MNIST, ["fid", "kid", "pr", "classes"],
        ["fid", "kid", "precision", "recall", "classes"], 5000, (0,)),
    Row("mnist-mlp", MNIST, ["fid", "kid", "pr", "classes"], ["fid", "kid", "precision", "recall", "classes"],
        5000, (0,)),
    Row("mnist-dcgan", ['data.name="mnist-5k"', "train.steps=5000"], ["fid", "kid", "pr", "classes"],
        ["fid", "kid", "precision", "recall", "classes"], 5000, (0,)),
]
QUIET = ['train.progress="none"', "train.tensorboard=false", "train.animation=false"]


def measure(row: Row, seed: int, folder: Path) -> tuple[dict, float]:
    """Train one seed of a row into `folder`; return its metric values and the training wall time."""
    cfg = config.apply_overrides(config.load_preset(row.preset),
                                 [*row.overrides, *QUIET, f"train.seed={seed}", f'train.out="{folder}"'])
    t0 = time.perf_counter()
    train.train(cfg)
    seconds = time.perf_counter() - t0
    return evaluate(folder, metrics=row.metrics, n=row.n, seed=0)["metrics"], seconds


def fmt(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.4g}"
    return f"{statistics.mean(values):.4g} ± {statistics.stdev(values):.2g}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", nargs="+", help="presets to run (default: all rows)")
    p.add_argument("--seeds", nargs="+", type=int, help="override each row's seeds")
    p.add_argument("--out", help="keep run folders here (default: a temporary folder)")
    args = p.parse_args()
    rows = [r for r in ROWS if not args.only or r.preset in args.only]
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(args.out or tmp)
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
        for row in rows:
            seeds = tuple(args.seeds) if args.seeds else row.seeds
            results = [measure(row, s, base / f"{row.preset}-seed{s}") for s in seeds]
            for s, (vals, secs) in zip(seeds, results, strict=True):
                shown = "  ".join(f"{k} {vals[k]:.4g}" for k in row.show)
                print(f"  {row.preset} seed {s}: {shown}  ({secs:.0f} s)", flush=True)
            cells = [fmt([vals[k] for vals, _ in results]) for k in row.show]
            secs = fmt([s for _, s in results])
            budget = " ".join(row.overrides) or "preset defaults"
            values = " | ".join(f"{k} {c}" for k, c in zip(row.show, cells, strict=True))
            print(f"| {row.preset} | {budget} | seeds {','.join(map(str, seeds))} | {values} | {secs} s |", flush=True)


if __name__ == "__main__":
    main()
