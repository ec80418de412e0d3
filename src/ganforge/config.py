"""Typed run configuration: nested dataclasses, every field with its default and a one-line comment.

The CLI, presets and TOML files only fill this in. Unknown keys and bad values raise `ConfigError`
naming the key (and, for a typo, the closest valid key).
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import importlib
import math
import re
import sys
import types
import typing
from collections.abc import Callable, Iterable
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
    name: str = "mnist-5k"  # registry name: gaussian-1d, ring-8, grid-25, spirals, mnist, mnist-5k, diamonds, names
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
    holdout: float = 0.2  # tables and text: share of rows/lines kept out of training (seeded), for the metrics
    columns: dict[str, str] = field(default_factory=dict)  # tables: kind per column, e.g. {zip = "categorical"}
    target: str = ""  # tables: the column ML efficacy predicts ('' = no ML efficacy)
    column: str = ""  # text from a CSV: the column holding the lines ('' = a text file, one sample per line)
    tokens: str = "chars"  # text: chars or words
    max_len: int = 0  # text: longest line in tokens (0 = the 99th percentile of lengths, at most 64)
    lowercase: bool = False  # text: lowercase every line first


@dataclass
class NetConfig:
    arch: str = "mlp"  # network family: mlp, dcgan, ctgan (tables), textcnn or textrnn (text; textrnn: G only)
    hidden: list[int] = field(default_factory=lambda: [256, 256])  # mlp, ctgan: width of each hidden layer
    activation: str = "relu"  # hidden activation: relu, leaky_relu, elu, gelu, silu, tanh
    leaky_slope: float = 0.2  # negative slope of leaky_relu
    dropout: float = 0.0  # dropout after each hidden activation (0 = none)
    norm: str = "none"  # normalisation after each hidden layer: none, batch, layer
    channels: int = 64  # dcgan: width of the widest conv layer; textcnn: of every conv layer; textrnn: the LSTM's
    blocks: int = 0  # dcgan: extra 3x3 stride-1 conv layers at each resolution; textcnn: residual blocks;
    # textrnn: LSTM layers (at least 1)
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
    tau: float = 0.2  # tables and text: temperature of G's Gumbel-softmax one-hot heads
    text_head: str = "softmax"  # textcnn G: its output: softmax (Gulrajani et al. 2017) or gumbel (straight-through)
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
    mle_weight: float = 0.0  # textrnn G: weight of its NLL of the real batch (nats/token) added to G's loss


@dataclass
class TrainConfig:
    steps: int = 0  # number of G updates (0 = derive from epochs)
    epochs: float = 0.0  # passes over the dataset, used when steps is 0
    max_epochs: float = 0.0  # at most this many passes: longer runs are cut, train.mle_steps in proportion (0 = none)
    batch_size: int = 64  # samples per D and G step
    d_steps: int = 1  # D updates per G update
    mle_steps: int = 0  # textrnn G: the first steps train G by maximum likelihood alone (D waits), then the GAN
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


# --------------------------------------------------------------------------------------------------
# Validation rules, by full path ('*' matches within one name: model.*.norm is model.g.norm and
# model.d.norm). Names are read from the registries that use them, when a value is first checked, so a
# comment and a check cannot drift apart. Beyond its rule, every float must be finite, every int fit an
# int64, and every string be printable (no newline or NUL: values are paths and appear in one-line errors).

INT_MAX = 2**63 - 1  # the largest int64: seeds and counts end up in torch
WIDTH_MAX = 2**16  # z_dim and layer widths: one 65,536 x 65,536 linear layer already holds 16 GiB of weights
BATCH_MAX = 2**24  # samples in one batch


def _names(module: str, registry: str, *first: str) -> Callable[[], tuple[str, ...]]:
    """The keys of ganforge.<module>.<registry> (a dict or tuple), after `first`; imported when called."""
    return lambda: (*first, *(str(k) for k in getattr(importlib.import_module(f"ganforge.{module}"), registry)))


def _norms_by_arch() -> dict[str, tuple[str, ...]]:
    """model.*.norm by model.*.arch: the mlp normalises features (1d), dcgan feature maps (2d)."""
    from ganforge.models import layers

    return {"mlp": tuple(layers.NORMS_1D), "dcgan": tuple(layers.NORMS_2D), "ctgan": ("none",), "textcnn": ("none",),
            "textrnn": ("none",)}


def _all_norms() -> tuple[str, ...]:
    return tuple(dict.fromkeys(n for names in _norms_by_arch().values() for n in names))


_DEVICE = re.compile(r"auto|cpu|mps|cuda(:\d{1,4})?")


def _check_device(path: str, value: str) -> None:
    """train.device must name a torch device (whether it exists is checked when training starts)."""
    if not _DEVICE.fullmatch(value):
        raise ConfigError(f"{path}: {_show(value)} is not a device (cpu, cuda, cuda:N, mps or auto)")


def _check_augment(path: str, value: str) -> None:
    from ganforge import augment

    try:
        augment.parse_policy(value)
    except ValueError as e:
        raise ConfigError(str(e)) from None


PRECISIONS = ("fp32", "bf16")  # train.recipe: bf16 autocast, else fp32
PROGRESS = ("auto", "bar", "lines", "none")  # progress.Progress modes
LR_DECAYS = ("none", "linear", "cosine")  # train.lr_factor
SMOOTHED_LOSSES = ("bce", "minimax", "lsgan", "ragan")  # losses whose D loss reads `smooth`; hinge and wgan ignore it


@dataclass(frozen=True)
class Effect:
    """Where a value does anything: while the value at `on` is one of `only()`, or (no `only`) above 0."""

    on: str  # full path of the switch ('*' as in the rule's own path; '' = nowhere, see `note`)
    only: Callable[[], Iterable[str]] | None = None  # the switch values under which the value applies
    note: str = ""  # with on='': why the value never applies here


@dataclass(frozen=True)
class Rule:
    """What the value at one path may be. Ranges apply to numbers and to each number of a list."""

    lo: float | None = None  # smallest value allowed
    lo_open: bool = False  # lo itself is not allowed (lo=0: "must be positive")
    hi: float | None = None  # largest value allowed by its meaning (ema < 1)
    hi_open: bool = False  # hi itself is not allowed
    max: float | None = None  # a sanity limit no real use reaches (ints: INT_MAX when unset)
    choices: Callable[[], Iterable[str]] | None = None  # the allowed names, from the registry that uses them
    by: tuple[str, Callable[[], dict[str, tuple[str, ...]]]] | None = None  # (switch, names allowed per switch value)
    check: Callable[[str, Any], None] | None = None  # a parse check of a string: raises ConfigError
    effect: Effect | None = None  # a value other than the default is an error where it has no effect


POSITIVE = dict(lo=0, lo_open=True)
NON_NEGATIVE = dict(lo=0)
FRACTION = dict(lo=0, hi=1, hi_open=True)  # [0, 1)
ON_DCGAN = Effect("model.*.arch", lambda: ("dcgan",))
ON_CONV = Effect("model.*.arch", lambda: ("dcgan", "textcnn", "textrnn"))
ON_TEXTRNN = Effect("model.g.arch", lambda: ("textrnn",))
ON_TEXTCNN = Effect("model.g.arch", lambda: ("textcnn",))

RULES: dict[str, Rule] = {
    "data.std": Rule(**POSITIVE),
    "data.mode_std": Rule(**NON_NEGATIVE),
    "data.n": Rule(**NON_NEGATIVE, max=2**27),
    "data.limit": Rule(**NON_NEGATIVE),
    "data.resolution": Rule(**NON_NEGATIVE, max=2**12),
    "data.fit": Rule(choices=_names("data.images", "FITS")),
    "data.channels": Rule(choices=_names("data.images", "CHANNEL_CHOICES")),
    "data.labels": Rule(choices=_names("data.images", "LABEL_CHOICES")),
    "data.max_memory": Rule(**POSITIVE),
    "data.holdout": Rule(**FRACTION),
    "data.columns": Rule(choices=_names("data.tables", "KINDS")),  # each value
    "data.tokens": Rule(choices=_names("data.text", "TOKENS")),
    "data.max_len": Rule(**NON_NEGATIVE, max=2**12),
    "model.z_dim": Rule(**POSITIVE, max=WIDTH_MAX),
    "model.*.arch": Rule(choices=_names("models", "ARCH_NAMES")),
    "model.*.hidden": Rule(**POSITIVE, max=WIDTH_MAX, effect=Effect("model.*.arch", lambda: ("mlp", "ctgan"))),
    "model.*.activation": Rule(choices=_names("models.layers", "ACTIVATIONS")),
    "model.*.leaky_slope": Rule(effect=Effect("model.*.activation", lambda: ("leaky_relu",))),
    "model.*.dropout": Rule(**FRACTION),
    "model.*.norm": Rule(choices=_all_norms, by=("model.*.arch", _norms_by_arch)),
    "model.*.channels": Rule(**POSITIVE, max=WIDTH_MAX, effect=ON_CONV),
    "model.*.blocks": Rule(**NON_NEGATIVE, max=2**8, effect=ON_CONV),
    "model.*.fc": Rule(**POSITIVE, max=WIDTH_MAX, effect=ON_DCGAN),
    "model.g.minibatch": Rule(choices=_names("models.layers", "MINIBATCH"),
                              effect=Effect("", note="on G: minibatch layers are D's (model.d.minibatch)")),
    "model.d.minibatch": Rule(choices=_names("models.layers", "MINIBATCH")),
    "model.*.init": Rule(choices=_names("models.layers", "INITS")),
    "model.ema": Rule(**FRACTION),
    "model.ema_start": Rule(**NON_NEGATIVE, effect=Effect("model.ema")),
    "model.conditional": Rule(choices=_names("models.conditional", "MODES")),
    "model.pack": Rule(**POSITIVE, max=BATCH_MAX),
    "model.latent_components": Rule(**NON_NEGATIVE, max=WIDTH_MAX),
    "model.latent_std": Rule(**POSITIVE, effect=Effect("model.latent_components")),
    "model.tau": Rule(**POSITIVE),
    "model.text_head": Rule(choices=_names("models.text", "MODES"), effect=ON_TEXTCNN),
    "*_optim.lr": Rule(**NON_NEGATIVE),
    "*_optim.beta1": Rule(**FRACTION),
    "*_optim.beta2": Rule(**FRACTION),
    "*_optim.weight_decay": Rule(**NON_NEGATIVE),
    "loss.name": Rule(choices=_names("losses", "LOSSES")),
    "loss.lsgan_*": Rule(effect=Effect("loss.name", lambda: ("lsgan",))),
    "loss.label_smoothing": Rule(**FRACTION, effect=Effect("loss.name", lambda: SMOOTHED_LOSSES)),
    "loss.regularizer": Rule(choices=_names("regularizers", "REGULARIZERS", "none")),
    "loss.gamma": Rule(**NON_NEGATIVE, effect=Effect("loss.regularizer", _names("regularizers", "REGULARIZERS"))),
    "loss.reg_every": Rule(**POSITIVE, max=2**20,
                           effect=Effect("loss.regularizer", _names("regularizers", "REGULARIZERS"))),
    "loss.aux_*": Rule(**NON_NEGATIVE, effect=Effect("model.conditional", lambda: ("acgan",))),
    "loss.mle_weight": Rule(**NON_NEGATIVE, max=1e6, effect=ON_TEXTRNN),
    "train.steps": Rule(**NON_NEGATIVE, max=2**40),
    "train.epochs": Rule(**NON_NEGATIVE, max=1e6),  # no effect when train.steps is set: documented precedence
    "train.max_epochs": Rule(**NON_NEGATIVE, max=1e6),
    "train.batch_size": Rule(**POSITIVE, max=BATCH_MAX),
    "train.d_steps": Rule(**POSITIVE, max=2**16),
    "train.mle_steps": Rule(**NON_NEGATIVE, max=2**40, effect=ON_TEXTRNN),
    "train.augment": Rule(check=_check_augment),
    "train.instance_noise": Rule(**NON_NEGATIVE),
    "train.instance_noise_steps": Rule(**NON_NEGATIVE, effect=Effect("train.instance_noise")),
    "train.seed": Rule(**NON_NEGATIVE),
    "train.device": Rule(check=_check_device),
    "train.precision": Rule(choices=lambda: PRECISIONS),
    "train.log_every": Rule(**POSITIVE),
    "train.sample_every": Rule(**NON_NEGATIVE),
    "train.ckpt_every": Rule(**NON_NEGATIVE),
    "train.num_samples": Rule(**POSITIVE, max=2**16),
    "train.hist_samples": Rule(**POSITIVE, max=2**24),
    "train.progress": Rule(choices=lambda: PROGRESS),
    "train.lr_decay": Rule(choices=lambda: LR_DECAYS),
    "train.lr_decay_start": Rule(**FRACTION, effect=Effect("train.lr_decay", lambda: LR_DECAYS[1:])),
    "train.on_nan": Rule(choices=lambda: ("stop", "rollback")),  # train.train: stop, or roll back to the checkpoint
    "eval.every": Rule(**NON_NEGATIVE),
    "eval.metrics": Rule(effect=Effect("eval.every")),  # names: checked against the metric registry in validate
    "eval.n": Rule(**POSITIVE, max=2**20, effect=Effect("eval.every")),
    "eval.best": Rule(effect=Effect("eval.every")),
}
INT_AS_STR = {"data.channels"}  # string fields that also take a number (data.channels = 3)


def _show(value: Any, limit: int = 80) -> str:
    """A value as one line of an error message: its repr, shortened; huge integers by their size."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 256:
        return f"a {int(value.bit_length() * math.log10(2)) + 1}-digit integer"
    try:
        text = repr(value)
    except ValueError:  # a list holding an integer too long to print
        return f"a {type(value).__name__} holding a huge integer"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _field_paths(cls: type = None, prefix: str = "") -> list[str]:
    """Full paths of every value in the schema: data.name, ..., model.g.hidden, ..."""
    cls = cls or Config
    hints = typing.get_type_hints(cls)
    out: list[str] = []
    for f in dataclasses.fields(cls):
        typ = hints[f.name]
        out += _field_paths(typ, prefix + f.name + ".") if dataclasses.is_dataclass(typ) else [prefix + f.name]
    return out


