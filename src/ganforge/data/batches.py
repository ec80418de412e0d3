"""Where the real batches of a run come from: in memory (the fast path) or streamed from disk.

Both follow the same `IndexSampler` (the batch order is a function of the seed and the epoch) and draw
x-flips from the run's own stream, so for the same seed they give bit-identical batches; the sampler's
position (the last batch handed out) is what checkpoints save, so resume is exact on both paths.

In memory: the dataset is one float tensor on the device and a batch is an index (no per-sample Python).
Streamed: the uint8 pixels stay in a memory-mapped cache; a `torch.utils.data.DataLoader` with workers
and pinned memory reads whole batches ahead of the loop, following a look-ahead copy of the sampler.
"""

from __future__ import annotations

import numpy as np
import torch

from ganforge.data.base import Dataset, IndexSampler
from ganforge.data.images import to_float


def xflip(x: torch.Tensor, flips: torch.Tensor) -> torch.Tensor:
    """Mirror images (B, C, H, W) left-right where `flips` (B,) is True."""
    return torch.where(flips.view(-1, 1, 1, 1), x.flip(3), x)


class InMemoryBatches:
    """Batches indexed out of the dataset's tensor on the training device."""

    def __init__(self, data: Dataset, sampler: IndexSampler, rng, flip: bool = False):
        self.data, self.sampler, self.rng, self.flip = data, sampler, rng, flip

    def next(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """This rank's share of the next global batch: (x (B, *shape), y (B,) or None)."""
        idx = self.rng.slice(self.sampler.next())
        x = self.data.take(idx)
        y = self.data.y[idx] if self.data.y is not None else None
        return self._flip(x), y

    def _flip(self, x: torch.Tensor) -> torch.Tensor:
        if not self.flip:
            return x
        flips = self.rng.slice(torch.rand(self.sampler.batch_size, generator=self.rng["xflip"],
                                          device=self.rng.device) < 0.5)
        return xflip(x, flips.to(x.device))

    def state(self) -> dict[str, int]:
        return self.sampler.state()

    def close(self) -> None: ...


class _Rows(torch.utils.data.Dataset):
    """uint8 rows of a memory-mapped array, read a whole batch at a time (one sorted fancy index)."""

    def __init__(self, u8: np.ndarray, y: np.ndarray | None):
        self.u8, self.y = u8, y

    def __len__(self) -> int:
        return len(self.u8)

    def __getitems__(self, idx: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        order = np.asarray(idx)
        rows = torch.from_numpy(np.ascontiguousarray(self.u8[np.sort(order)]))  # (B, C, H, W) uint8
        inverse = torch.argsort(torch.argsort(torch.from_numpy(order), stable=True), stable=True)
        return rows[inverse], torch.from_numpy(order)


def _as_is(batch):
    return batch


class _Ahead(torch.utils.data.Sampler):
    """Index batches of a look-ahead copy of the run's sampler, forever."""

    def __init__(self, sampler: IndexSampler, rng):
        self.sampler, self.rng = sampler.copy(), rng

    def __iter__(self):
        while True:
            yield self.rng.slice(self.sampler.next()).tolist()

    def __len__(self) -> int:  # pragma: no cover - DataLoader asks only for sized samplers' len
        return 2**62


class StreamedBatches(InMemoryBatches):
    """Batches read from the uint8 memmap by a DataLoader (workers, pinned memory) ahead of the loop."""

    def __init__(self, data: Dataset, sampler: IndexSampler, rng, flip: bool = False, workers: int = 2,
                 device: torch.device | str = "cpu"):
        super().__init__(data, sampler, rng, flip)
        self.device, self.workers = torch.device(device), workers
        self.it = None  # started at the first batch, from wherever the sampler then is (a resumed run)

    def _start(self) -> None:
        loader = torch.utils.data.DataLoader(
            _Rows(self.data.u8, None), batch_sampler=_Ahead(self.sampler, self.rng), num_workers=self.workers,
            collate_fn=_as_is, pin_memory=self.device.type == "cuda",
            prefetch_factor=4 if self.workers else None, persistent_workers=self.workers > 0)
        self.it = iter(loader)

    def next(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.it is None:
            self._start()
        expected = self.rng.slice(self.sampler.next())  # the consumed position, what checkpoints save
        rows, idx = next(self.it)
        if not torch.equal(idx, expected.cpu()):  # pragma: no cover - a bug, never a user error
            raise RuntimeError("streamed batches fell out of step with the sampler")
        x = to_float(rows.to(self.device, non_blocking=True))
        y = self.data.y[idx.to(self.data.y.device)] if self.data.y is not None else None
        return self._flip(x), y

    def close(self) -> None:
        self.it = None  # stops the workers
