"""What a data family is: how its samples are made, pictured, measured and written back.

A family (points, images, tables, text) is one module under data/ holding one `Family` subclass and one
line in `data.FAMILIES`. Nothing outside a family switches on the kind of data: the training loop,
`ganforge sample`, `ganforge eval` and the report ask the run's family.

The hooks below default to what continuous tensors need (points, images). Tables and text override the
ones where their data differ: their own networks (`generator`, `discriminator`), where G's conditioning
comes from (`batches`, `fake_labels`, `g_loss`), what a sample decodes to (`generate`: a DataFrame, lines
of text) and what the doctor watches (`watch`). What a family learned from the data (a table's transform, a
vocabulary) is plain JSON in `Dataset.meta`, saved in checkpoints as `family_state`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

if TYPE_CHECKING:  # pragma: no cover
    from ganforge.config import Config, ModelConfig
    from ganforge.data.base import Dataset, IndexSampler
    from ganforge.rng import RunRandom
    from ganforge.sampling import Sampler
    from ganforge.train import Run


class Family:
    """The interface every data family implements (defaults suit continuous tensors)."""

    name = ""  # registry name, saved in checkpoints
    tanh = False  # G's output head: tanh into [-1, 1] (images), else linear
    augmentable = False  # DiffAugment and x-flips apply (images)
    arches = ("mlp",)  # network families (model.{g,d}.arch) that can make and read this data
    sample_suffixes = (".npy",)  # what `ganforge sample --out` can write
    walkable = True  # `ganforge interpolate` can picture a walk through G's noise
    indexed = True  # real batches are shuffled epochs of the data (IndexSampler); False: drawn with replacement
    sample_options = ("truncation",)  # options of Sampler.sample this family takes (beyond n, seed, y)
    decoded = False  # samples decode to something other than a tensor (a DataFrame, lines): no labels or seeds

    # ---- networks and the training step -------------------------------------------------------
    def generator(self, cfg: ModelConfig, shape: tuple[int, ...], num_classes: int, state: dict) -> nn.Module:
        """G for samples shaped `shape`; `state` is the family's JSON learned from the data (Dataset.meta)."""
        from ganforge.models import build_generator

        return build_generator(cfg, shape, self.tanh, num_classes)

    def check_state(self, state: dict, shape: tuple[int, ...], weights: dict[str, torch.Tensor]) -> None:
        """Before G is built from a file: raise ValueError when the saved state does not match G's weights there
        (a hostile state must not make ganforge allocate a network larger than the file's own tensors)."""

    def discriminator(self, cfg: ModelConfig, shape: tuple[int, ...], num_classes: int, state: dict) -> nn.Module:
        """D for samples shaped `shape` (packed by model.pack)."""
        from ganforge.models import build_discriminator

        return build_discriminator(cfg, shape, num_classes)

    def batches(self, data: Dataset, sampler: IndexSampler, streams: RunRandom, cfg: Config, device: torch.device):
        """Where real batches come from: `.next()` -> (x (B, *shape), y or None) of this rank."""
        from ganforge.data.batches import InMemoryBatches, StreamedBatches

        if data.streamed:
            return StreamedBatches(data, sampler, streams, cfg.train.xflip, device=device)
        return InMemoryBatches(data, sampler, streams, cfg.train.xflip)

    def fake_labels(self, run: Run, n: int) -> torch.Tensor | None:
        """What G is conditioned on for `n` (global) samples: labels uniform over the classes, or None."""
        if run.cfg.model.conditional == "none":
            return None
        return run.rng.randint("labels", run.data.num_classes, n)

    def fixed_labels(self, data: Dataset, n: int, cfg: Config, device: torch.device) -> torch.Tensor | None:
        """The conditioning of the `n` pictured samples: every class in turn, or None."""
        from ganforge.models.conditional import fixed_labels

        return fixed_labels(n, data.num_classes, device) if cfg.model.conditional != "none" else None

    def g_loss(self, run: Run, y: torch.Tensor | None) -> torch.Tensor | None:
        """A term G's loss adds after its pass on labels `y` (tables: CTGAN's conditional cross-entropy)."""
        return None

    def nll(self, run: Run, real: torch.Tensor) -> torch.Tensor:
        """G's mean NLL of a real batch, for a G with a likelihood (text's LSTM G: train.mle_steps, loss.mle_weight)."""
        raise NotImplementedError(f"{self.name} data: G has no likelihood")

    # ---- samples ------------------------------------------------------------------------------
    def generate(self, s: Sampler, z: torch.Tensor, y: torch.Tensor | None, gen: torch.Generator | None,
                 batch: int, **options: Any) -> Any:
        """Samples of the sampler's G for noise z (n, z_dim): a tensor (n, *shape) here; a DataFrame or lines
        for families whose samples decode to something else."""
        return s._generate(z, y, batch)

    def watch(self, samples: torch.Tensor, data: Dataset) -> tuple[dict, list[str]]:
        """What the doctor follows of the pictured samples: (stats for metrics.jsonl, warnings in plain words)."""
        from ganforge import doctor

        return doctor.diversity(samples, data.subset(512)), []

    def as_text(self, samples: torch.Tensor, data: Dataset) -> str | None:
        """The pictured samples as text, for TensorBoard and the report (text lines), or None."""
        return None

    def real_for_eval(self, data: Dataset, n: int, seed: int) -> Any:
        """The real data metrics compare with: a seeded subset of min(n, N) examples in dataset order."""
        return data.subset(n, seed).cpu()

    def check_config(self, cfg: Config, data: Dataset) -> None:
        """Raise ConfigError for options that cannot apply to this data (e.g. conv nets on points)."""
        from ganforge.config import ConfigError

        for net in ("g", "d"):
            arch = getattr(cfg.model, net).arch
            if arch not in self.arches:
                raise ConfigError(f"model.{net}.arch: '{arch}' cannot {'make' if net == 'g' else 'read'} "
                                  f"{self.name} data shaped {data.shape} (use {' or '.join(self.arches)})")
        if cfg.train.augment and not self.augmentable:
            raise ConfigError(f"train.augment: DiffAugment needs image data; {data.name} is {self.name} data")

    def picture_count(self, cfg: Config) -> int:
        """How many samples of the fixed noise are pictured at each interval."""
        return cfg.train.num_samples

    def picture(self, samples: torch.Tensor, path: Path, data: Dataset, cfg: Config, title: str,
                nrow: int = 0) -> Path:
        """Write a picture of generated `samples` (N, *shape) to `path` (a PNG)."""
        raise NotImplementedError

    def default_metrics(self, inp: Any) -> list[str]:
        """The metric names `ganforge eval` computes when none are asked for."""
        raise NotImplementedError

    def write_samples(self, samples: torch.Tensor, out: Path, data_cfg: Any = None, labels: torch.Tensor | None = None,
                      nrow: int = 0, names: list[str] | None = None) -> str:
        """Write samples in the user's format (by `out`'s suffix); returns what was written, for the log."""
        import numpy as np

        if out.suffix != ".npy":
            raise _bad_suffix(self, out)
        out.parent.mkdir(parents=True, exist_ok=True)
        np.save(out, samples.numpy())
        if labels is not None:
            np.save(out.with_name(out.stem + "_labels.npy"), labels.numpy())
        return f"{len(samples)} samples to {out}"


def _bad_suffix(family: Family, out: Path):
    from ganforge.config import ConfigError

    return ConfigError(f"--out: {family.name} samples are written as {' or '.join(family.sample_suffixes)}, "
                       f"got '{out.name}'")
