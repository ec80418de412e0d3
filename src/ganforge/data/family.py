"""What a data family is: how its samples are pictured, measured and written back.

A family (points, images, later tables and text) is one module under data/ holding one `Family`
subclass and one line in `data.FAMILIES`. Nothing outside a family switches on the kind of data: the
training loop, `ganforge sample`, `ganforge eval` and the report ask the run's family.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:  # pragma: no cover
    from ganforge.config import Config
    from ganforge.data.base import Dataset


class Family:
    """The interface every data family implements (defaults suit continuous tensors)."""

    name = ""  # registry name, saved in checkpoints
    tanh = False  # G's output head: tanh into [-1, 1] (images), else linear
    augmentable = False  # DiffAugment and x-flips apply (images)
    arches = ("mlp",)  # network families (model.{g,d}.arch) that can make and read this data
    sample_suffixes = (".npy",)  # what `ganforge sample --out` can write

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
