"""Typed run configuration: nested dataclasses, every field with its default and a one-line comment.

The CLI, presets and TOML files only fill this in. Unknown keys and bad values raise `ConfigError`
naming the key (and, for a typo, the closest valid key).
"""

from __future__ import annotations

import dataclasses
import difflib
import sys
import types
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib
import tomli_w


class ConfigError(ValueError):
    """A user mistake in a config file, preset or command-line override."""


# --------------------------------------------------------------------------------------------------
# The schema


@dataclass
class DataConfig:
    name: str = "mnist-5k"  # dataset registry name: gaussian-1d, ring-8, grid-25, spirals, mnist, mnist-5k
    root: str = "~/.cache/ganforge"  # where downloaded datasets are cached
    mean: float = 5.0  # gaussian-1d: target mean
    std: float = 1.0  # gaussian-1d: target standard deviation
    mode_std: float = 0.0  # ring-8 / grid-25: std of each mode (0 = the benchmark's own value)
    n: int = 0  # toy datasets: number of training points (0 = 100,000)
    limit: int = 0  # keep only a fixed random subset of this many examples (0 = all)
    path: str = ""  # your data: a folder or .zip of images, or a .npy/.npz array ('' = the built-in data.name)
    resolution: int = 0  # images from a path: side in pixels (0 = smallest power of 2 >= the median side, max 128)
    fit: str = "crop"  # images from a path that are not square: crop (centre), resize (squash) or pad (white)
    channels: str = "auto"  # images from a path: auto (1 if all gray, else 3), 1, 3 or 4 (keep transparency)
    labels: str = "none"  # images from a folder: none, or folders (first-level subfolder names are the classes)
    labels_key: str = ""  # .npz arrays: the labels array ('' = 'labels' or 'y' when present)
    cache: str = "~/.cache/ganforge/datasets"  # decoded images are kept here as uint8 ('' = no cache)
    max_memory: float = 2.0  # GiB: data larger than this as float32 is streamed from the uint8 cache


@dataclass
class NetConfig:
    arch: str = "mlp"  # network family: mlp or dcgan
    hidden: list[int] = field(default_factory=lambda: [256, 256])  # mlp: width of each hidden layer
    activation: str = "relu"  # hidden activation: relu, leaky_relu, elu, gelu, silu, tanh
    leaky_slope: float = 0.2  # negative slope of leaky_relu
    dropout: float = 0.0  # dropout after each hidden activation (0 = none)
    norm: str = "none"  # normalisation after each hidden layer: none, batch, layer
    channels: int = 64  # dcgan: width of the widest conv layer
    blocks: int = 0  # dcgan: extra 3x3 stride-1 conv layers at each resolution (depth without resizing)
    fc: list[int] = field(default_factory=list)  # dcgan: hidden linear layers z -> fc -> convs (G), convs -> fc (D)
    spectral_norm: bool = False  # spectral normalisation on every weight layer (D only, usually)
    minibatch: str = "none"  # D only: none, discrimination (Salimans 2016), stddev (Karras 2018)
    init: str = "default"  # weight init: default (PyTorch's), dcgan (N(0, 0.02); norm gains N(1, 0.02); bias 0)


@dataclass
class ModelConfig:
    z_dim: int = 100  # size of the noise vector fed to G
    g: NetConfig = field(default_factory=NetConfig)  # generator network
    d: NetConfig = field(default_factory=lambda: NetConfig(activation="leaky_relu"))  # discriminator
    ema: float = 0.0  # decay of the moving average of G's weights (0 = off; 0.999 is typical)
    ema_start: int = 0  # step from which G_ema tracks G (before it, G_ema copies G)
    conditional: str = "none"  # label conditioning: none, concat, embed, projection, acgan (labelled data)
    pack: int = 1  # PacGAN: D judges this many samples at once, stacked along dim 1 (1 = off)
    latent_components: int = 0  # DeLiGAN mixture latent: G's noise from K disjoint Gaussian blobs (0 = off)
    latent_std: float = 0.1  # std of each blob of the mixture latent (its means are N(0, I) draws)
    sync_bn: bool = False  # torchrun: BatchNorm statistics over the global batch (SyncBatchNorm, CUDA), not per process


@dataclass
class OptimConfig:
    lr: float = 2e-4  # Adam learning rate
    beta1: float = 0.5  # Adam beta1 (0.9 is PyTorch's default; GANs usually prefer 0.5 or 0)
    beta2: float = 0.999  # Adam beta2
    weight_decay: float = 0.0  # L2 weight decay


