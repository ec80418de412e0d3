"""Per-run random streams: every draw of a training run comes from the run's own generators.

A run owns one `torch.Generator` per purpose (noise, labels, augmentation, penalty, x-flips), each
seeded from `train.seed` and the stream's name, and saved in the checkpoint. Building a module, making
a picture or measuring quality draws from torch's global stream (or its own generator) and so never
moves the training's streams; two runs in one process do not disturb each other; resume is bit-exact.

Draws that make up the global batch take the whole global batch from a stream every rank shares, and
each rank keeps its own slice (`RunRandom.slice`), so N processes compute the 1-process batch.

Ops that cannot take a generator (dropout) use torch's global stream; the run keeps its own copy of
that state and installs it only while a training step runs (`RunRandom.active()`).
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator

import torch

STREAMS = ("noise", "labels", "augment", "penalty", "xflip")  # on the run's device; batch order: data/base.py


def derive_seed(seed: int, *names: object) -> int:
    """A 63-bit seed from the run seed and a stream name (e.g. derive_seed(3, 'data', 7))."""
    text = ":".join(str(p) for p in (seed, *names))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") >> 1


def generator(seed: int, *names: object, device: torch.device | str = "cpu") -> torch.Generator:
    """A fresh generator on `device` seeded by derive_seed(seed, *names)."""
    return torch.Generator(device=torch.device(device)).manual_seed(derive_seed(seed, *names))


class RunRandom:
    """The named random streams of one run, plus its private copy of torch's global state (dropout)."""

    def __init__(self, seed: int, device: torch.device | str = "cpu", rank: int = 0, world: int = 1):
        self.device, self.rank, self.world = torch.device(device), rank, world
        self.gens = {name: generator(seed, name, device=self.device) for name in STREAMS}
        # dropout etc.: per rank (never part of the global-batch equivalence)
        self._global = generator(seed, "global", rank).get_state()
        self._global_cuda = None
        if self.device.type == "cuda":
            self._global_cuda = generator(seed, "global-cuda", rank, device=self.device).get_state()

    def __getitem__(self, name: str) -> torch.Generator:
        return self.gens[name]

    def slice(self, x: torch.Tensor) -> torch.Tensor:
        """This rank's share of a global-batch draw (B, ...) -> (B / world, ...)."""
        if self.world == 1:
            return x
        n = x.shape[0] // self.world
        return x[self.rank * n : (self.rank + 1) * n]

    def randn(self, name: str, *shape: int) -> torch.Tensor:
        """N(0, 1) draw of the global shape from stream `name`, this rank's slice."""
        return self.slice(torch.randn(*shape, generator=self.gens[name], device=self.device))

    def randint(self, name: str, high: int, n: int) -> torch.Tensor:
        """n integers in [0, high) from stream `name` (n global), this rank's slice."""
        return self.slice(torch.randint(high, (n,), generator=self.gens[name], device=self.device))

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        """Install the run's global-stream state for the duration of a training step, then save it back."""
        outer = torch.get_rng_state()
        outer_cuda = torch.cuda.get_rng_state(self.device) if self._global_cuda is not None else None
        torch.set_rng_state(self._global)
        if outer_cuda is not None:
            torch.cuda.set_rng_state(self._global_cuda, self.device)
        try:
            yield
        finally:
            self._global = torch.get_rng_state()
            torch.set_rng_state(outer)
            if outer_cuda is not None:
                self._global_cuda = torch.cuda.get_rng_state(self.device)
                torch.cuda.set_rng_state(outer_cuda, self.device)

    def state(self) -> dict[str, torch.Tensor]:
        """Tensors to save in a checkpoint ('rng.<stream>')."""
        out = {f"rng.{name}": g.get_state() for name, g in self.gens.items()}
        out[f"rng.global.{self.rank}"] = self._global
        if self._global_cuda is not None:
            out[f"rng.global_cuda.{self.rank}"] = self._global_cuda
        return out

    def load_state(self, tensors: dict[str, torch.Tensor]) -> None:
        """Restore the streams from checkpoint tensors; a missing rank's global state keeps its seed."""
        for name, g in self.gens.items():
            if f"rng.{name}" in tensors:
                g.set_state(tensors[f"rng.{name}"])
        self._global = tensors.get(f"rng.global.{self.rank}", self._global)
        if self._global_cuda is not None:
            self._global_cuda = tensors.get(f"rng.global_cuda.{self.rank}", self._global_cuda)
