"""Mode collapse on the 2D mixtures (ring-8, grid-25), measured as in VEEGAN / PacGAN, per seed.

Trains each preset for each seed in this process (one run at a time) and prints, per seed, the modes
covered (a mode counts when >= 1% of the samples lie within 3 std of its centre), the share of
high-quality samples (within 3 std of some centre), the KL of the mode histogram to uniform, and the wall
time of the training; then the mean and standard deviation over seeds.

    OMP_NUM_THREADS=2 python benchmarks/toy2d.py [--presets ring-8 grid-25] [--seeds 0 1 2 3 4] [--n 2500]
        [--set train.steps=2000 ...]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

import ganforge
from ganforge import config, train
from ganforge.data import load_dataset
from ganforge.metrics.modes import mode_stats

PRESETS = ["ring-8-plain", "ring-8", "grid-25-plain", "grid-25"]
QUIET = ["train.progress=none", "train.tensorboard=false", "train.doctor=false", "train.animation=false"]


def run_one(preset: str, seed: int, n: int = 2500, overrides: list[str] | None = None,
            out: str | Path | None = None) -> dict:
    """Train `preset` with train.seed = `seed`; return mode_stats of n samples (G_ema when on) and the time."""
    cfg = config.apply_overrides(config.load_preset(preset), [f"train.seed={seed}", *QUIET, *(overrides or [])])
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        run = train.train(run=train.build(cfg, out=out or Path(tmp) / "run"))
        seconds = time.perf_counter() - t0
        samples = ganforge.load(run.out).sample(n, seed=1000 + seed)  # (n, 2)
    data = load_dataset(cfg.data, seed=seed)
    stats = mode_stats(samples.numpy(), data.modes.numpy(), data.mode_std)
    return stats | {"seconds": seconds, "steps": run.total, "num_modes": len(data.modes)}


def _spread(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--presets", nargs="+", default=PRESETS)
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    p.add_argument("--n", type=int, default=2500, help="samples per evaluation")
    p.add_argument("--set", nargs="*", default=[], dest="overrides", help="config overrides, section.key=value")
    args = p.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, n={args.n}, overrides={args.overrides}")
    print(f"{'preset':<15}{'seed':>5}{'modes':>8}{'high-q %':>10}{'KL':>8}{'min %':>7}{'time s':>8}")
    for preset in args.presets:
        rows = []
        for seed in args.seeds:
            r = run_one(preset, seed, args.n, args.overrides)
            rows.append(r)
            low = 100 * min(r["counts"]) / args.n
            print(f"{preset:<15}{seed:>5}{r['modes_covered']:>5}/{r['num_modes']:<2}{100 * r['high_quality']:>10.1f}"
                  f"{r['kl']:>8.3f}{low:>7.2f}{r['seconds']:>8.1f}", flush=True)
        modes, hq, kl, sec = ([r[k] for r in rows] for k in ("modes_covered", "high_quality", "kl", "seconds"))
        (mm, ms), (hm, hs), (km, ks), (tm, ts) = _spread(modes), _spread(hq), _spread(kl), _spread(sec)
        print(f"{preset:<15}{'mean':>5}{mm:>8.1f}{100 * hm:>10.1f}{km:>8.3f}{'':>7}{tm:>8.1f}")
        print(f"{'':<15}{'std':>5}{ms:>8.1f}{100 * hs:>10.1f}{ks:>8.3f}{'':>7}{ts:>8.1f}", flush=True)


if __name__ == "__main__":
    main()
