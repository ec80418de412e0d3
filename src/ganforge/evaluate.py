"""`ganforge eval`: measure a trained generator (or a file of samples) against real data, with provenance.

`evaluate(...)` samples the run, loads the real data, computes the metrics suited to the data kind and
writes RUN/eval/step_XXXXXX.json holding every value and what produced it. The same inputs and seed
give the same numbers.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy
import torch

import ganforge
from ganforge import config
from ganforge import metrics as M
from ganforge.config import ConfigError
from ganforge.data import DATASETS, Dataset, load_dataset
from ganforge.metrics import features as F

# Parameters fixed by ganforge so numbers are comparable between runs (recorded in the provenance).
PARAMS = {
    "kid": {"subsets": 100, "subset_size": "min(1000, n_generated, n_real)"},
    "pr": {"k": 3},
    "dc": {"k": 5},
    "mmd": {"max_n": 2000, "bandwidth": "median heuristic"},
    "energy": {"max_n": 2000},
    "modes": {"radius": "3 std", "threshold": 0.01},
    "classes": {"threshold": 0.01, "sure": 0.9},
    "cond_acc": {"labels": "the generated samples, requested as classes 0..K-1 cycled", "classifier": "argmax"},
}


@dataclass
class Inputs:
    """Generated and real samples for one evaluation, and the image features computed from them once."""

    fake: torch.Tensor  # (n, *shape)
    real: torch.Tensor  # (n_real, *shape)
    kind: str  # "1d", "2d" or "image"
    seed: int
    dataset: Dataset | None = None  # the real dataset when known by name (modes, labels)
    normal: tuple[float, float] | None = None  # gaussian-1d: the target N(mean, std)
    labels: torch.Tensor | None = None  # (n,) the class each generated sample was requested as (conditional runs)
    num_classes: int = 0  # the classes a conditional run's G takes (0: not conditional)
    extractor: F.Extractor | None = None
    cache: dict[str, torch.Tensor] = field(default_factory=dict)

    def feats(self, which: str) -> torch.Tensor:
        """Features of the 'fake' or 'real' images, computed on first use."""
        if which not in self.cache:
            self.cache[which] = self.extractor.features(getattr(self, which))
        return self.cache[which]

    def logits(self, which: str) -> torch.Tensor:
        """The digit classifier's logits (N, 10) for the 'fake' or 'real' images, computed on first use."""
        key = f"logits_{which}"
        if key not in self.cache:
            self.cache[key] = self.extractor.logits(getattr(self, which))
        return self.cache[key]


def _fid(c: Inputs) -> dict:
    return {"fid": M.fid(c.feats("fake"), c.feats("real"))}


def _kid(c: Inputs) -> dict:
    size = min(1000, len(c.fake), len(c.real))
    mean, std = M.kid(c.feats("fake"), c.feats("real"), PARAMS["kid"]["subsets"], size, seed=c.seed)
    return {"kid": mean, "kid_std": std}


def _classes(c: Inputs) -> dict:
    logits = c.logits("fake")  # (n, 10)
    ds = c.dataset
    if ds is not None and ds.y is not None and ds.num_classes == logits.shape[1]:
        hist = torch.bincount(ds.y, minlength=ds.num_classes).double()
    else:  # no labels: the classifier's own reading of the real images
        hist = torch.bincount(c.logits("real").argmax(1), minlength=logits.shape[1]).double()
    out = M.class_stats(logits, data_hist=hist, **PARAMS["classes"])
    return {"classes": out["classes"], "class_kl": out["kl"], "confident": out["confident"], "class_hist": out["hist"]}


def _cond_acc(c: Inputs) -> dict:
    out = M.conditional_accuracy(c.logits("fake"), c.labels)
    return {"cond_acc": out["mean"], "cond_acc_min": out["min"], "cond_acc_per_class": out["per_class"]}


def _modes(c: Inputs) -> dict:
    ds = c.dataset
    out = M.mode_stats(c.fake, ds.modes, ds.mode_std, threshold=PARAMS["modes"]["threshold"])
    return {"modes_covered": out["modes_covered"], "modes_total": len(ds.modes),
            "high_quality": out["high_quality"], "mode_kl": out["kl"], "mode_counts": out["counts"]}


def _moments(c: Inputs) -> dict:
    out = M.moments_error(c.fake, c.real)
    if len(out["mean_error"]) == 1:
        return {"mean_error": out["mean_error"][0], "std_error": out["std_error"][0]}
    return out


