"""`ganforge eval`: measure a trained generator (or a file of samples) against real data, with provenance.

`evaluate(...)` samples the run, loads the real data, computes the metrics suited to the data family and
writes RUN/eval/step_XXXXXX.json holding every value and what produced it. The same inputs and seed
give the same numbers.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import scipy
import torch

import ganforge
from ganforge import config, fsio
from ganforge.config import ConfigError
from ganforge.data import DATASETS, FAMILIES, Dataset, load_dataset
from ganforge.data.user import check_same_source
from ganforge.metrics import features as F
from ganforge.metrics.registry import METRICS, Inputs


def _family_of(shape: tuple[int, ...]) -> str:
    """The family of raw samples from the shape of one example: (D,) points, (C, H, W) images."""
    if len(shape) == 3:
        return "images"
    if len(shape) <= 1:
        return "points"
    raise ConfigError(f"cannot tell what samples shaped {shape} are: expected vectors (D,) or images (C, H, W)")


SAMPLE_FILES = {".csv": "tables", ".tsv": "tables", ".parquet": "tables", ".txt": "text"}  # beside .npy


def _load_samples(path: str | Path) -> tuple[object, str | None, str]:
    """--samples FILE: (a tensor from .npy, a DataFrame from a table, or lines from .txt; its family when the file
    says it; the sha256 of what was read)."""
    path = Path(path)
    family = SAMPLE_FILES.get(path.suffix.lower())
    if family is None:
        x = _load_npy(path, "--samples")
        return x, None, _sha256(x)
    if not path.is_file():
        raise ConfigError(f"--samples: no such file '{path}'")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if family == "tables":
        from ganforge.data.tables import read_table

        return read_table(path), family, digest
    from ganforge.data.text import read_lines

    return read_lines(path), family, digest


def _load_npy(path: str | Path, flag: str) -> torch.Tensor:
    path = Path(path)
    if path.suffix != ".npy" or not path.is_file():
        raise ConfigError(f"{flag}: expected an existing .npy file, got '{path}'")
    x = torch.from_numpy(np.load(path, allow_pickle=False)).float()
    return x[:, None] if x.ndim == 1 else x  # (N,) -> (N, 1)


def _real_dataset(name: str, cfg: config.Config | None) -> Dataset:
    if name not in DATASETS:
        if not Path(name).expanduser().exists():
            raise ConfigError(f"--real: unknown dataset '{name}'" + config._closest(name, list(DATASETS)).replace(
                "valid keys", "datasets") + "; or a folder, .zip, .npy or .npz path")
        over = {"data": {"path": str(name)}}
        return load_dataset(config.from_dict(over, cfg).data if cfg is not None else config.from_dict(over).data)
    if cfg is None:
        return load_dataset(config.DataConfig(name=name))
    return load_dataset(config.from_dict({"data": {"name": name}}, cfg).data, seed=cfg.train.seed)


def _extractor(name: str | None, shape: tuple[int, ...]) -> F.Extractor:
    """The digit classifier for 28x28x1 images (or when asked for), else Inception-v3."""
    if name == "digit-cnn" or (name is None and shape == F.DIGIT_SHAPE):
        return F.shipped_digit_classifier()
    if name in (None, "inception"):
        return F.InceptionV3Features()
    raise ConfigError(f"--features: unknown extractor '{name}' (digit-cnn or inception)")


def _sha256(x: torch.Tensor) -> str:
    return hashlib.sha256(x.detach().cpu().contiguous().numpy().tobytes()).hexdigest()


def _finite(value: Any) -> Any:
    """nan/inf -> None so the JSON is standard; lists and dicts cleaned recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, list):
        return [_finite(v) for v in value]
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    return value