@functools.lru_cache(maxsize=1)
def _rules_by_path() -> dict[str, Rule]:
    """RULES resolved to concrete paths ('*' in a rule's switch replaced by what it matched); exact wins."""
    paths = _field_paths()
    out: dict[str, Rule] = {}
    for pattern, rule in sorted(RULES.items(), key=lambda kv: "*" not in kv[0]):  # wildcards first
        regex = re.compile(re.escape(pattern).replace(r"\*", "([^.]*)"))
        matched = [(p, m) for p in paths if (m := regex.fullmatch(p))]
        if not matched:
            raise TypeError(f"RULES['{pattern}'] matches no config field")
        for path, m in matched:
            out[path] = _resolve(rule, m.groups())
    return out


def _resolve(rule: Rule, stars: tuple[str, ...]) -> Rule:
    """The rule with each '*' of its switch paths replaced by the text its own path's '*' matched."""
    def sub(path: str) -> str:
        for s in stars:
            path = path.replace("*", s, 1)
        return path

    effect = dataclasses.replace(rule.effect, on=sub(rule.effect.on)) if rule.effect else None
    by = (sub(rule.by[0]), rule.by[1]) if rule.by else None
    return dataclasses.replace(rule, effect=effect, by=by)


def _get(cfg: Config, path: str) -> Any:
    return functools.reduce(getattr, path.split("."), cfg)