# metric name -> (data kinds it applies to, function of the inputs -> named values)
RUNNERS: dict[str, tuple[tuple[str, ...], Callable[[Inputs], dict]]] = {
    "w1": (("1d", "2d"), lambda c: {"w1": M.w1(c.fake, c.real)}),
    "w1_normal": (("1d",), lambda c: {"w1_normal": M.w1_normal(c.fake, *c.normal)}),
    "ks": (("1d", "2d"), lambda c: {"ks": M.ks(c.fake, c.real)}),
    "mmd": (("1d", "2d"), lambda c: {"mmd": M.mmd_rbf(c.fake, c.real, seed=c.seed)}),
    "energy": (("1d", "2d"), lambda c: {"energy": M.energy_distance(c.fake, c.real, seed=c.seed)}),
    "moments": (("1d", "2d"), _moments),
    "modes": (("2d",), _modes),
    "fid": (("image",), _fid),
    "kid": (("image",), _kid),
    "pr": (("image",), lambda c: M.precision_recall(c.feats("real"), c.feats("fake"), k=PARAMS["pr"]["k"])),
    "dc": (("image",), lambda c: M.density_coverage(c.feats("real"), c.feats("fake"), k=PARAMS["dc"]["k"])),
    "classes": (("image",), _classes),
    "cond_acc": (("image",), _cond_acc),
}


# metric name -> the scalar values it reports, where they differ from its own name (for eval.best)
VALUES: dict[str, tuple[str, ...]] = {
    "kid": ("kid", "kid_std"),
    "pr": ("precision", "recall"),
    "dc": ("density", "coverage"),
    "classes": ("classes", "class_kl", "confident"),
    "cond_acc": ("cond_acc", "cond_acc_min"),
    "modes": ("modes_covered", "high_quality", "mode_kl"),
    "moments": ("mean_error", "std_error"),
}


def default_metrics(inp: Inputs) -> list[str]:
    """1d: w1, ks, mmd, moments (+ w1_normal for gaussian-1d); 2d: modes + mmd when modes are known;
    images: fid, kid, pr, dc (+ classes for the digit classifier, + cond_acc when the run is also conditional)."""
    if inp.kind == "1d":
        return ["w1", "ks", "mmd", "moments"] + (["w1_normal"] if inp.normal else [])
    if inp.kind == "2d":
        has_modes = inp.dataset is not None and inp.dataset.modes is not None
        return ["modes", "mmd"] if has_modes else ["w1", "mmd", "energy"]
    digits = isinstance(inp.extractor, F.DigitClassifier)
    conditional = digits and inp.labels is not None and inp.num_classes == F.DIGIT_CLASSES
    return ["fid", "kid", "pr", "dc"] + (["classes"] if digits else []) + (["cond_acc"] if conditional else [])


def _kind_of(shape: tuple[int, ...]) -> str:
    """Data kind from the shape of one example: (1,) 1d, (2,) 2d, (C, H, W) image."""
    if len(shape) == 3:
        return "image"
    if shape in ((), (1,)):
        return "1d"
    if shape == (2,):
        return "2d"
    raise ConfigError(f"cannot tell the data kind of examples shaped {shape}: expected (1,), (2,) or (C,H,W)")


def _load_npy(path: str | Path, flag: str) -> torch.Tensor:
    path = Path(path)
    if path.suffix != ".npy" or not path.is_file():
        raise ConfigError(f"{flag}: expected an existing .npy file, got '{path}'")
    x = torch.from_numpy(np.load(path, allow_pickle=False)).float()
    return x[:, None] if x.ndim == 1 else x  # (N,) -> (N, 1)


def _real_dataset(name: str, cfg: config.Config | None) -> Dataset:
    if name not in DATASETS:
        raise ConfigError(f"--real: unknown dataset '{name}' (known: {', '.join(DATASETS)}; or a .npy file)")
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
    or None, the run's data kind or None); fills `prov`."""
    cfg = kind = sampler = labels = None
    if run is not None:
        sampler = ganforge.load(run, ema=ema)
        cfg, kind = sampler.cfg, sampler.data_kind
        if step is not None and step != sampler.step:
            raise ConfigError(f"--step {step}: the run's checkpoint is at step {sampler.step} and only the "
                              f"latest checkpoint is kept; evaluate --step {sampler.step} or omit --step")
        prov |= {"run": str(run), "step": sampler.step, "ema": sampler.ema}
    if samples is not None:
        fake = _load_npy(samples, "--samples")[:n]
        prov |= {"samples_file": str(samples), "samples_sha256": _sha256(fake)}
    elif cfg.model.conditional != "none":  # labels 0..K-1 cycled (the sampler's default), kept for cond_acc
        labels = torch.arange(n) % sampler.num_classes
        fake = sampler.sample(n, seed=seed, y=labels)
        prov["sampling"] = (f"ganforge.load(run, ema={ema}).sample({n}, seed={seed}, "
                            f"y=arange({n}) % {sampler.num_classes})")
    else:
        fake = sampler.sample(n, seed=seed)
        prov["sampling"] = f"ganforge.load(run, ema={ema}).sample({n}, seed={seed})"
    return fake, labels, (sampler.num_classes if labels is not None else 0), cfg, kind


