"""Data-parallel training speed on CPU: steps/s of mnist-mlp with 1 process vs 2 gloo processes, measured in one run.

Both use the same global batch (the preset's 64; 2 x 32 with two processes), the same number of threads per
process, and no files written (NullOutput), after a warm-up. This checks the DDP path end to end (process group,
DDP gradient averaging, averaged logs) and shows its cost on this machine: it is a correctness path on CPU,
not a speed claim (gloo all-reduces of the full G and D gradients each step, on cores the processes share).

    python benchmarks/ddp.py [--steps 200] [--warmup 20] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import torch
import torch.multiprocessing as mp

from ganforge import config, distributed, train
from ganforge.outputs import NullOutput

OVERRIDES = ['data.name="mnist-5k"', "train.epochs=0", 'train.progress="none"', "train.tensorboard=false",
             "train.doctor=false", "train.animation=false", "train.sample_every=0", "train.ckpt_every=0",
             "train.log_every=100000"]


def _worker(rank: int, world: int, port: int, steps: int, warmup: int, threads: int, folder: str) -> None:
    os.environ |= {"RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(world), "MASTER_ADDR": "127.0.0.1",
                   "MASTER_PORT": str(port),
                   "TORCHELASTIC_USE_AGENT_STORE": "True"}
    torch.set_num_threads(threads)
    cfg = config.apply_overrides(config.load_preset("mnist-mlp"), OVERRIDES + [
        f"train.steps={warmup}", f'train.out="{folder}/run-{world}"', 'train.device="cpu"'])
    run = train.build(cfg)
    train.train(run=run, output=distributed.output_for(run, NullOutput()))  # warm-up
    run.total = warmup + steps
    distributed.barrier()
    start = time.perf_counter()
    train.train(run=run, output=distributed.output_for(run, NullOutput()))
    distributed.barrier()
    seconds = time.perf_counter() - start
    if rank == 0:
        Path(folder, f"world-{world}.json").write_text(json.dumps({"steps_per_s": steps / seconds}))
    distributed.cleanup()


def _agent_store() -> torch.distributed.TCPStore:
    """The rendezvous store, held by this parent process as torchrun's agent holds it (the workers connect as
    clients: TORCHELASTIC_USE_AGENT_STORE), on a port the system chose: no race for a free port."""
    return torch.distributed.TCPStore("127.0.0.1", 0, is_master=True, wait_for_workers=False)


def measure(world: int, steps: int, warmup: int, threads: int) -> float:
    """Steps/s of `world` processes (spawned, gloo) training mnist-mlp for `steps` steps after `warmup`."""
    with tempfile.TemporaryDirectory() as folder:
        store = _agent_store()  # kept alive while the workers run
        mp.spawn(_worker, args=(world, store.port, steps, warmup, threads, folder), nprocs=world, join=True)
        return json.loads(Path(folder, f"world-{world}.json").read_text())["steps_per_s"]


def main() -> None:
    """Print steps/s of 1 and 2 processes and their ratio."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=200, help="timed steps per setting")
    p.add_argument("--warmup", type=int, default=20, help="untimed steps first")
    p.add_argument("--threads", type=int, default=1, help="torch threads per process")
    a = p.parse_args()
    one = measure(1, a.steps, a.warmup, a.threads)
    two = measure(2, a.steps, a.warmup, a.threads)
    print(f"mnist-mlp (mnist-5k), global batch 64, {a.threads} thread(s) per process, {os.cpu_count()} CPUs, "
          f"torch {torch.__version__}")
    print(f"  1 process:                     {one:7.1f} steps/s")
    print(f"  2 gloo processes (2 x 32):     {two:7.1f} steps/s")
    print(f"  ratio 2 processes / 1 process: {two / one:7.2f}")


if __name__ == "__main__":
    main()