def _check_value(path: str, value: Any, rule: Rule | None = None) -> None:
    """Check one value (each item of a list) against its rule and the checks every value of its type gets."""
    rule = rule or _rules_by_path().get(path.split("[")[0]) or Rule()
    if isinstance(value, list):
        for i, item in enumerate(value):
            _check_value(f"{path}[{i}]", item, rule)
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not key.isprintable() or not key:
                raise ConfigError(f"{path}: {_show(key)} is not a usable name")
            _check_value(f"{path}.{key}", item, rule)
        return
    if isinstance(value, str):
        if not value.isprintable():
            raise ConfigError(f"{path}: {_show(value)} holds a control character (newline, tab, NUL, ...)")
        if rule.choices is not None and value not in (names := tuple(rule.choices())):
            raise ConfigError(f"{path}: {_show(value)} is not one of {', '.join(names)}")
        if rule.check is not None:
            rule.check(path, value)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{path}: must be a finite number, got {value}")
        _check_range(path, value, rule)


def _check_range(path: str, v: float, r: Rule) -> None:
    below = r.lo is not None and (v < r.lo or (r.lo_open and v == r.lo))
    above = r.hi is not None and (v > r.hi or (r.hi_open and v == r.hi))
    if (below or above) and r.lo is not None and r.hi is not None:
        interval = f"{'(' if r.lo_open else '['}{r.lo:g}, {r.hi:g}{')' if r.hi_open else ']'}"
        raise ConfigError(f"{path}: must be in {interval}, got {_show(v)}")
    if below:
        what = ("positive" if r.lo_open else "zero or positive") if r.lo == 0 else \
            f"{'above' if r.lo_open else 'at least'} {r.lo:g}"
        raise ConfigError(f"{path}: must be {what}, got {_show(v)}")
    if above:
        raise ConfigError(f"{path}: must be {'below' if r.hi_open else 'at most'} {r.hi:g}, got {_show(v)}")
    limit = r.max if r.max is not None else INT_MAX if isinstance(v, int) else None
    if limit is not None and v > limit:
        text = "below 2**63" if limit == INT_MAX else f"at most {int(limit) if limit == int(limit) else limit}"
        raise ConfigError(f"{path}: must be {text}, got {_show(v)}")


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
            raise ConfigError(f"{path}: expected a list, got {_show(value)}")
        return [_coerce(f"{path}[{i}]", item, v) for i, v in enumerate(value)]
    if origin is dict:
        _, item = typing.get_args(typ)
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a table of name = value, got {_show(value)}")
        return {str(k): _coerce(f"{path}.{k}", item, v) for k, v in value.items()}
    if origin in (typing.Union, types.UnionType):
        raise TypeError("unions are not used in the config schema")
    if typ is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{path}: expected a number, got {_show(value)}")
        try:
            return float(value)
        except OverflowError:  # an int beyond float's range
            raise ConfigError(f"{path}: must be a finite number, got {_show(value)}") from None
    if typ is int:
        if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, float) and value.is_integer())):
            raise ConfigError(f"{path}: expected an integer, got {_show(value)}")
        return int(value)
    if typ is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{path}: expected true or false, got {_show(value)}")
        return value
    if typ is str:
        if path in INT_AS_STR and isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        if not isinstance(value, str):
            raise ConfigError(f"{path}: expected a string, got {_show(value)}")
        return value
    raise TypeError(f"unsupported config type {typ}")


