"""The README's quality tables: train each preset at its stated budget on this machine, measure it with
`ganforge eval`'s own code, and print one line per seed and one Markdown row per preset (mean and spread
over seeds).

Per seed: 2D rows show the modes covered (a mode counts when >= 1% of the samples lie within 3 std of its
centre), the high-quality share (within 3 std of some centre), the KL of the mode histogram to uniform and
the training time; other rows show their values (mnist-cgan: cond_acc, the share of samples requested as
digit k that the digit classifier reads as k, averaged over k, and its smallest per-class value).

    python benchmarks/quality.py                       # every row, each at its full budget per seed (slow)
    python benchmarks/quality.py --only ring-8 --seeds 0 1 2 3 4
    python benchmarks/quality.py --only mnist-dcgan mnist-cgan --threads 1 --grids grids
    python benchmarks/quality.py --only grid-25 --seeds 0 --set train.steps=2000 train.batch_size=128
    python benchmarks/quality.py --out runs/quality    # keep the run folders (samples, eval JSON)
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

import ganforge
from ganforge import config, train
from ganforge.evaluate import evaluate
from ganforge.viz import save_grid


@dataclass
class Row:
    preset: str
    overrides: list[str]  # e.g. the offline dataset and the step budget
    metrics: list[str]  # passed to evaluate()
    show: list[str]  # values printed in the table
    n: int  # generated samples measured
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)


MODES = ["modes_covered", "high_quality", "mode_kl"]
DIGITS = ["fid", "kid", "pr", "classes"]
DIGIT_VALUES = ["fid", "kid", "precision", "recall", "classes", "confident"]
MNIST_5K = ['data.name="mnist-5k"']
ROWS = [
    Row("gaussian-1d-reference", [], ["w1_normal"], ["w1_normal"], 100_000),
    Row("gaussian-1d", [], ["w1_normal"], ["w1_normal"], 100_000),
    Row("ring-8-plain", [], ["modes"], MODES, 2500),
    Row("ring-8", [], ["modes"], MODES, 2500),
    Row("grid-25-plain", [], ["modes"], MODES, 2500),
    Row("grid-25", [], ["modes"], MODES, 2500),
    Row("mnist-mlp-reference", [*MNIST_5K, "train.steps=10000"], DIGITS, DIGIT_VALUES, 5000, (0,)),
    Row("mnist-mlp", [*MNIST_5K, "train.steps=10000"], DIGITS, DIGIT_VALUES, 5000, (0,)),
    Row("mnist-dcgan", MNIST_5K, DIGITS, DIGIT_VALUES, 5000, (0,)),
    Row("mnist-cgan", MNIST_5K, ["fid", "classes", "cond_acc"], ["fid", "classes", "cond_acc", "cond_acc_min"],
        5000, (0,)),  # 5,000 samples: 500 requested as each digit
]
QUIET = ['train.progress="none"', "train.tensorboard=false", "train.doctor=false", "train.animation=false"]


def measure(row: Row, seed: int, folder: Path, sets: list[str]) -> tuple[dict, float, int]:
    """Train one seed of a row into `folder` (`sets` applied after the row's own overrides); return its metric
    values, the training wall time and the steps trained."""
    cfg = config.apply_overrides(config.load_preset(row.preset),
                                 [*row.overrides, *sets, *QUIET, f"train.seed={seed}", f'train.out="{folder}"'])
    t0 = time.perf_counter()
    run = train.train(cfg)
    seconds = time.perf_counter() - t0
    return evaluate(folder, metrics=row.metrics, n=row.n, seed=0)["metrics"], seconds, run.total


def save_final_grid(run: Path, path: Path) -> Path | None:
    """The run's final 10x10 sample grid (G_ema when kept; conditional: column k = digit k); None for 1D/2D."""
    sampler = ganforge.load(run)
    if sampler.family.name != "images":
        return None
    return save_grid(sampler.sample(100, seed=0), path, nrow=10, scale=2)  # labels 0..9 cycled: one per column


def num(value) -> str:
    return "n/a" if value is None else f"{value:.4g}"


def seed_line(row: Row, vals: dict, secs: float) -> str:
    """One seed's values: 2D rows as modes 8/8, high-quality %, KL; others the row's shown values."""
    if row.show == MODES:
        hq = "n/a" if vals["high_quality"] is None else f"{100 * vals['high_quality']:.1f}%"
        shown = f"modes {vals['modes_covered']}/{vals['modes_total']}  high-quality {hq}  KL {num(vals['mode_kl'])}"
    else:
        shown = "  ".join(f"{k} {num(vals[k])}" for k in row.show)
    return f"{shown}  ({secs:.0f} s)"


def fmt(values: list) -> str:
    """Mean ± standard deviation over seeds (one value as it is); n/a values (nan) are counted, not averaged."""
    known = [v for v in values if v is not None]
    missing = f" ({len(values) - len(known)} n/a)" if len(known) < len(values) else ""
    if not known:
        return "n/a"
    if len(known) == 1:
        return f"{known[0]:.4g}{missing}"
    return f"{statistics.mean(known):.4g} ± {statistics.stdev(known):.2g}{missing}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", nargs="+", choices=[r.preset for r in ROWS], metavar="PRESET",
                   help="presets to run (default: all rows)")
    p.add_argument("--seeds", nargs="+", type=int, help="override each row's seeds")
    p.add_argument("--set", nargs="+", default=[], dest="sets", metavar="SECTION.KEY=VALUE",
                   help="config overrides for every row, applied after the row's own")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    p.add_argument("--grids", help="save each image run's final 10x10 sample grid here as PRESET-seedS.png")
    p.add_argument("--out", help="keep run folders here (default: a temporary folder)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = [r for r in ROWS if not args.only or r.preset in args.only]
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(args.out or tmp)
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, overrides {args.sets or 'none'}")
        for row in rows:
            seeds = tuple(args.seeds) if args.seeds else row.seeds
            results = []
            for s in seeds:
                folder = base / f"{row.preset}-seed{s}"
                vals, secs, steps = measure(row, s, folder, args.sets)
                results.append((vals, secs))
                grid = save_final_grid(folder, Path(args.grids) / f"{row.preset}-seed{s}.png") if args.grids else None
                print(f"  {row.preset} seed {s}: {seed_line(row, vals, secs)}" + (f"  grid {grid}" if grid else ""),
                      flush=True)
            cells = [fmt([vals[k] for vals, _ in results]) for k in row.show]
            secs = fmt([s for _, s in results])
            budget = ", ".join([f"{steps:,} steps"] + [o for o in [*row.overrides, *args.sets]
                                                       if not o.startswith("train.steps=")])
            values = " | ".join(f"{k} {c}" for k, c in zip(row.show, cells, strict=True))
            print(f"| {row.preset} | {budget} | seeds {','.join(map(str, seeds))} | {values} | {secs} s |", flush=True)


if __name__ == "__main__":
    main()
