"""The in-memory dataset every family returns, and the index sampler that batches it on device."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import torch

from ganforge import rng
from ganforge.config import ConfigError
from ganforge.data.family import Family


@dataclass
class Dataset:
    """A whole dataset as one tensor; images are float NCHW in [-1, 1]."""

    name: str
    x: torch.Tensor  # (N, *shape) float32
    y: torch.Tensor | None = None  # (N,) int64 class labels, or None
    family: Family | None = None  # how samples are pictured, measured and written (None: images)
    num_classes: int = 0  # number of label classes (0 = unlabelled)
    class_names: list[str] = field(default_factory=list)  # label index -> name (user folders), or []
    modes: torch.Tensor | None = None  # (M, D) centres of a known Gaussian mixture (toy data)
    mode_std: float = 0.0  # std of each mixture component

    def __post_init__(self):
        if self.family is None:
            from ganforge.data.images_family import IMAGES

            self.family = IMAGES

    def __len__(self) -> int:
        return self.x.shape[0]

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of one example, e.g. (1,) or (1, 28, 28)."""
        return tuple(self.x.shape[1:])

    def sha256(self) -> str:
        """Content hash of the data (and labels), for provenance of metrics."""
        h = hashlib.sha256()
        h.update(self.x.detach().cpu().contiguous().numpy().tobytes())
        if self.y is not None:
            h.update(self.y.detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()

    def to(self, device: torch.device | str) -> Dataset:
        self.x = self.x.to(device)
        if self.y is not None:
            self.y = self.y.to(device)
        return self


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