def _build(cls: type, data: dict[str, Any], prefix: str, base: Any = None) -> Any:
    """Build dataclass `cls` from `data`, starting from `base` (an instance) or the defaults."""
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'}: expected a table, got {_show(data)}")
    obj = dataclasses.replace(base) if base is not None else cls()
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    for key, value in data.items():
        path = prefix + key
        if key not in names:
            raise ConfigError(f"unknown config key {_show(path)}" + _closest(key, names))
        typ = hints[key]
        if dataclasses.is_dataclass(typ):
            value = _build(typ, value, path + ".", getattr(obj, key))
        else:
            value = _coerce(path, typ, value)
            if isinstance(value, dict):  # tables of names merge: --set data.columns.zip=categorical adds one
                value = getattr(obj, key) | value
            _check_value(path, value)
        setattr(obj, key, value)
    return obj


def from_dict(data: dict[str, Any], base: Config | None = None) -> Config:
    """Build a Config from nested dicts (e.g. parsed TOML), on top of `base` or the defaults."""
    cfg = _build(Config, data, "", base if base is not None else None)
    validate(cfg)
    return cfg


def from_saved(data: dict[str, Any]) -> Config:
    """A run's saved config (a checkpoint's "config"): checked like any config, except that a value without
    effect is not blamed on the user: it was the preset's when the run was made, and presets change."""
    cfg = _build(Config, data, "")
    validate(cfg, unchosen=cfg)
    return cfg


