"""`ganforge train --init`: start a new run from trained weights (fine-tuning), unlike --resume.

G (and D, when the source is a training checkpoint; an exported G has none) are copied into the freshly
built run; G_ema starts from the source's G_ema when it has one, else from its G. The optimizers, the
step count, the data order and the random streams stay those of the new run: only weights move.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from ganforge import checkpoint
from ganforge.config import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from ganforge.train import Run

HINTS = {"g": "model.z_dim or model.g must match", "d": "model.d and model.pack must match"}
KEY_HINTS = {"latent.": "model.latent_components must match", "code.": "model.conditional must match",
             "embed.": "model.conditional must match", "aux.": "model.conditional must match"}


def init_from(run: Run, path: str | Path) -> str:
    """Load G, D and G_ema weights from a run folder, checkpoint or exported G into `run` (a train.Run); a log line.

    Reads with `checkpoint.read` (safetensors + JSON, never code). Data shape and classes must agree, and
    every tensor must exist in both with the same shape, else a ConfigError names the first that differs.
    """
    src = Path(path)
    file = src / "checkpoint.safetensors" if src.is_dir() else src
    if not file.is_file():
        raise ConfigError(f"--init: no checkpoint at {src} (expected a run folder or a .safetensors file)")
    fmt, tensors, state = checkpoint.read(file)
    _check_data(run, state, src)
    if fmt == checkpoint.EXPORT_FORMAT:
        g, d, g_ema = tensors, {}, tensors
    else:
        g, d = checkpoint.prefixed(tensors, "g"), checkpoint.prefixed(tensors, "d")
        g_ema = checkpoint.prefixed(tensors, "g_ema") or g
    _check_shapes("g", run.G, g, src)
    if d:
        _check_shapes("d", run.D, d, src)
    with torch.no_grad():
        run.G.load_state_dict(g)
        if d:
            run.D.load_state_dict(d)
        if run.G_ema is not None:
            run.G_ema.load_state_dict(g_ema)
    step = state.get("step", "?")
    if fmt == checkpoint.EXPORT_FORMAT:
        kind = "G_ema" if state.get("ema") else "G"
        nets = "G and G_ema" if run.G_ema is not None else "G"
        return f"initialised {nets} from {src} (exported {kind}, step {step}); D starts fresh"
    nets = "G, D and G_ema" if run.G_ema is not None else "G and D"
    ema = ""
    if run.G_ema is not None:
        ema = "; G_ema from its G_ema" if checkpoint.prefixed(tensors, "g_ema") else "; G_ema from its G"
    return f"initialised {nets} from {src} (step {step}{ema}); optimizers and step start fresh"


def _check_data(run: Run, state: dict, src: Path) -> None:
    """The source must have made data of this run's family and shape, and (conditional) as many classes."""
    shape, here = tuple(state.get("data_shape") or ()), tuple(run.data.shape)
    family = state.get("family") or run.data.family.name
    if family != run.data.family.name or shape != here:
        raise ConfigError(f"--init: {src} was trained on {family} data shaped {shape}, but this run's data is "
                          f"{run.data.family.name} shaped {here}")
    k, k_here = int(state.get("num_classes") or 0), run.data.num_classes
    if run.cfg.model.conditional != "none" and k != k_here:
        raise ConfigError(f"--init: {src} has {k} classes but this run's data has {k_here}: a conditional G "
                          "needs the same classes")


def _check_shapes(net: str, model: nn.Module, source: dict[str, torch.Tensor], src: Path) -> None:
    """Raise a one-line ConfigError at the first tensor (in the model's order) missing or shaped differently."""
    ours = model.state_dict()
    for key, value in ours.items():
        if key not in source:
            raise ConfigError(f"--init: {net}.{key} is missing in {src}: {_hint(net, key)}")
        if tuple(source[key].shape) != tuple(value.shape):
            raise ConfigError(f"--init: {net}.{key} is {tuple(source[key].shape)} in {src} but {tuple(value.shape)} "
                              f"here: {_hint(net, key)}")
    extra = [k for k in source if k not in ours]
    if extra:
        raise ConfigError(f"--init: {net}.{extra[0]} is in {src} but not in this model: {_hint(net, extra[0])}")


def _hint(net: str, key: str) -> str:
    """Which config choice makes this tensor: the latent mixture, the label code, else the network itself."""
    return next((h for prefix, h in KEY_HINTS.items() if key.startswith(prefix)), HINTS[net])
