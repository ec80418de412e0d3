"""The `ganforge` command: parses arguments, builds the config, calls the library. No training logic."""

from __future__ import annotations

import argparse
import errno
import functools
import math
import sys
import traceback
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
        if args.init:
            raise config.ConfigError("--init starts a new run from trained weights, --resume continues one: use one")
        if args.config or args.preset:
            raise config.ConfigError("--resume continues a run with its saved config: drop the config/--preset")
        if args.out and Path(args.out).resolve() != Path(args.resume).resolve():
            raise config.ConfigError(f"--out: a resumed run continues in its own folder ({args.resume}); to branch it, "
                                     "copy the folder and resume the copy")
        run = train.resume(args.resume, [o for o in _overrides(args) if not o.startswith("train.out=")])
        if run.total < run.step:
            raise config.ConfigError(f"--steps {run.total}: the run is already at step {run.step}; give more steps "
                                     "to continue it")
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
        for line in run.data.report:  # how the user's data was read: resolution, channels, skipped files, cache
            print(line, file=sys.stderr)
        if args.init:
            from ganforge.finetune import init_from

            print(init_from(run, args.init), file=sys.stderr)
            run.init_from = str(Path(args.init).resolve())
    train.train(run=run)
    par = getattr(run, "par", None)
    if par is None or par.main:  # under torchrun: once, from rank 0
        print(train.main_message(run))
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    import torch

    import ganforge
    from ganforge.config import ConfigError
    from ganforge.noise import parse_seeds

    out = Path(args.out)
    seeds = parse_seeds(args.seeds) if args.seeds is not None else None
    if seeds is not None and args.n is not None:
        raise ConfigError("--seeds gives one sample per seed: drop -n")
    if seeds is not None and args.seed is not None:
        raise ConfigError("--seeds gives each sample its own seed: drop --seed")
    n, seed = args.n if args.n is not None else 64, args.seed if args.seed is not None else 0
    if n <= 0:
        raise ConfigError(f"-n must be positive, got {n}")
    _check_truncation(args.truncation)
    s = ganforge.load(args.run, ema=args.ema)
    options = _family_options(s, args)
    if s.family.decoded:
        return _sample_decoded(s, args, n, seed, options)
    if seeds is not None:
        label = _class_index(s, args.label, args.run)
        if label is None and s.cfg.model.conditional != "none":
            raise ConfigError(f"--seeds: {args.run} is conditional: choose the class with --label "
                              f"(0..{s.num_classes - 1}{' or a name' if s.class_names else ''})")
        y = None if label is None else torch.full((len(seeds),), label, dtype=torch.long)
        x, nrow = s.sample_seeds(seeds, y=y, truncation=args.truncation), 0
        names = [f"seed{sd:04d}" for sd in seeds]
    else:
        y, nrow = _labels(s, args, n)
        x = s.sample(len(y) if y is not None else n, seed=seed, y=y, truncation=args.truncation)
        names = [f"seed{seed:04d}_{i:06d}" for i in range(len(x))]
    print("wrote " + s.family.write_samples(x, out, s.cfg.data, y, nrow, names))
    return 0


def _family_options(s, args) -> dict:
    """--where (tables), --temperature and --novel (text): refused where the run's family has no such option."""
    from ganforge.config import ConfigError
    from ganforge.data.tables_family import parse_where

    options, given = {}, {"where": args.where, "temperature": args.temperature, "novel": args.novel or None}
    for name, value in given.items():
        if value is None:
            continue
        if name not in s.family.sample_options:
            raise ConfigError(f"--{name}: {args.run} makes {s.family.name} samples; --{name} is for "
                              f"{'tables' if name == 'where' else 'text'}")
        if name == "where":
            options["where"] = parse_where(value)
        else:  # temperature, novel: the family's to check (Sampler.sample)
            options[name] = value
    for flag in ("seeds", "label", "truncation"):
        if getattr(args, flag) is not None and s.family.decoded:
            raise ConfigError(f"--{flag}: not an option for {s.family.name} samples")
    return options