def to_dict(cfg: Config) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def validate(cfg: Config, unchosen: Config | None = None) -> None:
    """Check every value against its rule in RULES, then the checks that involve several values.

    A value that differs from its default and from the value of the preset the config started from (and from
    `unchosen`'s: a resumed run's saved config), but has no effect, such as loss.label_smoothing with the hinge
    loss, is an error: the user meant something.
    """
    from ganforge import data

    rules = _rules_by_path()
    for path in _field_paths():
        _check_value(path, _get(cfg, path), rules.get(path))
    if cfg.data.name not in data.DATASETS and not cfg.data.path:
        names = list(data.DATASETS)
        raise ConfigError(f"data.name: unknown dataset {_show(cfg.data.name)}" + _closest(cfg.data.name, names))
    for path, rule in rules.items():
        if rule.by is not None:
            _check_by(path, _get(cfg, path), rule.by[0], _get(cfg, rule.by[0]), rule.by[1]())
    _check_eval(cfg.eval)
    bases = [Config(), *([_preset_config(cfg.preset)] if cfg.preset and cfg.preset in presets() else []),
             *([unchosen] if unchosen is not None else [])]
    for path, rule in rules.items():
        value = _get(cfg, path)
        if rule.effect is not None and all(value != _get(c, path) for c in bases):
            _check_effect(cfg, path, value, rule.effect)
    m = cfg.model.pack
    if cfg.train.batch_size % m:
        raise ConfigError(f"model.pack: train.batch_size ({cfg.train.batch_size}) is not a multiple of pack ({m})")
    if m > 1 and cfg.model.conditional != "none":
        raise ConfigError("model.pack: packing works without labels only (set model.conditional = 'none')")
    d_batch = cfg.train.batch_size // m
    if cfg.model.d.minibatch == "stddev" and d_batch % min(4, d_batch):
        raise ConfigError(f"model.d.minibatch: 'stddev' needs D's batch ({d_batch}) to be a multiple of 4")


