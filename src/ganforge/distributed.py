"""Data-parallel training under torchrun: one process per device, one global batch split between them.

    torchrun --nproc-per-node N -m ganforge train ...                           # one machine, N processes
    torchrun --nnodes M --node-rank I --master-addr HOST --master-port P --nproc-per-node N -m ganforge train ...

How a run of N processes computes what one process computes (up to the order of float sums):
- `train.batch_size` is the GLOBAL batch; each process (rank) computes batch_size / N of it. Every draw
  (noise, labels, data order, x-flips, WGAN-GP mixing) is made for the global batch from streams every
  rank shares, and each rank keeps its slice (`rng.RunRandom.slice`, data/batches.py).
- G and D train through DistributedDataParallel (DDP), which averages their weight gradients over the
  ranks; per-rank losses are means over equal shares, so the average is the global batch's gradient.
  The D step's forward passes of D go through DDP(D); its G pass (no gradient) uses the bare G. The G step
  goes through DDP(G) and the bare, frozen D (requires_grad off): D's weights get no gradient there and
  DDP(D) takes no part. Every weight of G and D is used by its step's loss, so `find_unused_parameters`
  stays off.
- Gradient penalties (R1, R2, WGAN-GP) take input gradients with `torch.autograd.grad(create_graph=True)`:
  those stay within each process and never reach DDP's hooks; the penalty joins D's loss and the one
  ordinary backward averages every weight gradient once. `static_graph` is off: lazy regularisation
  changes the graph every `loss.reg_every`-th step.
- BatchNorm normalises each rank's share of the batch with that share's statistics, unless
  `model.sync_bn` (SyncBatchNorm, statistics of the global batch; CUDA only). Buffers are not broadcast:
  running statistics are rank 0's in checkpoints and pictures (each rank's differ a little without sync_bn).
- Minibatch layers (stddev, discrimination) and dropout see this rank's share only: such runs are
  valid, but not the 1-process run's numbers. DiffAugment and instance noise still draw each rank's
  parameters from the shared stream at the local batch size, so ranks repeat one another's draws (see
  augment.py); dropout masks of ranks > 0 restart from their seed on resume.
- Every process loads the whole dataset (each machine's local rank 0 first, so one download or decode
  fills the cache); every machine needs the data, and the run folder to resume from.

Rank 0 writes everything (`RunOutput`); the others get `NullOutput`; the logged losses and D outputs are
averaged over the ranks first (`RankOutput`). Checkpoints hold the bare modules' state, so a run written
by N processes resumes with any other number that divides the batch.
"""

from __future__ import annotations

import atexit
import contextlib
import inspect
import math
import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from ganforge.config import Config, ConfigError
from ganforge.outputs import CHECKPOINT, NullOutput

if TYPE_CHECKING:  # pragma: no cover
    from ganforge.train import Run

TIMEOUT = timedelta(minutes=30)  # rank 0 evaluates and writes while the others wait at the next collective
# DDP's flag that stops the broadcast of buffers at each forward: forward_sync_buffers from torch 2.13 on
# (which deprecates broadcast_buffers), broadcast_buffers before
NO_BUFFER_SYNC = ({"forward_sync_buffers": False} if "forward_sync_buffers" in
                  inspect.signature(DistributedDataParallel).parameters else {"broadcast_buffers": False})
AVERAGED = ("loss_d", "loss_g", "d_real", "d_fake", "grad_norm_d", "grad_norm_g", "steps_per_s")  # log keys


@dataclass
class Parallel:
    """This process's place in a data-parallel run, and the modules that train G and D."""

    rank: int = 0  # this process, 0 .. world - 1 (rank 0 writes the run's files)
    world: int = 1  # number of processes
    local_rank: int = 0  # this process on its machine: it trains on cuda:local_rank
    G: nn.Module | None = None  # DDP(G) when world > 1, else G itself (set by `ganforge.train.build`)
    D: nn.Module | None = None  # DDP(D) when world > 1, else D itself

    @property
    def main(self) -> bool:
        """Whether this process writes the run's files."""
        return self.rank == 0