@dataclass
class LossConfig:
    name: str = "bce"  # adversarial loss: bce (non-saturating), minimax, lsgan, hinge, wgan, ragan
    lsgan_a: float = 0.0  # lsgan: D's target for generated data
    lsgan_b: float = 1.0  # lsgan: D's target for real data
    lsgan_c: float = 1.0  # lsgan: the value G wants D to output for its samples
    label_smoothing: float = 0.0  # one-sided: real targets become 1 - label_smoothing for D
    regularizer: str = "none"  # gradient penalty on D: none, r1, r2, wgan-gp
    gamma: float = 10.0  # penalty weight: gamma/2 * R1 or R2 (Mescheder 2018), gamma * WGAN-GP
    reg_every: int = 1  # lazy regularisation: the penalty every k-th D step, scaled by k (Karras et al. 2020)
    aux_weight: float = 1.0  # acgan: weight of the auxiliary classification loss, for D and G
    aux_fake: bool = False  # acgan: D's class loss also covers generated samples (the paper's L_C)


@dataclass
class TrainConfig:
    steps: int = 0  # number of G updates (0 = derive from epochs)
    epochs: float = 0.0  # passes over the dataset, used when steps is 0
    batch_size: int = 64  # samples per D and G step
    d_steps: int = 1  # D updates per G update
    augment: str = ""  # DiffAugment policy on D's inputs, real and fake, e.g. "color,translation,cutout"
    instance_noise: float = 0.0  # std of Gaussian noise added to D's inputs, real and fake (0 = off)
    instance_noise_steps: int = 0  # decay instance_noise linearly to 0 over this many steps (0 = constant)
    xflip: bool = False  # images: flip each real image left-right with probability 1/2 (on the fly)
    seed: int = 0  # seeds torch, data order and the fixed sample noise
    device: str = "cpu"  # torch device: cpu, cuda, cuda:1, auto
    precision: str = "fp32"  # fp32 or bf16 (autocast; weights stay fp32)
    out: str = ""  # run folder ('' = runs/<preset or data>-<timestamp>)
    log_every: int = 100  # print and record losses every N steps
    sample_every: int = 1000  # write a sample picture every N steps (0 = only at the end)
    ckpt_every: int = 1000  # write the checkpoint every N steps (0 = only at the end)
    num_samples: int = 64  # size of the fixed noise batch for sample pictures (8x8 grid)
    hist_samples: int = 10000  # 1D data: generated values in the histogram
    progress: str = "auto"  # auto (bar on a terminal, lines otherwise), bar, lines, none
    lr_decay: str = "none"  # learning-rate schedule of both optimizers: none, linear (to 0), cosine (to 0)
    lr_decay_start: float = 0.0  # fraction of training after which the decay begins
    tensorboard: bool = True  # also log to RUN/tensorboard/ (when the tensorboard package is installed)
    doctor: bool = True  # watch the logged metrics and print warnings about common GAN problems
    animation: bool = True  # at the end, write RUN/samples.gif of the sample pictures over training
    on_nan: str = "stop"  # NaN/inf loss or weight: stop (last good checkpoint kept) or rollback (to it, lrs halved; 3x)


@dataclass
class EvalConfig:
    every: int = 0  # measure quality every N steps during training (0 = never; use `ganforge eval` after)
    metrics: list[str] = field(default_factory=list)  # metric names ([] = the defaults for the data kind)
    n: int = 2000  # generated samples per evaluation
    best: str = ""  # keep RUN/best.safetensors, the checkpoint with the best value of this metric ('' = off)


@dataclass
class Config:
    preset: str = ""  # the preset this config started from ('' = none)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    g_optim: OptimConfig = field(default_factory=OptimConfig)
    d_optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)