def _check_by(path: str, value: str, on: str, switch: str, allowed: dict[str, tuple[str, ...]]) -> None:
    """`value` must be one of the names allowed for the switch's value (model.g.norm by model.g.arch)."""
    names = allowed.get(switch, ())
    if value not in names:
        where = " and ".join(k for k, v in allowed.items() if value in v)
        raise ConfigError(f"{path}: {_show(value)} applies to {where} nets only ({on} = {_show(switch)} takes "
                          f"{', '.join(names)})")


def _check_effect(cfg: Config, path: str, value: Any, e: Effect) -> None:
    """A value the user changed must do something: raise when its switch turns it off."""
    if not e.on:
        raise ConfigError(f"{path}: {_show(value)} has no effect {e.note}")
    switch = _get(cfg, e.on)
    if e.only is None:
        ok, applies = switch > 0, f"when {e.on} > 0"
    else:
        names = tuple(e.only())
        ok, applies = str(switch) in names, f"to {', '.join(names)}"
    if not ok:
        raise ConfigError(f"{path}: {_show(value)} has no effect with {e.on} = {_show(switch)} (it applies {applies})")


@functools.lru_cache(maxsize=16)
def _preset_config(name: str) -> Config:
    """A preset's values, which (like the defaults) are not the user's choice: validate does not blame them."""
    return load_preset(name)


def _check_eval(e: EvalConfig) -> None:
    """eval.metrics must be registered metrics and eval.best a value one of them reports."""
    from ganforge.metrics.registry import METRICS, providers

    for m in e.metrics:
        if m not in METRICS:
            raise ConfigError(f"eval.metrics: unknown metric {_show(m)}" +
                              _closest(m, list(METRICS)).replace("valid keys", "metrics"))
    if not e.best:
        return
    offered = providers(e.best)
    if not offered:
        values = sorted({v for m in METRICS.values() for v in m.higher})
        raise ConfigError(f"eval.best: {_show(e.best)} is not a value any metric reports" +
                          _closest(e.best, values).replace("valid keys", "values"))
    if e.metrics and not set(offered) & set(e.metrics):
        raise ConfigError(f"eval.best: {_show(e.best)} is reported by {' or '.join(offered)}, which eval.metrics "
                          f"{e.metrics} does not include")