def _env_int(env: Mapping[str, str], name: str, default: int | None) -> int:
    text = env.get(name)
    if text is None:
        if default is None:
            raise ConfigError(f"{name} is not set: start the processes with torchrun (it sets RANK, WORLD_SIZE, "
                              "LOCAL_RANK)")
        return default
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"{name}: expected a whole number, got {text!r}") from None


def from_env(env: Mapping[str, str] | None = None) -> Parallel:
    """Rank, world size and local rank: of the joined process group, else torchrun's RANK, WORLD_SIZE and
    LOCAL_RANK, else a single process (0, 1, 0)."""
    env = os.environ if env is None else env
    if dist.is_available() and dist.is_initialized():
        rank = dist.get_rank()
        return Parallel(rank, dist.get_world_size(), _env_int(env, "LOCAL_RANK", rank))
    world = _env_int(env, "WORLD_SIZE", 1)
    if world < 1:
        raise ConfigError(f"WORLD_SIZE: expected at least 1 process, got {world}")
    if world == 1:
        return Parallel()
    rank = _env_int(env, "RANK", None)
    if not 0 <= rank < world:
        raise ConfigError(f"RANK: {rank} is not a rank of {world} processes (0..{world - 1})")
    return Parallel(rank, world, _env_int(env, "LOCAL_RANK", rank))


def check(cfg: Config, par: Parallel, device: torch.device) -> None:
    """What `par.world` processes on `device` need of the config: a global batch that splits evenly into shares
    D can still take (pack, stddev groups), and CUDA for model.sync_bn."""
    world = par.world
    if world == 1:
        return
    if cfg.model.sync_bn and device.type != "cuda":
        raise ConfigError("model.sync_bn: SyncBatchNorm needs CUDA devices; on CPU each process normalises its "
                          "own share of the batch (set model.sync_bn = false)")
    b = cfg.train.batch_size
    if b % world:
        raise ConfigError(f"train.batch_size ({b}) is the global batch: it must be a multiple of the number of "
                          f"processes ({world}), each computing batch_size / {world}")
    local, m = b // world, cfg.model.pack
    if local % m:
        raise ConfigError(f"model.pack: each process's share of the batch ({local} = {b} / {world}) is not a "
                          f"multiple of pack ({m})")
    d_batch = local // m
    if cfg.model.d.minibatch == "stddev" and d_batch % min(4, d_batch):
        raise ConfigError(f"model.d.minibatch: 'stddev' needs each process's D batch ({d_batch}) to be a "
                          "multiple of 4")


def init(par: Parallel, device: torch.device) -> None:
    """Join the process group (nccl on CUDA, gloo on CPU) when world > 1 and not joined yet; left at exit."""
    if par.world == 1 or dist.is_initialized():
        return
    for name in ("MASTER_ADDR", "MASTER_PORT"):
        if name not in os.environ:
            raise ConfigError(f"{name} is not set: start the processes with torchrun (it sets the rendezvous "
                              "address)")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=TIMEOUT,
                            rank=par.rank, world_size=par.world)
    atexit.register(cleanup)


def sync_batchnorm(module: nn.Module, par: Parallel) -> nn.Module:
    """`module` with its BatchNorm layers normalising over the global batch (SyncBatchNorm; CUDA, see `check`)."""
    if par.world == 1:
        return module  # one process sees the whole batch already
    return nn.SyncBatchNorm.convert_sync_batchnorm(module)


def wrap(module: nn.Module, device: torch.device, par: Parallel) -> nn.Module:
    """DDP(module) averaging gradients over the processes (module itself for one process).

    Buffers are not broadcast at each forward: the weights, hence spectral-norm vectors, are equal on every
    rank; batch-norm running statistics stay per rank and rank 0's are the ones saved.
    """
    if par.world == 1:
        return module
    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=ids, **NO_BUFFER_SYNC)