def _generated(run, samples, n: int, step: int | None, ema: bool, seed: int, prov: dict):
    """(samples (n, *shape), their requested labels (n,) or None, the run's number of classes, the run's config
    or None, the run's data family name or None); fills `prov`."""
    cfg = family = sampler = labels = None
    state = None
    if run is not None:
        sampler = ganforge.load(run, ema=ema)
        cfg, family = sampler.cfg, sampler.family.name
        prov["data_source"] = getattr(sampler, "data_source", {})
        state = getattr(sampler, "family_state", None)
        if step is not None and step != sampler.step:
            raise ConfigError(f"--step {step}: the run's checkpoint is at step {sampler.step} and only the "
                              f"latest checkpoint is kept; evaluate --step {sampler.step} or omit --step")
        prov |= {"run": str(run), "step": sampler.step, "ema": sampler.ema}
    if samples is not None:
        fake, file_family, digest = _load_samples(samples)
        if family is not None and file_family is not None and file_family != family:
            raise ConfigError(f"--samples: {Path(samples).name} holds {file_family} samples; the run makes {family}")
        family = family or file_family
        fake = fake[:n] if not hasattr(fake, "iloc") else fake.iloc[:n]
        prov |= {"samples_file": str(samples), "samples_sha256": digest}
    elif cfg.model.conditional != "none":  # labels 0..K-1 cycled (the sampler's default), kept for cond_acc
        labels = torch.arange(n) % sampler.num_classes
        fake = sampler.sample(n, seed=seed, y=labels)
        prov["sampling"] = (f"ganforge.load(run, ema={ema}).sample({n}, seed={seed}, "
                            f"y=arange({n}) % {sampler.num_classes})")
    else:
        fake = sampler.sample(n, seed=seed)
        prov["sampling"] = f"ganforge.load(run, ema={ema}).sample({n}, seed={seed})"
    return fake, labels, (sampler.num_classes if labels is not None else 0), cfg, family, state


def _real(real, cfg: config.Config | None, prov: dict, n: int, seed: int,
          recorded: dict | None, state: dict | None = None) -> tuple[object, Dataset | None, tuple | None]:
    """(the real data the metrics compare with: a seeded subset of min(n, N) samples in dataset order, a table's
    training split, the held-out lines; the Dataset when known; the gaussian-1d target (mean, std)); fills
    `prov`. A run trained on user data is checked against its recorded hash; `state` is the run's family state."""
    if real is not None and str(real).endswith(".npy"):
        x = _load_npy(real, "--real")
        prov["dataset"] = {"file": str(real), "sha256": _sha256(x)}
        keep = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:n]
        return x[keep.sort().values], None, None
    if real is not None:
        ds = _real_dataset(str(real), cfg)
    else:
        ds = load_dataset(cfg.data, seed=cfg.train.seed, state=state)
        check_same_source(recorded or {}, ds, "ganforge eval")
    prov["dataset"] = {"name": ds.name, "sha256": ds.sha256(), "size": len(ds)} | (
        {"path": ds.source["path"]} if ds.source else {})
    normal = None
    if ds.name == "gaussian-1d":
        d = cfg.data if cfg is not None and cfg.data.name == "gaussian-1d" else config.DataConfig()
        normal = (d.mean, d.std)
        prov["dataset"]["target"] = f"N({d.mean}, {d.std}^2)"
    return ds.family.real_for_eval(ds, n, seed), ds, normal


def _attach_extractor(inp: Inputs, name: str | None, prov: dict) -> None:
    """Choose the image feature extractor and record it with the image conversion it applies."""
    inp.extractor = _extractor(name, tuple(inp.real.shape[1:]))
    conv = {w: inp.extractor.prepare(getattr(inp, w)[:1])[1] or "none" for w in ("fake", "real")}
    same = conv["fake"] == conv["real"]
    conversion = conv["real"] if same else f"generated: {conv['fake']}; real: {conv['real']}"
    prov["features"] = F.describe(inp.extractor) | {"conversion": conversion}