# --------------------------------------------------------------------------------------------------
# TOML, presets, overrides


def load_toml(path: str | Path, base: Config | None = None) -> Config:
    """Read a TOML config file on top of `base` (e.g. a preset) or the defaults."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {_printable(str(path))}")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{_printable(str(path))}: not a TOML file (not UTF-8 text)") from None
    except ValueError as e:  # TOMLDecodeError, or an integer too long to convert
        raise ConfigError(f"{_printable(str(path))}: not valid TOML: {_printable(str(e))}") from None
    return from_dict(data, base)


def _printable(text: str) -> str:
    """`text` as is when printable, else its repr: an error message stays on one line."""
    return text if text.isprintable() else repr(text)


def dump_toml(cfg: Config) -> str:
    return tomli_w.dumps(to_dict(cfg))


def presets() -> list[str]:
    """Names of the presets shipped with the package."""
    folder = resources.files("ganforge") / "presets"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".toml"))


def load_preset(name: str) -> Config:
    """The shipped preset `name` (see `presets()`), with cfg.preset set to its name."""
    names = presets()
    if name not in names:
        raise ConfigError(f"unknown preset {_show(name)}" + _closest(name, names).replace("valid keys", "presets"))
    text = (resources.files("ganforge") / "presets" / f"{name}.toml").read_text()
    cfg = from_dict(tomllib.loads(text))
    cfg.preset = name
    return cfg


def parse_override(item: str) -> dict[str, Any]:
    """Turn 'a.b.c=value' into {'a': {'b': {'c': value}}}; the value is parsed as TOML, else a string."""
    if "=" not in item:
        raise ConfigError(f"--set expects section.key=value, got {_show(item)}")
    key, raw = item.split("=", 1)
    key = key.strip()
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:  # not a TOML value: a plain string
        value = raw
    except ValueError:  # an integer too long for Python to convert (over 4,300 digits)
        raise ConfigError(f"{_show(key)}: a number of {len(raw.strip())} characters is too long") from None
    out: dict[str, Any] = {}
    node = out
    parts = key.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
    return out


def apply_overrides(cfg: Config, items: list[str], unchosen: Config | None = None) -> Config:
    """Apply 'key=value' items in order (a later one wins), then validate the result once (`unchosen`: as in
    validate).

    Checks between values run on the result, so the order of the items does not matter to them
    (--set loss.label_smoothing=0.1 may come before or after --loss bce).
    """
    for item in items:
        cfg = _build(Config, parse_override(item), "", cfg)
    validate(cfg, unchosen)
    return cfg


def _planned_steps(cfg: Config, per_epoch: int) -> int:
    if cfg.train.steps > 0:
        return cfg.train.steps
    if cfg.train.epochs > 0:
        return max(1, round(cfg.train.epochs * per_epoch))
    raise ConfigError("train.steps or train.epochs must be set")


def total_steps(cfg: Config, dataset_size: int) -> int:
    """G updates to run: `train.steps`, or `train.epochs` passes over the data at this batch size; at most
    `train.max_epochs` passes when that is set (a small dataset is not learned by heart)."""
    per_epoch = max(1, dataset_size // cfg.train.batch_size)
    total = _planned_steps(cfg, per_epoch)
    if cfg.train.max_epochs > 0:
        total = min(total, max(1, round(cfg.train.max_epochs * per_epoch)))
    return total


def mle_steps(cfg: Config, dataset_size: int) -> int:
    """The steps of the likelihood phase: `train.mle_steps`, cut in proportion when train.max_epochs shortens
    the run."""
    planned = _planned_steps(cfg, max(1, dataset_size // cfg.train.batch_size))
    total = total_steps(cfg, dataset_size)
    return cfg.train.mle_steps if total == planned else round(cfg.train.mle_steps * total / planned)