def _joined() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def mean(t: torch.Tensor) -> torch.Tensor:
    """The average of `t` over the processes (a copy; `t` itself outside a process group)."""
    if not _joined():
        return t
    t = t.clone()
    dist.all_reduce(t, op=dist.ReduceOp.SUM)  # gloo has no AVG
    return t / dist.get_world_size()


def broadcast_text(text: str, device: torch.device) -> str:
    """Rank 0's `text` on every process (e.g. a run folder named after rank 0's clock)."""
    if not _joined():
        return text
    data = torch.tensor(list(text.encode()), dtype=torch.uint8, device=device)
    n = torch.tensor([len(data)], dtype=torch.int64, device=device)
    dist.broadcast(n, 0)
    if dist.get_rank() != 0:
        data = torch.empty(int(n.item()), dtype=torch.uint8, device=device)
    dist.broadcast(data, 0)
    return bytes(data.tolist()).decode()


@contextlib.contextmanager
def local_rank_0_first(par: Parallel) -> Iterator[None]:
    """Run the block on each machine's local rank 0 first, then on the other processes: one download or
    decode fills the data cache, and the others read it."""
    if par.world > 1 and par.local_rank != 0:
        barrier()
    yield
    if par.world > 1 and par.local_rank == 0:
        barrier()


def barrier() -> None:
    """Wait until every process gets here (nothing outside a process group)."""
    if _joined():
        dist.barrier()


def cleanup() -> None:
    """Leave the process group (registered at exit by `init`; safe to call twice).

    Then release the GIL for a moment: with gloo, a worker thread may still be dropping the last gradient
    all-reduce of DDP's backward, which holds a Python object (torch 2.13 stashes the backward's contextvars
    in the work's thread-local state) and so needs the GIL; once the interpreter finalises, such a thread is
    killed mid-destructor and the process aborts (SIGABRT, "terminate called without an active exception")
    after a run that finished.
    """
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
        time.sleep(0.1)


class RankOutput(NullOutput):
    """A data-parallel process's run output: log records averaged over the processes, then handed to `inner`
    (RunOutput on rank 0, NullOutput elsewhere); every other hook goes straight to `inner`.

    The loop calls the hooks at the same steps on every rank, so the averaging all-reduce always meets its
    peers; a non-finite average stops every rank at the same step (a rank alone would leave the others
    waiting).
    """

    def __init__(self, inner: NullOutput, device: torch.device):
        self.inner, self.device = inner, device

    def on_log(self, run: Run, rec: dict) -> None:
        keys = [k for k in AVERAGED if rec.get(k) is not None]
        local = torch.tensor([float(rec[k]) for k in keys], dtype=torch.float64, device=self.device)
        rec = rec | dict(zip(keys, mean(local).tolist(), strict=True))
        self.inner.on_log(run, rec)
        if not all(math.isfinite(rec[k]) for k in keys):
            from ganforge.train import TrainingDiverged

            raise TrainingDiverged(rec["step"], run.out / CHECKPOINT)

    def on_step(self, run: Run) -> None:
        if hasattr(self.inner, "on_step"):
            self.inner.on_step(run)

    def on_sample(self, run: Run) -> None:
        self.inner.on_sample(run)

    def on_checkpoint(self, run: Run, evaluate: bool) -> None:
        self.inner.on_checkpoint(run, evaluate)

    def message(self, text: str) -> None:
        self.inner.message(text)

    def close(self, run: Run, finished: bool) -> None:
        self.inner.close(run, finished)


def output_for(run: Run, output: NullOutput | None) -> NullOutput | None:
    """What this process writes through: `output` on rank 0 (None: train() makes the RunOutput), NullOutput
    on the others, with log records averaged over the processes; `output` itself for one process."""
    if run.par.world == 1:
        return output
    if not run.par.main:
        output = NullOutput()
    if output is None:
        raise ValueError("output_for: rank 0 of a data-parallel run needs its RunOutput made before wrapping")
    return RankOutput(output, run.device)
