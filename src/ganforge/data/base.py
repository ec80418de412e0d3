"""The in-memory dataset every family returns, and the index sampler that batches it on device."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
import torch

from ganforge import rng
from ganforge.config import ConfigError
from ganforge.data.family import Family


@dataclass
class Dataset:
    """A whole dataset: float tensor `x` on the training device, or (streamed) uint8 pixels `u8` on disk.

    Images are float NCHW in [-1, 1]; streamed images are converted batch by batch with the same formula
    (x / 127.5 - 1), so both paths give identical batches.
    """

    name: str
    x: torch.Tensor | None  # (N, *shape) float32, or None when streamed from `u8`
    y: torch.Tensor | None = None  # (N,) int64 class labels, or None
    family: Family | None = None  # how samples are pictured, measured and written (None: images)
    num_classes: int = 0  # number of label classes (0 = unlabelled)
    class_names: list[str] = field(default_factory=list)  # label index -> name (user folders), or []
    modes: torch.Tensor | None = None  # (M, D) centres of a known Gaussian mixture (toy data)
    mode_std: float = 0.0  # std of each mixture component
    u8: np.ndarray | None = None  # (N, C, H, W) uint8 pixels (a read-only memmap) when streamed
    source: dict = field(default_factory=dict)  # user data: {"path", "sha256", ...} recorded with the run
    report: list[str] = field(default_factory=list)  # how the data was read, for the log
    meta: dict = field(default_factory=dict)  # what the family learned from the data, as JSON (saved with the run)
    extra: dict = field(default_factory=dict)  # the family's in-memory objects (tables, lines), never saved
    sample_shape: tuple[int, ...] | None = None  # one generated sample's shape when `x` stores another (text: ids)

    def __post_init__(self):
        if self.family is None:
            from ganforge.data.images_family import IMAGES

            self.family = IMAGES

    def __len__(self) -> int:
        return (self.x if self.x is not None else self.u8).shape[0]

    @property
    def streamed(self) -> bool:
        return self.x is None

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of one example as G makes it, e.g. (1,) or (1, 28, 28)."""
        if self.sample_shape is not None:
            return tuple(self.sample_shape)
        return tuple((self.x if self.x is not None else self.u8).shape[1:])

    @property
    def device(self) -> torch.device:
        return self.x.device if self.x is not None else torch.device("cpu")

    def take(self, idx: torch.Tensor) -> torch.Tensor:
        """Examples `idx` (B,) as float (B, *shape) on the data's device (streamed: read from disk, on CPU)."""
        if self.x is not None:
            return self.x[idx.to(self.x.device)]
        from ganforge.data.images import to_float

        return to_float(self.u8[np.sort(idx.cpu().numpy())])[_unsort(idx.cpu())]

    def subset(self, n: int, seed: int = 0) -> torch.Tensor:
        """A seeded random subset of min(n, N) examples, in dataset order (float, on the data's device)."""
        keep = torch.randperm(len(self), generator=torch.Generator().manual_seed(seed))[:n]
        return self.take(keep.sort().values)

    def sha256(self) -> str:
        """Content hash of the data (and labels), for provenance of metrics."""
        if self.source.get("sha256"):
            return self.source["sha256"]
        h = hashlib.sha256()
        h.update(self.x.detach().cpu().contiguous().numpy().tobytes())
        if self.y is not None:
            h.update(self.y.detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()

    def to(self, device: torch.device | str) -> Dataset:
        if self.x is not None:
            self.x = self.x.to(device)
        if self.y is not None:
            self.y = self.y.to(device)
        return self


def _unsort(idx: torch.Tensor) -> torch.Tensor:
    """Positions that put rows read in sorted order back into the order of `idx`."""
    return torch.argsort(torch.argsort(idx, stable=True), stable=True)


class IndexSampler:
    """Shuffled epochs of global-batch indices: epoch e's order is a pure function of (seed, e).

    No per-sample Python; the state is two integers (epoch, cursor), saved in checkpoints, so a resumed
    run sees the batches an uninterrupted one would, a streaming loader can look ahead with a copy, and
    every rank of a distributed run draws the same global batch (each keeps its own slice).
    The incomplete last batch of an epoch is dropped, like DataLoader's drop_last.
    """

    def __init__(self, n: int, batch_size: int, device: torch.device | str = "cpu", seed: int = 0):
        if batch_size > n:
            raise ConfigError(f"train.batch_size ({batch_size}) is larger than the dataset ({n} examples): "
                              f"use a batch of at most {n}")
        self.n, self.batch_size, self.device, self.seed = n, batch_size, torch.device(device), seed
        self.epoch, self.cursor = 0, 0
        self.perm = self._perm(0)

    def _perm(self, epoch: int) -> torch.Tensor:
        return torch.randperm(self.n, generator=rng.generator(self.seed, "data", epoch)).to(self.device)

    def next(self) -> torch.Tensor:
        """The next global batch of indices (batch_size,) on the sampler's device."""
        if self.cursor + self.batch_size > self.n:
            self.epoch, self.cursor = self.epoch + 1, 0
            self.perm = self._perm(self.epoch)
        idx = self.perm[self.cursor : self.cursor + self.batch_size]
        self.cursor += self.batch_size
        return idx

    def copy(self) -> IndexSampler:
        """An independent sampler at the same position (for look-ahead)."""
        other = IndexSampler.__new__(IndexSampler)
        other.__dict__.update(self.__dict__)
        return other

    def state(self) -> dict[str, int]:
        return {"epoch": self.epoch, "cursor": self.cursor}

    def load_state(self, state: dict[str, int], perm: torch.Tensor | None = None) -> None:
        """Continue at (epoch, cursor); `perm` replaces that epoch's order (checkpoints of schema < 2)."""
        self.epoch, self.cursor = int(state["epoch"]), int(state["cursor"])
        self.perm = perm.to(self.device) if perm is not None else self._perm(self.epoch)