def _real(real, cfg: config.Config | None, prov: dict) -> tuple[torch.Tensor, Dataset | None, tuple | None]:
    """(real samples, the Dataset when known by name, the gaussian-1d target (mean, std)); fills `prov`."""
    if real is not None and str(real).endswith(".npy"):
        x = _load_npy(real, "--real")
        prov["dataset"] = {"file": str(real), "sha256": _sha256(x)}
        return x, None, None
    ds = _real_dataset(str(real), cfg) if real is not None else load_dataset(cfg.data, seed=cfg.train.seed)
    prov["dataset"] = {"name": ds.name, "sha256": ds.sha256(), "size": len(ds)}
    normal = None
    if ds.name == "gaussian-1d":
        d = cfg.data if cfg is not None and cfg.data.name == "gaussian-1d" else config.DataConfig()
        normal = (d.mean, d.std)
        prov["dataset"]["target"] = f"N({d.mean}, {d.std}^2)"
    return ds.x, ds, normal


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
        metrics: metric names (default: by data kind, see `default_metrics`).
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
    fake, labels, num_classes, cfg, kind = _generated(run, samples, n, step, ema, seed, prov)
    real_x, dataset, normal = _real(real, cfg, prov)
    if tuple(fake.shape[1:]) != tuple(real_x.shape[1:]) and not (fake.ndim == real_x.ndim == 4):
        raise ConfigError(f"generated samples are shaped {tuple(fake.shape[1:])}, "
                          f"real ones {tuple(real_x.shape[1:])}")
    keep = torch.randperm(len(real_x), generator=torch.Generator().manual_seed(seed))[:n]
    real_x = real_x[keep.sort().values]  # (min(n, N_real), *shape): a seeded subset, in dataset order
    kind = kind or (dataset.kind if dataset is not None else _kind_of(tuple(real_x.shape[1:])))
    prov |= {"n_generated": len(fake), "n_real": len(real_x), "data_kind": kind}

    inp = Inputs(fake, real_x, kind, seed, dataset, normal, labels, num_classes)
    if metrics is not None and "cond_acc" in metrics and samples is not None:
        raise ConfigError("--metrics: cond_acc samples the run with labels itself; it cannot measure --samples")
    if metrics is not None:
        check_metrics(metrics, inp)
    image_metrics = {name for name, (kinds, _) in RUNNERS.items() if kinds == ("image",)}  # they need features
    if kind == "image" and (metrics is None or set(metrics) & image_metrics):
        _attach_extractor(inp, features, prov)
    names = metrics if metrics is not None else default_metrics(inp)
    for name in ("classes", "cond_acc"):
        if name in names and not isinstance(inp.extractor, F.DigitClassifier):
            raise ConfigError(f"--metrics: {name} needs the digit classifier (28x28x1 digit images)")
    if "cond_acc" in names and inp.num_classes != F.DIGIT_CLASSES:
        raise ConfigError(f"--metrics: cond_acc needs a run conditioned on the digit classifier's {F.DIGIT_CLASSES} "
                          f"classes, not {inp.num_classes}")
    if "cond_acc" in names and n < inp.num_classes:
        raise ConfigError(f"-n {n}: cond_acc needs at least one sample per class (-n >= {inp.num_classes})")
    values: dict[str, Any] = {}
    for name in names:
        values |= RUNNERS[name][1](inp)
    fn = M.METRICS
    prov["metrics"] = {k: {"implementation": f"{fn[k].__module__}.{fn[k].__name__}",
                           "version": ganforge.__version__} | PARAMS.get(k, {}) for k in names}
    result = _finite({"metrics": values, "provenance": prov})

    if out is None and run is not None:
        folder = Path(run) if Path(run).is_dir() else Path(run).parent
        name = f"step_{prov['step']:06d}" if samples is None else f"samples_{Path(samples).stem}"
        out = folder / "eval" / f"{name}.json"
    if out is not None:
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2) + "\n")
        result["path"] = str(out)
    return result


def check_metrics(names: list[str], inp: Inputs) -> None:
    """Unknown metric names, and metrics that do not apply to this data, are user errors."""
    for name in names:
        if name not in RUNNERS:
            raise ConfigError(f"--metrics: unknown metric '{name}' (metrics: {', '.join(RUNNERS)})")
        if inp.kind not in RUNNERS[name][0]:
            raise ConfigError(f"--metrics: {name} applies to {' or '.join(RUNNERS[name][0])} data, "
                              f"not {inp.kind}")
    if "modes" in names and (inp.dataset is None or inp.dataset.modes is None):
        raise ConfigError("--metrics: modes needs a dataset with known modes (ring-8, grid-25)")
    if "w1_normal" in names and inp.normal is None:
        raise ConfigError("--metrics: w1_normal needs the gaussian-1d dataset as the real data")
    if "cond_acc" in names and inp.labels is None:
        raise ConfigError("--metrics: cond_acc needs a conditional run (model.conditional != 'none')")


def format_table(result: dict) -> str:
    """The printed summary: one line per scalar value, then where the numbers came from."""
    p = result["provenance"]
    head = f"{p.get('run', p.get('samples_file'))}"
    if "step" in p:
        head += f"  step {p['step']}" + ("  (EMA)" if p.get("ema") else "")
    ds = p["dataset"]
    lines = [head, f"{p['n_generated']} generated vs {p['n_real']} real from "
                   f"{ds.get('name', ds.get('file'))} (sha256 {ds['sha256'][:12]}), seed {p['seed']}"]
    if "features" in p:
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
    e.add_argument("--metrics", help=f"comma-separated, from: {','.join(RUNNERS)} (default: by data kind)")
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