def _sample_decoded(s, args, n: int, seed: int, options: dict) -> int:
    """`ganforge sample` for tables (a DataFrame; --where) and text (lines; --temperature, --novel)."""
    samples = s.sample(n, seed=seed, **options)
    if s.dropped is not None:
        print(f"--novel: dropped {s.dropped:,} of {n:,} samples that are training lines verbatim", file=sys.stderr)
    if s.acceptance is not None and s.acceptance < 1:
        print(f"--where: {s.acceptance:.1%} of the rows drawn matched; {n:,} kept", file=sys.stderr)
    print("wrote " + s.family.write_samples(samples, Path(args.out)))
    return 0


def _check_truncation(psi: float | None) -> None:
    from ganforge.config import ConfigError

    if psi is not None and not 0 < psi <= 1:
        raise ConfigError(f"--truncation must be in (0, 1], got {psi}")


def _class_index(s, text: str | None, run: str) -> int | None:
    """--label K or NAME -> a class index (None when not given); a name the run kept wins over an index."""
    from ganforge.config import ConfigError

    if text is None:
        return None
    if s.cfg.model.conditional == "none":
        raise ConfigError(f"--label: {run} is not a conditional run (model.conditional = 'none')")
    k = s.num_classes
    if text in s.class_names:
        return s.class_names.index(text)
    try:
        index = int(text)
    except ValueError:
        if s.class_names:
            raise ConfigError(f"--label: no class named '{text}' (classes: {', '.join(s.class_names)})") from None
        raise ConfigError(f"--label must be a class in 0..{k - 1}, got '{text}' (this run kept no class names)") \
            from None
    if not 0 <= index < k:
        raise ConfigError(f"--label must be a class in 0..{k - 1}, got {index}")
    return index


def _labels(s, args, n: int):
    """Labels to request from a conditional G: --label for all, else a class grid (one row per class)."""
    import torch

    k = s.num_classes
    label = _class_index(s, args.label, args.run)
    if s.cfg.model.conditional == "none":
        return None, 0
    if label is not None:
        return torch.full((n,), label, dtype=torch.long), 0
    if n % k == 0:  # row c holds class c
        cols = n // k
        return torch.arange(k).repeat_interleave(cols), cols
    return torch.arange(n) % k, k  # exactly n samples: column c holds class c


