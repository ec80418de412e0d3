"""Streamed vs in-memory batches on one image folder, measured in one run.

Writes mnist-5k as a folder of 5,000 PNGs (or takes --folder), then:
  1. the cache: first start (decode) and second start (read the uint8 cache) times;
  2. the batches: the first --check batches of both paths are compared bit for bit (same seed);
  3. the speed: steps/s of a training on each path (the `images` preset's nets), and their ratio.

    python benchmarks/streaming.py --steps 300 --resolution 32
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/imagefolders.py writes the folder

from ganforge import config, rng, train  # noqa: E402
from ganforge.data import IndexSampler, load_dataset  # noqa: E402
from ganforge.data.batches import InMemoryBatches, StreamedBatches  # noqa: E402


def timed_load(data_cfg) -> tuple[float, object]:
    t0 = time.perf_counter()
    ds = load_dataset(data_cfg)
    return time.perf_counter() - t0, ds


def steps_per_s(cfg: config.Config, out: Path, steps: int) -> float:
    """Train `steps` steps (after 20 warm-up steps, not timed) and return the timed rate."""
    run = train.build(config.apply_overrides(cfg, [f'train.out="{out}"', "train.steps=20"]))
    train.train(run=run)  # warm-up: workers started, allocations made
    run.total = 20 + steps
    t0 = time.perf_counter()
    train.train(run=run)
    return steps / (time.perf_counter() - t0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--folder", help="an image folder (default: mnist-5k written as PNGs in a temp folder)")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--resolution", type=int, default=32)
    p.add_argument("--check", type=int, default=200, help="batches compared bit for bit")
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(1)
    tmp = Path(tempfile.mkdtemp(prefix="ganforge-stream-"))
    folder = Path(args.folder) if args.folder else tmp / "digits"
    if not args.folder:
        from tests.imagefolders import write_digit_folder

        write_digit_folder(folder, n_per_class=500, jpeg_share=0.0, corrupt=0, rgba=0)
    base = {"path": str(folder), "resolution": args.resolution, "cache": str(tmp / "cache")}
    first, _ = timed_load(config.from_dict({"data": base}).data)
    second, mem = timed_load(config.from_dict({"data": base}).data)
    streamed = load_dataset(config.from_dict({"data": base | {"max_memory": 1e-9}}).data)
    print(f"cache: first start {first:.2f} s (decode {len(mem):,} images), second start {second:.3f} s")

    a = InMemoryBatches(mem, IndexSampler(len(mem), 64, seed=0), rng.RunRandom(0), flip=True)
    b = StreamedBatches(streamed, IndexSampler(len(mem), 64, seed=0), rng.RunRandom(0), flip=True,
                        workers=args.workers)
    same = all(torch.equal(a.next()[0], b.next()[0]) for _ in range(args.check))
    b.close()
    print(f"batches: the first {args.check} of 64 are {'identical' if same else 'DIFFERENT'} on both paths")

    cfg = config.apply_overrides(config.load_preset("images"), [
        f'data.path="{folder}"', f"data.resolution={args.resolution}", f'data.cache="{tmp / "cache"}"',
        'train.progress="none"', "train.tensorboard=false", "train.sample_every=0", "train.ckpt_every=0",
        "train.doctor=false", "train.animation=false"])
    fast = steps_per_s(cfg, tmp / "mem", args.steps)
    slow = steps_per_s(config.apply_overrides(cfg, ["data.max_memory=1e-9"]), tmp / "stream", args.steps)
    print(f"speed ({args.steps} steps, images preset, {args.resolution} px): in memory {fast:.2f} steps/s, "
          f"streamed {slow:.2f} steps/s, streamed / in memory = {slow / fast:.2f}")


if __name__ == "__main__":
    main()