# Values restricted to a fixed set; checked at load so a typo fails before training starts.
CHOICES: dict[str, tuple[str, ...]] = {
    "activation": ("relu", "leaky_relu", "elu", "gelu", "silu", "tanh"),
    "norm": ("none", "batch", "layer", "instance"),
    "conditional": ("none", "concat", "embed", "projection", "acgan"),
    "minibatch": ("none", "discrimination", "stddev"),
    "init": ("default", "dcgan"),
    "regularizer": ("none", "r1", "r2", "wgan-gp"),
    "arch": ("mlp", "dcgan"),
    "precision": ("fp32", "bf16"),
    "progress": ("auto", "bar", "lines", "none"),
    "lr_decay": ("none", "linear", "cosine"),
    "on_nan": ("stop", "rollback"),
    "data.fit": ("crop", "resize", "pad"),  # full paths where a field name is used twice
    "data.channels": ("auto", "1", "3", "4"),
    "data.labels": ("none", "folders"),
}
POSITIVE = {"max_memory", "batch_size", "d_steps", "z_dim", "num_samples", "hist_samples", "log_every", "pack",
            "reg_every", "latent_std"}
NON_NEGATIVE = {"steps", "epochs", "every", "sample_every", "ckpt_every", "dropout", "ema", "n", "limit", "lr", "gamma",
                "aux_weight", "instance_noise", "instance_noise_steps", "latent_components",
                "blocks", "resolution"}
INT_AS_STR = {"data.channels"}  # string fields that also take a number (data.channels = 3)


# --------------------------------------------------------------------------------------------------
# dict <-> dataclass


def _closest(key: str, options: list[str]) -> str:
    match = difflib.get_close_matches(key, options, n=1, cutoff=0.5)
    return f" (did you mean '{match[0]}'?)" if match else f" (valid keys: {', '.join(options)})"


def _coerce(path: str, typ: Any, value: Any) -> Any:
    """Check `value` against the annotation `typ`, converting int->float where harmless."""
    origin = typing.get_origin(typ)
    if origin is list:
        (item,) = typing.get_args(typ)
        if not isinstance(value, list):
            raise ConfigError(f"{path}: expected a list, got {value!r}")
        return [_coerce(f"{path}[{i}]", item, v) for i, v in enumerate(value)]
    if origin in (typing.Union, types.UnionType):
        raise TypeError("unions are not used in the config schema")
    if typ is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{path}: expected a number, got {value!r}")
        return float(value)
    if typ is int:
        if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, float) and value.is_integer())):
            raise ConfigError(f"{path}: expected an integer, got {value!r}")
        return int(value)
    if typ is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{path}: expected true or false, got {value!r}")
        return value
    if typ is str:
        if path in INT_AS_STR and isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        if not isinstance(value, str):
            raise ConfigError(f"{path}: expected a string, got {value!r}")
        return value
    raise TypeError(f"unsupported config type {typ}")


def _build(cls: type, data: dict[str, Any], prefix: str, base: Any = None) -> Any:
    """Build dataclass `cls` from `data`, starting from `base` (an instance) or the defaults."""
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'}: expected a table, got {data!r}")
    obj = dataclasses.replace(base) if base is not None else cls()
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    for key, value in data.items():
        path = prefix + key
        if key not in names:
            raise ConfigError(f"unknown config key '{path}'" + _closest(key, names))
        typ = hints[key]
        if dataclasses.is_dataclass(typ):
            value = _build(typ, value, path + ".", getattr(obj, key))
        else:
            value = _coerce(path, typ, value)
            _check_value(path, key, value)
        setattr(obj, key, value)
    return obj


def _check_value(path: str, key: str, value: Any) -> None:
    choices = CHOICES.get(path, CHOICES.get(key))
    if choices is not None and value not in choices:
        raise ConfigError(f"{path}: '{value}' is not one of {', '.join(choices)}")
    if key in POSITIVE and value <= 0:
        raise ConfigError(f"{path}: must be positive, got {value}")
    if key in NON_NEGATIVE and value < 0:
        raise ConfigError(f"{path}: must be zero or positive, got {value}")


def from_dict(data: dict[str, Any], base: Config | None = None) -> Config:
    """Build a Config from nested dicts (e.g. parsed TOML), on top of `base` or the defaults."""
    cfg = _build(Config, data, "", base if base is not None else None)
    validate(cfg)
    return cfg


