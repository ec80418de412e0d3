"""Load a trained generator (from a run folder, a checkpoint or an exported file) and sample it.

`Sampler.sample` returns what the run's data family makes: tensors for points and images, a pandas DataFrame
for tables, a list of strings for text.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from ganforge import checkpoint, config, noise
from ganforge.data import Family, family_from_state
from ganforge.models.conditional import fixed_labels


class Sampler:
    """A generator rebuilt from its saved config; `.sample(n)` returns n samples as its data family makes them."""

    def __init__(self, G: nn.Module, cfg: config.Config, family: Family, step: int, ema: bool,
                 num_classes: int = 0, class_names: list[str] | None = None, data_shape: tuple[int, ...] = (),
                 family_state: dict | None = None):
        self.G, self.cfg, self.family, self.step, self.ema = G.eval(), cfg, family, step, ema
        self.num_classes, self.class_names, self.data_shape = num_classes, list(class_names or []), tuple(data_shape)
        self.data_source: dict = {}  # user data: the path and content hash the run was trained on
        self.family_state = dict(family_state or {})  # what the family learned from the data (transform, vocabulary)
        self.acceptance: float | None = None  # tables with `where`: the share of rows drawn that were kept
        self.dropped: int | None = None  # text with `novel`: how many samples were training lines verbatim

    @torch.no_grad()
    def sample(self, n: int, seed: int | None = None, batch: int = 1000, y: torch.Tensor | None = None,
               truncation: float | None = None, **options):
        """n samples; a seed makes them reproducible.

        Points and images: a tensor (n, *data_shape), images in [-1, 1]. Conditional generators take labels
        `y` (n,), by default 0, 1, ..., K-1, 0, 1, ... `truncation` psi in (0, 1]: every |z| > psi is redrawn
        until inside (noise.truncate); None: plain N(0, I).
        Tables: a DataFrame; `where={column: value}` fixes categorical values. Text: a list of lines;
        `temperature` T > 0 draws at p^(1/T) (0: the most likely token; None: the G's default, see the family);
        `novel=True` drops the lines that are training lines verbatim (fewer than n come back; `self.dropped`).
        """
        unknown = [k for k in options if k not in self.family.sample_options]
        if unknown or (truncation is not None and "truncation" not in self.family.sample_options):
            name = unknown[0] if unknown else "truncation"
            raise config.ConfigError(f"{name}: not an option for {self.family.name} samples "
                                     f"(options: {', '.join(self.family.sample_options) or 'none'})")
        gen = torch.Generator().manual_seed(seed) if seed is not None else None
        z = torch.randn(n, self.cfg.model.z_dim, generator=gen)
        if truncation is not None:
            z = noise.truncate(z, truncation, gen)
        return self.family.generate(self, z, y, gen, batch, **options)

    @torch.no_grad()
    def sample_seeds(self, seeds: list[int], y: torch.Tensor | None = None, truncation: float | None = None,
                     batch: int = 1000) -> torch.Tensor:
        """One sample per seed (len(seeds), *data_shape): seed s always gives the same one (noise.seed_noise).

        Conditional generators need labels `y` (len(seeds),): no default, so a seed's sample never
        depends on its place in the list.
        """
        if self.cfg.model.conditional != "none" and y is None:
            raise ValueError("labels y are needed: this generator is conditional (sample_seeds has no default)")
        z = torch.cat([noise.seed_noise(s, self.cfg.model.z_dim, truncation) for s in seeds])  # (S, z_dim)
        return self._generate(z, y, batch)

    def _generate(self, z: torch.Tensor, y: torch.Tensor | None, batch: int) -> torch.Tensor:
        """G(z) or G(z, y) for noise z (n, z_dim) drawn on the CPU; checks the labels."""
        n, device = len(z), next(self.G.parameters()).device
        z = z.to(device)
        if self.cfg.model.conditional == "none":
            if y is not None:
                raise ValueError("labels given, but this generator is not conditional (model.conditional = 'none')")
            return generate(self.G, z, None, batch)
        y = y if y is not None else fixed_labels(n, self.num_classes)
        if len(y) != n or y.min() < 0 or y.max() >= self.num_classes:
            raise ValueError(f"labels must be {n} class indices in 0..{self.num_classes - 1}")
        return generate(self.G, z, y.to(device), batch)


@torch.no_grad()
def generate(G: nn.Module, z: torch.Tensor, y: torch.Tensor | None = None, batch: int = 1000) -> torch.Tensor:
    """G(z) or G(z, y) in eval mode (dropout off, batch-norm running stats), in chunks; G's mode is restored."""
    was_training = G.training
    G.eval()
    ys = y.split(batch) if y is not None else [None] * len(z.split(batch))
    out = torch.cat([G(zc) if yc is None else G(zc, yc) for zc, yc in zip(z.split(batch), ys, strict=True)])
    G.train(was_training)
    return out.float()


def _find(path: Path) -> Path:
    if path.is_dir():
        path = path / "checkpoint.safetensors"
    if not path.exists():
        raise checkpoint.CheckpointError(f"no checkpoint at {path} (expected a run folder or a .safetensors file)")
    return path


def load(path: str | Path, ema: bool = True, device: str = "cpu") -> Sampler:
    """Load G from a run folder, a training checkpoint or an exported generator file.

    With `ema` (the default) the moving-average generator is used when the run kept one.
    """
    path = _find(Path(path))
    fmt, tensors, state = checkpoint.read(path)
    if fmt == checkpoint.EXPORT_FORMAT:
        weights, used_ema = tensors, state.get("ema", False)
    else:
        ema_weights = checkpoint.prefixed(tensors, "g_ema")
        used_ema = bool(ema and ema_weights)
        weights = ema_weights if used_ema else checkpoint.prefixed(tensors, "g")
    cfg = config.from_saved(state["config"])
    num_classes = int(state.get("num_classes") or 0)
    family, shape = family_from_state(state), tuple(state["data_shape"])
    family_state = state.get("family_state") or {}
    with torch.random.fork_rng(devices=[]):  # building G must not move the caller's random stream
        try:
            family.check_state(family_state, shape, weights)
            G = family.generator(cfg.model, shape, num_classes, family_state)
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise checkpoint.CheckpointError(f"{path}: the saved {family.name} state cannot rebuild the generator "
                                             f"({type(e).__name__}: {e})") from None
    checkpoint.check_tensors(weights, checkpoint.state_dict_spec(G), f"{path}: generator")
    G.load_state_dict(weights)
    s = Sampler(G.to(device), cfg, family, int(state["step"]), used_ema, num_classes, state.get("class_names"), shape,
                family_state)
    s.data_source = state.get("data_source") or {}
    return s


def export(run: str | Path, out: str | Path, ema: bool = True) -> Path:
    """Write the generator alone (EMA weights when kept) with its config in the file's metadata."""
    s = load(run, ema=ema)
    state = {"config": config.to_dict(s.cfg), "step": s.step, "ema": s.ema, "family": s.family.name,
             "num_classes": s.num_classes, "class_names": s.class_names, "data_shape": list(s.data_shape),
             "data_source": s.data_source, "family_state": s.family_state}
    meta = {"format": checkpoint.EXPORT_FORMAT, "schema": str(checkpoint.SCHEMA), "state": json.dumps(state)}
    checkpoint.atomic_save(s.G.state_dict(), out, meta)
    return Path(out)

