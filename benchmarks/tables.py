"""ganforge's `table` preset against the `ctgan` package's CTGAN on diamonds, measured the way SDMetrics does.

Both contestants train on the same seeded 80% split of ggplot2's diamonds (53,940 rows; 43,152 for training)
and sample as many rows as the training split. Each is scored by ganforge's own metrics.tables:
  quality       SDMetrics' QualityReport overall score, column shapes and column pair trends, against training
  ml efficacy   R^2 of a HistGradientBoosting price regressor trained on the synthetic rows and tested on the
                20% holdout, beside the same model trained on the real training rows
  wall-clock    seconds of fit (transform fit included) and of sampling
A held-out real table scored against the training split gives the ceiling (about 0.99).

    python benchmarks/tables.py                                  # both, CTGAN at its default 300 epochs (slow)
    python benchmarks/tables.py --only ctgan --out benchmarks/results/tables
    python benchmarks/tables.py --reuse-ctgan benchmarks/results/tables/ctgan.json   # train ganforge only
    python benchmarks/tables.py --quick                          # smoke test: 2 epochs on 2,000 rows

Run with OMP_NUM_THREADS=1 for the figures of the notes. `ctgan` is a benchmark dependency only:
pip install --no-deps ctgan==0.12.1 rdt==2.0.0 Faker==40.54.0 (rdt pins pandas<3; it runs on pandas 3).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from ganforge.data.tables import holdout_split, infer_kinds, load_diamonds
from ganforge.metrics.tables import ml_efficacy, quality_report, table_warnings
from ganforge.viz.tables import save_table_picture

TARGET = "price"  # the ML-efficacy regression target
HOLDOUT = 0.2
QUICK_ROWS = 2500  # --quick: a seeded sample of diamonds, 2,000 rows after the holdout
QUICK_EPOCHS = 2
QUICK_STEPS = 20
QUIET = ['train.progress="none"', "train.tensorboard=false", "train.doctor=false", "train.animation=false"]
FIGURES = ("overall", "column_shapes", "column_pair_trends")


def split(seed: int, quick: bool) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, str]]:
    """Diamonds' (train, holdout) split and the column kinds (inferred on the whole table)."""
    df = load_diamonds()
    if quick:
        df = df.sample(QUICK_ROWS, random_state=seed).reset_index(drop=True)
    train, holdout = holdout_split(df, HOLDOUT, seed)
    return train, holdout, infer_kinds(df)


def score(train: pd.DataFrame, synth: pd.DataFrame, holdout: pd.DataFrame, kinds: dict[str, str],
          seed: int) -> dict[str, Any]:
    """Quality (against the training split), ML efficacy (price R^2 on the holdout) and the doctor's warnings."""
    q = quality_report(train, synth, kinds)
    ml = ml_efficacy(train, synth, holdout, TARGET, kinds, seed=seed)
    return {**{k: q[k] for k in FIGURES}, "overall_all_pairs": q["overall_all_pairs"],
            "columns": {c: v["score"] for c, v in q["columns"].items()},
            "ml_efficacy": ml["synthetic"], "ml_efficacy_real": ml["real"],
            "warnings": table_warnings(train, synth, kinds)}


def keep(out: Path | None, name: str, train: pd.DataFrame, synth: pd.DataFrame, kinds: dict[str, str],
         title: str) -> None:
    """With --out: the synthetic rows as out/NAME_samples.csv and their picture against training as out/NAME.png."""
    if out is not None:
        synth.to_csv(out / f"{name}_samples.csv", index=False)
        save_table_picture(train, synth, kinds, out / f"{name}.png", title=title)


