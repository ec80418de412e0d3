"""Training speed of the MNIST MLP GAN, measured in one run on this machine, printed as ratios.

(a) the reference program's step exactly as written: its networks (D ends in nn.Sigmoid, nn.BCELoss), Adam
    2e-4, batch 100, and its per-sample image pipeline (uint8 array -> PIL image -> ToTensor -> Normalize,
    re-implemented without torchvision, through a shuffling DataLoader);
(b) a bare loop of the same networks and step on in-memory tensors with nothing else: the practical
    compute limit of this machine;
(c) ganforge's training of `mnist-mlp-reference` with logging, periodic sample grids and checkpoints on;
(d) the same with bf16 autocast (`--precision bf16`), and (e) the bare loop under bf16 autocast.

    python benchmarks/speed.py [--steps 1500] [--threads N]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
import torch
from PIL import Image
from torch import nn

from ganforge import config, train
from ganforge.data.mnist import mnist_5k_arrays

BATCH, Z, HIDDEN = 100, 100, 256


def reference_networks() -> tuple[nn.Module, nn.Module]:
    G = nn.Sequential(nn.Linear(Z, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, 784),
                      nn.Tanh())
    D = nn.Sequential(nn.Linear(784, HIDDEN), nn.LeakyReLU(0.2), nn.Linear(HIDDEN, HIDDEN), nn.LeakyReLU(0.2),
                      nn.Linear(HIDDEN, 1), nn.Sigmoid())
    return G, D


class PILDigits(torch.utils.data.Dataset):
    """The reference's per-sample pipeline, following torchvision's code paths without torchvision:
    MNIST.__getitem__ (uint8 tensor -> .numpy() -> PIL image, mode "L"), transforms.Compose of ToTensor
    (copy to a tensor, view, permute, contiguous, float, /255) and Normalize((0.5,), (0.5,)) (mean and
    std made tensors on each call, checked, broadcast, subtracted and divided)."""

    def __init__(self, pixels: np.ndarray):
        self.data = torch.from_numpy(pixels)  # torchvision keeps MNIST as a uint8 tensor (N, 28, 28)
        self.targets = torch.zeros(len(pixels), dtype=torch.long)
        self.transform = [self.to_tensor, self.normalize]  # transforms.Compose

    def __len__(self) -> int:
        return len(self.data)

    @staticmethod
    def to_tensor(pic: Image.Image) -> torch.Tensor:
        img = torch.from_numpy(np.array(pic, np.uint8, copy=True))
        img = img.view(pic.size[1], pic.size[0], len(pic.getbands()))
        img = img.permute((2, 0, 1)).contiguous()  # (1, 28, 28)
        return img.to(dtype=torch.get_default_dtype()).div(255)

    @staticmethod
    def normalize(tensor: torch.Tensor, mean=(0.5,), std=(0.5,)) -> torch.Tensor:
        if not isinstance(tensor, torch.Tensor) or tensor.ndim < 3:
            raise TypeError("expected a (C, H, W) tensor")
        tensor = tensor.clone()
        mean_t = torch.as_tensor(mean, dtype=tensor.dtype, device=tensor.device)
        std_t = torch.as_tensor(std, dtype=tensor.dtype, device=tensor.device)
        if (std_t == 0).any():
            raise ValueError("std evaluated to zero")
        return tensor.sub_(mean_t.view(-1, 1, 1)).div_(std_t.view(-1, 1, 1))

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        img, target = self.data[i], int(self.targets[i])
        img = Image.fromarray(img.numpy(), mode="L")
        for t in self.transform:
            img = t(img)
        return img, target


def reference_step(G, D, opt_g, opt_d, criterion, images: torch.Tensor, autocast) -> None:
    """One iteration of the reference program, line for line."""
    images = images.reshape(BATCH, -1)
    real_labels, fake_labels = torch.ones(BATCH, 1), torch.zeros(BATCH, 1)
    with autocast:
        d_loss_real = criterion(D(images).float(), real_labels)
        fake = G(torch.randn(BATCH, Z))
        d_loss_fake = criterion(D(fake).float(), fake_labels)
    d_loss = d_loss_real + d_loss_fake
    opt_d.zero_grad()
    opt_g.zero_grad()
    d_loss.backward()
    opt_d.step()
    with autocast:
        g_loss = criterion(D(G(torch.randn(BATCH, Z))).float(), real_labels)
    opt_d.zero_grad()
    opt_g.zero_grad()
    g_loss.backward()
    opt_g.step()


def _nets_and_opts():
    torch.manual_seed(0)
    G, D = reference_networks()
    return G, D, torch.optim.Adam(G.parameters(), lr=2e-4), torch.optim.Adam(D.parameters(), lr=2e-4)


def bench_reference(pixels: np.ndarray, steps: int) -> float:
    G, D, og, od = _nets_and_opts()
    loader = torch.utils.data.DataLoader(PILDigits(pixels), batch_size=BATCH, shuffle=True, drop_last=True)
    crit, off = nn.BCELoss(), torch.autocast("cpu", enabled=False)
    done, t0 = -20, None  # 20 warm-up steps
    while done < steps:
        for images, _ in loader:
            if done == 0:
                t0 = time.perf_counter()
            reference_step(G, D, og, od, crit, images, off)
            done += 1
            if done >= steps:
                break
    return steps / (time.perf_counter() - t0)


def bench_bare(x: torch.Tensor, steps: int, bf16: bool = False) -> float:
    G, D, og, od = _nets_and_opts()
    crit = nn.BCELoss()
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16)
    perm = torch.randperm(len(x))
    for i in range(steps + 20):
        if i == 20:
            t0 = time.perf_counter()
        j = (i * BATCH) % (len(x) - BATCH + 1)
        reference_step(G, D, og, od, crit, x[perm[j : j + BATCH]], autocast)
    return steps / (time.perf_counter() - t0)


def bench_ganforge(steps: int, precision: str) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        cfg = config.apply_overrides(config.load_preset("mnist-mlp-reference"), [
            'data.name="mnist-5k"', f"train.steps={steps + 20}", f'train.precision="{precision}"',
            f'train.out="{tmp}/run"', 'train.progress="none"', "train.sample_every=500", "train.ckpt_every=500"])
        run = train.build(cfg)
        run.total = 20
        train.train(run=run)  # warm-up
        run.total = steps + 20
        t0 = time.perf_counter()
        train.train(run=run)
        return steps / (time.perf_counter() - t0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    pixels, _ = mnist_5k_arrays()
    x = torch.from_numpy(pixels).float().div(255).sub(0.5).div(0.5).reshape(-1, 784)
    print(f"torch {torch.__version__}, {args.threads} threads, {args.steps} timed steps each, batch {BATCH}")
    res = {
        "reference (PIL pipeline)": bench_reference(pixels, args.steps),
        "bare loop fp32": bench_bare(x, args.steps),
        "ganforge fp32": bench_ganforge(args.steps, "fp32"),
        "bare loop bf16": bench_bare(x, args.steps, bf16=True),
        "ganforge bf16": bench_ganforge(args.steps, "bf16"),
    }
    ref, bare = res["reference (PIL pipeline)"], res["bare loop fp32"]
    print(f"{'':28s} {'steps/s':>8s} {'/ reference':>12s} {'/ bare fp32':>12s}")
    for name, v in res.items():
        print(f"{name:28s} {v:8.1f} {v / ref:11.2f}x {v / bare:11.2f}x")


if __name__ == "__main__":
    main()