def evaluate(run: str | Path | None = None, samples: str | Path | None = None, real: str | Path | None = None,
             metrics: list[str] | None = None, n: int = 10000, step: int | None = None, ema: bool = True,
             seed: int = 0, out: str | Path | None = None, features: str | None = None) -> dict:
    """Measure n samples of a run (or a .npy of samples) against real data; write and return the result.

    Args:
        run: run folder or checkpoint; sampled with `ganforge.load(run, ema=ema)` unless `samples` is given.
        samples: a .npy file of generated samples (N, *shape) to measure instead of sampling the run.
        real: a dataset name or a .npy file of real samples (default: the run's dataset).
        metrics: metric names (default: the data family's `default_metrics`).
        step: the checkpoint step expected (only the latest checkpoint is kept).
        out: JSON file to write (default RUN/eval/step_XXXXXX.json when a run is given; none otherwise).
        features: image feature extractor, digit-cnn or inception (default: digit-cnn for 28x28x1 images).
    """
    if n <= 0:
        raise ConfigError(f"-n must be positive, got {n}")
    if run is None and samples is None:
        raise ConfigError("give a run folder or --samples FILE.npy")
    if run is None and real is None:
        raise ConfigError("--real DATASET|FILE.npy is needed when there is no run to take the dataset from")
    prov: dict[str, Any] = {"seed": seed, "ganforge_version": ganforge.__version__,
                            "torch_version": torch.__version__, "numpy_version": np.__version__,
                            "scipy_version": scipy.__version__}
    fake, labels, num_classes, cfg, family, state = _generated(run, samples, n, step, ema, seed, prov)
    real_x, dataset, normal = _real(real, cfg, prov, n, seed, prov.pop("data_source", None), state)
    tensors = torch.is_tensor(fake) and torch.is_tensor(real_x)
    if dataset is not None and family is not None and dataset.family.name != family:
        raise ConfigError(f"the real data is {dataset.family.name} data; the samples are {family}")
    if tensors and tuple(fake.shape[1:]) != tuple(real_x.shape[1:]) and not (fake.ndim == real_x.ndim == 4):
        raise ConfigError(f"generated samples are shaped {tuple(fake.shape[1:])}, "
                          f"real ones {tuple(real_x.shape[1:])}")
    if not tensors and dataset is None:
        raise ConfigError("--real: table and text samples are measured against a run's data or a dataset name/path")
    family = family or (dataset.family.name if dataset is not None else _family_of(tuple(real_x.shape[1:])))
    prov |= {"n_generated": len(fake), "n_real": len(real_x), "data_family": family}

    inp = Inputs(fake, real_x, family, seed, dataset, normal, labels, num_classes)
    if metrics is not None and "cond_acc" in metrics and samples is not None:
        raise ConfigError("--metrics: cond_acc samples the run with labels itself; it cannot measure --samples")
    if metrics is not None:
        check_metrics(metrics, inp)
    if metrics is None or any(METRICS[m].features for m in metrics):
        if any(m.features and family in m.families for m in METRICS.values()):
            try:
                _attach_extractor(inp, features, prov)
            except F.FeaturesUnavailable as e:
                if metrics is not None or features is not None:
                    raise
                prov["features"] = {"name": None, "unavailable": str(e)}  # defaults: what needs no network
    names = metrics if metrics is not None else FAMILIES[family].default_metrics(inp)
    for name in names:
        why = METRICS[name].requires(inp)
        if why:
            raise ConfigError(f"--metrics: {why}")
    values: dict[str, Any] = {}
    for name in names:
        values |= METRICS[name].run(inp)
    prov["metrics"] = {k: {"implementation": f"{METRICS[k].fn.__module__}.{METRICS[k].fn.__name__}",
                           "version": ganforge.__version__} | METRICS[k].params for k in names}
    result = _finite({"metrics": values, "provenance": prov})

    if out is None and run is not None:
        folder = Path(run) if Path(run).is_dir() else Path(run).parent
        name = f"step_{prov['step']:06d}" if samples is None else f"samples_{Path(samples).stem}"
        out = folder / "eval" / f"{name}.json"
    if out is not None:
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        fsio.atomic_write_text(out, json.dumps(result, indent=2) + "\n")  # a kill never leaves half a file
        result["path"] = str(out)
    return result