def run_ctgan(train: pd.DataFrame, epochs: int, seed: int, *, holdout: pd.DataFrame, kinds: dict[str, str],
              out: Path | None = None, verbose: bool = False) -> dict[str, Any]:
    """Fit the `ctgan` package's CTGAN (default settings) on `train`, sample len(train) rows, score them."""
    try:
        import ctgan
        from ctgan import CTGAN
    except ImportError:
        raise SystemExit("benchmarks/tables.py: the ctgan package is not installed; "
                         "pip install --no-deps ctgan==0.12.1 rdt==2.0.0 Faker==40.54.0") from None
    model = CTGAN(epochs=epochs, verbose=verbose, enable_gpu=torch.cuda.is_available())  # verbose: a progress bar
    model.set_random_state(seed)
    discrete = [c for c, k in kinds.items() if k == "categorical"]
    t0 = time.perf_counter()
    model.fit(train, discrete_columns=discrete)
    fit = time.perf_counter() - t0
    t0 = time.perf_counter()
    synth = model.sample(len(train))
    sample = time.perf_counter() - t0
    keep(out, "ctgan", train, synth, kinds, f"CTGAN (ctgan {ctgan.__version__}), {epochs} epochs")
    return {"contestant": "ctgan", "version": ctgan.__version__, "epochs": epochs, "steps": epochs * max(
        1, len(train) // model._batch_size), **score(train, synth, holdout, kinds, seed),
        "fit_seconds": fit, "sample_seconds": sample}


def probe(train: pd.DataFrame, kinds: dict[str, str], seed: int, epochs: int = 3) -> dict[str, float]:
    """Seconds per training step of both contestants, measured back to back under the same load: each trains
    `epochs` epochs' worth of steps, and only the training loop is timed (CTGAN's DataTransformer fit and
    transform, and ganforge's data loading and transform fit, are taken out)."""
    from ctgan import CTGAN
    from ctgan.data_transformer import DataTransformer

    import ganforge
    from ganforge import config

    spent = [0.0]

    def timed(f):
        def wrapper(*a, **k):
            t0 = time.perf_counter()
            try:
                return f(*a, **k)
            finally:
                spent[0] += time.perf_counter() - t0
        return wrapper

    steps = epochs * (len(train) // 500)
    fit, transform = DataTransformer.fit, DataTransformer.transform
    DataTransformer.fit, DataTransformer.transform = timed(fit), timed(transform)
    try:
        model = CTGAN(epochs=epochs, enable_gpu=False)
        model.set_random_state(seed)
        t0 = time.perf_counter()
        model.fit(train, discrete_columns=[c for c, k in kinds.items() if k == "categorical"])
        ctgan_s = (time.perf_counter() - t0 - spent[0]) / steps
    finally:
        DataTransformer.fit, DataTransformer.transform = fit, transform
    with tempfile.TemporaryDirectory() as tmp:
        cfg = config.apply_overrides(table_preset(), [*QUIET, "data.holdout=0", f'train.out="{tmp}"',
                                                      f"train.steps={steps}", "train.sample_every=0",
                                                      "train.ckpt_every=0"])
        run = ganforge.train.build(cfg, data=train)  # data loading and the transform fit: not timed
        t0 = time.perf_counter()
        ganforge.train(run=run)
        ganforge_s = (time.perf_counter() - t0) / steps
    return {"steps": steps, "ctgan_s_per_step": ctgan_s, "ganforge_s_per_step": ganforge_s,
            "step_speedup": ctgan_s / ganforge_s}


def table_preset():
    """ganforge's `table` preset, or a clear exit while tables are not wired into training yet."""
    from ganforge import config

    if "table" not in config.presets():
        raise SystemExit("benchmarks/tables.py: ganforge has no 'table' preset yet (tables are not wired into "
                         "training); run with --only ctgan")
    return config.load_preset("table")


def run_ganforge(train: pd.DataFrame, steps: int, seed: int, *, holdout: pd.DataFrame, kinds: dict[str, str],
                 folder: Path, out: Path | None = None) -> dict[str, Any]:
    """Train ganforge's `table` preset on `train` into `folder`, sample len(train) rows, score them."""
    import ganforge
    from ganforge import config
    from ganforge.train import train as train_run

    cfg = table_preset()
    overrides = [*QUIET, f"train.seed={seed}", f'train.out="{folder}"']
    if steps:
        overrides.append(f"train.steps={steps}")
    if hasattr(cfg.data, "holdout"):  # `train` is already the 80% split: train on all of it
        overrides.append("data.holdout=0")
    cfg = config.apply_overrides(cfg, overrides)
    t0 = time.perf_counter()
    run = train_run(cfg, data=train)
    fit = time.perf_counter() - t0
    t0 = time.perf_counter()
    synth = ganforge.load(run.out).sample(len(train), seed=seed)
    sample = time.perf_counter() - t0
    if not isinstance(synth, pd.DataFrame):
        raise SystemExit(f"benchmarks/tables.py: ganforge.load(run).sample(n) returned {type(synth).__name__}, "
                         "not a DataFrame: the tables family is not wired into sampling yet")
    keep(out, "ganforge", train, synth, kinds, f"ganforge table preset, {run.total:,} steps")
    return {"contestant": "ganforge", "version": ganforge.__version__, "steps": run.total,
            **score(train, synth, holdout, kinds, seed), "fit_seconds": fit, "sample_seconds": sample}


def setup(args: argparse.Namespace, train: pd.DataFrame, holdout: pd.DataFrame) -> dict[str, Any]:
    """What the figures were measured on: data, split, threads, library versions, machine."""
    return {"data": "diamonds" + (f" (quick: {QUICK_ROWS} rows)" if args.quick else ""), "seed": args.seed,
            "train_rows": len(train), "holdout_rows": len(holdout), "target": TARGET, "quick": args.quick,
            "torch": torch.__version__, "pandas": pd.__version__, "threads": torch.get_num_threads(),
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS"), "cpus": os.cpu_count(),
            "machine": platform.machine(), "device": "cuda" if torch.cuda.is_available() else "cpu"}


def reused(path: Path, want: dict[str, Any]) -> dict[str, Any]:
    """A saved CTGAN result (ctgan.json as --out writes it), refused when measured on another split."""
    saved = json.loads(path.read_text())
    for key in ("seed", "train_rows", "holdout_rows", "quick"):
        if saved["setup"][key] != want[key]:
            raise SystemExit(f"benchmarks/tables.py: {path} was measured with {key}={saved['setup'][key]}, "
                             f"this run has {key}={want[key]}")
    return saved["result"]


def num(v: float | None, digits: int = 4) -> str:
    return "n/a" if v is None else f"{v:.{digits}f}"


def table(results: dict[str, dict[str, Any]], reference: dict[str, Any]) -> str:
    """Both contestants side by side; with both, the difference (ganforge - ctgan) or ratio (ganforge / ctgan)."""
    names = [n for n in ("ctgan", "ganforge") if n in results]
    both = len(names) == 2
    rows = [("quality (overall)", "overall", 4, "diff"), ("column shapes", "column_shapes", 4, "diff"),
            ("column pair trends", "column_pair_trends", 4, "diff"),
            ("ML efficacy R^2 (TSTR)", "ml_efficacy", 4, "diff"),
            ("fit seconds", "fit_seconds", 1, "ratio"), ("sample seconds", "sample_seconds", 2, "ratio")]
    head = f"{'':26}" + "".join(f"{n:>12}" for n in names) + (f"{'ganforge vs ctgan':>20}" if both else "")
    head += f"{'real':>10}"  # the holdout scored as a synthetic table; ML: train-on-real
    lines = [head]
    for label, key, digits, how in rows:
        vals = [results[n][key] for n in names]
        line = f"{label:26}" + "".join(f"{num(v, digits):>12}" for v in vals)
        if both:
            a, b = vals[1], vals[0]
            if a is None or b is None:
                cell = "n/a"
            elif how == "diff":
                cell = f"{a - b:+.4f}"
            else:
                cell = f"x{a / b:.3f}" if b > 0 else "n/a"
            line += f"{cell:>20}"
        line += f"{num(reference[key], digits):>10}" if key in reference else ""
        lines.append(line)
    lines.append("real: the 20% holdout scored as a synthetic table; its ML efficacy trains on the real training split")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=int, default=300, help="CTGAN's epochs (its default: 300)")
    p.add_argument("--steps", type=int, default=0, help="ganforge's G steps (0: the table preset's budget)")
    p.add_argument("--seed", type=int, default=0, help="seeds the split, both trainings and the scoring")
    p.add_argument("--out", type=Path, help="write ctgan.json, ganforge.json, tables.json, each contestant's "
                   "samples (NAME_samples.csv) and picture (NAME.png) here")
    p.add_argument("--only", choices=("ctgan", "ganforge"), help="run one contestant")
    p.add_argument("--reuse-ctgan", type=Path, metavar="FILE.json",
                   help="show a saved ctgan.json (same --seed/--quick) instead of training CTGAN")
    p.add_argument("--quick", action="store_true", help=f"smoke test: {QUICK_EPOCHS} CTGAN epochs, "
                   f"{QUICK_STEPS} ganforge steps, on {QUICK_ROWS - int(QUICK_ROWS * HOLDOUT)} training rows")
    p.add_argument("--verbose", action="store_true", help="show CTGAN's per-epoch progress bar (time per epoch)")
    p.add_argument("--probe", action="store_true", help="only time a training step of each, back to back under the "
                   "same load (3 epochs' worth of steps each, transforms excluded): the per-step speed-up")
    args = p.parse_args()
    if args.probe:
        train, _, kinds = split(args.seed, args.quick)
        result = probe(train, kinds, args.seed)
        save(args.out, "probe", result)
        print(f"seconds per step: CTGAN {result['ctgan_s_per_step']:.4f}, ganforge {result['ganforge_s_per_step']:.4f}"
              f" -> ganforge is {result['step_speedup']:.2f}x faster per step (batch 500 each)")
        return
    if args.quick:
        args.epochs, args.steps = QUICK_EPOCHS, args.steps or QUICK_STEPS
    if args.epochs < 1 or args.steps < 0:
        p.error("--epochs must be at least 1 and --steps at least 0")
    if args.reuse_ctgan and args.only == "ctgan":
        p.error("--reuse-ctgan with --only ctgan: nothing would run")
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)

    if args.only != "ctgan":
        table_preset()  # before CTGAN's long fit, not after it
    train, holdout, kinds = split(args.seed, args.quick)
    info = setup(args, train, holdout)
    print(f"diamonds: {len(train):,} training rows, {len(holdout):,} holdout rows; torch {torch.__version__}, "
          f"{info['threads']} threads", flush=True)
    q = quality_report(train, holdout, kinds)  # a real table the models never saw: the ceiling
    reference: dict[str, Any] = {k: q[k] for k in FIGURES}
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.out or Path(tmp)
        if args.reuse_ctgan:
            results["ctgan"] = reused(args.reuse_ctgan, info)
            print(f"ctgan: reused {args.reuse_ctgan}", flush=True)
        elif args.only != "ganforge":
            results["ctgan"] = run_ctgan(train, args.epochs, args.seed, holdout=holdout, kinds=kinds, out=args.out,
                                         verbose=args.verbose)
            save(args.out, "ctgan", {"setup": info, "result": results["ctgan"]})
        if args.only != "ctgan":
            results["ganforge"] = run_ganforge(train, args.steps, args.seed, holdout=holdout, kinds=kinds,
                                               folder=folder / "ganforge_run", out=args.out)
            save(args.out, "ganforge", {"setup": info, "result": results["ganforge"]})
    reference["ml_efficacy"] = next(iter(results.values()))["ml_efficacy_real"]  # train-on-real
    save(args.out, "tables", {"setup": info, "reference": reference, **results})
    print(table(results, reference))
    for name, r in results.items():
        for w in r.get("warnings", []):
            print(f"{name}: {w}")


def save(folder: Path | None, name: str, data: dict[str, Any]) -> None:
    """Write `data` as folder/name.json (nothing without --out)."""
    if folder is not None:
        (folder / f"{name}.json").write_text(json.dumps(data, indent=2, default=_plain) + "\n")


def _plain(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    raise TypeError(f"cannot write {type(v).__name__} as JSON")


if __name__ == "__main__":
    main()
