"""Acceptance figures of the MNIST zoo presets (mnist-dcgan, mnist-cgan), trained here on mnist-5k.

For each preset: training wall time, FID in the shipped digit classifier's 128-d feature space
(5,000 samples vs the 5,000 real digits), the classes produced (>= 1% of samples) and the predicted-class
histogram, and for the conditional preset the fraction of samples requested as digit k that the
classifier reads as k, for each k, and their mean. The final 10x10 sample grids go to --out.

    python benchmarks/mnist_zoo.py [--steps N] [--presets mnist-dcgan mnist-cgan] [--out grids] [--threads N]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

import ganforge
from ganforge import config, train
from ganforge.data import load_dataset
from ganforge.metrics import class_stats, fid, load_digit_classifier
from ganforge.viz import save_grid

PRESETS = ("mnist-dcgan", "mnist-cgan")
N_EVAL = 5000  # generated samples for FID and the class histogram (the size of mnist-5k)
SEED = 1234  # noise for the evaluation samples, not the training seed


def train_preset(name: str, steps: int, out: Path, seed: int, overrides: list[str] = ()) -> tuple[Path, float]:
    """Train preset `name` on mnist-5k (steps 0 = the preset's own); return the run folder and seconds."""
    cfg = config.load_preset(name)
    items = ["data.name='mnist-5k'", f"train.seed={seed}", f"train.out='{out}'", "train.progress='none'",
             "train.tensorboard=false", "train.doctor=false", "train.animation=false"]
    cfg = config.apply_overrides(cfg, items + ([f"train.steps={steps}"] if steps else []) + list(overrides))
    t0 = time.perf_counter()
    run = train.train(cfg)
    return run.out, time.perf_counter() - t0


def conditional_accuracy(sampler, clf, per_class: int) -> list[float]:
    """For each digit k: the fraction of `per_class` samples requested as k that the classifier reads as k."""
    acc = []
    for k in range(sampler.num_classes):
        x = sampler.sample(per_class, seed=SEED + k, y=torch.full((per_class,), k))  # (n, 1, 28, 28)
        acc.append(float((clf.logits(x).argmax(1) == k).float().mean()))
    return acc


def evaluate_run(run_dir: Path, real_feats: torch.Tensor, clf) -> dict:
    """FID, class statistics and (conditional runs) per-class accuracy of a trained run's G (EMA when kept)."""
    s = ganforge.load(run_dir)
    x = s.sample(N_EVAL, seed=SEED)  # conditional: labels 0..9 cycled, so the request is uniform
    stats = class_stats(clf.logits(x))
    out = {"step": s.step, "fid": fid(clf.features(x), real_feats), "classes": stats["classes"],
           "hist": stats["hist"], "grid": x[:100]}
    if s.cfg.model.conditional != "none":
        out["per_class"] = conditional_accuracy(s, clf, N_EVAL // s.num_classes)
    return out


def report(name: str, secs: float, r: dict) -> str:
    lines = [f"{name}: {r['step']} steps in {secs:.0f} s ({r['step'] / secs:.1f} steps/s)",
             f"  FID (digit-classifier features, {N_EVAL} samples vs {N_EVAL} real): {r['fid']:.2f}",
             f"  classes produced (>= 1% of samples): {r['classes']}/10",
             "  predicted-class histogram: " + " ".join(f"{k}:{p:.3f}" for k, p in enumerate(r["hist"])),
             f"  smallest class share: {min(r['hist']):.3f}"]
    if "per_class" in r:
        acc = r["per_class"]
        lines += ["  conditional accuracy per class: " + " ".join(f"{k}:{a:.3f}" for k, a in enumerate(acc)),
                  f"  conditional accuracy: mean {sum(acc) / len(acc):.3f}, min {min(acc):.3f}"]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=0, help="G updates per preset (0 = each preset's own)")
    p.add_argument("--presets", nargs="+", default=list(PRESETS), choices=PRESETS)
    p.add_argument("--out", default="mnist_zoo_grids", help="folder for the final sample grids (PRESET.png)")
    p.add_argument("--runs", default="", help="keep the run folders here ('' = a temporary folder)")
    p.add_argument("--seed", type=int, default=0, help="training seed")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    p.add_argument("--set", nargs="*", default=[], dest="overrides", help="config overrides, section.key=value")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    clf = load_digit_classifier()
    real = load_dataset(config.DataConfig(name="mnist-5k")).x  # (5000, 1, 28, 28)
    real_feats = clf.features(real)  # (5000, 128)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, data mnist-5k, seed {args.seed}")
    with tempfile.TemporaryDirectory() as tmp:
        runs = Path(args.runs or tmp)
        for name in args.presets:
            run_dir, secs = train_preset(name, args.steps, runs / name, args.seed, args.overrides)
            r = evaluate_run(run_dir, real_feats, clf)
            save_grid(r["grid"], out / f"{name}.png", nrow=10, scale=2)
            print(report(name, secs, r) + f"\n  grid: {out / f'{name}.png'}", flush=True)


if __name__ == "__main__":
    main()