def check_metrics(names: list[str], inp: Inputs) -> None:
    """Unknown metric names, and metrics that do not apply to this data, are user errors."""
    for name in names:
        if name not in METRICS:
            raise ConfigError(f"--metrics: unknown metric '{name}' (metrics: {', '.join(METRICS)})")
        if inp.family not in METRICS[name].families:
            raise ConfigError(f"--metrics: {name} measures {' or '.join(METRICS[name].families)}, "
                              f"not {inp.family}")
        why = METRICS[name].requires(inp) if not METRICS[name].features else None
        if why:
            raise ConfigError(f"--metrics: {why}")


def format_table(result: dict) -> str:
    """The printed summary: one line per scalar value, then where the numbers came from."""
    p = result["provenance"]
    head = f"{p.get('run', p.get('samples_file'))}"
    if "step" in p:
        head += f"  step {p['step']}" + ("  (EMA)" if p.get("ema") else "")
    ds = p["dataset"]
    lines = [head, f"{p['n_generated']} generated vs {p['n_real']} real from "
                   f"{ds.get('name', ds.get('file'))} (sha256 {ds['sha256'][:12]}), seed {p['seed']}"]
    if p.get("features", {}).get("unavailable"):
        lines.append(f"no image features ({p['features']['unavailable']}); measured what needs none")
    elif "features" in p:
        f = p["features"]
        sha = f["sha256"][:12] if f["sha256"] else "n/a"
        lines.append(f"features: {f['name']} (sha256 {sha}), conversion: {f['conversion']}")
    lines.append("")
    width = max(len(k) for k in result["metrics"]) + 2
    for key, value in result["metrics"].items():
        if isinstance(value, (list, dict)):
            continue
        text = "n/a" if value is None else f"{value:.6g}" if isinstance(value, float) else str(value)
        lines.append(f"{key:<{width}}{text}")
    if "path" in result:
        lines += ["", f"written to {result['path']}"]
    return "\n".join(lines)


def cmd_eval(args: argparse.Namespace) -> int:
    names = [m.strip() for m in args.metrics.split(",") if m.strip()] if args.metrics else None
    try:
        result = evaluate(args.run, samples=args.samples, real=args.real, metrics=names, n=args.n,
                          step=args.step, ema=args.ema, seed=args.seed, out=args.out, features=args.features)
    except F.FeaturesUnavailable as e:
        print(f"ganforge eval: error: {e}", file=sys.stderr)
        return 2
    print(format_table(result))
    return 0


def add_eval_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register `ganforge eval RUN [...]` on the CLI's subparsers."""
    e = subparsers.add_parser("eval", help="measure a trained generator against real data")
    e.add_argument("run", nargs="?", help="run folder or checkpoint (optional with --samples and --real)")
    e.add_argument("--metrics", help=f"comma-separated, from: {','.join(METRICS)} (default: by data family)")
    e.add_argument("-n", type=int, default=10000, help="generated samples to measure (default 10000)")
    e.add_argument("--step", type=int, help="the checkpoint step to evaluate (must be the run's latest)")
    e.add_argument("--ema", action=argparse.BooleanOptionalAction, default=True, help="use G_ema when kept")
    e.add_argument("--samples", metavar="FILE.npy", help="measure these samples instead of sampling the run")
    e.add_argument("--real", metavar="DATASET|FILE.npy", help="real data (default: the run's dataset)")
    e.add_argument("--seed", type=int, default=0, help="seed for sampling and metric subsets (default 0)")
    e.add_argument("--features", help="image features: digit-cnn or inception (default: by image shape)")
    e.add_argument("--out", help="JSON file to write (default RUN/eval/step_XXXXXX.json)")
    e.set_defaults(func=cmd_eval)
    return e