def cmd_interpolate(args: argparse.Namespace) -> int:
    import ganforge
    from ganforge import interpolate
    from ganforge.config import ConfigError
    from ganforge.noise import parse_seeds

    out = Path(args.out)
    interpolate.check_out(out)
    if args.frames < 1:
        raise ConfigError(f"--frames must be at least 1, got {args.frames}")
    if args.fps <= 0:
        raise ConfigError(f"--fps must be positive, got {args.fps}")
    _check_truncation(args.truncation)
    s = ganforge.load(args.run, ema=args.ema)
    if not s.family.walkable:
        raise ConfigError(f"{args.run} makes {s.family.name} samples: a walk is pictured for points and images only")
    label = _class_index(s, args.label, args.run)
    seeds = parse_seeds(args.seeds) if args.seeds is not None else None
    conditional = s.cfg.model.conditional != "none"
    if args.classes and not conditional:
        raise ConfigError(f"--classes: {args.run} is not a conditional run (model.conditional = 'none')")
    if args.classes and label is not None:
        raise ConfigError("--classes steps through every class: drop --label")
    if conditional and label is None:  # a class walk: one z, class by class
        if seeds is not None and len(seeds) > 1:
            raise ConfigError("--seeds: a class walk holds one z: give one seed, or --label K|NAME for a latent walk")
        seed = seeds[0] if seeds else 0
        z, y = interpolate.class_walk(s, seed, args.frames, args.truncation)
        title = f"seed {seed}, class by class"
    else:
        seeds = seeds if seeds is not None else [0, 1, 2, 3]
        if len(seeds) < 2:
            raise ConfigError(f"--seeds: a latent walk needs at least 2 seeds, got {len(seeds)}")
        z, y = interpolate.seed_walk(s, seeds, args.frames, label, args.truncation)
        title = f"seeds {', '.join(map(str, seeds))}"
    path = interpolate.write_walk(s, z, y, out, args.fps, title)
    print(f"wrote a walk of {len(z)} frames to {path}")
    return 0


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
    t.add_argument("--init", metavar="RUN|G.safetensors", help="start from trained weights (fine-tuning): G, D "
                   "(from a run or checkpoint) and G_ema are loaded, optimizers and step start fresh; "
                   "not with --resume")
    t.add_argument("--data", help="a dataset name (data.name) or a path (data.path): a folder or .zip of images, "
                   "a .npy/.npz array, a table (.csv, .tsv, .parquet) or a text file (.txt, one sample per line)")
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
    s.add_argument("-n", type=int, help="number of samples (default 64)")
    s.add_argument("--out", required=True, help="FILE.npy (raw values), FILE.png (grid/plot), FILE.csv (points), "
                   "or a FOLDER (images: one PNG per sample, seedSSSS_IIIIII.png, or seedSSSS.png with --seeds); "
                   "tables: FILE.csv, .tsv or .parquet; text: FILE.txt")
    s.add_argument("--seed", type=int, help="noise seed of the n samples (default 0)")
    s.add_argument("--seeds", metavar="LIST", help="one sample per seed, e.g. 0-99, 1,5,9 or 0-9,20: seed S always "
                   "gives the same sample (noise randn(1, z_dim) from a generator seeded S); not with -n or --seed")
    s.add_argument("--truncation", type=float, metavar="PSI", help="the truncation trick as in BigGAN (0 < PSI <= 1): "
                   "every noise coordinate with |z| > PSI is redrawn (same seeded generator) until inside; smaller "
                   "PSI gives more typical, less varied samples")
    s.add_argument("--label", metavar="K|NAME", help="conditional runs: sample this class only, by index or by the "
                   "class name a run on labelled folders kept (default: a class grid, one row per class, "
                   "n // classes per row; needed with --seeds)")
    s.add_argument("--where", action="append", metavar="COLUMN=VALUE", help="tables: only rows with this value of a "
                   "categorical column (repeatable); G is conditioned on it and rows it still got wrong are dropped "
                   "(the share kept is printed)")
    s.add_argument("--temperature", type=float, metavar="T", help="text: draw each position from p^(1/T) (T < 1: "
                   "safer, T > 1: more varied); default: the most likely token at each position")
    s.add_argument("--novel", action="store_true", help="text: drop samples that are training lines verbatim "
                   "(and say how many were dropped)")
    s.add_argument("--ema", action=argparse.BooleanOptionalAction, default=True, help="use G_ema when kept")
    s.set_defaults(func=cmd_sample)

    w = sub.add_parser("interpolate", help="animate a latent walk of a trained generator (GIF or MP4)",
                       description="A loop through the seeds' noise along great circles (slerp), --frames frames "
                       "from each seed to the next and from the last back to the first. Conditional runs: with "
                       "--label, that class along the walk; without, a class walk: one seed's z held while the "
                       "class steps 0, 1, ..., K-1, --frames frames each. Image runs show the image; points runs "
                       "show the walk's point moving over 2,000 samples (histogram or scatter).")
    w.add_argument("run", help="run folder, checkpoint or exported generator")
    w.add_argument("--out", required=True, help="walk.gif, or walk.mp4 (needs ffmpeg: pip install imageio-ffmpeg)")
    w.add_argument("--seeds", metavar="LIST", help="the seeds to walk through, e.g. 1,5,9 or 0-3 (default 0-3; "
                   "one seed for a class walk, default 0)")
    w.add_argument("--frames", type=int, default=60, help="frames per segment (seed to seed, or per class; default 60)")
    w.add_argument("--fps", type=float, default=20, help="frames per second (default 20)")
    w.add_argument("--label", metavar="K|NAME", help="conditional runs: walk within this class (index or name)")
    w.add_argument("--classes", action="store_true", help="conditional runs: hold one seed's z and step through the "
                   "classes (the default when no --label is given)")
    w.add_argument("--truncation", type=float, metavar="PSI", help="truncate the seeds' noise as `sample "
                   "--truncation` does (0 < PSI <= 1); the walk between them is not truncated again")
    w.add_argument("--ema", action=argparse.BooleanOptionalAction, default=True, help="use G_ema when kept")
    w.set_defaults(func=cmd_interpolate)

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


