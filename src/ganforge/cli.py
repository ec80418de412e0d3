"""The `ganforge` command: parses arguments, builds the config, calls the library. No training logic."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

# Shorthand flags -> config keys (each is the same as --set KEY=VALUE).
SHORTHANDS = {
    "data": "data.name",
    "steps": "train.steps",
    "epochs": "train.epochs",
    "batch_size": "train.batch_size",
    "seed": "train.seed",
    "out": "train.out",
    "device": "train.device",
    "precision": "train.precision",
    "loss": "loss.name",
    "progress": "train.progress",
    "tensorboard": "train.tensorboard",
}


def _user_errors() -> tuple[type[BaseException], ...]:
    """Errors that are the user's to fix: printed as one line, no traceback."""
    from ganforge.checkpoint import CheckpointError
    from ganforge.config import ConfigError
    from ganforge.data import DataUnavailable
    from ganforge.fsio import WriteError
    from ganforge.runlock import RunLocked
    from ganforge.train import TrainingDiverged

    return (ConfigError, CheckpointError, DataUnavailable, TrainingDiverged, RunLocked, WriteError, FileNotFoundError,
            FileExistsError)


def _overrides(args: argparse.Namespace) -> list[str]:
    """Shorthand flags first, then --set items, as 'key=value' strings (TOML values)."""
    items = []
    for flag, key in SHORTHANDS.items():
        value = getattr(args, flag, None)
        if value is not None:
            if flag == "data":
                key = _data_key(value)
            items.append(f"{key}={_toml_value(value)}")
    return items + list(args.set or [])


def _data_key(value: str) -> str:
    """--data NAME sets data.name; anything else is a path (data.path), checked when the data is loaded."""
    from ganforge.data import DATASETS

    return "data.name" if value in DATASETS else "data.path"


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return str(value)


def cmd_train(args: argparse.Namespace) -> int:
    from ganforge import config, train

    if args.resume:
        if args.config or args.preset:
            raise config.ConfigError("--resume continues a run with its saved config: drop the config/--preset")
        run = train.resume(args.resume, _overrides(args))
        print(f"resuming {run.out} at step {run.step} of {run.total}", file=sys.stderr)
    else:
        cfg = config.load_preset(args.preset) if args.preset else config.Config()
        if args.config:
            cfg = config.load_toml(args.config, cfg)
        cfg = config.apply_overrides(cfg, _overrides(args))
        run = train.build(cfg)
        if (run.out / train.CHECKPOINT).exists():
            raise FileExistsError(f"{run.out} already holds a run: continue it with --resume {run.out}, "
                                  "or choose another --out")
    train.train(run=run)
    print(train.main_message(run))
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    import ganforge
    from ganforge.config import ConfigError

    out = Path(args.out)
    if args.n <= 0:
        raise ConfigError(f"-n must be positive, got {args.n}")
    s = ganforge.load(args.run, ema=args.ema)
    y, nrow = _labels(s, args)
    x = s.sample(len(y) if y is not None else args.n, seed=args.seed, y=y)
    print("wrote " + s.family.write_samples(x, out, s.cfg.data, y, nrow))
    return 0


def _labels(s, args):
    """Labels to request from a conditional G: --label K for all, else a class grid (one row per class)."""
    import torch

    from ganforge.config import ConfigError

    k = s.num_classes
    if s.cfg.model.conditional == "none":
        if args.label is not None:
            raise ConfigError(f"--label: {args.run} is not a conditional run (model.conditional = 'none')")
        return None, 0
    if args.label is not None:
        if not 0 <= args.label < k:
            raise ConfigError(f"--label must be a class in 0..{k - 1}, got {args.label}")
        return torch.full((args.n,), args.label, dtype=torch.long), 0
    if args.n % k == 0:  # row c holds class c
        cols = args.n // k
        return torch.arange(k).repeat_interleave(cols), cols
    return torch.arange(args.n) % k, k  # exactly n samples: column c holds class c


def cmd_export(args: argparse.Namespace) -> int:
    from ganforge.sampling import export

    path = export(args.run, args.out, ema=args.ema)
    print(f"wrote generator to {path}")
    return 0


def cmd_presets(args: argparse.Namespace) -> int:
    from ganforge import config

    for name in config.presets():
        print(name)
    return 0


def build_parser() -> argparse.ArgumentParser:
    import ganforge

    p = argparse.ArgumentParser(prog="ganforge", description="Train and inspect GANs.")
    p.add_argument("--version", action="version", version=f"ganforge {ganforge.__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a GAN from a preset and/or a TOML config")
    t.add_argument("config", nargs="?", help="TOML config file (applied on top of --preset)")
    t.add_argument("--preset", help="start from a shipped preset (see `ganforge presets`)")
    t.add_argument("--resume", metavar="RUN", help="continue the run in this folder exactly where it stopped")
    t.add_argument("--data", help="a dataset name (data.name) or a path (data.path): a folder or .zip of images, "
                   "or a .npy/.npz array")
    t.add_argument("--steps", type=int, help="G updates to train for (train.steps)")
    t.add_argument("--epochs", type=float, help="passes over the data, when --steps is not set")
    t.add_argument("--batch-size", type=int, help="train.batch_size")
    t.add_argument("--seed", type=int, help="train.seed")
    t.add_argument("--out", help="run folder (train.out)")
    t.add_argument("--device", help="cpu, cuda, cuda:N or auto (train.device)")
    t.add_argument("--precision", help="fp32 or bf16 (train.precision)")
    t.add_argument("--loss", help="adversarial loss (loss.name)")
    t.add_argument("--progress", help="auto, bar, lines or none (train.progress)")
    t.add_argument("--tensorboard", action=argparse.BooleanOptionalAction,
                   help="log to RUN/tensorboard/ (train.tensorboard; on by default when installed)")
    t.add_argument("--set", action="append", metavar="KEY=VALUE", help="any config value, e.g. model.ema=0.999")
    t.set_defaults(func=cmd_train)

    s = sub.add_parser("sample", help="write samples of a trained generator")
    s.add_argument("run", help="run folder, checkpoint or exported generator")
    s.add_argument("-n", type=int, default=64, help="number of samples (default 64)")
    s.add_argument("--out", required=True, help="FILE.npy (raw values) or FILE.png (grid/plot)")
    s.add_argument("--seed", type=int, default=0, help="noise seed (default 0)")
    s.add_argument("--label", type=int, help="conditional runs: sample this class only "
                   "(default: a class grid, one row per class, n // classes per row)")
    s.add_argument("--ema", action=argparse.BooleanOptionalAction, default=True, help="use G_ema when kept")
    s.set_defaults(func=cmd_sample)

    e = sub.add_parser("export", help="write the generator alone, with its config, for sampling")
    e.add_argument("run", help="run folder or checkpoint")
    e.add_argument("--out", required=True, help="output .safetensors file")
    e.add_argument("--ema", action=argparse.BooleanOptionalAction, default=True, help="export G_ema when kept")
    e.set_defaults(func=cmd_export)

    pr = sub.add_parser("presets", help="list the shipped presets")
    pr.set_defaults(func=cmd_presets)

    from ganforge.doctor import add_doctor_parser
    from ganforge.evaluate import add_eval_parser
    from ganforge.report import add_report_parser

    add_eval_parser(sub)
    add_doctor_parser(sub)
    add_report_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except _user_errors() as e:
        print(f"ganforge {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted: the last checkpoint written is kept", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