def to_dict(cfg: Config) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def validate(cfg: Config) -> None:
    """Checks that involve several fields or registries (imported lazily to avoid cycles)."""
    from ganforge import augment, data, losses

    if cfg.data.name not in data.DATASETS and not cfg.data.path:
        names = list(data.DATASETS)
        raise ConfigError(f"data.name: unknown dataset '{cfg.data.name}'" + _closest(cfg.data.name, names))
    if cfg.loss.name not in losses.LOSSES:
        raise ConfigError(f"loss.name: unknown loss '{cfg.loss.name}'" + _closest(cfg.loss.name, list(losses.LOSSES)))
    if cfg.eval.n <= 0:
        raise ConfigError(f"eval.n: must be positive, got {cfg.eval.n}")
    _check_eval(cfg.eval)
    if not 0 <= cfg.train.lr_decay_start < 1:
        raise ConfigError(f"train.lr_decay_start: must be in [0, 1), got {cfg.train.lr_decay_start}")
    if not 0 <= cfg.model.ema < 1:
        raise ConfigError(f"model.ema: must be in [0, 1), got {cfg.model.ema}")
    if not 0 <= cfg.loss.label_smoothing < 1:
        raise ConfigError(f"loss.label_smoothing: must be in [0, 1), got {cfg.loss.label_smoothing}")
    for net in ("g", "d"):
        if not 0 <= getattr(cfg.model, net).dropout < 1:
            raise ConfigError(f"model.{net}.dropout: must be in [0, 1)")
    try:
        augment.parse_policy(cfg.train.augment)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    m = cfg.model.pack
    if cfg.train.batch_size % m:
        raise ConfigError(f"model.pack: train.batch_size ({cfg.train.batch_size}) is not a multiple of pack ({m})")
    if m > 1 and cfg.model.conditional != "none":
        raise ConfigError("model.pack: packing works without labels only (set model.conditional = 'none')")
    d_batch = cfg.train.batch_size // m
    if cfg.model.d.minibatch == "stddev" and d_batch % min(4, d_batch):
        raise ConfigError(f"model.d.minibatch: 'stddev' needs D's batch ({d_batch}) to be a multiple of 4")


def _check_eval(e: EvalConfig) -> None:
    """eval.metrics must be registered metrics and eval.best a value one of them reports."""
    from ganforge.metrics.registry import METRICS, providers

    for m in e.metrics:
        if m not in METRICS:
            raise ConfigError(f"eval.metrics: unknown metric '{m}'" + _closest(m, list(METRICS)).replace("valid keys",
                                                                                                       "metrics"))
    if not e.best:
        return
    offered = providers(e.best)
    if not offered:
        values = sorted({v for m in METRICS.values() for v in m.higher})
        raise ConfigError(f"eval.best: '{e.best}' is not a value any metric reports" +
                          _closest(e.best, values).replace("valid keys", "values"))
    if e.metrics and not set(offered) & set(e.metrics):
        raise ConfigError(f"eval.best: '{e.best}' is reported by {' or '.join(offered)}, which eval.metrics "
                          f"{e.metrics} does not include")


# --------------------------------------------------------------------------------------------------
# TOML, presets, overrides


def load_toml(path: str | Path, base: Config | None = None) -> Config:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None
    return from_dict(data, base)


def dump_toml(cfg: Config) -> str:
    return tomli_w.dumps(to_dict(cfg))


def presets() -> list[str]:
    """Names of the presets shipped with the package."""
    folder = resources.files("ganforge") / "presets"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".toml"))


def load_preset(name: str) -> Config:
    names = presets()
    if name not in names:
        raise ConfigError(f"unknown preset '{name}'" + _closest(name, names).replace("valid keys", "presets"))
    text = (resources.files("ganforge") / "presets" / f"{name}.toml").read_text()
    cfg = from_dict(tomllib.loads(text))
    cfg.preset = name
    return cfg


def parse_override(item: str) -> dict[str, Any]:
    """Turn 'a.b.c=value' into {'a': {'b': {'c': value}}}; the value is parsed as TOML, else a string."""
    if "=" not in item:
        raise ConfigError(f"--set expects section.key=value, got '{item}'")
    key, raw = item.split("=", 1)
    key = key.strip()
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    out: dict[str, Any] = {}
    node = out
    parts = key.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
    return out


def apply_overrides(cfg: Config, items: list[str]) -> Config:
    for item in items:
        cfg = from_dict(parse_override(item), cfg)
    return cfg


def total_steps(cfg: Config, dataset_size: int) -> int:
    """G updates to run: `train.steps`, or `train.epochs` passes over the data at this batch size."""
    if cfg.train.steps > 0:
        return cfg.train.steps
    if cfg.train.epochs > 0:
        per_epoch = max(1, dataset_size // cfg.train.batch_size)
        return max(1, round(cfg.train.epochs * per_epoch))
    raise ConfigError("train.steps or train.epochs must be set")
