"""The in-memory dataset every family returns, and the index sampler that batches it on device."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import torch


@dataclass
class Dataset:
    """A whole dataset as one tensor; images are float NCHW in [-1, 1]."""

    name: str
    x: torch.Tensor  # (N, *shape) float32
    y: torch.Tensor | None = None  # (N,) int64 class labels, or None
    kind: str = "image"  # "1d", "2d" or "image": decides how samples are pictured and measured
    num_classes: int = 0  # number of label classes (0 = unlabelled)
    modes: torch.Tensor | None = None  # (M, D) centres of a known Gaussian mixture (toy data)
    mode_std: float = 0.0  # std of each mixture component

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
    """Shuffled epochs of batch indices drawn on the data's device: no per-sample Python.

    The state (current permutation and cursor) is saved in checkpoints so a resumed run sees the
    same batches as an uninterrupted one.
    """

    def __init__(self, n: int, batch_size: int, device: torch.device | str = "cpu"):
        if batch_size > n:
            raise ValueError(f"train.batch_size ({batch_size}) is larger than the dataset ({n} examples)")
        self.n, self.batch_size, self.device = n, batch_size, torch.device(device)
        self.perm = torch.randperm(n, device="cpu").to(self.device)
        self.cursor = 0

    def next(self) -> torch.Tensor:
        if self.cursor + self.batch_size > self.n:  # drop the incomplete last batch, like drop_last
            self.perm = torch.randperm(self.n, device="cpu").to(self.device)
            self.cursor = 0
        idx = self.perm[self.cursor : self.cursor + self.batch_size]
        self.cursor += self.batch_size
        return idx

    def state(self) -> tuple[torch.Tensor, int]:
        return self.perm.cpu(), self.cursor

    def load_state(self, perm: torch.Tensor, cursor: int) -> None:
        self.perm, self.cursor = perm.to(self.device), int(cursor)