# Numeric flags outside the config, by dest or "command dest": (smallest or None, largest). Other int flags
# must fit an int64, every float flag be finite; config flags (--steps, ...) are checked by config.
FLAG_LIMITS: dict[str, tuple[float | None, float]] = {
    "n": (None, 2**20),  # sample -n (-n <= 0 is sample's own error)
    "eval n": (10, 2**20),  # metrics of fewer samples mean nothing; the k-NN ones need more than k = 5
    "frames": (None, 2**16),
    "fps": (None, 1000),
    "seed": (0, 2**63 - 1),
}
# --truncation: below this the samples are all the same image in practice (psi <= 0 is the command's own error).
# BigGAN's smallest is 0.02.
TRUNCATION_MIN = 0.01
ENVIRONMENT_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC),
                      errno.ENOTDIR, errno.EISDIR, errno.ENAMETOOLONG}  # the user's disk or paths, not a bug


def main(argv: list[str] | None = None) -> int:
    """Run one command. A user's mistake is one line on stderr and exit status 2; Ctrl-C exits 130."""
    prog = "ganforge"
    try:
        parser = build_parser()
        subcommands = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        for p in [parser, *(sp for a in subcommands for sp in a.choices.values())]:
            p.error = functools.partial(_usage_error, p)  # one line instead of usage + error
        args = parser.parse_args(argv)
        prog = f"ganforge {args.command}"
        _check_flags(args, next(a.choices[args.command] for a in subcommands))
        return args.func(args)
    except KeyboardInterrupt as e:  # first: the clauses below import modules, maybe the one interrupted
        train = sys.modules.get("ganforge.train")  # had training begun? then the run folder holds what it wrote
        frames = [f.f_code for f, _ in traceback.walk_tb(e.__traceback__)]
        started = train is not None and train.train.__code__ in frames
        print("\ninterrupted: the last checkpoint written is kept" if started else "interrupted", file=sys.stderr)
        return 130
    except _user_errors() as e:
        print(f"{prog}: error: {_one_line(str(e))}", file=sys.stderr)
        return 2
    except OSError as e:
        if e.errno not in ENVIRONMENT_ERRNOS:
            raise
        where = " -> ".join(str(f) for f in (e.filename, e.filename2) if f is not None)
        reason = e.strerror or str(e)
        print(f"{prog}: error: {_one_line(f'{where}: {reason}' if where else reason)}", file=sys.stderr)
        return 2


def _usage_error(parser: argparse.ArgumentParser, message: str) -> None:
    """argparse's error(): one line naming the flag, and where to read the usage."""
    print(f"{parser.prog}: error: {_one_line(message)} (see {parser.prog} --help)", file=sys.stderr)
    parser.exit(2)


def _check_flags(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """Numeric flags of the command: of their type, finite, within FLAG_LIMITS (seeds at least 0), else int64."""
    from ganforge.config import ConfigError

    for action in parser._actions:
        value = getattr(args, action.dest, None)
        if action.type not in (int, float) or value is None or not action.option_strings:
            continue
        flag = action.option_strings[-1]
        if not isinstance(value, (int, float)):  # argparse hands '-n=--' over as []
            raise ConfigError(f"{flag}: expected {'an integer' if action.type is int else 'a number'}, got {value!r}")
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{flag} must be a finite number, got {value}")
        shown = value if isinstance(value, float) or abs(value) < 10**30 else f"a {len(str(abs(value)))}-digit number"
        lo, hi = FLAG_LIMITS.get(f"{args.command} {action.dest}", FLAG_LIMITS.get(action.dest, (None, 2**63 - 1)))
        if value < (-(2**63) if lo is None else lo):
            low = "above -2**63" if lo is None else "zero or positive" if lo == 0 else f"at least {lo}"
            raise ConfigError(f"{flag} must be {low}, got {shown}")
        if value > hi:
            high = "below 2**63" if hi == 2**63 - 1 else f"at most {hi}"
            raise ConfigError(f"{flag} must be {high}, got {shown}")
        if action.dest == "truncation" and 0 < value < TRUNCATION_MIN:
            raise ConfigError(f"{flag} must be at least {TRUNCATION_MIN} (smaller values make one sample), "
                              f"got {value}")


def _one_line(text: str) -> str:
    """Escape line breaks and other unprintable characters, so an error stays on one line."""
    return text if text.isprintable() else "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


if __name__ == "__main__":
    sys.exit(main())
